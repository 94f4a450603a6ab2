/**
 * Watching files and directories on the node for the daemon (`cni-node run`) and
 * for `kube-watch file`.
 *
 * API
 * ---
 *   watchFile(file, onChange, options?) → FileWatcher
 *     Watches the CONTENT of one file. `onChange(content)` receives the file's
 *     content (utf8 string), or `undefined` when it does not exist (or is not a
 *     readable file), and is called ONLY when that differs from the last value
 *     delivered. `watcher.ready` resolves with the initial content once the
 *     watches are in place; changes after that are delivered. The initial content
 *     itself is delivered too unless `options.initial === false`.
 *
 *   watchDir(dir, onChange, options?) → DirWatcher
 *     Watches the entries of one directory. `onChange(names)` receives the sorted
 *     names of the entries that were added, removed or changed (size, mtime,
 *     ctime, inode or type; symbolic links are followed, so a kubelet `..data`
 *     swap reports every file that points into it). Hidden names (starting with
 *     '.') are left out unless `options.hidden` is true. Never called with an
 *     empty list. `watcher.ready` resolves once the first snapshot is taken;
 *     nothing is reported for what was already there.
 *
 *   Both: `close()` (or aborting `options.signal`) stops at once and releases every
 *   fs.watch handle and timer; no callback runs after it. `onChange` may return a
 *   promise: deliveries never overlap, and changes seen while one runs are
 *   coalesced into the next delivery (the latest state wins). Errors thrown by
 *   `onChange`, and unexpected I/O errors, go to `options.onError` (default: a
 *   line on stderr); the watch goes on.
 *
 * How
 * ---
 * fs.watch (inotify) is set on the DIRECTORY that holds the file, never on the
 * file itself: a watch on a file follows its inode, so it goes deaf when the file
 * is replaced by rename (atomic writes, as cni-node does), and a kubelet
 * ConfigMap volume never touches the file at all — `name` is a symlink to
 * `..data/name`, and kubelet atomically renames a new `..data` symlink over the old
 * one, which is an event in the directory. When the file is a symlink to another
 * directory, that directory is watched too (in-place writes to the target). When a
 * directory does not exist (yet), its nearest existing ancestor is watched, and
 * the watches are re-planned after every event, so a directory that is created,
 * deleted or replaced later is picked up.
 *
 * Events are only triggers: each burst (debounced, `debounceMs`, default 50 ms, at
 * most 4× that while events keep coming) leads to re-reading the file / a fresh
 * snapshot of the directory and a comparison with what was delivered last, so
 * duplicate, spurious or unrelated events never reach `onChange`.
 *
 * Safety net: fs.watch can miss events on some filesystems (network and FUSE
 * filesystems, some overlay setups, a watch that died with its directory), so the
 * same cheap check also runs every `recheckMs` (default 30 s): a stat per watched
 * directory and, for a file, a stat and a read only when its stat changed; for a
 * directory, one readdir + stat per entry.
 */
