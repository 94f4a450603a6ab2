import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonPath } from '../../src/core/jsonpath.js';
import { CniNodeError } from '../../src/core/errors.js';

const configMap = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: {
    name: 'multus-cni',
    namespace: 'kube-system',
    resourceVersion: '42',
    labels: { app: 'multus', 'app.kubernetes.io/name': 'multus' },
    annotations: { 'kubernetes.io/description': 'plugins' },
  },
  data: { plugins: 'multus,macvlan', configs: '05-multus.conf\n', 'cni.conf': '{"a":1}', empty: '' },
};

const list = {
  kind: 'PodList',
  items: [
    {
      metadata: { name: 'a', labels: { tier: 'web' } },
      spec: { nodeName: 'n1', containers: [{ name: 'c1', ports: [{ name: 'http', containerPort: 80 }] }] },
      status: { ready: true, restarts: 0 },
    },
    { metadata: { name: 'b' }, spec: { nodeName: 'n2', containers: [{ name: 'c2' }, { name: 'c3' }] }, status: { ready: false, restarts: 3 } },
    { metadata: { name: 'c', labels: { tier: 'db' } }, spec: { nodeName: 'n1', containers: [] }, status: { restarts: 1.5 } },
  ],
};

const jp = (template: string, obj: unknown): string => compileJsonPath(template)(obj);

function compileError(template: string): CniNodeError {
  try {
    compileJsonPath(template);
  } catch (e) {
    assert.ok(e instanceof CniNodeError, `expected a CniNodeError for ${template}, got ${String(e)}`);
    assert.equal(e.kind, 'invalid');
    return e;
  }
  assert.fail(`expected ${JSON.stringify(template)} to be refused`);
}

describe('JSONPath: whole object', () => {
  test('{} (the kube-watch default) is the whole object as compact JSON', () => {
    assert.equal(jp('{}', configMap), JSON.stringify(configMap));
  });
  test('{@}, {$}, {.} and { } are the whole object too', () => {
    for (const t of ['{@}', '{$}', '{.}', '{ }']) assert.equal(jp(t, configMap), JSON.stringify(configMap), t);
  });
  test('a string object is printed raw; a number as JSON', () => {
    assert.equal(jp('{}', 'plain'), 'plain');
    assert.equal(jp('{}', 5), '5');
    assert.equal(jp('{}', null), 'null');
  });
});

describe('JSONPath: fields and text', () => {
  test('{.data.plugins} prints the string raw', () => {
    assert.equal(jp('{.data.plugins}', configMap), 'multus,macvlan');
    assert.equal(jp('{.data.configs}', configMap), '05-multus.conf\n');
  });
  test('literal text around expressions', () => {
    assert.equal(jp('plugins=[{.data.plugins}] in {.metadata.namespace}/{.metadata.name}', configMap), 'plugins=[multus,macvlan] in kube-system/multus-cni');
    assert.equal(jp('no expressions at all }', configMap), 'no expressions at all }');
    assert.equal(jp('', configMap), '');
  });
  test('numbers and booleans as JSON, objects and arrays as compact JSON', () => {
    assert.equal(jp('{.items[1].status.restarts}', list), '3');
    assert.equal(jp('{.items[2].status.restarts}', list), '1.5');
    assert.equal(jp('{.items[0].status.ready}', list), 'true');
    assert.equal(jp('{.metadata.labels}', configMap), '{"app":"multus","app.kubernetes.io/name":"multus"}');
    assert.equal(jp('{.items[1].spec.containers}', list), '[{"name":"c2"},{"name":"c3"}]');
  });
  test('a string that looks like JSON is still printed raw', () => {
    assert.equal(jp('{.data.cni\\.conf}', configMap), '{"a":1}');
  });
  test('an empty string prints nothing', () => {
    assert.equal(jp('[{.data.empty}]', configMap), '[]');
  });
  test('null is printed as null', () => {
    assert.equal(jp('{.a}', { a: null }), 'null');
  });
  test('[\'field.with.dots\'], ["x"] and escaped dots', () => {
    assert.equal(jp("{.metadata.labels['app.kubernetes.io/name']}", configMap), 'multus');
    assert.equal(jp('{.metadata.labels["app.kubernetes.io/name"]}', configMap), 'multus');
    assert.equal(jp('{.metadata.annotations.kubernetes\\.io/description}', configMap), 'plugins');
    assert.equal(jp("{['metadata']['name']}", configMap), 'multus-cni');
    assert.equal(jp("{.data['plugins','configs']}", configMap), 'multus,macvlan 05-multus.conf\n');
  });
  test('$ and @ at the start of a path', () => {
    assert.equal(jp('{$.metadata.name}', configMap), 'multus-cni');
    assert.equal(jp('{@.metadata.name}', configMap), 'multus-cni');
  });
  test('white space inside the braces is ignored', () => {
    assert.equal(jp('{ .metadata.name }', configMap), 'multus-cni');
  });
  test('unicode field names and values', () => {
    assert.equal(jp('{.données.clé}', { données: { clé: 'valeur ✓' } }), 'valeur ✓');
  });
});

