// End-to-end tests of the web console: a real tapir (simulated PBX) and headless Chromium
// driven by playwright-core, run with node's own test runner (`npm test`).
//
// Environment:
//   TAPIR_BIN       the tapir binary (default: <repo>/target/debug/tapir)
//   CHROMIUM_BIN    the browser (default: /usr/bin/chromium, Debian's `chromium` package)
//   SCREENSHOTS_DIR where screenshots go (default: console-tests/screenshots)
//
// The scenarios run in order and share one server: later ones build on the users and lines
// set up before. Nothing waits a fixed time: every step waits for a condition.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const TAPIR_BIN = process.env.TAPIR_BIN || path.resolve(here, '../target/debug/tapir');
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SCREENSHOTS = process.env.SCREENSHOTS_DIR || path.join(here, 'screenshots');
const WAIT_MS = 10000;

// The background-networking flags keep Chromium from calling home, which this machine's
// closed network refuses. Playwright gives every launch a fresh temporary profile itself
// (it refuses an explicit --user-data-dir with launch()).
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const OPERATOR = { name: 'olga', password: 'operator-secret-1' };
const ADMIN = { name: 'ben', password: 'administrator-2' };

let server; // { child, base, token, dataDir, log }
let browser;
const pages = []; // every page opened, with the browser messages it logged
const line = {}; // extension -> permanent line id

// ---- the server ------------------------------------------------------------------------

function startTapir() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-console-'));
  const env = { ...process.env, NO_COLOR: '1' };
  for (const key of ['TAPIR_CONFIG', 'TAPIR_LISTEN', 'TAPIR_DATA_DIR', 'TAPIR_TOKEN']) delete env[key];
  // The embedded default (one simulated PBX, extensions 201-220), but from a file, so that
  // "reload configuration" has a file to read again.
  const config = path.join(dataDir, 'tapir.toml');
  fs.writeFileSync(config, '[[instances]]\nname = "sim"\n[instances.driver]\ntype = "sim"\n');
  const child = spawn(TAPIR_BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'], env,
  });
  const log = [];
  const keep = (chunk) => {
    // eslint-disable-next-line no-control-regex
    log.push(...chunk.toString().replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter(Boolean));
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  child.stderr.on('data', keep);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tapir did not start in time:\n${log.join('\n')}`)), 20000);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${TAPIR_BIN}: ${e.message}`)); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`tapir exited (${code}):\n${log.join('\n')}`)); });
    child.stdout.on('data', (chunk) => {
      keep(chunk);
      const match = /tapir listening on (http:\/\/\S+)/.exec(chunk.toString());
      if (match) {
        clearTimeout(timer);
        resolve({ child, base: match[1], dataDir, log });
      }
    });
  });
}

async function stopTapir() {
  if (!server) return;
  const { child, dataDir } = server;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  server = null;
}

// Whatever happens (a failed assertion, an exception, Ctrl+C), no tapir is left running.
process.on('exit', () => server?.child.kill('SIGKILL'));

