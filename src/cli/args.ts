import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Dirs } from '../core/contracts.js';
import { CniNodeError } from '../core/errors.js';
import { flagsOf, SETTINGS, type Command, type Env, type Values } from '../core/settings.js';

export type { Values };

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** util.parseArgs's options for `command`, made from the settings table. */
export function optionsOf(command: Command): OptionSpec {
  return Object.fromEntries(flagsOf(command).map((s) => [s.spec.flag as string, { type: s.spec.boolean ? ('boolean' as const) : ('string' as const) }]));
}

const LIST_FLAGS = new Set([SETTINGS.plugins, SETTINGS.configs, SETTINGS.manifests].map((s) => s.spec.flag));

/**
 * util.parseArgs, with the original's message for an unknown option.
 *
 * Each option may be given once. The original script let the last one win without
 * a word, so `apply --plugins=a,b … --plugins=c` silently dropped a list (and, in
 * apply, removed what it named); no documented use relies on giving one twice.
 */
export function parseCommandArgs(command: Command, args: string[]): { values: Values; positionals: string[] } {
  const options = optionsOf(command);
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (!(t.name in options)) throw new CniNodeError('usage', `Unknown option: ${t.rawName}`);
    if (seen.has(t.name)) throw repeatedOption(`--${t.name}`, LIST_FLAGS.has(t.name));
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

/** The five directories: each flag, else its environment variable, else its default. */
export function resolveDirs(values: Values, env: Env): Dirs {
  const dir = (s: typeof SETTINGS.pluginsDir): string => s.resolve(values, env) as string;
  return {
    pluginsDir: dir(SETTINGS.pluginsDir),
    hostPluginsDir: dir(SETTINGS.hostPluginsDir),
    configsDir: dir(SETTINGS.configsDir),
    hostConfigsDir: dir(SETTINGS.hostConfigsDir),
    manifestsDir: dir(SETTINGS.manifestsDir),
  };
}

/** The usage error for an option given twice (shared with kube-watch's parser); lists get a hint. */
export function repeatedOption(flag: string, isList = false): CniNodeError {
  return new CniNodeError(
    'usage',
    `option ${flag} is given more than once; give it once${isList ? ` (a list is one comma-separated value, e.g. ${flag}=a,b)` : ''}`,
  );
}
