// Node-side faults (issue 6), through the real ./bin/cni-node process with Debian's
// real CNI plugins: a full disk, read-only and missing node dirs, an unreadable
// plugins dir, destinations that are links or directories, a pointer target that
// links out of the node configs dir, several cni-node processes on the same node
// dirs at once, and a lock left by a holder that died.
//
// Each case asserts the exit code, that the message names the file or dir and says
// what is wrong, and that nothing else on the node changed. Mounts (tmpfs) are
// undone in finally blocks and again in an after() hook.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, copyFile, lstat, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DEBIAN_PLUGINS, dirsEnv, failed, LOCK, noRootOrPluginsReason, ok, RECORD, runCli, show, TEMP_PREFIX, type CliResult } from '../support/cli.js';
import { nodeTree, sha, snapshot, TempRoots, tick, visible, type NodeTree } from '../support/tree.js';

const DEBIAN = DEBIAN_PLUGINS;

const skip = noRootOrPluginsReason('not root: these tests mount tmpfs file systems (run the tests as root)');
const hasSetpriv = existsSync('/usr/bin/setpriv');

// ---------------------------------------------------------------------------
// helpers

const roots = new TempRoots();
const mounts: string[] = [];

after(async () => {
  // Never leave a tmpfs mounted, even when a test failed half way.
  while (mounts.length > 0) umount(mounts[mounts.length - 1] as string);
  // Every root is removed even if one cannot be; the first failure is reported.
  await roots.removeAll();
});

const tree = (): Promise<NodeTree> => nodeTree(roots, 'cni-node-faults-');

function mountTmpfs(dir: string, size: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  mounts.push(dir);
}

function umount(dir: string): void {
  const i = mounts.indexOf(dir);
  if (i === -1) return;
  mounts.splice(i, 1);
  if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
}

function isMounted(dir: string): boolean {
  return spawnSync('mountpoint', ['-q', dir]).status === 0;
}

/** Runs the CLI under test (CNI_NODE_TEST_CLI or ./bin/cni-node) with exactly `env`. */
function run(args: string[], env: NodeJS.ProcessEnv, opts: { prefix?: string[]; timeoutMs?: number } = {}): Promise<CliResult> {
  return runCli(args, { env, ...opts });
}

/** A snapshot without the dir's own timestamps (which a created and removed lock file moves). */
function withoutDir(snap: Record<string, string>): Record<string, string> {
  const { '.': _dir, ...rest } = snap;
  return rest;
}

