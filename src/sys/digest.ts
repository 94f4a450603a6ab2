import { createHash } from 'node:crypto';
import { sha256Hex } from '../core/sha256.js';

/** Up to this size the digest is computed in JavaScript (core/sha256.ts): node:crypto is loaded only for larger inputs. */
const JS_DIGEST_MAX_BYTES = 64 * 1024;

/** sha256 (hex) of bytes or text: what the record keeps of a config or manifest, and how the daemon tells a change. */
export function sha256(data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (bytes.length <= JS_DIGEST_MAX_BYTES) return sha256Hex(bytes);
  return createHash('sha256').update(bytes).digest('hex');
}
