/**
 * What cni-node accepts from the Kubernetes API server, and how much of it: the API
 * is untrusted input like everything else, so every byte from the server passes
 * one of these caps before it is concatenated or parsed. Why these numbers: the
 * table in docs/ARCHITECTURE.md ("What is accepted from the API server").
 */
import { CniNodeError } from '../core/errors.js';
import { MAX_PRINTABLE } from '../core/printable.js';

export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
export const MAX_WATCH_EVENT_BYTES = MAX_ANSWER_BYTES;
export const MAX_WATCHED_BYTES = 32 * 1024 * 1024;
export const MAX_JSON_DEPTH = 512;
/** Text from the server in a log line, error or Event: core/printable.ts escapes it and caps it at this. */
export const MAX_SERVER_TEXT = MAX_PRINTABLE;

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
