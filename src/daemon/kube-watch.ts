/**
 * What `kube-watch` does once its command line is parsed (cli/watch.ts): follow
 * one value, a file's content or a JSONPath template over watched objects, and
 * hand every change to the handler queue (handler-queue.ts). See
 * docs/ARCHITECTURE.md for the limits and the original's semantics kept here.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { CniNodeError, isCniNodeError, reason } from '../core/errors.js';
import { compileJsonPath } from '../core/jsonpath.js';
import { writeFileAtomic } from '../node/atomic.js';
import { Backoff } from '../sys/backoff.js';
import { aborted, pause } from '../sys/sleep.js';
import type { KubeClient } from '../kube/client.js';
import type { ResourceType } from '../kube/discovery.js';
import type { HandlerQueue } from './handler-queue.js';

/** The largest value (bytes) kube-watch holds, writes to the channel and hands to the handler. */
export const MAX_VALUE_BYTES = 16 * 1024 * 1024;

/** `kube-watch object …`: what to watch and how to turn it into a value. */
export interface ObjectWatchSpec {
  type: string;
  /** Undefined: the current namespace (the pod's, or the kubeconfig context's). */
  namespace: string | undefined;
  /** "" = all objects of the type. */
  name: string;
  allNamespaces: boolean;
  label: string | undefined;
  jsonpath: string;
  kubeconfig: string | undefined;
}

/** What a value source reports to, and how it stops. */
export interface WatchContext {
  tracker: ValueTracker;
  signal: AbortSignal;
  log: (line: string) => void;
  warn: (line: string) => void;
  /** A failure that retrying cannot mend: the watch ends with it. */
  giveUp: (e: CniNodeError) => void;
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

/** The most often the template is evaluated on a changing set. */
export const EVALUATE_EVERY_MS = 100;

/**
 * `fn` with the latest argument, at most once every `ms`: a call when none ran for
 * `ms` runs at once; the calls within the next `ms` are folded into one, with the
 * last argument, at its end. Nothing after `signal` aborts.
 */
export function latestAtMostEvery<T>(ms: number, signal: AbortSignal, fn: (v: T) => void): (v: T) => void {
  let timer: NodeJS.Timeout | undefined;
  let waiting: { v: T } | undefined;
  const run = (v: T): void => {
    fn(v);
    timer = setTimeout(() => {
      timer = undefined;
      const w = waiting;
      waiting = undefined;
      if (w && !signal.aborted) run(w.v);
    }, ms);
  };
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  return (v) => {
    if (signal.aborted) return;
    if (timer) waiting = { v };
    else run(v);
  };
}

/** Value changes → handler runs: remembers the last value; the first previous value is "". */
export class ValueTracker {
  private last = '';
  private first = true;

  constructor(
    private readonly queue: HandlerQueue,
    private readonly warn: (line: string) => void,
  ) {}

