// `cni-node run` logs its effective settings once, at start, with credentials
// redacted: the real CLI, started as the DaemonSet starts it.
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { CLI, dirsEnv } from '../support/cli.js';
import { start } from '../support/process.js';
import { nodeTree, TempRoots } from '../support/tree.js';

const roots = new TempRoots();
after(() => roots.removeAll());

test('run: one "settings:" line at start, every setting with a value, the API server URL without its credentials', async () => {
  const plugins = path.join(await roots.make('cni-node-run-settings-img-'), 'bin');
  await mkdir(plugins);
  await writeFile(path.join(plugins, 'fake'), '#!/bin/sh\n');
  await chmod(path.join(plugins, 'fake'), 0o755);
  const t = await nodeTree(roots, 'cni-node-run-settings-', { plugins });
  const env = { ...dirsEnv(t), CNI_NODE_DEBOUNCE: '200ms', CNI_NODE_KUBECONFIG_SERVER: 'https://admin:hunter2@10.0.0.1:6443/?token=s3cret' };
  const p = start(CLI, ['run', '--plugins=fake'], env);
  try {
    await p.waitFor(/reconcile #1 done/);
    const lines = p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('settings: '));
    assert.equal(lines.length, 1, p.output());
    const line = lines[0] as string;
    for (const part of [
      `CNI_NODE_HOST_PLUGINS_DIR=${t.bin}`,
      'CNI_NODE_DEBOUNCE=200ms',
      'CNI_NODE_RECHECK=30s (default)',
      'CNI_NODE_KUBECONFIG_SERVER=https://REDACTED@10.0.0.1:6443/?REDACTED',
    ]) {
      assert.ok(line.includes(part), `${part} in ${line}`);
    }
    assert.doesNotMatch(p.output(), /hunter2|s3cret/);
    assert.ok(p.stdout().indexOf('settings: ') < p.stdout().indexOf('reconcile #1'), 'logged before the first reconcile');
  } finally {
    p.kill('SIGTERM');
    await p.exit;
  }
});
