import { createHash } from 'node:crypto';

/** sha256 (hex) of bytes or text: what the record keeps of a config or manifest, and how the daemon tells a change. */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
