import { CniNodeError, aggregate } from './errors.js';
import { nameProblem, showName } from './names.js';

/**
 * Configuration templates. A pointer `__NAME__` is replaced by the content of the
 * file NAME in the node configs dir: this is how a Multus config delegates to the
 * primary CNI's config (`__10-calico.conflist__`).
 *
 * Rules (the original dropped unknown pointers silently and wrote broken configs):
 *  - NAME is a plain file name; a pointer with a path separator or `..` is an error,
 *    never a path to read.
 *  - A pointer whose file does not exist is reported; nothing is rendered.
 *  - The inserted content is literal: pointers inside it are not expanded again.
 *  - A pointer to a file that is itself rendered in the same run gets the newly
 *    rendered content; a pointer to itself or a cycle between templates is an error.
 *  - A rendered config has a size cap (MAX_RENDERED_BYTES), checked from the sizes
 *    of the parts before the text is built: a 1 MiB file pointed to 600 times is
 *    refused with a clear error instead of building 600 MiB in memory.
 */
export interface Pointer {
  name: string;
  /** Offset of the leading `__`. */
  start: number;
  /** Offset just past the trailing `__`. */
  end: number;
  line: number;
}

// Starts like a file name (never with `_`, so `____` and `__init__`-style runs of
// underscores inside words are not split oddly) and ends at the first `__`.
const POINTER = /__([A-Za-z0-9.\-/\\][A-Za-z0-9._\-/\\]*?)__/g;
// `__name.ext` with no closing `__`: almost certainly a typo for a pointer. This is
// the first `__X` (X a letter or digit) in a run of file-name characters that has a
// `.X` after it; the name reported runs to the end of the run. Found run by run, in
// linear time: the equivalent single regex backtracks quadratically on long runs
// with many `__` (url-safe base64, for one).
const NAME_RUN = /[A-Za-z0-9._-]+/g;
function findUnterminated(text: string): string | undefined {
  for (const run of text.matchAll(NAME_RUN)) {
    const s = run[0];
    const open = s.search(/__[A-Za-z0-9]/);
    if (open !== -1 && /\.[A-Za-z0-9]/.test(s.slice(open + 3))) return s.slice(open + 2);
  }
  return undefined;
}

/** Finds every pointer in a template; throws if one is malformed. */
export function findPointers(template: string, templateName: string): Pointer[] {
  const pointers: Pointer[] = [];
  const problems: string[] = [];
  let rest = '';
  let last = 0;
  let line = 1;
  let newline = template.indexOf('\n'); // the first newline not yet counted in `line`
  for (const m of template.matchAll(POINTER)) {
    const start = m.index ?? 0;
    const name = m[1] as string;
    for (; newline !== -1 && newline < start; newline = template.indexOf('\n', newline + 1)) line++;
    const p = nameProblem(name);
    if (p) problems.push(`${templateName} line ${line}: pointer __${showName(name)}__: ${p}; a pointer names a file in the node configs dir`);
    else pointers.push({ name, start, end: start + m[0].length, line });
    rest += template.slice(last, start) + ' ';
    last = start + m[0].length;
  }
  rest += template.slice(last);
  const open = findUnterminated(rest);
  if (open !== undefined) {
    problems.push(`${templateName}: unterminated pointer "__${showName(open)}" (a pointer is written __NAME__)`);
  }
  if (problems.length > 0) throw aggregate('invalid', `template ${templateName} has bad pointers`, problems);
  return pointers;
}

/** Replaces each pointer by `resolve(name)`. `resolve` must return the file's content. */
export function renderWith(template: string, pointers: readonly Pointer[], resolve: (name: string) => string): string {
  let out = '';
  let last = 0;
  for (const p of pointers) {
    out += template.slice(last, p.start) + resolve(p.name);
    last = p.end;
  }
  return out + template.slice(last);
}

/**
 * The largest rendered config: 1 MiB. A CNI config is a few KiB (a Multus config
 * with its delegate well under 100 KiB); more is a mistake or pointer amplification.
 */
export const MAX_RENDERED_BYTES = 1024 * 1024;

function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/**
 * The size in bytes of renderWith(template, pointers, …) without building it, or an
 * error if it is over `maxBytes`. `sizeOf` gives each value's size in bytes.
 */
