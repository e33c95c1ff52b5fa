// The acquisitions pages in a real browser: a vendor, a fund and its
// budget, an order sent, two copies received (found at the OPAC), an
// invoice recorded and paid, and the fund's balance exact to the yen; with
// an axe-core check and screenshots in Japanese and English.
//
// node acquisitions.mjs BASE OUT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir] = process.argv.slice(2);
const axeSource = fs.readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
fs.mkdirSync(outDir, { recursive: true });
function fail(message) { console.error(`FAIL: ${message}`); process.exit(1); }
function check(cond, message) { if (!cond) fail(message); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const report = {};
try {
  const context = await browser.newContext({ locale: 'ja-JP', viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/staff/acquisitions`);
  await page.fill('#name', 'admin');
  await page.fill('#password', 'shoko-demo-admin');
  await Promise.all([page.waitForURL(`${base}/staff/acquisitions`), page.click('button[type=submit]')]);
  const year = await page.inputValue('form[action="/staff/acquisitions/funds"] input[name=fiscal_year]');
  const submit = async (form) => {
    await Promise.all([page.waitForURL(/(message|error)=/), page.click(`${form} button[type=submit]`)]);
    const error = await page.locator('p.alert').allTextContents();
    check(error.length === 0, `${form}: ${error}`);
  };
  await page.fill('#nv-code', 'MARUZEN');
  await page.fill('#nv-name', '丸善雄松堂');
  await submit('form[action="/staff/acquisitions/vendors"]');
  await page.fill('#nf-code', 'BOOKS');
  await page.fill('#nf-name', '図書購入費');
  await submit('form[action="/staff/acquisitions/funds"]');
  await page.fill('#al-amount', '100,000');
  await submit('form[action="/staff/acquisitions/allocations"]');
  await page.fill('#no-record', '1');
  await page.fill('#no-qty', '2');
  await page.fill('#no-price', '3000');
  await submit('form[action="/staff/acquisitions/orders"]');
  const row = page.locator('#orders tbody tr').first();
  const orderId = await row.getAttribute('data-order');
  await Promise.all([page.waitForURL(/message=/), row.locator('button', { hasText: '発注する' }).click()]);
  const fund = (k) => page.textContent(`#funds tr[data-fund="BOOKS"] td[data-k="${k}"]`);
  check((await fund('encumbered')) === '6,600円', `encumbered: ${await fund('encumbered')}`);
  await page.fill(`#bc-${orderId}`, 'ACQ-UI-1\nACQ-UI-2');
  await Promise.all([page.waitForURL(/message=/), page.click(`form[action="/staff/acquisitions/orders/${orderId}/receive"] button`)]);
  check((await page.textContent(`#orders tr[data-order="${orderId}"] td[data-k="status"]`)).includes('受入済'), 'received');
  await page.fill('#ni-number', 'MY-0001');
  await page.selectOption('#ni-line', orderId);
  await page.fill('#ni-qty', '2');
  await page.fill('#ni-gross', '6000');
  await page.fill('#ni-ship', '300');
  await submit('form[action="/staff/acquisitions/invoices"]');
  // (6,000 + 300) × 10 % = 630 tax: ¥6,930.
  check((await page.textContent('#invoices tr[data-invoice="MY-0001"] td[data-k="total_yen"]')) === '6,930円', 'invoice total');
  await Promise.all([page.waitForURL(/message=/), page.locator('#invoices tr[data-invoice="MY-0001"] button', { hasText: '承認' }).click()]);
  check((await page.textContent('#invoices tr[data-invoice="MY-0001"] td[data-k="status"]')) === '承認済・未払', 'approved');
  await Promise.all([page.waitForURL(/message=/), page.click('#invoices tr[data-invoice="MY-0001"] button')]);
  check((await page.textContent('#invoices tr[data-invoice="MY-0001"] td[data-k="status"]')) === '支払済', 'paid');
  check(!(await page.isVisible('form[data-draft="new-invoice"] .draft-note')), 'a saved form leaves no draft behind');
  const balance = { allocated: await fund('allocated'), encumbered: await fund('encumbered'), expended: await fund('expended'), available: await fund('available') };
  check(JSON.stringify(balance) === JSON.stringify({ allocated: '100,000円', encumbered: '0円', expended: '6,930円', available: '93,070円' }), `balance ${JSON.stringify(balance)}`);
  report.balance = balance;
  // The year end from the page: BOOKS carries its balance into next year.
  await page.check('form[action="/staff/acquisitions/close"] input[value=BOOKS]');
  await submit('form[action="/staff/acquisitions/close"]');
  check((await page.textContent('#funds tr[data-fund="BOOKS"] td')).includes('BOOKS') && (await page.locator('#funds tr[data-fund="BOOKS"]', { hasText: '締め済' }).count()) === 1, 'the year is closed');
  await page.goto(`${base}/staff/acquisitions?year=${Number(year) + 1}`);
  check((await fund('available')) === '93,070円', `carried: ${await fund('available')}`);
  await page.goto(`${base}/staff/acquisitions?year=${year}`);
  await page.addScriptTag({ content: axeSource });
  const axe = await page.evaluate(async () => await window.axe.run());
  const bad = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `accessibility: ${bad.map((v) => `${v.id} ${v.nodes.map((n) => n.target).join(' ')}`).join('; ')}`);
  await page.screenshot({ path: path.join(outDir, 'staff-acquisitions-ja.png'), fullPage: true });
  await page.goto(`${base}/staff/acquisitions?lang=en&year=${year}`);
  await page.screenshot({ path: path.join(outDir, 'staff-acquisitions-en.png'), fullPage: true });
  // The received copies are on the shelf in the catalogue.
  await page.goto(`${base}/records/1?lang=ja`);
  check(await page.locator('tr[data-barcode="ACQ-UI-1"]').count() === 1, 'the received copy is on the record page');
  report.year = year;
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
