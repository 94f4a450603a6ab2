/**
 * Reading one watch response: one JSON event per line (lines may be split across
 * network reads, several may come in one), until the server ends the response,
 * sends an ERROR event, sends something cni-node refuses, or the connection breaks.
 *
 * A line is kept as the bytes that arrived, counted before they are joined or
 * parsed: a line longer than the cap (limits.ts), however it is split, ends the
 * stream at once and the connection is closed without reading the rest. Each read
 * is searched for line ends once, so a long line split into many reads costs
 * linear time, not quadratic.
 */
import type http from 'node:http';
import { formatBytes, jsonDeeperThan, MAX_JSON_DEPTH, MAX_WATCH_EVENT_BYTES } from './limits.js';
import { printable } from '../core/printable.js';
import type { WatchedObject } from './watched-set.js';

/** One line of a watch stream. */
export interface WatchEventLine {
  type?: string;
  object?: WatchedObject;
  /** The line's length in bytes, as it came. */
  bytes: number;
}

/** How a watch stream ended. */
export type StreamEnd =
  /** The server ended the response (its timeoutSeconds, or shutting down). */
  | { how: 'ended' }
  /** An ERROR event: a Status with a code (410: the resourceVersion is too old). */
  | { how: 'error-event'; code: number | undefined; message: string }
  /**
   * The server sent something cni-node does not accept: a line that is not a JSON
   * object, is over the cap or nests too deep, or events the caller refused (see
   * onEvents). `problem` says which, as one line.
   */
  | { how: 'refused'; problem: string }
  /** The connection broke, or the request was aborted. */
  | { how: 'broken'; error: unknown };

/**
 * Reads `res` to its end. `onEvents` gets the events of each network read together
 * (so a burst is applied, and compared, once), the events before an ERROR line too;
 * it may return a problem (one line) to end the stream as refused. Never rejects;
 * the response (and so its connection) is destroyed when it resolves.
 */
export function readWatchStream(
  res: http.IncomingMessage,
  onEvents: (events: WatchEventLine[]) => string | undefined,
  maxLineBytes: number = MAX_WATCH_EVENT_BYTES,
): Promise<StreamEnd> {
  return new Promise<StreamEnd>((resolve) => {
    /** The start of a line whose end has not come yet. */
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let finished = false;
    const finish = (end: StreamEnd): void => {
      if (finished) return;
      finished = true;
      pending = [];
      res.removeAllListeners('data');
      res.destroy();
      resolve(end);
    };
    const overCap: StreamEnd = {
      how: 'refused',
      problem: `one event from the API server is larger than the ${formatBytes(maxLineBytes)} cap on a watch event; refused, and the connection closed without reading the rest`,
    };
    res.on('data', (chunk: Buffer) => {
      const events: WatchEventLine[] = [];
      let end: StreamEnd | undefined;
      let start = 0;
      while (end === undefined) {
        const nl = chunk.indexOf(0x0a, start);
        const piece = chunk.subarray(start, nl === -1 ? chunk.length : nl);
        if (pendingBytes + piece.length > maxLineBytes) {
          end = overCap;
          break;
        }
        if (nl === -1) {
          if (piece.length > 0) {
            pending.push(piece);
            pendingBytes += piece.length;
          }
          break;
        }
        const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece], pendingBytes + piece.length);
        pending = [];
        pendingBytes = 0;
        start = nl + 1;
        end = parseLine(line, events);
      }
      if (events.length > 0) {
        const problem = onEvents(events);
        if (problem !== undefined) end ??= { how: 'refused', problem };
      }
      if (end) finish(end);
    });
    res.on('end', () => finish({ how: 'ended' }));
    res.on('error', (error) => finish({ how: 'broken', error }));
    res.on('aborted', () => finish({ how: 'broken', error: new Error('aborted') }));
    res.on('close', () => {
      if (!res.complete) finish({ how: 'broken', error: new Error('connection closed mid-stream') });
    });
  });
}

/** Adds the line's event to `events`, or returns how the stream ends with it. */
function parseLine(raw: Buffer, events: WatchEventLine[]): StreamEnd | undefined {
  const line = raw.toString('utf8').trim();
  if (line === '') return undefined;
  if (jsonDeeperThan(line, MAX_JSON_DEPTH))
    return { how: 'refused', problem: `the API server sent an event that nests JSON deeper than the cap of ${MAX_JSON_DEPTH} levels; refused` };
  let ev: Omit<WatchEventLine, 'bytes'> | null;
  try {
    ev = JSON.parse(line) as Omit<WatchEventLine, 'bytes'> | null;
  } catch {
    ev = null;
  }
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev))
    return { how: 'refused', problem: `the API server sent a line that is not a JSON object: ${printable(line, 200)}` };
  if (ev.type !== 'ERROR') {
    events.push({ type: typeof ev.type === 'string' ? ev.type : undefined, object: ev.object, bytes: raw.length });
    return undefined;
  }
  const status = ev.object as { code?: unknown; message?: unknown } | undefined;
  const code = typeof status?.code === 'number' ? status.code : undefined;
  const message = printable(typeof status?.message === 'string' ? status.message : status);
  return { how: 'error-event', code, message };
}
