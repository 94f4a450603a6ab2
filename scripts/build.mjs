// Builds two things:
//  - dist/: the CLI bundled by esbuild. One small file loads at start-up (enough for
//    `version` and `help`); the node commands add one file (dist/lazy/actions.mjs);
//    the daemon and the Kubernetes client sit in chunks loaded only by commands that
//    talk to the API, so `cni-node version` and plugin/config work start as fast as
//    bare Node.
//  - build/: src, test and bench compiled by tsc, which the test runner executes.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
// The image build has no .git; it passes the revision in CNI_NODE_REVISION.
let revision = process.env.CNI_NODE_REVISION ?? '';
if (!revision) {
  try {
    revision = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    revision = 'unknown';
  }
}

// Outputs are overwritten, not wiped first, so a build never pulls files from
// under tests or CLI runs in progress. `--clean` starts from empty dirs.
if (process.argv.includes('--clean')) {
  rmSync(`${root}dist`, { recursive: true, force: true });
  rmSync(`${root}build`, { recursive: true, force: true });
}

// Commands that talk to the API or run the daemon live in dist/lazy/, loaded by a
// dynamic import only when used. Everything else is one file: every extra module
// costs a resolution and a read at start-up, and `version` or a no-op install
// should start as fast as bare Node.
// Each is named by its source; an import of it, from wherever, is recognised by
// the file it resolves to.
// `actions` (the node commands) is bundled alone; the others share chunks.
const SHARED_CHUNKS = { run: 'src/cli/run.ts', watch: 'src/cli/watch.ts', 'manifest-handler': 'src/kube/manifest-handler.ts' };
const LAZY = { ...SHARED_CHUNKS, actions: 'src/cli/actions.ts' };
const lazyByFile = new Map(Object.entries(LAZY).map(([name, file]) => [`${root}${file.replace(/\.ts$/, '.js')}`, name]));

/** Dynamic imports of the LAZY modules stay imports, of `${dir}NAME.mjs` (dir relative to the importing bundle). */
function lazyEntries(dir) {
  return {
    name: 'lazy-entries',
    setup(b) {
      b.onResolve({ filter: /\.js$/ }, (args) => {
        if (args.kind !== 'dynamic-import') return undefined;
        const name = lazyByFile.get(path.resolve(args.resolveDir, args.path));
        return name === undefined ? undefined : { path: `${dir}${name}.mjs`, external: true };
      });
    },
  };
}
const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  outExtension: { '.js': '.mjs' },
  sourcemap: 'linked',
  // Smaller image and faster parse; names are kept so stack traces stay readable.
  minify: true,
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: { __CNI_NODE_VERSION__: JSON.stringify(pkg.version), __CNI_NODE_REVISION__: JSON.stringify(revision) },
};

// Node's built-in modules, without their ESM facades.
//
// `import { x } from 'node:fs'` makes Node build an ES module facade of the whole
// built-in, reading every export (fs.promises is a getter that loads fs/promises):
// measured with callgrind, the imports of the start-up bundle (fs, path, os, util,
// crypto) cost 45 M instructions, half of `node -e 0` (88 M). process.getBuiltinModule
// (Node ≥ 20.16) returns the module object as `require` does, with no facade: the
// same imports then cost nothing but node:crypto itself, which is not in Node's
// start-up snapshot (23 M) and is loaded on first use (see LAZY_BUILTINS).
//
// Each `node:` import resolves to a small generated module that re-exports the
// built-in's own properties; unused ones are dropped by tree-shaking (the
// @__PURE__ reads), so a getter such as fs.promises runs only if the code uses it.
if (typeof process.getBuiltinModule !== 'function') {
  console.error(
    `build: Node ${process.version} has no process.getBuiltinModule (added in 20.16 and 22.3); the bundle needs it at run time too. Build and run with Node 24 (scripts/provision-node.sh).`,
  );
  process.exit(1);
}
const LAZY_BUILTINS = {
  // Functions only: each is a wrapper that loads the module on its first call.
  'node:crypto': new Set(['randomBytes', 'randomUUID', 'createHash', 'createHmac', 'timingSafeEqual']),
  // The lock's holder name (hostname) is taken only by runs that write.
  'node:os': new Set(['hostname', 'homedir', 'userInfo']),
};
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const RESERVED = new Set([
  'default',
  'delete',
  'new',
  'function',
  'class',
  'export',
  'import',
  'in',
  'instanceof',
  'typeof',
  'void',
  'with',
  'yield',
  'await',
  'let',
  'static',
  'enum',
]);

