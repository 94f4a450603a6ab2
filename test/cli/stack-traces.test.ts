// No stack trace reaches an operator (issue 13). An error that is not a
// CniNodeError is a bug: the CLI, the daemon and kube-watch report it in one line,
// "internal error (please report it): <message>", and show the stack only with the
// explicit debug setting CNI_NODE_DEBUG=1.
//
// Two halves: the source is searched for any other way of printing a stack (the
// "grep" of the issue, kept as a test so a new one fails the suite), and real
// processes get a real fault injected through NODE_OPTIONS=--require (a preload
// that breaks crypto.createHash, or throws from a timer) and are checked for what
// they print.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLI, cleanEnv, dirsEnv, noDebianPluginsReason, runCli, show } from '../support/cli.js';
import { start, until } from '../support/process.js';
import { nodeTree, TempRoots } from '../support/tree.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KUBE_WATCH = process.env['KUBE_WATCH_BIN'] ?? path.join(path.dirname(CLI), 'kube-watch');
const skip = noDebianPluginsReason();

const roots = new TempRoots();
after(() => roots.removeAll());

/** A line of a JavaScript stack trace. */
const STACK_LINE = /^\s+at .+(:\d+:\d+\)?|\(native\)|<anonymous>\)?)$/m;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : /\.(ts|mjs|js)$/.test(name) || dir.endsWith('bin') ? [p] : [];
  });
}

