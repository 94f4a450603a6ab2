// core/sha256.ts: SHA-256 in JavaScript, for the small inputs the record keeps
// digests of, must give exactly what node:crypto gives (FIPS 180-4 vectors, every
// padding boundary, random inputs), and sys/digest.ts the same on both sides of
// the size where it switches to node:crypto.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { sha256Hex } from '../../src/core/sha256.js';
import { sha256 } from '../../src/sys/digest.js';

const nodeSha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

describe('sha256', () => {
  test('the FIPS 180-4 examples', () => {
    assert.equal(sha256Hex(Buffer.from('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(sha256Hex(Buffer.from('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(
      sha256Hex(Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  test('every length around the 64-byte block and its 9 bytes of padding, as node:crypto', () => {
    for (let n = 0; n <= 200; n++) {
      const data = randomBytes(n);
      assert.equal(sha256Hex(data), nodeSha256(data), `length ${n}`);
    }
  });

  test('random inputs, as node:crypto', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), (data) => sha256Hex(data) === nodeSha256(data)),
      { numRuns: 300 },
    );
  });

  test('digest.ts: text and bytes, below and above the size where node:crypto takes over', () => {
    for (const n of [0, 1, 4096, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_000]) {
      const data = randomBytes(n);
      assert.equal(sha256(data), nodeSha256(data), `${n} bytes`);
    }
    const text = '{"cniVersion":"0.3.1","name":"ü-net — ✓"}\n';
    assert.equal(sha256(text), nodeSha256(text), 'text is hashed as UTF-8');
  });
});
