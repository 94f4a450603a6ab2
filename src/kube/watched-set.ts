/**
 * The current set of a list+watch (watch.ts): objects by uid, replaced by a LIST,
 * changed by watch events, and handed out only when it really changed (objects
 * compared by uid and resourceVersion, so a re-list that brings the same objects,
 * a bookmark or a reconnect is no change).
 */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** A Kubernetes object as the API server sends it. */
export interface WatchedObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export function isWatchedObject(v: unknown): v is WatchedObject {
  return typeof v === 'object' && v !== null && typeof (v as { metadata?: unknown }).metadata === 'object' && (v as { metadata?: unknown }).metadata !== null;
}

export class WatchedSet {
  private store = new Map<string, WatchedObject>();
  /** The signature of the set last handed out by changed(). */
  private delivered: string | undefined;

  /** Replaces the whole set (a LIST). */
  replace(objects: Iterable<WatchedObject>): void {
    const next = new Map<string, WatchedObject>();
    for (const o of objects) next.set(keyOf(o), o);
    this.store = next;
  }

  /** Applies one watch event; false for types that change nothing (BOOKMARK, unknown). */
  apply(type: string | undefined, obj: WatchedObject): boolean {
    if (type === 'DELETED') this.store.delete(keyOf(obj));
    else if (type === 'ADDED' || type === 'MODIFIED') this.store.set(keyOf(obj), obj);
    else return false;
    return true;
  }

  /** The set sorted by namespace and name. */
  objects(): WatchedObject[] {
    return [...this.store.values()].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
  }

  /** The set, if it differs from what the last call returned (the first call always returns it). */
  changed(): WatchedObject[] | undefined {
    const signature = [...this.store.entries()]
      .map(([k, o]) => `${k}@${o.metadata.resourceVersion ?? ''}`)
      .sort()
      .join('\n');
    if (signature === this.delivered) return undefined;
    this.delivered = signature;
    return this.objects();
  }
}

function keyOf(o: WatchedObject): string {
  return o.metadata.uid ?? `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
}

function sortKey(o: WatchedObject): string {
  return `${o.metadata.namespace ?? ''}\u0000${o.metadata.name ?? ''}`;
}
