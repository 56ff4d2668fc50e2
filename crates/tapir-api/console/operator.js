// The operator view: my lines, my calls with their actions, click-to-dial, and the notices
// of incoming calls with the screen-pop link. Everything is rendered from the store; commands
// go over the WebSocket and their errors to the alert region.

import {
  h, field, setOptions, setText, syncChildren, ask, showError, showNotice,
  formatDuration, partyText, stateLabel, originLabel, isIncoming, lineStatusLabel, forwardsText,
  cleanNumber, lineText,
} from './ui.js';
import { loadTemplate, saveTemplate, screenPopLink, noticesEnabled, setNoticesEnabled } from './screenpop.js';

/**
 * The call actions, in the order of their buttons. `ask` actions need a number first. The
 * main ones are always shown (disabled when impossible) so buttons do not jump around;
 * `optional` ones appear only while possible, to keep a call's card short.
 */
const ACTIONS = [
  { feature: 'answer', label: 'Answer' },
  { feature: 'hold', label: 'Hold' },
  { feature: 'unhold', label: 'Resume' },
  { feature: 'swap', label: 'Swap', optional: true },
  { feature: 'transfer', label: 'Transfer…', ask: 'Transfer to' },
  { feature: 'consult', label: 'Consult…', ask: 'Consult with', optional: true },
  { feature: 'complete_transfer', label: 'Complete transfer', optional: true },
  { feature: 'conference', label: 'Conference' },
  { feature: 'park', label: 'Park', optional: true },
  { feature: 'drop', label: 'Drop', danger: true },
];

const LAST_LINE_KEY = 'tapir.dialLine';

/**
 * Builds the operator view in `panel`. `ctx`: `store`, `me`, `command(fields, what)` (sends
 * a command, reports failures, answers the result or null), `rightOf(lineId)`, `connected()`
 * and `rerender()`.
 */
