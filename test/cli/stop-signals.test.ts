// Every wait honours a stop signal and says the run was interrupted (issue 13):
// a SIGTERM during --wait, a lock wait or API retries ends the run at once with
// "interrupted by SIGTERM" and the exit code of a process stopped by that signal
// (128 + its number: 143), never with what the interrupted step would have said
// ("did not appear within 3600s"). SIGHUP stops like SIGTERM everywhere: the
// daemon (with its log line and --uninstall-on-exit), --pause and kube-watch.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, cleanEnv, dirsEnv, LOCK, noDebianPluginsReason } from '../support/cli.js';
import { start, until, type Proc } from '../support/process.js';
import { nodeTree, TempRoots, visible, type NodeTree } from '../support/tree.js';

const KUBE_WATCH = process.env['KUBE_WATCH_BIN'] ?? path.join(path.dirname(CLI), 'kube-watch');
const skip = noDebianPluginsReason();

const roots = new TempRoots();
after(() => roots.removeAll());

const tree = (): Promise<NodeTree> => nodeTree(roots, 'cni-node-signals-');

/** Signals `p` once `ready` shows up, and returns how it ended and how long that took. */
async function interrupt(p: Proc, ready: RegExp, sig: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; ms: number }> {
  await p.waitFor(ready, 20_000);
  const sent = performance.now();
  p.kill(sig);
  const r = await p.exit;
  return { code: r.code, ms: performance.now() - sent };
}

const MULTUS = '{"cniVersion":"0.4.0","name":"multus","type":"bridge","delegates":[__10-calico.conflist__]}\n';

describe('every wait honours a stop signal and reports the interruption honestly', { skip }, () => {
  test('--wait=1h for a pointer target: SIGTERM ends it at once, "interrupted by SIGTERM", exit 143, nothing written', async () => {
    const t = await tree();
    await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS);
    const p = start(CLI, ['install', '--configs=05-multus.conf', '--wait=1h'], dirsEnv(t));
    const r = await interrupt(p, /waiting up to 3600s for 10-calico\.conflist/);
    assert.equal(r.code, 143, p.output());
    assert.ok(r.ms < 2_000, `stopped ${Math.round(r.ms)} ms after SIGTERM\n${p.output()}`);
    assert.match(p.stderr(), /install interrupted by SIGTERM: stopped while waiting for 10-calico\.conflist to appear/, p.output());
    assert.doesNotMatch(p.output(), /did not appear|internal error/, p.output());
    assert.deepEqual(await visible(t.netd), [], 'nothing was written');
  });

  test('SIGINT and SIGHUP during --wait: the same, with their own exit codes (130, 129)', async () => {
    for (const [sig, code] of [
      ['SIGINT', 130],
      ['SIGHUP', 129],
    ] as const) {
      const t = await tree();
      await writeFile(path.join(t.templates, '05-multus.conf'), MULTUS);
      const p = start(CLI, ['apply', '--configs=05-multus.conf', '--wait=10m'], dirsEnv(t));
      const r = await interrupt(p, /waiting up to 600s/, sig);
      assert.equal(r.code, code, p.output());
      assert.match(p.stderr(), new RegExp(`apply interrupted by ${sig}`), p.output());
    }
  });

  test('waiting for another cni-node\'s lock: SIGTERM ends the wait, "interrupted by SIGTERM", exit 143', async () => {
    const t = await tree();
    // Another cni-node holds the lock and is alive (it keeps its lock fresh).
    const lock = path.join(t.bin, LOCK);
    await writeFile(lock, 'other-node pid 4242 0123456789abcdef\n');
    const fresh = setInterval(() => void utimes(lock, new Date(), new Date()).catch(() => undefined), 500);
    try {
      const p = start(CLI, ['install', '--plugins=bridge'], dirsEnv(t));
      const r = await interrupt(p, /waiting for another cni-node/);
      assert.equal(r.code, 143, p.output());
      assert.ok(r.ms < 2_000, `stopped ${Math.round(r.ms)} ms after SIGTERM\n${p.output()}`);
      assert.match(p.stderr(), /install interrupted by SIGTERM: interrupted while waiting for the lock/, p.output());
      assert.ok(!existsSync(path.join(t.bin, 'bridge')), 'nothing was installed');
    } finally {
      clearInterval(fresh);
    }
  });

  test('retrying an unreachable API server: SIGTERM ends the retries, "interrupted by SIGTERM", exit 143', async (ctx) => {
    const t = await tree();
    const manifests = path.join(t.root, 'manifests');
    await mkdir(manifests);
    await writeFile(path.join(manifests, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: default\ndata:\n  a: b\n');
    // An "API server" on loopback that accepts connections and drops them at once.
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    ctx.after(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const kubeconfig = path.join(t.root, 'kubeconfig');
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:${port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n`,
    );
    const p = start(CLI, ['install', '--manifests=cm.yaml', `--kubeconfig=${kubeconfig}`], { ...dirsEnv({ ...t, manifests }), KUBECONFIG: '' });
    await until('two connection attempts (the client is retrying)', () => connections >= 2, 15_000, p.output);
    const sent = performance.now();
    p.kill('SIGTERM');
    const r = await p.exit;
    assert.equal(r.code, 143, p.output());
    assert.ok(performance.now() - sent < 2_000, p.output());
    assert.match(p.stderr(), /install interrupted by SIGTERM/, p.output());
    assert.doesNotMatch(p.output(), /internal error|could not reach|unreachable/i, p.output());
  });
});

describe('SIGHUP stops like SIGTERM: a log line, and --uninstall-on-exit runs', { skip }, () => {
  test('the daemon: "received SIGHUP: stopping", --uninstall-on-exit removes what it installed, exit 0', async () => {
    const t = await tree();
    const p = start(CLI, ['run', '--plugins=bridge,loopback', '--uninstall-on-exit'], dirsEnv(t));
    await p.waitFor(/reconcile #1 done/);
    assert.deepEqual(await visible(t.bin), ['bridge', 'loopback']);
    p.kill('SIGHUP');
    const r = await p.exit;
    assert.equal(r.code, 0, p.output());
    assert.match(p.stdout(), /received SIGHUP: stopping \(--uninstall-on-exit/, p.output());
    assert.match(p.stdout(), /--uninstall-on-exit: removed 2 item\(s\)/, p.output());
    assert.deepEqual(await visible(t.bin), [], 'removed on SIGHUP');
  });

  test('--pause: SIGHUP ends the pause with a log line, exit 0', async () => {
    const t = await tree();
    const p = start(CLI, ['install', '--plugins=bridge', '--pause'], dirsEnv(t));
    await p.waitFor(/pausing/);
    p.kill('SIGHUP');
    const r = await p.exit;
    assert.equal(r.code, 0, p.output());
    assert.match(p.stdout(), /received SIGHUP: stopping \(--pause\)/, p.output());
  });

  test('kube-watch: SIGHUP stops the watch, exit 0', async () => {
    const dir = await roots.make('cni-node-signals-kw-');
    await writeFile(path.join(dir, 'watched'), 'x');
    const p = start(KUBE_WATCH, ['file', path.join(dir, 'watched'), `--channel=${path.join(dir, 'channel')}`, '--handler=/bin/true'], cleanEnv());
    await p.waitFor(/watching file/);
    p.kill('SIGHUP');
    const r = await p.exit;
    assert.equal(r.code, 0, p.output());
    assert.match(p.stdout(), /SIGHUP: stopping/, p.output());
  });
});
