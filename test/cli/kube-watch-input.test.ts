// kube-watch and bad input (issue 13), through the real bin/kube-watch process:
//  - a name, namespace, type or label selector that cannot be valid is a usage
//    error up front (exit 2) — no request is made, nothing is retried;
//  - a handler that cannot be started is reported once per run;
//  - a value too big to be a program argument (the kernel's 128 KiB per argument,
//    E2BIG) still reaches the channel file, and the log says why the handler did
//    not run; a value over kube-watch's own cap (16 MiB) is refused with a line.
// The "API server" here is a loopback TCP listener that only counts connections:
// these cases must never reach it (the API-side behaviour is in test/e2e/kube-watch).
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, cleanEnv, runCli, show } from '../support/cli.js';
import { start, until } from '../support/process.js';
import { TempRoots } from '../support/tree.js';

const KUBE_WATCH = process.env['KUBE_WATCH_BIN'] ?? path.join(path.dirname(CLI), 'kube-watch');

const roots = new TempRoots();
after(() => roots.removeAll());

describe('kube-watch: names, namespaces, types and label selectors are checked before any request', () => {
  let server: net.Server;
  let connections = 0;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const dir = await roots.make('cni-node-kw-input-');
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:${port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\n`,
    );
    env = { ...cleanEnv(), KUBECONFIG: kubeconfig };
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('each is a usage error (exit 2) naming the bad part, and no connection is made', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['object', 'configmap', 'a?b'], /<Name>: "a\?b" is not a valid object name/],
      [['object', 'configmap', 'kube-system/a b'], /<Name>: "a b" is not a valid object name/],
      [['object', 'configmap', 'a%2Fb'], /<Name>: "a%2Fb" is not a valid object name/],
      [['object', 'configmap', 'x,metadata.namespace=y'], /<Name>: .* is not a valid object name/],
      [['object', 'configmap', '..'], /<Name>: "\.\." cannot be an object name/],
      [['object', 'configmap', 'Kube_System/x'], /<Namespace>: "Kube_System" is not a valid namespace/],
      [['object', 'config?map', 'x'], /<Type>: "config\?map" is not a resource type/],
      [['object', 'configmap', '', '-l', 'app=(x'], /--label=app=\(x: not a valid label selector/],
      [['object', 'configmap', '', '--label=app in a,b'], /not a valid label selector: "in" needs a list of values in parentheses/],
      [['object', 'configmap', '', '--label=app==a?b'], /not a valid label selector: label value "a\?b"/],
      [['object', 'configmap', '', '--label=-app=x'], /not a valid label selector: label key "-app"/],
      [['object', 'configmap', '', '--label=app=x,'], /not a valid label selector: a "," at the end/],
      [['object', 'configmap', '', '--label=a>b'], /not a valid label selector: ">" needs a whole number/],
      [['object', 'configmap', '', '--label=Example.com/app=x'], /not a valid label selector: label key "Example\.com\/app": the prefix/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(args, { cli: KUBE_WATCH, env, timeoutMs: 15_000 });
      assert.equal(r.code, 2, `${args.join(' ')}\n${show(r)}`);
      assert.match(r.stderr, re, show(r));
      assert.ok(r.ms < 5_000, `refused at once, not after retries\n${show(r)}`);
    }
    assert.equal(connections, 0, 'no request was made for any of them');
  });

  test('valid names and selectors are accepted (the watch starts and connects)', async () => {
    for (const args of [
      ['object', 'configmap', 'kube-system/multus-cni.v1'],
      ['object', 'clusterrole', 'system:aggregate-to-admin'],
      ['object', 'deployments.v1.apps', '', '-a', '--label=app.kubernetes.io/name in (a, b),!legacy,tier!=db,env,x=,n>3'],
    ]) {
      const before = connections;
      const dir = await roots.make('cni-node-kw-ok-');
      const p = start(KUBE_WATCH, [...args, `--channel=${path.join(dir, 'channel')}`, '--handler=/bin/true'], env);
      await until('a connection to the API server', () => connections > before, 15_000, p.output);
      p.kill('SIGTERM');
      assert.equal((await p.exit).code, 0, p.output());
      assert.doesNotMatch(p.stderr(), /not a valid|is not a resource type/, p.output());
    }
  });
});

describe('kube-watch: handler failures and value limits are reported clearly, once', () => {
  test('a handler that cannot be started: one line per run, and the watch goes on', async () => {
    const dir = await roots.make('cni-node-kw-handler-');
    const file = path.join(dir, 'watched');
    await writeFile(file, 'one');
    const handler = path.join(dir, 'no-such-handler');
    const p = start(KUBE_WATCH, ['file', file, `--channel=${path.join(dir, 'channel')}`, `--handler=${handler}`], cleanEnv());
    await p.waitFor(/could not be started/);
    await writeFile(file, 'two');
    await until('the second run reported', () => (p.stderr().match(/could not be started/g) ?? []).length >= 2, 10_000, p.output);
    await new Promise((r) => setTimeout(r, 300));
    p.kill('SIGTERM');
    assert.equal((await p.exit).code, 0, p.output());
    const lines = p
      .stderr()
      .split('\n')
      .filter((l) => l.includes(handler));
    assert.equal(lines.length, 2, `exactly one line for each of the two runs\n${p.output()}`);
    for (const l of lines) assert.match(l, /^kube-watch: handler .* could not be started: .*ENOENT.*; the watch goes on$/, p.output());
  });

  test('a value over the 128 KiB argument limit: the channel gets it, the log says why the handler did not run', async () => {
    const dir = await roots.make('cni-node-kw-e2big-');
    const file = path.join(dir, 'watched');
    const channel = path.join(dir, 'channel');
    const runs = path.join(dir, 'runs');
    const handler = path.join(dir, 'handler.sh');
    await writeFile(handler, `#!/bin/sh\nprintf '%s\\n' "$2" >> ${JSON.stringify(runs)}\n`);
    await chmod(handler, 0o755);
    await writeFile(file, 'small');
    const p = start(KUBE_WATCH, ['file', file, `--channel=${channel}`, `--handler=${handler}`], cleanEnv());
    await until('the first run', async () => (await readFile(runs, 'utf8').catch(() => '')) === 'small\n', 10_000, p.output);

    const big = 'x'.repeat(200 * 1024);
    await writeFile(file, big);
    await p.waitFor(
      /not run: the current value is 204800 bytes, over the 131072-byte limit the kernel sets on one program argument \(E2BIG\); the channel .* holds the current value/,
    );
    assert.equal(await readFile(channel, 'utf8'), big, 'the channel holds the big value');

    // Back to small values: the first still has the big one as its previous value.
    await writeFile(file, 'after');
    await p.waitFor(/not run: the previous value is 204800 bytes/);
    await writeFile(file, 'again');
    await until('a small value runs the handler again', async () => (await readFile(runs, 'utf8').catch(() => '')) === 'small\nagain\n', 10_000, p.output);
    p.kill('SIGTERM');
    assert.equal((await p.exit).code, 0, p.output());
    assert.doesNotMatch(p.stderr(), /could not be started|internal error/, p.output());
  });

  test("a value over kube-watch's 16 MiB cap is refused: the channel keeps the last value, the handler does not run", async () => {
    const dir = await roots.make('cni-node-kw-cap-');
    const file = path.join(dir, 'watched');
    const channel = path.join(dir, 'channel');
    await writeFile(file, 'last good');
    const p = start(KUBE_WATCH, ['file', file, `--channel=${channel}`, '--handler=/bin/true'], cleanEnv());
    await until('the channel has the first value', async () => (await readFile(channel, 'utf8').catch(() => '')) === 'last good', 10_000, p.output);
    await writeFile(file, Buffer.alloc(17 * 1024 * 1024, 'y'));
    await p.waitFor(/is 17825792 bytes, over the limit of 16777216; .*the channel keeps the last value and the handler does not run/);
    assert.equal(await readFile(channel, 'utf8'), 'last good');
    await writeFile(file, 'fixed');
    await until('a value under the cap goes through again', async () => (await readFile(channel, 'utf8')) === 'fixed', 10_000, p.output);
    p.kill('SIGTERM');
    assert.equal((await p.exit).code, 0, p.output());
  });
});
