// A stand-in for the management-plane routes that issues 12 and 13 specify
// but this server does not have yet (/apps, /accounts, /allowlist, /usage,
// /events, /events/stream), in front of the real example server: every
// other request (the console's files, /auth/*, /apikeys…) is forwarded to
// it unchanged, and the stand-in routes accept only sessions the real
// server accepts. It lets the console's feature-detected screens be driven
// in the browser before those routes land; the shapes follow the issues.

import { createServer, request } from 'node:http';

function json(res, status, body) {
  const b = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(b);
}

const err = (res, status, error, message, field) => json(res, status, field ? { error, message, field } : { error, message });

async function readBody(req) {
  let s = '';
  for await (const c of req) s += c;
  try {
    return s ? JSON.parse(s) : {};
  } catch {
    return null;
  }
}

function forward(upstream, req, res) {
  const u = new URL(upstream);
  const p = request({ host: u.hostname, port: u.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  p.on('error', () => err(res, 502, 'bad_gateway', 'upstream unreachable'));
  req.pipe(p);
}

/** Starts the stand-in on `port` in front of `upstream`; returns `{ base, close() }`. */
export function startPlaneMock(upstream, port) {
  const now = () => new Date().toISOString();
  const base = `http://127.0.0.1:${port}`;
  const apps = [{ id: 'app_billing', title: 'Billing', description: 'Invoices export', status: 'active', active_keys: 1, inactive_keys: 0, protected: false, last_used_at: null }];
  const accounts = [{ id: 'acme-eu', name: 'Acme EU', status: 'active', permissions: ['readApplications'], last_used_at: null }];
  const allow = [{ id: 'alw_default', origin: base, protected: true }];
  const events = [{ id: 'evt_1', at: now(), action: 'key_created', account_id: 'admin', key_id: 'kw_AAAAAAAAAAAAAAAAA', session_id: null, actor: { key_id: null, session_id: null, account_id: null }, client_ip: '127.0.0.1', details: { name: 'seeded' } }];
  const sessions = new Map();
  const streams = new Set();
  let n = 0;

  async function authorized(req) {
    const auth = req.headers.authorization || '';
    if (!auth) return false;
    if (!sessions.has(auth)) {
      const r = await fetch(`${upstream}/auth/whoami`, { headers: { authorization: auth } });
      sessions.set(auth, r.ok);
    }
    return sessions.get(auth);
  }

  function list(res, items, q) {
    const text = (q.get('q') || '').toLowerCase();
    const st = q.get('status');
    json(res, 200, { items: items.filter((x) => (!st || x.status === st) && (!text || JSON.stringify(x).toLowerCase().includes(text))), next_cursor: null });
  }

  function series(scale) {
    const out = [];
    const h = Math.floor(Date.now() / 3600e3) * 3600e3;
    for (let i = 5; i >= 0; i -= 1) out.push({ at: new Date(h - i * 3600e3).toISOString(), successes: (6 - i) * scale, failures: i % 2 });
    return out;
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, base);
    const parts = url.pathname.split('/').filter(Boolean);
    const mine = ['apps', 'accounts', 'allowlist', 'usage', 'events'].includes(parts[0]);
    if (!mine) return forward(upstream, req, res);
    if (!(await authorized(req))) return err(res, 401, 'invalid_credentials', 'invalid credentials');
    const m = req.method;
    const id = parts[1] && decodeURIComponent(parts[1]);
    if (parts[0] === 'apps') {
      if (m === 'GET' && !id) return list(res, apps, url.searchParams);
      if (m === 'POST' && !id) {
        const b = await readBody(req);
        if (!b || !b.title) return err(res, 422, 'invalid_value', 'title: must not be empty', 'title');
        const a = { id: `app_${n += 1}`, title: b.title, description: b.description || '', status: 'active', active_keys: 0, inactive_keys: 0, protected: false, last_used_at: null };
        apps.push(a);
        return json(res, 201, a);
      }
      const a = apps.find((x) => x.id === id);
      if (!a) return err(res, 404, 'not_found', 'no such application');
      if (m === 'PATCH') {
        const b = await readBody(req);
        Object.assign(a, b);
        return json(res, 200, b.status ? { ...a, effective_by: new Date(Date.now() + 5000).toISOString() } : a);
      }
      if (m === 'DELETE') {
        if (a.active_keys + a.inactive_keys > 0 && url.searchParams.get('cascade') !== 'true') {
          return err(res, 409, 'conflict', `application ${a.id} still has ${a.active_keys + a.inactive_keys} key(s); delete them first or pass cascade=true`);
        }
        apps.splice(apps.indexOf(a), 1);
        return json(res, 200, { id: a.id, status: 'deleted', effective_by: new Date(Date.now() + 5000).toISOString() });
      }
    }
    if (parts[0] === 'accounts') {
      if (m === 'GET' && !id) return list(res, accounts, url.searchParams);
      if (m === 'POST' && !id) {
        const b = await readBody(req);
        if (!b || !b.name) return err(res, 422, 'invalid_value', 'name: must not be empty', 'name');
        const a = { id: `acct-${n += 1}`, name: b.name, status: 'active', permissions: b.permissions || [], last_used_at: null };
        accounts.push(a);
        return json(res, 201, a);
      }
      const a = accounts.find((x) => x.id === id);
      if (!a) return err(res, 404, 'not_found', 'no such account');
      if (m === 'PATCH') {
        Object.assign(a, await readBody(req));
        return json(res, 200, { ...a, effective_by: new Date(Date.now() + 5000).toISOString() });
      }
    }
    if (parts[0] === 'allowlist') {
      if (m === 'GET' && !id) return json(res, 200, { items: allow });
      if (m === 'POST' && !id) {
        const b = await readBody(req);
        if (!b || !/^https?:\/\/[a-z0-9.*-]+(:\d+)?$/.test(b.origin || '')) return err(res, 422, 'invalid_value', 'origin: must be scheme://host[:port]', 'origin');
        const e = { id: `alw_${n += 1}`, origin: b.origin, protected: false };
        allow.push(e);
        return json(res, 201, e);
      }
      const e = allow.find((x) => x.id === id);
      if (!e) return err(res, 404, 'not_found', 'no such entry');
      if (m === 'DELETE') {
        if (e.protected) return err(res, 409, 'conflict', 'the default entry is protected');
        allow.splice(allow.indexOf(e), 1);
        res.writeHead(204, { 'cache-control': 'no-store' });
        return res.end();
      }
    }
    if (parts[0] === 'usage' && m === 'GET') {
      const g = url.searchParams.get('group_by') || 'key';
      const scale = url.searchParams.get('origin') === 'mcp' ? 1 : url.searchParams.get('origin') === 'api' ? 2 : 3;
      const names = { key: [['kw_AAAAAAAAAAAAAAAAA', 'billing-sync']], app: [['app_billing', 'Billing']], account: [['admin', 'Administrators'], ['acme-eu', 'Acme EU']] }[g];
      return json(res, 200, { items: names.map(([i, name], k) => { const s = series(scale * (k + 1)); return { id: i, name, successes: s.reduce((a, x) => a + x.successes, 0), failures: s.reduce((a, x) => a + x.failures, 0), series: s }; }), next_cursor: null });
    }
    if (parts[0] === 'events' && !id && m === 'GET') return json(res, 200, { items: events, next_cursor: null });
    if (parts[0] === 'events' && id === 'stream' && m === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(': connected\n\n');
      const live = { id: 'evt_live_1', at: now(), action: 'key_deactivated', account_id: 'admin', key_id: 'kw_BBBBBBBBBBBBBBBBB', session_id: null, actor: { key_id: 'kw_CCCCCCCCCCCCCCCCC', session_id: null, account_id: 'admin' }, client_ip: '192.0.2.7', details: { changed: ['status'] } };
      const t1 = setTimeout(() => res.write(`id: ${live.id}\nevent: audit\ndata: ${JSON.stringify(live)}\n\n`), 300);
      const hb = setInterval(() => res.write(': heartbeat\n\n'), 1000);
      streams.add(res);
      req.on('close', () => { clearTimeout(t1); clearInterval(hb); streams.delete(res); });
      return undefined;
    }
    return err(res, 405, 'method_not_allowed', 'method not allowed');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({
    base,
    close: () => new Promise((r) => { for (const s of streams) s.destroy(); server.close(r); }),
  })));
}
