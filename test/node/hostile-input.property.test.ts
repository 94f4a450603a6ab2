/**
 * Property test (issue 13, "Done when"): the record loader, the lock reader and the
 * template renderer, driven through the real engine (the code `apply`, `install`,
 * `--dry-run` and the daemon run) with generated hostile content in a sandbox:
 *
 *   - records whose entries name `../../../../outside/victim`, absolute paths,
 *     `..`, control characters, over-long and odd unicode names; garbage records,
 *     huge (sparse) records, and records that are FIFOs, directories or links;
 *   - locks with arbitrary content and stale or future mtimes, and locks that are
 *     FIFOs, directories, links to /dev/zero or to a file outside, huge files;
 *   - templates with pointers to hostile names, and templates and pointer targets
 *     that are FIFOs, directories, links out of the node dir, devices, huge files.
 *
 * For every generated case: nothing outside the node dirs changes (the files the
 * hostile names point at, the templates, the image's plugins), nothing but a
 * CniNodeError escapes (no internal error), and nothing blocks (a FIFO read would
 * hang the run: every run must finish within a few seconds).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { CniNodeError } from '../../src/core/errors.js';
import { reconcile } from '../../src/engine/engine.js';
import type { Dirs } from '../../src/core/contracts.js';
import { DirLock, LOCK_FILE } from '../../src/node/lock.js';
import { NodeRecord, RECORD_FILE } from '../../src/node/record.js';
import { capture, engineOptions, snapshot, tempDir } from './support.js';

const RUNS = { numRuns: Number(process.env['CNI_NODE_PROPERTY_RUNS'] ?? 300) };
/** A run that takes longer than this is taken as blocked (a FIFO read never returns). */
const HANG_MS = 10_000;

// ---- the sandbox ---------------------------------------------------------------------

interface Sandbox {
  root: string;
  outside: string;
  dirs: Dirs;
}

const PLUGINS = ['p1', 'p2', 'p3'];

async function sandbox(t: { after(fn: () => Promise<void>): void }): Promise<Sandbox> {
  const root = await tempDir(t, 'cni-node-property-');
  const outside = path.join(root, 'outside');
  // Node dirs four levels below root: "../../../../outside/victim" from either names root/outside/victim.
  const dirs: Dirs = {
    pluginsDir: path.join(root, 'image/opt/cni/bin'),
    hostPluginsDir: path.join(root, 'host/opt/cni/bin'),
    configsDir: path.join(root, 'image/etc/cni/net.d'),
    hostConfigsDir: path.join(root, 'host/etc/cni/net.d'),
    manifestsDir: path.join(root, 'image/manifests'),
  };
  await mkdir(path.join(outside, 'dir'), { recursive: true });
  for (const n of ['victim', 'secret', '10-calico.conflist']) await writeFile(path.join(outside, n), `${n}: must never change\n`);
  await writeFile(path.join(outside, 'dir', 'inner'), 'inner\n');
  await mkdir(dirs.pluginsDir, { recursive: true });
  for (const p of PLUGINS) await writeFile(path.join(dirs.pluginsDir, p), `#!/bin/sh\n# plugin ${p}\n`, { mode: 0o755 });
  return { root, outside, dirs };
}

/** What lies outside the node dirs and stays the same in every run: the outside files and the image's plugins. */
async function outsideState(s: Sandbox): Promise<unknown> {
  return {
    outside: await snapshot(s.outside),
    inner: await snapshot(path.join(s.outside, 'dir')),
    plugins: await snapshot(s.dirs.pluginsDir),
  };
}

// ---- hostile content -------------------------------------------------------------------

const hostileName = (s: Sandbox): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('p1', 'p2', 'c1.conf', 'c2.conflist', 'gone') },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '../../../../outside/victim',
        '../../../../outside/dir',
        path.join(s.outside, 'victim'),
        path.join(s.outside, 'dir'),
        '..',
        '.',
        '',
        '/',
        'a/b',
        '..\\..\\outside',
        'x\0y',
        'x\nplugin y: removed',
        '\u001b[31mred',
        '.cni-node-state',
        '.cni-node.lock',
        '.cni-node-tmp.p1.000000000000',
        'x'.repeat(229),
        'é'.repeat(128),
        '\ud800',
      ),
    },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  );

/** What to put where a file is read: regular content, or something that is not a small regular file. */
type Placement =
  | { kind: 'absent' }
  | { kind: 'text'; text: string }
  | { kind: 'fifo' }
  | { kind: 'dir' }
  | { kind: 'link-outside' }
  | { kind: 'link-zero' }
  | { kind: 'huge' }
  /** Over every text cap, but small enough for the test to hash when it compares the templates dir. */
  | { kind: 'big' };

