// The repository's root, found from a compiled test file (build/test/…) or a source
// one: the nearest directory up that holds both package.json and deploy/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'deploy'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (package.json next to deploy/)');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRoot();
