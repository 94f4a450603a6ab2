// The command line through the real binary (./bin/cni-node, a separate process,
// as an operator or a DaemonSet runs it), against temporary node directories, with
// Debian's real CNI plugins (/usr/lib/cni) as the image's plugins dir.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanEnv, DEBIAN_PLUGINS, dirsEnv, noDebianPluginsReason, ok, REPO_CLI, runCli, show, type CliResult, type RunCliOptions } from '../support/cli.js';
import { nodeTree, snapshot, TempRoots, tick, visible, type NodeTree } from '../support/tree.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEBIAN = DEBIAN_PLUGINS;
const skipNoPlugins = noDebianPluginsReason();

const roots = new TempRoots();
after(() => roots.removeAll());

const tree = (opts: { plugins?: string } = {}): Promise<NodeTree> => nodeTree(roots, 'cni-node-cli-', opts);

/** A private copy of some Debian plugins, so a test can change the "image". */
async function pluginsCopy(t: NodeTree, names: string[]): Promise<string> {
  const dir = path.join(t.root, 'image-plugins');
  await mkdir(dir, { recursive: true });
  for (const n of names) await copyFile(path.join(DEBIAN, n), path.join(dir, n));
  t.plugins = dir;
  return dir;
}

/** Runs the repository's CLI on the node `t` (or with only a clean environment), killed after 30 s by default. */
function run(args: string[], t: NodeTree | undefined, opts: Pick<RunCliOptions, 'env' | 'onSpawn' | 'timeoutMs'> = {}): Promise<CliResult> {
  return runCli(args, { cli: REPO_CLI, timeoutMs: 30_000, ...opts, env: opts.env ?? (t ? dirsEnv(t) : cleanEnv()) });
}

async function hidden(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith('.')).sort();
}

/** An onSpawn hook: once the run's stdout says "pausing", waits `delayMs`, then calls `fn` with the child (to check and signal it). */
function afterPausing(delayMs: number, fn: (child: ChildProcess) => void): NonNullable<RunCliOptions['onSpawn']> {
  return (child, out) => {
    const poll = setInterval(() => {
      if (!/pausing/.test(out())) return;
      clearInterval(poll);
      setTimeout(() => fn(child), delayMs);
    }, 20);
    child.on('close', () => clearInterval(poll));
  };
}

/** Lines of `kind name: result` from the text output. */
function items(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /^(plugin|config|manifest) /.test(l));
}

const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

// ---------------------------------------------------------------------------

describe('command line', { concurrency: 4 }, () => {
  test('no arguments: usage on stderr, exit 2', async () => {
    const r = await run([], undefined);
    assert.equal(r.code, 2, show(r));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^Usage: cni-node <command> \[options\]/);
    assert.match(r.stderr, /install/);
    assert.match(r.stderr, /--plugins=/);
  });

  test('unknown command: usage on stderr, exit 2', async () => {
    const r = await run(['frobnicate'], undefined);
    assert.equal(r.code, 2, show(r));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /frobnicate/);
    assert.match(r.stderr, /Usage: cni-node/);
  });

  test('unknown option: "Unknown option: --name", exit 2, nothing done', { skip: skipNoPlugins }, async () => {
    const t = await tree();
    const r = await run(['install', '--plugins=bridge', '--name'], t);
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /^Unknown option: --name$/m);
    assert.deepEqual(await readdir(t.bin), []);
    const r2 = await run(['list', '--name=x'], t);
    assert.equal(r2.code, 2, show(r2));
    assert.match(r2.stderr, /Unknown option: --name/);
  });

  test('version', async () => {
    const r = ok(await run(['version'], undefined));
    assert.match(r.stdout, new RegExp(`^cni-node ${PKG.version.replace(/\./g, '\\.')}\\b.*\\n$`));
    assert.equal(r.stderr, '');
  });

  test('list: the plugins dir, sorted, one per line', { skip: skipNoPlugins }, async () => {
    const t = await tree();
    const r = ok(await run(['list'], t));
    const expected = readdirSync(DEBIAN)
      .filter((n) => statSync(path.join(DEBIAN, n)).isFile())
      .sort();
    assert.equal(r.stdout, expected.map((n) => `${n}\n`).join(''));
    assert.ok(expected.includes('bridge') && expected.includes('vlan'));
  });

  test('directories: environment variables, and the flag wins over the variable', { skip: skipNoPlugins }, async () => {
    const t = await tree();
    const other = path.join(t.root, 'flag-bin');
    await mkdir(other);
    // env only
    ok(await run(['install', '--plugins=loopback'], t));
    assert.deepEqual(await visible(t.bin), ['loopback']);
    // flag beats env
    ok(await run(['install', '--plugins=bridge', `--host-plugins-dir=${other}`], t));
    assert.deepEqual(await visible(other), ['bridge']);
    assert.deepEqual(await visible(t.bin), ['loopback']);
    // flags alone, no environment at all
    const flagsOnly = path.join(t.root, 'flags-only');
    await mkdir(flagsOnly);
    ok(await run(['install', '--plugins=vlan', `--plugins-dir=${DEBIAN}`, `--host-plugins-dir=${flagsOnly}`], undefined));
    assert.deepEqual(await visible(flagsOnly), ['vlan']);
    // list: --plugins-dir beats CNI_NODE_PLUGINS_DIR
    const small = path.join(t.root, 'small');
    await mkdir(small);
    await writeFile(path.join(small, 'only-one'), 'x', { mode: 0o755 });
    const l = ok(await run(['list', `--plugins-dir=${small}`], t));
    assert.equal(l.stdout, 'only-one\n');
    // configs dirs too
    const tpl = path.join(t.root, 'tpl2');
    const nd = path.join(t.root, 'netd2');
    await mkdir(tpl);
    await mkdir(nd);
    await writeFile(path.join(tpl, 'a.txt'), 'from flag\n');
    ok(await run(['install', '--configs=a.txt', `--configs-dir=${tpl}`, `--host-configs-dir=${nd}`], t));
    assert.equal(await readFile(path.join(nd, 'a.txt'), 'utf8'), 'from flag\n');
    assert.deepEqual(await visible(t.netd), []);
  });
});

