// The screen-pop link: a URL template kept in this browser (localStorage), e.g.
// https://crm.example.com/search?q={number}, filled in with an incoming caller's details.

const KEY = 'tapir.screenPopTemplate';
const NOTICES_KEY = 'tapir.incomingNotices';

/**
 * Whether to show incoming-call notices. An administrator sees every line of the tenant, so
 * for administrators they start switched off; for operators on.
 */
export function noticesEnabled(role) {
  const stored = localStorage.getItem(NOTICES_KEY);
  return stored === null ? role !== 'admin' : stored === 'on';
}

export const setNoticesEnabled = (on) => localStorage.setItem(NOTICES_KEY, on ? 'on' : 'off');

export const loadTemplate = () => localStorage.getItem(KEY) || '';

/** Stores the template; an empty one switches the link off. Throws when it is not http(s). */
export function saveTemplate(template) {
  const value = template.trim();
  if (value) checkUrl(fill(value, { number: '0', name: 'x', line: '0', call: '0' }));
  if (value) localStorage.setItem(KEY, value);
  else localStorage.removeItem(KEY);
}

/** The link for a call, or null without a template. Placeholders: {number} {name} {line} {call}. */
export function screenPopLink(template, call, line) {
  if (!template) return null;
  const url = fill(template, {
    number: call.caller?.number || '',
    name: call.caller?.name || '',
    line: line?.address || '',
    call: String(call.id),
  });
  try {
    return checkUrl(url);
  } catch {
    return null;
  }
}

function fill(template, values) {
  return template.replace(/\{(number|name|line|call)\}/g, (_, key) => encodeURIComponent(values[key]));
}

/** Only web links: a template must never become a javascript: URL. */
function checkUrl(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('The screen-pop link is not a complete URL (https://...).');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new Error('The screen-pop link must start with https:// or http://');
  }
  return parsed.href;
}
