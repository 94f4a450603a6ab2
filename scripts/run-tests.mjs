// Runs the compiled test suite (build/test/**/*.test.js) with Node's own runner.
//   node scripts/run-tests.mjs           everything: the suite, then the cluster suite
//   node scripts/run-tests.mjs unit      everything but test/e2e and test/cluster
//   node scripts/run-tests.mjs cluster   only the cluster suite (test/cluster)
// It installs nothing; it says loudly what is missing for the real-part tests,
// which then skip with the same reason.
//
// The cluster suite (test/cluster) runs last and alone: it starts the machine's one
// single-node Kubernetes cluster, and its timings (rollout, ConfigMap propagation)
// mean more on a machine that is not also running the other tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv[2];
const cache = process.env.CNI_NODE_TEST_CACHE ?? '/var/cache/cni-node-test';

function collect(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return name === 'support' || name === 'fixtures' ? [] : collect(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

const all = collect(path.join(root, 'build/test')).sort();
if (all.length === 0) {
  console.error('run-tests: no compiled tests in build/test; run `npm run build` first');
  process.exit(1);
}
const clusterDir = path.join(root, 'build/test/cluster') + path.sep;
const clusterFiles = all.filter((f) => f.startsWith(clusterDir));
let files = all.filter((f) => !f.startsWith(clusterDir));
if (only === 'unit') files = files.filter((f) => !f.includes(`${path.sep}e2e${path.sep}`));
if (only === 'cluster') files = [];
const runCluster = only === undefined || only === 'cluster';

const missing = [];
const byo = (process.env.CNI_NODE_TEST_KUBECONFIG ?? '').trim() !== '';
if (process.getuid?.() !== 0) missing.push('not root: network-namespace, API-server, image and local-cluster tests will skip (run the tests as root)');
if (!existsSync('/usr/lib/cni/bridge')) missing.push('Debian containernetworking-plugins missing: run `sudo scripts/setup.sh`');
if (!existsSync(path.join(cache, 'kubernetes-1.20.2', 'kube-apiserver')))
  missing.push('Kubernetes 1.20.2 not built: run `sudo scripts/setup.sh` (or `sudo scripts/test-cluster.sh provision`)');
if (!existsSync('/usr/bin/podman')) missing.push('podman missing: image tests will skip; run `sudo scripts/setup.sh`');
if (missing.length > 0 && only !== 'unit') {
  console.error('\n*** Some real-part tests will be SKIPPED on this machine:');
  for (const m of missing) console.error(`***   - ${m}`);
  console.error('');
}

let status = 0;
if (files.length > 0) {
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], { stdio: 'inherit', cwd: root });
  status = r.status ?? 1;
}
if (runCluster && clusterFiles.length > 0) {
  console.error(
    `\n*** The cluster suite (test/cluster) against ${byo ? `the cluster of CNI_NODE_TEST_KUBECONFIG=${process.env.CNI_NODE_TEST_KUBECONFIG}` : "this machine's single-node test cluster"}:\n`,
  );
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...clusterFiles], { stdio: 'inherit', cwd: root });
  if ((r.status ?? 1) !== 0) status = r.status ?? 1;
}
process.exit(status);
