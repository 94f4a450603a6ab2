// The layers of src/, checked by `npm run lint` (dependency-cruiser; see
// docs/ARCHITECTURE.md for the picture):
//
//   cli → daemon → engine → kube | node → sys → core
//
// Every import goes down (skipping a layer is fine); none goes up, and kube and
// node never import each other. core is pure: no Node.js module, no package.
// src/version.ts sits with core. Static, dynamic (`await import(…)`) and type-only
// imports all count, and an import that cannot be resolved is an error too, so a
// typo cannot hide an edge.

/** Each layer and the layers it may import, besides itself. */
const LAYERS = {
  cli: ['daemon', 'engine', 'kube', 'node', 'sys', 'core'],
  daemon: ['engine', 'kube', 'node', 'sys', 'core'],
  engine: ['kube', 'node', 'sys', 'core'],
  kube: ['sys', 'core'],
  node: ['sys', 'core'],
  sys: ['core'],
  core: [],
};

const ALL = Object.keys(LAYERS);

/** A path regex for src/<layer>/…, with src/version.ts counted as core. */
function layerPath(names) {
  const parts = names.map((n) => `^src/${n}/`);
  if (names.includes('core')) parts.push('^src/version\\.ts$');
  return parts.join('|');
}

const layerRules = ALL.map((layer) => ({
  name: `layer-${layer}`,
  comment: `${layer}/ may import only ${[layer, ...LAYERS[layer]].join(', ')} (the layers run cli → daemon → engine → kube | node → sys → core)`,
  severity: 'error',
  from: { path: layerPath([layer]) },
  to: { path: '^src/', pathNot: layerPath([layer, ...LAYERS[layer]]) },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    ...layerRules,
    {
      name: 'src-in-a-layer',
      comment: 'every source file belongs to a layer: put it in one of src/{cli,daemon,engine,kube,node,sys,core}/',
      severity: 'error',
      from: { path: '^src/', pathNot: `${layerPath(ALL)}` },
      to: {},
    },
    {
      name: 'core-is-pure',
      comment: 'core/ is pure logic: no Node.js module and no package (I/O belongs in sys/, node/ or kube/)',
      severity: 'error',
      from: { path: layerPath(['core']) },
      to: { dependencyTypes: ['core', 'npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'resolvable',
      comment: 'an import that cannot be resolved could hide an edge between layers',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs'] },
  },
};