export function createOperatorView(panel, ctx) {
  const { store } = ctx;

  // ---- click to dial ------------------------------------------------------------------
  const lineSelect = h('select', { id: 'dial-line', name: 'line', required: true });
  const number = h('input', {
    id: 'dial-number', name: 'number', type: 'tel', inputmode: 'tel', autocomplete: 'off',
    placeholder: 'e.g. 202 or +49 30 1234567', required: true,
  });
  const dialButton = h('button', { type: 'submit', class: 'primary', id: 'dial-button', text: 'Dial' });
  // A parked call is taken back by its park place, typed where a number goes.
  const unparkButton = h('button', { type: 'button', id: 'unpark-button', text: 'Unpark' });
  // Numbers come from e-mails and web pages with spaces, dashes and brackets: keep what dials.
  number.addEventListener('paste', (e) => {
    const text = e.clipboardData?.getData('text');
    if (text === undefined) return;
    e.preventDefault();
    number.setRangeText(cleanNumber(text), number.selectionStart, number.selectionEnd, 'end');
  });
  lineSelect.addEventListener('change', () => localStorage.setItem(LAST_LINE_KEY, lineSelect.value));
  number.setAttribute('aria-describedby', 'dial-hint');
  const dialForm = h('form', { class: 'dial', 'aria-label': 'Dial a number' },
    field('From line', lineSelect),
    field('Number', number),
    dialButton,
    unparkButton,
    h('small', { id: 'dial-hint', class: 'hint', text: 'Press Enter to dial. Spaces, dashes and brackets in pasted numbers are removed. Unpark takes the call parked at the place typed as the number.' }));
  dialForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const to = cleanNumber(number.value);
    const line = Number(lineSelect.value);
    if (!to || !line) {
      showError(!line ? 'There is no line you may dial from.' : 'Enter a number to dial.');
      return;
    }
    dialButton.disabled = true;
    const result = await ctx.command({ command: 'make_call', line, to }, `Could not dial ${to}`);
    dialButton.disabled = false;
    if (result) {
      number.value = '';
      showNotice(`Dialling ${to} from ${lineText(store.lines.get(line))}.`);
    }
  });

  unparkButton.addEventListener('click', async () => {
    const from = cleanNumber(number.value);
    const line = Number(lineSelect.value);
    if (!from || !line) {
      showError(!line ? 'There is no line you may take a call onto.' : 'Enter the park place, e.g. 701.');
      return;
    }
    unparkButton.disabled = true;
    const result = await ctx.command({ command: 'unpark', line, from }, `Could not unpark ${from}`);
    unparkButton.disabled = false;
    if (result) {
      number.value = '';
      showNotice(`Taking the call parked at ${from} onto ${lineText(store.lines.get(line))}.`);
    }
  });

  // ---- screen-pop settings -------------------------------------------------------------
  const template = h('input', { id: 'screenpop-template', type: 'url', autocomplete: 'off', placeholder: 'https://crm.example.com/search?q={number}' });
  template.value = loadTemplate();
  const showNotices = h('input', { id: 'incoming-notices', type: 'checkbox', checked: noticesEnabled(ctx.me.role) });
  showNotices.addEventListener('change', () => {
    setNoticesEnabled(showNotices.checked);
    ctx.rerender();
  });
  const settingsForm = h('form', { class: 'stack' },
    field('Show a notice for incoming calls', showNotices),
    field('Screen-pop link for incoming calls', template,
      'Placeholders: {number} and {name} of the caller, {line} (my extension), {call}. Empty: no link. Kept in this browser.'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: 'Save link' })));
  settingsForm.addEventListener('submit', (e) => {
    e.preventDefault();
    try {
      saveTemplate(template.value);
      showNotice(template.value.trim() ? 'Screen-pop link saved.' : 'Screen-pop link switched off.');
      ctx.rerender();
    } catch (error) {
      showError(error.message);
    }
  });
  const settings = h('details', { class: 'settings' }, h('summary', { text: 'Settings' }), settingsForm);

  // ---- lines and calls -----------------------------------------------------------------
  const lineRows = h('tbody');
  const linesTable = h('table', { class: 'lines' },
    h('caption', { class: 'visually-hidden', text: 'My lines' }),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'Line' }), h('th', { scope: 'col', text: 'Status' }),
      h('th', { scope: 'col' }, h('abbr', { title: 'Do not disturb', text: 'DND' })), h('th', { scope: 'col', text: 'Forwarding' }))),
    lineRows);
  const noLines = h('p', { class: 'empty', text: 'No lines are assigned to you yet.' });
  const callList = h('ul', { class: 'calls', 'aria-label': 'Calls' });
  const noCalls = h('p', { class: 'empty', text: 'No calls.' });

  panel.append(
    h('h2', { class: 'visually-hidden', text: 'Operator' }),
    h('div', { class: 'operator-grid' },
      h('div', { class: 'column' },
        h('section', { class: 'card', 'aria-labelledby': 'dial-title' }, h('h3', { id: 'dial-title', text: 'Dial' }), dialForm),
        h('section', { class: 'card', 'aria-labelledby': 'my-lines-title' },
          h('h3', { id: 'my-lines-title', text: 'My lines' }), h('div', { class: 'table-wrap' }, linesTable), noLines),
        settings),
      h('section', { class: 'card column', 'aria-labelledby': 'calls-title' },
        h('h3', { id: 'calls-title', text: 'Calls' }), callList, noCalls)));

  function renderLines(lines) {
    syncChildren(lineRows, lines, (l) => l.id, createLineRow, (row, line) => {
      const right = ctx.rightOf(line.id);
      row.dataset.line = line.id;
      row.dataset.status = line.status;
      const [name, status, dnd, fwd] = row.cells;
      setText(name.querySelector('.name'), line.name);
      setText(name.querySelector('.address'), right === 'monitor' ? `${line.address} · monitor only` : line.address);
      setText(status, lineStatusLabel(line.status));
      setText(fwd, forwardsText(line.forwards));
      const toggle = dnd.querySelector('button');
      setText(toggle, line.do_not_disturb ? 'On' : 'Off');
      toggle.setAttribute('aria-pressed', String(line.do_not_disturb));
      toggle.setAttribute('aria-label', `Do not disturb, ${line.name}`);
      toggle.disabled = right !== 'control' || line.status !== 'in_service';
      toggle.onclick = () => ctx.command({ command: 'set_dnd', line: line.id, enabled: !line.do_not_disturb },
        `Could not change do not disturb on ${line.name}`);
    });
    linesTable.hidden = lines.length === 0;
    noLines.hidden = lines.length > 0;
  }

  function createLineRow() {
    return h('tr', {},
      h('th', { scope: 'row' }, h('span', { class: 'name' }), h('small', { class: 'address' })),
      h('td'), h('td', {}, h('button', { type: 'button', class: 'small toggle' })), h('td'));
  }

  function renderDialLines(lines) {
    const usable = lines.filter((l) => l.status !== 'defunct' && ctx.rightOf(l.id) === 'control');
    setOptions(lineSelect, usable.map((l) => [l.id, lineText(l)]));
    // Once the lines are known, start from the line used last time.
    if (!lineSelect.dataset.restored && usable.length) {
      const remembered = localStorage.getItem(LAST_LINE_KEY);
      if (usable.some((l) => String(l.id) === remembered)) lineSelect.value = remembered;
      lineSelect.dataset.restored = '1';
    }
  }

  function renderCalls(calls) {
    syncChildren(callList, calls, (c) => c.id, createCallItem, updateCallItem);
    noCalls.hidden = calls.length > 0;
  }

  function createCallItem(call) {
    const item = h('li', { class: 'call', 'aria-labelledby': `call-${call.id}-title` },
      h('div', { class: 'call-head' },
        h('h4', { id: `call-${call.id}-title`, class: 'call-title' }),
        h('span', { class: 'state badge' })),
      h('dl', { class: 'parties' },
        h('dt', { text: 'Direction' }), h('dd', { class: 'origin' }),
        h('dt', { text: 'Caller' }), h('dd', { class: 'caller' }),
        h('dt', { text: 'Called' }), h('dd', { class: 'called' }),
        h('dt', { text: 'Connected' }), h('dd', { class: 'connected' }),
        h('dt', { text: 'Duration' }), h('dd', {}, h('span', { class: 'duration', role: 'timer' }))),
      h('div', { class: 'actions', role: 'group', 'aria-label': `Actions for call ${call.id}` },
        ACTIONS.map((action) => h('button', {
          type: 'button', class: action.danger ? 'danger' : '', 'data-action': action.feature, text: action.label,
          'data-optional': action.optional ? 'true' : null,
          onclick: () => runAction(item, action),
        }))));
    return item;
  }

  function updateCallItem(item, call) {
    const line = store.lines.get(call.line);
    item.call = call;
    item.dataset.call = call.id;
    item.dataset.line = call.line;
    item.dataset.state = call.state;
    setText(item.querySelector('.call-title'), `${line ? line.name : `Line ${call.line}`} · call ${call.id}`);
    setText(item.querySelector('.state'), stateLabel(call));
    setText(item.querySelector('.origin'), originLabel(call.origin) + (call.reason && call.reason !== 'direct' ? ` (${call.reason.replaceAll('_', ' ')})` : ''));
    setText(item.querySelector('.caller'), partyText(call.caller));
    setText(item.querySelector('.called'), partyText(call.called));
    setText(item.querySelector('.connected'), partyText(call.connected));
    // While the connection is down the picture may be stale: offer no actions on it.
    const control = ctx.rightOf(call.line) === 'control' && ctx.connected();
    for (const button of item.querySelectorAll('[data-action]')) {
      // Enabled exactly when the server says the action is possible now (and we may act).
      const possible = call.features.includes(button.dataset.action);
      button.disabled = !(control && possible);
      if (button.dataset.optional) button.hidden = !possible;
    }
    tickDuration(item);
  }

  function tickDuration(item) {
    const call = item.call;
    const el = item.querySelector('.duration');
    setText(el, call.connected_at ? formatDuration(store.now() - call.connected_at) : 'not connected');
  }

  async function runAction(item, action) {
    const call = item.call;
    const fields = { command: action.feature, call: call.id };
    if (action.ask) {
      const answer = await ask({ title: `${action.label.replace('…', '')} call ${call.id}`, label: `${action.ask} (number)`, type: 'tel', ok: action.label.replace('…', '') });
      const to = answer === null ? '' : cleanNumber(answer);
      if (!to) return;
      fields.to = to;
    }
    const result = await ctx.command(fields, `Could not ${action.label.replace('…', '').toLowerCase()} call ${call.id}`);
    // Whoever takes a parked call back needs its place.
    if (result?.parked_at) showNotice(`Call ${call.id} parked at ${result.parked_at}.`);
  }

  return {
    render() {
      const lines = store.lineList();
      renderLines(lines);
      renderDialLines(lines);
      renderCalls(store.callList());
    },
    /** Once a second: the running durations. */
    tick() {
      for (const item of callList.children) if (item.call) tickDuration(item);
    },
  };
}

