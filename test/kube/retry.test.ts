import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CniNodeError } from '../../src/core/errors.js';
import { Backoff, backoffDelay } from '../../src/sys/backoff.js';
import { DEFAULT_RETRY, maxTotalDelay, retryAfterMs, sleep } from '../../src/kube/retry.js';

test('backoffDelay doubles, is capped, and is jittered between half and all of each step', () => {
  const p = { attempts: 6, baseDelayMs: 250, maxDelayMs: 4_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, p, () => 1)),
    [250, 500, 1000, 2000, 4000, 4000],
  );
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((a) => backoffDelay(a, p, () => 0)),
    [125, 250, 500, 1000, 2000],
  );
});

test('backoffDelay (property): always within [step/2, step], step = min(max, base·2^(n−1))', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 10_000 }),
      fc.integer({ min: 1, max: 60_000 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (attempt, base, max, r) => {
        const step = Math.min(max, base * 2 ** (attempt - 1));
        const d = backoffDelay(attempt, { baseDelayMs: base, maxDelayMs: max }, () => r);
        assert.ok(d >= Math.floor(step / 2) && d <= Math.ceil(step), `${d} for step ${step}`);
      },
    ),
  );
});

test('Backoff: counts consecutive failures, grows to its cap, honours a longer Retry-After, starts over after reset', () => {
  const b = new Backoff({ baseDelayMs: 100, maxDelayMs: 1_000 }, () => 1);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map(() => b.fail()),
    [100, 200, 400, 800, 1_000, 1_000],
  );
  assert.equal(b.failures, 6);
  assert.equal(b.fail(5_000), 5_000, 'a server asking for longer is obeyed');
  assert.equal(b.fail(10), 1_000, 'a shorter hint does not shorten the backoff');
  b.reset();
  assert.equal(b.failures, 0);
  assert.equal(b.fail(), 100);
  assert.equal(b.fail(0, { baseDelayMs: 1_000, maxDelayMs: 60_000 }), 2_000, 'another policy for one failure, the same count');
});

test('the default policy gives up within seconds', () => {
  assert.equal(maxTotalDelay(DEFAULT_RETRY), 250 + 500 + 1000 + 2000 + 4000);
  assert.equal(maxTotalDelay({ attempts: 1, baseDelayMs: 100, maxDelayMs: 100 }), 0);
});

test('retryAfterMs: seconds or an HTTP date, capped; junk ignored', () => {
  assert.equal(retryAfterMs('2', 10_000), 2_000);
  assert.equal(retryAfterMs('100', 10_000), 10_000);
  assert.equal(retryAfterMs(['1'], 10_000), 1_000);
  const now = Date.parse('2024-01-01T00:00:00Z');
  assert.equal(retryAfterMs('Mon, 01 Jan 2024 00:00:03 GMT', 10_000, now), 3_000);
  assert.equal(retryAfterMs('soon', 10_000), undefined);
  assert.equal(retryAfterMs(undefined, 10_000), undefined);
});

test('sleep stops at once when aborted', async () => {
  const ac = new AbortController();
  const started = Date.now();
  const p = sleep(10_000, ac.signal);
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(p, (e: unknown) => e instanceof CniNodeError && e.kind === 'interrupted');
  assert.ok(Date.now() - started < 1_000);
});
