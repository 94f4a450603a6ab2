/**
 * The process's own safety, set up before anything else runs (main.ts imports this
 * first): SIGUSR1 never opens Node's inspector, an inspector option is refused
 * unless CNI_NODE_DEBUG=1, and an uncaught error is one line, never a stack trace.
 * cni-node runs as root; a debugger would let any local user run code as root.
 * docs/ARCHITECTURE.md ("The process's own safety") has the details.
 */
import { internalError } from '../core/errors.js';
import { debugEnabled, SETTINGS } from '../core/settings.js';
import { stderr } from '../sys/output.js';

/** Exit code of an internal error (EX_SOFTWARE). */
export const INTERNAL_ERROR_EXIT = 70;

const INSPECTOR_OPTION = /(?:^|[\s'"])--(?:inspect(?:-brk|-wait|-port)?|debug-port)(?=$|[\s='"])/;

/** The inspector option found on the node command line or in NODE_OPTIONS, or undefined. */
export function inspectorOption(execArgv: readonly string[], nodeOptions: string | undefined): string | undefined {
  for (const [where, text] of [
    ['the node command line', execArgv.join(' ')],
    ['NODE_OPTIONS', nodeOptions ?? ''],
  ] as const) {
    const m = INSPECTOR_OPTION.exec(text);
    if (m) return `${m[0].trim().replace(/^['"]/, '')} in ${where}`;
  }
  return undefined;
}

/** The name the program was started as, for messages ("cni-node" or "kube-watch"). */
export function programName(): string {
  return /kube-watch$/.test(process.argv[1] ?? '') ? 'kube-watch' : 'cni-node';
}

function guard(): void {
  process.on('SIGUSR1', () => undefined);

  const debug = debugEnabled(process.env);
  const option = inspectorOption(process.execArgv, SETTINGS.nodeOptions.read(process.env));
  if (option !== undefined && !debug) {
    stderr(
      `${programName()}: refusing to run with the Node.js debugger enabled (${option}): it would let anyone on this host run code in this process; ` +
        'remove the option, or set CNI_NODE_DEBUG=1 to debug on purpose\n',
    );
    process.exit(2);
  }

  const fatal = (e: unknown): void => {
    try {
      stderr(`${programName()}: ${internalError(e, debug)}\n`);
    } finally {
      process.exit(INTERNAL_ERROR_EXIT);
    }
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}

guard();
