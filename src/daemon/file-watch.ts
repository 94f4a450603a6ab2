/**
 * Watching files and directories on the node, for the daemon (`cni-node run`) and
 * `kube-watch file`:
 *
 *   watchFile(file, onChange, options?): the CONTENT of one file; onChange gets it
 *     (or undefined while the file does not exist) only when it differs from the
 *     last value delivered.
 *   watchDir(dir, onChange, options?): the entries of one directory; onChange gets
 *     the sorted names that were added, removed or changed (links followed, so a
 *     kubelet `..data` swap reports every file behind it).
 *
 * fs.watch sits on the directories (never on a file, which goes deaf when renamed
 * over), events only trigger a fresh look, and a periodic re-check covers
 * filesystems that miss events; docs/ARCHITECTURE.md has the details.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { stampKey } from '../sys/file-stamp.js';
import { stderr } from '../sys/output.js';
import { readRegularBytes } from '../sys/read.js';
import { CheckLoop, closeHandle, DirectoryWatches, toError } from './watch-loop.js';

export interface WatchOptions {
  /** Quiet time that ends a burst of events (default 50 ms). */
  debounceMs?: number;
  /** Safety-net re-check interval (default 30 000 ms; 0 disables it). */
  recheckMs?: number;
  /** Aborting it closes the watcher. */
  signal?: AbortSignal;
  /** Errors of onChange and unexpected I/O errors (default: logged to stderr). */
  onError?: (error: Error) => void;
}

export interface FileWatchOptions extends WatchOptions {
  /** Deliver the initial content too (default true). */
  initial?: boolean;
  /**
   * The largest content read (bytes). A bigger file is not read: a TooBigError goes
   * to onError (once per version of the file) and nothing is delivered, so the
   * last content delivered stands. Default: no limit.
   */
  maxBytes?: number;
}

/** A watched file over FileWatchOptions.maxBytes: reported, not read. */
export class TooBigError extends Error {
  constructor(
    readonly file: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`${file} is ${size} bytes, over the limit of ${maxBytes}; it is not read (the last content read stands)`);
    this.name = 'TooBigError';
  }
}

export interface DirWatchOptions extends WatchOptions {
  /** Report names starting with '.' too (default false). */
  hidden?: boolean;
}

export interface FileWatcher {
  /** Resolves with the initial content (undefined if absent) once the watch is in place. */
  readonly ready: Promise<string | undefined>;
  /** The last content delivered (or the initial one). */
  current(): string | undefined;
  close(): void;
  readonly closed: boolean;
}

export interface DirWatcher {
  /** Resolves once the first snapshot is taken and the watch is in place. */
  readonly ready: Promise<void>;
  close(): void;
  readonly closed: boolean;
}

const DEFAULT_DEBOUNCE_MS = 50;
const DEFAULT_RECHECK_MS = 30_000;

function defaultOnError(e: Error): void {
  stderr(`file watch: ${e.message}\n`);
}

/** The file's identity (following symlinks): 'none' when absent. */
async function statFollowing(file: string): Promise<{ stamp: string; isFile: boolean; size: number }> {
  try {
    const st = await fs.stat(file);
    return { stamp: stampKey(st), isFile: st.isFile(), size: st.size };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return { stamp: 'none', isFile: false, size: 0 };
    throw e;
  }
}

/**
 * The file's content following symlinks; undefined if absent or not a regular file.
 * Read by read.ts's rules: a FIFO or device swapped in after the stat is never
 * opened for a read that would block; a file over `maxBytes` (one that grew since
 * the stat: the stat's size was checked against FileWatchOptions.maxBytes) is an
 * error (reported through onError), never read whole.
 */
async function readFollowing(file: string, isFile: boolean, maxBytes: number): Promise<Buffer | undefined> {
  if (!isFile) return undefined;
  try {
    return await readRegularBytes(file, { maxBytes });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ELOOP') return undefined;
    // Replaced by something that is not a regular file since the stat: as absent.
    if (!(await statFollowing(file).catch(() => ({ isFile: false }))).isFile) return undefined;
    throw e;
  }
}

/** Directories to watch for `file`: its own, and the one its symlink chain ends in. */
async function dirsFor(file: string): Promise<Set<string>> {
  const dirs = new Set([path.dirname(file)]);
  try {
    const real = await fs.realpath(file);
    dirs.add(path.dirname(real));
  } catch {
    // Missing or a dangling link: its own directory is enough to see it appear.
  }
  return dirs;
}

function sameContent(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}

