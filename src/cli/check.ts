import type { Dirs } from '../core/contracts.js';
import { printable } from '../core/printable.js';
import { checkNode } from '../node/check.js';
import { stdout } from '../sys/output.js';
import type { LogFormat } from './reporter.js';

export async function checkCommand(dirs: Dirs, format: LogFormat): Promise<number> {
  const report = await checkNode(dirs.hostConfigsDir, dirs.hostPluginsDir);
  if (format === 'json') {
    stdout(`${JSON.stringify(report)}\n`);
    return report.ok ? 0 : 1;
  }
  const lines: string[] = [`configs: ${dirs.hostConfigsDir}`, `plugins: ${dirs.hostPluginsDir}`];
  for (const f of report.files) {
    const mark = f === report.selected ? '*' : ' ';
    // Names read from the node dir: whatever another installer (or anyone with root) called a file.
    const file = printable(f.file, 260);
    if (!f.valid) {
      lines.push(`${mark} ${file}: invalid, the runtime skips it: ${f.problems.join('; ')}`);
      continue;
    }
    lines.push(`${mark} ${file}: network "${f.info?.name}", cniVersion ${f.info?.cniVersion}${f === report.selected ? ' (selected)' : ''}`);
    for (const p of f.plugins) lines.push(`    ${p.ok ? 'ok  ' : 'FAIL'} ${p.type}${p.ipam ? ' (ipam)' : ''}${p.problem ? `: ${p.problem}` : ''}`);
  }
  lines.push(`${report.ok ? 'OK' : 'FAIL'}: ${report.summary}`);
  stdout(`${lines.join('\n')}\n`);
  return report.ok ? 0 : 1;
}
