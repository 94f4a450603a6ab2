/**
 * Waits for SIGTERM or SIGINT (`--pause`): the container then exits 0 at once.
 * Signal listeners alone do not keep Node running, so a timer holds the event
 * loop open until the signal comes.
 */
export function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const onSignal = (sig: NodeJS.Signals) => {
      clearInterval(keepAlive);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(sig);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
