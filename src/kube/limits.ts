/**
 * What cni-node accepts from the Kubernetes API server, and how much of it: the API
 * is untrusted input like everything else, so every byte from the server passes
 * one of these caps before it is concatenated or parsed. Why these numbers: the
 * table in docs/ARCHITECTURE.md ("What is accepted from the API server").
 */
import { CniNodeError } from '../core/errors.js';

export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
export const MAX_WATCH_EVENT_BYTES = MAX_ANSWER_BYTES;
export const MAX_WATCHED_BYTES = 32 * 1024 * 1024;
export const MAX_JSON_DEPTH = 512;
export const MAX_SERVER_TEXT = 2_000;

/** "16 MiB", "1.5 KiB", "12 bytes". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const [value, unit] = n < 1024 * 1024 ? [n / 1024, 'KiB'] : n < 1024 ** 3 ? [n / 1024 ** 2, 'MiB'] : [n / 1024 ** 3, 'GiB'];
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
}

/**
 * `what` (e.g. "the answer to GET https://…/api") as an error that says it is over
 * the `maxBytes` cap; `seen` says how that was found ("Content-Length: N", "at
 * least N bytes"), `advice` what to do.
 */
export function tooLarge(what: string, maxBytes: number, seen?: string, advice?: string): CniNodeError {
  return new CniNodeError(
    'api',
    `${what} is larger than the ${formatBytes(maxBytes)} cap${seen ? ` (${seen})` : ''}; refused, and the connection closed without reading the rest${advice ? ` (${advice})` : ''}`,
  );
}

/**
 * Whether the JSON text `text` nests arrays and objects deeper than `max`. A
 * linear scan (brackets inside strings do not count), so a hostile `[[[[…` is
 * refused before it is parsed.
 */
export function jsonDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** JSON.parse of a server's text, refused (a CniNodeError naming `what`) when it nests deeper than MAX_JSON_DEPTH. Syntax errors are thrown as they are. */
export function parseServerJson(text: string, what: string): unknown {
  if (jsonDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new CniNodeError('api', `${what} nests JSON deeper than the cap of ${MAX_JSON_DEPTH} levels; refused`);
  }
  return JSON.parse(text) as unknown;
}

// C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
// bidirectional overrides and isolates (which can make a log line read other than
// it is written).
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the API server made safe for one log line, an error message or an
 * Event: control characters shown as escapes (`\n`, `\x1b`, so a server cannot
 * start a forged log line or send terminal escapes), and at most `max`
 * characters, with how much was cut.
 */
export function serverText(text: unknown, max: number = MAX_SERVER_TEXT): string {
  let s = typeof text === 'string' ? text : text === undefined ? '' : safeStringify(text);
  const total = s.length;
  if (s.length > max) s = s.slice(0, max);
  s = s.replace(UNPRINTABLE, escapeChar);
  if (s.length > max) s = s.slice(0, max);
  return total > max ? `${s}… (${total - max} more characters)` : s;
}

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
