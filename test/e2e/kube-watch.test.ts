// `kube-watch` (bin/kube-watch, after `npm run build`) as a process against a REAL
// kube-apiserver 1.20.2 + etcd, with in-cluster style credentials (a service
// account token, CA and namespace file). Requests are counted from the API
// server's own audit log: one list, one watch, no polling.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { clusterUnavailableReason, SERVICE_ACCOUNT_USER, startTestCluster, type TestCluster } from './support/cluster.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KUBE_WATCH = path.join(ROOT, 'bin', 'kube-watch');
const built = existsSync(path.join(ROOT, 'dist', 'cni-node.mjs')) || process.env['KUBE_WATCH_BIN'] !== undefined;
const BIN = process.env['KUBE_WATCH_BIN'] ?? KUBE_WATCH;
const clusterSkip = clusterUnavailableReason();
const cliSkip = built ? undefined : 'the CLI is not built: run `npm run build`';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A handler that logs its three arguments (one JSON line per run, when it starts), fails for "fail", sleeps for "slow…" and "block…". */
async function makeHandler(dir: string): Promise<{ handler: string; runs: () => string[][] }> {
  const log = path.join(dir, 'runs.log');
  const handler = path.join(dir, 'handler.sh');
  await writeFile(
    handler,
    [
      '#!/bin/sh',
      // JSON via node keeps any bytes of the values intact.
      `node -e 'process.stdout.write(JSON.stringify(process.argv.slice(1))+"\\n")' "$1" "$2" "$3" >> ${JSON.stringify(log)}`,
      'case "$2" in slow*) sleep 0.3 ;; block*) sleep 30 ;; esac',
      '[ "$2" = fail ] && exit 3',
      'exit 0',
      '',
    ].join('\n'),
  );
  await chmod(handler, 0o755);
  return {
    handler,
    runs: () => {
      try {
        return readFileSync(log, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as string[]);
      } catch {
        return [];
      }
    },
  };
}

interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(BIN, args, { env: { PATH: process.env['PATH'], HOME: process.env['HOME'], ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function stopProc(p: Proc): Promise<{ code: number | null; ms: number }> {
  const t = Date.now();
  p.child.kill('SIGTERM');
  const { code } = await p.exited;
  return { code, ms: Date.now() - t };
}

/** kubelet's AtomicWriter: new `..<ts>` dir, `..data_tmp` symlink renamed over `..data`, old dir removed. */
let tsCounter = 0;
async function kubeletWrite(volume: string, payload: Record<string, string>): Promise<void> {
  const ts = `..2026_01_01_00_00_${String(++tsCounter).padStart(2, '0')}.${Math.random().toString(16).slice(2, 10)}`;
  await mkdir(path.join(volume, ts));
  for (const [name, content] of Object.entries(payload)) await writeFile(path.join(volume, ts, name), content);
  const old = await readlink(path.join(volume, '..data')).catch(() => undefined);
  await symlink(ts, path.join(volume, '..data_tmp'));
  await rename(path.join(volume, '..data_tmp'), path.join(volume, '..data'));
  for (const name of Object.keys(payload)) await symlink(path.join('..data', name), path.join(volume, name)).catch(() => undefined);
  if (old) await rm(path.join(volume, old), { recursive: true, force: true });
}

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'kube-watch-e2e-'));
  temps.push(d);
  return d;
}
after(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

describe('kube-watch command line', { skip: cliSkip }, () => {
  test('usage errors exit 2 with a message; version exits 0', async () => {
    const none = run([]);
    assert.equal((await none.exited).code, 2);
    assert.match(none.stderr(), /Usage: kube-watch object <Type> <\[Namespace\/\]Name> \[Options\]/);

    const bad = run(['object', 'configmap', 'x', '--bogus=1']);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderr(), /^Unknown option: --bogus$/m);

    const noType = run(['object']);
    assert.equal((await noType.exited).code, 2);

    const badPath = run(['object', 'configmap', 'x', '--jsonpath={.data.x']);
    assert.equal((await badPath.exited).code, 2);
    assert.match(badPath.stderr(), /jsonpath/i);

    const version = run(['version']);
    assert.equal((await version.exited).code, 0);
    assert.match(version.stdout(), /cni-node/);
  });

  test('file: initial content, rename replace, ..data swap, unchanged rewrite silent; SIGTERM exits 0 promptly', async () => {
    const dir = await tempDir();
    const { handler, runs } = await makeHandler(dir);
    const channel = path.join(dir, 'chan', 'nested', 'channel');

    // A plain file replaced by rename, as cni-node writes.
    const file = path.join(dir, '10-calico.conflist');
    await writeFile(file, 'one');
    const p = run(['file', file, `--channel=${channel}`, `--handler=${handler}`]);
    try {
      await until('initial run', () => runs().length === 1);
      assert.deepEqual(runs()[0], [channel, 'one', '']);
      assert.equal(await readFile(channel, 'utf8'), 'one');
      await writeFile(`${file}.tmp`, 'two');
      await rename(`${file}.tmp`, file);
      await until('rename seen', () => runs().length === 2);
      assert.deepEqual(runs()[1], [channel, 'two', 'one']);
      await writeFile(`${file}.tmp`, 'two');
      await rename(`${file}.tmp`, file);
      await sleep(400);
      assert.equal(runs().length, 2, 'identical content: no handler run');
      assert.equal(await readFile(channel, 'utf8'), 'two');
    } finally {
      const { code, ms } = await stopProc(p);
      assert.equal(code, 0, p.stderr());
      assert.ok(ms < 1_000, `exited ${ms} ms after SIGTERM`);
    }

    // A ConfigMap volume.
    const volume = path.join(dir, 'volume');
    await mkdir(volume);
    await kubeletWrite(volume, { '05-multus.conf': 'm1', other: 'x' });
    const channel2 = path.join(dir, 'channel2');
    const before = runs().length;
    const q = run(['file', path.join(volume, '05-multus.conf'), '-c', channel2, '-h', handler]);
    try {
      await until('initial run', () => runs().length === before + 1);
      await kubeletWrite(volume, { '05-multus.conf': 'm2', other: 'x' });
      await until('..data swap seen', () => runs().length === before + 2);
      assert.deepEqual(runs().slice(before), [
        [channel2, 'm1', ''],
        [channel2, 'm2', 'm1'],
      ]);
      await kubeletWrite(volume, { '05-multus.conf': 'm2', other: 'changed' });
      await sleep(400);
      assert.equal(runs().length, before + 2, 'another key changed: no run');
    } finally {
      assert.equal((await stopProc(q)).code, 0);
    }
  });
});

