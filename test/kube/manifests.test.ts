import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CniNodeError } from '../../src/core/errors.js';
import {
  comparable,
  containsDesired,
  crdResourceInfos,
  describeRef,
  emptyCounts,
  isCrd,
  isRef,
  objectToApply,
  parseManifest,
  refKey,
  renderManifest,
  sameJson,
  summarize,
  type KubeObject,
} from '../../src/kube/manifests.js';
import { resourcePath, splitApiVersion } from '../../src/kube/discovery.js';

const CRB = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: multus-cni-\${NODE_HOSTNAME}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: multus-cni-crd
subjects:
- kind: User
  name: system:node:$NODE_HOSTNAME
  apiGroup: rbac.authorization.k8s.io
`;

test('renderManifest substitutes $VAR and ${VAR}, $$ is a literal $', () => {
  const out = renderManifest(`${CRB}# cost: $$5\n`, { NODE_HOSTNAME: 'node-1' }, 'crb.yaml');
  assert.match(out, /name: multus-cni-node-1\n/);
  assert.match(out, /name: system:node:node-1\n/);
  assert.match(out, /# cost: \$5\n/);
});

test('renderManifest lists every unset variable once, naming the manifest', () => {
  assert.throws(
    () => renderManifest('a: ${A}\nb: $B\nc: ${A}\n', {}, 'x.yaml'),
    (e: unknown) => e instanceof CniNodeError && e.kind === 'invalid' && /^manifest x\.yaml: environment variables not set: A, B /.test(e.message),
  );
});

test('parseManifest: several documents, empty ones skipped but counted', () => {
  const { documents, problems } = parseManifest(
    '---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: kube-system\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n',
    'm.yaml',
  );
  assert.deepEqual(problems, []);
  assert.deepEqual(
    documents.map((d) => [d.index, d.where, d.kind, d.name, d.namespace]),
    [
      [1, 'manifest m.yaml document 1 (ServiceAccount a)', 'ServiceAccount', 'a', 'kube-system'],
      [4, 'manifest m.yaml document 4 (ConfigMap b)', 'ConfigMap', 'b', undefined],
    ],
  );
});

test('parseManifest: kind List is expanded', () => {
  const { documents, problems } = parseManifest(
    'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n- apiVersion: v1\n  kind: Secret\n',
    'l.yaml',
  );
  assert.deepEqual(
    documents.map((d) => [d.index, d.item, d.name]),
    [[1, 1, 'x']],
  );
  assert.deepEqual(problems, ['manifest l.yaml document 1 item 2: missing metadata.name']);
});

test('parseManifest: reads YAML as kubectl does (1.1 octal and booleans; dates and 1:20 stay strings)', () => {
  const { documents } = parseManifest(
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\nmode: 0644\nflag: yes\non: off\ndate: 2001-12-14\nport: 1:20\nbase: &b {k: 1}\nmerged:\n  <<: *b\n  j: 2\n',
    'y.yaml',
  );
  const o = documents[0]?.object as Record<string, unknown>;
  assert.equal(o['mode'], 420);
  assert.equal(o['flag'], true);
  assert.equal(o['true'], false, '`on` as a key is the boolean true in YAML 1.1 (as in kubectl)');
  assert.equal(o['date'], '2001-12-14');
  assert.equal(o['port'], '1:20');
  assert.deepEqual(o['merged'], { k: 1, j: 2 });
});

