/**
 * Turning what the Kubernetes API (or the network under it) said into messages an
 * operator can act on. Pure: the request layer (client.ts) feeds it statuses and
 * errors; unit tests feed it recorded server answers.
 */
import { CniNodeError, type ErrorKind } from '../core/errors.js';
import { printable } from '../core/printable.js';

/** The `Status` object the API server returns with every error. */
export interface KubeStatus {
  kind?: string;
  apiVersion?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
    retryAfterSeconds?: number;
  };
}

/**
 * An error answer of the API server (any non-2xx status). Still a CniNodeError, so
 * the CLI prints its message; callers that expect certain statuses (404 on delete)
 * look at `status` / `reason`.
 */
export class KubeApiError extends CniNodeError {
  constructor(
    kind: ErrorKind,
    message: string,
    readonly status: number,
    readonly reason: string,
    /** The server's own message, as one line of at most MAX_SERVER_TEXT characters (limits.ts printable). */
    readonly serverMessage: string,
    readonly method: string,
    readonly path: string,
    details: readonly string[] = [],
  ) {
    super(kind, message, details);
    this.name = 'KubeApiError';
  }

  /** The same error with `prefix: ` in front of its message (which file and document). */
  withContext(prefix: string): KubeApiError {
    const e = new KubeApiError(this.kind, `${prefix}: ${this.message}`, this.status, this.reason, this.serverMessage, this.method, this.path, this.details);
    e.stack = this.stack;
    return e;
  }
}

/** The API server could not be reached at all (after the retries). */
export class KubeUnreachableError extends CniNodeError {
  constructor(
    message: string,
    readonly server: string,
    readonly code: string,
  ) {
    super('api', message);
    this.name = 'KubeUnreachableError';
  }

  withContext(prefix: string): KubeUnreachableError {
    const e = new KubeUnreachableError(`${prefix}: ${this.message}`, this.server, this.code);
    e.stack = this.stack;
    return e;
  }
}

/** Adds "file document N (Kind name)" in front of any error the API layer raised; other errors pass unchanged. */
export function inContext(e: unknown, prefix: string): unknown {
  if (e instanceof KubeApiError || e instanceof KubeUnreachableError) return e.withContext(prefix);
  if (e instanceof CniNodeError) {
    const wrapped = new CniNodeError(e.kind, `${prefix}: ${e.message}`, e.details, { cause: e });
    return wrapped;
  }
  return e;
}

export interface Forbidden {
  user: string;
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
}

/**
 * Parses RBAC's forbidden message, e.g.
 * `clusterrolebindings.rbac.authorization.k8s.io "x" is forbidden: User "system:serviceaccount:kube-system:cni-node"
 *  cannot patch resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope`.
 */
export function parseForbidden(message: string): Forbidden | undefined {
  const m = /User "([^"]*)" cannot (\S+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]*)"| at the cluster scope)?/.exec(message);
  if (!m) return undefined;
  const f: Forbidden = { user: m[1] as string, verb: m[2] as string, resource: m[3] as string };
  if (m[4]) f.group = m[4];
  if (m[5]) f.namespace = m[5];
  const name = /^\S+ "([^"]+)" is forbidden/.exec(message);
  if (name?.[1]) f.name = name[1];
  return f;
}

/** "service account kube-system/cni-node" for service accounts, `user "x"` otherwise. */
export function describeUser(user: string): string {
  const sa = /^system:serviceaccount:([^:]+):(.+)$/.exec(user);
  return sa ? `service account ${sa[1]}/${sa[2]}` : `user "${user}"`;
}

export interface StatusContext {
  method: string;
  path: string;
  server: string;
  /** Where the credentials came from, for 401 answers ("KUBECONFIG=/x", "in-cluster service account"). */
  credentials: string;
}

/**
 * Translates one error answer of the API server. `body` is the response text (a
 * Status object as JSON, usually). What the server says goes into the message as
 * one line, capped (printable): it ends up in logs and Events.
 */
