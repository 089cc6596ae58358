// facevault web UI: the auditor's page, the transparency report drawn as a chart (inline SVG,
// no library) and the authorisations (EU AI Act Art 26(6), 26(10)).
// Loaded after app.js (its helpers: $, el, api, say, table, state).
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const utcDate = (d) => d.toISOString().slice(0, 10);
const day = (ts) => (ts ? String(ts).slice(0, 10) : null);                                 // 2025-01-31
const minute = (ts) => (ts ? String(ts).slice(0, 16).replace('T', ' ') + ' UTC' : null);  // 2025-01-31 14:05 UTC
const daysFromNow = (n) => utcDate(new Date(Date.now() + n * 86400000));

function loadOversight() {
  if (!$('report-from').value) $('report-from').value = daysFromNow(-30);
  if (!$('report-to').value) $('report-to').value = daysFromNow(0);
  if (!$('auth-from').value) $('auth-from').value = daysFromNow(0);
  if (!$('auth-until').value) $('auth-until').value = daysFromNow(30);
  loadAuthorisations();
}

// ------------------------------------------------------------------ transparency report

const metricNames = {
  searches: 'Searches', candidates_shown: 'Candidates shown', decisions: 'Decisions', denials: 'Denials', refusals: 'Refusals',
  authorisations_cited: 'Authorisations cited', authorisations_lapsed: 'Authorisations lapsed',
  enrolments: 'Enrolments', erasures: 'Erasures', optouts: 'Opt-outs', access_exports: 'Access exports',
  confirm: 'confirm', reject: 'reject', inconclusive: 'inconclusive',
  request: 'on request', withdrawal: 'basis withdrawn', retention: 'retention ended',
};
const metricName = (k) => metricNames[k] || k.replace(/_/g, ' ');

// The order the chart reads in: what searches produced, then the reviewers' answers, the
// refusals and authorisations, then the people's side. Counts the page does not know yet come last.
const metricOrder = ['searches', 'candidates_shown', 'decisions', 'denials', 'refusals', 'authorisations_cited', 'authorisations_lapsed',
  'enrolments', 'erasures', 'optouts', 'access_exports'];
const subOrder = ['confirm', 'reject', 'inconclusive', 'request', 'withdrawal', 'retention'];
const ordered = (obj, order) => Object.entries(obj).sort(([a], [b]) =>
  (order.includes(a) ? order.indexOf(a) : order.length) - (order.includes(b) ? order.indexOf(b) : order.length) || a.localeCompare(b));

// Every number of the report's totals, nested counts flattened ("Decisions: confirm"): one bar
// each, so the chart shows all of it and nothing else.
function flattenTotals(totals) {
  const out = [];
  for (const [k, v] of ordered(totals || {}, metricOrder)) {
    if (typeof v === 'number') out.push({ key: k, label: metricName(k), value: v });
    else if (v && typeof v === 'object') {
      for (const [s, n] of ordered(v, subOrder)) if (typeof n === 'number') out.push({ key: `${k}.${s}`, label: `${metricName(k)}: ${metricName(s)}`, value: n });
    }
  }
  return out;
}

function barChart(metrics, title) {
  const labelW = 210, barW = 380, rowH = 26, top = 8, width = labelW + barW + 70;
  const height = top * 2 + rowH * metrics.length;
  const max = Math.max(1, ...metrics.map((m) => m.value));
  const chart = svg('svg', { class: 'chart', id: 'report-chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-labelledby': 'report-chart-title report-chart-desc', preserveAspectRatio: 'xMinYMin meet' },
  svg('title', { id: 'report-chart-title' }, title),
  svg('desc', { id: 'report-chart-desc' }, metrics.map((m) => `${m.label}: ${m.value}`).join('; ')));
  metrics.forEach((m, i) => {
    const y = top + i * rowH;
    const w = Math.round((m.value / max) * barW);
    chart.append(
      svg('text', { x: labelW - 8, y: y + rowH / 2, class: 'chart-label', 'text-anchor': 'end', 'dominant-baseline': 'middle' }, m.label),
      svg('rect', { x: labelW, y: y + 4, width: barW, height: rowH - 8, class: 'chart-track' }),
      svg('rect', { x: labelW, y: y + 4, width: w, height: rowH - 8, class: 'bar', 'data-metric': m.key, 'data-value': m.value },
        svg('title', {}, `${m.label}: ${m.value}`)),
      svg('text', { x: labelW + w + 6, y: y + rowH / 2, class: 'chart-value', 'dominant-baseline': 'middle' }, String(m.value)));
  });
  return chart;
}

function reportQuery(format) {
  return '/v1/report?' + new URLSearchParams({ from: $('report-from').value, to: $('report-to').value, format }).toString();
}

