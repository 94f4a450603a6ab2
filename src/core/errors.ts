/**
 * The one error type cni-node raises on purpose. Its message is written for the
 * operator reading `kubectl logs`: what went wrong, with which item, and what to
 * do about it. Anything else that escapes is a bug and is reported as such.
 */
import { printable } from './printable.js';

export type ErrorKind =
  | 'usage' // bad command line: exit 2
  | 'invalid' // bad input (names, lists, templates, manifests): exit 1
  | 'missing' // something the job needs does not exist
  | 'io' // the node's filesystem refused
  | 'api' // the Kubernetes API refused or was unreachable
  | 'conflict' // someone else is changing the same thing
  | 'interrupted';

/**
 * Every error has a bounded size, whatever it quotes (the messages quote untrusted
 * input, which core/printable.ts keeps to one line each): a message of at most
 * MAX_ERROR_TEXT characters, and at most MAX_ERROR_DETAILS details of that length,
 * then one saying how many more there were. An operator reads the first problems;
 * ten thousand of them (a ConfigMap list of bad names, a config with thousands of
 * broken entries) would only flood the log.
 */
export const MAX_ERROR_TEXT = 4_000;
export const MAX_ERROR_DETAILS = 25;

function capped(text: string): string {
  return text.length <= MAX_ERROR_TEXT ? text : `${text.slice(0, MAX_ERROR_TEXT)}… (${text.length - MAX_ERROR_TEXT} more characters)`;
}

function cappedDetails(details: readonly string[]): readonly string[] {
  const kept = details.slice(0, MAX_ERROR_DETAILS).map(capped);
  return details.length > MAX_ERROR_DETAILS ? [...kept, `… and ${details.length - MAX_ERROR_DETAILS} more`] : kept;
}

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
  /**
   * The items ("kind name", e.g. "config 05-multus.conf") this problem belongs to,
   * when it belongs to particular items: the daemon then holds just those and
   * keeps converging the rest. Empty: a problem of the whole run.
   */
  readonly items: readonly string[];

  constructor(kind: ErrorKind, message: string, details: readonly string[] = [], options?: { cause?: unknown; items?: readonly string[] }) {
    super(capped(message), options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'CniNodeError';
    this.kind = kind;
    this.details = cappedDetails(details);
    this.items = options?.items ?? [];
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

/**
 * Marks `e` as a problem of the item `kind name` (see CniNodeError.items) and
 * returns it: the same object, so a subclass (an API error with its status) stays.
 */
export function ofItem<E extends CniNodeError>(e: E, kind: string, name: string): E {
  const item = `${kind} ${name}`;
  if (!e.items.includes(item)) (e as { items: readonly string[] }).items = [...e.items, item];
  return e;
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

/**
 * What an operator sees of an error that is not a CniNodeError (a bug): one line,
 * "internal error (please report it): <message>". The stack trace only with the
 * explicit debug setting (CNI_NODE_DEBUG=1), never by default: stack traces are for
 * the developers, and they are noise (and detail about the process) in a node's logs.
 */
export function internalError(e: unknown, debug: boolean): string {
  const message = e instanceof Error ? `${e.name && !e.message.startsWith(e.name) ? `${e.name}: ` : ''}${e.message}` : String(e);
  // A bug's message may quote anything (a JSON.parse error quotes its input): one line, escaped and capped.
  const oneLine = printable(message.replace(/\s*\n\s*/g, ' '));
  const stack = debug && e instanceof Error && typeof e.stack === 'string' ? `\n${e.stack}` : '';
  return `internal error (please report it): ${oneLine}${stack}`;
}
