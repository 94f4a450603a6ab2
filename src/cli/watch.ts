/**
 * `kube-watch …` (bin/kube-watch) and `cni-node watch …`: the original kube-watch's
 * command line. The watching itself is daemon/kube-watch.ts; what is kept of the
 * original and the limits are in docs/ARCHITECTURE.md and the README.
 *
 * Bad input is refused up front, never retried (exit 2). SIGTERM / SIGINT / SIGHUP:
 * stop watching, stop a running handler, exit 0. Failures to start exit 1.
 */
import { CniNodeError, isCniNodeError } from '../core/errors.js';
import { labelSelectorProblem, namespaceProblem, objectNameProblem, resourceTypeProblem } from '../core/selector.js';
import { HandlerQueue } from '../daemon/handler-queue.js';
import { prepareChannel, ValueTracker, watchFileValue, watchObjectValue, type ObjectWatchSpec, type WatchContext } from '../daemon/kube-watch.js';
import { onStopSignal } from '../sys/signals.js';
import { REVISION, VERSION } from '../version.js';
import { repeatedOption } from './args.js';

export const KUBE_WATCH_USAGE = `Usage: kube-watch object <Type> <[Namespace/]Name> [Options]
       kube-watch file <FileName> [Options]
       kube-watch version

Options:
    -a,--all-namespaces       Watch objects in all namespaces
    -l,--label=<Label>        Filter objects with label
    -j,--jsonpath=<JsonPath>  Path to the object field (default: {})
    -c,--channel=<Channel>    Channel (default: /var/run/kube-watch/channel)
    -h,--handler=<Handler>    Handler (default: /usr/share/kube-watch/handler)
    --kubeconfig=<File>       Kubernetes credentials (default: in-cluster, $KUBECONFIG, ~/.kube/config)

Whenever the value changes, the channel file gets the new value and the handler
runs with three arguments: channel, current value, previous value.
Name "" watches all objects of the type (with -l / -a filters).
`;

export const DEFAULT_CHANNEL = '/var/run/kube-watch/channel';
export const DEFAULT_HANDLER = '/usr/share/kube-watch/handler';

export type WatchArgs =
  | { target: 'version' }
  | { target: 'help' }
  | ({ target: 'object'; channel: string; handler: string } & ObjectWatchSpec)
  | { target: 'file'; file: string; channel: string; handler: string; ignored: string[] };

function usage(message: string): CniNodeError {
  return new CniNodeError('usage', message);
}

const VALUE_OPTIONS: Record<string, 'label' | 'jsonpath' | 'channel' | 'handler' | 'kubeconfig'> = {
  '-l': 'label',
  '--label': 'label',
  '-j': 'jsonpath',
  '--jsonpath': 'jsonpath',
  '-c': 'channel',
  '--channel': 'channel',
  '-h': 'handler',
  '--handler': 'handler',
  '--kubeconfig': 'kubeconfig',
};

const SHORT: Partial<Record<string, string>> = { label: '-l', jsonpath: '-j', channel: '-c', handler: '-h' };

/**
 * Parses kube-watch's command line. Options take their value as `-j=V`,
 * `--jsonpath=V` (the original's form) or as the next argument (`-j V`). Throws a
 * CniNodeError of kind 'usage' (exit 2): `Unknown option: --x`, or a usage message.
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
  const positionals: string[] = [];
  const values: Partial<Record<'label' | 'jsonpath' | 'channel' | 'handler' | 'kubeconfig', string>> = {};
  let allNamespaces = false;
  const given: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string;
    // The positionals: Type and Name for object, FileName for file. Name may be "".
    if (positionals.length < (target === 'object' ? 2 : 1) && (arg === '' || !arg.startsWith('-'))) {
      positionals.push(arg);
      continue;
    }
    if (arg === '-a' || arg === '--all-namespaces') {
      if (given.includes('--all-namespaces')) throw repeatedOption('--all-namespaces (-a)');
      allNamespaces = true;
      given.push('--all-namespaces');
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const key = VALUE_OPTIONS[flag];
    if (key === undefined) {
      if (!arg.startsWith('-')) throw usage(`unexpected argument: ${arg}`);
      throw usage(`Unknown option: ${flag}`);
    }
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = rest[i + 1];
      if (next === undefined) throw usage(`option ${flag} needs a value, e.g. ${flag}=…`);
      value = next;
      i++;
    }
    if (given.includes(`--${key}`)) throw repeatedOption(`--${key}${SHORT[key] ? ` (${SHORT[key]})` : ''}`);
    values[key] = value;
    given.push(`--${key}`);
  }
  const channel = values.channel ?? DEFAULT_CHANNEL;
  const handler = values.handler ?? DEFAULT_HANDLER;
  if (channel === '') throw usage('--channel is empty');
  if (handler === '') throw usage('--handler is empty');

  if (target === 'file') {
    const file = positionals[0];
    if (file === undefined || file === '') throw usage('missing <FileName>');
    const ignored = given.filter((g) => g === '--all-namespaces' || g === '--label' || g === '--jsonpath' || g === '--kubeconfig');
    return { target: 'file', file, channel, handler, ignored };
  }

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
  // Checked here, not left to the API server: a name or selector it refuses would
  // be retried forever as a failing watch.
  const nsProblem = namespace === undefined ? undefined : namespaceProblem(namespace);
  if (nsProblem) throw usage(`<Namespace>: ${nsProblem}`);
  const nameProblem = name === '' ? undefined : objectNameProblem(name);
  if (nameProblem) throw usage(`<Name>: ${nameProblem}`);
  const selectorProblem = values.label === undefined ? undefined : labelSelectorProblem(values.label);
  if (selectorProblem) throw usage(`--label=${values.label}: not a valid label selector: ${selectorProblem}`);
  return {
    target: 'object',
    type,
    namespace,
    name,
    allNamespaces,
    label: values.label === '' ? undefined : values.label,
    jsonpath: values.jsonpath ?? '{}',
    channel,
    handler,
    kubeconfig: values.kubeconfig,
  };
}

export async function watchMain(args: string[]): Promise<number> {
  let parsed: WatchArgs;
  try {
    parsed = parseWatchArgs(args);
  } catch (e) {
    if (!isCniNodeError(e)) throw e;
    process.stderr.write(`${e.message}\n${e.message.startsWith('Unknown option') ? '' : `\n${KUBE_WATCH_USAGE}`}`);
    return 2;
  }
  if (parsed.target === 'version') {
    process.stdout.write(`kube-watch (cni-node ${VERSION} ${REVISION})\n`);
    return 0;
  }
  if (parsed.target === 'help') {
    process.stdout.write(KUBE_WATCH_USAGE);
    return 0;
  }

  const log = (line: string): void => void process.stdout.write(`kube-watch: ${line}\n`);
  const warn = (line: string): void => void process.stderr.write(`kube-watch: ${line}\n`);

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
    tracker: new ValueTracker(queue, log, warn),
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