  offer(value: string): void {
    const bytes = Buffer.byteLength(value);
    if (bytes > MAX_VALUE_BYTES) {
      this.warn(
        `the new value is ${bytes} bytes, over the limit of ${MAX_VALUE_BYTES}; it is refused: the channel keeps the last value and the handler does not run`,
      );
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
    // The queue logs the change when the handler runs for it (changes coalesce while one runs).
    this.queue.push(value, previous);
  }
}

/** Like the original: the channel's directory is made and the channel exists (empty) from the start. */
export async function prepareChannel(channel: string): Promise<void> {
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

/** `kube-watch file`: the file's content is the value ("" while it does not exist). */
export async function watchFileValue(file: string, ctx: WatchContext): Promise<void> {
  const { watchFile, TooBigError } = await import('./file-watch.js');
  ctx.log(`watching file ${file}`);
  const watcher = watchFile(file, (content) => ctx.tracker.offer(content ?? ''), {
    signal: ctx.signal,
    maxBytes: MAX_VALUE_BYTES,
    onError: (e) => ctx.warn(e instanceof TooBigError ? `${e.message}; the channel keeps the last value and the handler does not run` : e.message),
  });
  await watcher.ready;
  await aborted(ctx.signal);
  watcher.close();
}

/** `kube-watch object`: the template evaluated on the watched object(s) is the value. */
export async function watchObjectValue(a: ObjectWatchSpec, ctx: WatchContext): Promise<void> {
  const evaluate = compileTemplate(a.jsonpath);
  const [{ createKubeClient }, { listWatch }, { resourcePath }] = await Promise.all([
    import('../kube/client.js'),
    import('../kube/watch.js'),
    import('../kube/discovery.js'),
  ]);
  const { signal, log, warn } = ctx;
  const client = await createKubeClient({ ...(a.kubeconfig !== undefined ? { kubeconfig: a.kubeconfig } : {}), env: process.env, signal });
  try {
    const type = await resolveType(client, a.type, ctx);
    if (type === undefined) return;
    const namespace = !type.namespaced ? undefined : a.allNamespaces ? undefined : (a.namespace ?? client.namespace);
    const single = a.name !== '' && !a.allNamespaces;
    const what = `${type.resource}${type.group ? `.${type.group}` : ''} ${a.name === '' ? '(all)' : a.name}${namespace ? ` in namespace ${namespace}` : type.namespaced ? ' in all namespaces' : ''}${a.label ? ` with label ${a.label}` : ''}`;
    log(`watching ${what}, jsonpath ${a.jsonpath}`);

    const watcher = listWatch({
      client,
      path: resourcePath(type, namespace),
      ...(a.name !== '' ? { fieldSelector: `metadata.name=${a.name}` } : {}),
      ...(a.label ? { labelSelector: a.label } : {}),
      signal,
      // Each event re-evaluates the template on the whole set (4 ms with `{}` on 1,500
      // objects): a flood of events is folded into one evaluation per 100 ms.
      onChange: latestAtMostEvery(EVALUATE_EVERY_MS, signal, (objects) => {
        let value: string;
        try {
          value = valueOf(evaluate, objects, single);
        } catch (e) {
          warn(`${isCniNodeError(e) ? e.message : `jsonpath ${a.jsonpath}: ${reason(e)}`}; the channel keeps the last value`);
          return;
        }
        ctx.tracker.offer(value);
      }),
      onRestart: (why, detail) => {
        if (why !== 'timeout') log(`watch restarted (${why}): ${detail}`);
      },
      onError: (e, retryInMs) => {
        // 400/422 to a list or watch: the request itself is wrong (a selector or name
        // the checks above let through); asking again gets the same answer.
        if (e.kind === 'invalid')
          ctx.giveUp(new CniNodeError('usage', `cannot watch ${what}: ${e.message}; this is not retried (check <Type>, <Name> and --label)`));
        else warn(`${e.message}; retrying in ${(retryInMs / 1000).toFixed(1)} s`);
      },
    });
    await aborted(signal);
    await watcher.done;
  } finally {
    client.close();
  }
}

function compileTemplate(jsonpath: string): (obj: unknown) => string {
  try {
    return compileJsonPath(jsonpath, { maxBytes: MAX_VALUE_BYTES });
  } catch (e) {
    throw isCniNodeError(e) ? new CniNodeError('usage', `--jsonpath: ${e.message}`) : e;
  }
}

/**
 * The resource type: the built-in table, else discovery. An unreachable API server
 * is waited for (with backoff); an unknown type is a usage error. Undefined when
 * stopped meanwhile.
 */
async function resolveType(client: KubeClient, typeName: string, ctx: WatchContext): Promise<ResourceType | undefined> {
  const { resolveResourceType } = await import('../kube/discovery.js');
  const backoff = new Backoff({ baseDelayMs: 1_000, maxDelayMs: 30_000 });
  for (;;) {
    try {
      return await resolveResourceType(client, typeName);
    } catch (e) {
      if (ctx.signal.aborted) return undefined;
      if (isCniNodeError(e) && (e.kind === 'invalid' || e.kind === 'usage')) throw new CniNodeError('usage', e.message);
      const delay = backoff.fail();
      ctx.warn(`cannot resolve type "${typeName}" yet: ${isCniNodeError(e) ? e.message : reason(e)}; retrying in ${(delay / 1000).toFixed(1)} s`);
      await pause(delay, ctx.signal);
      if (ctx.signal.aborted) return undefined;
    }
  }
}
