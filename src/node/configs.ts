import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { CniNodeError, ofItem } from '../core/errors.js';
import { checkNetworkConfig, isNetworkConfigName, type NetworkConfigInfo } from '../core/cni-config.js';
import type { PlannedAction } from '../core/plan.js';
import { findPointers, MAX_RENDERED_BYTES, renderTemplates } from '../core/template.js';
import type { EngineOptions, ItemReport, KindHandler } from '../engine/types.js';
import {
  commitStaged,
  destinationProblem,
  discardStaged,
  inspect,
  ioError,
  removeFile,
  stageFile,
  syncDir,
  type FileStamp,
  type StagedFile,
} from './atomic.js';
import { sha256 } from './digest.js';
import { INPUT_LIMITS } from './input-limits.js';
import { readRegularBytes } from './read.js';
import type { NodeRecord } from './record.js';

export const CONFIG_MODE = 0o644;
/** CNI configs are a few KiB; a huge "template" is a mistake (or an attack), not a config. */
export const MAX_TEMPLATE_BYTES = INPUT_LIMITS.template;

interface Decision {
  result: 'installed' | 'updated' | 'unchanged';
  content: string;
  digest: string;
  /** The node file's stamp, when it exists. */
  stamp?: FileStamp;
}

interface Rendered {
  content: string;
  info?: NetworkConfigInfo;
}

/**
 * Reads a pointer target from the node configs dir. A symbolic link is followed
 * only if it stays inside the dir, so a planted link cannot make cni-node copy
 * another file of the node into a config. Only a regular file of at most 1 MiB is
 * read (read.ts): a FIFO, device or directory there is refused, never opened for a
 * read that would block.
 */
async function readNodeConfig(dir: string, name: string): Promise<string | undefined> {
  const file = path.join(dir, name);
  let real: string;
  try {
    real = await fs.realpath(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`cannot read ${file}`, e);
  }
  const realDir = await fs.realpath(dir);
  if (path.dirname(real) !== realDir) {
    throw new CniNodeError('invalid', `${file} is a link to ${real}, outside ${dir}; a pointer may only name a file in the node configs dir`);
  }
  const bytes = await readRegularBytes(real, {
    maxBytes: MAX_TEMPLATE_BYTES,
    follow: false,
    notRegular: (kind) => `pointer target ${file} is ${kind}, not a regular file; a pointer names a config file in the node configs dir`,
    tooBig: (size) => `${file} is ${size} bytes; a pointer target must be under 1 MiB`,
  });
  return bytes?.toString('utf8');
}

async function readTemplate(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  // Links are followed: kubelet mounts a ConfigMap's keys as links into `..data/`.
  const bytes = await readRegularBytes(file, {
    maxBytes: MAX_TEMPLATE_BYTES,
    what: `config template ${name}`,
    notRegular: (kind) => `config template ${name}: ${file} is ${kind}, not a regular file`,
    tooBig: (size) => `config template ${name} is ${(size / 1048576).toFixed(1)} MiB; templates are limited to 1 MiB (a CNI config is a few KiB)`,
  });
  if (bytes === undefined) {
    throw new CniNodeError('invalid', `config template ${name} is not in the configs dir ${dir} (mount it there, e.g. from a ConfigMap)`);
  }
  if (bytes.includes(0)) throw new CniNodeError('invalid', `config template ${name} contains NUL bytes; it is binary, not a text template`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CniNodeError('invalid', `config template ${name} is not valid UTF-8 text`);
  }
}

/**
 * Waits for `names` to appear in `dir`, up to `ms`. Returns those still missing.
 * A stop signal ends the wait at once with an 'interrupted' error: a wait that was
 * cut short did not time out, and must not be reported as if it had.
 */
async function waitForFiles(dir: string, names: string[], ms: number, signal?: AbortSignal): Promise<string[]> {
  const deadline = Date.now() + ms;
  let missing = names;
  const interrupted = () => new CniNodeError('interrupted', `stopped while waiting for ${missing.join(', ')} to appear in ${dir} (--wait); nothing was written`);
  while (missing.length > 0 && Date.now() < deadline) {
    if (signal?.aborted) throw interrupted();
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(250, Math.max(0, deadline - Date.now())));
      signal?.addEventListener('abort', done, { once: true });
    });
    if (signal?.aborted) throw interrupted();
    const still: string[] = [];
    for (const n of missing) if ((await inspect(dir, n)).type === 'none') still.push(n);
    missing = still;
  }
  return missing;
}

/**
 * CNI configuration: templates in the configs dir, rendered (pointers replaced by
 * node files), validated, and written into the node configs dir.
 */
