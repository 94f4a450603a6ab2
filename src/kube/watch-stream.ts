/**
 * Reading one watch response: one JSON event per line (lines may be split across
 * network reads, several may come in one), until the server ends the response,
 * sends an ERROR event, sends something that is not JSON, or the connection breaks.
 */
import type http from 'node:http';
import type { WatchedObject } from './watched-set.js';

/** One line of a watch stream. */
export interface WatchEventLine {
  type?: string;
  object?: WatchedObject;
}

/** How a watch stream ended. */
export type StreamEnd =
  /** The server ended the response (its timeoutSeconds, or shutting down). */
  | { how: 'ended' }
  /** An ERROR event: a Status with a code (410: the resourceVersion is too old). */
  | { how: 'error-event'; code: number | undefined; message: string }
  /** A line that is not a JSON object. */
  | { how: 'not-json'; line: string }
  /** The connection broke, or the request was aborted. */
  | { how: 'broken'; error: unknown };

/**
 * Reads `res` to its end. `onEvents` gets the events of each network read together
 * (so a burst is applied, and compared, once), the events before an ERROR line too.
 * Never rejects; the response is destroyed when it resolves.
 */
export function readWatchStream(res: http.IncomingMessage, onEvents: (events: WatchEventLine[]) => void): Promise<StreamEnd> {
  return new Promise<StreamEnd>((resolve) => {
    let buffered = '';
    let finished = false;
    const finish = (end: StreamEnd): void => {
      if (finished) return;
      finished = true;
      res.removeAllListeners('data');
      res.destroy();
      resolve(end);
    };
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffered += chunk;
      const events: WatchEventLine[] = [];
      let end: StreamEnd | undefined;
      let nl: number;
      while (end === undefined && (nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line !== '') end = parseLine(line, events);
      }
      if (events.length > 0) onEvents(events);
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
function parseLine(line: string, events: WatchEventLine[]): StreamEnd | undefined {
  let ev: WatchEventLine | null;
  try {
    ev = JSON.parse(line) as WatchEventLine | null;
  } catch {
    ev = null;
  }
  if (typeof ev !== 'object' || ev === null) return { how: 'not-json', line: line.slice(0, 200) };
  if (ev.type !== 'ERROR') {
    events.push(ev);
    return undefined;
  }
  const status = ev.object as { code?: unknown; message?: unknown } | undefined;
  const code = typeof status?.code === 'number' ? status.code : undefined;
  const message = typeof status?.message === 'string' ? status.message : JSON.stringify(status);
  return { how: 'error-event', code, message };
}
