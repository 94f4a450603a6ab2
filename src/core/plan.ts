/**
 * The plan: desired state vs current state → the ordered list of actions.
 * Pure; the engine executes it.
 *
 * Ordering rules (why):
 *  - Items are added or converged in the order given (plugins, then configs, then
 *    manifests), so a config is never on the node before the plugin it names.
 *  - Items are removed in reverse: manifests, then configs, then plugins, each list
 *    reversed, so the node never holds a config whose plugin is already gone.
 *  - In apply, additions come before removals: swapping plugin A for B (and the
 *    config naming it) keeps a working network at every step.
 */
export type Kind = 'plugin' | 'config' | 'manifest';
export const KINDS: readonly Kind[] = ['plugin', 'config', 'manifest'];

export type Mode = 'install' | 'uninstall' | 'apply';

export interface PlannedAction {
  kind: Kind;
  name: string;
  /** ensure: make the node match the source (install, or converge an item in both sets). remove: delete it. */
  op: 'ensure' | 'remove';
  /** Why, for the log: "requested", "added", "kept", "no longer desired". */
  why: 'requested' | 'added' | 'kept' | 'removed';
}

export interface KindState {
  desired: readonly string[];
  /** What is on the node now: given explicitly (`:Current`) or read from cni-node's record. */
  current: readonly string[];
}

/** Set difference that keeps the order of `a`, comparing names exactly. */
export function minus(a: readonly string[], b: readonly string[]): string[] {
  const drop = new Set(b);
  return a.filter((x) => !drop.has(x));
}

export function plan(mode: Mode, state: Partial<Record<Kind, KindState>>): PlannedAction[] {
  const ensures: PlannedAction[] = [];
  const removes: PlannedAction[] = [];
  for (const kind of KINDS) {
    const s = state[kind];
    if (!s) continue;
    if (mode === 'install') {
      for (const name of s.desired) ensures.push({ kind, name, op: 'ensure', why: 'requested' });
    } else if (mode === 'uninstall') {
      removes.push(...[...s.desired].reverse().map((name): PlannedAction => ({ kind, name, op: 'remove', why: 'requested' })));
    } else {
      const current = new Set(s.current);
      for (const name of s.desired) ensures.push({ kind, name, op: 'ensure', why: current.has(name) ? 'kept' : 'added' });
      removes.push(
        ...minus(s.current, s.desired)
          .reverse()
          .map((name): PlannedAction => ({ kind, name, op: 'remove', why: 'removed' })),
      );
    }
  }
  // removes were collected plugins→configs→manifests; they run manifests→configs→plugins.
  const byKindReversed = KINDS.slice().reverse();
  removes.sort((x, y) => byKindReversed.indexOf(x.kind) - byKindReversed.indexOf(y.kind));
  return [...ensures, ...removes];
}
