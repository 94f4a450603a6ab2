// Shared helpers of the src/node unit tests (not a test file itself).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Dirs, EngineOptions, ItemReport, Reporter } from '../../src/core/contracts.js';
import { tempDir } from '../support/tree.js';

const execFileAsync = promisify(execFile);

// The generic pieces (temp dirs, directory snapshots, clock ticks) are shared with
// the CLI and e2e tests; re-exported here for the src/node tests.
export { snapshot, tempDir, tick } from '../support/tree.js';

export interface CapturingReporter extends Reporter {
  items: ItemReport[];
  warnings: string[];
  infos: string[];
}

export function capture(): CapturingReporter {
  const r: CapturingReporter = {
    items: [],
    warnings: [],
    infos: [],
    item: (i) => void r.items.push(i),
    warn: (m) => void r.warnings.push(m),
    info: (m) => void r.infos.push(m),
  };
  return r;
}

export interface UnitTree extends Dirs {
  root: string;
}

export async function unitTree(t: { after(fn: () => Promise<void>): void }): Promise<UnitTree> {
  const root = await tempDir(t);
  const dirs: UnitTree = {
    root,
    pluginsDir: path.join(root, 'image/opt/cni/bin'),
    hostPluginsDir: path.join(root, 'host/opt/cni/bin'),
    configsDir: path.join(root, 'image/etc/cni/net.d'),
    hostConfigsDir: path.join(root, 'host/etc/cni/net.d'),
    manifestsDir: path.join(root, 'image/manifests'),
  };
  for (const d of [dirs.pluginsDir, dirs.hostPluginsDir, dirs.configsDir, dirs.hostConfigsDir, dirs.manifestsDir]) await mkdir(d, { recursive: true });
  return dirs;
}

export function engineOptions(dirs: Dirs, over: Partial<EngineOptions> = {}): EngineOptions & { reporter: CapturingReporter } {
  return { dirs, dryRun: false, waitMs: 0, tolerateMissingPointers: false, env: {}, reporter: capture(), ...over } as EngineOptions & {
    reporter: CapturingReporter;
  };
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Mounts a small tmpfs on a new temp dir (root only); unmounted after the test. */
export async function smallTmpfs(t: { after(fn: () => Promise<void>): void }, sizeKiB: number): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cni-node-tmpfs-'));
  await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0755`, 'tmpfs', dir]);
  t.after(async () => {
    await execFileAsync('umount', [dir]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

export async function remountReadOnly(dir: string): Promise<void> {
  await execFileAsync('mount', ['-o', 'remount,ro', dir]);
}

/** Why tmpfs-based tests cannot run, or undefined. */
export function tmpfsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux tmpfs';
  if (!isRoot()) return 'needs root to mount a small tmpfs (disk-full and read-only cases)';
  return undefined;
}