export function statusError(status: number, body: string, ctx: StatusContext): KubeApiError {
  let st: KubeStatus = {};
  try {
    // Only top-level fields are read: any nesting is harmless here.
    const parsed = JSON.parse(body) as unknown;
    if (parsed && typeof parsed === 'object') st = parsed as KubeStatus;
  } catch {
    // Not JSON (a proxy's HTML page, a plain-text 404): keep the text.
  }
  const serverMessage = (typeof st.message === 'string' ? printable(st.message) : printable(body.trim(), 500)) || `HTTP ${status}`;
  const reason = typeof st.reason === 'string' && st.reason !== '' ? printable(st.reason, 100) : reasonForStatus(status);
  const what = `${ctx.method} ${ctx.path}`;
  const mk = (kind: ErrorKind, message: string, details: readonly string[] = []): KubeApiError =>
    new KubeApiError(kind, message, status, reason, serverMessage, ctx.method, ctx.path, details);

  switch (status) {
    case 401:
      return mk(
        'api',
        `the API server at ${ctx.server} rejected the credentials from ${ctx.credentials} (401 Unauthorized): the token or certificate is invalid or expired`,
      );
    case 403: {
      const f = parseForbidden(serverMessage);
      if (!f) return mk('api', `forbidden: ${serverMessage}`);
      const resource = f.group ? `${f.resource}.${f.group}` : f.resource;
      const where = f.namespace ? ` in namespace "${f.namespace}"` : ' at the cluster scope';
      return mk(
        'api',
        `forbidden: ${describeUser(f.user)} may not ${f.verb} ${resource}${f.name ? ` "${f.name}"` : ''}${where}; grant it with RBAC (a Role or ClusterRole with verb "${f.verb}" on resource "${f.resource}"${f.group ? ` in apiGroup "${f.group}"` : ''}, bound to it). The server said: ${serverMessage}`,
      );
    }
    case 422:
    case 400:
      // The server's message already lists every cause (details.causes repeats them).
      return mk('invalid', `the API server refused the object as invalid: ${serverMessage}`);
    case 404:
      return mk('api', `not found: ${serverMessage} (${what})`);
    case 409:
      return mk('conflict', `conflict: ${serverMessage}`);
    case 410:
      return mk('api', `gone: ${serverMessage} (${what})`);
    case 429:
      return mk('api', `the API server at ${ctx.server} is overloaded (429 Too Many Requests) and kept refusing ${what}: ${serverMessage}`);
    default:
      if (status === 500 && /failed to create typed patch object/.test(serverMessage)) {
        // Server-side apply before Kubernetes 1.21 needs the key fields of list entries written out.
        return mk(
          'invalid',
          `the API server cannot server-side apply the object: ${serverMessage}${/omits key field/.test(serverMessage) ? ' (this server version needs every key field of a list entry written out, e.g. protocol: TCP in ports)' : ''}`,
        );
      }
      return mk('api', `the API server at ${ctx.server} answered ${status} ${reason} to ${what}: ${serverMessage}`);
  }
}

function reasonForStatus(status: number): string {
  const reasons: Record<number, string> = {
    400: 'BadRequest',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'NotFound',
    405: 'MethodNotAllowed',
    409: 'Conflict',
    410: 'Gone',
    415: 'UnsupportedMediaType',
    422: 'Invalid',
    429: 'TooManyRequests',
    500: 'InternalError',
    503: 'ServiceUnavailable',
    504: 'Timeout',
  };
  return reasons[status] ?? `HTTP${status}`;
}

/** Network error codes worth another attempt: the server may be starting, restarting or briefly unreachable. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
  'CONNECT_TIMEOUT',
  'REQUEST_TIMEOUT',
  'ESOCKETHANGUP',
]);

const TLS_CODES =
  /^(?:DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(?:_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID|CERT_SIGNATURE_FAILURE|ERR_SSL_.*|EPROTO)$/;

/** The code of a network error (`ECONNREFUSED`, …), or `ESOCKETHANGUP` for Node's "socket hang up". */
export function networkCode(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  if (e instanceof Error && /socket hang up/i.test(e.message)) return 'ESOCKETHANGUP';
  return 'UNKNOWN';
}

export function isTransientNetworkError(e: unknown): boolean {
  return TRANSIENT_CODES.has(networkCode(e));
}

export function isTlsError(e: unknown): boolean {
  return TLS_CODES.test(networkCode(e));
}

/**
 * Statuses worth another attempt: throttling and the server (or a proxy in front of
 * it) being unavailable. A 500 is retried only when the server asks for it with
 * Retry-After (as client-go does): most 500s are deterministic (e.g. a server-side
 * apply the 1.20 server cannot merge) and retrying them only delays the message.
 */
export function isRetriableStatus(status: number, retryAfter?: string | string[]): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504 || (status === 500 && retryAfter !== undefined);
}