/** A REST call as the server's own administrator (the CLI token). */
async function api(method, urlPath, body) {
  const response = await fetch(`${server.base}/api/v1${urlPath}`, {
    method,
    headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${urlPath} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Polls until `check` answers something truthy; fails with `what` and the last value. */
async function until(check, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Inputs without a label and buttons without a name, anywhere in the console's views. */
const unlabelledControls = (page) => page.evaluate(() => [
  ...[...document.querySelectorAll('#app-view input, #app-view select')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.id || el.outerHTML),
  ...[...document.querySelectorAll('#app-view button')]
    .filter((b) => !(b.textContent.trim() || b.getAttribute('aria-label'))).map((b) => b.outerHTML),
]);

/** Hangs up every call, so each scenario starts quiet. */
async function clearCalls() {
  for (const call of await api('GET', '/calls')) {
    await api('POST', `/calls/${call.id}/drop`).catch(() => {});
  }
  await until(async () => (await api('GET', '/calls')).length === 0, 'every call to end');
}

// ---- the browser -----------------------------------------------------------------------

async function openPage(options = {}) {
  const context = await browser.newContext({ baseURL: server.base, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const entry = { page, messages: [] };
  page.on('console', (m) => entry.messages.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => entry.messages.push(`[pageerror] ${e.message}`));
  pages.push(entry);
  return page;
}

async function login(page, user) {
  await page.goto('/');
  await page.fill('#login-user', user.name);
  await page.fill('#login-password', user.password);
  await page.click('#login-form button[type=submit]');
  await page.locator('#connection[data-state="connected"]').waitFor({ timeout: WAIT_MS });
}

const shot = (page, name, options = {}) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true, ...options });

/** Waits for an element matching `selector` whose text matches `text`. */
const waitText = (page, selector, text) => page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout: WAIT_MS });

/**
 * A scenario: on failure, saves a screenshot of every open page and prints what the browser
 * logged and the end of tapir's log, so a CI failure can be understood from its output.
 */
function scenario(name, body) {
  test(name, { timeout: 60000 }, async () => {
    try {
      await body();
    } catch (error) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      for (const [i, { page, messages }] of pages.entries()) {
        if (page.isClosed()) continue;
        await shot(page, `FAILED-${slug}-page${i}`).catch(() => {});
        console.error(`--- page ${i} (${page.url()}) browser messages:\n${messages.join('\n') || '(none)'}`);
      }
      console.error(`--- tapir log (last lines):\n${server?.log.slice(-60).join('\n')}`);
      throw error;
    }
  });
}

// ---- setup -----------------------------------------------------------------------------

before(async () => {
  // Start empty, so the artefact holds this run's pictures only (and no stale FAILED-*).
  fs.rmSync(SCREENSHOTS, { recursive: true, force: true });
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  assert.ok(fs.existsSync(TAPIR_BIN), `no tapir binary at ${TAPIR_BIN} (build it, or set TAPIR_BIN)`);
  assert.ok(fs.existsSync(CHROMIUM_BIN), `no browser at ${CHROMIUM_BIN} (apt-get install chromium, or set CHROMIUM_BIN)`);
  server = await startTapir();
  const tokenFile = path.join(server.dataDir, 'cli-token');
  server.token = await until(() => fs.existsSync(tokenFile) && fs.readFileSync(tokenFile, 'utf8').trim(), 'the CLI token');
  for (const l of await api('GET', '/lines')) line[l.address] = l.id;
  await api('POST', '/users', { name: OPERATOR.name, password: OPERATOR.password, tenant: 'default', friendly_name: 'Olga Operator' });
  await api('POST', '/users', { name: ADMIN.name, password: ADMIN.password, tenant: 'default', role: 'admin', friendly_name: 'Ben Admin' });
  // The operator sees only its lines: give it both ends of the test calls.
  await api('PUT', `/users/${OPERATOR.name}/lines/${line['201']}`, { relation: 'own' });
  await api('PUT', `/users/${OPERATOR.name}/lines/${line['202']}`, { right: 'control' });
  browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS });
}, { timeout: 60000 });

after(async () => {
  try {
    // The console must run under its strict CSP without a single violation or script error.
    const problems = pages.flatMap(({ messages }) => messages.filter((m) => /Content Security Policy|pageerror/.test(m)));
    assert.deepEqual(problems, [], 'the browser reported CSP violations or script errors');
  } finally {
    await browser?.close().catch(() => {});
    await stopTapir();
  }
}, { timeout: 30000 });

// ---- scenarios -------------------------------------------------------------------------

let operatorPage;
let adminPage;

