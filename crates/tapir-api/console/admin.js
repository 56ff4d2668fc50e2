// Administrator views built on the live state: the overview (headline metrics, instances
// with health, connection tests, reload), all lines with purging of defunct ones, and the
// event log. Accounts are in accounts.js.

import {
  h, field, setOptions, setText, syncChildren, confirmAction, showError, showNotice,
  formatDateTime, formatAgo, formatClock, instanceStatusLabel, lineStatusLabel, forwardsText,
} from './ui.js';
import { post, del } from './api.js';

/** A headline figure: its value and what it means. */
function metric(label) {
  const value = h('dd', { class: 'metric-value', text: '–' });
  return { el: h('div', { class: 'metric' }, h('dt', { text: label }), value), value };
}

/** The overview: metrics, instances with health and their actions, and the config reload. */
export function createOverview(panel, ctx) {
  const { store } = ctx;
  const metrics = {
    instances: metric('Instances up'),
    lines: metric('Lines in service'),
    calls: metric('Active calls'),
    rate: metric('Events per minute'),
  };
  const reloadButton = h('button', { type: 'button', id: 'reload', text: 'Reload configuration' });
  const reloadOutput = h('output', { class: 'result', for: 'reload', 'aria-live': 'polite' });
  reloadButton.addEventListener('click', async () => {
    reloadButton.disabled = true;
    setText(reloadOutput, 'Reloading…');
    try {
      const r = await post('/reload');
      const part = (name, list) => `${name}: ${list.length ? list.join(', ') : 'none'}`;
      setText(reloadOutput, `Configuration reloaded. ${part('Added', r.added)}; ${part('removed', r.removed)}; ${part('restarted', r.restarted)}; ${part('unchanged', r.unchanged)}.`);
      reloadOutput.dataset.ok = 'true';
    } catch (error) {
      setText(reloadOutput, `Reload refused (${error.code}): ${error.message}`);
      reloadOutput.dataset.ok = 'false';
    } finally {
      reloadButton.disabled = false;
    }
  });


  const rows = h('tbody');
  const table = h('table', { class: 'instances' },
    h('caption', { text: 'Instances (PBX connections)' }),
    h('thead', {}, h('tr', {}, ['Instance', 'Driver', 'Status', 'Last error', 'Since', 'Lines', 'Connection test'].map((t) => h('th', { scope: 'col', text: t })))),
    rows);

  panel.append(
    h('h2', { text: 'Overview' }),
    h('dl', { class: 'metrics' }, Object.values(metrics).map((m) => m.el)),
    h('div', { class: 'table-wrap card' }, table),
    h('section', { class: 'card', 'aria-labelledby': 'reload-title' },
      h('h3', { id: 'reload-title', text: 'Configuration' }),
      h('p', { class: 'hint', text: 'Reads the config file again: added instances start, removed ones stop, changed ones restart. A bad file changes nothing.' }),
      reloadButton, reloadOutput));
  // The config spans tenants: only an administrator of every tenant (no tenant) may reload.
  if (ctx.me.tenant !== null) {
    reloadButton.disabled = true;
    setText(reloadOutput, 'Only an administrator of every tenant may reload the configuration.');
  }

  async function test(name, button, output) {
    button.disabled = true;
    setText(output, 'Testing…');
    delete output.dataset.ok;
    try {
      const r = await post(`/instances/${encodeURIComponent(name)}/test`);
      setText(output, `${r.ok ? 'OK' : 'Failed'}: ${r.summary}`);
      output.dataset.ok = String(r.ok);
    } catch (error) {
      setText(output, `Failed: ${error.message}`);
      output.dataset.ok = 'false';
    } finally {
      button.disabled = false;
    }
  }

  function createRow(instance) {
    const output = h('output', { class: 'result', 'aria-live': 'polite' });
    const button = h('button', { type: 'button', class: 'small', text: 'Test connection', 'aria-label': `Test connection of ${instance.name}` });
    button.addEventListener('click', () => test(instance.name, button, output));
    return h('tr', {}, h('th', { scope: 'row' }), h('td'), h('td', {}, h('span', { class: 'badge' })), h('td'), h('td'), h('td', { class: 'num' }), h('td', {}, button, ' ', output));
  }

  return {
    render() {
      const instances = [...store.instances.values()].sort((a, b) => a.name.localeCompare(b.name));
      const lines = [...store.lines.values()];
      const up = instances.filter((i) => i.status === 'up').length;
      setText(metrics.instances.value, `${up} / ${instances.length}`);
      setText(metrics.lines.value, `${lines.filter((l) => l.status === 'in_service').length} / ${lines.length}`);
      setText(metrics.calls.value, String(store.calls.size));
      setText(metrics.rate.value, String(store.eventsPerMinute()));
      syncChildren(rows, instances, (i) => i.name, createRow, (row, i) => {
        row.dataset.instance = i.name;
        const [name, driver, status, reason, since, count] = row.cells;
        setText(name, i.name);
        setText(driver, i.driver);
        const badge = status.querySelector('.badge');
        setText(badge, instanceStatusLabel(i.status));
        badge.dataset.status = i.status;
        setText(reason, i.reason || '–');
        setText(since, i.since ? `${formatDateTime(i.since)} (${formatAgo(i.since, store.now())})` : '–');
        setText(count, String(i.lines));
      });
    },
  };
}

