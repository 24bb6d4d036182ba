// DOM building without HTML strings: every user-supplied value becomes a
// text node (textContent), never markup, so a credential named
// `<img src=x onerror=alert(1)>` shows literally and runs nothing.

/**
 * Makes an element. `attrs`: attribute name → value (`class`, `id`,
 * `aria-*`, `for`, …; `null`/`false` skips it, `true` sets it empty), plus
 * `on` (event name → handler) and `props` (DOM properties such as
 * `value`, `checked`). Children: nodes, strings (as text), arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'props') {
      Object.assign(el, v);
    } else if (k === 'style' || k.startsWith('on')) {
      // Inline style and handlers would break the Content-Security-Policy.
      throw new Error(`h(): attribute ${k} is not allowed`);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else if (v !== null && v !== false && v !== undefined) {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings as text, arrays, null skipped). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let ids = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form field: label, control, hint, and a slot for its error. */
export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  const err = h('p', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  control.setAttribute('aria-describedby', [hintEl && hintEl.id, err.id].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field', 'data-field': control.name || '' },
    h('label', { for: id }, label), control, hintEl, err);
  return wrap;
}

/** Shows `message` in the error slot of the field named `name` inside `root`, or in `fallback`. */
export function showFieldError(root, name, message, fallback) {
  const wrap = name ? root.querySelector(`[data-field="${CSS.escape(name)}"]`) : null;
  const slot = wrap ? wrap.querySelector('.field-error') : fallback;
  if (!slot) return;
  slot.textContent = message;
  slot.hidden = false;
  const control = wrap && wrap.querySelector('input, select, textarea');
  if (control) control.setAttribute('aria-invalid', 'true');
}

/** Hides every error slot inside `root`. */
export function clearErrors(root) {
  for (const e of root.querySelectorAll('.field-error, .form-error')) {
    e.textContent = '';
    e.hidden = true;
  }
  for (const c of root.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
}

/** A button. */
export function button(label, onClick, attrs = {}) {
  return h('button', { type: 'button', ...attrs, on: { click: onClick } }, label);
}

/** Announces a message to screen readers and in the status line. */
export function announce(message) {
  const live = document.getElementById('live');
  if (live) live.textContent = message;
}

/**
 * A modal dialog (native <dialog>: focus stays inside, Escape closes).
 * Returns the element; `close()` removes it. `onClose` runs once.
 */
export function dialog(title, body, { onClose, labelledBy } = {}) {
  const titleId = labelledBy || uid('dlg-title');
  const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, title), body);
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (onClose) onClose();
  });
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}