const nonRegular: fc.Arbitrary<Placement> = fc.constantFrom<Placement>(
  { kind: 'fifo' },
  { kind: 'dir' },
  { kind: 'link-outside' },
  { kind: 'link-zero' },
  { kind: 'huge' },
);

async function place(s: Sandbox, file: string, p: Placement): Promise<void> {
  switch (p.kind) {
    case 'absent':
      return;
    case 'text':
      return writeFile(file, p.text);
    case 'fifo':
      execFileSync('mkfifo', [file]);
      return;
    case 'dir':
      await mkdir(file);
      return writeFile(path.join(file, 'x'), 'x');
    case 'link-outside':
      return symlink(path.join(s.outside, 'secret'), file);
    case 'link-zero':
      return symlink('/dev/zero', file);
    case 'huge':
      await writeFile(file, '{"format":"cni-node/record/v1","kinds":{}}');
      return truncate(file, 3 * 2 ** 30); // sparse: 3 GiB that take no disk space
    case 'big':
      await writeFile(file, '{"cniVersion":"0.4.0","name":"n","type":"p1"}');
      return truncate(file, 24 * 2 ** 20);
  }
}

const recordPlacement = (s: Sandbox, kind: string): fc.Arbitrary<Placement> =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.array(hostileName(s), { maxLength: 6 }).map((names): Placement => ({
        kind: 'text',
        text: JSON.stringify({ format: 'cni-node/record/v1', kinds: { [kind]: names.map((name) => ({ name })) } }),
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.record({ name: hostileName(s), stamp: fc.anything(), meta: fc.anything(), sha256: fc.anything() }, { requiredKeys: ['name'] }), {
          maxLength: 3,
        })
        .map((entries): Placement => ({ kind: 'text', text: JSON.stringify({ format: 'cni-node/record/v1', kinds: { [kind]: entries, manifest: entries } }) })),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }).map((text): Placement => ({ kind: 'text', text })) },
    { weight: 1, arbitrary: fc.constant<Placement>({ kind: 'absent' }) },
    { weight: 2, arbitrary: nonRegular },
  );

interface LockCase {
  placement: Placement;
  /** For a regular lock: its mtime relative to now (stale in the past, or in the future). */
  ageMs: number;
}

const lockCase: fc.Arbitrary<LockCase> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<LockCase>({ placement: { kind: 'absent' }, ageMs: 0 }) },
  {
    weight: 3,
    arbitrary: fc.record({
      placement: fc
        .oneof(fc.string({ unit: 'binary', maxLength: 100 }), fc.constantFrom('host pid 1 abcdef\n', '', '\n\n', 'root:x:0:0:root:/root:/bin/bash\n'))
        .map((text): Placement => ({ kind: 'text', text })),
      ageMs: fc.oneof(fc.integer({ min: 60_000, max: 10 ** 9 }), fc.integer({ min: -(10 ** 9), max: -60_000 })),
    }),
  },
  { weight: 2, arbitrary: nonRegular.map((placement) => ({ placement, ageMs: 0 })) },
);

interface TemplateCase {
  name: string;
  placement: Placement;
}

const POINTED = ['10-calico.conflist', '20-target.conf'];

const templateText = (s: Sandbox): fc.Arbitrary<string> =>
  fc
    .array(
      fc.oneof(
        fc.constantFrom(
          '{"cniVersion":"0.4.0","name":"n","type":"p1"',
          '}',
          ',"x":',
          '"a"',
          '\n',
          '__',
          '__10-calico.conflist__',
          '__20-target.conf__',
          '__c1.conf__',
          '__c2.conflist__',
        ),
        hostileName(s).map((n) => `__${n}__`),
        fc.string({ maxLength: 8 }),
      ),
      { maxLength: 8 },
    )
    .map((parts) => parts.join(''));

const templatePlacement = (s: Sandbox): fc.Arbitrary<Placement> =>
  fc.oneof(
    { weight: 4, arbitrary: templateText(s).map((text): Placement => ({ kind: 'text', text })) },
    { weight: 1, arbitrary: nonRegular.map((p): Placement => (p.kind === 'huge' ? { kind: 'big' } : p)) },
  );

const templates = (s: Sandbox): fc.Arbitrary<TemplateCase[]> =>
  fc.tuple(templatePlacement(s), templatePlacement(s)).map(([a, b]) => [
    { name: 'c1.conf', placement: a },
    { name: 'c2.conflist', placement: b },
  ]);

const pointerTargets: fc.Arbitrary<Placement[]> = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.constant<Placement>({ kind: 'text', text: '{"cniVersion":"0.4.0","name":"t","plugins":[{"type":"p2"}]}' }) },
    { weight: 1, arbitrary: fc.constant<Placement>({ kind: 'absent' }) },
    { weight: 2, arbitrary: nonRegular },
  ),
  { minLength: POINTED.length, maxLength: POINTED.length },
);

