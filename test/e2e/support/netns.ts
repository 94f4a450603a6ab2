// Run CNI plugins the way a container runtime does (libcni, as used by containerd
// and CRI-O), against real network namespaces, so e2e tests prove that what
// cni-node put on the node actually gives a pod a network.
//
// Safety rules these helpers keep (tests run as root on a shared machine):
//  - every namespace and bridge name is unique per process (pid-based), so test
//    files running in parallel never collide, and every one is deleted again;
//  - addresses are private (10.244.x.0/24) and live only inside namespaces and
//    bridges the test created; no route is added on the host and nothing here
//    sends traffic anywhere.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const DEBIAN_PLUGINS_DIR = '/usr/lib/cni';
const PLUGIN_TIMEOUT_MS = 30_000;

/** Why real-netns tests cannot run here, or undefined when they can. */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (ip netns add, creating bridges)';
  const ip = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
  if (!ip) return 'iproute2 is not installed (apt-get install -y iproute2)';
  for (const p of ['bridge', 'host-local', 'loopback', 'portmap']) {
    try {
      accessSync(path.join(DEBIAN_PLUGINS_DIR, p), fsConstants.X_OK);
    } catch {
      return `${DEBIAN_PLUGINS_DIR}/${p} is missing (apt-get install -y containernetworking-plugins)`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Picking the network, like libcni's ConfFiles + go-cni's loadFromConfDir.

export type Json = Record<string, unknown>;

export interface PickedNetwork {
  /** File name in the conf dir. */
  file: string;
  path: string;
  /** The network name (from the file). */
  name: string;
  cniVersion: string;
  /** true for a .conflist; a .conf/.json is a single plugin config. */
  isList: boolean;
  /** The parsed top-level document. */
  conf: Json;
  /** The plugin configs of the chain, in order (for a .conf: the conf itself). */
  plugins: Json[];
  /** Files lexically before `file` that the runtime skipped, with why. */
  skipped: { file: string; why: string }[];
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses one file the way libcni does; returns why it is unusable, or the network. */
export function loadNetwork(file: string, text: string): Omit<PickedNetwork, 'path' | 'skipped'> | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `error parsing configuration: ${(e as Error).message}`;
  }
  if (!isObject(doc)) return 'error parsing configuration: not a JSON object';
  const cniVersion = typeof doc.cniVersion === 'string' ? doc.cniVersion : '';
  if (file.endsWith('.conflist')) {
    // libcni ConfListFromBytes
    if (typeof doc.name !== 'string' || doc.name === '') return 'error parsing configuration list: no name';
    if (!('plugins' in doc)) return "error parsing configuration list: no 'plugins' key";
    if (!Array.isArray(doc.plugins)) return 'error parsing configuration list: invalid plugins';
    if (doc.plugins.length === 0) return 'error parsing configuration list: no plugins in list';
    const plugins: Json[] = [];
    for (const [i, p] of doc.plugins.entries()) {
      if (!isObject(p)) return `failed to parse plugin config ${i}: not an object`;
      if (typeof p.type !== 'string' || p.type === '') return `failed to parse plugin config ${i}: missing 'type'`;
      plugins.push(p);
    }
    return { file, name: doc.name, cniVersion, isList: true, conf: doc, plugins };
  }
  // .conf and .json: libcni ConfFromBytes (go-cni and ocicni treat .json as a .conf).
  if (typeof doc.type !== 'string' || doc.type === '') return "error parsing configuration: missing 'type'";
  return { file, name: typeof doc.name === 'string' ? doc.name : '', cniVersion, isList: false, conf: doc, plugins: [doc] };
}

/**
 * The network a container runtime uses: the lexically first (byte order, like Go's
 * sort.Strings) file ending in .conf, .conflist or .json — hidden files included —
 * that loads as a valid network configuration. Undefined when there is none.
 */
export async function pickNetwork(confDir: string): Promise<PickedNetwork | undefined> {
  const names = (await readdir(confDir, { withFileTypes: true }))
    .filter((e) => !e.isDirectory() && ['.conf', '.conflist', '.json'].includes(path.extname(e.name)))
    .map((e) => e.name)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const skipped: { file: string; why: string }[] = [];
  for (const file of names) {
    const full = path.join(confDir, file);
    let text: string;
    try {
      text = await readFile(full, 'utf8');
    } catch (e) {
      skipped.push({ file, why: (e as Error).message });
      continue;
    }
    const loaded = loadNetwork(file, text);
    if (typeof loaded === 'string') {
      skipped.push({ file, why: loaded });
      continue;
    }
    return { ...loaded, path: full, skipped };
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Executing the chain.

export type CniCommand = 'ADD' | 'CHECK' | 'DEL';

export interface RunOptions {
  /** Name of the namespace under /var/run/netns. */
  netns: string;
  containerId: string;
  ifname: string;
  /** Directories searched for plugin binaries (CNI_PATH), ':'-separated. */
  cniPath: string;
  /**
   * CHECK and DEL: the result the runtime cached from ADD, given to every plugin as
   * prevResult (libcni does this for cniVersion ≥ 0.4.0).
   */
  prevResult?: Json;
}

/** A plugin answered with an error (non-zero exit, CNI error JSON on stdout). */
export class CniPluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: CniCommand,
    readonly code: number | undefined,
    readonly msg: string,
    readonly details: string,
    readonly stderr: string,
  ) {
    super(
      `${command} ${plugin}: ${msg}${details ? ` (${details})` : ''}${code !== undefined ? ` [code ${code}]` : ''}${stderr ? `; stderr: ${stderr.trim()}` : ''}`,
    );
    this.name = 'CniPluginError';
  }
}

export interface PluginRun {
  type: string;
  /** The config given on stdin. */
  stdin: Json;
  result?: Json;
}

export interface ChainResult {
  /** The chain's final result (ADD: the last plugin's; CHECK/DEL: undefined). */
  result?: Json;
  runs: PluginRun[];
}

function findBinary(type: string, cniPath: string, command: CniCommand): string {
  for (const dir of cniPath.split(':').filter(Boolean)) {
    const candidate = path.join(dir, type);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // next dir
    }
  }
  throw new CniPluginError(type, command, undefined, `failed to find plugin "${type}" in path [${cniPath}]`, '', '');
}

