// Browser test of the web UI: Playwright (playwright-core) driving Debian's chromium against
// `facevault serve` on 127.0.0.1 (an ephemeral port) over a fresh vault.
//   node ui_test.mjs FACEVAULT_BINARY SAMPLES_DIR ARTIFACTS_DIR
// An enroller enrolls a person (lawful basis form, photo with detected faces, choice of face);
// an investigator searches and sees them as the top candidate; an auditor exports and erases
// them; the search no longer returns them; the audit page shows the chain intact; the public
// opt-out page works at phone width. Screenshots go to ARTIFACTS_DIR. Exit 0: pass, 1: fail.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [bin, samples, artifacts] = process.argv.slice(2);
if (!bin || !samples || !artifacts) {
  console.error('usage: node ui_test.mjs FACEVAULT_BINARY SAMPLES_DIR ARTIFACTS_DIR');
  process.exit(2);
}
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(artifacts, { recursive: true });
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fv-browser-'));
const vault = path.join(work, 'vault');
const photo = (who, n) => path.join(samples, who, `${who}${n}.png`);
const env = { ...process.env, FACEVAULT_VAULT: vault };
delete env.FACEVAULT_MASTER_KEY;
const fv = (...args) => execFileSync(bin, args, { env, encoding: 'utf8' }).trim();

let server = null;
let context = null;
let failures = 0;
let step = 0;

function check(cond, what) {
  if (cond) console.log(`  ok   ${what}`);
  else { console.log(`  FAIL ${what}`); failures++; }
}

async function shot(page, name) {
  const file = path.join(artifacts, `${String(++step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

async function startServer() {
  server = spawn(bin, ['serve', '--vault', vault, '--listen', '127.0.0.1:0', '--quiet'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  server.stderr.on('data', (d) => { err += d; });
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start: ' + err)), 60000);
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the server exited (${code}): ${err}`)); });
  });
}

// waitForFunction evaluates strings in the page, which the UI's Content-Security-Policy
// forbids (as it should): poll from here instead.
async function until(page, fn, what, timeout = 30000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await page.evaluate(fn)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out waiting for ' + what);
}

async function signIn(page, key) {
  await page.goto(base + '/#/signin');
  await page.waitForSelector('#signin-key', { state: 'visible' });
  // Keyboard only: focus the field, type, Enter.
  await page.fill('#signin-key', '');
  await page.focus('#signin-key');
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#nav:not([hidden])');
}

async function signOut(page) {
  await page.click('#signout');
  await page.waitForSelector('#view-signin:not([hidden])');
}

async function searchFor(page, probe, caseRef) {
  await page.goto(base + '/#/search');
  await page.waitForSelector('#view-search:not([hidden])');
  await page.setInputFiles('#search-file', probe);
  await page.selectOption('#search-purpose', 'access-control');
  await page.fill('#search-case', caseRef);
  await page.click('#search-submit');
  await page.waitForSelector('#search-notice');
  return await page.$$eval('#search-results table tbody tr', (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.textContent)));
}

