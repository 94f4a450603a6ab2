// No debugging entry point in production (issue 13): cni-node runs as root with
// the host's network, so Node's inspector (a debugger that runs any code it is
// sent) must never open: not on SIGUSR1 — for the CLI, --pause, the daemon and
// kube-watch, however they are started — and not from an inspector option in
// NODE_OPTIONS, unless the explicit debug setting CNI_NODE_DEBUG=1 is given.
// The real processes are signalled; what they listen on is read from /proc.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { cleanEnv, CLI, dirsEnv, noDebianPluginsReason, runCli, show } from '../support/cli.js';
import { freePort, httpGet, listeningPorts, sleep, start, until, type Proc } from '../support/process.js';
import { nodeTree, TempRoots } from '../support/tree.js';

// The bundle and kube-watch of the CLI under test (CNI_NODE_TEST_CLI names another build).
const BUNDLE = path.join(path.dirname(CLI), '..', 'dist', 'cni-node.mjs');
const KUBE_WATCH = process.env['KUBE_WATCH_BIN'] ?? path.join(path.dirname(CLI), 'kube-watch');
const skip = noDebianPluginsReason() ?? (existsSync(BUNDLE) ? undefined : 'the CLI is not built: run `npm run build`');

const roots = new TempRoots();
after(() => roots.removeAll());

const DEBUGGER = /Debugger listening|inspector|ws:\/\/127\.0\.0\.1/i;

/** Sends SIGUSR1 twice (as `kill -USR1` would), then asserts no debugger opened and the process lives on. */
async function usr1OpensNothing(p: Proc, allowedPorts: number[] = []): Promise<void> {
  p.kill('SIGUSR1');
  await sleep(300);
  p.kill('SIGUSR1');
  await sleep(700);
  assert.ok(p.alive(), `SIGUSR1 ended the process\n${p.output()}`);
  const ports = (await listeningPorts(p.pid)).filter((port) => !allowedPorts.includes(port));
  assert.deepEqual(ports, [], `after SIGUSR1 the process listens on more than it should (9229 is Node's inspector)\n${p.output()}`);
  assert.doesNotMatch(p.stderr(), DEBUGGER, p.output());
}

async function stopped(p: Proc, code = 0): Promise<void> {
  p.kill('SIGTERM');
  const r = await p.exit;
  assert.equal(r.code, code, p.output());
}

describe('no debugging entry point: SIGUSR1 never opens the Node.js inspector', { skip }, () => {
  test('cni-node install --pause (bin/cni-node)', async () => {
    const t = await nodeTree(roots, 'cni-node-usr1-');
    const p = start(CLI, ['install', '--plugins=bridge', '--pause'], dirsEnv(t));
    await p.waitFor(/pausing/);
    await usr1OpensNothing(p);
    await stopped(p);
  });

  test('cni-node run (bin/cni-node): the daemon keeps converging after SIGUSR1', async () => {
    const t = await nodeTree(roots, 'cni-node-usr1-');
    const port = await freePort();
    const p = start(CLI, ['run', '--plugins=bridge', `--listen=127.0.0.1:${port}`], dirsEnv(t));
    await p.waitFor(/reconcile #1 done/);
    await usr1OpensNothing(p, [port]);
    // Still working: a removed plugin is put back, and it still answers.
    await rm(path.join(t.bin, 'bridge'));
    await until('bridge restored', () => existsSync(path.join(t.bin, 'bridge')), 10_000, p.output);
    assert.equal((await httpGet(`127.0.0.1:${port}`, '/healthz')).status, 200);
    await stopped(p);
  });

  test('started as the image starts it (node dist/cni-node.mjs run, no node flags): ignored and logged', async () => {
    const t = await nodeTree(roots, 'cni-node-usr1-');
    const port = await freePort();
    const p = start(process.execPath, [BUNDLE, 'run', '--plugins=bridge', `--listen=127.0.0.1:${port}`], dirsEnv(t));
    await p.waitFor(/reconcile #1 done/);
    await usr1OpensNothing(p, [port]);
    assert.match(p.stderr(), /received SIGUSR1: ignored/, p.output());
    await rm(path.join(t.bin, 'bridge'));
    await until('bridge restored', () => existsSync(path.join(t.bin, 'bridge')), 10_000, p.output);
    await stopped(p);
  });

  test('started as the image starts it (node dist/cni-node.mjs install --pause)', async () => {
    const t = await nodeTree(roots, 'cni-node-usr1-');
    const p = start(process.execPath, [BUNDLE, 'install', '--plugins=bridge', '--pause'], dirsEnv(t));
    await p.waitFor(/pausing/);
    await usr1OpensNothing(p);
    await stopped(p);
  });

  test('kube-watch file (bin/kube-watch), and as `node bin/kube-watch`', async () => {
    const root = await roots.make('cni-node-usr1-kw-');
    const file = path.join(root, 'watched');
    await writeFile(file, 'a');
    for (const [cmd, args] of [
      [KUBE_WATCH, []],
      [process.execPath, [KUBE_WATCH]],
    ] as const) {
      const p = start(cmd, [...args, 'file', file, `--channel=${path.join(root, 'channel')}`, '--handler=/bin/true'], cleanEnv());
      await p.waitFor(/watching file/);
      await usr1OpensNothing(p);
      await stopped(p);
    }
  });
});

describe('no debugging entry point: inspector options are refused unless CNI_NODE_DEBUG=1', { skip }, () => {
  test('NODE_OPTIONS=--inspect…: cni-node and kube-watch refuse to run (exit 2), naming the option', async () => {
    // (--inspect-brk and --inspect-wait stop before any code runs, waiting for a
    // debugger; the same check refuses them once it does.)
    const env = { ...cleanEnv(), NODE_OPTIONS: '--inspect=127.0.0.1:0' };
    for (const cli of [CLI, KUBE_WATCH]) {
      const r = await runCli(['version'], { cli, env, timeoutMs: 20_000 });
      assert.equal(r.code, 2, show(r));
      assert.match(r.stderr, /refusing to run with the Node\.js debugger enabled \(--inspect in NODE_OPTIONS\)/, show(r));
      assert.match(r.stderr, /CNI_NODE_DEBUG=1/, show(r));
      assert.doesNotMatch(r.stdout, /cni-node|kube-watch/, `nothing ran\n${show(r)}`);
    }
  });

  test('an inspector option on the node command line is refused too', async () => {
    const r = await runCli([BUNDLE, 'version'], { cli: process.execPath, prefix: [], env: cleanEnv(), timeoutMs: 20_000 });
    assert.equal(r.code, 0, `the plain start works\n${show(r)}`);
    const p = await runCli(['--inspect-port=0', BUNDLE, 'version'], { cli: process.execPath, env: cleanEnv(), timeoutMs: 20_000 });
    assert.equal(p.code, 2, show(p));
    assert.match(p.stderr, /--inspect-port in the node command line/, show(p));
  });

  test('with CNI_NODE_DEBUG=1 the option is allowed (debugging on purpose)', async () => {
    const env = { ...cleanEnv(), NODE_OPTIONS: '--inspect=127.0.0.1:0', CNI_NODE_DEBUG: '1' };
    const r = await runCli(['version'], { env, timeoutMs: 20_000 });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^cni-node /, show(r));
  });
});
