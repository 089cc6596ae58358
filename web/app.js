// facevault web UI: plain JavaScript, no dependencies, nothing fetched from elsewhere.
// Every value from the server is put into the page as text (never as HTML).
'use strict';

const state = { key: sessionStorage.getItem('fv-key') || '', me: null, detect: null, enrollImage: null, exportData: null,
  imageUrls: [], authorisations: null, reviewGen: 0 };

// ------------------------------------------------------------------ helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function say(message, kind = '') {
  const s = $('status');
  s.textContent = message;
  s.className = 'status' + (kind ? ' ' + kind : '');
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (state.key) opts.headers['Authorization'] = 'Bearer ' + state.key;
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, 'the server cannot be reached');
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const msg = data && data.error ? data.error.message : res.statusText;
    if (res.status === 401 && state.me) signOut('Your key is no longer accepted: ' + msg);
    throw new ApiError(res.status, msg);
  }
  return data;
}

// A JPEG the API serves only with the key (review crops): an object URL for an <img>, kept in
// state.imageUrls so that leaving the page revokes it; null when there is none (404).
async function apiImage(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Authorization: 'Bearer ' + state.key }, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'the server cannot be reached');
  }
  if (res.status === 404) return null;
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new ApiError(res.status, msg);
  }
  const url = URL.createObjectURL(await res.blob());
  state.imageUrls.push(url);
  return url;
}

function releaseImages() {
  for (const u of state.imageUrls) URL.revokeObjectURL(u);
  state.imageUrls = [];
}

function oneIn(fmr) {
  if (fmr === null || fmr === undefined) return 'unknown';
  if (fmr <= 0) return '0';
  const n = 1 / fmr;
  return '1 in ' + (n >= 1000 ? Math.round(n).toLocaleString('en') : n.toFixed(0));
}

function table(caption, headers, rows, id) {
  return el('div', { class: 'table-wrap' },
    el('table', { id },
      el('caption', { text: caption }),
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows.length ? rows.map((r) => el('tr', {}, r.map((c) =>
        c instanceof Node ? el('td', {}, c) : el('td', { text: c === null || c === undefined ? '—' : String(c) }))))
        : el('tr', {}, el('td', { colspan: headers.length, text: 'none' })))));
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('this file cannot be shown as an image'));
    img.src = url;
  });
}

function cropCanvas(img, box, size = 160) {
  const [x, y, w, h] = box;
  const m = 0.15 * Math.max(w, h);
  const sx = Math.max(0, x - m), sy = Math.max(0, y - m);
  const sw = Math.min(img.naturalWidth - sx, w + 2 * m), sh = Math.min(img.naturalHeight - sy, h + 2 * m);
  const c = el('canvas', { width: size, height: Math.round(size * sh / sw) });
  c.getContext('2d').drawImage(img, sx, sy, sw, sh, 0, 0, c.width, c.height);
  return c;
}

