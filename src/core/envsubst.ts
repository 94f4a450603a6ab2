import { CniNodeError } from './errors.js';
import { printable, someOf } from './printable.js';

/**
 * `$VAR` and `${VAR}` substitution for manifests, like envsubst but strict: a
 * reference to an unset variable is an error listing every missing name (the
 * original substituted "" and created objects named `multus-cni-`).
 *
 * A literal dollar sign is written `$$`. A `$` not followed by a name or `{` is
 * kept as it is (so `cost: 5$` needs no escaping).
 */
const REFERENCE = /\$(\$|\{([^}]*)\}?|[A-Za-z_][A-Za-z0-9_]*)/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The largest substituted text: a Kubernetes object is at most about 1.5 MiB (etcd's
 * request limit), and a manifest holds a few. A variable referenced many times could
 * otherwise multiply the text; the size is computed before the text is built.
 */
export const MAX_SUBSTITUTED_BYTES = 8 * 1024 * 1024;

function substitutedSize(text: string, env: Readonly<Record<string, string | undefined>>): { bytes: number; top?: string } {
  let bytes = Buffer.byteLength(text);
  const sizes = new Map<string, number>();
  const uses = new Map<string, number>();
  for (const m of text.matchAll(REFERENCE)) {
    const ref = m[1] as string;
    const name = ref.startsWith('{') ? (m[2] ?? '') : ref;
    if (ref === '$' || !NAME.test(name) || !Object.hasOwn(env, name) || env[name] === undefined) continue;
    let size = sizes.get(name);
    if (size === undefined) sizes.set(name, (size = Buffer.byteLength(env[name] as string)));
    bytes += size - m[0].length;
    uses.set(name, (uses.get(name) ?? 0) + 1);
  }
  const sizeOf = (n: string) => sizes.get(n) ?? 0;
  const [top, count] = [...uses].sort((a, b) => b[1] * sizeOf(b[0]) - a[1] * sizeOf(a[0]))[0] ?? [];
  return { bytes, ...(top !== undefined ? { top: `$${top} (${sizeOf(top)} bytes) ${count} times` } : {}) };
}

export function substituteEnv(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  where: string,
  maxBytes: number = MAX_SUBSTITUTED_BYTES,
): string {
  const size = substitutedSize(text, env);
  if (size.bytes > maxBytes) {
    throw new CniNodeError(
      'invalid',
      `${where} would be ${size.bytes} bytes once its variables are substituted${size.top ? ` (${size.top})` : ''}; at most ${maxBytes} bytes are allowed; nothing was sent`,
    );
  }
  // A Set: a manifest may name a hundred thousand distinct unset variables (Array.includes made that quadratic).
  const missing = new Set<string>();
  const bad: string[] = [];
  const out = text.replace(REFERENCE, (whole, ref: string, braced: string | undefined) => {
    if (ref === '$') return '$';
    let name = ref;
    if (ref.startsWith('{')) {
      if (!whole.endsWith('}')) {
        bad.push(`"${printable(whole, 40)}" has no closing }`);
        return whole;
      }
      name = braced ?? '';
      if (!NAME.test(name)) {
        bad.push(`"\${${printable(name, 60)}}" is not a variable reference (names are letters, digits and _; write $$ for a literal $)`);
        return whole;
      }
    }
    // Own properties only: `${constructor}` or `$toString` must not find Object.prototype's.
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    if (value === undefined) {
      missing.add(name);
      return whole;
    }
    return value;
  });
  if (bad.length > 0) throw new CniNodeError('invalid', `${where}: bad variable reference`, bad);
  if (missing.size > 0) {
    throw new CniNodeError(
      'invalid',
      `${where}: environment variable${missing.size > 1 ? 's' : ''} not set: ${someOf([...missing])} (export ${missing.size > 1 ? 'them' : 'it'} in the container, or write $$ for a literal $)`,
    );
  }
  return out;
}
