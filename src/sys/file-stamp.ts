import { lstatSync } from 'node:fs';
import type { FileStamp } from '../core/contracts.js';

/**
 * File stamps: what identifies a file's bytes without reading them (size, mtime,
 * ctime, inode). The record keeps the stamp of each file cni-node wrote, so a
 * no-op run compares stamps, not bytes, and the daemon tells its own writes from
 * anyone else's.
 */

/** A stamp, or what is there instead: nothing, or something that is not a regular file. */
export type Stamp = FileStamp | 'absent' | 'other';

type StatLike = { size: number; mtimeMs: number; ctimeMs: number; ino: number };

export function stampOf(st: StatLike): FileStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}

export function sameStamp(a: Stamp | undefined, b: Stamp | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

/** The stamp of `file` without following a symbolic link. */
export async function stampAt(file: string): Promise<Stamp> {
  try {
    const st = lstatSync(file);
    return st.isFile() ? stampOf(st) : 'other';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'other';
  }
}

/** A stamp as one string, with the device and mode too: for watchers that only ask "did it change?". */
export function stampKey(st: StatLike & { dev: number; mode: number }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`;
}
