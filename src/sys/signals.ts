/**
 * The signals that stop cni-node: SIGTERM (kubelet, `docker stop`), SIGINT (^C) and
 * SIGHUP (the terminal went away, or `kill -HUP`). SIGHUP is not a "reload" here:
 * the daemon re-reads everything by itself whenever it changes, so there is nothing
 * to reload, and a SIGHUP that killed it without a word (Node's default) skipped the
 * log line and --uninstall-on-exit.
 */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/**
 * The numbers of the stop signals: the same on every Linux architecture. (A table,
 * not os.constants: node:os is not loaded by a CLI run otherwise.)
 */
const STOP_SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** The exit code of a run a stop signal interrupted: 128 + the signal's number, as a shell reports it (143 for SIGTERM). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (STOP_SIGNAL_NUMBERS[sig] ?? 15);
}

export interface StopSignalOptions {
  /**
   * What a second stop signal does: 'force' (the default) takes Node's default
   * action, which ends the process at once (the listeners are gone after the
   * first); 'ignore' leaves the process to finish its own stop (the daemon, whose
   * stop has a deadline of its own).
   */
  then?: 'force' | 'ignore';
  /**
   * Hold the event loop open until dispose(): signal listeners alone do not keep
   * Node running, and a process that waits only for a signal (`--pause`,
   * kube-watch) would otherwise exit at once.
   */
  keepAlive?: boolean;
}

export interface StopSignalListener {
  /** Resolves with the first stop signal. */
  readonly received: Promise<NodeJS.Signals>;
  /** The first stop signal, once it came. */
  readonly signal: NodeJS.Signals | undefined;
  /** Stops listening and releases the keep-alive. */
  dispose(): void;
}

/**
 * Listens for the stop signals. `onSignal` runs at once for the first one (before
 * the promise's reactions), so the caller can abort what runs; see the options for
 * what a second one does. Listening starts before the caller does anything slow, so
 * no moment is left in which a signal kills the process without a word.
 */
export function onStopSignal(onSignal: (sig: NodeJS.Signals) => void = () => undefined, options: StopSignalOptions = {}): StopSignalListener {
  let resolve: (sig: NodeJS.Signals) => void = () => undefined;
  const received = new Promise<NodeJS.Signals>((r) => (resolve = r));
  let got: NodeJS.Signals | undefined;
  let keepAlive = options.keepAlive ? setInterval(() => undefined, 1 << 30) : undefined;
  const stopListening = (): void => {
    for (const s of STOP_SIGNALS) process.off(s, handler);
  };
  const handler = (sig: NodeJS.Signals): void => {
    if (got) return;
    got = sig;
    if (options.then !== 'ignore') stopListening();
    onSignal(sig);
    resolve(sig);
  };
  const dispose = (): void => {
    stopListening();
    if (keepAlive) clearInterval(keepAlive);
    keepAlive = undefined;
  };
  for (const s of STOP_SIGNALS) process.on(s, handler);
  return {
    received,
    get signal() {
      return got;
    },
    dispose,
  };
}

/** `--pause`: waits for a stop signal, holding the process open until it comes. */
export async function waitForStopSignal(): Promise<NodeJS.Signals> {
  const listener = onStopSignal(undefined, { keepAlive: true });
  const sig = await listener.received;
  listener.dispose();
  return sig;
}
