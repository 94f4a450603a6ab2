import { nameProblem, showName } from './names.js';
import { printable } from './printable.js';

/**
 * Validation of rendered CNI network configuration, the way a container runtime
 * (libcni) will read it. A file that fails here would make the runtime skip it, or
 * worse, pick the next file in lexical order: it is never written to the node.
 */

/** File names the runtime loads as network configuration (hidden files included). */
export function isNetworkConfigName(name: string): boolean {
  return /\.(conf|conflist|json)$/.test(name);
}

export interface NetworkConfigInfo {
  name: string;
  cniVersion: string;
  /** Plugin types in chain order (one for a .conf). */
  types: string[];
  /** IPAM plugin types the chain's plugins call (`ipam.type`), in order, without repeats. */
  ipamTypes: string[];
  isList: boolean;
}

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const VERSION = /^\d+\.\d+\.\d+$/;

/** Line and column (1-based) of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/**
 * V8 gives no position for "Unexpected token 'x', …" errors (a value missing after
 * `:`, a trailing comma in a list). The offending character is the last one of the
 * shortest prefix that fails the same way: every shorter prefix only runs out of input.
 */
function unexpectedTokenOffset(text: string): number | undefined {
  const failsOnToken = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n));
      return false;
    } catch (e) {
      return (e as Error).message.startsWith('Unexpected token');
    }
  };
  if (!failsOnToken(text.length)) return undefined;
  let lo = 1;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (failsOnToken(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

function jsonProblem(text: string, error: Error): string {
  const m = /at position (\d+)/.exec(error.message);
  const offset = m ? Number(m[1]) : unexpectedTokenOffset(text);
  const where =
    offset === undefined
      ? ''
      : (() => {
          const { line, column } = lineColumn(text, offset);
          return ` at line ${line}, column ${column}`;
        })();
  // V8 quotes the text (or, for a long text, `…"some context"…`) after the reason: drop it.
  const what = error.message.replace(/ in JSON at position \d+.*$/, '').replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
  // The reason may quote a character of the text (`Unexpected token '…'`): shown, never printed raw.
  return `not valid JSON${where}: ${printable(what, 200)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and checks a network configuration. Returns the facts the runtime uses,
 * or a list of problems (each one says where and why).
 */
export function checkNetworkConfig(fileName: string, text: string): { ok: true; info: NetworkConfigInfo } | { ok: false; problems: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { ok: false, problems: [jsonProblem(text, e as Error)] };
  }
  const problems: string[] = [];
  if (!isObject(doc)) return { ok: false, problems: ['the top level must be a JSON object'] };

  const isList = fileName.endsWith('.conflist') || (fileName.endsWith('.json') && 'plugins' in doc);
  const cniVersion = doc.cniVersion;
  if (typeof cniVersion !== 'string' || cniVersion === '') problems.push('"cniVersion" is missing or not a string');
  else if (!VERSION.test(cniVersion)) problems.push(`"cniVersion" is "${showName(cniVersion)}"; expected a version such as "0.4.0" or "1.0.0"`);
  const name = doc.name;
  if (typeof name !== 'string' || name === '') problems.push('"name" is missing or not a string');
  else if (!NETWORK_NAME.test(name))
    problems.push(`"name" is "${showName(name)}"; a network name starts with a letter or digit and has only letters, digits, _ . -`);

  const types: string[] = [];
  // A Set: a 1 MiB conflist can hold 30,000 plugins, each with an IPAM type of its own.
  const ipamSet = new Set<string>();
  // The runtime does not run IPAM plugins itself, but the chain fails without them.
  const noteIpam = (conf: Record<string, unknown>) => {
    const ipam = conf.ipam;
    if (isObject(ipam) && typeof ipam.type === 'string' && ipam.type !== '') ipamSet.add(ipam.type);
  };
  if (isList) {
    const plugins = doc.plugins;
    if (!Array.isArray(plugins) || plugins.length === 0) problems.push('"plugins" must be a non-empty list in a .conflist');
    else
      plugins.forEach((p, i) => {
        if (!isObject(p) || typeof p.type !== 'string' || p.type === '') problems.push(`plugins[${i}] has no "type"`);
        else {
          types.push(p.type);
          noteIpam(p);
        }
      });
  } else {
    if (typeof doc.type !== 'string' || doc.type === '') problems.push('"type" is missing or not a string');
    else {
      types.push(doc.type);
      noteIpam(doc);
    }
  }
  // Types name binaries in the plugins dir (cni-node check runs them): the same plain-name rule as every other name.
  const ipamTypes = [...ipamSet];
  for (const t of [...types, ...ipamTypes]) {
    const bad = nameProblem(t);
    if (bad) problems.push(`plugin type "${showName(t)}" is not a plain binary name: ${bad}`);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, info: { name: name as string, cniVersion: cniVersion as string, types, ipamTypes, isList } };
}
