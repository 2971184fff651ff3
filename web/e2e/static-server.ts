// A tiny static file server for the built UI (web/dist), on loopback only, with NO API
// behind it: every /api/ path answers 404 text/plain, as a server that is not tungate
// would. Used by the round-1 browser run to prove the UI's "API unreachable" state. It
// must never serve a file outside its root.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
};

/** A running static server. */
export interface StaticServer {
  /** e.g. `http://127.0.0.1:40123` (no trailing slash). */
  url: string;
  /** Paths requested so far, in order (for assertions). */
  requested: string[];
  close(): Promise<void>;
}

/** Serves `root` on 127.0.0.1 (`port` 0 picks a free one). */
export async function startStaticServer(root: string, port = 0): Promise<StaticServer> {
  const base = resolve(root);
  const requested: string[] = [];
  const server: Server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
    requested.push(path);
    const reply = (status: number, text: string) => {
      response.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-store',
      });
      response.end(text);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      reply(405, 'this static server only serves files');
      return;
    }
    if (path.startsWith('/api/')) {
      reply(404, 'not found: no tungate API behind this static server');
      return;
    }
    const file = resolve(join(base, normalize(path === '/' ? '/index.html' : path)));
    if (file !== base && !file.startsWith(base + sep)) {
      reply(403, 'outside the served directory');
      return;
    }
    stat(file).then(
      (info) => {
        if (!info.isFile()) {
          reply(404, 'not found');
          return;
        }
        response.writeHead(200, {
          'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
          'content-length': info.size,
          'cache-control': 'no-store',
        });
        if (request.method === 'HEAD') response.end();
        else createReadStream(file).pipe(response);
      },
      () => reply(404, 'not found'),
    );
  });
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => ready());
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    requested,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
