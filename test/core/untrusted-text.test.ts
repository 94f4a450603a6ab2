// Untrusted text in logs, errors, /readyz and Events (issue 13 follow-up): text from
// outside cni-node (the ConfigMap, node files, templates, manifests, the API, a
// plugin's output) reaches an operator only through core/printable.ts, as one line
// of bounded length, and no error, reason or Event grows with its input. Each case
// quotes a hostile input through the code that reports it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkNetworkConfig } from '../../src/core/cni-config.js';
import { CniNodeError, internalError, MAX_ERROR_DETAILS, MAX_ERROR_TEXT } from '../../src/core/errors.js';
import { substituteEnv } from '../../src/core/envsubst.js';
import { MAX_LIST_ITEMS, parseListSpec } from '../../src/core/lists.js';
import { nameProblem, objectNameProblem } from '../../src/core/names.js';
import { cutToBytes, printable, someOf } from '../../src/core/printable.js';
import { findPointers, renderTemplates } from '../../src/core/template.js';
import { desiredFromConfigMap } from '../../src/daemon/desired.js';
import { createEventRecorder, MAX_EVENT_MESSAGE_BYTES } from '../../src/daemon/events.js';
import { describeValue, HandlerQueue } from '../../src/daemon/handler-queue.js';
import { Readiness } from '../../src/daemon/readiness.js';
import { MAX_MANIFEST_DOCUMENTS, MAX_MANIFEST_NODES, parseManifest } from '../../src/kube/manifests.js';
import type { KubeClient, KubeRequest } from '../../src/kube/client.js';

/** A log line that, printed raw, would start a line of its own and clear the screen. */
const FORGED = 'x\n2099-01-01T00:00:00.000Z cni-node: reconcile #9 done\r\u001b[2J\u0085\u2028\u202e';
const MiB = 1024 * 1024;

/** Every way text can leave one line or rewrite a terminal, as printed. */
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const RAW = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

function oneLine(text: string, max: number, what: string): void {
  assert.doesNotMatch(text, RAW, `${what}: a raw control or formatting character in ${JSON.stringify(text.slice(0, 300))}`);
  assert.ok(text.length <= max, `${what}: ${text.length} characters, more than ${max}`);
}

function thrown(fn: () => unknown): CniNodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CniNodeError, String(e));
    return e;
  }
  assert.fail('nothing thrown');
}

/** The error as the CLI prints it: every line of describe() is one of ours, none forged. */
function printedLines(e: CniNodeError): string[] {
  return e.describe().split('\n');
}

describe('untrusted text: one sanitizer (core/printable.ts)', () => {
  test('control characters, DEL, C1, line separators and bidirectional overrides are escaped; the length is capped and the cut said', () => {
    assert.equal(printable(FORGED), 'x\\n2099-01-01T00:00:00.000Z cni-node: reconcile #9 done\\r\\x1b[2J\\x85\\u2028\\u202e');
    assert.equal(printable('a'.repeat(10), 4), 'aaaa… (6 more characters)');
    assert.equal(printable('\n'.repeat(3), 4), '\\n\\n…', 'escapes that grow the text past the cap are cut too');
    assert.equal(printable('😀😀', 3), '😀… (1 more characters)', 'a character is never split');
    assert.equal(printable({ a: '\n' }), '{"a":"\\n"}');
    assert.equal(printable(undefined), '');
    assert.equal(someOf(['a', 'b', 'c'], 2), 'a, b and 1 more');
    assert.equal(cutToBytes('é'.repeat(600), 1024), `${'é'.repeat(510)}…`);
    assert.ok(Buffer.byteLength(cutToBytes('😀'.repeat(600), 1024)) <= 1024);
  });

  test('names: a name that could not be shown as it is (C1 controls, line separators, bidirectional overrides) is refused like a control character', () => {
    for (const bad of ['a\u0085b', 'a\u2028b.conf', 'evil\u202egnp.conf', 'x\u2066y']) {
      assert.match(nameProblem(bad) ?? '', /contains a control character/, JSON.stringify(bad));
      assert.match(objectNameProblem(bad) ?? '', /cannot be used in a URL path/, JSON.stringify(bad));
    }
    assert.equal(nameProblem('05-multus.conf'), undefined);
    assert.equal(nameProblem('été-ünïcode.conf'), undefined, 'ordinary non-ASCII names stay valid');
  });
});

