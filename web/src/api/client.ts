// The only code that talks to tungate's admin API (`/api/v1`, same origin). It owns the
// request/response conventions of the contract: bearer auth, JSON bodies, the error format,
// and telling "the API refused this" apart from "no API answered". It must never put the
// token in a URL, and never retry a write except once after a fresh sign-in.

import type {
  ErrorBody,
  ErrorDetail,
  FleetTotals,
  Fleet,
  Peer,
  PeerBody,
  Plugin,
  Stats,
  Status,
  Vip,
  VipBody,
} from './types';
import type { TokenStore } from './token';

/** Why a request failed, which decides how the UI reacts. */
export type FailureKind =
  /** No tungate API answered: network error, timeout, or a non-API answer (HTML, proxy 502). */
  | 'unreachable'
  /** The API wants a (valid) token. */
  | 'unauthorized'
  /** The API answered with its error format: validation, conflict, not found, ... */
  | 'api'
  /** The operator dismissed the sign-in that a write needed: nothing was sent. */
  | 'cancelled';

/** A failed API request, carrying the contract's error fields when the API gave them. */
export class ApiError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status: number | null = null,
    readonly code: string | null = null,
    readonly field: string | null = null,
    readonly details: readonly ErrorDetail[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Asks the operator for a token; resolves true once a valid one is stored. */
export type SignInPrompt = (request: SignInRequest) => Promise<boolean>;

/** Why the client asks for a token, and for what kind of request. */
export interface SignInRequest {
  reason: 'needs-token' | 'token-refused';
  forWrite: boolean;
}

/** Observes every request's outcome (the header's connection indicator). */
export type OutcomeListener = (outcome: { reachable: boolean; message: string | null }) => void;

/** How the client is wired into the page. */
export interface ApiClientOptions {
  tokens: TokenStore;
  /** Called when a write has no token or any request answers 401. */
  signIn?: SignInPrompt;
  onOutcome?: OutcomeListener;
  fetch?: typeof fetch;
  /** Base of the API paths; '' means the UI's own origin. */
  origin?: string;
  /** Milliseconds before a JSON request is abandoned as unreachable. */
  timeoutMs?: number;
  /** Milliseconds before an upload is abandoned. */
  uploadTimeoutMs?: number;
}

/** What `ApiClient.capture` asks for (the API's limits: count 1..100000, seconds 1..300). */
export interface CaptureParams {
  reason?: string;
  vip?: string;
  count: number;
  seconds: number;
}

type Method = 'GET' | 'PUT' | 'DELETE';

/**
 * The configuration's revision as the API tags it (`ETag`, e.g. `"17"`): what a form was
 * loaded from, sent back as `If-Match` so that a stale form is refused instead of
 * overwriting someone else's change.
 */
export type Revision = string;

/** Peers, VIPs and plugins read together, with the revision they were read at. */
export interface ConfigView {
  peers: Peer[];
  vips: Vip[];
  plugins: Plugin[];
  /** The oldest revision of the three reads (null when the API sent none). */
  revision: Revision | null;
}

/** What the UI says when a write is refused as stale (HTTP 412 `precondition_failed`). */
export const STALE_MESSAGE =
  'Changed by someone else since you opened it — reload to see the current configuration, ' +
  'then make your change again. Nothing was saved.';

/** The oldest of some revisions (the one all the data read is at least as new as), or null. */
export function oldestRevision(revisions: readonly (Revision | null)[]): Revision | null {
  let oldest: { tag: Revision; n: number } | null = null;
  for (const tag of revisions) {
    const n = tag === null ? NaN : Number(/^"(\d+)"$/.exec(tag)?.[1]);
    if (!Number.isFinite(n)) return null;
    if (oldest === null || n < oldest.n) oldest = { tag: tag as Revision, n };
  }
  return oldest?.tag ?? null;
}

/** A response's value and its `ETag` (null when the API sent none). */
interface Tagged<T> {
  value: T;
  etag: Revision | null;
}

type RequestBody =
  { kind: 'json'; value: unknown } | { kind: 'bytes'; value: Blob | ArrayBuffer; contentType: string };

/** Typed access to every `/api/v1` resource the UI uses. */
export class ApiClient {
  private readonly fetchImpl: typeof fetch;
  private readonly origin: string;
  private readonly timeoutMs: number;
  private readonly uploadTimeoutMs: number;

  constructor(private readonly options: ApiClientOptions) {
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.origin = options.origin ?? '';
    this.timeoutMs = options.timeoutMs ?? 8000;
    this.uploadTimeoutMs = options.uploadTimeoutMs ?? 120_000;
  }

  /** `GET /api/v1/status`. */
  status(): Promise<Status> {
    return this.read<Status>('/api/v1/status');
  }

  /** `GET /api/v1/stats`. */
  stats(): Promise<Stats> {
    return this.read<Stats>('/api/v1/stats');
  }

  /** `GET /api/v1/fleet/totals` (409 without a fleet Prometheus, 502 when it failed). */
  fleetTotals(): Promise<FleetTotals> {
    return this.read<FleetTotals>('/api/v1/fleet/totals');
  }

  /** `GET /api/v1/fleet`; null when this gateway lists no fleet (404: no `--fleet --etcd`). */
  async fleet(): Promise<Fleet | null> {
    try {
      return await this.read<Fleet>('/api/v1/fleet');
    } catch (error) {
      if (error instanceof ApiError && error.kind === 'api' && error.status === 404) return null;
      throw error;
    }
  }

  /** `GET /api/v1/peers`. */
  peers(): Promise<Peer[]> {
    return this.read<Peer[]>('/api/v1/peers');
  }

  /** `GET /api/v1/vips`. */
  vips(): Promise<Vip[]> {
    return this.read<Vip[]>('/api/v1/vips');
  }

  /** `GET /api/v1/plugins`. */
  plugins(): Promise<Plugin[]> {
    return this.read<Plugin[]>('/api/v1/plugins');
  }

  /** Peers, VIPs and plugins, with the revision to send back with a change made from them. */
  async configView(): Promise<ConfigView> {
    const [peers, vips, plugins] = await Promise.all([
      this.readTagged<Peer[]>('/api/v1/peers'),
      this.readTagged<Vip[]>('/api/v1/vips'),
      this.readTagged<Plugin[]>('/api/v1/plugins'),
    ]);
    return {
      peers: peers.value,
      vips: vips.value,
      plugins: plugins.value,
      revision: oldestRevision([peers.etag, vips.etag, plugins.etag]),
    };
  }

  // Every write takes `ifMatch`: the revision its form was loaded at (sent as `If-Match`;
  // a stale one is refused with 412 and STALE_MESSAGE, and nothing changes).

  /** `PUT /api/v1/peers/{name}`: creates or replaces a peer. */
  putPeer(name: string, body: PeerBody, ifMatch: Revision | null = null): Promise<Peer> {
    return this.write<Peer>('PUT', `/api/v1/peers/${segment(name)}`, { kind: 'json', value: body }, ifMatch);
  }

  /** `DELETE /api/v1/peers/{name}`. */
  async deletePeer(name: string, ifMatch: Revision | null = null): Promise<void> {
    await this.write<undefined>('DELETE', `/api/v1/peers/${segment(name)}`, undefined, ifMatch);
  }

  /** `PUT /api/v1/vips/{address}`: creates or replaces a VIP and its chain. */
  putVip(address: string, body: VipBody, ifMatch: Revision | null = null): Promise<Vip> {
    return this.write<Vip>('PUT', `/api/v1/vips/${segment(address)}`, { kind: 'json', value: body }, ifMatch);
  }

  /** `DELETE /api/v1/vips/{address}`. */
  async deleteVip(address: string, ifMatch: Revision | null = null): Promise<void> {
    await this.write<undefined>('DELETE', `/api/v1/vips/${segment(address)}`, undefined, ifMatch);
  }

  /** `PUT /api/v1/plugins/{name}` with the raw module: upload or hot-swap replace. */
  putPlugin(name: string, module: Blob | ArrayBuffer, ifMatch: Revision | null = null): Promise<Plugin> {
    return this.write<Plugin>(
      'PUT',
      `/api/v1/plugins/${segment(name)}`,
      { kind: 'bytes', value: module, contentType: 'application/wasm' },
      ifMatch,
    );
  }

  /** `DELETE /api/v1/plugins/{name}` (the API refuses with 409 while it is bound). */
  async deletePlugin(name: string, ifMatch: Revision | null = null): Promise<void> {
    await this.write<undefined>('DELETE', `/api/v1/plugins/${segment(name)}`, undefined, ifMatch);
  }

  /**
   * `GET /api/v1/capture`: a bounded capture of dropped packets as a pcapng file. It always
   * needs the token (a sign-in is asked for when there is none or it is refused); it takes
   * up to `seconds` (the server ends it), so it waits that long plus the usual timeout.
   */
  async capture(params: CaptureParams): Promise<Blob> {
    const query = new URLSearchParams();
    if (params.reason) query.set('reason', params.reason);
    if (params.vip) query.set('vip', params.vip);
    query.set('count', String(params.count));
    query.set('seconds', String(params.seconds));
    const path = `/api/v1/capture?${query.toString()}`;
    if (this.options.tokens.get() === null) {
      if (!(await this.promptSignIn({ reason: 'needs-token', forWrite: false }))) {
        throw new ApiError('cancelled', 'Sign-in was cancelled, so nothing was captured.');
      }
    }
    try {
      return await this.download(path, params.seconds * 1000 + this.timeoutMs);
    } catch (error) {
      if (!(error instanceof ApiError) || error.kind !== 'unauthorized') throw error;
      if (!(await this.promptSignIn({ reason: 'token-refused', forWrite: false }))) throw error;
      return this.download(path, params.seconds * 1000 + this.timeoutMs);
    }
  }

  /** A binary GET with the token; API errors are interpreted as for JSON requests. */
  private async download(path: string, timeoutMs: number): Promise<Blob> {
    const token = this.options.tokens.get();
    const headers: Record<string, string> = { Accept: 'application/x-pcapng, application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      let response: Response;
      let blob: Blob;
      try {
        response = await this.fetchImpl(this.origin + path, {
          method: 'GET',
          headers,
          signal: abort.signal,
          cache: 'no-store',
        });
        blob = await response.blob();
      } catch (error) {
        const why = abort.signal.aborted
          ? `no answer within ${Math.round(timeoutMs / 1000)} s`
          : `network error: ${error instanceof Error ? error.message : String(error)}`;
        const failure = new ApiError('unreachable', `Cannot reach the tungate API (GET ${path}: ${why}).`);
        this.noteOutcome(failure);
        throw failure;
      }
      if (response.ok) {
        this.noteOutcome(undefined);
        return blob;
      }
      const result = interpret<never>('GET', path, response, await blob.text());
      this.noteOutcome(result);
      throw result instanceof ApiError ? result : new ApiError('api', `GET ${path} failed`, response.status);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * `GET /api/v1/auth` with a candidate token: true on 204, false on 401. Anything else
   * (unreachable, another status) throws, so "wrong token" and "no API" stay distinct.
   */
  async checkToken(candidate: string): Promise<boolean> {
    try {
      await this.send<undefined>('GET', '/api/v1/auth', undefined, candidate.trim(), null);
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.kind === 'unauthorized') return false;
      throw error;
    }
  }

  private async read<T>(path: string): Promise<T> {
    return (await this.readTagged<T>(path)).value;
  }

  private async readTagged<T>(path: string): Promise<Tagged<T>> {
    const token = this.options.tokens.get();
    try {
      return await this.sendTagged<T>('GET', path, undefined, token, null);
    } catch (error) {
      if (!(error instanceof ApiError) || error.kind !== 'unauthorized') throw error;
      const reason = token === null ? 'needs-token' : 'token-refused';
      if (!(await this.promptSignIn({ reason, forWrite: false }))) throw error;
      return this.sendTagged<T>('GET', path, undefined, this.options.tokens.get(), null);
    }
  }

  private async write<T>(
    method: Method,
    path: string,
    body: RequestBody | undefined,
    ifMatch: Revision | null,
  ): Promise<T> {
    if (this.options.tokens.get() === null) {
      const signedIn = await this.promptSignIn({ reason: 'needs-token', forWrite: true });
      if (!signedIn) {
        throw new ApiError('cancelled', 'Sign-in was cancelled, so nothing was changed.');
      }
    }
    try {
      return await this.send<T>(method, path, body, this.options.tokens.get(), ifMatch);
    } catch (error) {
      if (!(error instanceof ApiError) || error.kind !== 'unauthorized') throw error;
      if (!(await this.promptSignIn({ reason: 'token-refused', forWrite: true }))) throw error;
      return this.send<T>(method, path, body, this.options.tokens.get(), ifMatch);
    }
  }

  /** Asks for a token; a refused one is forgotten first so it is not sent again. */
  private async promptSignIn(request: SignInRequest): Promise<boolean> {
    if (request.reason === 'token-refused') this.options.tokens.clear();
    if (!this.options.signIn) return false;
    return this.options.signIn(request);
  }

  private async send<T>(
    method: Method,
    path: string,
    body: RequestBody | undefined,
    token: string | null,
    ifMatch: Revision | null,
  ): Promise<T> {
    return (await this.sendTagged<T>(method, path, body, token, ifMatch)).value;
  }

  private async sendTagged<T>(
    method: Method,
    path: string,
    body: RequestBody | undefined,
    token: string | null,
    ifMatch: Revision | null,
  ): Promise<Tagged<T>> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (ifMatch !== null) headers['If-Match'] = ifMatch;
    let payload: BodyInit | undefined;
    if (body?.kind === 'json') {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body.value);
    } else if (body?.kind === 'bytes') {
      headers['Content-Type'] = body.contentType;
      payload = body.value;
    }
    const timeoutMs = body?.kind === 'bytes' ? this.uploadTimeoutMs : this.timeoutMs;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    let response: Response;
    let text: string;
    try {
      const init: RequestInit = { method, headers, signal: abort.signal, cache: 'no-store' };
      if (payload !== undefined) init.body = payload;
      response = await this.fetchImpl(this.origin + path, init);
      text = await response.text();
    } catch (error) {
      const why = abort.signal.aborted
        ? `no answer within ${Math.round(timeoutMs / 1000)} s`
        : `network error: ${error instanceof Error ? error.message : String(error)}`;
      const failure = new ApiError(
        'unreachable',
        `Cannot reach the tungate API (${method} ${path}: ${why}).`,
      );
      this.noteOutcome(failure);
      throw failure;
    } finally {
      clearTimeout(timer);
    }
    const result = interpret<T>(method, path, response, text);
    this.noteOutcome(result);
    if (result instanceof ApiError) throw result;
    return { value: result, etag: response.headers.get('etag') };
  }

  /** Tells the outcome listener whether an API answered this request. */
  private noteOutcome(result: unknown): void {
    const unreachable = result instanceof ApiError && result.kind === 'unreachable';
    this.options.onOutcome?.({
      reachable: !unreachable,
      message: unreachable ? result.message : null,
    });
  }
}