/** Every line of the tenant, filterable, with purging of defunct lines. */
export function createLinesAdmin(panel, ctx) {
  const { store } = ctx;
  const search = h('input', { id: 'lines-search', type: 'search', autocomplete: 'off', placeholder: 'name, extension or id' });
  const status = h('select', { id: 'lines-status' },
    h('option', { value: '', text: 'All' }),
    ['in_service', 'out_of_service', 'defunct'].map((s) => h('option', { value: s, text: lineStatusLabel(s) })));
  const purgeAll = h('button', { type: 'button', text: 'Purge all defunct lines' });
  const count = h('p', { class: 'hint', 'aria-live': 'polite' });
  const rows = h('tbody');
  search.addEventListener('input', () => ctx.rerender());
  status.addEventListener('change', () => ctx.rerender());

  purgeAll.addEventListener('click', async () => {
    const defunct = store.lineList().filter((l) => l.status === 'defunct');
    if (!await confirmAction('Purge defunct lines', `Forget ${defunct.length} defunct line(s)? Their ids are never reused.`, 'Purge')) return;
    try {
      const r = await post('/lines/purge', { lines: [] });
      showNotice(`Purged ${r.purged.length} line(s).`);
    } catch (error) {
      showError(`Could not purge: ${error.message}`);
    }
  });

  panel.append(
    h('h2', { text: 'Lines' }),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter lines', onsubmit: (e) => e.preventDefault() },
      field('Search', search), field('Status', status), purgeAll),
    count,
    h('div', { class: 'table-wrap card' }, h('table', { class: 'all-lines' },
      h('caption', { class: 'visually-hidden', text: 'All lines' }),
      h('thead', {}, h('tr', {}, ['Id', 'Name', 'Address', 'Instance', 'Status', 'DND', 'Forwarding', 'Calls', ''].map((t) => h('th', { scope: 'col', text: t })))),
      rows)));

  async function purge(line) {
    if (!await confirmAction('Purge line', `Forget defunct line ${line.id} (${line.name})? Its id is never reused.`, 'Purge')) return;
    try {
      await del(`/lines/${line.id}`);
      showNotice(`Line ${line.id} purged.`);
    } catch (error) {
      showError(`Could not purge line ${line.id}: ${error.message}`);
    }
  }

  function createRow() {
    const button = h('button', { type: 'button', class: 'small danger', text: 'Purge' });
    button.addEventListener('click', () => purge(button.closest('tr').line));
    return h('tr', {}, h('td', { class: 'num' }), h('th', { scope: 'row' }), h('td'), h('td'), h('td', {}, h('span', { class: 'badge' })), h('td'), h('td'), h('td', { class: 'num' }), h('td', {}, button));
  }

  return {
    render() {
      const text = search.value.trim().toLowerCase();
      const calls = new Map();
      for (const c of store.calls.values()) calls.set(c.line, (calls.get(c.line) || 0) + 1);
      const all = store.lineList();
      const shown = all.filter((l) => (!status.value || l.status === status.value) &&
        (!text || `${l.id} ${l.name} ${l.address} ${l.instance}`.toLowerCase().includes(text)));
      setText(count, `${shown.length} of ${all.length} lines`);
      purgeAll.disabled = !all.some((l) => l.status === 'defunct');
      syncChildren(rows, shown, (l) => l.id, createRow, (row, l) => {
        row.line = l;
        row.dataset.line = l.id;
        row.dataset.status = l.status;
        const [id, name, address, instance, st, dnd, fwd, n, action] = row.cells;
        setText(id, `#${l.id}`);
        setText(name, l.name);
        setText(address, l.address);
        setText(instance, l.instance);
        const badge = st.querySelector('.badge');
        setText(badge, lineStatusLabel(l.status));
        badge.dataset.status = l.status;
        setText(dnd, l.do_not_disturb ? 'On' : 'Off');
        setText(fwd, forwardsText(l.forwards));
        setText(n, String(calls.get(l.id) || 0));
        const button = action.querySelector('button');
        button.hidden = l.status !== 'defunct';
        button.setAttribute('aria-label', `Purge line ${l.id} ${l.name}`);
      });
    },
  };
}

