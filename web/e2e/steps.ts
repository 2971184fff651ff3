// The browser test's steps, one function each, run in order by run.ts. Each step opens
// what it needs itself, so one failing step does not hide the others. Round 1 runs them
// against a UI with no API behind it (expectApi 'unreachable'); round 2 adds the traffic
// steps (upload cidr-filter.wasm, bind with a deny config, watch the drop counters) against
// a running tungate, built from the same helpers.

import { check, clickNav, openPage, screenshot, waitForTestId, type E2EContext } from './harness.js';

/** One named step of the browser test. */
export interface Step {
  name: string;
  run: (ctx: E2EContext) => Promise<void>;
}

async function attribute(ctx: E2EContext, testId: string, name: string): Promise<string | null> {
  return ctx.page.getByTestId(testId).first().getAttribute(name, { timeout: 10_000 });
}

/** Asserts the API-unreachable state a page must show when no API answers. */
async function expectUnreachable(ctx: E2EContext, loadErrorTestId: string): Promise<void> {
  await waitForTestId(ctx, 'api-unreachable');
  check(
    (await attribute(ctx, 'connection-state', 'data-state')) === 'unreachable',
    'the header does not show the API as unreachable',
  );
  await waitForTestId(ctx, loadErrorTestId);
  const kind = await attribute(ctx, loadErrorTestId, 'data-kind');
  check(kind === 'unreachable', `the page's error is of kind ${kind}, expected "unreachable"`);
}

/** The UI loads from the origin and draws its frame. */
export const loadUi: Step = {
  name: 'the UI loads and draws its navigation',
  run: async (ctx) => {
    await openPage(ctx, 'dashboard');
    check((await ctx.page.title()) === 'tungate admin', `unexpected title "${await ctx.page.title()}"`);
    for (const nav of ['nav-dashboard', 'nav-config', 'nav-plugins']) await waitForTestId(ctx, nav);
  },
};

/** Signs in on the login page; with no API, the check must fail as "unreachable". */
export const logIn: Step = {
  name: 'log in with the token',
  run: async (ctx) => {
    await openPage(ctx, 'login');
    await ctx.page.getByTestId('login-token').fill(ctx.token);
    if (ctx.expectApi === 'live') await screenshot(ctx, 'login');
    await ctx.page.getByTestId('login-submit').click();
    if (ctx.expectApi === 'live') {
      await ctx.page.waitForSelector('main[data-route="dashboard"]', { timeout: 10_000 });
      await waitForTestId(ctx, 'sign-out');
    } else {
      await waitForTestId(ctx, 'login-error');
      const kind = await attribute(ctx, 'login-error', 'data-kind');
      check(kind === 'unreachable', `the login error is of kind ${kind}, expected "unreachable"`);
      const stored = await ctx.page.evaluate(() => Object.keys(window.sessionStorage));
      check(stored.length === 0, 'a token the API never accepted was stored');
      await screenshot(ctx, 'login');
    }
    const auth = ctx.requests.filter((r) => new URL(r.url()).pathname === '/api/v1/auth');
    check(auth.length > 0, 'the login did not call GET /api/v1/auth');
    const header = await auth[auth.length - 1]?.headerValue('authorization');
    check(header === `Bearer ${ctx.token}`, 'GET /api/v1/auth did not carry the token as a bearer header');
  },
};

/** The dashboard's networking line says what GET /api/v1/status says of the reconciler. */
export async function checkNetworkLine(ctx: E2EContext): Promise<void> {
  const response = await fetch(`${ctx.baseUrl}/api/v1/status`, {
    headers: { authorization: `Bearer ${ctx.token}` },
  });
  const status = (await response.json()) as { network?: { in_sync: boolean } | null };
  check(status.network != null, 'GET /api/v1/status has no network object while tungate reconciles');
  const shown = await attribute(ctx, 'status-network', 'data-value');
  check(
    shown === String(status.network.in_sync),
    `the dashboard shows networking in sync = ${shown}; the API says ${status.network.in_sync}`,
  );
}