function download(name, text) {
  const a = el('a', { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// ------------------------------------------------------------------ session and routing

const views = { signin: 'view-signin', enroll: 'view-enroll', search: 'view-search', subject: 'view-subject', audit: 'view-audit',
  reviews: 'view-reviews', review: 'view-review', oversight: 'view-oversight' };
const reviewRoles = ['admin', 'investigator', 'auditor', 'reviewer'];
const viewRoles = { enroll: ['admin', 'enroller'], search: ['admin', 'investigator'], subject: ['admin', 'auditor'], audit: ['admin', 'auditor'],
  reviews: reviewRoles, review: reviewRoles, oversight: ['admin', 'auditor'] };

function defaultView() {
  const r = state.me ? state.me.role : '';
  if (r === 'investigator') return 'search';
  if (r === 'auditor') return 'audit';
  if (r === 'reviewer') return 'reviews';
  return 'enroll';
}

function route() {
  const [, found, arg] = (location.hash || '').match(/^#\/([a-z]+)(?:\/(.*))?$/) || [];
  const name = found === 'enrol' ? 'enroll' : found;  // bookmarks of the page's earlier address
  let v = name && views[name] ? name : null;
  if (!state.me) v = 'signin';
  else if (!v || v === 'signin' || !(viewRoles[v] || []).includes(state.me.role)) v = defaultView();
  if (v === 'review' && !arg) v = 'reviews';
  releaseImages();  // the crops of a review case live only while its page is shown
  state.reviewGen++;  // and a case still loading is not shown any more
  for (const [k, id] of Object.entries(views)) $(id).hidden = k !== v;
  document.querySelectorAll('#nav a').forEach((a) => {
    if (a.getAttribute('href') === '#/' + v) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  });
  document.title = 'facevault · ' + $(views[v]).querySelector('h1').textContent;
  const h = $(views[v]).querySelector('h1');
  if (h) h.focus();
  if (v === 'audit') loadAudit();
  if (v === 'search') loadSearchAuthorisations();
  if (v === 'reviews') loadReviews();
  if (v === 'review') loadReviewCase(decodeURIComponent(arg));
  if (v === 'oversight') loadOversight();
  if (v === 'subject' && arg) { $('subject-ref').value = decodeURIComponent(arg); loadSubject(); }
}

function showSession() {
  const signedIn = !!state.me;
  $('nav').hidden = !signedIn;
  $('who').hidden = !signedIn;
  if (signedIn) {
    $('who-text').textContent = `key ${state.me.id} · ${state.me.role}`;
    document.querySelectorAll('#nav li').forEach((li) => {
      li.hidden = !li.dataset.roles.split(' ').includes(state.me.role);
    });
    const sel = $('search-purpose');
    sel.replaceChildren(...(state.me.purposes.length ? state.me.purposes : []).map((p) => el('option', { value: p, text: p })));
    if (!state.me.purposes.length) sel.append(el('option', { value: '', text: 'this key may not search (no purposes)' }));
  }
}

function signOut(message) {
  state.key = '';
  state.me = null;
  sessionStorage.removeItem('fv-key');
  showSession();
  location.hash = '#/signin';
  route();
  if (message) say(message, 'error');
}

async function signIn(key) {
  state.key = key.trim();
  try {
    const r = await api('GET', '/v1/whoami');
    state.me = r.key;
    sessionStorage.setItem('fv-key', state.key);
    $('signin-key').value = '';
    showSession();
    say(`Signed in as ${r.key.role} (key ${r.key.id}).`, 'ok');
    location.hash = '#/' + defaultView();
    route();
  } catch (e) {
    state.key = '';
    state.me = null;
    say(e.status === 401 ? 'This key is not accepted (unknown or revoked).' : 'Sign-in failed: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ enroll

async function recordBasis(ev) {
  ev.preventDefault();
  const ref = $('basis-subject').value.trim();
  const body = {
    kind: $('basis-kind').value,
    reference: $('basis-reference').value.trim(),
    purposes: $('basis-purposes').value.split(',').map((s) => s.trim()).filter(Boolean),
  };
  if ($('basis-expires').value) body.expires = $('basis-expires').value;
  try {
    const r = await api('POST', '/v1/subjects/' + encodeURIComponent(ref) + '/bases', body);
    $('basis-id').value = r.id;
    say(`Lawful basis ${r.id} recorded for ${ref}${r.subject_created ? ' (new subject)' : ''}. Now choose a photo.`, 'ok');
    $('enroll-file').focus();
  } catch (e) {
    say('The lawful basis was not recorded: ' + e.message, 'error');
  }
}

function drawDetections(selected) {
  const img = state.enrollImage, d = state.detect, c = $('enroll-canvas');
  if (!img || !d) return;
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const lw = Math.max(2, Math.round(img.naturalWidth / 300));
  d.faces.forEach((f, i) => {
    const [x, y, w, h] = f.box;
    g.lineWidth = i === selected ? lw * 2 : lw;
    g.strokeStyle = i === selected ? '#00e676' : (f.quality.acceptable ? '#ffbf47' : '#ff5252');
    g.strokeRect(x, y, w, h);
    const label = String(i + 1);
    g.font = `bold ${Math.max(14, lw * 8)}px sans-serif`;
    const tw = g.measureText(label).width + 8;
    g.fillStyle = g.strokeStyle;
    g.fillRect(x, Math.max(0, y - lw * 10), tw, lw * 10);
    g.fillStyle = '#000';
    g.fillText(label, x + 4, Math.max(lw * 8, y - lw * 2));
  });
  c.hidden = false;
}

async function detectForEnroll() {
  const file = $('enroll-file').files[0];
  $('enroll-submit').disabled = true;
  $('enroll-faces').hidden = true;
  $('enroll-result').replaceChildren();
  state.detect = null;
  if (!file) return;
  try {
    state.enrollImage = await loadImage(file);
    const fd = new FormData();
    fd.append('image', file);
    say('Finding faces…');
    const d = await api('POST', '/v1/detect', fd);
    state.detect = d;
    const list = $('enroll-face-list');
    list.replaceChildren();
    if (!d.faces.length) {
      say('No face was found in this photo.', 'error');
      drawDetections(-1);
      return;
    }
    const chosen = d.enrollable_face === null || d.enrollable_face === undefined ? -1 : d.enrollable_face;
    d.faces.forEach((f, i) => {
      const id = 'enroll-face-' + i;
      const r = el('input', { type: 'radio', name: 'enroll-face', id, value: i, disabled: !f.quality.acceptable, checked: i === chosen });
      r.addEventListener('change', () => { drawDetections(i); $('enroll-submit').disabled = false; });
      const why = f.quality.acceptable ? 'good enough to enroll' : 'not good enough: ' + f.quality.reasons.join('; ');
      list.append(el('label', { for: id }, r, `Face ${i + 1} (${Math.round(f.box[2])}×${Math.round(f.box[3])} px): ${why}`));
    });
    $('enroll-faces').hidden = false;
    drawDetections(chosen);
    $('enroll-submit').disabled = chosen < 0;
    say(`${d.faces.length} face(s) found.` + (chosen < 0 ? ' ' + (d.enrollable_reason || 'Choose one.') : ` Face ${chosen + 1} is selected.`),
      chosen < 0 && !d.faces.some((f) => f.quality.acceptable) ? 'error' : 'ok');
  } catch (e) {
    say('The photo could not be analyzed: ' + e.message, 'error');
  }
}

async function enroll(ev) {
  ev.preventDefault();
  const ref = $('basis-subject').value.trim();
  const basis = $('basis-id').value.trim();
  if (!ref || !basis) { say('Record the lawful basis (or enter a subject reference and basis id) first.', 'error'); return; }
  const picked = document.querySelector('input[name="enroll-face"]:checked');
  const fd = new FormData();
  fd.append('image', $('enroll-file').files[0]);
  fd.append('basis', basis);
  if (picked) fd.append('face', picked.value);
  if ($('enroll-keep').checked) fd.append('keep_image', 'true');
  if ($('enroll-keep-reference').value) fd.append('keep_reference', $('enroll-keep-reference').value);
  try {
    const r = await api('POST', '/v1/subjects/' + encodeURIComponent(ref) + '/faces', fd);
    $('enroll-result').replaceChildren(el('div', { class: 'receipt', id: 'enroll-receipt' },
      el('p', {}, el('strong', { text: `Enrolled ${r.subject}.` })),
      el('dl', {}, el('dt', { text: 'template id' }), el('dd', { text: r.face_id }),
        el('dt', { text: 'retained until' }), el('dd', { text: r.retention_until }),
        r.reference_kept === undefined ? null : [el('dt', { text: 'reference face' }),
          el('dd', { text: r.reference_kept ? 'kept (encrypted) for reviewers' : 'not kept' })],
        el('dt', { text: 'audit entry' }), el('dd', { text: r.audit_hash.slice(0, 16) + '…' }))));
    say(`Enrolled ${r.subject} (template ${r.face_id}).`, 'ok');
  } catch (e) {
    say('Not enrolled: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ search

// The authorisations a search may cite: those covering the chosen purpose that are granted or
// still pending. Whether the purpose needs one is the vault's configuration, which the page
// cannot read: the field is always there and optional, and a refusal says so next to it.
async function loadSearchAuthorisations() {
  try {
    state.authorisations = (await api('GET', '/v1/authorisations')).authorisations;
  } catch (e) {
    state.authorisations = null;  // not readable with this key: the id can still be typed
  }
  fillAuthorisationField();
}

function fillAuthorisationField() {
  const old = $('search-authorisation');
  const chosen = old.value;
  const described = 'search-authorisation-help search-authorisation-error';
  let field;
  if (state.authorisations === null) {
    field = el('input', { id: 'search-authorisation', autocomplete: 'off', placeholder: 'au_…', 'aria-describedby': described });
  } else {
    const purpose = $('search-purpose').value;
    const usable = state.authorisations.filter((a) => ['granted', 'pending'].includes(a.status) && a.purposes.includes(purpose));
    field = el('select', { id: 'search-authorisation', 'aria-describedby': described },
      el('option', { value: '', text: usable.length ? 'none cited' : 'none cited (none recorded for this purpose)' }),
      usable.map((a) => el('option', { value: a.id, text: `${a.id}: ${a.authority}, ${a.reference} (${a.status}, valid until ${a.valid_until})` })));
  }
  field.value = chosen;
  if (field.value !== chosen) field.value = '';
  field.addEventListener('change', clearAuthorisationError);
  field.addEventListener('input', clearAuthorisationError);
  old.replaceWith(field);
}

function clearAuthorisationError() {
  $('search-authorisation-error').hidden = true;
  $('search-authorisation').removeAttribute('aria-invalid');
}

function showAuthorisationError(message) {
  const p = $('search-authorisation-error');
  p.textContent = 'Authorisation: ' + message;
  p.hidden = false;
  $('search-authorisation').setAttribute('aria-invalid', 'true');
  $('search-authorisation').focus();
}

async function search(ev) {
  ev.preventDefault();
  const file = $('search-file').files[0];
  const out = $('search-results');
  out.replaceChildren();
  clearAuthorisationError();
  const fd = new FormData();
  fd.append('image', file);
  fd.append('purpose', $('search-purpose').value);
  fd.append('case', $('search-case').value.trim());
  fd.append('top', $('search-top').value || '5');
  const auth = $('search-authorisation').value.trim();
  if (auth) fd.append('authorisation', auth);
  try {
    say('Searching…');
    const [img, r] = await Promise.all([loadImage(file), api('POST', '/v1/search', fd)]);
    out.append(el('p', { class: 'notice', id: 'search-notice', role: 'note' },
      'Candidates for human review, not an identification. Every candidate is only a candidate until two reviewers ' +
      'have each compared the photos and confirmed it.'));
    if (r.review_case) {
      out.append(el('p', { class: 'case-line', id: 'search-review' }, 'This search opened review case ',
        el('a', { href: '#/review/' + encodeURIComponent(r.review_case), id: 'search-review-link', text: r.review_case }),
        ': the reviewers decide there.'));
    }
    if (r.authorisation) {
      out.append(el('p', { class: 'help', id: 'search-authorisation-cited' }, `Cited authorisation ${r.authorisation}` +
        (r.authorisation_pending ? ' (pending: if it is not granted by its deadline, this search is marked unusable).' : '.')));
    }
    out.append(el('p', { class: 'help' },
      `${r.faces.length} face(s) in the probe; searched ${r.eligible_subjects} subject(s) whose lawful basis covers “${r.purpose}”, ` +
      `case ${r.case}. Candidates shown when their false-match rate is at most ${oneIn(r.max_fmr)} (${r.calibration}).`));
    if (!r.faces.length) out.append(el('p', { class: 'error', text: 'No face was found in the probe photo.' }));
    r.faces.forEach((f, i) => {
      const rows = f.candidates.map((c, k) => {
        const who = state.me && ['admin', 'auditor'].includes(state.me.role)
          ? el('a', { href: '#/subject/' + encodeURIComponent(c.subject), text: c.subject }) : c.subject;
        return [String(k + 1), who, c.similarity.toFixed(4), oneIn(c.fmr), c.confirmed ? 'confirmed' : 'candidate only'];
      });
      out.append(el('section', { class: 'card face-result', 'aria-label': `Probe face ${i + 1}` },
        el('figure', {}, cropCanvas(img, f.box), el('figcaption', { class: 'help', text: `Probe face ${i + 1}` + (f.quality_ok ? '' : ' (low quality: extra care)') })),
        el('div', {}, f.candidates.length
          ? table(`Candidates for probe face ${i + 1}`, ['Rank', 'Subject', 'Similarity', 'False-match rate', 'Review'], rows, 'candidates-' + i)
          : el('p', { text: 'No candidate above the threshold.' }))));
    });
    say(`Search done; recorded in the audit log (${r.audit_hash.slice(0, 12)}…)` + (r.review_case ? `; review case ${r.review_case} opened.` : '.'), 'ok');
  } catch (e) {
    // A refusal (422) or a malformed value (400) about the authorisation belongs beside its field.
    if ((e.status === 422 || e.status === 400) && /authori[sz]ation/i.test(e.message)) {
      say('Search refused: an authorisation is needed (see the field).', 'error');
      showAuthorisationError(e.message);
    } else {
      say('Search refused: ' + e.message, 'error');
    }
  }
}

// ------------------------------------------------------------------ subject

async function loadSubject(ev) {
  if (ev) ev.preventDefault();
  const ref = $('subject-ref').value.trim();
  const out = $('subject-records');
  out.replaceChildren();
  if (!ref) return;
  try {
    const x = await api('GET', '/v1/subjects/' + encodeURIComponent(ref) + '/export');
    state.exportData = x;
    const s = x.subject;
    out.append(
      el('div', { class: 'card' },
        el('h2', { text: s.reference }),
        el('dl', { class: 'facts' },
          el('dt', { text: 'vault id' }), el('dd', { text: s.id }),
          el('dt', { text: 'created' }), el('dd', { text: s.created_at }),
          el('dt', { text: 'retained until' }), el('dd', { text: s.retention_until })),
        el('div', { class: 'buttons' },
          el('button', { type: 'button', id: 'export-download', class: 'secondary', onclick: () =>
            download(`facevault-export-${s.id}.json`, JSON.stringify(x, null, 2)) }, 'Download export (JSON)'),
          el('button', { type: 'button', id: 'erase-open', class: 'danger', onclick: () => openErase(s.reference) }, 'Erase…'))),
      table('Lawful bases', ['Id', 'Kind', 'Reference', 'Purposes', 'Granted', 'Expires', 'Withdrawn'],
        x.lawful_bases.map((b) => [b.id, b.kind, b.reference, b.purposes.join(', '), b.granted_at, b.expires_at, b.withdrawn_at]), 'bases-table'),
      table('Templates (held encrypted)', ['Id', 'Image', 'Basis', 'Model', 'Box', 'Created'],
        x.templates.map((t) => [t.id, t.image_id, t.basis_id, t.model, (t.box || []).map((v) => Math.round(v)).join(', '), t.created_at]), 'templates-table'),
      table('Source images', ['Id', 'Basis', 'Format', 'Bytes', 'Supplied by', 'How', 'Received', 'Photo kept'],
        x.source_images.map((i) => [i.id, i.basis_id, i.format, i.bytes, i.provenance.supplied_by, i.provenance.method, i.provenance.received_at, i.kept ? 'yes (encrypted)' : 'no']), 'images-table'),
      table('Audit entries naming this person', ['#', 'Time', 'Actor', 'Role', 'Action', 'Outcome', 'Purpose', 'Case'],
        x.audit.map((a) => [a.seq, a.ts, a.actor, a.role, a.action, a.outcome, a.purpose, a.case]), 'subject-audit-table'));
    say(`Records of ${s.reference} shown; this access is in the audit log.`, 'ok');
  } catch (e) {
    say(e.status === 404 ? `No subject “${ref}” in the vault.` : 'Cannot show the records: ' + e.message, 'error');
  }
}

function openErase(ref) {
  $('erase-name').textContent = ref;
  $('erase-confirm').value = '';
  $('erase-submit').disabled = true;
  $('erase-dialog').dataset.ref = ref;
  $('erase-dialog').showModal();
  $('erase-confirm').focus();
}

async function erase(ev) {
  ev.preventDefault();
  const dlg = $('erase-dialog');
  const ref = dlg.dataset.ref;
  if ($('erase-confirm').value !== ref) return;
  dlg.close();
  try {
    const r = await api('DELETE', '/v1/subjects/' + encodeURIComponent(ref) + '?reason=' + encodeURIComponent($('erase-reason').value));
    $('subject-records').replaceChildren(el('div', { class: 'receipt', id: 'erase-receipt', tabindex: '-1' },
      el('h2', { text: 'Erasure receipt' }),
      el('dl', {},
        el('dt', { text: 'subject' }), el('dd', { text: `${r.subject} (vault id ${r.subject_id})` }),
        el('dt', { text: 'reason' }), el('dd', { text: r.reason }),
        el('dt', { text: 'erased at' }), el('dd', { text: r.erased_at }),
        el('dt', { text: 'erased' }), el('dd', { text: `${r.erased.templates} template(s), ${r.erased.source_images} source image record(s), ` +
          `${r.erased.lawful_bases} lawful basis record(s)` + (r.erased.subject_key ? ', subject key destroyed' : '') }),
        el('dt', { text: 'free pages' }), el('dd', { text: r.free_pages_wiped ? 'overwritten' : 'NOT wiped' }),
        el('dt', { text: 'audit entry' }), el('dd', { text: `#${r.audit_seq} ${r.audit_hash}` })),
      el('button', { type: 'button', class: 'secondary', onclick: () =>
        download(`facevault-erasure-${r.subject_id}.json`, JSON.stringify(r, null, 2)) }, 'Download receipt')));
    $('erase-receipt').focus();
    say(`${r.subject} erased.`, 'ok');
  } catch (e) {
    say('Not erased: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ audit

async function loadAudit(ev) {
  if (ev) ev.preventDefault();
  const chain = $('chain-status');
  try {
    const v = await api('GET', '/v1/audit/verify');
    chain.className = 'chain ' + (v.ok ? 'intact' : 'broken');
    chain.textContent = v.ok
      ? `Audit chain intact: ${v.entries} entries, head ${v.head.slice(0, 16)}…`
      : `Audit chain BROKEN at entry ${v.first_bad_seq} (${v.problem}): ${v.message}`;
    chain.id = 'chain-status';
  } catch (e) {
    chain.className = 'chain broken';
    chain.textContent = 'The chain could not be checked: ' + e.message;
  }
  const q = new URLSearchParams();
  for (const [k, id] of [['action', 'audit-action'], ['outcome', 'audit-outcome'], ['actor', 'audit-actor'],
    ['subject', 'audit-subject'], ['since', 'audit-since'], ['limit', 'audit-limit']]) {
    const v = $(id).value.trim();
    if (v) q.set(k, v);
  }
  try {
    const r = await api('GET', '/v1/audit?' + q.toString());
    $('audit-results').replaceChildren(
      el('p', { class: 'help', text: `${r.entries.length} shown of ${r.matched} matching (${r.total} in range), newest first.` }),
      table('Audit entries', ['#', 'Time (UTC)', 'Actor', 'Role', 'Action', 'Outcome', 'Purpose', 'Case', 'Subjects', 'Details'],
        r.entries.map((a) => [a.seq, a.ts, a.actor, a.role, a.action, a.outcome, a.purpose, a.case,
          a.subjects.join(', '), JSON.stringify(a.details)]), 'audit-table'));
  } catch (e) {
    say('Cannot read the audit log: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ start

document.addEventListener('DOMContentLoaded', async () => {
  $('signin-form').addEventListener('submit', (ev) => { ev.preventDefault(); signIn($('signin-key').value); });
  $('signout').addEventListener('click', () => signOut('Signed out.'));
  $('basis-form').addEventListener('submit', recordBasis);
  $('enroll-file').addEventListener('change', detectForEnroll);
  $('enroll-form').addEventListener('submit', enroll);
  $('search-form').addEventListener('submit', search);
  $('search-purpose').addEventListener('change', () => { clearAuthorisationError(); fillAuthorisationField(); });
  $('reviews-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadReviews(); });
  $('report-form').addEventListener('submit', loadReport);
  $('auth-form').addEventListener('submit', addAuthorisation);
  $('auth-dialog-form').addEventListener('submit', decideAuthorisation);
  $('auth-dialog-cancel').addEventListener('click', () => $('auth-dialog').close());
  $('subject-form').addEventListener('submit', loadSubject);
  $('audit-form').addEventListener('submit', loadAudit);
  $('erase-form').addEventListener('submit', erase);
  $('erase-cancel').addEventListener('click', () => $('erase-dialog').close());
  $('erase-confirm').addEventListener('input', () => {
    $('erase-submit').disabled = $('erase-confirm').value !== $('erase-dialog').dataset.ref;
  });
  window.addEventListener('hashchange', route);
  if (state.key) {
    try {
      state.me = (await api('GET', '/v1/whoami')).key;
    } catch (e) {
      state.key = '';
      sessionStorage.removeItem('fv-key');
    }
  }
  showSession();
  route();
});
