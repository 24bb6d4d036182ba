// The console behind the host application's own login: the example
// server's demo host login (`KEYWARD_DEMO_HOST_LOGIN`) sets the host's
// HttpOnly cookie, its middleware puts a HostUser on every request, and
// the console shows "Signed in as …" with no key form, acts as that person
// (audited by name), reads Staff as read-only, and signs out through the
// host. Against the axum example, and the actix one with
// KEYWARD_CONSOLE_EXAMPLE=actix_server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, cspViolations, shot as takeShot } from './harness.js';

const EXAMPLE = process.env.KEYWARD_CONSOLE_EXAMPLE || 'server';
const shot = (page, name) => (EXAMPLE === 'server' ? takeShot(page, name) : Promise.resolve());
const PASSWORD = 'demo-host-password';

let server;
let browser;

before(async () => {
  server = await startServer(EXAMPLE, { KEYWARD_DEMO_HOST_LOGIN: PASSWORD });
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** Signs in on the host's own page; lands on the console. */
async function hostSignIn(page, user, password = PASSWORD) {
  await page.goto(`${server.base}/host/login`);
  await page.getByLabel('Person').selectOption(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a wrong host password signs nobody in; the console then asks for a key', async () => {
  const page = await newPage(browser);
  await hostSignIn(page, 'ada', 'not-the-password');
  await page.getByText('wrong password').waitFor();
  await page.goto(`${server.base}/console/`);
  await page.getByLabel('Key ID').waitFor();
  assert.equal(await page.locator('#who-person').count(), 0);
  await page.context().close();
});

test('the host\'s Admin: signed in as the person, no key form, acts and is audited by name, signs out through the host', async () => {
  const page = await newPage(browser);
  await hostSignIn(page, 'ada');
  await page.waitForURL(/\/console\/#\/keys$/);
  await page.locator('#who-person', { hasText: 'Signed in as Ada Admin' }).waitFor();
  assert.equal(await page.getByLabel('Key ID').count(), 0, 'no key form');
  await page.locator(`tr[data-key-id="${server.admin.id}"]`).waitFor();

  // The console holds no secret: the host's cookie is HttpOnly (the page
  // cannot read it) and nothing is in storage.
  const seen = await page.evaluate(() => document.cookie + JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.equal(seen, '{}{}');
  const [cookie] = (await page.context().cookies()).filter((c) => c.name === 'demo_host_session');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict');

  // Ada creates a credential; its audit event names her.
  await page.locator('#create-key').click();
  const dlg = page.getByRole('dialog', { name: 'New credential' });
  await dlg.getByLabel('Name', { exact: true }).fill('made-by-ada');
  await dlg.getByRole('button', { name: 'Create credential' }).click();
  const id = await page.locator('.secret-dialog input[name=id]').inputValue();
  const secret = await page.locator('.secret-dialog input[name=secret]').inputValue();
  await page.getByRole('button', { name: 'I have stored the secret' }).click();
  const r = await fetch(`${server.base}/auth/whoami`, { headers: { 'x-api-key': id, 'x-api-secret': secret } });
  assert.equal(r.status, 200, 'the credential Ada made works');
  await page.locator(`tr[data-key-id="${id}"] .key-name`).click();
  await page.locator('#key-events tr[data-event=key_created]', { hasText: 'Ada Admin' }).waitFor();
  await shot(page, 'console-host-login');

  // Sign out ends the host's session: the old cookie no longer signs in.
  await page.locator('#signout').click();
  await page.getByLabel('Key ID').waitFor();
  const after = await fetch(`${server.base}/auth/whoami`, { headers: { cookie: `demo_host_session=${cookie.value}` } });
  assert.equal(after.status, 401);
  assert.deepEqual(await cspViolations(page), []);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the host\'s Staff person sees everything read-only', async () => {
  const page = await newPage(browser);
  await hostSignIn(page, 'sam');
  await page.locator('#who-person', { hasText: 'Signed in as Sam Staff' }).waitFor();
  await page.locator(`tr[data-key-id="${server.admin.id}"]`).waitFor();
  assert.equal(await page.getByText('Read only').count(), 1);
  assert.equal(await page.locator('#create-key').count(), 0);
  assert.equal(await page.locator('[data-action]').count(), 0);
  // Every screen read-only: no create, edit, status or delete control.
  const writes = /^(Create New App|New customer|Add origin|Edit|Deactivate|Activate|Delete|Manage)/;
  for (const hash of ['#/apps', '#/allowlist', '#/customers', '#/activity', '#/usage']) {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.locator('main table, main .form-error:not([hidden])').first().waitFor();
    assert.equal(await page.getByRole('button', { name: writes }).count(), 0, hash);
  }
  // The API itself refuses Sam's writes (not only the screen).
  const write = await page.evaluate(async () => (await fetch('/apikeys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"x","permissions":[]}' })).status);
  assert.equal(write, 403);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
