import assert from 'node:assert/strict';
import fs, { constants } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { lstat, mkdir, open, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import {
  cleanTempFiles,
  commitStaged,
  discardStaged,
  inspect,
  readIfExists,
  removeFile,
  stageFile,
  TEMP_PREFIX,
  writeFileAtomic,
} from '../../src/node/atomic.js';
import { remountReadOnly, smallTmpfs, tempDir, tmpfsUnavailableReason } from './support.js';

const temps = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));

function ioErrorMatching(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CniNodeError, `a CniNodeError, got ${String(e)}`);
    assert.equal(e.kind, 'io');
    assert.match(e.message, re);
    return true;
  };
}

describe('writeFileAtomic', () => {
  test('creates the file with the content and exactly the mode asked (whatever the umask)', async (t) => {
    const dir = await tempDir(t);
    const old = process.umask(0o077);
    try {
      const s1 = await writeFileAtomic(dir, 'plugin', Buffer.from('binary\0bytes'), 0o755);
      const s2 = await writeFileAtomic(dir, '10-x.conf', '{"a":1}\n', 0o644);
      const st1 = await lstat(path.join(dir, 'plugin'));
      assert.equal(st1.mode & 0o7777, 0o755);
      assert.equal((await lstat(path.join(dir, '10-x.conf'))).mode & 0o7777, 0o644);
      assert.deepEqual(await readFile(path.join(dir, 'plugin')), Buffer.from('binary\0bytes'));
      assert.equal(await readFile(path.join(dir, '10-x.conf'), 'utf8'), '{"a":1}\n');
      // The returned stamp is the file's.
      assert.deepEqual(s1, { size: st1.size, mtimeMs: st1.mtimeMs, ctimeMs: st1.ctimeMs, ino: st1.ino });
      assert.equal(s2.size, 8);
    } finally {
      process.umask(old);
    }
    assert.deepEqual(await temps(dir), []);
  });

  test('replaces by rename: a reader that opened the old file keeps reading the complete old file', async (t) => {
    const dir = await tempDir(t);
    const oldBytes = Buffer.alloc(300_000, 'o');
    await writeFileAtomic(dir, 'bridge', oldBytes, 0o755);
    const before = await stat(path.join(dir, 'bridge'));
    // Like a runtime executing the old binary while the new one is installed.
    const reader = await open(path.join(dir, 'bridge'), constants.O_RDONLY);
    try {
      const newBytes = Buffer.alloc(200_000, 'n');
      await writeFileAtomic(dir, 'bridge', newBytes, 0o755);
      const after = await stat(path.join(dir, 'bridge'));
      assert.notEqual(after.ino, before.ino, 'a new inode, renamed into place');
      assert.deepEqual(await reader.readFile(), oldBytes);
      assert.deepEqual(await readFile(path.join(dir, 'bridge')), newBytes);
    } finally {
      await reader.close();
    }
    assert.deepEqual(await temps(dir), []);
  });

  test('concurrent readers only ever see a complete old or complete new file', async (t) => {
    const dir = await tempDir(t);
    const a = Buffer.alloc(256 * 1024, 'a');
    const b = Buffer.concat([Buffer.alloc(128 * 1024, 'b'), Buffer.from('end')]);
    await writeFileAtomic(dir, 'p', a, 0o755);
    let writing = true;
    let reads = 0;
    const readers = Array.from({ length: 3 }, async () => {
      while (writing) {
        const got = await readFile(path.join(dir, 'p'));
        assert.ok(got.equals(a) || got.equals(b), `a torn read of ${got.length} bytes`);
        reads++;
      }
    });
    for (let i = 0; i < 60; i++) await writeFileAtomic(dir, 'p', i % 2 ? a : b, 0o755);
    writing = false;
    await Promise.all(readers);
    assert.ok(reads > 10, `readers ran (${reads} reads)`);
    assert.deepEqual(await temps(dir), []);
  });

  test('refuses to replace a symbolic link (to a file, or dangling): nothing written through it', async (t) => {
    const dir = await tempDir(t);
    const outside = path.join(await tempDir(t), 'precious');
    await writeFile(outside, 'keep me');
    await symlink(outside, path.join(dir, 'bridge'));
    await symlink(path.join(path.dirname(outside), 'nothing-here'), path.join(dir, 'dangling'));
    await assert.rejects(writeFileAtomic(dir, 'bridge', 'evil', 0o755), ioErrorMatching(/bridge is a symbolic link/));
    await assert.rejects(writeFileAtomic(dir, 'dangling', 'evil', 0o755), ioErrorMatching(/symbolic link/));
    assert.equal(await readFile(outside, 'utf8'), 'keep me');
    assert.ok((await lstat(path.join(dir, 'bridge'))).isSymbolicLink());
    assert.deepEqual(await readdir(path.dirname(outside)), ['precious']);
    assert.deepEqual(await temps(dir), []);
  });

  test('refuses to replace a directory', async (t) => {
    const dir = await tempDir(t);
    await mkdir(path.join(dir, '10-x.conf'));
    await assert.rejects(writeFileAtomic(dir, '10-x.conf', '{}', 0o644), ioErrorMatching(/10-x\.conf is a directory/));
    assert.ok((await lstat(path.join(dir, '10-x.conf'))).isDirectory());
    assert.deepEqual(await temps(dir), []);
  });

  test('a directory that does not exist: a clear error', async (t) => {
    const dir = path.join(await tempDir(t), 'missing');
    await assert.rejects(writeFileAtomic(dir, 'x', 'y', 0o644), ioErrorMatching(/does not exist/));
  });

  test('disk full: the error names the file, the old version is intact, the temporary file is removed', { skip: tmpfsUnavailableReason() }, async (t) => {
    const dir = await smallTmpfs(t, 64);
    await writeFileAtomic(dir, 'bridge', 'old version', 0o755);
    await assert.rejects(writeFileAtomic(dir, 'bridge', Buffer.alloc(1024 * 1024, 'x'), 0o755), ioErrorMatching(/bridge.*disk is full/));
    assert.equal(await readFile(path.join(dir, 'bridge'), 'utf8'), 'old version');
    assert.deepEqual(await temps(dir), [], 'no temporary file left on the full disk');
  });

  test('a read-only directory: a clear error, the old version intact, no temporary file', { skip: tmpfsUnavailableReason() }, async (t) => {
    const dir = await smallTmpfs(t, 64);
    await writeFileAtomic(dir, '10-x.conf', 'old', 0o644);
    await remountReadOnly(dir);
    await assert.rejects(writeFileAtomic(dir, '10-x.conf', 'new', 0o644), ioErrorMatching(/10-x\.conf.*read-only/));
    assert.equal(await readFile(path.join(dir, '10-x.conf'), 'utf8'), 'old');
    assert.deepEqual(await temps(dir), []);
  });
});

