/**
 * Validation of what kube-watch puts into an API request: label selectors, object
 * names, namespaces and resource types. Checked before any request, so a typo is a
 * usage error at once (exit 2), not a request the API server refuses over and over.
 *
 * Label selectors follow Kubernetes' own grammar (k8s.io/apimachinery labels.Parse):
 *   selector    = requirement { "," requirement }
 *   requirement = [ "!" ] key
 *               | key ( "=" | "==" | "!=" ) value
 *               | key ( "in" | "notin" ) "(" [ value { "," value } ] ")"
 *               | key ( ">" | "<" ) integer
 *   key   = [ prefix "/" ] name    prefix: a DNS subdomain (≤ 253), name: ≤ 63
 *   value = "" or ≤ 63 of [A-Za-z0-9_.-], starting and ending alphanumeric
 */

const NAME_PART = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

function keyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key "${key}": the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.')`;
  }
  if (name.length === 0 || name.length > 63 || !NAME_PART.test(name)) {
    return `label key "${key}": the name must be 1–63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

function valueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !NAME_PART.test(value)) {
    return `label value "${value}": at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

type Token = { t: 'id'; v: string } | { t: 'op'; v: string };

const OPERATORS = ['==', '!=', '=', '!', '(', ')', ',', '<', '>'] as const;

function tokenize(s: string): Token[] | string {
  const tokens: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i] as string;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => s.startsWith(o, i));
    if (op) {
      tokens.push({ t: 'op', v: op });
      i += op.length;
      continue;
    }
    let j = i;
    while (j < s.length && !/[\s!=(),<>]/.test(s[j] as string)) j++;
    const id = s.slice(i, j);
    if (/[^\x21-\x7e]/.test(id)) return `"${id}" contains a character that cannot be in a label selector`;
    tokens.push({ t: 'id', v: id });
    i = j;
  }
  return tokens;
}

/** Why `selector` is not a valid Kubernetes label selector, or undefined. */
export function labelSelectorProblem(selector: string): string | undefined {
  if (selector.trim() === '') return undefined;
  const tokens = tokenize(selector);
  if (typeof tokens === 'string') return tokens;
  let i = 0;
  const peek = (): Token | undefined => tokens[i];
  const isOp = (v: string): boolean => peek()?.t === 'op' && peek()?.v === v;
  const expectKey = (): string | undefined => {
    const t = peek();
    if (t?.t !== 'id') return `expected a label key${t ? ` before "${t.v}"` : ' at the end'}`;
    i++;
    return keyProblem(t.v);
  };
  for (;;) {
    if (isOp('!')) {
      i++;
      const p = expectKey();
      if (p) return p;
    } else {
      const p = expectKey();
      if (p) return p;
      const t = peek();
      if (t === undefined || (t.t === 'op' && t.v === ',')) {
        // `key`: the label exists.
      } else if (t.t === 'op' && (t.v === '=' || t.v === '==' || t.v === '!=')) {
        i++;
        const v = peek();
        if (v?.t === 'id') {
          i++;
          const vp = valueProblem(v.v);
          if (vp) return vp;
        } else if (v !== undefined && !(v.t === 'op' && v.v === ',')) {
          return `expected a label value after "${t.v}", not "${v.v}"`;
        }
      } else if (t.t === 'op' && (t.v === '<' || t.v === '>')) {
        i++;
        const v = peek();
        if (v?.t !== 'id' || !/^-?\d+$/.test(v.v)) return `"${t.v}" needs a whole number after it`;
        i++;
      } else if (t.t === 'id' && (t.v === 'in' || t.v === 'notin')) {
        i++;
        if (!isOp('(')) return `"${t.v}" needs a list of values in parentheses, e.g. ${t.v} (a,b)`;
        i++;
        for (let first = true; !isOp(')'); first = false) {
          if (!first) {
            if (!isOp(',')) return `expected "," or ")" in the values after "${t.v}"`;
            i++;
          }
          const v = peek();
          if (v === undefined) return `missing ")" after the values of "${t.v}"`;
          if (v.t === 'id') {
            i++;
            const vp = valueProblem(v.v);
            if (vp) return vp;
          } else if (!(v.v === ',' || v.v === ')')) {
            return `unexpected "${v.v}" in the values after "${t.v}"`;
          }
        }
        i++;
      } else {
        return `unexpected "${t.v}" after the label key (expected =, ==, !=, in, notin, <, > or ",")`;
      }
    }
    if (i >= tokens.length) return undefined;
    if (!isOp(',')) return `unexpected "${(peek() as Token).v}" (requirements are separated by ",")`;
    i++;
    if (i >= tokens.length) return 'a "," at the end with no requirement after it';
  }
}

/**
 * Why `name` cannot be an object name, or undefined. Kubernetes names are DNS
 * subdomains for most kinds; a few kinds (RBAC roles, for one) also allow ':' and
 * capitals, so those are accepted too. Never accepted: '/', '%', '?', '#', ',',
 * '=', spaces or control characters, "." and "..": they cannot be in any object's
 * name, and would change the meaning of the request's URL or field selector.
 */
export function objectNameProblem(name: string): string | undefined {
  if (name.length > 253) return `the name is ${name.length} characters long; object names have at most 253`;
  if (name === '.' || name === '..') return `"${name}" cannot be an object name`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]*$/.test(name)) {
    return `"${name}" is not a valid object name (letters, digits, '-', '.', '_', ':' and '@' only, starting with a letter or digit)`;
  }
  return undefined;
}

/** Why `ns` cannot be a namespace name (a DNS label), or undefined. */
export function namespaceProblem(ns: string): string | undefined {
  if (ns.length > 63 || !DNS_LABEL.test(ns))
    return `"${ns}" is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)`;
  return undefined;
}

/** Why `type` cannot be a resource type (configmap, deployments.apps, deployment.v1.apps), or undefined. */
export function resourceTypeProblem(type: string): string | undefined {
  if (type.length > 253 || !/^[A-Za-z0-9](?:[A-Za-z0-9-]*)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*))*$/.test(type)) {
    return `"${type}" is not a resource type (a kind or resource name such as configmap, optionally with .version.group, e.g. deployments.v1.apps)`;
  }
  return undefined;
}
