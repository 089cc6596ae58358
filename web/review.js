// facevault web UI: review cases, the reviewer's queue and the side-by-side review page.
// Loaded after app.js (its helpers: $, el, api, apiImage, say, table, oneIn, state).
// Two reviewers must each confirm a candidate before it is an identification (EU AI Act
// Art 14(5)); the API hides the other reviewers' decisions until the caller has recorded theirs,
// so this page shows decisions only when the API returns them.
'use strict';

const verdictLabels = {
  confirm: 'Confirm: the same person',
  reject: 'Reject: not the same person',
  inconclusive: 'Inconclusive: cannot tell from what I have',
};

// A candidate's state in words. The word "confirmed" appears only for a confirmed one.
function candidateState(c, required) {
  if (c.confirmed) return 'Confirmed identification';
  const what = { pending: 'pending review', rejected: 'rejected by the reviewers', inconclusive: 'inconclusive',
    disputed: 'disputed: the reviewers disagree' }[c.status] || c.status;
  return `Candidate only: ${what} (${c.decisions_recorded} of ${required} decisions)`;
}

// ------------------------------------------------------------------ queue

async function loadReviews() {
  const sel = $('reviews-filter');
  if (sel.dataset.role !== state.me.role) {  // a new sign-in: the default for this role
    sel.value = ['admin', 'reviewer'].includes(state.me.role) ? 'awaiting' : 'open';
    sel.dataset.role = state.me.role;
  }
  const q = { awaiting: 'status=open&awaiting=1', open: 'status=open', closed: 'status=closed' }[sel.value];
  const out = $('reviews-list');
  try {
    const r = await api('GET', '/v1/reviews?' + q);
    const rows = r.cases.map((c) => {
      const confirmed = c.candidates.filter((k) => k.confirmed).length;
      const mine = c.candidates.filter((k) => k.decided_by_caller).length;
      return [el('a', { href: '#/review/' + encodeURIComponent(c.id), text: c.id }), c.opened_at, c.purpose, c.case,
        String(c.candidates.length), `${mine} of ${c.candidates.length}`, String(confirmed),
        c.status + (c.unusable ? ' · UNUSABLE' : '')];
    });
    out.replaceChildren(
      el('p', { class: 'help', text: `${r.cases.length} case(s).` }),
      table('Review cases', ['Case', 'Opened (UTC)', 'Purpose', 'Case reference', 'Candidates', 'Decided by you',
        'Confirmed', 'Status'], rows, 'reviews-table'));
  } catch (e) {
    out.replaceChildren();
    say('Cannot list the review cases: ' + e.message, 'error');
  }
}

// ------------------------------------------------------------------ one case

async function loadReviewCase(id) {
  const gen = ++state.reviewGen;
  const out = $('review-case');
  $('h-review').textContent = 'Review case ' + id;
  out.removeAttribute('data-case');
  out.replaceChildren(el('p', { class: 'help', text: 'Loading the case…' }));
  let c;
  try {
    c = await api('GET', '/v1/reviews/' + encodeURIComponent(id));
  } catch (e) {
    out.replaceChildren();
    say(e.status === 404 ? `There is no review case ${id}.` : 'Cannot show the review case: ' + e.message, 'error');
    return;
  }
  if (gen !== state.reviewGen) return;  // another case (or page) was asked for meanwhile
  releaseImages();
  // One object URL per probe face, shared by its candidates; fetched with the key.
  const probes = {};
  for (const f of c.probe_faces) {
    try {
      probes[f] = await apiImage(`/v1/reviews/${encodeURIComponent(c.id)}/probe/${f}.jpg`);
    } catch (e) {
      probes[f] = null;
      say('A probe face could not be fetched: ' + e.message, 'error');
    }
  }
  const refs = {};
  for (const k of c.candidates.filter((x) => x.reference_available)) {
    try {
      refs[k.id] = await apiImage(`/v1/reviews/${encodeURIComponent(c.id)}/candidates/${k.id}/reference.jpg`);
    } catch (e) {
      refs[k.id] = null;
    }
  }
  if (gen !== state.reviewGen) {
    // A newer load has started: revoke only this load's images, not the ones it shows.
    const mine = [...Object.values(probes), ...Object.values(refs)].filter(Boolean);
    for (const u of mine) URL.revokeObjectURL(u);
    state.imageUrls = state.imageUrls.filter((u) => !mine.includes(u));
    return;
  }
  out.replaceChildren(...renderCase(c, probes, refs));
  out.dataset.case = c.id;  // rendered (the browser test waits for it)
}

