import { realpathSync } from 'node:fs';
import path from 'node:path';
import { CniNodeError } from '../core/errors.js';
import type { Kind } from '../core/plan.js';
import type { Dirs } from '../core/contracts.js';

/**
 * A source dir and the node dir it is copied into must be apart: neither the same
 * dir, nor one inside the other. With --configs-dir equal to --host-configs-dir a
 * rendered config overwrites its own template (the pointer is lost, and the daemon
 * silently stops following it); with the plugins dirs equal, a plugin is "copied"
 * onto itself. Compared as real paths, so a link or `..` cannot hide an overlap.
 */
const PAIRS: ReadonlyArray<{ kinds: readonly Kind[]; source: keyof Dirs; sourceFlag: string; node: keyof Dirs; nodeFlag: string }> = [
  { kinds: ['plugin'], source: 'pluginsDir', sourceFlag: '--plugins-dir', node: 'hostPluginsDir', nodeFlag: '--host-plugins-dir' },
  { kinds: ['config'], source: 'configsDir', sourceFlag: '--configs-dir', node: 'hostConfigsDir', nodeFlag: '--host-configs-dir' },
];

/** The real path of `dir`, or of its nearest existing ancestor with the rest appended (a dir not made yet). */
async function realish(dir: string): Promise<string> {
  const abs = path.resolve(dir);
  const rest: string[] = [];
  for (let d = abs; ; d = path.dirname(d)) {
    try {
      // realpath(3), one system call (fs.realpathSync walks the path in JavaScript, an lstat per component).
      return path.join(realpathSync.native(d), ...rest.reverse());
    } catch {
      if (path.dirname(d) === d) return abs;
      rest.push(path.basename(d));
    }
  }
}

function inside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel));
}

/** Throws a usage error if a source dir and its node dir overlap, for the kinds given. */
export async function assertDirsApart(dirs: Dirs, kinds: readonly Kind[]): Promise<void> {
  for (const pair of PAIRS) {
    if (!pair.kinds.some((k) => kinds.includes(k))) continue;
    const [source, node] = await Promise.all([realish(dirs[pair.source]), realish(dirs[pair.node])]);
    const how = source === node ? 'is the same dir as' : inside(source, node) ? 'is inside' : inside(node, source) ? 'contains' : undefined;
    if (how) {
      throw new CniNodeError(
        'usage',
        `${pair.sourceFlag} ${dirs[pair.source]} ${how} ${pair.nodeFlag} ${dirs[pair.node]}${source !== path.resolve(dirs[pair.source]) || node !== path.resolve(dirs[pair.node]) ? ` (real paths ${source} and ${node})` : ''}; the source and the node dir must be separate dirs, neither inside the other`,
      );
    }
  }
}
