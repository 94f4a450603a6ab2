/**
 * kube-watch compatibility: `kube-watch …` (bin/kube-watch) and `cni-node watch …`.
 *
 *   kube-watch object <Type> <[Namespace/]Name> [Options]
 *   kube-watch file <FileName> [Options]
 *   kube-watch version
 *
 * object: list+watch of the object(s) through the Kubernetes watch API
 * (src/kube/watch.ts: one watch connection, resumed after drops and API server
 * restarts, re-listed after 410 Gone, no polling). The kubectl-style JSONPath
 * template (-j, default `{}`) is evaluated on the object, or — for several objects
 * (Name "", a label selector, all namespaces) — on a List of them as kubectl does
 * (`{kind: List, items: […]}`). A missing object's value is the empty string.
 *
 * file: the file's content (src/daemon/file-watch.ts: atomic rename replaces, a
 * kubelet ConfigMap volume's `..data` swap, deleted and re-created files). A
 * missing file's value is the empty string.
 *
 * Whenever the value differs from the last one, the channel file (-c) is replaced
 * atomically with it and the handler (-h) runs with three arguments: the channel
 * path, the current value, the previous value ("" the first time). Handlers run
 * one at a time, in order; the channel holds the value of the handler run that is
 * (or was last) running. A failing handler (non-zero exit, killed, cannot be
 * started) is logged to stderr and the watch goes on.
 *
 * Limits: a value is at most MAX_VALUE_BYTES (16 MiB; checked while the JSONPath
 * template is evaluated, and before a watched file is read); a bigger one is
 * refused with a log line and the channel keeps the last value. The handler gets
 * the values as arguments, which the kernel limits to MAX_ARG_BYTES (128 KiB − 1)
 * each: for a bigger value the channel file is still written, the handler is not
 * run, and the log says so (a handler that needs big values reads the channel).
 *
 * Bad input is refused up front, never retried: an option given twice, a type,
 * name, namespace or label selector that cannot be valid (exit 2), and an API
 * server that refuses the watch request itself as invalid (exit 2).
 *
 * SIGTERM / SIGINT / SIGHUP: stop watching, stop a running handler (SIGTERM, SIGKILL
 * after 1 s), drop queued runs, exit 0. Usage errors exit 2, failures to start exit 1.
 *
 * Exported for reuse and tests: parseWatchArgs, HandlerQueue, valueOf, KUBE_WATCH_USAGE.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { repeatedOption } from '../cli/args.js';
import { STOP_SIGNALS } from '../cli/pause.js';
import { CniNodeError, isCniNodeError, reason } from '../core/errors.js';
import { compileJsonPath } from '../core/jsonpath.js';
import { labelSelectorProblem, namespaceProblem, objectNameProblem, resourceTypeProblem } from '../core/selector.js';
import { writeFileAtomic } from '../node/atomic.js';
import { REVISION, VERSION } from '../version.js';

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

/** The largest value (bytes) kube-watch holds, writes to the channel and hands to the handler. */
export const MAX_VALUE_BYTES = 16 * 1024 * 1024;
/** The largest single argument the kernel passes to a program (MAX_ARG_STRLEN, 128 KiB, with its NUL). */
export const MAX_ARG_BYTES = 128 * 1024 - 1;

export const DEFAULT_CHANNEL = '/var/run/kube-watch/channel';
export const DEFAULT_HANDLER = '/usr/share/kube-watch/handler';

export type WatchArgs =
  | { target: 'version' }
  | { target: 'help' }
  | {
      target: 'object';
      type: string;
      /** Undefined: the current namespace (the pod's, or the kubeconfig context's). */
      namespace: string | undefined;
      /** "" = all objects of the type. */
      name: string;
      allNamespaces: boolean;
      label: string | undefined;
      jsonpath: string;
      channel: string;
      handler: string;
      kubeconfig: string | undefined;
    }
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

