import { aggregate } from './errors.js';
import { nameProblem } from './names.js';

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
  const problems: string[] = [];
  const seen = new Set<string>();
  const names: string[] = [];
  trimmed.split(',').forEach((raw, i) => {
    const name = raw.trim();
    const position = `${what} item ${i + 1}`;
    if (name === '') {
      problems.push(`${position} is empty (in "${text}"); separate names with single commas`);
      return;
    }
    const p = nameProblem(name);
    if (p) {
      problems.push(`${position}: ${p}`);
      return;
    }
    if (seen.has(name)) {
      problems.push(`${what}: "${name}" is listed twice`);
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
      `${what}="${text}" has ${parts.length - 1} ':' separators; the form is Desired[:Current], e.g. a,b:b,c`,
    ]);
  }
  const desired = parseNameList(parts[0] ?? '', `${what} (desired)`);
  if (parts.length === 1) return { desired };
  return { desired, current: parseNameList(parts[1] ?? '', `${what} (current)`) };
}
