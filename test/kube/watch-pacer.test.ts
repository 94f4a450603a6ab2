// When a list+watch tries again (src/kube/watch-pacer.ts): the decisions alone,
// with the jitter pinned to the top of each step. The same rules against a real
// API server are in test/kube/watch.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WatchPacer, type WatchEnd } from '../../src/kube/watch-pacer.js';

const policy = { baseDelayMs: 500, maxDelayMs: 30_000 };
const pacer = (): WatchPacer => new WatchPacer(policy, () => 1);
const end = (reason: WatchEnd['reason'], progressed: boolean): WatchEnd => ({ reason, detail: '', progressed });

test('failed attempts back off exponentially to the cap, Retry-After when longer', () => {
  const p = pacer();
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map(() => p.failed()),
    [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000],
  );
  assert.equal(p.failed(45_000), 45_000);
});

test('a healthy watch that ended (timeout, close, 410) is re-established at once', () => {
  const p = pacer();
  for (const reason of ['timeout', 'closed', 'expired'] as const) assert.equal(p.ended(end(reason, true)), 0, reason);
  assert.equal(p.ended(end('error', true)), 500, 'a broken connection waits the first step');
});

test("after an outage, a watch the server answered and then cut at once waits the first step, not the outage's", () => {
  const p = pacer();
  for (let i = 0; i < 8; i++) p.failed(); // the API server was away: 30 s steps by now
  p.answered(); // it is back: the watch opened
  assert.equal(p.ended(end('closed', false)), 500);
  assert.equal(p.failed(), 500, 'and a failure after that starts from the base too');
});

test('watches that open and end at once, again and again, meet a growing delay (no loop of requests)', () => {
  const p = pacer();
  const delays = [1, 2, 3, 4, 5, 6, 7].map(() => {
    p.answered();
    return p.ended(end('closed', false));
  });
  assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
  assert.equal(p.ended(end('closed', true)), 0, 'progress ends the streak');
  assert.equal(p.ended(end('stalled', false)), 500);
});

test('410 for the first watch after a list is not progress: a list/410 loop backs off', () => {
  const p = pacer();
  // watch.ts marks such an end as not progressed (see ListWatch.watch).
  const delays = [1, 2, 3].map(() => {
    p.answered(); // the list went through
    return p.ended(end('expired', false));
  });
  assert.deepEqual(delays, [500, 1_000, 2_000]);
});

test('watches that open and then send something refused (an event over the cap, not JSON) meet a growing delay, not the first step each time', () => {
  const p = pacer();
  const delays = [1, 2, 3, 4, 5, 6, 7].map(() => {
    p.answered(); // the watch opened: the unavailable streak ends
    return p.refused();
  });
  assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
  assert.equal(p.ended(end('timeout', true)), 0, 'a healthy watch ends the streak');
  assert.equal(p.refused(), 500);
});
