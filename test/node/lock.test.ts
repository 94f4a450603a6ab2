import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, readdir, readFile, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { DirLock, LOCK_FILE } from '../../src/node/lock.js';
import { smallTmpfs, tempDir, tmpfsUnavailableReason } from './support.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function errorOf(kind: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CniNodeError, String(e));
    assert.equal(e.kind, kind);
    assert.match(e.message, re);
    return true;
  };
}

describe('DirLock', () => {
  test('acquire creates the lock file naming the holder; release removes it', async (t) => {
    const dir = await tempDir(t);
    const lock = await DirLock.acquire(dir, { timeoutMs: 1000 });
    assert.doesNotMatch(LOCK_FILE, /\.(conf|conflist|json)$/);
    const text = await readFile(path.join(dir, LOCK_FILE), 'utf8');
    assert.match(text, new RegExp(`${os.hostname()} pid ${process.pid}`));
    lock.assertHeld();
    await lock.release();
    assert.deepEqual(await readdir(dir), []);
    await lock.release(); // twice is harmless
  });

  test('two acquirers take turns: the second waits (told who holds it) until the first releases', async (t) => {
    const dir = await tempDir(t);
    const first = await DirLock.acquire(dir, { timeoutMs: 1000 });
    const waitedFor: string[] = [];
    let secondAt = 0;
    const second = DirLock.acquire(dir, { timeoutMs: 5000, onWait: (h) => waitedFor.push(h) }).then((l) => {
      secondAt = Date.now();
      return l;
    });
    await sleep(400);
    assert.equal(secondAt, 0, 'the second did not get the lock while the first held it');
    assert.equal(waitedFor.length, 1);
    assert.match(waitedFor[0] as string, new RegExp(`pid ${process.pid}`));
    const releasedAt = Date.now();
    await first.release();
    const l2 = await second;
    assert.ok(secondAt - releasedAt < 1000, `took over promptly (${secondAt - releasedAt} ms)`);
    l2.assertHeld();
    await l2.release();
    assert.deepEqual(await readdir(dir), []);
  });

  test('many contenders: mutual exclusion, no lost update', async (t) => {
    const dir = await tempDir(t);
    const counter = path.join(dir, 'counter');
    await writeFile(counter, '0');
    let inside = 0;
    let maxInside = 0;
    const worker = async () => {
      for (let i = 0; i < 5; i++) {
        const lock = await DirLock.acquire(dir, { timeoutMs: 20_000 });
        try {
          inside++;
          maxInside = Math.max(maxInside, inside);
          const n = Number(await readFile(counter, 'utf8'));
          await sleep(2);
          await writeFile(counter, String(n + 1));
        } finally {
          inside--;
          await lock.release();
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    assert.equal(await readFile(counter, 'utf8'), '20');
    assert.equal(maxInside, 1);
  });

  test('a stale lock (its holder stopped refreshing it) is taken over', async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, LOCK_FILE);
    await writeFile(file, 'other-node pid 1 deadbeef\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    const started = Date.now();
    const lock = await DirLock.acquire(dir, { timeoutMs: 5000, staleMs: 15_000 });
    assert.ok(Date.now() - started < 1000, 'without waiting for the timeout');
    assert.match(await readFile(file, 'utf8'), new RegExp(`pid ${process.pid}`));
    await lock.release();
  });

  test('a live holder keeps its lock fresh (heartbeat) and is not taken over', async (t) => {
    const dir = await tempDir(t);
    const holder = await DirLock.acquire(dir, { timeoutMs: 1000, staleMs: 300 });
    try {
      await sleep(700); // longer than staleMs: only the heartbeat keeps it fresh
      await assert.rejects(DirLock.acquire(dir, { timeoutMs: 800, staleMs: 300 }), errorOf('conflict', /holds the lock/));
      holder.assertHeld();
    } finally {
      await holder.release();
    }
  });

  test('timeout: the error names the lock, the holder, and what to do', async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, LOCK_FILE);
    await writeFile(file, 'node-a pid 42 cafe\n');
    const started = Date.now();
    await assert.rejects(DirLock.acquire(dir, { timeoutMs: 300 }), (e: unknown) => {
      errorOf('conflict', /did not release it within/)(e);
      const msg = (e as Error).message;
      assert.ok(msg.includes(file), msg);
      assert.ok(msg.includes('node-a pid 42 cafe'), msg);
      assert.match(msg, /remove the file/);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= 280 && took < 2000, `gave up after the timeout (${took} ms)`);
    assert.equal(await readFile(file, 'utf8'), 'node-a pid 42 cafe\n', "the other holder's lock is left alone");
  });

  test('a lock taken over by another process is noticed: assertHeld throws, release leaves theirs', async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, LOCK_FILE);
    const lock = await DirLock.acquire(dir, { timeoutMs: 1000, staleMs: 300 });
    await writeFile(file, 'usurper pid 7 beef\n');
    await sleep(250); // > one heartbeat (staleMs / 5, at least 100 ms)
    assert.throws(() => lock.assertHeld(), errorOf('conflict', /lost the lock.*usurper/));
    await lock.release();
    assert.equal(await readFile(file, 'utf8'), 'usurper pid 7 beef\n');
  });

  test('an aborted wait stops with "interrupted"', async (t) => {
    const dir = await tempDir(t);
    const holder = await DirLock.acquire(dir, { timeoutMs: 1000 });
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      await assert.rejects(DirLock.acquire(dir, { timeoutMs: 10_000, signal: ac.signal }), errorOf('interrupted', /interrupted/));
    } finally {
      await holder.release();
    }
  });

  test('a directory that does not exist: an io error', async (t) => {
    const dir = path.join(await tempDir(t), 'missing');
    await assert.rejects(DirLock.acquire(dir, { timeoutMs: 100 }), errorOf('io', /cannot create the lock/));
  });

  // Issue 13: the lock file is untrusted input.
  test('a lock of the wrong kind (directory, FIFO, link, huge file): one line saying what it is, never read', async (t) => {
    const makers: Array<[string, (f: string) => Promise<void>, RegExp]> = [
      ['directory', (f) => mkdir(f), /is a directory, not a lock file cni-node made; if no other cni-node runs on this node, remove it by hand/],
      ['FIFO', async (f) => void execFileSync('mkfifo', [f]), /is a FIFO \(named pipe\), not a lock file/],
      ['link to /dev/zero', (f) => symlink('/dev/zero', f), /is a symbolic link, not a lock file/],
      [
        'link to a valid-looking lock',
        async (f) => {
          await writeFile(`${f}-elsewhere`, 'node-a pid 1 abcd\n');
          await symlink(`${f}-elsewhere`, f);
        },
        /is a symbolic link, not a lock file/,
      ],
      [
        'huge file',
        async (f) => {
          await writeFile(f, '');
          await truncate(f, 2 ** 30);
        },
        /is 1073741824 bytes, not a lock file cni-node made/,
      ],
    ];
    for (const [what, make, re] of makers) {
      const dir = await tempDir(t);
      await make(path.join(dir, LOCK_FILE));
      const started = Date.now();
      await assert.rejects(DirLock.acquire(dir, { timeoutMs: 5_000 }), (e: unknown) => {
        assert.ok(e instanceof CniNodeError, `${what}: ${String(e)}`);
        assert.match(e.message, re, what);
        assert.doesNotMatch(e.message, /\n/, `${what}: one line`);
        return true;
      });
      assert.ok(Date.now() - started < 2_000, `${what}: at once, not after the timeout`);
    }
  });

  test('a lock with foreign content: only a token cni-node could have written is shown as the holder', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, LOCK_FILE), 'root:x:0:0:root:/root:/bin/bash\n');
    const seen: string[] = [];
    await assert.rejects(DirLock.acquire(dir, { timeoutMs: 300, onWait: (h) => seen.push(h) }), (e: unknown) => {
      assert.match((e as Error).message, /another cni-node \(unrecognised lock content, 31 bytes\) holds the lock/);
      assert.doesNotMatch((e as Error).message, /root:x/);
      return true;
    });
    assert.deepEqual(seen, ['unrecognised lock content, 31 bytes']);
  });

  test('a lock stamped in the future (the clock was stepped back) is stale: taken over at once', async (t) => {
    const dir = await tempDir(t);
    const file = path.join(dir, LOCK_FILE);
    await writeFile(file, 'other-node pid 1 deadbeef\n');
    const future = new Date(Date.now() + 3_600_000);
    await utimes(file, future, future);
    const started = Date.now();
    const lock = await DirLock.acquire(dir, { timeoutMs: 5_000, staleMs: 15_000 });
    assert.ok(Date.now() - started < 1_000, 'without waiting for the timeout');
    await lock.release();
  });

  test('a live holder whose clock jumped back is not taken over: its next refresh brings the mtime back to now', async (t) => {
    const dir = await tempDir(t);
    const holder = await DirLock.acquire(dir, { timeoutMs: 1000, staleMs: 300 });
    try {
      const soon = new Date(Date.now() + 200); // in the future, but within the lease
      await utimes(path.join(dir, LOCK_FILE), soon, soon);
      await assert.rejects(DirLock.acquire(dir, { timeoutMs: 600, staleMs: 300 }), errorOf('conflict', /holds the lock/));
      holder.assertHeld();
    } finally {
      await holder.release();
    }
  });

  test('a failed write of the lock (disk full) leaves no lock file behind', { skip: tmpfsUnavailableReason() }, async (t) => {
    const dir = await smallTmpfs(t, 64);
    await writeFile(path.join(dir, 'filler'), Buffer.alloc(60 * 1024)).catch(() => undefined);
    // Fill the last blocks so the lock's line cannot be written.
    for (let i = 0; ; i++) {
      try {
        await writeFile(path.join(dir, `f${i}`), Buffer.alloc(4096));
      } catch {
        break;
      }
    }
    await assert.rejects(DirLock.acquire(dir, { timeoutMs: 1000 }), errorOf('io', /cannot create the lock .*ENOSPC/));
    assert.ok(!(await readdir(dir)).includes(LOCK_FILE), 'no empty lock left behind');
  });

  test('a failing close(2) of the new lock: an io error, the descriptor closed once, no lock file left behind', async (t) => {
    const dir = await tempDir(t);
    // close(2) can report a deferred write-back error (EIO) after releasing the
    // descriptor. A lock left behind then would make every later run wait for a
    // holder that gave up; a second close would be EBADF, an internal error.
    const realClose = fs.closeSync;
    const closes: string[] = [];
    fs.closeSync = (fd: number) => {
      let target = '(not open)';
      try {
        target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        // Already closed.
      }
      const isLock = target.endsWith(LOCK_FILE) || target === '(not open)';
      if (isLock) closes.push(target);
      realClose(fd);
      if (isLock && closes.length === 1) throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO', errno: -5, syscall: 'close' });
    };
    syncBuiltinESMExports();
    try {
      await assert.rejects(DirLock.acquire(dir, { timeoutMs: 1000 }), errorOf('io', /cannot create the lock .*EIO/));
    } finally {
      fs.closeSync = realClose;
      syncBuiltinESMExports();
    }
    assert.equal(closes.length, 1, closes.join(', '));
    assert.ok(!(await readdir(dir)).includes(LOCK_FILE), 'no lock left behind');
  });
});
