// The browser harness: launches Debian's chromium through playwright-core with the flags
// that work on these hosts and a fresh profile, and gives steps the helpers they share
// (go to a page, read a `data-testid` number, wait until it changes, take a screenshot).
// It records every request and page error so steps can assert on them. It never talks to
// any address but the UI's own origin.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page, type Request } from 'playwright-core';
import type { TrafficSetup } from './traffic.js';

/** Flags for Debian's chromium in a container/VM without a GPU or a user namespace sandbox. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
] as const;

/** The laptop screen the UI must be usable on. */
export const VIEWPORT = { width: 1366, height: 768 } as const;

/** What the UI should find behind it. */
export type ApiExpectation = 'live' | 'unreachable';

/** Everything a step can use. */
export interface E2EContext {
  page: Page;
  /** The UI's origin, e.g. `http://127.0.0.1:9080` (no trailing slash). */
  baseUrl: string;
  token: string;
  expectApi: ApiExpectation;
  screenshotsDir: string;
  /** Every request the page made, in order. */
  requests: Request[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** The real traffic beside tungate (live-tungate.sh --traffic), if any. */
  traffic?: TrafficSetup | undefined;
}

/** A browser with its fresh profile, closed and removed by `close()`. */
export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  requests: Request[];
  pageErrors: string[];
  close(): Promise<void>;
}

/** Launches chromium headless with a fresh `--user-data-dir` and one page at 1366×768. */
export async function launchBrowser(executablePath: string): Promise<BrowserSession> {
  const profile = await mkdtemp(join(tmpdir(), 'tungate-e2e-profile-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: VIEWPORT,
      deviceScaleFactor: 1,
      locale: 'en-US',
      timezoneId: 'UTC',
    });
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw new Error(
      `could not start chromium at ${executablePath} (install Debian's chromium package, or pass --chromium PATH): ${String(error)}`,
    );
  }
  // A step that waits for something that never comes fails in 15 s, not playwright's 30.
  context.setDefaultTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const requests: Request[] = [];
  const pageErrors: string[] = [];
  context.on('request', (request) => requests.push(request));
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  // A resource or style the Content-Security-Policy blocked is reported on the console only:
  // count it as a page error, in every tab of the run.
  const watchCsp = (p: Page) =>
    p.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) pageErrors.push(`CSP: ${message.text()}`);
    });
  watchCsp(page);
  context.on('page', watchCsp);
  return {
    context,
    page,
    requests,
    pageErrors,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** The pages of the UI and their fragments (mirrors src/router.ts). */
export const PAGES = {
  dashboard: '#/',
  'peers-vips': '#/peers-vips',
  plugins: '#/plugins',
  login: '#/login',
} as const;

/**
 * Loads the UI afresh at a page's URL fragment (page names only: never a secret in a URL).
 * Going through about:blank makes it a full load even when only the fragment differs.
 */
export async function openPage(ctx: E2EContext, page: keyof typeof PAGES): Promise<void> {
  await ctx.page.goto('about:blank');
  await ctx.page.goto(`${ctx.baseUrl}/${PAGES[page]}`);
  await ctx.page.waitForSelector(`main[data-route]`);
}

/** Goes to a page the way an operator does: by its link in the top bar. */
export async function clickNav(
  ctx: E2EContext,
  route: 'dashboard' | 'config' | 'plugins' | 'fleet',
): Promise<void> {
  await ctx.page.getByTestId(`nav-${route}`).click();
  await ctx.page.waitForSelector(`main[data-route="${route}"]`);
}

/** Waits until the element with this test id is visible. */
export async function waitForTestId(ctx: E2EContext, testId: string, timeoutMs = 10_000): Promise<void> {
  await ctx.page.getByTestId(testId).first().waitFor({ state: 'visible', timeout: timeoutMs });
}

/**
 * The exact number shown by a `data-testid` element (its `data-value`, see
 * src/components/Value.tsx). Throws when the element is missing or its value unknown.
 */
export async function readTestIdNumber(ctx: E2EContext, testId: string): Promise<number> {
  const raw = await ctx.page.getByTestId(testId).first().getAttribute('data-value', { timeout: 10_000 });
  if (raw === null || raw === '' || Number.isNaN(Number(raw))) {
    throw new Error(`data-testid="${testId}" has no known number (data-value=${JSON.stringify(raw)})`);
  }
  return Number(raw);
}

/** The `data-testid` element's `data-value`, or null when it is missing or unknown. */
async function tryReadNumber(ctx: E2EContext, testId: string): Promise<number | null> {
  const locator = ctx.page.getByTestId(testId).first();
  if ((await locator.count()) === 0) return null;
  const raw = await locator.getAttribute('data-value');
  return raw === null || raw === '' || Number.isNaN(Number(raw)) ? null : Number(raw);
}

/**
 * Waits until the number at `testId` satisfies `accept` (polling every 200 ms), and returns
 * it; throws with the last value seen after `timeoutMs`.
 */
export async function waitForTestIdNumber(
  ctx: E2EContext,
  testId: string,
  accept: (value: number) => boolean,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: number | null = null;
  while (Date.now() < deadline) {
    last = await tryReadNumber(ctx, testId);
    if (last !== null && accept(last)) return last;
    await ctx.page.waitForTimeout(200);
  }
  throw new Error(
    `data-testid="${testId}" did not reach the expected value within ${timeoutMs} ms (last: ${last})`,
  );
}

/** Waits until the number at `testId` differs from what it is now (or from `from`). */
export async function waitForTestIdChange(
  ctx: E2EContext,
  testId: string,
  options: { from?: number; timeoutMs?: number } = {},
): Promise<{ before: number; after: number }> {
  const before = options.from ?? (await readTestIdNumber(ctx, testId));
  const after = await waitForTestIdNumber(ctx, testId, (v) => v !== before, options.timeoutMs);
  return { before, after };
}

/** Saves a screenshot of the whole page as `<screenshotsDir>/<name>.png`; returns its path. */
export async function screenshot(ctx: E2EContext, name: string): Promise<string> {
  await mkdir(ctx.screenshotsDir, { recursive: true });
  const path = join(ctx.screenshotsDir, `${name}.png`);
  await ctx.page.screenshot({ path, fullPage: true, animations: 'disabled' });
  return path;
}

/** Fails the step with `message` unless `condition` holds. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}
