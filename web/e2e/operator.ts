// Round 2's operator steps (issue 17 items 1, 2 and 9) against a live tungate with traffic:
// a 420 px window keeps navigation and buttons on screen; the dashboard's history survives
// going to another page and back; the Add VIP dialog picks the peer; 600 VIPs applied and
// removed again leave only the configured VIPs in the table and the chart legends; 10 000
// VIPs show a bounded page with a working address search. Configuration changes go through
// the real API (PUT /api/v1/config) and every step that changes it puts the original back.
// Expected values come from the API, never from the UI's own arithmetic; waits poll with
// deadlines, nothing asserts on time.

import {
  check,
  clickNav,
  openPage,
  screenshot,
  VIEWPORT,
  waitForTestId,
  waitForTestIdNumber,
  type E2EContext,
} from './harness.js';
import type { Step } from './steps.js';

/** The narrow window the layout must survive. */
const NARROW = { width: 420, height: 820 } as const;
/** How long a configuration change may take to show (the dashboard polls once a second). */
const SHOW_TIMEOUT_MS = 20_000;

interface PeerBody {
  name: string;
  address: string;
  vips?: string[];
  tunnel?: string;
  port?: number;
  key?: number;
}
interface ConfigBody {
  peers: PeerBody[];
  vips?: { address: string }[];
  [key: string]: unknown;
}

