import { CniNodeError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "60s", "2m", "500ms", "1h"; a bare number is seconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new CniNodeError('usage', `${option}=${text}: expected a duration such as 30s, 2m or 500ms`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 's'] as number));
}
