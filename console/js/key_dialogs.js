// The dialogs that change a credential: create, show the secret once,
// edit, regenerate (rotate), activate/deactivate, delete.

import { h, field, dialog, button, clearErrors, showFieldError, announce } from './dom.js';
import * as api from './api.js';
import { clock, when } from './format.js';

/** Shows an API error next to the field it names, else in the form. */
function showError(form, e) {
  const fallback = form.querySelector('.form-error');
  const msg = e.status === 403 && e.code === 'insufficient_scope'
    ? `Not allowed: ${e.message}` : e.message;
  showFieldError(form, e.field, msg, fallback);
  if (!e.field || !form.querySelector(`[data-field="${CSS.escape(e.field)}"]`)) {
    fallback.textContent = msg;
    fallback.hidden = false;
  }
}

/** A form inside a dialog with Cancel and a submit button. */
function formDialog(title, fields, submitLabel, onSubmit, { danger = false, onClose } = {}) {
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, submitLabel);
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const form = h('form', { method: 'dialog', novalidate: true }, fields, err,
    h('div', { class: 'actions' }, cancel, submit));
  const dlg = dialog(title, form, { onClose });
  cancel.addEventListener('click', () => dlg.close());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      await onSubmit(form, dlg);
    } catch (e) {
      showError(form, e);
    } finally {
      submit.disabled = false;
    }
  });
  const first = form.querySelector('input:not([type=hidden]), textarea, select');
  if (first) first.focus();
  return dlg;
}

/** A read-only value with a copy button (Clipboard API). */
function copyRow(label, value, name) {
  const input = h('input', { readonly: true, name, spellcheck: 'false', class: 'mono', props: { value } });
  const status = h('span', { class: 'copy-status', role: 'status' });
  const copy = button('Copy', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = 'Copied';
    } catch {
      status.textContent = 'Copy failed: select the text and copy it yourself';
      input.select();
    }
  }, { class: 'copy', 'aria-label': `Copy ${label}`, 'data-copy': name });
  const wrap = field(label, input);
  wrap.append(h('div', { class: 'copy-line' }, copy, status));
  return wrap;
}

/**
 * Shows a new credential once: id, secret and the single-string key, with
 * copy buttons and the warning. The values leave the page when it closes.
 */
export function showSecret(title, r, extra, onClose) {
  const done = h('button', { type: 'button', class: 'primary' }, 'I have stored the secret');
  const body = h('div', { class: 'secret-box' },
    h('p', { class: 'warning', role: 'alert' },
      'The secret will not be shown again. Copy it now and store it somewhere safe; if it is lost, regenerate the credential.'),
    copyRow('Client ID (x-api-key)', r.id, 'id'),
    copyRow('Client secret (x-api-secret)', r.secret, 'secret'),
    r.key ? copyRow('Single-string key (Authorization: Bearer)', r.key, 'key') : null,
    extra || null,
    h('div', { class: 'actions' }, done));
  const dlg = dialog(title, body, {
    onClose: () => {
      for (const i of body.querySelectorAll('input')) i.value = '';
      if (onClose) onClose();
    },
  });
  dlg.classList.add('secret-dialog');
  done.addEventListener('click', () => dlg.close());
  body.querySelector('button.copy').focus();
}

function permissionBoxes(granted, selected) {
  const set = new Set(selected ?? granted);
  return h('fieldset', { class: 'perms', 'data-field': 'permissions' },
    h('legend', {}, 'Permissions'),
    granted.map((p) => {
      const id = `perm-${p}`;
      return h('div', { class: 'check' },
        h('input', { type: 'checkbox', id, name: 'permissions', value: p, props: { checked: set.has(p) } }),
        h('label', { for: id }, p));
    }),
    h('p', { class: 'field-error', role: 'alert', hidden: true }));
}

function checked(form) {
  return [...form.querySelectorAll('input[name=permissions]:checked')].map((i) => i.value);
}