async function api<T>(ctx: E2EContext, method: 'GET' | 'PUT', path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${ctx.baseUrl}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ctx.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await response.text();
  check(response.ok, `${method} /api/v1${path} answered ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** The configuration with `extra` more VIPs served by the first peer. */
function withMoreVips(config: ConfigBody, extra: string[]): ConfigBody {
  const copy = structuredClone(config);
  const first = copy.peers[0];
  check(first, 'the live configuration has no peer to add VIPs to');
  first.vips = [...(first.vips ?? []), ...extra];
  return copy;
}

/** `count` VIPs in 198.18.0.0/15 (no address is a prefix of another: octets end at 250). */
function generatedVips(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `198.18.${Math.floor(i / 250)}.${1 + (i % 250)}`);
}

/** Every VIP the configuration serves or has an entry for. */
function configuredVips(config: ConfigBody): Set<string> {
  return new Set([
    ...(config.vips ?? []).map((v) => v.address),
    ...config.peers.flatMap((p) => p.vips ?? []),
  ]);
}

/** Applies `config` and waits until GET /api/v1/status counts `vips` VIPs. */
async function apply(ctx: E2EContext, config: ConfigBody): Promise<void> {
  await api(ctx, 'PUT', '/config', config);
  const want = configuredVips(config).size;
  const deadline = Date.now() + SHOW_TIMEOUT_MS;
  for (;;) {
    const status = await api<{ vips: number }>(ctx, 'GET', '/status');
    if (status.vips === want) return;
    check(Date.now() < deadline, `GET /api/v1/status counts ${status.vips} VIPs, expected ${want}`);
    await ctx.page.waitForTimeout(250);
  }
}

/** Elements of `testIds` that lie (partly) outside the window's width, with their boxes. */
async function cutOff(ctx: E2EContext, testIds: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of testIds) {
    const box = await ctx.page.getByTestId(id).first().boundingBox();
    if (!box) out.push(`${id}: not shown`);
    else if (box.x < 0 || box.x + box.width > NARROW.width + 0.5)
      out.push(`${id}: x ${box.x.toFixed(0)}..${(box.x + box.width).toFixed(0)}`);
  }
  return out;
}

/** Item 9: at 420 px wide, the navigation and the pages' buttons are on screen. */
export const narrowLayout: Step = {
  name: 'layout at 420 px: navigation and buttons stay inside the window',
  run: async (ctx) => {
    await ctx.page.setViewportSize(NARROW);
    try {
      const nav = ['nav-dashboard', 'nav-config', 'nav-plugins', 'sign-out'];
      const pages: [Parameters<typeof openPage>[1], string, string[]][] = [
        ['dashboard', 'status-panel', []],
        ['peers-vips', 'vips-card', ['add-peer', 'add-vip']],
        ['plugins', 'upload-card', ['choose-file']],
      ];
      for (const [page, ready, buttons] of pages) {
        await openPage(ctx, page);
        await waitForTestId(ctx, ready);
        const outside = await cutOff(ctx, [...nav, ...buttons]);
        check(outside.length === 0, `${page} at 420 px cuts off: ${outside.join('; ')}`);
        const width = await ctx.page.evaluate(() => document.documentElement.scrollWidth);
        check(width <= NARROW.width, `${page} at 420 px is ${width} px wide: the page scrolls sideways`);
        await ctx.page.screenshot({ path: `${ctx.screenshotsDir}/narrow-${page}.png`, fullPage: true });
      }
    } finally {
      await ctx.page.setViewportSize(VIEWPORT);
    }
  },
};

/** Item 2: the charts' history is still there after visiting another page. */
export const historySurvivesNavigation: Step = {
  name: 'dashboard: chart history survives going to another page and back',
  run: async (ctx) => {
    await openPage(ctx, 'dashboard');
    const points = () =>
      ctx.page.evaluate(() =>
        Number(document.querySelector('[data-testid="chart-pps"]')?.getAttribute('data-points') ?? 0),
      );
    await ctx.page.waitForFunction(
      () =>
        Number(document.querySelector('[data-testid="chart-pps"]')?.getAttribute('data-points') ?? 0) >= 8,
      undefined,
      { timeout: SHOW_TIMEOUT_MS },
    );
    const before = await points();
    await clickNav(ctx, 'config');
    await waitForTestId(ctx, 'vips-card');
    await clickNav(ctx, 'dashboard');
    await waitForTestId(ctx, 'chart-pps', SHOW_TIMEOUT_MS);
    const after = await points();
    check(after >= before, `the pps chart held ${before} samples, ${after} after coming back`);
    await screenshot(ctx, 'dashboard-after-navigation');
  },
};

/** Item 9: the Add VIP dialog offers the configured peers, and the new VIP is served by one. */
export const addVipPicksPeer: Step = {
  name: 'peers and VIPs: the Add VIP dialog picks the peer',
  run: async (ctx) => {
    const original = await api<ConfigBody>(ctx, 'GET', '/config');
    const peer = original.peers[0];
    check(peer, 'the live configuration has no peer');
    const address = '192.0.2.77';
    try {
      await openPage(ctx, 'peers-vips');
      await ctx.page.getByTestId('add-vip').click();
      await waitForTestId(ctx, 'vip-dialog');
      const offered = await ctx.page
        .getByTestId('vip-peer')
        .locator('option')
        .evaluateAll((options) => options.map((o) => (o as HTMLOptionElement).value).filter(Boolean));
      const names = original.peers.map((p) => p.name);
      check(
        JSON.stringify(offered) === JSON.stringify(names),
        `the dialog offers peers ${JSON.stringify(offered)}, the API has ${JSON.stringify(names)}`,
      );
      await ctx.page.getByTestId('vip-address').fill(address);
      await ctx.page.getByTestId('vip-peer').selectOption(peer.name);
      await ctx.page.getByTestId('vip-save').click();
      await ctx.page.getByTestId('vip-dialog').waitFor({ state: 'detached', timeout: 10_000 });
      const stored = await api<PeerBody>(ctx, 'GET', `/peers/${peer.name}`);
      check(
        (stored.vips ?? []).includes(address),
        `GET /api/v1/peers/${peer.name} does not serve ${address}: ${JSON.stringify(stored)}`,
      );
      await waitForTestId(ctx, `vip-config-row-${address}`);
      const servedBy = await ctx.page
        .getByTestId(`vip-config-row-${address}`)
        .locator('td')
        .first()
        .innerText();
      check(servedBy.includes(peer.name), `the VIP row says served by "${servedBy}"`);
    } finally {
      await api(ctx, 'PUT', '/config', original);
    }
  },
};

/** Fills the Add peer dialog (name, address, tunnel fields) and saves it. */
async function addPeerThroughTheDialog(
  ctx: E2EContext,
  peer: { name: string; address: string; tunnel: string; port?: string; key?: string },
): Promise<void> {
  await ctx.page.getByTestId('add-peer').click();
  await waitForTestId(ctx, 'peer-dialog');
  await ctx.page.getByTestId('peer-name').fill(peer.name);
  await ctx.page.getByTestId('peer-address').fill(peer.address);
  await ctx.page.getByTestId('peer-tunnel').selectOption(peer.tunnel);
  if (peer.port !== undefined) await ctx.page.getByTestId('peer-port').fill(peer.port);
  if (peer.key !== undefined) await ctx.page.getByTestId('peer-key').fill(peer.key);
  await ctx.page.getByTestId('peer-save').click();
  await ctx.page.getByTestId('peer-dialog').waitFor({ state: 'detached', timeout: 10_000 });
}

/**
 * Issue 16: the peer dialog's tunnel fields reach the gateway (gue with its UDP port, gre
 * with its key), the table shows them, and an address of neither family is pointed at in the
 * form before anything is sent.
 */
export const peerTunnelFields: Step = {
  name: 'peers and VIPs: the peer dialog stores gue + port and gre + key; a bad address is refused in the form',
  run: async (ctx) => {
    const original = await api<ConfigBody>(ctx, 'GET', '/config');
    try {
      await openPage(ctx, 'peers-vips');
      await waitForTestId(ctx, 'peers-card');
      const cases = [
        { name: 'e2egue', address: '10.0.9.21', tunnel: 'gue', port: '7001', shown: 'gue :7001' },
        { name: 'e2egre', address: '10.0.9.22', tunnel: 'gre', key: '42', shown: 'gre key 42' },
      ];
      for (const c of cases) {
        await addPeerThroughTheDialog(ctx, c);
        const stored = await api<PeerBody>(ctx, 'GET', `/peers/${c.name}`);
        const want = c.tunnel === 'gue' ? { port: Number(c.port) } : { key: Number(c.key) };
        check(
          stored.address === c.address &&
            stored.tunnel === c.tunnel &&
            stored.port === (want as { port?: number }).port &&
            stored.key === (want as { key?: number }).key,
          `GET /api/v1/peers/${c.name} stored ${JSON.stringify(stored)}, expected ${c.tunnel} ${JSON.stringify(want)}`,
        );
        await waitForTestId(ctx, `peer-tunnel-${c.name}`);
        const shown = (await ctx.page.getByTestId(`peer-tunnel-${c.name}`).innerText()).trim();
        check(shown === c.shown, `the peers table shows tunnel "${shown}", expected "${c.shown}"`);
      }
      const before = ctx.requests.filter((r) => r.method() === 'PUT').length;
      await ctx.page.getByTestId('add-peer').click();
      await waitForTestId(ctx, 'peer-dialog');
      await ctx.page.getByTestId('peer-name').fill('e2ebad');
      await ctx.page.getByTestId('peer-address').fill('10.0.9.300');
      await ctx.page.getByTestId('peer-save').click();
      await waitForTestId(ctx, 'peer-address-errors');
      const message = await ctx.page.getByTestId('peer-address-errors').innerText();
      check(message.includes('IPv6'), `the address error does not name both families: "${message}"`);
      check(
        ctx.requests.filter((r) => r.method() === 'PUT').length === before,
        'a peer with a malformed address was sent to the API',
      );
      await screenshot(ctx, 'peer-dialog-address-error');
      await ctx.page.keyboard.press('Escape');
      await ctx.page.getByTestId('peer-dialog').waitFor({ state: 'detached', timeout: 10_000 });
    } finally {
      await api(ctx, 'PUT', '/config', original);
    }
  },
};

/**
 * Issue 16 Part 2: an IPv6 peer is refused with the family mismatch named in the form while
 * the gateway has no IPv6 address; with `gateway.address6` set (through the API: the UI has
 * no gateway form), an IPv6 peer and an IPv6 VIP added through the dialogs are stored, shown
 * in the tables, and the dashboard shows both GIPs and the VIP.
 */
export const ipv6PeerAndVip: Step = {
  name: 'peers and VIPs: an IPv6 peer needs gateway.address6; with it, an IPv6 peer and VIP show in tables and status',
  run: async (ctx) => {
    const original = await api<ConfigBody & { gateway: { address?: string; address6?: string } }>(
      ctx,
      'GET',
      '/config',
    );
    check(!original.gateway.address6, 'the live gateway already has an IPv6 address');
    // An address of the gateway's host that its configuration does not use yet
    // (deploy/ci/live-tungate.sh): gateway.address6 must be one.
    const gip6 = process.env.TUNGATE_GIP6;
    check(gip6, 'TUNGATE_GIP6 is not set: run beside deploy/ci/live-tungate.sh');
    const peer = { name: 'e2ev6', address: '2001:db8:200::21', tunnel: 'ipip' };
    const vip6 = '2001:db8:f::10';
    try {
      await openPage(ctx, 'peers-vips');
      await waitForTestId(ctx, 'peers-card');
      await ctx.page.getByTestId('add-peer').click();
      await waitForTestId(ctx, 'peer-dialog');
      await ctx.page.getByTestId('peer-name').fill(peer.name);
      await ctx.page.getByTestId('peer-address').fill(peer.address);
      await ctx.page.getByTestId('peer-save').click();
      await waitForTestId(ctx, 'peer-address-errors');
      const message = await ctx.page.getByTestId('peer-address-errors').innerText();
      check(
        message.includes('IPv6') && message.includes('address6'),
        `the address error does not name the family mismatch: "${message}"`,
      );
      const refused = await api<ConfigBody>(ctx, 'GET', '/config');
      check(!refused.peers.some((p) => p.name === peer.name), 'the refused IPv6 peer was stored');
      await screenshot(ctx, 'peer-dialog-ipv6-needs-address6');
      await ctx.page.keyboard.press('Escape');
      await ctx.page.getByTestId('peer-dialog').waitFor({ state: 'detached', timeout: 10_000 });

      await api(ctx, 'PUT', '/config', { ...original, gateway: { ...original.gateway, address6: gip6 } });
      await openPage(ctx, 'peers-vips');
      await waitForTestId(ctx, 'peers-card');
      await addPeerThroughTheDialog(ctx, peer);
      await waitForTestId(ctx, `peer-row-${peer.name}`);
      const row = await ctx.page.getByTestId(`peer-row-${peer.name}`).innerText();
      check(row.includes(peer.address), `the peers table row says "${row}", not ${peer.address}`);

      await ctx.page.getByTestId('add-vip').click();
      await waitForTestId(ctx, 'vip-dialog');
      await ctx.page.getByTestId('vip-address').fill(vip6);
      await ctx.page.getByTestId('vip-peer').selectOption(peer.name);
      await ctx.page.getByTestId('vip-save').click();
      await ctx.page.getByTestId('vip-dialog').waitFor({ state: 'detached', timeout: 10_000 });
      const stored = await api<PeerBody>(ctx, 'GET', `/peers/${peer.name}`);
      check(
        stored.address === peer.address && (stored.vips ?? []).includes(vip6),
        `GET /api/v1/peers/${peer.name} stored ${JSON.stringify(stored)}`,
      );
      await waitForTestId(ctx, `vip-config-row-${vip6}`);
      const servedBy = await ctx.page.getByTestId(`vip-config-row-${vip6}`).locator('td').first().innerText();
      check(servedBy.includes(peer.name), `the VIP row says served by "${servedBy}"`);
      await screenshot(ctx, 'peers-vips-ipv6');

      const status = await api<{ gateway_address: string; gateway_address6?: string | null; vips: number }>(
        ctx,
        'GET',
        '/status',
      );
      check(
        status.gateway_address6 === gip6,
        `/api/v1/status says gateway_address6 ${status.gateway_address6}`,
      );
      await clickNav(ctx, 'dashboard');
      await waitForTestId(ctx, `vip-row-${vip6}`, SHOW_TIMEOUT_MS);
      await waitForTestIdNumber(ctx, 'status-vips', (n) => n === status.vips, SHOW_TIMEOUT_MS);
      const gateway = ctx.page.getByTestId('status-gateway');
      check(
        (await gateway.getAttribute('data-value6')) === gip6,
        `the dashboard's gateway data-value6 is ${await gateway.getAttribute('data-value6')}`,
      );
      const shown = (await gateway.innerText()).trim();
      const want = `gateway ${status.gateway_address} + ${gip6}`;
      check(shown === want, `the dashboard shows "${shown}", expected "${want}"`);
      await screenshot(ctx, 'dashboard-ipv6');
    } finally {
      await api(ctx, 'PUT', '/config', original);
    }
  },
};

