/**
 * The daemon's desired state: which plugins, configs and manifests should be on the
 * node. It comes from the flags and/or the ConfigMap named by --config-map, whose
 * keys `plugins`, `configs` and `manifests` hold comma-separated lists (the
 * original's `multus-cni` ConfigMap works unchanged).
 *
 * Rules:
 *  - A key present in the ConfigMap gives that kind's list (an empty value means
 *    "none": cni-node removes what it installed of that kind). A kind whose key is
 *    absent takes its flag; with neither, cni-node leaves that kind alone.
 *  - Only the desired list is given: cni-node's record says what is installed, so
 *    the `Desired:Current` form of apply is refused here.
 *  - An invalid list anywhere in the ConfigMap rejects the whole ConfigMap: the last
 *    good desired state is kept (never half of an edit), and the problem reported.
 */
import { isCniNodeError } from '../core/errors.js';
import { parseListSpec, type ListSpec } from '../core/lists.js';
import { KINDS, type Kind } from '../core/plan.js';
import { printable, someOf } from '../core/printable.js';

export type DesiredLists = Partial<Record<Kind, readonly string[]>>;

export const CONFIG_MAP_KEYS: Readonly<Record<Kind, string>> = { plugin: 'plugins', config: 'configs', manifest: 'manifests' };

export interface ConfigMapRef {
  namespace: string;
  name: string;
}

/** Parses --config-map=<namespace>/<name> (or <name>: the pod's namespace). */
export function parseConfigMapRef(text: string, defaultNamespace: string): ConfigMapRef | string {
  const parts = text.trim().split('/');
  const dns = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
  const [a, b] = parts;
  if (parts.length === 1 && a && dns.test(a)) return { namespace: defaultNamespace, name: a };
  if (parts.length === 2 && a && b && dns.test(a) && dns.test(b)) return { namespace: a, name: b };
  return `--config-map=${text}: expected <namespace>/<name> of a ConfigMap, e.g. kube-system/multus-cni`;
}

export type ParsedConfigMap = { ok: true; lists: DesiredLists; keys: Kind[] } | { ok: false; problems: string[] };

/** The desired lists in a ConfigMap's data; every problem at once. */
export function desiredFromConfigMap(data: Readonly<Record<string, string>> | undefined, ref: string): ParsedConfigMap {
  const lists: DesiredLists = {};
  const keys: Kind[] = [];
  const problems: string[] = [];
  for (const kind of KINDS) {
    const key = CONFIG_MAP_KEYS[kind];
    const raw = data?.[key];
    if (raw === undefined) continue;
    if (typeof raw !== 'string') {
      problems.push(`ConfigMap ${ref} key ${key} is not a string`);
      continue;
    }
    let spec: ListSpec;
    try {
      spec = parseListSpec(raw, `ConfigMap ${ref} key ${key}`);
    } catch (e) {
      if (!isCniNodeError(e)) throw e;
      problems.push(e.details.length > 0 ? `${e.message}: ${e.details.join('; ')}` : e.message);
      continue;
    }
    if (spec.current !== undefined) {
      problems.push(
        `ConfigMap ${ref} key ${key}="${printable(raw.trim(), 200)}" uses the Desired:Current form; cni-node run takes the desired list only (it keeps its own record of what is installed), e.g. ${key}: "${printable(spec.desired.join(','), 200)}"`,
      );
      continue;
    }
    lists[kind] = spec.desired;
    keys.push(kind);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, lists, keys };
}

/** ConfigMap lists win for the kinds they name; flags give the others. */
export function mergeDesired(flags: Partial<Record<Kind, ListSpec>>, fromConfigMap: DesiredLists | undefined): DesiredLists {
  const out: DesiredLists = {};
  for (const kind of KINDS) {
    const cm = fromConfigMap?.[kind];
    if (cm !== undefined) out[kind] = cm;
    else if (flags[kind] !== undefined) out[kind] = (flags[kind] as ListSpec).desired;
  }
  return out;
}

export function sameDesired(a: DesiredLists | undefined, b: DesiredLists | undefined): boolean {
  if (!a || !b) return a === b;
  return KINDS.every((k) => JSON.stringify(a[k] ?? null) === JSON.stringify(b[k] ?? null));
}

/** "plugins: multus,macvlan; configs: 05-multus.conf" for the log (at most 50 names a kind: the ConfigMap has them all). */
export function describeDesired(d: DesiredLists): string {
  const parts = KINDS.filter((k) => d[k] !== undefined).map((k) => `${CONFIG_MAP_KEYS[k]}: ${someOf(d[k] as readonly string[], 50, ',') || '(none)'}`);
  return parts.length > 0 ? parts.join('; ') : 'nothing';
}

/** Which kinds differ between two desired states, for the log: "plugins, configs". */
export function changedKinds(a: DesiredLists | undefined, b: DesiredLists): string[] {
  return KINDS.filter((k) => JSON.stringify(a?.[k] ?? null) !== JSON.stringify(b[k] ?? null)).map((k) => CONFIG_MAP_KEYS[k]);
}
