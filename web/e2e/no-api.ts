// Round 1 of the browser test: serves the built UI (web/dist) from a static server with no
// API behind it and runs the page tour expecting the "API unreachable" state everywhere.
// This proves the harness (chromium, steps, screenshots) and a real state the UI must
// handle. Needs `npm run build` first.

import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SCREENSHOTS, report, runE2E } from './run.js';
import { startStaticServer } from './static-server.js';
import { PAGE_TOUR } from './steps.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '..', '..', 'dist');

async function main(): Promise<number> {
  try {
    await access(join(dist, 'index.html'));
  } catch {
    throw new Error(`${dist}/index.html is missing: run "npm run build" first`);
  }
  const server = await startStaticServer(dist);
  // A made-up token: no API exists to accept it; the run checks it never reaches a URL.
  const token = randomBytes(32).toString('hex');
  try {
    const result = await runE2E({
      baseUrl: server.url,
      token,
      expectApi: 'unreachable',
      // Apart from the live run's pictures (the same page names, other states).
      screenshotsDir: join(DEFAULT_SCREENSHOTS, 'no-api'),
      chromium: process.env.CHROMIUM ?? '/usr/bin/chromium',
      steps: PAGE_TOUR,
    });
    const apiCalls = server.requested.filter((p) => p.startsWith('/api/v1/'));
    const leaked = server.requested.filter((p) => p.includes(token));
    console.log(`static server: ${server.requested.length} requests, ${apiCalls.length} to /api/v1/`);
    if (apiCalls.length === 0 || leaked.length > 0) {
      console.log(
        apiCalls.length === 0
          ? 'FAIL the UI never asked the API for anything'
          : `FAIL the token reached the server in a path: ${leaked[0]}`,
      );
      result.failed += 1;
    } else {
      result.passed += 1;
    }
    return report(result);
  } finally {
    await server.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`e2e: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