describe('JSONPath: missing values yield empty output, never an error', () => {
  test('missing fields', () => {
    assert.equal(jp('{.data.nope}', configMap), '');
    assert.equal(jp('{.nope.deeper.still}', configMap), '');
    assert.equal(jp('a{.nope}b', configMap), 'ab');
  });
  test('wrong types along the way', () => {
    assert.equal(jp('{.data.plugins.x}', configMap), '');
    assert.equal(jp('{.data[0]}', configMap), '');
    assert.equal(jp('{.items.metadata}', list), '');
    assert.equal(jp('{.items.length}', list), '');
    assert.equal(jp('{.a}', 7), '');
    assert.equal(jp('{.a}', null), '');
    assert.equal(jp('{.a}', undefined), '');
  });
  test('index out of range', () => {
    assert.equal(jp('{.items[3]}', list), '');
    assert.equal(jp('{.items[-4]}', list), '');
  });
  test('prototype properties are not fields', () => {
    assert.equal(jp('{.constructor}', {}), '');
    assert.equal(jp('{.__proto__}', {}), '');
    assert.equal(jp('{.toString}', configMap), '');
    assert.equal(jp('{.items.length}', list), '');
    // An own property named __proto__ (as JSON.parse makes it) is a field.
    assert.equal(jp('{.__proto__.x}', JSON.parse('{"__proto__": {"x": 1}}')), '1');
  });
});

describe('JSONPath: arrays', () => {
  test('[n] and negative [n]', () => {
    assert.equal(jp('{.items[0].metadata.name}', list), 'a');
    assert.equal(jp('{.items[-1].metadata.name}', list), 'c');
    assert.equal(jp('{.items[-3].metadata.name}', list), 'a');
  });
  test('[*] and .*: several results joined by a single space', () => {
    assert.equal(jp('{.items[*].metadata.name}', list), 'a b c');
    assert.equal(jp('{.items[*].spec.containers[*].name}', list), 'c1 c2 c3');
    assert.equal(jp('{.metadata.labels.*}', configMap), 'multus multus');
    assert.equal(jp('{.metadata.labels[*]}', configMap), 'multus multus');
  });
  test('[start:end] slices', () => {
    assert.equal(jp('{.items[0:2].metadata.name}', list), 'a b');
    assert.equal(jp('{.items[1:].metadata.name}', list), 'b c');
    assert.equal(jp('{.items[:1].metadata.name}', list), 'a');
    assert.equal(jp('{.items[-2:].metadata.name}', list), 'b c');
    assert.equal(jp('{.items[::2].metadata.name}', list), 'a c');
    assert.equal(jp('{.items[1:1].metadata.name}', list), '');
    assert.equal(jp('{.items[0:100].metadata.name}', list), 'a b c');
    assert.equal(jp('{.items[2:1].metadata.name}', list), '');
  });
  test('unions of indices', () => {
    assert.equal(jp('{.items[0,2].metadata.name}', list), 'a c');
    assert.equal(jp('{.items[2, 0].metadata.name}', list), 'c a');
  });
  test('[*] on an empty list prints nothing', () => {
    assert.equal(jp('{.items[2].spec.containers[*].name}', list), '');
  });
});

describe('JSONPath: recursive descent', () => {
  test('..field finds every field of that name, in document order', () => {
    assert.equal(jp('{..nodeName}', list), 'n1 n2 n1');
    assert.equal(jp('{.items[1]..name}', list), 'b c2 c3');
    assert.equal(jp('{..containerPort}', list), '80');
  });
  test('..[n] and ..*', () => {
    assert.equal(jp('{.items[1]..containers[0].name}', list), 'c2');
    assert.equal(jp('{..labels.*}', list), 'web db');
  });
  test('cycles and shared objects do not loop', () => {
    const a: Record<string, unknown> = { name: 'a' };
    a.self = a;
    a.list = [a, { name: 'b', back: a }];
    assert.equal(jp('{..name}', a), 'a b');
  });
});

