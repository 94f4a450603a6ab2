// What the local test cluster could change on the test machine, read before it
// starts and after it stops, to prove the host is given back as it was.
//
// The machine is shared (other test runs create their own network namespaces,
// podman containers and mounts meanwhile), so each part compares what this
// cluster could have touched: exact values of the sysctls it might write, and for
// mounts, namespaces, processes, cgroups, interfaces and iptables, that nothing of
// the cluster's is left and nothing the host had before is gone or changed.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { LOCAL_STATE_DIR } from './target.js';

/** Kept in step with scripts/test-cluster.sh. */
export const CLUSTER_NETNS = ['cnk8s', 'cnk8s-peer'];
const CLUSTER_LINKS = ['k8snode0', 'k8speer0', 'cnk8s0'];
const NODE_PATHS = ['/etc/cni/net.d', '/opt/cni', '/var/lib/cni', '/var/log', '/run/containerd'];
const CLUSTER_ADDRESSES = ['10.99.0.', '10.96.0.', '10.244.'];

/**
 * Host sysctls the cluster's processes could write: what the kubelet sets with
 * protectKernelDefaults=false, kube-proxy's conntrack settings, and what the CNI
 * plugins and kube-proxy set per network namespace (read here in the host's).
 */
export const WATCHED_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/netfilter/nf_conntrack_max',
  'net/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/route_localnet',
  'net/ipv4/conf/all/forwarding',
  'net/ipv6/conf/all/forwarding',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
];
const SYS_FILES = ['/sys/module/nf_conntrack/parameters/hashsize'];

export interface HostState {
  sysctls: Record<string, string | null>;
  /** mountinfo entries as "mountpoint fstype source", of the host's mount namespace. */
  mounts: string[];
  netns: string[];
  links: string[];
  /** iptables-save and ip6tables-save without counters and comment lines. */
  iptables: string[];
  /** Does each node path the cluster mounts over exist on the host? */
  dirs: Record<string, boolean>;
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function cmd(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

export function readHostState(): HostState {
  const sysctls: Record<string, string | null> = {};
  for (const k of WATCHED_SYSCTLS) sysctls[k] = read(`/proc/sys/${k}`);
  for (const f of SYS_FILES) sysctls[f] = read(f);
  const mounts = (read('/proc/self/mountinfo') ?? '')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      return `${f[4]} ${f[sep + 1]} ${f[sep + 2]}`;
    });
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns').sort() : [];
  const links = cmd('ip', ['-o', 'link', 'show'])
    .split('\n')
    .filter(Boolean)
    .map((l) => (l.split(':')[1] ?? '').trim().replace(/@.*/, ''))
    .sort();
  const iptables = [...cmd('iptables-save', []).split('\n'), ...cmd('ip6tables-save', []).split('\n')]
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[]'));
  const dirs: Record<string, boolean> = {};
  for (const p of [...NODE_PATHS, LOCAL_STATE_DIR]) dirs[p] = existsSync(p);
  return { sysctls, mounts, netns, links, iptables, dirs };
}

/** Things of other tenants of a shared machine that may come and go meanwhile. */
function othersVolatile(mount: string): boolean {
  const mp = mount.split(' ')[0] ?? '';
  return (
    /^\/run\/netns\/./.test(mp) ||
    mp.startsWith('/var/lib/containers/') ||
    mp.startsWith('/run/containers/') ||
    mp.startsWith('/run/user/') ||
    mp.startsWith('/tmp/') ||
    mp.startsWith('/var/tmp/')
  );
}

function isClusterPath(p: string): boolean {
  return p.startsWith(LOCAL_STATE_DIR) || CLUSTER_NETNS.some((n) => p === `/run/netns/${n}`) || NODE_PATHS.some((n) => p === n || p.startsWith(`${n}/`));
}

