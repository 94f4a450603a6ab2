import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { jwtSubject, TokenFileAuth } from '../../src/kube/auth.js';
import { resolveKubeConfig } from '../../src/kube/config.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'cni-node-kubeconfig-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

function dir(): string {
  const d = path.join(root, String(++n));
  mkdirSync(d);
  return d;
}

function kubeconfig(
  file: string,
  opts: { server?: string; token?: string; tokenFile?: string; namespace?: string; context?: string; withContext?: boolean } = {},
): string {
  const user = opts.tokenFile ? `    token-file: ${opts.tokenFile}` : `    token: ${opts.token ?? 'static-token'}`;
  const lines = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: c',
    '  cluster:',
    `    server: ${opts.server ?? 'https://example.invalid:6443/'}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: u',
    '  user:',
    user,
  ];
  if (opts.withContext !== false) {
    lines.push('contexts:', '- name: ctx', '  context:', '    cluster: c', '    user: u', ...(opts.namespace ? [`    namespace: ${opts.namespace}`] : []));
  }
  lines.push(`current-context: ${opts.context ?? 'ctx'}`, '');
  writeFileSync(file, lines.join('\n'));
  return file;
}

/** A service account mount as the kubelet lays it out: files behind a ..data symlink. */
function serviceAccount(d: string, token: string, namespace = 'kube-system'): string {
  const sa = path.join(d, 'sa');
  mkdirSync(path.join(sa, '..v1'), { recursive: true });
  writeFileSync(path.join(sa, '..v1/token'), token);
  writeFileSync(path.join(sa, '..v1/ca.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  writeFileSync(path.join(sa, '..v1/namespace'), namespace);
  symlinkSync('..v1', path.join(sa, '..data'));
  for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(`..data/${f}`, path.join(sa, f));
  return sa;
}

function jwt(sub: string): string {
  const b = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'RS256' })}.${b({ sub, iss: 'kubernetes/serviceaccount' })}.sig`;
}

