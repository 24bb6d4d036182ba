// A stand-in in front of the real example server. Where the server has
// the route (it does now) the stand-in steps aside: GET /events/stream is
// proxied with its first connection cut after one event (so the console's
// Last-Event-ID resume is exercised against the real stream), and
// group_by=app|account are forwarded. Its own answers below remain for a
// server without those routes:
//
// - GET /events/stream (the "activity" engineer's Server-Sent Events):
//   built from the real server's GET /events (polled with the caller's
//   own Authorization), `id:` lines, `Last-Event-ID` honoured (only newer
//   events follow), `: heartbeat` comments; the first connection is cut
//   after its first event, so the console's reconnect is exercised.
// - GET /usage with group_by=app or group_by=account (issue 13's
//   contract `{"items":[{"id","name","successes","failures","rate_limited","usage_exceeded","series"}],
//   "next_cursor"}`): computed from the real server's group_by=key answer
//   for the same filters, each key counted under its application (app_id)
//   or account.
//
// Every other request (the console's files, /auth/*, /apikeys…, /apps…,
// /events…) is forwarded unchanged. Remove each part once the real
// server answers it.

import { createServer, request } from 'node:http';

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * Forwards a real GET /events/stream, counting connections and their
 * Last-Event-ID, and cuts the first connection after its first `id:`
 * line, so the console's reconnect is exercised against the real stream.
 */
function forwardStream(upstream, req, res, state) {
  state.connections += 1;
  const cut = state.connections === 1;
  state.lastEventIds.push(req.headers['last-event-id'] || null);
  const u = new URL(upstream);
  const p = request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    let pending = '';
    r.on('data', (chunk) => {
      res.write(chunk);
      pending += chunk.toString('utf8');
      const ids = [...pending.matchAll(/^id: ?(.*)$/gm)].map((m) => m[1]);
      if (ids.length) state.sentIds[state.connections - 1] = ids[ids.length - 1];
      pending = pending.slice(pending.lastIndexOf('\n') + 1);
      if (cut && ids.length) { r.destroy(); res.end(); }
    });
    r.on('end', () => res.end());
    r.on('error', () => res.end());
  });
  p.on('error', () => json(res, 502, { error: 'bad_gateway', message: 'upstream unreachable' }));
  res.on('close', () => p.destroy());
  req.pipe(p);
}