/** Executes one plugin binary with the CNI environment and `stdin`; resolves with stdout. */
export function execPlugin(binary: string, env: Record<string, string>, stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), PLUGIN_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

/** The config one plugin of the network gets on stdin (libcni buildOneConfig). */
export function pluginConfig(net: Pick<PickedNetwork, 'name' | 'cniVersion' | 'isList'>, plugin: Json, prevResult: Json | undefined): Json {
  if (!net.isList) {
    // A .conf is given as it is (plus prevResult, which a single plugin never gets on ADD).
    return prevResult ? { ...plugin, prevResult } : { ...plugin };
  }
  const conf: Json = { ...plugin, name: net.name, cniVersion: net.cniVersion };
  if (prevResult) conf.prevResult = prevResult;
  else delete conf.prevResult;
  return conf;
}

/**
 * Runs the network's chain like a runtime: ADD runs each plugin in order, the
 * second and later getting the previous plugin's result as prevResult; CHECK runs
 * in order and DEL in reverse, each plugin getting `opts.prevResult` (the cached
 * ADD result). Throws CniPluginError on the first plugin that fails (DEL too).
 */
export async function runChain(
  command: CniCommand,
  net: Pick<PickedNetwork, 'name' | 'cniVersion' | 'isList' | 'plugins'>,
  opts: RunOptions,
): Promise<ChainResult> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: opts.containerId,
    CNI_NETNS: `/var/run/netns/${opts.netns}`,
    CNI_IFNAME: opts.ifname,
    CNI_PATH: opts.cniPath,
  };
  const order = command === 'DEL' ? [...net.plugins].reverse() : net.plugins;
  const runs: PluginRun[] = [];
  let prev: Json | undefined = command === 'ADD' ? undefined : opts.prevResult;
  for (const plugin of order) {
    const type = plugin.type as string;
    const binary = findBinary(type, opts.cniPath, command);
    const stdin = pluginConfig(net, plugin, prev);
    const { code, stdout, stderr } = await execPlugin(binary, env, JSON.stringify(stdin));
    const run: PluginRun = { type, stdin };
    runs.push(run);
    if (code !== 0) {
      let msg = `exited with ${code === null ? 'a signal' : `code ${code}`}`;
      let details = '';
      let errCode: number | undefined;
      try {
        const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
        errCode = e.code;
        msg = e.msg ?? msg;
        details = e.details ?? '';
      } catch {
        if (stdout.trim()) details = stdout.trim().slice(0, 500);
      }
      throw new CniPluginError(type, command, errCode, msg, details, stderr);
    }
    if (command === 'ADD') {
      let result: unknown;
      try {
        result = JSON.parse(stdout);
      } catch (e) {
        throw new CniPluginError(type, command, undefined, `result is not JSON: ${(e as Error).message}`, stdout.slice(0, 500), stderr);
      }
      if (!isObject(result)) throw new CniPluginError(type, command, undefined, 'result is not a JSON object', stdout.slice(0, 500), stderr);
      run.result = result;
      prev = result;
    }
  }
  return { runs, ...(command === 'ADD' && prev ? { result: prev } : {}) };
}