/**
 * The value kube-watch compares: the template evaluated on the one object, or on
 * a kubectl-style List when several objects are watched; "" when there is none
 * (a single object that does not exist).
 */
export function valueOf(evaluate: (obj: unknown) => string, objects: readonly unknown[], single: boolean): string {
  if (single) {
    if (objects.length === 0) return '';
    if (objects.length === 1) return evaluate(objects[0]);
  }
  return evaluate({ apiVersion: 'v1', kind: 'List', items: objects, metadata: { resourceVersion: '' } });
}

export interface HandlerQueueOptions {
  handler: string;
  channel: string;
  log: (line: string) => void;
  warn: (line: string) => void;
  /** Environment of handler runs (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs the handler once per value change, one at a time, in order: each run first
 * replaces the channel file with its value (atomically), then runs
 * `handler channel current previous`. Failures are reported with `warn` and the
 * queue goes on.
 */
export class HandlerQueue {
  private readonly jobs: { current: string; previous: string }[] = [];
  private running: ChildProcess | undefined;
  private draining: Promise<void> | undefined;
  private stopped = false;
  /** Runs finished (successfully or not), for tests and logs. */
  runs = 0;
  failures = 0;

  constructor(private readonly options: HandlerQueueOptions) {}

  push(current: string, previous: string): void {
    if (this.stopped) return;
    this.jobs.push({ current, previous });
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Resolves when every queued run has finished. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Drops queued runs and stops a running handler: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 1_000): Promise<void> {
    this.stopped = true;
    this.jobs.length = 0;
    const child = this.running;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      // The handler's whole process group: a shell script's own children too.
      const kill = (sig: NodeJS.Signals): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, sig);
        } catch {
          child.kill(sig);
        }
      };
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
  }

  private async drain(): Promise<void> {
    for (let job = this.jobs.shift(); job !== undefined && !this.stopped; job = this.jobs.shift()) {
      await this.writeChannel(job.current);
      if (this.stopped) return;
      await this.run(job.current, job.previous);
    }
  }

  private async writeChannel(value: string): Promise<void> {
    const { channel } = this.options;
    try {
      await mkdir(path.dirname(channel), { recursive: true });
      await writeFileAtomic(path.dirname(channel), path.basename(channel), value, 0o644);
    } catch (e) {
      this.options.warn(`cannot write the channel ${channel}: ${isCniNodeError(e) ? e.message : reason(e)}`);
    }
  }

  private run(current: string, previous: string): Promise<void> {
    const { handler, channel } = this.options;
    // The kernel refuses (E2BIG) to start a program with an argument over 128 KiB.
    const tooBig = ([['the current value', current], ['the previous value', previous]] as const).filter(([, v]) => Buffer.byteLength(v) > MAX_ARG_BYTES);
    if (tooBig.length > 0) {
      const what = tooBig.map(([w, v]) => `${w} is ${Buffer.byteLength(v)} bytes`).join(' and ');
      this.fail(
        `handler ${handler} not run: ${what}, over the ${MAX_ARG_BYTES + 1}-byte limit the kernel sets on one program argument (E2BIG); ` +
          `the channel ${channel} holds the current value: a handler for values this big should read it from there`,
      );
      this.runs++;
      return Promise.resolve();
    }
    this.options.log(`running handler ${handler}`);
    return new Promise<void>((resolve) => {
      // One report per run: a handler that cannot be started emits 'error' and then 'close'.
      let settled = false;
      const done = (failure?: string): void => {
        if (settled) return;
        settled = true;
        this.running = undefined;
        this.runs++;
        if (failure !== undefined) this.fail(failure);
        resolve();
      };
      let child: ChildProcess;
      try {
        // Its own process group, so stop() can end it with everything it started.
        child = spawn(handler, [channel, current, previous], { stdio: ['ignore', 'inherit', 'inherit'], env: this.options.env ?? process.env, detached: true });
      } catch (e) {
        done(`handler ${handler} could not be started: ${reason(e)}`);
        return;
      }
      this.running = child;
      child.once('error', (e) => done(`handler ${handler} could not be started: ${reason(e)}`));
      child.once('close', (code, signal) => {
        if (signal) done(`handler ${handler} was killed by ${signal}`);
        else if (code !== 0) done(`handler ${handler} failed with exit code ${code}`);
        else done();
      });
    });
  }

  private fail(message: string): void {
    this.failures++;
    this.options.warn(`${message}; the watch goes on`);
  }
}

