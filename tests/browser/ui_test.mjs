// Browser test of the web UI: Playwright (playwright-core) driving Debian's chromium against
// `facevault serve` on 127.0.0.1 (an ephemeral port) over a fresh vault.
//   node ui_test.mjs FACEVAULT_BINARY SAMPLES_DIR ARTIFACTS_DIR
// An enroller enrolls a person (lawful basis form, photo with detected faces, choice of face,
// a reference face kept for reviewers); an investigator searches, sees them as the top
// candidate and the review case the search opened; two reviewers each compare the probe with
// the reference side by side and confirm (the first with the keyboard only, neither seeing the
// other's decision before recording their own) and the candidate shows confirmed; an auditor
// exports and erases them; the search no longer returns them; the auditor's report page draws
// the report as a chart and records authorisations; a search under a purpose that needs an
// authorisation is refused beside the field, then runs citing one; the audit page shows the
// chain intact; the public opt-out page works at phone width. Screenshots go to ARTIFACTS_DIR.
// Exit 0: pass, 1: fail.
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
async function until(page, fn, what, timeout = 30000, arg = undefined) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await page.evaluate(fn, arg)) return;
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

async function searchFor(page, probe, caseRef, purpose = 'access-control') {
  await page.goto(base + '/#/search');
  await page.waitForSelector('#view-search:not([hidden])');
  await page.setInputFiles('#search-file', probe);
  await page.selectOption('#search-purpose', purpose);
  await page.fill('#search-case', caseRef);
  await page.click('#search-submit');
  await page.waitForSelector('#search-notice');
  return await page.$$eval('#search-results table tbody tr', (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.textContent)));
}

// The review case a search opened, from the link in its results.
async function openedCase(page) {
  const link = await page.$('#search-review-link');
  return link ? (await link.textContent()).trim() : '';
}

// Opens a review case's page and returns the id of the candidate whose heading names `who`.
async function openCase(page, caseId, who) {
  await page.goto(base + '/#/review/' + encodeURIComponent(caseId));
  await page.waitForSelector(`#view-review:not([hidden]) #review-case[data-case="${caseId}"] article.candidate`);
  return await page.$$eval('article.candidate', (arts, who) => {
    const a = arts.find((x) => x.querySelector('h3').textContent.includes(who));
    return a ? a.id.replace('candidate-', '') : '';
  }, who);
}

// Whether the focused element shows a focus ring.
const focusVisible = () => {
  const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
};

async function apiGet(key, p) {
  const res = await fetch(base + p, { headers: { Authorization: 'Bearer ' + key } });
  return await res.json();
}