scenario('1. the operator logs in, sees its lines, dials, holds, resumes and drops', async () => {
  const page = operatorPage = await openPage();
  await page.goto('/');
  // A wrong password is refused with a readable message.
  await page.fill('#login-user', OPERATOR.name);
  await page.fill('#login-password', 'not-the-password');
  await page.click('#login-form button[type=submit]');
  await waitText(page, '#alerts', 'Wrong user name or password');

  await login(page, OPERATOR);
  // An operator has no administration views.
  assert.equal(await page.locator('#tab-overview').isVisible(), false);
  assert.equal(await page.locator('#tab-events').isVisible(), false);
  await waitText(page, '#whoami', 'Olga Operator');
  await waitText(page, '#connection', 'Connected');

  // Its two lines, and no other.
  await page.locator(`table.lines tr[data-line="${line['202']}"]`).waitFor();
  const shown = await page.locator('table.lines tbody tr').evaluateAll((rows) => rows.map((r) => Number(r.dataset.line)));
  assert.deepEqual(shown.sort((a, b) => a - b), [line['201'], line['202']]);

  // Dial 202 from 201 with Enter.
  await page.selectOption('#dial-line', String(line['201']));
  await page.fill('#dial-number', '202');
  await page.press('#dial-number', 'Enter');
  const caller = page.locator(`li.call[data-line="${line['201']}"]`);
  const callee = page.locator(`li.call[data-line="${line['202']}"]`);
  await callee.filter({ hasText: 'Offering' }).waitFor();
  await caller.filter({ hasText: 'Ringback' }).waitFor();
  await waitText(page, `li.call[data-line="${line['202']}"] .caller`, '201');
  assert.match(await caller.locator('.origin').textContent(), /Outgoing/);
  assert.match(await callee.locator('.origin').textContent(), /Incoming/);
  // Buttons follow the call's features: ringback can only be dropped, offering answered.
  assert.equal(await caller.locator('[data-action="answer"]').isDisabled(), true);
  assert.equal(await caller.locator('[data-action="drop"]').isEnabled(), true);
  assert.equal(await callee.locator('[data-action="answer"]').isEnabled(), true);
  await shot(page, '1a-operator-ringing');

  // The person at 202 lifts the handset.
  await api('POST', `/lines/${line['202']}/sim`, { action: 'off_hook' });
  await caller.locator('.state').filter({ hasText: 'Connected' }).waitFor();
  await waitText(page, `li.call[data-line="${line['201']}"] .connected`, '202');
  const duration = caller.locator('.duration');
  const first = await duration.textContent();
  assert.match(first, /^\d+:\d\d$/);
  await until(async () => {
    const now = await duration.textContent();
    return now !== first && /^\d+:\d\d$/.test(now) && now;
  }, 'the call duration to run', 4000);

  await caller.locator('[data-action="hold"]').click();
  await caller.locator('.state').filter({ hasText: 'On hold' }).waitFor();
  assert.equal(await caller.locator('[data-action="hold"]').isDisabled(), true);
  assert.equal(await caller.locator('[data-action="unhold"]').isEnabled(), true);
  await shot(page, '1b-operator-on-hold');
  await caller.locator('[data-action="unhold"]').click();
  await caller.locator('.state').filter({ hasText: 'Connected' }).waitFor();
  await shot(page, '1c-operator-connected');

  await caller.locator('[data-action="drop"]').click();
  await caller.waitFor({ state: 'detached' });
  await callee.waitFor({ state: 'detached' });
  await page.locator('.calls + .empty').waitFor();
  assert.equal(await page.locator('#alerts .alert').count(), 0, await page.locator('#alerts').textContent());
});

scenario('2. an incoming call shows the notice with the screen-pop link', async () => {
  const page = operatorPage;
  await clearCalls();
  await page.click('.settings summary');
  await page.fill('#screenpop-template', 'https://crm.example.com/search?q={number}');
  await page.click('.settings button[type=submit]');
  await waitText(page, '#notices', 'Screen-pop link saved');

  await api('POST', `/lines/${line['201']}/sim`, { action: 'incoming', from: '004930123456', name: 'Ada' });
  const notice = page.locator('.incoming-call').filter({ hasText: 'Ada' });
  await notice.waitFor();
  assert.match(await notice.textContent(), /004930123456/);
  assert.match(await notice.locator('h2').textContent(), /201/);
  const link = notice.locator('a.screenpop');
  assert.equal(await link.getAttribute('href'), 'https://crm.example.com/search?q=004930123456');
  assert.equal(await link.getAttribute('target'), '_blank');
  await shot(page, '2-incoming-call');

  // Answering from the notice: it goes, the call is connected.
  await notice.locator('[data-action="answer"]').click();
  await notice.waitFor({ state: 'detached' });
  const call = page.locator(`li.call[data-line="${line['201']}"]`);
  await call.locator('.state').filter({ hasText: 'Connected' }).waitFor();
  await waitText(page, `li.call[data-line="${line['201']}"] .caller`, 'Ada (004930123456)');
  await call.locator('[data-action="drop"]').click();
  await call.waitFor({ state: 'detached' });
});

scenario('3. an administrator assigns a line and the operator sees it at once', async () => {
  const page = adminPage = await openPage();
  await login(page, ADMIN);
  await waitText(page, '#whoami', 'administrator');
  await page.click('#tab-assignments');
  await page.locator(`#assign-user option[value="${OPERATOR.name}"]`).waitFor({ state: 'attached' });
  await page.locator(`#assign-line option[value="${line['203']}"]`).waitFor({ state: 'attached' });
  await page.selectOption('#assign-user', OPERATOR.name);
  await page.selectOption('#assign-line', String(line['203']));
  await page.selectOption('#assign-right', 'control');
  await page.click('#view-assignments button[type=submit]:has-text("Assign")');
  await page.locator(`#view-assignments tr[data-user="${OPERATOR.name}"][data-line="${line['203']}"]`).waitFor();
  await shot(page, '3a-admin-assigned');

  // The operator's console, untouched since, shows the new line (the server sent a fresh
  // snapshot of what the operator now sees).
  await operatorPage.locator(`table.lines tr[data-line="${line['203']}"]`).waitFor();
  await operatorPage.locator(`#dial-line option[value="${line['203']}"]`).waitFor({ state: 'attached' });
  assert.equal(await operatorPage.locator('table.lines tbody tr').count(), 3);
  await shot(operatorPage, '3b-operator-new-line');
});

