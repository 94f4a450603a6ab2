// The setup shared by the tests against a real kube-apiserver + etcd (cluster.ts):
// node:test hooks that start the test cluster (and, for the fault tests, a
// FaultProxy in front of it, fault-proxy.ts) before the tests of a file or suite,
// and undo everything after them, and the state those tests share.
//
// Call it inside a describe() (the hooks are that suite's, skipped with it), or at
// the top of a file with `skip` (the hooks are the file's, and run even when every
// test is skipped: with a reason they start nothing).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startTestCluster, type TestCluster } from './cluster.js';
import { DAEMON_RULES, grantServiceAccount, type Cleanups, type PolicyRule } from './daemon.js';
import { FaultProxy } from './fault-proxy.js';

export interface ApiSuiteOptions {
  /** Why the cluster cannot run (clusterUnavailableReason() and the like): the hooks start nothing. */
  skip?: string | undefined;
  /** A Role and RoleBinding `name` for the daemon's service account, granted once the cluster is up (grantServiceAccount): `rules`, by default DAEMON_RULES. */
  grant?: { name: string; rules?: readonly PolicyRule[] };
}

export interface ApiSuite {
  /** The running test cluster (set by the before() hook). */
  cluster: TestCluster;
  /** Undone in reverse after the tests, each failure ignored, before the cluster stops: processes, clients, temp dirs. */
  cleanups: Cleanups;
  /** A new empty temp dir named `prefix…`, removed after the tests. */
  tempDir(prefix: string): string;
}

export interface ProxiedApiSuite extends ApiSuite {
  /** A FaultProxy in front of `cluster`'s API server, listening (set by the before() hook). */
  proxy: FaultProxy;
  /** Writes a kubeconfig with the admin token whose server is the proxy, and returns its path. */
  kubeconfigViaProxy(): string;
}

/** A test cluster for the tests of the current suite (or file). */
export function useTestCluster(opts: ApiSuiteOptions = {}): ApiSuite {
  return register(opts, false);
}

/** A test cluster behind a listening FaultProxy for the tests of the current suite (or file). */
export function useProxiedCluster(opts: ApiSuiteOptions = {}): ProxiedApiSuite {
  return register(opts, true) as ProxiedApiSuite;
}

function register(opts: ApiSuiteOptions, withProxy: boolean): ApiSuite | ProxiedApiSuite {
  // The fields the hooks set are read only by tests, which run after them.
  const suite = {
    cleanups: [] as Cleanups,
    tempDir(prefix: string): string {
      const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
      suite.cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    kubeconfigViaProxy(): string {
      const { cluster, proxy } = suite as ProxiedApiSuite;
      const file = cluster.writeKubeconfig(cluster.tokens.admin, path.join(cluster.dir, 'kubeconfig-proxy'));
      writeFileSync(file, readFileSync(file, 'utf8').replace(JSON.stringify(cluster.server), JSON.stringify(proxy.url)));
      return file;
    },
  } as Partial<ProxiedApiSuite> & ApiSuite;

  before(async () => {
    if (opts.skip !== undefined) return;
    suite.cluster = await startTestCluster();
    if (opts.grant) await grantServiceAccount(suite.cluster, opts.grant.name, opts.grant.rules ?? DAEMON_RULES);
    if (withProxy) {
      suite.proxy = FaultProxy.forCluster(suite.cluster);
      await suite.proxy.start();
    }
  });

  after(async () => {
    for (const c of suite.cleanups.splice(0).reverse()) await c().catch(() => undefined);
    await suite.proxy?.stop();
    await suite.cluster?.stop();
  });

  return suite;
}
