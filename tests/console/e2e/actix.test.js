// The console mounted by the actix-web example server: the same page, the
// same headers, sign-in, a credential created and its secret working.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, newPage, signIn, callWith, cspViolations } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer('actix_server');
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('actix-web serves the console with the same policy and it works', async () => {
  const r = await fetch(`${server.base}/console/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-security-policy') || '', /default-src 'self'.*frame-ancestors 'none'/);
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
  const page = await newPage(browser);
  await signIn(page, server.base, server.admin);
  await page.locator(`tr[data-key-id="${server.admin.id}"]`).waitFor();
  await page.locator('#create-key').click();
  const dlg = page.getByRole('dialog', { name: 'New credential' });
  await dlg.getByLabel('Name', { exact: true }).fill('actix-client');
  await dlg.getByRole('button', { name: 'Create credential' }).click();
  const shown = page.locator('.secret-dialog');
  await shown.waitFor();
  const id = await shown.locator('input[name=id]').inputValue();
  const secret = await shown.locator('input[name=secret]').inputValue();
  assert.equal(await callWith(server.base, '/applications', id, secret), 200);
  assert.deepEqual(await cspViolations(page), []);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