async function temps(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const conf = (name: string, extra = '') => `{"cniVersion":"0.4.0","name":"${name}","type":"bridge"${extra}}\n`;

// ---------------------------------------------------------------------------

describe('disk full', { skip }, () => {
  const allPlugins = () => readdir(DEBIAN).then((ns) => ns.filter((n) => !n.startsWith('.')).sort());

  /** A 6 MiB tmpfs as the node plugins dir with a small "old" version of 4 plugins; then the full set (44 MB) does not fit. */
  async function fullDiskScenario() {
    const t = await tree();
    const old = path.join(t.root, 'old-image');
    await mkdir(old);
    for (const n of ['bridge', 'host-local', 'loopback', 'portmap'])
      await writeFile(path.join(old, n), (await readFile(path.join(DEBIAN, n))).subarray(0, 200_000));
    mountTmpfs(t.bin, '6m');
    try {
      ok(await run(['install', '--plugins=bridge,host-local,loopback,portmap'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: old }));
      const before = await snapshot(t.bin);
      await tick(20);
      const r = await run(['install', `--plugins=${(await allPlugins()).join(',')}`], dirsEnv(t));
      return { t, old, before, r };
    } catch (e) {
      umount(t.bin);
      throw e;
    }
  }

  test('a plugins dir that fills up: exit 1, the error names the file and says the disk is full, every old file intact', async () => {
    const { t, before, r } = await fullDiskScenario();
    try {
      failed(r);
      const m = /cannot write (\S+): ENOSPC[^\n]*\(the disk is full; free space on the node and run again\)/.exec(r.stderr);
      assert.ok(m, `the error names the file and says the disk is full\n${show(r)}`);
      assert.equal(path.dirname(m[1] as string), t.bin);
      assert.doesNotMatch(r.stdout, /: (installed|updated)$/m, 'no item reported as done');
      // Every previously installed file (and the record) is exactly as before: same
      // inode, mtime and bytes; no temporary file is left.
      assert.deepEqual(withoutDir(await snapshot(t.bin)), withoutDir(before));
      assert.deepEqual(await temps(t.bin), []);
      assert.ok(!existsSync(path.join(t.bin, LOCK)), 'the lock was released');
    } finally {
      umount(t.bin);
    }
  });

  // stage() copies 4 plugins at a time. When one copy fails with ENOSPC, the copies
  // still under way must be waited for before the staged files are discarded, or
  // they finish afterwards and stay in the node dir (this happened before cd1e489).
  test('a full disk leaves no temporary files behind, whichever copy fails first', async () => {
    // A race, so tried several times.
    for (let attempt = 1; attempt <= 4; attempt++) {
      const { t, r } = await fullDiskScenario();
      try {
        failed(r);
        assert.deepEqual(await temps(t.bin), [], `attempt ${attempt}`);
      } finally {
        umount(t.bin);
      }
    }
  });

  test('after a full disk, a run that fits succeeds and cleans up', async () => {
    const { t, r } = await fullDiskScenario();
    try {
      failed(r);
      const r2 = ok(await run(['install', '--plugins=bridge,loopback'], dirsEnv(t)));
      assert.match(r2.stdout, /^plugin bridge: updated$/m);
      assert.deepEqual(await temps(t.bin), [], 'a run that takes the lock removes what an earlier run left');
      for (const n of ['bridge', 'loopback']) assert.equal(sha(await readFile(path.join(t.bin, n))), sha(await readFile(path.join(DEBIAN, n))));
      assert.equal((await readFile(path.join(t.bin, 'portmap'))).length, 200_000, 'untouched plugins keep their old version');
    } finally {
      umount(t.bin);
    }
  });

  test('a configs dir that fills up: the config that does not fit keeps its old version, the error names it', async () => {
    const t = await tree();
    mountTmpfs(t.netd, '1m');
    try {
      await writeFile(path.join(t.templates, '20-big.conf'), conf('big-old'));
      ok(await run(['install', '--configs=20-big.conf'], dirsEnv(t)));
      const oldBig = await readFile(path.join(t.netd, '20-big.conf'));
      await writeFile(path.join(t.netd, 'filler'), Buffer.alloc(900_000)); // another program filled the disk
      await writeFile(path.join(t.templates, '20-big.conf'), conf('big-new', `,"pad":"${'x'.repeat(300_000)}"`));
      const before = await snapshot(t.netd);
      await tick(20);
      const r = failed(await run(['install', '--configs=20-big.conf'], dirsEnv(t)));
      assert.match(r.stderr, new RegExp(`cannot write ${path.join(t.netd, '20-big.conf')}: ENOSPC.*the disk is full`), show(r));
      assert.deepEqual(await readFile(path.join(t.netd, '20-big.conf')), oldBig);
      assert.deepEqual(await temps(t.netd), []);
      assert.deepEqual(withoutDir(await snapshot(t.netd)), withoutDir(before));
    } finally {
      umount(t.netd);
    }
  });

  // Found while writing the test above (reported to the lead): plugins are staged
  // (all copied to temporary files) before the first rename, so a full disk stops a
  // plugin run before anything changes; configs are not: each is written in turn,
  // so with two configs the first is replaced and the second fails.
  test('a full configs dir changes no config when one of them does not fit', {}, async () => {
    const t = await tree();
    mountTmpfs(t.netd, '1m');
    try {
      await writeFile(path.join(t.templates, '10-small.conf'), conf('small-old'));
      await writeFile(path.join(t.templates, '20-big.conf'), conf('big-old'));
      ok(await run(['install', '--configs=10-small.conf,20-big.conf'], dirsEnv(t)));
      await writeFile(path.join(t.netd, 'filler'), Buffer.alloc(900_000));
      await writeFile(path.join(t.templates, '10-small.conf'), conf('small-new'));
      await writeFile(path.join(t.templates, '20-big.conf'), conf('big-new', `,"pad":"${'x'.repeat(300_000)}"`));
      const before = await snapshot(t.netd);
      await tick(20);
      failed(await run(['install', '--configs=10-small.conf,20-big.conf'], dirsEnv(t)));
      assert.equal(await readFile(path.join(t.netd, '10-small.conf'), 'utf8'), conf('small-old'));
      assert.deepEqual(withoutDir(await snapshot(t.netd)), withoutDir(before));
    } finally {
      umount(t.netd);
    }
  });
});

describe('read-only, missing and unreadable dirs', { skip }, () => {
  test('read-only node dirs: exit 1, "read-only" naming the dir, nothing changed; a run with nothing to change still succeeds', async () => {
    const t = await tree();
    const old = path.join(t.root, 'old-image');
    await mkdir(old);
    for (const n of ['bridge', 'loopback']) await writeFile(path.join(old, n), (await readFile(path.join(DEBIAN, n))).subarray(0, 100_000));
    mountTmpfs(t.bin, '64m');
    mountTmpfs(t.netd, '4m');
    try {
      await writeFile(path.join(t.templates, '10-a.conf'), conf('a'));
      ok(await run(['install', '--plugins=bridge,loopback', '--configs=10-a.conf'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: old }));
      execFileSync('mount', ['-o', 'remount,ro', t.bin]);
      execFileSync('mount', ['-o', 'remount,ro', t.netd]);
      const before = { bin: await snapshot(t.bin), netd: await snapshot(t.netd) };
      await tick(20);

      // New plugin bytes (the real ones) into a read-only plugins dir.
      const r1 = failed(await run(['install', '--plugins=bridge,loopback'], dirsEnv(t)));
      assert.match(r1.stderr, new RegExp(`${t.bin}\\S*: EROFS[^\\n]*\\(the directory is read-only; mount the node directory read-write\\)`), show(r1));
      // A changed template into a read-only configs dir.
      await writeFile(path.join(t.templates, '10-a.conf'), conf('a2'));
      const r2 = failed(await run(['install', '--configs=10-a.conf'], dirsEnv(t)));
      assert.match(r2.stderr, new RegExp(`${t.netd}\\S*: EROFS[^\\n]*read-only`), show(r2));
      // A removal.
      const r3 = failed(await run(['uninstall', '--plugins=loopback'], dirsEnv(t)));
      assert.match(r3.stderr, /read-only/, show(r3));
      assert.deepEqual({ bin: await snapshot(t.bin), netd: await snapshot(t.netd) }, before);

      // Nothing to change: no lock, no write, so a read-only mount is fine.
      await writeFile(path.join(t.templates, '10-a.conf'), conf('a'));
      const r4 = ok(await run(['install', '--plugins=bridge,loopback', '--configs=10-a.conf'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: old }));
      assert.match(r4.stdout, /^nothing to change$/m);
    } finally {
      umount(t.netd);
      umount(t.bin);
    }
    assert.ok(!isMounted(t.bin) && !isMounted(t.netd));
  });

  test('a missing node dir: exit 1, the error says which and to mount it; nothing is created', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '10-a.conf'), conf('a'));
    const parent = await snapshot(t.root);
    const r1 = failed(await run(['install', '--plugins=bridge'], { ...dirsEnv(t), CNI_NODE_HOST_PLUGINS_DIR: path.join(t.root, 'no-bin') }));
    assert.match(r1.stderr, new RegExp(`the node plugins dir ${path.join(t.root, 'no-bin')} does not exist; mount the node's /opt/cni/bin there`), show(r1));
    const r2 = failed(await run(['install', '--configs=10-a.conf'], { ...dirsEnv(t), CNI_NODE_HOST_CONFIGS_DIR: path.join(t.root, 'no-netd') }));
    assert.match(r2.stderr, new RegExp(`the node configs dir ${path.join(t.root, 'no-netd')} does not exist; mount the node's /etc/cni/net.d there`), show(r2));
    // Both at once: nothing is written to the dir that does exist either.
    const r3 = failed(
      await run(['install', '--plugins=bridge', '--configs=10-a.conf'], { ...dirsEnv(t), CNI_NODE_HOST_CONFIGS_DIR: path.join(t.root, 'no-netd') }),
    );
    assert.match(r3.stderr, /does not exist; mount/, show(r3));
    assert.deepEqual(await readdir(t.bin), []);
    assert.deepEqual(await snapshot(t.root), parent);
  });

  // chmod 000 does not stop root (CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH), which is
  // what cni-node runs as. So "not readable" is made three ways: the plugins dir
  // does not exist; a file stands where the dir should be; and, for real, the CLI
  // runs as root without those two capabilities (setpriv --bounding-set) on a
  // chmod 000 dir / file.
  test('plugins dir that does not exist / is a file: exit 1, the dir is named, nothing changed', async () => {
    const t = await tree();
    const afile = path.join(t.root, 'a-file');
    await writeFile(afile, 'not a dir');
    const before = await snapshot(t.bin);
    const r1 = failed(await run(['install', '--plugins=loopback'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: path.join(t.root, 'no-image') }));
    assert.match(r1.stderr, new RegExp(`the plugins dir ${path.join(t.root, 'no-image')} does not exist`), show(r1));
    const r2 = failed(await run(['install', '--plugins=loopback'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: afile }));
    assert.match(r2.stderr, new RegExp(`the plugins dir ${afile} is not a directory`), show(r2));
    const r3 = failed(await run(['list'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: path.join(t.root, 'no-image') }));
    assert.match(r3.stderr, new RegExp(`cannot list the plugins dir ${path.join(t.root, 'no-image')}: ENOENT`), show(r3));
    assert.deepEqual(await snapshot(t.bin), before);
  });

  // Found by the test above (reported to the lead).
  test('a plugins dir that does not exist is reported as such', {}, async () => {
    const t = await tree();
    const r = failed(await run(['install', '--plugins=loopback'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: path.join(t.root, 'no-image') }));
    assert.match(r.stderr, new RegExp(`plugins dir ${path.join(t.root, 'no-image')} does not exist`), show(r));
  });

  test(
    'plugins dir / plugin file unreadable (root without CAP_DAC_OVERRIDE): exit 1, EACCES naming the file, nothing changed',
    { skip: hasSetpriv ? undefined : 'setpriv (util-linux) missing' },
    async () => {
      const t = await tree();
      const img = path.join(t.root, 'image');
      await mkdir(img);
      for (const n of ['bridge', 'loopback']) await copyFile(path.join(DEBIAN, n), path.join(img, n));
      const noDac = ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search'];
      ok(await run(['install', '--plugins=bridge'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: img }, { prefix: noDac }));
      await appendFile(path.join(img, 'bridge'), 'new build');
      const before = await snapshot(t.bin);
      await tick(20);
      try {
        await chmod(img, 0o000);
        const r1 = failed(await run(['install', '--plugins=bridge,loopback'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: img }, { prefix: noDac }));
        assert.match(r1.stderr, new RegExp(`${img}/(bridge|loopback)\\b[^\\n]*EACCES`), show(r1));
        const r2 = failed(await run(['list'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: img }, { prefix: noDac }));
        assert.match(r2.stderr, new RegExp(`cannot list the plugins dir ${img}: EACCES`), show(r2));
        await chmod(img, 0o755);
        await chmod(path.join(img, 'bridge'), 0o000);
        // (bridge alone: with several plugins a failed copy can leave another's temporary file, see 'disk full')
        const r3 = failed(await run(['install', '--plugins=bridge'], { ...dirsEnv(t), CNI_NODE_PLUGINS_DIR: img }, { prefix: noDac }));
        assert.match(r3.stderr, new RegExp(`EACCES[^\\n]*'${img}/bridge'`), show(r3));
      } finally {
        await chmod(img, 0o755);
        await chmod(path.join(img, 'bridge'), 0o755);
      }
      // These runs got past validation and took the lock, whose creation and removal
      // move the dir's own mtime; every entry is as it was.
      assert.deepEqual(withoutDir(await snapshot(t.bin)), withoutDir(before));
    },
  );
});

