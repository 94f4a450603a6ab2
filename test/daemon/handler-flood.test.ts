// A flood of value changes (a busy object watched with `{}`, or a broken or hostile
// API server streaming new versions of one) while kube-watch's handler runs: the
// changes are coalesced into at most one waiting run with the latest value, so
// neither the runs nor the values held grow with the flood; and the template,
// evaluated on the whole watched set, runs at most once per 100 ms.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HandlerQueue } from '../../src/daemon/handler-queue.js';
import { EVALUATE_EVERY_MS, latestAtMostEvery } from '../../src/daemon/kube-watch.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'handler-flood-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('a flood of changes: kube-watch handler runs are coalesced', { timeout: 60_000 }, () => {
  test('2,000 changes of a 64 KiB value while the handler runs: one run waits, with the latest value and the previous one the handler saw', async () => {
    const runs = path.join(dir, 'runs');
    const handler = path.join(dir, 'handler.sh');
    // Records each run's current and previous value (their first 8 characters), slowly.
    await writeFile(handler, `#!/bin/sh\nprintf '%.8s %.8s\\n' "$2" "$3" >> ${JSON.stringify(runs)}\nsleep 0.3\n`);
    await chmod(handler, 0o755);
    const lines: string[] = [];
    const q = new HandlerQueue({ handler, channel: path.join(dir, 'channel'), log: (l) => void lines.push(l), warn: (l) => void lines.push(`warning: ${l}`) });
    // A flat string of its own each time, as JSON.parse makes them (a repeat() would share one).
    const value = (i: number) => `${String(i).padStart(8, '0')}${Buffer.alloc(64 * 1024, 'v').toString('latin1')}`;
    let previous = '';
    q.push(value(0), previous);
    previous = value(0);
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 1; i <= 2_000; i++) {
      q.push(value(i), previous);
      previous = value(i);
    }
    // Each of 2,000 queued runs held its own 64 KiB value: 125 MiB.
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 32 * 1024 * 1024, `the values of the flood are not all held: the heap grew by ${Math.round(grown / 1024 / 1024)} MiB`);
    await q.idle();
    assert.equal(q.runs, 2, lines.join('\n'));
    assert.equal(q.coalesced, 1_999);
    assert.deepEqual((await readFile(runs, 'utf8')).trim().split('\n'), ['00000000 ', '00002000 00000000']);
    assert.equal((await readFile(path.join(dir, 'channel'), 'utf8')).slice(0, 8), '00002000');
    assert.ok(
      lines.some((l) =>
        /value changed \("00000000v+… \(\d+ more characters\)" → "00002000v+… \(\d+ more characters\)"; 1999 change\(s\) in between coalesced while the handler ran\)/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
    await q.stop();
  });

  test('changes that come back to the value the handler last saw run nothing', async () => {
    const q = new HandlerQueue({ handler: '/bin/true', channel: path.join(dir, 'channel2'), log: () => undefined, warn: () => undefined });
    q.push('a', '');
    q.push('b', 'a'); // waits: the first run has started
    q.push('a', 'b'); // back to what the handler last saw: nothing waits
    await q.idle();
    assert.equal(q.runs, 1);
    await q.stop();
  });
});

describe('a flood of watch events: kube-watch evaluates its template at most once per 100 ms', () => {
  test('10,000 deliveries in a row: one evaluation at once, one with the last set at the end of the window; none after stop', async () => {
    const seen: number[] = [];
    const stop = new AbortController();
    const offer = latestAtMostEvery<number>(EVALUATE_EVERY_MS, stop.signal, (v) => void seen.push(v));
    for (let i = 1; i <= 10_000; i++) offer(i);
    assert.deepEqual(seen, [1]);
    await new Promise((r) => setTimeout(r, EVALUATE_EVERY_MS + 50));
    assert.deepEqual(seen, [1, 10_000]);
    await new Promise((r) => setTimeout(r, EVALUATE_EVERY_MS + 50));
    offer(10_001); // quiet for a window: at once
    assert.deepEqual(seen, [1, 10_000, 10_001]);
    offer(10_002);
    stop.abort();
    await new Promise((r) => setTimeout(r, EVALUATE_EVERY_MS + 50));
    offer(10_003);
    assert.deepEqual(seen, [1, 10_000, 10_001]);
  });
});
