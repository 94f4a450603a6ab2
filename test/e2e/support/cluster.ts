// A real etcd + kube-apiserver for e2e tests, one per test file.
//
// Fakes of the API server drift from the real thing exactly where our code is
// most fragile (server-side apply, RBAC, watch semantics, restarts), so e2e
// tests talk to a real kube-apiserver 1.20.2 built by
// `scripts/test-cluster.sh provision`. See /work/shared/RECIPES.md.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, closeSync, constants as fsConstants, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const KUBE_VERSION = '1.20.2';

/** Same default and override as scripts/test-cluster.sh, so both agree on where the binaries live. */
const CACHE_DIR = process.env['CNI_NODE_TEST_CACHE'] ?? '/var/cache/cni-node-test';
export const KUBE_APISERVER_BIN = path.join(CACHE_DIR, `kubernetes-${KUBE_VERSION}`, 'kube-apiserver');

const READY_TIMEOUT_MS = 60_000;
const ETCD_READY_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 5_000;

const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public'];

export const SERVICE_ACCOUNT_USER = 'system:serviceaccount:kube-system:cni-node';

export interface ClusterTokens {
  /** Group system:masters: allowed everything. */
  admin: string;
  /** A user in no group: RBAC forbids every request. */
  denied: string;
  /** User `system:serviceaccount:kube-system:cni-node`; has no rights until a test grants them via RBAC. */
  serviceAccount: string;
}

export interface RequestOptions {
  /** Defaults to the admin token. */
  token?: string;
  /** Defaults: application/json, or application/merge-patch+json for PATCH. */
  contentType?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface ClusterResponse<T = unknown> {
  status: number;
  /** Parsed JSON when the response is JSON, otherwise the raw text. */
  body: T;
  text: string;
  headers: http.IncomingHttpHeaders;
}

export interface TestCluster {
  /** https://127.0.0.1:PORT */
  server: string;
  /** The API server's self-signed serving certificate (apiserver.crt in its cert dir). */
  caFile: string;
  caData: string;
  tokens: ClusterTokens;
  /** Temp dir holding etcd data, certs, tokens, logs and kubeconfigs; removed by stop(). */
  dir: string;
  logs: { etcd: string; apiServer: string };
  /** Writes a kubeconfig for `token` (default path inside `dir`) and returns its path. */
  writeKubeconfig(token: string, path?: string): string;
  request<T = unknown>(method: string, path: string, body?: unknown, opts?: RequestOptions): Promise<ClusterResponse<T>>;
  /** Stops kube-apiserver only; etcd keeps the data. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and etcd, and waits until it is ready. */
  startApiServer(): Promise<void>;
  /** Stops everything and removes `dir`. Safe to call more than once. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra kube-apiserver flags, e.g. `--disable-admission-plugins=ServiceAccount` to create Pods without a controller-manager. */
  apiServerArgs?: string[];
}

/**
 * Why the cluster cannot run here, or undefined if it can. Meant for
 * `test(name, { skip: clusterUnavailableReason() }, …)`, so a machine that was
 * never provisioned shows a loud skip with the fix instead of a failure.
 */
export function clusterUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) {
    return 'e2e cluster tests need root (run the tests with sudo)';
  }
  if (!isExecutable(KUBE_APISERVER_BIN)) {
    return `kube-apiserver ${KUBE_VERSION} is not provisioned (${KUBE_APISERVER_BIN} missing): run \`sudo scripts/provision.sh && sudo scripts/test-cluster.sh provision\``;
  }
  if (findInPath('etcd') === undefined) {
    return 'etcd is not installed: run `sudo scripts/provision.sh`';
  }
  return undefined;
}

