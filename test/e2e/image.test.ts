// The container image, built and run for real: scripts/image-test.sh builds the
// Dockerfile's default path offline with podman (scripts/image-build.sh: the local
// base images that scripts/setup.sh makes, Multus and the reference plugins built
// from the pinned source tarballs), cross-builds the arm64 plugins, shows that a
// tampered tarball or another commit is refused, and runs the original cni-node
// README's `docker run` examples against temporary host directories. This wrapper
// runs it and asserts it passed; the script's own PASS/FAIL lines say which check
// failed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// Compiled to build/test/e2e/image.test.js: the repository root is three levels up.
const SCRIPT = fileURLToPath(new URL('../../../scripts/image-test.sh', import.meta.url));
// A cold run builds Multus and the plugins twice (amd64, arm64): several minutes on
// 2 busy cores. scripts/setup.sh builds them once per machine, so usually ~3 min.
const TIMEOUT_MS = 45 * 60_000;

function inPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the image test cannot run here, or undefined if it can. */
function imageTestUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) {
    return 'the image test needs root (podman builds, bind mounts): run the tests as root, after `sudo scripts/setup.sh`';
  }
  const missing = ['podman', 'runc', 'jq'].filter((c) => !inPath(c));
  if (missing.length > 0) return `missing ${missing.join(', ')}: run \`sudo scripts/setup.sh\``;
  return undefined;
}

test(
  'container image: the default build from pinned sources (amd64 + arm64), source verification, and the original docker-run examples',
  { skip: imageTestUnavailableReason(), timeout: TIMEOUT_MS },
  async (t) => {
    const { code, signal, output } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve, reject) => {
      const child = spawn('bash', [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUT_MS - 30_000, killSignal: 'SIGTERM' });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', reject);
      child.on('close', (c, s) => resolve({ code: c, signal: s, output }));
    });
    const lines = output.split('\n');
    for (const line of lines) {
      if (/^(FAIL|Image size:|Image part:|Timings:|image-test:|image-build: error)/.test(line)) t.diagnostic(line);
      else if (/^\d+ passed, \d+ failed$/.test(line)) t.diagnostic(`scripts/image-test.sh checks — ${line}`);
    }
    const failures = lines.filter(
      (l, i) =>
        l.startsWith('FAIL') ||
        (i > 0 &&
          l.startsWith('     ') &&
          lines
            .slice(0, i)
            .reverse()
            .find((p) => !p.startsWith('     '))
            ?.startsWith('FAIL')),
    );
    const summary = lines.find((l) => /^\d+ passed, \d+ failed$/.test(l));
    assert.equal(code, 0, `scripts/image-test.sh exited ${code ?? `on ${signal}`}\n${failures.length ? failures.join('\n') : lines.slice(-40).join('\n')}`);
    assert.match(summary ?? '', /^\d+ passed, 0 failed$/, `no summary line: ${lines.slice(-20).join('\n')}`);
  },
);
