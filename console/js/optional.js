// The screens of the management plane's newer routes: applications
// (/apps), customer accounts (/accounts), the origin allowlist
// (/allowlist) and the account-wide activity log (/events, live through
// /events/stream). Each is feature-detected: when the server answers 404,
// the screen says it is not available on this server.

import { h, replace, button, field, uid, showFieldError, announce } from './dom.js';
import * as api from './api.js';
import { when, action } from './format.js';
import { followEvents, liveWords } from './live.js';
import { formDialog, permissionBoxes, checked, effective } from './key_dialogs.js';
import { unavailable } from './usage.js';
import { lock } from './keys.js';
import { eventRows, eventHead } from './key_detail.js';

function screen(main, id, title, ...rest) {
  const s = h('section', { class: 'screen', 'aria-labelledby': id },
    h('div', { class: 'screen-head' }, h('h1', { id }, title), ...rest));
  replace(main, s);
  return s;
}

function badge(status) {
  return h('span', { class: `badge ${status === 'active' ? 'ok' : 'off'}` }, status);
}

/** A searchable, status-filtered, cursor-paginated list. */
function pagedList(section, { path, columns, row, empty, searchLabel = 'Search' }) {
  const state = { q: '', status: '', cursors: [null], next: null };
  const search = h('input', { type: 'search', id: uid('search'), placeholder: 'Name or id' });
  const status = h('select', { id: uid('status') },
    [['', 'All'], ['active', 'Active'], ['inactive', 'Inactive']].map(([v, l]) => h('option', { value: v }, l)));
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const tbody = h('tbody');
  const prev = button('Previous page', () => { state.cursors.pop(); load(); });
  const next = button('Next page', () => { state.cursors.push(state.next); load(); });
  const pageInfo = h('span', { class: 'page-info', role: 'status' });
  const turn = api.latest();
  async function load() {
    const mine = turn();
    err.hidden = true;
    try {
      const at = state.cursors[state.cursors.length - 1];
      const page = await api.get(`${path}${api.qs({ q: state.q, status: state.status, limit: 20, cursor: at })}`);
      if (!turn.is(mine)) return;
      state.next = page.next_cursor;
      replace(tbody, page.items.length ? page.items.map(row) : h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty)));
      prev.disabled = state.cursors.length <= 1;
      next.disabled = !page.next_cursor;
      pageInfo.textContent = `Page ${state.cursors.length}, ${page.items.length} shown`;
    } catch (e) {
      if (!turn.is(mine)) return;
      err.textContent = `Could not load the list: ${e.message}`;
      err.hidden = false;
    }
  }
  let t = null;
  search.addEventListener('input', () => { clearTimeout(t); t = setTimeout(() => { state.q = search.value.trim(); state.cursors = [null]; load(); }, 250); });
  status.addEventListener('change', () => { state.status = status.value; state.cursors = [null]; load(); });
  section.append(
    h('div', { class: 'toolbar' },
      h('div', { class: 'field inline' }, h('label', { for: search.id }, searchLabel), search),
      h('div', { class: 'field inline' }, h('label', { for: status.id }, 'Status'), status)),
    err,
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))), tbody)),
    h('div', { class: 'pager' }, prev, pageInfo, next));
  load();
  return load;
}

