/**
 * The one error type cni-node raises on purpose. Its message is written for the
 * operator reading `kubectl logs`: what went wrong, with which item, and what to
 * do about it. Anything else that escapes is a bug and is reported as such.
 */
export type ErrorKind =
  | 'usage' // bad command line: exit 2
  | 'invalid' // bad input (names, lists, templates, manifests): exit 1
  | 'missing' // something the job needs does not exist
  | 'io' // the node's filesystem refused
  | 'api' // the Kubernetes API refused or was unreachable
  | 'conflict' // someone else is changing the same thing
  | 'interrupted';

// The CLI bundle and its lazily loaded part (daemon, API) each carry a copy of this
// class, so identity is checked by a brand shared through the symbol registry.
const BRAND = Symbol.for('cni-node.CniNodeError');

export class CniNodeError extends Error {
  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses (KubeApiError, …) keep the ordinary prototype check.
    if (this !== CniNodeError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly [BRAND] = true;
  readonly kind: ErrorKind;
  /** Further problems found in the same validation pass, so one run reports them all. */
  readonly details: readonly string[];

  constructor(kind: ErrorKind, message: string, details: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CniNodeError';
    this.kind = kind;
    this.details = details;
  }

  get exitCode(): number {
    return this.kind === 'usage' ? 2 : 1;
  }

  /** The message with its details, one per line, as printed to stderr. */
  describe(): string {
    return this.details.length === 0 ? this.message : `${this.message}\n${this.details.map((d) => `  - ${d}`).join('\n')}`;
  }
}

/** Several problems found while validating; thrown once with all of them. */
export function aggregate(kind: ErrorKind, summary: string, problems: readonly string[]): CniNodeError {
  if (problems.length === 1) return new CniNodeError(kind, problems[0] as string);
  return new CniNodeError(kind, `${summary} (${problems.length} problems)`, problems);
}

export function isCniNodeError(e: unknown): e is CniNodeError {
  return e instanceof CniNodeError;
}

/** A short, human description of any thrown value (for wrapping foreign errors). */
export function reason(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