/** Turns a response into the value, or an ApiError classified by the contract's rules. */
export function interpret<T>(method: string, path: string, response: Response, text: string): T | ApiError {
  const where = `${method} ${path}`;
  const parsed = parseJson(text);
  const contentType = response.headers.get('content-type') ?? '';
  const isJson = contentType.includes('json') && parsed.ok;

  if (response.ok) {
    if (response.status === 204 || (text === '' && method !== 'GET')) return undefined as T;
    if (isJson) return parsed.value as T;
    return new ApiError(
      'unreachable',
      `Cannot reach the tungate API: ${where} answered HTTP ${response.status} with ` +
        `${describeType(contentType)} instead of the API's JSON. Is this address served by tungate?`,
      response.status,
    );
  }

  const body = isJson ? asErrorBody(parsed.value) : null;
  if (response.status === 401) {
    return new ApiError(
      'unauthorized',
      body?.error.message ?? 'The admin token is missing or was refused (HTTP 401).',
      401,
      body?.error.code ?? 'unauthorized',
    );
  }
  if (body) {
    const { code, message, field, details } = body.error;
    if (response.status === 412 && code === 'precondition_failed') {
      return new ApiError('api', STALE_MESSAGE, 412, code);
    }
    return new ApiError('api', message, response.status, code, field ?? null, details ?? []);
  }
  return new ApiError(
    'unreachable',
    `Cannot reach the tungate API: ${where} answered HTTP ${response.status}` +
      `${response.statusText ? ` ${response.statusText}` : ''} with ${describeType(contentType)}, ` +
      `not the API's JSON. Is tungate running and serving this address?`,
    response.status,
  );
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

function asErrorBody(value: unknown): ErrorBody | null {
  if (typeof value !== 'object' || value === null) return null;
  const error = (value as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return null;
  const { code, message, field, details } = error as Record<string, unknown>;
  if (typeof code !== 'string' || typeof message !== 'string') return null;
  const cleanDetails = Array.isArray(details)
    ? details.filter(
        (d): d is ErrorDetail =>
          typeof d === 'object' &&
          d !== null &&
          typeof (d as ErrorDetail).field === 'string' &&
          typeof (d as ErrorDetail).message === 'string',
      )
    : undefined;
  const out: ErrorBody = { error: { code, message } };
  if (typeof field === 'string') out.error.field = field;
  if (cleanDetails) out.error.details = cleanDetails;
  return out;
}

function describeType(contentType: string): string {
  const base = contentType.split(';')[0]?.trim();
  return base ? base : 'an empty body';
}

/** Encodes one path segment (names and addresses come from the operator). */
function segment(value: string): string {
  return encodeURIComponent(value);
}