describe('JSONPath: filters', () => {
  test('== on strings', () => {
    assert.equal(jp('{.items[?(@.metadata.name=="b")].spec.nodeName}', list), 'n2');
    assert.equal(jp("{.items[?(@.metadata.name=='b')].spec.nodeName}", list), 'n2');
    assert.equal(jp('{.items[?(@.spec.nodeName == "n1")].metadata.name}', list), 'a c');
  });
  test('!= on strings: items without the field are skipped (as kubectl)', () => {
    assert.equal(jp('{.items[?(@.metadata.labels.tier!="web")].metadata.name}', list), 'c');
  });
  test('== and != on numbers and booleans; < <= > >= on numbers', () => {
    assert.equal(jp('{.items[?(@.status.restarts==3)].metadata.name}', list), 'b');
    assert.equal(jp('{.items[?(@.status.restarts!=3)].metadata.name}', list), 'a c');
    assert.equal(jp('{.items[?(@.status.ready==true)].metadata.name}', list), 'a');
    assert.equal(jp('{.items[?(@.status.restarts>1)].metadata.name}', list), 'b c');
    assert.equal(jp('{.items[?(@.status.restarts<=1)].metadata.name}', list), 'a');
    assert.equal(jp('{.items[?(@.status.restarts<=1.5)].metadata.name}', list), 'a c');
    assert.equal(jp('{.items[?(@.status.restarts>=1.5)].metadata.name}', list), 'b c');
    assert.equal(jp('{.items[?(@.status.restarts<0)].metadata.name}', list), '');
  });
  test('a number never equals a string', () => {
    assert.equal(jp('{.items[?(@.status.restarts=="3")].metadata.name}', list), '');
    assert.equal(jp('{.metadata[?(@=="42")]}', configMap), '42');
  });
  test('existence filter', () => {
    assert.equal(jp('{.items[?(@.metadata.labels)].metadata.name}', list), 'a c');
    assert.equal(jp('{.items[?(@.status.ready)].metadata.name}', list), 'a b');
  });
  test('a filter over nested lists, then further segments', () => {
    assert.equal(jp('{.items[*].spec.containers[?(@.name=="c3")].name}', list), 'c3');
    assert.equal(jp('{.items[?(@.spec.containers[0].name=="c2")].metadata.name}', list), 'b');
    assert.equal(jp('{.items[*].spec.containers[*].ports[?(@.name=="http")].containerPort}', list), '80');
  });
  test('comparing two paths of the same item', () => {
    const o = {
      xs: [
        { a: 1, b: 1 },
        { a: 1, b: 2 },
      ],
    };
    assert.equal(jp('{.xs[?(@.a==@.b)].b}', o), '1');
  });
  test('the kubectl example: a condition status', () => {
    const node = {
      status: {
        conditions: [
          { type: 'MemoryPressure', status: 'False' },
          { type: 'Ready', status: 'True' },
        ],
      },
    };
    assert.equal(jp('{.status.conditions[?(@.type=="Ready")].status}', node), 'True');
  });
});

describe('JSONPath: range and string literals', () => {
  test('{range .items[*]}…{end}', () => {
    assert.equal(jp('{range .items[*]}{.metadata.name}{"\\n"}{end}', list), 'a\nb\nc\n');
    assert.equal(jp('{range .items[*]}[{.metadata.name}:{.spec.nodeName}] {end}', list), '[a:n1] [b:n2] [c:n1] ');
  });
  test('nested ranges', () => {
    assert.equal(jp('{range .items[*]}{.metadata.name}:{range .spec.containers[*]} {.name}{end};{end}', list), 'a: c1;b: c2 c3;c:;');
  });
  test('range over nothing prints nothing; text after {end} is printed once', () => {
    assert.equal(jp('<{range .nope[*]}x{end}>', list), '<>');
    assert.equal(jp('{range .items[*]}.{end}!', list), '...!');
  });
  test('$ inside a range is the current item (as kubectl)', () => {
    assert.equal(jp('{range .items[*]}{$.metadata.name}{end}', list), 'abc');
  });
  test('string literals with escapes', () => {
    assert.equal(jp('{"text"}', {}), 'text');
    assert.equal(jp("{'single'}", {}), 'single');
    assert.equal(jp('{"tab\\there\\n"}', {}), 'tab\there\n');
    assert.equal(jp('{"\\u00e9\\x41\\"\\\\"}', {}), 'éA"\\');
    assert.equal(jp('{"{}"}', {}), '{}');
  });
  test('number and boolean literals', () => {
    assert.equal(jp('{5}{true}', {}), '5true');
  });
});

