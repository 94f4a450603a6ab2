// resolveKubeConfig reads kubeconfig files without @kubernetes/client-node (4 MB of
// code, ~40 MiB of RSS) and hands only exec plugins, auth providers and proxies to
// it. These tests hold the reading to what the library itself makes of the same
// files, and check that the library is loaded exactly when it is needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { CniNodeError } from '../../src/core/errors.js';
import { resolveKubeConfig } from '../../src/kube/config.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'cni-node-kubeconfig-lib-'));
after(() => rmSync(root, { recursive: true, force: true }));
const PEM = (tag: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(tag).toString('base64')}\n-----END CERTIFICATE-----\n`;

/** What @kubernetes/client-node makes of the file: server, TLS options, Authorization header, namespace. */
async function libraryView(file: string): Promise<{
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  servername?: string;
  authorization?: string;
  namespace: string;
}> {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no cluster');
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  (opts.agent as https.Agent | undefined)?.destroy();
  const h = (opts.headers ?? {}) as Record<string, string>;
  const text = (b: unknown) => (b === undefined ? undefined : Buffer.from(b as Buffer).toString('utf8'));
  const ctx = kc.getContextObject(kc.getCurrentContext());
  return {
    server: cluster.server,
    ...(opts.ca ? { ca: text(opts.ca) as string } : {}),
    ...(opts.cert ? { cert: text(opts.cert) as string } : {}),
    ...(opts.key ? { key: text(opts.key) as string } : {}),
    rejectUnauthorized: !cluster.skipTLSVerify,
    ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
    // Basic auth: the library sets https' `auth` option ("user:password"), which node sends as this header.
    ...(h['Authorization'] ? { authorization: h['Authorization'] } : opts.auth ? { authorization: `Basic ${Buffer.from(opts.auth).toString('base64')}` } : {}),
    namespace: ctx?.namespace || 'default',
  };
}

async function ourView(file: string): Promise<Awaited<ReturnType<typeof libraryView>>> {
  const c = await resolveKubeConfig({ kubeconfig: file, env: { CNI_NODE_SERVICE_ACCOUNT_DIR: path.join(root, 'no-sa') } });
  const text = (b: unknown) => (b === undefined ? undefined : Buffer.from(b as Buffer).toString('utf8'));
  const authorization = await c.auth.header();
  return {
    server: c.server,
    ...(c.tls.ca ? { ca: text(c.tls.ca) as string } : {}),
    ...(c.tls.cert ? { cert: text(c.tls.cert) as string } : {}),
    ...(c.tls.key ? { key: text(c.tls.key) as string } : {}),
    rejectUnauthorized: c.tls.rejectUnauthorized !== false,
    ...(c.tls.servername ? { servername: c.tls.servername } : {}),
    ...(authorization ? { authorization } : {}),
    namespace: c.namespace,
  };
}

test('kubeconfig files read the way @kubernetes/client-node reads them', async () => {
  const d = path.join(root, 'same');
  mkdirSync(path.join(d, 'pki'), { recursive: true });
  writeFileSync(path.join(d, 'pki/ca.crt'), PEM('ca-file'));
  writeFileSync(path.join(d, 'pki/client.crt'), PEM('cert-file'));
  writeFileSync(path.join(d, 'pki/client.key'), 'KEY FILE\n');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const cases: Record<string, string> = {
    'token, CA data, trailing slash': `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443/\n    certificate-authority-data: ${b64(PEM('ca-data'))}\nusers:\n- name: u\n  user:\n    token: tok-1\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: ns1}\ncurrent-context: x\n`,
    'client certificate files relative to the kubeconfig, CA file, tls-server-name': `clusters:\n- name: c\n  cluster:\n    server: https://api.example:443\n    certificate-authority: pki/ca.crt\n    tls-server-name: kubernetes.default\nusers:\n- name: u\n  user:\n    client-certificate: pki/client.crt\n    client-key: pki/client.key\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
    'client certificate data, insecure-skip-tls-verify': `clusters:\n- name: c\n  cluster: {server: "https://[fd00::1]:6443", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {client-certificate-data: ${b64(PEM('cert-data'))}, client-key-data: ${b64('KEY DATA')}}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
    'basic auth': `clusters:\n- name: c\n  cluster: {server: "https://127.0.0.1:8443"}\nusers:\n- name: u\n  user: {username: admin, password: "p:w"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
    'no user in the context': `clusters:\n- name: c\n  cluster: {server: "https://h:1"}\ncontexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n`,
    'several entries, the current context picks': `clusters:\n- name: a\n  cluster: {server: "https://a:1"}\n- name: b\n  cluster: {server: "https://b:2"}\nusers:\n- name: ua\n  user: {token: ta}\n- name: ub\n  user: {token: tb}\ncontexts:\n- name: ca\n  context: {cluster: a, user: ua}\n- name: cb\n  context: {cluster: b, user: ub, namespace: nb}\ncurrent-context: cb\n`,
  };
  for (const [name, text] of Object.entries(cases)) {
    const file = path.join(d, `${name.replace(/\W+/g, '-')}.kubeconfig`);
    writeFileSync(file, text);
    assert.deepEqual(await ourView(file), await libraryView(file), name);
  }
});

