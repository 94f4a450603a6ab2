import { closeSync, constants, openSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { CniNodeError } from '../core/errors.js';
import { ioError } from './atomic.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegular } from '../sys/read.js';
import { sleep } from '../sys/sleep.js';
import { uniqueHex } from '../sys/unique.js';

/**
 * A lease on a node directory, so two cni-node processes on one node (two
 * containers, or a new pod starting while the old one stops) take turns instead of
 * interleaving writes and losing updates to the record.
 *
 * flock(2) is not reachable from Node without a native module, and process IDs do
 * not identify a holder across containers (every container's first process is PID 1).
 * So the lock is a file created with O_EXCL whose mtime the holder refreshes; a lock
 * not refreshed for `staleMs` belongs to a holder that died and may be taken over.
 * A lock whose mtime is more than `staleMs` in the FUTURE is stale too: the clock
 * was stepped back since it was written, and a live holder would have refreshed it
 * to the new "now" within staleMs / 5.
 *
 * The lock file is untrusted input: it is read without following a link, only if
 * it is a regular file of at most INPUT_LIMITS.lock bytes (read.ts), and anything
 * else in its place (a directory, a link, a FIFO, a huge file) stops the run with
 * one line saying what is there. Its content is shown as the holder only when it
 * looks like what cni-node writes (`HOST pid N HEX`), never a foreign file's text.
 */
export const LOCK_FILE = '.cni-node.lock';

export interface LockOptions {
  /** Give up waiting after this long. */
  timeoutMs: number;
  staleMs?: number;
  onWait?: (holder: string) => void;
  signal?: AbortSignal;
}

export class DirLock {
  private timer: NodeJS.Timeout | undefined;
  private lost: string | undefined;

  private constructor(
    readonly file: string,
    private readonly token: string,
    heartbeatMs: number,
  ) {
    this.timer = setInterval(() => void this.refresh(), heartbeatMs);
    this.timer.unref();
  }

  static async acquire(dir: string, opts: LockOptions): Promise<DirLock> {
    const file = path.join(dir, LOCK_FILE);
    const staleMs = opts.staleMs ?? 15_000;
    const token = `${hostname()} pid ${process.pid} ${uniqueHex(16)}`;
    const deadline = Date.now() + opts.timeoutMs;
    let announced = false;
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
        let failure: unknown;
        try {
          writeFileSync(fd, `${token}\n`);
        } catch (e) {
          failure = e;
        }
        try {
          // Once: close(2) releases the descriptor even when it reports an error.
          closeSync(fd);
        } catch (e) {
          failure ??= e;
        }
        if (failure !== undefined) {
          // The file is ours (O_EXCL): never leave it empty, half-written (a full disk)
          // or unconfirmed, or the next run would wait for a holder that gave up.
          try {
            rmSync(file, { force: true });
          } catch {
            // Could not remove it either: the error below says what failed first.
          }
          throw failure;
        }
        return new DirLock(file, token, Math.max(100, Math.floor(staleMs / 5)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot create the lock ${file}`, e);
      }
      const holder = await describeHolder(file);
      if (holder && isStale(holder.mtimeMs, staleMs)) {
        // The holder stopped refreshing: it died. Remove its lock only if it is
        // still the same one we judged stale.
        const again = await describeHolder(file);
        if (again && again.token === holder.token && again.mtimeMs === holder.mtimeMs) {
          rmSync(file, { force: true });
        }
        continue;
      }
      if (Date.now() >= deadline) {
        throw new CniNodeError(
          'conflict',
          `another cni-node (${holder ? showHolder(holder.token) : 'unknown'}) holds the lock ${file} and did not release it within ${Math.round(opts.timeoutMs / 1000)}s; if no other cni-node runs on this node, remove the file`,
        );
      }
      if (!announced && holder) {
        opts.onWait?.(showHolder(holder.token));
        announced = true;
      }
      const delay = Math.min(50 * 2 ** Math.min(attempt, 4), 500) + Math.random() * 50;
      await sleep(delay, opts.signal, () => new CniNodeError('interrupted', `interrupted while waiting for the lock ${file}`));
    }
  }

  private async refresh(): Promise<void> {
    try {
      const now = new Date();
      const holder = await describeHolder(this.file);
      if (!holder || holder.token !== this.token) {
        this.lost = holder ? `taken over by ${showHolder(holder.token)}` : 'removed';
        return;
      }
      utimesSync(this.file, now, now);
    } catch {
      // A failed refresh is retried at the next beat; staleMs allows several misses.
    }
  }

  /** Throws if the lease was lost (another process judged us dead); call between steps. */
  assertHeld(): void {
    if (this.lost) throw new CniNodeError('conflict', `lost the lock ${this.file} (${this.lost}); stopping so two cni-node processes do not write at once`);
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const holder = await describeHolder(this.file).catch(() => undefined);
    if (holder?.token === this.token) rmSync(this.file, { force: true });
  }
}

/** Not refreshed for staleMs, or stamped more than staleMs in the future (the clock was stepped back). */
function isStale(mtimeMs: number, staleMs: number): boolean {
  return Math.abs(Date.now() - mtimeMs) > staleMs;
}

/** What cni-node writes into its lock: `HOST pid N HEX`. */
const TOKEN = /^[A-Za-z0-9._-]{1,253} pid \d{1,10} [0-9a-f]{1,64}$/;

/** The holder as it may be printed: a token cni-node could have written, else only a description of the content. */
function showHolder(token: string): string {
  if (TOKEN.test(token)) return token;
  if (token === '') return 'no holder written in the lock yet';
  return `unrecognised lock content, ${Buffer.byteLength(token)} bytes`;
}

/**
 * The lock's holder (its content, trimmed) and mtime; undefined if there is no lock.
 * Anything but a small regular file in the lock's place is a CniNodeError saying what it is.
 */
async function describeHolder(file: string): Promise<{ token: string; mtimeMs: number } | undefined> {
  const read = await readRegular(file, {
    maxBytes: INPUT_LIMITS.lock,
    follow: false,
    notRegular: (kind) => `the lock ${file} is ${kind}, not a lock file cni-node made; if no other cni-node runs on this node, remove it by hand`,
    tooBig: (size) =>
      `the lock ${file} is ${size} bytes, not a lock file cni-node made (at most ${INPUT_LIMITS.lock}); if no other cni-node runs on this node, remove it by hand`,
  });
  if (!read) return undefined;
  return { token: read.bytes.toString('utf8').trim(), mtimeMs: read.stat.mtimeMs };
}
