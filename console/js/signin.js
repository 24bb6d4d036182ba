// The sign-in screen: an admin key id and secret (or a single-string key),
// exchanged for a session through POST /auth/login.

import { h, field, replace, clearErrors, showFieldError } from './dom.js';
import * as api from './api.js';

/** Renders the form into `main`; calls `done()` once signed in. */
export function renderSignIn(main, done, notice) {
  const key = h('input', { name: 'key', autocomplete: 'off', spellcheck: 'false', required: true });
  const secret = h('input', { name: 'secret', type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title', novalidate: true },
    h('h1', { id: 'signin-title' }, 'Sign in to keyward'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    field('Key ID', key, 'The id of an admin key (kw_…), or a single-string key (kw_ak_…) with no secret.'),
    field('Secret', secret),
    formError,
    submit,
    h('p', { class: 'hint' }, 'The session lives in this tab only; reloading signs you out.'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    if (!key.value.trim()) {
      showFieldError(form, 'key', 'Enter a key id.', formError);
      key.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api.login(key.value.trim(), secret.value);
      secret.value = '';
      done();
    } catch (e) {
      secret.value = '';
      const msg = e.status === 401 ? 'That key id and secret were not accepted.' : e.message;
      formError.textContent = msg;
      formError.hidden = false;
      secret.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, form);
  key.focus();
}
