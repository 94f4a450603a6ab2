import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

/**
 * Unique, unguessable hex strings (temporary file names, the lock's token) without
 * node:crypto. Loading node:crypto costs 74 M instructions, as much as starting
 * Node itself (94 M), and a CLI run that writes needs only a few such names.
 *
 * The first call reads 16 bytes from /dev/urandom (node:crypto's randomBytes, which
 * the bundle loads on first use, only where there is none); every call increments
 * them as a 128-bit counter and returns its low-order digits. So the names of one
 * process never repeat, and those of two processes (two containers on one node)
 * collide no more often than random values of as many digits. Whoever creates a
 * file by such a name still uses O_EXCL.
 */
const SEED_BYTES = 16;
let state: Buffer | undefined;

function seed(): Buffer {
  const buf = Buffer.alloc(SEED_BYTES);
  try {
    const fd = openSync('/dev/urandom', 'r');
    try {
      if (readSync(fd, buf, 0, SEED_BYTES, null) === SEED_BYTES) return buf;
    } finally {
      closeSync(fd);
    }
  } catch {
    // No /dev/urandom (a minimal chroot): the kernel's entropy through node:crypto below.
  }
  return randomBytes(SEED_BYTES);
}

/** The next value, as `hexDigits` hex digits (at most 32): the low-order digits of the counter. */
export function uniqueHex(hexDigits: number): string {
  const s = (state ??= seed());
  for (let i = SEED_BYTES - 1; i >= 0; i--) {
    s[i] = ((s[i] as number) + 1) & 0xff;
    if (s[i] !== 0) break;
  }
  return s.toString('hex').slice(-hexDigits);
}
