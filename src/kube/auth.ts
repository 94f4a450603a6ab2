/**
 * Where the Authorization header of each request comes from: a token file read
 * again whenever it changes (projected tokens rotate), a fixed header, or
 * @kubernetes/client-node for exec plugins and auth providers.
 */
import { statSync } from 'node:fs';
import type https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { CniNodeError, reason } from '../core/errors.js';
import { INPUT_LIMITS } from '../core/input-limits.js';
import { readRegularSync } from '../sys/read.js';

/** Supplies the Authorization header for each request. */
export interface AuthProvider {
  /** The header value ("Bearer …", "Basic …"), or undefined for none (client certificates). */
  header(): Promise<string | undefined>;
  /** Forget any cached credential (after a 401); true if a fresh one may differ. */
  invalidate(): boolean;
}

/** Reads a token from a file, again whenever the file changes (new inode, size or mtime) or after invalidate(). */
export class TokenFileAuth implements AuthProvider {
  private token: string | undefined;
  private stamp = '';

  constructor(readonly file: string) {}

  async header(): Promise<string | undefined> {
    return `Bearer ${this.current()}`;
  }

  /** The token now in the file (re-read only if the file changed). */
  current(): string {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      throw new CniNodeError('missing', `cannot read the API token file ${this.file}: ${reason(e)}`);
    }
    if (this.token === undefined || stamp !== this.stamp) {
      let text: string;
      try {
        const bytes = readRegularSync(this.file, { maxBytes: INPUT_LIMITS.token, what: 'the API token file' });
        if (bytes === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${this.file}'`), { code: 'ENOENT' });
        text = bytes.toString('utf8');
      } catch (e) {
        throw e instanceof CniNodeError ? e : new CniNodeError('missing', `cannot read the API token file ${this.file}: ${reason(e)}`);
      }
      const token = text.trim();
      if (token === '') throw new CniNodeError('missing', `the API token file ${this.file} is empty`);
      this.token = token;
      this.stamp = stamp;
    }
    return this.token;
  }

  invalidate(): boolean {
    this.token = undefined;
    this.stamp = '';
    return true;
  }
}

export class StaticAuth implements AuthProvider {
  constructor(private readonly value: string | undefined) {}
  async header(): Promise<string | undefined> {
    return this.value;
  }
  invalidate(): boolean {
    return false;
  }
}

/** Exec plugins and auth providers: @kubernetes/client-node computes the header (it caches and refreshes them itself). */
export class KubeConfigAuth implements AuthProvider {
  constructor(private readonly kc: KubeConfig) {}
  async header(): Promise<string | undefined> {
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    (opts.agent as https.Agent | undefined)?.destroy();
    const h = opts.headers as Record<string, string | undefined> | undefined;
    return h?.['Authorization'] ?? h?.['authorization'];
  }
  invalidate(): boolean {
    return true;
  }
}

/** The `sub` claim of a JWT (not verified: only for messages), e.g. system:serviceaccount:kube-system:cni-node. */
export function jwtSubject(token: string): string | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}