const request = fc.record({
  mode: fc.constantFrom('apply' as const, 'install' as const),
  dryRun: fc.boolean(),
  plugins: fc.subarray(PLUGINS),
  configs: fc.subarray(['c1.conf', 'c2.conflist']),
});

// ---- running it ------------------------------------------------------------------------

/** Runs fn; resolves with its CniNodeError if it threw one; anything else escaping, or a hang, fails. */
async function onlyCniNodeErrors(what: string, fn: () => Promise<unknown>): Promise<CniNodeError | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const blocked = new Error(`${what} did not finish within ${HANG_MS} ms: blocked on a read?`);
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(blocked), HANG_MS);
  });
  try {
    await Promise.race([fn(), hang]);
    return undefined;
  } catch (e) {
    if (e === blocked) throw e;
    if (e instanceof CniNodeError) {
      assert.doesNotMatch(e.message, /\n/, `${what}: a CniNodeError's message is one line: ${e.message}`);
      return e;
    }
    throw new Error(`${what}: an internal error escaped: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}

async function resetNode(s: Sandbox): Promise<void> {
  await rm(path.join(s.root, 'host'), { recursive: true, force: true });
  await rm(s.dirs.configsDir, { recursive: true, force: true });
  for (const d of [s.dirs.hostPluginsDir, s.dirs.hostConfigsDir, s.dirs.configsDir]) await mkdir(d, { recursive: true });
}

describe('hostile input: the record loader, the lock reader and the template renderer', () => {
  test('nothing outside the node dirs changes, no internal error escapes, nothing blocks', { timeout: 600_000 }, async (t) => {
    const s = await sandbox(t);
    const state = await outsideState(s);
    let refusals = 0;
    let successes = 0;
    await fc.assert(
      fc.asyncProperty(
        recordPlacement(s, 'plugin'),
        recordPlacement(s, 'config'),
        lockCase,
        templates(s),
        pointerTargets,
        request,
        async (pluginRecord, configRecord, lock, tpls, targets, req) => {
          await resetNode(s);
          await place(s, path.join(s.dirs.hostPluginsDir, RECORD_FILE), pluginRecord);
          await place(s, path.join(s.dirs.hostConfigsDir, RECORD_FILE), configRecord);
          await place(s, path.join(s.dirs.hostPluginsDir, LOCK_FILE), lock.placement);
          if (lock.placement.kind === 'text') {
            const when = new Date(Date.now() - lock.ageMs);
            await utimes(path.join(s.dirs.hostPluginsDir, LOCK_FILE), when, when);
          }
          for (const tc of tpls) await place(s, path.join(s.dirs.configsDir, tc.name), tc.placement);
          for (const [i, p] of targets.entries()) await place(s, path.join(s.dirs.hostConfigsDir, POINTED[i] as string), p);
          const templatesBefore = await snapshot(s.dirs.configsDir);

          const options = engineOptions(s.dirs, { dryRun: req.dryRun, signal: AbortSignal.timeout(HANG_MS / 2) });
          const lists = { plugin: { desired: req.plugins }, config: { desired: req.configs } };
          const e = await onlyCniNodeErrors('reconcile', () => reconcile({ mode: req.mode, lists }, options));
          if (e) refusals++;
          else successes++;
          // The record loader and the lock reader on their own, as the daemon and a second run use them.
          for (const dir of [s.dirs.hostPluginsDir, s.dirs.hostConfigsDir]) {
            await onlyCniNodeErrors('NodeRecord.load (read-only)', () => NodeRecord.load(dir, capture(), { readOnly: true }));
          }
          // The lock reader on its own, on a fresh copy of the hostile lock (the engine may have taken the first over).
          const lockDir = path.join(s.root, 'host/lock');
          await mkdir(lockDir);
          await place(s, path.join(lockDir, LOCK_FILE), lock.placement);
          if (lock.placement.kind === 'text') {
            const when = new Date(Date.now() - lock.ageMs);
            await utimes(path.join(lockDir, LOCK_FILE), when, when);
          }
          await onlyCniNodeErrors('DirLock.acquire', async () => {
            const l = await DirLock.acquire(lockDir, { timeoutMs: 500 });
            await l.release();
          });

          assert.deepEqual(await outsideState(s), state, 'something outside the node dirs changed');
          // The templates are outside the node dirs too: exactly as placed.
          assert.deepEqual(await snapshot(s.dirs.configsDir), templatesBefore, 'a template changed');
        },
      ),
      RUNS,
    );
    t.diagnostic(`${RUNS.numRuns} generated node states: ${successes} runs succeeded, ${refusals} refused with a CniNodeError`);
    assert.ok(successes > 0 && refusals > 0, 'the generators reach both outcomes');
  });
});
