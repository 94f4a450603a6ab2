/**
 * Every setting of cni-node in one table: each command-line option and each
 * environment variable, with its default, its meaning and its parser. The
 * argument parser and `cni-node help` (cli/), kube-watch's options, what `run`
 * logs at start, and the tables of the README and docs/ (test/core/settings.test.ts) all come
 * from here; code reads a setting through its entry (`SETTINGS.recheck.read(env)`).
 */
// size: one table of every setting is the point of this module; its entries are data
// (one short record each), and splitting them would bring back settings declared in many places.
import { parseDuration } from './duration.js';
import { CniNodeError } from './errors.js';

export type Command = 'install' | 'uninstall' | 'apply' | 'list' | 'check' | 'version' | 'run' | 'watch';

/** Where a setting is documented and shown in help: the table of its group (README or docs/). */
export type SettingGroup =
  | 'option' // the options of install, uninstall, apply (README "Commands")
  | 'directory' // README "Directories"
  | 'run' // the options of run (README "Options of run")
  | 'environment' // environment only (docs/configuration.md "Environment")
  | 'kube-watch'; // kube-watch's options (docs/kube-watch.md "kube-watch options")

export type Env = Readonly<Record<string, string | undefined>>;
/** Parsed command-line values, by flag name (util.parseArgs's `values`). */
export type Values = Readonly<Record<string, string | boolean | undefined>>;

export interface SettingSpec<T> {
  group: SettingGroup;
  /** The long flag without its dashes ("plugins-dir"). */
  flag?: string;
  /** kube-watch's one-letter form ("l" for -l). */
  short?: string;
  /** The environment variable; when there is a flag too, the flag wins. */
  env?: string;
  /** The commands that take the flag. */
  commands?: readonly Command[];
  /** A flag that takes no value. */
  boolean?: boolean;
  /** The value when the setting is not given. */
  default?: T;
  /** The default as people read it, where it is not the value itself (e.g. "in-cluster, then $KUBECONFIG"). */
  shownDefault?: string;
  /** How the value is written in help text (`--plugins=a,b`). */
  placeholder?: string;
  /** One line, for help text and the docs. */
  meaning: string;
  /** Text → value; throws a usage CniNodeError naming `where` (the flag or variable). Default: the text. */
  parse?: (text: string, where: string) => T;
  /** An empty value counts as not given (the default: true). */
  emptyIsUnset?: boolean;
  /** May hold a credential: shown redacted. */
  secret?: boolean;
  /** Not shown in help. */
  hidden?: boolean;
}

/** One setting: its declaration and how to read it. */
export class Setting<T = string> {
  constructor(
    readonly name: string,
    readonly spec: SettingSpec<T>,
  ) {}

  /** The value from the environment alone (for settings without a flag, or read below the CLI). */
  read(env: Env): T | undefined {
    return this.fromText(this.spec.env === undefined ? undefined : env[this.spec.env], this.spec.env ?? this.name);
  }

  /** The value from the command line, else the environment, else the default. */
  resolve(values: Values, env: Env): T | undefined {
    const flag = this.spec.flag === undefined ? undefined : values[this.spec.flag];
    if (typeof flag === 'boolean') return flag as T;
    const fromFlag = this.fromText(flag, `--${this.spec.flag}`, true);
    return fromFlag !== undefined ? fromFlag : this.read(env);
  }

  /** The default as shown to people ("" when there is none). */
  get shownDefault(): string {
    if (this.spec.shownDefault !== undefined) return this.spec.shownDefault;
    return this.spec.default === undefined ? '' : String(this.spec.default);
  }

  private fromText(text: string | undefined, where: string, noDefault = false): T | undefined {
    if (text === undefined || (text === '' && this.spec.emptyIsUnset !== false)) return noDefault ? undefined : this.spec.default;
    return this.spec.parse ? this.spec.parse(text, where) : (text as T);
  }
}

function setting<T = string>(name: string, spec: SettingSpec<T>): Setting<T> {
  return new Setting(name, spec);
}

/** A duration: "500ms", "30s", "5m", "1h"; a bare number is seconds. */
const duration = (text: string, where: string): number => parseDuration(text, where);