describe('kube-watch object against a real kube-apiserver', { skip: clusterSkip ?? cliSkip, timeout: 300_000 }, () => {
  let cluster: TestCluster;
  let saDir: string;
  let auditLog: string;
  let env: NodeJS.ProcessEnv;

  interface AuditEvent {
    stage: string;
    verb: string;
    requestURI: string;
    user: { username: string };
    stageTimestamp: string;
  }
  /** Requests of the service account (kube-watch), from the API server's audit log. */
  const audit = (): AuditEvent[] => {
    let text = '';
    try {
      text = readFileSync(auditLog, 'utf8');
    } catch {
      return [];
    }
    return (
      text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as AuditEvent)
        // Every request is logged once when it arrives (a watch's later stages only when it ends).
        .filter((e) => e.user.username === SERVICE_ACCOUNT_USER && e.stage === 'RequestReceived')
    );
  };

  const apply = async (
    namespace: string,
    name: string,
    data: Record<string, string>,
    annotations?: Record<string, string>,
    labels?: Record<string, string>,
  ): Promise<void> => {
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace, ...(annotations ? { annotations } : {}), ...(labels ? { labels } : {}) },
      data,
    };
    const res = await cluster.request('PATCH', `/api/v1/namespaces/${namespace}/configmaps/${name}?fieldManager=test&force=true`, body, {
      contentType: 'application/apply-patch+yaml',
    });
    assert.ok(res.status === 200 || res.status === 201, res.text);
  };

  before(async () => {
    const setup = await tempDir();
    auditLog = path.join(setup, 'audit.log');
    const policy = path.join(setup, 'audit-policy.yaml');
    await writeFile(policy, 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: ["ResponseStarted"]\nrules:\n- level: Metadata\n');
    cluster = await startTestCluster({ apiServerArgs: [`--audit-log-path=${auditLog}`, `--audit-policy-file=${policy}`, '--audit-log-mode=blocking'] });
    // The service account may read and watch configmaps, nothing else. (The
    // built-in "view" role is aggregated by kube-controller-manager, which this
    // test cluster does not run.)
    const role = await cluster.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      metadata: { name: 'configmap-watcher' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
    });
    assert.equal(role.status, 201, role.text);
    const crb = await cluster.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      metadata: { name: 'cni-node-configmap-watcher' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'configmap-watcher' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: SERVICE_ACCOUNT_USER }],
    });
    assert.equal(crb.status, 201, crb.text);
    // In-cluster credentials, as a pod has them.
    saDir = path.join(setup, 'serviceaccount');
    await mkdir(saDir);
    await writeFile(path.join(saDir, 'token'), cluster.tokens.serviceAccount);
    await writeFile(path.join(saDir, 'ca.crt'), cluster.caData);
    await writeFile(path.join(saDir, 'namespace'), 'kube-system');
    const port = new URL(cluster.server).port;
    env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port, CNI_NODE_SERVICE_ACCOUNT_DIR: saDir };
    // RBAC takes a moment to see the new binding.
    await until('RBAC allows the service account', async () => {
      const r = await cluster.request('GET', '/api/v1/namespaces/kube-system/configmaps', undefined, { token: cluster.tokens.serviceAccount });
      return r.status === 200;
    });
  });

  after(async () => {
    await cluster?.stop();
  });

  test('ConfigMap field: edits run the handler in order with (channel, new, old); unchanged updates, API server restarts and failing handlers do not disturb it; one watch, no polling', async () => {
    const dir = await tempDir();
    const { handler, runs } = await makeHandler(dir);
    const channel = path.join(dir, 'run', 'kube-watch', 'channel');
    await apply('kube-system', 'multus-cni', { plugins: 'multus,macvlan' });
    const auditBefore = audit().length;

    // No namespace given: the pod's namespace (the service account's namespace file).
    const p = run(['object', 'configmap', 'multus-cni', '--jsonpath={.data.plugins}', `--channel=${channel}`, `--handler=${handler}`], env);
    try {
      await until('first run', () => runs().length === 1, 15_000);
      assert.deepEqual(runs()[0], [channel, 'multus,macvlan', '']);
      assert.equal(await readFile(channel, 'utf8'), 'multus,macvlan');

      await apply('kube-system', 'multus-cni', { plugins: 'multus,ipvlan' });
      await until('edit', () => runs().length === 2);
      assert.deepEqual(runs()[1], [channel, 'multus,ipvlan', 'multus,macvlan']);

      // Not a change of .data.plugins: an annotation, another key, another ConfigMap.
      await apply('kube-system', 'multus-cni', { plugins: 'multus,ipvlan', configs: 'x' }, { touched: '1' });
      await apply('kube-system', 'other', { plugins: 'zzz' });
      await apply('default', 'multus-cni', { plugins: 'wrong-namespace' });
      await sleep(600);
      assert.equal(runs().length, 2, 'unchanged value: no handler run');

      // Requests so far: one list and one watch, and nothing more while idle.
      const mine = audit()
        .slice(auditBefore)
        .filter((e) => e.requestURI.includes('/configmaps'));
      assert.deepEqual(
        mine.map((e) => e.verb),
        ['list', 'watch'],
        JSON.stringify(mine.map((e) => `${e.verb} ${e.requestURI}`)),
      );
      assert.ok(mine[1]?.requestURI.includes('fieldSelector=metadata.name%3Dmultus-cni'), mine[1]?.requestURI);
      assert.ok(mine[1]?.requestURI.startsWith('/api/v1/namespaces/kube-system/configmaps?'), mine[1]?.requestURI);
      const idleFrom = audit().length;
      await sleep(2_000);
      assert.equal(audit().length, idleFrom, 'no polling while nothing changes');

      // A handler that fails: logged, the watch goes on, the next run gets it as previous value.
      await apply('kube-system', 'multus-cni', { plugins: 'fail', configs: 'x' });
      await until('failing run', () => runs().length === 3);
      await until('failure logged', () => /handler .*handler\.sh failed with exit code 3; the watch goes on/.test(p.stderr()));
      await apply('kube-system', 'multus-cni', { plugins: 'multus', configs: 'x' });
      await until('run after the failure', () => runs().length === 4);
      assert.deepEqual(runs()[3], [channel, 'multus', 'fail']);

      // The API server goes away and comes back: no spurious run; a later edit is seen.
      const downFrom = audit().length;
      await cluster.stopApiServer();
      await sleep(2_000);
      await cluster.startApiServer();
      await until(
        'watching again',
        () =>
          audit()
            .slice(downFrom)
            .some((e) => e.verb === 'watch'),
        20_000,
      );
      await sleep(1_000);
      assert.equal(runs().length, 4, 'no handler run for the restart');
      const afterRestart = audit()
        .slice(downFrom)
        .filter((e) => e.requestURI.includes('/configmaps'));
      assert.ok(afterRestart.length <= 4, `a bounded number of requests to recover: ${afterRestart.map((e) => e.verb).join(', ')}`);
      await apply('kube-system', 'multus-cni', { plugins: 'multus,bridge', configs: 'x' });
      await until('edit after restart', () => runs().length === 5, 10_000);
      assert.deepEqual(runs()[4], [channel, 'multus,bridge', 'multus']);
      assert.equal(await readFile(channel, 'utf8'), 'multus,bridge');

      // The whole sequence: each run's previous value is the run before's current one.
      const all = runs();
      for (let i = 1; i < all.length; i++) assert.equal(all[i]?.[2], all[i - 1]?.[1]);
      assert.match(p.stdout(), /watching configmaps multus-cni in namespace kube-system/);
    } finally {
      const { code, ms } = await stopProc(p);
      assert.equal(code, 0, p.stderr());
      assert.ok(ms < 1_000, `exited ${ms} ms after SIGTERM`);
    }
  });

  test('handlers run one at a time, in order, with consistent (new, old) pairs; SIGTERM during a handler exits 0 promptly', async () => {
    const dir = await tempDir();
    const { handler, runs } = await makeHandler(dir);
    const channel = path.join(dir, 'channel');
    await apply('kube-system', 'queue', { v: 'slow-0' });
    const p = run(['object', 'cm', 'kube-system/queue', '-j', '{.data.v}', '-c', channel, '-h', handler], env);
    try {
      await until('first run', () => runs().length === 1, 15_000);
      for (let i = 1; i <= 5; i++) {
        await apply('kube-system', 'queue', { v: `slow-${i}` });
        await sleep(50);
      }
      await until('the queue drained', () => runs().at(-1)?.[1] === 'slow-5', 10_000);
      const all = runs();
      assert.deepEqual(all[0], [channel, 'slow-0', '']);
      for (let i = 1; i < all.length; i++) {
        assert.equal(all[i]?.[2], all[i - 1]?.[1], `run ${i} gets the previous run's value as previous`);
        assert.ok(Number((all[i]?.[1] ?? '').slice(5)) > Number((all[i - 1]?.[1] ?? '').slice(5)), 'in order');
      }

      await apply('kube-system', 'queue', { v: 'block' });
      await until('blocking handler started', () => runs().at(-1)?.[1] === 'block');
      await sleep(100);
    } finally {
      const { code, ms } = await stopProc(p);
      assert.equal(code, 0, p.stderr());
      assert.ok(ms < 1_500, `exited ${ms} ms after SIGTERM while a handler ran`);
    }
  });

  test('all objects of a type with a label, across namespaces, evaluated as a List', async () => {
    const dir = await tempDir();
    const { handler, runs } = await makeHandler(dir);
    const channel = path.join(dir, 'channel');
    await cluster.request('POST', '/api/v1/namespaces', { metadata: { name: 'team-a' } });
    await apply('default', 'fruit-1', { fruits: 'orange' }, undefined, { app: 'fruits' });
    const p = run(
      [
        'object',
        'configmap',
        '',
        '-a',
        '--label=app=fruits',
        '--jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.data.fruits};{end}',
        '-c',
        channel,
        '-h',
        handler,
      ],
      env,
    );
    try {
      await until('first run', () => runs().length === 1, 15_000);
      assert.deepEqual(runs()[0], [channel, 'default/fruit-1=orange;', '']);
      await apply('team-a', 'fruit-2', { fruits: 'apple' }, undefined, { app: 'fruits' });
      await until('second object', () => runs().length === 2);
      assert.deepEqual(runs()[1], [channel, 'default/fruit-1=orange;team-a/fruit-2=apple;', 'default/fruit-1=orange;']);
      await apply('team-a', 'unlabelled', { fruits: 'banana' });
      await sleep(500);
      assert.equal(runs().length, 2);
    } finally {
      assert.equal((await stopProc(p)).code, 0);
    }
  });

  test('a watch request the API server refuses as invalid ends kube-watch with exit 2; it is not retried', async () => {
    // A selector whose form kube-watch checks but whose number (beyond int64) only the server refuses.
    const dir = await tempDir();
    const t0 = Date.now();
    const p = run(['object', 'configmap', '', '--label=n>99999999999999999999', `--channel=${path.join(dir, 'channel')}`, '--handler=/bin/true'], env);
    const r = await Promise.race([p.exited, sleep(15_000).then(() => undefined)]);
    if (!r) p.child.kill('SIGKILL');
    assert.ok(r, `still running after 15 s (retrying)\n${p.stdout()}${p.stderr()}`);
    assert.equal(r.code, 2, p.stderr());
    assert.match(p.stderr(), /cannot watch configmaps .*: the API server refused .*; this is not retried \(check <Type>, <Name> and --label\)/, p.stderr());
    assert.ok(Date.now() - t0 < 10_000, p.stderr());
    assert.doesNotMatch(p.stderr(), /retrying in/, p.stderr());
  });
});
