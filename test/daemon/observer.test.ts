// The daemon's observer: one reconcile outcome → metrics (with the failure class
// as a label), readiness, Events and log lines.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ItemReport } from '../../src/core/contracts.js';
import { CniNodeError } from '../../src/core/errors.js';
import { EVENT_REASONS, type EventRecorder } from '../../src/daemon/events.js';
import { createMetrics } from '../../src/daemon/metrics.js';
import { failureClass, ReconcileObserver } from '../../src/daemon/observer.js';
import { Readiness } from '../../src/daemon/readiness.js';
import type { ReconcileResult } from '../../src/engine/engine.js';

function observed() {
  const log: string[] = [];
  const events: string[] = [];
  const metrics = createMetrics();
  const readiness = new Readiness();
  const recorder: EventRecorder = {
    enabled: true,
    emit: (reason) => void events.push(`${EVENT_REASONS[reason]} ${reason}`),
    flush: async () => undefined,
    close: () => undefined,
  };
  const reporter = {
    item: (r: ItemReport) => void log.push(`${r.kind} ${r.name}: ${r.result}`),
    info: (m: string) => void log.push(m),
    warn: (m: string) => void log.push(`warning: ${m}`),
    error: (m: string) => void log.push(`error: ${m}`),
  };
  const observer = new ReconcileObserver(
    { reporter, metrics, readiness, events: recorder },
    { hostConfigsDir: '/host/etc/cni/net.d', fightWindowMs: 60_000, debug: false },
  );
  const text = async () => metrics.registry.metrics();
  return { log, events, metrics, readiness, observer, text };
}

const result = (over: Partial<ReconcileResult> = {}): ReconcileResult => ({ reports: [], waiting: new Map(), changed: 0, invalid: new Map(), ...over });

