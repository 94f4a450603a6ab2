import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { findPointers, renderTemplates, renderWith, type RenderOutcome } from '../../src/core/template.js';
import { CniNodeError } from '../../src/core/errors.js';

/** A node configs dir in memory; records every name read. */
function nodeDir(files: Record<string, string>): { read: (name: string) => string | undefined; reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    read: (name) => {
      reads.push(name);
      return Object.hasOwn(files, name) ? files[name] : undefined;
    },
  };
}

function render(templates: Record<string, string>, files: Record<string, string> = {}): { out: Map<string, RenderOutcome>; reads: string[] } {
  const dir = nodeDir(files);
  return { out: renderTemplates(new Map(Object.entries(templates)), dir.read), reads: dir.reads };
}

function rendered(o: RenderOutcome | undefined): string {
  assert.ok(o, 'no outcome');
  assert.equal(o.status, 'rendered', o.status === 'error' ? o.error.describe() : JSON.stringify(o));
  return (o as { content: string }).content;
}

function errorOf(o: RenderOutcome | undefined): CniNodeError {
  assert.ok(o, 'no outcome');
  assert.equal(o.status, 'error', JSON.stringify(o));
  const e = (o as { error: CniNodeError }).error;
  assert.ok(e instanceof CniNodeError);
  assert.equal(e.kind, 'invalid');
  return e;
}

const CALICO = '{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"}]}';

describe('findPointers', () => {
  test('finds pointers anywhere in a line, with their lines and offsets', () => {
    const t = '{\n  "delegates": [ __10-calico.conflist__ ],\n  "x": "a__b.conf__c __d.json__"\n}';
    const ps = findPointers(t, '05-multus.conf');
    assert.deepEqual(
      ps.map((p) => [p.name, p.line, t.slice(p.start, p.end)]),
      [
        ['10-calico.conflist', 2, '__10-calico.conflist__'],
        ['b.conf', 3, '__b.conf__'],
        ['d.json', 3, '__d.json__'],
      ],
    );
  });

  test('a template without pointers has none', () => {
    assert.deepEqual(findPointers('{"name": "plain_name", "a": "__"}', 't.conf'), []);
    assert.deepEqual(findPointers('', 't.conf'), []);
  });

  test('runs of underscores are not pointers', () => {
    assert.deepEqual(findPointers('______ ____ _a_ __ _', 't'), []);
  });

  test('a pointer with a path separator is an error, never a path', () => {
    for (const bad of ['__../etc/passwd__', '__/etc/shadow__', '__sub/file.conf__', '__a\\b__']) {
      assert.throws(
        () => findPointers(`x ${bad} y`, 't.conf'),
        (e: unknown) => e instanceof CniNodeError && /path separator/.test(e.describe()),
        bad,
      );
    }
  });

  // Issue 13: pointer names pass the same validation as every other untrusted name.
  test('untrusted pointer names are refused, never read (over 228 UTF-8 bytes, reserved names)', () => {
    for (const bad of ['x'.repeat(229), `${'x'.repeat(224)}.conf`, '.cni-node-state', '.cni-node.lock']) {
      const r = nodeDir({ [bad]: '{}' });
      const out = renderTemplates(new Map([['t.conf', `{"a":__${bad}__}`]]), r.read).get('t.conf');
      assert.equal(out?.status, 'error', bad);
      assert.deepEqual(r.reads, [], `${bad}: nothing is read`);
    }
  });

  test('. and .. pointers are errors', () => {
    assert.throws(
      () => findPointers('__..__', 't.conf'),
      (e: unknown) => e instanceof CniNodeError && /"\.\." is not a file name/.test(e.message),
    );
    assert.throws(
      () => findPointers('__.__', 't.conf'),
      (e: unknown) => e instanceof CniNodeError && /"\." is not a file name/.test(e.message),
    );
  });

  test('the error names the template and the line', () => {
    assert.throws(
      () => findPointers('{\n\n "a": __../x__\n}', '05-multus.conf'),
      (e: unknown) => e instanceof CniNodeError && /^05-multus\.conf line 3: pointer __\.\.\/x__/.test(e.message),
    );
  });

  test('an unterminated pointer is an error', () => {
    assert.throws(
      () => findPointers('{"delegates": [__10-calico.conflist]}', '05-multus.conf'),
      (e: unknown) => e instanceof CniNodeError && /unterminated pointer "__10-calico.conflist"/.test(e.message),
    );
    assert.throws(() => findPointers('__a.conf__ and __b.conf', 't'), /unterminated pointer "__b.conf"/);
  });

  test('every bad pointer is reported at once', () => {
    try {
      findPointers('__a/b__ __..__ __c\\d__', 't.conf');
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(e instanceof CniNodeError);
      assert.equal(e.details.length, 3);
    }
  });

  test('is linear on long runs of name characters (no regex blow-up)', () => {
    // url-safe base64 and similar: long runs of [A-Za-z0-9_-] with many "__" and no ".".
    const run = '__a-'.repeat(500_000);
    const started = Date.now();
    findPointers(run, 'big');
    findPointers(`${'x__y-'.repeat(400_000)}`, 'big');
    findPointers(Array.from({ length: 100_000 }, (_, i) => `l${i} __f.conf__`).join('\n'), 'many');
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  });
});

