// watchFile / watchDir against real files: atomic rename replaces, kubelet's
// ConfigMap-volume `..data` swap (done exactly like kubelet's AtomicWriter),
// deletion and re-creation, identical rewrites (no event), the safety net, and
// closing without leaked handles.
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, mkdir, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { watchDir, watchFile } from '../../src/daemon/file-watch.js';

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'cni-node-fw-'));
  dirs.push(d);
  return d;
}

/** Collects callback values; `next()` waits for the next one, `quiet()` asserts none comes. */
class Collector<T> {
  readonly values: T[] = [];
  private waiters: ((v: T) => void)[] = [];
  private taken = 0;

  push = (v: T): void => {
    this.values.push(v);
    const w = this.waiters.shift();
    if (w) {
      this.taken++;
      w(v);
    }
  };

  next(timeoutMs = 3_000): Promise<T> {
    if (this.taken < this.values.length) return Promise.resolve(this.values[this.taken++] as T);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no callback within ${timeoutMs} ms (got ${JSON.stringify(this.values)})`)), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }

  async quiet(ms = 400): Promise<void> {
    const before = this.values.length;
    await new Promise((r) => setTimeout(r, ms));
    assert.deepEqual(this.values.slice(before), [], 'no callback expected');
    assert.equal(this.taken, this.values.length, `unconsumed callbacks: ${JSON.stringify(this.values.slice(this.taken))}`);
  }
}

/** Atomic replace, as cni-node (and most editors) write: temp file + rename. */
async function replaceByRename(file: string, content: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${Math.random().toString(16).slice(2)}`);
  await writeFile(tmp, content);
  await rename(tmp, file);
}