describe('untrusted text: the ConfigMap lists', () => {
  test('a list that tries to forge a log line is quoted on one line', () => {
    for (const text of [`${FORGED}:a:b`, `a,,${FORGED}`, `${FORGED},${FORGED}`]) {
      const e = thrown(() => parseListSpec(text, 'ConfigMap kube-system/x key plugins'));
      for (const line of printedLines(e)) oneLine(line, 2 * MAX_ERROR_TEXT, `list ${JSON.stringify(text)}`);
      assert.ok(
        printedLines(e).every((l, i) => i === 0 || l.startsWith('  - ')),
        e.describe(),
      );
    }
    const r = desiredFromConfigMap({ plugins: `${FORGED}:a` }, 'kube-system/x');
    assert.ok(!r.ok);
    for (const p of r.problems) oneLine(p, 1_000, 'the Desired:Current problem');
  });

  test('a 1 MiB list is one bounded problem, not a megabyte per bad item (it was a RangeError: Invalid string length)', () => {
    for (const value of [`a${','.repeat(MiB)}`, `${'a,'.repeat(MiB / 2)}a`, `${FORGED.repeat(MiB / FORGED.length)}:b`]) {
      const r = desiredFromConfigMap({ plugins: value }, 'kube-system/x');
      assert.ok(!r.ok);
      assert.equal(r.problems.length, 1);
      oneLine(r.problems[0] as string, 20_000, 'a 1 MiB list');
    }
  });

  test(`a list of more than ${MAX_LIST_ITEMS} items is refused: every held item is reported on its own`, () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `p${i}`).join(',');
    assert.equal(parseListSpec(names(MAX_LIST_ITEMS), 'x').desired.length, MAX_LIST_ITEMS);
    const e = thrown(() => parseListSpec(names(MAX_LIST_ITEMS + 1), 'ConfigMap kube-system/x key plugins'));
    assert.match(e.message, /ConfigMap kube-system\/x key plugins \(desired\) has 1001 items; a list may have at most 1000 \(it begins "p0,p1,p2/);
  });
});

describe('untrusted text: errors have a bounded size whatever they quote', () => {
  test(`at most ${MAX_ERROR_DETAILS} details and ${MAX_ERROR_TEXT} characters each, then how many more`, () => {
    const e = new CniNodeError(
      'invalid',
      'm'.repeat(MiB),
      Array.from({ length: 10_000 }, () => 'd'.repeat(10_000)),
    );
    assert.ok(e.message.length < MAX_ERROR_TEXT + 40);
    assert.equal(e.details.length, MAX_ERROR_DETAILS + 1);
    assert.equal(e.details.at(-1), `… and ${10_000 - MAX_ERROR_DETAILS} more`);
    assert.ok(e.describe().length < (MAX_ERROR_DETAILS + 2) * (MAX_ERROR_TEXT + 50));
  });

  test('an internal error quotes its message on one escaped line', () => {
    oneLine(internalError(new SyntaxError(FORGED.repeat(1_000)), false), 2_100, 'internal error');
  });
});

