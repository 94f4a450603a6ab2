import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { KubeconfigOut } from '../../src/daemon/kubeconfig-out.js';
import { parsePathMap, renderKubeconfig, serverFromEnv, serviceAccountOfToken, toNodePath, type TokenRequester } from '../../src/daemon/kubeconfig-render.js';
import type { Reporter } from '../../src/core/contracts.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

function quietReporter(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return { lines, item: () => undefined, info: (m) => void lines.push(m), warn: (m) => void lines.push(`warn: ${m}`) };
}

/** A service account volume laid out as kubelet does: files are links into `..data`, a link to a timestamped dir. */
async function projectedVolume(dir: string, token: string, generation: number): Promise<void> {
  const data = path.join(dir, `..2024_01_01_00_00_0${generation}.000000000`);
  await mkdir(data, { recursive: true });
  await writeFile(path.join(data, 'token'), token);
  await writeFile(path.join(data, 'ca.crt'), CA);
  await writeFile(path.join(data, 'namespace'), 'kube-system');
  const tmp = path.join(dir, '..data_tmp');
  await symlink(path.basename(data), tmp);
  const old = await import('node:fs/promises').then((fs) => fs.readlink(path.join(dir, '..data')).catch(() => undefined));
  await rename(tmp, path.join(dir, '..data'));
  for (const f of ['token', 'ca.crt', 'namespace']) {
    await symlink(`..data/${f}`, path.join(dir, f)).catch(() => undefined);
  }
  if (old) await rm(path.join(dir, old), { recursive: true, force: true });
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('kubeconfig-out helpers', () => {
  test('server from KUBERNETES_SERVICE_HOST/PORT, IPv6 in brackets', () => {
    assert.equal(serverFromEnv({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }), 'https://10.96.0.1:443');
    assert.equal(serverFromEnv({ KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' }), 'https://[fd00:10:96::1]:443');
    assert.equal(serverFromEnv({ KUBERNETES_SERVICE_HOST: '[fd00::1]', KUBERNETES_SERVICE_PORT: '6443' }), 'https://[fd00::1]:6443');
    assert.equal(serverFromEnv({ KUBERNETES_SERVICE_HOST: '10.0.0.1', CNI_NODE_KUBECONFIG_SERVER: 'https://api.example:6443/' }), 'https://api.example:6443');
    assert.throws(() => serverFromEnv({}), /KUBERNETES_SERVICE_HOST/);
    assert.throws(() => serverFromEnv({ KUBERNETES_SERVICE_HOST: 'x', KUBERNETES_SERVICE_PORT: 'https' }), /not a port/);
  });

  test('container paths map to node paths by the longest prefix', () => {
    const map = parsePathMap('/host=/, /host/etc/cni/net.d=/etc/cni/net.d, /data=/var/lib/cni-node');
    assert.equal(toNodePath('/host/etc/cni/net.d/multus.d/multus.kubeconfig', map), '/etc/cni/net.d/multus.d/multus.kubeconfig');
    assert.equal(toNodePath('/host/opt/cni/bin', map), '/opt/cni/bin');
    assert.equal(toNodePath('/data/x', map), '/var/lib/cni-node/x');
    assert.equal(toNodePath('/hostile/x', map), undefined, 'a prefix matches whole path components only');
    assert.equal(toNodePath('/etc/x', map), undefined);
    assert.throws(() => parsePathMap('host=/'), /CNI_NODE_HOST_PATH_MAP/);
  });

  test('the rendered kubeconfig is read by @kubernetes/client-node as written', () => {
    const text = renderKubeconfig({ server: 'https://[fd00::1]:443', caData: CA, token: 'tok"en\n:x' });
    const kc = new KubeConfig();
    kc.loadFromString(text);
    assert.equal(kc.getCurrentCluster()?.server, 'https://[fd00::1]:443');
    assert.equal(Buffer.from(kc.getCurrentCluster()?.caData ?? '', 'base64').toString(), CA);
    assert.equal(kc.getCurrentUser()?.token, 'tok"en\n:x');
    const files = parse(renderKubeconfig({ server: 'https://a:1', caFile: '/etc/x/ca.crt', tokenFile: '/etc/x/token' })) as {
      clusters: { cluster: Record<string, string> }[];
      users: { user: Record<string, string> }[];
    };
    assert.equal(files.clusters[0]?.cluster['certificate-authority'], '/etc/x/ca.crt');
    assert.equal(files.users[0]?.user['tokenFile'], '/etc/x/token');
  });
});

describe('KubeconfigOut', () => {
  test('embed: written 0600 at start, rewritten when the projected token rotates (..data swap), restored when removed', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cni-node-kco-'));
    roots.push(root);
    const sa = path.join(root, 'sa');
    await mkdir(sa);
    await projectedVolume(sa, 'token-one', 1);
    const out = path.join(root, 'host', 'etc', 'cni', 'net.d', 'multus.d', 'multus.kubeconfig');
    const reporter = quietReporter();
    const writes: string[] = [];
    const k = await KubeconfigOut.start({
      out,
      env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443', CNI_NODE_SERVICE_ACCOUNT_DIR: sa },
      reporter,
      debounceMs: 10,
      onWrite: (why) => void writes.push(why),
    });
    try {
      assert.equal(k.mode, 'embed');
      const st = await stat(out);
      assert.equal(st.mode & 0o777, 0o600);
      const kc = new KubeConfig();
      kc.loadFromString(await readFile(out, 'utf8'));
      assert.equal(kc.getCurrentUser()?.token, 'token-one');
      assert.equal(kc.getCurrentCluster()?.server, 'https://[fd00::1]:443');
      assert.deepEqual(writes, ['start']);

      // Nothing changed: nothing is written.
      assert.equal(await k.sync('check'), false);
      const inode = (await stat(out)).ino;

      await projectedVolume(sa, 'token-two', 2);
      // A write is done (renamed, the directory synced, reported) when onWrite is called;
      // the file is visible a moment before that.
      await waitFor('the rotated token written', async () => writes.length >= 2);
      assert.ok((await readFile(out, 'utf8')).includes('token-two'));
      assert.notEqual((await stat(out)).ino, inode, 'replaced by rename, not edited in place');
      assert.equal((await stat(out)).mode & 0o777, 0o600);
      assert.match(writes[1] ?? '', /rotated/);
      assert.match(reporter.lines.join('\n'), /kubeconfig-out: wrote .*multus.kubeconfig \(the service account token changed \(rotated\)\)/);

      await unlink(out);
      await waitFor('the kubeconfig restored', async () => writes.length >= 3);
      assert.ok((await readFile(out, 'utf8')).includes('token-two'));

      const removed = await k.remove();
      assert.deepEqual(removed, [out]);
      await assert.rejects(stat(out), { code: 'ENOENT' });
    } finally {
      await k.close();
    }
  });

  test('files: token and CA next to the kubeconfig, referenced by their node paths', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cni-node-kco-'));
    roots.push(root);
    const sa = path.join(root, 'sa');
    await mkdir(sa);
    await projectedVolume(sa, 'token-one', 1);
    const hostRoot = path.join(root, 'host');
    const out = path.join(hostRoot, 'etc', 'cni', 'net.d', 'multus.d', 'multus.kubeconfig');
    const k = await KubeconfigOut.start({
      out,
      env: {
        KUBERNETES_SERVICE_HOST: '10.96.0.1',
        KUBERNETES_SERVICE_PORT: '443',
        CNI_NODE_SERVICE_ACCOUNT_DIR: sa,
        CNI_NODE_KUBECONFIG_CREDENTIALS: 'files',
        CNI_NODE_HOST_PATH_MAP: `${hostRoot}=/`,
      },
      reporter: quietReporter(),
      debounceMs: 10,
    });
    try {
      const doc = parse(await readFile(out, 'utf8')) as { clusters: { cluster: Record<string, string> }[]; users: { user: Record<string, string> }[] };
      assert.equal(doc.clusters[0]?.cluster['certificate-authority'], '/etc/cni/net.d/multus.d/multus.kubeconfig.ca.crt');
      assert.equal(doc.users[0]?.user['tokenFile'], '/etc/cni/net.d/multus.d/multus.kubeconfig.token');
      assert.equal(await readFile(`${out}.token`, 'utf8'), 'token-one\n');
      assert.equal(await readFile(`${out}.ca.crt`, 'utf8'), CA);
      for (const f of [out, `${out}.token`, `${out}.ca.crt`]) assert.equal((await stat(f)).mode & 0o777, 0o600, f);
      const kubeconfigInode = (await stat(out)).ino;
      await projectedVolume(sa, 'token-two', 2);
      await waitFor('the rotated token file', async () => (await readFile(`${out}.token`, 'utf8')) === 'token-two\n');
      assert.equal((await stat(out)).ino, kubeconfigInode, 'the kubeconfig itself did not change');
    } finally {
      await k.close();
    }
  });

  test('files: a path outside the map is refused with the fix', async () => {
    await assert.rejects(
      KubeconfigOut.start({
        out: '/somewhere/else/kubeconfig',
        env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', CNI_NODE_KUBECONFIG_CREDENTIALS: 'files' },
        reporter: quietReporter(),
      }),
      /CNI_NODE_HOST_PATH_MAP/,
    );
  });

  test('a missing token is reported as a problem, and written once it appears', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cni-node-kco-'));
    roots.push(root);
    const sa = path.join(root, 'sa');
    await mkdir(sa);
    const out = path.join(root, 'out', 'kubeconfig');
    const problems: Array<string | undefined> = [];
    let writes = 0;
    const k = await KubeconfigOut.start({
      out,
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', CNI_NODE_SERVICE_ACCOUNT_DIR: sa },
      reporter: quietReporter(),
      debounceMs: 10,
      onProblem: (p) => void problems.push(p),
      onWrite: () => void writes++,
    });
    try {
      assert.match(problems[0] ?? '', /token .* does not exist/);
      await projectedVolume(sa, 'late-token', 1);
      // Waiting for the file to show the token is not enough: it is visible (renamed)
      // before the write is done (the directory synced, the problem cleared, onWrite).
      await waitFor('the kubeconfig written', async () => writes >= 1);
      assert.ok((await readFile(out, 'utf8')).includes('late-token'));
      assert.equal(problems.at(-1), undefined, 'the problem is cleared');
    } finally {
      await k.close();
    }
  });
});

/** A projected service account token as the kubelet writes one: a JWT whose sub names the account (unsigned here: cni-node does not verify its own token). */
function saJwt(sub: string, extra = ''): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'RS256' })}.${enc({ sub, extra })}.sig`;
}

describe('kubeconfig-out: a requested token, which outlives the pod', () => {
  const env = (sa: string) => ({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', CNI_NODE_SERVICE_ACCOUNT_DIR: sa });
  const setup = async (token: string) => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cni-node-kco-'));
    roots.push(root);
    const sa = path.join(root, 'sa');
    await mkdir(sa);
    await projectedVolume(sa, token, 1);
    return { sa, out: path.join(root, 'net.d', 'multus.d', 'multus.kubeconfig') };
  };
  const tokenIn = async (out: string) => {
    const kc = new KubeConfig();
    kc.loadFromString(await readFile(out, 'utf8'));
    return kc.getCurrentUser()?.token;
  };

  test('the service account of a projected token, names validated', () => {
    assert.deepEqual(serviceAccountOfToken(saJwt('system:serviceaccount:kube-system:cni-node')), { namespace: 'kube-system', name: 'cni-node' });
    assert.equal(serviceAccountOfToken('static-token'), undefined);
    assert.equal(serviceAccountOfToken(saJwt('system:node:n1')), undefined);
    assert.equal(
      serviceAccountOfToken(saJwt('system:serviceaccount:kube-system:../../secrets')),
      undefined,
      'a name that is no name is not put into an API path',
    );
    assert.equal(serviceAccountOfToken(saJwt('system:serviceaccount:Kube_System:x')), undefined);
    assert.equal(serviceAccountOfToken('a.%%%.c'), undefined);
  });

  test('the kubeconfig carries the requested token, renewed before it expires', async () => {
    const { sa, out } = await setup(saJwt('system:serviceaccount:kube-system:cni-node'));
    const asked: Array<{ ns: string; name: string; seconds: number }> = [];
    let n = 0;
    const requestToken: TokenRequester = async (acct, seconds) => {
      asked.push({ ns: acct.namespace, name: acct.name, seconds });
      n++;
      return { token: `requested-${n}`, expiresAt: Date.now() + 50 };
    };
    const reporter = quietReporter();
    const writes: string[] = [];
    const k = await KubeconfigOut.start({ out, env: env(sa), reporter, debounceMs: 10, requestToken, renewMinMs: 100, onWrite: (w) => void writes.push(w) });
    try {
      assert.equal(k.tokenMode, 'request');
      assert.equal(await tokenIn(out), 'requested-1');
      assert.deepEqual(asked[0], { ns: 'kube-system', name: 'cni-node', seconds: 24 * 3600 });
      assert.match(k.tokenSource, /requested/);
      await waitFor('the renewed token', async () => (await tokenIn(out)) === 'requested-2' && writes.length >= 2);
      assert.equal(writes[1], 'the requested token was renewed');
      // A rotation of the projected token does not replace the requested one.
      await projectedVolume(sa, saJwt('system:serviceaccount:kube-system:cni-node', 'rotated'), 2);
      await sleep(60);
      assert.match((await tokenIn(out)) ?? '', /^requested-/);
    } finally {
      await k.close();
    }
    const calls = n;
    await sleep(300);
    assert.equal(n, calls, 'no renewal after close');
  });

  test('a restart keeps the requested token already on the node while it is good; not one that is bound to a pod or nearly expired', async () => {
    const sub = 'system:serviceaccount:kube-system:cni-node';
    const now = Math.floor(Date.now() / 1000);
    const claims = (extra: object) => {
      const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${enc({ alg: 'RS256' })}.${enc({ sub, iss: 'https://kubernetes.default.svc', 'kubernetes.io': { serviceaccount: { uid: 'u1' } }, ...extra })}.sig`;
    };
    const projected = claims({ iat: now, exp: now + 3600, 'kubernetes.io': { pod: { name: 'p' }, serviceaccount: { uid: 'u1' } } });
    const { sa, out } = await setup(projected);
    let asked = 0;
    const requestToken: TokenRequester = async () => {
      asked++;
      return {
        token: claims({ iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 86400, n: asked }),
        expiresAt: Date.now() + 86_400_000,
      };
    };
    const start = () => KubeconfigOut.start({ out, env: env(sa), reporter: quietReporter(), debounceMs: 10, requestToken });
    await (await start()).close();
    assert.equal(asked, 1);
    const first = await tokenIn(out);
    const before = await stat(out);
    await (await start()).close();
    assert.equal(asked, 1, 'no new token requested');
    assert.equal(await tokenIn(out), first);
    const after = await stat(out);
    assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], 'the kubeconfig is not rewritten');

    for (const [what, token] of [
      ['bound to a pod', claims({ iat: now, exp: now + 86400, 'kubernetes.io': { pod: { name: 'old' }, serviceaccount: { uid: 'u1' } } })],
      ['nearly expired', claims({ iat: now - 86000, exp: now + 400 })],
      ['of a service account since re-created', claims({ iat: now, exp: now + 86400, 'kubernetes.io': { serviceaccount: { uid: 'u0' } } })],
    ] as const) {
      await writeFile(out, renderKubeconfig({ server: 'https://10.96.0.1:443', caData: CA, token }), { mode: 0o600 });
      const asks: number = asked;
      await (await start()).close();
      assert.equal(asked, asks + 1, `a token ${what} is replaced by a new one`);
      assert.notEqual(await tokenIn(out), token);
    }
  });

  test('refused by RBAC: the projected token, a warning that says what to allow, and a later retry', async () => {
    const projected = saJwt('system:serviceaccount:kube-system:cni-node');
    const { sa, out } = await setup(projected);
    const reporter = quietReporter();
    const k = await KubeconfigOut.start({
      out,
      env: env(sa),
      reporter,
      debounceMs: 10,
      requestToken: async () => {
        throw Object.assign(new Error('serviceaccounts "cni-node" is forbidden'), { status: 403 });
      },
    });
    try {
      assert.equal(await tokenIn(out), projected);
      const warning = reporter.lines.find((l) => l.startsWith('warn: '));
      assert.match(warning ?? '', /forbidden.*projected token.*rolling updates.*create serviceaccounts\/token/);
      assert.match(k.tokenSource, /projected/);
    } finally {
      await k.close();
    }
  });

  test('CNI_NODE_KUBECONFIG_TOKEN=projected: no request at all; a bad value is a usage error', async () => {
    const projected = saJwt('system:serviceaccount:kube-system:cni-node');
    const { sa, out } = await setup(projected);
    let asked = 0;
    const requestToken: TokenRequester = async () => {
      asked++;
      return { token: 'x', expiresAt: Date.now() + 3_600_000 };
    };
    const k = await KubeconfigOut.start({
      out,
      env: { ...env(sa), CNI_NODE_KUBECONFIG_TOKEN: 'projected' },
      reporter: quietReporter(),
      debounceMs: 10,
      requestToken,
    });
    await k.close();
    assert.equal(asked, 0);
    assert.equal(await tokenIn(out), projected);
    await assert.rejects(
      KubeconfigOut.start({ out, env: { ...env(sa), CNI_NODE_KUBECONFIG_TOKEN: 'bound' }, reporter: quietReporter(), requestToken }),
      /CNI_NODE_KUBECONFIG_TOKEN=bound/,
    );
  });
});
