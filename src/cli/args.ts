import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CniNodeError } from '../core/errors.js';
import type { Dirs } from '../engine/types.js';

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export const DIR_OPTIONS: ReadonlyArray<{ key: keyof Dirs; flag: string; env: string; fallback: string }> = [
  { key: 'pluginsDir', flag: 'plugins-dir', env: 'CNI_NODE_PLUGINS_DIR', fallback: '/opt/cni/bin' },
  { key: 'hostPluginsDir', flag: 'host-plugins-dir', env: 'CNI_NODE_HOST_PLUGINS_DIR', fallback: '/host/opt/cni/bin' },
  { key: 'configsDir', flag: 'configs-dir', env: 'CNI_NODE_CONFIGS_DIR', fallback: '/etc/cni/net.d' },
  { key: 'hostConfigsDir', flag: 'host-configs-dir', env: 'CNI_NODE_HOST_CONFIGS_DIR', fallback: '/host/etc/cni/net.d' },
  { key: 'manifestsDir', flag: 'manifests-dir', env: 'CNI_NODE_MANIFESTS_DIR', fallback: '/etc/kubernetes/manifests' },
];

const COMMON: OptionSpec = {
  'log-format': { type: 'string' },
  help: { type: 'boolean' },
  ...Object.fromEntries(DIR_OPTIONS.map((d) => [d.flag, { type: 'string' as const }])),
};

const ACTION: OptionSpec = {
  ...COMMON,
  plugins: { type: 'string' },
  configs: { type: 'string' },
  manifests: { type: 'string' },
  pause: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  wait: { type: 'string' },
  kubeconfig: { type: 'string' },
};

export const OPTIONS_BY_COMMAND: Record<string, OptionSpec> = {
  install: ACTION,
  uninstall: ACTION,
  apply: ACTION,
  list: COMMON,
  version: COMMON,
  check: COMMON,
  run: {
    ...ACTION,
    'config-map': { type: 'string' },
    listen: { type: 'string' },
    'uninstall-on-exit': { type: 'boolean' },
    'kubeconfig-out': { type: 'string' },
  },
};

const LIST_OPTIONS = new Set(['plugins', 'configs', 'manifests']);

export type Values = Record<string, string | boolean | undefined>;

/**
 * util.parseArgs, with the original's message for an unknown option.
 *
 * Each option may be given once. The original script let the last one win without
 * a word, so `apply --plugins=a,b … --plugins=c` silently dropped a list (and, in
 * apply, removed what it named); no documented use relies on giving one twice.
 */
export function parseCommandArgs(command: string, args: string[]): { values: Values; positionals: string[] } {
  const options = OPTIONS_BY_COMMAND[command] as OptionSpec;
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (!(t.name in options)) throw new CniNodeError('usage', `Unknown option: ${t.rawName}`);
    if (seen.has(t.name)) throw repeatedOption(`--${t.name}`, LIST_OPTIONS.has(t.name));
    seen.add(t.name);
  }
  try {
    const parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify .*$/s, '');
    throw new CniNodeError('usage', msg);
  }
}

export function resolveDirs(values: Values, env: NodeJS.ProcessEnv): Dirs {
  const dirs = {} as Dirs;
  for (const d of DIR_OPTIONS) {
    const flag = values[d.flag];
    dirs[d.key] = typeof flag === 'string' && flag !== '' ? flag : env[d.env] || d.fallback;
  }
  return dirs;
}

/** The usage error for an option given twice (shared with kube-watch's parser); lists get a hint. */
export function repeatedOption(flag: string, isList = false): CniNodeError {
  return new CniNodeError(
    'usage',
    `option ${flag} is given more than once; give it once${isList ? ` (a list is one comma-separated value, e.g. ${flag}=a,b)` : ''}`,
  );
}