describe('untrusted text: templates, configs and manifests on the node', () => {
  test('template pointers: a megabyte-long or forging pointer name is shown cut and escaped', () => {
    const e = thrown(() => findPointers(`{"a": __${'a'.repeat(MiB)}/x__, "b": "__${'b'.repeat(MiB)}.conf"}`, '05-x.conf'));
    for (const line of printedLines(e)) oneLine(line, 1_000, 'a template problem');
  });

  test('a rendered config: "cniVersion", "name" and the JSON error quote the file on one line', () => {
    const conf = (o: object) => checkNetworkConfig('05-x.conf', JSON.stringify(o));
    for (const r of [
      conf({ cniVersion: FORGED.repeat(20_000), name: FORGED.repeat(20_000), type: 'bridge' }),
      checkNetworkConfig('05-x.conf', `{"cniVersion": "1.0.0" \u001b[2J\n${'x'.repeat(MiB)}}`),
      checkNetworkConfig('05-x.conf', `{"cniVersion": "1.0.0", \u202e: 1}`),
    ]) {
      assert.ok(!r.ok);
      for (const p of r.problems) oneLine(p, 1_000, 'a config problem');
    }
  });

  test('manifests: YAML errors, a metadata.name that is not a string, variable references', () => {
    const { problems } = parseManifest(
      [
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [${Array.from({ length: 5_000 }, () => JSON.stringify(FORGED)).join(',')}]\n`,
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: {a: "${'\\n'.repeat(50_000)}"}\n`,
        `a: b: c: "${'\\u001b'.repeat(10_000)}`,
      ].join('---\n'),
      'm.yaml',
    );
    assert.equal(problems.length, 3, problems.join('\n'));
    for (const p of problems) oneLine(p, 1_000, 'a manifest problem');
    const e = thrown(() =>
      substituteEnv(`a: \${${FORGED.repeat(10_000)}\n${Array.from({ length: 100_000 }, (_, i) => `$V${i}`).join(' ')}`, {}, 'manifest m.yaml'),
    );
    for (const line of printedLines(e)) oneLine(line, 1_000, 'a variable problem');
    const missing = thrown(() => substituteEnv(Array.from({ length: 100_000 }, (_, i) => `$V${i}`).join(' '), {}, 'manifest m.yaml'));
    oneLine(missing.message, 1_000, 'missing variables');
  });
});

describe('untrusted text: what the daemon and kube-watch report', () => {
  test('/readyz: each reason one escaped line', () => {
    const r = new Readiness();
    r.succeeded();
    r.set('configmap-invalid', `ConfigMap x has an invalid list (${FORGED})`);
    const { reason } = r.status();
    assert.equal(reason.split('\n').length, 1);
    oneLine(reason, 2_000, '/readyz');
  });

  test(`an Event: one line of at most ${MAX_EVENT_MESSAGE_BYTES} bytes in UTF-8, the events.k8s.io limit (it was 1024 characters, raw)`, async () => {
    const requests: KubeRequest[] = [];
    const client = { request: async (req: KubeRequest) => (requests.push(req), { status: 201, body: {}, headers: {} }) } as unknown as KubeClient;
    const rec = createEventRecorder({
      client: async () => client,
      env: { POD_NAME: 'p'.repeat(253), POD_NAMESPACE: 'kube-system', POD_UID: 'u' },
      reporter: { item: () => undefined, info: () => undefined, warn: () => undefined },
    });
    rec.emit('InvalidConfigMap', `ConfigMap x: ${FORGED}${'€'.repeat(2_000)}`);
    await rec.flush();
    const body = requests[0]?.body as { message: string; type: string; metadata: { name: string } };
    oneLine(body.message, MAX_EVENT_MESSAGE_BYTES, 'an Event message');
    assert.ok(Buffer.byteLength(body.message) <= MAX_EVENT_MESSAGE_BYTES, `${Buffer.byteLength(body.message)} bytes`);
    assert.ok(body.metadata.name.length <= 253, `an Event name of ${body.metadata.name.length} characters`);
  });

  test('kube-watch: a value is logged as one escaped line', async () => {
    oneLine(describeValue(FORGED.repeat(1_000)), 120, 'a kube-watch value');
    const lines: string[] = [];
    const q = new HandlerQueue({ handler: '/bin/true', channel: '/dev/null/x', log: (l) => void lines.push(l), warn: () => undefined });
    q.push(FORGED, '');
    await q.idle();
    await q.stop();
    for (const l of lines) oneLine(l, 400, 'a kube-watch log line');
  });
});

