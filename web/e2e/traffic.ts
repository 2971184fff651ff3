// Round 2 of the browser test: the steps that need real traffic beside a live tungate
// (deploy/ci/live-tungate.sh --traffic). An RS namespace sends IPIP replies for one VIP to
// two client prefixes; the steps watch the dashboard move, upload cidr-filter.wasm through
// the Plugins page's file picker, bind it with a deny config for one prefix, see that
// prefix dropped (dashboard, GET /api/v1/stats and the client's own nftables counters) while
// the other keeps flowing, see a bad module refused, unbind, and see the drops stop. Every
// wait polls with a deadline; expected values come from the API, the client side or the
// file itself, never from the UI's own arithmetic. Each step loads its page afresh, so a
// dialog a failed step left open does not hide the next step's result.

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  check,
  openPage,
  readTestIdNumber,
  screenshot,
  waitForTestId,
  waitForTestIdNumber,
  type E2EContext,
} from './harness.js';
import type { Page } from 'playwright-core';
import { checkNetworkLine, type Step } from './steps.js';

const run = promisify(execFile);

/** What the traffic beside tungate is, from live-tungate.sh's environment. */
export interface TrafficSetup {
  /** The VIP whose replies flow. */
  vip: string;
  /** The client prefix the test denies with cidr-filter. */
  denyPrefix: string;
  /** The client prefix that keeps flowing. */
  keepPrefix: string;
  /** The cidr-filter module to upload. */
  pluginWasm: string;
  /** The client namespace with the per-prefix nftables counters, if any. */
  clientNs?: string | undefined;
  /** Its nftables table (`family name`), e.g. `inet tglive`. */
  clientCounters?: string | undefined;
}

/** The name the test uploads the module under. */
export const PLUGIN_NAME = 'cidr-filter';

/** How long a wait for traffic to show may take (the dashboard polls once a second). */
const TRAFFIC_TIMEOUT_MS = 15_000;

interface VipStatsBody {
  address: string;
  forwarded_packets: number;
  dropped: Record<string, number>;
}

interface StatsBody {
  vips: VipStatsBody[];
  bindings: { vip: string; position: number; plugin: string; verdicts: { pass?: number; drop?: number } }[];
}

/** An authenticated GET of the public API, parsed as JSON. */
async function apiGet<T>(ctx: E2EContext, path: string): Promise<T> {
  const response = await fetch(`${ctx.baseUrl}/api/v1${path}`, {
    headers: { authorization: `Bearer ${ctx.token}` },
  });
  const body = await response.text();
  check(response.ok, `GET /api/v1${path} answered ${response.status}: ${body}`);
  return JSON.parse(body) as T;
}

/** The traffic setup, or a clear failure when the run has none. */
function traffic(ctx: E2EContext): TrafficSetup {
  check(ctx.traffic, 'this step needs traffic (run through deploy/ci/live-tungate.sh --traffic)');
  return ctx.traffic;
}

/** This VIP's forwarded packets and plugin drops as GET /api/v1/stats reports them. */
async function apiVipCounters(ctx: E2EContext): Promise<{ forwarded: number; pluginDrops: number }> {
  const { vip } = traffic(ctx);
  const stats = await apiGet<StatsBody>(ctx, '/stats');
  const entry = stats.vips.find((v) => v.address === vip);
  check(entry, `GET /api/v1/stats has no entry for ${vip}: ${JSON.stringify(stats.vips)}`);
  return { forwarded: entry.forwarded_packets, pluginDrops: entry.dropped.plugin ?? 0 };
}

/** Polls the API until `accept` holds for this VIP's counters; returns them. */
async function waitForApiCounters(
  ctx: E2EContext,
  accept: (c: { forwarded: number; pluginDrops: number }) => boolean,
  what: string,
): Promise<{ forwarded: number; pluginDrops: number }> {
  const deadline = Date.now() + TRAFFIC_TIMEOUT_MS;
  let last = await apiVipCounters(ctx);
  while (!accept(last)) {
    check(
      Date.now() < deadline,
      `GET /api/v1/stats: ${what} within ${TRAFFIC_TIMEOUT_MS} ms (last ${JSON.stringify(last)})`,
    );
    await ctx.page.waitForTimeout(250);
    last = await apiVipCounters(ctx);
  }
  return last;
}

