import { aggregate } from './errors.js';
import { nameProblem, showName } from './names.js';
import { printable } from './printable.js';

/**
 * The most items one list may hold. A node has tens of plugins and a few configs
 * (the scale benchmark goes to 200 plugins and 100 templates); a ConfigMap of
 * 1 MiB could name 100,000 items, each held, logged and reported on its own.
 */
export const MAX_LIST_ITEMS = 1_000;

/** A parsed `Desired[:Current]` list. `current` is undefined when the `:Current` part was not given. */
export interface ListSpec {
  desired: string[];
  current?: string[];
}

/**
 * Parses one comma-separated list of names (`a,b,c`). Surrounding white space is
 * ignored (ConfigMap values often end in a newline). An empty string is the empty
 * list; an empty item (`a,,b`, `,`) is refused, as is a name listed twice.
 */
export function parseNameList(text: string, what: string): string[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const items = trimmed.split(',', MAX_LIST_ITEMS + 1);
  if (items.length > MAX_LIST_ITEMS) {
    let count = 1;
    for (let i = trimmed.indexOf(','); i !== -1; i = trimmed.indexOf(',', i + 1)) count++;
    throw aggregate('invalid', `invalid ${what} list`, [
      `${what} has ${count} items; a list may have at most ${MAX_LIST_ITEMS} (it begins "${printable(trimmed, 80)}")`,
    ]);
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const names: string[] = [];
  items.forEach((raw, i) => {
    const name = raw.trim();
    const position = `${what} item ${i + 1}`;
    if (name === '') {
      problems.push(`${position} is empty (in "${printable(trimmed, 200)}"); separate names with single commas`);
      return;
    }
    const p = nameProblem(name);
    if (p) {
      problems.push(`${position}: ${p}`);
      return;
    }
    if (seen.has(name)) {
      problems.push(`${what}: "${showName(name)}" is listed twice`);
      return;
    }
    seen.add(name);
    names.push(name);
  });
  if (problems.length > 0) throw aggregate('invalid', `invalid ${what} list`, problems);
  return names;
}

/** Parses `Desired[:Current]` as the original cni-node's apply took it. */
export function parseListSpec(text: string, what: string): ListSpec {
  const parts = text.split(':');
  if (parts.length > 2) {
    throw aggregate('invalid', `invalid ${what} list`, [
      `${what}="${printable(text.trim(), 200)}" has ${parts.length - 1} ':' separators; the form is Desired[:Current], e.g. a,b:b,c`,
    ]);
  }
  const desired = parseNameList(parts[0] ?? '', `${what} (desired)`);
  if (parts.length === 1) return { desired };
  return { desired, current: parseNameList(parts[1] ?? '', `${what} (current)`) };
}
