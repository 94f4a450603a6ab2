/**
 * Property-based tests (fast-check) for the pure core: the template renderer, the
 * set difference and the plan, and fuzzing of every parser that takes operator input
 * (issue 6): they never throw anything but CniNodeError, never read outside the node
 * configs dir, and are deterministic.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { renderTemplates, findPointers, type RenderOutcome } from '../../src/core/template.js';
import { minus, plan, KINDS, type Kind, type KindState, type PlannedAction } from '../../src/core/plan.js';
import { parseListSpec } from '../../src/core/lists.js';
import { substituteEnv } from '../../src/core/envsubst.js';
import { compileJsonPath } from '../../src/core/jsonpath.js';
import { checkNetworkConfig } from '../../src/core/cni-config.js';
import { nameProblem } from '../../src/core/names.js';
import { CniNodeError } from '../../src/core/errors.js';

const RUNS = { numRuns: 500 };
const FUZZ = { numRuns: 2000 };

/** Runs fn; anything thrown must be a CniNodeError. */
function onlyCniNodeErrors<T>(fn: () => T): T | CniNodeError {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CniNodeError) return e;
    throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of a CniNodeError`, { cause: e });
  }
}

// ---- arbitraries -----------------------------------------------------------------

/** Any string: UTF-16 code units (lone surrogates included), full unicode, ASCII. */
const anyString = (maxLength = 60): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary-ascii', maxLength }),
    fc.string({ maxLength }),
    fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('latin1')),
    fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('utf8')),
  );

/** Strings made of the pieces that matter to a parser, mixed with arbitrary bits. */
const piecesOf = (pieces: string[], maxLength = 30): fc.Arbitrary<string> =>
  fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...pieces) }, { weight: 1, arbitrary: anyString(4) }), { maxLength }).map((a) => a.join(''));

const TEMPLATE_NAMES = ['a.conf', 'b.conf', 'c.conflist', '10-calico.conflist', 'x'];
const templateText = piecesOf([
  '__',
  '_',
  '___',
  '/',
  '..',
  '.',
  '\\',
  '\n',
  ' ',
  '"',
  'a',
  '10-calico.conflist',
  'a.conf',
  'b.conf',
  'c.conflist',
  'x',
  '-',
  '\0',
  '$',
  '{',
  '}',
  'etc',
  'passwd',
  '__a.conf__',
  '__../x__',
  '__x__',
]);

/** A plain file name, as a pointer may name it. */
const plainName = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,15}$/);

function normalize(out: Map<string, RenderOutcome>): unknown {
  return [...out].map(([name, o]) => [name, o.status === 'error' ? { status: 'error', message: o.error.message, details: o.error.details } : o]);
}

/** A node dir that records what is read. */
function reader(files: ReadonlyMap<string, string>): { read: (n: string) => string | undefined; reads: string[] } {
  const reads: string[] = [];
  return { reads, read: (n) => (reads.push(n), files.get(n)) };
}

// ---- the renderer ----------------------------------------------------------------

describe('renderer properties', () => {
  const templatesArb = fc
    .uniqueArray(fc.tuple(fc.constantFrom(...TEMPLATE_NAMES), templateText), { selector: ([n]) => n, maxLength: 4 })
    .map((e) => new Map(e));
  const filesArb = fc
    .uniqueArray(fc.tuple(fc.oneof(fc.constantFrom(...TEMPLATE_NAMES), plainName), anyString(30)), { selector: ([n]) => n, maxLength: 6 })
    .map((e) => new Map(e));

  test('rendering is deterministic (same outcomes, same reads)', () => {
    fc.assert(
      fc.property(templatesArb, filesArb, (templates, files) => {
        const r1 = reader(files);
        const r2 = reader(files);
        const a = renderTemplates(templates, r1.read);
        const b = renderTemplates(new Map(templates), r2.read);
        assert.deepEqual(normalize(a), normalize(b));
        assert.deepEqual(r1.reads, r2.reads);
      }),
      RUNS,
    );
  });

  test('with every target present, the output is the template with each pointer replaced by its content', () => {
    // Text between pointers: anything without "__" (so it holds no pointer).
    const text = anyString(20).filter((s) => !s.includes('__'));
    const part = fc.oneof(
      text.map((t) => ({ text: t })),
      plainName.filter((n) => n !== 'self').map((name) => ({ name })),
    );
    fc.assert(
      fc.property(fc.array(part, { maxLength: 12 }), fc.func(anyString(30)), (parts, contentOf) => {
        const files = new Map<string, string>();
        let template = '';
        let expected = '';
        for (const p of parts) {
          if ('text' in p) {
            template += p.text;
            expected += p.text;
          } else {
            const content = files.get(p.name) ?? contentOf(p.name);
            files.set(p.name, content);
            template += `__${p.name}__`;
            expected += content;
          }
        }
        const r = reader(files);
        const out = renderTemplates(new Map([['self', template]]), r.read).get('self');
        assert.deepEqual(out && out.status === 'rendered' ? out.content : out, expected);
        assert.deepEqual(new Set(r.reads), new Set(parts.flatMap((p) => ('name' in p ? [p.name] : []))));
        assert.equal(r.reads.length, new Set(r.reads).size, 'each target read once');
      }),
      RUNS,
    );
  });

  test('a template without "__" is returned unchanged and nothing is read', () => {
    fc.assert(
      fc.property(
        anyString(200).filter((s) => !s.includes('__')),
        (text) => {
          const r = reader(new Map());
          const out = renderTemplates(new Map([['t.conf', text]]), r.read).get('t.conf');
          assert.deepEqual(out, { status: 'rendered', content: text, pointers: [] });
          assert.deepEqual(r.reads, []);
        },
      ),
      RUNS,
    );
  });

  test('readNodeFile is only ever called with plain names (never "/", "\\\\", "." or "..")', () => {
    fc.assert(
      fc.property(templatesArb, filesArb, (templates, files) => {
        const r = reader(files);
        onlyCniNodeErrors(() => renderTemplates(templates, r.read));
        for (const name of r.reads) {
          assert.equal(nameProblem(name), undefined, name);
          assert.ok(!name.includes('/') && !name.includes('\\') && name !== '..' && name !== '.', name);
          assert.ok(!templates.has(name), `${name} is a template: its rendered output is used, not the node file`);
          assert.ok(
            [...templates.values()].some((t) => t.includes(`__${name}__`)),
            `${name} is not a pointer of any template`,
          );
        }
      }),
      FUZZ,
    );
  });

  test('fuzz: arbitrary templates and node files never make it throw; errors are CniNodeErrors', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(anyString(10), fc.oneof(anyString(120), templateText)), { maxLength: 4 }), filesArb, (entries, files) => {
        const out = onlyCniNodeErrors(() => renderTemplates(new Map(entries), reader(files).read));
        assert.ok(out instanceof Map, 'renderTemplates reports problems in its outcomes');
        for (const o of out.values()) if (o.status === 'error') assert.ok(o.error instanceof CniNodeError);
        for (const [, t] of entries) onlyCniNodeErrors(() => findPointers(t, 't'));
      }),
      FUZZ,
    );
  });
});

// ---- set difference and plan -----------------------------------------------------

const itemName = fc.oneof(fc.constantFrom('vlan', 'macvlan', 'ipvlan', 'multus', 'multus-cni', 'a', 'A', 'a ', 'host-device', ''), fc.string({ maxLength: 4 }));
const nameList = fc.uniqueArray(itemName, { maxLength: 10 });
const kindState: fc.Arbitrary<KindState> = fc.record({ desired: nameList, current: nameList });

describe('set difference and plan properties', () => {
  test('minus: exact-name set difference that keeps the order of the first list', () => {
    fc.assert(
      fc.property(nameList, nameList, (a, b) => {
        const d = minus(a, b);
        assert.deepEqual(
          d,
          a.filter((x) => b.every((y) => y !== x)),
        );
        for (const x of d) assert.ok(!b.includes(x));
        // what was dropped is exactly a ∩ b
        assert.deepEqual(
          a.filter((x) => !d.includes(x)),
          a.filter((x) => b.includes(x)),
        );
      }),
      RUNS,
    );
  });

  test('apply, one kind: ensures = desired in order, removes = current − desired in reverse current order', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KINDS), kindState, (kind, s) => {
        const actions = plan('apply', { [kind]: s });
        const ensures = actions.filter((a) => a.op === 'ensure');
        const removes = actions.filter((a) => a.op === 'remove');
        const added = ensures.filter((a) => a.why === 'added').map((a) => a.name);
        const kept = ensures.filter((a) => a.why === 'kept').map((a) => a.name);
        // adds ∪ kept = desired, in desired order
        assert.deepEqual(
          ensures.map((a) => a.name),
          s.desired,
        );
        assert.deepEqual(new Set([...added, ...kept]), new Set(s.desired));
        assert.ok(kept.every((n) => s.current.includes(n)));
        assert.ok(added.every((n) => !s.current.includes(n)));
        // removes = current − desired, reverse current order
        assert.deepEqual(
          removes.map((a) => a.name),
          s.current.filter((n) => !s.desired.includes(n)).reverse(),
        );
        // no name both added and removed; nothing desired is removed
        for (const r of removes) {
          assert.ok(!added.includes(r.name));
          assert.ok(!s.desired.includes(r.name));
        }
        // additions before removals
        assert.deepEqual(actions, [...ensures, ...removes]);
        assert.ok(actions.every((a) => a.kind === kind));
      }),
      RUNS,
    );
  });

  const fullState = fc.record({ plugin: kindState, config: kindState, manifest: kindState }, { requiredKeys: [] });
  const rank = (k: Kind): number => KINDS.indexOf(k);

  test('apply, all kinds: every ensure before every remove; ensures plugins→configs→manifests, removes the reverse', () => {
    fc.assert(
      fc.property(fullState, (state) => {
        const actions = plan('apply', state);
        const firstRemove = actions.findIndex((a) => a.op === 'remove');
        if (firstRemove !== -1) assert.ok(actions.slice(firstRemove).every((a) => a.op === 'remove'));
        const ensures = actions.filter((a) => a.op === 'ensure');
        const removes = actions.filter((a) => a.op === 'remove');
        for (let i = 1; i < ensures.length; i++) assert.ok(rank((ensures[i - 1] as PlannedAction).kind) <= rank((ensures[i] as PlannedAction).kind));
        for (let i = 1; i < removes.length; i++) assert.ok(rank((removes[i - 1] as PlannedAction).kind) >= rank((removes[i] as PlannedAction).kind));
        // per kind, the same as planning that kind alone
        for (const kind of KINDS) {
          const alone = plan('apply', state[kind] ? { [kind]: state[kind] } : {});
          assert.deepEqual(
            actions.filter((a) => a.kind === kind),
            alone,
          );
        }
      }),
      RUNS,
    );
  });

  test('install ensures in given order by kind; uninstall removes exactly the reverse', () => {
    fc.assert(
      fc.property(fullState, (state) => {
        const install = plan('install', state);
        const expected = KINDS.flatMap((k) => (state[k]?.desired ?? []).map((name) => `${k}/${name}`));
        assert.deepEqual(
          install.map((a) => `${a.kind}/${a.name}`),
          expected,
        );
        assert.ok(install.every((a) => a.op === 'ensure' && a.why === 'requested'));
        const uninstall = plan('uninstall', state);
        assert.deepEqual(
          uninstall.map((a) => `${a.kind}/${a.name}`),
          [...expected].reverse(),
        );
        assert.ok(uninstall.every((a) => a.op === 'remove' && a.why === 'requested'));
      }),
      RUNS,
    );
  });

  test('applying the result again plans no removal and no addition', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KINDS), kindState, (kind, s) => {
        const again = plan('apply', { [kind]: { desired: s.desired, current: s.desired } });
        assert.ok(again.every((a) => a.op === 'ensure' && a.why === 'kept'));
      }),
      RUNS,
    );
  });
});

// ---- fuzzing the parsers (issue 6) ------------------------------------------------

describe('fuzz: list parsing', () => {
  const listText = fc.oneof(anyString(40), piecesOf([',', ':', ' ', 'a', 'b', 'macvlan', '..', '/', '.', '\n', '\t', '\\', '\0', 'x'.repeat(256)]));

  test('parseListSpec returns valid, unique, trimmed names or throws a CniNodeError', () => {
    fc.assert(
      fc.property(listText, (text) => {
        const r = onlyCniNodeErrors(() => parseListSpec(text, 'plugins'));
        if (r instanceof CniNodeError) {
          assert.equal(r.kind, 'invalid');
          return;
        }
        for (const list of [r.desired, r.current ?? []]) {
          assert.equal(new Set(list).size, list.length);
          for (const n of list) {
            assert.equal(nameProblem(n), undefined);
            assert.equal(n, n.trim());
            assert.ok(!n.includes(',') && !n.includes(':'));
          }
        }
        // it round-trips
        const again = parseListSpec(r.desired.join(',') + (r.current === undefined ? '' : `:${r.current.join(',')}`), 'plugins');
        assert.deepEqual(again, r);
      }),
      FUZZ,
    );
  });
});

describe('fuzz: env substitution', () => {
  test('arbitrary text and environment: a string or a CniNodeError', () => {
    fc.assert(
      fc.property(
        fc.oneof(anyString(80), piecesOf(['$', '$$', '${', '}', '{', 'A', 'constructor', '__proto__', 'toString', ' ', '\n', '-'])),
        fc.dictionary(fc.oneof(fc.constantFrom('A', 'constructor', '__proto__', 'toString'), fc.string({ maxLength: 5 })), anyString(10)),
        (text, env) => {
          const r = onlyCniNodeErrors(() => substituteEnv(text, env, 'm.yaml'));
          if (typeof r === 'string' && !text.includes('$')) assert.equal(r, text);
        },
      ),
      FUZZ,
    );
  });

  const POOL = ['A', 'B_1', '_x', 'NODE_HOSTNAME', 'constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];
  const part = fc.oneof(
    anyString(8).map((t) => ({ t: 'text' as const, text: t.replace(/\$/g, '') })),
    fc.record({ t: fc.constant('ref' as const), name: fc.constantFrom(...POOL), braced: fc.boolean() }),
    fc.constant({ t: 'dollar' as const }),
  );

  test('references are replaced by own environment values only; every missing name is listed in order', () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 10 }), fc.subarray(POOL), fc.func(anyString(8)), (parts, setNames, valueOf) => {
        const env = Object.fromEntries(setNames.map((n) => [n, valueOf(n)])) as Record<string, string>;
        let text = '';
        let expected = '';
        const missing: string[] = [];
        parts.forEach((p, i) => {
          if (p.t === 'text') {
            text += p.text;
            expected += p.text;
          } else if (p.t === 'dollar') {
            // "$$" followed by a name character would still be "$" + literal text
            text += '$$';
            expected += '$';
          } else {
            // `$A` followed by a name character would be a longer name: brace it then.
            const next = parts.slice(i + 1).find((q) => q.t !== 'text' || q.text !== '');
            const braced = p.braced || (next?.t === 'text' && /^[A-Za-z0-9_]/.test(next.text));
            text += braced ? `\${${p.name}}` : `$${p.name}`;
            if (Object.hasOwn(env, p.name)) expected += env[p.name];
            else {
              if (!missing.includes(p.name)) missing.push(p.name);
              expected += 'MISSING';
            }
          }
        });
        const r = onlyCniNodeErrors(() => substituteEnv(text, env, 'm.yaml'));
        if (missing.length === 0) assert.equal(r, expected);
        else {
          assert.ok(r instanceof CniNodeError, `expected missing ${missing.join(', ')} for ${JSON.stringify(text)}`);
          assert.ok(r.message.includes(`not set: ${missing.join(', ')} (`), r.message);
        }
      }),
      RUNS,
    );
  });
});

describe('fuzz: CNI config check', () => {
  test('arbitrary text: a verdict, never an exception; bad JSON says where when it can', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyString(80),
          fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1)) + ',}'),
        ),
        fc.constantFrom('a.conf', 'b.conflist', 'c.json'),
        (text, name) => {
          const r = checkNetworkConfig(name, text);
          if (!r.ok) assert.ok(r.problems.length > 0 && r.problems.every((p) => typeof p === 'string' && p.length < 500));
        },
      ),
      FUZZ,
    );
  });
});

describe('fuzz: JSONPath', () => {
  const objects = fc.oneof(
    fc.jsonValue(),
    fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
      key: fc.oneof(fc.constantFrom('a', 'b', 'items', 'name', 'metadata', '__proto__', 'constructor', 'length'), fc.string({ maxLength: 3 })),
    }),
  );
  const jsonPathText = fc.oneof(
    anyString(40),
    piecesOf([
      '{',
      '}',
      '.',
      '..',
      '[',
      ']',
      '*',
      '[*]',
      '?(',
      ')',
      '[?(@.',
      '@',
      '$',
      '==',
      '!=',
      '<',
      '>=',
      '=~',
      '"',
      "'",
      ',',
      ':',
      '-1',
      '0',
      '2',
      '1:3',
      'range ',
      'end',
      '{range .items[*]}',
      '{end}',
      'a',
      'b',
      'items',
      'name',
      '\\',
      ' ',
      '\n',
      'true',
      'null',
      'length(',
      '"\\n"',
      '\\u00',
      '{.a}',
    ]),
  );

  test('compile: a function or a CniNodeError (kind invalid) naming the template', () => {
    fc.assert(
      fc.property(jsonPathText, (template) => {
        const r = onlyCniNodeErrors(() => compileJsonPath(template));
        if (r instanceof CniNodeError) {
          assert.equal(r.kind, 'invalid');
          assert.match(r.message, /^invalid JSONPath template ".*" at position \d+: /s);
        } else assert.equal(typeof r, 'function');
      }),
      FUZZ,
    );
  });

  test('evaluation on arbitrary values: a string or a CniNodeError, and deterministic', () => {
    fc.assert(
      fc.property(jsonPathText, objects, (template, obj) => {
        const f = onlyCniNodeErrors(() => compileJsonPath(template));
        if (f instanceof CniNodeError) return;
        const a = onlyCniNodeErrors(() => f(obj));
        const b = onlyCniNodeErrors(() => f(obj));
        if (typeof a === 'string') assert.equal(b, a);
        else assert.ok(b instanceof CniNodeError);
      }),
      FUZZ,
    );
  });

  // Templates that are valid by construction: they must compile, and evaluate to a string on JSON.
  const key = fc.constantFrom('a', 'b', 'items', 'name', 'metadata', 'constructor', '__proto__', 'x.y');
  const literal = fc.oneof(fc.constantFrom('"x"', "'a'", '1', '-2.5', 'true', 'false', 'null'));
  const segment = fc.oneof(
    key.map((k) => (k.includes('.') ? `['${k}']` : `.${k}`)),
    key.map((k) => `..${k.replace('.', '\\.')}`),
    fc.constantFrom('[*]', '.*', '[0]', '[-1]', '[1:]', '[:2]', '[0:10:2]', '[0,1]', "['a','b']"),
    fc.tuple(key, fc.constantFrom('==', '!=', '<', '<=', '>', '>='), literal).map(([k, op, v]) => `[?(@.${k.replace('.', '\\.')}${op}${v})]`),
    key.map((k) => `[?(@.${k.replace('.', '\\.')})]`),
  );
  const path = fc.array(segment, { maxLength: 5 }).map((s) => s.join(''));
  const action = fc.oneof(
    path.map((p) => `{${p}}`),
    literal.map((l) => `{${l}}`),
    fc.constant('{}'),
  );
  const validTemplate = fc.oneof(
    fc
      .array(
        fc.oneof(
          action,
          fc.string({ maxLength: 5 }).map((s) => s.replace(/[{}]/g, '')),
        ),
        { maxLength: 5 },
      )
      .map((a) => a.join('')),
    fc.tuple(path, fc.array(action, { maxLength: 3 })).map(([p, body]) => `{range ${p}}${body.join('')}{end}`),
  );
  const tree = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      fc.jsonValue({ maxDepth: 1 }),
      fc.array(tie('node'), { maxLength: 4 }),
      fc.dictionary(key, tie('node'), { maxKeys: 4 }),
    ),
  })).node;

  test('valid templates compile and evaluate to a string on any JSON value', () => {
    fc.assert(
      fc.property(validTemplate, fc.oneof(tree, fc.jsonValue()), (template, obj) => {
        const f = compileJsonPath(template);
        assert.equal(typeof f(obj), 'string');
      }),
      FUZZ,
    );
  });

  test('{} prints any JSON value: strings raw, the rest as compact JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        assert.equal(compileJsonPath('{}')(v), typeof v === 'string' ? v : JSON.stringify(v));
      }),
      RUNS,
    );
  });

  test('{.k} of an own key prints that value', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,8}$/), fc.jsonValue()), (obj) => {
        for (const [k, v] of Object.entries(obj)) {
          const expected = typeof v === 'string' ? v : JSON.stringify(v);
          assert.equal(compileJsonPath(`{.${k}}`)(obj), expected);
          assert.equal(compileJsonPath(`{['${k}']}`)(obj), expected);
        }
      }),
      RUNS,
    );
  });
});
