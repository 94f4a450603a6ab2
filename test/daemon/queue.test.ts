import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReconcileQueue, describeTriggers, type Trigger } from '../../src/daemon/queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ReconcileQueue', () => {
  test('a burst of triggers becomes one reconcile with every trigger', async () => {
    const runs: Trigger[][] = [];
    const q = new ReconcileQueue(async (t) => void runs.push([...t]), { debounceMs: 20, maxDelayMs: 200 });
    for (let i = 0; i < 50; i++) q.trigger('pointer', `file ${i % 5}`);
    await sleep(5);
    assert.equal(runs.length, 0, 'nothing runs before the burst is over');
    await q.idle();
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.length, 50);
    assert.equal(describeTriggers(runs[0] as Trigger[]), 'file 0 (×10); file 1 (×10); file 2 (×10); file 3 (×10); file 4 (×10)');
    await q.close();
  });

  test('reconciles never overlap; triggers during a run start exactly one more run after it', async () => {
    let active = 0;
    let maxActive = 0;
    const runs: string[][] = [];
    // The first run lasts until the test has given all its triggers, however slow
    // the machine: a fixed duration (it was 60 ms) let a loaded machine end the run
    // part way through the triggers, which then made two more runs, not one.
    let started: () => void = () => undefined;
    const firstStarted = new Promise<void>((r) => (started = r));
    let release: () => void = () => undefined;
    const firstReleased = new Promise<void>((r) => (release = r));
    const q = new ReconcileQueue(
      async (t) => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs.push(t.map((x) => x.reason));
        if (runs.length === 1) {
          started();
          await firstReleased;
        } else {
          await sleep(20);
        }
        active--;
      },
      { debounceMs: 5, maxDelayMs: 20 },
    );
    q.trigger('start', 'start');
    await firstStarted;
    assert.equal(q.busy, true);
    for (let i = 0; i < 10; i++) {
      q.trigger('configmap', `edit ${i}`);
      await sleep(3);
    }
    release();
    await q.idle();
    assert.equal(maxActive, 1, 'one reconcile at a time');
    assert.deepEqual(runs, [['start'], Array.from({ length: 10 }, (_, i) => `edit ${i}`)]);
    assert.equal(q.runs, 2);
    await q.close();
  });

  test('a steady stream of events cannot postpone the reconcile past maxDelayMs', async () => {
    const started: number[] = [];
    const q = new ReconcileQueue(async () => void started.push(Date.now()), { debounceMs: 30, maxDelayMs: 100 });
    const t0 = Date.now();
    const stream = setInterval(() => q.trigger('template', 'tick'), 10);
    await sleep(250);
    clearInterval(stream);
    await q.idle();
    assert.ok(started.length >= 2, `ran ${started.length} times during a 250 ms stream`);
    assert.ok((started[0] as number) - t0 < 160, `first run after ${(started[0] as number) - t0} ms`);
    await q.close();
  });

  test('a failing run is reported and does not stop the queue', async () => {
    const errors: unknown[] = [];
    let n = 0;
    const q = new ReconcileQueue(
      async () => {
        n++;
        if (n === 1) throw new Error('boom');
      },
      { debounceMs: 1, onError: (e) => errors.push(e) },
    );
    q.trigger('start', 'a');
    await q.idle();
    q.trigger('retry', 'b');
    await q.idle();
    assert.equal(n, 2);
    assert.equal(errors.length, 1);
    await q.close();
  });

  test('close() waits for the running reconcile and drops what is pending', async () => {
    let finished = false;
    let runs = 0;
    const q = new ReconcileQueue(
      async () => {
        runs++;
        await sleep(50);
        finished = true;
      },
      { debounceMs: 1 },
    );
    q.trigger('start', 'a');
    await sleep(10);
    q.trigger('configmap', 'b');
    await q.close();
    assert.equal(finished, true);
    await sleep(20);
    assert.equal(runs, 1);
    q.trigger('configmap', 'c');
    await sleep(20);
    assert.equal(runs, 1, 'a closed queue starts nothing');
  });
});
