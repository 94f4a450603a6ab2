import type { EngineOptions } from '../core/contracts.js';
import type { ListSpec } from '../core/lists.js';
import type { Kind } from '../core/plan.js';
import { reconcile } from '../engine/engine.js';
import { CONFIG_MAP_KEYS } from './desired.js';
import type { DaemonReporter } from './observer.js';

/**
 * --uninstall-on-exit: removes everything cni-node's record holds for `kinds`
 * (apply with nothing desired, the record read under the engine's lock). If the
 * API refuses to delete objects (RBAC, an outage), the node's files are removed
 * anyway, kind by kind, configs before plugins, and the failure is thrown after.
 */
export async function uninstallAll(
  kinds: readonly Kind[],
  options: Omit<EngineOptions, 'reporter' | 'signal' | 'dryRun' | 'waitMs' | 'tolerateMissingPointers'>,
  reporter: DaemonReporter,
  signal: AbortSignal,
): Promise<void> {
  if (kinds.length === 0) {
    reporter.info('--uninstall-on-exit: nothing was managed; nothing to remove');
    return;
  }
  reporter.info(`--uninstall-on-exit: removing what cni-node installed (${kinds.map((k) => CONFIG_MAP_KEYS[k]).join(', ')})`);
  const removeAll = (only: readonly Kind[]) =>
    reconcile(
      { mode: 'apply', lists: Object.fromEntries(only.map((k) => [k, { desired: [] }])) as Partial<Record<Kind, ListSpec>> },
      { ...options, dryRun: false, waitMs: 0, tolerateMissingPointers: true, reporter, signal },
    );
  try {
    const result = await removeAll(kinds);
    reporter.info(`--uninstall-on-exit: removed ${result.changed} item(s)`);
  } catch (e) {
    reporter.warn(`--uninstall-on-exit: ${(e as Error).message}; removing the node's files anyway`);
    let failure: unknown;
    for (const kind of (['config', 'plugin'] as const).filter((k) => kinds.includes(k))) {
      try {
        const result = await removeAll([kind]);
        reporter.info(`--uninstall-on-exit: removed ${result.changed} ${kind}(s)`);
      } catch (e2) {
        failure ??= e2;
      }
    }
    throw failure ?? e;
  }
}