// ---------------------------------------------------------------------------
// Namespaces.

let counter = 0;

export interface TestNetns {
  /** Namespace name (`ip netns`), also usable as CNI_NETNS=/var/run/netns/<name>. */
  name: string;
  path: string;
  /** A bridge name reserved for this namespace's test (≤ 15 chars); deleted afterwards if it exists. */
  bridge: string;
  /** A /24 inside 10.244.0.0/16 for this test, e.g. "10.244.37.0/24". */
  subnet: string;
  /** The first three octets of `subnet`, e.g. "10.244.37". */
  prefix: string;
  containerId: string;
}

export async function ip(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('ip', args, { timeout: 15_000 });
  return stdout;
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await execFileAsync('ip', ['link', 'show', 'dev', name], { timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

async function cleanup(ns: TestNetns, extraLinks: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  try {
    const list = await ip('netns', 'list');
    if (list.split('\n').some((l) => l.split(' ')[0] === ns.name)) await ip('netns', 'del', ns.name);
  } catch (e) {
    problems.push(`netns ${ns.name}: ${(e as Error).message}`);
  }
  for (const link of [ns.bridge, ...extraLinks]) {
    try {
      if (await linkExists(link)) await ip('link', 'del', 'dev', link);
    } catch (e) {
      problems.push(`link ${link}: ${(e as Error).message}`);
    }
  }
  return problems;
}

/**
 * Creates a uniquely named network namespace, runs `fn`, and always deletes the
 * namespace (which also deletes the veth pairs in it) and the reserved bridge —
 * plus any host links `fn` registered through `alsoDeleteLink` — also when `fn`
 * throws.
 */
export async function withNetns<T>(fn: (ns: TestNetns, alsoDeleteLink: (name: string) => void) => Promise<T>): Promise<T> {
  const n = ++counter;
  const pid = process.pid;
  // pid ≤ 4194304 (7 digits): "cnb" + 7 + 2 = 12 chars, within IFNAMSIZ-1 = 15.
  const tag = `${pid}${String(n % 100).padStart(2, '0')}`;
  const third = (pid * 7 + n * 13) % 250;
  const prefix = `10.244.${third}`;
  const ns: TestNetns = {
    name: `cni-node-test-${tag}`,
    path: `/var/run/netns/cni-node-test-${tag}`,
    bridge: `cnb${tag}`,
    subnet: `${prefix}.0/24`,
    prefix,
    containerId: `cni-node-test-${tag}-${Date.now().toString(16)}`,
  };
  const extra: string[] = [];
  await ip('netns', 'add', ns.name);
  let result: T;
  try {
    result = await fn(ns, (l) => void extra.push(l));
  } catch (e) {
    // Clean up, but never let a cleanup problem hide the test's own failure.
    await cleanup(ns, extra);
    throw e;
  }
  const problems = await cleanup(ns, extra);
  if (problems.length > 0) throw new Error(`cleanup failed: ${problems.join('; ')}`);
  return result;
}

export interface AddrInfo {
  ifname: string;
  operstate?: string;
  flags?: string[];
  addr_info: { family: string; local: string; prefixlen: number }[];
}

/** `ip -n NS -j addr`: interfaces and addresses inside the namespace. */
export async function addrsIn(netns: string): Promise<AddrInfo[]> {
  return JSON.parse(await ip('-n', netns, '-j', 'addr')) as AddrInfo[];
}

/** Host-side `ip -j link show master BRIDGE`: links enslaved to the bridge. */
export async function bridgePorts(bridge: string): Promise<string[]> {
  const links = JSON.parse(await ip('-j', 'link', 'show', 'master', bridge)) as { ifname: string }[];
  return links.map((l) => l.ifname);
}
