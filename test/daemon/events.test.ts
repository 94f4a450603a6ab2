import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEventRecorder, TokenBucket } from '../../src/daemon/events.js';
import type { KubeClient, KubeRequest } from '../../src/kube/client.js';
import type { Reporter } from '../../src/core/contracts.js';

const reporter: Reporter & { warnings: string[] } = Object.assign(
  { item: () => undefined, info: () => undefined, warn: (m: string) => void reporter.warnings.push(m) },
  { warnings: [] as string[] },
);

function fakeClient(fail?: (req: KubeRequest) => Error | undefined) {
  const requests: KubeRequest[] = [];
  const client = {
    async request(req: KubeRequest) {
      requests.push(req);
      const e = fail?.(req);
      if (e) throw e;
      if (req.method === 'GET') return { status: 200, body: { metadata: { uid: 'uid-1' } }, headers: {} };
      return { status: 201, body: {}, headers: {} };
    },
  } as unknown as KubeClient;
  return { client, requests };
}

describe('Kubernetes Events on the pod', () => {
  test('a token bucket allows a burst, then one per refill', () => {
    let t = 0;
    const b = new TokenBucket(3, 1_000, () => t);
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
    t += 999;
    assert.equal(b.take(), false);
    t += 1;
    assert.equal(b.take(), true);
    assert.equal(b.take(), false);
    t += 10_000;
    assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false], 'never more than the burst');
  });

  test('without POD_NAME / POD_NAMESPACE nothing is sent', async () => {
    const { client, requests } = fakeClient();
    const rec = createEventRecorder({ client: async () => client, env: {}, reporter });
    assert.equal(rec.enabled, false);
    rec.emit('ReconcileFailed', 'x');
    await rec.flush();
    assert.equal(requests.length, 0);
  });

  test('an Event names the pod (uid looked up once), repeats and floods are held back', async () => {
    const { client, requests } = fakeClient();
    let t = 1_000_000;
    const outcomes: string[] = [];
    const rec = createEventRecorder({
      client: async () => client,
      env: { POD_NAME: 'cni-node-abc', POD_NAMESPACE: 'kube-system', NODE_NAME: 'node-1' },
      reporter,
      burst: 3,
      refillMs: 60_000,
      repeatMs: 600_000,
      now: () => t,
      onOutcome: (_type, o) => void outcomes.push(o),
    });
    rec.emit('ReconcileFailed', 'plugin x is not in the plugins dir');
    rec.emit('ReconcileFailed', 'plugin x is not in the plugins dir');
    rec.emit('WaitingForPointerTarget', 'config a waits for b');
    rec.emit('FightDetected', 'c');
    rec.emit('FightDetected', 'd');
    await rec.flush();
    assert.deepEqual(outcomes, ['repeat', 'limited', 'sent', 'sent', 'sent']);
    const posts = requests.filter((r) => r.method === 'POST');
    assert.equal(posts.length, 3);
    assert.equal(requests.filter((r) => r.method === 'GET').length, 1, 'the pod uid is looked up once');
    const body = posts[0]?.body as Record<string, unknown> & { involvedObject: Record<string, string>; source: Record<string, string> };
    assert.equal(posts[0]?.path, '/api/v1/namespaces/kube-system/events');
    assert.deepEqual(body.involvedObject, { apiVersion: 'v1', kind: 'Pod', name: 'cni-node-abc', namespace: 'kube-system', uid: 'uid-1' });
    assert.equal(body['type'], 'Warning');
    assert.equal(body['reason'], 'ReconcileFailed');
    assert.deepEqual(body.source, { component: 'cni-node', host: 'node-1' });
    t += 60_000;
    outcomes.length = 0;
    rec.emit('FightDetected', 'e');
    await rec.flush();
    assert.deepEqual(outcomes, ['sent'], 'a token came back after refillMs');
  });

  test('failures are logged once and never thrown', async () => {
    reporter.warnings.length = 0;
    const { client } = fakeClient((req) => (req.method === 'POST' ? new Error('forbidden: may not create events') : undefined));
    const rec = createEventRecorder({ client: async () => client, env: { POD_NAME: 'p', POD_NAMESPACE: 'n', POD_UID: 'u' }, reporter, burst: 10 });
    rec.emit('ReconcileFailed', '1');
    rec.emit('ReconcileFailed', '2');
    await rec.flush();
    assert.equal(reporter.warnings.length, 1);
    assert.match(reporter.warnings[0] ?? '', /cannot record a Kubernetes Event on pod n\/p .*forbidden/);
  });
});
