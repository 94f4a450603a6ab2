// An option given twice is a usage error (issue 13). The original script let the
// last one win without a word, so `apply --plugins=a,b … --plugins=c` dropped a
// list (and apply then removed what the dropped list named). Now every command
// (and kube-watch) refuses it: exit 2, the option named, nothing changed.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, cleanEnv, dirsEnv, noDebianPluginsReason, runCli, show } from '../support/cli.js';
import { nodeTree, snapshot, TempRoots } from '../support/tree.js';

const KUBE_WATCH = process.env['KUBE_WATCH_BIN'] ?? path.join(path.dirname(CLI), 'kube-watch');
const skip = noDebianPluginsReason();

const roots = new TempRoots();
after(() => roots.removeAll());

describe('an option given twice is a usage error, never "the last one wins"', { skip }, () => {
  test('cni-node: every command, value and boolean options alike; exit 2, the option named, the node unchanged', async () => {
    const t = await nodeTree(roots, 'cni-node-twice-');
    const installed = await runCli(['install', '--plugins=bridge,loopback'], { env: dirsEnv(t) });
    assert.equal(installed.code, 0, show(installed));
    const before = await snapshot(t.bin);
    const cases: Array<[string[], string]> = [
      [['apply', '--plugins=bridge,loopback', '--plugins=macvlan'], '--plugins'],
      [['install', '--plugins=bridge', '--configs=a.conf', '--configs=b.conf'], '--configs'],
      [['uninstall', '--manifests=a.yaml', '--manifests=b.yaml'], '--manifests'],
      [['install', '--plugins=bridge', '--pause', '--pause'], '--pause'],
      [['apply', '--plugins=bridge', '--dry-run', '--dry-run'], '--dry-run'],
      [['install', '--plugins=bridge', '--wait=1s', '--wait=2s'], '--wait'],
      [['install', '--plugins=bridge', `--host-plugins-dir=${t.bin}`, '--host-plugins-dir=/nonexistent'], '--host-plugins-dir'],
      [['run', '--config-map=kube-system/a', '--config-map=kube-system/b'], '--config-map'],
      [['run', '--plugins=bridge', '--listen=127.0.0.1:1', '--listen=127.0.0.1:2'], '--listen'],
      [['list', '--log-format=json', '--log-format=text'], '--log-format'],
      [['check', '--host-configs-dir=/a', '--host-configs-dir=/b'], '--host-configs-dir'],
    ];
    for (const [args, flag] of cases) {
      const r = await runCli(args, { env: dirsEnv(t) });
      assert.equal(r.code, 2, `${args.join(' ')}\n${show(r)}`);
      assert.match(r.stderr, new RegExp(`option ${flag} is given more than once; give it once`), show(r));
      assert.doesNotMatch(r.stdout, /: (installed|updated|removed)$/m, show(r));
    }
    const lists = await runCli(['apply', '--plugins=bridge', '--plugins=loopback'], { env: dirsEnv(t) });
    assert.match(lists.stderr, /a list is one comma-separated value, e.g\. --plugins=a,b/, show(lists));
    assert.deepEqual(await snapshot(t.bin), before, 'nothing on the node changed');
  });

  test('kube-watch: -j with --jsonpath, -c twice, -a twice: exit 2, the option named', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['object', 'configmap', 'x', '-j', '{.a}', '--jsonpath={.b}'], /option --jsonpath \(-j\) is given more than once/],
      [['file', '/etc/hostname', '-c=/tmp/a', '-c=/tmp/b'], /option --channel \(-c\) is given more than once/],
      [['object', 'configmap', '', '-a', '--all-namespaces'], /option --all-namespaces \(-a\) is given more than once/],
      [['object', 'configmap', 'x', '--kubeconfig=/a', '--kubeconfig=/b'], /option --kubeconfig is given more than once/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(args, { cli: KUBE_WATCH, env: cleanEnv(['KUBECONFIG']), timeoutMs: 10_000 });
      assert.equal(r.code, 2, `${args.join(' ')}\n${show(r)}`);
      assert.match(r.stderr, re, show(r));
    }
  });
});
