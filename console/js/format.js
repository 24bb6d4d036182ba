// Formatting of times, statuses and permissions for display.

/** `2026-12-01 19:32 UTC` from an RFC 3339 string, or `—`. */
export function when(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** `19:32:05 UTC` from an RFC 3339 string. */
export function clock(s) {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  return `${d.toISOString().slice(11, 19)} UTC`;
}

/** "in 3 s", "12 min ago", … relative to now. */
export function relative(s) {
  if (!s) return 'never';
  const d = new Date(s).getTime();
  if (Number.isNaN(d)) return String(s);
  const secs = Math.round((d - Date.now()) / 1000);
  const abs = Math.abs(secs);
  const [n, unit] = abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min']
    : abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return secs >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** Words for an audit action name. */
export function action(a) {
  const words = {
    key_created: 'Key created', key_updated: 'Key edited', key_deactivated: 'Key deactivated',
    key_activated: 'Key activated', key_rotated: 'Key regenerated', key_deleted: 'Key deleted',
    key_rehashed: 'Key hash upgraded', key_imported: 'Key imported', origin_allowed: 'Origin added', login: 'Signed in', logout: 'Signed out',
  };
  if (words[a]) return words[a];
  // app_created → "App created", account_deactivated → "Account deactivated", …
  const w = String(a).replaceAll('_', ' ');
  return w.charAt(0).toUpperCase() + w.slice(1);
}

/** Who did an audit event, in words. */
export function actor(a) {
  if (!a) return 'system';
  if (a.user_name) return String(a.user_name);
  if (a.person) return String(a.person);
  if (a.key_id) return a.session_id ? `${a.key_id} (session)` : String(a.key_id);
  return 'system';
}

/** A short summary of an event's details (never secret by contract). */
export function details(d) {
  if (!d || typeof d !== 'object') return '';
  const parts = [];
  for (const [k, v] of Object.entries(d)) {
    parts.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.join('; ');
}

/** Whether an expiry instant is past. */
export function expired(s) {
  return Boolean(s) && new Date(s).getTime() <= Date.now();
}