describe('staged writes', () => {
  test('a staged file is invisible under the target name until committed; discard removes it', async (t) => {
    const dir = await tempDir(t);
    const s = await stageFile(dir, 'macvlan', { data: 'new' }, 0o755);
    assert.equal((await inspect(dir, 'macvlan')).type, 'none');
    assert.equal((await temps(dir)).length, 1);
    assert.doesNotMatch(path.basename(s.temp), /\.(conf|conflist|json)$/, 'a runtime never loads a temp file');
    await discardStaged(s);
    assert.deepEqual(await readdir(dir), []);

    const s2 = await stageFile(dir, '10-x.conflist', { data: '{}' }, 0o644);
    assert.doesNotMatch(path.basename(s2.temp), /\.(conf|conflist|json)$/);
    await commitStaged(s2);
    assert.deepEqual(await readdir(dir), ['10-x.conflist']);
  });

  test('staging copies a file (kernel copy) with the mode asked', async (t) => {
    const dir = await tempDir(t);
    const src = path.join(await tempDir(t), 'src');
    await writeFile(src, Buffer.alloc(70_000, 7), { mode: 0o600 });
    await commitStaged(await stageFile(dir, 'p', { copyOf: src }, 0o755));
    assert.deepEqual(await readFile(path.join(dir, 'p')), Buffer.alloc(70_000, 7));
    assert.equal((await lstat(path.join(dir, 'p'))).mode & 0o7777, 0o755);
  });

  test('a directory or link that appears between staging and commit: refused, temp removed', async (t) => {
    const dir = await tempDir(t);
    const s = await stageFile(dir, 'ptp', { data: 'x' }, 0o755);
    await mkdir(path.join(dir, 'ptp'));
    await assert.rejects(commitStaged(s), ioErrorMatching(/ptp is a directory/));
    assert.deepEqual(await temps(dir), []);
    const s2 = await stageFile(dir, 'sbr', { data: 'x' }, 0o755);
    await symlink('/etc/hostname', path.join(dir, 'sbr'));
    await assert.rejects(commitStaged(s2), ioErrorMatching(/sbr is a symbolic link/));
    assert.deepEqual(await temps(dir), []);
  });

  test('copying a file that vanished: an io error, no temporary file left', async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(stageFile(dir, 'p', { copyOf: path.join(dir, 'no-such-source') }, 0o755), ioErrorMatching(/cannot write/));
    assert.deepEqual(await temps(dir), []);
  });

  test('a failing close(2): the descriptor is closed once, the error is an io error naming the file, no temporary file left', async (t) => {
    const dir = await tempDir(t);
    // close(2) releases the descriptor even when it reports an error (EIO from a
    // deferred write-back): a second close of the same number is EBADF at best, and
    // at worst closes a descriptor another part of the process has opened since.
    const realClose = fs.closeSync;
    const closed: number[] = [];
    let failNext = true;
    fs.closeSync = (fd: number) => {
      let target = '(not open)';
      try {
        target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        // Already closed: counted below if it was the temporary file's.
      }
      const isTemp = target.includes(TEMP_PREFIX) || closed.includes(fd);
      if (isTemp) closed.push(fd);
      realClose(fd);
      if (isTemp && failNext) {
        failNext = false;
        throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO', errno: -5, syscall: 'close' });
      }
    };
    syncBuiltinESMExports();
    try {
      await assert.rejects(stageFile(dir, '10-x.conf', { data: '{}' }, 0o644), ioErrorMatching(/cannot write .*10-x\.conf/));
    } finally {
      fs.closeSync = realClose;
      syncBuiltinESMExports();
    }
    assert.equal(closed.length, 1, `closed ${closed.length} times: ${closed.join(', ')}`);
    assert.deepEqual(await temps(dir), []);
  });
});