test('kubeconfig files the library refuses are refused, as invalid, with its reason', async () => {
  const d = path.join(root, 'bad');
  mkdirSync(d, { recursive: true });
  const cases: Record<string, [string, RegExp]> = {
    'cluster without a server': ['clusters:\n- name: c\n  cluster: {}\ncurrent-context: x\n', /clusters\[0\]\.cluster\.server is missing/],
    'cluster without a name': ['clusters:\n- cluster: {server: "https://a:1"}\n', /clusters\[0\]\.name is missing/],
    'context without a cluster': ['contexts:\n- name: x\n  context: {user: u}\n', /contexts\[0\]\.context\.cluster is missing/],
    'user without a name': ['users:\n- user: {token: t}\n', /users\[0\]\.name is missing/],
    'token-file that does not exist': ['users:\n- name: u\n  user: {token-file: nope}\n', /ENOENT|no such file/],
  };
  for (const [name, [text, re]] of Object.entries(cases)) {
    const file = path.join(d, `${name.replace(/\W+/g, '-')}.kubeconfig`);
    writeFileSync(file, text);
    assert.throws(() => new KubeConfig().loadFromFile(file), Error, `the library refuses: ${name}`);
    await assert.rejects(
      resolveKubeConfig({ kubeconfig: file, env: {} }),
      (e: unknown) => e instanceof CniNodeError && e.kind === 'invalid' && re.test(e.message),
      name,
    );
  }
});

test('an exec plugin still runs through @kubernetes/client-node', async () => {
  const d = path.join(root, 'exec');
  mkdirSync(d, { recursive: true });
  const cred = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1beta1', kind: 'ExecCredential', status: { token: 'from-exec' } });
  writeFileSync(path.join(d, 'cred.json'), cred);
  const file = path.join(d, 'kubeconfig');
  writeFileSync(
    file,
    `clusters:\n- name: c\n  cluster: {server: "https://h:1"}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: cat\n      args: [${JSON.stringify(path.join(d, 'cred.json'))}]\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
  );
  const c = await resolveKubeConfig({ kubeconfig: file, env: {} });
  assert.equal(await c.auth.header(), 'Bearer from-exec');
});

test('@kubernetes/client-node is loaded only for exec plugins, auth providers and proxies', () => {
  const d = path.join(root, 'load');
  mkdirSync(d, { recursive: true });
  const config = fileURLToPath(new URL('../../src/kube/config.js', import.meta.url));
  const write = (name: string, user: string, cluster = '{server: "https://h:1"}') => {
    const file = path.join(d, name);
    writeFileSync(
      file,
      `clusters:\n- name: c\n  cluster: ${cluster}\nusers:\n- name: u\n  user: ${user}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
    );
    return file;
  };
  // A child process records every import of the library through a module resolve hook.
  const loads = (file: string): boolean => {
    const script = `
      import { registerHooks } from 'node:module';
      let loaded = false;
      registerHooks({ resolve(spec, ctx, next) { if (spec.startsWith('@kubernetes/client-node')) loaded = true; return next(spec, ctx); } });
      const { resolveKubeConfig } = await import(${JSON.stringify(`file://${config}`)});
      await resolveKubeConfig({ kubeconfig: ${JSON.stringify(file)}, env: {} });
      console.log(JSON.stringify({ loaded }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n').pop() as string) as { loaded: boolean }).loaded;
  };
  assert.equal(loads(write('token', '{token: t}')), false, 'token');
  assert.equal(loads(write('basic', '{username: a, password: b}')), false, 'basic auth');
  assert.equal(loads(write('exec', '{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: "true"}}')), true, 'exec plugin');
  assert.equal(loads(write('proxy', '{token: t}', '{server: "https://h:1", proxy-url: "http://127.0.0.1:3128"}')), true, 'proxy');
});
