import { settingsOf, type Setting, type SettingGroup } from '../core/settings.js';

const COMMANDS: ReadonlyArray<[string, string]> = [
  ['install', 'install the named plugins / configs / manifests, in the given order'],
  ['uninstall', 'remove them, in reverse of the given order'],
  [
    'apply',
    'converge: --plugins=<Desired[:Current]> (likewise --configs, --manifests);\n              without :Current, what cni-node itself installed is the current state',
  ],
  ['list', 'plugins available in the plugins dir, one name per line'],
  ['check', "report whether the node's CNI configuration would work for a runtime"],
  ['run', 'keep the node converged: reconcile at start and on every change'],
  ['watch', 'kube-watch compatible watcher (cni-node watch object|file|version …)'],
  ['version', 'print the version'],
];

/** `--flag=<placeholder>` (or `-x,--flag=…` for kube-watch), as help text shows it. */
export function flagText(s: Setting<unknown>, withShort = false): string {
  const long = `--${s.spec.flag}${s.spec.placeholder ? `=${s.spec.placeholder}` : ''}`;
  return withShort && s.spec.short ? `-${s.spec.short},${long}` : long;
}

/** One option per line, the meanings in one column. */
function optionLines(group: SettingGroup, indent: number, withShort = false, minWidth = 0): string[] {
  const shown = settingsOf(group).filter((s) => s.spec.flag !== undefined && !s.spec.hidden);
  const width = Math.max(minWidth, ...shown.map((s) => flagText(s, withShort).length + 2));
  return shown.map((s) => {
    const text = flagText(s, withShort);
    const dflt = group === 'kube-watch' && s.shownDefault !== '' ? ` (default: ${s.shownDefault})` : '';
    return `${' '.repeat(indent)}${text.padEnd(width)}${s.spec.meaning}${dflt}`;
  });
}

/** Words joined by ", ", in lines of at most `width` characters. */
function wrap(words: readonly string[], indent: number, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const [i, w] of words.entries()) {
    const piece = `${w}${i < words.length - 1 ? ',' : ''}`;
    if (line !== '' && indent + line.length + 1 + piece.length > width) {
      lines.push(`${' '.repeat(indent)}${line}`);
      line = '';
    }
    line = line === '' ? piece : `${line} ${piece}`;
  }
  if (line !== '') lines.push(`${' '.repeat(indent)}${line}`);
  return lines;
}

/** `cni-node help`. */
export function usage(): string {
  const dirs = settingsOf('directory');
  const environment = settingsOf('environment').filter((s) => s.spec.env?.startsWith('CNI_NODE_'));
  return [
    'Usage: cni-node <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map(([name, what]) => `  ${name.padEnd(10)}  ${what}`),
    '',
    'Options:',
    ...optionLines('option', 2, false, 31),
    `  ${dirs.map((s) => `--${s.spec.flag}`).join(', ')}`,
    `  ${' '.repeat(31)}override directories (also ${dirs[0]?.spec.env}, …)`,
    '',
    'Options of run:',
    ...optionLines('run', 2),
    '',
    'Environment (docs/configuration.md says what each means, and its default):',
    ...wrap(
      environment.map((s) => s.spec.env as string),
      2,
      80,
    ),
    '',
    'Exit codes: 0 success, 1 the job failed (the message says why), 2 bad command line,',
    '            128+N stopped by signal N, 70 a bug in cni-node (please report it).',
    '',
  ].join('\n');
}

/** kube-watch's usage: the original's text, its options from the settings table. */
export function kubeWatchUsage(): string {
  return [
    'Usage: kube-watch object <Type> <[Namespace/]Name> [Options]',
    '       kube-watch file <FileName> [Options]',
    '       kube-watch version',
    '',
    'Options:',
    ...optionLines('kube-watch', 4, true),
    '',
    'Whenever the value changes, the channel file gets the new value and the handler',
    'runs with three arguments: channel, current value, previous value.',
    'Name "" watches all objects of the type (with -l / -a filters).',
    '',
  ].join('\n');
}
