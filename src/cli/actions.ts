/**
 * What install, uninstall, apply, list and check need beyond the command line: the
 * engine and the node layer. main.ts loads this module only for those commands, and
 * scripts/build.mjs bundles it as one file of its own (dist/lazy/actions.mjs), so
 * `version` and `help` compile none of it (the engine and node code are two thirds of
 * what the CLI would otherwise compile at every start).
 */
export { reconcile } from '../engine/engine.js';
export { availablePlugins } from '../node/plugins.js';
export { checkCommand } from './check.js';
