import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ChangeFilter } from '../../src/daemon/changes.js';
import { intentOf, readRecord, snapshotTemplates } from '../../src/daemon/node-state.js';
import { reconcile } from '../../src/engine/engine.js';
import type { Dirs, Reporter } from '../../src/core/contracts.js';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

const quiet: Reporter = { item: () => undefined, info: () => undefined, warn: () => undefined };

async function tree(): Promise<Dirs> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'cni-node-changes-'));
  roots.push(root);
  const dirs: Dirs = {
    pluginsDir: path.join(root, 'image-bin'),
    hostPluginsDir: path.join(root, 'bin'),
    configsDir: path.join(root, 'templates'),
    hostConfigsDir: path.join(root, 'net.d'),
    manifestsDir: path.join(root, 'manifests'),
  };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  await writeFile(path.join(dirs.pluginsDir, 'bridge'), '#!/bin/sh\necho bridge\n', { mode: 0o755 });
  await writeFile(path.join(dirs.hostConfigsDir, '10-calico.conflist'), '{"cniVersion":"0.4.0","name":"k8s","plugins":[{"type":"bridge"}]}');
  await writeFile(path.join(dirs.configsDir, '05-multus.conf'), '{"cniVersion":"0.4.0","name":"multus","type":"bridge","delegates":[__10-calico.conflist__]}');
  return dirs;
}

async function install(dirs: Dirs): Promise<ChangeFilter> {
  const filter = new ChangeFilter(dirs);
  filter.setSnapshot(await snapshotTemplates(dirs.configsDir, dirs.hostConfigsDir, ['05-multus.conf']));
  await reconcile(
    { mode: 'apply', lists: { plugin: { desired: ['bridge'] }, config: { desired: ['05-multus.conf'] } } },
    { dirs, dryRun: false, waitMs: 0, tolerateMissingPointers: true, env: {}, reporter: quiet },
  );
  const p = await readRecord(dirs.hostPluginsDir);
  const c = await readRecord(dirs.hostConfigsDir);
  filter.setManaged([
    ...(p?.entries('plugin') ?? []).map((entry) => ({ kind: 'plugin' as const, entry })),
    ...(c?.entries('config') ?? []).map((entry) => ({ kind: 'config' as const, entry })),
  ]);
  return filter;
}

describe('which file events lead to a reconcile', () => {
  test("cni-node's own writes, its record and unrelated files do not", async () => {
    const dirs = await tree();
    const f = await install(dirs);
    await writeFile(path.join(dirs.hostPluginsDir, 'other'), 'x');
    await writeFile(path.join(dirs.hostConfigsDir, '99-other.conf'), '{}');
    await writeFile(path.join(dirs.configsDir, 'unrelated.conf'), '{}');
    assert.deepEqual(await f.nodePlugins(), []);
    assert.deepEqual(await f.nodeConfigs(), []);
    assert.deepEqual(await f.templates(), []);
  });

  test('a deleted, replaced or chmod-ed installed file is a repair', async () => {
    const dirs = await tree();
    const f = await install(dirs);
    await unlink(path.join(dirs.hostPluginsDir, 'bridge'));
    assert.deepEqual(await f.nodePlugins(), [{ source: 'repair', reason: 'plugin bridge, installed by cni-node, was deleted on the node' }]);
    await chmod(path.join(dirs.hostConfigsDir, '05-multus.conf'), 0o600);
    assert.deepEqual(await f.nodeConfigs(), [{ source: 'repair', reason: 'config 05-multus.conf, installed by cni-node, was changed on the node' }]);
  });

  test('a held item is not repaired', async () => {
    const dirs = await tree();
    const held = new Set<string>(['plugin bridge']);
    const f0 = await install(dirs);
    const f = new ChangeFilter(dirs, (k) => held.has(k));
    const p = await readRecord(dirs.hostPluginsDir);
    f.setManaged((p?.entries('plugin') ?? []).map((entry) => ({ kind: 'plugin' as const, entry })));
    await unlink(path.join(dirs.hostPluginsDir, 'bridge'));
    assert.deepEqual(await f.nodePlugins(), []);
    assert.equal((await f0.nodePlugins()).length, 1);
  });

  test('a pointer target that changes, disappears or appears; a template that changes', async () => {
    const dirs = await tree();
    const f = await install(dirs);
    const calico = path.join(dirs.hostConfigsDir, '10-calico.conflist');
    await writeFile(calico, '{"cniVersion":"0.4.0","name":"k8s-2","plugins":[{"type":"bridge"}]}');
    assert.deepEqual(await f.nodeConfigs(), [{ source: 'pointer', reason: 'node file 10-calico.conflist changed (pointed to by 05-multus.conf)' }]);
    await unlink(calico);
    assert.match((await f.nodeConfigs())[0]?.reason ?? '', /was removed/);
    f.setSnapshot(await snapshotTemplates(dirs.configsDir, dirs.hostConfigsDir, ['05-multus.conf']));
    await writeFile(calico, '{}');
    assert.match((await f.nodeConfigs())[0]?.reason ?? '', /appeared/);
    await writeFile(path.join(dirs.configsDir, '05-multus.conf'), '{"cniVersion":"0.4.0","name":"multus2","type":"bridge"}');
    assert.deepEqual(await f.templates(), [{ source: 'template', reason: `template 05-multus.conf changed in ${dirs.configsDir}` }]);
  });

  test('intent: a plugin is identified by its image file, a config by its digest', async () => {
    const dirs = await tree();
    await install(dirs);
    const p = (await readRecord(dirs.hostPluginsDir))?.entries('plugin')[0];
    const c = (await readRecord(dirs.hostConfigsDir))?.entries('config')[0];
    assert.ok(intentOf('plugin', p));
    assert.match(intentOf('config', c) ?? '', /^[0-9a-f]{64}$/);
    assert.equal(intentOf('config', undefined), undefined);
  });
});
