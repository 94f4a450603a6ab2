/**
 * `kube-watch …` (bin/kube-watch) and `cni-node watch …`: the original kube-watch's
 * command line. The watching itself is daemon/kube-watch.ts; what is kept of the
 * original and the limits are in docs/kube-watch.md and docs/ARCHITECTURE.md.
 *
 * Bad input is refused up front, never retried (exit 2). SIGTERM / SIGINT / SIGHUP:
 * stop watching, stop a running handler, exit 0. Failures to start exit 1.
 */
import { CniNodeError, isCniNodeError } from '../core/errors.js';
import { SETTINGS, settingsOf, type Setting } from '../core/settings.js';
import { labelSelectorProblem, namespaceProblem, objectNameProblem, resourceTypeProblem } from '../core/selector.js';
import { HandlerQueue } from '../daemon/handler-queue.js';
import { prepareChannel, ValueTracker, watchFileValue, watchObjectValue, type ObjectWatchSpec, type WatchContext } from '../daemon/kube-watch.js';
import { onStopSignal } from '../sys/signals.js';
import { stderr, stdout, writeInBackground } from '../sys/output.js';
import { REVISION, VERSION } from '../version.js';
import { repeatedOption } from './args.js';
import { kubeWatchUsage } from './usage.js';

export type WatchArgs =
  | { target: 'version' }
  | { target: 'help' }
  | ({ target: 'object'; channel: string; handler: string } & ObjectWatchSpec)
  | { target: 'file'; file: string; channel: string; handler: string; ignored: string[] };

function usage(message: string): CniNodeError {
  return new CniNodeError('usage', message);
}

/** kube-watch's options from the settings table, by every way they are written (-l, --label). */
const OPTIONS = new Map<string, Setting<unknown>>(
  settingsOf('kube-watch').flatMap((s) => [[`--${s.spec.flag}`, s] as const, ...(s.spec.short ? [[`-${s.spec.short}`, s] as const] : [])]),
);

/** How an option is named in messages: "--label (-l)". */
const named = (s: Setting<unknown>): string => `--${s.spec.flag}${s.spec.short ? ` (-${s.spec.short})` : ''}`;

interface Scanned {
  positionals: string[];
  /** Values by flag name ("label"); a boolean option's value is "". */
  values: Map<string, string>;
}

/**
 * The positionals and options of `object`/`file`. Options take their value as
 * `-j=V`, `--jsonpath=V` (the original's form) or as the next argument (`-j V`).
 */
function scan(target: 'object' | 'file', rest: readonly string[]): Scanned {
  const positionals: string[] = [];
  const values = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    // The positionals: Type and Name for object, FileName for file. Name may be "".
    if (positionals.length < (target === 'object' ? 2 : 1) && (arg === '' || !arg.startsWith('-'))) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const option = OPTIONS.get(flag);
    // A boolean option (-a) takes no value: `-a=x` is no option kube-watch knows.
    if (option === undefined || (option.spec.boolean && eq !== -1)) {
      if (!arg.startsWith('-')) throw usage(`unexpected argument: ${arg}`);
      throw usage(`Unknown option: ${flag}`);
    }
    let value = '';
    if (!option.spec.boolean) {
      if (eq !== -1) value = arg.slice(eq + 1);
      else if (rest[i + 1] === undefined) throw usage(`option ${flag} needs a value, e.g. ${flag}=…`);
      else value = rest[++i] as string;
    }
    if (values.has(option.spec.flag as string)) throw repeatedOption(named(option));
    values.set(option.spec.flag as string, value);
  }
  return { positionals, values };
}

/**
 * Parses kube-watch's command line. Throws a CniNodeError of kind 'usage' (exit 2):
 * `Unknown option: --x`, or a usage message.
 */
export function parseWatchArgs(args: readonly string[]): WatchArgs {
  const [target, ...rest] = args;
  if (target === 'version') {
    if (rest.length > 0) throw usage(`version takes no arguments (got ${rest[0]})`);
    return { target: 'version' };
  }
  if (target === 'help' || target === '--help') return { target: 'help' };
  if (target !== 'object' && target !== 'file') {
    throw usage(target === undefined || target === '' ? 'missing target: object, file or version' : `unknown target: ${target}`);
  }
  const { positionals, values } = scan(target, rest);
  const channel = values.get('channel') ?? (SETTINGS.channel.spec.default as string);
  const handler = values.get('handler') ?? (SETTINGS.handler.spec.default as string);
  if (channel === '') throw usage('--channel is empty');
  if (handler === '') throw usage('--handler is empty');

  if (target === 'file') {
    const file = positionals[0];
    if (file === undefined || file === '') throw usage('missing <FileName>');
    const ignored = [...values.keys()].filter((f) => f !== 'channel' && f !== 'handler').map((f) => `--${f}`);
    return { target: 'file', file, channel, handler, ignored };
  }
  return { target: 'object', ...objectSpec(positionals, values), channel, handler };
}

