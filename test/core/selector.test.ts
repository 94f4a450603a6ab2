// What kube-watch puts into a request is checked first (issue 13): label selectors
// by Kubernetes' own grammar, object names, namespaces and resource types.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { labelSelectorProblem, namespaceProblem, objectNameProblem, resourceTypeProblem } from '../../src/core/selector.js';

describe('kube-watch input validation: label selectors', () => {
  test('valid selectors (as kubectl -l takes them) pass', () => {
    for (const s of [
      '',
      'app',
      '!app',
      'app=web',
      'app==web',
      'app!=web',
      'app=',
      'app.kubernetes.io/name=multus',
      'example.com/tier in (front, back)',
      'tier notin (db)',
      'env in ()',
      'a,b,!c',
      ' app = web , tier != db ',
      'replicas>3',
      'replicas < -1',
      'x=A_b.c-9',
    ]) {
      assert.equal(labelSelectorProblem(s), undefined, s);
    }
  });

  test('invalid selectors are refused with the reason', () => {
    const bad: Array<[string, RegExp]> = [
      ['app=(x', /expected a label value after "="/],
      ['app in a,b', /"in" needs a list of values in parentheses/],
      ['app in (a b)', /expected "," or "\)"/],
      ['app in (a,', /missing "\)"/],
      ['app=a?b', /label value "a\?b"/],
      ['app=' + 'v'.repeat(64), /at most 63 characters/],
      ['-app', /label key "-app"/],
      ['Example.com/app', /the prefix before '\/' must be a DNS subdomain/],
      ['app=x,', /a "," at the end/],
      [',app', /expected a label key before ","/],
      ['app x', /unexpected "x" after the label key/],
      ['a>b', /">" needs a whole number/],
      ['app=é', /cannot be in a label selector/],
      ['app\u0000=x', /cannot be in a label selector|label key/],
      ['!', /expected a label key at the end/],
    ];
    for (const [s, re] of bad) assert.match(labelSelectorProblem(s) ?? 'accepted', re, JSON.stringify(s));
  });
});

describe('kube-watch input validation: names, namespaces, types', () => {
  test('object names', () => {
    for (const n of ['multus-cni', 'a.b.c', 'system:aggregate-to-admin', 'Upper', 'x_y', 'user@example.com']) assert.equal(objectNameProblem(n), undefined, n);
    for (const n of ['a?b', 'a/b', 'a%2F', 'a b', 'a,b', 'a=b', '.', '..', '-a', 'a\nb', 'x'.repeat(254), 'é']) assert.ok(objectNameProblem(n), n);
  });

  test('namespaces', () => {
    for (const n of ['default', 'kube-system', 'a1']) assert.equal(namespaceProblem(n), undefined, n);
    for (const n of ['Kube', 'a_b', '-a', 'a-', 'x'.repeat(64), '']) assert.ok(namespaceProblem(n), n);
  });

  test('resource types', () => {
    for (const t of ['configmap', 'cm', 'ConfigMap', 'deployments.apps', 'deployments.v1.apps', 'network-attachment-definitions.k8s.cni.cncf.io'])
      assert.equal(resourceTypeProblem(t), undefined, t);
    for (const t of ['config?map', 'a/b', 'a..b', '.a', 'a b', '']) assert.ok(resourceTypeProblem(t), t);
  });
});