function replaceByRenameSync(file: string, content: string): void {
  const tmp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${Math.random().toString(16).slice(2)}`);
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/**
 * kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go): the payload goes into
 * a new timestamped dir `..<ts>`, a symlink `..data_tmp` → it is renamed over
 * `..data`, user-visible names are symlinks `name → ..data/name` (created once),
 * and the old timestamped dir is removed.
 */
let tsCounter = 0;
async function kubeletWrite(volume: string, payload: Record<string, string>): Promise<void> {
  const ts = `..2026_01_01_00_00_${String(++tsCounter).padStart(2, '0')}.${Math.random().toString(16).slice(2, 10)}`;
  const tsDir = path.join(volume, ts);
  await mkdir(tsDir);
  for (const [name, content] of Object.entries(payload)) await writeFile(path.join(tsDir, name), content);
  let old: string | undefined;
  try {
    old = await readlink(path.join(volume, '..data'));
  } catch {
    old = undefined;
  }
  await symlink(ts, path.join(volume, '..data_tmp'));
  await rename(path.join(volume, '..data_tmp'), path.join(volume, '..data'));
  for (const name of Object.keys(payload)) {
    try {
      await symlink(path.join('..data', name), path.join(volume, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  if (old !== undefined) await rm(path.join(volume, old), { recursive: true, force: true });
}

function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

test('watchFile: initial content, rename replace, identical rewrite is silent, in-place write', async () => {
  const dir = await tempDir();
  const file = path.join(dir, '10-calico.conflist');
  await writeFile(file, 'v1');
  const got = new Collector<string | undefined>();
  const w = watchFile(file, got.push);
  try {
    assert.equal(await w.ready, 'v1');
    assert.equal(await got.next(), 'v1');

    await replaceByRename(file, 'v2');
    assert.equal(await got.next(), 'v2');

    // Same bytes again, by rename and in place: nothing to report.
    await replaceByRename(file, 'v2');
    await writeFile(file, 'v2');
    await got.quiet();

    await writeFile(file, 'v3');
    assert.equal(await got.next(), 'v3');
    assert.equal(w.current(), 'v3');

    // A burst of writes is debounced into the last value. The writes are synchronous,
    // so no timer can fire between them however loaded the machine is: the test
    // checks coalescing, not how fast the writer is.
    for (let i = 0; i < 20; i++) replaceByRenameSync(file, `burst-${i}`);
    assert.equal(await got.next(), 'burst-19');
    await got.quiet();
  } finally {
    w.close();
  }
});

test('watchFile: initial: false delivers only changes', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'f');
  await writeFile(file, 'a');
  const got = new Collector<string | undefined>();
  const w = watchFile(file, got.push, { initial: false });
  try {
    assert.equal(await w.ready, 'a');
    await got.quiet(200);
    await replaceByRename(file, 'b');
    assert.equal(await got.next(), 'b');
  } finally {
    w.close();
  }
});

test('watchFile: kubelet ConfigMap volume ..data swap', async () => {
  const volume = await tempDir();
  await kubeletWrite(volume, { '05-multus.conf': 'one', other: 'x' });
  const file = path.join(volume, '05-multus.conf');
  const got = new Collector<string | undefined>();
  const w = watchFile(file, got.push, { initial: false });
  try {
    assert.equal(await w.ready, 'one');

    await kubeletWrite(volume, { '05-multus.conf': 'two', other: 'x' });
    assert.equal(await got.next(), 'two');

    // Another key changes, ours does not: new inode, same bytes → nothing.
    await kubeletWrite(volume, { '05-multus.conf': 'two', other: 'y' });
    await got.quiet();

    await kubeletWrite(volume, { '05-multus.conf': 'three', other: 'y' });
    assert.equal(await got.next(), 'three');

    // The key removed from the ConfigMap: the symlink now dangles.
    await kubeletWrite(volume, { other: 'y' });
    assert.equal(await got.next(), undefined);
  } finally {
    w.close();
  }
});

test('watchFile: deleted and recreated; missing file and directory at start; directory replaced', async () => {
  const root = await tempDir();
  const dir = path.join(root, 'net.d');
  const file = path.join(dir, '10-calico.conflist');
  const got = new Collector<string | undefined>();
  const w = watchFile(file, got.push);
  try {
    assert.equal(await w.ready, undefined);
    assert.equal(await got.next(), undefined);

    // Neither the directory nor the file existed: both appear.
    await mkdir(dir);
    await writeFile(file, 'first');
    assert.equal(await got.next(), 'first');

    await unlink(file);
    assert.equal(await got.next(), undefined);
    await writeFile(file, 'again');
    assert.equal(await got.next(), 'again');

    // The whole directory removed and made again.
    await rm(dir, { recursive: true });
    assert.equal(await got.next(), undefined);
    await mkdir(dir);
    await writeFile(file, 'new dir');
    assert.equal(await got.next(), 'new dir');
    await replaceByRename(file, 'new dir 2');
    assert.equal(await got.next(), 'new dir 2');
    await got.quiet();
  } finally {
    w.close();
  }
});

test('watchFile: symlink to a file in another directory sees in-place edits of the target', async () => {
  const a = await tempDir();
  const b = await tempDir();
  await writeFile(path.join(b, 'real'), 'r1');
  await symlink(path.join(b, 'real'), path.join(a, 'link'));
  const got = new Collector<string | undefined>();
  const w = watchFile(path.join(a, 'link'), got.push, { initial: false });
  try {
    await w.ready;
    await writeFile(path.join(b, 'real'), 'r2');
    assert.equal(await got.next(), 'r2');
  } finally {
    w.close();
  }
});

test('watchFile: a throwing onChange is reported and the watch goes on; deliveries never overlap', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'f');
  await writeFile(file, '0');
  const errors: string[] = [];
  const seen: (string | undefined)[] = [];
  let running = 0;
  let overlapped = false;
  const w = watchFile(
    file,
    async (c) => {
      running++;
      if (running > 1) overlapped = true;
      seen.push(c);
      await new Promise((r) => setTimeout(r, 150));
      running--;
      if (c === '1') throw new Error('handler failed');
    },
    { initial: false, onError: (e) => errors.push(e.message) },
  );
  try {
    await w.ready;
    await replaceByRename(file, '1');
    await new Promise((r) => setTimeout(r, 100));
    await replaceByRename(file, '2');
    await new Promise((r) => setTimeout(r, 100));
    await replaceByRename(file, '3');
    const deadline = Date.now() + 3_000;
    while (seen.at(-1) !== '3' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(seen.at(-1), '3');
    assert.equal(seen[0], '1');
    assert.equal(overlapped, false);
    assert.deepEqual(errors, ['handler failed']);
  } finally {
    w.close();
  }
});

test('watchFile/watchDir: close (and abort) release every handle and timer; no callback after close', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'f');
  await writeFile(file, 'x');
  const before = handleCounts();
  const controller = new AbortController();
  const calls: unknown[] = [];
  const fw = watchFile(file, (c) => calls.push(c), { initial: false, signal: controller.signal, recheckMs: 1_000 });
  const dw = watchDir(dir, (n) => calls.push(n), { signal: controller.signal, recheckMs: 1_000 });
  await Promise.all([fw.ready, dw.ready]);
  assert.ok((handleCounts()['FSEventWrap'] ?? 0) > (before['FSEventWrap'] ?? 0), 'watching holds fs.watch handles');
  await writeFile(file, 'y'); // an event whose debounce timer is pending when we close
  controller.abort();
  assert.equal(fw.closed, true);
  assert.equal(dw.closed, true);
  // fs.watch handles finish closing a moment later (libuv close callbacks).
  await new Promise((r) => setTimeout(r, 50));
  const after = handleCounts();
  assert.equal(after['FSEventWrap'] ?? 0, before['FSEventWrap'] ?? 0, 'fs.watch handles released');
  assert.ok((after['Timeout'] ?? 0) <= (before['Timeout'] ?? 0), 'timers released');
  // Past the safety-net interval, with the file changed: still nothing.
  await writeFile(file, 'z');
  await new Promise((r) => setTimeout(r, 1_300));
  assert.deepEqual(calls, []);
});

test('watchDir: rename replace, delete, create, ..data swap; hidden names left out; identical content is still a change of the file', async () => {
  const dir = await tempDir();
  await writeFile(path.join(dir, '10-calico.conflist'), 'a');
  await writeFile(path.join(dir, 'macvlan'), 'bin');
  const got = new Collector<string[]>();
  const w = watchDir(dir, got.push);
  try {
    await w.ready;
    await got.quiet(200);

    await replaceByRename(path.join(dir, '10-calico.conflist'), 'b');
    assert.deepEqual(await got.next(), ['10-calico.conflist']);

    await unlink(path.join(dir, 'macvlan'));
    assert.deepEqual(await got.next(), ['macvlan']);

    await writeFile(path.join(dir, '.hidden'), 'h');
    await got.quiet(300);

    await writeFile(path.join(dir, 'ipvlan'), 'x');
    await writeFile(path.join(dir, 'bridge'), 'y');
    const names = await got.next();
    assert.deepEqual(names, ['bridge', 'ipvlan']);
  } finally {
    w.close();
  }

  // A ConfigMap volume: the swap reports the names that point into ..data.
  const volume = await tempDir();
  await kubeletWrite(volume, { '05-multus.conf': '1', 'other.conf': 'o' });
  const got2 = new Collector<string[]>();
  const w2 = watchDir(volume, got2.push);
  try {
    await w2.ready;
    await kubeletWrite(volume, { '05-multus.conf': '2', 'other.conf': 'o' });
    assert.deepEqual(await got2.next(), ['05-multus.conf', 'other.conf']);
    const hidden = new Collector<string[]>();
    const w3 = watchDir(volume, hidden.push, { hidden: true });
    try {
      await w3.ready;
      await kubeletWrite(volume, { '05-multus.conf': '3', 'other.conf': 'o' });
      const all = await hidden.next();
      assert.ok(all.includes('..data') && all.includes('05-multus.conf'), JSON.stringify(all));
    } finally {
      w3.close();
    }
  } finally {
    w2.close();
  }
});

test('watchDir: the directory appears later, is removed, and comes back', async () => {
  const root = await tempDir();
  const dir = path.join(root, 'bin');
  const got = new Collector<string[]>();
  const w = watchDir(dir, got.push);
  try {
    await w.ready;
    await mkdir(dir);
    await writeFile(path.join(dir, 'multus'), 'm');
    assert.deepEqual(await got.next(), ['multus']);
    await rm(dir, { recursive: true });
    assert.deepEqual(await got.next(), ['multus']);
    await mkdir(dir);
    await writeFile(path.join(dir, 'multus'), 'm2');
    assert.deepEqual(await got.next(), ['multus']);
  } finally {
    w.close();
  }
});

test('safety net: a change fs.watch cannot see (target of a symlink elsewhere) is found by the periodic re-check', async () => {
  const elsewhere = await tempDir();
  const dir = await tempDir();
  await writeFile(path.join(elsewhere, 'real.conf'), 'one');
  await symlink(path.join(elsewhere, 'real.conf'), path.join(dir, 'link.conf'));
  const got = new Collector<string[]>();
  const w = watchDir(dir, got.push, { recheckMs: 300 });
  try {
    await w.ready;
    // An in-place edit of the target makes no event in `dir`.
    await writeFile(path.join(elsewhere, 'real.conf'), 'two, longer');
    assert.deepEqual(await got.next(2_000), ['link.conf']);
  } finally {
    w.close();
  }
});
