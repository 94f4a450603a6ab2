import { closeSync, constants, fchmodSync, lstatSync, openSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FileStamp } from '../core/contracts.js';
import { CniNodeError, reason } from '../core/errors.js';
import { fileNameProblem, TEMP_PREFIX, TEMP_RANDOM_HEX } from '../core/names.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { stampOf } from '../sys/file-stamp.js';
import { copyFile, fsync, read, writeAll } from '../sys/pool.js';
import { openRegular, readRegularBytes } from '../sys/read.js';
import { uniqueHex } from '../sys/unique.js';

const DEFAULT_READ_LIMIT = 16 * 1024 * 1024;

/**
 * Every write to the node goes through here: a temporary file in the same
 * directory, fsync, rename over the target, fsync the directory. A reader (kubelet,
 * the container runtime executing a plugin) sees the old file or the new one, never
 * a partial one, and a crash at any point leaves one of the two.
 *
 * The fsyncs and the copies of plugin binaries run on the thread pool (sys/pool.ts);
 * every other step is one synchronous system call (stat, open, rename, unlink).
 */

/** Temporary files are hidden and never end in .conf/.conflist/.json, so a runtime never loads one. */
export { TEMP_PREFIX };

/**
 * Every path this module touches is `dir` + one plain file name: a name with a
 * separator or `..` (from a damaged record, say) can never make it write or remove
 * anything outside `dir`, whatever the caller checked before.
 */
function assertFileName(dir: string, name: string): void {
  const p = fileNameProblem(name);
  if (p) throw new CniNodeError('invalid', `refusing to touch ${JSON.stringify(name)} in ${dir}: ${p}`);
}

export type Existing = { type: 'none' } | { type: 'file'; stamp: FileStamp; mode: number } | { type: 'other'; what: string };

/** What is at `dir/name` now, without following a symbolic link. */
export async function inspect(dir: string, name: string): Promise<Existing> {
  return inspectSync(dir, name);
}

function inspectSync(dir: string, name: string): Existing {
  assertFileName(dir, name);
  try {
    const st = lstatSync(path.join(dir, name));
    if (st.isFile()) return { type: 'file', stamp: stampOf(st), mode: st.mode & 0o7777 };
    if (st.isSymbolicLink()) return { type: 'other', what: 'a symbolic link' };
    if (st.isDirectory()) return { type: 'other', what: 'a directory' };
    return { type: 'other', what: 'not a regular file' };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { type: 'none' };
    throw ioError(`cannot inspect ${path.join(dir, name)}`, e);
  }
}

/** Problem with writing to dir/name, found before any change; undefined if fine. */
export function destinationProblem(dir: string, name: string, existing: Existing): string | undefined {
  if (existing.type === 'other') {
    return `${path.join(dir, name)} is ${existing.what}; cni-node only replaces regular files (remove it by hand if it should be managed)`;
  }
  return undefined;
}