/** Notices of calls offered to my lines, with the caller and the screen-pop link. */
export function createIncomingNotices(container, ctx) {
  const { store } = ctx;
  return {
    render() {
      const template = loadTemplate();
      const wanted = noticesEnabled(ctx.me.role);
      const offered = !wanted ? [] : store.callList().filter((c) => (c.state === 'offering' || c.state === 'accepted') && isIncoming(c));
      // A console in a background tab still shows a ringing call in the tab's title.
      const title = offered.length ? `(${offered.length}) Incoming call · tapir console` : 'tapir console';
      if (document.title !== title) document.title = title;
      syncChildren(container, offered, (c) => c.id, (call) => h('article', { class: 'incoming-call', 'aria-labelledby': `incoming-${call.id}` },
        h('h2', { id: `incoming-${call.id}` }),
        h('p', { class: 'from' }),
        h('p', { class: 'pop' }),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'primary', 'data-action': 'answer', text: 'Answer', onclick: () => ctx.command({ command: 'answer', call: call.id }, `Could not answer call ${call.id}`) }),
          h('button', { type: 'button', class: 'danger', 'data-action': 'drop', text: 'Reject', onclick: () => ctx.command({ command: 'drop', call: call.id }, `Could not reject call ${call.id}`) }))),
      (el, call) => {
        const line = store.lines.get(call.line);
        el.dataset.call = call.id;
        setText(el.querySelector('h2'), `Incoming call on ${lineText(line)}`);
        setText(el.querySelector('.from'), `From ${partyText(call.caller)}`);
        const pop = el.querySelector('.pop');
        const href = screenPopLink(template, call, line);
        const link = pop.querySelector('a');
        if (!href) pop.replaceChildren('No screen-pop link set (operator view, Settings).');
        else if (!link || link.href !== href) {
          pop.replaceChildren(h('a', { class: 'screenpop', href, target: '_blank', rel: 'noopener noreferrer' },
            `Look up ${call.caller?.name || call.caller?.number || 'the caller'}`, h('span', { class: 'visually-hidden', text: ' (opens in a new tab)' })));
        }
        const control = ctx.rightOf(call.line) === 'control' && ctx.connected();
        for (const button of el.querySelectorAll('[data-action]')) button.disabled = !(control && call.features.includes(button.dataset.action));
      });
    },
  };
}