/** Differences that the cluster is responsible for, one line each; empty when the host is as it was. */
export function compareHostStates(before: HostState, after: HostState, clusterNs: { mntns: string; netns: string } | undefined): string[] {
  const problems: string[] = [];
  for (const [k, v] of Object.entries(before.sysctls)) {
    if (after.sysctls[k] !== v) problems.push(`sysctl ${k}: ${v} → ${after.sysctls[k]}`);
  }

  const mb = new Set(before.mounts.filter((m) => !othersVolatile(m)));
  const ma = new Set(after.mounts.filter((m) => !othersVolatile(m)));
  for (const m of mb) if (!ma.has(m)) problems.push(`mount gone: ${m}`);
  for (const m of ma) if (!mb.has(m)) problems.push(`mount new: ${m}`);
  for (const m of after.mounts) if (isClusterPath(m.split(' ')[0] ?? '')) problems.push(`a mount of the cluster is still there: ${m}`);

  for (const n of CLUSTER_NETNS) if (after.netns.includes(n)) problems.push(`network namespace ${n} still exists`);

  for (const l of CLUSTER_LINKS) if (after.links.includes(l)) problems.push(`interface ${l} on the host`);
  const stable = (ls: string[]) => ls.filter((l) => !/^(veth|cni-podman|podman|vnet)/.test(l));
  const lb = stable(before.links);
  const la = stable(after.links);
  for (const l of lb) if (!la.includes(l)) problems.push(`host interface gone: ${l}`);
  for (const l of la) if (!lb.includes(l)) problems.push(`host interface new: ${l}`);

  for (const r of after.iptables) {
    if (/KUBE-/.test(r) || CLUSTER_LINKS.some((l) => r.includes(l)) || CLUSTER_ADDRESSES.some((a) => r.includes(a)))
      problems.push(`host iptables rule of the cluster: ${r}`);
  }
  const podmanRule = (r: string) => /CNI-|NETAVARK|10\.88\.|cni-podman|podman/.test(r);
  const rb = before.iptables.filter((r) => !podmanRule(r));
  const ra = after.iptables.filter((r) => !podmanRule(r));
  for (const r of rb) if (!ra.includes(r)) problems.push(`host iptables rule gone: ${r}`);
  for (const r of ra) if (!rb.includes(r)) problems.push(`host iptables rule new: ${r}`);

  for (const [p, existed] of Object.entries(before.dirs)) {
    if (after.dirs[p] !== existed) problems.push(`${p}: ${existed ? 'existed' : 'did not exist'} before, ${after.dirs[p] ? 'exists' : 'is gone'} now`);
  }

  // Processes: nothing in the cluster's namespaces or kubepods cgroups, nothing
  // naming the cluster's state dir (every cluster daemon's command line does; other
  // tests on the machine run the cached kube-apiserver too, with their own dirs).
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    const why = clusterProcess(pid, clusterNs);
    if (why !== undefined) problems.push(`process ${pid} still running (${why}): ${(read(`/proc/${pid}/cmdline`) ?? '').replace(/\0/g, ' ').slice(0, 160)}`);
  }
  const cgroupRoot = '/sys/fs/cgroup';
  for (const hierarchy of existsSync(cgroupRoot) ? readdirSync(cgroupRoot) : []) {
    if (existsSync(path.join(cgroupRoot, hierarchy, 'kubepods'))) problems.push(`cgroup ${path.join(cgroupRoot, hierarchy, 'kubepods')} still exists`);
  }
  if (existsSync(path.join(cgroupRoot, 'kubepods'))) problems.push('cgroup /sys/fs/cgroup/kubepods still exists');
  return problems;
}

function clusterProcess(pid: string, ns: { mntns: string; netns: string } | undefined): string | undefined {
  const link = (n: string): string | undefined => {
    try {
      return readlinkSync(`/proc/${pid}/ns/${n}`);
    } catch {
      return undefined;
    }
  };
  if (ns !== undefined && link('mnt') === ns.mntns) return "in the cluster's mount namespace";
  if (ns !== undefined && link('net') === ns.netns) return "in the cluster's network namespace";
  if (/:\/kubepods/.test(read(`/proc/${pid}/cgroup`) ?? '')) return 'in a kubepods cgroup';
  const cmdline = (read(`/proc/${pid}/cmdline`) ?? '').replace(/\0/g, ' ');
  if (cmdline.includes(`${LOCAL_STATE_DIR}/`)) return 'names the state dir';
  return undefined;
}
