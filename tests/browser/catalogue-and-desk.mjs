// The public catalogue and the circulation desk in a real browser (Debian's
// chromium, driven by playwright-core), against a running `shoko` with the
// demo data:
//   1. an OPAC search in Japanese and a facet click;
//   2. a record page's availability (a copy on loan shows its due date);
//   3. a patron logs in, renews a loan and places a hold;
//   4. the desk checks out 20 items scanned faster than the server answers;
//   5. the server is stopped in the middle of a desk session and started
//      again: the page says so within 2 seconds, keeps the queue, and
//      delivers it exactly once; a queue also survives a reload;
//   6. a patron edit keeps a draft through a reload;
// with an axe-core check (no serious or critical violation) and screenshots
// of the main pages in Japanese and English.
//
// node catalogue-and-desk.mjs BASE OUT_DIR SHOKO_BIN DATA_DIR DATABASE_URL PORT
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir, shokoBin, dataDir, databaseUrl, port] = process.argv.slice(2);
const axeSource = fs.readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
fs.mkdirSync(outDir, { recursive: true });
const report = { axe: {}, steps: [] };

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}
function check(cond, message) { if (!cond) fail(message); }
function step(name) { report.steps.push(name); }

function shoko(...args) {
  return execFileSync(shokoBin, ['--data-dir', dataDir, '--database', databaseUrl, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function api(method, p, token, body, key) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (key) headers['idempotency-key'] = key;
  const r = await fetch(base + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}
async function login(kind, name, password) {
  const r = await api('POST', '/api/v1/auth/login', null, { kind, name, password });
  check(r.status === 200, `login ${name}: ${r.status}`);
  return r.json.token;
}

async function axe(page, name) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run());
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `${name}: accessibility: ${bad.map((v) => `${v.id} (${v.impact}) ${v.nodes.map((n) => n.target).join(' ')}`).join('; ')}`);
  report.axe[name] = result.violations.length;
}
async function shot(page, name) {
  await page.screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
}

// Items of the demo at HONGO, available, by record.
const desk = await login('staff', 'desk', 'shoko-demo-desk');
const hongo = [];
for (let id = 1, misses = 0; misses < 5 && id < 1000; id++) {
  const r = await api('GET', `/api/v1/records/${id}`);
  if (r.status !== 200) { misses++; continue; }
  for (const item of r.json.items) {
    if (item.campus === 'HONGO' && item.status === 'available') hongo.push({ record: id, barcode: item.barcode, title: r.json.title });
  }
}
check(hongo.length >= 40, `only ${hongo.length} HONGO items in the demo`);
const take = (n) => hongo.splice(0, n);

