// Shared by the console's end-to-end tests: starts an example server on a
// temporary SQLite file and a free port, launches Debian's Chromium
// headless through playwright-core, and records what a page must never do
// (CSP violations, script errors, alert dialogs).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '../../..');

/** Every wait in these tests is bounded by this (ms). */
export const WAIT = 10_000;

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `examples/<name>` (built by run.sh; `KEYWARD_CONSOLE_EXAMPLE_DIR`
 * overrides where), with `env` added to its environment, and waits, at most 30 s, until it answers.
 * Returns `{ base, admin: {id, secret}, stop() }`.
 */
export async function startServer(name = 'server', env = {}) {
  const dir = process.env.KEYWARD_CONSOLE_EXAMPLE_DIR || join(repo, 'target/debug/examples');
  const exe = join(dir, name);
  if (!existsSync(exe)) throw new Error(`${exe} missing: run tests/console/run.sh (it builds the examples with --features console)`);
  const tmp = mkdtempSync(join(tmpdir(), 'keyward-console-'));
  const port = await freePort();
  const creds = join(tmp, 'admin.json');
  const child = spawn(exe, [], {
    env: {
      ...process.env,
      KEYWARD_DATABASE_URL: `sqlite://${join(tmp, 'keyward.db')}?mode=rwc`,
      KEYWARD_ADDR: `127.0.0.1:${port}`,
      KEYWARD_ADMIN_CREDENTIALS: creds,
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${stderr}`);
    try {
      const r = await fetch(`${base}/openapi.json`);
      if (r.ok && existsSync(creds)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not answer within 30 s: ${stderr}`);
    }
    await sleep(100);
  }
  const admin = JSON.parse(readFileSync(creds, 'utf8'));
  return {
    base,
    admin,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const end = Date.now() + 10_000;
        while (child.exitCode === null && Date.now() < end) await sleep(50);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium (`CHROMIUM` overrides). */
export function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
}

/** Launches the browser headless with the flags this machine needs. */
export function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/**
 * A page in a fresh context (clipboard permitted) that records CSP
 * violations, uncaught errors, console errors and alert()/confirm()
 * dialogs in `page.problems`.
 */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.problems = [];
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // 401/404 answers the console handles (feature detection, a refused
    // secret) are logged by Chromium as failed resources; they are expected.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) page.problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', async (d) => {
    page.problems.push(`dialog: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  return page;
}

/** CSP violations the page saw. */
export async function cspViolations(page) {
  return page.evaluate(() => window.__csp || []);
}

/** Where screenshots go (docs/ of the repository). */
export function shot(page, name) {
  mkdirSync(join(repo, 'docs'), { recursive: true });
  return page.screenshot({ path: join(repo, 'docs', `${name}.png`) });
}

/** Signs in through the form. */
export async function signIn(page, base, { id, secret }) {
  await page.goto(`${base}/console/`);
  await page.getByLabel('Key ID').fill(id);
  await page.getByLabel('Secret').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#signout').waitFor();
}

/** A plain HTTP request with a key. */
export async function callWith(base, path, id, secret) {
  const r = await fetch(base + path, { headers: { 'x-api-key': id, 'x-api-secret': secret } });
  return r.status;
}

export { sleep };
