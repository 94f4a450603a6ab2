import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import {
  describeUser,
  inContext,
  isRetriableStatus,
  isTlsError,
  isTransientNetworkError,
  KubeApiError,
  KubeUnreachableError,
  networkCode,
  parseForbidden,
  statusError,
} from '../../src/kube/errors.js';

const ctx = {
  method: 'PATCH',
  path: '/apis/x',
  server: 'https://10.96.0.1:443',
  credentials: 'in-cluster service account (/var/run/secrets/kubernetes.io/serviceaccount)',
};

// Messages as kube-apiserver 1.20 writes them.
const FORBIDDEN_CLUSTER =
  'clusterrolebindings.rbac.authorization.k8s.io "multus-cni-node-1" is forbidden: User "system:serviceaccount:kube-system:cni-node" cannot patch resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope';
const FORBIDDEN_NS = 'configmaps "x" is forbidden: User "denied" cannot get resource "configmaps" in API group "" in the namespace "default"';
const FORBIDDEN_LIST = 'configmaps is forbidden: User "denied" cannot list resource "configmaps" in API group "" in the namespace "default"';

test('parseForbidden reads user, verb, resource, group, namespace and name', () => {
  assert.deepEqual(parseForbidden(FORBIDDEN_CLUSTER), {
    user: 'system:serviceaccount:kube-system:cni-node',
    verb: 'patch',
    resource: 'clusterrolebindings',
    group: 'rbac.authorization.k8s.io',
    name: 'multus-cni-node-1',
  });
  assert.deepEqual(parseForbidden(FORBIDDEN_NS), { user: 'denied', verb: 'get', resource: 'configmaps', namespace: 'default', name: 'x' });
  assert.deepEqual(parseForbidden(FORBIDDEN_LIST), { user: 'denied', verb: 'list', resource: 'configmaps', namespace: 'default' });
  assert.equal(parseForbidden('something else'), undefined);
});

test('describeUser names service accounts as such', () => {
  assert.equal(describeUser('system:serviceaccount:kube-system:cni-node'), 'service account kube-system/cni-node');
  assert.equal(describeUser('admin'), 'user "admin"');
});

function status(code: number, reason: string, message: string, details: object = {}): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, details, code });
}

test('403: which verb on which resource, and who, plus what to do', () => {
  const e = statusError(403, status(403, 'Forbidden', FORBIDDEN_CLUSTER), ctx);
  assert.ok(e instanceof KubeApiError && e instanceof CniNodeError);
  assert.equal(e.kind, 'api');
  assert.equal(e.status, 403);
  assert.equal(e.reason, 'Forbidden');
  assert.match(
    e.message,
    /^forbidden: service account kube-system\/cni-node may not patch clusterrolebindings\.rbac\.authorization\.k8s\.io "multus-cni-node-1" at the cluster scope; grant it with RBAC \(a Role or ClusterRole with verb "patch" on resource "clusterrolebindings" in apiGroup "rbac\.authorization\.k8s\.io", bound to it\)\. The server said: /,
  );
  const ns = statusError(403, status(403, 'Forbidden', FORBIDDEN_NS), ctx);
  assert.match(
    ns.message,
    /^forbidden: user "denied" may not get configmaps "x" in namespace "default"; grant it with RBAC \(a Role or ClusterRole with verb "get" on resource "configmaps", bound to it\)/,
  );
  assert.match(statusError(403, status(403, 'Forbidden', 'no RBAC words'), ctx).message, /^forbidden: no RBAC words$/);
});

test('422: invalid, with the server message (which names each cause)', () => {
  const body = status(
    422,
    'Invalid',
    'Service "s" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].name: Required value]',
    {
      causes: [
        { reason: 'FieldValueInvalid', message: 'Invalid value: 0: must be between 1 and 65535, inclusive', field: 'spec.ports[0].port' },
        { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.ports[0].name' },
      ],
    },
  );
  const e = statusError(422, body, ctx);
  assert.equal(e.kind, 'invalid');
  assert.match(e.message, /^the API server refused the object as invalid: Service "s" is invalid/);
  assert.match(e.message, /spec\.ports\[0\]\.port: Invalid value: 0: must be between 1 and 65535, inclusive, spec\.ports\[0\]\.name: Required value/);
  assert.deepEqual(e.details, [], 'the message lists every cause already');
});

test('401 says where the credentials came from; 500 from an SSA the 1.20 server cannot merge is invalid input', () => {
  const e = statusError(401, status(401, 'Unauthorized', 'Unauthorized'), ctx);
  assert.match(e.message, /https:\/\/10\.96\.0\.1:443 rejected the credentials from in-cluster service account/);
  const ssa = statusError(
    500,
    status(
      500,
      '',
      'failed to create typed patch object: .spec.ports: element 0: associative list with keys has an element that omits key field "protocol" (and doesn\'t have default value)',
    ),
    ctx,
  );
  assert.equal(ssa.kind, 'invalid');
  assert.match(ssa.message, /e\.g\. protocol: TCP in ports/);
});

test('non-JSON bodies are kept as text', () => {
  const e = statusError(502, '<html>Bad Gateway</html>', ctx);
  assert.match(e.message, /answered 502 HTTP502 to PATCH \/apis\/x: <html>Bad Gateway<\/html>/);
  assert.equal(statusError(404, '404 page not found\n', ctx).serverMessage, '404 page not found');
});

test('inContext prefixes the file and document, keeping the type', () => {
  const e = inContext(statusError(422, status(422, 'Invalid', 'bad'), ctx), 'manifest a.yaml document 2 (Service s)');
  assert.ok(e instanceof KubeApiError);
  assert.equal(e.status, 422);
  assert.match(e.message, /^manifest a\.yaml document 2 \(Service s\): the API server refused/);
  const u = inContext(new KubeUnreachableError('cannot reach', 'https://x', 'ECONNREFUSED'), 'here');
  assert.ok(u instanceof KubeUnreachableError);
  assert.equal(u.message, 'here: cannot reach');
  const plain = inContext(new CniNodeError('io', 'disk'), 'p');
  assert.ok(plain instanceof CniNodeError && plain.message === 'p: disk' && plain.kind === 'io');
  const other = new TypeError('bug');
  assert.equal(inContext(other, 'p'), other, 'bugs are not dressed up');
});

test('retriable statuses and network errors', () => {
  assert.ok(isRetriableStatus(429) && isRetriableStatus(503) && isRetriableStatus(502) && isRetriableStatus(504));
  assert.ok(!isRetriableStatus(500), 'a plain 500 is usually deterministic');
  assert.ok(isRetriableStatus(500, '1'), 'unless the server asks for a retry');
  assert.ok(!isRetriableStatus(422) && !isRetriableStatus(403) && !isRetriableStatus(404));
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  assert.ok(isTransientNetworkError(refused));
  assert.equal(networkCode(new Error('socket hang up')), 'ESOCKETHANGUP');
  assert.ok(isTransientNetworkError(new Error('socket hang up')));
  const tls = Object.assign(new Error('self signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  assert.ok(isTlsError(tls) && !isTransientNetworkError(tls));
});