function lines(s) {
  return s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

/** The create-credential dialog; then the secret, once. */
export function openCreate(ctx, onDone, preset = {}) {
  const name = h('input', { name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: 2, maxlength: 2000 });
  const application = h('input', { name: 'application', autocomplete: 'off', props: { value: preset.application || '' } });
  const expires = h('input', { name: 'expires_at', type: 'datetime-local' });
  const cidrs = h('textarea', { name: 'allowed_cidrs', rows: 2, spellcheck: 'false', placeholder: '203.0.113.0/24' });
  const origins = ctx.features.keyOrigins
    ? h('textarea', { name: 'allowed_origins', rows: 2, spellcheck: 'false', placeholder: 'https://app.example.com' }) : null;
  const fields = [
    field('Name', name),
    field('Description', description),
    preset.app_id ? h('p', { class: 'hint' }, `Application ${preset.app_title || preset.app_id}`)
      : field('Application label', application, 'Groups the credentials of one integration.'),
    permissionBoxes(ctx.grantable()),
    field('Expires', expires, 'Leave empty for no expiry (your local time).'),
    field('Allowed networks', cidrs, 'CIDRs, one per line; empty allows every address.'),
    origins ? field('Allowed origins', origins, 'Browser origins, one per line; empty allows any.') : null,
  ];
  formDialog('New credential', fields, 'Create credential', async (form, dlg) => {
    if (!name.value.trim()) {
      showFieldError(form, 'name', 'Give the credential a name.');
      name.focus();
      return;
    }
    const body = { name: name.value.trim(), permissions: checked(form) };
    if (description.value) body.description = description.value;
    if (preset.app_id) body.app_id = preset.app_id;
    else if (application.value.trim()) body.application = application.value.trim();
    if (expires.value) {
      const t = new Date(expires.value);
      if (Number.isNaN(t.getTime())) {
        showFieldError(form, 'expires_at', 'Not a valid date and time.');
        return;
      }
      body.expires_at = t.toISOString();
    }
    if (cidrs.value.trim()) body.allowed_cidrs = lines(cidrs.value);
    if (origins && origins.value.trim()) body.allowed_origins = lines(origins.value);
    const r = await api.post('/apikeys', body);
    dlg.close();
    announce(`Credential ${r.name} created.`);
    showSecret('Credential created', r, null, () => onDone(r));
  });
}

/** Edit name, description, application label. */
export function openEdit(ctx, key, onDone) {
  const name = h('input', { name: 'name', required: true, maxlength: 200, props: { value: key.name } });
  const description = h('textarea', { name: 'description', rows: 3, maxlength: 2000, props: { value: key.description || '' } });
  const application = h('input', { name: 'application', props: { value: key.application || '' } });
  formDialog(`Edit ${key.name}`, [field('Name', name), field('Description', description), field('Application label', application)],
    'Save', async (form, dlg) => {
      if (!name.value.trim()) {
        showFieldError(form, 'name', 'The name cannot be empty.');
        return;
      }
      const body = { name: name.value.trim(), description: description.value, application: application.value.trim() || null };
      const r = await api.patch(`/apikeys/${encodeURIComponent(key.id)}`, body);
      dlg.close();
      announce(`Saved ${r.name}.`);
      onDone(r);
    });
}

const GRACE = [
  ['0', 'End the old secret now'],
  ['3600', 'Keep the old secret working for 1 hour'],
  ['86400', 'Keep the old secret working for 24 hours'],
  ['604800', 'Keep the old secret working for 7 days'],
];

/** Regenerate the secret with a grace-period choice; then the new secret, once. */
export function openRotate(ctx, key, onDone) {
  const grace = h('select', { name: 'grace_period_seconds' }, GRACE.map(([v, l]) => h('option', { value: v }, l)));
  formDialog(`Regenerate ${key.name}`, [
    h('p', {}, 'A new secret is made. Clients using the old one must switch to it.'),
    field('Old secret', grace),
  ], 'Regenerate secret', async (form, dlg) => {
    const r = await api.post(`/apikeys/${encodeURIComponent(key.id)}/rotate`, { grace_period_seconds: Number(grace.value) });
    dlg.close();
    const extra = h('p', { class: 'hint' }, r.previous_secret_expires_at
      ? `The old secret works until ${when(r.previous_secret_expires_at)}.`
      : `The old secret is refused everywhere by ${clock(r.effective_by)}.`);
    announce(`Secret of ${r.name} regenerated.`);
    showSecret('New secret', r, extra, () => onDone(r));
  });
}

/** After a change that revokes: when it holds everywhere. */
function effective(title, message, effectiveBy, onDone) {
  const ok = h('button', { type: 'button', class: 'primary' }, 'Close');
  const dlg = dialog(title, h('div', {},
    h('p', { role: 'status', class: 'effective' }, message,
      effectiveBy ? ` Effective on every server by ${clock(effectiveBy)}.` : ''),
    h('div', { class: 'actions' }, ok)), { onClose: onDone });
  ok.addEventListener('click', () => dlg.close());
  ok.focus();
}

/** Activate or deactivate, with a confirmation and `effective_by`. */
export function openStatus(ctx, key, onDone) {
  const deactivating = key.status === 'active';
  const verb = deactivating ? 'Deactivate' : 'Activate';
  formDialog(`${verb} ${key.name}?`, [
    h('p', {}, deactivating
      ? 'Requests with this credential will be refused (401) and its sessions end, on this server at once and on every other server within the propagation window.'
      : 'Requests with this credential will be accepted again.'),
  ], verb, async (form, dlg) => {
    const r = await api.patch(`/apikeys/${encodeURIComponent(key.id)}`, { status: deactivating ? 'inactive' : 'active' });
    dlg.close();
    announce(`${r.name} is ${r.status}.`);
    effective(`${r.name} is ${r.status}`, deactivating ? 'Deactivated.' : 'Activated.', r.effective_by, () => onDone(r));
  }, { danger: deactivating });
}

/** Delete with "Are you sure…?". */
export function openDelete(ctx, key, onDone) {
  formDialog(`Delete ${key.name}?`, [
    h('p', {}, 'Are you sure you want to delete this credential? Requests with it will be refused from then on. This cannot be undone.'),
  ], 'Delete credential', async (form, dlg) => {
    const r = await api.del(`/apikeys/${encodeURIComponent(key.id)}`);
    dlg.close();
    announce(`${key.name} deleted.`);
    effective(`${key.name} deleted`, 'Deleted.', r.effective_by, () => onDone(r));
  }, { danger: true });
}

export { formDialog, showError, permissionBoxes, checked, effective };
