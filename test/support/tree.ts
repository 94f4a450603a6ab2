// Shared helpers for tests that build temporary node trees and compare what is in
// them (not a test file itself: the test runner skips directories named `support`).
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DEBIAN_PLUGINS, type NodeDirs } from './cli.js';

/** Hex sha256 of some bytes. */
export const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/**
 * Everything observable about a directory: its own mtime/ctime and each entry's
 * type, inode, mode, size, mtime, ctime and (files) content hash. Equal snapshots
 * mean nothing was created, written, renamed or removed.
 */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const d = await lstat(dir);
  out['.'] = `dir mtime=${d.mtimeMs} ctime=${d.ctimeMs}`;
  for (const name of (await readdir(dir)).sort()) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    const type = st.isSymbolicLink() ? `link->${await readlink(p)}` : st.isDirectory() ? 'dir' : 'file';
    const content = st.isFile() ? sha(await readFile(p)) : '';
    out[name] = `${type} ino=${st.ino} mode=${(st.mode & 0o7777).toString(8)} size=${st.size} mtime=${st.mtimeMs} ctime=${st.ctimeMs} ${content}`;
  }
  return out;
}

/** Waits `ms` so coarse file-system clocks can move, and "unchanged mtime" means something. */
export const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

/** The node-visible names in a dir, sorted (cni-node's own files are hidden, dot-named). */
export async function visible(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
}

/** A temp dir removed after the test `t` (a node:test TestContext or suite). */
export async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix = 'cni-node-unit-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Temp dirs made for a test file and removed together at its end:
 * `const roots = new TempRoots(); after(() => roots.removeAll());`.
 */
export class TempRoots {
  private readonly dirs: string[] = [];

  /** A new empty temp dir named `prefix` + random characters. */
  async make(prefix: string): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  /** Removes every dir made; tries them all even if one cannot be removed, then throws the first failure. */
  async removeAll(): Promise<void> {
    const failures: unknown[] = [];
    for (const d of this.dirs.splice(0)) await rm(d, { recursive: true, force: true }).catch((e: unknown) => failures.push(e));
    if (failures.length > 0) throw failures[0];
  }
}

/** A temporary node: its own bin/, templates/ and net.d/ dirs, and an image's plugins dir. */
export interface NodeTree extends NodeDirs {
  root: string;
}

/**
 * Makes a temporary node under a new root from `roots`: empty bin/, templates/ and
 * net.d/ dirs; the image's plugins are `opts.plugins` (default Debian's).
 */
export async function nodeTree(roots: TempRoots, prefix: string, opts: { plugins?: string } = {}): Promise<NodeTree> {
  const root = await roots.make(prefix);
  const t: NodeTree = {
    root,
    plugins: opts.plugins ?? DEBIAN_PLUGINS,
    bin: path.join(root, 'bin'),
    templates: path.join(root, 'templates'),
    netd: path.join(root, 'net.d'),
  };
  for (const d of [t.bin, t.templates, t.netd]) await mkdir(d);
  return t;
}
