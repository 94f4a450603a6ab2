import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { NodeRecord, RECORD_FILE } from '../../src/node/record.js';
import { capture, remountReadOnly, smallTmpfs, snapshot, tempDir, tick, tmpfsUnavailableReason } from './support.js';

describe('NodeRecord', () => {
  test('is hidden and never looks like a network config to a runtime', () => {
    assert.ok(RECORD_FILE.startsWith('.'));
    assert.doesNotMatch(RECORD_FILE, /\.(conf|conflist|json)$/);
  });

  test('a missing record is empty, silently, and saving an untouched record writes nothing', async (t) => {
    const dir = await tempDir(t);
    const rep = capture();
    const r = await NodeRecord.load(dir, rep);
    assert.deepEqual(r.names('plugin'), []);
    assert.equal(r.get('plugin', 'bridge'), undefined);
    assert.deepEqual(rep.warnings, []);
    await r.save();
    assert.deepEqual(await readdir(dir), []);
  });

  test('entries are saved atomically (mode 0644) and load back in install order', async (t) => {
    const dir = await tempDir(t);
    const r = await NodeRecord.load(dir, capture());
    r.set('plugin', { name: 'macvlan', sha256: 'aa' });
    r.set('plugin', { name: 'bridge', stamp: { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4 } });
    r.set('config', { name: '05-multus.conf', sha256: 'bb' });
    await r.save();
    const st = await lstat(path.join(dir, RECORD_FILE));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o7777, 0o644);
    assert.deepEqual((await readdir(dir)).sort(), [RECORD_FILE], 'no temp files');
    const again = await NodeRecord.load(dir, capture());
    assert.deepEqual(again.names('plugin'), ['macvlan', 'bridge']);
    assert.deepEqual(again.names('config'), ['05-multus.conf']);
    assert.deepEqual(again.get('plugin', 'bridge')?.stamp, { size: 1, mtimeMs: 2, ctimeMs: 3, ino: 4 });
    // Updating an entry keeps its place.
    again.set('plugin', { name: 'macvlan', sha256: 'cc' });
    assert.deepEqual(again.names('plugin'), ['macvlan', 'bridge']);
  });

  test('a record of nothing is removed, so uninstalling everything leaves the dir as it was before', async (t) => {
    const dir = await tempDir(t);
    const r = await NodeRecord.load(dir, capture());
    r.set('plugin', { name: 'macvlan', sha256: 'aa' });
    r.set('config', { name: '05-multus.conf', sha256: 'bb' });
    await r.save();
    r.delete('plugin', 'macvlan');
    await r.save();
    assert.deepEqual(await readdir(dir), [RECORD_FILE], 'one entry left: still recorded');
    r.delete('config', '05-multus.conf');
    await r.save();
    assert.deepEqual(await readdir(dir), [], 'nothing left: no record file, no temp files');
    const again = await NodeRecord.load(dir, capture());
    assert.deepEqual(again.names('plugin'), []);
    assert.deepEqual(again.names('config'), []);
  });

  test('saves only when something changed', async (t) => {
    const dir = await tempDir(t);
    const r = await NodeRecord.load(dir, capture());
    r.set('plugin', { name: 'bridge', sha256: 'aa' });
    await r.save();
    const before = await snapshot(dir);
    await tick();
    await r.save(); // nothing changed since
    r.set('plugin', { name: 'bridge', sha256: 'aa' }); // same entry again
    await r.save();
    r.delete('plugin', 'not-there');
    await r.save();
    const reloaded = await NodeRecord.load(dir, capture());
    reloaded.set('plugin', { name: 'bridge', sha256: 'aa' });
    await reloaded.save();
    assert.deepEqual(await snapshot(dir), before, 'the record file and the dir untouched');

    r.set('plugin', { name: 'bridge', sha256: 'changed' });
    await r.save();
    assert.notDeepEqual(await snapshot(dir), before);
  });

  test('delete removes an entry; an emptied kind disappears from the file', async (t) => {
    const dir = await tempDir(t);
    const r = await NodeRecord.load(dir, capture());
    r.set('plugin', { name: 'a' });
    r.set('config', { name: 'c.conf' });
    await r.save();
    r.delete('plugin', 'a');
    await r.save();
    const text = await readFile(path.join(dir, RECORD_FILE), 'utf8');
    const doc = JSON.parse(text) as { kinds: Record<string, unknown> };
    assert.deepEqual(Object.keys(doc.kinds), ['config']);
    assert.deepEqual((await NodeRecord.load(dir, capture())).names('plugin'), []);
  });

  for (const [what, content] of [
    ['not JSON', '{ "format": "cni-node/record/v1", "kinds": {'],
    ['another format', '{"format":"someone-else/v9","kinds":{}}'],
    ['entries without names', '{"format":"cni-node/record/v1","kinds":{"plugin":[{"sha256":"x"}]}}'],
    ['a JSON array', '[1,2,3]'],
    ['empty', ''],
  ] as const) {
    test(`a corrupt record (${what}) is moved aside with a warning and treated as empty`, async (t) => {
      const dir = await tempDir(t);
      await writeFile(path.join(dir, RECORD_FILE), content);
      const rep = capture();
      const r = await NodeRecord.load(dir, rep);
      assert.deepEqual(r.names('plugin'), [], 'nothing is known to be ours');
      assert.equal(rep.warnings.length, 1);
      assert.match(rep.warnings[0] as string, /unreadable/);
      const names = await readdir(dir);
      assert.ok(!names.includes(RECORD_FILE), 'moved away');
      const aside = names.find((n) => n.startsWith(`${RECORD_FILE}.unreadable-`));
      assert.ok(aside, `kept for the operator: ${names.join(', ')}`);
      assert.doesNotMatch(aside, /\.(conf|conflist|json)$/);
      assert.equal(await readFile(path.join(dir, aside), 'utf8'), content);
      assert.ok((rep.warnings[0] as string).includes(aside));
      // The next save leaves a state that loads cleanly: an empty record is no file at all.
      await r.save();
      const rep2 = capture();
      assert.deepEqual((await NodeRecord.load(dir, rep2)).names('plugin'), []);
      assert.deepEqual(rep2.warnings, [], 'no second warning');
      assert.ok(!(await readdir(dir)).includes(RECORD_FILE));
    });
  }

  test('read-only (dry run): a corrupt record is left where it is', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, RECORD_FILE), 'garbage');
    const before = await snapshot(dir);
    const r = await NodeRecord.load(dir, capture(), { readOnly: true });
    assert.deepEqual(r.names('plugin'), []);
    assert.deepEqual(await snapshot(dir), before);
  });

  test('an unreadable record (a directory in its place): a warning, treated as empty', async (t) => {
    const dir = await tempDir(t);
    await mkdir(path.join(dir, RECORD_FILE));
    const rep = capture();
    const r = await NodeRecord.load(dir, rep);
    assert.deepEqual(r.names('config'), []);
    assert.equal(rep.warnings.length, 1);
    assert.match(rep.warnings[0] as string, /cannot read/);
  });
});

