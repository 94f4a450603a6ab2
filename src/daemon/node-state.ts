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
import path from 'node:path';
import { findPointers } from '../core/template.js';
import { sha256 } from '../sys/digest.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegularBytes } from '../sys/read.js';
import type { RecordEntry, Reporter } from '../core/contracts.js';
import { NodeRecord } from '../node/record.js';

const QUIET: Reporter = { item: () => undefined, warn: () => undefined, info: () => undefined };

/**
 * cni-node's record of `dir`, read without side effects: a damaged record is left
 * in place and reads as empty, and refused entries are left out, silently (the
 * engine's locked pass reports and mends both). Undefined if it cannot be read.
 */
export async function readRecord(dir: string): Promise<NodeRecord | undefined> {
  return NodeRecord.load(dir, QUIET, { readOnly: true }).catch(() => undefined);
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