describe('no stack trace reaches an operator: the source has one path for it, behind CNI_NODE_DEBUG', () => {
  test('nothing in src/ or bin/ reads .stack, uses console.* or util.inspect, except internalError()', () => {
    const files = [...sourceFiles(path.join(ROOT, 'src')), ...sourceFiles(path.join(ROOT, 'bin'))];
    assert.ok(files.length > 20, `found the sources (${files.length} files)`);
    const found: string[] = [];
    for (const file of files) {
      const rel = path.relative(ROOT, file);
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
        const where = `${rel}:${i + 1}: ${line.trim()}`;
        // Copying a stack from one error object to another prints nothing.
        if (/\.stack\b/.test(code) && !/^\s*e\.stack = this\.stack;$/.test(code)) {
          if (!(rel === path.join('src', 'core', 'errors.ts') && /debug && e instanceof Error && typeof e\.stack === 'string'/.test(code))) found.push(where);
        }
        if (/\bconsole\.\w+\(/.test(code)) found.push(where);
        if (/\binspect\b.*from ['"]node:util['"]|util\.inspect\(/.test(code)) found.push(where);
        if (/captureStackTrace|--trace-|process\.report/.test(code)) found.push(where);
      });
    }
    assert.deepEqual(found, [], 'code paths that could print a stack trace (use internalError(e, debug) from src/core/errors.ts)');
  });
});

describe('no stack trace reaches an operator: real faults in real processes', { skip }, () => {
  let preload: string;
  before(async () => {
    const dir = await roots.make('cni-node-fault-');
    preload = path.join(dir, 'fault.cjs');
    await writeFile(
      preload,
      [
        "'use strict';",
        // A bug in a place every write to the node goes through (the lock names its holder by the host name).
        "const os = require('node:os');",
        'const hostname = os.hostname;',
        "os.hostname = function (...args) { if (process.env.FAULT_HOSTNAME === '1') throw new TypeError('injected fault in os.hostname'); return hostname.apply(this, args); };",
        "require('node:module').syncBuiltinESMExports();",
        // A bug in a callback nobody awaits: an uncaught exception.
        "if (process.env.FAULT_TIMER) setTimeout(() => { throw new RangeError('injected fault in a timer'); }, Number(process.env.FAULT_TIMER)).unref();",
        '',
      ].join('\n'),
    );
  });

  const faulty = (base: NodeJS.ProcessEnv, fault: Record<string, string>): NodeJS.ProcessEnv => ({ ...base, ...fault, NODE_OPTIONS: `--require=${preload}` });

  test('the CLI: an unexpected error is one line, exit 70; the stack only with CNI_NODE_DEBUG=1', async () => {
    const t = await nodeTree(roots, 'cni-node-fault-');
    await writeFile(path.join(t.templates, '10-a.conf'), '{"cniVersion":"0.4.0","name":"a","type":"bridge"}\n');
    const r = await runCli(['install', '--configs=10-a.conf'], { env: faulty(dirsEnv(t), { FAULT_HOSTNAME: '1' }) });
    assert.equal(r.code, 70, show(r));
    assert.equal(r.stderr, 'cni-node: internal error (please report it): TypeError: injected fault in os.hostname\n', show(r));
    assert.doesNotMatch(r.stderr + r.stdout, STACK_LINE, show(r));

    const d = await runCli(['install', '--configs=10-a.conf'], { env: faulty({ ...dirsEnv(t), CNI_NODE_DEBUG: '1' }, { FAULT_HOSTNAME: '1' }) });
    assert.equal(d.code, 70, show(d));
    assert.match(d.stderr, /internal error \(please report it\): TypeError: injected fault in os\.hostname\n/, show(d));
    assert.match(d.stderr, STACK_LINE, `CNI_NODE_DEBUG=1 shows the stack\n${show(d)}`);
  });

  test('the CLI: an uncaught exception in a callback (during --pause) is one line, exit 70', async () => {
    const t = await nodeTree(roots, 'cni-node-fault-');
    const r = await runCli(['install', '--plugins=bridge', '--pause'], { env: faulty(dirsEnv(t), { FAULT_TIMER: '1500' }), timeoutMs: 20_000 });
    assert.equal(r.code, 70, show(r));
    assert.match(r.stderr, /^cni-node: internal error \(please report it\): RangeError: injected fault in a timer$/m, show(r));
    assert.doesNotMatch(r.stderr + r.stdout, STACK_LINE, show(r));
  });

  test('the daemon: a reconcile that hits a bug logs one line, stays up and retries', async () => {
    const t = await nodeTree(roots, 'cni-node-fault-');
    await writeFile(path.join(t.templates, '10-a.conf'), '{"cniVersion":"0.4.0","name":"a","type":"bridge"}\n');
    const p = start(CLI, ['run', '--configs=10-a.conf'], faulty(dirsEnv(t), { FAULT_HOSTNAME: '1' }));
    await p.waitFor(/reconcile #1 failed/);
    assert.match(
      p.stderr(),
      /reconcile #1 failed after \d+ ms \(retrying in [\d.]+ s\): internal error \(please report it\): TypeError: injected fault in os\.hostname\n/,
      p.output(),
    );
    assert.doesNotMatch(p.output(), STACK_LINE, p.output());
    assert.ok(p.alive(), p.output());
    p.kill('SIGTERM');
    assert.equal((await p.exit).code, 0, p.output());
  });

  test('the daemon: an uncaught exception is one line, exit 70 (the pod restarts)', async () => {
    const t = await nodeTree(roots, 'cni-node-fault-');
    const p = start(CLI, ['run', '--plugins=bridge'], faulty(dirsEnv(t), { FAULT_TIMER: '1500' }));
    const r = await p.exit;
    assert.equal(r.code, 70, p.output());
    assert.match(p.stderr(), /^cni-node: internal error \(please report it\): RangeError: injected fault in a timer$/m, p.output());
    assert.doesNotMatch(p.output(), STACK_LINE, p.output());
  });

  test('kube-watch: an uncaught exception is one line, exit 70', async () => {
    const dir = await roots.make('cni-node-fault-kw-');
    await writeFile(path.join(dir, 'watched'), 'x');
    const p = start(
      KUBE_WATCH,
      ['file', path.join(dir, 'watched'), `--channel=${path.join(dir, 'channel')}`, '--handler=/bin/true'],
      faulty(cleanEnv(), { FAULT_TIMER: '1500' }),
    );
    await until('exit', () => !p.alive(), 15_000, p.output);
    const r = await p.exit;
    assert.equal(r.code, 70, p.output());
    assert.match(p.stderr(), /^kube-watch: internal error \(please report it\): RangeError: injected fault in a timer$/m, p.output());
    assert.doesNotMatch(p.output(), STACK_LINE, p.output());
  });
});
