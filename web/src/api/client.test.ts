import { describe, expect, it } from 'vitest';
import { ApiClient, ApiError, STALE_MESSAGE, oldestRevision, type SignInRequest } from './client';
import { TokenStore } from './token';

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
  signal: AbortSignal | null;
}

type Responder = (call: Call) => Response | Promise<Response>;

/** A fetch that records each call and answers from `responders`, one per call. */
function fakeFetch(responders: Responder[]) {
  const calls: Call[] = [];
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      url: String(input),
      method: init?.method ?? 'GET',
      headers: { ...(init?.headers as Record<string, string>) },
      body: init?.body,
      signal: init?.signal ?? null,
    };
    calls.push(call);
    const responder = responders.shift();
    if (!responder) throw new Error(`unexpected request ${call.method} ${call.url}`);
    return responder(call);
  }) as typeof fetch;
  return { calls, fetchImpl };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const apiError = (status: number, error: Record<string, unknown>) => json(status, { error });

function client(
  responders: Responder[],
  options: { token?: string; signIn?: (r: SignInRequest) => Promise<boolean>; timeoutMs?: number } = {},
) {
  const tokens = new TokenStore(null);
  if (options.token) tokens.set(options.token);
  const { calls, fetchImpl } = fakeFetch(responders);
  const outcomes: boolean[] = [];
  const api = new ApiClient({
    tokens,
    fetch: fetchImpl,
    onOutcome: (o) => outcomes.push(o.reachable),
    ...(options.signIn ? { signIn: options.signIn } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  return { api, calls, tokens, outcomes };
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected the request to fail');
}

describe('ApiClient requests', () => {
  it('reads JSON from relative /api/v1 URLs, with the bearer token in a header only', async () => {
    const { api, calls } = client([() => json(200, [{ name: 'rs1', address: '10.0.1.11' }])], {
      token: 's3cret',
    });
    expect(await api.peers()).toEqual([{ name: 'rs1', address: '10.0.1.11' }]);
    expect(calls[0]?.url).toBe('/api/v1/peers');
    expect(calls[0]?.headers.Authorization).toBe('Bearer s3cret');
    expect(calls[0]?.url).not.toContain('s3cret');
  });

  it('reads without a token when none is stored (loopback listener)', async () => {
    const { api, calls } = client([() => json(200, { vips: [], drops: {}, bindings: [] })]);
    await api.stats();
    expect(calls[0]?.headers.Authorization).toBeUndefined();
  });

  it('sends JSON bodies and encodes path segments', async () => {
    const { api, calls } = client([() => json(200, { address: '192.0.2.10' })], { token: 't' });
    await api.putVip('192.0.2.10', { address: '192.0.2.10', plugins: [{ plugin: 'a', on_error: 'drop' }] });
    expect(calls[0]?.method).toBe('PUT');
    expect(calls[0]?.url).toBe('/api/v1/vips/192.0.2.10');
    expect(calls[0]?.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(String(calls[0]?.body))).toEqual({
      address: '192.0.2.10',
      plugins: [{ plugin: 'a', on_error: 'drop' }],
    });

    const second = client([() => new Response(null, { status: 204 })], { token: 't' });
    await second.api.deletePeer('a/b?c');
    expect(second.calls[0]?.url).toBe('/api/v1/peers/a%2Fb%3Fc');
  });

  it('uploads modules as raw application/wasm bytes', async () => {
    const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]).buffer;
    const plugin = { name: 'cidr-filter', sha256: 'ab'.repeat(32), size: 8, uploaded_at: 1 };
    const { api, calls } = client([() => json(200, plugin)], { token: 't' });
    expect(await api.putPlugin('cidr-filter', bytes)).toEqual(plugin);
    expect(calls[0]?.headers['Content-Type']).toBe('application/wasm');
    expect(calls[0]?.body).toBe(bytes);
  });

  it('returns undefined for 204 answers', async () => {
    const { api } = client([() => new Response(null, { status: 204 })], { token: 't' });
    await expect(api.deletePlugin('x')).resolves.toBeUndefined();
  });
});

describe('ApiClient errors', () => {
  it('carries the contract error fields of a 422', async () => {
    const { api } = client(
      [
        () =>
          apiError(422, {
            code: 'invalid_config',
            message: 'the configuration is invalid',
            field: 'peers[0].address',
            details: [{ field: 'peers[0].address', message: 'not an IPv4 address' }, { bogus: true }],
          }),
      ],
      { token: 't' },
    );
    const error = await failure(api.putPeer('rs1', { address: 'x' }));
    expect(error.kind).toBe('api');
    expect(error.status).toBe(422);
    expect(error.code).toBe('invalid_config');
    expect(error.message).toBe('the configuration is invalid');
    expect(error.field).toBe('peers[0].address');
    expect(error.details).toEqual([{ field: 'peers[0].address', message: 'not an IPv4 address' }]);
  });

  it('calls a network failure unreachable', async () => {
    const { api, outcomes } = client([() => Promise.reject(new TypeError('Failed to fetch'))]);
    const error = await failure(api.status());
    expect(error.kind).toBe('unreachable');
    expect(error.message).toContain('GET /api/v1/status');
    expect(error.message).toContain('Failed to fetch');
    expect(outcomes).toEqual([false]);
  });

  it('calls a non-API answer (static server 404, HTML, proxy 502) unreachable', async () => {
    const { api } = client([
      () => new Response('Not Found', { status: 404, headers: { 'content-type': 'text/plain' } }),
      () => new Response('<html></html>', { status: 200, headers: { 'content-type': 'text/html' } }),
      () => new Response('Bad Gateway', { status: 502, statusText: 'Bad Gateway' }),
    ]);
    const notFound = await failure(api.status());
    expect(notFound.kind).toBe('unreachable');
    expect(notFound.status).toBe(404);
    expect(notFound.message).toContain('HTTP 404');
    expect(notFound.message).toContain('text/plain');
    expect((await failure(api.stats())).kind).toBe('unreachable');
    const badGateway = await failure(api.peers());
    expect(badGateway.kind).toBe('unreachable');
    expect(badGateway.message).toContain('HTTP 502 Bad Gateway');
  });

  it('gives up on a request that does not answer in time', async () => {
    // Like a real fetch to a server that never answers: only the abort ends it.
    const hang: Responder = (call) =>
      new Promise((_, reject) => {
        call.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    const { api } = client([hang], { timeoutMs: 10 });
    const error = await failure(api.status());
    expect(error.kind).toBe('unreachable');
    expect(error.message).toContain('no answer within');
  });

  it('reports reachable outcomes for API errors', async () => {
    const { api, outcomes } = client([() => apiError(404, { code: 'not_found', message: 'no such peer' })]);
    expect((await failure(api.status())).kind).toBe('api');
    expect(outcomes).toEqual([true]);
  });
});

describe('ApiClient sign-in', () => {
  it('asks for a token before a write when there is none, then sends it', async () => {
    const requests: SignInRequest[] = [];
    let tokensRef: TokenStore | null = null;
    const setup = client([() => json(200, { name: 'rs1', address: '10.0.1.11' })], {
      signIn: async (request) => {
        requests.push(request);
        tokensRef?.set('fresh');
        return true;
      },
    });
    tokensRef = setup.tokens;
    await setup.api.putPeer('rs1', { address: '10.0.1.11' });
    expect(requests).toEqual([{ reason: 'needs-token', forWrite: true }]);
    expect(setup.calls).toHaveLength(1);
    expect(setup.calls[0]?.headers.Authorization).toBe('Bearer fresh');
  });

  it('sends nothing when the operator cancels the sign-in a write needs', async () => {
    const { api, calls } = client([], { signIn: async () => false });
    const error = await failure(api.deleteVip('192.0.2.10'));
    expect(error.kind).toBe('cancelled');
    expect(calls).toHaveLength(0);
  });

  it('forgets a refused token, asks again and retries the write once', async () => {
    let tokensRef: TokenStore | null = null;
    const seen: (string | null)[] = [];
    const setup = client(
      [
        () => apiError(401, { code: 'unauthorized', message: 'wrong token' }),
        () => json(200, { address: '192.0.2.10' }),
      ],
      {
        token: 'old',
        signIn: async (request) => {
          seen.push(tokensRef?.get() ?? null);
          expect(request).toEqual({ reason: 'token-refused', forWrite: true });
          tokensRef?.set('new');
          return true;
        },
      },
    );
    tokensRef = setup.tokens;
    await setup.api.putVip('192.0.2.10', {});
    expect(seen).toEqual([null]);
    expect(setup.calls.map((c) => c.headers.Authorization)).toEqual(['Bearer old', 'Bearer new']);
  });

  it('asks for a token when a read answers 401, and retries it', async () => {
    let tokensRef: TokenStore | null = null;
    const requests: SignInRequest[] = [];
    const setup = client(
      [() => apiError(401, { code: 'unauthorized', message: 'token required' }), () => json(200, [])],
      {
        signIn: async (request) => {
          requests.push(request);
          tokensRef?.set('tok');
          return true;
        },
      },
    );
    tokensRef = setup.tokens;
    expect(await setup.api.plugins()).toEqual([]);
    expect(requests).toEqual([{ reason: 'needs-token', forWrite: false }]);
    expect(setup.calls[1]?.headers.Authorization).toBe('Bearer tok');
  });

  it('keeps the 401 when the operator declines to sign in', async () => {
    const { api, tokens } = client([() => apiError(401, { code: 'unauthorized', message: 'nope' })], {
      token: 'stale',
      signIn: async () => false,
    });
    const error = await failure(api.vips());
    expect(error.kind).toBe('unauthorized');
    expect(tokens.get()).toBeNull();
  });

  it('checks a candidate token with GET /api/v1/auth: 204 yes, 401 no, other failures thrown', async () => {
    const { api, calls, tokens } = client([
      () => new Response(null, { status: 204 }),
      () => apiError(401, { code: 'unauthorized', message: 'bad token' }),
      () => new Response('nope', { status: 404 }),
    ]);
    expect(await api.checkToken(' good \n')).toBe(true);
    expect(calls[0]?.url).toBe('/api/v1/auth');
    expect(calls[0]?.headers.Authorization).toBe('Bearer good');
    expect(await api.checkToken('bad')).toBe(false);
    expect((await failure(api.checkToken('x'))).kind).toBe('unreachable');
    expect(tokens.get()).toBeNull();
  });
});

describe('revisions: ETag in, If-Match out', () => {
  const tagged = (body: unknown, etag: string) =>
    new Response(JSON.stringify(body), {
      status: 200,
      headers: { 'content-type': 'application/json', etag },
    });

  it('reads peers, VIPs and plugins with the oldest of their revisions', async () => {
    const { api } = client([() => tagged([], '"8"'), () => tagged([], '"7"'), () => tagged([], '"8"')]);
    const view = await api.configView();
    expect(view.revision).toBe('"7"');
  });

  it('knows no revision when one read has none or an unknown one', () => {
    expect(oldestRevision(['"3"', null])).toBeNull();
    expect(oldestRevision(['"3"', 'W/"2"'])).toBeNull();
    expect(oldestRevision(['"12"', '"3"'])).toBe('"3"');
  });

  it('sends the revision as If-Match, none when unknown, and says a 412 is a stale form', async () => {
    const { api, calls } = client(
      [
        () => json(200, { name: 'rs1', address: '10.0.1.2', vips: [] }),
        () => json(200, { name: 'rs1', address: '10.0.1.2', vips: [] }),
        () => apiError(412, { code: 'precondition_failed', message: 'If-Match "3", now "4"' }),
      ],
      { token: 't' },
    );
    await api.putPeer('rs1', { address: '10.0.1.2' }, '"3"');
    expect(calls[0]?.headers['If-Match']).toBe('"3"');
    await api.putPeer('rs1', { address: '10.0.1.2' });
    expect(calls[1]?.headers['If-Match']).toBeUndefined();
    const stale = await failure(api.deleteVip('192.0.2.1', '"3"'));
    expect(calls[2]?.headers['If-Match']).toBe('"3"');
    expect(stale.status).toBe(412);
    expect(stale.code).toBe('precondition_failed');
    expect(stale.message).toBe(STALE_MESSAGE);
  });
});

describe('capture', () => {
  const pcapng = () =>
    new Response(new Uint8Array([0x0a, 0x0d, 0x0d, 0x0a, 1, 2]), {
      status: 200,
      headers: { 'content-type': 'application/x-pcapng' },
    });

  it('asks with the token and the parameters, and returns the file', async () => {
    const { api, calls } = client([pcapng], { token: 't0ken' });
    const blob = await api.capture({ reason: 'unknown_peer', count: 100, seconds: 10 });
    expect(new Uint8Array(await blob.arrayBuffer()).slice(0, 4)).toEqual(new Uint8Array([10, 13, 13, 10]));
    expect(calls[0]?.url).toBe('/api/v1/capture?reason=unknown_peer&count=100&seconds=10');
    expect(calls[0]?.headers.Authorization).toBe('Bearer t0ken');
  });

  it('asks for a sign-in first when there is no token, and says so when cancelled', async () => {
    const asked: SignInRequest[] = [];
    const { api, calls } = client([], {
      signIn: async (r) => {
        asked.push(r);
        return false;
      },
    });
    const e = await failure(api.capture({ count: 1, seconds: 1 }));
    expect(e.kind).toBe('cancelled');
    expect(asked).toEqual([{ reason: 'needs-token', forWrite: false }]);
    expect(calls).toHaveLength(0);
  });

  it("turns the API's refusal (429) into its message and code", async () => {
    const { api } = client(
      [() => apiError(429, { code: 'too_many_requests', message: '4 captures are running already' })],
      { token: 't0ken' },
    );
    const e = await failure(api.capture({ count: 1, seconds: 1 }));
    expect([e.kind, e.status, e.code]).toEqual(['api', 429, 'too_many_requests']);
    expect(e.message).toContain('4 captures');
  });
});
