// Filled in by the bundler (scripts/build.mjs); "dev" when run from tsc output.
declare const __CNI_NODE_VERSION__: string | undefined;
declare const __CNI_NODE_REVISION__: string | undefined;

export const VERSION = typeof __CNI_NODE_VERSION__ === 'string' ? __CNI_NODE_VERSION__ : 'dev';
export const REVISION = typeof __CNI_NODE_REVISION__ === 'string' ? __CNI_NODE_REVISION__ : 'unknown';
