import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { CniNodeError, reason } from '../core/errors.js';
import { read } from './pool.js';

/**
 * The one way cni-node reads a file it did not make itself (its record and lock,
 * templates, manifests, pointer targets, plugin sources, credentials): stat first
 * (only a regular file is opened), open O_NONBLOCK and fstat (the same file), read
 * at most maxBytes + 1. A FIFO, device or planted link is refused in one line,
 * never read. The reasons: docs/ARCHITECTURE.md ("Reading untrusted files").
 */
export interface ReadOptions {
  /** The cap: a larger file is refused. */
  maxBytes: number;
  /** Follow a symbolic link at the last component (default true). Parent directories are always followed. */
  follow?: boolean;
  /** What the file is, for messages: "cni-node's lock", "config template 05-multus.conf". Default "the file". */
  what?: string;
  /** Message overrides, for callers whose wording tests and operators already know. */
  tooBig?: (size: number) => string;
  notRegular?: (kind: string) => string;
}

export interface ReadResult {
  bytes: Buffer;
  stat: Stats;
}

/** What a non-regular file is, in words: "a directory", "a FIFO (named pipe)", … */
export function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${(n / (1024 * 1024 * 1024)).toFixed(1)} GiB`;
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

function label(file: string, opts: ReadOptions): string {
  return opts.what ? `${opts.what} (${file})` : file;
}

function notRegularError(file: string, kind: string, opts: ReadOptions): CniNodeError {
  return new CniNodeError('invalid', opts.notRegular?.(kind) ?? `${label(file, opts)} is ${kind}, not a regular file; cni-node reads only regular files`);
}

function tooBigError(file: string, size: number, opts: ReadOptions): CniNodeError {
  return new CniNodeError(
    'invalid',
    opts.tooBig?.(size) ??
      `${label(file, opts)} is ${size > opts.maxBytes ? formatBytes(size) : 'larger than its limit'}; the limit is ${formatBytes(opts.maxBytes)}`,
  );
}

function ioFailure(file: string, e: unknown, opts: ReadOptions): CniNodeError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' && opts.follow === false) return notRegularError(file, 'a symbolic link', opts);
  if (code === 'ELOOP') return new CniNodeError('invalid', `${label(file, opts)} is a loop of symbolic links`);
  if (code === 'ENXIO') return notRegularError(file, 'a socket', opts);
  if (code === 'EISDIR') return notRegularError(file, 'a directory', opts);
  const hint = code === 'EACCES' || code === 'EPERM' ? ' (permission denied)' : '';
  return new CniNodeError('io', `cannot read ${label(file, opts)}: ${reason(e)}${hint}`, [], { cause: e });
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

function openFlags(opts: ReadOptions): number {
  return OPEN_FLAGS | (opts.follow === false ? constants.O_NOFOLLOW : 0);
}

/** A stat or open failure: undefined for "does not exist", else the one-line error. */
function absentOr(file: string, e: unknown, opts: ReadOptions): undefined {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw ioFailure(file, e, opts);
}

/** Step 1: what the path is, before anything is opened. */
function checkStat(file: string, st: Stats, opts: ReadOptions): void {
  if (!st.isFile()) throw notRegularError(file, kindOf(st), opts);
  if (st.size > opts.maxBytes) throw tooBigError(file, st.size, opts);
}

/** A file replaced by rename between the stat and the open (atomic writers, ConfigMap volume swaps) is looked at again, this many times. */
const REPLACED_RETRIES = 5;

/** The open file is not the one stat saw: it was replaced (by rename) in between. */
class Replaced extends Error {}

/** Step 2: the open file is the same regular file, still within the cap. */
function checkOpened(file: string, before: Stats, after: Stats, opts: ReadOptions): void {
  // Replaced by rename in between: look again (the new file's kind is checked anew).
  if (after.dev !== before.dev || after.ino !== before.ino) throw new Replaced();
  if (!after.isFile()) throw notRegularError(file, kindOf(after), opts);
  if (after.size > opts.maxBytes) throw tooBigError(file, after.size, opts);
}

/** Files up to this size are read with one synchronous read (a fraction of a millisecond); larger ones in chunks on the thread pool. */
const SYNC_READ_MAX_BYTES = 1024 * 1024;

/**
 * Step 3: reads until EOF, at most maxBytes + 1 bytes (one more than the cap, so a
 * file that grew past it, or a procfs file whose size reads 0, is seen), and
 * refuses what went over: readCappedSync and readCappedAsync, the same loop.
 */
function chunkSize(size: number, total: number, opts: ReadOptions): number {
  return Math.min(Math.max(size - total, 64 * 1024), opts.maxBytes + 1 - total);
}

function joined(file: string, chunks: Buffer[], total: number, opts: ReadOptions): Buffer {
  if (total > opts.maxBytes) throw tooBigError(file, total, opts);
  return Buffer.concat(chunks, total);
}

function readCappedSync(file: string, fd: number, size: number, opts: ReadOptions): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (let want = chunkSize(size, total, opts); want > 0; want = chunkSize(size, total, opts)) {
    const buf = Buffer.allocUnsafe(want);
    const n = readSync(fd, buf, 0, want, null);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
  }
  return joined(file, chunks, total, opts);
}

async function readCappedAsync(file: string, fd: number, size: number, opts: ReadOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (let want = chunkSize(size, total, opts); want > 0; want = chunkSize(size, total, opts)) {
    const buf = Buffer.allocUnsafe(want);
    const n = await read(fd, buf, null);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
  }
  return joined(file, chunks, total, opts);
}

/** An open regular file: its descriptor (the caller closes it) and its fstat. */
export interface OpenedFile {
  fd: number;
  stat: Stats;
}

/**
 * Opens a regular file for reading by the rules above (kind checked before and
 * after the open, O_NONBLOCK, the size cap) and returns the open descriptor: for
 * callers that read it in their own way (plugin binaries, compared in chunks or
 * copied by the kernel). Undefined if it does not exist. Synchronous: a stat, an
 * open and an fstat.
 */
export function openRegular(file: string, opts: ReadOptions): OpenedFile | undefined {
  for (let attempt = 1; ; attempt++) {
    try {
      return openRegularOnce(file, opts);
    } catch (e) {
      if (!(e instanceof Replaced)) throw e;
      if (attempt >= REPLACED_RETRIES) throw new CniNodeError('io', `${label(file, opts)} kept being replaced while cni-node opened it; run again`);
    }
  }
}

function openRegularOnce(file: string, opts: ReadOptions): OpenedFile | undefined {
  let before: Stats;
  try {
    before = opts.follow === false ? lstatSync(file) : statSync(file);
  } catch (e) {
    return absentOr(file, e, opts);
  }
  checkStat(file, before, opts);
  let fd: number;
  try {
    fd = openSync(file, openFlags(opts));
  } catch (e) {
    return absentOr(file, e, opts);
  }
  try {
    const stat = fstatSync(fd);
    checkOpened(file, before, stat, opts);
    return { fd, stat };
  } catch (e) {
    closeSync(fd);
    throw e instanceof CniNodeError || e instanceof Replaced ? e : ioFailure(file, e, opts);
  }
}

/**
 * Reads a regular file of at most `maxBytes`; undefined if it does not exist.
 * Refuses (CniNodeError) anything else: see the top of this file.
 */
export async function readRegular(file: string, opts: ReadOptions): Promise<ReadResult | undefined> {
  const opened = openRegular(file, opts);
  if (!opened) return undefined;
  const { fd, stat } = opened;
  try {
    const bytes = stat.size <= SYNC_READ_MAX_BYTES ? readCappedSync(file, fd, stat.size, opts) : await readCappedAsync(file, fd, stat.size, opts);
    return { bytes, stat };
  } catch (e) {
    throw e instanceof CniNodeError ? e : ioFailure(file, e, opts);
  } finally {
    closeSync(fd);
  }
}

/** readRegular, for callers that only want the bytes. */
export async function readRegularBytes(file: string, opts: ReadOptions): Promise<Buffer | undefined> {
  return (await readRegular(file, opts))?.bytes;
}

/** The synchronous twin of readRegular (credentials are read synchronously by the API client). */
export function readRegularSync(file: string, opts: ReadOptions): Buffer | undefined {
  const opened = openRegular(file, opts);
  if (!opened) return undefined;
  const { fd, stat } = opened;
  try {
    return readCappedSync(file, fd, stat.size, opts);
  } catch (e) {
    throw e instanceof CniNodeError ? e : ioFailure(file, e, opts);
  } finally {
    closeSync(fd);
  }
}
