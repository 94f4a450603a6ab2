import { writeSync } from 'node:fs';

/**
 * The process's output: every line cni-node prints goes through here, written to
 * fd 1 or 2 with write(2), synchronously.
 *
 * Why not process.stdout/process.stderr: the first touch of either builds Node's
 * stream stack for the fd (net, stream, tty or pipe wrappers: 22 modules), which
 * costs a CLI run more than everything else it does (`cni-node version`: 143 M
 * instructions with the streams, 103 M without; `node -e 0` is 94 M; BENCHMARKS.md).
 * Node writes to files, pipes and terminals synchronously on Linux anyway, so the
 * order and the timing of the output stay what they were.
 *
 * A non-blocking fd (inherited from a parent that made its end O_NONBLOCK, which
 * Node's streams would have handled) gives EAGAIN when the pipe is full: the rest
 * is written once the reader has made room (a 1 ms wait between tries, so a slow
 * reader is not spun on). Any other error (EPIPE: the reader is gone) is thrown, as
 * the stream's error was.
 */
export type OutputFd = 1 | 2;

const EAGAIN_WAIT_MS = 1;
let waitCell: Int32Array | undefined;

function waitBriefly(): void {
  waitCell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(waitCell, 0, 0, EAGAIN_WAIT_MS);
}

/** Writes all of `text` to `fd`. */
export function writeOut(fd: OutputFd, text: string): void {
  if (text === '') return;
  let bytes = Buffer.from(text, 'utf8');
  while (bytes.length > 0) {
    let n: number;
    try {
      n = writeSync(fd, bytes);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
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
