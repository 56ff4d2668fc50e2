// Small DOM and formatting helpers shared by the views. Everything the server sends is put
// in the page as text (textContent, attributes), never as HTML, so no name or number can
// inject markup.

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/**
 * Creates an element. `attrs`: `class`, `text`, `onclick`-style listeners, `hidden` and other
 * booleans (true sets, false/null/undefined leaves out), anything else as an attribute.
 * Children: nodes, strings, or nested arrays; null and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Sets text only when it changed, so screen readers and selections are not disturbed. */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

/**
 * Keeps `parent`'s children in step with `items`, one element per key: existing elements are
 * updated in place (so focus and open forms survive live updates), new ones created, gone
 * ones removed, and the order follows `items`.
 */
export function syncChildren(parent, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of [...parent.children]) existing.set(child.dataset.key, child);
  let cursor = parent.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    let el = existing.get(key);
    if (el) existing.delete(key);
    else {
      el = create(item);
      el.dataset.key = key;
    }
    update(el, item);
    if (el !== cursor) parent.insertBefore(el, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const el of existing.values()) el.remove();
}

/** A label and its control in one wrapper; every input of the console is labelled. */
export function field(labelText, control, hint) {
  const hintEl = hint ? h('small', { id: `${control.id}-hint`, class: 'hint', text: hint }) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  const isCheck = control.type === 'checkbox';
  const label = h('label', { for: control.id, text: labelText });
  return h('div', { class: isCheck ? 'field check' : 'field' }, isCheck ? [control, label] : [label, control], hintEl);
}

/** A `<select>` from `[value, text]` pairs, keeping the current choice when it still exists. */
export function setOptions(select, options) {
  const current = select.value;
  const same = select.options.length === options.length &&
    options.every(([value, text], i) => select.options[i].value === String(value) && select.options[i].text === text);
  if (same) return;
  replaceChildren(select, options.map(([value, text]) => h('option', { value, text })));
  if (options.some(([value]) => String(value) === current)) select.value = current;
}

// ---- messages ------------------------------------------------------------------------

const MAX_ALERTS = 3;

