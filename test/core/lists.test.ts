import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseListSpec, parseNameList } from '../../src/core/lists.js';
import { CniNodeError } from '../../src/core/errors.js';

/** Runs fn, asserts it throws an 'invalid' CniNodeError, and returns it. */
function invalid(fn: () => unknown): CniNodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CniNodeError, `expected a CniNodeError, got ${String(e)}`);
    assert.equal(e.kind, 'invalid');
    assert.equal(e.exitCode, 1);
    return e;
  }
  assert.fail('expected an error');
}

describe('parseListSpec', () => {
  test('Desired only: current is undefined (read from the record)', () => {
    assert.deepEqual(parseListSpec('flannel,ipvlan', 'plugins'), { desired: ['flannel', 'ipvlan'] });
    assert.equal(parseListSpec('a', 'plugins').current, undefined);
  });

  test('Desired:Current, the issue example', () => {
    assert.deepEqual(parseListSpec('multus,macvlan:host-device,multus,ipvlan', 'plugins'), {
      desired: ['multus', 'macvlan'],
      current: ['host-device', 'multus', 'ipvlan'],
    });
  });

  test('order is kept as given', () => {
    assert.deepEqual(parseListSpec('c,a,b', 'plugins').desired, ['c', 'a', 'b']);
  });

  test(':a,b means "nothing desired, a and b current" (remove both)', () => {
    assert.deepEqual(parseListSpec(':a,b', 'plugins'), { desired: [], current: ['a', 'b'] });
  });

  test('a,b: means an explicit empty current list, not the record', () => {
    const spec = parseListSpec('a,b:', 'plugins');
    assert.deepEqual(spec, { desired: ['a', 'b'], current: [] });
    assert.notEqual(spec.current, undefined);
  });

  test('empty string is the empty list; ":" is two empty lists', () => {
    assert.deepEqual(parseListSpec('', 'plugins'), { desired: [] });
    assert.deepEqual(parseListSpec(':', 'plugins'), { desired: [], current: [] });
  });

  test('white space around names and around the list is ignored (ConfigMap values end in newlines)', () => {
    assert.deepEqual(parseListSpec('  a , b\n', 'plugins'), { desired: ['a', 'b'] });
    assert.deepEqual(parseListSpec(' a ,b : c\t,d \n', 'plugins'), { desired: ['a', 'b'], current: ['c', 'd'] });
  });

  test('--plugins=, is refused: empty items', () => {
    const e = invalid(() => parseListSpec(',', 'plugins'));
    assert.match(e.describe(), /empty/);
  });

  test('a,,b and a trailing comma are refused', () => {
    assert.match(invalid(() => parseListSpec('a,,b', 'plugins')).describe(), /item 2 is empty/);
    assert.match(invalid(() => parseListSpec('a,b,', 'plugins')).describe(), /item 3 is empty/);
    assert.match(invalid(() => parseListSpec(',a', 'plugins')).describe(), /item 1 is empty/);
  });

  test('a::b is refused with the form explained', () => {
    const e = invalid(() => parseListSpec('a::b', 'plugins'));
    assert.match(e.message, /2 ':' separators/);
    assert.match(e.message, /Desired\[:Current\]/);
    invalid(() => parseListSpec('a:b:c', 'configs'));
  });

  test('a name listed twice is refused, in either part', () => {
    assert.match(invalid(() => parseListSpec('a,b,a', 'plugins')).message, /"a" is listed twice/);
    assert.match(invalid(() => parseListSpec('x:a, a', 'plugins')).message, /\(current\).*"a" is listed twice/);
  });

  test('the same name in desired and current is fine (it is kept)', () => {
    assert.deepEqual(parseListSpec('a:a', 'plugins'), { desired: ['a'], current: ['a'] });
  });

  test('names with path separators, . and .. are refused, naming them', () => {
    for (const bad of ['../etc', 'a/b', '/abs', '.', '..', 'a\\b', 'x\0y', 'tab\there']) {
      const e = invalid(() => parseListSpec(bad, 'plugins'));
      assert.match(e.describe(), /plugins \(desired\) item 1/, bad);
    }
  });

  test('every bad item is reported at once', () => {
    const e = invalid(() => parseListSpec('ok,../x,,a/b,ok', 'plugins'));
    assert.equal(e.details.length, 4);
    assert.match(e.message, /4 problems/);
    assert.match(e.details.join('\n'), /item 2: "..\/x" contains a path separator/);
    assert.match(e.details.join('\n'), /item 3 is empty/);
    assert.match(e.details.join('\n'), /item 4: "a\/b"/);
    assert.match(e.details.join('\n'), /"ok" is listed twice/);
  });

  test('"vlan" and "macvlan" are different names', () => {
    assert.deepEqual(parseListSpec('vlan,macvlan', 'plugins').desired, ['vlan', 'macvlan']);
  });

  test('the message names the kind of list', () => {
    assert.match(invalid(() => parseListSpec(',', 'configs')).describe(), /configs \(desired\)/);
    assert.match(invalid(() => parseListSpec('a:,', 'manifests')).describe(), /manifests \(current\)/);
  });
});

describe('parseNameList', () => {
  test('plain list', () => {
    assert.deepEqual(parseNameList('05-multus.conf,10-ipvlan.conflist', 'configs'), ['05-multus.conf', '10-ipvlan.conflist']);
  });
  test('blank is empty', () => {
    assert.deepEqual(parseNameList(' \n', 'configs'), []);
  });
  // Issue 13: the limit is in UTF-8 bytes and leaves room for the temporary file
  // name (.cni-node-tmp.NAME.RANDOM must fit in the file system's 255 bytes).
  test('a name longer than 228 bytes in UTF-8 is refused', () => {
    invalid(() => parseNameList('x'.repeat(229), 'plugins'));
    invalid(() => parseNameList('é'.repeat(115), 'plugins')); // 115 characters, 230 bytes
    assert.deepEqual(parseNameList('x'.repeat(228), 'plugins'), ['x'.repeat(228)]);
    assert.deepEqual(parseNameList('é'.repeat(114), 'plugins'), ['é'.repeat(114)]);
  });
});

test("names of cni-node's own files (.cni-node…) are refused as items", () => {
  assert.throws(() => parseNameList('bridge,.cni-node-state', '--plugins'), /reserved for cni-node's own files/);
  assert.throws(() => parseNameList('.cni-node.lock', '--configs'), /reserved/);
});
