/**
 * What the daemon remembers about the node between reconciles, so that a file
 * event leads to a reconcile only when something that matters really changed:
 *
 *  - templates: the digest of each desired template (through ConfigMap-volume
 *    symlinks), taken BEFORE each reconcile: a change during the reconcile is then
 *    seen as a change afterwards, never lost;
 *  - pointer targets: which node files the templates point to, and their digests
 *    (also before the reconcile): only those files of the node configs dir matter;
 *  - managed files: the stamp (size, mtime, ctime, inode) the engine recorded for
 *    each file it wrote or verified, read from cni-node's record AFTER the reconcile:
 *    the daemon's own writes then match, and anything else (deleted, replaced,
 *    chmod-ed, edited) does not.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { nameProblem } from '../core/names.js';
import { findPointers } from '../core/template.js';
import { sha256 } from '../node/digest.js';
import { INPUT_LIMITS } from '../node/input-limits.js';
import { readRegularBytes } from '../node/read.js';
import type { FileStamp } from '../node/atomic.js';
import { RECORD_FILE, type RecordEntry } from '../node/record.js';

export type RecordSections = Partial<Record<string, RecordEntry[]>>;

/**
 * Reads cni-node's record of `dir` without side effects (the engine's loader moves
 * an unreadable record aside; the daemon only looks). Missing or unreadable: empty.
 */
export async function readRecord(dir: string): Promise<RecordSections> {
  try {
    const bytes = await readRegularBytes(path.join(dir, RECORD_FILE), { maxBytes: INPUT_LIMITS.record, follow: false });
    if (bytes === undefined) return {};
    const v = JSON.parse(bytes.toString('utf8')) as { kinds?: unknown };
    if (!v || typeof v.kinds !== 'object' || v.kinds === null) return {};
    const out: RecordSections = {};
    for (const [k, list] of Object.entries(v.kinds as Record<string, unknown>)) {
      // Bad names are refused (and reported) by the engine's loader; here they are only skipped.
      if (Array.isArray(list)) out[k] = list.filter((e): e is RecordEntry => typeof (e as RecordEntry | null)?.name === 'string' && nameProblem((e as RecordEntry).name) === undefined);
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * sha256 of a file's content (symlinks followed), or undefined if it is absent or
 * cannot be read: not a regular file (a FIFO is never opened for a read that would
 * block), or over `maxBytes` (default: a pointer target's or template's cap).
 */
export async function digestFile(file: string, maxBytes: number = INPUT_LIMITS.template): Promise<string | undefined> {
  try {
    const bytes = await readRegularBytes(file, { maxBytes });
    return bytes === undefined ? undefined : sha256(bytes);
  } catch {
    return undefined;
  }
}

export type Stamp = FileStamp | 'absent' | 'other';

/** The stamp of dir/name without following a symlink. */
export async function stampOf(file: string): Promise<Stamp> {
  try {
    const st = await fs.lstat(file);
    if (!st.isFile()) return 'other';
    return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'other';
  }
}

export function sameStamp(a: Stamp | undefined, b: Stamp | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

export interface TemplateSnapshot {
  /** Template name → digest (undefined: not there). */
  templates: Map<string, string | undefined>;
  /** Desired manifest file name → digest (undefined: not there). */
  manifests: Map<string, string | undefined>;
  /** Node file name → templates that point to it (targets that are themselves desired templates are left out: the engine renders those in the same run). */
  targets: Map<string, string[]>;
  /** Node file name → digest (undefined: not there). */
  targetDigests: Map<string, string | undefined>;
}

export async function snapshotTemplates(
  configsDir: string,
  hostConfigsDir: string,
  names: readonly string[],
  manifests: { dir: string; names: readonly string[] } = { dir: '', names: [] },
): Promise<TemplateSnapshot> {
  const templates = new Map<string, string | undefined>();
  const targets = new Map<string, string[]>();
  const set = new Set(names);
  await Promise.all(
    names.map(async (name) => {
      let text: Buffer | undefined;
      try {
        text = await readRegularBytes(path.join(configsDir, name), { maxBytes: INPUT_LIMITS.template });
      } catch {
        // Not a regular file, or too big: the reconcile reports it; a fix is a template change.
        text = undefined;
      }
      templates.set(name, text === undefined ? undefined : sha256(text));
      if (text === undefined) return;
      let pointers: string[] = [];
      try {
        pointers = findPointers(text.toString('utf8'), name).map((p) => p.name);
      } catch {
        // A bad template: the reconcile reports it; a fix is a template change.
      }
      for (const t of pointers) {
        if (set.has(t)) continue;
        const deps = targets.get(t) ?? [];
        if (!deps.includes(name)) deps.push(name);
        targets.set(t, deps);
      }
    }),
  );
  const targetDigests = new Map<string, string | undefined>();
  await Promise.all([...targets.keys()].map(async (t) => targetDigests.set(t, await digestFile(path.join(hostConfigsDir, t)))));
  const manifestDigests = new Map<string, string | undefined>();
  await Promise.all(manifests.names.map(async (m) => manifestDigests.set(m, await digestFile(path.join(manifests.dir, m), INPUT_LIMITS.manifest))));
  return { templates, manifests: manifestDigests, targets, targetDigests };
}

/** What cni-node meant to write for an item, to tell "restored the same thing" from "wrote something new". */
export function intentOf(kind: string, entry: RecordEntry | undefined): string | undefined {
  if (!entry) return undefined;
  if (kind === 'plugin') return entry.meta?.['source'] !== undefined ? JSON.stringify(entry.meta['source']) : entry.sha256;
  return entry.sha256;
}
