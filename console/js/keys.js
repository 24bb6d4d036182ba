// API Management: the credentials of the account, searchable, filtered by
// status, paginated by the server's cursor, with the actions of each row.

import { h, replace, button, uid } from './dom.js';
import * as api from './api.js';
import { relative, when, expired } from './format.js';
import { openCreate, openEdit, openRotate, openStatus, openDelete } from './key_dialogs.js';

const PAGE = 20;

/** A lock for protected entries (they cannot be deleted). */
export function lock() {
  return h('img', { class: 'lock', src: 'lock.svg', alt: 'Protected', title: 'Protected: cannot be deleted', width: 16, height: 16 });
}

/** The status badge of a key (expired shown as such). */
export function statusBadge(k) {
  if (k.status === 'active' && expired(k.expires_at)) return h('span', { class: 'badge warn' }, 'expired');
  return h('span', { class: `badge ${k.status === 'active' ? 'ok' : 'off'}` }, k.status);
}

/** The write actions of one key, for admins only. */
export function keyActions(ctx, k, refresh, { onDeleted } = {}) {
  if (!ctx.canWrite) return null;
  return h('div', { class: 'row-actions' },
    button('Edit', () => openEdit(ctx, k, refresh), { 'aria-label': `Edit ${k.name}`, 'data-action': 'edit' }),
    button('Regenerate', () => openRotate(ctx, k, refresh), { 'aria-label': `Regenerate ${k.name}`, 'data-action': 'rotate' }),
    button(k.status === 'active' ? 'Deactivate' : 'Activate', () => openStatus(ctx, k, refresh),
      { 'aria-label': `${k.status === 'active' ? 'Deactivate' : 'Activate'} ${k.name}`, 'data-action': 'status' }),
    k.protected ? null : button('Delete', () => openDelete(ctx, k, onDeleted || refresh),
      { class: 'danger', 'aria-label': `Delete ${k.name}`, 'data-action': 'delete' }));
}

function filtersFromHash() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  return { app_id: q.get('app_id') || '', app_title: q.get('app') || '' };
}

/** Renders the screen into `main`. */
export function renderKeys(main, ctx) {
  const preset = filtersFromHash();
  const state = { q: '', status: '', cursors: [null] };
  const search = h('input', { type: 'search', id: 'key-search', name: 'q', placeholder: 'Name (3+ characters)', minlength: 3, autocomplete: 'off' });
  const statusName = uid('status');
  const toggle = h('fieldset', { class: 'segmented', id: 'status-filter' },
    h('legend', {}, 'Status'),
    [['', 'All'], ['active', 'Active'], ['inactive', 'Inactive']].map(([v, l]) => {
      const id = uid('st');
      return [h('input', { type: 'radio', name: statusName, id, value: v, props: { checked: v === '' } }), h('label', { for: id }, l)];
    }));
  const listError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const tbody = h('tbody');
  const table = h('table', { class: 'keys', 'aria-describedby': 'keys-caption' },
    h('caption', { id: 'keys-caption', class: 'sr-only' }, 'Credentials'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'wide' }, 'Client ID'),
      h('th', { scope: 'col', class: 'wide' }, 'Application'), h('th', { scope: 'col' }, 'Status'),
      h('th', { scope: 'col', class: 'wide' }, 'Last used'), h('th', { scope: 'col', class: 'wide' }, 'Expires'),
      ctx.canWrite ? h('th', { scope: 'col' }, 'Actions') : null)),
    tbody);
  const prev = button('Previous page', () => { state.cursors.pop(); load(); }, { id: 'prev-page' });
  const next = button('Next page', () => load(state.next), { id: 'next-page' });
  const pageInfo = h('span', { class: 'page-info', role: 'status' });
  const create = ctx.canWrite ? button('New credential', () => openCreate(ctx, () => load(), preset), { class: 'primary', id: 'create-key' }) : null;

  const turn = api.latest();
  async function load(cursor) {
    const mine = turn();
    if (cursor) state.cursors.push(cursor);
    const at = state.cursors[state.cursors.length - 1];
    listError.hidden = true;
    try {
      const page = await api.get(`/apikeys${api.qs({ q: state.q, status: state.status, app_id: preset.app_id, limit: PAGE, cursor: at })}`);
      if (!turn.is(mine)) return;
      state.next = page.next_cursor;
      replace(tbody, page.items.length ? page.items.map((k) => row(k)) : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, state.q || state.status ? 'No credential matches.' : 'No credentials yet.')));
      prev.disabled = state.cursors.length <= 1;
      next.disabled = !page.next_cursor;
      pageInfo.textContent = `Page ${state.cursors.length}, ${page.items.length} shown`;
    } catch (e) {
      if (cursor) state.cursors.pop();
      if (!turn.is(mine)) return;
      listError.textContent = `Could not list credentials: ${e.message}`;
      listError.hidden = false;
    }
  }

  function row(k) {
    return h('tr', { 'data-key-id': k.id },
      h('td', {}, h('a', { href: `#/keys/${encodeURIComponent(k.id)}`, class: 'key-name' }, k.name), k.protected ? lock() : null),
      h('td', { class: 'wide' }, h('code', {}, k.id)),
      h('td', { class: 'wide' }, k.application || '—'),
      h('td', {}, statusBadge(k)),
      h('td', { class: 'wide' }, relative(k.last_used_at)),
      h('td', { class: 'wide' }, k.expires_at ? when(k.expires_at) : 'never'),
      ctx.canWrite ? h('td', {}, keyActions(ctx, k, () => load())) : null);
  }

  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const q = search.value.trim();
      // The API searches names by trigram: one or two characters are not a search.
      if (q && [...q].length < 3) { pageInfo.textContent = 'Type at least 3 characters to search.'; return; }
      state.q = q; state.cursors = [null]; load();
    }, 250);
  });
  ctx.onLeave(() => clearTimeout(timer));
  toggle.addEventListener('change', (ev) => { state.status = ev.target.value; state.cursors = [null]; load(); });

  replace(main,
    h('section', { class: 'screen', 'aria-labelledby': 'keys-title' },
      h('div', { class: 'screen-head' },
        h('h1', { id: 'keys-title' }, 'API Management'),
        preset.app_id ? h('p', { class: 'hint' }, `Credentials of application ${preset.app_title || preset.app_id}`) : null,
        create),
      h('div', { class: 'toolbar' },
        h('div', { class: 'field inline' }, h('label', { for: 'key-search' }, 'Search'), search),
        toggle),
      listError,
      h('div', { class: 'table-wrap' }, table),
      h('div', { class: 'pager' }, prev, pageInfo, next)));
  load();
}
