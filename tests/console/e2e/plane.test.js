// The console's feature-detected screens (applications, customers,
// allowlist, account-wide usage, live activity log), lit up against a
// stand-in for the routes issues 12 and 13 specify (plane_mock.js) in
// front of the real axum example server, so they are driven in the browser
// before those routes land.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, signIn, cspViolations, freePort } from './harness.js';
import { startPlaneMock } from './plane_mock.js';

let server;
let mock;
let browser;
let page;

before(async () => {
  server = await startServer('server');
  mock = await startPlaneMock(server.base, await freePort());
  browser = await launch();
  page = await newPage(browser);
  await signIn(page, mock.base, server.admin);
});

after(async () => {
  if (browser) await browser.close();
  if (mock) await mock.close();
  if (server) await server.stop();
});

const go = (hash) => page.evaluate((h) => { location.hash = h; }, hash);

test('applications: create, deactivate with effective_by, delete refused in words then cascaded', async () => {
  await go('#/apps');
  await page.getByRole('cell', { name: /Billing/ }).first().waitFor();
  await page.locator('#create-app').click();
  const dlg = page.getByRole('dialog', { name: 'Create New App' });
  await dlg.getByRole('button', { name: 'Create app' }).click();
  await dlg.locator('[data-field=title] .field-error').waitFor();
  await dlg.getByLabel('Title').fill('Reports');
  await dlg.getByLabel('Description').fill('Monthly <b>reports</b>');
  await dlg.getByRole('button', { name: 'Create app' }).click();
  await page.getByText('Monthly <b>reports</b>').waitFor();

  await page.getByRole('button', { name: 'Deactivate Billing' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Deactivate app' }).click();
  await page.locator('dialog .effective', { hasText: /Effective on every server by \d\d:\d\d:\d\d UTC/ }).waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: 'Activate Billing' }).waitFor();

  await page.getByRole('button', { name: 'Delete Billing' }).click();
  const del = page.getByRole('dialog', { name: 'Delete Billing?' });
  await del.getByRole('button', { name: 'Delete app' }).click();
  await del.locator('.form-error', { hasText: 'still has 1 key' }).waitFor();
  await del.getByLabel('Also delete its credentials').check();
  await del.getByRole('button', { name: 'Delete app' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: 'Delete Billing' }).waitFor({ state: 'detached' });
});

test('allowlist: the protected default entry has a lock and no delete; entries added and removed', async () => {
  await go('#/allowlist');
  const def = page.getByRole('row', { name: new RegExp(mock.base.replaceAll('.', '\\.')) });
  await def.waitFor();
  assert.equal(await def.getByAltText('Protected').count(), 1);
  assert.equal(await def.getByRole('button', { name: /Delete/ }).count(), 0);
  await page.getByLabel('Origin', { exact: true }).fill('not an origin');
  await page.getByRole('button', { name: 'Add origin' }).click();
  await page.locator('[data-field=origin] .field-error', { hasText: 'scheme://host' }).waitFor();
  await page.getByLabel('Origin', { exact: true }).fill('https://admin.example.com');
  await page.getByRole('button', { name: 'Add origin' }).click();
  await page.getByRole('button', { name: 'Delete https://admin.example.com' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete origin' }).click();
  await page.getByRole('button', { name: 'Delete https://admin.example.com' }).waitFor({ state: 'detached' });
});

test('customers: write controls with writeAccounts; acting for one the server refuses is said in words', async () => {
  await go('#/customers');
  await page.getByRole('cell', { name: 'Acme EU', exact: true }).waitFor();
  // The bootstrap admin holds writeAccounts: it may create and edit customers.
  assert.equal(await page.locator('#create-customer').count(), 1);
  assert.equal(await page.getByRole('button', { name: 'Edit Acme EU' }).count(), 1);
  // The real server has no such child account: 403, shown, and the
  // console stays on the admin's own account.
  await page.getByRole('button', { name: 'Manage the credentials of Acme EU' }).click();
  await page.locator('.form-error:not([hidden])').waitFor();
  await page.getByText('Account admin').waitFor();
});

test('usage: by Customer Name, the Call Origin filter changes the figures, a chart', async () => {
  await go('#/usage');
  await page.locator('#group-filter label', { hasText: 'Customer Name' }).click();
  const row = page.getByRole('row', { name: /Acme EU/ });
  await row.waitFor();
  const all = await row.textContent();
  await page.locator('#origin-filter label', { hasText: 'MCP only' }).click();
  await page.waitForFunction((before) => {
    const r = [...document.querySelectorAll('tr')].find((t) => t.textContent.includes('Acme EU'));
    return r && r.textContent !== before;
  }, all);
  assert.equal(await page.locator('.chart-box .uplot').count(), 1);
});

test('activity log: an event pushed on the stream appears without reloading', async () => {
  await go('#/activity');
  await page.locator('tr[data-event-id="evt_1"]').waitFor();
  await page.locator('tr[data-event-id="evt_live_1"]').waitFor();
  await page.getByText(/^Live since/).waitFor();
  assert.deepEqual(await cspViolations(page), []);
  assert.deepEqual(page.problems, []);
});
