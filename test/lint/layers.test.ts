// The layer check of `npm run lint` (dependency-cruiser with .dependency-cruiser.mjs):
// it passes on the repository's src/, and it rejects an import that goes up a layer
// or sideways, static, dynamic or type-only, in a small tree made for the test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CONFIG = path.join(root, '.dependency-cruiser.mjs');
const DEPCRUISE = path.join(root, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs');

function cruise(cwd: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [DEPCRUISE, '--config', CONFIG, 'src'], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A tree with one file per layer, each importing only what it may; `extra` adds or replaces files. */
function tree(extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cni-node-layers-'));
  dirs.push(dir);
  const files: Record<string, string> = {
    'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true }, include: ['src/**/*.ts'] }),
    'src/version.ts': "export const VERSION = '0';\n",
    'src/core/plan.ts': "import { VERSION } from '../version.js';\nexport const plan = (): string => VERSION;\n",
    'src/sys/read.ts':
      "import { readFileSync } from 'node:fs';\nimport { plan } from '../core/plan.js';\nexport const read = (f: string): string => readFileSync(f, 'utf8') + plan();\n",
    'src/node/record.ts': "import { read } from '../sys/read.js';\nexport const record = read;\n",
    'src/kube/client.ts': "import { read } from '../sys/read.js';\nexport const client = read;\n",
    'src/engine/engine.ts':
      "import { record } from '../node/record.js';\nexport const reconcile = async (): Promise<unknown> => [record, await import('../kube/client.js')];\n",
    'src/daemon/daemon.ts': "import { reconcile } from '../engine/engine.js';\nexport const loop = reconcile;\n",
    'src/cli/main.ts':
      "import { plan } from '../core/plan.js';\nexport const main = async (): Promise<unknown> => [plan, await import('../daemon/daemon.js')];\n",
    ...extra,
  };
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('layers: cli → daemon → engine → kube | node → sys → core, checked by npm run lint', () => {
  test('npm run lint runs the layer check on src/', () => {
    const lint = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['lint'] ?? '';
    assert.match(lint, /depcruise --config \.dependency-cruiser\.mjs src\b/);
  });

  test("the repository's src/ keeps to the layers", () => {
    const r = cruise(root);
    assert.equal(r.status, 0, r.output);
  });

  test('a tree that keeps to the layers passes (downward imports, skipping layers, dynamic ones)', () => {
    const r = cruise(tree());
    assert.equal(r.status, 0, r.output);
  });

  const rejected: Array<[string, Record<string, string>, RegExp]> = [
    [
      'core imports the engine (up a layer)',
      { 'src/core/plan.ts': "import { reconcile } from '../engine/engine.js';\nexport const plan = reconcile;\n" },
      /layer-core/,
    ],
    [
      'the engine loads the CLI with a dynamic import',
      { 'src/engine/engine.ts': "export const reconcile = async (): Promise<unknown> => import('../cli/main.js');\n" },
      /layer-engine/,
    ],
    ['the daemon imports the CLI', { 'src/daemon/daemon.ts': "import { main } from '../cli/main.js';\nexport const loop = main;\n" }, /layer-daemon/],
    [
      'kube imports node (sideways), type-only',
      { 'src/kube/client.ts': "import type { record } from '../node/record.js';\nexport type Client = typeof record;\n" },
      /layer-kube/,
    ],
    ['node imports kube (sideways)', { 'src/node/record.ts': "import { client } from '../kube/client.js';\nexport const record = client;\n" }, /layer-node/],
    ['sys imports node (up)', { 'src/sys/read.ts': "import { record } from '../node/record.js';\nexport const read = record;\n" }, /layer-sys/],
    [
      'core does I/O (node:fs)',
      { 'src/core/plan.ts': "import { readFileSync } from 'node:fs';\nexport const plan = (): string => readFileSync('/x', 'utf8');\n" },
      /core-is-pure/,
    ],
    [
      'an import that cannot be resolved',
      { 'src/engine/engine.ts': "export const reconcile = async (): Promise<unknown> => import('../daemon/nothing.js');\n" },
      /resolvable/,
    ],
    ['a source file outside every layer', { 'src/util.ts': "import { plan } from './core/plan.js';\nexport const util = plan;\n" }, /src-in-a-layer/],
  ];
  for (const [what, files, rule] of rejected) {
    test(`rejected: ${what}`, () => {
      const r = cruise(tree(files));
      assert.notEqual(r.status, 0, `expected a failure:\n${r.output}`);
      assert.match(r.output, rule);
    });
  }
});
