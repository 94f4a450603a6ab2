/**
 * Decides which file events deserve a reconcile, and says why (for the log).
 *
 * The directory watchers say that something in a directory changed; most such
 * changes do not matter (the primary CNI's other files, cni-node's own writes,
 * temporary files, the record). The names they report are not relied on: a file
 * written and deleted between two of the watcher's looks is not among them, so
 * every item of interest in that directory is checked (a stat each, or a read of a
 * few KiB for templates and pointer targets). It matters when:
 *  - templates dir (manifests dir): it is a desired template (manifest) and its
 *    content differs from the content seen before the last reconcile started;
 *  - node configs dir: it is a pointer target of a desired template and its
 *    content differs likewise (or it appeared, or it went away); or it is a config
 *    cni-node installed and its stamp differs from what the engine recorded;
 *  - node plugins dir: it is a plugin cni-node installed and its stamp differs from
 *    what the engine recorded (deleted, replaced, edited, chmod-ed).
 * Items held by the fight detector are not repaired.
 */
import path from 'node:path';
import type { Kind } from '../core/plan.js';
import type { Dirs } from '../core/contracts.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import type { RecordEntry } from '../core/contracts.js';
import { sameStamp, stampAt, type Stamp } from '../sys/file-stamp.js';
import { digestFile, type TemplateSnapshot } from './node-state.js';
import type { TriggerSource } from './queue.js';

export interface Change {
  source: TriggerSource;
  reason: string;
}

export function itemKey(kind: Kind, name: string): string {
  return `${kind} ${name}`;
}

export class ChangeFilter {
  private snapshot: TemplateSnapshot | undefined;
  /** item key → the stamp the engine recorded. */
  private expected = new Map<string, Stamp>();

  constructor(
    private readonly dirs: Dirs,
    private readonly isHeld: (key: string) => boolean = () => false,
  ) {}

  /** Before a reconcile: the templates and pointer targets it is about to read. */
  setSnapshot(s: TemplateSnapshot): void {
    this.snapshot = s;
  }

  get templateSnapshot(): TemplateSnapshot | undefined {
    return this.snapshot;
  }

  /** After a reconcile: the stamps of the files cni-node manages, from its record. */
  setManaged(entries: ReadonlyArray<{ kind: Kind; entry: RecordEntry }>): void {
    this.expected = new Map();
    for (const { kind, entry } of entries) {
      if (entry.stamp) this.expected.set(itemKey(kind, entry.name), entry.stamp);
    }
  }

  managed(kind: Kind, name: string): boolean {
    return this.expected.has(itemKey(kind, name));
  }

  /** Desired templates whose content differs from the snapshot. */
  templates(): Promise<Change[]> {
    return this.changedFiles(this.snapshot?.templates, this.dirs.configsDir, 'template');
  }

  /** Desired manifest files whose content differs from the snapshot. */
  manifests(): Promise<Change[]> {
    return this.changedFiles(this.snapshot?.manifests, this.dirs.manifestsDir, 'manifest');
  }

  private async changedFiles(before: ReadonlyMap<string, string | undefined> | undefined, dir: string, source: 'template' | 'manifest'): Promise<Change[]> {
    const out: Change[] = [];
    for (const [name, was] of before ?? []) {
      const now = await digestFile(path.join(dir, name), source === 'manifest' ? INPUT_LIMITS.manifest : INPUT_LIMITS.template);
      if (now === was) continue;
      const what = was === undefined ? 'appeared' : now === undefined ? 'was removed' : 'changed';
      out.push({ source, reason: `${source} ${name} ${what} in ${dir}` });
    }
    return out;
  }

  /** Pointer targets whose content differs from the snapshot, and installed configs whose stamp differs from the record. */
  async nodeConfigs(): Promise<Change[]> {
    const out: Change[] = [];
    const s = this.snapshot;
    for (const [name, deps] of s?.targets ?? []) {
      const before = s?.targetDigests.get(name);
      const now = await digestFile(path.join(this.dirs.hostConfigsDir, name));
      if (now === before) continue;
      const what = before === undefined ? 'appeared' : now === undefined ? 'was removed' : 'changed';
      out.push({ source: 'pointer', reason: `node file ${name} ${what} (pointed to by ${deps.join(', ')})` });
    }
    out.push(...(await this.repairs('config')));
    return out;
  }

  /** Installed plugins whose stamp differs from the record. */
  async nodePlugins(): Promise<Change[]> {
    return this.repairs('plugin');
  }

  private async repairs(kind: Kind): Promise<Change[]> {
    const out: Change[] = [];
    const dir = kind === 'plugin' ? this.dirs.hostPluginsDir : this.dirs.hostConfigsDir;
    for (const key of this.expected.keys()) {
      if (!key.startsWith(`${kind} `)) continue;
      const c = await this.repair(kind, dir, key.slice(kind.length + 1));
      if (c) out.push(c);
    }
    return out;
  }

  private async repair(kind: Kind, dir: string, name: string): Promise<Change | undefined> {
    const key = itemKey(kind, name);
    const expected = this.expected.get(key);
    if (expected === undefined || this.isHeld(key)) return undefined;
    const now = await stampAt(path.join(dir, name));
    if (sameStamp(now, expected)) return undefined;
    const what = now === 'absent' ? 'was deleted' : now === 'other' ? 'was replaced by something that is not a file' : 'was changed';
    return { source: 'repair', reason: `${kind} ${name}, installed by cni-node, ${what} on the node` };
  }
}
