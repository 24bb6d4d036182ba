// One credential: its record, its actions, its activity log and usage.

import { h, replace, button } from './dom.js';
import * as api from './api.js';
import { when, relative, action, actor, details } from './format.js';
import { lock, statusBadge, keyActions } from './keys.js';
import { renderKeyUsage } from './usage.js';
import { followEvents, liveWords } from './live.js';

/** The activity log table of a list of events. */
export function eventRows(items, { withKey = false } = {}) {
  return items.map((e) => h('tr', { 'data-event-id': e.id, 'data-event': e.action },
    h('td', {}, when(e.at)),
    h('td', {}, action(e.action)),
    withKey ? h('td', {}, e.key_id ? h('code', {}, e.key_id) : '—') : null,
    h('td', {}, actor(e.actor)),
    h('td', { class: 'wide' }, e.client_ip || '—'),
    h('td', { class: 'wide details' }, details(e.details))));
}

/** The table head of an activity log. */
export function eventHead({ withKey = false } = {}) {
  return h('thead', {}, h('tr', {},
    h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'Action'),
    withKey ? h('th', { scope: 'col' }, 'Credential') : null,
    h('th', { scope: 'col' }, 'By'), h('th', { scope: 'col', class: 'wide' }, 'Client address'),
    h('th', { scope: 'col', class: 'wide' }, 'Details')));
}

/** Renders the page of key `id`. */
export async function renderKeyDetail(main, ctx, id) {
  const path = `/apikeys/${encodeURIComponent(id)}`;
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const head = h('div', { class: 'screen-head' });
  const facts = h('dl', { class: 'facts' });
  const logBody = h('tbody');
  const logErr = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const more = button('Older events', () => loadLog(true), { id: 'older-events', hidden: true });
  const usageBox = h('div', { id: 'key-usage' });
  let cursor = null;

  async function loadKey() {
    try {
      const k = await api.get(path);
      replace(head,
        h('p', { class: 'crumbs' }, h('a', { href: '#/keys' }, 'API Management'), ' / '),
        h('h1', { id: 'key-title' }, k.name, k.protected ? lock() : null, ' ', statusBadge(k)),
        keyActions(ctx, k, () => { loadKey(); loadLog(); }, { onDeleted: () => { location.hash = '#/keys'; } }));
      const perms = (k.permissions || []).length ? k.permissions.join(', ') : 'none';
      replace(facts, [
        ['Client ID', h('code', {}, k.id)],
        ['Account', k.account_id],
        ['Application', k.application || k.app_id || '—'],
        ['Description', k.description || '—'],
        ['Permissions', perms],
        ['Created', when(k.created_at)],
        ['Changed', when(k.updated_at)],
        ['Last used', relative(k.last_used_at)],
        ['Expires', k.expires_at ? when(k.expires_at) : 'never'],
        ['Allowed networks', (k.allowed_cidrs || []).join(', ') || 'any'],
        k.allowed_origins ? ['Allowed origins', k.allowed_origins.join(', ') || 'any'] : null,
      ].filter(Boolean).map(([dt, dd]) => [h('dt', {}, dt), h('dd', {}, dd)]));
    } catch (e) {
      err.textContent = e.status === 404 ? 'No such credential in this account.' : `Could not load the credential: ${e.message}`;
      err.hidden = false;
    }
  }

  async function loadLog(older = false) {
    logErr.hidden = true;
    try {
      const page = await api.get(`${path}/events${api.qs({ limit: 20, cursor: older ? cursor : null })}`);
      cursor = page.next_cursor;
      const rows = eventRows(page.items);
      if (older) logBody.append(...rows);
      else replace(logBody, rows.length ? rows : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No activity yet.')));
      more.hidden = !cursor;
    } catch (e) {
      logErr.textContent = `Could not load the activity log: ${e.message}`;
      logErr.hidden = false;
    }
  }

  replace(main, h('section', { class: 'screen', 'aria-labelledby': 'key-title' },
    head, err, facts,
    h('h2', { id: 'log-title' }, 'Activity log'),
    h('div', { class: 'toolbar' }, button('Refresh', () => loadLog(), { id: 'refresh-log' }),
      h('span', { class: 'hint', id: 'live-state' })),
    logErr,
    h('div', { class: 'table-wrap' }, h('table', { class: 'events', id: 'key-events', 'aria-labelledby': 'log-title' }, eventHead(), logBody)),
    more,
    h('h2', {}, 'Usage'),
    usageBox));
  await loadKey();
  if (!err.hidden) return;
  loadLog();
  renderKeyUsage(usageBox, ctx, id);
  if (ctx.features.events) {
    const stateEl = document.getElementById('live-state');
    const stop = followEvents({ key_id: id }, (events) => {
      // Redraw only for events this page does not show yet.
      if (events.some((e) => !logBody.querySelector(`[data-event-id="${CSS.escape(String(e.id))}"]`))) {
        loadLog();
        loadKey();
      }
    }, (s) => { if (stateEl) stateEl.textContent = liveWords(s); });
    ctx.onLeave(stop);
  }
}
