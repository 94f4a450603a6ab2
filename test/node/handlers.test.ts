// The plugin and config handlers (src/node/plugins.ts, configs.ts), driven the way
// every command drives them: through the engine's reconcile().
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import type { ListSpec } from '../../src/core/lists.js';
import type { Kind, Mode } from '../../src/core/plan.js';
import { reconcile } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/core/contracts.js';
import { TEMP_PREFIX } from '../../src/node/atomic.js';
import { LOCK_FILE } from '../../src/node/lock.js';
import { RECORD_FILE } from '../../src/node/record.js';
import { engineOptions, smallTmpfs, snapshot, tick, tmpfsUnavailableReason, unitTree, type UnitTree } from './support.js';

type Lists = Partial<Record<Kind, ListSpec>>;

const go = (mode: Mode, lists: Lists, options: EngineOptions) => reconcile({ mode, lists }, options);
const plugins = (desired: string[], current?: string[]): Lists => ({ plugin: current ? { desired, current } : { desired } });
const configs = (desired: string[], current?: string[]): Lists => ({ config: current ? { desired, current } : { desired } });
const results = (o: { reports: { kind: string; name: string; result: string }[] }) => o.reports.map((r) => `${r.kind} ${r.name}: ${r.result}`);
const visible = async (dir: string) => (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();

/** Fake plugin binaries in the image dir (the handlers never execute them). */
async function fakePlugins(t: UnitTree, names: string[], size = 4096): Promise<void> {
  for (const n of names) await writeFile(path.join(t.pluginsDir, n), Buffer.alloc(size, n), { mode: 0o755 });
}

function cniError(kind: string, ...res: RegExp[]) {
  return (e: unknown) => {
    assert.ok(e instanceof CniNodeError, String(e));
    assert.equal(e.kind, kind, e.message);
    const text = e.describe();
    for (const re of res) assert.match(text, re);
    return true;
  };
}

describe('plugins through reconcile()', () => {
  test('install: copies in order, mode 0755, equal bytes, recorded', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge', 'host-local', 'macvlan']);
    const o = engineOptions(tree);
    const r = await go('install', plugins(['macvlan', 'bridge']), o);
    assert.deepEqual(results(r), ['plugin macvlan: installed', 'plugin bridge: installed']);
    assert.equal(r.changed, 2);
    assert.deepEqual(
      o.reporter.items.map((i) => i.name),
      ['macvlan', 'bridge'],
      'reported as they happen',
    );
    for (const n of ['macvlan', 'bridge']) {
      assert.deepEqual(await readFile(path.join(tree.hostPluginsDir, n)), await readFile(path.join(tree.pluginsDir, n)));
      assert.equal((await lstat(path.join(tree.hostPluginsDir, n))).mode & 0o7777, 0o755);
    }
    assert.deepEqual((await readdir(tree.hostPluginsDir)).sort(), [RECORD_FILE, 'bridge', 'macvlan']);
    const rec = JSON.parse(await readFile(path.join(tree.hostPluginsDir, RECORD_FILE), 'utf8')) as { kinds: { plugin: { name: string }[] } };
    assert.deepEqual(
      rec.kinds.plugin.map((e) => e.name),
      ['macvlan', 'bridge'],
    );
  });

  test('a recorded name whose file is gone (intent of a killed run) leaves the record when no longer desired', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge', 'vlan']);
    const o = engineOptions(tree);
    await go('install', plugins(['bridge', 'vlan']), o);
    // As a run killed after recording its intent but before the rename leaves it.
    await rm(path.join(tree.hostPluginsDir, 'vlan'));
    const r = await go('apply', plugins(['bridge']), o);
    assert.deepEqual(results(r), ['plugin bridge: unchanged', 'plugin vlan: absent']);
    const rec = JSON.parse(await readFile(path.join(tree.hostPluginsDir, RECORD_FILE), 'utf8')) as { kinds: { plugin: { name: string }[] } };
    assert.deepEqual(
      rec.kinds.plugin.map((e) => e.name),
      ['bridge'],
      'the record agrees with the node again',
    );
  });

  test('a no-op run writes nothing at all: no lock file, no record rewrite, the dir untouched', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge', 'vlan']);
    await go('install', plugins(['bridge', 'vlan']), engineOptions(tree));
    const before = await snapshot(tree.hostPluginsDir);
    await tick();
    const r = await go('install', plugins(['bridge', 'vlan']), engineOptions(tree));
    assert.deepEqual(results(r), ['plugin bridge: unchanged', 'plugin vlan: unchanged']);
    assert.equal(r.changed, 0);
    const a = await go('apply', plugins(['bridge', 'vlan']), engineOptions(tree));
    assert.equal(a.changed, 0);
    assert.deepEqual(await snapshot(tree.hostPluginsDir), before);
  });

  test('every bad item is reported and nothing changes (validation before change)', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge', 'loopback']);
    await mkdir(path.join(tree.hostPluginsDir, 'loopback'));
    const before = await snapshot(tree.hostPluginsDir);
    await assert.rejects(
      go('install', plugins(['bridge', 'missing-one', 'loopback', 'missing-two']), engineOptions(tree)),
      cniError('invalid', /3 problems/, /missing-one/, /missing-two/, /loopback is a directory/),
    );
    assert.deepEqual(await snapshot(tree.hostPluginsDir), before);
  });

  test('a near miss is suggested ("did you mean")', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['multus-cni', 'macvlan']);
    await assert.rejects(
      go('install', plugins(['multus']), engineOptions(tree)),
      cniError('invalid', /multus is not in the plugins dir/, /did you mean multus-cni/),
    );
  });

  test('apply: additions in desired order first, then removals in reverse of current order', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b', 'c', 'd', 'e']);
    await go('install', plugins(['a', 'b', 'c']), engineOptions(tree));
    const r = await go('apply', plugins(['e', 'b', 'd'], ['a', 'b', 'c']), engineOptions(tree));
    assert.deepEqual(results(r), ['plugin e: installed', 'plugin b: unchanged', 'plugin d: installed', 'plugin c: removed', 'plugin a: removed']);
    assert.deepEqual(await visible(tree.hostPluginsDir), ['b', 'd', 'e']);
  });

  test('apply without :Current uses the record; a file cni-node did not install is never removed', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge', 'ipvlan', 'macvlan']);
    await go('install', plugins(['bridge', 'ipvlan']), engineOptions(tree));
    await writeFile(path.join(tree.hostPluginsDir, 'flannel'), 'someone else', { mode: 0o755 });
    const r = await go('apply', plugins(['macvlan']), engineOptions(tree));
    assert.deepEqual(results(r), ['plugin macvlan: installed', 'plugin ipvlan: removed', 'plugin bridge: removed']);
    assert.deepEqual(await visible(tree.hostPluginsDir), ['flannel', 'macvlan']);
  });

  test('uninstall: reverse order; absent items say so', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b']);
    await go('install', plugins(['a', 'b']), engineOptions(tree));
    const r = await go('uninstall', plugins(['a', 'b', 'zzz']), engineOptions(tree));
    assert.deepEqual(results(r), ['plugin zzz: absent', 'plugin b: removed', 'plugin a: removed']);
    assert.deepEqual(await visible(tree.hostPluginsDir), []);
    // Nothing recorded any more: no record file either, the dir is as before the install.
    assert.deepEqual(await readdir(tree.hostPluginsDir), []);
  });

  test('a new image version, a node file edited in place, a wrong mode: each is rewritten ("updated")', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b', 'c', 'd']);
    await go('install', plugins(['a', 'b', 'c', 'd']), engineOptions(tree));
    await writeFile(path.join(tree.pluginsDir, 'a'), Buffer.alloc(4096, 'A')); // image upgrade, same size
    await writeFile(path.join(tree.hostPluginsDir, 'b'), Buffer.alloc(4096, 'B')); // tampered on the node
    await chmod(path.join(tree.hostPluginsDir, 'c'), 0o644);
    const r = await go('install', plugins(['a', 'b', 'c', 'd']), engineOptions(tree));
    assert.deepEqual(results(r), ['plugin a: updated', 'plugin b: updated', 'plugin c: updated', 'plugin d: unchanged']);
    for (const n of ['a', 'b', 'c', 'd']) {
      assert.deepEqual(await readFile(path.join(tree.hostPluginsDir, n)), await readFile(path.join(tree.pluginsDir, n)), n);
      assert.equal((await lstat(path.join(tree.hostPluginsDir, n))).mode & 0o7777, 0o755, n);
    }
  });

  test('an identical file already on the node is adopted without a write', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge']);
    await writeFile(path.join(tree.hostPluginsDir, 'bridge'), await readFile(path.join(tree.pluginsDir, 'bridge')), { mode: 0o755 });
    const before = await lstat(path.join(tree.hostPluginsDir, 'bridge'));
    const r = await go('install', plugins(['bridge']), engineOptions(tree));
    assert.equal(r.reports[0]?.result, 'unchanged');
    assert.match(r.reports[0]?.detail ?? '', /now managed by cni-node/);
    const after = await lstat(path.join(tree.hostPluginsDir, 'bridge'));
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
    const again = await go('install', plugins(['bridge']), engineOptions(tree));
    assert.equal(again.reports[0]?.detail, undefined, 'recorded now');
  });

  test('dry run: reports what would happen, changes nothing', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b', 'c']);
    await go('install', plugins(['a', 'b']), engineOptions(tree));
    const before = await snapshot(tree.hostPluginsDir);
    await tick();
    const r = await go('apply', plugins(['c', 'a']), engineOptions(tree, { dryRun: true }));
    assert.deepEqual(results(r), ['plugin c: installed', 'plugin a: unchanged', 'plugin b: removed']);
    assert.ok(r.reports.every((x) => x.dryRun === true));
    assert.deepEqual(await snapshot(tree.hostPluginsDir), before);
  });

  test('a corrupt record: a warning, and apply removes nothing', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b']);
    await go('install', plugins(['a', 'b']), engineOptions(tree));
    await writeFile(path.join(tree.hostPluginsDir, RECORD_FILE), 'garbage');
    const o = engineOptions(tree);
    const r = await go('apply', plugins(['a']), o);
    assert.deepEqual(results(r), ['plugin a: unchanged']);
    assert.deepEqual(await visible(tree.hostPluginsDir), ['a', 'b']);
    assert.ok(
      o.reporter.warnings.some((w) => /unreadable/.test(w)),
      o.reporter.warnings.join('\n'),
    );
  });

  test('a corrupt record and nothing else to do still warns', {}, async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a']);
    await go('install', plugins(['a']), engineOptions(tree));
    await writeFile(path.join(tree.hostPluginsDir, RECORD_FILE), 'garbage');
    const o = engineOptions(tree);
    const r = await go('apply', plugins([]), o);
    assert.deepEqual(results(r), []);
    assert.deepEqual(await visible(tree.hostPluginsDir), ['a'], 'nothing removed');
    assert.ok(
      o.reporter.warnings.some((w) => /unreadable/.test(w)),
      `a warning about the record: ${JSON.stringify(o.reporter.warnings)}`,
    );
  });

  test('temporary files an interrupted run left are removed by the next run that writes', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b']);
    await writeFile(path.join(tree.hostPluginsDir, `${TEMP_PREFIX}a.123abc`), 'half a plugin');
    const o = engineOptions(tree);
    await go('install', plugins(['a', 'b']), o);
    assert.deepEqual(
      (await readdir(tree.hostPluginsDir)).filter((n) => n.startsWith(TEMP_PREFIX)),
      [],
    );
    assert.ok(
      o.reporter.infos.some((m) => /temporary file/.test(m)),
      o.reporter.infos.join('\n'),
    );
  });

  test('temporary files an interrupted run left are removed by the next run even when it has nothing else to do', {}, async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a']);
    await go('install', plugins(['a']), engineOptions(tree));
    await writeFile(path.join(tree.hostPluginsDir, `${TEMP_PREFIX}a.123abc`), 'half a plugin');
    await go('install', plugins(['a']), engineOptions(tree));
    assert.deepEqual(
      (await readdir(tree.hostPluginsDir)).filter((n) => n.startsWith(TEMP_PREFIX)),
      [],
    );
  });

  test('concurrent runs on the same dirs take turns: no lost record update, no lock left', async (t) => {
    const tree = await unitTree(t);
    const names = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
    await fakePlugins(tree, names, 64 * 1024);
    await Promise.all([
      go('install', plugins(['p1', 'p2']), engineOptions(tree)),
      go('install', plugins(['p3', 'p4']), engineOptions(tree)),
      go('install', plugins(['p5', 'p6']), engineOptions(tree)),
    ]);
    assert.deepEqual(await visible(tree.hostPluginsDir), names);
    const rec = JSON.parse(await readFile(path.join(tree.hostPluginsDir, RECORD_FILE), 'utf8')) as { kinds: { plugin: { name: string }[] } };
    assert.deepEqual(rec.kinds.plugin.map((e) => e.name).sort(), names);
    assert.ok(!(await readdir(tree.hostPluginsDir)).includes(LOCK_FILE));
    // The record is right: apply with an empty list removes all six.
    const r = await go('apply', plugins([]), engineOptions(tree));
    assert.equal(r.changed, 6);
    assert.deepEqual(await visible(tree.hostPluginsDir), []);
  });

  test('an aborted run stops before changing anything', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a', 'b']);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(go('install', plugins(['a', 'b']), engineOptions(tree, { signal: ac.signal })), cniError('interrupted', /stopped before/));
    assert.deepEqual(await visible(tree.hostPluginsDir), []);
    assert.deepEqual(
      (await readdir(tree.hostPluginsDir)).filter((n) => n.startsWith(TEMP_PREFIX) || n === LOCK_FILE),
      [],
    );
  });

  test('the node plugins dir missing: says to mount it', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['a']);
    const o = engineOptions({ ...tree, hostPluginsDir: path.join(tree.root, 'nope') });
    await assert.rejects(go('install', plugins(['a']), o), cniError('missing', /nope does not exist/, /mount/));
  });

  test(
    'disk full mid-install: a clear error naming a file, old versions intact, no temporary files',
    {
      skip: tmpfsUnavailableReason(),
    },
    async (t) => {
      const tree = await unitTree(t);
      const small = await smallTmpfs(t, 256);
      const o = (over: Partial<EngineOptions> = {}) => engineOptions({ ...tree, hostPluginsDir: small }, over);
      await fakePlugins(tree, ['a', 'b', 'c', 'd', 'e', 'f'], 10 * 1024);
      await go('install', plugins(['a', 'b']), o());
      const old = await readFile(path.join(small, 'a'));
      // The new image's plugins no longer fit.
      for (const n of ['a', 'b', 'c', 'd', 'e', 'f']) await writeFile(path.join(tree.pluginsDir, n), Buffer.alloc(100 * 1024, `${n}2`));
      await assert.rejects(go('install', plugins(['a', 'b', 'c', 'd', 'e', 'f']), o()), cniError('io', /disk is full/));
      await tick(200); // let any staging still in flight finish
      const left = await readdir(small);
      assert.deepEqual(
        left.filter((n) => n.startsWith(TEMP_PREFIX)),
        [],
        `no temporary files left: ${left.join(', ')}`,
      );
      const a = await readFile(path.join(small, 'a'));
      assert.ok(a.equals(old) || a.equals(await readFile(path.join(tree.pluginsDir, 'a'))), 'a is the complete old or new version');
    },
  );
});