test('parseManifest: every problem, each with file and document number', () => {
  const text = [
    'kind: ConfigMap\nmetadata: {name: a}', // no apiVersion
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}',
    '- not\n- an object',
    'just a string',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Bad_NS}',
    'apiVersion: a/b/c\nkind: X\nmetadata: {name: a}',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}',
    'key: [unclosed',
    'a: 1\na: 2',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: yes}',
  ].join('\n---\n');
  const { documents, problems } = parseManifest(text, 'bad.yaml');
  assert.deepEqual(documents, []);
  assert.equal(problems.length, 10, problems.join('\n'));
  assert.equal(problems[0], 'manifest bad.yaml document 1: missing apiVersion');
  assert.match(problems[1] as string, /^manifest bad\.yaml document 2: missing metadata\.name \(generateName is not supported/);
  assert.match(problems[2] as string, /^manifest bad\.yaml document 3: is not a Kubernetes object/);
  assert.match(problems[3] as string, /^manifest bad\.yaml document 4: is not a Kubernetes object/);
  assert.match(problems[4] as string, /^manifest bad\.yaml document 5: metadata\.namespace "Bad_NS" is not a valid namespace name/);
  assert.match(problems[5] as string, /^manifest bad\.yaml document 6: apiVersion "a\/b\/c"/);
  assert.match(problems[6] as string, /^manifest bad\.yaml document 7: metadata\.name "a\/b" cannot be used in a URL path/);
  assert.match(problems[7] as string, /^manifest bad\.yaml document 8: not valid YAML/);
  assert.match(problems[8] as string, /^manifest bad\.yaml document 9: not valid YAML: .*[Uu]nique/);
  assert.equal(problems[9], 'manifest bad.yaml document 10: metadata.name is true, not a string; put the name in quotes');
});

test('parseManifest never throws, whatever the text', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (text) => {
      const r = parseManifest(text, 'f.yaml');
      for (const d of r.documents) assert.ok(d.apiVersion && d.kind && d.name);
      for (const p of r.problems) assert.match(p, /^manifest f\.yaml/);
    }),
    { numRuns: 300 },
  );
});

test('objectToApply: namespace defaulted for namespaced kinds, removed for cluster-scoped ones', () => {
  const [cm, crb] = parseManifest(
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b, namespace: x}\n',
    'f',
  ).documents;
  assert.ok(cm && crb);
  const a = objectToApply(cm, { namespaced: true }, 'kube-system');
  assert.equal(a.object.metadata?.namespace, 'kube-system');
  assert.deepEqual(a.ref, { apiVersion: 'v1', kind: 'ConfigMap', name: 'a', namespace: 'kube-system' });
  assert.equal(cm.object.metadata?.namespace, undefined, 'the parsed document is not modified');
  const b = objectToApply(crb, { namespaced: false }, 'kube-system');
  assert.equal(b.object.metadata?.namespace, undefined);
  assert.deepEqual(b.ref, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'b' });
  const [own] = parseManifest('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: mine}\n', 'f').documents;
  assert.equal(objectToApply(own as never, { namespaced: true }, 'kube-system').ref.namespace, 'mine');
});

test('refKey ignores the version (the same object in v1beta1 and v1); describeRef and isRef', () => {
  assert.equal(
    refKey({ apiVersion: 'rbac.authorization.k8s.io/v1beta1', kind: 'ClusterRoleBinding', name: 'x' }),
    refKey({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: 'x' }),
  );
  assert.notEqual(
    refKey({ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: 'a' }),
    refKey({ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', namespace: 'b' }),
  );
  assert.equal(describeRef({ apiVersion: 'v1', kind: 'ServiceAccount', name: 'm', namespace: 'kube-system' }), 'ServiceAccount kube-system/m');
  assert.equal(describeRef({ apiVersion: 'v1', kind: 'Namespace', name: 'n' }), 'Namespace n');
  assert.ok(isRef({ apiVersion: 'v1', kind: 'A', name: 'b' }));
  assert.ok(!isRef({ apiVersion: 'v1', kind: 'A' }));
  assert.ok(!isRef(null));
});

test('containsDesired: live ⊇ desired; lists compared element by element', () => {
  const desired = { a: 1, m: { x: 'y' }, l: [{ n: 'c', p: 80 }] };
  assert.ok(containsDesired(desired, { a: 1, extra: true, m: { x: 'y', z: 1 }, l: [{ n: 'c', p: 80, protocol: 'TCP' }] }));
  assert.ok(!containsDesired(desired, { a: 2, m: { x: 'y' }, l: [{ n: 'c', p: 80 }] }));
  assert.ok(!containsDesired(desired, { a: 1, m: { x: 'y' }, l: [{ n: 'c', p: 80 }, { n: 'd' }] }), 'an extra list element differs');
  assert.ok(!containsDesired({ cpu: '1000m' }, { cpu: '1' }), 'normalised values are left to the dry-run comparison');
  assert.ok(containsDesired({ a: null }, {}));
  assert.ok(!containsDesired({ a: {} }, {}));
});

const json = fc.jsonValue({ maxDepth: 3 });

test('containsDesired (property): every value contains itself, and stays contained when fields are added', () => {
  fc.assert(
    fc.property(json, fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), json, { maxKeys: 3 }), (v, extra) => {
      assert.ok(containsDesired(v, structuredClone(v)));
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        assert.ok(containsDesired(v, { ...extra, ...structuredClone(v) }));
      }
    }),
  );
});