/** uPlot's legend entries of each chart (the time row left out). */
async function legendEntries(ctx: E2EContext): Promise<Record<string, string[]>> {
  return ctx.page.evaluate(() => {
    const out: Record<string, string[]> = {};
    for (const id of ['chart-pps', 'chart-bps', 'chart-drops']) {
      const rows = [...document.querySelectorAll(`[data-testid="${id}"] .u-legend .u-series`)].slice(1);
      out[id] = rows.map((row) => (row.querySelector('.u-label')?.textContent ?? '').trim());
    }
    return out;
  });
}

/** Item 1: 600 VIPs applied, then removed: the dashboard lists only the configured ones. */
export const removedVipsLeaveDashboard: Step = {
  name: 'dashboard: 600 VIPs applied and removed again leave the table and the legends',
  run: async (ctx) => {
    const original = await api<ConfigBody>(ctx, 'GET', '/config');
    const kept = configuredVips(original);
    await openPage(ctx, 'dashboard');
    await waitForTestId(ctx, 'vip-table', SHOW_TIMEOUT_MS);
    try {
      const many = withMoreVips(original, generatedVips(600));
      await apply(ctx, many);
      await waitForTestIdNumber(
        ctx,
        'vip-table-pager-count',
        (n) => n === configuredVips(many).size,
        SHOW_TIMEOUT_MS,
      );
      const rows = await ctx.page.locator('[data-testid="vip-table"] tbody tr').count();
      check(rows <= 50, `the dashboard's VIP table shows ${rows} rows at once`);
    } finally {
      await apply(ctx, original);
    }
    // Back to the original VIPs: the table and every legend list only those.
    await ctx.page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="vip-table"] tbody tr').length === n,
      kept.size,
      { timeout: SHOW_TIMEOUT_MS },
    );
    check(
      (await ctx.page.getByTestId('vip-table-pager').count()) === 0,
      'the VIP table still pages after going back to the original VIPs',
    );
    const stats = await api<{ vips: { address: string }[] }>(ctx, 'GET', '/stats');
    const listed = stats.vips.map((v) => v.address).filter((a) => !kept.has(a));
    check(
      listed.length === 0,
      `GET /api/v1/stats still lists removed VIPs: ${listed.slice(0, 5).join(', ')}…`,
    );
    // One more sample reaches the charts after the table changed.
    const shownPoints = await ctx.page.getByTestId('chart-pps').getAttribute('data-points');
    await ctx.page.waitForFunction(
      (n) => document.querySelector('[data-testid="chart-pps"]')?.getAttribute('data-points') !== n,
      shownPoints,
      { timeout: SHOW_TIMEOUT_MS },
    );
    const legends = await legendEntries(ctx);
    for (const [chart, entries] of Object.entries(legends)) {
      const stale = entries.filter((e) => !kept.has(e));
      check(
        stale.length === 0,
        `${chart}'s legend still has removed VIPs: ${stale.slice(0, 5).join(', ')} (${stale.length})`,
      );
      check(
        entries.length <= kept.size,
        `${chart}'s legend has ${entries.length} entries for ${kept.size} VIPs`,
      );
    }
    const height = await ctx.page.evaluate(() => document.documentElement.scrollHeight);
    check(height < 4000, `the dashboard is ${height} px tall for ${kept.size} VIPs`);
  },
};

