// Hostile input (issue 13), through the real ./bin/cni-node process and the real
// `cni-node run` daemon: names from cni-node's own record, files of the wrong kind
// or size where cni-node reads, its lock file in odd states, names too long in
// UTF-8 bytes, overlapping source and node dirs, and records it cannot read.
//
// The node dirs sit three levels below the test's root (root/node/host/bin), so a
// record entry "../../../victim" names root/victim: a file this test made, never
// anything outside its temporary dir, even when run against an unfixed build.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { cleanEnv, DEBIAN_PLUGINS, LOCK, noDebianPluginsReason, RECORD, runCli, show, type CliResult, type NodeDirs } from '../support/cli.js';
import { TempRoots } from '../support/tree.js';

const skip = noDebianPluginsReason();
const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

const roots = new TempRoots();
after(() => roots.removeAll());

interface Tree extends NodeDirs {
  root: string;
  manifests: string;
}

/** A node whose dirs are three levels below `root`: root/node/host/{bin,net.d}; templates and manifests beside. */
async function tree(): Promise<Tree> {
  const root = await roots.make('cni-node-hostile-');
  const t: Tree = {
    root,
    plugins: DEBIAN_PLUGINS,
    bin: path.join(root, 'node/host/bin'),
    netd: path.join(root, 'node/host/net.d'),
    templates: path.join(root, 'templates'),
    manifests: path.join(root, 'manifests'),
  };
  for (const d of [t.bin, t.netd, t.templates, t.manifests]) await mkdir(d, { recursive: true });
  return t;
}

function env(t: Tree, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...cleanEnv(['KUBECONFIG']),
    CNI_NODE_PLUGINS_DIR: t.plugins,
    CNI_NODE_HOST_PLUGINS_DIR: t.bin,
    CNI_NODE_CONFIGS_DIR: t.templates,
    CNI_NODE_HOST_CONFIGS_DIR: t.netd,
    CNI_NODE_MANIFESTS_DIR: t.manifests,
    ...extra,
  };
}

const run = (t: Tree, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; prefix?: string[] } = {}) =>
  runCli(args, { env: opts.env ?? env(t), timeoutMs: opts.timeoutMs ?? 30_000, ...(opts.prefix ? { prefix: opts.prefix } : {}) });

const CONF = '{"cniVersion":"0.4.0","name":"good","type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}\n';

/** Asserts a handled failure: the exit code, one of the lines matches `re`, no crash, no stack trace, and it did not hang. */
function refused(r: CliResult, re: RegExp, code = 1): CliResult {
  assert.equal(r.signal, null, `ended by itself, not killed by the test's guard\n${show(r)}`);
  assert.equal(r.code, code, show(r));
  assert.match(r.stderr, re, show(r));
  assert.doesNotMatch(r.stderr + r.stdout, /internal error|\n\s+at |RangeError|EISDIR/, `no crash, no stack trace\n${show(r)}`);
  return r;
}

function succeeded(r: CliResult): CliResult {
  assert.equal(r.signal, null, show(r));
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, show(r));
  return r;
}

async function recordOf(dir: string): Promise<{ format: string; kinds: Record<string, { name: string }[]> }> {
  return JSON.parse(await readFile(path.join(dir, RECORD), 'utf8')) as { format: string; kinds: Record<string, { name: string }[]> };
}

/** Adds entries with these names to the `kind` section of the record in `dir`. */
async function plant(dir: string, kind: string, names: string[]): Promise<void> {
  const rec = existsSync(path.join(dir, RECORD)) ? await recordOf(dir) : { format: 'cni-node/record/v1', kinds: {} as Record<string, { name: string }[]> };
  rec.kinds[kind] = [...(rec.kinds[kind] ?? []), ...names.map((name) => ({ name }))];
  await writeFile(path.join(dir, RECORD), JSON.stringify(rec));
}

