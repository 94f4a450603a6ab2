import type { PlannedAction } from '../core/plan.js';
import type { EngineOptions, FileStamp, ItemRecord, ItemReport, KindHandler } from '../core/contracts.js';
import { CniNodeError, ofItem } from '../core/errors.js';
import { commitStaged, destinationProblem, discardStaged, inspect, removeFile, syncDir, type StagedFile } from './atomic.js';

/**
 * What the two kinds of node files (plugins, configs) share: one node dir, one
 * mode, files staged before any is renamed into place, the intent recorded before
 * anything becomes visible, removal, and the record saved at the end. A subclass
 * says how a file is prepared and what its new content is (ensure()).
 */
export abstract class FileKindHandler implements KindHandler {
  abstract readonly kind: 'plugin' | 'config';
  /** New contents, complete and fsynced under temporary names, by item. */
  protected readonly staged = new Map<string, StagedFile>();
  private wrote = false;

  constructor(
    protected readonly options: EngineOptions,
    protected readonly record: ItemRecord,
    /** The node dir the files go to. */
    protected readonly dir: string,
  ) {}

  async recorded(): Promise<string[]> {
    return this.record.names(this.kind);
  }

  abstract prepare(actions: readonly PlannedAction[]): Promise<{ problems: CniNodeError[]; waiting: Map<string, string[]> }>;

  /** Writes what `name` should become; what it reports. */
  protected abstract ensure(name: string, dryRun: boolean): Promise<ItemReport>;

  execute(action: PlannedAction, dryRun: boolean): Promise<ItemReport> {
    return action.op === 'remove' ? this.remove(action.name, dryRun) : this.ensure(action.name, dryRun);
  }

  /** The report's common part. */
  protected base(name: string, dryRun: boolean): Pick<ItemReport, 'kind' | 'name' | 'dryRun'> {
    return { kind: this.kind, name, ...(dryRun ? { dryRun } : {}) };
  }

  /**
   * A problem with what is at the destination now (a directory, a link), found
   * before anything changes; undefined if fine. A link may still be removed.
   */
  protected async destinationCheck(a: PlannedAction): Promise<CniNodeError | undefined> {
    const existing = await inspect(this.dir, a.name);
    const p = destinationProblem(this.dir, a.name, existing);
    if (!p || (a.op === 'remove' && existing.type === 'other' && existing.what === 'a symbolic link')) return undefined;
    return ofItem(new CniNodeError('invalid', `${this.kind} ${a.name}: ${p}`), this.kind, a.name);
  }

  /**
   * Records the intent to write every staged item before anything becomes
   * visible, so a crash between the renames and the final record never leaves a
   * file cni-node wrote unrecorded. In plan order: the record's order is the
   * install order that removal reverses.
   */
  protected async recordIntent(actions: readonly PlannedAction[]): Promise<void> {
    let intent = false;
    for (const { name } of actions) {
      if (this.staged.has(name) && !this.record.get(this.kind, name)) {
        this.record.set(this.kind, { name });
        intent = true;
      }
    }
    if (intent) await this.record.save();
  }

  /** Renames the staged content of `name` (staged now if it was not) into place; its new stamp. */
  protected async replace(name: string, stage: () => Promise<StagedFile>): Promise<FileStamp> {
    const s = this.staged.get(name) ?? (await stage());
    this.staged.delete(name);
    const stamp = await commitStaged(s);
    this.wrote = true;
    return stamp;
  }

  private async remove(name: string, dryRun: boolean): Promise<ItemReport> {
    const base = this.base(name, dryRun);
    if (dryRun) {
      if ((await inspect(this.dir, name)).type !== 'none') return { ...base, result: 'removed' };
      // Gone already, but still recorded (e.g. an intent of a killed run): the record must be mended.
      return { ...base, result: 'absent', ...(this.record.get(this.kind, name) ? { refreshRecord: true } : {}) };
    }
    const removed = await removeFile(this.dir, name, { sync: false });
    this.wrote ||= removed;
    this.record.delete(this.kind, name);
    return { ...base, result: removed ? 'removed' : 'absent' };
  }

  async commit(): Promise<void> {
    if (this.wrote) await syncDir(this.dir);
    await this.record.save();
  }

  async close(): Promise<void> {
    await Promise.all([...this.staged.values()].map(discardStaged));
    this.staged.clear();
  }
}
