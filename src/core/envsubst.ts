import { CniNodeError } from './errors.js';

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

export function substituteEnv(text: string, env: Readonly<Record<string, string | undefined>>, where: string): string {
  const missing: string[] = [];
  const bad: string[] = [];
  const out = text.replace(REFERENCE, (whole, ref: string, braced: string | undefined) => {
    if (ref === '$') return '$';
    let name = ref;
    if (ref.startsWith('{')) {
      if (!whole.endsWith('}')) {
        bad.push(`"${whole.slice(0, 40)}" has no closing }`);
        return whole;
      }
      name = braced ?? '';
      if (!NAME.test(name)) {
        bad.push(`"\${${name}}" is not a variable reference (names are letters, digits and _; write $$ for a literal $)`);
        return whole;
      }
    }
    // Own properties only: `${constructor}` or `$toString` must not find Object.prototype's.
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    if (value === undefined) {
      if (!missing.includes(name)) missing.push(name);
      return whole;
    }
    return value;
  });
  if (bad.length > 0) throw new CniNodeError('invalid', `${where}: bad variable reference`, bad);
  if (missing.length > 0) {
    throw new CniNodeError(
      'invalid',
      `${where}: environment variable${missing.length > 1 ? 's' : ''} not set: ${missing.join(', ')} (export ${missing.length > 1 ? 'them' : 'it'} in the container, or write $$ for a literal $)`,
    );
  }
  return out;
}