describe('renderWith', () => {
  test('inserts content literally, even $ patterns', () => {
    const t = 'a __x__ b';
    assert.equal(
      renderWith(t, findPointers(t, 't'), () => "$& $1 $$ $' __y__"),
      "a $& $1 $$ $' __y__ b",
    );
  });
});

describe('renderTemplates', () => {
  test('the Multus example: the pointer becomes the node file content', () => {
    const { out, reads } = render({ '05-multus.conf': '{"delegates": [ __10-calico.conflist__ ]}' }, { '10-calico.conflist': CALICO });
    assert.equal(rendered(out.get('05-multus.conf')), `{"delegates": [ ${CALICO} ]}`);
    assert.deepEqual(reads, ['10-calico.conflist']);
  });

  test('several pointers, on one line and on several, with text around them', () => {
    const { out } = render({ 't.conf': 'A__a.conf__B__b.conf__C\n  x __a.conf__ y\n__c__' }, { 'a.conf': '1', 'b.conf': '22', c: 'three' });
    assert.equal(rendered(out.get('t.conf')), 'A1B22C\n  x 1 y\nthree');
  });

  test('the same target is read once', () => {
    const { reads } = render({ 't.conf': '__a__ __a__ __a__' }, { a: 'x' });
    assert.deepEqual(reads, ['a']);
  });

  test('insertion is literal: pointers inside the inserted content are not expanded', () => {
    const { out, reads } = render({ 't.conf': '[__a.conf__]' }, { 'a.conf': 'has __b.conf__ and __../etc/passwd__ in it', 'b.conf': 'NO' });
    assert.equal(rendered(out.get('t.conf')), '[has __b.conf__ and __../etc/passwd__ in it]');
    assert.deepEqual(reads, ['a.conf']);
  });

  test('a template without pointers is returned unchanged and reads nothing', () => {
    const text = '{"cniVersion":"0.4.0","name":"a_b","type":"bridge"}\n';
    const { out, reads } = render({ 'a.conf': text });
    assert.equal(rendered(out.get('a.conf')), text);
    assert.deepEqual(reads, []);
  });

  test('missing targets are reported, all of them, and nothing is rendered', () => {
    const { out } = render({ 't.conf': '__a__ __b__ __c__ __b__' }, { b: 'here' });
    assert.deepEqual(out.get('t.conf'), { status: 'missing', missing: ['a', 'c'], pointers: ['a', 'b', 'c'] });
  });

  test('a bad pointer makes that template an error, and nothing is read for it', () => {
    const { out, reads } = render({ 'bad.conf': '__../../etc/shadow__', 'ok.conf': '__a__' }, { a: 'A' });
    assert.match(errorOf(out.get('bad.conf')).message, /path separator/);
    assert.equal(rendered(out.get('ok.conf')), 'A');
    assert.deepEqual(reads, ['a']);
  });

  test('an unterminated pointer makes the template an error', () => {
    const { out } = render({ 't.conf': '{"delegates": [__10-calico.conflist]}' }, { '10-calico.conflist': CALICO });
    assert.match(errorOf(out.get('t.conf')).message, /unterminated pointer/);
  });

  test('a template that points to itself is an error', () => {
    const { out, reads } = render({ 'self.conf': 'x __self.conf__ y' }, { 'self.conf': 'old output on the node' });
    assert.match(errorOf(out.get('self.conf')).message, /points to itself/);
    assert.deepEqual(reads, []);
  });

  test('a cycle between templates is an error for each of them', () => {
    const { out } = render({ 'a.conf': '__b.conf__', 'b.conf': '__c.conf__', 'c.conf': '__a.conf__' });
    for (const n of ['a.conf', 'b.conf', 'c.conf']) errorOf(out.get(n));
    const messages = [...out.values()].map((o) => (o.status === 'error' ? o.error.message : '')).join('\n');
    assert.match(messages, /cycle: .*a\.conf.*b\.conf.*c\.conf/);
  });

  test('a pointer to another template in the same set gets its rendered output, not the node file', () => {
    const { out, reads } = render(
      { '05-multus.conf': '{"delegates":[__10-inner.conflist__]}', '10-inner.conflist': '{"name":"__name__"}' },
      { '10-inner.conflist': 'STALE node copy', name: 'net1' },
    );
    assert.equal(rendered(out.get('10-inner.conflist')), '{"name":"net1"}');
    assert.equal(rendered(out.get('05-multus.conf')), '{"delegates":[{"name":"net1"}]}');
    assert.ok(!reads.includes('10-inner.conflist'));
  });

  test('the order of templates does not matter for dependencies', () => {
    const a = render({ 'a.conf': '[__b.conf__]', 'b.conf': 'B' }).out;
    const b = render({ 'b.conf': 'B', 'a.conf': '[__b.conf__]' }).out;
    assert.equal(rendered(a.get('a.conf')), '[B]');
    assert.equal(rendered(b.get('a.conf')), '[B]');
    assert.deepEqual([...b.keys()], ['b.conf', 'a.conf'], 'outcomes keep the caller order');
  });

  test('a pointer to a template that is missing a target is missing that target too', () => {
    const { out } = render({ 'a.conf': '__b.conf__', 'b.conf': '__10-calico.conflist__' });
    assert.deepEqual(out.get('a.conf'), { status: 'missing', missing: ['10-calico.conflist'], pointers: ['b.conf'] });
  });

  test('a pointer to a template with errors is an error', () => {
    const { out } = render({ 'a.conf': '__b.conf__', 'b.conf': '__x/y__' });
    assert.match(errorOf(out.get('a.conf')).message, /b\.conf, which is itself a template with errors/);
  });

  test('binary garbage renders or fails with a CniNodeError', () => {
    const garbage = Array.from({ length: 4096 }, (_, i) => String.fromCharCode((i * 7919) % 256)).join('');
    const { out } = render({ 'g.conf': garbage, 'h.conf': `\0__a.conf__\uffff` }, { 'a.conf': '\u0000' });
    assert.equal(rendered(out.get('h.conf')), '\0\0\uffff');
    const g = out.get('g.conf');
    assert.ok(g && (g.status !== 'error' || g.error instanceof CniNodeError));
  });
});

test("a pointer to cni-node's own record is refused, never read", () => {
  const reads: string[] = [];
  const out = renderTemplates(new Map([['05-x.conf', '__.cni-node-state__']]), (n) => {
    reads.push(n);
    return 'secret';
  });
  assert.equal(out.get('05-x.conf')?.status, 'error');
  assert.deepEqual(reads, []);
});
