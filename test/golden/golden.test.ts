// Golden files: what cni-node renders from the seed's examples, kept in
// test/golden/*.golden so that a change to rendering shows up as a readable diff in
// review. A test fails when the output differs from its file; to accept a change on
// purpose, run the tests with UPDATE_GOLDEN=1 (the files are rewritten) and commit
// the diff with the change that caused it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { renderKubeconfig } from '../../src/daemon/kubeconfig-render.js';
import { renderManifest } from '../../src/kube/manifests.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const GOLDEN = path.join(root, 'test', 'golden');
const CLI = path.join(root, 'bin', 'cni-node');
const update = process.env['UPDATE_GOLDEN'] === '1';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Compares `actual` with test/golden/<name>; with UPDATE_GOLDEN=1, writes it there instead. */
function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (update) {
    writeFileSync(file, actual);
    return;
  }
  assert.ok(existsSync(file), `${file} is missing: run the tests with UPDATE_GOLDEN=1 to write it, and review it`);
  assert.equal(actual, readFileSync(file, 'utf8'), `the rendering differs from ${path.relative(root, file)}; if the change is meant, run with UPDATE_GOLDEN=1 and commit the diff`);
}

/** The data of the ConfigMap `name` in deploy/<file>. */
function configMapData(file: string, name: string): Record<string, string> {
  for (const doc of parseAllDocuments(readFileSync(path.join(root, 'deploy', file), 'utf8'))) {
    const o = doc.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> } | null;
    if (o?.kind === 'ConfigMap' && o.metadata?.name === name) return o.data ?? {};
  }
  assert.fail(`no ConfigMap ${name} in deploy/${file}`);
}

describe('golden files: the seed examples as cni-node renders them', () => {
  for (const [file, cm] of [
    ['multus-cni-config.yaml', 'multus-cni'],
    ['multus-cni-simple.yaml', 'multus-cni-simple'],
  ] as const) {
    test(`${file}: the Multus template with its pointer to 10-calico.conflist, installed by the real CLI`, () => {
      const node = mkdtempSync(path.join(os.tmpdir(), 'cni-node-golden-'));
      dirs.push(node);
      const [templates, netd, bin] = ['templates', 'net.d', 'bin'].map((d) => path.join(node, d)) as [string, string, string];
      for (const d of [templates, netd, bin]) mkdirSync(d);
      writeFileSync(path.join(templates, '05-multus.conf'), configMapData(file, cm)['05-multus.conf'] ?? '');
      writeFileSync(path.join(netd, '10-calico.conflist'), readFileSync(path.join(root, 'test', 'fixtures', 'calico', '10-calico.conflist')));
      const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], CNI_NODE_CONFIGS_DIR: templates, CNI_NODE_HOST_CONFIGS_DIR: netd, CNI_NODE_HOST_PLUGINS_DIR: bin };
      const r = spawnSync(CLI, ['install', '--configs=05-multus.conf'], { env, encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      golden(`${file.replace(/\.yaml$/, '')}.05-multus.conf`, readFileSync(path.join(netd, '05-multus.conf'), 'utf8'));
    });
  }

  test('multus-cni-config.yaml: the per-node ClusterRoleBinding manifest with ${NODE_HOSTNAME} substituted', () => {
    const text = configMapData('multus-cni-config.yaml', 'multus-cni')['multus-cni-crb.yaml'] ?? '';
    golden('multus-cni-config.multus-cni-crb.yaml', renderManifest(text, { NODE_HOSTNAME: 'node-1.example' }, 'multus-cni-crb.yaml'));
  });

  const CA = '-----BEGIN CERTIFICATE-----\nMIIBgolden\n-----END CERTIFICATE-----\n';
  test('--kubeconfig-out, embed: server, CA and token in the file', () => {
    golden('kubeconfig-out.embed.kubeconfig', renderKubeconfig({ server: 'https://[fd00:10:96::1]:443', caData: CA, token: 'eyJhbGciOi.golden.token', namespace: 'kube-system' }));
  });

  test('--kubeconfig-out, files: CA and token referred to by their node paths', () => {
    golden(
      'kubeconfig-out.files.kubeconfig',
      renderKubeconfig({ server: 'https://10.96.0.1:443', caFile: '/etc/cni/net.d/multus.d/multus.kubeconfig.ca.crt', tokenFile: '/etc/cni/net.d/multus.d/multus.kubeconfig.token', namespace: 'kube-system' }),
    );
  });

  test('cni-node help and kube-watch help (made from the settings table)', () => {
    for (const [args, name] of [
      [['help'], 'cni-node-help.txt'],
      [['watch', 'help'], 'kube-watch-help.txt'],
    ] as const) {
      const r = spawnSync(CLI, [...args], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      golden(name, r.stdout);
    }
  });
});