/** Watches the content of `file`; see the top of this file. */
export function watchFile(file: string, onChange: (content: string | undefined) => unknown, options: FileWatchOptions = {}): FileWatcher {
  const target = path.resolve(file);
  const onError = options.onError ?? defaultOnError;
  let delivered: Buffer | undefined;
  let lastStamp = '';

  const deliver = async (content: Buffer | undefined): Promise<void> => {
    try {
      await onChange(content?.toString('utf8'));
    } catch (e) {
      if (!loop.closed) onError(toError(e));
    }
  };

  const watches = new DirectoryWatches(() => loop.trigger());

  let baseline: Promise<void> = Promise.resolve();

  const tooBig = (st: { stamp: string; isFile: boolean; size: number }): boolean => {
    if (options.maxBytes === undefined || !st.isFile || st.size <= options.maxBytes) return false;
    if (st.stamp !== lastStamp && !loop.closed) onError(new TooBigError(target, st.size, options.maxBytes));
    lastStamp = st.stamp;
    return true;
  };

  const check = async (full: boolean): Promise<void> => {
    // Events during the start are checked once the baseline is delivered.
    await baseline;
    if (loop.closed) return;
    await watches.plan(await dirsFor(target));
    const st = await statFollowing(target);
    // The safety net reads the file only when its stat changed.
    if (full && st.stamp === lastStamp) return;
    if (tooBig(st)) return;
    const content = await readFollowing(target, st.isFile, options.maxBytes ?? INPUT_LIMITS.watchedFile);
    lastStamp = st.stamp;
    if (loop.closed || sameContent(content, delivered)) return;
    delivered = content;
    await deliver(content);
  };

  const loop = new CheckLoop(check, options.debounceMs ?? DEFAULT_DEBOUNCE_MS, options.recheckMs ?? DEFAULT_RECHECK_MS, onError);

  // Watch first, read second: a change between the two is then an event, not lost.
  baseline = (async (): Promise<void> => {
    let skip = false;
    try {
      await watches.plan(await dirsFor(target));
      const st = await statFollowing(target);
      skip = tooBig(st);
      if (!skip) delivered = await readFollowing(target, st.isFile, options.maxBytes ?? INPUT_LIMITS.watchedFile);
      lastStamp = st.stamp;
    } catch (e) {
      // Unreadable for now (permissions, I/O): reported; later checks try again.
      if (!loop.closed) onError(toError(e));
    }
    if (options.initial !== false && !skip && !loop.closed) await deliver(delivered);
  })();

  const handle = closeHandle(loop, watches, options.signal);
  return {
    ready: baseline.then(() => delivered?.toString('utf8')),
    current: () => delivered?.toString('utf8'),
    close: handle.close,
    get closed() {
      return handle.closed;
    },
  };
}

type Snapshot = Map<string, string>;

async function snapshot(dir: string, hidden: boolean): Promise<Snapshot> {
  const out: Snapshot = new Map();
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return out;
    throw e;
  }
  await Promise.all(
    names.map(async (name) => {
      if (!hidden && name.startsWith('.')) return;
      const p = path.join(dir, name);
      try {
        const l = await fs.lstat(p);
        let stamp = stampKey(l);
        if (l.isSymbolicLink()) {
          const target = await fs.readlink(p).catch(() => '');
          const st = await fs.stat(p).catch(() => undefined);
          stamp += `->${target}:${st ? stampKey(st) : 'dangling'}`;
        }
        out.set(name, stamp);
      } catch {
        // Removed between readdir and lstat: absent.
      }
    }),
  );
  return out;
}

function diff(a: Snapshot, b: Snapshot): string[] {
  const changed = new Set<string>();
  for (const [name, stamp] of a) if (b.get(name) !== stamp) changed.add(name);
  for (const name of b.keys()) if (!a.has(name)) changed.add(name);
  return [...changed].sort();
}

/** Watches the entries of `dir`; see the top of this file. */
export function watchDir(dir: string, onChange: (names: string[]) => unknown, options: DirWatchOptions = {}): DirWatcher {
  const target = path.resolve(dir);
  const hidden = options.hidden === true;
  const onError = options.onError ?? defaultOnError;
  let last: Snapshot = new Map();

  // Symlinked entries may point into other directories (a ConfigMap volume's
  // `..data`): those are covered by the directory's own events (the swap), and
  // in-place edits of targets elsewhere by the safety net.
  const watches = new DirectoryWatches(() => loop.trigger());

  let baseline: Promise<void> = Promise.resolve();

  const check = async (): Promise<void> => {
    await baseline;
    if (loop.closed) return;
    await watches.plan([target]);
    if (loop.closed) return;
    const now = await snapshot(target, hidden);
    if (loop.closed) return;
    const names = diff(last, now);
    last = now;
    if (names.length === 0) return;
    try {
      await onChange(names);
    } catch (e) {
      if (!loop.closed) onError(toError(e));
    }
  };

  const loop = new CheckLoop(check, options.debounceMs ?? DEFAULT_DEBOUNCE_MS, options.recheckMs ?? DEFAULT_RECHECK_MS, onError);

  baseline = (async (): Promise<void> => {
    try {
      await watches.plan([target]);
      last = await snapshot(target, hidden);
    } catch (e) {
      if (!loop.closed) onError(toError(e));
    }
  })();

  const handle = closeHandle(loop, watches, options.signal);
  return {
    ready: baseline,
    close: handle.close,
    get closed() {
      return handle.closed;
    },
  };
}

/** For messages: "a.conf" or "a.conf, b.conf and 3 more". */
export function describeNames(names: readonly string[], max = 3): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}