/** Value changes → handler runs: remembers the last value; the first previous value is "". */
class ValueTracker {
  private last = '';
  private first = true;

  constructor(
    private readonly queue: HandlerQueue,
    private readonly log: (line: string) => void,
    private readonly warn: (line: string) => void,
  ) {}

  offer(value: string): void {
    const bytes = Buffer.byteLength(value);
    if (bytes > MAX_VALUE_BYTES) {
      this.warn(`the new value is ${bytes} bytes, over the limit of ${MAX_VALUE_BYTES}; it is refused: the channel keeps the last value and the handler does not run`);
      return;
    }
    if (this.first) {
      this.first = false;
      if (value === '') return; // "" after "" is no change, also the first time
    } else if (value === this.last) {
      return;
    }
    const previous = this.last;
    this.last = value;
    this.log(`value changed (${describe(previous)} → ${describe(value)})`);
    this.queue.push(value, previous);
  }
}

function describe(value: string): string {
  if (value === '') return 'empty';
  const oneLine = value.replace(/\s+/g, ' ');
  return JSON.stringify(oneLine.length > 60 ? `${oneLine.slice(0, 60)}…` : oneLine);
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
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: stopping`);
    controller.abort();
  };
  // A failure that retrying cannot mend (the API server refused the request itself) ends the watch.
  let fatal: CniNodeError | undefined;
  const giveUp = (e: CniNodeError): void => {
    fatal ??= e;
    controller.abort();
  };
  for (const sig of STOP_SIGNALS) process.once(sig, onSignal);
  // Signal listeners alone do not keep Node running.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stopped = new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve(), { once: true }));

  const queue = new HandlerQueue({ handler: parsed.handler, channel: parsed.channel, log, warn });
  const tracker = new ValueTracker(queue, log, warn);
  try {
    await prepareChannel(parsed.channel);
    if (parsed.target === 'file') {
      for (const opt of parsed.ignored) warn(`${opt} does not apply to a file; ignored`);
      await watchFileValue(parsed.file, tracker, controller.signal, log, warn);
    } else {
      await watchObjectValue(parsed, tracker, controller.signal, stopped, log, warn, giveUp);
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
    clearInterval(keepAlive);
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  }
}

/** Like the original: the channel's directory is made and the channel exists (empty) from the start. */
async function prepareChannel(channel: string): Promise<void> {
  try {
    await mkdir(path.dirname(channel), { recursive: true });
    try {
      await stat(channel);
    } catch {
      await writeFileAtomic(path.dirname(channel), path.basename(channel), '', 0o644);
    }
  } catch (e) {
    throw new CniNodeError('io', `cannot create the channel ${channel}: ${isCniNodeError(e) ? e.message : reason(e)}`);
  }
}

async function watchFileValue(
  file: string,
  tracker: ValueTracker,
  signal: AbortSignal,
  log: (l: string) => void,
  warn: (l: string) => void,
): Promise<void> {
  const { watchFile, TooBigError } = await import('./file-watch.js');
  log(`watching file ${file}`);
  const watcher = watchFile(file, (content) => tracker.offer(content ?? ''), {
    signal,
    maxBytes: MAX_VALUE_BYTES,
    onError: (e) => warn(e instanceof TooBigError ? `${e.message}; the channel keeps the last value and the handler does not run` : e.message),
  });
  await watcher.ready;
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  watcher.close();
}

async function watchObjectValue(
  a: Extract<WatchArgs, { target: 'object' }>,
  tracker: ValueTracker,
  signal: AbortSignal,
  stopped: Promise<void>,
  log: (l: string) => void,
  warn: (l: string) => void,
  giveUp: (e: CniNodeError) => void,
): Promise<void> {
  let evaluate: (obj: unknown) => string;
  try {
    evaluate = compileJsonPath(a.jsonpath, { maxBytes: MAX_VALUE_BYTES });
  } catch (e) {
    throw isCniNodeError(e) ? new CniNodeError('usage', `--jsonpath: ${e.message}`) : e;
  }
  const [{ createKubeClient }, { listWatch }, { resolveResourceType, resourcePath }, { backoffDelay }] = await Promise.all([
    import('../kube/client.js'),
    import('../kube/watch.js'),
    import('../kube/discovery.js'),
    import('../kube/retry.js'),
  ]);
  const client = await createKubeClient({ ...(a.kubeconfig !== undefined ? { kubeconfig: a.kubeconfig } : {}), env: process.env, signal });
  try {
    // The type: the built-in table, else discovery; an unreachable API server is
    // waited for (with backoff), an unknown type is an error.
    let type;
    for (let attempt = 1; ; attempt++) {
      try {
        type = await resolveResourceType(client, a.type);
        break;
      } catch (e) {
        if (signal.aborted) return;
        if (isCniNodeError(e) && (e.kind === 'invalid' || e.kind === 'usage')) throw new CniNodeError('usage', e.message);
        const delay = backoffDelay(attempt, { baseDelayMs: 1_000, maxDelayMs: 30_000 });
        warn(`cannot resolve type "${a.type}" yet: ${isCniNodeError(e) ? e.message : reason(e)}; retrying in ${(delay / 1000).toFixed(1)} s`);
        await Promise.race([new Promise((r) => setTimeout(r, delay).unref()), stopped]);
        if (signal.aborted) return;
      }
    }
    const namespace = !type.namespaced ? undefined : a.allNamespaces ? undefined : (a.namespace ?? client.namespace);
    const collection = resourcePath(type, namespace);
    const single = a.name !== '' && !a.allNamespaces;
    const what = `${type.resource}${type.group ? `.${type.group}` : ''} ${a.name === '' ? '(all)' : a.name}${namespace ? ` in namespace ${namespace}` : type.namespaced ? ' in all namespaces' : ''}${a.label ? ` with label ${a.label}` : ''}`;
    log(`watching ${what}, jsonpath ${a.jsonpath}`);

    const watcher = listWatch({
      client,
      path: collection,
      ...(a.name !== '' ? { fieldSelector: `metadata.name=${a.name}` } : {}),
      ...(a.label ? { labelSelector: a.label } : {}),
      signal,
      onChange: (objects) => {
        let value: string;
        try {
          value = valueOf(evaluate, objects, single);
        } catch (e) {
          warn(`${isCniNodeError(e) ? e.message : `jsonpath ${a.jsonpath}: ${reason(e)}`}; the channel keeps the last value`);
          return;
        }
        tracker.offer(value);
      },
      onRestart: (why, detail) => {
        if (why !== 'timeout') log(`watch restarted (${why}): ${detail}`);
      },
      onError: (e, retryInMs) => {
        // 400/422 to a list or watch: the request itself is wrong (a selector or name
        // the checks above let through); asking again gets the same answer.
        if (e.kind === 'invalid') giveUp(new CniNodeError('usage', `cannot watch ${what}: ${e.message}; this is not retried (check <Type>, <Name> and --label)`));
        else warn(`${e.message}; retrying in ${(retryInMs / 1000).toFixed(1)} s`);
      },
    });
    await stopped;
    await watcher.done;
  } finally {
    client.close();
  }
}
