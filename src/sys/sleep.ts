import { CniNodeError } from '../core/errors.js';

/**
 * Sleeps `ms`, or rejects as soon as `signal` aborts (the timer is cleared): every
 * wait honours SIGTERM. The rejection is `interrupted()`, by default an
 * 'interrupted' CniNodeError; callers pass one that says what was interrupted.
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  interrupted: () => Error = () => new CniNodeError('interrupted', 'interrupted while waiting'),
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(interrupted());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(interrupted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Sleeps `ms`, or until `signal` aborts; never rejects (for loops that check the signal themselves). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch(() => undefined);
}

/** Resolves once `signal` aborts (at once if it has). */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
