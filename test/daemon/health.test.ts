import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';
import { MAX_CONNECTIONS, parseListen, startHealthServer } from '../../src/daemon/health.js';
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

// Issue 13's class "every input has a cap", for connections: anyone on the node may
// connect to --listen (hostNetwork), and each held connection is a file descriptor
// the daemon needs for its own work (a 1,024-descriptor limit is common).
describe('--listen: connections are capped', () => {
  test(`500 idle connections: at most ${MAX_CONNECTIONS} are held, each closed within the headers timeout; requests are served again after`, async () => {
    const readiness = new Readiness();
    const server = await startHealthServer({ listen: { host: '127.0.0.1', port: 0 }, readiness: () => readiness.status(), metrics: createMetrics() });
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 500; i++) {
        const s = net.connect(server.port, '127.0.0.1');
        s.on('error', () => undefined);
        s.resume(); // read what the server sends (a 408), so its end is seen
        s.write('GET /healthz HTTP/1.1\r\n'); // never finished: a slow client
        sockets.push(s);
      }
      await new Promise((r) => setTimeout(r, 500));
      // Our 500 client sockets, plus what the server still holds.
      const held = fds() - before - sockets.filter((s) => !s.destroyed).length;
      assert.ok(held <= MAX_CONNECTIONS + 5, `the server holds ${held} descriptors for 500 idle connections`);
      const closed = await new Promise<number>((resolve) => setTimeout(() => resolve(sockets.filter((s) => s.destroyed || s.readableEnded).length), 7_000));
      assert.equal(closed, 500, 'every idle connection closed by the server within the headers timeout');
      const res = await fetch(`http://${server.address}/healthz`);
      assert.equal(res.status, 200);
    } finally {
      for (const s of sockets) s.destroy();
      await server.close();
    }
  });
});
