import { renameSync } from 'node:fs';
import path from 'node:path';
import { CniNodeError, reason } from '../core/errors.js';
import { nameProblem, showName } from '../core/names.js';
import type { FileStamp, ItemRecord, RecordEntry, Reporter } from '../core/contracts.js';
import { removeFile, writeFileAtomic } from './atomic.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegularBytes } from '../sys/read.js';

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

interface RecordFile {
  format: string;
  /** Sections by kind ("plugin", "config", "manifest"); entries in install order. */
  kinds: Record<string, RecordEntry[]>;
}

export class NodeRecord implements ItemRecord {
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

  get file(): string {
    return path.join(this.dir, RECORD_FILE);
  }

  /**
   * Loads the record of `dir`. A missing record is an empty one.
   *
   * The record is untrusted input like any other file in a node dir (a person, a
   * broken disk or another program may have written it):
   *  - it is read without following a link, only if it is a regular file, and only
   *    up to INPUT_LIMITS.record bytes (read.ts);
   *  - a record that cannot be read or parsed (EACCES, too big, a directory, FIFO or
   *    link in its place, not JSON) is moved aside to `.cni-node-state.unreadable-…`
   *    with a warning and the run goes on with an empty one: nothing is then known
   *    to be cni-node's, so nothing is removed on its word. If it cannot be moved
   *    aside, the run stops: overwriting it would forget what cni-node owns. With
   *    readOnly (dry run, the look-ahead) it is left in place and `damaged` is set;
   *  - an entry whose name is not a plain name (names.ts: `../../victim`, `/etc/x`,
   *    control characters, too long) is refused with a warning naming the record
   *    file: it is never removed, written or compared, and is dropped from the
   *    record the next time it is saved.
   */
  static async load(dir: string, reporter: Reporter, opts: { readOnly?: boolean } = {}): Promise<NodeRecord> {
    const file = path.join(dir, RECORD_FILE);
    let text: string | undefined;
    let problem: string | undefined;
    try {
      const bytes = await readRegularBytes(file, { maxBytes: INPUT_LIMITS.record, follow: false, what: "cni-node's record" });
      if (bytes === undefined) return new NodeRecord(dir, { format: FORMAT, kinds: {} });
      text = bytes.toString('utf8');
    } catch (e) {
      if (!(e instanceof CniNodeError)) throw e;
      problem = e.message;
    }
    const parsed = text === undefined ? undefined : parseRecord(text);
    if (parsed) {
      const record = new NodeRecord(dir, parsed.record);
      if (parsed.refused.length > 0) {
        const shown = parsed.refused.slice(0, MAX_REFUSED_SHOWN);
        const fate = opts.readOnly ? 'never removed, written or compared' : 'never removed, written or compared, and dropped from the record';
        for (const r of shown) reporter.warn(`cni-node's record ${file}: ${r}; refused: ${fate}`);
        if (parsed.refused.length > shown.length)
          reporter.warn(`cni-node's record ${file}: ${parsed.refused.length - shown.length} more bad entries refused the same way`);
        if (opts.readOnly) record.damaged = true;
        else record.dirty = true;
      }
      return record;
    }
    const why = problem ?? `${file} is not a cni-node record (damaged or written by something else)`;
    if (opts.readOnly) {
      reporter.warn(`cannot read cni-node's record: ${why}; treating nothing in ${dir} as installed by cni-node (a run that changes the node moves it aside)`);
      const record = new NodeRecord(dir, { format: FORMAT, kinds: {} });
      record.damaged = true;
      return record;
    }
    const aside = `${file}.unreadable-${Date.now()}`;
    try {
      renameSync(file, aside);
    } catch (e) {
      throw new CniNodeError(
        'io',
        `cannot read cni-node's record (${why}) and cannot move it aside to ${aside}: ${reason(e)}; stopping rather than overwrite it and forget what cni-node installed (fix or remove ${file})`,
      );
    }
    reporter.warn(
      `cannot read cni-node's record: ${why}; it is unreadable and was moved to ${aside}. Nothing in ${dir} is treated as installed by cni-node until it is installed again; files are not removed on the strength of the old record`,
    );
    const record = new NodeRecord(dir, { format: FORMAT, kinds: {} });
    record.dirty = true;
    return record;
  }

  /** The entries of `kind`, in install order. */
  entries(kind: string): readonly RecordEntry[] {
    return this.data.kinds[kind] ?? [];
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

/** At most this many refused entries are named one by one in the log. */
const MAX_REFUSED_SHOWN = 5;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStamp(v: unknown): v is FileStamp {
  return isPlainObject(v) && ['size', 'mtimeMs', 'ctimeMs', 'ino'].every((k) => typeof v[k] === 'number');
}

/**
 * Parses a record. Undefined if the text is not a cni-node record at all; else the
 * record with only well-formed entries (fields of the wrong type are dropped) and,
 * for every entry whose name fails names.ts, why it was refused.
 */
function parseRecord(text: string): { record: RecordFile; refused: string[] } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isPlainObject(v) || v['format'] !== FORMAT || !isPlainObject(v['kinds'])) return undefined;
  const kinds: Record<string, RecordEntry[]> = {};
  const refused: string[] = [];
  for (const [kind, list] of Object.entries(v['kinds'])) {
    if (!Array.isArray(list)) return undefined;
    const entries: RecordEntry[] = [];
    for (const e of list) {
      if (!isPlainObject(e) || typeof e['name'] !== 'string') return undefined;
      const name = e['name'];
      const bad = nameProblem(name);
      if (bad) {
        refused.push(`${showName(kind, 20)} entry ${bad}`);
        continue;
      }
      const entry: RecordEntry = { name };
      if (typeof e['sha256'] === 'string') entry.sha256 = e['sha256'];
      if (isStamp(e['stamp'])) entry.stamp = e['stamp'];
      if (isPlainObject(e['meta'])) entry.meta = e['meta'];
      entries.push(entry);
    }
    // Object.entries gives own keys only; a key such as "__proto__" stays a plain key.
    Object.defineProperty(kinds, kind, { value: entries, enumerable: true, writable: true, configurable: true });
  }
  return { record: { format: FORMAT, kinds }, refused };
}
