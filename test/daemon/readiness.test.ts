import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Readiness } from '../../src/daemon/readiness.js';

describe('Readiness', () => {
  test('not ready before the first reconcile', () => {
    const r = new Readiness();
    const s = r.status();
    assert.equal(s.ready, false);
    assert.match(s.reason, /first reconcile has not completed/);
    assert.equal(r.firstReconcileDone, false);
  });

  test('a failed first reconcile is not ready, with the reason', () => {
    const r = new Readiness();
    r.failed('plugin nope is not in the plugins dir');
    const s = r.status();
    assert.equal(s.ready, false);
    assert.match(s.reason, /the last reconcile failed: plugin nope is not in the plugins dir/);
    assert.match(s.reason, /no reconcile has completed yet/);
  });

  test('ready after a complete reconcile, not ready after a failure, ready again after success', () => {
    const r = new Readiness();
    r.succeeded();
    assert.deepEqual(r.status(), { ready: true, reason: 'ok' });
    r.failed('cannot write /x: disk full');
    assert.equal(r.status().ready, false);
    assert.match(r.status().reason, /disk full/);
    assert.doesNotMatch(r.status().reason, /no reconcile has completed/);
    r.succeeded(new Map());
    assert.equal(r.status().ready, true);
  });

  test('a template waiting for its pointer target is not ready (and not complete)', () => {
    const r = new Readiness();
    r.succeeded(new Map([['05-multus.conf', ['10-calico.conflist']]]));
    assert.equal(r.status().ready, false);
    assert.match(r.status().reason, /config 05-multus.conf is waiting for 10-calico.conflist/);
    assert.equal(r.firstReconcileDone, false);
    r.succeeded();
    assert.equal(r.status().ready, true);
    assert.equal(r.firstReconcileDone, true);
  });

  test('standing problems keep it not ready until cleared', () => {
    const r = new Readiness();
    r.succeeded();
    r.set('configmap-invalid', 'ConfigMap kube-system/multus-cni has an invalid list');
    r.set('fight config a', 'something else keeps rewriting a');
    const s = r.status();
    assert.equal(s.ready, false);
    assert.deepEqual(s.reason.split('\n'), ['ConfigMap kube-system/multus-cni has an invalid list', 'something else keeps rewriting a']);
    assert.equal(r.has('configmap-invalid'), true);
    r.set('configmap-invalid', undefined);
    r.set('fight config a', undefined);
    assert.equal(r.status().ready, true);
  });
});
