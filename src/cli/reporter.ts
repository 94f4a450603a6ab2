import type { ItemReport, Reporter } from '../core/contracts.js';

import { SETTINGS, type Env, type Values } from '../core/settings.js';
import { stderr, stdout } from '../sys/output.js';

export type LogFormat = 'text' | 'json';

/** --log-format, else CNI_NODE_LOG_FORMAT, else text. */
export function resolveLogFormat(values: Values, env: Env): LogFormat {
  return SETTINGS.logFormat.resolve(values, env) ?? 'text';
}

const WOULD: Record<string, string> = {
  installed: 'would install',
  updated: 'would update',
  removed: 'would remove',
  absent: 'absent, nothing to remove',
  unchanged: 'unchanged',
  waiting: 'would wait',
};

/** One line per item for people (`kubectl logs`), or one JSON object per line for log pipelines. */
export function createReporter(
  format: LogFormat,
  out: (text: string) => void = stdout,
  err: (text: string) => void = stderr,
): Reporter & { error(message: string): void } {
  const json = (level: string, fields: Record<string, unknown>) => `${JSON.stringify({ time: new Date().toISOString(), level, ...fields })}\n`;
  if (format === 'json') {
    return {
      item: (r: ItemReport) => out(json(r.result === 'failed' ? 'error' : 'info', { ...r })),
      warn: (message) => err(json('warn', { message })),
      info: (message) => out(json('info', { message })),
      error: (message) => err(json('error', { message })),
    };
  }
  return {
    item: (r: ItemReport) => {
      const what = r.dryRun ? (WOULD[r.result] ?? r.result) : r.result === 'absent' ? 'absent, nothing to remove' : r.result;
      out(`${r.kind} ${r.name}: ${what}${r.detail ? ` (${r.detail})` : ''}\n`);
    },
    warn: (message) => err(`warning: ${message}\n`),
    info: (message) => out(`${message}\n`),
    error: (message) => err(`error: ${message}\n`),
  };
}
