import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { substituteEnv } from '../../src/core/envsubst.js';
import { CniNodeError } from '../../src/core/errors.js';

function fails(text: string, env: Record<string, string | undefined>): CniNodeError {
  try {
    substituteEnv(text, env, 'crb.yaml');
  } catch (e) {
    assert.ok(e instanceof CniNodeError, String(e));
    assert.equal(e.kind, 'invalid');
    return e;
  }
  assert.fail(`expected ${JSON.stringify(text)} to fail`);
}

describe('substituteEnv', () => {
  test('${VAR} and $VAR', () => {
    const env = { NODE_HOSTNAME: 'node-1', NS: 'kube-system' };
    assert.equal(substituteEnv('name: multus-cni-${NODE_HOSTNAME}\nnamespace: $NS\n', env, 'crb.yaml'), 'name: multus-cni-node-1\nnamespace: kube-system\n');
  });

  test('$VAR ends at the first character that is not a letter, digit or _', () => {
    assert.equal(substituteEnv('$A-$A.$A/$A_B', { A: 'x', A_B: 'y' }, 'm'), 'x-x.x/y');
    assert.equal(substituteEnv('${A}B', { A: 'x' }, 'm'), 'xB');
  });

  test('$$ is a literal $', () => {
    assert.equal(substituteEnv('cost: $$5, $$HOME, $${X}', {}, 'm'), 'cost: $5, $HOME, ${X}');
    assert.equal(substituteEnv('$$$A', { A: 'x' }, 'm'), '$x');
  });

  test('a $ not followed by a name or { is kept', () => {
    assert.equal(substituteEnv('5$ and $1 and $ and $-x and end$', {}, 'm'), '5$ and $1 and $ and $-x and end$');
  });

  test('an empty value is a value (set but empty)', () => {
    assert.equal(substituteEnv('a${E}b', { E: '' }, 'm'), 'ab');
  });

  test('values are inserted literally, not substituted again', () => {
    assert.equal(substituteEnv('$A', { A: '${B} $C $$' }, 'm'), '${B} $C $$');
  });

  test('every missing variable is listed, once each, in order', () => {
    const e = fails('${NODE_HOSTNAME} $B ${NODE_HOSTNAME} $C $SET', { SET: 'x' });
    assert.match(e.message, /^crb\.yaml: environment variables not set: NODE_HOSTNAME, B, C /);
    assert.match(e.message, /\$\$ for a literal \$/);
  });

  test('one missing variable: singular message', () => {
    assert.match(fails('$X', {}).message, /environment variable not set: X \(export it/);
  });

  test('a variable set to undefined is missing', () => {
    assert.match(fails('$X', { X: undefined }).message, /not set: X/);
  });

  test('names of Object.prototype properties are not variables unless set', () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
      assert.match(fails(`\${${name}}`, {}).message, new RegExp(`not set: ${name}`), name);
      assert.match(fails(`$${name}`, {}).message, new RegExp(`not set: ${name}`), name);
    }
    assert.equal(substituteEnv('${constructor}', { constructor: 'c' }, 'm'), 'c');
  });

  test('works with process.env', () => {
    const key = 'CNI_NODE_TEST_ENVSUBST';
    process.env[key] = 'v';
    try {
      assert.equal(substituteEnv(`\${${key}}`, process.env, 'm'), 'v');
      assert.match(fails('${toString}', process.env).message, /not set: toString/);
    } finally {
      delete process.env[key];
    }
  });

  test('an unterminated ${ is an error', () => {
    assert.match(fails('name: ${NODE_HOSTNAME', { NODE_HOSTNAME: 'x' }).describe(), /has no closing \}/);
  });

  test('${} and ${not a name} are errors', () => {
    assert.match(fails('${}', {}).describe(), /"\$\{\}" is not a variable reference/);
    assert.match(fails('${A:-default}', { A: 'x' }).describe(), /"\$\{A:-default\}" is not a variable reference/);
    assert.match(fails('${1X}', {}).describe(), /is not a variable reference/);
  });

  test('bad references are reported before missing ones', () => {
    const e = fails('${} $MISSING', {});
    assert.match(e.message, /bad variable reference/);
  });

  test('text without $ is unchanged', () => {
    const text = 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: multus}\n';
    assert.equal(substituteEnv(text, {}, 'm'), text);
  });
});
