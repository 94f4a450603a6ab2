// Hostile input (issue 13) against a real kube-apiserver 1.20.2 + etcd: object
// references in cni-node's record (the manifest record) are untrusted names. A
// reference whose apiVersion, kind, namespace or name could change the API path
// (`..`, `/`, `?`, `#`, `%`) is refused with a warning naming the record file and
// never sent to the API; the good references of the same manifest are deleted as
// usual, and objects the bad ones try to reach stay.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { plan } from '../../src/core/plan.js';
import type { EngineOptions, Reporter } from '../../src/core/contracts.js';
import type { RequestEvent } from '../../src/kube/client.js';
import { createManifestHandler, RECORD_KIND } from '../../src/kube/manifest-handler.js';
import { NodeRecord, RECORD_FILE } from '../../src/node/record.js';
import { useTestCluster } from './support/api-suite.js';
import { clusterUnavailableReason } from './support/cluster.js';

const skip = clusterUnavailableReason();
const api = useTestCluster({ skip });

const CMS = '/api/v1/namespaces/default/configmaps';

async function configMap(name: string): Promise<void> {
  const res = await api.cluster.request('POST', CMS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { a: '1' } });
  assert.equal(res.status, 201, res.text);
}

async function exists(name: string): Promise<boolean> {
  const res = await api.cluster.request('GET', `${CMS}/${name}`);
  return res.status === 200;
}

test('untrusted object references from the manifest record are refused, never sent to the API', { skip, timeout: 60_000 }, async () => {
  const root = api.tempDir('cni-node-hostile-record-');
  const hostConfigsDir = path.join(root, 'net.d');
  const manifestsDir = path.join(root, 'manifests');
  mkdirSync(hostConfigsDir);
  mkdirSync(manifestsDir);
  await configMap('keep-me');
  await configMap('mine');
  const hostile = [
    // Each aims at keep-me (or at another resource) through the path.
    { apiVersion: '../../api/v1', kind: 'ConfigMap', namespace: 'default', name: 'keep-me' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'keep-me?dryRun=All' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'keep-me#x' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default/configmaps/keep-me', name: 'x' },
    { apiVersion: 'v1', kind: 'ConfigMap/../Secret', namespace: 'default', name: 'keep-me' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: '%6beep-me' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: '..' },
  ];
  const good = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'mine' };
  writeFileSync(
    path.join(hostConfigsDir, RECORD_FILE),
    JSON.stringify({ format: 'cni-node/record/v1', kinds: { [RECORD_KIND]: [{ name: 'gone.yaml', sha256: '', meta: { objects: [...hostile, good] } }] } }),
  );

  const warnings: string[] = [];
  const requests: RequestEvent[] = [];
  const reporter: Reporter = { item: () => undefined, warn: (m) => warnings.push(m), info: () => undefined };
  const options: EngineOptions = {
    dirs: { pluginsDir: '/nonexistent', hostPluginsDir: '/nonexistent', configsDir: '/nonexistent', hostConfigsDir, manifestsDir },
    dryRun: false,
    waitMs: 0,
    tolerateMissingPointers: false,
    env: { CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(root, 'no-service-account') },
    kubeconfig: api.cluster.writeKubeconfig(api.cluster.tokens.admin, path.join(root, 'kubeconfig')),
    reporter,
  };
  const record = await NodeRecord.load(hostConfigsDir, reporter);
  const handler = await createManifestHandler({ options, record, clientOptions: { onRequest: (e) => requests.push(e) } });
  try {
    // apply with nothing desired: remove what the record says gone.yaml created (the file itself is gone).
    const actions = plan('apply', { manifest: { desired: [], current: await handler.recorded() } });
    const { problems } = await handler.prepare(actions);
    assert.deepEqual(
      problems.map((p) => p.describe()),
      [],
    );
    for (const a of actions) await handler.execute(a, false);
    await handler.commit();
  } finally {
    await handler.close();
  }

  assert.equal(await exists('keep-me'), true, 'the object the hostile references aim at is still there');
  assert.equal(await exists('mine'), false, 'the good reference of the same manifest is deleted as usual');
  const sent = requests.map((r) => `${r.method} ${r.path}`);
  for (const s of sent)
    assert.doesNotMatch(s, /keep-me|\.\.|%3F|%23|%25|ConfigMap%2F|default%2F/, `a request for a refused reference was sent:\n${sent.join('\n')}`);
  assert.ok(
    sent.some((s) => s.startsWith('DELETE') && s.endsWith('/configmaps/mine')),
    sent.join('\n'),
  );
  const recordFile = path.join(hostConfigsDir, RECORD_FILE);
  const refusals = warnings.filter(
    (w) => w.includes(`cni-node's record ${recordFile}: manifest gone.yaml: object reference`) && /refused, never sent to the API/.test(w),
  );
  assert.equal(refusals.length, hostile.length, warnings.join('\n'));
});
