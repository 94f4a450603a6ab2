/**
 * `cni-node run`: the command line of the node daemon (daemon/daemon.ts does the
 * work). Its settings are in core/settings.ts; how it starts and stops (signals,
 * --uninstall-on-exit, the 2 s budget) is in docs/ARCHITECTURE.md.
 */
import { CniNodeError } from '../core/errors.js';
import type { ListSpec } from '../core/lists.js';
import { KINDS, type Kind } from '../core/plan.js';
import { effectiveSettings, SETTINGS, type Env } from '../core/settings.js';
import type { KubeClient } from '../kube/client.js';
import { assertDirsApart } from '../node/dirs.js';
import { onStopSignal } from '../sys/signals.js';
import { writeInBackground } from '../sys/output.js';
import { VERSION } from '../version.js';
import { Daemon, type DaemonReporter, type DaemonSettings } from '../daemon/daemon.js';
import { parseConfigMapRef, type ConfigMapRef } from '../daemon/desired.js';
import { createEventRecorder, type EventRecorder } from '../daemon/events.js';
import { parseListen, startHealthServer, type HealthServer, type ListenAddress } from '../daemon/health.js';
import { KubeconfigOut } from '../daemon/kubeconfig-out.js';
import { createMetrics, type DaemonMetrics } from '../daemon/metrics.js';
import { Readiness } from '../daemon/readiness.js';
import { resolveDirs, type Values } from './args.js';
import { createReporter, resolveLogFormat } from './reporter.js';

/** How long a plain SIGTERM may take, end to end (the issue asks for 2 s). */
const STOP_BUDGET_MS = 1_800;

/** What `run` was asked to do, checked before anything starts. */
interface RunOptions {
  settings: Omit<DaemonSettings, 'configMap'>;
  configMapText: string | undefined;
  listen: ListenAddress | undefined;
  kubeconfigOutPath: string | undefined;
  uninstallOnExit: boolean;
  uninstallTimeoutMs: number;
}

const NOT_OPTIONS_OF_RUN: ReadonlyArray<[string, string]> = [
  [SETTINGS.dryRun.spec.flag as string, 'run changes the node; use `cni-node apply --dry-run` to preview'],
  [SETTINGS.pause.spec.flag as string, 'run keeps running until SIGTERM anyway'],
  [SETTINGS.wait.spec.flag as string, 'run waits for pointer targets as long as it takes (a template whose target is missing is reported as waiting)'],
];

function runOptions(values: Values, flags: Partial<Record<Kind, ListSpec>>, env: Env): RunOptions {
  for (const [option, why] of NOT_OPTIONS_OF_RUN) {
    if (values[option] !== undefined) throw new CniNodeError('usage', `--${option} is not an option of run: ${why}`);
  }
  const configMapText = typeof values['config-map'] === 'string' ? values['config-map'] : undefined;
  if (!configMapText && Object.keys(flags).length === 0) {
    throw new CniNodeError('usage', 'run: give --config-map=<namespace>/<name> or at least one of --plugins, --configs, --manifests');
  }
  const listen = typeof values.listen === 'string' ? parseListen(values.listen) : undefined;
  const kubeconfig = typeof values.kubeconfig === 'string' ? values.kubeconfig : undefined;
  // In this order, so that of two bad values the same one is reported as before.
  const fight = {
    limit: SETTINGS.fightLimit.read(env) as number,
    windowMs: SETTINGS.fightWindow.read(env) as number,
    holdMs: SETTINGS.fightHold.read(env) as number,
  };
  const debounceMs = SETTINGS.debounce.read(env) as number;
  const settings: RunOptions['settings'] = {
    dirs: resolveDirs(values, env),
    env,
    flags,
    fight,
    debounceMs,
    watchDebounceMs: 50,
    recheckMs: SETTINGS.recheck.read(env) as number,
    retryBaseMs: 1_000,
    retryMaxMs: 60_000,
    retryInputMs: 30_000,
    retryInputMaxMs: 300_000,
    manifestRecheckMs: SETTINGS.manifestRecheck.read(env) as number,
    ...(kubeconfig ? { kubeconfig } : {}),
  };
  return {
    settings,
    configMapText,
    listen,
    kubeconfigOutPath: typeof values['kubeconfig-out'] === 'string' ? values['kubeconfig-out'] : undefined,
    uninstallOnExit: values['uninstall-on-exit'] === true,
    uninstallTimeoutMs: SETTINGS.uninstallTimeout.read(env) as number,
  };
}