/** The last ~500 events, newest first, filtered by instance, line and call. */
export function createEventLog(panel, ctx) {
  const { store } = ctx;
  const instance = h('select', { id: 'log-instance' });
  const line = h('select', { id: 'log-line' });
  const call = h('input', { id: 'log-call', type: 'number', min: '1', inputmode: 'numeric', autocomplete: 'off' });
  const pause = h('button', { type: 'button', 'aria-pressed': 'false', text: 'Pause' });
  const count = h('p', { class: 'hint', 'aria-live': 'off' });
  const rows = h('tbody');
  for (const control of [instance, line]) control.addEventListener('change', () => ctx.rerender());
  call.addEventListener('input', () => ctx.rerender());
  // Pausing freezes the table so a person can read it while events keep arriving.
  pause.addEventListener('click', () => {
    const paused = pause.getAttribute('aria-pressed') !== 'true';
    pause.setAttribute('aria-pressed', String(paused));
    setText(pause, paused ? 'Resume' : 'Pause');
    ctx.rerender();
  });

  panel.append(
    h('h2', { text: 'Event log' }),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter events', onsubmit: (e) => e.preventDefault() },
      field('Instance', instance), field('Line', line), field('Call id', call), pause),
    count,
    h('div', { class: 'table-wrap card' }, h('table', { class: 'events' },
      h('caption', { class: 'visually-hidden', text: 'Recent events, newest first' }),
      h('thead', {}, h('tr', {}, ['Time', 'Seq', 'Event', 'Instance', 'Line', 'Call', 'Detail'].map((t) => h('th', { scope: 'col', text: t })))),
      rows)));

  return {
    render() {
      setOptions(instance, [['', 'All instances'], ...[...store.instances.keys()].sort().map((n) => [n, n])]);
      setOptions(line, [['', 'All lines'], ...store.lineList().map((l) => [l.id, `#${l.id} ${l.name} (${l.address})`])]);
      if (pause.getAttribute('aria-pressed') === 'true') return;
      const wantCall = call.value ? Number(call.value) : null;
      const wantLine = line.value ? Number(line.value) : null;
      const shown = store.log.filter((e) => (!instance.value || e.instance === instance.value) &&
        (wantLine === null || e.line === wantLine) && (wantCall === null || e.call === wantCall)).reverse();
      setText(count, `${shown.length} of the last ${store.log.length} events`);
      // The log only grows at its head, so keyed rows make a render cheap.
      syncChildren(rows, shown, (e) => e.id, (e) => h('tr', { 'data-line': e.line ?? '', 'data-call': e.call ?? '' },
        h('td', { text: formatClock(e.at) }), h('td', { class: 'num', text: e.seq }), h('td', { text: e.event }),
        h('td', { text: e.instance ?? '' }), h('td', { class: 'num', text: e.line ?? '' }), h('td', { class: 'num', text: e.call ?? '' }),
        h('td', { text: e.text })), () => {});
    },
  };
}