/** A whole number of at least 1. */
function count(text: string, where: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) throw new CniNodeError('usage', `${where}=${text}: expected a whole number of at least 1`);
  return Number(text);
}

function oneOf<T extends string>(choices: readonly T[], explain: string) {
  return (text: string, where: string): T => {
    if (!(choices as readonly string[]).includes(text)) throw new CniNodeError('usage', `${where}=${text}: expected ${explain}`);
    return text as T;
  };
}

const ACTIONS: readonly Command[] = ['install', 'uninstall', 'apply', 'run'];
const ALL: readonly Command[] = ['install', 'uninstall', 'apply', 'list', 'check', 'version', 'run'];
const WATCH: readonly Command[] = ['watch'];

/** Where the kubelet mounts the pod's service account (token, ca.crt, namespace). */
export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export const SETTINGS = {
  plugins: setting('plugins', {
    group: 'option',
    flag: 'plugins',
    commands: ACTIONS,
    placeholder: 'a,b',
    meaning: 'plugin binaries (image plugins dir → node plugins dir)',
  }),
  configs: setting('configs', {
    group: 'option',
    flag: 'configs',
    commands: ACTIONS,
    placeholder: 'x.conf,y.conflist',
    meaning: 'config templates (configs dir → node configs dir)',
  }),
  manifests: setting('manifests', {
    group: 'option',
    flag: 'manifests',
    commands: ACTIONS,
    placeholder: 'm.yaml',
    meaning: 'Kubernetes manifests (created, deleted, converged)',
  }),
  pause: setting<boolean>('pause', {
    group: 'option',
    flag: 'pause',
    commands: ACTIONS,
    boolean: true,
    meaning: 'after the action, wait for SIGTERM, SIGINT or SIGHUP, then exit 0',
  }),
  dryRun: setting<boolean>('dry-run', {
    group: 'option',
    flag: 'dry-run',
    commands: ACTIONS,
    boolean: true,
    meaning: 'print what would change; change nothing',
  }),
  wait: setting<number>('wait', {
    group: 'option',
    flag: 'wait',
    commands: ACTIONS,
    placeholder: '<duration>',
    meaning: 'wait this long (e.g. 60s) for pointer targets to appear',
    default: 0,
    shownDefault: '0 (fail at once)',
    parse: duration,
    emptyIsUnset: false,
  }),
  logFormat: setting<'text' | 'json'>('log-format', {
    group: 'option',
    flag: 'log-format',
    env: 'CNI_NODE_LOG_FORMAT',
    commands: ALL,
    placeholder: 'text|json',
    meaning: 'output format (default text)',
    default: 'text',
    emptyIsUnset: false,
    // The flag's name is in the message whichever way it was given, as before.
    parse: (text) => oneOf(['text', 'json'] as const, 'text or json')(text, '--log-format'),
  }),
  kubeconfig: setting('kubeconfig', {
    group: 'option',
    flag: 'kubeconfig',
    commands: ACTIONS,
    placeholder: '<path>',
    meaning: 'kubeconfig for manifests (default: $KUBECONFIG, in-cluster, ~/.kube/config)',
    shownDefault: '$KUBECONFIG, then the in-cluster service account, then ~/.kube/config',
  }),
  help: setting<boolean>('help', { group: 'option', flag: 'help', commands: ALL, boolean: true, meaning: 'print the usage', hidden: true }),

  pluginsDir: setting('plugins-dir', {
    group: 'directory',
    flag: 'plugins-dir',
    env: 'CNI_NODE_PLUGINS_DIR',
    commands: ALL,
    default: '/opt/cni/bin',
    meaning: 'plugin binaries in the image',
  }),
  hostPluginsDir: setting('host-plugins-dir', {
    group: 'directory',
    flag: 'host-plugins-dir',
    env: 'CNI_NODE_HOST_PLUGINS_DIR',
    commands: ALL,
    default: '/host/opt/cni/bin',
    meaning: 'plugin binaries on the node',
  }),
  configsDir: setting('configs-dir', {
    group: 'directory',
    flag: 'configs-dir',
    env: 'CNI_NODE_CONFIGS_DIR',
    commands: ALL,
    default: '/etc/cni/net.d',
    meaning: 'config templates',
  }),
  hostConfigsDir: setting('host-configs-dir', {
    group: 'directory',
    flag: 'host-configs-dir',
    env: 'CNI_NODE_HOST_CONFIGS_DIR',
    commands: ALL,
    default: '/host/etc/cni/net.d',
    meaning: 'configs on the node',
  }),
  manifestsDir: setting('manifests-dir', {
    group: 'directory',
    flag: 'manifests-dir',
    env: 'CNI_NODE_MANIFESTS_DIR',
    commands: ALL,
    default: '/etc/kubernetes/manifests',
    meaning: 'manifests',
  }),

  configMap: setting('config-map', {
    group: 'run',
    flag: 'config-map',
    commands: ['run'],
    placeholder: '<namespace>/<name>',
    meaning: 'desired lists from this ConfigMap (keys plugins, configs, manifests)',
  }),
  listen: setting('listen', { group: 'run', flag: 'listen', commands: ['run'], placeholder: '<host>:<port>', meaning: 'serve /healthz, /readyz and /metrics' }),
  uninstallOnExit: setting<boolean>('uninstall-on-exit', {
    group: 'run',
    flag: 'uninstall-on-exit',
    commands: ['run'],
    boolean: true,
    meaning: 'remove everything cni-node installed when stopped',
  }),
  kubeconfigOut: setting('kubeconfig-out', {
    group: 'run',
    flag: 'kubeconfig-out',
    commands: ['run'],
    placeholder: '<path>',
    meaning: 'write a kubeconfig for plugins from the service account',
  }),

  debounce: setting<number>('debounce', {
    group: 'environment',
    env: 'CNI_NODE_DEBOUNCE',
    default: 100,
    shownDefault: '100ms',
    parse: duration,
    meaning:
      'run: the shortest time between two reconciles: an event after a quiet time is acted on at once, the events within this time of it together at its end',
  }),
  recheck: setting<number>('recheck', {
    group: 'environment',
    env: 'CNI_NODE_RECHECK',
    default: 30_000,
    shownDefault: '30s',
    parse: duration,
    meaning: "run: the file watchers' safety-net re-check (0 turns it off)",
  }),
  manifestRecheck: setting<number>('manifest-recheck', {
    group: 'environment',
    env: 'CNI_NODE_MANIFEST_RECHECK',
    default: 30 * 60_000,
    shownDefault: '30m',
    parse: duration,
    meaning: "run: re-check the manifests' objects this long after the last time (0 turns it off); repairs an object deleted by someone else",
  }),
  fightLimit: setting<number>('fight-limit', {
    group: 'environment',
    env: 'CNI_NODE_FIGHT_LIMIT',
    default: 5,
    parse: count,
    meaning: 'run: a managed file restored this many times within CNI_NODE_FIGHT_WINDOW…',
  }),
  fightWindow: setting<number>('fight-window', {
    group: 'environment',
    env: 'CNI_NODE_FIGHT_WINDOW',
    default: 60_000,
    shownDefault: '60s',
    parse: duration,
    meaning: '…is left alone for CNI_NODE_FIGHT_HOLD, and reported',
  }),
  fightHold: setting<number>('fight-hold', {
    group: 'environment',
    env: 'CNI_NODE_FIGHT_HOLD',
    default: 300_000,
    shownDefault: '5m',
    parse: duration,
    meaning: 'how long a fought-over file is left alone (something else keeps rewriting it)',
  }),
  uninstallTimeout: setting<number>('uninstall-timeout', {
    group: 'environment',
    env: 'CNI_NODE_UNINSTALL_TIMEOUT',
    default: 20_000,
    shownDefault: '20s',
    parse: duration,
    meaning: 'run: the longest --uninstall-on-exit may take',
  }),
  kubeconfigCredentials: setting<'embed' | 'files'>('kubeconfig-credentials', {
    group: 'environment',
    env: 'CNI_NODE_KUBECONFIG_CREDENTIALS',
    default: 'embed',
    parse: oneOf(['embed', 'files'] as const, 'embed (CA and token inside the kubeconfig) or files'),
    meaning: '--kubeconfig-out: embed the CA and token, or write them as files beside it (files)',
  }),
  kubeconfigToken: setting<'request' | 'projected'>('kubeconfig-token', {
    group: 'environment',
    env: 'CNI_NODE_KUBECONFIG_TOKEN',
    default: 'request',
    parse: oneOf(
      ['request', 'projected'] as const,
      "request (a token cni-node requests for its service account, not bound to the pod) or projected (the pod's own token)",
    ),
    meaning: "--kubeconfig-out: a token cni-node requests for its service account (outlives the pod), or the pod's projected token",
  }),
  hostPathMap: setting('host-path-map', {
    group: 'environment',
    env: 'CNI_NODE_HOST_PATH_MAP',
    default: '/host=/',
    emptyIsUnset: false,
    meaning: '--kubeconfig-out with files: container path prefix = node path prefix, comma-separated',
  }),
  kubeconfigServer: setting('kubeconfig-server', {
    group: 'environment',
    env: 'CNI_NODE_KUBECONFIG_SERVER',
    shownDefault: 'https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT',
    secret: true,
    meaning: '--kubeconfig-out: the API server URL written for the node, when the service address does not work there',
  }),
  serviceAccountDir: setting('service-account-dir', {
    group: 'environment',
    env: 'CNI_NODE_SERVICE_ACCOUNT_DIR',
    default: DEFAULT_SERVICE_ACCOUNT_DIR,
    meaning: "the pod's service account (token, ca.crt, namespace): API credentials and --kubeconfig-out",
  }),
  kubeconfigPath: setting('kubeconfig-env', {
    group: 'environment',
    env: 'KUBECONFIG',
    meaning: "kubeconfig files (':'-separated, the first wins), when --kubeconfig is not given",
  }),
  serviceHost: setting('service-host', {
    group: 'environment',
    env: 'KUBERNETES_SERVICE_HOST',
    meaning: 'the API server address; set by Kubernetes in every pod',
  }),
  servicePort: setting('service-port', {
    group: 'environment',
    env: 'KUBERNETES_SERVICE_PORT',
    meaning: 'the API server port; set by Kubernetes in every pod',
  }),
  home: setting('home', { group: 'environment', env: 'HOME', shownDefault: "the user's home", meaning: 'where ~/.kube/config is looked for' }),
  podName: setting('pod-name', { group: 'environment', env: 'POD_NAME', meaning: 'run: the pod, for Kubernetes Events (downward API); without it, no Events' }),
  podNamespace: setting('pod-namespace', {
    group: 'environment',
    env: 'POD_NAMESPACE',
    meaning: "run: the pod's namespace, for Events and a --config-map without one",
  }),
  podUid: setting('pod-uid', { group: 'environment', env: 'POD_UID', meaning: "run: the pod's uid, so `kubectl describe pod` shows its Events" }),
  nodeName: setting('node-name', { group: 'environment', env: 'NODE_NAME', meaning: 'run: the node, as the source host of Events' }),
  debug: setting<boolean>('debug', {
    group: 'environment',
    env: 'CNI_NODE_DEBUG',
    default: false,
    shownDefault: 'off',
    parse: (text) => text === '1',
    meaning: "1: stack traces of internal errors, and Node's inspector options allowed (never on production nodes)",
  }),
  nodeOptions: setting('node-options', {
    group: 'environment',
    env: 'NODE_OPTIONS',
    meaning: "Node.js's own options; an inspector option there makes cni-node refuse to start unless CNI_NODE_DEBUG=1",
  }),

  allNamespaces: setting<boolean>('all-namespaces', {
    group: 'kube-watch',
    flag: 'all-namespaces',
    short: 'a',
    commands: WATCH,
    boolean: true,
    meaning: 'Watch objects in all namespaces',
  }),
  label: setting('label', { group: 'kube-watch', flag: 'label', short: 'l', commands: WATCH, placeholder: '<Label>', meaning: 'Filter objects with label' }),
  jsonpath: setting('jsonpath', {
    group: 'kube-watch',
    flag: 'jsonpath',
    short: 'j',
    commands: WATCH,
    placeholder: '<JsonPath>',
    default: '{}',
    meaning: 'Path to the object field',
  }),
  channel: setting('channel', {
    group: 'kube-watch',
    flag: 'channel',
    short: 'c',
    commands: WATCH,
    placeholder: '<Channel>',
    default: '/var/run/kube-watch/channel',
    meaning: 'Channel',
  }),
  handler: setting('handler', {
    group: 'kube-watch',
    flag: 'handler',
    short: 'h',
    commands: WATCH,
    placeholder: '<Handler>',
    default: '/usr/share/kube-watch/handler',
    meaning: 'Handler',
  }),
  watchKubeconfig: setting('kubeconfig', {
    group: 'kube-watch',
    flag: 'kubeconfig',
    commands: WATCH,
    placeholder: '<File>',
    shownDefault: '$KUBECONFIG, in-cluster, ~/.kube/config',
    meaning: 'Kubernetes credentials',
  }),
} as const;

