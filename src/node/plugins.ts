import { closeSync, readdirSync, statSync, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import { CniNodeError, ofItem } from '../core/errors.js';
import type { PlannedAction } from '../core/plan.js';
import type { EngineOptions, FileStamp, ItemRecord, ItemReport, ItemResult, KindHandler } from '../core/contracts.js';
import { destinationProblem, inspect, ioError, stageFile, type Existing, type StagedFile } from './atomic.js';
import { FileKindHandler } from './file-kind.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { mapLimit } from '../sys/concurrency.js';
import { sameStamp, stampOf } from '../sys/file-stamp.js';
import { read } from '../sys/pool.js';
import { formatBytes, kindOf, openRegular, type OpenedFile } from '../sys/read.js';

export const PLUGIN_MODE = 0o755;
const STAGE_CONCURRENCY = 4;

/** Plugin binaries available in the image's plugins dir, sorted (`cni-node list`). */
export async function availablePlugins(pluginsDir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = readdirSync(pluginsDir, { withFileTypes: true });
  } catch (e) {
    throw ioError(`cannot list the plugins dir ${pluginsDir}`, e);
  }
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile()) names.push(e.name);
    else if (e.isSymbolicLink()) {
      try {
        if (statSync(path.join(pluginsDir, e.name)).isFile()) names.push(e.name);
      } catch {
        // A dangling or unreadable link: not an available plugin.
      }
    }
  }
  return names.sort();
}

/**
 * Byte-for-byte comparison, read in chunks so two large binaries are never both
 * held whole. Both are opened by read.ts's rules (regular files only, O_NONBLOCK):
 * a FIFO swapped in since they were inspected cannot block the run.
 */
async function sameBytes(source: string, onNode: string, size: number): Promise<boolean> {
  let a: OpenedFile | undefined;
  let b: OpenedFile | undefined;
  try {
    a = openRegular(source, { maxBytes: INPUT_LIMITS.plugin, what: 'plugin source' });
    b = openRegular(onNode, { maxBytes: INPUT_LIMITS.plugin, follow: false, what: 'plugin on the node' });
    // Gone since it was inspected (another cni-node, or a person): not the same.
    if (!a || !b) return false;
    const chunk = 1 << 20;
    const ba = Buffer.allocUnsafe(chunk);
    const bb = Buffer.allocUnsafe(chunk);
    for (let pos = 0; pos < size; pos += chunk) {
      const [ra, rb] = await Promise.all([read(a.fd, ba, pos), read(b.fd, bb, pos)]);
      if (ra !== rb || !ba.subarray(0, ra).equals(bb.subarray(0, rb))) return false;
      if (ra === 0) break;
    }
    return true;
  } finally {
    if (a) closeSync(a.fd);
    if (b) closeSync(b.fd);
  }
}

interface Decision {
  result: Extract<ItemResult, 'installed' | 'updated' | 'unchanged'>;
  existing: Existing;
  detail?: string;
}

/**
 * Plugin binaries: image plugins dir → node plugins dir.
 *
 * Re-running install must cost almost nothing and write nothing, so a node file is
 * recognised as unchanged from metadata alone: the record keeps the stamp (size,
 * mtime, ctime, inode) of the node file as written and of the image file it was
 * copied from. Only when a stamp differs are the bytes compared. Copies are made by
 * the kernel (copy_file_range) into fsynced temporary files, in parallel, then
 * renamed into place in plan order.
 */
export function createPluginHandler(options: EngineOptions, record: ItemRecord): KindHandler {
  return new PluginHandler(options, record);
}

class PluginHandler extends FileKindHandler {
  readonly kind = 'plugin' as const;
  private readonly pluginsDir: string;
  /** The stamp of each image file to copy, found by prepare(). */
  private readonly sources = new Map<string, FileStamp>();
  private readonly decisions = new Map<string, Decision>();

  constructor(options: EngineOptions, record: ItemRecord) {
    super(options, record, options.dirs.hostPluginsDir);
    this.pluginsDir = options.dirs.pluginsDir;
  }

  private sourceOf(name: string): string {
    return path.join(this.pluginsDir, name);
  }

  private stageOne(name: string): Promise<StagedFile> {
    return stageFile(this.dir, name, { copyOf: this.sourceOf(name), maxBytes: INPUT_LIMITS.plugin }, PLUGIN_MODE);
  }

  /** What executing `name` will do; decided once, from the node as it is. */
  private async decide(name: string): Promise<Decision> {
    const known = this.decisions.get(name);
    if (known) return known;
    const source = this.sources.get(name) as FileStamp;
    const entry = this.record.get('plugin', name);
    const existing = await inspect(this.dir, name);
    let decision: Decision;
    if (existing.type === 'none') decision = { result: 'installed', existing };
    else if (existing.type === 'other') throw new CniNodeError('io', `plugin ${name}: ${destinationProblem(this.dir, name, existing)}`);
    else if (existing.mode !== PLUGIN_MODE || existing.stamp.size !== source.size) decision = { result: 'updated', existing };
    else if (sameStamp(entry?.stamp, existing.stamp) && sameStamp(entry?.meta?.['source'] as FileStamp | undefined, source)) {
      decision = { result: 'unchanged', existing };
    } else if (await sameBytes(this.sourceOf(name), path.join(this.dir, name), source.size)) {
      decision = { result: 'unchanged', existing, ...(entry ? {} : { detail: 'identical file already on the node; now managed by cni-node' }) };
    } else decision = { result: 'updated', existing };
    this.decisions.set(name, decision);
    return decision;
  }