// A loan for D0001 to renew, and a title on loan to D0002 for D0001's hold.
const [toRenew] = take(1);
let r = await api('POST', '/api/v1/loans', desk, { patron_barcode: 'D0001', item_barcode: toRenew.barcode, campus: 'HONGO' }, 'setup-1');
check(r.status === 201, `setup checkout: ${JSON.stringify(r.json)}`);
const onLoan = hongo.find((h) => hongo.filter((x) => x.record === h.record).length === 1);
hongo.splice(hongo.indexOf(onLoan), 1);
r = await api('POST', '/api/v1/loans', desk, { patron_barcode: 'D0002', item_barcode: onLoan.barcode, campus: 'HONGO' }, 'setup-2');
check(r.status === 201, `setup checkout 2: ${JSON.stringify(r.json)}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  for (const lang of ['ja', 'en']) {
    const context = await browser.newContext({ locale: lang === 'ja' ? 'ja-JP' : 'en-US', viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    // 1. Search in Japanese, then a facet.
    await page.goto(`${base}/`);
    await page.fill('#q', '講談');
    await Promise.all([page.waitForURL(/q=/), page.press('#q', 'Enter')]);
    const first = page.locator('article.hit h3 a').first();
    check((await first.innerHTML()).includes('<mark>講談</mark>'), `${lang}: the hit marks 講談`);
    await axe(page, `search-${lang}`);
    await shot(page, `opac-search-${lang}`);
    const facet = page.locator('.facets a', { hasText: lang === 'ja' ? '日本語' : 'Japanese' }).first();
    await Promise.all([page.waitForURL(/filter=language%3Ajpn/), facet.click()]);
    check(await page.locator('.facets a', { hasText: '✕' }).count() === 1, `${lang}: the facet is active`);
    check(await page.locator('article.hit').count() >= 1, `${lang}: hits after the facet`);
    step(`${lang}: search and facet`);

    // 2. A record page with a copy on loan.
    await page.goto(`${base}/records/${onLoan.record}`);
    const state = await page.locator(`tr[data-barcode="${onLoan.barcode}"] td`).nth(3).textContent();
    check(lang === 'ja' ? /貸出中（\d{4}-\d{2}-\d{2}まで）/.test(state) : /On loan until \d{4}-\d{2}-\d{2}/.test(state), `${lang}: state ${state}`);
    await axe(page, `record-${lang}`);
    await shot(page, `opac-record-${lang}`);
    step(`${lang}: record availability`);
    await context.close();
  }

  // 3. A patron logs in, renews and places a hold.
  {
    const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/my`);
    check(page.url().includes('/login'), 'My Library asks for a login');
    await page.fill('#name', 'D0001');
    await page.fill('#password', 'shoko-demo-patron');
    await Promise.all([page.waitForURL(`${base}/my`), page.click('button[type=submit]')]);
    check(await page.locator('#h-loans ~ table tbody tr').count() === 1, 'one loan');
    await Promise.all([page.waitForURL(/(message|error)=/), page.click('#h-loans ~ table button')]);
    check(await page.locator('p.notice').count() === 1, `renewal refused: ${await page.locator('p.alert').allTextContents()}`);
    check((await page.locator('p.notice').textContent()).includes('延長しました'), 'renewed');
    await page.goto(`${base}/records/${onLoan.record}`);
    await Promise.all([page.waitForURL(/(message|error)=/), page.click('form[action="/my/holds"] button')]);
    check(await page.locator('p.notice').count() === 1, `hold refused: ${await page.locator('p.alert').allTextContents()}`);
    check((await page.locator('p.notice').textContent()).includes('予約しました'), 'hold placed');
    await page.goto(`${base}/my`);
    check(await page.locator('#h-holds ~ table tbody tr', { hasText: onLoan.title.slice(0, 4) }).count() === 1, 'the hold is listed');
    await axe(page, 'my-ja');
    await shot(page, 'opac-my-library-ja');
    await page.goto(`${base}/my?lang=en`);
    await shot(page, 'opac-my-library-en');
    await context.close();
    step('patron: login, renew, hold');
  }

  // 4–6. The desk.
  const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  // The README sends staff to /staff/: the desk, after the login.
  await page.goto(`${base}/staff/`);
  check(page.url().startsWith(`${base}/staff/login`), `/staff/ asks for a login: ${page.url()}`);
  await page.goto(`${base}/staff/desk`);
  await page.fill('#name', 'desk');
  await page.fill('#password', 'shoko-demo-desk');
  await Promise.all([page.waitForURL(`${base}/staff/desk`), page.click('button[type=submit]')]);
  // A network the test controls, installed in the page before its scripts:
  // checkouts can be held (until the test lets them go) or refused as if
  // the connection were down (kept in sessionStorage, so through a reload).
  await page.addInitScript(() => {
    const real = window.fetch.bind(window);
    const gate = { hold: false, held: 0, waiting: [] };
    window.__net = gate;
    window.__release = () => { gate.hold = false; gate.waiting.splice(0).forEach((go) => go()); };
    window.fetch = (input, init) => {
      const url = typeof input === 'string' ? input : input.url;
      if (!url.endsWith('/api/v1/loans')) return real(input, init);
      if (sessionStorage.getItem('net.down')) return Promise.reject(new TypeError('Failed to fetch'));
      if (!gate.hold) return real(input, init);
      gate.held++;
      return new Promise((resolve, reject) => {
        let aborted = false;
        if (init && init.signal) init.signal.addEventListener('abort', () => { aborted = true; reject(new DOMException('aborted', 'AbortError')); });
        gate.waiting.push(() => { if (!aborted) real(input, init).then(resolve, reject); });
      });
    };
  });
  await page.reload();
  // The checkouts are held on their way until all 20 are scanned: the
  // scans outpace the server by construction, not by timing.
  await page.evaluate(() => { window.__net.hold = true; });
  const scan = async (selector, code) => { await page.fill(selector, code); await page.press(selector, 'Enter'); };
  await scan('#patron-barcode', 'D0003');
  const twenty = take(20);
  const t0 = Date.now();
  for (const item of twenty) await scan('#item-barcode', item.barcode);
  const scanMs = Date.now() - t0;
  const pendingAfterScans = await page.locator('ol.queue li[data-state="pending"], ol.queue li[data-state="sending"]').count();
  check(await page.evaluate(() => window.__net.held) === 1, 'the first checkout is held on its way; the rest wait in the queue');
  await page.evaluate(() => window.__release());
  check(pendingAfterScans === 20, `scans should outpace the server: ${pendingAfterScans} waiting after ${scanMs} ms: ${(await page.locator('ol.queue li').allTextContents()).slice(0, 5)}`);
  await page.waitForFunction(() => document.querySelectorAll('ol.queue li[data-state="done"]').length === 20, null, { timeout: 30000 });
  const order = await page.locator('ol.queue li .code').allTextContents();
  check(JSON.stringify(order.slice().reverse()) === JSON.stringify(twenty.map((i) => i.barcode)), 'each scan has its own row, in order');
  await axe(page, 'desk-ja');
  await shot(page, 'staff-desk-ja');
  report.desk = { scanned: 20, scan_ms: scanMs, waiting_after_scans: pendingAfterScans };
  step('desk: 20 scans faster than the server');

  // 5. The server stops in the middle of a session.
  await scan('#patron-barcode', 'D0004');
  const ten = take(10);
  for (const item of ten.slice(0, 6)) await scan('#item-barcode', item.barcode);
  await page.waitForFunction(() => document.querySelectorAll('ol.queue li[data-state="done"]').length >= 22, null, { timeout: 30000 });
  shoko('stop');
  const stoppedAt = Date.now();
  for (const item of ten.slice(6)) await scan('#item-barcode', item.barcode);
  await page.waitForSelector('#banner.show', { timeout: 2000 });
  const bannerMs = Date.now() - stoppedAt;
  check(bannerMs <= 2000, `the banner took ${bannerMs} ms`);
  check((await page.textContent('#banner')).includes('接続できません'), 'the banner says the server cannot be reached');
  await shot(page, 'staff-desk-offline-ja');
  shoko('start', '--listen', `127.0.0.1:${port}`);
  await page.waitForFunction(() => document.querySelectorAll('ol.queue li[data-state="done"]').length === 30, null, { timeout: 30000 });
  check(!(await page.isVisible('#banner.show')), 'the banner goes once the server answers');
  step('desk: server stopped and started, queue delivered');

  // A queue survives a reload: the loans API unreachable, three scans, reload.
  await page.evaluate(() => sessionStorage.setItem('net.down', '1'));
  await scan('#patron-barcode', 'D0005');
  const three = take(3);
  for (const item of three) await scan('#item-barcode', item.barcode);
  await page.waitForSelector('#banner.show', { timeout: 2000 });
  await page.reload();
  check(await page.locator('ol.queue li[data-state="pending"], ol.queue li[data-state="sending"]').count() === 3, 'three scans kept through the reload');
  await page.evaluate(() => { sessionStorage.removeItem('net.down'); window.dispatchEvent(new Event('online')); });
  await page.waitForFunction(() => document.querySelectorAll('ol.queue li[data-state="done"]').length === 33, null, { timeout: 30000 });
  step('desk: queue kept through a reload');

  // Exactly once: each patron holds exactly the items scanned for them.
  const token = await login('staff', 'desk', 'shoko-demo-desk');
  for (const [barcode, items] of [['D0003', twenty], ['D0004', ten], ['D0005', three]]) {
    const p = await api('GET', `/api/v1/patrons?barcode=${barcode}`, token);
    const loans = await api('GET', `/api/v1/patrons/${p.json[0].id}/loans`, token);
    check(loans.json.length === items.length, `${barcode}: ${loans.json.length} loans for ${items.length} scans`);
    check(p.json[0].open_loans === items.length, `${barcode}: counter ${p.json[0].open_loans}`);
  }
  report.exactly_once = true;

  // 6. A draft survives a reload.
  const d6 = await api('GET', '/api/v1/patrons?barcode=D0006', token);
  await page.goto(`${base}/staff/patrons/${d6.json[0].id}`);
  await page.fill('#f-phone', '03-5841-0000');
  await page.reload();
  check(await page.inputValue('#f-phone') === '03-5841-0000', 'the typed phone number is back after the reload');
  check(await page.isVisible('.draft-note'), 'the page says the draft was restored');
  await axe(page, 'patron-edit-ja');
  await shot(page, 'staff-patron-edit-ja');
  await Promise.all([page.waitForURL(/saved=1/), page.click('form[data-draft] button[type=submit]')]);
  await page.reload();
  check(await page.inputValue('#f-phone') === '03-5841-0000', 'saved');
  check(!(await page.isVisible('.draft-note')), 'the draft is forgotten once saved');
  step('staff: draft kept through a reload');

  // A check-in at the desk says where the item goes: the title D0001 holds.
  await page.goto(`${base}/staff/desk`);
  await page.check('input[name=mode][value=checkin]');
  await scan('#item-barcode', onLoan.barcode);
  await page.waitForFunction((b) => {
    const li = document.querySelector(`ol.queue li[data-barcode="${b}"]`);
    return li && li.dataset.state === 'done' && li.querySelector('.state').textContent.includes('予約棚');
  }, onLoan.barcode, { timeout: 10000 });
  const routed = await page.locator(`ol.queue li[data-barcode="${onLoan.barcode}"] .state`).textContent();
  check(routed.includes('山田') && routed.includes('本郷'), `the routing names the patron and the campus: ${routed}`);
  step('desk: check-in routed to the hold shelf');

  // The catalogue on a phone: no sideways scrolling.
  const phone = await browser.newContext({ locale: 'ja-JP', viewport: { width: 390, height: 844 }, isMobile: true });
  const small = await phone.newPage();
  await small.goto(`${base}/?q=${encodeURIComponent('時代')}`);
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the results page is ${overflow}px wider than a phone`);
  await shot(small, 'opac-search-phone-ja');
  await phone.close();
  step('catalogue: fits a phone');

  // The MARC editor: checks as typed, a draft through a reload, a save at
  // the version read, and the public record page shows the change.
  const edited = onLoan.record;
  const cataloguing = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1200, height: 900 } });
  const editor = await cataloguing.newPage();
  await editor.goto(`${base}/staff/records/${edited}`);
  await editor.fill('#name', 'admin');
  await editor.fill('#password', 'shoko-demo-admin');
  await Promise.all([editor.waitForURL(`${base}/staff/records/${edited}`), editor.click('button[type=submit]')]);
  {
  const page = editor;
  const tag245 = page.locator('#marc-editor input[data-k="tag"]').filter({ hasText: '' });
  const title = page.locator('#marc-editor .marc-row input[aria-label="245 $a value"], #marc-editor .marc-row input[aria-label="245 $a 値"]').first();
  check(await title.count() === 1, 'the editor shows 245 $a');
  const before = await page.textContent('#marc-version');
  await title.fill('');
  check(await page.isDisabled('#marc-save'), 'an empty title cannot be saved');
  check((await page.locator('#marc-errors li').count()) >= 1, 'the problem is listed as it is typed');
  await title.fill('文化交流の時代へ（改訂）');
  check(!(await page.isDisabled('#marc-save')), 'a title again: it can be saved');
  await page.reload();
  check(await page.isVisible('#marc-draft'), 'the MARC draft is restored after a reload');
  const again = page.locator('#marc-editor .marc-row input[aria-label="245 $a 値"]').first();
  check(await again.inputValue() === '文化交流の時代へ（改訂）', 'the typed title is back');
  await axe(page, 'marc-editor-ja');
  await shot(page, 'staff-marc-editor-ja');
  await page.click('#marc-save');
  await page.waitForFunction(() => document.getElementById('marc-status').textContent !== '保存しています…', null, { timeout: 10000 });
  check(await page.textContent('#marc-version') !== before, `the version moves on: ${await page.textContent('#marc-status')}`);
  check((await page.textContent('#marc-status')).includes('保存しました'), 'saved');
  // (The page title shows the vernacular 880; the MARC view shows 245.)
  await page.goto(`${base}/records/${edited}/marc`);
  check((await page.textContent('table')).includes('文化交流の時代へ（改訂）'), 'the MARC view shows the saved 245');
  step('staff: MARC editor');
  void tag245;
  await cataloguing.close();
  }

  await page.goto(`${base}/staff/desk?lang=en`);
  await shot(page, 'staff-desk-en');
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