// Issue 13: the record is untrusted input like every other file in a node dir.
describe('NodeRecord: untrusted names from the record are refused, never acted on', () => {
  const hostile = ['../../../victim', '/etc/passwd', 'a/b', '..', '.cni-node.lock', 'x\nplugin y: removed', 'x'.repeat(300)];

  test('entries whose names fail names.ts are left out, each named in a warning with the record file; the good ones stay', async (t) => {
    const dir = await tempDir(t);
    const entries = [{ name: 'bridge' }, ...hostile.map((name) => ({ name })), { name: 'macvlan' }];
    await writeFile(path.join(dir, RECORD_FILE), JSON.stringify({ format: 'cni-node/record/v1', kinds: { plugin: entries } }));
    const rep = capture();
    const r = await NodeRecord.load(dir, rep);
    assert.deepEqual(r.names('plugin'), ['bridge', 'macvlan']);
    assert.equal(r.get('plugin', '../../../victim'), undefined);
    assert.ok(rep.warnings.length >= 5 && rep.warnings.length <= 6, rep.warnings.join('\n'));
    for (const w of rep.warnings) assert.ok(w.includes(path.join(dir, RECORD_FILE)), w);
    assert.match(rep.warnings[0] as string, /plugin entry "\.\.\/\.\.\/\.\.\/victim" contains a path separator.*refused/);
    assert.ok(
      rep.warnings.some((w) => /2 more bad entries/.test(w)),
      'a long list is summarised',
    );
    assert.ok(!rep.warnings.join('\n').includes('\nplugin y'), 'control characters are escaped, never printed raw');
    // Saved without them.
    await r.save();
    const saved = JSON.parse(await readFile(path.join(dir, RECORD_FILE), 'utf8')) as { kinds: { plugin: { name: string }[] } };
    assert.deepEqual(
      saved.kinds.plugin.map((e) => e.name),
      ['bridge', 'macvlan'],
    );
  });

  test('read-only (dry run): refused the same way, the file left as it is and marked for mending', async (t) => {
    const dir = await tempDir(t);
    await writeFile(path.join(dir, RECORD_FILE), JSON.stringify({ format: 'cni-node/record/v1', kinds: { config: [{ name: '../x.conf' }] } }));
    const before = await snapshot(dir);
    const rep = capture();
    const r = await NodeRecord.load(dir, rep, { readOnly: true });
    assert.deepEqual(r.names('config'), []);
    assert.equal(r.damaged, true);
    assert.equal(rep.warnings.length, 1);
    assert.deepEqual(await snapshot(dir), before);
  });

  test('fields of the wrong type are dropped, never trusted (a stamp that is a string, meta that is not an object)', async (t) => {
    const dir = await tempDir(t);
    await writeFile(
      path.join(dir, RECORD_FILE),
      JSON.stringify({ format: 'cni-node/record/v1', kinds: { plugin: [{ name: 'bridge', stamp: 'absent', meta: 'x', sha256: 7 }] } }),
    );
    const r = await NodeRecord.load(dir, capture());
    assert.deepEqual(r.get('plugin', 'bridge'), { name: 'bridge' });
  });
});

