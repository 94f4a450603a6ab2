/**
 * The process's own safety, set up before anything else runs (main.ts imports this
 * module first, so it is the first code of the bundle to execute, however the
 * bundle is started: bin/cni-node, bin/kube-watch, or `node /app/dist/cni-node.mjs`
 * as the image's ENTRYPOINT does).
 *
 * cni-node runs as root on every node, with the host's network. Node.js opens its
 * inspector (a debugger that runs any code it is sent) on 127.0.0.1:9229 when the
 * process gets SIGUSR1, or at start with --inspect… options, which NODE_OPTIONS
 * can add. Either would let any local user run code as root. So:
 *
 *  - SIGUSR1 never opens the inspector. The launchers start node with
 *    --disable-sigusr1 (and so should the image's ENTRYPOINT); for a start without
 *    it, a SIGUSR1 listener is installed here: with a listener, Node runs the
 *    listener instead of starting the inspector (checked on Node 24). The signal is
 *    otherwise ignored; the daemon logs it.
 *  - An inspector option (--inspect, --inspect-brk, --inspect-wait, --inspect-port,
 *    --debug-port) on the node command line or in NODE_OPTIONS makes cni-node
 *    refuse to run (exit 2), unless the explicit debug setting CNI_NODE_DEBUG=1 is
 *    given.
 *  - An error nobody caught (a bug) ends the process with one line, never a stack
 *    trace, unless CNI_NODE_DEBUG=1 (see internalError).
 */
import { debugEnabled, internalError } from '../core/errors.js';

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
  const option = inspectorOption(process.execArgv, process.env['NODE_OPTIONS']);
  if (option !== undefined && !debug) {
    process.stderr.write(
      `${programName()}: refusing to run with the Node.js debugger enabled (${option}): it would let anyone on this host run code in this process; ` +
        'remove the option, or set CNI_NODE_DEBUG=1 to debug on purpose\n',
    );
    process.exit(2);
  }

  const fatal = (e: unknown): void => {
    try {
      process.stderr.write(`${programName()}: ${internalError(e, debug)}\n`);
    } finally {
      process.exit(INTERNAL_ERROR_EXIT);
    }
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}

guard();
