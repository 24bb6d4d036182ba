// What the example server cannot answer yet, driven through the stand-in
// of plane_mock.js in front of it (each part steps aside once the real
// server answers): the activity log live through GET /events/stream
// (Server-Sent Events read with fetch, a dropped connection resumed with
// Last-Event-ID, nothing missed), and usage by application (Client Name)
// and by customer (Customer Name) in issue 13's shape, with the Call
// Origin filter switching the figures.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, signIn, cspViolations, callWith, freePort, sleep } from './harness.js';
import { startPlaneMock } from './plane_mock.js';

let server;
let mock;
let browser;
let page;
let admin;

before(async () => {
  server = await startServer('server');
  admin = { 'x-api-key': server.admin.id, 'x-api-secret': server.admin.secret, 'content-type': 'application/json' };
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

async function api(method, path, body) {
  const r = await fetch(server.base + path, { method, headers: admin, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

test('activity log over the event stream: new events appear without reloading, a dropped stream resumes from Last-Event-ID', async () => {
  await go('#/activity');
  await page.locator('#activity-events tr[data-event=key_created]').first().waitFor();
  await page.locator('#activity-live', { hasText: /^Live since/ }).waitFor();
  const one = await api('POST', '/apps', { title: 'Streamed one' });
  await page.locator('#activity-events tr[data-event=app_created]', { hasText: 'Streamed one' }).waitFor();
  // The stand-in cut the first connection after that event; the console
  // came back with its id.
  const deadline = Date.now() + 10_000;
  while (mock.connections < 2 && Date.now() < deadline) await sleep(100);
  assert.ok(mock.connections >= 2, 'the console reconnected');
  assert.ok(one.body.id.startsWith('app_'));
  assert.ok(mock.sentIds[0], 'the first connection carried an event id');
  assert.equal(mock.lastEventIds[1], mock.sentIds[0], 'Last-Event-ID names the last event received');
  await api('POST', '/apps', { title: 'Streamed two' });
  await page.locator('#activity-events tr[data-event=app_created]', { hasText: 'Streamed two' }).waitFor();
  assert.equal(await page.locator('#activity-events tr[data-event=app_created]', { hasText: 'Streamed one' }).count(), 1, 'shown once');
  assert.deepEqual(await cspViolations(page), []);
  assert.deepEqual(page.problems, []);
});

test('usage by Client Name and Customer Name; the Call Origin filter switches the figures', async () => {
  const app = (await api('POST', '/apps', { title: 'Reports' })).body;
  const made = (await api('POST', '/apikeys', { name: 'reports-key', app_id: app.id, permissions: ['readApplications'] })).body;
  for (let i = 0; i < 4; i += 1) assert.equal(await callWith(server.base, '/applications', made.id, made.secret), 200);

  await go('#/usage');
  await page.locator('#group-filter label', { hasText: 'Client Name' }).click();
  const row = page.getByRole('row', { name: /Reports/ });
  const cells = async () => (await row.locator('td').allTextContents()).join(' ');
  // The calls arrive with the server's next usage flush (bounded wait).
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.locator('#origin-filter label', { hasText: 'API only' }).click();
    await sleep(500);
    // Successes, failures, rate limited, over credits.
    if (await row.count() && await cells() === '4 0 0 0') break;
    if (Date.now() > deadline) assert.fail(`usage by application never showed its 4 calls: ${await page.locator('main').textContent()}`);
    await page.locator('#origin-filter label', { hasText: 'All' }).click();
    await sleep(1000);
  }
  assert.equal(await page.locator('.chart-box .uplot').count(), 1);
  await page.locator('#origin-filter label', { hasText: 'MCP only' }).click();
  await row.waitFor({ state: 'detached' });
  await page.locator('#origin-filter label', { hasText: 'All' }).click();
  await row.waitFor();

  await page.locator('#group-filter label', { hasText: 'Customer Name' }).click();
  const acct = page.locator('table.totals tbody tr').first();
  await page.locator('table.totals caption', { hasText: 'Customer Name' }).waitFor();
  await acct.locator('th', { hasText: 'admin' }).waitFor();
  assert.ok(Number((await acct.locator('td').first().textContent()) || 0) >= 4);
  assert.deepEqual(page.problems, []);
});
