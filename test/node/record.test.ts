import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { NodeRecord, RECORD_FILE } from '../../src/node/record.js';
import { capture, snapshot, tempDir, tick } from './support.js';

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
