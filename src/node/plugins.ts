import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CniNodeError, ofItem } from '../core/errors.js';
import type { PlannedAction } from '../core/plan.js';
import type { EngineOptions, ItemReport, ItemResult, KindHandler } from '../engine/types.js';
import {
  commitStaged,
  destinationProblem,
  discardStaged,
  inspect,
  ioError,
  removeFile,
  sameStamp,
  stageFile,
  stampOf,
  syncDir,
  type Existing,
  type FileStamp,
  type StagedFile,
} from './atomic.js';
import { INPUT_LIMITS } from './input-limits.js';
import { formatBytes, kindOf, openRegular } from './read.js';
import type { NodeRecord } from './record.js';

export const PLUGIN_MODE = 0o755;
const STAGE_CONCURRENCY = 4;

/** Plugin binaries available in the image's plugins dir, sorted (`cni-node list`). */
export async function availablePlugins(pluginsDir: string): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(pluginsDir, { withFileTypes: true });
  } catch (e) {
    throw ioError(`cannot list the plugins dir ${pluginsDir}`, e);
  }
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile()) names.push(e.name);
    else if (e.isSymbolicLink()) {
      const st = await fs.stat(path.join(pluginsDir, e.name)).catch(() => undefined);
      if (st?.isFile()) names.push(e.name);
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
  const a = await openRegular(source, { maxBytes: INPUT_LIMITS.plugin, what: 'plugin source' });
  const b = await openRegular(onNode, { maxBytes: INPUT_LIMITS.plugin, follow: false, what: 'plugin on the node' }).catch(async (e: unknown) => {
    await a?.fh.close();
    throw e;
  });
  // Gone since it was inspected (another cni-node, or a person): not the same.
  if (!a || !b) {
    await Promise.all([a?.fh.close(), b?.fh.close()]);
    return false;
  }
  const fa = a.fh;
  const fb = b.fh;
  try {
    const chunk = 1 << 20;
    const ba = Buffer.allocUnsafe(chunk);
    const bb = Buffer.allocUnsafe(chunk);
    for (let pos = 0; pos < size; pos += chunk) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, chunk, pos), fb.read(bb, 0, chunk, pos)]);
      if (ra.bytesRead !== rb.bytesRead || !ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      if (ra.bytesRead === 0) break;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/**
 * Runs fn over items, `limit` at a time. After the first failure no new item
 * starts, but the ones under way are waited for, so none finishes (and leaves a
 * temporary file) after the caller has cleaned up.
 */
async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failure) {
      try {
        await fn(items[next++] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.error;
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
export function createPluginHandler(options: EngineOptions, record: NodeRecord): KindHandler {
  const { pluginsDir, hostPluginsDir } = options.dirs;
  const sources = new Map<string, FileStamp>();
  const decisions = new Map<string, Decision>();
  const staged = new Map<string, StagedFile>();
  let wrote = false;

  const sourceOf = (name: string) => path.join(pluginsDir, name);

  async function decide(name: string): Promise<Decision> {
    const known = decisions.get(name);
    if (known) return known;
    const source = sources.get(name) as FileStamp;
    const entry = record.get('plugin', name);
    const existing = await inspect(hostPluginsDir, name);
    let decision: Decision;
    if (existing.type === 'none') decision = { result: 'installed', existing };
    else if (existing.type === 'other') throw new CniNodeError('io', `plugin ${name}: ${destinationProblem(hostPluginsDir, name, existing)}`);
    else if (existing.mode !== PLUGIN_MODE || existing.stamp.size !== source.size) decision = { result: 'updated', existing };
    else if (sameStamp(entry?.stamp, existing.stamp) && sameStamp(entry?.meta?.source as FileStamp | undefined, source)) {
      decision = { result: 'unchanged', existing };
    } else if (await sameBytes(sourceOf(name), path.join(hostPluginsDir, name), source.size)) {
      decision = { result: 'unchanged', existing, ...(entry ? {} : { detail: 'identical file already on the node; now managed by cni-node' }) };
    } else decision = { result: 'updated', existing };
    decisions.set(name, decision);
    return decision;
  }

  return {
    kind: 'plugin',
    recorded: async () => record.names('plugin'),

    async prepare(actions: readonly PlannedAction[]) {
      const problems: CniNodeError[] = [];
      const missing: string[] = [];
      if (actions.some((a) => a.op === 'ensure')) {
        const dir = await fs.stat(pluginsDir).catch((e: NodeJS.ErrnoException) => e);
        if (dir instanceof Error || !dir.isDirectory()) {
          const why = dir instanceof Error ? (dir.code === 'ENOENT' ? 'does not exist' : `cannot be read (${dir.code})`) : 'is not a directory';
          problems.push(new CniNodeError('missing', `the plugins dir ${pluginsDir} ${why}; it should hold the plugin binaries (set --plugins-dir or CNI_NODE_PLUGINS_DIR)`));
          return { problems, waiting: new Map<string, string[]>() };
        }
      }
      await Promise.all(
        actions.map(async (a) => {
          if (a.op === 'ensure') {
            const file = sourceOf(a.name);
            try {
              const st = await fs.stat(file);
              if (!st.isFile()) problems.push(ofItem(new CniNodeError('invalid', `plugin ${a.name}: ${file} is ${kindOf(st)}, not a regular file`), 'plugin', a.name));
              else if (st.size > INPUT_LIMITS.plugin) {
                problems.push(ofItem(new CniNodeError('invalid', `plugin ${a.name}: ${file} is ${formatBytes(st.size)}; plugin binaries are limited to ${formatBytes(INPUT_LIMITS.plugin)}`), 'plugin', a.name));
              }
              else sources.set(a.name, stampOf(st));
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === 'ENOENT') missing.push(a.name);
              else problems.push(ofItem(ioError(`plugin ${a.name}: cannot read ${file}`, e), 'plugin', a.name));
            }
          }
          const existing = await inspect(hostPluginsDir, a.name);
          const p = destinationProblem(hostPluginsDir, a.name, existing);
          if (p && !(a.op === 'remove' && existing.type === 'other' && existing.what === 'a symbolic link')) {
            problems.push(ofItem(new CniNodeError('invalid', `plugin ${a.name}: ${p}`), 'plugin', a.name));
          }
        }),
      );
      if (missing.length > 0) {
        const known = await availablePlugins(pluginsDir).catch(() => [] as string[]);
        for (const name of missing) {
          const near = known.filter((k) => k.includes(name) || name.includes(k));
          problems.push(
            new CniNodeError(
              'invalid',
              `plugin ${name} is not in the plugins dir ${pluginsDir}${near.length ? ` (did you mean ${near.join(', ')}?)` : ''}; \`cni-node list\` shows the ${known.length} available`,
              [],
              { items: [`plugin ${name}`] },
            ),
          );
        }
      }
      return { problems, waiting: new Map<string, string[]>() };
    },

    async stage(actions) {
      const ensures = actions.filter((a) => a.op === 'ensure');
      await mapLimit(ensures, STAGE_CONCURRENCY, async (a) => {
        const d = await decide(a.name);
        if (d.result !== 'unchanged') staged.set(a.name, await stageFile(hostPluginsDir, a.name, { copyOf: sourceOf(a.name), maxBytes: INPUT_LIMITS.plugin }, PLUGIN_MODE));
      });
      // Record the intent before anything becomes visible, so a crash between the
      // renames and the final record never leaves a plugin cni-node wrote unrecorded.
      // In plan order: the record's order is the install order that removal reverses.
      let intent = false;
      for (const { name } of ensures) {
        if (staged.has(name) && !record.get('plugin', name)) {
          record.set('plugin', { name });
          intent = true;
        }
      }
      if (intent) await record.save();
    },

    async execute(action, dryRun): Promise<ItemReport> {
      const name = action.name;
      const base = { kind: 'plugin' as const, name, ...(dryRun ? { dryRun } : {}) };
      if (action.op === 'remove') {
        if (dryRun) {
          if ((await inspect(hostPluginsDir, name)).type !== 'none') return { ...base, result: 'removed' };
          // Gone already, but still recorded (e.g. an intent of a killed run): the record must be mended.
          return { ...base, result: 'absent', ...(record.get('plugin', name) ? { refreshRecord: true } : {}) };
        }
        const removed = await removeFile(hostPluginsDir, name, { sync: false });
        wrote ||= removed;
        record.delete('plugin', name);
        return { ...base, result: removed ? 'removed' : 'absent' };
      }
      const d = await decide(name);
      const report: ItemReport = { ...base, result: d.result, ...(d.detail ? { detail: d.detail } : {}) };
      if (dryRun) {
        const entry = record.get('plugin', name);
        const fresh = d.existing.type === 'file' && sameStamp(entry?.stamp, d.existing.stamp) && sameStamp(entry?.meta?.source as FileStamp | undefined, sources.get(name));
        return d.result === 'unchanged' && !fresh ? { ...report, refreshRecord: true } : report;
      }
      const source = sources.get(name) as FileStamp;
      if (d.result === 'unchanged') {
        if (d.existing.type === 'file') record.set('plugin', { name, stamp: d.existing.stamp, meta: { source } });
        return report;
      }
      let s = staged.get(name);
      if (!s) s = await stageFile(hostPluginsDir, name, { copyOf: sourceOf(name), maxBytes: INPUT_LIMITS.plugin }, PLUGIN_MODE);
      staged.delete(name);
      const stamp = await commitStaged(s);
      wrote = true;
      record.set('plugin', { name, stamp, meta: { source } });
      return report;
    },

    async commit() {
      if (wrote) await syncDir(hostPluginsDir);
      await record.save();
    },
    async close() {
      await Promise.all([...staged.values()].map(discardStaged));
      staged.clear();
    },
  };
}
