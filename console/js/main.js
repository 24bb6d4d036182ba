// The console's shell: sign-in, navigation (hash routes), who is signed in.

import { h, replace, button, announce } from './dom.js';
import { clock } from './format.js';
import * as api from './api.js';
import { renderSignIn } from './signin.js';
import { renderKeys } from './keys.js';
import { renderKeyDetail } from './key_detail.js';
import { renderAccountUsage } from './usage.js';
import { renderApps, renderCustomers, renderAllowlist, renderActivity } from './optional.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const nav = document.getElementById('nav');
const whoEl = document.getElementById('who');

const SCREENS = [
  ['#/keys', 'API Management'],
  ['#/apps', 'Applications'],
  ['#/usage', 'API Usage'],
  ['#/activity', 'Activity log'],
  ['#/customers', 'Customers'],
  ['#/allowlist', 'Allowlist'],
];

/** What every screen gets: who is signed in and what they may do. */
const ctx = {
  who: null,
  /** The permissions of the customer acted for, if any. */
  actingPermissions: null,
  /** The permissions a new credential may be given. */
  grantable() {
    const mine = (this.who && this.who.permissions) || [];
    return this.actingPermissions ? mine.filter((p) => this.actingPermissions.includes(p)) : mine;
  },
  canWrite: false,
  canReadAccounts: false,
  canWriteAccounts: false,
  /** Which of the newer management routes this server answers. */
  features: {},
  cleanup: [],
  /** Runs `fn` when the screen is left (stops streams, timers). */
  onLeave(fn) {
    this.cleanup.push(fn);
  },
};

function leave() {
  for (const fn of ctx.cleanup.splice(0)) {
    try {
      fn();
    } catch {
      // A cleanup failing must not keep the next screen from rendering.
    }
  }
}

function renderNav() {
  const here = location.hash.split('?')[0] || '#/keys';
  replace(nav, h('ul', {}, SCREENS.map(([href, label]) => h('li', {},
    h('a', { href, 'aria-current': here.startsWith(href) ? 'page' : null }, label)))));
}

async function route() {
  leave();
  if (!api.signedIn()) return;
  renderNav();
  const hash = location.hash || '#/keys';
  const [path] = hash.slice(1).split('?');
  const parts = path.split('/').filter(Boolean);
  main.focus({ preventScroll: true });
  switch (parts[0]) {
    case 'keys':
      if (parts[1]) return renderKeyDetail(main, ctx, decodeURIComponent(parts[1]));
      return renderKeys(main, ctx);
    case 'apps':
      return renderApps(main, ctx);
    case 'usage':
      return renderAccountUsage(main, ctx);
    case 'activity':
      return renderActivity(main, ctx);
    case 'customers':
      return renderCustomers(main, ctx);
    case 'allowlist':
      return renderAllowlist(main, ctx);
    default:
      location.hash = '#/keys';
  }
}

/** Reads who is signed in (and for which account) and redraws the header. */
async function refreshWho(known) {
  ctx.who = known || await api.get('/auth/whoami');
  const perms = ctx.who.permissions || [];
  ctx.canWrite = perms.includes('writeApiKeys');
  ctx.canReadAccounts = perms.includes('readAccounts');
  ctx.canWriteAccounts = perms.includes('writeAccounts');
  // The host's person acts for the account the host gives (no x-account-id).
  ctx.host = api.hostMode();
  const acting = api.actingFor();
  const person = ctx.who.person;
  replace(whoEl,
    person ? h('span', { class: 'who-person', id: 'who-person', title: `Signed in by the application as ${person.id}` },
      `Signed in as ${person.name}`) : null,
    h('span', { class: 'who-account', title: person ? `Account of ${person.name}` : `Signed in with ${ctx.who.key_id || 'a session'}` },
      acting ? `Acting for ${acting}` : `Account ${ctx.who.account_id}`),
    acting ? button('Back to my account', () => ctx.actFor(null), { id: 'act-home' }) : null,
    h('span', { class: ctx.canWrite ? 'badge ok' : 'badge' }, ctx.canWrite ? 'Admin' : 'Read only'),
    api.sessionEndsAt() ? h('span', { class: 'who-session', id: 'session-ends', title: 'When this session ends' },
      `until ${clock(api.sessionEndsAt()).replace(/:\d\d UTC$/, ' UTC')}`) : null,
    api.canSignOut() ? button('Sign out', signOut, { id: 'signout' }) : null);
  document.body.dataset.role = ctx.canWrite ? 'admin' : 'staff';
}

/** Manages a customer account's credentials (or, with null, one's own). */
ctx.actFor = async (accountId) => {
  // A customer's keys may hold only what the customer holds.
  ctx.actingPermissions = null;
  if (accountId) {
    try {
      ctx.actingPermissions = (await api.get(`/accounts/${encodeURIComponent(accountId)}`)).permissions || [];
    } catch {
      ctx.actingPermissions = null;
    }
  }
  api.actFor(accountId);
  try {
    await refreshWho();
  } catch (e) {
    api.actFor(null);
    ctx.actingPermissions = null;
    await refreshWho();
    throw e;
  }
  announce(accountId ? `Acting for ${accountId}.` : 'Back to your own account.');
  if (location.hash === '#/keys') route();
  else location.hash = '#/keys';
};

async function signedIn(known) {
  await refreshWho(known);
  const [doc, apps, accounts, allowlist, usage, events] = await Promise.all([api.openapi(),
    ...['/apps?limit=1', '/accounts?limit=1', '/allowlist', '/usage?limit=1', '/events?limit=1'].map(api.available)]);
  const newKey = doc && doc.components && doc.components.schemas && doc.components.schemas.NewKey;
  // Per-credential browser origins, where the server's POST /apikeys takes them.
  const keyOrigins = Boolean(newKey && newKey.properties && newKey.properties.allowed_origins);
  ctx.features = { apps, accounts, allowlist, usage, events, keyOrigins };
  top.hidden = false;
  announce('Signed in.');
  if (!location.hash || location.hash === '#/') location.hash = '#/keys';
  else route();
}

function showSignIn(notice) {
  leave();
  top.hidden = true;
  ctx.who = null;
  delete document.body.dataset.role;
  renderSignIn(main, () => signedIn().catch((e) => showSignIn(e.message)), notice);
}

async function signOut() {
  try {
    await api.logout();
    showSignIn('Signed out.');
  } catch (e) {
    showSignIn(`Signed out here; the server said: ${e.message}`);
  }
}

api.onSessionEnd((msg) => showSignIn(msg));
window.addEventListener('hashchange', route);
// Behind the host's login the host's person is signed in already: no
// key form. Otherwise the key form.
api.configure()
  .then(() => api.detectHost())
  .then((who) => (who ? signedIn(who).catch((e) => showSignIn(e.message)) : showSignIn()));