/** Files outside the node dirs that a hostile record names; each holds its own name. */
async function victims(t: Tree): Promise<{ relative: string[]; absolute: string[]; intact(): Promise<void> }> {
  const files = ['victim-p', 'victim-c'].map((n) => path.join(t.root, n));
  const abs = path.join(t.root, 'victim-abs');
  for (const f of [...files, abs]) await writeFile(f, path.basename(f));
  return {
    relative: ['../../../victim-p', '../../../victim-c'],
    absolute: [abs],
    async intact() {
      for (const f of [...files, abs]) assert.equal(await readFile(f, 'utf8'), path.basename(f), `${f} must be untouched`);
    },
  };
}

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

// ---------------------------------------------------------------------------

describe('untrusted names from the record are refused, never acted on', { skip }, () => {
  /** A node with bridge + 10-good.conf installed, and hostile entries planted in both records. */
  async function hostile(): Promise<{ t: Tree; v: Awaited<ReturnType<typeof victims>> }> {
    const t = await tree();
    await writeFile(path.join(t.templates, '10-good.conf'), CONF);
    succeeded(await run(t, ['install', '--plugins=bridge', '--configs=10-good.conf']));
    const v = await victims(t);
    await plant(t.bin, 'plugin', ['../../../victim-p', v.absolute[0] as string, 'ok\nplugin x: removed']);
    await plant(t.netd, 'config', ['../../../victim-c', v.absolute[0] as string, '.cni-node-state']);
    return { t, v };
  }

  const warned = (r: CliResult, dir: string) => {
    assert.match(
      r.stderr,
      new RegExp(`warning: cni-node's record ${path.join(dir, RECORD).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*"\\.\\./\\.\\./\\.\\./victim-.*refused`),
      show(r),
    );
    assert.doesNotMatch(r.stdout, /victim|plugin x|cni-node-state:/, show(r));
  };

  test('apply without :Current, in both node dirs: the bad entries are refused with a warning naming the record, the files they name stay', async () => {
    const { t, v } = await hostile();
    const r = succeeded(await run(t, ['apply', '--plugins=bridge', '--configs=10-good.conf']));
    warned(r, t.bin);
    warned(r, t.netd);
    await v.intact();
    assert.ok(existsSync(path.join(t.bin, 'bridge')) && existsSync(path.join(t.netd, '10-good.conf')));
    // The record is mended: only the good entries are left.
    assert.deepEqual(
      (await recordOf(t.bin)).kinds['plugin']?.map((e) => e.name),
      ['bridge'],
    );
    assert.deepEqual(
      (await recordOf(t.netd)).kinds['config']?.map((e) => e.name),
      ['10-good.conf'],
    );
  });

  test('apply removing everything (empty desired list) and --dry-run: the bad entries are never removed or reported as removable', async () => {
    const { t, v } = await hostile();
    const dry = succeeded(await run(t, ['apply', '--plugins=', '--configs=', '--dry-run']));
    warned(dry, t.bin);
    assert.match(dry.stdout, /^plugin bridge: would remove$/m, show(dry));
    const r = succeeded(await run(t, ['apply', '--plugins=', '--configs=']));
    warned(r, t.bin);
    assert.match(r.stdout, /^plugin bridge: removed$/m, show(r));
    assert.match(r.stdout, /^config 10-good\.conf: removed$/m, show(r));
    await v.intact();
  });

  test('the daemon, at start-up and with --uninstall-on-exit: the bad entries are refused, the files they name stay', async () => {
    const { t, v } = await hostile();
    let sent = false;
    const r = await runCli(['run', '--plugins=bridge', '--configs=10-good.conf', '--uninstall-on-exit'], {
      env: env(t),
      timeoutMs: 30_000,
      onSpawn: (child, stdout) => {
        const poll = setInterval(() => {
          if (/reconcile #1 done/.test(stdout()) && !sent) {
            sent = true;
            child.kill('SIGTERM');
          }
        }, 50);
        child.on('close', () => clearInterval(poll));
      },
    });
    assert.ok(sent, `the daemon finished its first reconcile\n${show(r)}`);
    succeeded(r);
    assert.match(r.stderr, /warning: cni-node's record .*victim-p.*refused/, show(r));
    assert.doesNotMatch(r.stdout, /victim/, show(r));
    assert.match(r.stdout, /^plugin bridge: removed$/m, 'the good entries are uninstalled on exit');
    await v.intact();
  });

  test('a record entry that is not a name at all (a number, an object) or has fields of the wrong type: no crash', async () => {
    const t = await tree();
    succeeded(await run(t, ['install', '--plugins=bridge']));
    const rec = await recordOf(t.bin);
    (rec.kinds as Record<string, unknown>)['plugin'] = [{ name: 'bridge', stamp: 'absent', meta: 'x', sha256: 7 }];
    await writeFile(path.join(t.bin, RECORD), JSON.stringify(rec));
    succeeded(await run(t, ['apply', '--plugins=bridge']));
    await writeFile(path.join(t.bin, RECORD), JSON.stringify({ format: 'cni-node/record/v1', kinds: { plugin: [{ name: 42 }] } }));
    const r = succeeded(await run(t, ['apply', '--plugins=bridge']));
    assert.match(r.stderr, /record .* unreadable|cannot read cni-node's record/, show(r));
  });
});

describe("untrusted names: the manifest record's object references are refused before any API call", { skip }, () => {
  test('a recorded reference with "/", "..", "?" or a bad apiVersion is refused with a warning naming the record; nothing is sent for it', async () => {
    const t = await tree();
    const rec = {
      format: 'cni-node/record/v1',
      kinds: {
        manifest: [
          {
            name: 'm.yaml',
            sha256: '',
            meta: {
              objects: [
                { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system', name: '../../../api/v1/namespaces/kube-system' },
                { apiVersion: '../../api/v1', kind: 'Secret', namespace: 'kube-system', name: 'x' },
                { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system/..', name: 'x' },
                { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system', name: 'x?dryRun=All' },
              ],
            },
          },
        ],
      },
    };
    await writeFile(path.join(t.netd, RECORD), JSON.stringify(rec));
    // No API server at all: the references must be refused before any connection is tried.
    const kubeconfig = path.join(t.root, 'kubeconfig');
    await writeFile(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n',
    );
    const r = await run(t, ['apply', '--manifests=', `--kubeconfig=${kubeconfig}`, '--dry-run']);
    for (const bad of [
      'metadata.name "../../../api/v1/namespaces/kube-system" cannot be used in a URL path',
      'apiVersion "../../api/v1" is not of the form',
      'namespace "kube-system/.." is not a valid namespace name',
      'metadata.name "x?dryRun=All" cannot be used in a URL path',
    ]) {
      assert.ok(r.stderr.includes(bad), `${bad}\n${show(r)}`);
    }
    assert.match(
      r.stderr,
      new RegExp(`cni-node's record ${path.join(t.netd, RECORD).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: manifest m\\.yaml: object reference`),
      show(r),
    );
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, show(r));
  });
});

describe('files that are not regular files are never read: one clear line, no hang', { skip }, () => {
  test("a FIFO, a directory, a link to /dev/zero as a template, a pointer target or the check command's config: refused at once", async () => {
    const t = await tree();
    mkfifo(path.join(t.templates, '05-fifo.conf'));
    refused(await run(t, ['install', '--configs=05-fifo.conf']), /config template 05-fifo\.conf: .* is a FIFO \(named pipe\), not a regular file/);
    await mkdir(path.join(t.templates, '06-dir.conf'));
    refused(await run(t, ['install', '--configs=06-dir.conf']), /config template 06-dir\.conf: .* is a directory, not a regular file/);
    await symlink('/dev/zero', path.join(t.templates, '07-zero.conf'));
    refused(await run(t, ['install', '--configs=07-zero.conf']), /config template 07-zero\.conf: .* is a character device, not a regular file/);
    mkfifo(path.join(t.netd, '10-calico.conflist'));
    await writeFile(path.join(t.templates, '05-multus.conf'), '{"cniVersion":"0.4.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}\n');
    refused(await run(t, ['install', '--configs=05-multus.conf']), /pointer target .*10-calico\.conflist is a FIFO \(named pipe\), not a regular file/);
    assert.deepEqual((await readdir(t.netd)).sort(), ['10-calico.conflist'], 'nothing written, no lock left');
    // `check` reads every config in the node configs dir as a runtime would.
    const c = await run(t, ['check'], { env: env(t), timeoutMs: 15_000 });
    assert.equal(c.signal, null, `check did not hang on the FIFO\n${show(c)}`);
    assert.match(c.stdout + c.stderr, /10-calico\.conflist.*FIFO/, show(c));
  });

  test('a FIFO or a link to /dev/zero as a manifest: refused while holding the configs dir lock, which is released', async () => {
    const t = await tree();
    mkfifo(path.join(t.manifests, 'm.yaml'));
    await symlink('/dev/zero', path.join(t.manifests, 'z.yaml'));
    const kubeconfig = path.join(t.root, 'kubeconfig');
    await writeFile(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n',
    );
    refused(await run(t, ['install', '--manifests=m.yaml', `--kubeconfig=${kubeconfig}`]), /manifest m\.yaml .* is a FIFO \(named pipe\), not a regular file/);
    assert.ok(!existsSync(path.join(t.netd, LOCK)), 'the lock is released');
    refused(await run(t, ['install', '--manifests=z.yaml', `--kubeconfig=${kubeconfig}`]), /manifest z\.yaml .* is a character device, not a regular file/);
  });

  test('a FIFO as the kubeconfig, the service account token or its namespace file: refused, no hang', async () => {
    const t = await tree();
    await writeFile(path.join(t.manifests, 'm.yaml'), 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n');
    const fifo = path.join(t.root, 'kubeconfig.fifo');
    mkfifo(fifo);
    refused(
      await run(t, ['install', '--manifests=m.yaml', `--kubeconfig=${fifo}`]),
      /kubeconfig .*kubeconfig\.fifo.* is a FIFO \(named pipe\), not a regular file/,
    );
    const sa = path.join(t.root, 'sa');
    await mkdir(sa);
    await writeFile(path.join(sa, 'ca.crt'), 'not used');
    mkfifo(path.join(sa, 'token'));
    const inCluster = env(t, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '1', CNI_NODE_SERVICE_ACCOUNT_DIR: sa, HOME: t.root });
    refused(await run(t, ['install', '--manifests=m.yaml'], { env: inCluster }), /token.* is a FIFO \(named pipe\), not a regular file/);
  });

  test('the daemon: a FIFO template and a FIFO pointer target are reported, never read; SIGTERM is honoured at once', async () => {
    const t = await tree();
    mkfifo(path.join(t.templates, '05-fifo.conf'));
    mkfifo(path.join(t.netd, '10-calico.conflist'));
    await writeFile(path.join(t.templates, '06-ptr.conf'), '{"cniVersion":"0.4.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}\n');
    await writeFile(path.join(t.templates, '10-good.conf'), CONF);
    let stoppedAt = 0;
    const started = performance.now();
    const r = await runCli(['run', '--configs=05-fifo.conf,06-ptr.conf,10-good.conf'], {
      env: env(t),
      timeoutMs: 30_000,
      onSpawn: (child) => {
        let seen = '';
        const look = (d: string) => {
          seen += d;
          // Done (the other items converged) or failed: either way the first reconcile is over.
          if (/reconcile #1 (done|failed)/.test(seen) && stoppedAt === 0) {
            stoppedAt = performance.now();
            child.kill('SIGTERM');
          }
        };
        child.stdout?.on('data', look);
        child.stderr?.on('data', look);
      },
    });
    assert.ok(stoppedAt > 0, `the first reconcile finished\n${show(r)}`);
    assert.equal(r.signal, null, show(r));
    const stopMs = started + r.ms - stoppedAt;
    assert.ok(stopMs < 3_000, `exited ${Math.round(stopMs)} ms after SIGTERM`);
    assert.match(r.stdout + r.stderr, /05-fifo\.conf: .* is a FIFO \(named pipe\), not a regular file/, show(r));
    assert.doesNotMatch(r.stdout + r.stderr, /internal error|\n\s+at /, show(r));
    assert.match(r.stdout, /stopped after/, `stopped on SIGTERM\n${show(r)}`);
  });

  test("a directory or FIFO under a temporary file's name (.cni-node-tmp.*) is left alone, no crash", async () => {
    const t = await tree();
    await mkdir(path.join(t.bin, '.cni-node-tmp.evil', 'sub'), { recursive: true });
    mkfifo(path.join(t.bin, '.cni-node-tmp.fifo.000000000000'));
    await writeFile(path.join(t.bin, '.cni-node-tmp.bridge.0123456789ab'), 'left by a killed run');
    const r = succeeded(await run(t, ['install', '--plugins=bridge']));
    assert.match(r.stdout, /removed 2 temporary file\(s\)/, show(r));
    assert.ok(existsSync(path.join(t.bin, '.cni-node-tmp.evil', 'sub')), "a directory is not cni-node's to remove");
    assert.ok(!existsSync(path.join(t.bin, '.cni-node-tmp.bridge.0123456789ab')));
  });

  test('a FIFO or a directory as the record: moved aside with a warning, never read', async () => {
    const t = await tree();
    mkfifo(path.join(t.bin, RECORD));
    const r = succeeded(await run(t, ['install', '--plugins=bridge']));
    assert.match(
      r.stderr,
      /warning: cannot read cni-node's record: .* is a FIFO \(named pipe\), not a regular file; .*moved to .*\.cni-node-state\.unreadable-/,
      show(r),
    );
    assert.ok((await readdir(t.bin)).some((n) => n.startsWith(`${RECORD}.unreadable-`)));
    assert.deepEqual(
      (await recordOf(t.bin)).kinds['plugin']?.map((e) => e.name),
      ['bridge'],
    );
  });
});

describe('the lock file: read without following links, capped, odd kinds reported in one line', { skip }, () => {
  test('a directory, a FIFO, a link to /dev/zero or to /etc/passwd, a huge file as the lock: one clear line, exit 1, nothing of its content printed', async () => {
    const cases: Array<[string, (lock: string) => Promise<void>, RegExp]> = [
      [
        'directory',
        (l) => mkdir(l),
        /the lock .*\.cni-node\.lock is a directory, not a lock file cni-node made; if no other cni-node runs on this node, remove it by hand/,
      ],
      ['FIFO', async (l) => mkfifo(l), /the lock .* is a FIFO \(named pipe\), not a lock file cni-node made/],
      ['link to /dev/zero', (l) => symlink('/dev/zero', l), /the lock .* is a symbolic link, not a lock file cni-node made/],
      ['link to /etc/passwd', (l) => symlink('/etc/passwd', l), /the lock .* is a symbolic link, not a lock file cni-node made/],
      [
        '2 GiB sparse file',
        async (l) => {
          await writeFile(l, '');
          await truncate(l, 2 ** 31);
        },
        /the lock .* is 2147483648 bytes, not a lock file cni-node made/,
      ],
    ];
    for (const [what, make, re] of cases) {
      const t = await tree();
      await make(path.join(t.bin, LOCK));
      const r = refused(await run(t, ['install', '--plugins=bridge'], { timeoutMs: 20_000 }), re);
      assert.ok(r.ms < 10_000, `${what}: refused at once (${Math.round(r.ms)} ms)`);
      assert.doesNotMatch(r.stdout + r.stderr, /root:x:0/, `${what}: a foreign file's content is never printed as the holder`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line\n${show(r)}`);
    }
  });

  test('a regular lock file with foreign content: its text is never printed as the holder', async () => {
    const t = await tree();
    const lock = path.join(t.bin, LOCK);
    await writeFile(lock, 'root:x:0:0:root:/root:/bin/bash\nsecret-token-1234\n');
    const r = await run(t, ['install', '--plugins=bridge'], { timeoutMs: 30_000 });
    succeeded(r);
    assert.match(r.stdout, /waiting for another cni-node \(unrecognised lock content, \d+ bytes\)/, show(r));
    assert.doesNotMatch(r.stdout + r.stderr, /root:x:0|secret-token/, show(r));
  });

  test('a lock whose mtime is in the future (the clock was stepped back) is stale: taken over at once', async () => {
    const t = await tree();
    const lock = path.join(t.bin, LOCK);
    await writeFile(lock, 'deadhost pid 1 0123456789abcdef\n');
    const future = new Date(Date.now() + 3_600_000);
    await utimes(lock, future, future);
    const r = succeeded(await run(t, ['install', '--plugins=bridge'], { timeoutMs: 30_000 }));
    assert.ok(r.ms < 10_000, `took over without waiting (${Math.round(r.ms)} ms)`);
    assert.match(r.stdout, /^plugin bridge: installed$/m);
    assert.ok(!existsSync(lock));
  });

  test(
    'disk full while writing the lock: no empty lock left behind, the next run does not wait for a holder that does not exist',
    { skip: isRoot ? undefined : 'not root: mounts a tmpfs' },
    async () => {
      const t = await tree();
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'tmpfs', t.bin]);
      try {
        // Fill it to the last block: creating the (empty) lock file works, writing its line does not.
        spawnSync('dd', ['if=/dev/zero', `of=${path.join(t.bin, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
        const r = refused(await run(t, ['install', '--plugins=bridge']), /cannot create the lock .*\.cni-node\.lock: ENOSPC/);
        assert.ok(!existsSync(path.join(t.bin, LOCK)), `no lock left behind\n${show(r)}`);
        await rm(path.join(t.bin, 'filler'));
        const r2 = succeeded(await run(t, ['install', '--plugins=loopback']));
        assert.doesNotMatch(r2.stdout, /waiting for another cni-node/, show(r2));
      } finally {
        if (spawnSync('umount', [t.bin]).status !== 0) spawnSync('umount', ['-l', t.bin]);
      }
    },
  );
});

describe('names are limited in UTF-8 bytes, with room for the temporary file name', { skip }, () => {
  test('229 ASCII bytes, and 128 two-byte characters (256 bytes): refused as names (exit 2); 228 bytes work end to end', async () => {
    const t = await tree();
    for (const name of ['x'.repeat(229), 'é'.repeat(128), `${'é'.repeat(112)}.conf`]) {
      const r = refused(await run(t, ['install', `--configs=${name}`]), /is \d+ bytes long in UTF-8; names are limited to 228 bytes/, 2);
      assert.doesNotMatch(r.stderr, /ENAMETOOLONG/);
    }
    const ok = `${'é'.repeat(111)}.conf`; // 222 + 5 = 227 bytes
    await writeFile(path.join(t.templates, ok), CONF);
    succeeded(await run(t, ['install', `--configs=${ok}`]));
    const longest = 'x'.repeat(228);
    await writeFile(path.join(t.templates, longest), 'not a network config name, written as it is\n');
    succeeded(await run(t, ['install', `--configs=${longest}`]));
    assert.ok(existsSync(path.join(t.netd, longest)));
  });
});

describe('source and node dirs must not overlap', { skip }, () => {
  test('--configs-dir equal to, inside, or containing --host-configs-dir (also through a link), and the plugins dirs likewise: a usage error, nothing written', async () => {
    const t = await tree();
    await writeFile(path.join(t.netd, '05-multus.conf'), '{"cniVersion":"0.4.0","name":"m","type":"multus","delegates":[__10-calico.conflist__]}\n');
    await writeFile(path.join(t.netd, '10-calico.conflist'), '{"cniVersion":"0.4.0","name":"c","plugins":[{"type":"bridge"}]}\n');
    await mkdir(path.join(t.netd, 'sub'));
    await symlink(t.netd, path.join(t.root, 'netd-link'));
    const before = await readFile(path.join(t.netd, '05-multus.conf'), 'utf8');
    for (const [configsDir, how] of [
      [t.netd, 'is the same dir as'],
      [path.join(t.root, 'netd-link'), 'is the same dir as'],
      [path.join(t.netd, 'sub'), 'is inside'],
      [path.dirname(t.netd), 'contains'],
    ] as const) {
      const r = refused(
        await run(t, ['install', '--configs=05-multus.conf', `--configs-dir=${configsDir}`]),
        new RegExp(`--configs-dir .* ${how} --host-configs-dir`),
        2,
      );
      assert.doesNotMatch(r.stdout, /installed|updated/);
    }
    assert.equal(await readFile(path.join(t.netd, '05-multus.conf'), 'utf8'), before, 'the template (with its pointer) is intact');
    refused(await run(t, ['install', '--plugins=bridge', `--plugins-dir=${t.bin}`]), /--plugins-dir .* is the same dir as --host-plugins-dir/, 2);
    refused(
      await run(t, ['run', '--configs=05-multus.conf', `--configs-dir=${t.netd}`], { timeoutMs: 15_000 }),
      /--configs-dir .* is the same dir as --host-configs-dir/,
      2,
    );
  });
});

describe('a record that cannot be read is moved aside (or the run stops), never overwritten', { skip }, () => {
  test('too big: moved aside to .cni-node-state.unreadable-… with a warning; what it held is not forgotten silently', async () => {
    const t = await tree();
    succeeded(await run(t, ['install', '--plugins=bridge']));
    const rec = path.join(t.bin, RECORD);
    // Still valid JSON (white space after it), but over the 16 MiB cap: never read whole.
    await writeFile(rec, Buffer.concat([await readFile(rec), Buffer.alloc(20 * 1024 * 1024 - (await readFile(rec)).length, ' ')]));
    const r = succeeded(await run(t, ['install', '--plugins=loopback']));
    assert.match(r.stderr, /warning: cannot read cni-node's record: .* is 20\.0 MiB; the limit is 16\.0 MiB; it is unreadable and was moved to /, show(r));
    const aside = (await readdir(t.bin)).find((n) => n.startsWith(`${RECORD}.unreadable-`));
    assert.ok(aside, 'kept for the operator');
    assert.equal((await readFile(path.join(t.bin, aside))).length, 20 * 1024 * 1024);
  });

  test(
    'permission denied (EACCES): moved aside with a warning; if it cannot be moved aside, the run stops and the record is left as it was',
    { skip: isRoot && hasSetpriv ? undefined : 'needs root and setpriv (util-linux) to run cni-node as another user' },
    async () => {
      const t = await tree();
      succeeded(await run(t, ['install', '--plugins=bridge']));
      const rec = path.join(t.bin, RECORD);
      const original = await readFile(rec);
      await chmod(rec, 0o600); // root's, unreadable for uid 65534
      const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
      for (const d of [t.root, path.join(t.root, 'node'), path.join(t.root, 'node/host'), t.templates, t.netd]) await chmod(d, 0o755);
      // A sticky dir of root's: nobody may create files there (the lock), but neither
      // read root's record nor move it aside.
      await chmod(t.bin, 0o1777);
      const stop = refused(
        await run(t, ['install', '--plugins=loopback'], { prefix: asNobody }),
        /cannot read cni-node's record .*EACCES.* and cannot move it aside to .*; stopping rather than overwrite it/,
      );
      assert.doesNotMatch(stop.stdout, /installed/);
      assert.deepEqual(await readFile(rec), original, 'the record is untouched');
      assert.ok(!existsSync(path.join(t.bin, LOCK)), 'the lock is released');
      // nobody's dir: the record is moved aside, with a warning, and a fresh one written.
      await chmod(t.bin, 0o755);
      await chown(t.bin, 65534, 65534);
      const r = succeeded(await run(t, ['install', '--plugins=loopback'], { prefix: asNobody }));
      assert.match(r.stderr, /warning: cannot read cni-node's record: .*EACCES.*moved to .*\.cni-node-state\.unreadable-/, show(r));
      const aside = (await readdir(t.bin)).find((n) => n.startsWith(`${RECORD}.unreadable-`));
      assert.ok(aside);
      assert.deepEqual(await readFile(path.join(t.bin, aside)), original, 'what cni-node owned is kept for the operator');
    },
  );
});