// The same class seen from the other side: what untrusted input costs to parse and
// report grows at most linearly with it, and stops at a cap. Each case was minutes
// or hundreds of MiB before (the bounds below are far above the linear cost and far
// below the old one, so a noisy machine cannot make them flaky).
describe('untrusted input: parsing and reporting cost at most linear time, within a cap', () => {
  test('templates pointing to templates with 100,000 missing pointer targets each (the merge was quadratic: minutes)', () => {
    const missing = (p: string) => Array.from({ length: 100_000 }, (_, i) => `__${p}${i}__`).join(' ');
    const started = performance.now();
    const out = renderTemplates(
      new Map([
        ['a.conf', '__b.conf__ __c.conf__ __d.conf__'],
        ['b.conf', missing('m')],
        ['c.conf', missing('n')],
        ['d.conf', missing('o')],
      ]),
      () => undefined,
    ).get('a.conf');
    assert.ok(out?.status === 'missing' && out.missing.length === 300_000);
    assert.ok(performance.now() - started < 20_000, `${Math.round(performance.now() - started)} ms`);
  });

  test('a manifest naming 200,000 unset variables (the check was quadratic: 45 s)', () => {
    const started = performance.now();
    const e = thrown(() => substituteEnv(Array.from({ length: 200_000 }, (_, i) => `$V${i}`).join(' '), {}, 'manifest m.yaml'));
    assert.match(e.message, /not set: V0, V1, .* and 199990 more/);
    assert.ok(performance.now() - started < 20_000, `${Math.round(performance.now() - started)} ms`);
  });

  test(`a manifest over ${MAX_MANIFEST_NODES} lines and commas or ${MAX_MANIFEST_DOCUMENTS} documents is refused before it is parsed (1 MB of YAML took 600 MiB, 40,000 keys 10 s)`, () => {
    const head = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n';
    for (const text of [
      `${head}x: [${'1,'.repeat(500_000)}1]\n`,
      `${head}data:\n${Array.from({ length: 40_000 }, (_, i) => `  k${i}: v`).join('\n')}\n`,
      '---\n'.repeat(200_000),
    ]) {
      const before = process.memoryUsage().heapUsed;
      const started = performance.now();
      const r = parseManifest(text, 'big.yaml');
      assert.deepEqual(r.documents, []);
      assert.equal(r.problems.length, 1);
      assert.match(
        r.problems[0] as string,
        /^manifest big\.yaml has more than 20000 lines and commas \(YAML nodes\); it is refused before it is parsed .*split it/,
      );
      assert.ok(performance.now() - started < 2_000, `${Math.round(performance.now() - started)} ms`);
      assert.ok(process.memoryUsage().heapUsed - before < 64 * MiB);
    }
    const docs = parseManifest(`${'---\na: 1\n'.repeat(MAX_MANIFEST_DOCUMENTS + 1)}`, 'docs.yaml');
    assert.match(docs.problems[0] ?? '', /^manifest docs\.yaml has 1001 YAML documents; at most 1000 are parsed/);
    const ok = parseManifest(`${head}data:\n${Array.from({ length: 5_000 }, (_, i) => `  k${i}: v`).join('\n')}\n`, 'ok.yaml');
    assert.deepEqual(ok.problems, []);
    assert.equal(Object.keys((ok.documents[0]?.object as { data: object }).data).length, 5_000);
  });

  test('a manifest of many broken documents is reported by its first problems', () => {
    const r = parseManifest('--- !x\n'.repeat(900), 'broken.yaml');
    assert.equal(r.problems.length, MAX_ERROR_DETAILS + 1);
    assert.equal(r.problems.at(-1), `manifest broken.yaml: ${900 - MAX_ERROR_DETAILS} more problem(s)`);
  });
});
