// The admin console in a real browser (Debian's Chromium), against the
// axum example server on a temporary SQLite file: sign-in, create a
// credential and use its copied secret over plain HTTP, deactivate (401)
// and reactivate, regenerate, usage with the Call Origin filter, delete,
// the activity log, protected entries, a Staff sign-in without write
// controls, an XSS-named credential rendered inert, the CSP, a phone-sized
// viewport; screenshots into docs/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, signIn, callWith, cspViolations, shot as takeShot, sleep } from './harness.js';

// `KEYWARD_CONSOLE_EXAMPLE=actix_server` runs the same walk against the
// actix-web example (run.sh does both); screenshots come from axum's.
const EXAMPLE = process.env.KEYWARD_CONSOLE_EXAMPLE || 'server';
const shot = (page, name) => (EXAMPLE === 'server' ? takeShot(page, name) : Promise.resolve());

let server;
let browser;

before(async () => {
  server = await startServer(EXAMPLE);
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const clipboard = (page) => page.evaluate(() => navigator.clipboard.readText());

/** Copies one value of the secret dialog through its button and reads the clipboard. */
async function copied(page, label) {
  await page.getByRole('button', { name: `Copy ${label}` }).click();
  await page.locator('.secret-dialog .copy-status', { hasText: 'Copied' }).first().waitFor();
  const v = await clipboard(page);
  assert.ok(v.length > 0, `clipboard holds the ${label}`);
  return v;
}

/** Fills and submits the new-credential dialog; leaves the secret dialog open. */
async function createCredential(page, name, { permissions, application } = {}) {
  await page.locator('#create-key').click();
  const dlg = page.getByRole('dialog', { name: 'New credential' });
  await dlg.getByLabel('Name', { exact: true }).fill(name);
  if (application) await dlg.getByLabel('Application label').fill(application);
  if (permissions) {
    for (const box of await dlg.locator('input[name=permissions]').all()) {
      const p = await box.getAttribute('value');
      await box.setChecked(permissions.includes(p));
    }
  }
  await dlg.getByRole('button', { name: 'Create credential' }).click();
  await page.getByRole('dialog', { name: 'Credential created' }).waitFor();
}

async function closeSecret(page) {
  await page.getByRole('button', { name: 'I have stored the secret' }).click();
  await page.locator('.secret-dialog').waitFor({ state: 'detached' });
}

/** Confirms the open confirmation dialog, then closes the "effective" one. */
async function confirmAndClose(page, confirmLabel) {
  await page.getByRole('dialog').getByRole('button', { name: confirmLabel, exact: true }).click();
  const eff = page.locator('dialog .effective');
  await eff.waitFor();
  const text = await eff.textContent();
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  return text;
}

test('console pages carry the strict security headers', async () => {
  for (const path of ['/console/', '/console/js/main.js', '/console/app.css', '/console/nope']) {
    const r = await fetch(server.base + path);
    const csp = r.headers.get('content-security-policy') || '';
    assert.match(csp, /default-src 'self'/, path);
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
  }
  // HEAD: GET's status and headers, no body (over the wire).
  for (const enc of ['identity', 'gzip']) {
    const g = await fetch(`${server.base}/console/app.css`, { headers: { 'accept-encoding': enc } });
    const glen = (await g.arrayBuffer()).byteLength;
    const hd = await fetch(`${server.base}/console/app.css`, { method: 'HEAD', headers: { 'accept-encoding': enc } });
    assert.equal(hd.status, 200);
    assert.equal(hd.headers.get('etag'), g.headers.get('etag'));
    assert.equal((await hd.arrayBuffer()).byteLength, 0);
    if (enc === 'identity') assert.equal(Number(hd.headers.get('content-length')), glen);
  }
  const page = await fetch(`${server.base}/console/`);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  const html = await page.text();
  assert.doesNotMatch(html, /<script>(?!<\/script>)|<style|style=|onerror=|onclick=/i, 'no inline script or style');
  const etag = page.headers.get('etag');
  const again = await fetch(`${server.base}/console/`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
});

test('the first load transfers less than 300 KB', async () => {
  const page = await newPage(browser);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
  await page.goto(`${server.base}/console/`, { waitUntil: 'networkidle' });
  await page.getByLabel('Key ID').waitFor();
  console.log(`first load: ${bytes} bytes on the wire`);
  assert.ok(bytes > 10_000 && bytes < 300_000, `${bytes} bytes`);
  await page.context().close();
});

test('an admin manages a credential end to end', async () => {
  const page = await newPage(browser);
  let token = null;
  page.on('response', async (r) => {
    if (r.url().endsWith('/auth/login') && r.ok()) token = (await r.json()).token;
  });
  await page.goto(`${server.base}/console/`);
  await page.getByLabel('Key ID').waitFor();
  await shot(page, 'console-signin');

  // A wrong secret is refused in words, next to the form.
  await page.getByLabel('Key ID').fill(server.admin.id);
  await page.getByLabel('Secret').fill('kw_sk_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.signin .form-error', { hasText: 'not accepted' }).waitFor();

  await signIn(page, server.base, server.admin);
  assert.ok(token, 'a session token was issued');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie + location.href);
  assert.ok(!stored.includes(token), 'the token is in no storage, cookie or URL');

  // The protected admin key: a lock, no delete.
  const adminRow = page.locator(`tr[data-key-id="${server.admin.id}"]`);
  await adminRow.waitFor();
  assert.equal(await adminRow.locator('.lock').count(), 1);
  assert.equal(await adminRow.locator('[data-action=delete]').count(), 0);
  assert.equal(await adminRow.locator('[data-action=edit]').count(), 1);

  // A value the server refuses (422 naming the field) is shown in words
  // next to that field, and nothing is created.
  await page.locator('#create-key').click();
  const form = page.getByRole('dialog', { name: 'New credential' });
  await form.getByLabel('Name', { exact: true }).fill('bad-network');
  await form.getByLabel('Allowed networks').fill('not-a-network');
  await form.getByRole('button', { name: 'Create credential' }).click();
  const fieldError = form.locator('[data-field=allowed_cidrs] .field-error');
  await fieldError.waitFor();
  assert.ok((await fieldError.textContent()).length > 5);
  assert.equal(await form.getByLabel('Allowed networks').getAttribute('aria-invalid'), 'true');
  await page.keyboard.press('Escape');
  await form.waitFor({ state: 'detached' });
  assert.equal(await page.locator('.key-name', { hasText: 'bad-network' }).count(), 0);

  // Create: the secret shown once, copied, and it works over plain HTTP.
  await createCredential(page, 'billing-sync', { application: 'Billing', permissions: ['readApplications'] });
  const dlg = page.getByRole('dialog', { name: 'Credential created' });
  await dlg.getByText('will not be shown again').waitFor();
  const id = await copied(page, 'Client ID (x-api-key)');
  const secret = await copied(page, 'Client secret (x-api-secret)');
  assert.match(id, /^kw_/);
  assert.match(secret, /^kw_sk_/);
  assert.equal(await callWith(server.base, '/applications', id, secret), 200);
  const single = await copied(page, 'Single-string key (Authorization: Bearer)');
  assert.match(single, /^kw_ak_/);
  const bearer = await fetch(`${server.base}/applications`, { headers: { authorization: `Bearer ${single}` } });
  assert.equal(bearer.status, 200);
  await shot(page, 'console-new-credential');
  await closeSecret(page);
  assert.equal(await page.locator('input[name=secret]').count(), 0, 'the secret left the page');

  const row = page.locator(`tr[data-key-id="${id}"]`);
  await row.waitFor();
  await shot(page, 'console-api-management');

  // Search and the Active / Inactive toggle are answered by the server.
  await page.getByLabel('Search').fill('billing');
  await page.locator(`tr[data-key-id="${server.admin.id}"]`).waitFor({ state: 'detached' });
  await row.waitFor();
  await page.getByLabel('Search').fill('');
  await adminRow.waitFor();

  // Rename.
  await row.getByRole('button', { name: 'Edit billing-sync' }).click();
  await page.getByRole('dialog').getByLabel('Name', { exact: true }).fill('billing-export');
  await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
  await row.locator('.key-name', { hasText: 'billing-export' }).waitFor();

  // The key's page: deactivate (401), reactivate (200).
  await row.locator('.key-name').click();
  await page.locator('#key-title', { hasText: 'billing-export' }).waitFor();
  await page.getByRole('button', { name: 'Deactivate billing-export' }).click();
  const eff = await confirmAndClose(page, 'Deactivate');
  assert.match(eff, /Effective on every server by \d\d:\d\d:\d\d UTC/);
  assert.equal(await callWith(server.base, '/applications', id, secret), 401);
  await page.locator('#key-events tr[data-event=key_deactivated]').waitFor();
  await page.getByRole('button', { name: 'Activate billing-export' }).click();
  await confirmAndClose(page, 'Activate');
  assert.equal(await callWith(server.base, '/applications', id, secret), 200);
  await page.locator('#key-events tr[data-event=key_activated]').waitFor();

  // The status filter sees it inactive only while it is.
  // Regenerate with no grace: the old secret stops, the new one works.
  await page.getByRole('button', { name: 'Regenerate billing-export' }).click();
  await page.getByRole('dialog').getByLabel('Old secret').selectOption('0');
  await page.getByRole('dialog').getByRole('button', { name: 'Regenerate secret' }).click();
  await page.getByRole('dialog', { name: 'New secret' }).waitFor();
  const rotated = await copied(page, 'Client secret (x-api-secret)');
  assert.notEqual(rotated, secret);
  await closeSecret(page);
  assert.equal(await callWith(server.base, '/applications', id, secret), 401);
  await page.locator('#key-events tr[data-event=key_rotated]').waitFor();
  for (let i = 0; i < 3; i += 1) assert.equal(await callWith(server.base, '/applications', id, rotated), 200);
  await page.locator('#key-events tr[data-event=key_updated]').waitFor();
  await shot(page, 'console-key');

  // The demo MCP route, on servers that have one, counts as origin mcp.
  const mcp = await fetch(`${server.base}/mcp`, {
    method: 'POST',
    headers: { 'x-api-key': id, 'x-api-secret': rotated, 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  const hasMcp = mcp.status !== 404 && mcp.status !== 405;

  // Usage: the calls arrive with the server's next usage flush (every
  // 10 s); poll the screen, bounded.
  const total = page.getByTestId('usage-total');
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.locator('#origin-filter label', { hasText: 'API only' }).click();
    await sleep(300);
    const t = (await total.textContent()) || '';
    if (/^6 successful and 2 failed/.test(t) && t.includes('API only')) break;
    if (Date.now() > deadline) assert.fail(`usage never showed the 6 + 2 calls: ${t}`);
    await sleep(1000);
    await page.locator('#origin-filter label', { hasText: 'All' }).click();
  }
  await page.locator('#origin-filter label', { hasText: 'MCP only' }).click();
  await total.filter({ hasText: hasMcp ? /^[1-9]\d* successful.*MCP only/ : /^0 successful and 0 failed.*MCP only/ }).waitFor();
  await page.locator('#origin-filter label', { hasText: 'All' }).click();
  await total.filter({ hasText: hasMcp ? /^([7-9]|\d\d+) successful and 2 failed.*\(All\)/ : /^6 successful and 2 failed.*\(All\)/ }).waitFor();
  assert.equal(await page.locator('#key-usage .uplot').count(), 1, 'a uPlot chart is drawn');
  await page.locator('#key-usage').scrollIntoViewIfNeeded();
  await shot(page, 'console-usage');

  // Delete, with "Are you sure…?": the key stops working.
  await page.getByRole('button', { name: 'Delete billing-export' }).click();
  await page.getByRole('dialog').getByText('Are you sure').waitFor();
  await confirmAndClose(page, 'Delete credential');
  await page.locator('#keys-title').waitFor();
  assert.equal(await callWith(server.base, '/applications', id, rotated), 401);
  await page.locator(`tr[data-key-id="${id}"]`).waitFor({ state: 'detached' });

  // Sign-out ends the session on the server.
  await page.locator('#signout').click();
  await page.getByLabel('Key ID').waitFor();
  const who = await fetch(`${server.base}/auth/whoami`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(who.status, 401);

  assert.deepEqual(await cspViolations(page), []);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a credential named like markup renders as text and runs nothing', async () => {
  const page = await newPage(browser);
  await signIn(page, server.base, server.admin);
  const name = '<img src=x onerror=alert(1)>';
  await createCredential(page, name, { permissions: [] });
  await closeSecret(page);
  const link = page.locator('.key-name', { hasText: name });
  await link.waitFor();
  assert.equal(await link.textContent(), name);
  await link.click();
  await page.locator('#key-title', { hasText: name }).waitFor();
  assert.equal(await page.locator('img[src="x"]').count(), 0);
  assert.deepEqual(page.problems, [], 'no alert, no error');
  assert.deepEqual(await cspViolations(page), []);
  await page.context().close();
});

test('a Staff sign-in (readApiKeys only) sees no write controls', async () => {
  const admin = await newPage(browser);
  await signIn(admin, server.base, server.admin);
  await createCredential(admin, 'staff', { permissions: ['readApiKeys'] });
  const id = await admin.locator('.secret-dialog input[name=id]').inputValue();
  const secret = await admin.locator('.secret-dialog input[name=secret]').inputValue();
  await closeSecret(admin);
  await admin.context().close();

  // Keyboard only: the key field has focus, Tab to the secret, Enter.
  const page = await newPage(browser);
  await page.goto(`${server.base}/console/`);
  await page.getByLabel('Key ID').waitFor();
  await page.keyboard.type(id);
  await page.keyboard.press('Tab');
  await page.keyboard.type(secret);
  await page.keyboard.press('Enter');
  await page.locator('#signout').waitFor();
  await page.locator(`tr[data-key-id="${id}"]`).waitFor();
  assert.equal(await page.locator('#create-key').count(), 0);
  const writes = /^(New credential|Edit|Regenerate|Deactivate|Activate|Delete)/;
  assert.equal(await page.locator('[data-action]').count(), 0);
  assert.equal(await page.getByRole('button', { name: writes }).count(), 0);
  assert.equal(await page.getByText('Read only').count(), 1);
  await shot(page, 'console-staff');
  await page.locator(`tr[data-key-id="${id}"] .key-name`).click();
  await page.locator('#key-title').waitFor();
  await page.locator('#key-events tr[data-event=key_created]').waitFor();
  assert.equal(await page.locator('[data-action]').count(), 0);
  assert.equal(await page.getByRole('button', { name: writes }).count(), 0);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('screens of routes this server lacks say so; all screens render', async () => {
  const page = await newPage(browser);
  await signIn(page, server.base, server.admin);
  for (const [hash, route] of [['#/apps', 'GET /apps'], ['#/customers', 'GET /accounts'], ['#/allowlist', 'GET /allowlist'], ['#/usage', 'GET /usage'], ['#/activity', 'GET /events']]) {
    await page.evaluate((h) => { location.hash = h; }, hash);
    // Either the plain "not available" state or the screen's table.
    await page.locator(`[data-unavailable="${route}"], main table`).first().waitFor();
    const gone = await page.locator(`[data-unavailable="${route}"]`).count();
    if (gone) await page.getByText('not available on this server').first().waitFor();
  }
  assert.deepEqual(page.problems, []);
  assert.deepEqual(await cspViolations(page), []);
  await page.context().close();
});

test('works on a phone-sized screen (390×844)', async () => {
  const page = await newPage(browser, { width: 390, height: 844 });
  await signIn(page, server.base, server.admin);
  await page.locator(`tr[data-key-id="${server.admin.id}"]`).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling of the page (${overflow}px)`);
  await page.locator('#create-key').click();
  const box = await page.getByRole('dialog', { name: 'New credential' }).boundingBox();
  assert.ok(box && box.width <= 390, 'the dialog fits');
  await page.keyboard.press('Escape');
  await shot(page, 'console-mobile');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});


test('the list pages through the server cursor and filters by status', async () => {
  const admin = { 'x-api-key': server.admin.id, 'x-api-secret': server.admin.secret, 'content-type': 'application/json' };
  const made = [];
  for (let i = 0; i < 22; i += 1) {
    const r = await fetch(`${server.base}/apikeys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: `bulk-${String(i).padStart(2, '0')}`, permissions: [] }) });
    assert.equal(r.status, 201);
    made.push((await r.json()).id);
  }
  const off = await fetch(`${server.base}/apikeys/${made[5]}`, { method: 'PATCH', headers: admin, body: '{"status":"inactive"}' });
  assert.equal(off.status, 200);

  const page = await newPage(browser);
  await signIn(page, server.base, server.admin);
  const rows = page.locator('table.keys tbody tr');
  await page.locator('.page-info', { hasText: 'Page 1, 20 shown' }).waitFor();
  assert.ok(await page.locator('#prev-page').isDisabled());
  const first = await rows.evaluateAll((trs) => trs.map((t) => t.dataset.keyId));
  await page.locator('#next-page').click();
  await page.locator('.page-info', { hasText: /^Page 2/ }).waitFor();
  const second = await rows.evaluateAll((trs) => trs.map((t) => t.dataset.keyId));
  assert.ok(second.length > 0);
  assert.equal(first.filter((id) => second.includes(id)).length, 0, 'pages do not overlap');
  await page.locator('#prev-page').click();
  await page.locator('.page-info', { hasText: 'Page 1, 20 shown' }).waitFor();

  await page.locator('#status-filter label', { hasText: 'Inactive' }).click();
  await page.locator('.page-info', { hasText: 'Page 1, 1 shown' }).waitFor();
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((t) => t.dataset.keyId)), [made[5]]);
  await page.locator('#status-filter label', { hasText: 'Active' }).first().click();
  await page.locator('.page-info', { hasText: 'Page 1, 20 shown' }).waitFor();
  assert.equal(await page.locator(`tr[data-key-id="${made[5]}"]`).count(), 0);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