export type SettingName = keyof typeof SETTINGS;

/** Every setting, in table order. */
export const ALL_SETTINGS: readonly Setting<unknown>[] = Object.values(SETTINGS) as Setting<unknown>[];

/** The settings of `group`, in table order. */
export function settingsOf(group: SettingGroup): Setting<unknown>[] {
  return ALL_SETTINGS.filter((s) => s.spec.group === group);
}

/** The flags `command` takes. */
export function flagsOf(command: Command): Setting<unknown>[] {
  return ALL_SETTINGS.filter((s) => s.spec.flag !== undefined && s.spec.commands?.includes(command));
}

/** The explicit debug setting: CNI_NODE_DEBUG=1 (stack traces of internal errors; Node's inspector options allowed). */
export function debugEnabled(env: Env): boolean {
  return SETTINGS.debug.read(env) === true;
}

/**
 * A value as it may be logged: a setting that may hold a credential shows none of
 * it (a URL keeps its scheme, host, port and path: `https://REDACTED@host:6443/`
 * without user, password or query; anything else is `REDACTED`).
 */
export function redact(setting: Setting<unknown>, value: string): string {
  if (!setting.spec.secret) return value;
  try {
    const url = new URL(value);
    const userinfo = url.username !== '' || url.password !== '' ? 'REDACTED@' : '';
    return `${url.protocol}//${userinfo}${url.host}${url.pathname}${url.search !== '' ? '?REDACTED' : ''}`;
  } catch {
    return 'REDACTED';
  }
}