export async function startTestCluster(options: StartOptions = {}): Promise<TestCluster> {
  const reason = clusterUnavailableReason();
  if (reason !== undefined) throw new Error(reason);
  const etcdBin = findInPath('etcd') as string;

  const dir = await mkdtemp(path.join(os.tmpdir(), 'cni-node-cluster-'));
  liveDirs.add(dir);
  installProcessHooks();
  const children = new Set<ChildProcess>();
  let stopping: Promise<void> | undefined;

  const stopAll = async (): Promise<void> => {
    // Newest first: kube-apiserver stops in about a second while etcd is up,
    // but hangs until SIGKILL if etcd goes away under it.
    for (const child of [...children].reverse()) await terminate(child);
    children.clear();
    liveDirs.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const ports = await freePorts(3);
    const [etcdClientPort, etcdPeerPort, apiPort] = [ports[0] as number, ports[1] as number, ports[2] as number];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const server = `https://127.0.0.1:${apiPort}`;
    const pki = path.join(dir, 'pki');
    const logs = { etcd: path.join(dir, 'etcd.log'), apiServer: path.join(dir, 'kube-apiserver.log') };

    const tokens: ClusterTokens = { admin: newToken(), denied: newToken(), serviceAccount: newToken() };
    await writeFile(
      path.join(dir, 'tokens.csv'),
      [
        `${tokens.admin},admin,uid-admin,"system:masters"`,
        `${tokens.denied},denied,uid-denied`,
        `${tokens.serviceAccount},${SERVICE_ACCOUNT_USER},uid-cni-node,"system:serviceaccounts,system:serviceaccounts:kube-system"`,
      ].join('\n') + '\n',
      { mode: 0o600 },
    );
    await execFileAsync('openssl', ['genrsa', '-out', path.join(dir, 'sa.key'), '2048']);
    await execFileAsync('openssl', ['rsa', '-in', path.join(dir, 'sa.key'), '-pubout', '-out', path.join(dir, 'sa.pub')]);

    const etcd = spawnLogged(
      etcdBin,
      [
        '--name',
        'default',
        '--data-dir',
        path.join(dir, 'etcd'),
        '--listen-client-urls',
        etcdUrl,
        '--advertise-client-urls',
        etcdUrl,
        '--listen-peer-urls',
        peerUrl,
        // The defaults point at localhost:2380, which another etcd may own.
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        `default=${peerUrl}`,
      ],
      logs.etcd,
    );
    children.add(etcd);
    await waitUntil(ETCD_READY_TIMEOUT_MS, etcd, logs.etcd, 'etcd', async () => {
      const res = await rawRequest(`${etcdUrl}/health`, { method: 'GET', timeoutMs: 2_000 });
      return res.status === 200 && res.text.includes('"true"');
    });

    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${pki}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--insecure-port=0',
      ...(options.apiServerArgs ?? []),
    ];
    let apiServer: ChildProcess | undefined;

    const startApiServer = async (): Promise<void> => {
      if (stopping !== undefined) throw new Error('the test cluster was stopped');
      if (apiServer !== undefined) throw new Error('kube-apiserver is already running');
      const child = spawnLogged(KUBE_APISERVER_BIN, apiArgs, logs.apiServer);
      apiServer = child;
      children.add(child);
      // The serving cert does not exist until the server writes it, so this
      // poll alone skips verification; request() below always verifies.
      await waitUntil(READY_TIMEOUT_MS, child, logs.apiServer, 'kube-apiserver', async () => {
        const res = await rawRequest(`${server}/readyz`, {
          method: 'GET',
          token: tokens.admin,
          rejectUnauthorized: false,
          timeoutMs: 2_000,
        });
        if (res.status !== 200 || res.text !== 'ok') return false;
        // /readyz does not cover the bootstrap controller, which creates the
        // system namespaces a moment later; tests expect them to exist.
        for (const ns of SYSTEM_NAMESPACES) {
          const nsRes = await rawRequest(`${server}/api/v1/namespaces/${ns}`, {
            method: 'GET',
            token: tokens.admin,
            rejectUnauthorized: false,
            timeoutMs: 2_000,
          });
          if (nsRes.status !== 200) return false;
        }
        return true;
      });
    };

    const stopApiServer = async (): Promise<void> => {
      const child = apiServer;
      if (child === undefined) return;
      apiServer = undefined;
      await terminate(child);
      children.delete(child);
    };

    await startApiServer();
    const caFile = path.join(pki, 'apiserver.crt');
    const caData = await readFile(caFile, 'utf8');
    let kubeconfigCount = 0;

    const cluster: TestCluster = {
      server,
      caFile,
      caData,
      tokens,
      dir,
      logs,
      writeKubeconfig(token: string, file?: string): string {
        const target = file ?? path.join(dir, `kubeconfig-${++kubeconfigCount}`);
        // JSON strings are valid YAML scalars, so quoting via JSON.stringify is safe for any token.
        const q = (s: string): string => JSON.stringify(s);
        const text = [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- name: test',
          '  cluster:',
          `    server: ${q(server)}`,
          `    certificate-authority-data: ${q(Buffer.from(caData).toString('base64'))}`,
          'users:',
          '- name: test',
          '  user:',
          `    token: ${q(token)}`,
          'contexts:',
          '- name: test',
          '  context:',
          '    cluster: test',
          '    user: test',
          'current-context: test',
          '',
        ].join('\n');
        writeFileSyncPrivate(target, text);
        return target;
      },
      async request<T = unknown>(method: string, reqPath: string, body?: unknown, opts: RequestOptions = {}): Promise<ClusterResponse<T>> {
        const upper = method.toUpperCase();
        let payload: string | undefined;
        if (body !== undefined) payload = typeof body === 'string' ? body : JSON.stringify(body);
        const res = await rawRequest(`${server}${reqPath}`, {
          method: upper,
          token: opts.token ?? tokens.admin,
          ca: caData,
          body: payload,
          contentType: payload === undefined ? undefined : (opts.contentType ?? (upper === 'PATCH' ? 'application/merge-patch+json' : 'application/json')),
          headers: opts.headers,
          timeoutMs: opts.timeoutMs ?? 30_000,
        });
        let parsed: unknown = res.text;
        if (String(res.headers['content-type'] ?? '').includes('json')) {
          try {
            parsed = JSON.parse(res.text);
          } catch {
            // A truncated or non-JSON body under a JSON content type: keep the text for the assertion message.
          }
        }
        return { status: res.status, body: parsed as T, text: res.text, headers: res.headers };
      },
      stopApiServer,
      startApiServer,
      stop(): Promise<void> {
        stopping ??= (async () => {
          apiServer = undefined;
          await stopAll();
        })();
        return stopping;
      },
    };
    return cluster;
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------

/** Children and dirs of every cluster in this process, for the last-resort cleanup below. */
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let hooksInstalled = false;

function installProcessHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // A test that throws before stop(), or a runner that exits the process,
  // must not leave etcd and kube-apiserver running and holding ports.
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      // Keep the default "die by this signal" behaviour unless someone else handles it.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

function cleanupSync(): void {
  for (const child of liveChildren) {
    if (isRunning(child)) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

function spawnLogged(bin: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  // setpriv --pdeathsig makes the kernel kill the child even if this process
  // is SIGKILLed, which no 'exit' handler can cover. It execs, so the pid is
  // the server's own.
  const setpriv = findInPath('setpriv');
  const [cmd, argv] = setpriv !== undefined ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  liveChildren.add(child);
  child.on('exit', () => liveChildren.delete(child));
  child.on('error', () => liveChildren.delete(child));
  // A test that forgets stop() should end, not hang; the 'exit' hook still kills the child.
  child.unref();
  return child;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function terminate(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return;
  // Hold the event loop open until the child is really gone.
  child.ref();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (!child.kill('SIGTERM') && !isRunning(child)) {
      clearTimeout(timer);
      resolve();
    }
  });
}

async function waitUntil(timeoutMs: number, child: ChildProcess, logFile: string, what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Keep the loop alive while polling: the child itself is unref'd.
  child.ref();
  try {
    let lastError = '';
    while (Date.now() < deadline) {
      if (!isRunning(child)) {
        throw new Error(`${what} exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready; log tail:\n${tail(logFile)}`);
      }
      try {
        if (await probe()) return;
        lastError = 'not ready yet';
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      await sleep(250);
    }
    throw new Error(`${what} not ready after ${timeoutMs / 1000} s (last probe: ${lastError}); log tail:\n${tail(logFile)}`);
  } finally {
    child.unref();
  }
}

interface RawRequest {
  method: string;
  token?: string;
  ca?: string;
  rejectUnauthorized?: boolean;
  body?: string | undefined;
  contentType?: string | undefined;
  headers?: Record<string, string> | undefined;
  timeoutMs: number;
}

interface RawResponse {
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}

function rawRequest(url: string, req: RawRequest): Promise<RawResponse> {
  const u = new URL(url);
  const headers: Record<string, string> = { accept: 'application/json, */*', ...req.headers };
  if (req.token !== undefined) headers['authorization'] = `Bearer ${req.token}`;
  if (req.body !== undefined) {
    headers['content-type'] = req.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(req.body));
  }
  return new Promise<RawResponse>((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    };
    const common = { method: req.method, headers, timeout: req.timeoutMs, agent: false as const };
    const r =
      u.protocol === 'https:'
        ? https.request(u, { ...common, ca: req.ca, rejectUnauthorized: req.rejectUnauthorized ?? true }, onResponse)
        : http.request(u, common, onResponse);
    r.on('timeout', () => r.destroy(new Error(`${req.method} ${url} timed out after ${req.timeoutMs} ms`)));
    r.on('error', reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

function freePorts(n: number): Promise<number[]> {
  // Hold all listeners open together so the n ports are distinct.
  const servers: net.Server[] = [];
  const listenOne = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const s = net.createServer();
      servers.push(s);
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port));
    });
  const closeAll = (): Promise<void[]> => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return (async () => {
    try {
      const ports: number[] = [];
      for (let i = 0; i < n; i++) ports.push(await listenOne());
      return ports;
    } finally {
      await closeAll();
    }
  })();
}

function tail(file: string, lines = 40): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch (err) {
    return `(no log: ${err instanceof Error ? err.message : String(err)})`;
  }
}

function writeFileSyncPrivate(file: string, text: string): void {
  // 0600 because it holds a bearer token; chmod too, as mode only applies to new files.
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function findInPath(name: string): string | undefined {
  for (const d of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (d === '') continue;
    const candidate = path.join(d, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function newToken(): string {
  return randomBytes(24).toString('hex');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
