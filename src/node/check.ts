import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { checkNetworkConfig, isNetworkConfigName, type NetworkConfigInfo } from '../core/cni-config.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { printable } from '../core/printable.js';
import { readRegularBytes } from '../sys/read.js';

/**
 * Looks at the node dirs the way a container runtime will: the lexically first
 * valid network config is the pod network; every plugin of its chain must exist,
 * be executable, and support the config's cniVersion (asked with CNI_COMMAND=VERSION).
 */
export interface PluginCheck {
  type: string;
  /** An IPAM plugin called by a plugin of the chain, rather than a link of the chain. */
  ipam?: boolean;
  ok: boolean;
  problem?: string;
  supported?: string[];
}

export interface FileCheck {
  file: string;
  valid: boolean;
  problems: string[];
  info?: NetworkConfigInfo;
  plugins: PluginCheck[];
}

export interface NodeCheck {
  files: FileCheck[];
  selected?: FileCheck;
  ok: boolean;
  summary: string;
}

async function askVersion(binary: string, cniVersion: string): Promise<{ supported?: string[]; problem?: string }> {
  // Loaded here, not at start-up: child_process costs every command a few ms to load.
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      [],
      { env: { CNI_COMMAND: 'VERSION', CNI_PATH: path.dirname(binary) }, timeout: 5000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err && !stdout) {
          // The plugin's output is untrusted like any node file: one line, escaped, capped.
          resolve({ problem: `did not answer CNI_COMMAND=VERSION (${printable((stderr || err.message).trim().split('\n')[0], 200)})` });
          return;
        }
        try {
          const v = JSON.parse(stdout) as { supportedVersions?: unknown };
          if (!Array.isArray(v.supportedVersions)) throw new Error('no supportedVersions');
          resolve({ supported: v.supportedVersions.slice(0, 20).map((x) => printable(x, 20)) });
        } catch {
          resolve({ problem: `answered CNI_COMMAND=VERSION with something that is not a version list: ${printable(stdout, 80)}` });
        }
      },
    );
    // A plugin may exit without reading its stdin: that EPIPE is not our failure.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(JSON.stringify({ cniVersion }));
  });
}

async function checkPlugin(pluginsDir: string, type: string, cniVersion: string): Promise<PluginCheck> {
  const binary = path.join(pluginsDir, type);
  try {
    const st = statSync(binary);
    if (!st.isFile()) return { type, ok: false, problem: `${binary} is not a file` };
    accessSync(binary, constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { type, ok: false, problem: code === 'ENOENT' ? `${binary} does not exist` : `${binary} is not executable` };
  }
  const answer = await askVersion(binary, cniVersion);
  if (answer.problem) return { type, ok: false, problem: answer.problem };
  const supported = answer.supported ?? [];
  if (!supported.includes(cniVersion)) {
    return { type, ok: false, supported, problem: `supports CNI versions ${supported.join(', ')}, not ${cniVersion}` };
  }
  return { type, ok: true, supported };
}

export async function checkNode(configsDir: string, pluginsDir: string): Promise<NodeCheck> {
  let names: string[];
  try {
    names = readdirSync(configsDir).filter(isNetworkConfigName).sort();
  } catch (e) {
    return { files: [], ok: false, summary: `cannot read ${configsDir}: ${(e as Error).message}` };
  }
  const files: FileCheck[] = [];
  for (const file of names) {
    let text: string;
    try {
      // As a runtime would load it, but only a regular file, and only up to the cap (read.ts).
      const bytes = await readRegularBytes(path.join(configsDir, file), { maxBytes: INPUT_LIMITS.template });
      if (bytes === undefined) continue;
      text = bytes.toString('utf8');
    } catch (e) {
      // The message names the file, and file names in the node dir are anyone's: one line, escaped.
      files.push({ file, valid: false, problems: [`cannot read: ${printable((e as Error).message, 500)}`], plugins: [] });
      continue;
    }
    const c = checkNetworkConfig(file, text);
    if (!c.ok) {
      files.push({ file, valid: false, problems: c.problems, plugins: [] });
      continue;
    }
    const plugins = await Promise.all([
      ...c.info.types.map((t) => checkPlugin(pluginsDir, t, c.info.cniVersion)),
      ...c.info.ipamTypes.map(async (t): Promise<PluginCheck> => ({ ...(await checkPlugin(pluginsDir, t, c.info.cniVersion)), ipam: true })),
    ]);
    files.push({ file, valid: true, problems: [], info: c.info, plugins });
  }
  const selected = files.find((f) => f.valid);
  if (!selected) {
    return {
      files,
      ok: false,
      summary: names.length === 0 ? `no network configuration in ${configsDir}: pods cannot get a network` : `no valid network configuration in ${configsDir}`,
    };
  }
  const broken = selected.plugins.filter((p) => !p.ok);
  return {
    files,
    selected,
    ok: broken.length === 0,
    summary:
      broken.length === 0
        ? `the runtime will use ${printable(selected.file, 260)} (network "${selected.info?.name}"), and all its plugins answer`
        : `the runtime will use ${printable(selected.file, 260)}, but ${broken.map((b) => b.type).join(', ')} will fail`,
  };
}
