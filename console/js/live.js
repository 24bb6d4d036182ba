// New audit events as they happen: GET /events/stream (Server-Sent
// Events, read with fetch so the session's Authorization header goes
// along; reconnects with Last-Event-ID), or, on a server without the
// stream (it answers 404), polling GET /events.

import * as api from './api.js';

/** How often the fallback polls GET /events (ms). */
const POLL_MS = 2000;

/**
 * Follows the account's audit events matching `filter` (`{ key_id }`).
 * `onEvents(events)` gets each batch of events (newest first; callers drop
 * the ones they show already). `onState('live' | 'reconnecting' |
 * 'polling')`. Returns a stop function.
 */
export function followEvents(filter, onEvents, onState = () => {}) {
  let stopped = false;
  let timer = null;
  async function poll() {
    if (stopped || !api.signedIn()) return;
    try {
      const r = await api.get(`/events${api.qs({ ...filter, limit: 50 })}`);
      if (!stopped) {
        onState('polling');
        if (r.items.length) onEvents(r.items);
      }
    } catch {
      if (!stopped) onState('reconnecting');
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  const stopStream = api.stream(`/events/stream${api.qs(filter)}`, (ev) => {
    let e;
    try {
      e = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (e && e.id) onEvents([e]);
  }, (st) => {
    if (st === 'unavailable') poll();
    else onState(st);
  });
  return () => {
    stopped = true;
    clearTimeout(timer);
    stopStream();
  };
}

/** The words of a follow state. */
export function liveWords(state) {
  if (state === 'live') return 'Live';
  if (state === 'polling') return 'Live (checking every few seconds)';
  if (state === 'reconnecting') return 'Reconnecting…';
  return '';
}