describe('plugins', { concurrency: 4, skip: skipNoPlugins }, () => {
  test('install copies the binaries: equal bytes, mode 0755, one line per item in order', async () => {
    const t = await tree();
    const names = ['bridge', 'host-local', 'loopback', 'portmap'];
    const r = ok(await run(['install', `--plugins=${names.join(',')}`], t));
    assert.deepEqual(
      items(r.stdout),
      names.map((n) => `plugin ${n}: installed`),
    );
    assert.deepEqual(await visible(t.bin), [...names].sort());
    for (const n of names) {
      const st = await lstat(path.join(t.bin, n));
      assert.ok(st.isFile());
      assert.equal(st.mode & 0o7777, 0o755, n);
      assert.ok((await readFile(path.join(t.bin, n))).equals(await readFile(path.join(DEBIAN, n))), `${n}: same bytes`);
    }
    // Only cni-node's record besides the plugins: no temp files, no lock left behind.
    assert.deepEqual(await hidden(t.bin), ['.cni-node-state']);
  });

  test('re-install is a no-op: same inodes and mtimes, the dir itself untouched, no temp files', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,host-local,loopback,portmap'], t));
    const before = await snapshot(t.bin);
    await tick();
    const r = ok(await run(['install', '--plugins=bridge,host-local,loopback,portmap'], t));
    assert.deepEqual(
      items(r.stdout),
      ['bridge', 'host-local', 'loopback', 'portmap'].map((n) => `plugin ${n}: unchanged`),
    );
    assert.deepEqual(await snapshot(t.bin), before, 'nothing in the node plugins dir changed, not even the directory');
    // apply with the same set: a no-op too
    await tick();
    ok(await run(['apply', '--plugins=bridge,host-local,loopback,portmap'], t));
    assert.deepEqual(await snapshot(t.bin), before);
  });

  test('a plugin that is not in the plugins dir: refused by name, nothing installed (not even the valid ones)', async () => {
    const t = await tree();
    const before = await snapshot(t.bin);
    const r = await run(['install', '--plugins=bridge,no-such-plugin,loopback,also-missing'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /no-such-plugin/);
    assert.match(r.stderr, /also-missing/, 'every bad item is reported');
    assert.deepEqual(items(r.stdout), []);
    await tick();
    assert.deepEqual(await snapshot(t.bin), before);
  });

  test('a name with a path (../x, a/b, ..): refused by name, nothing installed', async () => {
    const t = await tree();
    const before = await snapshot(t.bin);
    for (const bad of ['../x', 'a/b', '..', '../../usr/lib/cni/bridge']) {
      const r = await run(['install', `--plugins=bridge,${bad},loopback`], t);
      assert.ok(r.code === 1 || r.code === 2, show(r));
      assert.ok(r.stderr.includes(`"${bad}"`) || r.stderr.includes(bad), `names ${bad}: ${r.stderr}`);
      assert.deepEqual(items(r.stdout), []);
    }
    assert.deepEqual(await snapshot(t.bin), before);
  });

  test('apply --plugins=macvlan,bridge:host-device,bridge,ipvlan: adds macvlan, removes ipvlan and host-device, leaves bridge untouched', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=host-device,bridge,ipvlan'], t));
    const bridgeBefore = await lstat(path.join(t.bin, 'bridge'));
    await tick();
    const r = ok(await run(['apply', '--plugins=macvlan,bridge:host-device,bridge,ipvlan'], t));
    assert.deepEqual(items(r.stdout), ['plugin macvlan: installed', 'plugin bridge: unchanged', 'plugin ipvlan: removed', 'plugin host-device: removed']);
    assert.deepEqual(await visible(t.bin), ['bridge', 'macvlan']);
    const bridgeAfter = await lstat(path.join(t.bin, 'bridge'));
    assert.equal(bridgeAfter.ino, bridgeBefore.ino);
    assert.equal(bridgeAfter.mtimeMs, bridgeBefore.mtimeMs);
    assert.equal(bridgeAfter.ctimeMs, bridgeBefore.ctimeMs);
  });

  test('names are compared exactly: "vlan" never matches "macvlan" or "ipvlan"', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=ipvlan,macvlan'], t));
    const before = await snapshot(t.bin);
    await tick();
    const r = ok(await run(['apply', '--plugins=macvlan:vlan,macvlan'], t));
    assert.deepEqual(await visible(t.bin), ['ipvlan', 'macvlan']);
    assert.match(r.stdout, /plugin macvlan: unchanged/);
    assert.doesNotMatch(r.stdout, /ipvlan/);
    assert.deepEqual(await snapshot(t.bin), before, 'ipvlan and macvlan untouched; vlan was absent');

    // And from the record, without :Current: removing vlan leaves its look-alikes.
    ok(await run(['install', '--plugins=vlan'], t));
    const r2 = ok(await run(['apply', '--plugins=ipvlan,macvlan'], t));
    assert.deepEqual(items(r2.stdout), ['plugin ipvlan: unchanged', 'plugin macvlan: unchanged', 'plugin vlan: removed']);
    assert.deepEqual(await visible(t.bin), ['ipvlan', 'macvlan']);
  });

  test("apply without :Current removes only what cni-node installed, never another installer's file", async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,loopback,tuning'], t));
    // "Another installer" puts its plugins next to ours.
    await copyFile(path.join(DEBIAN, 'vlan'), path.join(t.bin, 'vlan'));
    await writeFile(path.join(t.bin, 'calico'), 'not ours', { mode: 0o755 });
    const foreign = { vlan: await lstat(path.join(t.bin, 'vlan')), calico: await lstat(path.join(t.bin, 'calico')) };
    const r = ok(await run(['apply', '--plugins=bridge'], t));
    assert.deepEqual(items(r.stdout), ['plugin bridge: unchanged', 'plugin tuning: removed', 'plugin loopback: removed']);
    assert.deepEqual(await visible(t.bin), ['bridge', 'calico', 'vlan']);
    for (const [n, st] of Object.entries(foreign)) {
      const now = await lstat(path.join(t.bin, n));
      assert.equal(now.ino, st.ino, n);
      assert.equal(now.mtimeMs, st.mtimeMs, n);
    }
    // An empty desired list removes everything cni-node installed, and only that.
    const r2 = ok(await run(['apply', '--plugins='], t));
    assert.deepEqual(items(r2.stdout), ['plugin bridge: removed']);
    assert.deepEqual(await visible(t.bin), ['calico', 'vlan']);
  });

  test('a missing or unreadable record: apply removes nothing, with a warning', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,loopback'], t));
    await writeFile(path.join(t.bin, '.cni-node-state'), '{ this is not json');
    const r = ok(await run(['apply', '--plugins=bridge'], t));
    assert.match(r.stderr, /warning: .*record.*unreadable/i);
    assert.deepEqual(await visible(t.bin), ['bridge', 'loopback'], 'loopback is not known to be ours any more: kept');
    assert.ok(
      (await hidden(t.bin)).some((n) => n.startsWith('.cni-node-state.unreadable')),
      'the bad record is kept aside for the operator',
    );
  });

  test('a corrupt record: apply with only removals to do still warns and removes nothing', {}, async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,loopback'], t));
    await writeFile(path.join(t.bin, '.cni-node-state'), 'garbage');
    const r = ok(await run(['apply', '--plugins='], t));
    assert.deepEqual(await visible(t.bin), ['bridge', 'loopback']);
    assert.match(r.stderr, /warning: .*record.*unreadable/i);
  });

  test('an image upgrade (new plugin bytes) → "updated"; other plugins unchanged', async () => {
    const t = await tree();
    await pluginsCopy(t, ['bridge', 'loopback']);
    ok(await run(['install', '--plugins=bridge,loopback'], t));
    const bridge = await lstat(path.join(t.bin, 'bridge'));
    const newBytes = Buffer.concat([await readFile(path.join(DEBIAN, 'loopback')), Buffer.from('\0upgrade')]);
    await writeFile(path.join(t.plugins, 'loopback'), newBytes);
    const r = ok(await run(['install', '--plugins=bridge,loopback'], t));
    assert.deepEqual(items(r.stdout), ['plugin bridge: unchanged', 'plugin loopback: updated']);
    assert.ok((await readFile(path.join(t.bin, 'loopback'))).equals(newBytes));
    assert.equal((await lstat(path.join(t.bin, 'loopback'))).mode & 0o7777, 0o755);
    assert.equal((await lstat(path.join(t.bin, 'bridge'))).ino, bridge.ino);
    // apply converges kept items too
    await writeFile(path.join(t.plugins, 'bridge'), Buffer.from('#!/bin/sh\necho new bridge\n'));
    const r2 = ok(await run(['apply', '--plugins=bridge,loopback'], t));
    assert.deepEqual(items(r2.stdout), ['plugin bridge: updated', 'plugin loopback: unchanged']);
  });

  test('a plugin changed on the node (even with its mtime put back, or its mode) is repaired', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=loopback,bridge'], t));
    const file = path.join(t.bin, 'loopback');
    const st = await stat(file);
    const bytes = await readFile(file);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1); // same size, other bytes
    await writeFile(file, bytes);
    await utimes(file, st.atime, st.mtime);
    await writeFile(path.join(t.bin, 'bridge'), await readFile(path.join(DEBIAN, 'bridge')), { mode: 0o644 });
    const { chmod } = await import('node:fs/promises');
    await chmod(path.join(t.bin, 'bridge'), 0o644);
    const r = ok(await run(['install', '--plugins=loopback,bridge'], t));
    assert.deepEqual(items(r.stdout), ['plugin loopback: updated', 'plugin bridge: updated']);
    assert.ok((await readFile(file)).equals(await readFile(path.join(DEBIAN, 'loopback'))));
    assert.equal((await lstat(path.join(t.bin, 'bridge'))).mode & 0o7777, 0o755);
  });

  test('uninstall removes in reverse of the given order', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,loopback,portmap'], t));
    const r = ok(await run(['uninstall', '--plugins=bridge,loopback,portmap,tuning'], t));
    assert.deepEqual(items(r.stdout), [
      'plugin tuning: absent, nothing to remove',
      'plugin portmap: removed',
      'plugin loopback: removed',
      'plugin bridge: removed',
    ]);
    assert.deepEqual(await visible(t.bin), []);
  });

  test('a destination that is a symbolic link: refused, nothing written through the link', async () => {
    const t = await tree();
    const outside = path.join(t.root, 'outside-file');
    await writeFile(path.join(outside), 'precious\n');
    await symlink(outside, path.join(t.bin, 'bridge'));
    const danglingTarget = path.join(t.root, 'nowhere', 'x');
    await symlink(danglingTarget, path.join(t.bin, 'portmap'));
    const before = await snapshot(t.bin);
    const r = await run(['install', '--plugins=loopback,bridge,portmap'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /bridge.*symbolic link/);
    assert.match(r.stderr, /portmap.*symbolic link/);
    assert.equal(await readFile(outside, 'utf8'), 'precious\n');
    assert.equal(existsSync(danglingTarget), false);
    assert.deepEqual(await snapshot(t.bin), before, 'loopback was not installed either');
  });

  test('a destination that is a directory: refused, nothing written', async () => {
    const t = await tree();
    await mkdir(path.join(t.bin, 'tuning'));
    await writeFile(path.join(t.bin, 'tuning', 'inside'), 'x');
    const before = await snapshot(t.bin);
    const r = await run(['install', '--plugins=loopback,tuning'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /tuning.*directory/);
    assert.deepEqual(await snapshot(t.bin), before);
    assert.deepEqual(await readdir(path.join(t.bin, 'tuning')), ['inside']);
  });

  test('uninstall of a name that is a symbolic link removes the link, never its target', async () => {
    const t = await tree();
    const outside = path.join(t.root, 'outside-file');
    await writeFile(outside, 'precious\n');
    await symlink(outside, path.join(t.bin, 'vlan'));
    const r = await run(['uninstall', '--plugins=vlan'], t);
    assert.ok(r.code === 0 || r.code === 1, show(r));
    assert.equal(await readFile(outside, 'utf8'), 'precious\n');
  });
});