scenario('4. a dropped connection reconnects and resumes without losing a call change', async () => {
  const page = operatorPage;
  await clearCalls();
  const { call } = await api('POST', `/lines/${line['201']}/calls`, { to: '202' });
  await api('POST', `/lines/${line['202']}/sim`, { action: 'off_hook' });
  const card = page.locator(`li.call[data-call="${call}"]`);
  await card.locator('.state').filter({ hasText: 'Connected' }).waitFor();
  const snapshots = await page.evaluate(() => window.tapirConsole.snapshots());

  // Cut the network, break the socket, and change the call while the console cannot see it.
  await page.context().setOffline(true);
  await page.evaluate(() => window.tapirConsole.dropConnection());
  await page.locator('#connection[data-state="offline"], #connection[data-state="reconnecting"]').waitFor();
  assert.match(await page.locator('#connection').textContent(), /Offline|Reconnecting/);
  await api('POST', `/calls/${call}/hold`);
  await until(async () => (await api('GET', `/calls/${call}`)).state === 'onhold', 'the server to hold the call');
  await shot(page, '4a-offline');
  assert.notEqual(await page.evaluate(() => window.tapirConsole.status()), 'connected');
  assert.equal(await card.getAttribute('data-state'), 'connected', 'no update can arrive while offline');
  // The last known picture offers no actions while it may be stale.
  assert.equal(await card.locator('[data-action="hold"]').isDisabled(), true);

  await page.context().setOffline(false);
  await page.locator('#connection[data-state="connected"]').waitFor({ timeout: 20000 });
  await card.locator('.state').filter({ hasText: 'On hold' }).waitFor();
  assert.equal(await card.locator('[data-action="unhold"]').isEnabled(), true);
  // Resumed from the last sequence number: the missed event was replayed, no new snapshot.
  assert.equal(await page.evaluate(() => window.tapirConsole.snapshots()), snapshots);
  await waitText(page, '#connection', 'Connected');
  await shot(page, '4b-resumed');
  await clearCalls();
  await card.waitFor({ state: 'detached' });
});

scenario('5. the admin view shows instance health, tests a connection and filters the event log', async () => {
  const page = adminPage;
  await page.click('#tab-overview');
  const row = page.locator('tr[data-instance="sim"]');
  await row.waitFor();
  assert.match(await row.locator('.badge').textContent(), /Up/);
  assert.equal((await row.locator('td').nth(4).textContent()).trim(), '20');
  assert.match(await row.locator('td').nth(3).textContent(), /ago/);
  assert.equal((await page.locator('.metric').filter({ hasText: 'Instances up' }).locator('dd').textContent()).trim(), '1 / 1');
  assert.equal((await page.locator('.metric').filter({ hasText: 'Lines in service' }).locator('dd').textContent()).trim(), '20 / 20');
  await row.getByRole('button', { name: 'Test connection of sim' }).click();
  await waitText(page, 'tr[data-instance="sim"] output', 'OK: simulated PBX');
  // Only an administrator of every tenant may reload the server's config: a tenant's may not.
  assert.equal(await page.locator('#reload').isDisabled(), true);
  await waitText(page, '#view-overview output[for="reload"]', 'administrator of every tenant');
  // The server's own administrator (of every tenant) may, and sees what changed.
  await api('PUT', '/users/admin/password', { password: 'root-password-1' });
  const root = await openPage();
  await login(root, { name: 'admin', password: 'root-password-1' });
  await root.click('#tab-overview');
  await root.click('#reload');
  await waitText(root, '#view-overview output[for="reload"]', 'Configuration reloaded');
  assert.match(await root.locator('#view-overview output[for="reload"]').textContent(), /unchanged: sim/);
  await shot(root, '5-global-admin-reload');
  await root.context().close();

  // Events on two other lines; the log filtered by one line shows only that line's.
  const { call } = await api('POST', `/lines/${line['204']}/calls`, { to: '205' });
  await waitText(page, '.metric', 'Active calls');
  await until(async () => (await page.locator('.metric').filter({ hasText: 'Active calls' }).locator('dd').textContent()).trim() === '2', 'two active calls');
  await page.click('#tab-events');
  await page.locator(`#view-events tr[data-line="${line['205']}"]`).first().waitFor();
  await page.selectOption('#log-line', String(line['204']));
  await page.locator(`#view-events tbody tr[data-call="${call}"]`).first().waitFor();
  await until(async () => {
    const lines = await page.locator('#view-events tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.line));
    return lines.length > 0 && lines.every((l) => l === String(line['204']));
  }, 'only line 204 events in the log');
  await shot(page, '5-admin-event-log');
  await page.selectOption('#log-line', '');
  await page.locator(`#view-events tbody tr[data-line="${line['205']}"]`).first().waitFor();

  // A device that leaves the PBX leaves a defunct line, which can be purged here.
  await api('POST', '/instances/sim/sim', { action: 'add_extension', number: '250', name: 'Grace' });
  await api('POST', '/instances/sim/sim', { action: 'remove_extension', number: '250' });
  await page.click('#tab-lines');
  const defunct = page.locator('#view-lines tr[data-status="defunct"]').filter({ hasText: 'Grace' });
  await defunct.waitFor();
  await defunct.getByRole('button', { name: /^Purge line/ }).click();
  await page.locator('#ask').getByRole('button', { name: 'Purge' }).click();
  await defunct.waitFor({ state: 'detached' });
  await waitText(page, '#notices', 'purged');

  // The tabs work from the keyboard: arrows move between them.
  await page.focus('#tab-events');
  await page.keyboard.press('Home');
  assert.equal(await page.locator('#tab-operator').getAttribute('aria-selected'), 'true');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.locator('#tab-overview').getAttribute('aria-selected'), 'true');
  assert.equal(await page.locator('#view-overview').isVisible(), true);
  await shot(page, '5-admin-overview');
  await clearCalls();
});

