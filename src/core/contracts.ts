/**
 * The contracts between the layers: what the engine asks of each kind of item
 * (KindHandler), how progress is reported (Reporter), where things are (Dirs), and
 * the record of what cni-node installed (ItemRecord). They live in core so that
 * node/ and kube/ implement them without importing the engine that uses them.
 */
import type { CniNodeError } from './errors.js';
import type { Kind, PlannedAction } from './plan.js';

/** What happened to one item; printed one line per item. */
export type ItemResult =
  | 'installed' // did not exist, now does
  | 'updated' // existed with other content, rewritten
  | 'unchanged' // already as desired; nothing written
  | 'removed'
  | 'absent' // asked to remove, was not there
  | 'waiting' // (daemon) a pointer target does not exist yet
  | 'failed';

export interface ItemReport {
  kind: Kind;
  name: string;
  result: ItemResult;
  dryRun?: boolean;
  /** Short extra words: "3 objects", "was created by another installer", … */
  detail?: string;
  /** Nothing changes on the node, but cni-node's record of the item must be updated. */
  refreshRecord?: boolean;
}

export interface Reporter {
  item(report: ItemReport): void;
  warn(message: string): void;
  info(message: string): void;
}

/** Paths of the five directories (see the README's directory table). */
export interface Dirs {
  pluginsDir: string;
  hostPluginsDir: string;
  configsDir: string;
  hostConfigsDir: string;
  manifestsDir: string;
}

export interface EngineOptions {
  dirs: Dirs;
  dryRun: boolean;
  /** How long to wait for missing pointer targets before failing (ms); 0 = fail at once. */
  waitMs: number;
  /** Daemon mode: a template waiting for a pointer target is reported, not an error. */
  tolerateMissingPointers: boolean;
  env: Readonly<Record<string, string | undefined>>;
  kubeconfig?: string;
  /**
   * Daemon mode: a problem that belongs to particular items (CniNodeError.items)
   * holds just those items as they are on the node, and the run converges the rest
   * (ReconcileResult.invalid lists them). Off (the CLI): any problem stops the whole
   * run before anything changes.
   */
  isolateInvalid?: boolean;
  /** Items ("kind name") to leave alone: neither ensured nor removed (the daemon's fight detector). */
  hold?: ReadonlySet<string>;
  reporter: Reporter;
  signal?: AbortSignal;
}

/**
 * One kind of item (plugins, configs, manifests). The engine drives every kind the
 * same way, so install, uninstall, apply and the daemon share one code path:
 *   1. prepare(): read and validate everything the actions need, change nothing;
 *      return every problem found (the run then stops before touching the node).
 *   2. stage() (optional): write the new content of every ensure action to
 *      temporary files in parallel, fsynced but invisible; execute() then only
 *      renames. The slow I/O overlaps while the node still changes in plan order.
 *   3. execute(): carry out one action; return what happened.
 *   4. commit(): persist the kind's record of what cni-node manages.
 */
export interface KindHandler {
  readonly kind: Kind;
  /** Names cni-node recorded as installed, in install order (the implicit `:Current`). */
  recorded(): Promise<string[]>;
  prepare(actions: readonly PlannedAction[]): Promise<{ problems: CniNodeError[]; waiting: Map<string, string[]> }>;
  stage?(actions: readonly PlannedAction[]): Promise<void>;
  /** With dryRun, says what would happen without doing it. */
  execute(action: PlannedAction, dryRun: boolean): Promise<ItemReport>;
  commit(): Promise<void>;
  /** Release anything held (staged temporary files, clients). */
  close(): Promise<void>;
}

/** What identifies a file's bytes without reading them again: size, mtime, ctime, inode (see node/record.ts). */
export interface FileStamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

/** One item in the record of what cni-node installed. */
export interface RecordEntry {
  name: string;
  /** sha256 (hex) of what cni-node wrote, where cheap to know (configs, manifests). Plugins rely on stamps. */
  sha256?: string;
  /** The node file's stamp right after cni-node wrote (or verified) it. */
  stamp?: FileStamp;
  /** Kind-specific facts (a plugin's source stamp, a manifest's object references, …). */
  meta?: Record<string, unknown>;
}

/**
 * The record of what cni-node installed in one node dir, by kind (node/record.ts's
 * NodeRecord). Handlers change it in memory and save() it once per step.
 */
export interface ItemRecord {
  /** The record file, for messages. */
  readonly file: string;
  /** Names recorded for `kind`, in install order. */
  names(kind: string): string[];
  get(kind: string, name: string): RecordEntry | undefined;
  set(kind: string, entry: RecordEntry): void;
  delete(kind: string, name: string): void;
  /** Writes the record atomically if it changed. */
  save(): Promise<void>;
}