describe('destinations that are links or directories', { skip }, () => {
  test('a plugin / config destination that is a symlink to a file outside the node dir: refused, the outside file untouched', async () => {
    const t = await tree();
    const outside = path.join(t.root, 'outside');
    await mkdir(outside);
    const victim = path.join(outside, 'victim');
    await writeFile(victim, 'precious\n');
    const vBefore = await lstat(victim);
    await symlink(victim, path.join(t.bin, 'bridge'));
    await symlink(victim, path.join(t.netd, '10-a.conf'));
    await writeFile(path.join(t.templates, '10-a.conf'), conf('a'));
    const before = { bin: await snapshot(t.bin), netd: await snapshot(t.netd) };
    await tick(20);

    const r1 = failed(await run(['install', '--plugins=loopback,bridge'], dirsEnv(t)));
    assert.match(r1.stderr, new RegExp(`plugin bridge: ${path.join(t.bin, 'bridge')} is a symbolic link; cni-node only replaces regular files`), show(r1));
    const r2 = failed(await run(['install', '--configs=10-a.conf'], dirsEnv(t)));
    assert.match(r2.stderr, new RegExp(`config 10-a.conf: ${path.join(t.netd, '10-a.conf')} is a symbolic link`), show(r2));
    const r3 = failed(await run(['apply', '--plugins=bridge,loopback', '--configs=10-a.conf'], dirsEnv(t)));
    assert.match(r3.stderr, /2 problems found; nothing was changed/, show(r3));
    assert.deepEqual({ bin: await snapshot(t.bin), netd: await snapshot(t.netd) }, before, 'loopback was not installed either');
    const vAfter = await lstat(victim);
    assert.equal(await readFile(victim, 'utf8'), 'precious\n');
    assert.deepEqual([vAfter.ino, vAfter.mtimeMs, vAfter.mode], [vBefore.ino, vBefore.mtimeMs, vBefore.mode]);

    // Removing such a name removes the link, never what it points to.
    const r4 = ok(await run(['uninstall', '--plugins=bridge', '--configs=10-a.conf'], dirsEnv(t)));
    assert.match(r4.stdout, /^plugin bridge: removed$/m);
    assert.deepEqual(await readdir(t.bin), []);
    assert.equal(await readFile(victim, 'utf8'), 'precious\n');
    assert.equal((await lstat(victim)).mtimeMs, vBefore.mtimeMs);
  });

  test('a destination that is a directory: refused, the directory and its content untouched', async () => {
    const t = await tree();
    await mkdir(path.join(t.bin, 'loopback'));
    await writeFile(path.join(t.bin, 'loopback', 'inside'), 'x');
    await mkdir(path.join(t.netd, '10-a.conf'));
    await writeFile(path.join(t.templates, '10-a.conf'), conf('a'));
    const before = { bin: await snapshot(t.bin), netd: await snapshot(t.netd), inside: await snapshot(path.join(t.bin, 'loopback')) };
    await tick(20);
    const r1 = failed(await run(['install', '--plugins=bridge,loopback'], dirsEnv(t)));
    assert.match(r1.stderr, new RegExp(`plugin loopback: ${path.join(t.bin, 'loopback')} is a directory; cni-node only replaces regular files`), show(r1));
    const r2 = failed(await run(['install', '--configs=10-a.conf'], dirsEnv(t)));
    assert.match(r2.stderr, new RegExp(`config 10-a.conf: ${path.join(t.netd, '10-a.conf')} is a directory`), show(r2));
    const r3 = failed(await run(['uninstall', '--plugins=loopback'], dirsEnv(t)));
    assert.match(r3.stderr, /is a directory/, show(r3));
    assert.deepEqual({ bin: await snapshot(t.bin), netd: await snapshot(t.netd), inside: await snapshot(path.join(t.bin, 'loopback')) }, before);
  });

  test('a pointer whose node file is a symlink out of the node configs dir: refused, nothing written; a link inside the dir is followed', async () => {
    const t = await tree();
    const outside = path.join(t.root, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret.conflist'), '{"cniVersion":"0.4.0","name":"SECRET","plugins":[{"type":"bridge"}]}\n');
    await symlink(path.join(outside, 'secret.conflist'), path.join(t.netd, '10-abs.conflist'));
    await symlink('../outside/secret.conflist', path.join(t.netd, '11-rel.conflist'));
    await writeFile(path.join(t.netd, '12-real.conflist'), '{"cniVersion":"0.4.0","name":"inside","plugins":[{"type":"bridge"}]}\n');
    await symlink('12-real.conflist', path.join(t.netd, '13-in.conflist'));
    for (const [tpl, target] of [
      ['05-abs.conf', '10-abs.conflist'],
      ['06-rel.conf', '11-rel.conflist'],
      ['07-in.conf', '13-in.conflist'],
    ]) {
      await writeFile(path.join(t.templates, tpl as string), `{"cniVersion":"0.4.0","name":"m","type":"bridge","delegates":[__${target}__]}\n`);
    }
    const before = await snapshot(t.netd);
    await tick(20);
    for (const [tpl, link] of [
      ['05-abs.conf', '10-abs.conflist'],
      ['06-rel.conf', '11-rel.conflist'],
    ]) {
      const r = failed(await run(['install', `--configs=${tpl}`], dirsEnv(t)));
      assert.match(
        r.stderr,
        new RegExp(
          `${path.join(t.netd, link as string)} is a link to ${path.join(outside, 'secret.conflist')}, outside ${t.netd}; a pointer may only name a file in the node configs dir`,
        ),
        show(r),
      );
      assert.doesNotMatch(r.stdout + r.stderr, /SECRET/);
    }
    assert.deepEqual(await snapshot(t.netd), before);
    const r = ok(await run(['install', '--configs=07-in.conf'], dirsEnv(t)));
    assert.match(r.stdout, /^config 07-in.conf: installed$/m);
    assert.match(await readFile(path.join(t.netd, '07-in.conf'), 'utf8'), /"name":"inside"/);
  });

  // Found by the test above (reported to the lead).
  test('a pointer refused for linking outside is not also reported as a file that does not exist', {}, async () => {
    const t = await tree();
    await writeFile(path.join(t.root, 'secret.conflist'), '{}\n');
    await symlink(path.join(t.root, 'secret.conflist'), path.join(t.netd, '10-abs.conflist'));
    await writeFile(path.join(t.templates, '05-abs.conf'), '{"cniVersion":"0.4.0","name":"m","type":"bridge","delegates":[__10-abs.conflist__]}\n');
    const r = failed(await run(['install', '--configs=05-abs.conf'], dirsEnv(t)));
    assert.doesNotMatch(r.stderr, /does not exist/, show(r));
  });
});

describe('several cni-node processes on the same node dirs', { skip }, () => {
  interface State {
    label: string;
    image: string;
    templates: string;
    plugins: string[];
    configs: string[];
  }

  test(
    '2–4 processes at once, repeatedly, with different desired states: all exit 0, the final state is one of them entirely, the record agrees',
    { timeout: 180_000 },
    async (t) => {
      const tr = await tree();
      const debian = (await readdir(DEBIAN)).sort();
      const imgB = path.join(tr.root, 'image-b');
      await mkdir(imgB);
      for (const [i, n] of debian.entries()) {
        await copyFile(path.join(DEBIAN, n), path.join(imgB, n));
        if (i % 2 === 1) await appendFile(path.join(imgB, n), 'image B');
      }
      const templates = async (label: string, names: string[]) => {
        const dir = path.join(tr.root, `templates-${label}`);
        await mkdir(dir);
        for (const n of names) await writeFile(path.join(dir, n), conf(`${label}-${n}`));
        return dir;
      };
      const states: State[] = [
        { label: 'all-A', image: DEBIAN, templates: await templates('1', ['10-a.conf', '20-b.conf']), plugins: debian, configs: ['10-a.conf', '20-b.conf'] },
        { label: 'all-B', image: imgB, templates: await templates('2', ['10-a.conf', '30-c.conf']), plugins: debian, configs: ['10-a.conf', '30-c.conf'] },
        { label: 'half-A', image: DEBIAN, templates: await templates('3', ['20-b.conf']), plugins: debian.slice(0, 8), configs: ['20-b.conf'] },
        {
          label: 'other-half-B',
          image: imgB,
          templates: await templates('4', ['30-c.conf', '40-d.conf']),
          plugins: debian.slice(6),
          configs: ['30-c.conf', '40-d.conf'],
        },
      ];
      const expected = new Map<string, { bin: Record<string, string>; netd: Record<string, string> }>();
      for (const s of states) {
        const bin: Record<string, string> = {};
        for (const p of s.plugins) bin[p] = sha(await readFile(path.join(s.image, p)));
        const netd: Record<string, string> = {};
        for (const c of s.configs) netd[c] = sha(await readFile(path.join(s.templates, c)));
        expected.set(s.label, { bin, netd });
      }
      const envOf = (s: State) => ({ ...dirsEnv(tr), CNI_NODE_PLUGINS_DIR: s.image, CNI_NODE_CONFIGS_DIR: s.templates });
      const current = async () => {
        const bin: Record<string, string> = {};
        for (const n of await visible(tr.bin)) bin[n] = sha(await readFile(path.join(tr.bin, n)));
        const netd: Record<string, string> = {};
        for (const n of await visible(tr.netd)) netd[n] = sha(await readFile(path.join(tr.netd, n)));
        return { bin, netd };
      };

      let waited = 0;
      let seed = 7;
      const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const rounds = 12;
      for (let round = 1; round <= rounds; round++) {
        const n = 2 + (round % 3);
        const chosen = Array.from({ length: n }, () => states[Math.floor(rand() * states.length)] as State);
        const results = await Promise.all(chosen.map((s) => run(['apply', `--plugins=${s.plugins.join(',')}`, `--configs=${s.configs.join(',')}`], envOf(s))));
        for (const r of results) {
          assert.equal(r.code, 0, `round ${round}: ${show(r)}`);
          if (/waiting for another cni-node/.test(r.stderr + r.stdout)) waited++;
        }
        const now = await current();
        const match = chosen.find((s) => JSON.stringify(expected.get(s.label)) === JSON.stringify(now));
        assert.ok(match, `round ${round}: the node is none of the desired states ${chosen.map((s) => s.label).join(', ')}:\n${JSON.stringify(now, null, 1)}`);
        for (const [dir, kind, names] of [
          [tr.bin, 'plugin', match.plugins],
          [tr.netd, 'config', match.configs],
        ] as const) {
          assert.deepEqual(await temps(dir), [], `round ${round}: temporary files left in ${dir}`);
          assert.ok(!existsSync(path.join(dir, LOCK)), `round ${round}: lock left in ${dir}`);
          const record = JSON.parse(await readFile(path.join(dir, RECORD), 'utf8')) as { kinds: Record<string, { name: string }[]> };
          assert.deepEqual(
            (record.kinds[kind] ?? []).map((e) => e.name).sort(),
            [...names].sort(),
            `round ${round}: the ${kind} record is not ${match.label}'s (a lost update)`,
          );
        }
      }
      t.diagnostic(`${rounds} rounds; ${waited} processes waited for the lock`);
      assert.ok(waited > 0, 'the processes never overlapped (no one waited for the lock): the test proved nothing');
    },
  );

  test('a stale lock (mtime a minute old) from a holder that died is taken over at once', async () => {
    const t = await tree();
    const lock = path.join(t.bin, LOCK);
    await writeFile(lock, 'deadhost pid 1 0123456789abcdef\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const r = ok(await run(['install', '--plugins=bridge'], dirsEnv(t)));
    assert.ok(r.ms < 10_000, `took over without waiting out the lease (${Math.round(r.ms)} ms)`);
    assert.match(r.stdout, /^plugin bridge: installed$/m);
    assert.ok(!existsSync(lock), 'the taken-over lock is released');
  });

  test('a fresh lock that nobody refreshes: the run waits (saying for whom), then takes it over after ~15 s', { timeout: 60_000 }, async () => {
    const t = await tree();
    const lock = path.join(t.bin, LOCK);
    await writeFile(lock, 'deadhost pid 1 fedcba9876543210\n');
    const r = ok(await run(['install', '--plugins=bridge'], dirsEnv(t)));
    assert.match(r.stdout + r.stderr, /waiting for another cni-node \(deadhost pid 1 fedcba9876543210\)/, show(r));
    assert.ok(r.ms > 14_000 && r.ms < 30_000, `took over after the 15 s lease (${Math.round(r.ms)} ms)`);
    assert.match(r.stdout, /^plugin bridge: installed$/m);
    assert.ok(!existsSync(lock));
  });

  test('a live holder (lease refreshed): the run waits until it is released, not longer', { timeout: 60_000 }, async () => {
    const t = await tree();
    const lock = path.join(t.bin, LOCK);
    await writeFile(lock, 'livehost pid 2 00112233445566778899\n');
    const refresher = setInterval(() => {
      const now = new Date();
      void utimes(lock, now, now).catch(() => undefined);
    }, 500);
    const started = Date.now();
    let releasedAt = 0;
    const release = sleep(4_000).then(async () => {
      clearInterval(refresher);
      releasedAt = Date.now();
      await rm(lock, { force: true });
    });
    try {
      const r = ok(await run(['install', '--plugins=bridge'], dirsEnv(t)));
      await release;
      assert.ok(releasedAt > 0 && started + r.ms >= releasedAt, `did not finish while the lock was held (${Math.round(r.ms)} ms)`);
      assert.ok(r.ms < 4_000 + 3_000, `did not wait much longer than needed (${Math.round(r.ms)} ms)`);
      assert.match(r.stdout + r.stderr, /waiting for another cni-node \(livehost pid 2/);
      assert.match(r.stdout, /^plugin bridge: installed$/m);
    } finally {
      clearInterval(refresher);
    }
  });
});