scenario('6. on a phone, and by keyboard alone', async () => {
  const page = await openPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await login(page, OPERATOR);
  await page.locator(`table.lines tr[data-line="${line['201']}"]`).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px on a phone`);
  await shot(page, '6a-phone-operator');

  // Every input of the operator view has a label; every button a name.
  assert.deepEqual(await unlabelledControls(page), []);

  // Tab from the top of a freshly loaded page (the session survives a reload) reaches the
  // number field, then the Dial button.
  await page.reload();
  await page.locator('#connection[data-state="connected"]').waitFor();
  await page.locator(`#dial-line option[value="${line['201']}"]`).waitFor({ state: 'attached' });
  const visited = [];
  for (let i = 0; i < 25 && !visited.includes('dial-button'); i++) {
    await page.keyboard.press('Tab');
    visited.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
  }
  assert.equal(visited[0], 'A', 'the skip link comes first');
  const numberAt = visited.indexOf('dial-number');
  assert.ok(numberAt >= 0, `Tab never reached the number field: ${visited.join(' → ')}`);
  assert.ok(visited.indexOf('dial-button') > numberAt, `Tab order: ${visited.join(' → ')}`);
  assert.equal((await page.locator('label[for="dial-number"]').textContent()).trim(), 'Number');
  assert.equal((await page.locator('#dial-button').textContent()).trim(), 'Dial');
  // The focus is visible.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');

  // A pasted number loses its spaces, dashes and brackets.
  await page.focus('#dial-number');
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.setData('text/plain', '+49 (30) 123-45 67');
    document.activeElement.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
  assert.equal(await page.inputValue('#dial-number'), '+49301234567');

  // And dialling works from the keyboard alone: type, Enter.
  await page.fill('#dial-number', '');
  await page.selectOption('#dial-line', String(line['201']));
  await page.focus('#dial-number');
  await page.keyboard.type('203');
  await page.keyboard.press('Enter');
  await page.locator(`li.call[data-line="${line['203']}"]`).filter({ hasText: 'Offering' }).waitFor();
  await shot(page, '6b-phone-call');
  await clearCalls();
});