/** The dashboard: live status and charts, or the unreachable state. */
export const visitDashboard: Step = {
  name: 'dashboard',
  run: async (ctx) => {
    await clickNav(ctx, 'dashboard');
    await waitForTestId(ctx, 'status-panel');
    if (ctx.expectApi === 'live') {
      await ctx.page.waitForFunction(
        () => document.querySelector('[data-testid="status-ready"]')?.getAttribute('data-value') !== '',
      );
      await ctx.page.waitForSelector('[data-testid="chart-pps"], [data-testid="empty-vips"]');
      await checkNetworkLine(ctx);
      // Let a few one-second samples reach the charts before the picture.
      await ctx.page.waitForTimeout(3500);
    } else {
      await expectUnreachable(ctx, 'stats-error');
    }
    await screenshot(ctx, 'dashboard');
  },
};

/** Peers and VIPs: both lists, or the unreachable state. */
export const visitPeersAndVips: Step = {
  name: 'peers and VIPs',
  run: async (ctx) => {
    await clickNav(ctx, 'config');
    if (ctx.expectApi === 'live') {
      await waitForTestId(ctx, 'peers-card');
      await waitForTestId(ctx, 'vips-card');
    } else {
      await expectUnreachable(ctx, 'load-error');
    }
    await screenshot(ctx, 'peers-vips');
  },
};

/** Plugins: the upload panel always, the list or the unreachable state. */
export const visitPlugins: Step = {
  name: 'plugins',
  run: async (ctx) => {
    await clickNav(ctx, 'plugins');
    await waitForTestId(ctx, 'upload-card');
    await waitForTestId(ctx, 'dropzone');
    if (ctx.expectApi === 'live') {
      await ctx.page.waitForSelector('[data-testid="plugins-table"], [data-testid="empty-plugins"]');
    } else {
      await expectUnreachable(ctx, 'load-error');
    }
    await screenshot(ctx, 'plugins');
  },
};

/**
 * Fleet: against a gateway started without `--fleet` (as the live run starts it) the page
 * says plainly that it is not in a fleet, as `GET /api/v1/status` says (`fleet` null) and
 * `GET /api/v1/fleet` answers 404; the note on per-gateway plugin state is always there.
 */
export const visitFleet: Step = {
  name: 'fleet',
  run: async (ctx) => {
    await clickNav(ctx, 'fleet');
    if (ctx.expectApi === 'live') {
      const headers = { authorization: `Bearer ${ctx.token}` };
      const status = (await (await fetch(`${ctx.baseUrl}/api/v1/status`, { headers })).json()) as {
        fleet?: unknown;
      };
      const listed = await fetch(`${ctx.baseUrl}/api/v1/fleet`, { headers });
      if (status.fleet == null) {
        check(
          listed.status === 404,
          `GET /api/v1/fleet answered ${listed.status} without --fleet, expected 404`,
        );
        await waitForTestId(ctx, 'fleet-none');
        const text = (await ctx.page.getByTestId('fleet-none').textContent()) ?? '';
        check(text.includes('not in a fleet'), `the page does not say "not in a fleet": ${text}`);
        check((await ctx.page.getByTestId('fleet-table').count()) === 0, 'a fleet table without a fleet');
      } else {
        await waitForTestId(ctx, 'fleet-self');
        await fleetRowsMatchTheApi(ctx, (await listed.json()) as ListedFleet);
      }
      const note = (await ctx.page.getByTestId('fleet-plugin-state-note').textContent()) ?? '';
      check(
        note.includes('per gateway') && note.includes('N × the configured rate'),
        `plugin state note: ${note}`,
      );
    } else {
      await expectUnreachable(ctx, 'fleet-error');
    }
    await screenshot(ctx, 'fleet');
  },
};

/** What the fleet step reads of `GET /api/v1/fleet`. */
interface ListedFleet {
  gateways: { member: string; ready: boolean; not_ready?: string | null }[];
}

