// sys/unique.ts: temporary file names and lock tokens without node:crypto.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uniqueHex } from '../../src/sys/unique.js';

test('uniqueHex: hex digits of the asked length, never the same twice in a process', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const h = uniqueHex(12);
    assert.match(h, /^[0-9a-f]{12}$/);
    assert.ok(!seen.has(h), `${h} repeated`);
    seen.add(h);
  }
  assert.match(uniqueHex(32), /^[0-9a-f]{32}$/);
});

test('uniqueHex: two processes start from different random seeds', async () => {
  const { execFileSync } = await import('node:child_process');
  const url = new URL('../../src/sys/unique.js', import.meta.url).href;
  const one = () =>
    execFileSync(process.execPath, ['--input-type=module', '-e', `import { uniqueHex } from '${url}'; process.stdout.write(uniqueHex(32));`]).toString();
  const a = one();
  const b = one();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, b);
});