describe('cleanTempFiles, removeFile, inspect, readIfExists', () => {
  test('cleanTempFiles removes only cni-node temporary files and says which', async (t) => {
    const dir = await tempDir(t);
    for (const n of [`${TEMP_PREFIX}bridge.abc123`, `${TEMP_PREFIX}10-x.conf.def456`, '.cni-node-state', 'bridge', '.hidden-other', 'cni-node-tmp.lookalike']) {
      await writeFile(path.join(dir, n), 'x');
    }
    const removed = await cleanTempFiles(dir);
    assert.deepEqual(removed.sort(), [`${TEMP_PREFIX}10-x.conf.def456`, `${TEMP_PREFIX}bridge.abc123`]);
    assert.deepEqual((await readdir(dir)).sort(), ['.cni-node-state', '.hidden-other', 'bridge', 'cni-node-tmp.lookalike']);
    assert.deepEqual(await cleanTempFiles(dir), []);
    assert.deepEqual(await cleanTempFiles(path.join(dir, 'missing')), []);
  });

  test('removeFile: a file, an absent file, a link (not its target), never a directory', async (t) => {
    const dir = await tempDir(t);
    const outside = path.join(await tempDir(t), 'target');
    await writeFile(outside, 'keep');
    await writeFile(path.join(dir, 'f'), 'x');
    await symlink(outside, path.join(dir, 'l'));
    await mkdir(path.join(dir, 'd'));
    assert.equal(await removeFile(dir, 'f'), true);
    assert.equal(await removeFile(dir, 'f'), false);
    assert.equal(await removeFile(dir, 'l'), true);
    assert.equal(await readFile(outside, 'utf8'), 'keep');
    await assert.rejects(removeFile(dir, 'd'), ioErrorMatching(/d is a directory/));
    assert.deepEqual(await readdir(dir), ['d']);
  });

  test('inspect tells files, links, directories and nothing apart without following links', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, 'f'), 'abc', { mode: 0o640 });
    await symlink(path.join(dir, 'f'), path.join(dir, 'l'));
    await mkdir(path.join(dir, 'd'));
    const f = await inspect(dir, 'f');
    assert.equal(f.type, 'file');
    assert.equal(f.type === 'file' && f.stamp.size, 3);
    assert.deepEqual(await inspect(dir, 'l'), { type: 'other', what: 'a symbolic link' });
    assert.deepEqual(await inspect(dir, 'd'), { type: 'other', what: 'a directory' });
    assert.deepEqual(await inspect(dir, 'none'), { type: 'none' });
  });

  test('readIfExists: undefined when absent; with noFollow a link is refused', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, 'f'), 'abc');
    await symlink(path.join(dir, 'f'), path.join(dir, 'l'));
    assert.equal(await readIfExists(path.join(dir, 'none')), undefined);
    assert.equal((await readIfExists(path.join(dir, 'l')))?.toString(), 'abc');
    await assert.rejects(readIfExists(path.join(dir, 'l'), { noFollow: true }), ioErrorMatching(/cannot read/));
  });
});
