import { constants } from 'node:os';

/**
 * The signals that stop cni-node: SIGTERM (kubelet, `docker stop`), SIGINT (^C) and
 * SIGHUP (the terminal went away, or `kill -HUP`). SIGHUP is not a "reload" here:
 * the daemon re-reads everything by itself whenever it changes, so there is nothing
 * to reload, and a SIGHUP that killed it without a word (Node's default) skipped the
 * log line and --uninstall-on-exit.
 */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** The exit code of a run a signal interrupted: 128 + the signal's number, as a shell reports it (143 for SIGTERM). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 15);
}

/**
 * Waits for a stop signal (`--pause`): the container then exits 0 at once.
 * Signal listeners alone do not keep Node running, so a timer holds the event
 * loop open until the signal comes.
 */
export function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const onSignal = (sig: NodeJS.Signals) => {
      clearInterval(keepAlive);
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
      resolve(sig);
    };
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
  });
}