/** Applications: title, description, status, their credentials. */
export function renderApps(main, ctx) {
  const create = ctx.canWrite && ctx.features.apps ? button('Create New App', () => editApp(ctx, null, () => reload()), { class: 'primary', id: 'create-app' }) : null;
  const s = screen(main, 'apps-title', 'Applications', create);
  if (!ctx.features.apps) {
    s.append(unavailable('Applications', 'GET /apps'),
      h('p', {}, 'Credentials can still be grouped by their application label under API Management.'));
    return;
  }
  const reload = pagedList(s, {
    path: '/apps',
    columns: ['Title', 'Application ID', 'Status', 'Credentials', 'Created', ...(ctx.canWrite ? ['Actions'] : [])],
    empty: 'No applications yet.',
    row: (a) => h('tr', { 'data-app-id': a.id },
      h('td', {}, h('a', { href: `#/keys?${new URLSearchParams({ app_id: a.id, app: a.title })}` }, a.title), a.protected ? lock() : null,
        a.description ? h('span', { class: 'sub' }, a.description) : null),
      h('td', {}, h('code', {}, a.id)),
      h('td', {}, badge(a.status)),
      h('td', {}, `${a.active_keys ?? 0} active, ${a.inactive_keys ?? 0} inactive`),
      h('td', {}, when(a.created_at)),
      ctx.canWrite ? h('td', {}, h('div', { class: 'row-actions' },
        button('Edit', () => editApp(ctx, a, () => reload()), { 'aria-label': `Edit ${a.title}` }),
        button(a.status === 'active' ? 'Deactivate' : 'Activate', () => appStatus(a, () => reload()), { 'aria-label': `${a.status === 'active' ? 'Deactivate' : 'Activate'} ${a.title}` }),
        a.protected ? null : button('Delete', () => deleteApp(a, () => reload()), { class: 'danger', 'aria-label': `Delete ${a.title}` }))) : null),
  });
}

function editApp(ctx, app, done) {
  const title = h('input', { name: 'title', required: true, props: { value: app ? app.title : '' } });
  const description = h('textarea', { name: 'description', rows: 3, props: { value: app ? app.description || '' : '' } });
  formDialog(app ? `Edit ${app.title}` : 'Create New App', [field('Title', title), field('Description', description)],
    app ? 'Save' : 'Create app', async (form, dlg) => {
      if (!title.value.trim()) {
        showFieldError(form, 'title', 'Give the application a title.');
        return;
      }
      const body = { title: title.value.trim(), description: description.value };
      const r = app ? await api.patch(`/apps/${encodeURIComponent(app.id)}`, body) : await api.post('/apps', body);
      dlg.close();
      announce(`Saved ${r.title}.`);
      done(r);
    });
}

function appStatus(app, done) {
  const off = app.status === 'active';
  formDialog(`${off ? 'Deactivate' : 'Activate'} ${app.title}?`, [
    h('p', {}, off ? 'Every credential of this application will be refused (401) and their sessions end.'
      : 'Its credentials that were active before work again; those deactivated one by one stay inactive.'),
  ], off ? 'Deactivate app' : 'Activate app', async (form, dlg) => {
    const r = await api.patch(`/apps/${encodeURIComponent(app.id)}`, { status: off ? 'inactive' : 'active' });
    dlg.close();
    effective(`${app.title} is ${r.status}`, off ? 'Deactivated.' : 'Activated.', r.effective_by, () => done(r));
  }, { danger: off });
}

function deleteApp(app, done) {
  const cascade = h('input', { type: 'checkbox', id: uid('cascade'), name: 'cascade' });
  formDialog(`Delete ${app.title}?`, [
    h('p', {}, 'Are you sure you want to delete this application? This cannot be undone.'),
    h('div', { class: 'check', 'data-field': 'cascade' }, cascade, h('label', { for: cascade.id }, 'Also delete its credentials'),
      h('p', { class: 'field-error', role: 'alert', hidden: true })),
  ], 'Delete app', async (form, dlg) => {
    const r = await api.del(`/apps/${encodeURIComponent(app.id)}${cascade.checked ? '?cascade=true' : ''}`);
    dlg.close();
    effective(`${app.title} deleted`, 'Deleted.', r && r.effective_by, () => done(r));
  }, { danger: true });
}

