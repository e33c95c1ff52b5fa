// The MARC editor: fields and their subfields as rows of inputs, checked as
// they are typed (tags, indicators, subfield codes, a title in 245), kept as
// a draft in localStorage on every change, and saved as MARCXML with the
// version it was read at (If-Match), so an edit never overwrites another.
(function () {
  'use strict';
  const root = document.getElementById('marc-editor');
  const id = root.dataset.recordId;
  const words = JSON.parse(root.dataset.words);
  const csrf = (document.querySelector('meta[name=csrf]') || {}).content || '';
  const draftKey = 'shoko.marc.' + id;
  const errorsEl = document.getElementById('marc-errors');
  const statusEl = document.getElementById('marc-status');
  const saveBtn = document.getElementById('marc-save');
  let version = Number(root.dataset.version);
  let leader = root.dataset.leader;
  let fields = JSON.parse(root.dataset.fields);

  try {
    const draft = JSON.parse(localStorage.getItem(draftKey));
    if (draft && draft.version === version) {
      fields = draft.fields;
      document.getElementById('marc-draft').hidden = false;
    }
  } catch (e) { /* no draft */ }

  const isControl = (tag) => /^00[0-9]$/.test(tag);
  function keep() { localStorage.setItem(draftKey, JSON.stringify({ version, fields })); }

  function problems() {
    const out = [];
    fields.forEach((f, i) => {
      const at = `${words.field} ${i + 1} (${f.tag || '?'})`;
      if (!/^[0-9A-Za-z]{3}$/.test(f.tag)) out.push([i, -1, 'tag', `${at}: ${words.bad_tag}`]);
      if (isControl(f.tag)) {
        if (!f.value) out.push([i, -1, 'value', `${at}: ${words.empty}`]);
        return;
      }
      for (const k of ['ind1', 'ind2']) if (!/^[0-9a-z ]$/.test(f[k])) out.push([i, -1, k, `${at}: ${words.bad_ind}`]);
      if (!f.subfields.length) out.push([i, -1, 'tag', `${at}: ${words.no_subfields}`]);
      f.subfields.forEach((s, j) => {
        if (!/^[a-z0-9]$/.test(s.code)) out.push([i, j, 'code', `${at} $${s.code}: ${words.bad_code}`]);
        if (!s.value.trim()) out.push([i, j, 'value', `${at} $${s.code}: ${words.empty}`]);
      });
    });
    if (!fields.some((f) => f.tag === '245' && f.subfields && f.subfields.some((s) => s.code === 'a' && s.value.trim()))) {
      out.push([-1, -1, '', words.need_title]);
    }
    return out;
  }

  function input(value, label, width, onInput, extra) {
    const el = document.createElement('input');
    el.type = 'text';
    el.value = value;
    el.setAttribute('aria-label', label);
    if (width) el.maxLength = width;
    Object.assign(el.dataset, extra || {});
    el.addEventListener('input', () => { onInput(el.value); keep(); validate(); });
    return el;
  }
  function button(text, label, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.style.margin = '0';
    b.textContent = text;
    b.setAttribute('aria-label', label);
    b.addEventListener('click', () => { onClick(); keep(); render(); });
    return b;
  }

  function render() {
    root.textContent = '';
    fields.forEach((f, i) => {
      const row = document.createElement('div');
      row.className = 'marc-row';
      row.append(input(f.tag, `${words.field} ${i + 1} ${words.tag}`, 3, (v) => { f.tag = v; }, { f: i, k: 'tag' }));
      if (isControl(f.tag)) {
        const v = input(f.value || '', `${f.tag} ${words.value}`, 0, (x) => { f.value = x; }, { f: i, k: 'value' });
        v.style.gridColumn = '2 / 5';
        row.append(v);
      } else {
        row.append(input(f.ind1, `${f.tag} ${words.ind1}`, 1, (v) => { f.ind1 = v || ' '; }, { f: i, k: 'ind1' }));
        row.append(input(f.ind2, `${f.tag} ${words.ind2}`, 1, (v) => { f.ind2 = v || ' '; }, { f: i, k: 'ind2' }));
        row.append(button('+$', `${f.tag}: ${words.add_subfield}`, () => { f.subfields.push({ code: 'a', value: '' }); }));
      }
      row.append(button('✕', `${f.tag}: ${words.remove_field}`, () => { fields.splice(i, 1); }));
      root.append(row);
      if (!isControl(f.tag)) {
        f.subfields.forEach((s, j) => {
          const sub = document.createElement('div');
          sub.className = 'marc-row';
          sub.append(document.createElement('span'));
          sub.append(input(s.code, `${f.tag} ${words.code} ${j + 1}`, 1, (v) => { s.code = v; }, { f: i, s: j, k: 'code' }));
          const v = input(s.value, `${f.tag} $${s.code} ${words.value}`, 0, (x) => { s.value = x; }, { f: i, s: j, k: 'value' });
          v.style.gridColumn = '3 / 5';
          sub.append(v);
          sub.append(button('✕', `${f.tag} $${s.code}: ${words.remove_subfield}`, () => { f.subfields.splice(j, 1); }));
          root.append(sub);
        });
      }
    });
    validate();
  }

  function validate() {
    const found = problems();
    for (const el of root.querySelectorAll('input')) el.classList.remove('invalid');
    errorsEl.textContent = '';
    for (const [i, j, k, text] of found) {
      const sel = j >= 0 ? `input[data-f="${i}"][data-s="${j}"][data-k="${k}"]` : `input[data-f="${i}"][data-k="${k}"]:not([data-s])`;
      const el = i >= 0 ? root.querySelector(sel) : null;
      if (el) { el.classList.add('invalid'); el.setAttribute('aria-invalid', 'true'); }
      const li = document.createElement('li');
      li.textContent = text;
      errorsEl.append(li);
    }
    saveBtn.disabled = found.length > 0;
    return found.length === 0;
  }

  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  function marcxml() {
    let x = `<record xmlns="http://www.loc.gov/MARC21/slim"><leader>${esc(leader)}</leader>`;
    for (const f of fields) {
      if (isControl(f.tag)) { x += `<controlfield tag="${esc(f.tag)}">${esc(f.value || '')}</controlfield>`; continue; }
      x += `<datafield tag="${esc(f.tag)}" ind1="${esc(f.ind1 || ' ')}" ind2="${esc(f.ind2 || ' ')}">`;
      for (const s of f.subfields) x += `<subfield code="${esc(s.code)}">${esc(s.value)}</subfield>`;
      x += '</datafield>';
    }
    return x + '</record>';
  }

  saveBtn.addEventListener('click', async () => {
    if (!validate()) return;
    statusEl.textContent = words.saving;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    try {
      const r = await fetch(`/api/v1/records/${id}`, {
        method: 'PUT', signal: ctl.signal, credentials: 'same-origin',
        headers: { 'content-type': 'application/marcxml+xml', 'if-match': `"${version}"`, 'x-csrf-token': csrf,
          'accept-language': document.documentElement.lang },
        body: marcxml(),
      });
      const json = await r.json().catch(() => null);
      if (r.ok) {
        version = json.version;
        document.getElementById('marc-version').textContent = version;
        localStorage.removeItem(draftKey);
        statusEl.textContent = words.saved;
      } else if (r.status === 412) {
        statusEl.textContent = words.conflict;
      } else {
        statusEl.textContent = (json && json.error && json.error.message) || `HTTP ${r.status}`;
      }
    } catch (e) {
      statusEl.textContent = words.offline;
    } finally {
      clearTimeout(timer);
    }
  });
  document.getElementById('marc-add-field').addEventListener('click', () => {
    fields.push({ tag: '500', ind1: ' ', ind2: ' ', subfields: [{ code: 'a', value: '' }] });
    keep();
    render();
  });
  render();
}());
