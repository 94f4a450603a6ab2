import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { isCniNodeError, reason } from '../core/errors.js';
import { printable } from '../core/printable.js';
import { writeFileAtomic } from '../node/atomic.js';

/** The largest single argument the kernel passes to a program (MAX_ARG_STRLEN, 128 KiB, with its NUL). */
export const MAX_ARG_BYTES = 128 * 1024 - 1;

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
 *
 * Changes that come while a handler runs are coalesced: at most one run waits, with
 * the latest value, and its previous value is the one the handler last saw. A
 * handler acts on the current value; a flood of changes (a busy object watched with
 * `{}`, or a broken or hostile API server streaming new versions) must not queue one
 * run, and one copy of a value of up to 16 MiB, per change.
 */
export class HandlerQueue {
  /** The run waiting to start (at most one), and how many changes it stands for. */
  private pending: { current: string; previous: string; changes: number } | undefined;
  private running: ChildProcess | undefined;
  private draining: Promise<void> | undefined;
  private stopped = false;
  /** Runs finished (successfully or not), for tests and logs. */
  runs = 0;
  failures = 0;
  /** Changes folded into a waiting run instead of a run of their own. */
  coalesced = 0;

  constructor(private readonly options: HandlerQueueOptions) {}

  push(current: string, previous: string): void {
    if (this.stopped) return;
    if (this.pending) {
      this.coalesced++;
      this.pending.current = current;
      this.pending.changes++;
      // Back to the value the handler last saw: nothing to run.
      if (current === this.pending.previous) this.pending = undefined;
    } else {
      this.pending = { current, previous, changes: 1 };
    }
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
    this.pending = undefined;
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
    for (let job = this.pending; job !== undefined && !this.stopped; job = this.pending) {
      this.pending = undefined;
      const between = job.changes > 1 ? `; ${job.changes - 1} change(s) in between coalesced while the handler ran` : '';
      this.options.log(`value changed (${describeValue(job.previous)} → ${describeValue(job.current)}${between})`);
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
    const tooBig = (
      [
        ['the current value', current],
        ['the previous value', previous],
      ] as const
    ).filter(([, v]) => Buffer.byteLength(v) > MAX_ARG_BYTES);
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

/** A value for the log: "empty", or the start of it on one line (it comes from the API server or a file). */
export function describeValue(value: string): string {
  if (value === '') return 'empty';
  return `"${printable(value.replace(/\s+/g, ' '), 60)}"`;
}