/** Customers: child accounts. */
export function renderCustomers(main, ctx) {
  const write = ctx.canWriteAccounts && ctx.features.accounts;
  const create = write ? button('New customer', () => editCustomer(ctx, null, () => reload()), { class: 'primary', id: 'create-customer' }) : null;
  const s = screen(main, 'customers-title', 'Customers', create);
  if (!ctx.features.accounts) {
    s.append(unavailable('Customer accounts', 'GET /accounts'));
    return;
  }
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  s.append(err);
  const reload = pagedList(s, {
    path: '/accounts',
    columns: ['Customer Name', 'Account ID', 'Status', 'Permissions', 'Created', 'Actions'],
    empty: 'No customer accounts yet.',
    row: (a) => h('tr', { 'data-account-id': a.id },
      h('td', {}, a.name), h('td', {}, h('code', {}, a.id)), h('td', {}, badge(a.status)),
      h('td', { class: 'details' }, (a.permissions || []).join(', ') || 'none'),
      h('td', {}, when(a.created_at)),
      h('td', {}, h('div', { class: 'row-actions' },
        a.status === 'active' && !ctx.host ? button('Manage keys', () => ctx.actFor(a.id).catch((e) => { err.textContent = e.message; err.hidden = false; }),
          { 'aria-label': `Manage the credentials of ${a.name}` }) : null,
        write ? button('Edit', () => editCustomer(ctx, a, () => reload()), { 'aria-label': `Edit ${a.name}` }) : null,
        write ? button(a.status === 'active' ? 'Deactivate' : 'Activate', () => customerStatus(a, () => reload()), { 'aria-label': `${a.status === 'active' ? 'Deactivate' : 'Activate'} ${a.name}` }) : null))),
  });
}

function editCustomer(ctx, acc, done) {
  const name = h('input', { name: 'name', required: true, props: { value: acc ? acc.name : '' } });
  const mine = (ctx.who.permissions || []);
  const pool = acc ? [...new Set([...mine, ...(acc.permissions || [])])] : mine;
  formDialog(acc ? `Edit ${acc.name}` : 'New customer', [field('Customer Name', name), permissionBoxes(pool, acc ? acc.permissions : undefined)],
    acc ? 'Save' : 'Create customer', async (form, dlg) => {
      if (!name.value.trim()) {
        showFieldError(form, 'name', 'Give the customer a name.');
        return;
      }
      const body = { name: name.value.trim(), permissions: checked(form) };
      const r = acc ? await api.patch(`/accounts/${encodeURIComponent(acc.id)}`, body) : await api.post('/accounts', body);
      dlg.close();
      announce(`Saved ${r.name}.`);
      done(r);
    });
}

function customerStatus(acc, done) {
  const off = acc.status === 'active';
  formDialog(`${off ? 'Deactivate' : 'Activate'} ${acc.name}?`, [
    h('p', {}, off ? 'Every credential and session of this customer will be refused (401).' : 'Its credentials work again.'),
  ], off ? 'Deactivate customer' : 'Activate customer', async (form, dlg) => {
    const r = await api.patch(`/accounts/${encodeURIComponent(acc.id)}`, { status: off ? 'inactive' : 'active' });
    dlg.close();
    effective(`${acc.name} is ${r.status}`, off ? 'Deactivated.' : 'Activated.', r.effective_by, () => done(r));
  }, { danger: off });
}

