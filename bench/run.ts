// `npm run bench [-- NAME…]`: runs the named benchmarks (default: core), each in a
// process of its own, one after another. Results are printed and written as JSON to
// build/bench-results/NAME.json ($BENCH_OUT_DIR).
//
//   core        cni-node vs the original bash cni-node, with floors (≈ 2–3 min)
//   cli-profile where the CLI's start-up time goes: CPU profiles, modules loaded,
//               instructions of each part alone (≈ 2 min)
//   footprint   daemon idle RSS and CPU vs a bare-Node floor, and what RSS is made of
//               (BENCH_IDLE_SECONDS, default 60; the goal is 600)
//   daemon      reaction times: ConfigMap → node, pointer target → config, bursts,
//               container start → converged (needs the test kube-apiserver)
//   many-nodes  500…1,000 simulated nodes' ConfigMap watches against one API server
//   manifests   server-side apply of 50 objects
//   scale       install/no-op/apply of up to 200 plugins and 100 templates
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const KNOWN = ['core', 'cli-profile', 'footprint', 'daemon', 'many-nodes', 'manifests', 'scale'];
const here = path.dirname(fileURLToPath(import.meta.url));
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const chosen = names.length === 0 ? ['core'] : names[0] === 'all' ? KNOWN : names;
for (const name of chosen) {
  if (!KNOWN.includes(name) || !existsSync(path.join(here, `${name}.js`))) {
    console.error(`bench: unknown benchmark "${name}" (known: ${KNOWN.join(', ')}, all)`);
    process.exit(2);
  }
}
let failed = 0;
for (const name of chosen) {
  console.log(`\n=== bench ${name}\n`);
  const r = spawnSync(process.execPath, [path.join(here, `${name}.js`), ...process.argv.slice(2).filter((a) => a.startsWith('-'))], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench ${name}: failed (exit ${r.status ?? r.signal})`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
