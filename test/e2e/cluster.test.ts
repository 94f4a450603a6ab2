// Smoke test of the e2e harness itself: if this fails, every other e2e
// failure is suspect, so it checks exactly what the other tests rely on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { clusterUnavailableReason, startTestCluster } from './support/cluster.js';

interface ConfigMap {
  kind: string;
  metadata: { name: string; managedFields?: { manager: string; operation: string }[] };
  data?: Record<string, string>;
}

interface Status {
  kind: string;
  reason?: string;
  message?: string;
}

test('real kube-apiserver: apply, RBAC denial, API server restart', { skip: clusterUnavailableReason(), timeout: 180_000 }, async () => {
  const cluster = await startTestCluster();
  try {
    assert.match(cluster.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(cluster.caData, /BEGIN CERTIFICATE/);

    const cmPath = '/api/v1/namespaces/default/configmaps/x';
    // Server-side apply: JSON is valid YAML, so an object body works with the apply content type.
    const applied = await cluster.request<ConfigMap>(
      'PATCH',
      `${cmPath}?fieldManager=test`,
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'default' }, data: { a: '1' } },
      { contentType: 'application/apply-patch+yaml' },
    );
    assert.equal(applied.status, 201, applied.text);
    assert.equal(applied.body.metadata.managedFields?.[0]?.manager, 'test');
    assert.equal(applied.body.metadata.managedFields?.[0]?.operation, 'Apply');

    const read = await cluster.request<ConfigMap>('GET', cmPath);
    assert.equal(read.status, 200, read.text);
    assert.deepEqual(read.body.data, { a: '1' });

    const denied = await cluster.request<Status>('GET', cmPath, undefined, { token: cluster.tokens.denied });
    assert.equal(denied.status, 403, denied.text);
    assert.equal(denied.body.reason, 'Forbidden');
    assert.match(denied.body.message ?? '', /User "denied" cannot get resource "configmaps"/);

    // The service-account user starts with no rights, too.
    const sa = await cluster.request<Status>('GET', cmPath, undefined, { token: cluster.tokens.serviceAccount });
    assert.equal(sa.status, 403, sa.text);
    assert.match(sa.body.message ?? '', /system:serviceaccount:kube-system:cni-node/);

    const kubeconfig = cluster.writeKubeconfig(cluster.tokens.admin);
    const kc = readFileSync(kubeconfig, 'utf8');
    assert.ok(kc.includes(cluster.server));
    assert.ok(kc.includes(Buffer.from(cluster.caData).toString('base64')));

    await cluster.stopApiServer();
    await assert.rejects(cluster.request('GET', cmPath, undefined, { timeoutMs: 2_000 }), /ECONNREFUSED/);
    await cluster.startApiServer();

    const again = await cluster.request<ConfigMap>('GET', cmPath);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.body.data, { a: '1' });

    await cluster.stop();
    await cluster.stop();
  } finally {
    await cluster.stop();
  }
});
