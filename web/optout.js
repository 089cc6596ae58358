// The public opt-out form: one photo → the do-not-enroll registry. No key, no cookies.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('optout-form');
  const out = document.getElementById('optout-result');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fd = new FormData();
    fd.append('image', document.getElementById('optout-file').files[0]);
    out.className = '';
    out.textContent = 'Sending…';
    try {
      const res = await fetch('/v1/optout', { method: 'POST', body: fd });
      const data = await res.json().catch(() => null);
      if (!res.ok) throw new Error(data && data.error ? data.error.message : res.statusText);
      out.className = 'receipt';
      out.replaceChildren();
      const h = document.createElement('h2');
      h.textContent = 'Your opt-out is recorded';
      const p = document.createElement('p');
      p.textContent = data.message;
      const ref = document.createElement('p');
      ref.append('Your reference: ');
      const code = document.createElement('code');
      code.id = 'optout-reference';
      code.textContent = data.optout;
      ref.append(code);
      out.append(h, p, ref);
      form.reset();
    } catch (e) {
      out.className = 'error';
      out.textContent = 'Your opt-out could not be recorded: ' + e.message;
    }
  });
});