describe('configs', { concurrency: 4, skip: skipNoPlugins }, () => {
  const PRIMARY = '{\n  "cniVersion": "1.0.0",\n  "name": "k8s-pod-network",\n  "plugins": [ { "type": "bridge" } ]\n}\n';

  test("pointers are replaced by the node file's content, with text around them; mode 0644", async () => {
    const t = await tree();
    await writeFile(path.join(t.netd, '10-calico.conflist'), PRIMARY);
    await writeFile(path.join(t.netd, 'sub.json'), '"eth0"');
    const template =
      '{ "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",\n  "master": __sub.json__, "delegates": [ __10-calico.conflist__ ] }\n';
    await writeFile(path.join(t.templates, '05-multus.conf'), template);
    const r = ok(await run(['install', '--configs=05-multus.conf'], t));
    assert.deepEqual(items(r.stdout), ['config 05-multus.conf: installed']);
    const out = await readFile(path.join(t.netd, '05-multus.conf'), 'utf8');
    assert.equal(out, `{ "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",\n  "master": "eth0", "delegates": [ ${PRIMARY} ] }\n`);
    assert.equal((await lstat(path.join(t.netd, '05-multus.conf'))).mode & 0o7777, 0o644);
    // Re-install: unchanged, nothing written.
    const before = await snapshot(t.netd);
    await tick();
    const r2 = ok(await run(['install', '--configs=05-multus.conf'], t));
    assert.deepEqual(items(r2.stdout), ['config 05-multus.conf: unchanged']);
    assert.deepEqual(await snapshot(t.netd), before);
    // The primary changes → re-rendered.
    await writeFile(path.join(t.netd, '10-calico.conflist'), PRIMARY.replace('k8s-pod-network', 'renamed'));
    const r3 = ok(await run(['install', '--configs=05-multus.conf'], t));
    assert.deepEqual(items(r3.stdout), ['config 05-multus.conf: updated']);
    assert.match(await readFile(path.join(t.netd, '05-multus.conf'), 'utf8'), /"renamed"/);
  });

  test('a pointer whose file does not exist: exit 1, the message names it, nothing written', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '05-multus.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}');
    await writeFile(path.join(t.templates, '99-other.conf'), '{"cniVersion":"1.0.0","name":"o","type":"bridge"}');
    const before = await snapshot(t.netd);
    const r = await run(['install', '--configs=99-other.conf,05-multus.conf'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /05-multus\.conf/);
    assert.match(r.stderr, /10-calico\.conflist/);
    assert.match(r.stderr, /--wait/, 'says what to do');
    assert.deepEqual(items(r.stdout), []);
    await tick();
    assert.deepEqual(await snapshot(t.netd), before, 'not even 99-other.conf was written');
  });

  test('a pointer with a path is an error, never a path to read', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, 'x.conf'), '{"cniVersion":"1.0.0","name":"x","type":"bridge","y":"__../../etc/passwd__"}');
    const before = await snapshot(t.netd);
    const r = await run(['install', '--configs=x.conf'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /x\.conf/);
    assert.match(r.stderr, /\.\.\/\.\.\/etc\/passwd/);
    assert.deepEqual(await snapshot(t.netd), before);
  });

  test('--wait that runs out: exit 1 naming the pointer, nothing written', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '05-multus.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}');
    const r = await run(['install', '--configs=05-multus.conf', '--wait=500ms'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /10-calico\.conflist/);
    assert.ok(r.ms >= 450, `waited (${r.ms} ms)`);
    assert.deepEqual(await visible(t.netd), []);
  });

  test('invalid JSON after rendering: the error names the file and the line; nothing written', async () => {
    const t = await tree();
    // The fragment itself is fine alone; the template puts it where JSON breaks.
    await writeFile(path.join(t.netd, 'fragment.txt'), '"type": "bridge",');
    await writeFile(path.join(t.templates, '10-x.conflist'), '{\n  "cniVersion": "1.0.0",\n  "name": "x",\n  "plugins": [ { __fragment.txt__ } ]\n}\n');
    const before = await snapshot(t.netd);
    const r = await run(['install', '--configs=10-x.conflist'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /10-x\.conflist/);
    assert.match(r.stderr, /line 4/);
    assert.match(r.stderr, /__fragment\.txt__/, 'says it was rendered from a pointer');
    assert.deepEqual(await snapshot(t.netd), before);
  });

  test('invalid JSON from a trailing comma or an empty pointer target: the error still gives the line', {}, async () => {
    const t = await tree();
    await writeFile(path.join(t.netd, 'empty.txt'), '');
    await writeFile(
      path.join(t.templates, '10-x.conflist'),
      '{\n  "cniVersion": "1.0.0",\n  "name": "x",\n  "plugins": [ __empty.txt__, { "type": "bridge" } ]\n}\n',
    );
    const r = await run(['install', '--configs=10-x.conflist'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /10-x\.conflist/);
    assert.match(r.stderr, /line 4/);
  });

  test('a .conf without "type" and a .conflist without plugins are refused', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '10-a.conf'), '{"cniVersion":"1.0.0","name":"a"}');
    await writeFile(path.join(t.templates, '10-b.conflist'), '{"cniVersion":"1.0.0","name":"b","plugins":[]}');
    await writeFile(path.join(t.templates, '10-c.json'), '{"cniVersion":"1.0.0","type":"bridge"}');
    for (const [name, why] of [
      ['10-a.conf', /"type"/],
      ['10-b.conflist', /plugins/],
      ['10-c.json', /"name"/],
    ] as const) {
      const r = await run(['install', `--configs=${name}`], t);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, new RegExp(name.replace(/\./g, '\\.')));
      assert.match(r.stderr, why);
    }
    assert.deepEqual(await readdir(t.netd), []);
  });

  test('a file that is not a network config (multus.kubeconfig) is written as it is', async () => {
    const t = await tree();
    const kubeconfig = 'apiVersion: v1\nkind: Config\n# {not json at all\nclusters: []\n';
    await writeFile(path.join(t.templates, 'multus.kubeconfig'), kubeconfig);
    ok(await run(['install', '--configs=multus.kubeconfig'], t));
    assert.equal(await readFile(path.join(t.netd, 'multus.kubeconfig'), 'utf8'), kubeconfig);
  });

  test('install warns when a config names a plugin type that is not on the node', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge'], t));
    await writeFile(path.join(t.templates, '10-x.conflist'), '{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"portmap"}]}');
    const r = ok(await run(['install', '--configs=10-x.conflist'], t));
    assert.match(r.stderr, /warning: .*10-x\.conflist.*portmap/);
    assert.doesNotMatch(r.stderr, /bridge/);
  });

  test('a config destination that is a symbolic link: refused, nothing written through it', async () => {
    const t = await tree();
    const outside = path.join(t.root, 'outside.conf');
    await writeFile(outside, 'precious\n');
    await symlink(outside, path.join(t.netd, '10-x.conf'));
    await writeFile(path.join(t.templates, '10-x.conf'), '{"cniVersion":"1.0.0","name":"x","type":"bridge"}');
    const r = await run(['install', '--configs=10-x.conf'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /10-x\.conf.*symbolic link/);
    assert.equal(await readFile(outside, 'utf8'), 'precious\n');
    assert.ok((await lstat(path.join(t.netd, '10-x.conf'))).isSymbolicLink());
  });

  test('plugins then configs in one run; uninstall in the reverse (configs first)', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '10-a.conf'), '{"cniVersion":"1.0.0","name":"a","type":"bridge"}');
    await writeFile(path.join(t.templates, '20-b.conf'), '{"cniVersion":"1.0.0","name":"b","type":"loopback"}');
    const r = ok(await run(['install', '--configs=10-a.conf,20-b.conf', '--plugins=bridge,loopback'], t));
    assert.deepEqual(items(r.stdout), ['plugin bridge: installed', 'plugin loopback: installed', 'config 10-a.conf: installed', 'config 20-b.conf: installed']);
    const u = ok(await run(['uninstall', '--plugins=bridge,loopback', '--configs=10-a.conf,20-b.conf'], t));
    assert.deepEqual(items(u.stdout), ['config 20-b.conf: removed', 'config 10-a.conf: removed', 'plugin loopback: removed', 'plugin bridge: removed']);
  });

  test('the record .cni-node-state exists, and nothing in net.d but the configs looks like a network config', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '10-a.conflist'), '{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}');
    await writeFile(path.join(t.templates, 'multus.kubeconfig'), 'x: y\n');
    ok(await run(['install', '--plugins=bridge', '--configs=10-a.conflist,multus.kubeconfig'], t));
    assert.ok(existsSync(path.join(t.netd, '.cni-node-state')));
    assert.ok(existsSync(path.join(t.bin, '.cni-node-state')));
    const looksLikeNetwork = (await readdir(t.netd)).filter((n) => /\.(conf|conflist|json)$/.test(n));
    assert.deepEqual(looksLikeNetwork, ['10-a.conflist']);
    // The record is well-formed JSON (a person may read it) and names what was installed.
    const rec = await readFile(path.join(t.netd, '.cni-node-state'), 'utf8');
    assert.match(rec, /10-a\.conflist/);
    assert.doesNotThrow(() => JSON.parse(rec));
  });

  test('apply of configs without :Current removes only recorded ones', async () => {
    const t = await tree();
    for (const n of ['05-a.conf', '10-b.conf']) await writeFile(path.join(t.templates, n), `{"cniVersion":"1.0.0","name":"${n.slice(3, 4)}","type":"bridge"}`);
    ok(await run(['install', '--configs=05-a.conf,10-b.conf'], t));
    await writeFile(path.join(t.netd, '10-calico.conflist'), PRIMARY);
    const r = ok(await run(['apply', '--configs=10-b.conf'], t));
    assert.deepEqual(items(r.stdout), ['config 10-b.conf: unchanged', 'config 05-a.conf: removed']);
    assert.deepEqual(await visible(t.netd), ['10-b.conf', '10-calico.conflist']);
  });
});