/** The allowlist of browser origins of the management API. */
export async function renderAllowlist(main, ctx) {
  const s = screen(main, 'allow-title', 'Allowlist');
  if (!ctx.features.allowlist) {
    s.append(unavailable('Origin allowlist', 'GET /allowlist'));
    return;
  }
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const tbody = h('tbody');
  async function load() {
    err.hidden = true;
    try {
      const r = await api.get('/allowlist');
      replace(tbody, r.items.map((e) => h('tr', {},
        h('td', {}, h('code', {}, e.origin === 'self' ? location.origin : e.origin), e.protected ? lock() : null),
        h('td', {}, e.origin === 'self' ? 'this server\'s own origin (system default)' : e.protected ? 'system default' : ''),
        ctx.canWrite ? h('td', {}, e.protected ? null : button('Delete', () => remove(e), { class: 'danger', 'aria-label': `Delete ${e.origin}` })) : null)));
    } catch (e) {
      err.textContent = `Could not load the allowlist: ${e.message}`;
      err.hidden = false;
    }
  }
  function remove(entry) {
    formDialog(`Delete ${entry.origin}?`, [h('p', {}, 'Are you sure? Browsers on this origin will no longer reach the management API.')],
      'Delete origin', async (form, dlg) => {
        await api.del(`/allowlist/${encodeURIComponent(entry.id)}`);
        dlg.close();
        load();
      }, { danger: true });
  }
  const origin = h('input', { name: 'origin', id: uid('origin'), placeholder: 'https://admin.example.com', spellcheck: 'false' });
  const addErr = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const add = ctx.canWrite ? h('form', { class: 'toolbar', novalidate: true, on: { submit: async (ev) => {
    ev.preventDefault();
    addErr.hidden = true;
    try {
      await api.post('/allowlist', { origin: origin.value.trim() });
      origin.value = '';
      load();
    } catch (e) {
      addErr.textContent = e.message;
      addErr.hidden = false;
    }
  } } }, h('div', { class: 'field inline', 'data-field': 'origin' }, h('label', { for: origin.id }, 'Origin'), origin, addErr),
  h('button', { type: 'submit', class: 'primary' }, 'Add origin')) : null;
  s.append(add, err, h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Origin'), h('th', { scope: 'col' }, 'Note'), ctx.canWrite ? h('th', { scope: 'col' }, 'Actions') : null)), tbody)));
  load();
}

const ACTIONS = ['', 'key_created', 'key_updated', 'key_activated', 'key_deactivated', 'key_rotated', 'key_deleted',
  'app_created', 'app_updated', 'app_activated', 'app_deactivated', 'app_deleted',
  'account_created', 'account_updated', 'account_activated', 'account_deactivated',
  'origin_allowed', 'origin_removed', 'login', 'logout'];

/**
 * The account-wide activity log: filterable by action (here) and
 * credential (by the server), updated live (followEvents: the stream, or
 * polling where the server has none).
 */
export async function renderActivity(main, ctx) {
  const s = screen(main, 'activity-title', 'Activity log');
  if (!ctx.features.events) {
    s.append(unavailable('Account-wide activity log', 'GET /events'),
      h('p', {}, 'Each credential\'s own activity log is on its page under API Management.'));
    return;
  }
  const filter = { key_id: '' };
  let shownAction = '';
  const act = h('select', { id: uid('action') }, ACTIONS.map((a) => h('option', { value: a }, a ? action(a) : 'All actions')));
  const key = h('input', { id: uid('key'), placeholder: 'kw_…', spellcheck: 'false' });
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const live = h('span', { class: 'hint', role: 'status', id: 'activity-live' });
  const tbody = h('tbody');
  let cursor = null;
  const more = button('Older events', () => load(true), { hidden: true });
  /** Shows only the rows of the chosen action. */
  function applyAction() {
    for (const tr of tbody.querySelectorAll('tr[data-event]')) tr.hidden = Boolean(shownAction) && tr.dataset.event !== shownAction;
  }
  async function load(older = false) {
    err.hidden = true;
    try {
      const r = await api.get(`/events${api.qs({ ...filter, limit: 50, cursor: older ? cursor : null })}`);
      cursor = r.next_cursor;
      more.hidden = !cursor;
      const rows = eventRows(r.items, { withKey: true });
      if (older) tbody.append(...rows);
      else replace(tbody, rows);
      applyAction();
    } catch (e) {
      err.textContent = `Could not load events: ${e.message}`;
      err.hidden = false;
    }
  }
  let stop = () => {};
  function watch() {
    stop();
    stop = followEvents(filter, (events) => {
      const fresh = events.filter((e) => !tbody.querySelector(`[data-event-id="${CSS.escape(String(e.id))}"]`));
      if (!fresh.length) return;
      tbody.prepend(...eventRows(fresh, { withKey: true }));
      applyAction();
      announce(`${fresh.length} new event${fresh.length > 1 ? 's' : ''}.`);
    }, (st) => { live.textContent = st === 'reconnecting' ? liveWords(st) : `${liveWords(st)} since ${when(new Date().toISOString())}`; });
  }
  ctx.onLeave(() => stop());
  act.addEventListener('change', () => { shownAction = act.value; applyAction(); });
  key.addEventListener('change', () => { filter.key_id = key.value.trim(); load(); watch(); });
  s.append(h('div', { class: 'toolbar' },
    h('div', { class: 'field inline' }, h('label', { for: act.id }, 'Action'), act),
    h('div', { class: 'field inline' }, h('label', { for: key.id }, 'Credential'), key), live),
  err, h('div', { class: 'table-wrap' }, h('table', { class: 'events', id: 'activity-events' }, eventHead({ withKey: true }), tbody)), more);
  await load();
  watch();
}