function builtinFacade(specifier) {
  const mod = process.getBuiltinModule(specifier);
  const lazy = LAZY_BUILTINS[specifier];
  const lines = lazy
    ? [`let m; const load = () => (m ??= process.getBuiltinModule(${JSON.stringify(specifier)}));`, 'export default /* @__PURE__ */ load();']
    : [`const m = process.getBuiltinModule(${JSON.stringify(specifier)});`, 'export default m;'];
  for (const key of Object.getOwnPropertyNames(mod)) {
    if (!IDENTIFIER.test(key) || RESERVED.has(key)) continue;
    if (lazy?.has(key)) lines.push(`export function ${key}(...args) { return load().${key}(...args); }`);
    else lines.push(`export const ${key} = /* @__PURE__ */ (() => ${lazy ? 'load()' : 'm'}.${key})();`);
  }
  return lines.join('\n');
}

const builtinsWithoutFacades = {
  name: 'builtins-without-facades',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => {
      // Dynamic imports (node:child_process for `check`) stay imports: they are already lazy.
      if (args.kind !== 'import-statement') return undefined;
      if (!process.getBuiltinModule(args.path)) return undefined;
      return { path: args.path, namespace: 'builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: builtinFacade(args.path), loader: 'js' }));
  },
};

// prom-client, only the parts the daemon uses.
//
// Its index also loads the Summary (tdigest, bintrees), the Pushgateway (http,
// https, zlib), the default process metrics (perf_hooks, v8) and the cluster
// aggregator (cluster), and through them @opentelemetry/api (50 files): measured
// alone in a bare Node, the index adds 20 MiB of RSS and Registry + Counter +
// Gauge + Histogram add 3 MiB. The daemon (src/daemon/metrics.ts) uses those four;
// importing anything else from 'prom-client' fails the build here ("No matching
// export"), so add it to the list below rather than work around it. The tests run
// against the full package (same files, same classes).
const PROM_CLIENT_PARTS = { Registry: 'registry', Counter: 'counter', Gauge: 'gauge', Histogram: 'histogram' };
const promClientSlim = {
  name: 'prom-client-slim',
  setup(b) {
    b.onResolve({ filter: /^prom-client$/ }, () => ({ path: 'prom-client', namespace: 'prom-client-slim' }));
    b.onLoad({ filter: /.*/, namespace: 'prom-client-slim' }, () => ({
      contents: Object.entries(PROM_CLIENT_PARTS)
        .map(([name, file]) => `export { default as ${name} } from 'prom-client/lib/${file}.js';`)
        .join('\n'),
      resolveDir: root,
      loader: 'js',
    }));
  },
};

await build({
  ...common,
  entryPoints: { 'cni-node': `${root}src/cli/main.ts` },
  outdir: `${root}dist`,
  plugins: [builtinsWithoutFacades, lazyEntries('./lazy/')],
});

// The commands that work on the node (install, uninstall, apply, list, check): one
// file of its own, loaded by the CLI only for them. Not split into chunks shared
// with the daemon: every extra file costs a CLI run a module load. Its import of the
// manifest handler (manifests only) stays lazy, in the chunks below.
await build({
  ...common,
  entryPoints: { actions: `${root}${LAZY.actions}` },
  outdir: `${root}dist/lazy`,
  plugins: [builtinsWithoutFacades, lazyEntries('./')],
});

await build({
  ...common,
  entryPoints: Object.fromEntries(Object.entries(SHARED_CHUNKS).map(([name, file]) => [name, `${root}${file}`])),
  outdir: `${root}dist/lazy`,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  plugins: [builtinsWithoutFacades, promClientSlim],
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);" },
});

try {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.json`], { stdio: 'inherit' });
} catch {
  console.error('build: TypeScript compilation failed (errors above)');
  process.exit(1);
}
