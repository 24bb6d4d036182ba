// Usage: per key (GET /apikeys/{id}/usage) and account-wide (GET /usage,
// when the server has it), with the Call Origin filter (All / MCP only /
// API only), ranges, tables and uPlot charts of successes, failures and
// calls refused by rate limits or spent credits.

import { h, replace, uid } from './dom.js';
import * as api from './api.js';
import { when } from './format.js';

const ORIGINS = [['', 'All'], ['mcp', 'MCP only'], ['api', 'API only']];
const RANGES = [['24h', 'Last 24 hours', 1], ['7d', 'Last 7 days', 7], ['30d', 'Last 30 days', 30], ['custom', 'Custom', 0]];
const CATEGORY_NAMES = { realtime: 'Real-Time API Calls', analytics: 'Analytics API Calls', default: 'Other calls' };

/** The label of a usage category. */
export function categoryName(c) {
  return CATEGORY_NAMES[c] || String(c);
}

/** A radio group; `onChange(value)`. */
function radios(legend, options, value, onChange, id) {
  const name = uid('r');
  const fs = h('fieldset', { class: 'segmented', id },
    h('legend', {}, legend),
    options.map(([v, l]) => {
      const rid = uid('o');
      return [h('input', { type: 'radio', name, id: rid, value: v, props: { checked: v === value } }), h('label', { for: rid }, l)];
    }));
  fs.addEventListener('change', (ev) => onChange(ev.target.value));
  return fs;
}

/** The range controls: preset or custom from/to. `get()` → {from, to} ISO. */
function rangeControls(onChange) {
  const state = { range: '24h' };
  const fromId = uid('from');
  const toId = uid('to');
  const from = h('input', { type: 'datetime-local', name: 'from', id: fromId });
  const to = h('input', { type: 'datetime-local', name: 'to', id: toId });
  const custom = h('div', { class: 'custom-range', hidden: true },
    h('label', { for: fromId }, 'From'), from, h('label', { for: toId }, 'To'), to);
  from.addEventListener('change', () => onChange());
  to.addEventListener('change', () => onChange());
  const group = radios('Range', RANGES.map(([v, l]) => [v, l]), '24h', (v) => {
    state.range = v;
    custom.hidden = v !== 'custom';
    if (v !== 'custom') onChange();
  }, uid('range'));
  return {
    el: h('div', { class: 'range' }, group, custom),
    get() {
      const now = new Date();
      if (state.range === 'custom') {
        const f = from.value ? new Date(from.value) : new Date(now - 86400e3);
        const t = to.value ? new Date(to.value) : now;
        return { from: f.toISOString(), to: t.toISOString(), days: Math.max(1, (t - f) / 86400e3) };
      }
      const days = RANGES.find((r) => r[0] === state.range)[2];
      return { from: new Date(now - days * 86400e3).toISOString(), to: now.toISOString(), days };
    },
  };
}

/** Calls refused by a rate limit or spent credits in a row or group. */
function refused(r) {
  return (r.rate_limited || 0) + (r.usage_exceeded || 0);
}

/** Buckets rows `{hour, successes, failures, rate_limited, usage_exceeded}`
 * into hours or days. */
function series(rows, from, to, daily) {
  const step = daily ? 86400 : 3600;
  const start = Math.floor(new Date(from).getTime() / 1000 / step) * step;
  const end = Math.floor(new Date(to).getTime() / 1000 / step) * step;
  const n = Math.max(1, Math.floor((end - start) / step) + 1);
  const xs = Array.from({ length: n }, (_, i) => start + i * step);
  const ok = new Array(n).fill(0);
  const bad = new Array(n).fill(0);
  const limited = new Array(n).fill(0);
  for (const r of rows) {
    const t = Math.floor(new Date(r.hour || r.at || r.bucket).getTime() / 1000 / step) * step;
    const i = Math.round((t - start) / step);
    if (i >= 0 && i < n) {
      ok[i] += r.successes || 0;
      bad[i] += r.failures || 0;
      limited[i] += refused(r);
    }
  }
  return [xs, ok, bad, limited];
}