function renderCase(c, probes, refs) {
  const parts = [];
  if (c.unusable) {
    parts.push(el('div', { class: 'banner unusable', role: 'alert', id: 'review-unusable' },
      el('strong', { text: 'This case is marked unusable: nothing may be done on the strength of its results.' }),
      ' Why: ' + String(c.unusable).replace(/\.?$/, '.')));
  }
  const confirmed = c.candidates.filter((k) => k.confirmed).length;
  parts.push(el('p', { class: 'notice', id: 'review-notice', role: 'note', text:
    `A candidate is not an identification until ${c.reviewers_required} reviewers have each compared the faces and confirmed it. ` +
    (confirmed ? `${confirmed} of ${c.candidates.length} candidate(s) confirmed; every other one is a candidate only.`
      : 'No candidate of this case is confirmed.') }));
  parts.push(el('div', { class: 'card' }, el('dl', { class: 'facts', id: 'review-facts' },
    el('dt', { text: 'status' }), el('dd', { id: 'review-status', text: c.status + (c.closed_at ? ` (closed ${c.closed_at})` : '') }),
    el('dt', { text: 'opened' }), el('dd', { text: c.opened_at }),
    el('dt', { text: 'searched by' }), el('dd', { text: c.searcher }),
    el('dt', { text: 'purpose' }), el('dd', { text: c.purpose }),
    el('dt', { text: 'case reference' }), el('dd', { text: c.case }),
    el('dt', { text: 'authorisation' }), el('dd', { text: c.authorisation || 'none cited' }),
    el('dt', { text: 'reviewers required' }), el('dd', { text: String(c.reviewers_required) }))));
  const faces = [...new Set(c.candidates.map((k) => k.face_index))].sort((a, b) => a - b);
  if (!faces.length) parts.push(el('p', { text: 'This search returned no candidate: there is nothing to review.' }));
  for (const f of faces) {
    const section = el('section', { class: 'review-face', 'aria-labelledby': `review-face-${f}` },
      el('h2', { id: `review-face-${f}`, text: `Probe face ${f + 1}` }));
    for (const k of c.candidates.filter((x) => x.face_index === f)) section.append(renderCandidate(c, k, probes[f], refs[k.id]));
    parts.push(section);
  }
  return parts;
}

