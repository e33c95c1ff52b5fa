// Drafts: every form marked data-draft="KEY" keeps what was typed in
// localStorage as it is typed, and gets it back after a reload or a lost
// connection. The page that follows a successful save names the draft in
// <meta name="draft-saved"> and it is forgotten.
(function () {
  'use strict';
  const saved = document.querySelector('meta[name=draft-saved]');
  if (saved) localStorage.removeItem('shoko.draft.' + saved.content);
  for (const form of document.querySelectorAll('form[data-draft]')) {
    const id = 'shoko.draft.' + form.dataset.draft;
    const fields = () => Array.from(form.elements).filter((el) => el.name && el.type !== 'hidden' && el.type !== 'submit');
    let draft = null;
    try { draft = JSON.parse(localStorage.getItem(id)); } catch (e) { draft = null; }
    if (draft) {
      for (const el of fields()) {
        if (!(el.name in draft)) continue;
        if (el.type === 'checkbox') el.checked = draft[el.name]; else el.value = draft[el.name];
      }
      const note = form.querySelector('.draft-note');
      if (note) { note.hidden = false; }
    }
    form.addEventListener('input', () => {
      const value = {};
      for (const el of fields()) value[el.name] = el.type === 'checkbox' ? el.checked : el.value;
      localStorage.setItem(id, JSON.stringify(value));
    });
  }
}());