export async function runCommand(values: Values, flags: Partial<Record<Kind, ListSpec>>): Promise<number> {
  // A log reader that stops reading must not block /healthz or a stop signal (sys/output.ts).
  writeInBackground();
  const env = process.env;
  const reporter = createReporter(resolveLogFormat(values, env));
  const options = runOptions(values, flags, env);
  // Overlapping source and node dirs: a usage error at start, not a failing reconcile (a ConfigMap may name any kind).
  await assertDirsApart(options.settings.dirs, options.configMapText ? KINDS : (Object.keys(flags) as Kind[]));
  reporter.info(`settings: ${effectiveSettings('run', values, env).join(', ')}`);
  return new DaemonProcess(options, env, reporter).run();
}

/** One run of the daemon process: its parts, started in order and closed in reverse. */
class DaemonProcess {
  private readonly metrics: DaemonMetrics = createMetrics();
  private readonly readiness = new Readiness();
  private readonly cleanups: Array<() => Promise<void> | void> = [];
  /** Aborted by a stop signal: whatever is starting is interrupted. */
  private readonly startupAbort = new AbortController();
  private daemon: Daemon | undefined;
  private stopping = false;
  private hardExit: NodeJS.Timeout | undefined;
  private clientPromise: Promise<KubeClient | undefined> | undefined;

  constructor(
    private readonly options: RunOptions,
    private readonly env: Env,
    private readonly reporter: DaemonReporter,
  ) {}

  async run(): Promise<number> {
    // Installed before anything slow, so a SIGTERM during start-up is honoured too.
    const signals = onStopSignal((sig) => this.onStopSignal(sig), { then: 'ignore' });
    const onDebugSignal = (): void =>
      this.reporter.warn('received SIGUSR1: ignored (cni-node never opens a debugger; it would let any local user run code as this process)');
    process.on('SIGUSR1', onDebugSignal);
    try {
      return await this.serve(signals.received);
    } catch (e) {
      // A signal during start-up interrupts whatever was starting: that is a clean stop.
      if (this.stopping && e instanceof CniNodeError && e.kind === 'interrupted') return 0;
      throw e;
    } finally {
      signals.dispose();
      process.off('SIGUSR1', onDebugSignal);
      for (const c of this.cleanups.reverse()) {
        try {
          await c();
        } catch {
          // Best effort: the process is ending.
        }
      }
      if (this.hardExit) clearTimeout(this.hardExit);
    }
  }

  /** The first stop signal: stop within the budget, whatever happens. */
  private onStopSignal(sig: NodeJS.Signals): void {
    const { uninstallOnExit, uninstallTimeoutMs } = this.options;
    this.stopping = true;
    const budget = uninstallOnExit ? uninstallTimeoutMs + STOP_BUDGET_MS : STOP_BUDGET_MS;
    this.reporter.info(`received ${sig}: stopping${uninstallOnExit ? ' (--uninstall-on-exit: removing what cni-node installed first)' : ''}`);
    this.startupAbort.abort();
    this.hardExit = setTimeout(() => {
      this.reporter.error(`did not stop within ${budget} ms; exiting now (every node file is whole: writes are atomic)`);
      process.exit(uninstallOnExit ? 1 : 0);
    }, budget);
    this.hardExit.unref();
    void this.daemon?.stop();
  }