/** A uPlot chart of successes and failures over time, sized to its box. */
function chart(box, data, label) {
  replace(box);
  const U = globalThis.uPlot;
  const fig = h('figure', { class: 'chart', 'aria-label': label });
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  box.append(fig, h('p', { class: 'sr-only' }, `${label}: ${sum(data[1])} successes, ${sum(data[2])} failures, ${sum(data[3])} refused by limits.`));
  if (!U) {
    fig.append(h('p', { class: 'hint' }, 'Chart library not loaded.'));
    return () => {};
  }
  const width = () => Math.max(280, Math.min((box.clientWidth || 600) - 16, 1600));
  const plot = new U({
    width: width(),
    height: 220,
    scales: { x: { time: true } },
    axes: [{}, { label: 'calls' }],
    series: [
      {},
      { label: 'Successes', stroke: '#1f7a3d', fill: 'rgba(31,122,61,0.12)', width: 2 },
      { label: 'Failures', stroke: '#b3261e', width: 2 },
      { label: 'Refused by limits', stroke: '#8a5a00', width: 2, dash: [6, 4] },
    ],
  }, data, fig);
  const ro = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
  ro.observe(box);
  return () => { ro.disconnect(); plot.destroy(); };
}

function totalsTable(caption, rows, nameHeader) {
  // Its own horizontal scroll on narrow screens, never the page's.
  return h('div', { class: 'table-scroll' }, h('table', { class: 'totals' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, nameHeader), h('th', { scope: 'col' }, 'Successes'), h('th', { scope: 'col' }, 'Failures'),
      h('th', { scope: 'col' }, 'Rate limited'), h('th', { scope: 'col' }, 'Over credits'))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', {},
      h('th', { scope: 'row' }, r.name, r.sub ? h('span', { class: 'sub' }, r.sub) : null),
      h('td', { class: 'num' }, String(r.successes)), h('td', { class: 'num' }, String(r.failures)),
      h('td', { class: 'num' }, String(r.rate_limited || 0)), h('td', { class: 'num' }, String(r.usage_exceeded || 0))))
      : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No calls in this range.')))));
}

function group(rows, keyOf, nameOf) {
  const m = new Map();
  for (const r of rows) {
    const k = keyOf(r);
    const g = m.get(k) || { name: nameOf(k), successes: 0, failures: 0, rate_limited: 0, usage_exceeded: 0 };
    g.successes += r.successes || 0;
    g.failures += r.failures || 0;
    g.rate_limited += r.rate_limited || 0;
    g.usage_exceeded += r.usage_exceeded || 0;
    m.set(k, g);
  }
  const volume = (g) => g.successes + g.failures + refused(g);
  return [...m.values()].sort((a, b) => volume(b) - volume(a));
}

/** The usage panel of one key. */
export function renderKeyUsage(box, ctx, keyId) {
  let origin = '';
  let stop = () => {};
  const out = h('div', { class: 'usage-out' });
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const range = rangeControls(() => load());
  const originFilter = radios('Call Origin', ORIGINS, '', (v) => { origin = v; load(); }, 'origin-filter');
  const turn = api.latest();
  async function load() {
    const mine = turn();
    const { from, to, days } = range.get();
    err.hidden = true;
    try {
      const r = await api.get(`/apikeys/${encodeURIComponent(keyId)}/usage${api.qs({ from, to, origin })}`);
      if (!turn.is(mine)) return;
      const chartBox = h('div', { class: 'chart-box' });
      const total = r.items.reduce((a, x) => ({ s: a.s + x.successes, f: a.f + x.failures, l: a.l + refused(x) }), { s: 0, f: 0, l: 0 });
      replace(out,
        h('p', { class: 'usage-total', 'data-testid': 'usage-total' },
          `${total.s} successful and ${total.f} failed calls (${ORIGINS.find((o) => o[0] === origin)[1]}), ${when(r.from)} – ${when(r.to)}; ${total.l} refused by rate limits or spent credits`),
        chartBox,
        h('div', { class: 'tables' },
          totalsTable('By category', group(r.items, (x) => x.category, categoryName), 'Category'),
          totalsTable('By call origin', group(r.items, (x) => x.origin, (o) => (o === 'mcp' ? 'MCP' : o === 'api' ? 'API' : o)), 'Origin')));
      stop();
      stop = chart(chartBox, series(r.items, from, to, days > 7), 'Calls over time');
    } catch (e) {
      if (!turn.is(mine)) return;
      err.textContent = `Could not load usage: ${e.message}`;
      err.hidden = false;
    }
  }
  ctx.onLeave(() => stop());
  replace(box, h('div', { class: 'toolbar' }, originFilter, range.el), err, out);
  load();
}

