// The periodic re-check of manifests (CNI_NODE_MANIFEST_RECHECK): a reconcile that
// covers manifests a period (± 25 %) after the last one, so an object someone deleted
// (the per-node ClusterRoleBinding, which cni-node may not even read) comes back
// without waiting for a ConfigMap change or a restart. The real API server case is in
// test/e2e/daemon-hostile.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManifestRecheck } from '../../src/daemon/manifest-recheck.js';
import { SETTINGS } from '../../src/core/settings.js';

describe('the periodic re-check of manifests', () => {
  test('each wait is 0.75–1.25 × the period, so nodes that reconciled together spread out', () => {
    const r = (x: number) =>
      new ManifestRecheck(
        60_000,
        () => undefined,
        () => x,
      );
    assert.equal(r(0).nextDelay(), 45_000);
    assert.equal(r(0.5).nextDelay(), 60_000);
    assert.equal(r(0.999999).nextDelay(), 75_000);
    const real = new ManifestRecheck(60_000, () => undefined);
    const delays = Array.from({ length: 1000 }, () => real.nextDelay());
    assert.ok(Math.min(...delays) >= 45_000 && Math.max(...delays) <= 75_000);
    assert.ok(new Set(delays).size > 100, 'drawn anew each time');
  });

  test('fires a period after the last schedule; a new schedule restarts the wait; off without manifests, with 0, and after stop', async () => {
    let fired = 0;
    const r = new ManifestRecheck(
      100,
      () => void fired++,
      () => 0.5,
    );
    r.schedule(true);
    await new Promise((res) => setTimeout(res, 60));
    r.schedule(true); // a reconcile covered manifests meanwhile: the wait starts again
    await new Promise((res) => setTimeout(res, 60));
    assert.equal(fired, 0);
    await new Promise((res) => setTimeout(res, 80));
    assert.equal(fired, 1);
    r.schedule(false);
    const off = new ManifestRecheck(0, () => void fired++);
    off.schedule(true);
    r.schedule(true);
    r.stop();
    await new Promise((res) => setTimeout(res, 150));
    assert.equal(fired, 1);
  });

  test('CNI_NODE_MANIFEST_RECHECK: 30 minutes by default; a duration; 0 turns it off', () => {
    assert.equal(SETTINGS.manifestRecheck.read({}), 30 * 60_000);
    assert.equal(SETTINGS.manifestRecheck.read({ CNI_NODE_MANIFEST_RECHECK: '2m' }), 120_000);
    assert.equal(SETTINGS.manifestRecheck.read({ CNI_NODE_MANIFEST_RECHECK: '0' }), 0);
    assert.throws(() => SETTINGS.manifestRecheck.read({ CNI_NODE_MANIFEST_RECHECK: 'soon' }), /CNI_NODE_MANIFEST_RECHECK=soon/);
  });
});
