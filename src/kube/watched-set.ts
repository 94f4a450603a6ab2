/**
 * The current set of a list+watch (watch.ts): objects by uid, replaced by a LIST,
 * changed by watch events, and handed out only when it really changed (objects
 * compared by uid and resourceVersion, so a re-list that brings the same objects,
 * a bookmark or a reconnect is no change). It also keeps how many bytes of the
 * server's JSON its objects came as, so the owner can cap it (limits.ts).
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

/** An object and the bytes of JSON it came as. */
export interface SizedObject {
  object: WatchedObject;
  bytes: number;
}

export class WatchedSet {
  private store = new Map<string, SizedObject>();
  private total = 0;
  /** The signature of the set last handed out by changed(). */
  private delivered: string | undefined;

  /** The bytes of JSON the objects of the set came as. */
  get bytes(): number {
    return this.total;
  }

  /** Replaces the whole set (a LIST). */
  replace(objects: Iterable<SizedObject>): void {
    const next = new Map<string, SizedObject>();
    let total = 0;
    for (const o of objects) {
      const key = keyOf(o.object);
      total += o.bytes - (next.get(key)?.bytes ?? 0);
      next.set(key, o);
    }
    this.store = next;
    this.total = total;
  }

  /** The bytes of the set after apply(type, object) with an object of `bytes`. */
  bytesAfter(type: string | undefined, object: WatchedObject, bytes: number): number {
    const before = this.store.get(keyOf(object))?.bytes ?? 0;
    if (type === 'DELETED') return this.total - before;
    if (type === 'ADDED' || type === 'MODIFIED') return this.total - before + bytes;
    return this.total;
  }

  /** Applies one watch event (its object came as `bytes` of JSON); false for types that change nothing (BOOKMARK, unknown). */
  apply(type: string | undefined, object: WatchedObject, bytes = 0): boolean {
    const key = keyOf(object);
    const before = this.store.get(key)?.bytes ?? 0;
    if (type === 'DELETED') {
      this.store.delete(key);
      this.total -= before;
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      this.store.set(key, { object, bytes });
      this.total += bytes - before;
    } else return false;
    return true;
  }

  /** The set sorted by namespace and name. */
  objects(): WatchedObject[] {
    return [...this.store.values()].map((s) => s.object).sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
  }

  /** The set, if it differs from what the last call returned (the first call always returns it). */
  changed(): WatchedObject[] | undefined {
    const signature = [...this.store.entries()]
      .map(([k, o]) => `${k}@${String(o.object.metadata.resourceVersion ?? '')}`)
      .sort()
      .join('\n');
    if (signature === this.delivered) return undefined;
    this.delivered = signature;
    return this.objects();
  }
}

function keyOf(o: WatchedObject): string {
  const { uid, namespace, name } = o.metadata;
  return typeof uid === 'string' ? uid : `${String(namespace ?? '')}/${String(name ?? '')}`;
}

function sortKey(o: WatchedObject): string {
  return `${o.metadata.namespace ?? ''}\u0000${o.metadata.name ?? ''}`;
}