describe('check', { skip: skipNoPlugins }, () => {
  async function nodeWithChain(): Promise<NodeTree> {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,host-local,loopback,portmap,tuning'], t));
    await writeFile(
      path.join(t.netd, '10-x.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: ['bridge', 'portmap', 'tuning', 'loopback'].map((type) => ({ type })) }),
    );
    return t;
  }

  test('check never crashes when a plugin exits without reading its stdin (EPIPE)', {}, async () => {
    const t = await nodeWithChain();
    for (let i = 0; i < 15; i++) {
      const r = await run(['check'], t);
      assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/, `run ${i + 1}: ${show(r)}`);
      assert.equal(r.code, 0, `run ${i + 1}: ${show(r)}`);
    }
  });

  test('check: no network configuration at all → exit 1 saying so', async () => {
    const t = await tree();
    const r = await run(['check'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /no network configuration/);
  });

  test('check: a plugin that is not executable → exit 1 naming it', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge'], t));
    await writeFile(path.join(t.bin, 'portmap'), 'not a program', { mode: 0o644 });
    await writeFile(path.join(t.netd, '10-x.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'portmap' }] }));
    const r = await run(['check'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /FAIL portmap: .*not executable/);
  });
});

describe('output and dry run', { concurrency: 4, skip: skipNoPlugins }, () => {
  test('--dry-run changes nothing and prints "would …"', async () => {
    const t = await tree();
    ok(await run(['install', '--plugins=bridge,ipvlan'], t));
    await writeFile(path.join(t.templates, '10-a.conf'), '{"cniVersion":"1.0.0","name":"a","type":"bridge"}');
    const bin = await snapshot(t.bin);
    const netd = await snapshot(t.netd);
    await tick();
    const r = ok(await run(['apply', '--plugins=bridge,macvlan', '--configs=10-a.conf', '--dry-run'], t));
    assert.match(r.stdout, /plugin macvlan: would install/);
    assert.match(r.stdout, /plugin ipvlan: would remove/);
    assert.match(r.stdout, /config 10-a\.conf: would install/);
    assert.match(r.stdout, /plugin bridge: unchanged/);
    const u = ok(await run(['uninstall', '--plugins=bridge', '--dry-run'], t));
    assert.match(u.stdout, /plugin bridge: would remove/);
    const i = ok(await run(['install', '--plugins=loopback', '--dry-run'], t));
    assert.match(i.stdout, /plugin loopback: would install/);
    assert.deepEqual(await snapshot(t.bin), bin);
    assert.deepEqual(await snapshot(t.netd), netd);
  });

  test('--dry-run of an invalid request still fails (exit 1) and changes nothing', async () => {
    const t = await tree();
    const r = await run(['install', '--plugins=nope', '--dry-run'], t);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /nope/);
    assert.deepEqual(await readdir(t.bin), []);
  });

  test('--log-format=json: one JSON object per line, on stdout and stderr', async () => {
    const t = await tree();
    const r = ok(await run(['install', '--plugins=bridge,loopback', '--log-format=json'], t));
    const lines = r.stdout.trimEnd().split('\n');
    const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const o of objs) assert.ok(typeof o === 'object' && o !== null && !Array.isArray(o));
    assert.deepEqual(
      objs.filter((o) => o.kind).map((o) => [o.kind, o.name, o.result]),
      [
        ['plugin', 'bridge', 'installed'],
        ['plugin', 'loopback', 'installed'],
      ],
    );
    const bad = await run(['install', '--plugins=nope', '--log-format=json'], t);
    assert.equal(bad.code, 1, show(bad));
    const errs = bad.stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      errs.some((o) => o.level === 'error' && /nope/.test(String(o.message))),
      bad.stderr,
    );
    assert.equal(bad.stdout.trim(), '');
  });

  test('--log-format=yaml is a usage error', async () => {
    const r = await run(['install', '--plugins=bridge', '--log-format=yaml'], await tree());
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /log-format/);
  });

  test('Desired:Current outside apply, and an empty install list, are usage errors', async () => {
    const t = await tree();
    for (const args of [['install', '--plugins=a:b'], ['install', '--plugins='], ['uninstall', '--plugins=a:b'], ['install'], ['apply', '--plugins=a::b']]) {
      const r = await run(args, t);
      assert.equal(r.code, 2, `${args.join(' ')}: ${show(r)}`);
    }
    assert.deepEqual(await readdir(t.bin), []);
  });
});