describe('configs through reconcile()', () => {
  const PRIMARY = '{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"calico"}]}';

  test('renders pointers from the node configs dir, mode 0644, recorded', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.hostConfigsDir, '10-calico.conflist'), PRIMARY);
    await writeFile(
      path.join(tree.configsDir, '05-multus.conf'),
      '{"cniVersion":"1.0.0","name":"multus","type":"multus","delegates":[__10-calico.conflist__]}',
    );
    const r = await go('install', configs(['05-multus.conf']), engineOptions(tree));
    assert.deepEqual(results(r), ['config 05-multus.conf: installed']);
    const file = path.join(tree.hostConfigsDir, '05-multus.conf');
    assert.equal(await readFile(file, 'utf8'), `{"cniVersion":"1.0.0","name":"multus","type":"multus","delegates":[${PRIMARY}]}`);
    assert.equal((await lstat(file)).mode & 0o7777, 0o644);
    const rec = JSON.parse(await readFile(path.join(tree.hostConfigsDir, RECORD_FILE), 'utf8')) as { kinds: { config: { name: string }[] } };
    assert.deepEqual(
      rec.kinds.config.map((e) => e.name),
      ['05-multus.conf'],
    );
  });

  test('unchanged content is not rewritten; changed content is', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, '10-a.conf'), '{"cniVersion":"1.0.0","name":"a","type":"bridge"}');
    await go('install', configs(['10-a.conf']), engineOptions(tree));
    const before = await snapshot(tree.hostConfigsDir);
    await tick();
    const r = await go('install', configs(['10-a.conf']), engineOptions(tree));
    assert.deepEqual(results(r), ['config 10-a.conf: unchanged']);
    assert.deepEqual(await snapshot(tree.hostConfigsDir), before);
    await writeFile(path.join(tree.hostConfigsDir, '10-a.conf'), '{"edited":true}');
    const r2 = await go('install', configs(['10-a.conf']), engineOptions(tree));
    assert.deepEqual(results(r2), ['config 10-a.conf: updated']);
    assert.match(await readFile(path.join(tree.hostConfigsDir, '10-a.conf'), 'utf8'), /"name":"a"/);
  });

  test('a pointer to a template rendered in the same run gets the new content', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.hostConfigsDir, 'inner.conflist'), '{"stale":true}');
    await writeFile(path.join(tree.configsDir, 'inner.conflist'), PRIMARY);
    await writeFile(path.join(tree.configsDir, '00-outer.conflist'), '__inner.conflist__');
    await go('install', configs(['00-outer.conflist', 'inner.conflist']), engineOptions(tree));
    assert.equal(await readFile(path.join(tree.hostConfigsDir, '00-outer.conflist'), 'utf8'), PRIMARY);
  });

  test('missing pointer target: an error naming it; with tolerateMissingPointers it is "waiting" and the rest is written', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, '05-multus.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}');
    await writeFile(path.join(tree.configsDir, 'other.txt'), 'plain');
    const before = await snapshot(tree.hostConfigsDir);
    await assert.rejects(
      go('install', configs(['other.txt', '05-multus.conf']), engineOptions(tree)),
      cniError('missing', /05-multus\.conf/, /__10-calico\.conflist__/),
    );
    assert.deepEqual(await snapshot(tree.hostConfigsDir), before);

    const r = await go('install', configs(['other.txt', '05-multus.conf']), engineOptions(tree, { tolerateMissingPointers: true }));
    assert.deepEqual(results(r), ['config other.txt: installed', 'config 05-multus.conf: waiting']);
    assert.deepEqual([...r.waiting], [['05-multus.conf', ['10-calico.conflist']]]);
    assert.deepEqual(await visible(tree.hostConfigsDir), ['other.txt']);
  });

  test('waitMs: a target that appears while waiting is used', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, '05-m.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-p.conflist__]}');
    setTimeout(() => void writeFile(path.join(tree.hostConfigsDir, '10-p.conflist'), PRIMARY), 300);
    const started = Date.now();
    const r = await go('install', configs(['05-m.conf']), engineOptions(tree, { waitMs: 3000 }));
    assert.deepEqual(results(r), ['config 05-m.conf: installed']);
    assert.ok(Date.now() - started < 2000, 'stopped waiting once it appeared');
  });

  test('waitMs: the wait is announced (an operator watching the logs sees why nothing happens)', {}, async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, '05-m.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-p.conflist__]}');
    setTimeout(() => void writeFile(path.join(tree.hostConfigsDir, '10-p.conflist'), PRIMARY), 300);
    const o = engineOptions(tree, { waitMs: 3000 });
    await go('install', configs(['05-m.conf']), o);
    assert.ok(
      o.reporter.infos.some((m) => /waiting up to 3s for 10-p\.conflist/.test(m)),
      `infos: ${JSON.stringify(o.reporter.infos)}`,
    );
  });

  test('pointer cycles and self-pointers are errors; nothing written', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, 'a.conf'), '__b.conf__');
    await writeFile(path.join(tree.configsDir, 'b.conf'), '__a.conf__');
    await writeFile(path.join(tree.configsDir, 'self.conf'), '{"x": __self.conf__}');
    await assert.rejects(go('install', configs(['a.conf', 'b.conf', 'self.conf']), engineOptions(tree)), cniError('invalid', /cycle/, /itself/));
    assert.deepEqual(await readdir(tree.hostConfigsDir), []);
  });

  test('a pointer target that is a link out of the node configs dir is refused; a link inside it is followed', async (t) => {
    const tree = await unitTree(t);
    const secret = path.join(tree.root, 'secret.txt');
    await writeFile(secret, '"top secret"');
    await symlink(secret, path.join(tree.hostConfigsDir, 'evil.conflist'));
    await writeFile(path.join(tree.hostConfigsDir, 'real.txt'), '"eth0"');
    await symlink('real.txt', path.join(tree.hostConfigsDir, 'alias.txt'));
    await writeFile(path.join(tree.configsDir, 'x.txt'), 'leak: __evil.conflist__');
    await writeFile(path.join(tree.configsDir, 'y.txt'), 'ok: __alias.txt__');
    await assert.rejects(go('install', configs(['x.txt']), engineOptions(tree)), cniError('invalid', /outside/));
    assert.ok(!(await readdir(tree.hostConfigsDir)).includes('x.txt'));
    await go('install', configs(['y.txt']), engineOptions(tree));
    assert.equal(await readFile(path.join(tree.hostConfigsDir, 'y.txt'), 'utf8'), 'ok: "eth0"');
  });

  test('invalid network configs after rendering are refused with file and reason', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, '10-bad.conflist'), '{\n "cniVersion": "1.0.0",\n "name": "x",\n "plugins": [ { "type": "bridge", } ]\n}\n');
    await writeFile(path.join(tree.configsDir, '20-notype.conf'), '{"cniVersion":"1.0.0","name":"x"}');
    await writeFile(path.join(tree.configsDir, '30-nover.json'), '{"name":"x","type":"bridge"}');
    await writeFile(path.join(tree.configsDir, 'notes.txt'), '{ not json, and fine }');
    await assert.rejects(
      go('install', configs(['notes.txt', '10-bad.conflist', '20-notype.conf', '30-nover.json']), engineOptions(tree)),
      cniError('invalid', /10-bad\.conflist[^\n]*\n[^\n]*line 4/, /20-notype\.conf[^\n]*\n[^\n]*"type"/, /30-nover\.json[^\n]*\n[^\n]*"cniVersion"/),
    );
    assert.deepEqual(await readdir(tree.hostConfigsDir), []);
  });

  test('every kind of JSON syntax error gets a line and column', {}, async (t) => {
    const tree = await unitTree(t);
    const cases: [string, string, number][] = [
      ['10-trailing.conflist', '{\n "cniVersion": "1.0.0",\n "name": "x",\n "plugins": [ { "type": "bridge" }, ]\n}\n', 4],
      ['20-empty-ptr.conflist', '{\n "cniVersion": "1.0.0",\n "name": "x",\n\n "plugins": [ __empty.txt__, { "type": "bridge" } ]\n}\n', 5],
      ['30-truncated.conf', '{\n "cniVersion": "1.0.0",\n "name": "x", "type": "bridge"\n', 4],
    ];
    await writeFile(path.join(tree.hostConfigsDir, 'empty.txt'), '');
    for (const [name, text, line] of cases) {
      await writeFile(path.join(tree.configsDir, name), text);
      await assert.rejects(go('install', configs([name]), engineOptions(tree)), (e: unknown) => {
        assert.ok(e instanceof CniNodeError);
        const msg = e.describe();
        assert.match(msg, new RegExp(`line ${line}, column \\d+`), msg);
        assert.ok(msg.split('\n').length <= 3, `one short line per problem: ${msg}`);
        return true;
      });
    }
  });

  test('warns when a config names a plugin type that is not in the node plugins dir', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.hostPluginsDir, 'bridge'), 'x', { mode: 0o755 });
    await writeFile(path.join(tree.configsDir, '10-a.conflist'), '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},{"type":"tuning"}]}');
    const o = engineOptions(tree);
    await go('install', configs(['10-a.conflist']), o);
    assert.equal(o.reporter.warnings.length, 1, o.reporter.warnings.join('\n'));
    assert.match(o.reporter.warnings[0] as string, /10-a\.conflist.*tuning/);
    assert.doesNotMatch(o.reporter.warnings[0] as string, /bridge,/);
  });

  test('plugins and configs in one run: plugins first; uninstall configs first', async (t) => {
    const tree = await unitTree(t);
    await fakePlugins(tree, ['bridge']);
    await writeFile(path.join(tree.configsDir, '10-a.conf'), '{"cniVersion":"1.0.0","name":"a","type":"bridge"}');
    const o = engineOptions(tree);
    const r = await go('install', { ...configs(['10-a.conf']), ...plugins(['bridge']) }, o);
    assert.deepEqual(results(r), ['plugin bridge: installed', 'config 10-a.conf: installed']);
    assert.deepEqual(o.reporter.warnings, [], 'the plugin was there before the config');
    const u = await go('uninstall', { ...configs(['10-a.conf']), ...plugins(['bridge']) }, engineOptions(tree));
    assert.deepEqual(results(u), ['config 10-a.conf: removed', 'plugin bridge: removed']);
  });

  test('apply of configs without :Current removes only recorded ones; dry run changes nothing', async (t) => {
    const tree = await unitTree(t);
    for (const n of ['05-a.conf', '10-b.conf'])
      await writeFile(path.join(tree.configsDir, n), `{"cniVersion":"1.0.0","name":"n${n.slice(0, 2)}","type":"bridge"}`);
    await go('install', configs(['05-a.conf', '10-b.conf']), engineOptions(tree));
    await writeFile(path.join(tree.hostConfigsDir, '10-calico.conflist'), PRIMARY);
    const before = await snapshot(tree.hostConfigsDir);
    await tick();
    const dry = await go('apply', configs(['10-b.conf']), engineOptions(tree, { dryRun: true }));
    assert.deepEqual(results(dry), ['config 10-b.conf: unchanged', 'config 05-a.conf: removed']);
    assert.deepEqual(await snapshot(tree.hostConfigsDir), before);
    const r = await go('apply', configs(['10-b.conf']), engineOptions(tree));
    assert.deepEqual(results(r), ['config 10-b.conf: unchanged', 'config 05-a.conf: removed']);
    assert.deepEqual(await visible(tree.hostConfigsDir), ['10-b.conf', '10-calico.conflist']);
  });

  test('a template that is missing, binary, or too large is refused', async (t) => {
    const tree = await unitTree(t);
    await writeFile(path.join(tree.configsDir, 'bin.conf'), Buffer.from([0x7b, 0, 1, 2, 0x7d]));
    await writeFile(path.join(tree.configsDir, 'huge.txt'), Buffer.alloc(2 * 1024 * 1024, 'a'));
    await assert.rejects(
      go('install', configs(['nope.conf', 'bin.conf', 'huge.txt']), engineOptions(tree)),
      cniError('invalid', /nope\.conf is not in the configs dir/, /bin\.conf contains NUL/, /huge\.txt is 2\.0 MiB/),
    );
    assert.deepEqual(await readdir(tree.hostConfigsDir), []);
  });
});
