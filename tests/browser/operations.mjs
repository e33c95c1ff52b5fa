// The operations page in a real browser (Debian's chromium, driven by
// playwright-core): a staff login through the form, the page in Japanese
// and in English with its storage charts, an axe-core accessibility check
// that allows no serious or critical violation, and screenshots.
//
// node operations.mjs BASE_URL OUT_DIR USER PASSWORD
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir, user, password] = process.argv.slice(2);
const axeSource = fs.readFileSync(
  new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
fs.mkdirSync(outDir, { recursive: true });

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const report = {};
try {
  for (const lang of ['ja', 'en']) {
    const context = await browser.newContext({
      locale: lang === 'ja' ? 'ja-JP' : 'en-US',
      viewport: { width: 1200, height: 900 },
    });
    const page = await context.newPage();
    await page.goto(`${base}/staff/operations`);
    if (!page.url().includes('/staff/login')) fail(`${lang}: not sent to the login form: ${page.url()}`);
    await page.screenshot({ path: path.join(outDir, `staff-login-${lang}.png`) });
    await page.fill('#name', user);
    await page.fill('#password', password);
    await Promise.all([
      page.waitForURL(`${base}/staff/operations`),
      page.click('button[type=submit]'),
    ]);
    const heading = await page.textContent('h1');
    const expected = lang === 'ja' ? '運用状況' : 'Operations';
    if (heading.trim() !== expected) fail(`${lang}: heading ${heading}`);
    const htmlLang = await page.getAttribute('html', 'lang');
    if (htmlLang !== lang) fail(`${lang}: html lang ${htmlLang}`);
    const lines = await page.locator('svg polyline').count();
    if (lines < 3) fail(`${lang}: ${lines} chart lines, expected disk, database and index`);
    const rows = await page.locator('#h-doctor ~ table tbody tr').count();
    if (rows < 5) fail(`${lang}: ${rows} doctor findings`);
    await page.addScriptTag({ content: axeSource });
    const axe = await page.evaluate(async () => await window.axe.run());
    const bad = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    if (bad.length > 0) {
      fail(`${lang}: accessibility: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.length}`).join('; ')}`);
    }
    await page.screenshot({ path: path.join(outDir, `operations-${lang}.png`), fullPage: true });
    report[lang] = { charts: lines, findings: rows, violations: axe.violations.length };
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