function renderedSizeProblem(
  name: string,
  template: string,
  pointers: readonly Pointer[],
  sizeOf: (n: string) => number,
  maxBytes: number,
): CniNodeError | undefined {
  let total = Buffer.byteLength(template);
  const uses = new Map<string, number>();
  for (const p of pointers) {
    total += sizeOf(p.name) - (p.end - p.start); // a pointer is ASCII: its length is its size
    uses.set(p.name, (uses.get(p.name) ?? 0) + 1);
  }
  if (total <= maxBytes) return undefined;
  const parts = [...uses]
    .map(([n, count]) => ({ n, count, bytes: sizeOf(n) }))
    .sort((a, b) => b.count * b.bytes - a.count * a.bytes)
    .slice(0, 3)
    .map(({ n, count, bytes }) => `__${n}__ (${size(bytes)}) ${count === 1 ? 'once' : `${count} times`}`);
  return new CniNodeError(
    'invalid',
    `config ${name} would be ${size(total)} once rendered (${parts.join(', ')}); a rendered config may be at most ${size(maxBytes)} (a CNI config is a few KiB); nothing was written`,
  );
}

export type RenderOutcome =
  | { status: 'rendered'; content: string; pointers: string[] }
  /** Pointer targets that do not exist (yet) on the node. */
  | { status: 'missing'; missing: string[]; pointers: string[] }
  | { status: 'error'; error: CniNodeError };

/**
 * Renders a set of templates against the node configs dir.
 * `readNodeFile` returns a file's content, or undefined when it does not exist.
 * Pure apart from `readNodeFile`; deterministic for the same inputs.
 */
export function renderTemplates(
  templates: ReadonlyMap<string, string>,
  readNodeFile: (name: string) => string | undefined,
  maxBytes: number = MAX_RENDERED_BYTES,
): Map<string, RenderOutcome> {
  const outcomes = new Map<string, RenderOutcome>();
  const parsed = new Map<string, Pointer[]>();
  for (const [name, text] of templates) {
    try {
      parsed.set(name, findPointers(text, name));
    } catch (e) {
      outcomes.set(name, { status: 'error', error: e as CniNodeError });
    }
  }

  const visiting: string[] = [];
  const inVisit = new Set<string>();
  const visit = (name: string): RenderOutcome => {
    const done = outcomes.get(name);
    if (done) return done;
    const pointers = parsed.get(name) as Pointer[];
    const names = [...new Set(pointers.map((p) => p.name))];
    visiting.push(name);
    inVisit.add(name);
    // A Set: templates may point to a hundred thousand missing files each (an array made the merge quadratic).
    const missing = new Set<string>();
    const values = new Map<string, string>();
    let failure: CniNodeError | undefined;
    for (const target of names) {
      if (inVisit.has(target)) {
        const cycle = [...visiting.slice(visiting.indexOf(target)), target].join(' → ');
        failure = new CniNodeError(
          'invalid',
          target === name
            ? `template ${name} points to itself (__${name}__); a template cannot include its own output`
            : `templates point to each other in a cycle: ${cycle}`,
        );
        break;
      }
      if (templates.has(target)) {
        if (!parsed.has(target)) {
          failure = new CniNodeError('invalid', `template ${name} points to ${target}, which is itself a template with errors`);
          break;
        }
        const dep = visit(target);
        if (dep.status === 'rendered') values.set(target, dep.content);
        else if (dep.status === 'missing') for (const m of dep.missing) missing.add(m);
        else {
          failure = new CniNodeError('invalid', `template ${name} points to ${target}, which cannot be rendered: ${dep.error.message}`);
          break;
        }
        continue;
      }
      const content = readNodeFile(target);
      if (content === undefined) missing.add(target);
      else values.set(target, content);
    }
    inVisit.delete(visiting.pop() as string);
    let outcome: RenderOutcome;
    if (failure) outcome = { status: 'error', error: failure };
    else if (missing.size > 0) outcome = { status: 'missing', missing: [...missing], pointers: names };
    else {
      const text = templates.get(name) as string;
      const sizes = new Map([...values].map(([n, v]) => [n, Buffer.byteLength(v)]));
      const tooBig = renderedSizeProblem(name, text, pointers, (n) => sizes.get(n) ?? 0, maxBytes);
      outcome = tooBig
        ? { status: 'error', error: tooBig }
        : { status: 'rendered', content: renderWith(text, pointers, (n) => values.get(n) as string), pointers: names };
    }
    outcomes.set(name, outcome);
    return outcome;
  };

  for (const name of templates.keys()) if (!outcomes.has(name)) visit(name);
  // Keep the caller's order.
  return new Map([...templates.keys()].map((n) => [n, outcomes.get(n) as RenderOutcome]));
}
