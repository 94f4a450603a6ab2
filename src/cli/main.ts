// First: SIGUSR1, inspector options and uncaught errors are dealt with before anything else runs.
import { INTERNAL_ERROR_EXIT, programName } from './guard.js';
import { CniNodeError, internalError, isCniNodeError } from '../core/errors.js';
import { parseListSpec, type ListSpec } from '../core/lists.js';
import type { Kind, Mode } from '../core/plan.js';
import type { EngineOptions } from '../core/contracts.js';
import { onStopSignal, signalExitCode, waitForStopSignal } from '../sys/signals.js';
import { exitAfterOutput, stderr, stdout, writeInBackground } from '../sys/output.js';
import { REVISION, VERSION } from '../version.js';
import { parseCommandArgs, resolveDirs, type Values } from './args.js';
import { debugEnabled, SETTINGS, type Command } from '../core/settings.js';
import { createReporter, resolveLogFormat, type LogFormat } from './reporter.js';
import { usage } from './usage.js';

const LIST_OPTIONS: ReadonlyArray<[Kind, string]> = [
  ['plugin', SETTINGS.plugins.spec.flag as string],
  ['config', SETTINGS.configs.spec.flag as string],
  ['manifest', SETTINGS.manifests.spec.flag as string],
];

function logFormat(values: Values): LogFormat {
  return resolveLogFormat(values, process.env);
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
  // --pause is a long-running container: a log reader that stops reading must not block it or its stop (sys/output.ts).
  if (values.pause === true) writeInBackground();
  const reporter = createReporter(logFormat(values));
  const lists = listsFrom(values, mode);
  if (Object.keys(lists).length === 0) {
    throw new CniNodeError('usage', `${mode}: give at least one of --plugins, --configs, --manifests`);
  }
  // A stop signal during the action interrupts it at its next safe point (every
  // wait, lock and API retry listens to this signal); the run then says so and
  // exits as a process stopped by that signal does (128 + its number).
  // A second signal ends the process at once (the default action): a force stop.
  const controller = new AbortController();
  const stop = onStopSignal(() => controller.abort());
  const options: EngineOptions = {
    dirs: resolveDirs(values, process.env),
    dryRun: values['dry-run'] === true,
    waitMs: SETTINGS.wait.resolve(values, process.env) ?? 0,
    tolerateMissingPointers: false,
    env: process.env,
    reporter,
    signal: controller.signal,
    ...(typeof values.kubeconfig === 'string' ? { kubeconfig: values.kubeconfig } : {}),
  };
  const { reconcile } = await import('./actions.js');
  let paused: Promise<NodeJS.Signals> | undefined;
  try {
    const result = await reconcile({ mode, lists }, options);
    if (!options.dryRun && result.reports.length > 0 && result.changed === 0) reporter.info('nothing to change');
    // Listening for the pause's signals before the action's listeners go: no moment
    // in which a signal would kill the process without a word. (A signal that came
    // during a run which still finished means: stop now, no pause.)
    if (values.pause === true && stop.signal === undefined) paused = waitForStopSignal();
  } catch (e) {
    const stoppedBy = stop.signal;
    if (stoppedBy !== undefined) {
      // Whatever was in progress ended because of the signal: say that, not what the
      // interrupted step would have said (a wait "timing out", a lock "not released").
      const what = isCniNodeError(e) && e.kind === 'interrupted' ? `: ${e.message}` : '';
      reporter.error(`${mode} interrupted by ${stoppedBy}${what}; the run did not finish (every write is atomic: each item is either done or untouched)`);
      return signalExitCode(stoppedBy);
    }
    if (isCniNodeError(e)) reporter.error(e.describe());
    else throw e;
    return e.exitCode;
  } finally {
    stop.dispose();
  }
  if (paused) {
    if (stop.signal === undefined) reporter.info('done; pausing until SIGTERM, SIGINT or SIGHUP (--pause)');
    const sig = await paused;
    reporter.info(`received ${sig}: stopping (--pause)`);
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '') {
    stderr(usage());
    return 2;
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    stdout(usage());
    return 0;
  }
  if (command === 'watch') {
    const { watchMain } = await import('./watch.js');
    return watchMain(rest);
  }
  if (!(command in { install: 1, uninstall: 1, apply: 1, list: 1, version: 1, check: 1, run: 1 })) {
    stderr(`Unknown command: ${command}\n\n${usage()}`);
    return 2;
  }
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseCommandArgs(command as Command, rest));
  } catch (e) {
    if (isCniNodeError(e)) {
      stderr(`${e.describe()}\nRun 'cni-node help' for usage.\n`);
      return 2;
    }
    throw e;
  }
  if (values.help) {
    stdout(usage());
    return 0;
  }
  try {
    switch (command) {
      case 'version':
        stdout(`cni-node ${VERSION} (${REVISION})\n`);
        return 0;
      case 'list': {
        const { availablePlugins } = await import('./actions.js');
        const names = await availablePlugins(resolveDirs(values, process.env).pluginsDir);
        stdout(names.map((n) => `${n}\n`).join(''));
        return 0;
      }
      case 'check': {
        const { checkCommand } = await import('./actions.js');
        return await checkCommand(resolveDirs(values, process.env), logFormat(values));
      }
      case 'run': {
        if (positionals.length > 0) throw new CniNodeError('usage', `unexpected argument: ${positionals[0]}`);
        const { runCommand } = await import('./run.js');
        return await runCommand(values, listsFrom(values, 'run'));
      }
      default:
        return await runAction(command as Mode, values, positionals);
    }
  } catch (e) {
    if (isCniNodeError(e)) {
      stderr(`error: ${e.describe()}\n`);
      if (e.kind === 'usage') stderr(`Run 'cni-node help' for usage.\n`);
      return e.exitCode;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => exitAfterOutput(code),
  (e: unknown) => {
    stderr(`${programName()}: ${internalError(e, debugEnabled(process.env))}\n`);
    exitAfterOutput(INTERNAL_ERROR_EXIT);
  },
);