describe('JSONPath: malformed templates are refused with the template and the position', () => {
  const cases: [string, RegExp, number][] = [
    ['{.data.plugins', /unclosed "\{"/, 1],
    ['x{', /unclosed "\{"/, 2],
    ['{.a[0}', /unexpected "\}" in \[…\]/, 6],
    ['{.a[}', /unexpected "\}"/, 5],
    ['{.a[', /unterminated "\["/, 4],
    ['{.a[]}', /empty "\[\]"/, 4],
    ['{.a[x]}', /unexpected "x" in \[…\]/, 5],
    ['{.a[1:2:3:4]}', /bad slice/, 5],
    ['{.a[::0]}', /step must be greater than 0/, 5],
    ['{.a[?(@.x=="y"]}', /unexpected "\]" in a filter/, 15],
    ['{.a[?(@.x=~"y")]}', /=~ is not supported/, 10],
    ['{.a[?(@.x="y")]}', /write "=="/, 10],
    ['{.a[?(@.x==)]}', /expected a value after ==/, 12],
    ['{.a[?@.x]}', /a filter is written \[\?\(…\)\]/, 6],
    ['{length(.items)}', /unknown function length\(\)/, 2],
    ['{.items.length()}', /unknown function length\(\)/, 15],
    ['{metadata.name}', /unknown identifier "metadata"; a path starts with "\." \(e\.g\. \{\.metadata\}\)/, 2],
    ['{range .items[*]}{.x}', /\{range …\} has no matching \{end\}/, 1],
    ['{.x}{end}', /\{end\} without a matching \{range …\}/, 5],
    ['{"abc}', /unterminated string/, 2],
    ['{"\\q"}', /unknown escape \\q/, 3],
    ['{.a .b}', /unexpected "\." in \{…\}/, 5],
    ['{..}', /"\.\." must be followed by a field name/, 2],
    ['{.a\\', /"\\" at the end of a field name/, 4],
    ['{.a\\}', /unclosed "\{"/, 1],
  ];
  for (const [template, what, position] of cases) {
    test(template, () => {
      const e = compileError(template);
      assert.match(e.message, what);
      assert.ok(e.message.startsWith(`invalid JSONPath template ${JSON.stringify(template)} at position ${position}: `), e.message);
      assert.match(e.describe(), /\^/, 'the details show where');
    });
  }

  test('a very long template is shortened in the message', () => {
    const e = compileError(`{.a${'b'.repeat(10_000)}`);
    assert.ok(e.message.length < 400, e.message);
  });

  test('the caret points at the problem', () => {
    const e = compileError('{.metadata[x]}');
    assert.equal(e.details[0], '{.metadata[x]}\n               ^');
  });

  test('deeply nested filters are refused, not a stack overflow', () => {
    const deep = `{${'.a[?(@'.repeat(500)}${')]'.repeat(500)}}`;
    assert.match(compileError(deep).message, /nested more than/);
  });
});

describe('JSONPath: evaluation never throws anything but a CniNodeError', () => {
  test('objects that cannot be printed', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.me = cyclic;
    assert.throws(
      () => jp('{}', cyclic),
      (e: unknown) => e instanceof CniNodeError && /cannot be evaluated/.test(e.message),
    );
    assert.equal(jp('{.me.me.x}', cyclic), '');
  });
  test('getters and proxies that throw', () => {
    const bad = Object.defineProperty({}, 'x', {
      enumerable: true,
      get: () => {
        throw new Error('boom');
      },
    });
    assert.throws(
      () => jp('{.x}', bad),
      (e: unknown) => e instanceof CniNodeError && /boom/.test(e.message),
    );
    const proxy = new Proxy(
      {},
      {
        get: () => {
          throw new TypeError('trap');
        },
        ownKeys: () => {
          throw new TypeError('trap');
        },
      },
    );
    assert.throws(() => jp('{..x}', proxy), CniNodeError);
    assert.throws(() => jp('{}', proxy), CniNodeError);
  });
  test('bigint, functions, symbols, undefined', () => {
    assert.equal(jp('{.n}', { n: 10n }), '10');
    assert.equal(jp('{.o}', { o: { n: 10n } }), '{"n":"10"}');
    assert.equal(jp('{.f}|{.s}|{.u}', { f: () => 1, s: Symbol('s'), u: undefined }), '||');
    assert.equal(jp('{.xs[*]}', { xs: [1, undefined, 2] }), '1 2');
  });
  test('a compiled template is reusable and pure', () => {
    const f = compileJsonPath('{.data.plugins}');
    assert.equal(f(configMap), 'multus,macvlan');
    assert.equal(f({ data: { plugins: 'x' } }), 'x');
    assert.equal(f(configMap), 'multus,macvlan');
  });
});

describe('JSONPath: scale', () => {
  test('a list of 300,000 items', () => {
    const big = { items: Array.from({ length: 300_000 }, (_, i) => ({ n: i })) };
    const out = jp('{.items[*].n}', big);
    assert.equal(out.length, big.items.map((x) => x.n).join(' ').length);
    assert.equal(jp('{.items[-1].n}', big), '299999');
    assert.equal(jp('{..n}', { a: big }).split(' ').length, 300_000);
  });
  test('unicode identifiers are named in errors', () => {
    assert.match(compileError('{métadonnées}').message, /unknown identifier "métadonnées"/);
    assert.match(compileError('{range(.a)}').message, /unknown function range\(\)/);
  });
});
