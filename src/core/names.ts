import { CniNodeError } from './errors.js';

/**
 * Plugin, config and manifest names are file names inside one directory. Anything
 * that could reach outside it (a separator, `.`/`..`, NUL) is refused, never resolved.
 */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'an empty name';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/') || name.includes('\\')) return `"${name}" contains a path separator; give a plain file name`;
  if (name.includes('\0')) return `"${name.replace(/\0/g, '\\0')}" contains a NUL byte`;
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(name)) return `"${JSON.stringify(name).slice(1, -1)}" contains a control character`;
  if (name.startsWith(RESERVED_PREFIX)) return `"${name}" is reserved for cni-node's own files (record, lock, temporary files)`;
  if (name.length > 255) return `"${name.slice(0, 40)}…" is longer than 255 characters`;
  return undefined;
}

export function assertPlainName(name: string, what: string): void {
  const p = nameProblem(name);
  if (p) throw new CniNodeError('invalid', `${what}: ${p}`);
}

/** Files cni-node itself keeps in the node dirs; never valid item names. */
export const RESERVED_PREFIX = '.cni-node';