function renderCandidate(c, k, probeUrl, refUrl) {
  const who = k.subject || 'an erased subject';
  const probe = probeUrl
    ? el('img', { src: probeUrl, alt: `Probe face ${k.face_index + 1} of the search`, id: `probe-${k.id}`, class: 'crop' })
    : el('p', { class: 'no-photo', text: 'The probe face is no longer kept: probe crops are destroyed when the case closes or ages out.' });
  const ref = refUrl
    ? el('img', { src: refUrl, alt: `Enrolled reference face of ${who}`, id: `reference-${k.id}`, class: 'crop' })
    : el('p', { class: 'no-photo', id: `no-reference-${k.id}`,
      text: 'No reference photo is kept for this subject: compare with the enrolment records. ' +
        'Your decision records that it was made without one.' });
  const stateText = candidateState(k, c.reviewers_required);
  const box = el('article', { class: 'card candidate', id: `candidate-${k.id}`, 'aria-labelledby': `candidate-${k.id}-h` },
    el('h3', { id: `candidate-${k.id}-h`, tabindex: '-1', text: `Candidate ${k.rank}: ${who}` }),
    el('p', { class: 'badge ' + (k.confirmed ? 'confirmed' : 'pending'), id: `candidate-${k.id}-state`, text: stateText }),
    el('div', { class: 'compare' },
      el('figure', {}, probe, el('figcaption', { text: 'Probe (the searched photo)' })),
      el('figure', {}, ref, el('figcaption', { text: `Enrolled reference: ${who}` }))),
    el('dl', { class: 'facts' },
      el('dt', { text: 'similarity' }), el('dd', { text: k.similarity.toFixed(4) }),
      el('dt', { text: 'false-match rate' }), el('dd', { text: oneIn(k.fmr) }),
      el('dt', { text: 'decisions recorded' }), el('dd', { text: `${k.decisions_recorded} of ${c.reviewers_required} needed` })));
  if (Array.isArray(k.decisions)) {
    box.append(table('Decisions recorded', ['Reviewer', 'Role', 'Decision', 'Reason', 'When (UTC)', 'Reference compared'],
      k.decisions.map((d) => [d.reviewer, d.reviewer_role, d.decision, d.reason, d.decided_at, d.reference_available ? 'yes' : 'no']),
      `decisions-${k.id}`));
  } else {
    box.append(el('p', { class: 'help', id: `decisions-hidden-${k.id}`, text: k.decisions_recorded
      ? `${k.decisions_recorded} decision(s) recorded by other reviewers. They are shown once you have recorded yours, so that each review is independent.`
      : 'No decision recorded yet.' }));
  }
  const mayDecide = state.me && ['admin', 'reviewer'].includes(state.me.role);
  if (k.decided_by_caller) box.append(el('p', { class: 'ok', text: 'You have recorded your decision on this candidate.' }));
  else if (mayDecide && c.status === 'open') box.append(decisionForm(c, k));
  return box;
}

function decisionForm(c, k) {
  const id = `decide-${k.id}`;
  const err = el('p', { class: 'error', id: `${id}-error`, hidden: true });
  const form = el('form', { class: 'decide', id, 'aria-labelledby': `${id}-legend` },
    el('fieldset', {},
      el('legend', { id: `${id}-legend`, text: `Your decision on candidate ${k.rank}` }),
      Object.entries(verdictLabels).map(([v, label]) => el('label', { for: `${id}-${v}` },
        el('input', { type: 'radio', name: `${id}-verdict`, id: `${id}-${v}`, value: v, required: true }), label))),
    el('label', { for: `${id}-reason` }, 'Reason (recorded in the audit log under your key)'),
    el('textarea', { id: `${id}-reason`, rows: '3', maxlength: '2000', required: true, 'aria-describedby': `${id}-error` }),
    el('button', { type: 'submit', id: `${id}-submit` }, 'Record my decision'),
    err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const picked = form.querySelector(`input[name="${id}-verdict"]:checked`);
    const reason = $(`${id}-reason`).value.trim();
    if (!picked || !reason) {
      err.textContent = !picked ? 'Choose confirm, reject or inconclusive.' : 'Give a reason.';
      err.hidden = false;
      (picked ? $(`${id}-reason`) : $(`${id}-confirm`)).focus();
      return;
    }
    try {
      await api('POST', `/v1/reviews/${encodeURIComponent(c.id)}/decisions`, { candidate: k.id, decision: picked.value, reason });
      say(`Your decision (${picked.value}) on candidate ${k.rank} of ${c.id} is recorded in the audit log.`, 'ok');
      await loadReviewCase(c.id);
      const h = $(`candidate-${k.id}-h`);
      if (h) h.focus();
    } catch (e) {
      err.textContent = 'Not recorded: ' + e.message;
      err.hidden = false;
      say('The decision was not recorded: ' + e.message, 'error');
    }
  });
  return form;
}
