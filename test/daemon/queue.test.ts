import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { ReconcileQueue, describeTriggers, type Trigger } from '../../src/daemon/queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ReconcileQueue', () => {
  test('the first trigger after a quiet time runs at once; the triggers of the same turn join it', async () => {
    const runs: Trigger[][] = [];
    // A quiet time of a minute: had the first trigger waited for it, nothing would run in this test.
    const q = new ReconcileQueue(async (t) => void runs.push([...t]), { debounceMs: 60_000 });
    for (let i = 0; i < 50; i++) q.trigger('pointer', `file ${i % 5}`);
    assert.equal(runs.length, 0, 'not in the same turn: the rest of the turn joins');
    await sleep(20);
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.length, 50);
    assert.equal(describeTriggers(runs[0] as Trigger[]), 'file 0 (×10); file 1 (×10); file 2 (×10); file 3 (×10); file 4 (×10)');
    await q.close();
  });

  test("triggers within debounceMs of a reconcile's start wait for the end of that time and become exactly one more reconcile", async () => {
    const runs: string[][] = [];
    // 1 s between starts: the triggers below come well within it, however slow the machine.
    const q = new ReconcileQueue(async (t) => void runs.push(t.map((x) => x.reason)), { debounceMs: 1_000 });
    q.trigger('configmap', 'edit 0');
    await sleep(20);
    assert.deepEqual(runs, [['edit 0']], 'the first edit ran at once');
    for (let i = 1; i < 5; i++) {
      q.trigger('configmap', `edit ${i}`);
      await sleep(5);
    }
    assert.equal(runs.length, 1, 'the rest of the burst waits');
    await q.idle();
    assert.deepEqual(runs, [['edit 0'], ['edit 1', 'edit 2', 'edit 3', 'edit 4']]);
    assert.equal(q.runs, 2, 'a burst of five: two reconciles, the first edit and the final state');
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
      { debounceMs: 5 },
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

  test('a steady stream of events starts at most one reconcile per debounceMs, and never starves it', async () => {
    const started: number[] = [];
    const q = new ReconcileQueue(async () => void started.push(performance.now()), { debounceMs: 30 });
    const stream = setInterval(() => q.trigger('template', 'tick'), 5);
    await sleep(300);
    clearInterval(stream);
    await q.idle();
    assert.ok(started.length >= 2, `ran ${started.length} times during a 300 ms stream: the stream does not postpone the work`);
    // A lower bound only (a loaded machine makes the gaps longer, never shorter); 2 ms for timer rounding.
    const gaps = started.slice(1).map((t, i) => t - (started[i] as number));
    assert.ok(
      gaps.every((g) => g >= 28),
      `starts ${gaps.map((g) => g.toFixed(1)).join(', ')} ms apart: none closer than debounceMs`,
    );
    await q.close();
  });

  test('clock step: a wall clock set back after a reconcile does not hold the next change back', async () => {
    // A node's clock is stepped back (NTP at boot, a wrong RTC) after a reconcile
    // started: the next change must still wait at most debounceMs, not the step.
    let clock = 1_000_000_000;
    const runs: string[] = [];
    const q = new ReconcileQueue(async (t) => void runs.push(...t.map((x) => x.reason)), { debounceMs: 50, now: () => clock });
    try {
      q.trigger('start', 'first');
      await sleep(20);
      assert.deepEqual(runs, ['first']);
      clock -= 3_600_000;
      q.trigger('configmap', 'after the step');
      await sleep(500);
      assert.deepEqual(runs, ['first', 'after the step'], 'the change after the clock step ran within debounceMs, not an hour later');
    } finally {
      await q.close();
    }
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
