import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { CniNodeError, ofItem } from '../core/errors.js';
import { checkNetworkConfig, isNetworkConfigName, type NetworkConfigInfo } from '../core/cni-config.js';
import type { PlannedAction } from '../core/plan.js';
import { someOf } from '../core/printable.js';
import { findPointers, MAX_RENDERED_BYTES, renderTemplates, type RenderOutcome } from '../core/template.js';
import type { EngineOptions, FileStamp, ItemRecord, ItemReport, KindHandler } from '../core/contracts.js';
import { destinationProblem, inspect, ioError, stageFile } from './atomic.js';
import { FileKindHandler } from './file-kind.js';
import { sha256 } from '../sys/digest.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegularBytes } from '../sys/read.js';
import { sleep } from '../sys/sleep.js';

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
    real = realpathSync.native(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`cannot read ${file}`, e);
  }
  const realDir = realpathSync.native(dir);
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
  const interrupted = () => new CniNodeError('interrupted', `stopped while waiting for ${someOf(missing)} to appear in ${dir} (--wait); nothing was written`);
  while (missing.length > 0 && Date.now() < deadline) {
    await sleep(Math.min(250, Math.max(0, deadline - Date.now())), signal, interrupted);
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
export function createConfigHandler(options: EngineOptions, record: ItemRecord): KindHandler {
  return new ConfigHandler(options, record);
}

type Outcomes = Map<string, RenderOutcome>;

class ConfigHandler extends FileKindHandler {
  readonly kind = 'config' as const;
  private readonly rendered = new Map<string, Rendered>();
  /** Templates whose pointer targets do not exist yet (daemon mode), with those targets. */
  private readonly waiting = new Map<string, string[]>();
  private readonly decisions = new Map<string, Decision>();

  constructor(options: EngineOptions, record: ItemRecord) {
    super(options, record, options.dirs.hostConfigsDir);
  }

  async prepare(actions: readonly PlannedAction[]): Promise<{ problems: CniNodeError[]; waiting: Map<string, string[]> }> {
    const problems: CniNodeError[] = [];
    const { templates, targets } = await this.readTemplates(actions, problems);
    // Targets refused on their own account (a link out of the dir, too large):
    // reported once, not again as "does not exist".
    const refused = new Map<string, CniNodeError>();
    const outcomes = await this.render(templates, targets, refused);
    // A refused target is a problem of every template that points to it.
    const refusedFor = new Map<string, string[]>();
    for (const [name, outcome] of outcomes) {
      if (outcome.status === 'missing') {
        for (const m of outcome.missing) if (refused.has(m)) refusedFor.set(m, [...(refusedFor.get(m) ?? []), name]);
      }
      const problem = this.judge(name, outcome, refused);
      if (problem) problems.push(problem);
    }
    for (const [target, e] of refused) problems.push((refusedFor.get(target) ?? []).reduce((p, name) => ofItem(p, 'config', name), e));
    return { problems, waiting: this.waiting };
  }

  /** Checks each destination and reads each template to ensure; the pointer targets they name. */
  private async readTemplates(actions: readonly PlannedAction[], problems: CniNodeError[]): Promise<{ templates: Map<string, string>; targets: Set<string> }> {
    const templates = new Map<string, string>();
    const targets = new Set<string>();
    for (const a of actions) {
      const p = await this.destinationCheck(a);
      if (p) problems.push(p);
      if (a.op !== 'ensure') continue;
      try {
        const text = await readTemplate(this.options.dirs.configsDir, a.name);
        const pointers = findPointers(text, a.name);
        templates.set(a.name, text);
        for (const ptr of pointers) targets.add(ptr.name);
      } catch (e) {
        if (e instanceof CniNodeError) problems.push(ofItem(e, 'config', a.name));
        else throw e;
      }
    }
    return { templates, targets };
  }

  /** Renders every template with the node files it points to; with --wait, waits for missing ones first. */
  private async render(templates: ReadonlyMap<string, string>, targets: ReadonlySet<string>, refused: Map<string, CniNodeError>): Promise<Outcomes> {
    const renderAll = async (): Promise<Outcomes> => {
      const files = new Map<string, string>();
      refused.clear();
      for (const t of targets) {
        if (templates.has(t)) continue;
        try {
          const content = await readNodeConfig(this.dir, t);
          if (content !== undefined) files.set(t, content);
        } catch (e) {
          if (e instanceof CniNodeError) refused.set(t, e);
          else throw e;
        }
      }
      return renderTemplates(templates, (n) => files.get(n), MAX_RENDERED_BYTES);
    };
    const outcomes = await renderAll();
    const { waitMs, reporter, signal } = this.options;
    const missingNow = [...new Set([...outcomes.values()].flatMap((o) => (o.status === 'missing' ? o.missing.filter((m) => !refused.has(m)) : [])))];
    if (missingNow.length === 0 || waitMs <= 0) return outcomes;
    reporter.info(`waiting up to ${Math.round(waitMs / 1000)}s for ${someOf(missingNow)} to appear in ${this.dir}`);
    const still = await waitForFiles(this.dir, missingNow, waitMs, signal);
    return still.length < missingNow.length ? renderAll() : outcomes;
  }

  /** One template's rendering: kept to write, waiting (daemon), or its problem. */
  private judge(name: string, outcome: RenderOutcome, refused: ReadonlyMap<string, CniNodeError>): CniNodeError | undefined {
    if (outcome.status === 'error') return ofItem(outcome.error, 'config', name);
    if (outcome.status === 'missing') {
      const absent = outcome.missing.filter((m) => !refused.has(m));
      if (absent.length === 0) return undefined;
      if (this.options.tolerateMissingPointers) {
        this.waiting.set(name, absent);
        return undefined;
      }
      const list = someOf(absent.map((m) => `__${m}__`));
      const files = someOf(absent.map((m) => path.join(this.dir, m)));
      const advice =
        this.options.waitMs > 0
          ? `it did not appear within ${Math.round(this.options.waitMs / 1000)}s (--wait)`
          : 'if the primary CNI writes it later, add --wait=60s';
      return ofItem(
        new CniNodeError('missing', `config ${name}: pointer ${list} names ${files}, which does not exist; nothing was written (${advice})`),
        'config',
        name,
      );
    }
    const r: Rendered = { content: outcome.content };
    if (isNetworkConfigName(name)) {
      const check = checkNetworkConfig(name, outcome.content);
      if (!check.ok) {
        const from = outcome.pointers.length ? ` (rendered from the template with ${someOf(outcome.pointers.map((p) => `__${p}__`))})` : '';
        return ofItem(new CniNodeError('invalid', `config ${name} is not a valid CNI network configuration${from}`, check.problems), 'config', name);
      }
      r.info = check.info;
    }
    this.rendered.set(name, r);
    return undefined;
  }

  async stage(actions: readonly PlannedAction[]): Promise<void> {
    // Every new config is written to a temporary file before any is renamed into
    // place: a full disk or an error part way leaves all of the old ones.
    for (const a of actions) {
      if (a.op !== 'ensure' || this.waiting.has(a.name)) continue;
      const d = await this.decide(a.name);
      if (d.result !== 'unchanged') this.staged.set(a.name, await stageFile(this.dir, a.name, { data: d.content }, CONFIG_MODE));
    }
    await this.recordIntent(actions);
  }

  protected async ensure(name: string, dryRun: boolean): Promise<ItemReport> {
    const base = this.base(name, dryRun);
    const missing = this.waiting.get(name);
    if (missing) return { ...base, result: 'waiting', detail: `for ${someOf(missing)} in ${this.dir}` };
    const d = await this.decide(name);
    await this.warnMissingPlugins(name, this.rendered.get(name)?.info);
    if (dryRun) {
      return d.result === 'unchanged' && this.record.get('config', name)?.sha256 !== d.digest
        ? { ...base, result: d.result, refreshRecord: true }
        : { ...base, result: d.result };
    }
    let stamp = d.stamp;
    if (d.result !== 'unchanged') stamp = await this.replace(name, () => stageFile(this.dir, name, { data: d.content }, CONFIG_MODE));
    this.record.set('config', { name, sha256: d.digest, ...(stamp ? { stamp } : {}) });
    return { ...base, result: d.result };
  }

  /** What executing `name` will do; decided once, from the node as it is. */
  private async decide(name: string): Promise<Decision> {
    const known = this.decisions.get(name);
    if (known) return known;
    const r = this.rendered.get(name) as Rendered;
    const existing = await inspect(this.dir, name);
    if (existing.type === 'other') throw new CniNodeError('io', `config ${name}: ${destinationProblem(this.dir, name, existing)}`);
    let result: Decision['result'] = existing.type === 'none' ? 'installed' : 'updated';
    const content = Buffer.from(r.content);
    // Only a file of the very same size can be unchanged; only that many bytes are read.
    if (existing.type === 'file' && existing.mode === CONFIG_MODE && existing.stamp.size === content.length) {
      const onNode = await readRegularBytes(path.join(this.dir, name), { maxBytes: content.length, follow: false, what: `config ${name} on the node` });
      if (onNode && onNode.equals(content)) result = 'unchanged';
    }
    const d: Decision = { result, content: r.content, digest: sha256(r.content), ...(existing.type === 'file' ? { stamp: existing.stamp } : {}) };
    this.decisions.set(name, d);
    return d;
  }

  private async warnMissingPlugins(name: string, info: NetworkConfigInfo | undefined): Promise<void> {
    const { hostPluginsDir } = this.options.dirs;
    if (!info) return;
    // A run that only mounts the configs dir cannot see the node's plugins: say nothing.
    try {
      if (!statSync(hostPluginsDir).isDirectory()) return;
    } catch {
      return;
    }
    const absent: string[] = [];
    for (const t of [...info.types, ...info.ipamTypes]) {
      try {
        accessSync(path.join(hostPluginsDir, t), constants.X_OK);
      } catch {
        absent.push(t);
      }
    }
    if (absent.length > 0) {
      this.options.reporter.warn(
        `config ${name} uses plugin type${absent.length > 1 ? 's' : ''} ${someOf(absent)}, not found in ${hostPluginsDir}; pods on this network will fail until ${absent.length > 1 ? 'they are' : 'it is'} installed`,
      );
    }
  }
}
