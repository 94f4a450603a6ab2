// names.ts: the one validation of untrusted names (issue 13).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_NAME_BYTES, nameProblem, objectRefProblem, TEMP_PREFIX, TEMP_RANDOM_HEX } from '../../src/core/names.js';

describe('plain names', () => {
  test('names are limited in UTF-8 bytes, leaving room for the temporary file name', () => {
    assert.equal(
      Buffer.byteLength(`${TEMP_PREFIX}${'x'.repeat(MAX_NAME_BYTES)}.${'0'.repeat(TEMP_RANDOM_HEX)}`),
      255,
      'the longest name still gives a 255-byte temporary name',
    );
    assert.equal(nameProblem('x'.repeat(MAX_NAME_BYTES)), undefined);
    assert.match(nameProblem('x'.repeat(MAX_NAME_BYTES + 1)) ?? '', /229 bytes long in UTF-8; names are limited to 228 bytes/);
    // Under 256 characters but over 255 bytes.
    assert.match(nameProblem('€'.repeat(86)) ?? '', /258 bytes long in UTF-8/);
    assert.equal(nameProblem('€'.repeat(76)), undefined, '228 bytes');
  });

  test('separators, ".", "..", NUL, control characters and cni-node\'s own names are refused', () => {
    for (const bad of ['', '.', '..', 'a/b', '/etc/passwd', '../../victim', 'a\\b', 'a\0b', 'a\nb', 'a\x7fb', '.cni-node-state', '.cni-node.lock']) {
      assert.ok(nameProblem(bad), JSON.stringify(bad));
    }
    assert.equal(nameProblem(42 as unknown as string) !== undefined, true, 'not a string');
  });
});

describe('Kubernetes object references (they build API paths)', () => {
  test('valid references pass', () => {
    assert.equal(objectRefProblem({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system', name: 'multus' }), undefined);
    assert.equal(objectRefProblem({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: 'system:node:worker-1' }), undefined);
    assert.equal(
      objectRefProblem({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', namespace: 'default', name: 'macvlan-conf' }),
      undefined,
    );
  });

  test('anything that could change a URL path is refused, in every part', () => {
    const good = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'x' };
    const bad: Array<[string, Record<string, unknown>]> = [
      ['name with /', { ...good, name: 'a/b' }],
      ['name ..', { ...good, name: '..' }],
      ['name with ?', { ...good, name: 'x?dryRun=All' }],
      ['name with #', { ...good, name: 'x#y' }],
      ['name with %', { ...good, name: '%2e%2e' }],
      ['name with a newline', { ...good, name: 'x\ny' }],
      ['name with a space', { ...good, name: 'x y' }],
      ['name too long', { ...good, name: 'x'.repeat(254) }],
      ['apiVersion with ..', { ...good, apiVersion: '../../api/v1' }],
      ['apiVersion with three parts', { ...good, apiVersion: 'a/b/c' }],
      ['apiVersion with ?', { ...good, apiVersion: 'v1?x' }],
      ['namespace with /', { ...good, namespace: 'kube-system/..' }],
      ['namespace upper case', { ...good, namespace: 'Default' }],
      ['kind with /', { ...good, kind: 'Config/Map' }],
      ['name not a string', { ...good, name: 7 }],
      ['not an object', [] as unknown as Record<string, unknown>],
    ];
    for (const [what, ref] of bad) assert.ok(objectRefProblem(ref), what);
  });
});