/**
 * The effective settings of `command` (flags and environment), as `name=value`
 * pairs for one log line: every setting that has a value, given or by default,
 * credentials redacted. Lists (--plugins, …) are left to the caller, which logs
 * the desired state on its own line.
 */
export function effectiveSettings(command: Command, values: Values, env: Env): string[] {
  const out: string[] = [];
  for (const s of ALL_SETTINGS) {
    if (s.spec.hidden || s === SETTINGS.plugins || s === SETTINGS.configs || s === SETTINGS.manifests) continue;
    const takesFlag = s.spec.flag !== undefined && s.spec.commands?.includes(command) === true;
    if (!takesFlag && (s.spec.group !== 'environment' || s.spec.env === undefined)) continue;
    const given = takesFlag ? values[s.spec.flag as string] : undefined;
    const fromEnv = s.spec.env === undefined ? undefined : env[s.spec.env];
    const name = given !== undefined || s.spec.env === undefined ? `--${s.spec.flag}` : s.spec.env;
    if (given === true) out.push(name);
    else if (given !== undefined && given !== false) out.push(`${name}=${redact(s, String(given))}`);
    else if (fromEnv !== undefined && fromEnv !== '') out.push(`${name}=${redact(s, fromEnv)}`);
    else if (s.spec.default !== undefined && !s.spec.boolean) out.push(`${name}=${redact(s, s.shownDefault)} (default)`);
  }
  return out;
}
