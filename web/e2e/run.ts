// The browser test runner: takes the UI's base URL and the admin token, launches chromium,
// runs the steps in order (each failure is reported with a screenshot, the run goes on),
// and prints one closing line "e2e: N passed, N failed". Exit code 1 on any failure.
//
//   node e2e/.build/run.js --base-url http://127.0.0.1:9080 --token-file /var/lib/tungate/admin-token
//   options: --token T | --token-file F, --expect-api live|unreachable, --screenshots DIR,
//            --chromium PATH (default $CHROMIUM or /usr/bin/chromium),
//            --plugin-wasm FILE (cidr-filter's module for the traffic steps; default: where
//            CI's plugin stage builds it), --only REGEX (run only the steps whose name
//            matches, after loading the UI and logging in: for working on some steps)
//
// Beside real traffic (deploy/ci/live-tungate.sh --traffic sets TUNGATE_TRAFFIC_VIP and
// friends) it runs the traffic steps of traffic.ts between logging in and the page tour.

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { launchBrowser, screenshot, type ApiExpectation, type E2EContext } from './harness.js';
import { PAGE_TOUR, visitDashboard, type Step } from './steps.js';
import { OPERATOR_STEPS } from './operator.js';
import { TRAFFIC_STEPS, trafficFromEnv, type TrafficSetup } from './traffic.js';

/** Where screenshots go unless told otherwise: web/e2e/screenshots. */
export const DEFAULT_SCREENSHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');

/** Where CI's plugin stage leaves cidr-filter's module (from web/e2e/.build). */
export const DEFAULT_PLUGIN_WASM = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../target/wasm-plugins/wasm32-unknown-unknown/plugin/cidr_filter.wasm',
);

/**
 * The steps of a live run: with traffic, the traffic steps replace the plain dashboard
 * visit, and the operator steps (operator.ts) follow them.
 */
export function liveSteps(traffic: TrafficSetup | null): readonly Step[] {
  if (!traffic) return PAGE_TOUR;
  const [loadUi, logIn, ...rest] = PAGE_TOUR;
  if (!loadUi || !logIn) throw new Error('the page tour starts with loading the UI and logging in');
  return [
    loadUi,
    logIn,
    ...TRAFFIC_STEPS,
    ...OPERATOR_STEPS,
    ...rest.filter((step) => step !== visitDashboard),
  ];
}

/** What one run needs. */
export interface RunOptions {
  baseUrl: string;
  token: string;
  expectApi: ApiExpectation;
  screenshotsDir: string;
  chromium: string;
  steps: readonly Step[];
  traffic?: TrafficSetup | null;
}

/** Counts of one run. */
export interface RunResult {
  passed: number;
  failed: number;
}

/** Runs `steps` in one fresh browser; never throws for a failing step. */
export async function runE2E(options: RunOptions): Promise<RunResult> {
  const browser = await launchBrowser(options.chromium);
  const ctx: E2EContext = {
    page: browser.page,
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    token: options.token,
    expectApi: options.expectApi,
    screenshotsDir: options.screenshotsDir,
    requests: browser.requests,
    pageErrors: browser.pageErrors,
    traffic: options.traffic ?? undefined,
  };
  const result: RunResult = { passed: 0, failed: 0 };
  try {
    for (const step of options.steps) {
      const started = Date.now();
      try {
        await step.run(ctx);
        result.passed += 1;
        console.log(`ok   ${step.name} (${Date.now() - started} ms)`);
      } catch (error) {
        result.failed += 1;
        const message = error instanceof Error ? error.message : String(error);
        console.log(
          `FAIL ${step.name} (${Date.now() - started} ms)\n     ${message.replace(/\n/g, '\n     ')}`,
        );
        const slug = step.name
          .replace(/[^A-Za-z0-9]+/g, '-')
          .replace(/^-|-$/g, '')
          .toLowerCase();
        await screenshot(ctx, `failed-${slug}`).then(
          (path) => console.log(`     screenshot: ${path}`),
          () => undefined,
        );
      }
    }
  } finally {
    await browser.close();
  }
  return result;
}

/** `steps` whose name matches the regular expression `only` (load and log in always run). */
export function onlySteps(steps: readonly Step[], only: string | undefined): readonly Step[] {
  if (!only) return steps;
  const pattern = new RegExp(only);
  return steps.filter((step, i) => i < 2 || pattern.test(step.name));
}

/** Prints the closing line and returns the process exit code. */
export function report(result: RunResult): number {
  console.log(`e2e: ${result.passed} passed, ${result.failed} failed`);
  return result.failed === 0 && result.passed > 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'base-url': { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'expect-api': { type: 'string', default: 'live' },
      screenshots: { type: 'string', default: DEFAULT_SCREENSHOTS },
      chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
      'plugin-wasm': { type: 'string', default: DEFAULT_PLUGIN_WASM },
      only: { type: 'string' },
    },
  });
  const baseUrl = values['base-url'];
  if (!baseUrl) throw new Error('--base-url is required, e.g. --base-url http://127.0.0.1:9080');
  const token =
    values.token ?? (values['token-file'] ? (await readFile(values['token-file'], 'utf8')).trim() : '');
  if (!token) throw new Error('give the admin token with --token or --token-file');
  const expectApi = values['expect-api'];
  if (expectApi !== 'live' && expectApi !== 'unreachable') {
    throw new Error(`--expect-api must be "live" or "unreachable", not "${expectApi}"`);
  }
  const traffic = trafficFromEnv(process.env, resolve(values['plugin-wasm'] ?? DEFAULT_PLUGIN_WASM));
  if (traffic) {
    console.log(
      `e2e: traffic for ${traffic.vip} to ${traffic.denyPrefix} (to be denied) and ${traffic.keepPrefix}`,
    );
  }
  const result = await runE2E({
    baseUrl,
    token,
    expectApi,
    screenshotsDir: resolve(values.screenshots ?? DEFAULT_SCREENSHOTS),
    chromium: values.chromium ?? '/usr/bin/chromium',
    steps: onlySteps(liveSteps(traffic), values.only),
    traffic,
  });
  return report(result);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`e2e: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(2);
    },
  );
}
