import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FightDetector } from '../../src/daemon/fight.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('FightDetector', () => {
  test('limit rewrites within the window make a fight; the item is then held', () => {
    const c = clock();
    const f = new FightDetector({ limit: 3, windowMs: 10_000, holdMs: 60_000, now: c.now });
    assert.equal(f.rewrite('config a'), undefined);
    c.advance(1_000);
    assert.equal(f.rewrite('config a'), undefined);
    assert.equal(f.count('config a'), 2);
    c.advance(1_000);
    const hold = f.rewrite('config a');
    assert.ok(hold);
    assert.equal(hold.rewrites, 3);
    assert.equal(hold.until - hold.since, 60_000);
    assert.equal(f.isHeld('config a'), true);
    assert.equal(f.isHeld('config b'), false);
    assert.equal(f.rewrite('config a'), undefined, 'a held item is not counted again');
  });

  test('rewrites spread wider than the window are no fight', () => {
    const c = clock();
    const f = new FightDetector({ limit: 3, windowMs: 10_000, holdMs: 60_000, now: c.now });
    for (let i = 0; i < 20; i++) {
      assert.equal(f.rewrite('plugin x'), undefined, `rewrite ${i}`);
      c.advance(6_000);
    }
    assert.equal(f.held().length, 0);
  });

  test('items are counted separately', () => {
    const c = clock();
    const f = new FightDetector({ limit: 2, windowMs: 10_000, holdMs: 1_000, now: c.now });
    assert.equal(f.rewrite('config a'), undefined);
    assert.equal(f.rewrite('config b'), undefined);
    assert.ok(f.rewrite('config a'));
    assert.equal(f.isHeld('config b'), false);
  });

  test('holds expire; counting starts afresh after', () => {
    const c = clock();
    const f = new FightDetector({ limit: 2, windowMs: 10_000, holdMs: 5_000, now: c.now });
    f.rewrite('config a');
    f.rewrite('config a');
    assert.equal(f.nextExpiry(), c.now() + 5_000);
    c.advance(4_999);
    assert.deepEqual(f.expire(), []);
    c.advance(1);
    assert.deepEqual(
      f.expire().map((h) => h.key),
      ['config a'],
    );
    assert.equal(f.isHeld('config a'), false);
    assert.equal(f.nextExpiry(), undefined);
    assert.equal(f.rewrite('config a'), undefined, 'one rewrite after the hold is not yet a fight');
    assert.ok(f.rewrite('config a'));
  });

  test('release and forget', () => {
    const c = clock();
    const f = new FightDetector({ limit: 2, windowMs: 10_000, holdMs: 5_000, now: c.now });
    f.rewrite('config a');
    f.forget('config a');
    assert.equal(f.rewrite('config a'), undefined, 'forgotten history');
    f.rewrite('config a');
    assert.equal(f.release('config a'), true);
    assert.equal(f.isHeld('config a'), false);
    assert.equal(f.release('config a'), false);
  });

  test('a limit below 1 is refused', () => {
    assert.throws(() => new FightDetector({ limit: 0, windowMs: 1, holdMs: 1 }), RangeError);
  });
});
