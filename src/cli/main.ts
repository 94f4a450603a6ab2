import { CniNodeError, isCniNodeError } from '../core/errors.js';
import { parseListSpec, type ListSpec } from '../core/lists.js';
import type { Kind, Mode } from '../core/plan.js';
import type { EngineOptions } from '../engine/types.js';
import { REVISION, VERSION } from '../version.js';
import { parseCommandArgs, resolveDirs, type Values } from './args.js';
import { parseDuration } from './duration.js';
import { waitForStopSignal } from './pause.js';
import { createReporter, resolveLogFormat, type LogFormat } from './reporter.js';
import { USAGE } from './usage.js';

const LIST_OPTIONS: ReadonlyArray<[Kind, string]> = [
  ['plugin', 'plugins'],
  ['config', 'configs'],
  ['manifest', 'manifests'],
];

function logFormat(values: Values): LogFormat {
  return resolveLogFormat(values['log-format'], process.env);
}

export function listsFrom(values: Values, mode: Mode | 'run'): Partial<Record<Kind, ListSpec>> {
  const lists: Partial<Record<Kind, ListSpec>> = {};
  for (const [kind, option] of LIST_OPTIONS) {
    const raw = values[option];
    if (raw === undefined) continue;
    if (typeof raw !== 'string') throw new CniNodeError('usage', `--${option} needs a value, e.g. --${option}=a,b`);
    let spec: ListSpec;
    try {
      spec = parseListSpec(raw, `--${option}`);
    } catch (e) {
      throw isCniNodeError(e) ? new CniNodeError('usage', e.message, e.details) : e;
    }
    if (mode !== 'apply' && spec.current !== undefined) {
      throw new CniNodeError('usage', `--${option}=${raw}: the Desired:Current form is for apply only`);
    }
    if ((mode === 'install' || mode === 'uninstall') && spec.desired.length === 0) {
      throw new CniNodeError('usage', `--${option} is empty; name at least one item, e.g. --${option}=a,b`);
    }
    lists[kind] = spec;
  }
  return lists;
}

async function runAction(mode: Mode, values: Values, positionals: string[]): Promise<number> {
  if (positionals.length > 0) throw new CniNodeError('usage', `unexpected argument: ${positionals[0]}`);
  const reporter = createReporter(logFormat(values));
  const lists = listsFrom(values, mode);
  if (Object.keys(lists).length === 0) {
    throw new CniNodeError('usage', `${mode}: give at least one of --plugins, --configs, --manifests`);
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const options: EngineOptions = {
    dirs: resolveDirs(values, process.env),
    dryRun: values['dry-run'] === true,
    waitMs: typeof values.wait === 'string' ? parseDuration(values.wait, '--wait') : 0,
    tolerateMissingPointers: false,
    env: process.env,
    reporter,
    signal: controller.signal,
    ...(typeof values.kubeconfig === 'string' ? { kubeconfig: values.kubeconfig } : {}),
  };
  const { reconcile } = await import('../engine/engine.js');
  try {
    const result = await reconcile({ mode, lists }, options);
    if (!options.dryRun && result.reports.length > 0 && result.changed === 0) reporter.info('nothing to change');
  } catch (e) {
    if (isCniNodeError(e)) reporter.error(e.describe());
    else throw e;
    return e.exitCode;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
  if (values.pause === true && !controller.signal.aborted) {
    reporter.info('done; pausing until SIGTERM or SIGINT (--pause)');
    await waitForStopSignal();
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '') {
    process.stderr.write(USAGE);
    return 2;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === 'watch') {
    const { watchMain } = await import('../daemon/watch-cli.js');
    return watchMain(rest);
  }
  if (!(command in { install: 1, uninstall: 1, apply: 1, list: 1, version: 1, check: 1, run: 1 })) {
    process.stderr.write(`Unknown command: ${command}\n\n${USAGE}`);
    return 2;
  }
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseCommandArgs(command, rest));
  } catch (e) {
    if (isCniNodeError(e)) {
      process.stderr.write(`${e.describe()}\nRun 'cni-node help' for usage.\n`);
      return 2;
    }
    throw e;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    switch (command) {
      case 'version':
        process.stdout.write(`cni-node ${VERSION} (${REVISION})\n`);
        return 0;
      case 'list': {
        const { availablePlugins } = await import('../node/plugins.js');
        const names = await availablePlugins(resolveDirs(values, process.env).pluginsDir);
        process.stdout.write(names.map((n) => `${n}\n`).join(''));
        return 0;
      }
      case 'check': {
        const { checkCommand } = await import('./check.js');
        return await checkCommand(resolveDirs(values, process.env), logFormat(values));
      }
      case 'run': {
        if (positionals.length > 0) throw new CniNodeError('usage', `unexpected argument: ${positionals[0]}`);
        const { runCommand } = await import('../daemon/run.js');
        return await runCommand(values, listsFrom(values, 'run'));
      }
      default:
        return await runAction(command as Mode, values, positionals);
    }
  } catch (e) {
    if (isCniNodeError(e)) {
      process.stderr.write(`error: ${e.describe()}\n`);
      if (e.kind === 'usage') process.stderr.write(`Run 'cni-node help' for usage.\n`);
      return e.exitCode;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`cni-node: internal error (please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 70;
  },
);