describe('the observer', () => {
  test('the failure class is the error kind, or internal for a bug', () => {
    assert.equal(failureClass(new CniNodeError('api', 'x')), 'api');
    assert.equal(failureClass(new CniNodeError('io', 'x')), 'io');
    assert.equal(failureClass(new TypeError('x')), 'internal');
  });

  test('a failed reconcile: counted with its failure class, logged with the retry, not ready, a Warning Event', async () => {
    const o = observed();
    o.observer.finished({
      id: 1,
      seconds: 0.01,
      how: 'failed',
      error: new CniNodeError('api', 'the API server cannot be reached'),
      input: false,
      retryInMs: 1500,
    });
    o.observer.finished({ id: 2, seconds: 0.01, how: 'failed', error: new TypeError('boom'), input: false, retryInMs: 3000 });
    const m = await o.text();
    assert.match(m, /cni_node_reconciles_total\{result="failed",failure="api"\} 1/);
    assert.match(m, /cni_node_reconciles_total\{result="failed",failure="internal"\} 1/);
    assert.match(o.log.join('\n'), /error: reconcile #1 failed after 10 ms \(retrying in 1\.5 s\): the API server cannot be reached/);
    assert.match(o.log.join('\n'), /reconcile #2 failed .*internal error \(please report it\): TypeError: boom/);
    assert.equal(o.readiness.status().ready, false);
    assert.deepEqual(o.events, ['Warning ReconcileFailed', 'Warning ReconcileFailed']);
  });

  test('success after a failure: counted without a failure class, ready, a Normal "Reconciled" Event once', async () => {
    const o = observed();
    o.observer.finished({ id: 1, seconds: 0.01, how: 'failed', error: new CniNodeError('io', 'disk full'), input: false, retryInMs: 1000 });
    const reports: ItemReport[] = [{ kind: 'plugin', name: 'bridge', result: 'installed' }];
    o.observer.finished({ id: 2, seconds: 0.02, how: 'done', result: result({ changed: 1 }), reports, kinds: ['plugin'], desired: { plugin: ['bridge'] } });
    o.observer.finished({ id: 3, seconds: 0.02, how: 'done', result: result(), reports: [], kinds: ['plugin'], desired: { plugin: ['bridge'] } });
    const m = await o.text();
    assert.match(m, /cni_node_reconciles_total\{result="success"\} 2/);
    assert.match(m, /cni_node_item_changes_total\{kind="plugin",result="installed"\} 1/);
    assert.equal(o.readiness.status().ready, true);
    assert.deepEqual(o.events, ['Warning ReconcileFailed', 'Normal Reconciled']);
    assert.ok(o.log.includes('reconcile #2 done in 20 ms: 1 changed (1 installed)'), o.log.join('\n'));
  });

  test('held items: partial, labelled with their failure class; reported once, cleared when fixed', async () => {
    const o = observed();
    const problem = new CniNodeError('invalid', 'config 05-x.conf is not valid', [], { items: ['config 05-x.conf'] });
    const held = result({ invalid: new Map([['config 05-x.conf', [problem]]]) });
    for (const id of [1, 2])
      o.observer.finished({
        id,
        seconds: 0.01,
        how: 'done',
        result: held,
        reports: [],
        kinds: ['config'],
        desired: { config: ['05-x.conf'] },
        retryInMs: 30_000,
      });
    assert.match(await o.text(), /cni_node_reconciles_total\{result="partial",failure="invalid"\} 2/);
    assert.equal(o.observer.heldItems, 1);
    assert.deepEqual(o.events, ['Warning ItemInvalid'], 'reported once while the problem stays the same');
    assert.match(o.readiness.status().reason, /config 05-x\.conf is left as it is on the node/);
    o.observer.finished({ id: 3, seconds: 0.01, how: 'done', result: result(), reports: [], kinds: ['config'], desired: { config: ['05-x.conf'] } });
    assert.equal(o.observer.heldItems, 0);
    assert.ok(o.log.includes('config 05-x.conf: no longer has a problem'));
    assert.equal(o.readiness.status().ready, true);
  });

  // The rule (daemon/events.ts): whatever makes the pod NotReady or holds an item is a
  // Warning, so operators filtering on type=Warning see it; its end is Normal. The
  // waiting Event was Normal while the pod was NotReady, and only failures had an end.
  test('Event types follow readiness: each Event that comes with NotReady is a Warning, each that comes with the return to Ready is Normal', () => {
    const o = observed();
    const done = (id: number, over: Partial<ReconcileResult> = {}) =>
      o.observer.finished({ id, seconds: 0.01, how: 'done', result: result(over), reports: [], kinds: ['config'], desired: { config: ['05-x.conf'] } });
    const steps: Array<[string, () => void, string]> = [
      [
        'a failed reconcile',
        () => o.observer.finished({ id: 1, seconds: 0.01, how: 'failed', error: new CniNodeError('io', 'disk full'), input: false, retryInMs: 1000 }),
        'Warning ReconcileFailed',
      ],
      ['the next succeeds', () => done(2), 'Normal Reconciled'],
      [
        'a config waits for its pointer target',
        () => done(3, { waiting: new Map([['05-x.conf', ['10-calico.conflist']]]) }),
        'Warning WaitingForPointerTarget',
      ],
      ['the target appears', () => done(4), 'Normal Reconciled'],
      [
        'an item is held',
        () => done(5, { invalid: new Map([['config 05-x.conf', [new CniNodeError('invalid', 'bad', [], { items: ['config 05-x.conf'] })]]]) }),
        'Warning ItemInvalid',
      ],
      ['it is fixed', () => done(6), 'Normal Reconciled'],
      [
        'a fight',
        () => o.observer.fightStarted({ key: 'config 05-x.conf', since: 0, until: 300_000, rewrites: 5 }, '/host/etc/cni/net.d', 1),
        'Warning FightDetected',
      ],
      ['the fight hold ends', () => o.observer.fightEnded('config 05-x.conf', 'expired'), 'Normal FightEnded'],
    ];
    for (const [what, step, event] of steps) {
      const before = o.events.length;
      step();
      assert.deepEqual(o.events.slice(before), [event], what);
      const ready = o.readiness.status().ready;
      assert.equal(ready, event.startsWith('Normal'), `${what}: /readyz says ${ready ? 'ready' : 'not ready'} with ${event}`);
    }
    for (const [reason, type] of Object.entries(EVENT_REASONS)) assert.ok(type === 'Warning' || type === 'Normal', reason);
  });
});