scenario('7. transfer asks for the number in a dialog', async () => {
  const page = operatorPage;
  await clearCalls();
  await page.click('#tab-operator');
  const { call } = await api('POST', `/lines/${line['201']}/calls`, { to: '202' });
  await api('POST', `/lines/${line['202']}/sim`, { action: 'off_hook' });
  const card = page.locator(`li.call[data-call="${call}"]`);
  await card.locator('.state').filter({ hasText: 'Connected' }).waitFor();
  await card.locator('[data-action="transfer"]').click();
  const dialog = page.locator('#ask');
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'ask-input');
  await page.keyboard.type('2-0-3');
  await page.keyboard.press('Enter');
  // Blind transfer: 201 leaves, 202 now rings 203 (both on this operator's lines).
  await card.waitFor({ state: 'detached' });
  await page.locator(`li.call[data-line="${line['203']}"]`).filter({ hasText: 'Offering' }).waitFor();
  await clearCalls();
  // Park: 202 parks its caller, the notice names the place; Unpark takes it onto 203.
  const waiting = await api('POST', `/lines/${line['201']}/calls`, { to: '202' });
  await api('POST', `/lines/${line['202']}/sim`, { action: 'off_hook' });
  await page.locator(`li.call[data-call="${waiting.call}"] .state`).filter({ hasText: 'Connected' }).waitFor();
  const parker = page.locator(`li.call[data-line="${line['202']}"]`);
  await parker.locator('[data-action="park"]').click();
  await page.locator('#notices .notice').filter({ hasText: /parked at 701/ }).waitFor();
  await parker.waitFor({ state: 'detached' });
  await page.selectOption('#dial-line', String(line['203']));
  await page.fill('#dial-number', '701');
  await page.click('#unpark-button');
  const taken = page.locator(`li.call[data-line="${line['203']}"]`);
  await taken.locator('.state').filter({ hasText: 'Connected' }).waitFor();
  await taken.locator('.origin').filter({ hasText: 'unpark' }).waitFor();
  await shot(page, '7-park-and-unpark');
  await clearCalls();
  // An impossible command is answered with a readable error in the alert region.
  await page.fill('#dial-number', '201');
  await page.selectOption('#dial-line', String(line['201']));
  await page.press('#dial-number', 'Enter');
  await page.locator('#alerts .alert').filter({ hasText: 'Could not dial 201' }).filter({ hasText: 'cannot call itself' }).waitFor();
  await shot(page, '7-transfer-and-error');
  await page.locator('#alerts .alert button').first().click();
  await clearCalls();
});

scenario('8. the administrator manages users, tokens and tsecimp files', async () => {
  const page = adminPage;
  await page.click('#tab-accounts');
  await page.locator(`#view-accounts tr[data-user="${OPERATOR.name}"]`).waitFor();
  await page.fill('#user-name', 'carol');
  await page.fill('#user-friendly', 'Carol Clerk');
  await page.fill('#user-password', 'carol-password');
  await page.click('#view-accounts button:has-text("Add user")');
  await page.locator('#view-accounts tr[data-user="carol"]').filter({ hasText: 'Carol Clerk' }).waitFor();

  await page.locator('#view-accounts tr[data-user="carol"]').getByRole('button', { name: 'Set password of carol' }).click();
  await page.fill('#ask-input', 'another-password');
  await page.keyboard.press('Enter');
  await waitText(page, '#notices', 'Password of carol set');

  await page.fill('#token-label', 'CRM server');
  await page.selectOption('#token-user', 'carol');
  await page.click('#view-accounts button:has-text("Create token")');
  const secret = await page.locator('#token-secret').inputValue();
  assert.match(secret, /^tapir_\d+_/);
  const probe = await fetch(`${server.base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
  assert.equal((await probe.json()).user.name, 'carol');
  const tokenRow = page.locator('#view-accounts tr[data-token]').filter({ hasText: 'CRM server' });
  await tokenRow.waitFor();
  await tokenRow.getByRole('button', { name: /^Revoke token/ }).click();
  await page.locator('#ask').getByRole('button', { name: 'Revoke' }).click();
  await until(async () => (await fetch(`${server.base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } })).status === 401, 'the token to be revoked');
  await waitText(page, '#view-accounts th', '(this session)');
  await shot(page, '8a-admin-accounts');

  // tsecimp: a bad file lists its problems (422) and imports nothing; a good one imports.
  await page.click('#tab-assignments');
  await page.setInputFiles('#tsecimp-file', { name: 'bad.xml', mimeType: 'application/xml', buffer: Buffer.from('<UserList><User><DomainUser>carol</DomainUser></User><Bogus/></UserList>') });
  await page.click('#view-assignments button:has-text("Import")');
  await page.locator('#view-assignments .problems li').filter({ hasText: 'Bogus' }).waitFor();
  await shot(page, '8b-tsecimp-problems');
  const good = `<UserList><User><DomainUser>carol</DomainUser><LineList><Line><PermanentID>${line['206']}</PermanentID></Line></LineList></User></UserList>`;
  await page.setInputFiles('#tsecimp-file', { name: 'good.xml', mimeType: 'application/xml', buffer: Buffer.from(good) });
  await page.click('#view-assignments button:has-text("Import")');
  await waitText(page, '#view-assignments .result-block', '1 line(s) given');
  await page.locator(`#view-assignments tr[data-user="carol"][data-line="${line['206']}"]`).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#view-assignments button:has-text("Export")')]);
  const exported = fs.readFileSync(await download.path(), 'utf8');
  assert.match(exported, new RegExp(`<PermanentID>${line['206']}</PermanentID>`));
  assert.match(download.suggestedFilename(), /\.xml$/);

  // Every control of the administration views is labelled too.
  assert.deepEqual(await unlabelledControls(page), []);

  // Unassign, and remove the user.
  await page.locator(`#view-assignments tr[data-user="carol"][data-line="${line['206']}"]`).getByRole('button', { name: /^Unassign/ }).click();
  await page.locator(`#view-assignments tr[data-user="carol"][data-line="${line['206']}"]`).waitFor({ state: 'detached' });
  await page.click('#tab-accounts');
  await page.locator('#view-accounts tr[data-user="carol"]').getByRole('button', { name: 'Remove user carol' }).click();
  await page.locator('#ask').getByRole('button', { name: 'Remove' }).click();
  await page.locator('#view-accounts tr[data-user="carol"]').waitFor({ state: 'detached' });
});

