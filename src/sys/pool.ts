import { copyFile as copyFileCb, fsync as fsyncCb, read as readCb, write as writeCb } from 'node:fs';

/**
 * The file operations that may take milliseconds, run on libuv's thread pool: an
 * fsync, a copy of a plugin binary, a chunk of a large file. Everything else cni-node
 * does to files (stat, open, rename, unlink, readdir, reading a small file) is one
 * synchronous system call of a few microseconds: a trip through the thread pool
 * costs more than the call itself (a no-op run waited 3.2 ms for the pool), and
 * keeps no event loop responsive that matters (BENCHMARKS.md measures the daemon's
 * longest pause during a reconcile).
 *
 * Callback fs, not fs.promises: the first touch of fs.promises loads fs/promises,
 * readline, the REPL history and the stream modules (26 M instructions, a quarter of
 * Node's own start-up).
 */

function settle<T>(resolve: (v: T) => void, reject: (e: unknown) => void): (e: NodeJS.ErrnoException | null, v: T) => void {
  return (e, v) => (e ? reject(e) : resolve(v));
}

/** fsync(2) of an open file or directory. */
export function fsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsyncCb(fd, (e) => (e ? reject(e) : resolve())));
}

/** Copies `from` to the new file `to` (copy_file_range: the kernel copies, no trip through memory). */
export function copyFile(from: string, to: string, mode: number): Promise<void> {
  return new Promise((resolve, reject) => copyFileCb(from, to, mode, (e) => (e ? reject(e) : resolve())));
}

/** read(2) of up to `buf.length` bytes at `position` (null: the file position). */
export function read(fd: number, buf: Buffer, position: number | null): Promise<number> {
  return new Promise((resolve, reject) => readCb(fd, buf, 0, buf.length, position, settle(resolve, reject)));
}

/** Writes all of `buf` at the file position. */
export async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let rest = buf;
  while (rest.length > 0) {
    const n = await new Promise<number>((resolve, reject) => writeCb(fd, rest, 0, rest.length, null, settle(resolve, reject)));
    rest = rest.subarray(n);
  }
}
