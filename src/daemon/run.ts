/**
 * `cni-node run`: the command line of the node daemon (daemon.ts does the work).
 *
 *   cni-node run [--plugins=…] [--configs=…] [--manifests=…] [--config-map=<namespace>/<name>]
 *                [--listen=<host>:<port>] [--uninstall-on-exit] [--kubeconfig-out=<path>]
 *
 * Settings without a flag (environment; durations like 500ms, 30s, 5m):
 *   CNI_NODE_FIGHT_LIMIT=5, CNI_NODE_FIGHT_WINDOW=60s, CNI_NODE_FIGHT_HOLD=5m
 *       a managed file that had to be restored LIMIT times within WINDOW is left
 *       alone for HOLD (something else keeps rewriting it), and reported.
 *   CNI_NODE_DEBOUNCE=100ms   quiet time that ends a burst of events (at most 5× that).
 *   CNI_NODE_RECHECK=30s      file watchers' safety-net re-check (0 turns it off).
 *   CNI_NODE_UNINSTALL_TIMEOUT=20s  the longest --uninstall-on-exit may take.
 *   POD_NAME, POD_NAMESPACE (POD_UID, NODE_NAME): the pod, for Kubernetes Events.
 *   --kubeconfig-out: see kubeconfig-out.ts (CNI_NODE_KUBECONFIG_CREDENTIALS,
 *       CNI_NODE_HOST_PATH_MAP, CNI_NODE_KUBECONFIG_SERVER, CNI_NODE_SERVICE_ACCOUNT_DIR).
 *
 * SIGTERM / SIGINT / SIGHUP: the running reconcile stops at its next safe point (between two
 * atomic item writes), the watches stop, and the process exits 0 within 2 s. With
 * --uninstall-on-exit everything cni-node's record holds for the kinds the daemon
 * managed is removed first (and the --kubeconfig-out file). A plain restart
 * removes nothing, so a rolling update never leaves the node without its config.
 * SIGHUP stops like SIGTERM (there is nothing to reload: every input is watched).
 * SIGUSR1 is logged and ignored: it never opens a debugger (see cli/guard.ts).
 */
import { CniNodeError } from '../core/errors.js';
import type { ListSpec } from '../core/lists.js';
import { KINDS, type Kind } from '../core/plan.js';
import { resolveDirs, type Values } from '../cli/args.js';
import { assertDirsApart } from '../node/dirs.js';
import { parseDuration } from '../cli/duration.js';
import { STOP_SIGNALS } from '../cli/pause.js';
import { createReporter, resolveLogFormat } from '../cli/reporter.js';
import type { KubeClient } from '../kube/client.js';
import { VERSION } from '../version.js';
import { Daemon, type DaemonSettings } from './daemon.js';
import { parseConfigMapRef, type ConfigMapRef } from './desired.js';
import { createEventRecorder } from './events.js';
import { DEFAULT_FIGHT } from './fight.js';
import { parseListen, startHealthServer, type HealthServer } from './health.js';
import { KubeconfigOut } from './kubeconfig-out.js';
import { createMetrics } from './metrics.js';
import { Readiness } from './readiness.js';

/** How long a plain SIGTERM may take, end to end (the issue asks for 2 s). */
const STOP_BUDGET_MS = 1_800;

function envDuration(env: NodeJS.ProcessEnv, name: string, fallbackMs: number): number {
  const v = env[name];
  return v === undefined || v === '' ? fallbackMs : parseDuration(v, name);
}

function envCount(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v.trim()) || Number(v) < 1) throw new CniNodeError('usage', `${name}=${v}: expected a whole number of at least 1`);
  return Number(v);
}

/** Waits for a stop signal (SIGTERM, SIGINT, SIGHUP); calls onSignal at once (before the promise's reactions run). */
function stopSignal(onSignal: (sig: NodeJS.Signals) => void): { promise: Promise<NodeJS.Signals>; dispose(): void } {
  let resolve: (s: NodeJS.Signals) => void = () => undefined;
  const promise = new Promise<NodeJS.Signals>((r) => (resolve = r));
  let got: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    if (got) return;
    got = sig;
    onSignal(sig);
    resolve(sig);
  };
  for (const sig of STOP_SIGNALS) process.on(sig, handler);
  return {
    promise,
    dispose() {
      for (const sig of STOP_SIGNALS) process.off(sig, handler);
    },
  };
}

