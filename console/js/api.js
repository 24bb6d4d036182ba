// The management API client. The session token lives in this module's
// memory only: never in localStorage, sessionStorage, a cookie or the URL,
// so closing or reloading the tab signs out.
//
// Behind the host application's login (a `HostUser` on the requests) the
// console holds no secret at all: it sends the host's own cookie
// (same-origin), no Authorization header, and the host decides who it is.

let base = '';
let hostSignOut = null;
/** 'key' (a session from /auth/login) or 'host' (the host's person). */
let mode = 'key';
let token = null;
let onSignedOut = () => {};
let acting = null;
let expiresAt = null;

/** An error answer of the API, with its words. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

/** Reads `config.json` (where the management API is mounted). */
export async function configure() {
  try {
    const r = await fetch('config.json', { cache: 'no-cache' });
    if (r.ok) {
      const c = await r.json();
      base = c.api_base || '';
      hostSignOut = c.host_sign_out || null;
    }
  } catch {
    base = '';
  }
}

/**
 * Whether the host application has signed a person in: GET /auth/whoami
 * with the host's cookie and no credentials. Returns the answer (with its
 * `person`) and switches to host mode, or null (then the key form shows).
 */
export async function detectHost() {
  let r;
  try {
    r = await fetch(`${base}/auth/whoami`, { headers: { accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin', referrerPolicy: 'no-referrer' });
  } catch {
    return null;
  }
  if (!r.ok) return null;
  const who = await r.json().catch(() => null);
  if (!who || !who.person) return null;
  mode = 'host';
  return who;
}

/** Whether the host application signed the person in (no key, no token). */
export function hostMode() {
  return mode === 'host';
}

/** Whether there is a way to sign out here (always with a key session). */
export function canSignOut() {
  return mode === 'key' || hostSignOut !== null;
}

/** Called when the server no longer accepts the session. */
export function onSessionEnd(fn) {
  onSignedOut = fn;
}

/**
 * Acts for a child account (`x-account-id` on every request) or, with
 * `null`, for the session's own account again.
 */
export function actFor(accountId) {
  acting = accountId || null;
}

/** The child account acted for, if any. */
export function actingFor() {
  return acting;
}

/** When the session ends (RFC 3339), if the server said. */
export function sessionEndsAt() {
  return expiresAt;
}

/** Whether a session is open. */
export function signedIn() {
  return token !== null || mode === 'host';
}

/** The request options that carry who is signed in. */
function authOptions(headers, path) {
  if (mode === 'host') return { credentials: 'same-origin' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (token && acting && path !== '/auth/logout') headers['x-account-id'] = acting;
  return { credentials: 'omit' };
}

function describe(status, body) {
  if (body && typeof body.message === 'string') return body.message;
  if (status === 0) return 'The server could not be reached.';
  return `The server answered ${status}.`;
}

async function send(method, path, { body, headers = {}, auth = true } = {}) {
  const h = { accept: 'application/json', ...headers };
  const creds = auth ? authOptions(h, path) : { credentials: 'omit' };
  let payload;
  if (body !== undefined) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(base + path, { method, headers: h, body: payload, cache: 'no-store', referrerPolicy: 'no-referrer', ...creds });
  } catch {
    throw new ApiError(0, 'network', describe(0));
  }
  let data = null;
  const text = await r.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!r.ok) {
    const err = new ApiError(r.status, data && data.error, describe(r.status, data), data && data.field);
    if (r.status === 401 && auth && signedIn()) {
      const host = mode === 'host';
      token = null;
      acting = null;
      mode = 'key';
      onSignedOut(host ? 'Your sign-in to the application has ended. Sign in there again, then reload.' : 'Your session has ended. Sign in again.');
    }
    throw err;
  }
  return data;
}

/** GET, POST, PATCH, DELETE with the session. */
export const get = (path) => send('GET', path);
export const post = (path, body) => send('POST', path, { body: body ?? {} });
export const patch = (path, body) => send('PATCH', path, { body });
export const del = (path) => send('DELETE', path);

/**
 * For screens that reload as filters change: only the answer to the
 * latest request may be drawn (an earlier one can arrive after it).
 * `const turn = latest();` then per load `const mine = turn();` and, after
 * each await, `if (!turn.is(mine)) return;`.
 */
export function latest() {
  let n = 0;
  const next = () => {
    n += 1;
    return n;
  };
  next.is = (k) => k === n;
  return next;
}

/** `?a=1&b=2` from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

/**
 * Opens a session: with a key id and secret, or with a single-string key
 * (`kw_ak_…`) and no secret. The secret is sent once in a header and not
 * kept.
 */
export async function login(keyOrSingle, secret) {
  const headers = secret
    ? { 'x-api-key': keyOrSingle, 'x-api-secret': secret }
    : { authorization: `Bearer ${keyOrSingle}` };
  const r = await send('POST', '/auth/login', { headers, auth: false });
  token = r.token;
  expiresAt = r.expires_at || null;
  return r;
}

/**
 * Ends the session on the server, then here. Behind the host's login:
 * POST to the host's sign-out path (its cookie is the host's to end).
 */
export async function logout() {
  try {
    if (mode === 'host') {
      if (hostSignOut) {
        const r = await fetch(hostSignOut, { method: 'POST', cache: 'no-store', credentials: 'same-origin', referrerPolicy: 'no-referrer' });
        if (!r.ok) throw new ApiError(r.status, null, describe(r.status));
      }
    } else if (token) {
      await send('POST', '/auth/logout', { auth: true });
    }
  } finally {
    token = null;
    acting = null;
    mode = 'key';
  }
}

/**
 * The server's OpenAPI document (public), to learn which optional fields
 * its routes take; null when it cannot be read.
 */
export async function openapi() {
  try {
    const r = await fetch(`${base}/openapi.json`, { cache: 'no-cache', credentials: 'omit', referrerPolicy: 'no-referrer' });
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

/**
 * Whether the server has a route: false when it answers 404 (not built
 * into this server yet); errors other than 404 count as present.
 */
export async function available(path) {
  try {
    await get(path);
    return true;
  } catch (e) {
    return !(e instanceof ApiError && e.status === 404 && e.code !== 'not_found');
  }
}

/**
 * Reads a Server-Sent Events stream with the session's bearer token
 * (EventSource cannot send one). Calls `onEvent({id, event, data})`;
 * reconnects with `Last-Event-ID` after a drop. Returns a stop function.
 * `onState('live' | 'reconnecting' | 'unavailable')`.
 */
export function stream(path, onEvent, onState = () => {}) {
  const ctl = { stopped: false, abort: null, lastId: null };
  const run = async () => {
    let delay = 1000;
    while (!ctl.stopped && signedIn()) {
      const ac = new AbortController();
      ctl.abort = ac;
      try {
        const headers = { accept: 'text/event-stream' };
        const creds = authOptions(headers, path);
        if (ctl.lastId) headers['last-event-id'] = ctl.lastId;
        const r = await fetch(base + path, { headers, signal: ac.signal, cache: 'no-store', referrerPolicy: 'no-referrer', ...creds });
        if (r.status === 404) {
          onState('unavailable');
          return;
        }
        if (r.status === 401) {
          // The session ended: the same as any other call's 401.
          await send('GET', '/auth/whoami').catch(() => {});
          return;
        }
        if (!r.ok || !r.body) throw new Error(`stream ${r.status}`);
        onState('live');
        delay = 1000;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
            const ev = { id: null, event: 'message', data: '' };
            const data = [];
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith(':')) continue;
              const i = line.indexOf(':');
              const k = i < 0 ? line : line.slice(0, i);
              const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
              if (k === 'id') ev.id = v;
              else if (k === 'event') ev.event = v;
              else if (k === 'data') data.push(v);
            }
            if (ev.id) ctl.lastId = ev.id;
            if (data.length) {
              ev.data = data.join('\n');
              onEvent(ev);
            }
          }
        }
      } catch {
        if (ctl.stopped) return;
      }
      if (ctl.stopped) return;
      onState('reconnecting');
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 15000);
    }
  };
  run();
  return () => {
    ctl.stopped = true;
    if (ctl.abort) ctl.abort.abort();
  };
}
