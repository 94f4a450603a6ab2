// The one settings table (src/core/settings.ts): the README's tables agree with it
// (found by their headings, in README.md or docs/), the CLI's parser and help come
// from it, nothing in src/ reads the environment behind its back, and what `run`
// logs of it never shows a credential.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { optionsOf } from '../../src/cli/args.js';
import { kubeWatchUsage, usage } from '../../src/cli/usage.js';
import { CniNodeError } from '../../src/core/errors.js';
import { ALL_SETTINGS, effectiveSettings, flagsOf, redact, SETTINGS, settingsOf, type Command, type Setting } from '../../src/core/settings.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** README.md and every docs/**.md: where the tables may live. */
function docs(): Array<{ file: string; text: string }> {
  const files = [path.join(root, 'README.md')];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else if (e.name.endsWith('.md')) files.push(path.join(dir, e.name));
    }
  };
  walk(path.join(root, 'docs'));
  return files.map((file) => ({ file, text: readFileSync(file, 'utf8') }));
}

/** The rows (cells, `code` marks removed) of the first table under the heading `heading`, wherever it is. */
function tableUnder(heading: string): string[][] {
  for (const { text } of docs()) {
    const lines = text.split('\n');
    const at = lines.findIndex((l) => /^#{2,6} /.test(l) && l.replace(/^#+ /, '').trim() === heading);
    if (at === -1) continue;
    const rows: string[][] = [];
    for (const line of lines.slice(at + 1)) {
      if (/^#{1,6} /.test(line)) break;
      if (!line.startsWith('|')) {
        if (rows.length > 0) break;
        continue;
      }
      rows.push(
        line
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim()),
      );
    }
    assert.ok(rows.length > 2, `the table under "${heading}" is empty`);
    return rows.slice(2).map((r) => r.map((c) => c.replace(/`/g, '')));
  }
  assert.fail(`no heading "${heading}" in README.md or docs/`);
}

const flagOf = (cell: string): string => (/--([a-z-]+)/.exec(cell) ?? [])[1] ?? '';
const flags = (settings: readonly Setting<unknown>[]): string[] =>
  settings
    .filter((s) => !s.spec.hidden)
    .map((s) => s.spec.flag ?? '')
    .sort();

describe('the settings table and the README agree', () => {
  test('"Commands": one row per option of install, uninstall and apply; an option read from the environment names its variable', () => {
    const rows = tableUnder('Commands');
    assert.deepEqual(rows.map((r) => flagOf(r[0] ?? '')).sort(), flags(settingsOf('option')));
    for (const s of settingsOf('option').filter((x) => x.spec.env)) {
      const row = rows.find((r) => flagOf(r[0] ?? '') === s.spec.flag);
      assert.ok(row?.join(' ').includes(s.spec.env as string), `the row of --${s.spec.flag} names ${s.spec.env}`);
    }
  });

  test('"Directories": flag, environment variable and default of each', () => {
    const rows = tableUnder('Directories').map((r) => [flagOf(r[1] ?? ''), r[2], r[3]]);
    assert.deepEqual(
      rows,
      settingsOf('directory').map((s) => [s.spec.flag, s.spec.env, s.shownDefault]),
    );
  });

  test('"Options of run": one row per option only run takes', () => {
    assert.deepEqual(
      tableUnder('Options of run')
        .map((r) => flagOf(r[0] ?? ''))
        .sort(),
      flags(settingsOf('run')),
    );
  });

  test('"Environment": every variable read without a flag, with its default', () => {
    const rows = tableUnder('Environment').map((r) => [r[0], r[1]]);
    assert.deepEqual(
      rows,
      settingsOf('environment').map((s) => [s.spec.env, s.shownDefault]),
    );
  });

  test('"kube-watch options": short and long form, and default, of each', () => {
    const rows = tableUnder('kube-watch options').map((r) => [r[0], r[1]]);
    const want = settingsOf('kube-watch').map((s) => [
      `${s.spec.short ? `-${s.spec.short}, ` : ''}--${s.spec.flag}${s.spec.placeholder ? `=${s.spec.placeholder}` : ''}`,
      s.shownDefault.replace(/\$KUBECONFIG/, '$KUBECONFIG'),
    ]);
    assert.deepEqual(rows, want);
  });
});

describe('the CLI is made from the table', () => {
  test("util.parseArgs's options of each command are the table's flags", () => {
    for (const command of ['install', 'uninstall', 'apply', 'list', 'check', 'version', 'run'] as Command[]) {
      const options = optionsOf(command);
      assert.deepEqual(
        Object.keys(options).sort(),
        flagsOf(command)
          .map((s) => s.spec.flag)
          .sort(),
        command,
      );
      for (const s of flagsOf(command)) assert.equal(options[s.spec.flag as string]?.type, s.spec.boolean ? 'boolean' : 'string');
    }
  });

  test('help shows every option that is not hidden, and every CNI_NODE_ variable without a flag', () => {
    const text = usage();
    for (const s of ALL_SETTINGS.filter((x) => x.spec.flag && !x.spec.hidden && x.spec.group !== 'kube-watch'))
      assert.ok(text.includes(`--${s.spec.flag}`), s.name);
    for (const s of settingsOf('environment').filter((x) => x.spec.env?.startsWith('CNI_NODE_'))) assert.ok(text.includes(s.spec.env as string), s.name);
    const kw = kubeWatchUsage();
    for (const s of settingsOf('kube-watch')) assert.ok(kw.includes(`--${s.spec.flag}`), s.name);
  });

  test('a flag wins over its variable, which wins over the default; an empty one is not given', () => {
    const s = SETTINGS.hostConfigsDir;
    assert.equal(s.resolve({ 'host-configs-dir': '/a' }, { CNI_NODE_HOST_CONFIGS_DIR: '/b' }), '/a');
    assert.equal(s.resolve({ 'host-configs-dir': '' }, { CNI_NODE_HOST_CONFIGS_DIR: '/b' }), '/b');
    assert.equal(s.resolve({}, { CNI_NODE_HOST_CONFIGS_DIR: '' }), '/host/etc/cni/net.d');
  });

  test('parsers: durations, counts and choices; a bad value is a usage error naming the variable', () => {
    assert.equal(SETTINGS.debounce.read({ CNI_NODE_DEBOUNCE: '250ms' }), 250);
    assert.equal(SETTINGS.fightHold.read({}), 300_000);
    assert.equal(SETTINGS.fightLimit.read({ CNI_NODE_FIGHT_LIMIT: '3' }), 3);
    assert.throws(
      () => SETTINGS.fightLimit.read({ CNI_NODE_FIGHT_LIMIT: '0' }),
      (e: unknown) => e instanceof CniNodeError && e.kind === 'usage' && /^CNI_NODE_FIGHT_LIMIT=0: /.test(e.message),
    );
    assert.throws(() => SETTINGS.recheck.read({ CNI_NODE_RECHECK: 'soon' }), /CNI_NODE_RECHECK=soon/);
    assert.throws(() => SETTINGS.kubeconfigCredentials.read({ CNI_NODE_KUBECONFIG_CREDENTIALS: 'x' }), /CNI_NODE_KUBECONFIG_CREDENTIALS=x: expected embed/);
    assert.throws(() => SETTINGS.logFormat.resolve({}, { CNI_NODE_LOG_FORMAT: 'xml' }), /--log-format=xml: expected text or json/);
    assert.equal(SETTINGS.debug.read({ CNI_NODE_DEBUG: '1' }), true);
    assert.equal(SETTINGS.debug.read({ CNI_NODE_DEBUG: 'yes' }), false);
  });
});

describe('nothing reads the environment behind the table', () => {
  test('no file of src/ but core/settings.ts reads a variable from an environment by its name', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !p.endsWith(path.join('core', 'settings.ts'))) {
          for (const [i, line] of readFileSync(p, 'utf8').split('\n').entries()) {
            // By name: env['X'], process.env[…], process.env.X ($VAR substitution reads names that come from manifests).
            if (/\benv\s*\[\s*['"`]|process\.env\s*\[|process\.env\.[A-Za-z_]/.test(line)) offenders.push(`${path.relative(root, p)}:${i + 1}: ${line.trim()}`);
          }
        }
      }
    };
    walk(path.join(root, 'src'));
    assert.deepEqual(offenders, []);
  });
});