let base = '';
try {
  // A vault with two other people already enrolled (from the command line) and one key per role.
  fv('init', vault);
  // The purpose "investigation" needs an authorisation per search (EU AI Act Art 26(10)).
  const cfgFile = path.join(vault, 'config.json');
  const cfg = fs.existsSync(cfgFile) ? JSON.parse(fs.readFileSync(cfgFile, 'utf8')) : {};
  cfg.oversight = { ...(cfg.oversight || {}), authorisation_required: ['investigation'] };
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  for (const who of ['sheldon', 'raj']) {
    const b = fv('basis', 'add', '--subject', who, '--kind', 'consent', '--reference', 'cli-form', '--purpose', 'access-control');
    fv('enroll', '--subject', who, '--basis', b, photo(who, 1), photo(who, 2));
  }
  const key = {};
  for (const [name, role] of [['enroller', 'enroller'], ['investigator', 'investigator'], ['auditor', 'auditor'],
    ['reviewer1', 'reviewer'], ['reviewer2', 'reviewer']]) {
    const extra = role === 'investigator' ? ['--purpose', 'access-control', '--purpose', 'investigation'] : [];
    key[name] = execFileSync(bin, ['key', 'create', '--role', role, ...extra, '--vault', vault], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
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
  // The one refusal the scenario provokes (a search without the authorisation its purpose needs)
  // is logged by Chromium as a failed resource load: expected, not a script error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: .* status of 422/.test(m.text())) consoleErrors.push(m.text());
  });
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
  await page.selectOption('#enroll-keep-reference', 'true');
  await shot(page, 'enroll-detected');
  await page.click('#enroll-submit');
  await page.waitForSelector('#enroll-receipt');
  check((await page.textContent('#enroll-receipt')).includes('Enrolled penny-ui'), 'enrolled');
  // The reference crop itself is checked on the review page (it loads beside the probe).
  const enrolReceipt = await page.textContent('#enroll-receipt');
  check(enrolReceipt.includes('kept (encrypted) for reviewers'), 'the receipt says a reference face is kept');
  await shot(page, 'enroll-done');
  await signOut(page);

  console.log('search (investigator key)');
  await signIn(page, key.investigator);
  let rows = await searchFor(page, photo('penny', 3), 'CASE-UI-1');
  check(rows.length > 0 && rows[0][1] === 'penny-ui', `penny-ui is the top candidate (got ${rows.length ? rows[0][1] : 'none'})`);
  check(rows.length > 0 && /1 in/.test(rows[0][3]), 'the false-match rate is shown as "1 in N"');
  check((await page.textContent('#search-notice')).includes('not an identification'), 'the human-review notice is shown');
  check(await page.isVisible('#search-results canvas'), 'the probe face crop is shown');
  check(rows.length > 0 && rows[0][4] === 'candidate only', 'the candidate is marked as a candidate only');
  const caseId = await openedCase(page);
  check(/^rv_/.test(caseId), `the results name the review case the search opened (${caseId || 'none'})`);
  check((await page.getAttribute('#search-review-link', 'href').catch(() => '')) === '#/review/' + caseId, 'and link to it');
  check((await page.textContent('#search-notice')).includes('only a candidate until two reviewers'), 'the notice says two reviewers must confirm');
  await shot(page, 'search-found');
  // Sheldon was enrolled from the command line without a reference face.
  await searchFor(page, photo('sheldon', 3), 'CASE-UI-NOREF');
  const noRefCase = await openedCase(page);
  await page.click('#search-review-link');
  await page.waitForSelector(`#view-review:not([hidden]) #review-case[data-case="${noRefCase}"]`);
  check((await page.$$('form.decide')).length === 0, 'the investigator sees the case but no decision form');
  await signOut(page);

  console.log('review (two reviewer keys)');
  await signIn(page, key.reviewer1);
  check(await page.isVisible('#view-reviews'), 'a reviewer lands on the review queue');
  await page.waitForSelector('#reviews-table');
  check((await page.textContent('#reviews-table')).includes(caseId), 'the queue lists the case awaiting the reviewer');
  await shot(page, 'review-queue');
  await page.click(`#reviews-table a[href="#/review/${caseId}"]`);
  await page.waitForSelector(`#view-review:not([hidden]) #review-case[data-case="${caseId}"]`);
  const cid = await openCase(page, caseId, 'penny-ui');
  check(cid !== '', 'penny-ui is a candidate in the case');
  await until(page, (id) => {
    const p = document.getElementById('probe-' + id), r = document.getElementById('reference-' + id);
    return p && r && p.complete && r.complete && p.naturalWidth > 0 && r.naturalWidth > 0;
  }, 'the probe and reference images', 30000, cid).catch(() => {});
  const imgs = await page.evaluate((id) => ['probe-', 'reference-'].map((k) => {
    const i = document.getElementById(k + id);
    if (!i) return null;
    const b = i.getBoundingClientRect();
    return { w: i.naturalWidth, x: b.x, y: b.y, alt: i.alt, src: i.src.slice(0, 5) };
  }), cid);
  check(imgs[0] && imgs[0].w > 0, 'the probe face is shown (loaded)');
  check(imgs[1] && imgs[1].w > 0, 'the enrolled reference face is shown (loaded)');
  check(imgs[0] && imgs[1] && imgs[1].x > imgs[0].x && Math.abs(imgs[1].y - imgs[0].y) < 5, 'side by side');
  check(imgs.every((i) => i && i.alt.length > 0 && i.src === 'blob:'), 'both have alt text and come from object URLs');
  check(!(await page.$(`#decisions-${cid}`)), 'the first reviewer sees no decision table before deciding');
  check(!(await page.textContent(`#candidate-${cid}-state`)).includes('onfirmed'), 'the candidate is not shown confirmed');
  // The decision form with the keyboard only: Tab to the first choice, Space, Tab, type, Tab, Enter.
  await page.focus('#h-review');
  let tabs = 0;
  while (tabs < 120 && await page.evaluate(() => document.activeElement.id) !== `decide-${cid}-confirm`) {
    await page.keyboard.press('Tab');
    tabs++;
  }
  check(await page.evaluate(() => document.activeElement.id) === `decide-${cid}-confirm`, `Tab reaches the decision form (${tabs} presses)`);
  check(await page.evaluate(focusVisible), 'the focused choice shows a focus ring');
  await page.keyboard.press('Space');
  check(await page.isChecked(`#decide-${cid}-confirm`), 'Space chooses "confirm"');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.id) === `decide-${cid}-reason`, 'Tab moves to the reason');
  await page.keyboard.type('Same face shape, ears and hairline; reference crop compared.');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.id) === `decide-${cid}-submit`, 'Tab moves to the button');
  check(await page.evaluate(focusVisible), 'the focused button shows a focus ring');
  await shot(page, 'review-page');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`#decisions-${cid}`);
  const first = await page.textContent(`#decisions-${cid}`);
  check(first.includes('confirm') && first.includes('ears and hairline'), 'after deciding, the reviewer sees their decision');
  check((await page.textContent(`#candidate-${cid}-state`)).startsWith('Candidate only'), 'one confirmation does not confirm');
  if (noRefCase) {
    await page.goto(base + '/#/review/' + noRefCase);
    await page.waitForSelector(`#view-review:not([hidden]) #review-case[data-case="${noRefCase}"] article.candidate`);
    check((await page.textContent('#review-case')).includes('No reference photo is kept for this subject'),
      'without a kept reference the page says so');
    await shot(page, 'review-no-reference');
  }
  await signOut(page);

  await signIn(page, key.reviewer2);
  await page.waitForSelector('#reviews-table');
  check((await page.textContent('#reviews-table')).includes(caseId), 'the second reviewer has the case in the queue');
  await openCase(page, caseId, 'penny-ui');
  check(!(await page.$(`#decisions-${cid}`)), 'the second reviewer sees no decision before deciding');
  check((await page.textContent(`#decisions-hidden-${cid}`)).includes('1 decision'), 'only that one was recorded');
  await page.check(`#decide-${cid}-confirm`);
  await page.fill(`#decide-${cid}-reason`, 'Compared with the reference: same person.');
  await page.click(`#decide-${cid}-submit`);
  await page.waitForSelector(`#decisions-${cid}`);
  check((await page.$$(`#decisions-${cid} tbody tr`)).length === 2, 'after deciding, both decisions are shown');
  check((await page.textContent(`#candidate-${cid}-state`)) === 'Confirmed identification', 'the candidate shows confirmed');
  await shot(page, 'review-confirmed');
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
  check(exported.audit.filter((a) => a.action === 'review_decide').length >= 2, 'the export lists the review decisions about her');
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

  console.log('report and authorisations (auditor key)');
  await signIn(page, key.auditor);
  await page.goto(base + '/#/oversight');
  await page.waitForSelector('#view-oversight:not([hidden])');
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  await page.fill('#report-from', yesterday);
  await page.fill('#report-to', today);
  await page.click('#report-submit');
  await page.waitForSelector('#report-chart');
  const report = await apiGet(key.auditor, `/v1/report?from=${yesterday}&to=${today}&format=json`);
  const leaves = [];
  for (const [k, v] of Object.entries(report.totals || {})) {
    if (typeof v === 'number') leaves.push([k, v]);
    else for (const [s, n] of Object.entries(v)) leaves.push([`${k}.${s}`, n]);
  }
  const bars = await page.$$eval('#report-chart rect.bar', (rs) => rs.map((r) => [r.dataset.metric, Number(r.dataset.value), Number(r.getAttribute('width'))]));
  check(bars.length > 0 && bars.length === leaves.length, `the chart has one bar per count of the report (${bars.length} of ${leaves.length})`);
  const sorted = (xs) => JSON.stringify(xs.map((x) => [x[0], x[1]]).sort());
  check(sorted(bars) === sorted(leaves), 'the bars carry the report\'s numbers');
  check(bars.every((b) => (b[1] > 0) === (b[2] > 0)), 'a bar is drawn exactly when its count is not zero');
  check(report.totals && report.totals.searches >= 3 && report.totals.decisions.confirm >= 2, 'the report counts the searches and confirmations');
  const [htmlDl] = await Promise.all([page.waitForEvent('download'), page.click('#report-html')]);
  const htmlFile = path.join(artifacts, 'report.html');
  await htmlDl.saveAs(htmlFile);
  check(/<html/i.test(fs.readFileSync(htmlFile, 'utf8')), 'the HTML version downloads');
  await shot(page, 'report');
  await page.fill('#auth-authority', 'District Court of Pasadena');
  await page.fill('#auth-reference', 'W-2025-117');
  await page.fill('#auth-purposes', 'investigation');
  await page.click('#auth-submit');
  await until(page, () => (document.getElementById('auth-table') || {}).textContent?.includes('W-2025-117'), 'the new authorisation');
  const authId = await page.$$eval('#auth-table tbody tr', (rs) => {
    const r = rs.find((x) => x.textContent.includes('W-2025-117'));
    return r ? r.children[0].textContent : '';
  });
  check(/^au_/.test(authId) && (await page.textContent(`#auth-status-${authId}`)) === 'granted', `the form adds a granted authorisation (${authId})`);
  await page.fill('#auth-authority', 'Ministry of the Interior');
  await page.fill('#auth-reference', 'REQ-9');
  await page.fill('#auth-purposes', 'investigation');
  await page.check('#auth-pending');
  await page.click('#auth-submit');
  await until(page, () => (document.getElementById('auth-table') || {}).textContent?.includes('REQ-9'), 'the pending authorisation');
  const pendingId = await page.$$eval('#auth-table tbody tr', (rs) => {
    const r = rs.find((x) => x.textContent.includes('REQ-9'));
    return r ? r.children[0].textContent : '';
  });
  check(pendingId && (await page.textContent(`#auth-status-${pendingId}`)) === 'pending', 'a pending one is listed as pending');
  await page.click(`#auth-grant-${pendingId}`);
  await page.waitForSelector('#auth-dialog[open]');
  await page.keyboard.type('Granted by letter of today.');
  await page.click('#auth-dialog-submit');
  await until(page, (id) => (document.getElementById('auth-status-' + id) || {}).textContent === 'granted', 'the grant', 30000, pendingId).catch(() => {});
  check((await page.textContent(`#auth-status-${pendingId}`)) === 'granted', 'the grant button grants it');
  await shot(page, 'authorisations');
  await signOut(page);

  console.log('a search that needs an authorisation (investigator key)');
  await signIn(page, key.investigator);
  await page.goto(base + '/#/search');
  await page.waitForSelector('#view-search:not([hidden])');
  await page.setInputFiles('#search-file', photo('raj', 3));
  await page.selectOption('#search-purpose', 'investigation');
  await page.fill('#search-case', 'CASE-UI-AUTH');
  await page.click('#search-submit');
  await page.waitForSelector('#search-authorisation-error:not([hidden])');
  check(await page.evaluate(() => document.activeElement.id) === 'search-authorisation', 'without one the search is refused and the field is focused');
  check((await page.getAttribute('#search-authorisation', 'aria-invalid')) === 'true', 'the field is marked invalid');
  await shot(page, 'search-needs-authorisation');
  await page.selectOption('#search-authorisation', authId);
  await page.click('#search-submit');
  await page.waitForSelector('#search-notice');
  check(/^rv_/.test(await openedCase(page)), 'citing the authorisation, the search runs and opens a case');
  check((await page.textContent('#search-authorisation-cited')).includes(authId), 'the results name the authorisation cited');
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
  // Where it stopped: the page's status line and a screenshot.
  const pg = context && context.pages()[0];
  if (pg) {
    console.log('  at ' + pg.url() + ', status: ' + (await pg.textContent('#status').catch(() => '?')));
    await shot(pg, 'failure').catch(() => {});
  }
  console.log('  FAIL ' + (e && e.stack ? e.stack : e));
  failures++;
} finally {
  if (context) await context.close().catch(() => {});
  if (server) server.kill('SIGTERM');
  fs.rmSync(work, { recursive: true, force: true });
}
console.log(failures ? `${failures} check(s) failed` : 'all browser checks passed');
process.exit(failures ? 1 : 0);