/** Shows an error in the alert region until dismissed (the last three are kept). */
export function showError(text) {
  const alerts = byId('alerts');
  const item = h('p', { class: 'alert' },
    h('span', { text }),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', text: '×', onclick: () => item.remove() }));
  alerts.append(item);
  while (alerts.children.length > MAX_ALERTS) alerts.firstElementChild.remove();
}

/** Shows a short success message that fades after a few seconds. */
export function showNotice(text) {
  const notices = byId('notices');
  const item = h('p', { class: 'notice', text });
  notices.append(item);
  setTimeout(() => item.remove(), 6000);
  while (notices.children.length > MAX_ALERTS) notices.firstElementChild.remove();
}

export function clearMessages() {
  byId('alerts').replaceChildren();
  byId('notices').replaceChildren();
}

// ---- the shared dialog -----------------------------------------------------------------

/**
 * Asks for one value in a modal dialog (Escape or Cancel answers null). Without `label` the
 * dialog is a plain confirmation and answers true or null.
 */
export function ask({ title, text = '', label = '', type = 'text', value = '', ok = 'OK', autocomplete = 'off' }) {
  const dialog = byId('ask');
  const input = byId('ask-input');
  setText(byId('ask-title'), title);
  setText(byId('ask-text'), text);
  byId('ask-text').hidden = !text;
  setText(byId('ask-label'), label);
  byId('ask-label').hidden = !label;
  input.hidden = !label;
  input.required = Boolean(label);
  input.type = type;
  input.value = value;
  input.setAttribute('autocomplete', autocomplete);
  setText(byId('ask-ok'), ok);
  return new Promise((resolve) => {
    const cancel = byId('ask-cancel');
    const done = (answer) => {
      dialog.removeEventListener('close', onClose);
      cancel.removeEventListener('click', onCancel);
      resolve(answer);
    };
    const onClose = () => done(dialog.returnValue === 'ok' ? (label ? input.value : true) : null);
    const onCancel = () => { dialog.returnValue = ''; dialog.close(); };
    dialog.addEventListener('close', onClose);
    cancel.addEventListener('click', onCancel);
    dialog.returnValue = '';
    dialog.showModal();
    (label ? input : byId('ask-ok')).focus();
  });
}

export const confirmAction = (title, text, ok) => ask({ title, text, ok }).then((answer) => answer === true);

// ---- tabs ------------------------------------------------------------------------------

/**
 * WAI-ARIA tabs: one tab in the tab order (roving tabindex), arrows/Home/End move between
 * the visible tabs, Enter/Space/click select. `onSelect(panelId)` runs after a change.
 */
export function setupTabs(tablist, onSelect) {
  const tabs = () => [...tablist.querySelectorAll('[role=tab]')].filter((t) => !t.hidden);
  const select = (tab, focus) => {
    for (const t of tablist.querySelectorAll('[role=tab]')) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      byId(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
    onSelect(tab.getAttribute('aria-controls'));
  };
  tablist.addEventListener('click', (e) => {
    const tab = e.target.closest('[role=tab]');
    if (tab) select(tab, false);
  });
  tablist.addEventListener('keydown', (e) => {
    const list = tabs();
    const i = list.indexOf(document.activeElement);
    if (i < 0) return;
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    select(list[(next + list.length) % list.length], true);
  });
  return {
    select: (id) => {
      const tab = tabs().find((t) => t.getAttribute('aria-controls') === id) || tabs()[0];
      select(tab, false);
    },
  };
}

// ---- formatting ------------------------------------------------------------------------

/** "m:ss" or "h:mm:ss". */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const s = total % 60;
  const m = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  const pad = (n) => String(n).padStart(2, '0');
  return hours ? `${hours}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** Local date and time of a Unix time in milliseconds. */
export const formatDateTime = (ms) => (ms ? new Date(ms).toLocaleString() : '–');

/** Local time with milliseconds, for the event log. */
export function formatClock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** "3 min ago" and the like. */
export function formatAgo(ms, now = Date.now()) {
  if (!ms) return '';
  const s = Math.round((now - ms) / 1000);
  if (s < 60) return `${Math.max(0, s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A party as the server formats it: "Name (number)", the number, the name, or "–". */
export function partyText(party) {
  const { name, number } = party || {};
  if (name && number) return `${name} (${number})`;
  return number || name || '–';
}

const STATE_LABELS = {
  idle: 'Idle',
  offering: 'Offering (ringing)',
  accepted: 'Accepted',
  dialtone: 'Dial tone',
  dialing: 'Dialing',
  ringback: 'Ringback (far end ringing)',
  busy: 'Busy',
  specialinfo: 'Special information',
  connected: 'Connected',
  proceeding: 'Proceeding',
  onhold: 'On hold',
  conferenced: 'Conferenced',
  onholdpendconf: 'On hold, conference pending',
  onholdpendtransfer: 'On hold, transfer pending',
  disconnected: 'Disconnected',
  unknown: 'Unknown',
};

/** The call's state for people, with its mode when it adds something ("Disconnected (busy)"). */
export function stateLabel(call) {
  const label = STATE_LABELS[call.state] || call.state;
  const mode = call.mode && call.mode !== 'active' && call.mode !== 'normal' ? ` (${call.mode.replaceAll('_', ' ')})` : '';
  return label + mode;
}

const ORIGIN_LABELS = {
  outbound: 'Outgoing',
  internal: 'Incoming, internal',
  external: 'Incoming, external',
  inbound: 'Incoming',
  conference: 'Conference',
  unknown: 'Unknown direction',
};

export const originLabel = (origin) => ORIGIN_LABELS[origin] || origin;

/** Whether a call came to the line rather than being placed from it. */
export const isIncoming = (call) => ['internal', 'external', 'inbound'].includes(call.origin);

const LINE_STATUS_LABELS = { in_service: 'In service', out_of_service: 'Out of service', defunct: 'Defunct' };
export const lineStatusLabel = (status) => LINE_STATUS_LABELS[status] || status;

const INSTANCE_STATUS_LABELS = { up: 'Up', down: 'Down', starting: 'Starting', failed: 'Failed' };
export const instanceStatusLabel = (status) => INSTANCE_STATUS_LABELS[status] || status;

/** "unconditional → 208, busy → 209" or "off". */
export function forwardsText(forwards) {
  if (!forwards || forwards.length === 0) return 'Off';
  const modes = { unconditional: 'Always', busy: 'Busy', no_answer: 'No answer' };
  return forwards.map((f) => `${modes[f.mode] || f.mode} → ${f.destination}`).join(', ');
}

/**
 * A dialable number from pasted text: "+49 (30) 123-456" becomes "+4930123456". Keeps digits,
 * "+", "*" and "#" (feature codes), drops spaces, dashes, brackets, dots and anything else.
 */
export const cleanNumber = (text) => String(text).replace(/[^0-9+*#]/g, '');

/** A line for people: "Extension 201 (201)". */
export const lineText = (line) => (line ? `${line.name} (${line.address})` : 'unknown line');