test('comparable ignores resourceVersion and managedFields, and key order', () => {
  const live: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'a', resourceVersion: '1', managedFields: [{ manager: 'cni-node', time: '2020-01-01T00:00:00Z' }], uid: 'u' },
    data: { a: '1', b: '2' },
  };
  const planned: KubeObject = {
    data: { b: '2', a: '1' },
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: {
      uid: 'u',
      name: 'a',
      resourceVersion: '2',
      managedFields: [{ manager: 'before-first-apply' }, { manager: 'cni-node', time: '2021-01-01T00:00:00Z' }],
    },
  };
  assert.ok(sameJson(comparable(live), comparable(planned)));
  assert.ok(!sameJson(comparable(live), comparable({ ...planned, data: { a: '1' } })));
  assert.ok(!sameJson(comparable(live), comparable({ ...planned, metadata: { ...planned.metadata, labels: { x: 'y' } } })));
});

test('crdResourceInfos: apiextensions v1 (served versions) and v1beta1 (spec.version)', () => {
  const v1: KubeObject = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'network-attachment-definitions.k8s.cni.cncf.io' },
    spec: {
      group: 'k8s.cni.cncf.io',
      scope: 'Namespaced',
      names: { kind: 'NetworkAttachmentDefinition', plural: 'network-attachment-definitions' },
      versions: [
        { name: 'v1', served: true },
        { name: 'v0', served: false },
      ],
    },
  };
  assert.ok(isCrd({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition' }));
  assert.ok(!isCrd({ apiVersion: 'example.com/v1', kind: 'CustomResourceDefinition' }));
  assert.deepEqual(crdResourceInfos(v1), [
    {
      group: 'k8s.cni.cncf.io',
      version: 'v1',
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      resource: 'network-attachment-definitions',
      namespaced: true,
      definedByCrd: 'network-attachment-definitions.k8s.cni.cncf.io',
    },
  ]);
  const beta: KubeObject = {
    apiVersion: 'apiextensions.k8s.io/v1beta1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: { group: 'example.com', version: 'v1', scope: 'Cluster', names: { kind: 'Widget', plural: 'widgets' } },
  };
  assert.deepEqual(
    crdResourceInfos(beta).map((i) => [i.apiVersion, i.namespaced]),
    [['example.com/v1', false]],
  );
  assert.deepEqual(crdResourceInfos({ metadata: { name: 'x' }, spec: {} }), []);
});

test('resourcePath and splitApiVersion', () => {
  assert.deepEqual(splitApiVersion('v1'), { group: '', version: 'v1' });
  assert.deepEqual(splitApiVersion('apps/v1'), { group: 'apps', version: 'v1' });
  assert.equal(
    resourcePath({ group: '', version: 'v1', resource: 'configmaps', namespaced: true }, 'kube-system', 'a'),
    '/api/v1/namespaces/kube-system/configmaps/a',
  );
  assert.equal(
    resourcePath({ group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', namespaced: false }, 'ignored', 'x'),
    '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x',
  );
  assert.equal(resourcePath({ group: '', version: 'v1', resource: 'configmaps', namespaced: true }, 'ns', 'a b'), '/api/v1/namespaces/ns/configmaps/a%20b');
});

test('summarize', () => {
  const c = emptyCounts();
  assert.equal(summarize(0, c, false), '0 objects');
  c.created = 1;
  c.unchanged = 2;
  assert.equal(summarize(3, c, false), '3 objects: 1 created, 2 unchanged');
  assert.equal(summarize(3, c, true), '3 objects: 1 to create, 2 unchanged');
  const d = { ...emptyCounts(), deleted: 1, absent: 1, kept: 1 };
  assert.equal(summarize(3, d, false), '3 objects: 1 deleted, 1 already gone, 1 kept (still in another manifest)');
  assert.equal(summarize(1, { ...emptyCounts(), updated: 1 }, false), '1 object: 1 updated');
});