/** Packets that arrived in the client namespace per prefix (deny, keep), or null without one. */
async function clientArrivals(ctx: E2EContext): Promise<{ denied: number; kept: number } | null> {
  const setup = traffic(ctx);
  if (!setup.clientNs || !setup.clientCounters) return null;
  const [family, table] = setup.clientCounters.split(' ');
  const { stdout } = await run('ip', [
    'netns',
    'exec',
    setup.clientNs,
    'nft',
    '-j',
    'list',
    'counters',
    'table',
    family ?? 'inet',
    table ?? '',
  ]);
  const parsed = JSON.parse(stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
  const counters = new Map(
    parsed.nftables.flatMap((item) =>
      item.counter ? [[item.counter.name, item.counter.packets] as const] : [],
    ),
  );
  // live-tungate.sh: prefix_a counts the first prefix, prefix_b the second; the run denies
  // the first (see trafficFromEnv).
  const denied = counters.get('prefix_a');
  const kept = counters.get('prefix_b');
  check(denied !== undefined && kept !== undefined, `the client's counters are missing: ${stdout}`);
  return { denied, kept };
}

/**
 * Waits until the kept prefix received `atLeast` more packets at the client, and returns
 * how many the denied prefix received meanwhile (null without a client namespace).
 */
async function deniedWhileKeptFlows(ctx: E2EContext, atLeast: number): Promise<number | null> {
  const start = await clientArrivals(ctx);
  if (start === null) return null;
  const deadline = Date.now() + TRAFFIC_TIMEOUT_MS;
  for (;;) {
    await ctx.page.waitForTimeout(250);
    const now = await clientArrivals(ctx);
    check(now, 'the client counters went away');
    if (now.kept - start.kept >= atLeast) return now.denied - start.denied;
    check(
      Date.now() < deadline,
      `the client got only ${now.kept - start.kept} packets to ${traffic(ctx).keepPrefix} within ${TRAFFIC_TIMEOUT_MS} ms`,
    );
  }
}

/**
 * A second tab that keeps the dashboard open from the first traffic step to the last, so
 * its charts tell the whole story (traffic, the plugin's drops, the unbind) in one picture.
 */
let watcher: Page | null = null;

/** Picks `path` in the Plugins page's file picker, as an operator does. */
async function chooseFile(ctx: E2EContext, path: string): Promise<void> {
  const [chooser] = await Promise.all([
    ctx.page.waitForEvent('filechooser'),
    ctx.page.getByTestId('choose-file').click(),
  ]);
  await chooser.setFiles(path);
}

/**
 * Waits until the number at `testId` is known and positive, then until it rose by `by`;
 * returns both values.
 */
async function waitForRise(
  ctx: E2EContext,
  testId: string,
  by: number,
): Promise<{ from: number; to: number }> {
  const from = await waitForTestIdNumber(ctx, testId, (v) => v > 0, TRAFFIC_TIMEOUT_MS);
  const to = await waitForTestIdNumber(ctx, testId, (v) => v >= from + by, TRAFFIC_TIMEOUT_MS);
  return { from, to };
}

/** Waits until the chart `testId` holds `points` samples (one a second). */
async function waitForChartPoints(ctx: E2EContext, testId: string, points: number): Promise<void> {
  await ctx.page.waitForFunction(
    ([id, n]) =>
      Number(document.querySelector(`[data-testid="${id}"]`)?.getAttribute('data-points') ?? 0) >= n,
    [testId, points] as const,
    { timeout: TRAFFIC_TIMEOUT_MS },
  );
}

function vipId(ctx: E2EContext, what: string): string {
  return `${what}-${traffic(ctx).vip}`;
}

/** The dashboard shows the VIP's replies being forwarded, and the charts fill. */
export const trafficMovesDashboard: Step = {
  name: 'dashboard: the VIP forwards real traffic, counters and chart move',
  run: async (ctx) => {
    await openPage(ctx, 'dashboard');
    await waitForTestId(ctx, vipId(ctx, 'vip-row'), TRAFFIC_TIMEOUT_MS);
    const { from: first } = await waitForRise(ctx, vipId(ctx, 'vip-forwarded-packets'), 100);
    await waitForTestIdNumber(ctx, vipId(ctx, 'vip-pps'), (v) => v > 50, TRAFFIC_TIMEOUT_MS);
    const api = await apiVipCounters(ctx);
    check(
      api.forwarded >= first,
      `GET /api/v1/stats shows ${api.forwarded} forwarded, the dashboard showed ${first} before`,
    );
    // The chart draws one point per sample: wait for several before the picture.
    await waitForChartPoints(ctx, 'chart-pps', 6);
    await checkNetworkLine(ctx);
    await screenshot(ctx, 'dashboard-traffic');
    watcher = await ctx.page.context().newPage();
    watcher.on('pageerror', (error) => ctx.pageErrors.push(`dashboard tab: ${String(error)}`));
    // Signed in like an operator (a tab's token lives in that tab only).
    await watcher.goto(`${ctx.baseUrl}/#/login`);
    await watcher.getByTestId('login-token').fill(ctx.token);
    await watcher.getByTestId('login-submit').click();
    await watcher.waitForSelector('main[data-route="dashboard"]', { timeout: TRAFFIC_TIMEOUT_MS });
    await watcher
      .getByTestId(vipId(ctx, 'vip-row'))
      .waitFor({ state: 'visible', timeout: TRAFFIC_TIMEOUT_MS });
  },
};

/** Uploads cidr-filter.wasm through the file picker; sha256 and size match the file. */
export const uploadCidrFilter: Step = {
  name: 'plugins: upload cidr-filter.wasm through the file picker',
  run: async (ctx) => {
    const { pluginWasm } = traffic(ctx);
    const bytes = await readFile(pluginWasm);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await openPage(ctx, 'plugins');
    await waitForTestId(ctx, 'upload-card');
    await chooseFile(ctx, pluginWasm);
    await ctx.page.getByTestId('upload-name').fill(PLUGIN_NAME);
    await ctx.page.getByTestId('upload-submit').click();
    await waitForTestId(ctx, 'upload-result', TRAFFIC_TIMEOUT_MS);
    await waitForTestId(ctx, `plugin-row-${PLUGIN_NAME}`);
    const shown = await ctx.page.getByTestId(`plugin-sha-${PLUGIN_NAME}`).getAttribute('data-value');
    check(shown === sha256, `the page shows sha256 ${shown}, the file's is ${sha256}`);
    const size = await readTestIdNumber(ctx, `plugin-size-${PLUGIN_NAME}`);
    check(size === bytes.length, `the page shows ${size} bytes, the file has ${bytes.length}`);
    const stored = await apiGet<{ name: string; sha256: string }[]>(ctx, '/plugins');
    check(
      stored.some((p) => p.name === PLUGIN_NAME && p.sha256 === sha256),
      `GET /api/v1/plugins does not list ${PLUGIN_NAME} with the file's sha256: ${JSON.stringify(stored)}`,
    );
    await screenshot(ctx, 'plugins-uploaded');
  },
};

/** Binds it to the VIP with a deny config for one client prefix. */
export const bindDenyConfig: Step = {
  name: 'plugins: bind cidr-filter to the VIP, denying one client prefix',
  run: async (ctx) => {
    const { vip, denyPrefix } = traffic(ctx);
    await openPage(ctx, 'plugins');
    await ctx.page.getByTestId(`bind-${PLUGIN_NAME}`).click();
    await waitForTestId(ctx, 'bind-dialog');
    await ctx.page.getByTestId('bind-vip').selectOption(vip);
    await ctx.page.getByTestId('bind-position').selectOption('0');
    await ctx.page.getByTestId('bind-on-error-pass').check();
    await ctx.page.getByTestId('bind-config').fill(JSON.stringify({ deny: [denyPrefix] }, null, 2));
    await screenshot(ctx, 'plugins-bind-dialog');
    await ctx.page.getByTestId('bind-submit').click();
    await ctx.page.getByTestId('bind-dialog').waitFor({ state: 'detached', timeout: 10_000 });
    await waitForTestId(ctx, `unbind-${PLUGIN_NAME}-${vip}-0`);
    const stored = await apiGet<{ plugins?: { plugin: string; config?: unknown }[] }>(ctx, `/vips/${vip}`);
    const binding = stored.plugins?.[0];
    check(
      binding?.plugin === PLUGIN_NAME &&
        JSON.stringify(binding.config) === JSON.stringify({ deny: [denyPrefix] }),
      `GET /api/v1/vips/${vip} does not hold the binding: ${JSON.stringify(stored)}`,
    );
  },
};

/** The denied prefix is dropped by the plugin (dashboard, API, client) while the other flows. */
export const deniedPrefixDrops: Step = {
  name: 'dashboard: the denied prefix is dropped by the plugin, the other keeps flowing',
  run: async (ctx) => {
    const { vip, denyPrefix } = traffic(ctx);
    await openPage(ctx, 'dashboard');
    await waitForTestId(ctx, `binding-row-${vip}-0`, TRAFFIC_TIMEOUT_MS);
    const before = await apiVipCounters(ctx);
    // The dashboard: the VIP's drops and the plugin's drop verdicts rise...
    await waitForRise(ctx, vipId(ctx, 'vip-dropped-packets'), 100);
    await waitForTestIdNumber(ctx, `binding-drop-${vip}-0`, (v) => v > 100, TRAFFIC_TIMEOUT_MS);
    await waitForTestIdNumber(ctx, 'drop-total-plugin', (v) => v > 100, TRAFFIC_TIMEOUT_MS);
    // ...and so does GET /api/v1/stats, while forwarding goes on for the other prefix.
    const after = await waitForApiCounters(
      ctx,
      (c) => c.pluginDrops > before.pluginDrops + 100 && c.forwarded > before.forwarded + 100,
      'plugin drops and forwarded packets both rising by 100',
    );
    await waitForRise(ctx, vipId(ctx, 'vip-forwarded-packets'), 100);
    const stats = await apiGet<StatsBody>(ctx, '/stats');
    const binding = stats.bindings.find((b) => b.vip === vip && b.plugin === PLUGIN_NAME);
    check((binding?.verdicts.drop ?? 0) > 0, `the binding has no drop verdicts: ${JSON.stringify(binding)}`);
    check(
      (binding?.verdicts.pass ?? 0) > 0,
      `the binding passes nothing (the kept prefix): ${JSON.stringify(binding)}`,
    );
    // At the client: nothing more arrives for the denied prefix, the kept one still does.
    const leaked = await deniedWhileKeptFlows(ctx, 200);
    check(
      leaked === null || leaked === 0,
      `${leaked} packets to the denied ${denyPrefix} still reached the client`,
    );
    await waitForChartPoints(ctx, 'chart-drops', 6);
    await screenshot(ctx, 'dashboard-plugin-drops');
    console.log(
      `     API: plugin drops ${before.pluginDrops} -> ${after.pluginDrops}, forwarded ${before.forwarded} -> ${after.forwarded}`,
    );
  },
};

/** The drop table's capture button downloads a pcapng file of the plugin's drops. */
export const captureFromDropTable: Step = {
  name: "dashboard: the drop table's capture button downloads the plugin's drops as pcapng",
  run: async (ctx) => {
    await openPage(ctx, 'dashboard');
    await waitForTestId(ctx, 'capture-plugin', TRAFFIC_TIMEOUT_MS);
    const [download] = await Promise.all([
      ctx.page.waitForEvent('download', { timeout: TRAFFIC_TIMEOUT_MS }),
      ctx.page.getByTestId('capture-plugin').click(),
    ]);
    const path = await download.path();
    check(path !== null, 'the download has no file');
    const bytes = await readFile(path);
    check(
      bytes.length > 4 && bytes.readUInt32BE(0) === 0x0a0d0d0a,
      `the file does not start with the pcapng magic 0x0A0D0D0A: ${bytes.subarray(0, 8).toString('hex')}`,
    );
    const text = bytes.toString('latin1');
    check(text.includes('drop_reason=plugin'), 'no packet comment says drop_reason=plugin');
    check(text.includes(`plugin=${PLUGIN_NAME}`), `no packet comment names the plugin ${PLUGIN_NAME}`);
    console.log(`     capture: ${download.suggestedFilename()}, ${bytes.length} bytes`);
  },
};

/** Random bytes named bad.wasm are refused, with the validator's message shown. */
export const badModuleRefused: Step = {
  name: "plugins: a bad module is refused with the validator's message",
  run: async (ctx) => {
    const dir = await mkdtemp(join(tmpdir(), 'tungate-e2e-bad-'));
    const bad = join(dir, 'bad.wasm');
    try {
      await writeFile(bad, randomBytes(4096));
      await openPage(ctx, 'plugins');
      await chooseFile(ctx, bad);
      await ctx.page.getByTestId('upload-submit').click();
      await waitForTestId(ctx, 'upload-error', TRAFFIC_TIMEOUT_MS);
      const text = (await ctx.page.getByTestId('upload-error').innerText()).trim();
      check(
        /wasm|module|magic|valid/i.test(text),
        `the refusal does not carry the validator's message: "${text}"`,
      );
      const stored = await apiGet<{ name: string }[]>(ctx, '/plugins');
      check(!stored.some((p) => p.name === 'bad'), 'the bad module was stored anyway');
      await screenshot(ctx, 'plugins-refused');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};

/** Unbinding the plugin stops the drops; the denied prefix reaches the client again. */
export const unbindStopsDrops: Step = {
  name: 'plugins: unbind, and the drops stop rising',
  run: async (ctx) => {
    const { vip } = traffic(ctx);
    await openPage(ctx, 'plugins');
    await ctx.page.getByTestId(`unbind-${PLUGIN_NAME}-${vip}-0`).click();
    await waitForTestId(ctx, 'confirm-dialog');
    await ctx.page.getByTestId('confirm-submit').click();
    await ctx.page.getByTestId('confirm-dialog').waitFor({ state: 'detached', timeout: 10_000 });
    await ctx.page
      .getByTestId(`unbind-${PLUGIN_NAME}-${vip}-0`)
      .waitFor({ state: 'detached', timeout: 10_000 });
    const stored = await apiGet<{ plugins?: unknown[] }>(ctx, `/vips/${vip}`);
    check((stored.plugins ?? []).length === 0, `the VIP still has bindings: ${JSON.stringify(stored)}`);
    // The API: once the unbind is in effect (workers switch between batches: let a few
    // packets pass first), forwarding goes on and plugin drops stand still.
    const unbound = await apiVipCounters(ctx);
    const settled = await waitForApiCounters(
      ctx,
      (c) => c.forwarded > unbound.forwarded + 50,
      'forwarded rising by 50',
    );
    const later = await waitForApiCounters(
      ctx,
      (c) => c.forwarded > settled.forwarded + 300,
      'forwarded rising by 300',
    );
    check(
      later.pluginDrops === settled.pluginDrops,
      `plugin drops still rose after the unbind: ${settled.pluginDrops} -> ${later.pluginDrops}`,
    );
    // The dashboard shows the same: its drop counter stands still while forwarding rises.
    await openPage(ctx, 'dashboard');
    await waitForTestId(ctx, vipId(ctx, 'vip-row'), TRAFFIC_TIMEOUT_MS);
    const dropped = await waitForTestIdNumber(
      ctx,
      vipId(ctx, 'vip-dropped-packets'),
      (v) => v > 0,
      TRAFFIC_TIMEOUT_MS,
    );
    await waitForRise(ctx, vipId(ctx, 'vip-forwarded-packets'), 300);
    const droppedLater = await readTestIdNumber(ctx, vipId(ctx, 'vip-dropped-packets'));
    check(
      droppedLater === dropped,
      `the dashboard's drops still rose after the unbind: ${dropped} -> ${droppedLater}`,
    );
    const apiNow = await apiVipCounters(ctx);
    check(
      droppedLater === apiNow.pluginDrops,
      `the dashboard shows ${droppedLater} drops for ${vip}, GET /api/v1/stats ${apiNow.pluginDrops} plugin drops`,
    );
    // At the client, the once-denied prefix arrives again.
    const start = await clientArrivals(ctx);
    if (start !== null) {
      const deadline = Date.now() + TRAFFIC_TIMEOUT_MS;
      for (;;) {
        const now = await clientArrivals(ctx);
        if (now && now.denied > start.denied + 100) break;
        check(
          Date.now() < deadline,
          'the once-denied prefix does not reach the client again after the unbind',
        );
        await ctx.page.waitForTimeout(250);
      }
    }
  },
};

/** The VIP dialog's `shared` checkbox is saved, shown, and read back from the API. */
export const markVipShared: Step = {
  name: 'peers and VIPs: mark the VIP shared in its dialog',
  run: async (ctx) => {
    const { vip } = traffic(ctx);
    await openPage(ctx, 'peers-vips');
    await waitForTestId(ctx, `vip-config-row-${vip}`);
    await ctx.page.getByRole('button', { name: `Edit VIP ${vip}` }).click();
    await waitForTestId(ctx, 'vip-dialog');
    const box = ctx.page.getByTestId('vip-shared');
    check(!(await box.isChecked()), `${vip} starts as not shared, yet the box is ticked`);
    await box.check();
    await waitForTestId(ctx, 'vip-shared-notice');
    await screenshot(ctx, 'vip-dialog');
    await ctx.page.getByTestId('vip-save').click();
    await ctx.page.getByTestId('vip-dialog').waitFor({ state: 'detached', timeout: 10_000 });
    await waitForTestId(ctx, `vip-shared-${vip}`);
    const stored = await apiGet<{ shared?: boolean }>(ctx, `/vips/${vip}`);
    check(stored.shared === true, `GET /api/v1/vips/${vip} does not say shared: ${JSON.stringify(stored)}`);
  },
};

/**
 * Two operators edit the same VIP: tab A opens its dialog, tab B (another sign-in) saves a
 * change first; A's save is then refused as stale (the UI sent the revision it loaded as
 * If-Match) and says so, and B's change is what the API keeps. Also: the UI is served with
 * its CSP, X-Frame-Options and Referrer-Policy (a blocked resource fails the run's last step).
 */
export const staleEditRefused: Step = {
  name: 'peers and VIPs: a stale form is refused, not saved over a newer change',
  run: async (ctx) => {
    const { vip } = traffic(ctx);
    const index = await fetch(`${ctx.baseUrl}/`);
    check(
      /frame-ancestors 'none'/.test(index.headers.get('content-security-policy') ?? ''),
      `GET / has no CSP with frame-ancestors: ${index.headers.get('content-security-policy')}`,
    );
    check(index.headers.get('x-frame-options') === 'DENY', 'GET / has no X-Frame-Options: DENY');
    check(
      index.headers.get('referrer-policy') === 'no-referrer',
      'GET / has no Referrer-Policy: no-referrer',
    );

    const shared = async () => (await apiGet<{ shared?: boolean }>(ctx, `/vips/${vip}`)).shared === true;
    const before = await shared();
    try {
      // Tab A: the dialog, opened from what it loaded now.
      await openPage(ctx, 'peers-vips');
      await waitForTestId(ctx, `vip-config-row-${vip}`);
      await ctx.page.getByRole('button', { name: `Edit VIP ${vip}` }).click();
      await waitForTestId(ctx, 'vip-dialog');
      const boxA = ctx.page.getByTestId('vip-shared');
      check((await boxA.isChecked()) === before, 'tab A shows another shared flag than the API');

      // Tab B: another operator signs in and saves the opposite flag first.
      const tabB = await ctx.page.context().newPage();
      try {
        const other: E2EContext = { ...ctx, page: tabB };
        await openPage(other, 'login');
        await tabB.getByTestId('login-token').fill(ctx.token);
        await tabB.getByTestId('login-submit').click();
        await tabB.waitForSelector('main[data-route="dashboard"]', { timeout: 10_000 });
        await openPage(other, 'peers-vips');
        await waitForTestId(other, `vip-config-row-${vip}`);
        await tabB.getByRole('button', { name: `Edit VIP ${vip}` }).click();
        await waitForTestId(other, 'vip-dialog');
        await tabB.getByTestId('vip-shared').setChecked(!before);
        await tabB.getByTestId('vip-save').click();
        await tabB.getByTestId('vip-dialog').waitFor({ state: 'detached', timeout: 10_000 });
      } finally {
        await tabB.close();
      }
      check((await shared()) === !before, `tab B's save did not reach the API (shared is still ${before})`);

      // Tab A saves its stale form (the flag as it was): refused, and it says why.
      await ctx.page.getByTestId('vip-save').click();
      await waitForTestId(ctx, 'form-errors');
      const text = (await ctx.page.getByTestId('form-errors').innerText()).trim();
      check(
        text.includes('Changed by someone else since you opened it') && text.includes('reload'),
        `tab A's stale save shows "${text}", not the stale-form message`,
      );
      await screenshot(ctx, 'vip-dialog-stale');
      check((await shared()) === !before, "tab A's stale save overwrote tab B's change");
    } finally {
      // Leave no dialog open for the next steps.
      await openPage(ctx, 'dashboard');
    }
  },
};

/**
 * Peers and VIPs: the peer that sends (rs1) is shown alive with when it was last heard from;
 * live-tungate.sh's second peer, `quiet` (nothing is ever sent from it, `silent_after = "1s"`),
 * is shown with the silent warning, as GET /api/v1/stats says.
 */
export const peerLiveness: Step = {
  name: 'peers and VIPs: a sending peer is alive, a quiet one is shown silent',
  run: async (ctx) => {
    await openPage(ctx, 'peers-vips');
    const silentOf = (name: string) =>
      ctx.page.getByTestId(`peer-liveness-${name}`).getAttribute('data-silent', { timeout: 10_000 });
    const deadline = Date.now() + 15_000;
    let shown: [string | null, string | null] = [null, null];
    while (Date.now() < deadline) {
      shown = [await silentOf('rs1'), await silentOf('quiet')];
      if (shown[0] === 'false' && shown[1] === 'true') break;
      await ctx.page.waitForTimeout(250);
    }
    check(
      shown[0] === 'false' && shown[1] === 'true',
      `rs1 shown silent=${shown[0]}, quiet shown silent=${shown[1]}; expected false, true`,
    );
    const text = await ctx.page.getByTestId('peer-liveness-quiet').innerText();
    check(/silent/.test(text) && /never heard from/.test(text), `quiet's cell says ${JSON.stringify(text)}`);
    const stats = await apiGet<{ peers: { name: string; silent: boolean; received_packets: number }[] }>(
      ctx,
      '/stats',
    );
    const rs1 = stats.peers.find((p) => p.name === 'rs1');
    const quiet = stats.peers.find((p) => p.name === 'quiet');
    check(
      rs1 !== undefined && rs1.received_packets > 0 && !rs1.silent && quiet?.silent === true,
      `GET /api/v1/stats disagrees: ${JSON.stringify(stats.peers)}`,
    );
    await screenshot(ctx, 'peers-liveness');
  },
};

/** The dashboard tab open since the first step: its charts show the whole run. */
export const dashboardStory: Step = {
  name: 'dashboard: the charts of the whole run (traffic, plugin drops, unbind)',
  run: async (ctx) => {
    const tab = watcher;
    check(tab, 'the dashboard tab was not opened (the first traffic step failed)');
    try {
      // It saw the drops: its VIP drop counter matches the API's plugin drops.
      const shown = Number(
        await tab.getByTestId(vipId(ctx, 'vip-dropped-packets')).getAttribute('data-value'),
      );
      const api = await apiVipCounters(ctx);
      check(
        shown === api.pluginDrops && shown > 0,
        `the dashboard tab shows ${shown} drops for ${traffic(ctx).vip}, GET /api/v1/stats ${api.pluginDrops}`,
      );
      await tab.bringToFront();
      const path = join(ctx.screenshotsDir, 'dashboard.png');
      await tab.screenshot({ path, fullPage: true, animations: 'disabled' });
    } finally {
      await tab.close();
      watcher = null;
    }
  },
};

/** The traffic steps, in the order they depend on each other. */
export const TRAFFIC_STEPS: readonly Step[] = [
  trafficMovesDashboard,
  uploadCidrFilter,
  bindDenyConfig,
  deniedPrefixDrops,
  captureFromDropTable,
  badModuleRefused,
  unbindStopsDrops,
  markVipShared,
  staleEditRefused,
  peerLiveness,
  dashboardStory,
];

/** The traffic setup from live-tungate.sh's environment, or null when it ran without. */
export function trafficFromEnv(env: NodeJS.ProcessEnv, pluginWasm: string): TrafficSetup | null {
  const vip = env.TUNGATE_TRAFFIC_VIP;
  if (!vip) return null;
  const [denyPrefix, keepPrefix] = (env.TUNGATE_TRAFFIC_PREFIXES ?? '').split(/\s+/).filter(Boolean);
  if (!denyPrefix || !keepPrefix) {
    throw new Error(
      'TUNGATE_TRAFFIC_PREFIXES must name two client prefixes, e.g. "198.51.100.0/24 203.0.113.0/24"',
    );
  }
  return {
    vip,
    denyPrefix,
    keepPrefix,
    pluginWasm,
    clientNs: env.TUNGATE_CLIENT_NS,
    clientCounters: env.TUNGATE_CLIENT_COUNTERS,
  };
}