  async prepare(actions: readonly PlannedAction[]): Promise<{ problems: CniNodeError[]; waiting: Map<string, string[]> }> {
    const problems: CniNodeError[] = [];
    const missing: string[] = [];
    if (actions.some((a) => a.op === 'ensure')) {
      const problem = await this.pluginsDirProblem();
      if (problem) return { problems: [problem], waiting: new Map() };
    }
    await Promise.all(
      actions.map(async (a) => {
        if (a.op === 'ensure') {
          const found = await this.checkSource(a.name);
          if (found === 'missing') missing.push(a.name);
          else if (found) problems.push(found);
        }
        const p = await this.destinationCheck(a);
        if (p) problems.push(p);
      }),
    );
    if (missing.length > 0) problems.push(...(await this.notInImage(missing)));
    return { problems, waiting: new Map() };
  }

  private async pluginsDirProblem(): Promise<CniNodeError | undefined> {
    let dir: Stats | NodeJS.ErrnoException;
    try {
      dir = statSync(this.pluginsDir);
    } catch (e) {
      dir = e as NodeJS.ErrnoException;
    }
    if (!(dir instanceof Error) && dir.isDirectory()) return undefined;
    const why = dir instanceof Error ? (dir.code === 'ENOENT' ? 'does not exist' : `cannot be read (${dir.code})`) : 'is not a directory';
    return new CniNodeError(
      'missing',
      `the plugins dir ${this.pluginsDir} ${why}; it should hold the plugin binaries (set --plugins-dir or CNI_NODE_PLUGINS_DIR)`,
    );
  }

  /** The image file of plugin `name`: its stamp is kept; a problem, or 'missing', is returned. */
  private async checkSource(name: string): Promise<CniNodeError | 'missing' | undefined> {
    const file = this.sourceOf(name);
    try {
      const st = statSync(file);
      if (!st.isFile()) return ofItem(new CniNodeError('invalid', `plugin ${name}: ${file} is ${kindOf(st)}, not a regular file`), 'plugin', name);
      if (st.size > INPUT_LIMITS.plugin) {
        return ofItem(
          new CniNodeError('invalid', `plugin ${name}: ${file} is ${formatBytes(st.size)}; plugin binaries are limited to ${formatBytes(INPUT_LIMITS.plugin)}`),
          'plugin',
          name,
        );
      }
      this.sources.set(name, stampOf(st));
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
      return ofItem(ioError(`plugin ${name}: cannot read ${file}`, e), 'plugin', name);
    }
  }

  /** Plugins not in the image, each with the names it may have meant. */
  private async notInImage(missing: readonly string[]): Promise<CniNodeError[]> {
    const known = await availablePlugins(this.pluginsDir).catch(() => [] as string[]);
    return missing.map((name) => {
      const near = known.filter((k) => k.includes(name) || name.includes(k));
      return new CniNodeError(
        'invalid',
        `plugin ${name} is not in the plugins dir ${this.pluginsDir}${near.length ? ` (did you mean ${near.join(', ')}?)` : ''}; \`cni-node list\` shows the ${known.length} available`,
        [],
        { items: [`plugin ${name}`] },
      );
    });
  }

  async stage(actions: readonly PlannedAction[]): Promise<void> {
    const ensures = actions.filter((a) => a.op === 'ensure');
    await mapLimit(ensures, STAGE_CONCURRENCY, async (a) => {
      const d = await this.decide(a.name);
      if (d.result !== 'unchanged') this.staged.set(a.name, await this.stageOne(a.name));
    });
    await this.recordIntent(ensures);
  }

  protected async ensure(name: string, dryRun: boolean): Promise<ItemReport> {
    const d = await this.decide(name);
    const report: ItemReport = { ...this.base(name, dryRun), result: d.result, ...(d.detail ? { detail: d.detail } : {}) };
    const source = this.sources.get(name) as FileStamp;
    if (dryRun) {
      const entry = this.record.get('plugin', name);
      const fresh =
        d.existing.type === 'file' && sameStamp(entry?.stamp, d.existing.stamp) && sameStamp(entry?.meta?.['source'] as FileStamp | undefined, source);
      return d.result === 'unchanged' && !fresh ? { ...report, refreshRecord: true } : report;
    }
    if (d.result === 'unchanged') {
      if (d.existing.type === 'file') this.record.set('plugin', { name, stamp: d.existing.stamp, meta: { source } });
      return report;
    }
    const stamp = await this.replace(name, () => this.stageOne(name));
    this.record.set('plugin', { name, stamp, meta: { source } });
    return report;
  }
}
