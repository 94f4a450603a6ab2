/**
 * The machinery under watchFile and watchDir (file-watch.ts): fs.watch handles on
 * directories kept in line with what should be watched, and the loop that turns
 * bursts of events (and a periodic safety net) into one check at a time.
 */
import { watch, type FSWatcher } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * A set of fs.watch handles on directories, kept in line with a wanted set: a
 * wanted directory that does not exist is replaced by its nearest existing
 * ancestor; a watched directory that was removed or replaced (other inode) is
 * watched again.
 */
export class DirectoryWatches {
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
export class CheckLoop {
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

/** What a watcher hands out to stop it: close() (also on abort of `signal`), and whether it is closed. */
export function closeHandle(loop: CheckLoop, watches: DirectoryWatches, signal: AbortSignal | undefined): { close(): void; readonly closed: boolean } {
  const close = closeOnAbort(() => {
    loop.close();
    watches.close();
  }, signal);
  return {
    close,
    get closed() {
      return loop.closed;
    },
  };
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