  /** Starts every part, runs until the stop signal, stops; returns the exit code. */
  private async serve(stopSignal: Promise<NodeJS.Signals>): Promise<number> {
    const { reporter, metrics, readiness } = this;
    const configMap = await this.configMapRef();
    const events = this.eventRecorder();
    let server: HealthServer | undefined;
    if (this.options.listen) {
      server = await startHealthServer({ listen: this.options.listen, readiness: () => readiness.status(), metrics });
      this.cleanups.push(() => server?.close());
    }
    const kubeconfigOut = await this.startKubeconfigOut(events);
    const client = configMap ? await this.client() : undefined;
    const settings: DaemonSettings = { ...this.options.settings, ...(configMap ? { configMap } : {}) };
    const daemon = (this.daemon = new Daemon(settings, { reporter, metrics, readiness, events, ...(client ? { client } : {}) }));
    this.cleanups.push(() => daemon.stop());

    reporter.info(
      `cni-node ${VERSION} run: node plugins ${settings.dirs.hostPluginsDir}, node configs ${settings.dirs.hostConfigsDir}, templates ${settings.dirs.configsDir}` +
        `${configMap ? `, desired state from ConfigMap ${configMap.namespace}/${configMap.name}` : ''}` +
        `${server ? `, serving /healthz /readyz /metrics on ${server.address}` : ''}` +
        `${kubeconfigOut ? `, kubeconfig for plugins at ${this.options.kubeconfigOutPath} (${kubeconfigOut.mode}; ${kubeconfigOut.tokenSource})` : ''}` +
        `${this.options.uninstallOnExit ? ', --uninstall-on-exit' : ''}`,
    );
    if (!this.stopping) await daemon.start();

    await stopSignal;
    await daemon.stop();
    const exitCode = this.options.uninstallOnExit ? await this.uninstall(daemon, kubeconfigOut) : 0;
    reporter.info(`stopped after ${daemon.reconcileCount} reconcile(s)`);
    return exitCode;
  }

  /** The daemon's own API client (the ConfigMap watch and Events), made once, when first needed. */
  private client(): Promise<KubeClient | undefined> {
    this.clientPromise ??= (async () => {
      const { createKubeClient } = await import('../kube/client.js');
      const { kubeconfig } = this.options.settings;
      const c = await createKubeClient({
        ...(kubeconfig ? { kubeconfig } : {}),
        env: this.env,
        signal: this.startupAbort.signal,
        onRequest: (ev) =>
          this.metrics.apiRequests.inc({ verb: ev.method.toLowerCase(), code: ev.status !== undefined ? String(ev.status) : (ev.error ?? 'error') }),
      });
      this.cleanups.push(() => c.close());
      return c;
    })();
    return this.clientPromise;
  }

  /** --config-map: its form first (a usage error is not a credentials problem), then the namespace from the client. */
  private async configMapRef(): Promise<ConfigMapRef | undefined> {
    const text = this.options.configMapText;
    if (!text) return undefined;
    const syntax = parseConfigMapRef(text, 'default');
    if (typeof syntax === 'string') throw new CniNodeError('usage', syntax);
    const client = await this.client();
    const ref = parseConfigMapRef(text, SETTINGS.podNamespace.read(this.env) || client?.namespace || 'default');
    if (typeof ref === 'string') throw new CniNodeError('usage', ref);
    return ref;
  }

  private eventRecorder(): EventRecorder {
    let offLogged = false;
    const events = createEventRecorder({
      client: () =>
        this.client().catch((e: unknown) => {
          if (!offLogged)
            this.reporter.warn(`Kubernetes Events are off (POD_NAME is set, but there is no API access): ${e instanceof Error ? e.message : String(e)}`);
          offLogged = true;
          return undefined;
        }),
      env: this.env,
      reporter: this.reporter,
      onOutcome: (type, outcome) => this.metrics.events.inc({ type, outcome }),
    });
    this.cleanups.push(() => events.close());
    return events;
  }

  private async startKubeconfigOut(events: EventRecorder): Promise<KubeconfigOut | undefined> {
    const out = this.options.kubeconfigOutPath;
    if (!out) return undefined;
    const kubeconfigOut = await KubeconfigOut.start({
      out,
      env: this.env,
      reporter: this.reporter,
      recheckMs: this.options.settings.recheckMs,
      // A token of the pod's service account that outlives the pod (see kubeconfig-out.ts).
      requestToken: async (sa, expirationSeconds) => {
        const c = await this.client();
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
        this.readiness.set('kubeconfig-out', problem);
        // onProblem(undefined) comes only when a problem is over.
        if (problem) events.emit('KubeconfigOutFailed', problem);
        else events.emit('KubeconfigOutCurrent', `--kubeconfig-out ${out} is current again`);
      },
    });
    this.cleanups.push(() => kubeconfigOut.close());
    return kubeconfigOut;
  }

  /** --uninstall-on-exit: everything recorded, then the kubeconfig; 1 if anything could not be removed. */
  private async uninstall(daemon: Daemon, kubeconfigOut: KubeconfigOut | undefined): Promise<number> {
    const { reporter } = this;
    let exitCode = 0;
    try {
      await daemon.uninstall(AbortSignal.timeout(this.options.uninstallTimeoutMs));
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
    return exitCode;
  }
}