// Timing-sensitive: run one at a time, not alongside the other process-heavy tests.
describe('timing', { skip: skipNoPlugins }, () => {
  const PRIMARY = '{\n  "cniVersion": "1.0.0",\n  "name": "k8s-pod-network",\n  "plugins": [ { "type": "bridge" } ]\n}\n';

  test('--wait=3s: a pointer target that appears after 1 s is used', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '05-multus.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}');
    let writtenAt = 0;
    const later = setTimeout(() => {
      writtenAt = Date.now();
      void writeFile(path.join(t.netd, '10-calico.conflist'), PRIMARY);
    }, 1000);
    try {
      const r = ok(await run(['install', '--configs=05-multus.conf', '--wait=3s'], t));
      const doneAt = Date.now();
      assert.deepEqual(items(r.stdout), ['config 05-multus.conf: installed']);
      assert.ok(writtenAt > 0, 'finished only after the target appeared');
      assert.ok(doneAt - writtenAt < 1500, `picked it up soon after it appeared (${doneAt - writtenAt} ms), without waiting out the 3 s`);
      assert.equal(await readFile(path.join(t.netd, '05-multus.conf'), 'utf8'), `{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[${PRIMARY}]}`);
    } finally {
      clearTimeout(later);
    }
  });

  test('--wait says what it is waiting for', {}, async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '05-multus.conf'), '{"cniVersion":"1.0.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}');
    const later = setTimeout(() => void writeFile(path.join(t.netd, '10-calico.conflist'), PRIMARY), 500);
    try {
      const r = ok(await run(['install', '--configs=05-multus.conf', '--wait=3s'], t));
      assert.match(r.stdout + r.stderr, /waiting .*10-calico\.conflist/);
    } finally {
      clearTimeout(later);
    }
  });

  test('--pause: waits after the action, exits 0 within 2 s of SIGTERM', { skip: skipNoPlugins }, async () => {
    const t = await tree();
    let sentAt = 0;
    let aliveAfterPause = false;
    const r = await run(['install', '--plugins=loopback', '--pause'], t, {
      timeoutMs: 20_000,
      // Still running a while later: it really pauses.
      onSpawn: afterPausing(700, (child) => {
        aliveAfterPause = child.exitCode === null && child.signalCode === null;
        sentAt = Date.now();
        child.kill('SIGTERM');
      }),
    });
    assert.ok(aliveAfterPause, `still running 700 ms after pausing: ${show(r)}`);
    assert.equal(r.code, 0, show(r));
    assert.ok(Date.now() - sentAt < 2000, 'exited within 2 s of SIGTERM');
    assert.deepEqual(await visible(t.bin), ['loopback']);
  });

  test('--pause: SIGINT also ends it with exit 0', { skip: skipNoPlugins }, async () => {
    const t = await tree();
    let sent = false;
    const r = await run(['install', '--plugins=loopback', '--pause'], t, {
      timeoutMs: 20_000,
      onSpawn: afterPausing(300, (child) => {
        sent = child.exitCode === null;
        child.kill('SIGINT');
      }),
    });
    assert.ok(sent, `was still paused when SIGINT was sent: ${show(r)}`);
    assert.equal(r.code, 0, show(r));
  });
});
