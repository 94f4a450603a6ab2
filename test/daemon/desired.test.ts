import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changedKinds, describeDesired, desiredFromConfigMap, mergeDesired, parseConfigMapRef, sameDesired } from '../../src/daemon/desired.js';

describe('desired state from the ConfigMap', () => {
  test("the original's multus-cni ConfigMap keys", () => {
    const r = desiredFromConfigMap({ plugins: 'multus-cni,macvlan\n', configs: '05-multus.conf', manifests: '' }, 'kube-system/multus-cni');
    assert.ok(r.ok);
    assert.deepEqual(r.lists, { plugin: ['multus-cni', 'macvlan'], config: ['05-multus.conf'], manifest: [] });
    assert.deepEqual(r.keys, ['plugin', 'config', 'manifest']);
  });

  test('absent keys are left out; other keys are ignored', () => {
    const r = desiredFromConfigMap({ plugins: 'a', 'unrelated.json': '{}' }, 'ns/x');
    assert.ok(r.ok);
    assert.deepEqual(r.lists, { plugin: ['a'] });
    const none = desiredFromConfigMap(undefined, 'ns/x');
    assert.ok(none.ok);
    assert.deepEqual(none.lists, {});
  });

  test('every invalid list is reported at once, naming the ConfigMap and key', () => {
    const r = desiredFromConfigMap({ plugins: 'a,,b', configs: '../x.conf', manifests: 'm.yaml:n.yaml' }, 'kube-system/multus-cni');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.problems.length, 3);
    assert.match(r.problems[0] ?? '', /ConfigMap kube-system\/multus-cni key plugins .*empty/);
    assert.match(r.problems[1] ?? '', /key configs.*path separator/);
    assert.match(r.problems[2] ?? '', /key manifests.*Desired:Current form/);
  });

  // Issue 13: the ConfigMap is untrusted input; its names pass the same validation as
  // every other name, byte length included (a 229-byte name passed before and failed
  // with ENAMETOOLONG on the temporary file).
  test('untrusted names from the ConfigMap are refused, never acted on (separators, control characters, over 228 UTF-8 bytes)', () => {
    const r = desiredFromConfigMap(
      { plugins: `bridge,${'x'.repeat(229)}`, configs: `${'é'.repeat(112)}.conf`, manifests: 'a\u0007.yaml' },
      'kube-system/multus-cni',
    );
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.problems.length, 3, r.problems.join('\n'));
    assert.match(r.problems[0] ?? '', /key plugins.*229 bytes long in UTF-8; names are limited to 228 bytes/);
    assert.match(r.problems[1] ?? '', /key configs.*229 bytes long in UTF-8/);
    assert.match(r.problems[2] ?? '', /key manifests.*control character/);
  });

  test('ConfigMap lists win for their kinds; flags give the rest', () => {
    const merged = mergeDesired({ plugin: { desired: ['flag-plugin'] }, manifest: { desired: ['m.yaml'] } }, { plugin: ['cm-plugin'], config: [] });
    assert.deepEqual(merged, { plugin: ['cm-plugin'], config: [], manifest: ['m.yaml'] });
    assert.deepEqual(mergeDesired({ plugin: { desired: ['a'] } }, undefined), { plugin: ['a'] });
  });

  test('comparisons and descriptions for the log', () => {
    assert.equal(sameDesired({ plugin: ['a', 'b'] }, { plugin: ['a', 'b'] }), true);
    assert.equal(sameDesired({ plugin: ['a', 'b'] }, { plugin: ['b', 'a'] }), false, 'order matters: it is the install order');
    assert.equal(sameDesired(undefined, {}), false);
    assert.deepEqual(changedKinds({ plugin: ['a'], config: ['x'] }, { plugin: ['a', 'b'], config: ['x'] }), ['plugins']);
    assert.equal(describeDesired({ plugin: ['a', 'b'], config: [] }), 'plugins: a,b; configs: (none)');
  });

  test('--config-map=<namespace>/<name>', () => {
    assert.deepEqual(parseConfigMapRef('kube-system/multus-cni', 'default'), { namespace: 'kube-system', name: 'multus-cni' });
    assert.deepEqual(parseConfigMapRef('multus-cni', 'pod-ns'), { namespace: 'pod-ns', name: 'multus-cni' });
    for (const bad of ['', 'a/b/c', 'Kube/x', '/x', 'x/']) assert.equal(typeof parseConfigMapRef(bad, 'd'), 'string', bad);
  });
});
