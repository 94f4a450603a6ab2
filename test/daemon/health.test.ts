import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseListen, startHealthServer } from '../../src/daemon/health.js';
import { createMetrics } from '../../src/daemon/metrics.js';
import { Readiness } from '../../src/daemon/readiness.js';

describe('--listen', () => {
  test('address forms', () => {
    assert.deepEqual(parseListen(':9090'), { host: undefined, port: 9090 });
    assert.deepEqual(parseListen('9090'), { host: undefined, port: 9090 });
    assert.deepEqual(parseListen('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListen('[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseListen('*:1'), { host: undefined, port: 1 });
    for (const bad of ['', 'localhost', '::1:80', 'a:b', ':70000']) assert.throws(() => parseListen(bad), /--listen/, bad);
  });

  test('/healthz, /readyz flipping with readiness, /metrics', async () => {
    const readiness = new Readiness();
    const metrics = createMetrics();
    const server = await startHealthServer({ listen: { host: '127.0.0.1', port: 0 }, readiness: () => readiness.status(), metrics });
    const get = async (p: string, method = 'GET') => {
      const res = await fetch(`http://${server.address}${p}`, { method });
      return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
    };
    try {
      assert.equal((await get('/healthz')).status, 200);
      let r = await get('/readyz');
      assert.equal(r.status, 503);
      assert.match(r.text, /first reconcile/);
      readiness.succeeded();
      r = await get('/readyz');
      assert.deepEqual([r.status, r.text], [200, 'ok\n']);
      readiness.failed('disk full');
      r = await get('/readyz');
      assert.equal(r.status, 503);
      assert.match(r.text, /disk full/);

      metrics.reconciles.inc({ result: 'success' });
      metrics.duration.observe({ result: 'success' }, 0.012);
      const m = await get('/metrics');
      assert.equal(m.status, 200);
      assert.match(m.type ?? '', /text\/plain/);
      assert.match(m.text, /cni_node_reconciles_total\{result="success"\} 1/);
      assert.match(m.text, /cni_node_reconcile_duration_seconds_bucket\{le="0.025",result="success"\} 1/);
      assert.match(m.text, /process_resident_memory_bytes \d+/);
      assert.match(m.text, /process_cpu_seconds_total [\d.]+/);

      assert.equal((await get('/nope')).status, 404);
      assert.equal((await get('/healthz', 'POST')).status, 405);
      assert.equal((await get('/readyz', 'HEAD')).status, 503);
    } finally {
      await server.close();
    }
  });

  test('a port in use is a clear error', async () => {
    const metrics = createMetrics();
    const a = await startHealthServer({ listen: { host: '127.0.0.1', port: 0 }, readiness: () => ({ ready: true, reason: 'ok' }), metrics });
    try {
      await assert.rejects(
        startHealthServer({ listen: { host: '127.0.0.1', port: a.port }, readiness: () => ({ ready: true, reason: 'ok' }), metrics: createMetrics() }),
        /--listen: cannot listen on 127.0.0.1:\d+: EADDRINUSE/,
      );
    } finally {
      await a.close();
    }
  });
});