/** Account-wide usage (GET /usage), by key, application or customer. */
export async function renderAccountUsage(main, ctx) {
  const head = h('div', { class: 'screen-head' }, h('h1', { id: 'usage-title' }, 'API Usage'));
  const section = h('section', { class: 'screen', 'aria-labelledby': 'usage-title' }, head);
  replace(main, section);
  if (!ctx.features.usage) {
    section.append(unavailable('Account-wide usage', 'GET /usage'),
      h('p', {}, 'Each credential\'s own usage, with the Call Origin filter, is on its page under API Management.'));
    return;
  }
  let origin = '';
  let groupBy = 'key';
  let category = '';
  let stop = () => {};
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const out = h('div', { class: 'usage-out' });
  const range = rangeControls(() => load());
  const cat = h('select', { id: 'usage-category', name: 'category' },
    [['', 'All categories'], ['realtime', 'Real-Time API Calls'], ['analytics', 'Analytics API Calls']].map(([v, l]) => h('option', { value: v }, l)));
  cat.addEventListener('change', () => { category = cat.value; load(); });
  const groups = [['key', 'API client ID'], ['app', 'Client Name'], ['account', 'Customer Name']];
  const turn = api.latest();
  async function load() {
    const mine = turn();
    const { from, to, days } = range.get();
    err.hidden = true;
    try {
      const r = await api.get(`/usage${api.qs({ from, to, origin, category, group_by: groupBy, granularity: days > 7 ? 'day' : 'hour', limit: 50 })}`);
      if (!turn.is(mine)) return;
      const rows = r.items.map((g) => ({
        name: g.name || g.id, sub: g.name && g.name !== g.id ? g.id : null,
        successes: g.successes, failures: g.failures, rate_limited: g.rate_limited || 0, usage_exceeded: g.usage_exceeded || 0,
      }));
      const all = r.items.flatMap((g) => g.series || []);
      const chartBox = h('div', { class: 'chart-box' });
      replace(out, chartBox, totalsTable(`Top consumers by ${groups.find((g) => g[0] === groupBy)[1]}`, rows, groups.find((g) => g[0] === groupBy)[1]));
      stop();
      stop = chart(chartBox, series(all, from, to, days > 7), 'Successes, failures and refusals by limits over time');
    } catch (e) {
      if (!turn.is(mine)) return;
      err.textContent = `Could not load usage: ${e.message}`;
      err.hidden = false;
    }
  }
  ctx.onLeave(() => stop());
  section.append(h('div', { class: 'toolbar' },
    radios('Call Origin', ORIGINS, '', (v) => { origin = v; load(); }, 'origin-filter'),
    radios('Group by', groups, 'key', (v) => { groupBy = v; load(); }, 'group-filter'),
    h('div', { class: 'field inline' }, h('label', { for: 'usage-category' }, 'Category'), cat),
    range.el), err, out);
  load();
}

/** The plain state of a screen whose routes this server does not have. */
export function unavailable(what, route) {
  return h('div', { class: 'card unavailable', role: 'status', 'data-unavailable': route },
    h('h2', {}, `${what}: not available on this server`),
    h('p', {}, `This server does not answer ${route} yet. The screen lights up once it does; nothing else is needed in the console.`));
}