describe('the settings run logs', () => {
  test('credentials are redacted: a URL keeps its host, never its user, password or query', () => {
    const s = SETTINGS.kubeconfigServer;
    assert.equal(redact(s, 'https://admin:hunter2@10.0.0.1:6443/?token=abc'), 'https://REDACTED@10.0.0.1:6443/?REDACTED');
    assert.equal(redact(s, 'https://10.0.0.1:6443'), 'https://10.0.0.1:6443/');
    assert.equal(redact(s, 'not a url with a secret'), 'REDACTED');
    assert.equal(redact(SETTINGS.recheck, '5s'), '5s');
  });

  test('every setting of run with a value, given or by default, and no secret', () => {
    const line = effectiveSettings(
      'run',
      { listen: ':9090', 'uninstall-on-exit': true, plugins: 'bridge' },
      {
        CNI_NODE_DEBOUNCE: '250ms',
        CNI_NODE_KUBECONFIG_SERVER: 'https://u:hunter2@api:6443',
        CNI_NODE_HOST_PLUGINS_DIR: '/node/bin',
      },
    ).join(', ');
    for (const part of [
      '--listen=:9090',
      '--uninstall-on-exit',
      'CNI_NODE_DEBOUNCE=250ms',
      'CNI_NODE_RECHECK=30s (default)',
      'CNI_NODE_HOST_PLUGINS_DIR=/node/bin',
      'CNI_NODE_PLUGINS_DIR=/opt/cni/bin (default)',
      'CNI_NODE_KUBECONFIG_SERVER=https://REDACTED@api:6443/',
    ]) {
      assert.ok(line.includes(part), `${part} in ${line}`);
    }
    assert.doesNotMatch(line, /hunter2|--plugins=|--pause|--dry-run/);
  });
});
