// The circulation desk: every scan is queued at once, kept in localStorage
// with its own idempotency key, and sent to the server one after another in
// scan order. A scan never waits for the one before to be answered, and a
// lost connection loses nothing: the page says so within two seconds, keeps
// the queue through a reload, and sends the rest when the server answers
// again. A scan sent twice (its answer lost) is acted on once by the server.
(function () {
  'use strict';
  const STORE = 'shoko.desk.v1';
  const TIMEOUT_MS = 2000;
  const root = document.getElementById('desk');
  const words = JSON.parse(root.dataset.words);
  const campuses = JSON.parse(root.dataset.campuses);
  const lang = root.dataset.lang;
  const csrf = (document.querySelector('meta[name=csrf]') || {}).content || '';
  const banner = document.getElementById('banner');
  const queueEl = document.getElementById('queue');
  const countsEl = document.getElementById('counts');
  const patronEl = document.getElementById('patron');
  const patronInput = document.getElementById('patron-barcode');
  const itemInput = document.getElementById('item-barcode');
  const campusSelect = document.getElementById('desk-campus');

  function load() {
    try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (e) { return {}; }
  }
  const state = Object.assign({ queue: [], patron: null, campus: null, mode: 'checkout' }, load());
  // A scan that was on its way when the page went away is sent again with
  // the same key: the server answers it from the first attempt if it had it.
  state.queue.forEach((e) => { if (e.state === 'sending') e.state = 'pending'; });
  function save() { localStorage.setItem(STORE, JSON.stringify(state)); }

  function key() {
    const b = new Uint8Array(12);
    crypto.getRandomValues(b);
    return 'desk-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }
  function campusName(code) { return (campuses.find((c) => c.code === code) || { name: code }).name; }
  function day(ms) {
    return new Date(ms).toLocaleDateString(lang === 'ja' ? 'ja-JP' : 'en-GB',
      { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit' });
  }

  function render() {
    queueEl.textContent = '';
    for (const e of state.queue.slice().reverse()) {
      const li = document.createElement('li');
      li.className = e.state === 'sending' ? 'pending' : e.state;
      li.dataset.barcode = e.item;
      li.dataset.state = e.state;
      const code = document.createElement('span');
      code.className = 'code';
      code.textContent = e.item;
      const kind = document.createElement('span');
      kind.textContent = e.kind === 'checkout' ? words.checkout : words.checkin;
      const st = document.createElement('span');
      st.className = 'state';
      st.textContent = e.message || (e.state === 'refused' ? words.refused : words.waiting);
      li.append(code, kind, st);
      queueEl.append(li);
    }
    const waiting = state.queue.filter((e) => e.state === 'pending' || e.state === 'sending').length;
    countsEl.textContent = waiting ? `(${words.waiting}: ${waiting})` : '';
    patronEl.textContent = state.patron ? state.patron.text : '';
  }

  function offline(on) {
    banner.textContent = on ? words.offline : '';
    banner.classList.toggle('show', on);
  }

  async function call(method, path, body, idem) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const headers = { 'accept-language': lang, 'x-csrf-token': csrf };
      if (body) headers['content-type'] = 'application/json';
      if (idem) headers['idempotency-key'] = idem;
      const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined,
        signal: ctl.signal, credentials: 'same-origin' });
      let json = null;
      try { json = await r.json(); } catch (e) { json = null; }
      return { status: r.status, json };
    } finally {
      clearTimeout(timer);
    }
  }

  function describe(e, json) {
    if (e.kind === 'checkout') return `${words.due} ${day(json.loan.due_at)}`;
    const r = json.routing;
    let text = words.shelve;
    if (r.action === 'hold_shelf') text = words.hold_for.replace('{patron}', r.patron_name).replace('{campus}', campusName(e.campus));
    if (r.action === 'transit') text = words.transit_to.replace('{campus}', campusName(r.to));
    if (json.fine) text += ` · ${words.fine} ${json.fine.amount}`;
    return text;
  }

  let sending = false;
  let retryMs = 500;
  async function pump() {
    if (sending) return;
    sending = true;
    try {
      for (;;) {
        const e = state.queue.find((x) => x.state === 'pending');
        if (!e) break;
        e.state = 'sending';
        save();
        let answer;
        try {
          answer = e.kind === 'checkout'
            ? await call('POST', '/api/v1/loans', { patron_barcode: e.patron, item_barcode: e.item, campus: e.campus }, e.key)
            : await call('POST', '/api/v1/checkins', { item_barcode: e.item, campus: e.campus }, e.key);
        } catch (err) {
          answer = null; // no answer: refused connection, or none within the bound
        }
        if (!answer || answer.status >= 500 || answer.status === 429 || answer.status === 401) {
          e.state = 'pending';
          if (answer && answer.status === 401) e.message = words.login_again;
          save();
          render();
          offline(true);
          setTimeout(pump, retryMs);
          retryMs = Math.min(retryMs * 2, 4000);
          return;
        }
        offline(false);
        retryMs = 500;
        if (answer.status >= 200 && answer.status < 300) {
          e.state = 'done';
          e.message = describe(e, answer.json);
        } else {
          e.state = 'refused';
          e.message = (answer.json && answer.json.error && answer.json.error.message) || `HTTP ${answer.status}`;
        }
        save();
        render();
      }
    } finally {
      sending = false;
    }
  }

  async function lookPatron(barcode) {
    state.patron = { barcode, text: `${barcode} …` };
    save();
    render();
    try {
      const r = await call('GET', '/api/v1/patrons?barcode=' + encodeURIComponent(barcode));
      const p = r.json && Array.isArray(r.json) ? r.json[0] : null;
      if (r.status === 200 && p) {
        state.patron.text = `${p.name}（${p.barcode}）· ${words.loans} ${p.open_loans}`;
      } else if (r.status === 200) {
        state.patron.text = `${barcode}: ${words.no_patron}`;
      }
      offline(false);
    } catch (err) {
      offline(true); // checkouts still queue with the barcode
    }
    save();
    render();
  }

  campusSelect.value = state.campus || campusSelect.value;
  state.campus = campusSelect.value;
  for (const r of document.querySelectorAll('input[name=mode]')) {
    r.checked = r.value === state.mode;
    r.addEventListener('change', () => { state.mode = r.value; save(); itemInput.focus(); });
  }
  campusSelect.addEventListener('change', () => { state.campus = campusSelect.value; save(); });
  document.getElementById('patron-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const b = patronInput.value.trim();
    if (!b) return;
    patronInput.value = '';
    lookPatron(b);
    itemInput.focus();
  });
  document.getElementById('item-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const b = itemInput.value.trim();
    itemInput.value = '';
    if (!b) return;
    if (state.mode === 'checkout' && !state.patron) { patronInput.focus(); return; }
    state.queue.push({ key: key(), kind: state.mode, patron: state.patron ? state.patron.barcode : null,
      item: b, campus: state.campus, state: 'pending', message: '' });
    if (state.queue.length > 500) state.queue = state.queue.slice(-500);
    save();
    render();
    pump();
  });
  window.addEventListener('online', pump);
  render();
  (state.patron ? itemInput : patronInput).focus();
  pump();
}());
