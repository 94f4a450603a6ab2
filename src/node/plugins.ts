import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CniNodeError } from '../core/errors.js';
import type { PlannedAction } from '../core/plan.js';
import type { EngineOptions, ItemReport, KindHandler } from '../engine/types.js';
import { destinationProblem, inspect, ioError, readIfExists, removeFile, sameStamp, stampOf, writeFileAtomic, type FileStamp } from './atomic.js';
import { sha256 } from './digest.js';
import type { NodeRecord } from './record.js';

export const PLUGIN_MODE = 0o755;

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

interface SourceInfo {
  file: string;
  stamp: FileStamp;
}

/**
 * Plugin binaries: image plugins dir → node plugins dir.
 *
 * Re-running install must cost almost nothing and write nothing, so a node file is
 * recognised as unchanged from metadata alone: the record keeps the stamp (size,
 * mtime, ctime, inode) of the node file as written and of the image file it was
 * copied from. Only when a stamp differs are the bytes read and compared.
 */
export function createPluginHandler(options: EngineOptions, record: NodeRecord): KindHandler {
  const { pluginsDir, hostPluginsDir } = options.dirs;
  const sources = new Map<string, SourceInfo>();

  return {
    kind: 'plugin',
    recorded: async () => record.names('plugin'),

    async prepare(actions: readonly PlannedAction[]) {
      const problems: CniNodeError[] = [];
      const missing: string[] = [];
      await Promise.all(
        actions.map(async (a) => {
          if (a.op === 'ensure') {
            const file = path.join(pluginsDir, a.name);
            try {
              const st = await fs.stat(file);
              if (!st.isFile()) problems.push(new CniNodeError('invalid', `plugin ${a.name}: ${file} is not a regular file`));
              else sources.set(a.name, { file, stamp: stampOf(st) });
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === 'ENOENT') missing.push(a.name);
              else problems.push(ioError(`plugin ${a.name}: cannot read ${file}`, e));
            }
          }
          const existing = await inspect(hostPluginsDir, a.name);
          const p = destinationProblem(hostPluginsDir, a.name, existing);
          if (p && !(a.op === 'remove' && existing.type === 'other' && existing.what === 'a symbolic link')) {
            problems.push(new CniNodeError('invalid', `plugin ${a.name}: ${p}`));
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
            ),
          );
        }
      }
      return { problems, waiting: new Map<string, string[]>() };
    },

    async execute(action, dryRun): Promise<ItemReport> {
      const name = action.name;
      const base = { kind: 'plugin' as const, name, ...(dryRun ? { dryRun } : {}) };
      if (action.op === 'remove') {
        if (dryRun) {
          const existing = await inspect(hostPluginsDir, name);
          return { ...base, result: existing.type === 'none' ? 'absent' : 'removed' };
        }
        const removed = await removeFile(hostPluginsDir, name);
        record.delete('plugin', name);
        return { ...base, result: removed ? 'removed' : 'absent' };
      }

      const source = sources.get(name) as SourceInfo;
      const entry = record.get('plugin', name);
      const existing = await inspect(hostPluginsDir, name);
      if (existing.type === 'other') throw new CniNodeError('io', `plugin ${name}: ${destinationProblem(hostPluginsDir, name, existing)}`);
      const recordedSource = entry?.meta?.source as FileStamp | undefined;
      if (
        existing.type === 'file' &&
        existing.mode === PLUGIN_MODE &&
        sameStamp(entry?.stamp, existing.stamp) &&
        sameStamp(recordedSource, source.stamp)
      ) {
        return { ...base, result: 'unchanged' };
      }

      let bytes: Buffer;
      try {
        bytes = await fs.readFile(source.file);
      } catch (e) {
        throw ioError(`plugin ${name}: cannot read ${source.file}`, e);
      }
      const digest = sha256(bytes);
      if (existing.type === 'file' && existing.mode === PLUGIN_MODE && existing.stamp.size === bytes.length) {
        const onNode = await readIfExists(path.join(hostPluginsDir, name), { noFollow: true });
        if (onNode && onNode.equals(bytes)) {
          if (!dryRun) record.set('plugin', { name, sha256: digest, stamp: existing.stamp, meta: { source: source.stamp } });
          return { ...base, result: 'unchanged', ...(entry ? {} : { detail: 'identical file already on the node; now managed by cni-node' }) };
        }
      }
      if (dryRun) return { ...base, result: existing.type === 'none' ? 'installed' : 'updated' };
      const stamp = await writeFileAtomic(hostPluginsDir, name, bytes, PLUGIN_MODE);
      record.set('plugin', { name, sha256: digest, stamp, meta: { source: source.stamp } });
      return { ...base, result: existing.type === 'none' ? 'installed' : 'updated' };
    },

    commit: () => record.save(),
    close: async () => undefined,
  };
}