/** Item 9: 10 000 VIPs show as a bounded page, and the address search finds one. */
export const tenThousandVips: Step = {
  name: 'peers and VIPs: 10 000 VIPs show one page at a time, search finds one',
  run: async (ctx) => {
    const original = await api<ConfigBody>(ctx, 'GET', '/config');
    const generated = generatedVips(10_000);
    const wanted = generated[9_876] ?? '';
    try {
      const many = withMoreVips(original, generated);
      await apply(ctx, many);
      await openPage(ctx, 'peers-vips');
      const total = configuredVips(many).size;
      await waitForTestIdNumber(ctx, 'vips-pager-count', (n) => n === total, SHOW_TIMEOUT_MS);
      const rows = await ctx.page.locator('[data-testid="vips-table"] tbody tr').count();
      check(rows > 0 && rows <= 50, `the VIP list shows ${rows} rows of ${total}`);
      await ctx.page.getByTestId('vips-pager-next').click();
      await waitForTestId(ctx, `vip-config-row-${generated[50] ?? ''}`);
      await ctx.page.getByTestId('vips-pager-search').fill(wanted);
      await waitForTestIdNumber(ctx, 'vips-pager-count', (n) => n === 1, SHOW_TIMEOUT_MS);
      await waitForTestId(ctx, `vip-config-row-${wanted}`);
      const found = await ctx.page.locator('[data-testid="vips-table"] tbody tr').count();
      check(found === 1, `searching ${wanted} shows ${found} rows`);
      await ctx.page.screenshot({ path: `${ctx.screenshotsDir}/peers-vips-10000.png` });
    } finally {
      await apply(ctx, original);
    }
  },
};

/** The operator steps, run after the traffic steps. */
export const OPERATOR_STEPS: readonly Step[] = [
  narrowLayout,
  historySurvivesNavigation,
  addVipPicksPeer,
  peerTunnelFields,
  ipv6PeerAndVip,
  removedVipsLeaveDashboard,
  tenThousandVips,
];