export async function runCommand(values: Values, flags: Partial<Record<Kind, ListSpec>>): Promise<number> {
  const env = process.env;
  const reporter = createReporter(resolveLogFormat(values['log-format'], env));
  for (const option of ['dry-run', 'pause', 'wait'] as const) {
    if (values[option] !== undefined) {
      const why =
        option === 'wait'
          ? 'run waits for pointer targets as long as it takes (a template whose target is missing is reported as waiting)'
          : option === 'pause'
            ? 'run keeps running until SIGTERM anyway'
            : 'run changes the node; use `cni-node apply --dry-run` to preview';
      throw new CniNodeError('usage', `--${option} is not an option of run: ${why}`);
    }
  }
  const configMapText = typeof values['config-map'] === 'string' ? values['config-map'] : undefined;
  if (!configMapText && Object.keys(flags).length === 0) {
    throw new CniNodeError('usage', 'run: give --config-map=<namespace>/<name> or at least one of --plugins, --configs, --manifests');
  }
  const listen = typeof values.listen === 'string' ? parseListen(values.listen) : undefined;
  const kubeconfigOutPath = typeof values['kubeconfig-out'] === 'string' ? values['kubeconfig-out'] : undefined;
  const uninstallOnExit = values['uninstall-on-exit'] === true;
  const kubeconfig = typeof values.kubeconfig === 'string' ? values.kubeconfig : undefined;
  const settingsBase = {
    dirs: resolveDirs(values, env),
    env,
    flags,
    fight: {
      limit: envCount(env, 'CNI_NODE_FIGHT_LIMIT', DEFAULT_FIGHT.limit),
      windowMs: envDuration(env, 'CNI_NODE_FIGHT_WINDOW', DEFAULT_FIGHT.windowMs),
      holdMs: envDuration(env, 'CNI_NODE_FIGHT_HOLD', DEFAULT_FIGHT.holdMs),
    },
    debounceMs: envDuration(env, 'CNI_NODE_DEBOUNCE', 100),
    maxDelayMs: 5 * envDuration(env, 'CNI_NODE_DEBOUNCE', 100),
    watchDebounceMs: 50,
    recheckMs: envDuration(env, 'CNI_NODE_RECHECK', 30_000),
    retryBaseMs: 1_000,
    retryMaxMs: 60_000,
    retryInputMs: 30_000,
    retryInputMaxMs: 300_000,
    ...(kubeconfig ? { kubeconfig } : {}),
  };
  const uninstallTimeoutMs = envDuration(env, 'CNI_NODE_UNINSTALL_TIMEOUT', 20_000);
  // Overlapping source and node dirs: a usage error at start, not a failing reconcile (a ConfigMap may name any kind).
  await assertDirsApart(settingsBase.dirs, configMapText ? KINDS : (Object.keys(flags) as Kind[]));

  const metrics = createMetrics();
  const readiness = new Readiness();
  const cleanups: Array<() => Promise<void> | void> = [];
  let daemon: Daemon | undefined;
  let stopping = false;
  let hardExit: NodeJS.Timeout | undefined;

  // Installed before anything slow, so a SIGTERM during start-up is honoured too.
  const startupAbort = new AbortController();
  const signals = stopSignal((sig) => {
    stopping = true;
    const budget = uninstallOnExit ? uninstallTimeoutMs + STOP_BUDGET_MS : STOP_BUDGET_MS;
    reporter.info(`received ${sig}: stopping${uninstallOnExit ? ' (--uninstall-on-exit: removing what cni-node installed first)' : ''}`);
    startupAbort.abort();
    hardExit = setTimeout(() => {
      reporter.error(`did not stop within ${budget} ms; exiting now (every node file is whole: writes are atomic)`);
      process.exit(uninstallOnExit ? 1 : 0);
    }, budget);
    hardExit.unref();
    void daemon?.stop();
  });

  const onDebugSignal = () => reporter.warn('received SIGUSR1: ignored (cni-node never opens a debugger; it would let any local user run code as this process)');
  process.on('SIGUSR1', onDebugSignal);

  let exitCode = 0;
  try {
    // The daemon's own API client: the ConfigMap watch and Events.
    let client: KubeClient | undefined;
    let clientPromise: Promise<KubeClient | undefined> | undefined;
    const getClient = (): Promise<KubeClient | undefined> => {
      clientPromise ??= (async () => {
        const { createKubeClient } = await import('../kube/client.js');
        const c = await createKubeClient({
          ...(kubeconfig ? { kubeconfig } : {}),
          env,
          signal: startupAbort.signal,
          onRequest: (ev) => metrics.apiRequests.inc({ verb: ev.method.toLowerCase(), code: ev.status !== undefined ? String(ev.status) : (ev.error ?? 'error') }),
        });
        cleanups.push(() => c.close());
        return c;
      })();
      return clientPromise;
    };
    let configMap: ConfigMapRef | undefined;
    if (configMapText) {
      // The form first (a usage error is not a credentials problem), then the client.
      const syntax = parseConfigMapRef(configMapText, 'default');
      if (typeof syntax === 'string') throw new CniNodeError('usage', syntax);
      client = await getClient();
      const ref = parseConfigMapRef(configMapText, env['POD_NAMESPACE'] || client?.namespace || 'default');
      if (typeof ref === 'string') throw new CniNodeError('usage', ref);
      configMap = ref;
    }
    let eventsOffLogged = false;
    const events = createEventRecorder({
      client: () =>
        getClient().catch((e: unknown) => {
          if (!eventsOffLogged) reporter.warn(`Kubernetes Events are off (POD_NAME is set, but there is no API access): ${e instanceof Error ? e.message : String(e)}`);
          eventsOffLogged = true;
          return undefined;
        }),
      env,
      reporter,
      onOutcome: (type, outcome) => metrics.events.inc({ type, outcome }),
    });
    cleanups.push(() => events.close());

    let server: HealthServer | undefined;
    if (listen) {
      server = await startHealthServer({ listen, readiness: () => readiness.status(), metrics });
      cleanups.push(() => server?.close());
    }

    let kubeconfigOut: KubeconfigOut | undefined;
    if (kubeconfigOutPath) {
      kubeconfigOut = await KubeconfigOut.start({
        out: kubeconfigOutPath,
        env,
        reporter,
        recheckMs: settingsBase.recheckMs,
        // A token of the pod's service account that outlives the pod (see kubeconfig-out.ts).
        requestToken: async (sa, expirationSeconds) => {
          const c = await getClient();
          if (!c) throw new CniNodeError('api', 'no API access');
          const res = await c.request<{ status?: { token?: string; expirationTimestamp?: string } }>({
            method: 'POST',
            path: `/api/v1/namespaces/${sa.namespace}/serviceaccounts/${sa.name}/token`,
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
            // Issuing a token changes nothing on the server: safe to repeat.
            idempotent: true,
            timeoutMs: 30_000,
          });
          return { token: res.body.status?.token ?? '', expiresAt: Date.parse(res.body.status?.expirationTimestamp ?? '') };
        },
        onProblem: (problem) => {
          readiness.set('kubeconfig-out', problem);
          if (problem) events.emit('Warning', 'KubeconfigOutFailed', problem);
        },
      });
      cleanups.push(() => kubeconfigOut?.close());
    }

    const settings: DaemonSettings = { ...settingsBase, ...(configMap ? { configMap } : {}) };
    daemon = new Daemon(settings, { reporter, metrics, readiness, events, ...(client ? { client } : {}) });
    const d = daemon;
    cleanups.push(() => d.stop());

    reporter.info(
      `cni-node ${VERSION} run: node plugins ${settings.dirs.hostPluginsDir}, node configs ${settings.dirs.hostConfigsDir}, templates ${settings.dirs.configsDir}` +
        `${configMap ? `, desired state from ConfigMap ${configMap.namespace}/${configMap.name}` : ''}` +
        `${server ? `, serving /healthz /readyz /metrics on ${server.address}` : ''}` +
        `${kubeconfigOut ? `, kubeconfig for plugins at ${kubeconfigOutPath} (${kubeconfigOut.mode}; ${kubeconfigOut.tokenSource})` : ''}` +
        `${uninstallOnExit ? ', --uninstall-on-exit' : ''}`,
    );
    if (!stopping) await daemon.start();

    await signals.promise;
    await daemon.stop();

    if (uninstallOnExit) {
      const deadline = AbortSignal.timeout(uninstallTimeoutMs);
      try {
        await daemon.uninstall(deadline);
      } catch (e) {
        reporter.error(`--uninstall-on-exit failed: ${e instanceof CniNodeError ? e.describe() : String(e)}`);
        exitCode = 1;
      }
      try {
        const removed = (await kubeconfigOut?.remove()) ?? [];
        if (removed.length > 0) reporter.info(`--uninstall-on-exit: removed ${removed.join(', ')}`);
      } catch (e) {
        reporter.error(`--uninstall-on-exit: cannot remove the kubeconfig: ${e instanceof CniNodeError ? e.describe() : String(e)}`);
        exitCode = 1;
      }
    }
    reporter.info(`stopped after ${daemon.reconcileCount} reconcile(s)`);
  } catch (e) {
    // A signal during start-up interrupts whatever was starting: that is a clean stop.
    if (stopping && e instanceof CniNodeError && e.kind === 'interrupted') return 0;
    throw e;
  } finally {
    signals.dispose();
    process.off('SIGUSR1', onDebugSignal);
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // Best effort: the process is ending.
      }
    }
    if (hardExit) clearTimeout(hardExit);
  }
  return exitCode;
}