import { watch, type FSWatcher } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { INPUT_LIMITS } from '../node/input-limits.js';
import { readRegularBytes } from '../node/read.js';

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
  process.stderr.write(`file watch: ${e.message}\n`);
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** An identity of a file system object, from stat. */
function stampOf(st: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number; mode: number }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`;
}

/**
 * A set of fs.watch handles on directories, kept in line with a wanted set: a
 * wanted directory that does not exist is replaced by its nearest existing
 * ancestor; a watched directory that was removed or replaced (other inode) is
 * watched again.
 */
class DirectoryWatches {
  private readonly watches = new Map<string, { watcher: FSWatcher; id: string }>();
  private closed = false;

  constructor(private readonly onEvent: () => void) {}

  /** Makes the watched set match `wanted` (absolute paths). */
  async plan(wanted: Iterable<string>): Promise<void> {
    const targets = new Map<string, string>(); // dir → dev:ino
    for (const dir of wanted) {
      let d = path.resolve(dir);
      for (;;) {
        try {
          const st = await fs.stat(d);
          if (st.isDirectory()) {
            targets.set(d, `${st.dev}:${st.ino}`);
            break;
          }
        } catch {
          // Missing (or unreadable): watch the parent instead.
        }
        const parent = path.dirname(d);
        if (parent === d) break;
        d = parent;
      }
    }
    if (this.closed) return;
    for (const [dir, w] of this.watches) {
      if (targets.get(dir) !== w.id) {
        w.watcher.close();
        this.watches.delete(dir);
      }
    }
    for (const [dir, id] of targets) {
      if (this.watches.has(dir)) continue;
      let watcher: FSWatcher;
      try {
        watcher = watch(dir, { persistent: true }, () => this.onEvent());
      } catch {
        // Vanished between stat and watch, or not watchable: the next plan (event or safety net) retries.
        continue;
      }
      // The directory was removed (inotify reports IN_IGNORED as an error on some
      // platforms): forget the handle and let the next plan decide.
      watcher.on('error', () => {
        watcher.close();
        if (this.watches.get(dir)?.watcher === watcher) this.watches.delete(dir);
        this.onEvent();
      });
      this.watches.set(dir, { watcher, id });
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.watches.values()) w.watcher.close();
    this.watches.clear();
  }
}

/**
 * The scheduling shared by both watchers: debounced triggers, one check at a time
 * (a trigger during a check runs one more check after it), a safety-net interval,
 * closing on abort.
 */
class CheckLoop {
  private timer: NodeJS.Timeout | undefined;
  private burstStart = 0;
  private running = false;
  private again = false;
  private interval: NodeJS.Timeout | undefined;
  closed = false;

  constructor(
    private readonly check: (full: boolean) => Promise<void>,
    private readonly debounceMs: number,
    recheckMs: number,
    private readonly onError: (e: Error) => void,
  ) {
    if (recheckMs > 0) {
      this.interval = setInterval(() => this.run(true), recheckMs);
      this.interval.unref();
    }
  }

  /** An event: run a check after the burst is over. */
  trigger(): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.timer === undefined) this.burstStart = now;
    else clearTimeout(this.timer);
    // Events that keep coming must not postpone the check forever.
    const wait = Math.max(0, Math.min(this.debounceMs, this.burstStart + 4 * this.debounceMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run(false);
    }, wait);
  }

  run(full: boolean): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.check(full)
      .catch((e: unknown) => {
        if (!this.closed) this.onError(toError(e));
      })
      .finally(() => {
        this.running = false;
        if (this.again && !this.closed) {
          this.again = false;
          this.run(false);
        }
      });
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.interval !== undefined) clearInterval(this.interval);
    this.timer = undefined;
    this.interval = undefined;
  }
}

/** The file's identity (following symlinks): 'none' when absent. */
async function statFollowing(file: string): Promise<{ stamp: string; isFile: boolean; size: number }> {
  try {
    const st = await fs.stat(file);
    return { stamp: stampOf(st), isFile: st.isFile(), size: st.size };
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
export function watchFile(
  file: string,
  onChange: (content: string | undefined) => unknown,
  options: FileWatchOptions = {},
): FileWatcher {
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

  const ready = baseline.then(() => delivered?.toString('utf8'));

  const close = closeOnAbort(() => {
    loop.close();
    watches.close();
  }, options.signal);

  return {
    ready,
    current: () => delivered?.toString('utf8'),
    close,
    get closed() {
      return loop.closed;
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
        let stamp = stampOf(l);
        if (l.isSymbolicLink()) {
          const target = await fs.readlink(p).catch(() => '');
          const st = await fs.stat(p).catch(() => undefined);
          stamp += `->${target}:${st ? stampOf(st) : 'dangling'}`;
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

  const ready = baseline;

  const close = closeOnAbort(() => {
    loop.close();
    watches.close();
  }, options.signal);

  return {
    ready,
    close,
    get closed() {
      return loop.closed;
    },
  };
}

/** For messages: "a.conf" or "a.conf, b.conf and 3 more". */
export function describeNames(names: readonly string[], max = 3): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** Wraps `stop` so that it also runs when `signal` aborts (at once if it already has), and only once. */
function closeOnAbort(stop: () => void, signal: AbortSignal | undefined): () => void {
  let done = false;
  const close = (): void => {
    if (done) return;
    done = true;
    signal?.removeEventListener('abort', close);
    stop();
  };
  if (signal?.aborted) close();
  else signal?.addEventListener('abort', close, { once: true });
  return close;
}
