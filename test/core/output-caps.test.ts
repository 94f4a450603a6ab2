// Every output has a size cap, checked while it is built (issue 13): the pieces
// that turn untrusted input into something cni-node writes or holds — rendered
// configs, JSONPath values (kube-watch's channel), the /readyz body.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CniNodeError } from '../../src/core/errors.js';
import { MAX_SUBSTITUTED_BYTES, substituteEnv } from '../../src/core/envsubst.js';
import { compileJsonPath } from '../../src/core/jsonpath.js';
import { MAX_RENDERED_BYTES, renderTemplates } from '../../src/core/template.js';
import { MAX_BODY_CHARS, MAX_REASON_CHARS, Readiness } from '../../src/daemon/readiness.js';

describe('every output has a size cap: rendered configs', () => {
  test('amplification far beyond what memory could hold is refused from the sizes, without building the text', () => {
    // 100 000 pointers to a 1 MiB file would be ~100 GiB: building it would throw a RangeError.
    const template = `[${Array.from({ length: 100_000 }, () => '__big.conf__').join(',')}]`;
    const big = 'x'.repeat(1024 * 1024);
    const started = performance.now();
    const out = renderTemplates(new Map([['05-amp.conf', template]]), () => big).get('05-amp.conf');
    assert.equal(out?.status, 'error');
    assert.ok(out?.status === 'error' && out.error instanceof CniNodeError);
    assert.match(
      out.error.message,
      /config 05-amp\.conf would be 100000\.\d MiB once rendered \(__big\.conf__ \(1\.0 MiB\) 100000 times\); a rendered config may be at most 1\.0 MiB/,
    );
    assert.ok(performance.now() - started < 5_000);
  });

  test('the cap is on bytes: exactly the cap is rendered, one byte more is refused; multi-byte characters count as bytes', () => {
    const pad = (n: number) => 'y'.repeat(n);
    const ok = renderTemplates(new Map([['a.conf', `__t__${pad(10)}`]]), () => pad(MAX_RENDERED_BYTES - 10)).get('a.conf');
    assert.equal(ok?.status, 'rendered');
    const over = renderTemplates(new Map([['a.conf', `__t__${pad(11)}`]]), () => pad(MAX_RENDERED_BYTES - 10)).get('a.conf');
    assert.equal(over?.status, 'error');
    // 'é' is 2 bytes in UTF-8: 600 000 of them are 1.2 MB though 600 000 characters.
    const wide = renderTemplates(new Map([['w.conf', '__t__']]), () => 'é'.repeat(600_000)).get('w.conf');
    assert.equal(wide?.status, 'error');
  });

  test('a template that points to an oversized template is refused too (the cap holds through nesting)', () => {
    const templates = new Map([
      ['inner.conf', `[${Array.from({ length: 3 }, () => '__big__').join(',')}]`],
      ['outer.conf', '{"d":__inner.conf__}'],
    ]);
    const out = renderTemplates(templates, () => 'z'.repeat(400 * 1024));
    assert.equal(out.get('inner.conf')?.status, 'error');
    const outer = out.get('outer.conf');
    assert.ok(outer?.status === 'error' && /points to inner\.conf, which cannot be rendered: config inner\.conf would be/.test(outer.error.message));
  });
});

describe('every output has a size cap: manifests after variable substitution', () => {
  test('a variable referenced many times is refused from the sizes, before the text is built', () => {
    const env = { BIG: 'v'.repeat(128 * 1024) };
    const text = `data:\n${Array.from({ length: 100_000 }, (_, i) => `  k${i}: "\${BIG}"`).join('\n')}\n`;
    assert.throws(
      () => substituteEnv(text, env, 'manifest amp.yaml'),
      (e: unknown) =>
        e instanceof CniNodeError &&
        e.kind === 'invalid' &&
        /^manifest amp\.yaml would be \d+ bytes once its variables are substituted \(\$BIG \(131072 bytes\) 100000 times\); at most 8388608 bytes are allowed/.test(
          e.message,
        ),
    );
  });

  test('up to the cap the text is substituted as before', () => {
    const env = { A: 'x'.repeat(1000) };
    const text = '$A'.repeat(Math.floor(MAX_SUBSTITUTED_BYTES / 1000) - 1);
    assert.equal(substituteEnv(text, env, 'm').length, 1000 * (Math.floor(MAX_SUBSTITUTED_BYTES / 1000) - 1));
    assert.equal(substituteEnv('a $$ ${A} $B', { A: '1', B: '2' }, 'm'), 'a $ 1 2');
  });
});

describe('every output has a size cap: JSONPath values', () => {
  test('a template that multiplies a large object is stopped as it grows, with a clear error', () => {
    const obj = { items: Array.from({ length: 2_000 }, (_, i) => ({ name: `n${i}`, data: 'd'.repeat(1_000) })) };
    // The same 2 MB of items, 5 000 times over (a template fits in one argument): ~10 GB if built.
    const evaluate = compileJsonPath('{.items[*].data}'.repeat(5_000), { maxBytes: 1024 * 1024 });
    assert.throws(
      () => evaluate(obj),
      (e: unknown) => e instanceof CniNodeError && /gives more than 1048576 bytes on this object; the value is refused/.test(e.message),
    );
    // Recursive descent over a deep object: every subtree printed.
    let deep: unknown = 'leaf'.repeat(1_000);
    for (let i = 0; i < 2_000; i++) deep = { a: deep };
    assert.throws(() => compileJsonPath('{..a}', { maxBytes: 1024 * 1024 })(deep), /gives more than 1048576 bytes/);
  });

  test('under the cap the value is exactly what it was without one', () => {
    const obj = { items: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }], x: [1, 'two', null, { y: true }] };
    for (const t of ['{}', '{.items[*].metadata.name}', '{range .items[*]}{.metadata.name}{"\\n"}{end}', '{.x[*]}', '{..name}']) {
      assert.equal(compileJsonPath(t, { maxBytes: 10_000 })(obj), compileJsonPath(t)(obj), t);
    }
  });
});

describe('every output has a size cap: the /readyz body', () => {
  test('each reason line and the whole body are capped; the log keeps the whole text', () => {
    const r = new Readiness();
    r.succeeded();
    r.set('configmap-invalid', `ConfigMap x has an invalid list (${Array.from({ length: 10_000 }, (_, i) => `bad entry ${i}`).join('; ')})`);
    for (let i = 0; i < 50; i++) r.set(`invalid config c${i}.conf`, `config c${i}.conf: ${'why '.repeat(600)}`);
    const s = r.status();
    assert.equal(s.ready, false);
    const lines = s.reason.split('\n');
    assert.ok(s.reason.length <= MAX_BODY_CHARS + 200, `body of ${s.reason.length} characters`);
    for (const l of lines) assert.ok(l.length <= MAX_REASON_CHARS, `a line of ${l.length} characters`);
    assert.match(lines[0] as string, /^ConfigMap x has an invalid list \(bad entry 0; .*… \(\d+ more characters\)$/);
    assert.match(lines[lines.length - 1] as string, /^… and \d+ more reason\(s\); see the log$/);
  });
});