function forward(upstream, req, res) {
  const u = new URL(upstream);
  const p = request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  p.on('error', () => json(res, 502, { error: 'bad_gateway', message: 'upstream unreachable' }));
  req.pipe(p);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the stand-in on `port` in front of `upstream`; returns `{ base, lastEventIds, connections, close() }`. */
export function startPlaneMock(upstream, port) {
  const base = `http://127.0.0.1:${port}`;
  const streams = new Set();
  const state = { lastEventIds: [], sentIds: [], connections: 0 };

  async function upstreamJson(path, auth) {
    const r = await fetch(upstream + path, { headers: { authorization: auth, accept: 'application/json' } });
    return { status: r.status, body: await r.json().catch(() => null) };
  }

  async function stream(req, res, url) {
    const auth = req.headers.authorization || '';
    const key = url.searchParams.get('key_id');
    const q = `/events?limit=50${key ? `&key_id=${encodeURIComponent(key)}` : ''}`;
    const first = await upstreamJson(q, auth);
    if (first.status !== 200) return json(res, first.status, first.body);
    state.connections += 1;
    const cutAfterOne = state.connections === 1;
    const lastId = req.headers['last-event-id'] || null;
    state.lastEventIds.push(lastId);
    // Events up to Last-Event-ID (or all present now, on a first
    // connection) were seen; only newer ones are sent.
    const seen = new Set();
    const items = first.body.items;
    const upTo = lastId ? items.findIndex((e) => e.id === lastId) : 0;
    for (const e of items.slice(Math.max(0, upTo))) seen.add(e.id);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': connected\n\n');
    // Newer than Last-Event-ID: sent at once.
    const missed = lastId && upTo > 0 ? items.slice(0, upTo).reverse() : [];
    for (const e of missed) { res.write(`id: ${e.id}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`); state.sentIds[state.connections - 1] = e.id; }
    let open = true;
    streams.add(res);
    req.on('close', () => { open = false; streams.delete(res); });
    let beat = 0;
    while (open) {
      await sleep(250);
      const r = await upstreamJson(q, auth).catch(() => null);
      if (!open) break;
      if (!r || r.status !== 200) { res.end(); break; }
      const fresh = r.body.items.filter((e) => !seen.has(e.id)).reverse();
      for (const e of fresh) {
        seen.add(e.id);
        res.write(`id: ${e.id}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`);
        state.sentIds[state.connections - 1] = e.id;
      }
      if (fresh.length && cutAfterOne) {
        // Drop the connection: the console must come back with
        // Last-Event-ID and miss nothing.
        res.end();
        break;
      }
      beat += 1;
      if (beat % 4 === 0) res.write(': heartbeat\n\n');
    }
    return undefined;
  }

  async function usage(req, res, url) {
    const auth = req.headers.authorization || '';
    const groupBy = url.searchParams.get('group_by');
    const q = new URLSearchParams(url.searchParams);
    q.set('group_by', 'key');
    q.set('limit', '100');
    q.delete('cursor');
    const byKey = await upstreamJson(`/usage?${q}`, auth);
    if (byKey.status !== 200) return json(res, byKey.status, byKey.body);
    const groups = new Map();
    for (const k of byKey.body.items) {
      const rec = await upstreamJson(`/apikeys/${encodeURIComponent(k.id)}`, auth);
      if (rec.status !== 200) continue;
      const gid = groupBy === 'app' ? rec.body.app_id || rec.body.application || '(no application)' : rec.body.account_id;
      const g = groups.get(gid) || { id: gid, name: gid, successes: 0, failures: 0, rate_limited: 0, usage_exceeded: 0, series: new Map() };
      g.successes += k.successes;
      g.failures += k.failures;
      g.rate_limited += k.rate_limited || 0;
      g.usage_exceeded += k.usage_exceeded || 0;
      for (const p of k.series) {
        const s = g.series.get(p.at) || { at: p.at, successes: 0, failures: 0, rate_limited: 0, usage_exceeded: 0 };
        s.successes += p.successes;
        s.failures += p.failures;
        s.rate_limited += p.rate_limited || 0;
        s.usage_exceeded += p.usage_exceeded || 0;
        g.series.set(p.at, s);
      }
      groups.set(gid, g);
    }
    for (const g of groups.values()) {
      if (groupBy === 'app' && g.id.startsWith('app_')) {
        const a = await upstreamJson(`/apps/${encodeURIComponent(g.id)}`, auth);
        if (a.status === 200) g.name = a.body.title;
      } else if (groupBy === 'account') {
        const a = await upstreamJson(`/accounts/${encodeURIComponent(g.id)}`, auth);
        g.name = a.status === 200 ? a.body.name : g.id;
      }
    }
    const items = [...groups.values()]
      .map((g) => ({ ...g, series: [...g.series.values()] }))
      .sort((a, b) => (b.successes + b.failures) - (a.successes + a.failures));
    return json(res, 200, { from: byKey.body.from, to: byKey.body.to, group_by: groupBy, items, next_cursor: null });
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, base);
    if (req.method === 'GET' && url.pathname === '/events/stream') {
      // The real route, once it exists, wins.
      const probe = await fetch(`${upstream}/events/stream`, { headers: { authorization: req.headers.authorization || '' } }).catch(() => null);
      if (probe) await probe.body?.cancel().catch(() => {});
      if (probe && probe.status !== 404) return forwardStream(upstream, req, res, state);
      return stream(req, res, url);
    }
    if (req.method === 'GET' && url.pathname === '/usage' && ['app', 'account'].includes(url.searchParams.get('group_by'))) {
      const probe = await fetch(`${upstream}/usage?group_by=${url.searchParams.get('group_by')}&limit=1`, { headers: { authorization: req.headers.authorization || '' } }).catch(() => null);
      if (probe && probe.status === 200) return forward(upstream, req, res);
      return usage(req, res, url);
    }
    return forward(upstream, req, res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({
    base,
    get lastEventIds() { return state.lastEventIds; },
    get connections() { return state.connections; },
    get sentIds() { return state.sentIds; },
    close: () => new Promise((r) => { for (const s of streams) s.destroy(); server.close(r); }),
  })));
}