async function loadReport(ev) {
  if (ev) ev.preventDefault();
  const out = $('report-result');
  try {
    const r = await api('GET', reportQuery('json'));
    const metrics = flattenTotals(r.totals);
    const purposes = Object.entries(r.per_purpose || {});
    const n = (x) => (x === undefined || x === null ? '—' : String(x));
    out.replaceChildren(el('div', { class: 'card', id: 'report-card' },
      el('h3', { text: `From ${$('report-from').value} to ${$('report-to').value} (UTC, both days included)` }),
      el('p', { class: 'help', text: `Generated ${r.generated_at}. Counted from the audit log; no person appears in it.` }),
      el('figure', { class: 'chart-wrap' }, barChart(metrics, `Totals from ${r.from} to ${r.to}`),
        el('figcaption', { class: 'help', text: 'Totals over the period, every purpose together.' })),
      table('Per purpose', ['Purpose', 'Searches', 'Candidates shown', 'Confirmed', 'Rejected', 'Inconclusive', 'Denials',
        'Refusals', 'Authorisations cited', 'Authorisations lapsed'],
      purposes.map(([p, v]) => [p, n(v.searches), n(v.candidates_shown), n((v.decisions || {}).confirm), n((v.decisions || {}).reject),
        n((v.decisions || {}).inconclusive), n(v.denials), n(v.refusals), n(v.authorisations_cited), n(v.authorisations_lapsed)]), 'report-purposes'),
      el('div', { class: 'buttons' },
        el('button', { type: 'button', class: 'secondary', id: 'report-html', onclick: downloadReportHtml },
          'Download the HTML version'))));
    say(`Transparency report from ${r.from} to ${r.to} shown; reading it is recorded in the audit log.`, 'ok');
  } catch (e) {
    out.replaceChildren();
    say('Cannot produce the report: ' + e.message, 'error');
  }
}

// The HTML version needs the key too, so it is fetched here and saved, not linked.
async function downloadReportHtml() {
  try {
    const res = await fetch(reportQuery('html'), { headers: { Authorization: 'Bearer ' + state.key } });
    if (!res.ok) throw new Error(res.statusText);
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: `facevault-report-${$('report-from').value}-${$('report-to').value}.html` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say('The HTML report is saved as a file.', 'ok');
  } catch (e) {
    say('Cannot fetch the HTML report: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ authorisations

async function loadAuthorisations() {
  const out = $('auth-list');
  try {
    const r = await api('GET', '/v1/authorisations');
    out.replaceChildren(table('Authorisations on record', ['Id', 'Authority', 'Reference', 'Purposes', 'Valid from', 'Valid until',
      'Status', 'Deadline', 'Decided', 'Cited by', 'Action'],
    r.authorisations.map((a) => [a.id, a.authority, a.reference, a.purposes.join(', '), day(a.valid_from), day(a.valid_until),
      el('span', { class: 'auth-status ' + a.status, id: `auth-status-${a.id}`, text: a.status }), minute(a.deadline),
      a.decided_at ? `${minute(a.decided_at)} by ${a.decided_by}` : null, String(a.cases_citing),
      a.status === 'pending' ? el('span', { class: 'buttons inline' },
        el('button', { type: 'button', class: 'secondary', id: `auth-grant-${a.id}`, 'aria-label': `Grant ${a.id}`,
          onclick: () => openAuthDialog(a, 'grant') }, 'Grant'),
        el('button', { type: 'button', class: 'secondary', id: `auth-refuse-${a.id}`, 'aria-label': `Refuse ${a.id}`,
          onclick: () => openAuthDialog(a, 'refuse') }, 'Refuse')) : null]), 'auth-table'));
  } catch (e) {
    out.replaceChildren();
    say('Cannot list the authorisations: ' + e.message, 'error');
  }
}

async function addAuthorisation(ev) {
  ev.preventDefault();
  const err = $('auth-form-error');
  err.hidden = true;
  const body = {
    authority: $('auth-authority').value.trim(),
    reference: $('auth-reference').value.trim(),
    purposes: $('auth-purposes').value.split(',').map((s) => s.trim()).filter(Boolean),
    valid_from: $('auth-from').value,
    valid_until: $('auth-until').value,
    pending: $('auth-pending').checked,
    note: $('auth-note').value.trim(),
  };
  // datetime-local is the browser's local time; the vault keeps UTC.
  if (body.pending && $('auth-deadline').value) body.deadline = new Date($('auth-deadline').value).toISOString().replace(/\.\d{3}Z$/, 'Z');
  try {
    const a = await api('POST', '/v1/authorisations', body);
    for (const id of ['auth-authority', 'auth-reference', 'auth-purposes', 'auth-note', 'auth-deadline']) $(id).value = '';
    $('auth-pending').checked = false;
    await loadAuthorisations();
    say(`Authorisation ${a.id} recorded (${a.status}).`, 'ok');
  } catch (e) {
    err.textContent = 'Not recorded: ' + e.message;
    err.hidden = false;
    say('The authorisation was not recorded: ' + e.message, 'error');
    $('auth-authority').focus();
  }
}

function openAuthDialog(a, op) {
  const dlg = $('auth-dialog');
  dlg.dataset.id = a.id;
  dlg.dataset.op = op;
  $('auth-dialog-title').textContent = (op === 'grant' ? 'Grant' : 'Refuse') + ' authorisation ' + a.id;
  $('auth-dialog-text').textContent = op === 'grant'
    ? `Record that ${a.authority} granted ${a.reference}. Searches citing it stay usable.`
    : `Record that ${a.authority} refused ${a.reference}. Searches citing it are marked unusable.`;
  $('auth-dialog-submit').textContent = op === 'grant' ? 'Grant' : 'Refuse';
  $('auth-dialog-submit').className = op === 'grant' ? '' : 'danger';
  $('auth-dialog-note').value = '';
  dlg.showModal();
  $('auth-dialog-note').focus();
}

async function decideAuthorisation(ev) {
  ev.preventDefault();
  const dlg = $('auth-dialog');
  const { id, op } = dlg.dataset;
  dlg.close();
  try {
    const a = await api('POST', `/v1/authorisations/${encodeURIComponent(id)}/${op}`, { note: $('auth-dialog-note').value.trim() });
    await loadAuthorisations();
    say(`Authorisation ${a.id} is now ${a.status}.`, 'ok');
  } catch (e) {
    say(`The authorisation was not ${op === 'grant' ? 'granted' : 'refused'}: ` + e.message, 'error');
  }
  $('h-auths').focus();
}