scenario('9. logging out ends the session', async () => {
  const page = operatorPage;
  await page.click('#logout');
  await page.locator('#login-view').waitFor();
  await waitText(page, '#notices', 'logged out');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('tapir.token')), null);
  assert.equal(await page.locator('#app-view').isVisible(), false);
});

scenario('10. teams give rights on teammates’ lines; the audit log shows what was done and refused', async () => {
  const page = adminPage;
  // A member whose name has a backslash, like a Windows domain account; line 207 is its phone.
  const CAROL = 'ACME\\carol';
  // A space and a slash: the team's name must be encoded in every path.
  const TEAM = 'Front desk/east';
  await api('POST', '/users', { name: CAROL, tenant: 'default', friendly_name: 'Carol Clerk' });
  await api('PUT', `/users/${encodeURIComponent(CAROL)}/lines/${line['207']}`, { relation: 'own' });

  // The operator's own session, through the API.
  const answer = await fetch(`${server.base}/api/v1/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: OPERATOR.name, password: OPERATOR.password }),
  });
  assert.equal(answer.status, 200);
  const { token } = await answer.json();
  const asOperator = (method, urlPath, body) => fetch(`${server.base}/api/v1${urlPath}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const operatorRightOn = async (id) => (await (await asOperator('GET', '/me')).json()).lines.find((l) => l.line === id)?.right ?? null;
  assert.equal(await operatorRightOn(line['207']), null);

  // Create the team with the right to monitor.
  await page.click('#tab-teams');
  await page.locator('#view-teams').getByText('on each other’s own lines').first().waitFor();
  await page.fill('#team-name', TEAM);
  await page.selectOption('#team-right', 'monitor');
  await page.click('#view-teams button:has-text("Create team")');
  const row = page.locator(`#view-teams tr[data-team=${JSON.stringify(TEAM)}]`);
  await row.waitFor();
  await waitText(page, '#notices', `Team ${TEAM} created`);
  const rightSelect = row.getByLabel(`Member right of team ${TEAM}`, { exact: true });
  assert.equal(await rightSelect.inputValue(), 'monitor');
  await row.getByText('No members').waitFor();

  // Add two members from the row's own picker; the focus stays on the picker.
  for (const member of [OPERATOR.name, CAROL]) {
    await row.getByLabel(`User to add to team ${TEAM}`, { exact: true }).selectOption(member);
    await row.getByRole('button', { name: `Add the chosen user to team ${TEAM}` }).click();
    await row.locator(`li[data-member=${JSON.stringify(member)}]`).waitFor();
    await until(() => page.evaluate(() => document.activeElement?.dataset.focus), 'the focus back in the row')
      .then((focus) => assert.equal(focus, `add:${TEAM}`));
  }
  assert.deepEqual(await row.locator('li[data-member]').evaluateAll((items) => items.map((i) => i.dataset.member).sort()), [CAROL, OPERATOR.name].sort());
  assert.match(await row.locator(`li[data-member=${JSON.stringify(CAROL)}]`).textContent(), /ACME\\carol \(Carol Clerk\)/);
  assert.deepEqual((await api('GET', '/teams')).find((t) => t.name === TEAM).members.sort(), [CAROL, OPERATOR.name].sort());
  await until(async () => (await operatorRightOn(line['207'])) === 'monitor', 'the operator to monitor its teammate’s line');

  // A name that is taken is refused in the alert area.
  await page.fill('#team-name', TEAM);
  await page.click('#view-teams button:has-text("Create team")');
  await page.locator('#alerts .alert').filter({ hasText: `Could not create team ${TEAM}` }).waitFor();
  await page.locator('#alerts .alert button').first().click();
  await page.fill('#team-name', '');

  // Change the right to control, by keyboard: choose, Tab to "Change", Enter.
  await rightSelect.focus();
  await rightSelect.selectOption('control');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Change');
  await page.keyboard.press('Enter');
  await waitText(page, '#notices', `Members of team ${TEAM} now get Control`);
  await until(async () => (await operatorRightOn(line['207'])) === 'control', 'the operator to control its teammate’s line');
  assert.equal(await row.getByLabel(`Member right of team ${TEAM}`, { exact: true }).inputValue(), 'control');
  assert.equal((await api('GET', '/teams')).find((t) => t.name === TEAM).member_right, 'control');
  assert.deepEqual(await unlabelledControls(page), []);
  await shot(page, '10a-admin-teams');

  // The audit log, filtered by the operator, before it acts.
  await clearCalls();
  await page.click('#tab-audit');
  const rows = page.locator('#view-audit tbody tr');
  await rows.first().waitFor();
  const users = () => rows.evaluateAll((trs) => [...new Set(trs.map((r) => r.dataset.user))]);
  assert.ok((await users()).some((u) => u !== OPERATOR.name), 'unfiltered, the log shows other users too');
  await page.fill('#audit-user', OPERATOR.name);
  await page.press('#audit-user', 'Enter');
  await until(async () => (await users()).join() === OPERATOR.name, 'only the operator’s entries');

  // The operator places a call, then tries to drop its far end, a line it may only monitor.
  await api('PUT', `/users/${OPERATOR.name}/lines/${line['208']}`, { right: 'monitor' });
  const placed = await asOperator('POST', `/lines/${line['201']}/calls`, { to: '208' });
  assert.equal(placed.status, 201);
  const { call } = await placed.json();
  const far = await until(async () => (await api('GET', `/calls?line=${line['208']}`))[0], 'the call to ring at 208');
  const refused = await asOperator('POST', `/calls/${far.id}/drop`);
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).error, 'not_owner');

  // Refresh: both are listed, newest first, the refused one marked in words.
  await page.click('#audit-refresh');
  const denied = page.locator(`#view-audit tr[data-call="${far.id}"]`);
  await denied.waitFor();
  const made = page.locator(`#view-audit tr[data-call="${call}"]`);
  assert.equal(await denied.getAttribute('data-result'), 'denied');
  assert.equal(await denied.getAttribute('data-line'), String(line['208']));
  assert.equal((await denied.locator('.badge').textContent()).trim(), 'Denied');
  assert.match(await denied.textContent(), /drop.*not_owner/);
  assert.equal(await made.getAttribute('data-result'), 'ok');
  assert.equal(await made.getAttribute('data-line'), String(line['201']));
  assert.match(await made.textContent(), /make_call.*OK/);
  assert.deepEqual(await rows.evaluateAll((trs) => trs.slice(0, 2).map((r) => r.dataset.call)), [String(far.id), String(call)]);
  assert.deepEqual(await users(), [OPERATOR.name]);
  await waitText(page, '#view-audit .hint[aria-live]', `for user ${OPERATOR.name}`);
  await shot(page, '10b-admin-audit');
  // The line filter too: only line 208's entries.
  await page.selectOption('#audit-line', String(line['208']));
  await until(async () => {
    const lines = await rows.evaluateAll((trs) => trs.map((r) => r.dataset.line));
    return lines.length > 0 && lines.every((l) => l === String(line['208']));
  }, 'only line 208 in the audit log');
  await denied.waitFor();
  await page.selectOption('#audit-line', String(line['201']));
  await made.waitFor();
  await page.selectOption('#audit-line', '');

  // On a phone, both views fit the screen's width.
  const phone = await openPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await login(phone, ADMIN);
  for (const [tab, ready, name] of [
    ['#tab-teams', `#view-teams tr[data-team=${JSON.stringify(TEAM)}]`, '10c-phone-teams'],
    ['#tab-audit', `#view-audit tr[data-call="${far.id}"]`, '10d-phone-audit'],
  ]) {
    await phone.click(tab);
    await phone.locator(ready).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `${tab} scrolls sideways by ${overflow}px on a phone`);
    await shot(phone, name);
  }
  await phone.context().close();

  // Remove a member and delete the team.
  await page.click('#tab-teams');
  await row.getByRole('button', { name: `Remove ${CAROL} from team ${TEAM}` }).click();
  await row.locator(`li[data-member=${JSON.stringify(CAROL)}]`).waitFor({ state: 'detached' });
  await until(async () => (await operatorRightOn(line['207'])) === null, 'the operator to lose its former teammate’s line');
  await row.getByRole('button', { name: `Delete team ${TEAM}` }).click();
  await page.locator('#ask').getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await api('GET', '/teams')).some((t) => t.name === TEAM), false);
  await clearCalls();
});