let base = '';
try {
  // A vault with two other people already enrolled (from the command line) and one key per role.
  fv('init', vault);
  for (const who of ['sheldon', 'raj']) {
    const b = fv('basis', 'add', '--subject', who, '--kind', 'consent', '--reference', 'cli-form', '--purpose', 'access-control');
    fv('enroll', '--subject', who, '--basis', b, photo(who, 1), photo(who, 2));
  }
  const key = {};
  for (const role of ['enroller', 'investigator', 'auditor']) {
    const extra = role === 'investigator' ? ['--purpose', 'access-control'] : [];
    key[role] = execFileSync(bin, ['key', 'create', '--role', role, ...extra, '--vault', vault], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  }
  const port = await startServer();
  base = `http://127.0.0.1:${port}`;
  console.log(`server on ${base}`);

  context = await chromium.launchPersistentContext(path.join(work, 'profile'), {
    executablePath: chromiumPath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // Nothing may leave loopback.
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1') return route.continue();
    console.log('  FAIL request outside loopback: ' + u.href);
    failures++;
    return route.abort();
  });
  const page = context.pages()[0] || await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  console.log('enroll (enroller key)');
  await signIn(page, key.enroller);
  check(await page.isVisible('#view-enroll'), 'the enroller lands on the enroll page');
  check(!(await page.isVisible('#nav-search')), 'the enroller has no search in the menu');
  await page.fill('#basis-subject', 'penny-ui');
  await page.selectOption('#basis-kind', 'consent');
  await page.fill('#basis-reference', 'FORM-42');
  await page.fill('#basis-purposes', 'access-control');
  await page.click('#basis-submit');
  await until(page, () => document.getElementById('basis-id').value !== '', 'the basis id');
  check(/Lawful basis \d+ recorded/.test(await page.textContent('#status')), 'lawful basis recorded');
  await page.setInputFiles('#enroll-file', photo('penny', 1));
  await page.waitForSelector('#enroll-faces:not([hidden])');
  check(await page.isVisible('#enroll-canvas'), 'the photo is shown with the detected face drawn');
  check(await page.isChecked('#enroll-face-0'), 'the enrollable face is chosen');
  await shot(page, 'enroll-detected');
  await page.click('#enroll-submit');
  await page.waitForSelector('#enroll-receipt');
  check((await page.textContent('#enroll-receipt')).includes('Enrolled penny-ui'), 'enrolled');
  await shot(page, 'enroll-done');
  await signOut(page);

  console.log('search (investigator key)');
  await signIn(page, key.investigator);
  let rows = await searchFor(page, photo('penny', 3), 'CASE-UI-1');
  check(rows.length > 0 && rows[0][1] === 'penny-ui', `penny-ui is the top candidate (got ${rows.length ? rows[0][1] : 'none'})`);
  check(rows.length > 0 && /1 in/.test(rows[0][3]), 'the false-match rate is shown as "1 in N"');
  check((await page.textContent('#search-notice')).includes('not an identification'), 'the human-review notice is shown');
  check(await page.isVisible('#search-results canvas'), 'the probe face crop is shown');
  await shot(page, 'search-found');
  await signOut(page);

  console.log('subject page: export and erase (auditor key)');
  await signIn(page, key.auditor);
  await page.goto(base + '/#/subject');
  await page.fill('#subject-ref', 'penny-ui');
  await page.click('#subject-load');
  await page.waitForSelector('#bases-table');
  check((await page.textContent('#bases-table')).includes('FORM-42'), 'the lawful basis is listed');
  check((await page.$$('#templates-table tbody tr')).length === 1, 'one template listed');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-download')]);
  const exportFile = path.join(artifacts, 'export-penny-ui.json');
  await dl.saveAs(exportFile);
  const exported = JSON.parse(fs.readFileSync(exportFile, 'utf8'));
  check(exported.subject.reference === 'penny-ui' && exported.templates.length === 1, 'the export download holds the records');
  check(exported.audit.some((a) => a.action === 'search' && a.case === 'CASE-UI-1'), 'the export names the search that returned her');
  await shot(page, 'subject-records');
  await page.click('#erase-open');
  await page.waitForSelector('#erase-dialog[open]');
  check(await page.isDisabled('#erase-submit'), 'erasure needs the reference typed to confirm');
  await page.keyboard.type('penny-ui');
  await shot(page, 'erase-confirm');
  await page.click('#erase-submit');
  await page.waitForSelector('#erase-receipt');
  const receipt = await page.textContent('#erase-receipt');
  check(receipt.includes('subject key destroyed') && receipt.includes('1 template'), 'the erasure receipt is shown');
  await shot(page, 'erase-receipt');
  await signOut(page);

  console.log('search again (investigator key)');
  await signIn(page, key.investigator);
  rows = await searchFor(page, photo('penny', 3), 'CASE-UI-2');
  check(!rows.some((r) => r[1] === 'penny-ui'), 'penny-ui is no longer returned');
  await shot(page, 'search-after-erasure');
  await signOut(page);

  console.log('audit page (auditor key)');
  await signIn(page, key.auditor);
  await page.goto(base + '/#/audit');
  await page.waitForSelector('#chain-status.intact');
  check((await page.textContent('#chain-status')).startsWith('Audit chain intact'), 'the audit chain is shown intact');
  await page.waitForSelector('#audit-table');
  await page.selectOption('#audit-action', 'erase');
  await page.click('#audit-submit');
  await until(page, () => {
    const rows = document.querySelectorAll('#audit-table tbody tr');
    return rows.length > 0 && Array.from(rows).every((r) => r.children[4] && r.children[4].textContent === 'erase');
  }, 'the filtered audit table');
  check(true, 'the audit filter shows only erasures');
  await shot(page, 'audit-1280');
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal page scroll at phone width (overflow ${overflow}px)`);
  await shot(page, 'audit-phone');
  await signOut(page);

  console.log('public opt-out page (no key, phone width)');
  await page.goto(base + '/optout');
  await page.setInputFiles('#optout-file', photo('amy', 1));
  await page.check('#optout-agree');
  await page.click('#optout-submit');
  await page.waitForSelector('#optout-reference');
  check((await page.textContent('#optout-reference')).length > 0, 'the opt-out reference is shown');
  const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow2 <= 1, 'the opt-out page fits a phone screen');
  await shot(page, 'optout-phone');

  check(consoleErrors.length === 0, 'no script errors in the page' + (consoleErrors.length ? ': ' + consoleErrors.join(' | ') : ''));
} catch (e) {
  console.log('  FAIL ' + (e && e.stack ? e.stack : e));
  failures++;
} finally {
  if (context) await context.close().catch(() => {});
  if (server) server.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(failures ? `${failures} check(s) failed` : 'all browser checks passed');
process.exit(failures ? 1 : 0);