/**
 * In a fleet: every registered gateway has a row whose state cell says what the API says
 * (`ready`, or `NOT READY: reason`). With `TUNGATE_E2E_NOT_READY=MEMBER` (a test that made
 * that gateway not ready) that row must also be one of them, with a reason.
 */
async function fleetRowsMatchTheApi(ctx: E2EContext, fleet: ListedFleet): Promise<void> {
  await waitForTestId(ctx, 'fleet-table');
  const expectNotReady = process.env.TUNGATE_E2E_NOT_READY;
  if (expectNotReady) {
    const row = fleet.gateways.find((g) => g.member === expectNotReady);
    check(
      row !== undefined && !row.ready && !!row.not_ready,
      `the API lists ${expectNotReady} ready or without a reason`,
    );
  }
  for (const g of fleet.gateways) {
    const want = g.ready ? 'ready' : g.not_ready ? `NOT READY: ${g.not_ready}` : 'NOT READY';
    const cell = ctx.page.locator(
      `[data-testid="fleet-row"][data-member="${g.member}"] [data-testid="fleet-ready"]`,
    );
    await cell.waitFor({ timeout: 10_000 });
    const text = ((await cell.textContent()) ?? '').trim();
    check(text === want, `fleet row ${g.member}: "${text}", the API says "${want}"`);
  }
}

/** Keyboard only: skip link first, then the page links, and Enter follows them. */
export const keyboardNavigation: Step = {
  name: 'keyboard: skip link, then page links',
  run: async (ctx) => {
    await openPage(ctx, 'dashboard');
    const focused = () =>
      ctx.page.evaluate(() => {
        const el = document.activeElement;
        return el?.getAttribute('data-testid') ?? el?.className ?? el?.tagName ?? '';
      });
    await ctx.page.keyboard.press('Tab');
    check(
      (await focused()) === 'skip-link',
      `first Tab focused "${await focused()}", expected the skip link`,
    );
    await ctx.page.keyboard.press('Enter');
    check(
      (await ctx.page.evaluate(() => document.activeElement?.id)) === 'main',
      'the skip link did not move focus to the content',
    );
    check(ctx.page.url().endsWith('#/'), `the skip link changed the route: ${ctx.page.url()}`);
    await openPage(ctx, 'dashboard');
    for (const expected of ['skip-link', 'nav-dashboard', 'nav-config', 'nav-plugins']) {
      await ctx.page.keyboard.press('Tab');
      check((await focused()) === expected, `Tab focused "${await focused()}", expected "${expected}"`);
    }
    await ctx.page.keyboard.press('Enter');
    await ctx.page.waitForSelector('main[data-route="plugins"]');
  },
};

/** The token never shows up in a URL, and nothing is fetched from another origin. */
export const tokenStaysOutOfUrls: Step = {
  name: 'no token in any URL, no request off the origin',
  run: async (ctx) => {
    check(ctx.requests.length > 0, 'no request was recorded');
    for (const request of ctx.requests) {
      const url = request.url();
      check(!url.includes(ctx.token), `the token appears in a request URL: ${url}`);
      check(
        url.startsWith(`${ctx.baseUrl}/`) || url.startsWith('data:'),
        `a request left the UI's origin (no CDN allowed): ${url}`,
      );
    }
    check(!ctx.page.url().includes(ctx.token), 'the token appears in the page URL');
  },
};

/** No uncaught exception happened in the page during the run. */
export const noPageErrors: Step = {
  name: 'no uncaught errors in the page',
  run: async (ctx) => {
    check(ctx.pageErrors.length === 0, `uncaught page errors:\n${ctx.pageErrors.join('\n')}`);
  },
};

/** Round 1's whole run: every page, both API expectations. */
export const PAGE_TOUR: readonly Step[] = [
  loadUi,
  logIn,
  visitDashboard,
  visitPeersAndVips,
  visitPlugins,
  visitFleet,
  keyboardNavigation,
  tokenStaysOutOfUrls,
  noPageErrors,
];