export function ioError(what: string, e: unknown): CniNodeError {
  const code = (e as NodeJS.ErrnoException).code;
  const hint =
    code === 'ENOSPC'
      ? ' (the disk is full; free space on the node and run again)'
      : code === 'EROFS'
        ? ' (the directory is read-only; mount the node directory read-write)'
        : code === 'EACCES' || code === 'EPERM'
          ? ' (permission denied; cni-node must run as root with the node directory mounted)'
          : code === 'ENOENT'
            ? ' (the directory does not exist; check the hostPath mount)'
            : '';
  return new CniNodeError('io', `${what}: ${reason(e)}${hint}`, [], { cause: e });
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fsync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A new version of a file, complete and fsynced under a temporary name, not yet visible. */
export interface StagedFile {
  dir: string;
  name: string;
  temp: string;
}

/**
 * Writes the new content of dir/name to a temporary file in the same directory and
 * fsyncs it. Nothing is visible until commitStaged(). `from` is the bytes, or a
 * file to copy (copied by the kernel: copy_file_range, no trip through memory).
 */
export async function stageFile(
  dir: string,
  name: string,
  from: { data: Uint8Array | string } | { copyOf: string; maxBytes?: number },
  mode: number,
): Promise<StagedFile> {
  const existing = inspectSync(dir, name);
  const problem = destinationProblem(dir, name, existing);
  if (problem) throw new CniNodeError('io', problem);

  const temp = path.join(dir, `${TEMP_PREFIX}${name}.${uniqueHex(TEMP_RANDOM_HEX)}`);
  let fd: number | undefined;
  try {
    if ('copyOf' in from) {
      await copyRegular(from.copyOf, temp, from.maxBytes ?? INPUT_LIMITS.plugin, path.join(dir, name));
      fd = openSync(temp, constants.O_RDWR | constants.O_NOFOLLOW);
    } else {
      fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      writeFileSync(fd, from.data);
    }
    fchmodSync(fd, mode);
    await fsync(fd);
    // close(2) releases the descriptor even when it reports an error: never close it twice.
    const open = fd;
    fd = undefined;
    closeSync(open);
  } catch (e) {
    if (fd !== undefined) closeQuietly(fd);
    rmQuietly(temp);
    if (e instanceof CniNodeError) throw e;
    throw ioError(`cannot write ${path.join(dir, name)}`, e);
  }
  return { dir, name, temp };
}

/**
 * Copies the regular file `source` (at most maxBytes) to the new file `temp`. The
 * source is opened by the rules of read.ts (never a FIFO or a device, which would
 * block or never end); the copy is then made by the kernel (copy_file_range)
 * from that very open file, through /proc/self/fd, so a file swapped in by name
 * since the check is never the one copied. Without /proc, the bytes are copied
 * from the open file in chunks.
 */
async function copyRegular(source: string, temp: string, maxBytes: number, target: string): Promise<void> {
  const opened = openRegular(source, { maxBytes, what: 'the source file' });
  if (!opened) throw new CniNodeError('io', `cannot write ${target}: its source ${source} does not exist (it vanished since it was checked); run again`);
  const { fd } = opened;
  try {
    try {
      await copyFile(`/proc/self/fd/${fd}`, temp, constants.COPYFILE_EXCL);
      return;
    } catch (e) {
      // Without /proc (ENOENT for the fd's link): copy from the open file instead.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || isDirSync('/proc/self/fd')) throw e;
    }
    const out = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      let total = 0;
      for (;;) {
        const n = await read(fd, buf, null);
        if (n === 0) break;
        total += n;
        if (total > maxBytes) throw new CniNodeError('invalid', `${source} grew past ${maxBytes} bytes while it was copied`);
        await writeAll(out, buf.subarray(0, n));
      }
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes a staged file visible by renaming it over the target (atomic). The
 * directory is fsynced by the caller, once per batch (syncDir): until then a crash
 * may undo the rename, which leaves the complete old file.
 */
export async function commitStaged(staged: StagedFile): Promise<FileStamp> {
  const target = path.join(staged.dir, staged.name);
  // Checked again at the last moment: a directory or link may have appeared since staging.
  const existing = inspectSync(staged.dir, staged.name);
  const problem = destinationProblem(staged.dir, staged.name, existing);
  try {
    if (problem) throw new CniNodeError('io', problem);
    renameSync(staged.temp, target);
    return stampOf(lstatSync(target));
  } catch (e) {
    await discardStaged(staged);
    throw e instanceof CniNodeError ? e : ioError(`cannot replace ${target}`, e);
  }
}

export async function discardStaged(staged: StagedFile): Promise<void> {
  rmQuietly(staged.temp);
}

/** Closes a descriptor on an error path: the error being reported is the first one, not this. */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // The descriptor is released by close(2) whatever it reports.
  }
}

/** Removes a temporary file of ours if it is there; a failure leaves it for cleanTempFiles(). */
function rmQuietly(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {
    // Left for the next locked run's cleanTempFiles().
  }
}

function isDirSync(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export async function syncDir(dir: string): Promise<void> {
  try {
    await fsyncDir(dir);
  } catch (e) {
    throw ioError(`cannot sync ${dir}`, e);
  }
}

/**
 * Atomically replaces dir/name with `data`, mode `mode`. Refuses to replace a
 * symbolic link or a directory. Returns the new file's stamp.
 */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array | string, mode: number): Promise<FileStamp> {
  const stamp = await commitStaged(await stageFile(dir, name, { data }, mode));
  await syncDir(dir);
  return stamp;
}

/**
 * Removes dir/name (a file or a link, never a directory). Returns false if it was
 * not there. With sync: false the caller fsyncs the directory once per batch.
 */
export async function removeFile(dir: string, name: string, opts: { sync?: boolean } = {}): Promise<boolean> {
  const existing = inspectSync(dir, name);
  const target = path.join(dir, name);
  if (existing.type === 'none') return false;
  if (existing.type === 'other' && existing.what === 'a directory') {
    throw new CniNodeError('io', `${target} is a directory; cni-node removes only files (remove it by hand)`);
  }
  try {
    unlinkSync(target);
    if (opts.sync !== false) await fsyncDir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw ioError(`cannot remove ${target}`, e);
  }
  return true;
}

/** Removes temporary files an interrupted earlier run left behind. Call with the dir's lock held. */
export async function cleanTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  // Only files (or links) are removed: something else under a temporary name (a
  // directory someone made) is not cni-node's, and must not crash the run either.
  const removed: string[] = [];
  for (const n of names) {
    if (!n.startsWith(TEMP_PREFIX)) continue;
    try {
      unlinkSync(path.join(dir, n));
      removed.push(n);
    } catch {
      // Not removable (a directory): left alone.
    }
  }
  return removed;
}

/**
 * Reads a regular file of at most maxBytes if it is there (read.ts: never a FIFO,
 * device or directory). With `noFollow`, a symbolic link at the last component is
 * refused, so a link planted in a node dir cannot make cni-node read another
 * place. Templates, which kubelet mounts from a ConfigMap as links into `..data/`,
 * are read with links followed. maxBytes defaults to 16 MiB.
 */
export async function readIfExists(file: string, opts: { noFollow?: boolean; maxBytes?: number; what?: string } = {}): Promise<Buffer | undefined> {
  const maxBytes = opts.maxBytes ?? DEFAULT_READ_LIMIT;
  const what = opts.what ? `${opts.what} ${file}` : file;
  try {
    return await readRegularBytes(file, {
      maxBytes,
      follow: opts.noFollow !== true,
      notRegular: (kind) => `cannot read ${what}: it is ${kind}, not a regular file`,
      tooBig: (size) => `cannot read ${what}: it is ${size} bytes, over the limit of ${maxBytes}`,
    });
  } catch (e) {
    throw e instanceof CniNodeError && e.kind !== 'io' ? new CniNodeError('io', e.message) : e;
  }
}