export function createConfigHandler(options: EngineOptions, record: NodeRecord): KindHandler {
  const { configsDir, hostConfigsDir, hostPluginsDir } = options.dirs;
  const rendered = new Map<string, Rendered>();
  const waiting = new Map<string, string[]>();
  const decisions = new Map<string, Decision>();
  const staged = new Map<string, StagedFile>();
  let wrote = false;

  return {
    kind: 'config',
    recorded: async () => record.names('config'),

    async prepare(actions: readonly PlannedAction[]) {
      const problems: CniNodeError[] = [];
      const templates = new Map<string, string>();
      const targets = new Set<string>();
      for (const a of actions) {
        const existing = await inspect(hostConfigsDir, a.name);
        const p = destinationProblem(hostConfigsDir, a.name, existing);
        if (p && !(a.op === 'remove' && existing.type === 'other' && existing.what === 'a symbolic link')) {
          problems.push(ofItem(new CniNodeError('invalid', `config ${a.name}: ${p}`), 'config', a.name));
        }
        if (a.op !== 'ensure') continue;
        try {
          const text = await readTemplate(configsDir, a.name);
          const pointers = findPointers(text, a.name);
          templates.set(a.name, text);
          for (const ptr of pointers) targets.add(ptr.name);
        } catch (e) {
          if (e instanceof CniNodeError) problems.push(ofItem(e, 'config', a.name));
          else throw e;
        }
      }

      // Targets refused on their own account (a link out of the dir, too large):
      // reported once, not again as "does not exist".
      const refused = new Map<string, CniNodeError>();
      const readAll = async () => {
        const files = new Map<string, string>();
        refused.clear();
        for (const t of targets) {
          if (templates.has(t)) continue;
          try {
            const content = await readNodeConfig(hostConfigsDir, t);
            if (content !== undefined) files.set(t, content);
          } catch (e) {
            if (e instanceof CniNodeError) refused.set(t, e);
            else throw e;
          }
        }
        return renderTemplates(templates, (n) => files.get(n), MAX_RENDERED_BYTES);
      };
      let outcomes = await readAll();
      const missingNow = [...new Set([...outcomes.values()].flatMap((o) => (o.status === 'missing' ? o.missing.filter((m) => !refused.has(m)) : [])))];
      if (missingNow.length > 0 && options.waitMs > 0) {
        options.reporter.info(`waiting up to ${Math.round(options.waitMs / 1000)}s for ${missingNow.join(', ')} to appear in ${hostConfigsDir}`);
        const still = await waitForFiles(hostConfigsDir, missingNow, options.waitMs, options.signal);
        if (still.length < missingNow.length) outcomes = await readAll();
      }
      // A refused target is a problem of every template that points to it.
      const refusedFor = new Map<string, string[]>();

      for (const [name, outcome] of outcomes) {
        if (outcome.status === 'error') {
          problems.push(ofItem(outcome.error, 'config', name));
        } else if (outcome.status === 'missing') {
          for (const m of outcome.missing) if (refused.has(m)) refusedFor.set(m, [...(refusedFor.get(m) ?? []), name]);
          const absent = outcome.missing.filter((m) => !refused.has(m));
          if (absent.length === 0) continue;
          if (options.tolerateMissingPointers) {
            waiting.set(name, absent);
            continue;
          }
          const list = absent.map((m) => `__${m}__`).join(', ');
          const files = absent.map((m) => path.join(hostConfigsDir, m)).join(', ');
          const advice =
            options.waitMs > 0
              ? `it did not appear within ${Math.round(options.waitMs / 1000)}s (--wait)`
              : 'if the primary CNI writes it later, add --wait=60s';
          problems.push(ofItem(new CniNodeError('missing', `config ${name}: pointer ${list} names ${files}, which does not exist; nothing was written (${advice})`), 'config', name));
        } else {
          const r: Rendered = { content: outcome.content };
          if (isNetworkConfigName(name)) {
            const check = checkNetworkConfig(name, outcome.content);
            if (!check.ok) {
              const from = outcome.pointers.length ? ` (rendered from the template with ${outcome.pointers.map((p) => `__${p}__`).join(', ')})` : '';
              problems.push(ofItem(new CniNodeError('invalid', `config ${name} is not a valid CNI network configuration${from}`, check.problems), 'config', name));
              continue;
            }
            r.info = check.info;
          }
          rendered.set(name, r);
        }
      }
      for (const [target, e] of refused) problems.push((refusedFor.get(target) ?? []).reduce((p, name) => ofItem(p, 'config', name), e));
      return { problems, waiting };
    },

    async stage(actions) {
      // Every new config is written to a temporary file before any is renamed into
      // place: a full disk or an error part way leaves all of the old ones.
      for (const a of actions) {
        if (a.op !== 'ensure' || waiting.has(a.name)) continue;
        const d = await decide(a.name);
        if (d.result !== 'unchanged') staged.set(a.name, await stageFile(hostConfigsDir, a.name, { data: d.content }, CONFIG_MODE));
      }
      // Record the intent before anything becomes visible, so a crash between the
      // renames and the final record never leaves a file cni-node wrote unrecorded.
      for (const { name } of actions) if (staged.has(name) && !record.get('config', name)) record.set('config', { name });
      if (staged.size > 0) await record.save();
    },

    async execute(action, dryRun): Promise<ItemReport> {
      const name = action.name;
      const base = { kind: 'config' as const, name, ...(dryRun ? { dryRun } : {}) };
      if (action.op === 'remove') {
        if (dryRun) {
          if ((await inspect(hostConfigsDir, name)).type !== 'none') return { ...base, result: 'removed' };
          // Gone already, but still recorded (e.g. an intent of a killed run): the record must be mended.
          return { ...base, result: 'absent', ...(record.get('config', name) ? { refreshRecord: true } : {}) };
        }
        const removed = await removeFile(hostConfigsDir, name, { sync: false });
        wrote ||= removed;
        record.delete('config', name);
        return { ...base, result: removed ? 'removed' : 'absent' };
      }
      const missing = waiting.get(name);
      if (missing) return { ...base, result: 'waiting', detail: `for ${missing.join(', ')} in ${hostConfigsDir}` };

      const d = await decide(name);
      await warnMissingPlugins(name, rendered.get(name)?.info);
      if (dryRun) {
        return d.result === 'unchanged' && record.get('config', name)?.sha256 !== d.digest ? { ...base, result: d.result, refreshRecord: true } : { ...base, result: d.result };
      }
      let stamp = d.stamp;
      if (d.result !== 'unchanged') {
        const s = staged.get(name) ?? (await stageFile(hostConfigsDir, name, { data: d.content }, CONFIG_MODE));
        staged.delete(name);
        stamp = await commitStaged(s);
        wrote = true;
      }
      record.set('config', { name, sha256: d.digest, ...(stamp ? { stamp } : {}) });
      return { ...base, result: d.result };
    },

    async commit() {
      if (wrote) await syncDir(hostConfigsDir);
      await record.save();
    },
    async close() {
      await Promise.all([...staged.values()].map(discardStaged));
      staged.clear();
    },
  };

  /** What executing `name` will do; decided once, from the node as it is. */
  async function decide(name: string): Promise<Decision> {
    const known = decisions.get(name);
    if (known) return known;
    const r = rendered.get(name) as Rendered;
    const existing = await inspect(hostConfigsDir, name);
    if (existing.type === 'other') throw new CniNodeError('io', `config ${name}: ${destinationProblem(hostConfigsDir, name, existing)}`);
    let result: Decision['result'] = existing.type === 'none' ? 'installed' : 'updated';
    const content = Buffer.from(r.content);
    // Only a file of the very same size can be unchanged; only that many bytes are read.
    if (existing.type === 'file' && existing.mode === CONFIG_MODE && existing.stamp.size === content.length) {
      const onNode = await readRegularBytes(path.join(hostConfigsDir, name), { maxBytes: content.length, follow: false, what: `config ${name} on the node` });
      if (onNode && onNode.equals(content)) result = 'unchanged';
    }
    const d: Decision = { result, content: r.content, digest: sha256(r.content), ...(existing.type === 'file' ? { stamp: existing.stamp } : {}) };
    decisions.set(name, d);
    return d;
  }

  async function warnMissingPlugins(name: string, info: NetworkConfigInfo | undefined): Promise<void> {
    if (!info) return;
    // A run that only mounts the configs dir cannot see the node's plugins: say nothing.
    if (!(await fs.stat(hostPluginsDir).then((st) => st.isDirectory(), () => false))) return;
    const absent: string[] = [];
    for (const t of [...info.types, ...info.ipamTypes]) {
      const ok = await fs.access(path.join(hostPluginsDir, t), constants.X_OK).then(() => true, () => false);
      if (!ok) absent.push(t);
    }
    if (absent.length > 0) {
      options.reporter.warn(
        `config ${name} uses plugin type${absent.length > 1 ? 's' : ''} ${absent.join(', ')}, not found in ${hostPluginsDir}; pods on this network will fail until ${absent.length > 1 ? 'they are' : 'it is'} installed`,
      );
    }
  }
}