/** `object <Type> <[Namespace/]Name>`: checked here, not left to the API server, which would refuse it forever. */
function objectSpec(positionals: readonly string[], values: ReadonlyMap<string, string>): ObjectWatchSpec {
  const type = positionals[0];
  if (type === undefined || type === '') throw usage('missing <Type> (e.g. configmap)');
  const typeProblem = resourceTypeProblem(type);
  if (typeProblem) throw usage(`<Type>: ${typeProblem}`);
  const namespacedName = positionals[1] ?? '';
  // As the original: Namespace is before the first '/', Name after the last one.
  const slash = namespacedName.indexOf('/');
  const namespace = slash === -1 ? undefined : namespacedName.slice(0, slash);
  const name = slash === -1 ? namespacedName : namespacedName.slice(namespacedName.lastIndexOf('/') + 1);
  if (namespace === '') throw usage(`"${namespacedName}": the namespace before '/' is empty`);
  const nsProblem = namespace === undefined ? undefined : namespaceProblem(namespace);
  if (nsProblem) throw usage(`<Namespace>: ${nsProblem}`);
  const nameProblem = name === '' ? undefined : objectNameProblem(name);
  if (nameProblem) throw usage(`<Name>: ${nameProblem}`);
  const label = values.get('label');
  const selectorProblem = label === undefined ? undefined : labelSelectorProblem(label);
  if (selectorProblem) throw usage(`--label=${label}: not a valid label selector: ${selectorProblem}`);
  return {
    type,
    namespace,
    name,
    allNamespaces: values.has('all-namespaces'),
    label: label === '' ? undefined : label,
    jsonpath: values.get('jsonpath') ?? (SETTINGS.jsonpath.spec.default as string),
    kubeconfig: values.get('kubeconfig'),
  };
}

export async function watchMain(args: string[]): Promise<number> {
  let parsed: WatchArgs;
  try {
    parsed = parseWatchArgs(args);
  } catch (e) {
    if (!isCniNodeError(e)) throw e;
    stderr(`${e.message}\n${e.message.startsWith('Unknown option') ? '' : `\n${kubeWatchUsage()}`}`);
    return 2;
  }
  if (parsed.target === 'version') {
    stdout(`kube-watch (cni-node ${VERSION} ${REVISION})\n`);
    return 0;
  }
  if (parsed.target === 'help') {
    stdout(kubeWatchUsage());
    return 0;
  }

  // A log reader that stops reading must not block a stop signal (sys/output.ts).
  writeInBackground();
  const log = (line: string): void => void stdout(`kube-watch: ${line}\n`);
  const warn = (line: string): void => void stderr(`kube-watch: ${line}\n`);

  const controller = new AbortController();
  // A failure that retrying cannot mend (the API server refused the request itself) ends the watch.
  let fatal: CniNodeError | undefined;
  const stop = onStopSignal(
    (sig) => {
      log(`${sig}: stopping`);
      controller.abort();
    },
    { keepAlive: true },
  );
  const queue = new HandlerQueue({ handler: parsed.handler, channel: parsed.channel, log, warn });
  const ctx: WatchContext = {
    tracker: new ValueTracker(queue, warn),
    signal: controller.signal,
    log,
    warn,
    giveUp: (e) => {
      fatal ??= e;
      controller.abort();
    },
  };
  try {
    await prepareChannel(parsed.channel);
    if (parsed.target === 'file') {
      for (const opt of parsed.ignored) warn(`${opt} does not apply to a file; ignored`);
      await watchFileValue(parsed.file, ctx);
    } else {
      await watchObjectValue(parsed, ctx);
    }
    if (fatal) {
      warn(fatal.describe());
      return fatal.exitCode;
    }
    return 0;
  } catch (e) {
    if (isCniNodeError(e)) {
      if (fatal) {
        warn(fatal.describe());
        return fatal.exitCode;
      }
      if (e.kind === 'interrupted' || controller.signal.aborted) return 0;
      warn(e.describe());
      return e.exitCode;
    }
    throw e;
  } finally {
    await queue.stop();
    stop.dispose();
  }
}
