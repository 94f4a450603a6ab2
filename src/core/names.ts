import { CniNodeError } from './errors.js';
import { hasUnprintable, printable } from './printable.js';

/**
 * The one validation of names that come from outside cni-node's own code: the
 * command line, the ConfigMap, template pointers, cni-node's record and lock, the
 * manifest record's object references. Wherever a name comes from, it passes here
 * before it is used; a bad one is refused, never resolved, trimmed or "fixed".
 *
 * Plugin, config and manifest names are file names inside one directory. Anything
 * that could reach outside it (a separator, `.`/`..`, NUL) is refused.
 */

/** Files cni-node itself keeps in the node dirs; never valid item names. */
export const RESERVED_PREFIX = '.cni-node';

/** cni-node's temporary files: `.cni-node-tmp.NAME.RANDOM` (RANDOM: TEMP_RANDOM_HEX hex digits). */
export const TEMP_PREFIX = '.cni-node-tmp.';
export const TEMP_RANDOM_HEX = 12;

/** The longest file name Linux file systems take (NAME_MAX), in bytes. */
const NAME_MAX_BYTES = 255;

/**
 * The longest item name, in UTF-8 bytes: NAME_MAX less the temporary file's
 * prefix and suffix, so the temporary name `.cni-node-tmp.NAME.RANDOM` of every
 * valid name fits too (228 bytes).
 */
export const MAX_NAME_BYTES = NAME_MAX_BYTES - TEMP_PREFIX.length - 1 - TEMP_RANDOM_HEX;

/** A name as it can be shown on one line: control and formatting characters escaped, long names cut (core/printable.ts). */
export function showName(name: string, max = 60): string {
  return printable(name, max);
}

/**
 * Why `name` cannot be a file name in a directory (a separator, `.`/`..`, NUL, too
 * long for the file system once the temporary-file prefix is added), or undefined.
 * The structural part only: cni-node's own file names (record, lock) pass.
 */
export function fileNameProblem(name: string): string | undefined {
  if (name === '') return 'an empty name';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (name.includes('/') || name.includes('\\')) return `"${showName(name)}" contains a path separator; give a plain file name`;
  if (name.includes('\0')) return `"${showName(name)}" contains a NUL byte`;
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) {
    return `"${showName(name, 40)}" is ${bytes} bytes long in UTF-8; names are limited to ${MAX_NAME_BYTES} bytes (the file system's ${NAME_MAX_BYTES}, less room for cni-node's temporary file name)`;
  }
  return undefined;
}

/**
 * Why `name` is not a valid plugin, config, manifest or pointer name, or undefined.
 * The same rules wherever the name comes from.
 */
export function nameProblem(name: string): string | undefined {
  if (typeof name !== 'string') return `${JSON.stringify(name) ?? String(name)} is not a name (a string)`;
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) return fileNameProblem(name);
  // A name is shown in logs, Events and /readyz as it is: nothing in it may start a
  // line or make it read other than it is written (printable.ts).
  if (hasUnprintable(name)) return `"${showName(name)}" contains a control character (or a line separator or bidirectional override)`;
  if (name.startsWith(RESERVED_PREFIX)) return `"${showName(name)}" is reserved for cni-node's own files (record, lock, temporary files)`;
  return fileNameProblem(name);
}

export function assertPlainName(name: string, what: string): void {
  const p = nameProblem(name);
  if (p) throw new CniNodeError('invalid', `${what}: ${p}`);
}

// ---------------------------------------------------------------------------
// Kubernetes object references. Recorded references (and the manifests they come
// from) later build API URLs such as DELETE /apis/GROUP/VERSION/namespaces/NS/RESOURCE/NAME,
// so nothing in them may carry a `/`, `..`, `?`, `#`, `%` or a control character.

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KIND = /^[A-Za-z][A-Za-z0-9]*$/;

/** Why `ns` is not a namespace name (a DNS label, at most 63 characters), or undefined. */
export function namespaceProblem(ns: unknown): string | undefined {
  if (typeof ns !== 'string' || ns === '') return `namespace ${JSON.stringify(ns) ?? String(ns)} is not a name`;
  if (ns.length > 63 || !DNS_LABEL.test(ns))
    return `namespace "${showName(ns)}" is not a valid namespace name (lower-case letters, digits and '-', at most 63)`;
  return undefined;
}

/** Why `apiVersion` is not `version` or `group/version`, or undefined. */
export function apiVersionProblem(apiVersion: unknown): string | undefined {
  if (typeof apiVersion !== 'string' || apiVersion === '') return `apiVersion ${JSON.stringify(apiVersion) ?? String(apiVersion)} is not a string`;
  const parts = apiVersion.split('/');
  const version = parts[parts.length - 1] as string;
  const group = parts.length === 2 ? (parts[0] as string) : '';
  const ok = parts.length <= 2 && version.length <= 63 && DNS_LABEL.test(version) && (parts.length === 1 || (group.length <= 253 && DNS_SUBDOMAIN.test(group)));
  return ok ? undefined : `apiVersion "${showName(apiVersion)}" is not of the form group/version or version`;
}

/** Why `kind` is not a Kubernetes kind (letters and digits, starting with a letter), or undefined. */
export function kindProblem(kind: unknown): string | undefined {
  if (typeof kind !== 'string' || kind.length === 0 || kind.length > 63 || !KIND.test(kind)) {
    return `kind ${typeof kind === 'string' ? `"${showName(kind)}"` : (JSON.stringify(kind) ?? String(kind))} is not a Kubernetes kind (letters and digits, starting with a letter)`;
  }
  return undefined;
}

/**
 * Why `name` cannot be an object name in an API path, or undefined. Kubernetes
 * itself allows any path segment name for some kinds (`system:node:x` for RBAC),
 * so this is not the DNS rule; it refuses what could change the URL: `/`, `%`,
 * `?`, `#`, `.`/`..`, white space and control characters.
 */
export function objectNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return `metadata.name ${JSON.stringify(name) ?? String(name)} is not a name`;
  if (name === '.' || name === '..' || /[/%?#\s]/.test(name) || hasUnprintable(name)) return `metadata.name "${showName(name)}" cannot be used in a URL path`;
  if (Buffer.byteLength(name, 'utf8') > 253) return `metadata.name "${showName(name, 40)}" is longer than 253 bytes`;
  return undefined;
}

export interface ObjectRefLike {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** Why `ref` is not a valid object reference (apiVersion, kind, namespace, name), or undefined. */
export function objectRefProblem(ref: unknown): string | undefined {
  if (ref === null || typeof ref !== 'object' || Array.isArray(ref)) return 'not an object reference';
  const r = ref as Record<string, unknown>;
  return (
    apiVersionProblem(r['apiVersion']) ??
    kindProblem(r['kind']) ??
    (r['namespace'] === undefined ? undefined : namespaceProblem(r['namespace'])) ??
    objectNameProblem(r['name'])
  );
}
