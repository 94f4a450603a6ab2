// The size check of `npm run lint` (scripts/check-sizes.mjs): no source file over
// 400 lines and no function over 80, unless a comment says why it must be.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = path.join(root, 'scripts/check-sizes.mjs');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function check(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cni-node-sizes-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const r = spawnSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const body = (n: number): string => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
const fn = (name: string, lines: number, comment = ''): string => `${comment}export function ${name}(): void {\n${body(lines - 2)}\n}\n`;

describe('sizes: files ≤ 400 lines, functions ≤ 80, checked by npm run lint', () => {
  test('npm run lint runs the size check', () => {
    const lint = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['lint'] ?? '';
    assert.match(lint, /node scripts\/check-sizes\.mjs/);
  });

  test("the repository's src/ keeps to the sizes", () => {
    const r = spawnSync(process.execPath, [SCRIPT], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  test('a function of 80 lines passes; of 81, it fails, naming it; a "size:" comment above it lets it be', () => {
    assert.equal(check({ 'a.ts': fn('fits', 80) }).status, 0);
    const r = check({ 'b.ts': fn('tooLong', 81) });
    assert.equal(r.status, 1);
    assert.match(r.output, /b\.ts:1: function tooLong is 81 lines, over 80/);
    assert.equal(check({ 'c.ts': fn('table', 90, '// size: a declarative table\n') }).status, 0);
  });

  test('methods and arrow functions count too', () => {
    const method = `export class K {\n  m(): void {\n${body(85)}\n  }\n}\n`;
    assert.match(check({ 'd.ts': method }).output, /function m is 87 lines/);
    const arrow = `export const f = (): void => {\n${body(85)}\n};\n`;
    assert.match(check({ 'e.ts': arrow }).output, /function f is 87 lines/);
  });

  test('a file of 401 lines fails; one that says why near the top passes', () => {
    const long = Array.from({ length: 401 }, (_, i) => `export const c${i} = ${i};`).join('\n');
    const r = check({ 'f.ts': long });
    assert.equal(r.status, 1);
    assert.match(r.output, /f\.ts:1: 401 lines, over 400/);
    assert.equal(check({ 'g.ts': `// size: generated data\n${long}` }).status, 0);
  });
});
