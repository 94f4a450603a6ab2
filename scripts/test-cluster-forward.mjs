// A byte forwarder for the test cluster (scripts/test-cluster.sh): the cluster's
// API server listens only inside its network namespace, so a kubeconfig on the
// host reaches it through two of these, joined by a unix socket (a path works
// across network namespaces, an address does not):
//   in the cluster's namespace: unix:STATE/apiserver.sock → tcp:10.99.0.2:6443
//   on the host:                tcp:127.0.0.1:0 (a free port) → unix:STATE/apiserver.sock
// TLS passes through untouched: the client still verifies the API server.
//
//   node test-cluster-forward.mjs LISTEN TARGET READY_FILE
// LISTEN and TARGET are unix:PATH or tcp:HOST:PORT. Once listening, READY_FILE is
// written (atomically) with the TCP port, or "ok" for a unix socket.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';

const [listenSpec, targetSpec, readyFile] = process.argv.slice(2);
if (!listenSpec || !targetSpec || !readyFile) {
  console.error('usage: node test-cluster-forward.mjs LISTEN TARGET READY_FILE (unix:PATH | tcp:HOST:PORT)');
  process.exit(2);
}

function parse(spec) {
  if (spec.startsWith('unix:')) return { path: spec.slice(5) };
  const m = /^tcp:(.+):(\d+)$/.exec(spec);
  if (!m) throw new Error(`bad address ${spec}`);
  return { host: m[1], port: Number(m[2]) };
}

const listen = parse(listenSpec);
const target = parse(targetSpec);
if (listen.path) rmSync(listen.path, { force: true });

const server = net.createServer((client) => {
  const upstream = net.connect(target);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.on('error', (err) => {
  console.error(`forwarder ${listenSpec} → ${targetSpec}: ${err.message}`);
  process.exit(1);
});
server.listen(listen.path ?? { host: listen.host, port: listen.port }, () => {
  const addr = server.address();
  const text = typeof addr === 'string' || addr === null ? 'ok' : String(addr.port);
  writeFileSync(`${readyFile}.tmp`, text);
  renameSync(`${readyFile}.tmp`, readyFile);
  console.error(`forwarding ${listenSpec} (${text}) → ${targetSpec}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    if (listen.path) rmSync(listen.path, { force: true });
    process.exit(0);
  });
}
