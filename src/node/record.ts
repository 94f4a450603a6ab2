import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Reporter } from '../engine/types.js';
import { removeFile, writeFileAtomic, type FileStamp } from './atomic.js';

/**
 * The record of what cni-node installed, kept in the node directory itself (no
 * extra mount). `apply` without `:Current` removes only what is recorded here, so a
 * file another installer put in the directory is never touched.
 *
 * The file is hidden and has no .conf/.conflist/.json ending: container runtimes
 * load every such file in /etc/cni/net.d, hidden ones included.
 */
export const RECORD_FILE = '.cni-node-state';
const FORMAT = 'cni-node/record/v1';

export interface RecordEntry {
  name: string;
  /** sha256 (hex) of what cni-node wrote, where cheap to know (configs, manifests). Plugins rely on stamps. */
  sha256?: string;
  /** The node file's stamp right after cni-node wrote (or verified) it. */
  stamp?: FileStamp;
  /** Kind-specific facts (a plugin's source stamp, a manifest's object references, …). */
  meta?: Record<string, unknown>;
}

interface RecordFile {
  format: string;
  /** Sections by kind ("plugin", "config", "manifest"); entries in install order. */
  kinds: Record<string, RecordEntry[]>;
}

export class NodeRecord {
  private data: RecordFile;
  private dirty = false;
  /** The record file exists but could not be read (left in place when loaded read-only). */
  damaged = false;

  private constructor(
    readonly dir: string,
    data: RecordFile,
  ) {
    this.data = data;
  }

  /**
   * Loads the record of `dir`. A missing record is an empty one. An unreadable one
   * is moved aside (kept for the operator; left in place when readOnly) and treated as empty: nothing is then
   * known to be cni-node's, so nothing is removed on its word.
   */
  static async load(dir: string, reporter: Reporter, opts: { readOnly?: boolean } = {}): Promise<NodeRecord> {
    const file = path.join(dir, RECORD_FILE);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        reporter.warn(`cannot read cni-node's record ${file} (${(e as Error).message}); treating nothing in ${dir} as installed by cni-node`);
      }
      return new NodeRecord(dir, { format: FORMAT, kinds: {} });
    }
    const parsed = parseRecord(text);
    if (parsed) return new NodeRecord(dir, parsed);
    if (opts.readOnly) {
      const record = new NodeRecord(dir, { format: FORMAT, kinds: {} });
      record.damaged = true;
      return record;
    }
    const aside = `${file}.unreadable-${Date.now()}`;
    await fs.rename(file, aside).catch(() => undefined);
    reporter.warn(
      `cni-node's record ${file} is unreadable; moved it to ${aside}. Nothing in ${dir} is treated as installed by cni-node until it is installed again; files are not removed on the strength of the old record`,
    );
    const record = new NodeRecord(dir, { format: FORMAT, kinds: {} });
    record.dirty = true;
    return record;
  }

  names(kind: string): string[] {
    return (this.data.kinds[kind] ?? []).map((e) => e.name);
  }

  get(kind: string, name: string): RecordEntry | undefined {
    return this.data.kinds[kind]?.find((e) => e.name === name);
  }

  set(kind: string, entry: RecordEntry): void {
    const list = (this.data.kinds[kind] ??= []);
    const i = list.findIndex((e) => e.name === entry.name);
    const before = i === -1 ? undefined : JSON.stringify(list[i]);
    if (before === JSON.stringify(entry)) return;
    if (i === -1) list.push(entry);
    else list[i] = entry;
    this.dirty = true;
  }

  delete(kind: string, name: string): void {
    const list = this.data.kinds[kind];
    const i = list?.findIndex((e) => e.name === name) ?? -1;
    if (list && i !== -1) {
      list.splice(i, 1);
      this.dirty = true;
    }
  }

  /**
   * Writes the record atomically if it changed; an unchanged record is not rewritten.
   * A record of nothing is removed instead (a missing record reads as an empty one),
   * so that uninstalling everything leaves the node dir exactly as it was before.
   */
  async save(): Promise<void> {
    if (!this.dirty) return;
    for (const k of Object.keys(this.data.kinds)) if (this.data.kinds[k]?.length === 0) delete this.data.kinds[k];
    if (Object.keys(this.data.kinds).length === 0) await removeFile(this.dir, RECORD_FILE);
    else await writeFileAtomic(this.dir, RECORD_FILE, `${JSON.stringify(this.data, null, 1)}\n`, 0o644);
    this.dirty = false;
  }
}

function parseRecord(text: string): RecordFile | undefined {
  try {
    const v = JSON.parse(text) as RecordFile;
    if (v.format !== FORMAT || typeof v.kinds !== 'object' || v.kinds === null) return undefined;
    for (const list of Object.values(v.kinds)) {
      if (!Array.isArray(list) || !list.every((e) => typeof e?.name === 'string')) return undefined;
    }
    return v;
  } catch {
    return undefined;
  }
}
