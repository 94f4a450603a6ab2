// The documents link to each other (README.md, RELIABILITY.md, BENCHMARKS.md, docs/):
// every relative link must reach a file of the repository and, when it names a
// heading (`file.md#heading`), a heading of that file, so that moving a section
// cannot leave a dead link behind. And every page of docs/ is linked from the
// README, where a new user starts.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../support/repo.js';

function documents(): string[] {
  const files = ['README.md', 'RELIABILITY.md', 'BENCHMARKS.md'].map((f) => path.join(REPO_ROOT, f));
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else if (e.name.endsWith('.md')) files.push(path.join(dir, e.name));
    }
  };
  walk(path.join(REPO_ROOT, 'docs'));
  return files.filter((f) => existsSync(f));
}

/** The text outside fenced code blocks and inline code: links there are examples, not links. */
function prose(text: string): string {
  return text
    .replace(/^```[\s\S]*?^```/gm, '')
    .split('\n')
    .map((line) => line.replace(/`[^`]*`/g, ''))
    .join('\n');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes; repeats get -1, -2, … */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of markdown.replace(/^```[\s\S]*?^```/gm, '').split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = (m[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** [target, line] of every inline link `[text](target)` in the prose of a document. */
function links(markdown: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [i, line] of prose(markdown).split('\n').entries()) {
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) out.push([m[1] as string, i + 1]);
  }
  return out;
}

describe('links between the documents', () => {
  test('GitHub anchors are computed as GitHub computes them', () => {
    const a = anchors('# The daemon: `cni-node run`\n## Options of run\n## `--kubeconfig-out`: a kubeconfig\n## Options of run\n');
    assert.deepEqual([...a], ['the-daemon-cni-node-run', 'options-of-run', '--kubeconfig-out-a-kubeconfig', 'options-of-run-1']);
  });

  test('every relative link reaches a file, and every #heading a heading of it', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const file of documents()) {
      const text = readFileSync(file, 'utf8');
      for (const [target, line] of links(text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        checked++;
        const where = `${path.relative(REPO_ROOT, file)}:${line}: ${target}`;
        const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
        const resolved = pathPart === '' ? file : path.resolve(path.dirname(file), decodeURIComponent(pathPart));
        if (!resolved.startsWith(REPO_ROOT + path.sep) || !existsSync(resolved)) {
          problems.push(`${where}: no such file`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!resolved.endsWith('.md') || statSync(resolved).isDirectory()) {
          problems.push(`${where}: a #heading in a file that is not Markdown`);
          continue;
        }
        if (!anchors(readFileSync(resolved, 'utf8')).has(anchor)) problems.push(`${where}: no such heading in ${path.relative(REPO_ROOT, resolved)}`);
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(checked > 40, `found the links (${checked})`);
  });

  test('every page of docs/ is linked from the README', () => {
    const readme = path.join(REPO_ROOT, 'README.md');
    const linked = new Set(
      links(readFileSync(readme, 'utf8'))
        .map(([t]) => t.split('#')[0] as string)
        .filter((t) => t !== '')
        .map((t) => path.resolve(REPO_ROOT, t)),
    );
    const pages = documents().filter((f) => f.startsWith(path.join(REPO_ROOT, 'docs') + path.sep));
    assert.ok(pages.length > 0, 'docs/ has pages');
    assert.deepEqual(
      pages.filter((f) => !linked.has(f)).map((f) => path.relative(REPO_ROOT, f)),
      [],
    );
  });
});
