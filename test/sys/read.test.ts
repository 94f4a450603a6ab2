// read.ts: how cni-node reads every file it did not make itself (issue 13,
// "reading non-regular files"). Real FIFOs, sockets, devices, links and sparse files.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { openRegular, readRegular, readRegularSync } from '../../src/sys/read.js';
import { tempDir } from '../node/support.js';

function refusedAs(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CniNodeError, `a CniNodeError, not ${String(e)}`);
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return true;
  };
}

/** A promise that fails if `p` does not settle within `ms`: a blocked read would hang the test otherwise. */
function within<T>(p: Promise<T>, ms = 2_000): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`did not settle within ${ms} ms (blocked?)`)), ms).unref())]);
}

describe('non-regular files are refused, never read', () => {
  test('a FIFO, a directory, a socket, a device and links to them: refused at once with what they are', async (t) => {
    const dir = await tempDir(t);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await mkdir(path.join(dir, 'dir'));
    const sock = path.join(dir, 'sock');
    const server = net.createServer().listen(sock);
    await new Promise((r) => server.once('listening', r));
    t.after(() => server.close());
    await symlink('/dev/zero', path.join(dir, 'zero'));
    await symlink(fifo, path.join(dir, 'to-fifo'));
    const cases: Array<[string, RegExp]> = [
      [fifo, /is a FIFO \(named pipe\), not a regular file/],
      [path.join(dir, 'dir'), /is a directory, not a regular file/],
      [sock, /is a socket, not a regular file/],
      [path.join(dir, 'zero'), /is a character device, not a regular file/],
      [path.join(dir, 'to-fifo'), /is a FIFO \(named pipe\), not a regular file/],
    ];
    for (const [file, re] of cases) {
      await within(assert.rejects(readRegular(file, { maxBytes: 1024 }), refusedAs(re)));
      assert.throws(() => openRegular(file, { maxBytes: 1024 }), refusedAs(re));
      assert.throws(() => readRegularSync(file, { maxBytes: 1024 }), refusedAs(re));
    }
  });

  test('with follow: false a symbolic link is refused, even to a regular file', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, 'f'), 'x');
    await symlink(path.join(dir, 'f'), path.join(dir, 'l'));
    await assert.rejects(
      readRegular(path.join(dir, 'l'), { maxBytes: 10, follow: false, what: "cni-node's record" }),
      refusedAs(/cni-node's record \(.*\/l\) is a symbolic link, not a regular file/),
    );
    assert.throws(() => readRegularSync(path.join(dir, 'l'), { maxBytes: 10, follow: false }), refusedAs(/is a symbolic link/));
    assert.equal((await readRegular(path.join(dir, 'l'), { maxBytes: 10 }))?.bytes.toString(), 'x', 'followed by default');
  });

  test('a file over its cap is refused before it is read (a 4 GiB sparse file), at the cap it is read', async (t) => {
    const dir = await tempDir(t);
    const big = path.join(dir, 'big');
    await writeFile(big, '');
    await truncate(big, 4 * 2 ** 30);
    await assert.rejects(readRegular(big, { maxBytes: 1 << 20 }), refusedAs(/is 4\.0 GiB; the limit is 1\.0 MiB/));
    assert.throws(() => readRegularSync(big, { maxBytes: 1 << 20 }), refusedAs(/is 4\.0 GiB/));
    await writeFile(path.join(dir, 'exact'), Buffer.alloc(100, 1));
    assert.equal((await readRegular(path.join(dir, 'exact'), { maxBytes: 100 }))?.bytes.length, 100);
    await assert.rejects(readRegular(path.join(dir, 'exact'), { maxBytes: 99 }), refusedAs(/limit is 99 bytes/));
  });

  test('a file whose size reads 0 but that has content (procfs) is still capped', async () => {
    // /proc/self/environ is a regular file of size 0 whatever it holds.
    await assert.rejects(readRegular('/proc/self/environ', { maxBytes: 4 }), refusedAs(/limit is 4 bytes/));
  });

  test('absent: undefined (also a dangling link); the caller decides what that means', async (t) => {
    const dir = await tempDir(t);
    await symlink(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
    assert.equal(await readRegular(path.join(dir, 'none'), { maxBytes: 1 }), undefined);
    assert.equal(await readRegular(path.join(dir, 'dangling'), { maxBytes: 1 }), undefined);
    assert.equal(readRegularSync(path.join(dir, 'none'), { maxBytes: 1 }), undefined);
  });
});
