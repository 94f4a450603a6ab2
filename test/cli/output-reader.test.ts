// What cni-node does when the reader of its output goes away or stops reading
// (src/sys/output.ts): a closed pipe (`cni-node … | head -1`, a log collector that
// died) must not stop an install half-way with an "internal error", and a reader
// that stops reading (a blocking log driver, a paused terminal) must not freeze the
// daemon: /healthz keeps answering and SIGTERM still stops it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, dirsEnv, LOCK, noDebianPluginsReason } from '../support/cli.js';
import { freePort, httpGet, sleep } from '../support/process.js';
import { nodeTree, TempRoots } from '../support/tree.js';

const skip = noDebianPluginsReason();
const roots = new TempRoots();
after(() => roots.removeAll());

const PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];

/** A FIFO whose buffer is full: a writer to it blocks (or gets EAGAIN) until someone reads, and nobody does. */
function fullFifo(dir: string): { writeFd: number; close(): void } {
  const fifo = path.join(dir, 'stalled-output');
  execFileSync('mkfifo', [fifo]);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const filler = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  const page = Buffer.alloc(4096, 'x');
  try {
    for (;;) writeSync(filler, page);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
  }
  closeSync(filler);
  // The writer's end as a container runtime gives it: blocking.
  const writeFd = openSync(fifo, constants.O_WRONLY);
  return {
    writeFd,
    close: () => {
      closeSync(writeFd);
      closeSync(readFd);
    },
  };
}

describe('the reader of cni-node output goes away or stops reading', { skip }, () => {
  test('output EPIPE: an install whose stdout reader is gone installs everything and is no internal error', async () => {
    const t = await nodeTree(roots, 'cni-node-epipe-');
    const child = spawn(CLI, ['install', `--plugins=${PLUGINS.join(',')}`], { env: dirsEnv(t), stdio: ['ignore', 'pipe', 'pipe'] });
    // The reader goes away before cni-node writes its first line: every write to stdout is EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(guard);
    assert.doesNotMatch(stderr, /internal error|EPIPE/, stderr);
    assert.equal(code, 0, stderr);
    const left = (await readdir(t.bin)).sort();
    assert.deepEqual(
      left.filter((n) => !n.startsWith('.')),
      [...PLUGINS].sort(),
      'every plugin installed, not only those before the first line',
    );
    assert.ok(!left.includes(LOCK), 'the lock was released');
  });

  test('stalled output: install --pause (a DaemonSet container) whose stdout nobody reads installs, pauses and stops on SIGTERM', async () => {
    const t = await nodeTree(roots, 'cni-node-stalled-pause-');
    const out = fullFifo(t.root);
    const child = spawn(CLI, ['install', `--plugins=${PLUGINS.join(',')}`, '--pause'], { env: dirsEnv(t), stdio: ['ignore', out.writeFd, out.writeFd] });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let ended = false;
    void exited.then(() => (ended = true));
    try {
      let installed: string[] = [];
      for (const deadline = Date.now() + 20_000; installed.length < PLUGINS.length && !ended && Date.now() < deadline; await sleep(100)) {
        installed = (await readdir(t.bin)).filter((n) => !n.startsWith('.'));
      }
      assert.deepEqual(installed.sort(), [...PLUGINS].sort(), 'every plugin installed although nobody reads the output');
      await sleep(500);
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      assert.ok(stopped, 'SIGTERM stopped it within 10 s');
    } finally {
      if (!ended) child.kill('SIGKILL');
      await exited;
      out.close();
    }
  });

  test('stalled output: the daemon whose stdout nobody reads still answers /healthz and stops on SIGTERM', async () => {
    const t = await nodeTree(roots, 'cni-node-stalled-');
    const out = fullFifo(t.root);
    const port = await freePort();
    const child = spawn(CLI, ['run', `--plugins=${PLUGINS.join(',')}`, `--listen=127.0.0.1:${port}`], {
      env: dirsEnv(t),
      stdio: ['ignore', out.writeFd, out.writeFd],
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let ended = false;
    void exited.then(() => (ended = true));
    try {
      // It has installed the plugins (and tried to say so) by the time /healthz answers, or it never will.
      let healthy = false;
      for (const deadline = Date.now() + 20_000; !healthy && !ended && Date.now() < deadline;) {
        healthy = await httpGet(`127.0.0.1:${port}`, '/healthz').then(
          (r) => r.status === 200,
          () => false,
        );
        if (!healthy) await sleep(100);
      }
      assert.ok(healthy, 'the daemon answered /healthz although nobody reads its output');
      const installed = (await readdir(t.bin)).filter((n) => !n.startsWith('.')).sort();
      assert.deepEqual(installed, [...PLUGINS].sort());
      // Its event loop is not blocked in a write: /healthz answers again, a while later.
      await sleep(500);
      assert.equal((await httpGet(`127.0.0.1:${port}`, '/healthz')).status, 200);
      const sent = performance.now();
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      assert.ok(stopped, 'SIGTERM stopped it within 10 s');
      assert.ok(performance.now() - sent < 10_000);
    } finally {
      if (!ended) child.kill('SIGKILL');
      await exited;
      out.close();
    }
  });
});
