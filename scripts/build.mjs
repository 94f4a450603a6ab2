// Builds two things:
//  - dist/: the CLI bundled by esbuild. One file loads at start-up; the Kubernetes
//    client sits in a separate chunk loaded only by commands that talk to the API,
//    so `cni-node version` and plugin/config work start as fast as bare Node.
//  - build/: src, test and bench compiled by tsc, which the test runner executes.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
// The image build has no .git; it passes the revision in CNI_NODE_REVISION.
let revision = process.env.CNI_NODE_REVISION ?? '';
if (!revision) {
  try {
    revision = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
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
const LAZY = /(?:^|\/)(daemon\/run|daemon\/watch-cli|kube\/manifest-handler)\.js$/;
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
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __cniNodeCreateRequire } from 'node:module'; const require = __cniNodeCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  define: { __CNI_NODE_VERSION__: JSON.stringify(pkg.version), __CNI_NODE_REVISION__: JSON.stringify(revision) },
};

await build({
  ...common,
  entryPoints: { 'cni-node': `${root}src/cli/main.ts` },
  outdir: `${root}dist`,
  plugins: [
    {
      name: 'lazy-entries',
      setup(b) {
        b.onResolve({ filter: LAZY }, (args) => {
          if (args.kind !== 'dynamic-import') return undefined;
          const m = LAZY.exec(args.path);
          return { path: `./lazy/${m[1].split('/')[1]}.mjs`, external: true };
        });
      },
    },
  ],
});

await build({
  ...common,
  entryPoints: {
    run: `${root}src/daemon/run.ts`,
    'watch-cli': `${root}src/daemon/watch-cli.ts`,
    'manifest-handler': `${root}src/kube/manifest-handler.ts`,
  },
  outdir: `${root}dist/lazy`,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
});

try {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.json`], { stdio: 'inherit' });
} catch {
  console.error('build: TypeScript compilation failed (errors above)');
  process.exit(1);
}