describe('NodeRecord: a record that cannot be read is moved aside, or the run stops', () => {
  for (const [what, make, re] of [
    ['a FIFO', async (f: string) => execFileSync('mkfifo', [f]), /is a FIFO \(named pipe\), not a regular file/],
    [
      'a symbolic link (to a valid record elsewhere)',
      async (f: string) => {
        const elsewhere = `${path.dirname(f)}-elsewhere`;
        await writeFile(elsewhere, JSON.stringify({ format: 'cni-node/record/v1', kinds: { plugin: [{ name: 'victim' }] } }));
        await symlink(elsewhere, f);
      },
      /is a symbolic link, not a regular file/,
    ],
    [
      'over 16 MiB',
      async (f: string) => {
        await writeFile(f, JSON.stringify({ format: 'cni-node/record/v1', kinds: {} }));
        await truncate(f, 17 * 1024 * 1024);
      },
      /is 17\.0 MiB; the limit is 16\.0 MiB/,
    ],
  ] as const) {
    test(`${what}: moved aside with a warning saying why, never read, not overwritten`, async (t) => {
      const dir = await tempDir(t);
      await make(path.join(dir, RECORD_FILE));
      const rep = capture();
      const r = await NodeRecord.load(dir, rep);
      assert.deepEqual(r.names('plugin'), []);
      assert.equal(rep.warnings.length, 1);
      assert.match(rep.warnings[0] as string, re);
      assert.match(rep.warnings[0] as string, /moved to .*\.cni-node-state\.unreadable-/);
      assert.ok((await readdir(dir)).some((n) => n.startsWith(`${RECORD_FILE}.unreadable-`)));
    });
  }

  test(
    'when it cannot be moved aside (a read-only dir), load stops with an error and the record is left as it is',
    { skip: tmpfsUnavailableReason() },
    async (t) => {
      const dir = await smallTmpfs(t, 256);
      await writeFile(path.join(dir, RECORD_FILE), 'garbage');
      await remountReadOnly(dir);
      await assert.rejects(
        NodeRecord.load(dir, capture()),
        /cannot read cni-node's record .* and cannot move it aside .*EROFS.*stopping rather than overwrite it/,
      );
      assert.equal(await readFile(path.join(dir, RECORD_FILE), 'utf8'), 'garbage');
    },
  );
});
