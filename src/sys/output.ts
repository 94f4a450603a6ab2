import { writeSync } from 'node:fs';

/**
 * The process's output: every line cni-node prints goes through here, written to
 * fd 1 or 2 with write(2), synchronously, or, in the long-running commands, through
 * Node's streams (writeInBackground()).
 *
 * Why not process.stdout/process.stderr for a CLI run: the first touch of either
 * builds Node's stream stack for the fd (net, stream, tty or pipe wrappers: 22
 * modules), which costs a CLI run more than everything else it does (`cni-node
 * version`: 143 M instructions with the streams, 103 M without; `node -e 0` is 94 M;
 * BENCHMARKS.md). Files and terminals Node writes synchronously anyway.
 *
 * Pipes it does not: a write(2) to a pipe whose reader has stopped reading (a
 * blocking log driver, a log collector stuck on its disk, a terminal paused with
 * ^S) blocks until the reader makes room, and a daemon blocked there answers no
 * /healthz and honours no SIGTERM. So `run` and `watch` call writeInBackground()
 * first, and write through Node's streams, which queue what the pipe cannot take
 * yet; up to PENDING_MAX_BYTES of it, then lines are dropped, not memory taken.
 *
 * A non-blocking fd (inherited from a parent that made its end O_NONBLOCK) gives
 * EAGAIN when the pipe is full: a CLI run writes the rest once the reader has made
 * room (a 1 ms wait between tries, so a slow reader is not spun on). EPIPE (the
 * reader is gone: `cni-node … | head -1`) ends the output, not the run: nobody is
 * left to read it, and the run finishes what it started.
 */
export type OutputFd = 1 | 2;

const EAGAIN_WAIT_MS = 1;
/** Output queued for a reader that is not reading, in the long-running commands; beyond it, lines are dropped. */
const PENDING_MAX_BYTES = 4 * 1024 * 1024;
/** After a long-running command has ended, how long its queued output may hold up the exit. */
const EXIT_FLUSH_MS = 2_000;

let waitCell: Int32Array | undefined;

interface OutputState {
  /** The streams of a long-running command (writeInBackground()), by fd. */
  streams?: Record<OutputFd, NodeJS.WriteStream>;
  /** The fds whose reader is gone (EPIPE): nothing more is written to them. */
  gone: Set<OutputFd>;
}
/**
 * One state for the process, not one per copy of this module: the build bundles a
 * copy into each file it loads lazily (scripts/build.mjs), and the daemon's copy
 * must switch main's copy to the streams too.
 */
const state = ((globalThis as unknown as Record<symbol, OutputState | undefined>)[Symbol.for('cni-node.output')] ??= { gone: new Set() });

function waitBriefly(): void {
  waitCell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(waitCell, 0, 0, EAGAIN_WAIT_MS);
}

/** From now on, output goes through Node's streams: a reader that stops reading cannot block the event loop. */
export function writeInBackground(): void {
  if (state.streams) return;
  const streams = (state.streams = { 1: process.stdout, 2: process.stderr });
  for (const fd of [1, 2] as const) streams[fd].on('error', () => state.gone.add(fd));
}

/**
 * The process is to end with `code`: after writeInBackground(), output a reader has
 * not taken may hold the exit up only EXIT_FLUSH_MS (a queued write keeps Node
 * running, so a stalled reader would otherwise keep a stopped daemon alive).
 */
export function exitAfterOutput(code: number): void {
  process.exitCode = code;
  if (state.streams) setTimeout(() => process.exit(code), EXIT_FLUSH_MS).unref();
}

/** Writes all of `text` to `fd`. */
export function writeOut(fd: OutputFd, text: string): void {
  if (text === '' || state.gone.has(fd)) return;
  if (state.streams) {
    const stream = state.streams[fd];
    if (stream.writableLength <= PENDING_MAX_BYTES) stream.write(text);
    return;
  }
  let bytes = Buffer.from(text, 'utf8');
  while (bytes.length > 0) {
    let n: number;
    try {
      n = writeSync(fd, bytes);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        state.gone.add(fd);
        return;
      }
      if (code !== 'EAGAIN') throw e;
      waitBriefly();
      continue;
    }
    bytes = bytes.subarray(n);
  }
}

/** To standard output. */
export const stdout = (text: string): void => writeOut(1, text);
/** To standard error. */
export const stderr = (text: string): void => writeOut(2, text);
