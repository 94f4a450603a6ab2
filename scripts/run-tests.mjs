// Runs the compiled test suite (build/test/**/*.test.js) with Node's own runner.
// `node scripts/run-tests.mjs unit` runs everything but test/e2e.
// It installs nothing; it says loudly what is missing for the real-part tests,
// which then skip with the same reason.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const only = process.argv[2];

function collect(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return name === 'support' || name === 'fixtures' ? [] : collect(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

let files = collect(path.join(root, 'build/test')).sort();
if (only === 'unit') files = files.filter((f) => !f.includes(`${path.sep}e2e${path.sep}`));
if (files.length === 0) {
  console.error('run-tests: no compiled tests in build/test; run `npm run build` first');
  process.exit(1);
}

const missing = [];
if (process.getuid?.() !== 0) missing.push('not root: network-namespace, API-server and image tests will skip (run the tests as root)');
if (!existsSync('/usr/lib/cni/bridge')) missing.push('Debian containernetworking-plugins missing: run `sudo scripts/setup.sh`');
if (!existsSync('/var/cache/cni-node-test/kube-apiserver-1.20.2')) missing.push('test kube-apiserver not built: run `sudo scripts/setup.sh` (or `sudo scripts/test-cluster.sh provision`)');
if (!existsSync('/usr/bin/podman')) missing.push('podman missing: image tests will skip; run `sudo scripts/setup.sh`');
if (missing.length > 0 && only !== 'unit') {
  console.error('\n*** Some real-part tests will be SKIPPED on this machine:');
  for (const m of missing) console.error(`***   - ${m}`);
  console.error('');
}

const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
