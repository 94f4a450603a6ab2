import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkNetworkConfig, isNetworkConfigName, lineColumn } from '../../src/core/cni-config.js';

function problems(name: string, text: string): string[] {
  const r = checkNetworkConfig(name, text);
  assert.equal(r.ok, false, `${name} should be rejected`);
  return (r as { problems: string[] }).problems;
}

describe('isNetworkConfigName', () => {
  test('the runtime loads .conf, .conflist and .json, hidden ones too', () => {
    for (const n of ['05-multus.conf', '10-calico.conflist', 'x.json', '.hidden.conf', '.cni-node.json']) assert.ok(isNetworkConfigName(n), n);
  });
  test('other names are written as they are', () => {
    for (const n of ['kubeconfig', 'x.conf.bak', 'x.yaml', 'conf', 'x.conf~', 'x.jsonl', '.cni-node-record']) assert.ok(!isNetworkConfigName(n), n);
  });
});

describe('checkNetworkConfig', () => {
  test('a valid .conf', () => {
    const r = checkNetworkConfig('10-bridge.conf', '{"cniVersion":"0.4.0","name":"mynet","type":"bridge","ipam":{"type":"host-local"}}');
    assert.deepEqual(r, { ok: true, info: { name: 'mynet', cniVersion: '0.4.0', types: ['bridge'], ipamTypes: ['host-local'], isList: false } });
  });

  test('IPAM plugins the chain calls are listed once each, in order', () => {
    const r = checkNetworkConfig(
      '10-x.conflist',
      '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"macvlan","ipam":{"type":"host-local"}},{"type":"ptp","ipam":{"type":"static"}},{"type":"portmap"}]}',
    );
    assert.ok(r.ok);
    assert.deepEqual(r.info.ipamTypes, ['host-local', 'static']);
  });

  test('an IPAM type with a path is refused like a plugin type', () => {
    const r = checkNetworkConfig('10-x.conf', '{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"../host-local"}}');
    assert.equal(r.ok, false);
  });

  test('a valid .conflist gives the chain in order', () => {
    const r = checkNetworkConfig(
      '10-calico.conflist',
      '{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"calico"},{"type":"portmap"},{"type":"bandwidth"}]}',
    );
    assert.ok(r.ok);
    assert.deepEqual(r.info.types, ['calico', 'portmap', 'bandwidth']);
    assert.equal(r.info.isList, true);
  });

  test('a .json is a list when it has "plugins", a single network otherwise', () => {
    const list = checkNetworkConfig('a.json', '{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp"}]}');
    assert.ok(list.ok && list.info.isList);
    const single = checkNetworkConfig('a.json', '{"cniVersion":"0.4.0","name":"n","type":"ptp"}');
    assert.ok(single.ok && !single.info.isList);
  });

  test('bad JSON: line and column of the problem (trailing comma in an object)', () => {
    const [p] = problems('05-multus.conf', '{\n  "cniVersion": "0.4.0",\n  "name": "multus",\n}\n');
    assert.match(p ?? '', /^not valid JSON at line 4, column 1: /);
  });

  test('bad JSON: line and column when V8 gives no position (value missing after ":")', () => {
    const [p] = problems('05-multus.conf', '{\n  "cniVersion": "0.4.0",\n  "name": "multus",\n  "type": }\n');
    assert.equal(p, "not valid JSON at line 4, column 11: Unexpected token '}'");
  });

  test('bad JSON: line and column for a trailing comma in a list (a rendered delegate list)', () => {
    const text = '{\n "cniVersion": "0.4.0",\n "name": "multus",\n "type": "multus",\n "delegates": [ {"type":"a"}, ]\n}';
    const [p] = problems('05-multus.conf', text);
    assert.match(p ?? '', /^not valid JSON at line 5, column 31: Unexpected token '\]'$/);
    assert.equal(text.split('\n')[4]?.[30], ']');
  });

  test('bad JSON: the message does not repeat the whole file', () => {
    // V8 quotes some context around the error ("…\"context\"…"); it is not repeated.
    const big = `{"cniVersion":"0.4.0","name":"n","pad":"${'y'.repeat(5000)}",\n"type": ,\n"more": "${'z'.repeat(5000)}"}`;
    const [p] = problems('a.conf', big);
    assert.equal(p, "not valid JSON at line 2, column 9: Unexpected token ','");
    const [q] = problems('a.conf', `{"cniVersion":"0.4.0","name":"n","type":"x","pad":"${'y'.repeat(5000)}", }`);
    assert.ok((q ?? '').length < 200, q);
    assert.match(q ?? '', /line 1, column \d+/);
  });

  test('bad JSON: empty file and truncated file', () => {
    assert.match(problems('a.conf', '')[0] ?? '', /not valid JSON: Unexpected end of JSON input/);
    assert.match(problems('a.conf', '{"cniVersion": "0.4.0"')[0] ?? '', /not valid JSON at line 1, column 23/);
  });

  test('the top level must be an object', () => {
    assert.deepEqual(problems('a.conf', '[]'), ['the top level must be a JSON object']);
    assert.deepEqual(problems('a.conf', '"x"'), ['the top level must be a JSON object']);
    assert.deepEqual(problems('a.conf', 'null'), ['the top level must be a JSON object']);
  });

  test('a .conf needs cniVersion, name and type; every problem is reported', () => {
    const ps = problems('a.conf', '{}');
    assert.equal(ps.length, 3);
    assert.match(ps.join('\n'), /"cniVersion" is missing/);
    assert.match(ps.join('\n'), /"name" is missing/);
    assert.match(ps.join('\n'), /"type" is missing/);
  });

  test('a .conflist needs a non-empty plugins list whose entries have a type', () => {
    assert.match(problems('a.conflist', '{"cniVersion":"0.4.0","name":"n"}').join(), /"plugins" must be a non-empty list/);
    assert.match(problems('a.conflist', '{"cniVersion":"0.4.0","name":"n","plugins":[]}').join(), /"plugins" must be a non-empty list/);
    assert.match(problems('a.conflist', '{"cniVersion":"0.4.0","name":"n","plugins":{}}').join(), /"plugins" must be a non-empty list/);
    assert.deepEqual(problems('a.conflist', '{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"a"},{},"x",{"type":""}]}'), [
      'plugins[1] has no "type"',
      'plugins[2] has no "type"',
      'plugins[3] has no "type"',
    ]);
  });

  test('a .conflist with a top-level type but no plugins is not accepted', () => {
    assert.match(problems('a.conflist', '{"cniVersion":"0.4.0","name":"n","type":"bridge"}').join(), /"plugins"/);
  });

  test('cniVersion must look like a version', () => {
    assert.match(problems('a.conf', '{"cniVersion":"latest","name":"n","type":"x"}').join(), /"cniVersion" is "latest"/);
    assert.match(problems('a.conf', '{"cniVersion":4,"name":"n","type":"x"}').join(), /"cniVersion" is missing or not a string/);
  });

  test('the network name must be a valid name', () => {
    assert.match(problems('a.conf', '{"cniVersion":"0.4.0","name":"my net","type":"x"}').join(), /"name" is "my net"/);
    assert.match(problems('a.conf', '{"cniVersion":"0.4.0","name":"-x","type":"x"}').join(), /"name" is "-x"/);
  });

  test('a plugin type must be a plain binary name', () => {
    assert.match(problems('a.conf', '{"cniVersion":"0.4.0","name":"n","type":"../../bin/sh"}').join(), /not a plain binary name/);
    assert.match(problems('a.conflist', '{"cniVersion":"0.4.0","name":"n","plugins":[{"type":".."}]}').join(), /not a plain binary name/);
  });
});

describe('lineColumn', () => {
  test('1-based line and column', () => {
    assert.deepEqual(lineColumn('abc', 0), { line: 1, column: 1 });
    assert.deepEqual(lineColumn('abc', 2), { line: 1, column: 3 });
    assert.deepEqual(lineColumn('a\nbc', 2), { line: 2, column: 1 });
    assert.deepEqual(lineColumn('a\nbc\n', 4), { line: 2, column: 3 });
  });
});