test('order: --kubeconfig, then KUBECONFIG, then the service account, then ~/.kube/config', async () => {
  const d = dir();
  const flag = kubeconfig(path.join(d, 'flag'), { server: 'https://flag:1' });
  const env = kubeconfig(path.join(d, 'env'), { server: 'https://env:2' });
  mkdirSync(path.join(d, 'home/.kube'), { recursive: true });
  kubeconfig(path.join(d, 'home/.kube/config'), { server: 'https://home:3' });
  const sa = serviceAccount(d, jwt('system:serviceaccount:kube-system:cni-node'));
  const base = { HOME: path.join(d, 'home'), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', CNI_NODE_SERVICE_ACCOUNT_DIR: sa };

  const a = await resolveKubeConfig({ kubeconfig: flag, env: { ...base, KUBECONFIG: env } });
  assert.equal(a.server, 'https://flag:1');
  assert.equal(a.source, `--kubeconfig ${flag}`);
  const b = await resolveKubeConfig({ env: { ...base, KUBECONFIG: env } });
  assert.equal(b.server, 'https://env:2');
  assert.equal(b.source, `KUBECONFIG=${env}`);
  const c = await resolveKubeConfig({ env: base });
  assert.equal(c.server, 'https://10.96.0.1:443');
  assert.equal(c.source, `in-cluster service account (${sa})`);
  assert.equal(c.identity, 'system:serviceaccount:kube-system:cni-node');
  assert.equal(c.namespace, 'kube-system');
  const h = await resolveKubeConfig({ env: { HOME: base.HOME, CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(d, 'none') } });
  assert.equal(h.server, 'https://home:3', 'trailing slash removed');
  assert.match(h.source, /^~\/\.kube\/config \(/);
  assert.equal(h.namespace, 'default');
  assert.equal(h.tls.rejectUnauthorized, false);
  assert.equal(await h.auth.header(), 'Bearer static-token');
});

test('in-cluster: IPv6 service host, and the projected token is re-read when the kubelet rotates it', async () => {
  const d = dir();
  const sa = serviceAccount(d, 'first-token');
  const c = await resolveKubeConfig({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443', CNI_NODE_SERVICE_ACCOUNT_DIR: sa, HOME: d } });
  assert.equal(c.server, 'https://[fd00::1]:443');
  assert.ok(c.tls.ca);
  assert.equal(await c.auth.header(), 'Bearer first-token');
  // The kubelet's atomic writer: a new ..data directory, then a symlink swap.
  mkdirSync(path.join(sa, '..v2'));
  writeFileSync(path.join(sa, '..v2/token'), 'second-token\n');
  symlinkSync('..v2', path.join(sa, '..data_tmp'));
  renameSync(path.join(sa, '..data_tmp'), path.join(sa, '..data'));
  assert.equal(await c.auth.header(), 'Bearer second-token', 'no 60 s cache: the next request has the new token');
});

test('TokenFileAuth: re-read on change and after invalidate(); a missing or empty file is a clear error', async () => {
  const d = dir();
  const f = path.join(d, 'token');
  writeFileSync(f, 'aaa');
  const auth = new TokenFileAuth(f);
  assert.equal(auth.current(), 'aaa');
  writeFileSync(path.join(d, 'token.new'), 'bbbb');
  renameSync(path.join(d, 'token.new'), f);
  assert.equal(auth.current(), 'bbbb');
  assert.equal(auth.invalidate(), true);
  assert.equal(auth.current(), 'bbbb');
  writeFileSync(f, '  \n');
  assert.throws(() => auth.current(), /API token file .* is empty/);
  rmSync(f);
  assert.throws(
    () => auth.current(),
    (e: unknown) => e instanceof CniNodeError && e.kind === 'missing' && e.message.includes(f),
  );
});

test('kubeconfig token-file is followed too (re-read when it changes)', async () => {
  const d = dir();
  writeFileSync(path.join(d, 'tok'), 'one');
  const kc = kubeconfig(path.join(d, 'kc'), { tokenFile: 'tok' });
  const c = await resolveKubeConfig({ kubeconfig: kc, env: {} });
  assert.equal(await c.auth.header(), 'Bearer one');
  writeFileSync(path.join(d, 'tok.new'), 'two');
  renameSync(path.join(d, 'tok.new'), path.join(d, 'tok'));
  assert.equal(await c.auth.header(), 'Bearer two');
});

test('KUBECONFIG lists are merged, the first definition winning', async () => {
  const d = dir();
  const a = path.join(d, 'a');
  writeFileSync(a, 'apiVersion: v1\nkind: Config\ncurrent-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u, namespace: from-a}\n');
  const b = kubeconfig(path.join(d, 'b'), { server: 'https://b:1', context: 'other' });
  const c = await resolveKubeConfig({ env: { KUBECONFIG: `${a}:${b}`, CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(d, 'none') } });
  assert.equal(c.server, 'https://b:1');
  assert.equal(c.namespace, 'from-a', "the context's namespace when not in a pod");
});

test("the pod's namespace wins over the context's", async () => {
  const d = dir();
  const sa = serviceAccount(d, 'x', 'pod-ns');
  const kc = kubeconfig(path.join(d, 'kc'), { namespace: 'ctx-ns' });
  const c = await resolveKubeConfig({ kubeconfig: kc, env: { CNI_NODE_SERVICE_ACCOUNT_DIR: sa } });
  assert.equal(c.namespace, 'pod-ns');
});

test('errors: no credentials at all, a missing file, no current context', async () => {
  const d = dir();
  await assert.rejects(
    resolveKubeConfig({ env: { HOME: d, CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(d, 'none') } }),
    (e: unknown) => e instanceof CniNodeError && e.kind === 'missing' && /^no Kubernetes credentials: not running in a pod .*--kubeconfig=FILE/.test(e.message),
  );
  await assert.rejects(
    resolveKubeConfig({
      env: { HOME: d, KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(d, 'none') },
    }),
    /KUBERNETES_SERVICE_HOST is set but .*none\/token does not exist/,
  );
  await assert.rejects(
    resolveKubeConfig({ kubeconfig: path.join(d, 'nope'), env: {} }),
    (e: unknown) => e instanceof CniNodeError && e.kind === 'missing' && /nope \(from --kubeconfig .*\): no such file/.test(e.message),
  );
  const noCtx = kubeconfig(path.join(d, 'noctx'), { withContext: false });
  await assert.rejects(resolveKubeConfig({ kubeconfig: noCtx, env: {} }), /has no current context \("ctx" is not defined\)/);
  writeFileSync(path.join(d, 'garbage'), '{{{');
  await assert.rejects(resolveKubeConfig({ kubeconfig: path.join(d, 'garbage'), env: {} }), (e: unknown) => e instanceof CniNodeError && e.kind === 'invalid');
});

test('jwtSubject', () => {
  assert.equal(jwtSubject(jwt('system:serviceaccount:a:b')), 'system:serviceaccount:a:b');
  assert.equal(jwtSubject('not-a-jwt'), undefined);
  assert.equal(jwtSubject('a.!!!.c'), undefined);
});
