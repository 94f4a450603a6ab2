// Long-running cni-node / kube-watch processes for tests that signal them while
// they run (SIGUSR1, SIGTERM, SIGHUP …): a handle with the output so far, waiting
// for a line, the exit, and the TCP ports the process listens on (not a test file
// itself: the test runner skips directories named `support`).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, readlink } from 'node:fs/promises';
import net from 'node:net';

export interface Proc {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr so far, for assertion messages. */
  output(): string;
  /** Resolves once stdout or stderr has a match for `re`; rejects after `ms` or if the process exits first. */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  kill(sig?: NodeJS.Signals): void;
}

/** Starts `cmd args` with exactly `env`; SIGKILLed after `timeoutMs` (default 60 s) if still running. */
export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Proc {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exited = false;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of listeners) l();
  };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    notify();
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    notify();
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(guard);
      notify();
      resolve({ code, signal });
    });
  });
  const output = () => `--- stdout\n${out}--- stderr\n${err}`;
  return {
    child,
    pid: child.pid as number,
    stdout: () => out,
    stderr: () => err,
    output,
    exit,
    alive: () => !exited,
    kill: (sig: NodeJS.Signals = 'SIGTERM') => void child.kill(sig),
    waitFor(re: RegExp, ms = 15_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(out) || re.test(err)) {
            done();
            resolve();
          } else if (exited) {
            done();
            reject(new Error(`exited before ${re} appeared\n${output()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${re} did not appear within ${ms} ms\n${output()}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/**
 * The TCP ports process `pid` listens on (IPv4 and IPv6), from /proc: the inodes of
 * its socket descriptors matched against the listening sockets of its network
 * namespace. Precise to the process, whatever else on the machine listens.
 */
export async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1] as string);
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9] as string)) continue;
      ports.push(parseInt((cols[1] as string).split(':')[1] as string, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough for one test's --listen). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A loopback port nothing listens on (connections are refused): a free port, bound and released. */
export const closedPort = freePort;

/** GET http://address/path: status and body. */
export async function httpGet(address: string, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, text: await res.text() };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 50 ms until it returns something truthy; fails after `ms` with `what` and `context()`. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 10_000,
  context: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${context()}`);
    await sleep(50);
  }
}
