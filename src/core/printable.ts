/**
 * The one way text from outside cni-node (the ConfigMap, node files, templates,
 * manifests, the API server, a plugin's output) is shown to an operator: in a log
 * line, an error message, an Event or /readyz. Such text may hold a newline that
 * starts a forged log line, terminal escapes, characters that make a line read
 * other than it is written (bidirectional overrides), or a megabyte of anything.
 * printable() makes it one line of bounded length; every layer uses it (it is pure).
 */

/** The default cap of one piece of outside text in a message (real messages are a few hundred characters). */
export const MAX_PRINTABLE = 2_000;

// C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
// bidirectional embeddings, overrides and isolates (which can make a log line read
// other than it is written).
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const HAS_UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Whether `text` holds a character printable() would escape. */
export function hasUnprintable(text: string): boolean {
  return HAS_UNPRINTABLE.test(text);
}

/**
 * `text` (a string, or any value, shown as JSON) as one line of at most `max`
 * characters: control and formatting characters written as escapes (`\n`, `\x1b`,
 * `\u202e`), and what was cut said (`… (N more characters)`). Undefined is "".
 */
export function printable(text: unknown, max: number = MAX_PRINTABLE): string {
  const s = typeof text === 'string' ? text : text === undefined ? '' : safeStringify(text);
  const escaped = cut(s, max).replace(UNPRINTABLE, escapeChar);
  const shown = cut(escaped, max);
  if (s.length > max) return `${shown}… (${s.length - max} more characters)`;
  return shown.length < escaped.length ? `${shown}…` : shown;
}

/**
 * Names (already printable) as a list for one line: the first `max` of them
 * joined, then how many more there are: "a, b, c and 7 more".
 */
export function someOf(names: readonly string[], max = 10, separator = ', '): string {
  if (names.length <= max) return names.join(separator);
  return `${names.slice(0, max).join(separator)} and ${names.length - max} more`;
}

/**
 * The longest prefix of `text` that is at most `maxBytes` bytes in UTF-8, with `…`
 * when cut (an API field limited in bytes, such as an Event's message). Never
 * splits a character.
 */
export function cutToBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let bytes = 3; // the "…"
  let end = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return `${text.slice(0, end)}…`;
}

/** `s` cut to `max` UTF-16 units, never between the two halves of a character. */
function cut(s: string, max: number): string {
  if (s.length <= max) return s;
  const c = s.charCodeAt(max - 1);
  return s.slice(0, c >= 0xd800 && c <= 0xdbff ? max - 1 : max);
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
