// Administrator views over the accounts endpoints: users, tokens, line assignments, the
// tsecimp import/export, teams and the audit log. Accounts send no live events, so these
// views load when shown and after each change (the audit log also on request).

import {
  h, field, setOptions, setText, replaceChildren, ask, confirmAction, showError, showNotice,
  formatDateTime, lineText,
} from './ui.js';
import { get, post, put, del, request } from './api.js';

const seconds = (s) => (s ? formatDateTime(s * 1000) : '–');
const path = (name) => encodeURIComponent(name);

function table(caption, headings, body, className) {
  return h('div', { class: 'table-wrap card' }, h('table', { class: className },
    h('caption', { text: caption }),
    h('thead', {}, h('tr', {}, headings.map((t) => h('th', { scope: 'col', text: t })))),
    body));
}

/** Runs an administrative request; on failure shows why and answers undefined. */
async function attempt(what, action) {
  try {
    return await action();
  } catch (error) {
    showError(`${what}: ${error.message}`);
    return undefined;
  }
}

/** Users and tokens. `ctx.me` is the logged-in user. */
export function createAccounts(panel, ctx) {
  // ---- users ---------------------------------------------------------------------------
  const userRows = h('tbody');
  const name = h('input', { id: 'user-name', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const friendly = h('input', { id: 'user-friendly', autocomplete: 'off' });
  const tenant = h('input', { id: 'user-tenant', autocomplete: 'off', value: ctx.me.tenant || 'default' });
  const role = h('select', { id: 'user-role' }, h('option', { value: 'user', text: 'User (operator)' }), h('option', { value: 'admin', text: 'Administrator' }));
  const password = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password', minlength: '8' });
  const mayDial = h('input', { id: 'user-may-dial', type: 'checkbox', checked: true });
  const addUser = h('form', { class: 'grid-form', 'aria-labelledby': 'add-user-title' },
    h('h4', { id: 'add-user-title', text: 'Add a user' }),
    field('User name', name), field('Full name', friendly), field('Tenant', tenant), field('Role', role),
    field('Password', password, 'At least 8 characters. Empty: the account uses tokens only.'),
    field('May dial', mayDial),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Add user' })));
  addUser.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), role: role.value, may_dial: mayDial.checked };
    if (friendly.value.trim()) body.friendly_name = friendly.value.trim();
    if (tenant.value.trim()) body.tenant = tenant.value.trim();
    if (password.value) body.password = password.value;
    const user = await attempt(`Could not add user ${body.name}`, () => post('/users', body));
    if (!user) return;
    showNotice(`User ${user.name} added.`);
    name.value = friendly.value = password.value = '';
    load();
  });

  // ---- tokens --------------------------------------------------------------------------
  const tokenRows = h('tbody');
  const label = h('input', { id: 'token-label', required: true, autocomplete: 'off' });
  const tokenUser = h('select', { id: 'token-user' });
  const lifetime = h('input', { id: 'token-lifetime', type: 'number', min: '1', inputmode: 'numeric', autocomplete: 'off' });
  const secret = h('div', { class: 'secret', 'aria-live': 'polite', hidden: true });
  const newToken = h('form', { class: 'grid-form', 'aria-labelledby': 'new-token-title' },
    h('h4', { id: 'new-token-title', text: 'Create a token' }),
    field('Label', label, 'What the token is for, e.g. "CRM server".'), field('For user', tokenUser),
    field('Lifetime in days', lifetime, 'Empty: until revoked.'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Create token' })));
  newToken.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { label: label.value.trim(), user: tokenUser.value };
    if (lifetime.value) body.lifetime_s = Math.round(Number(lifetime.value) * 86400);
    const issued = await attempt('Could not create the token', () => post('/tokens', body));
    if (!issued) return;
    label.value = lifetime.value = '';
    showSecret(issued);
    load();
  });

  // The secret exists only in this answer: show it once, with a way to copy it.
  function showSecret(issued) {
    const value = h('input', { id: 'token-secret', readonly: true, value: issued.token, class: 'mono' });
    const copy = h('button', { type: 'button', text: 'Copy' });
    copy.addEventListener('click', async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(issued.token);
        showNotice('Token copied.');
      } catch {
        showNotice('Select the token and copy it with Ctrl+C.');
      }
    });
    const hide = h('button', { type: 'button', text: 'Done' });
    hide.addEventListener('click', () => { secret.hidden = true; secret.replaceChildren(); });
    replaceChildren(secret,
      h('p', { text: `Token ${issued.id} for ${issued.user} ("${issued.label}"). It is shown only this once: copy it now.` }),
      field('Token secret', value), h('div', { class: 'buttons' }, copy, hide));
    secret.hidden = false;
    value.focus();
    value.select();
  }

  panel.append(
    h('h2', { text: 'Users and tokens' }),
    h('div', { class: 'buttons' }, h('button', { type: 'button', text: 'Refresh', onclick: () => load() })),
    table('Users', ['Name', 'Full name', 'Tenant', 'Role', 'May dial', 'Password', 'Created', 'Actions'], userRows),
    h('section', { class: 'card' }, addUser),
    table('Tokens', ['Id', 'User', 'Label', 'Kind', 'Created', 'Expires', 'Revoked', ''], tokenRows),
    h('section', { class: 'card' }, newToken, secret));

  function userRow(u) {
    const setPassword = h('button', { type: 'button', class: 'small', text: 'Set password', 'aria-label': `Set password of ${u.name}` });
    setPassword.addEventListener('click', async () => {
      const value = await ask({ title: `Password of ${u.name}`, label: 'New password (at least 8 characters)', type: 'password', ok: 'Set password', autocomplete: 'new-password' });
      if (value === null) return;
      const done = await attempt(`Could not set the password of ${u.name}`, () => put(`/users/${path(u.name)}/password`, { password: value }).then(() => true));
      if (done) showNotice(`Password of ${u.name} set.`);
      load();
    });
    const remove = h('button', { type: 'button', class: 'small danger', text: 'Remove', 'aria-label': `Remove user ${u.name}` });
    remove.addEventListener('click', async () => {
      if (!await confirmAction('Remove user', `Remove ${u.name}? Its tokens stop working and its line assignments go.`, 'Remove')) return;
      const done = await attempt(`Could not remove ${u.name}`, () => del(`/users/${path(u.name)}`).then(() => true));
      if (done) showNotice(`User ${u.name} removed.`);
      load();
    });
    const self = u.name === ctx.me.name;
    return h('tr', { 'data-user': u.name },
      h('th', { scope: 'row', text: u.name }), h('td', { text: u.friendly_name || '–' }), h('td', { text: u.tenant ?? 'all tenants' }),
      h('td', { text: u.role }), h('td', { text: u.may_dial ? 'Yes' : 'No' }), h('td', { text: u.has_password ? 'Set' : 'None' }),
      h('td', { text: seconds(u.created_at) }), h('td', { class: 'row-actions' }, setPassword, self ? null : remove));
  }

  function tokenRow(t) {
    const revoke = h('button', { type: 'button', class: 'small danger', text: 'Revoke', 'aria-label': `Revoke token ${t.id} (${t.label})` });
    revoke.addEventListener('click', async () => {
      if (!await confirmAction('Revoke token', `Revoke token ${t.id} "${t.label}" of ${t.user}? Whatever uses it is logged out.`, 'Revoke')) return;
      const done = await attempt(`Could not revoke token ${t.id}`, () => del(`/tokens/${t.id}`).then(() => true));
      if (done) showNotice(`Token ${t.id} revoked.`);
      load();
    });
    // Tokens read `tapir_<id>_<secret>`: the id tells which one is this very session.
    const mine = ctx.tokenId() === t.id;
    return h('tr', { 'data-token': t.id },
      h('td', { class: 'num', text: t.id }), h('td', { text: t.user }), h('th', { scope: 'row', text: mine ? `${t.label} (this session)` : t.label }), h('td', { text: t.kind }),
      h('td', { text: seconds(t.created_at) }), h('td', { text: seconds(t.expires_at) }), h('td', { text: seconds(t.revoked_at) }),
      h('td', {}, t.revoked_at ? null : revoke));
  }

  async function load() {
    const [users, tokens] = await Promise.all([
      attempt('Could not load the users', () => get('/users')),
      attempt('Could not load the tokens', () => get('/tokens')),
    ]);
    if (users) {
      replaceChildren(userRows, users.map(userRow));
      setOptions(tokenUser, users.map((u) => [u.name, u.name]));
      if (!tokenUser.dataset.chosen) { tokenUser.value = ctx.me.name; tokenUser.dataset.chosen = '1'; }
    }
    if (tokens) replaceChildren(tokenRows, tokens.map(tokenRow));
  }

  return { show: load, render() {} };
}

/** Line assignments, and the tsecimp file that carries them in bulk. */
export function createAssignments(panel, ctx) {
  const { store } = ctx;
  const rows = h('tbody');
  const user = h('select', { id: 'assign-user', required: true });
  const line = h('select', { id: 'assign-line', required: true });
  const relation = h('select', { id: 'assign-relation' }, h('option', { value: 'assigned', text: 'Assigned' }), h('option', { value: 'own', text: 'Own (the user’s phone)' }));
  const right = h('select', { id: 'assign-right' }, h('option', { value: 'control', text: 'Control' }), h('option', { value: 'monitor', text: 'Monitor only' }));
  const assignForm = h('form', { class: 'grid-form', 'aria-labelledby': 'assign-title' },
    h('h4', { id: 'assign-title', text: 'Assign a line' }),
    field('User', user), field('Line', line), field('Relation', relation), field('Right', right, 'Own lines always have control.'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Assign' })));
  assignForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const who = user.value;
    const id = Number(line.value);
    const done = await attempt(`Could not assign line ${id} to ${who}`,
      () => put(`/users/${path(who)}/lines/${id}`, { relation: relation.value, right: right.value }));
    if (done) showNotice(`Line ${lineText(store.lines.get(id))} assigned to ${who} (${done.relation}, ${done.right}).`);
    load();
  });

  // ---- tsecimp -------------------------------------------------------------------------
  const file = h('input', { id: 'tsecimp-file', type: 'file', accept: '.xml,application/xml,text/xml', required: true });
  const tenant = h('input', { id: 'tsecimp-tenant', autocomplete: 'off', placeholder: ctx.me.tenant || 'default' });
  const importResult = h('div', { class: 'result-block', 'aria-live': 'polite' });
  const importForm = h('form', { class: 'grid-form', 'aria-labelledby': 'tsecimp-title' },
    h('h4', { id: 'tsecimp-title', text: 'tsecimp (Microsoft TAPI line assignments)' }),
    field('Tenant', tenant, 'Empty: your own tenant.'),
    field('tsecimp XML file', file, 'All or nothing: any problem imports nothing.'),
    h('div', { class: 'buttons' },
      h('button', { type: 'submit', class: 'primary', text: 'Import' }),
      h('button', { type: 'button', text: 'Export', onclick: () => exportFile() })));
  const query = () => (tenant.value.trim() ? `?tenant=${encodeURIComponent(tenant.value.trim())}` : '');
  importForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    try {
      const r = await request('POST', `/tsecimp${query()}`, { body: await chosen.text(), contentType: 'application/xml' });
      replaceChildren(importResult, h('p', { class: 'ok', text:
        `Imported ${chosen.name}: ${r.lines_given} line(s) given, ${r.lines_taken} taken; users created: ${r.users_created.join(', ') || 'none'}; cleared first: ${r.users_cleared.join(', ') || 'none'}.` }));
      load();
    } catch (error) {
      // 422 lists each problem on its own line of the message, after a first sentence.
      const [first, ...problems] = error.message.split('\n');
      replaceChildren(importResult, h('div', { role: 'alert', class: 'problems' },
        h('p', { text: `${chosen.name}: ${first}` }),
        problems.length ? h('ul', {}, problems.map((p) => h('li', { text: p }))) : null));
    }
  });

  // A plain link cannot carry the bearer token: fetch the file, then hand it to the browser.
  async function exportFile() {
    const xml = await attempt('Could not export', () => request('GET', `/tsecimp${query()}`));
    if (xml === undefined) return;
    const url = URL.createObjectURL(new Blob([xml], { type: 'application/xml' }));
    const a = h('a', { href: url, download: `tapir-tsecimp-${tenant.value.trim() || ctx.me.tenant || 'default'}.xml`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  panel.append(
    h('h2', { text: 'Line assignments' }),
    h('div', { class: 'buttons' }, h('button', { type: 'button', text: 'Refresh', onclick: () => load() })),
    table('Assignments', ['User', 'Line', 'Relation', 'Right', ''], rows),
    h('section', { class: 'card' }, assignForm),
    h('section', { class: 'card' }, importForm, importResult));

  function row(a) {
    const l = store.lines.get(a.line);
    const unassign = h('button', { type: 'button', class: 'small danger', text: 'Unassign', 'aria-label': `Unassign line ${a.line} from ${a.user}` });
    unassign.addEventListener('click', async () => {
      const done = await attempt(`Could not unassign line ${a.line} from ${a.user}`, () => del(`/users/${path(a.user)}/lines/${a.line}`).then(() => true));
      if (done) showNotice(`Line ${a.line} unassigned from ${a.user}.`);
      load();
    });
    return h('tr', { 'data-user': a.user, 'data-line': a.line },
      h('th', { scope: 'row', text: a.user }), h('td', { text: `#${a.line} ${l ? lineText(l) : ''}` }),
      h('td', { text: a.relation }), h('td', { text: a.right }), h('td', {}, unassign));
  }

  async function load() {
    const [users, assignments] = await Promise.all([
      attempt('Could not load the users', () => get('/users')),
      attempt('Could not load the assignments', () => get('/assignments')),
    ]);
    if (users) setOptions(user, users.filter((u) => u.tenant !== null).map((u) => [u.name, `${u.name}${u.friendly_name ? ` (${u.friendly_name})` : ''}`]));
    if (assignments) {
      assignments.sort((a, b) => a.user.localeCompare(b.user) || a.line - b.line);
      replaceChildren(rows, assignments.map(row));
    }
  }

  return {
    show: load,
    render() {
      setOptions(line, store.lineList().filter((l) => l.status !== 'defunct').map((l) => [l.id, `#${l.id} ${lineText(l)}`]));
    },
  };
}

// ---- teams -----------------------------------------------------------------------------

const RIGHT_LABELS = { monitor: 'Monitor', control: 'Control', none: 'None' };
const rightOptions = () => Object.entries(RIGHT_LABELS).map(([value, text]) => h('option', { value, text }));

let uniqueId = 0;
/** An id for a control in a generated row, so that a label can point at it. */
const rowId = (prefix) => `${prefix}-${++uniqueId}`;

/** A label for screen readers only, where the column heading names the control for the eye. */
const hiddenLabel = (text, control) => h('label', { for: control.id, class: 'visually-hidden', text });

/**
 * Rows are rebuilt after each change, which drops the focus: put it back on the first of
 * `keys` (`data-focus` values) still there and enabled, unless the user went elsewhere.
 */
function refocus(root, keys) {
  const active = document.activeElement;
  if (active && active !== document.body && active.isConnected) return;
  for (const key of [keys].flat()) {
    const el = [...root.querySelectorAll('[data-focus]')].find((e) => e.dataset.focus === key && !e.disabled);
    if (el) {
      el.focus();
      return;
    }
  }
}

const userText = (u) => (u.friendly_name ? `${u.name} (${u.friendly_name})` : u.name);

/** Teams: their member right, members, and new teams. */
export function createTeams(panel, ctx) {
  const rows = h('tbody');
  const empty = h('p', { class: 'empty', text: 'No teams yet.', hidden: true });
  const refresh = h('button', { type: 'button', text: 'Refresh', 'data-focus': 'refresh', onclick: () => load() });

  const name = h('input', { id: 'team-name', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const tenant = h('input', { id: 'team-tenant', autocomplete: 'off', value: ctx.me.tenant || 'default' });
  const right = h('select', { id: 'team-right' }, rightOptions());
  const newTeam = h('form', { class: 'grid-form', 'aria-labelledby': 'new-team-title' },
    h('h4', { id: 'new-team-title', text: 'Create a team' }),
    field('Team name', name), field('Tenant', tenant, 'Members must belong to it.'),
    field('Member right', right, 'Monitor: see teammates’ lines and calls. Control: also act on them.'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Create team' })));
  newTeam.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), member_right: right.value };
    if (tenant.value.trim()) body.tenant = tenant.value.trim();
    const team = await attempt(`Could not create team ${body.name}`, () => post('/teams', body));
    if (!team) return;
    showNotice(`Team ${team.name} created; its members get ${RIGHT_LABELS[team.member_right] || team.member_right} on each other’s own lines.`);
    name.value = '';
    load();
  });

  const teamTable = table('Teams', ['Team', 'Tenant', 'Member right', 'Members', 'Add a member', ''], rows, 'teams stack-on-phone');
  teamTable.append(empty);
  panel.append(
    h('h2', { text: 'Teams' }),
    h('p', { class: 'hint', text: 'In workstation mode, the members of a team get its member right on each other’s own lines: Monitor to see their calls, Control to act on them as well.' }),
    h('div', { class: 'buttons' }, refresh),
    teamTable,
    h('section', { class: 'card' }, newTeam));

  function row(team, users) {
    const label = `team ${team.name}`;
    const focusKey = (what) => `${what}:${team.name}`;

    // Choose, then apply: moving through the options with the arrow keys changes nothing yet.
    const rightSelect = h('select', { id: rowId('team-right'), 'data-focus': focusKey('right') }, rightOptions());
    rightSelect.value = team.member_right;
    const rightForm = h('form', { class: 'inline-form' },
      hiddenLabel(`Member right of ${label}`, rightSelect), rightSelect,
      h('button', { type: 'submit', class: 'small', text: 'Change', 'aria-label': `Change the member right of ${label}` }));
    rightForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const value = rightSelect.value;
      const done = await attempt(`Could not change the member right of ${label}`,
        () => put(`/teams/${path(team.name)}`, { member_right: value }).then(() => true));
      if (done) showNotice(`Members of ${label} now get ${RIGHT_LABELS[value] || value} on each other’s own lines.`);
      load({ focus: focusKey('right') });
    });

    const byName = new Map(users.map((u) => [u.name, u]));
    const members = team.members.length
      ? h('ul', { class: 'members' }, team.members.map((member) => {
        const remove = h('button', { type: 'button', class: 'small danger', text: 'Remove', 'aria-label': `Remove ${member} from ${label}` });
        remove.addEventListener('click', async () => {
          const done = await attempt(`Could not remove ${member} from ${label}`,
            () => del(`/teams/${path(team.name)}/members/${path(member)}`).then(() => true));
          if (done) showNotice(`${member} removed from ${label}.`);
          load({ focus: [focusKey('add'), focusKey('right')] });
        });
        const known = byName.get(member);
        return h('li', { 'data-member': member }, h('span', { text: known ? userText(known) : member }), remove);
      }))
      : h('p', { class: 'empty', text: 'No members' });

    const candidates = users.filter((u) => u.tenant === team.tenant && !team.members.includes(u.name));
    const addSelect = h('select', { id: rowId('team-add'), 'data-focus': focusKey('add') });
    setOptions(addSelect, candidates.length ? candidates.map((u) => [u.name, userText(u)]) : [['', 'Nobody left to add']]);
    const addButton = h('button', { type: 'submit', class: 'small', text: 'Add', 'aria-label': `Add the chosen user to ${label}` });
    addSelect.disabled = addButton.disabled = candidates.length === 0;
    const addForm = h('form', { class: 'inline-form' }, hiddenLabel(`User to add to ${label}`, addSelect), addSelect, addButton);
    addForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const user = addSelect.value;
      if (!user) return;
      const done = await attempt(`Could not add ${user} to ${label}`,
        () => put(`/teams/${path(team.name)}/members/${path(user)}`).then(() => true));
      if (done) showNotice(`${user} added to ${label}.`);
      load({ focus: [focusKey('add'), focusKey('right')] });
    });

    const remove = h('button', { type: 'button', class: 'small danger', text: 'Delete', 'aria-label': `Delete ${label}` });
    remove.addEventListener('click', async () => {
      if (!await confirmAction('Delete team', `Delete team ${team.name}? Its members lose the right it gave them on each other’s lines.`, 'Delete')) return;
      const done = await attempt(`Could not delete ${label}`, () => del(`/teams/${path(team.name)}`).then(() => true));
      if (done) showNotice(`Team ${team.name} deleted.`);
      load({ focus: 'refresh' });
    });

    return h('tr', { 'data-team': team.name },
      h('th', { scope: 'row', text: team.name }), h('td', { 'data-label': 'Tenant', text: team.tenant }),
      h('td', { 'data-label': 'Member right' }, rightForm), h('td', { 'data-label': 'Members' }, members),
      h('td', { 'data-label': 'Add a member' }, addForm), h('td', {}, remove));
  }

  async function load({ focus = [] } = {}) {
    const [users, teams] = await Promise.all([
      attempt('Could not load the users', () => get('/users')),
      attempt('Could not load the teams', () => get('/teams')),
    ]);
    if (!teams) return;
    teams.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.name.localeCompare(b.name));
    replaceChildren(rows, teams.map((t) => row(t, users || [])));
    empty.hidden = teams.length > 0;
    refocus(panel, focus);
  }

  return { show: () => load(), render() {} };
}

// ---- audit log -------------------------------------------------------------------------

const RESULT_LABELS = { ok: 'OK', denied: 'Denied', failed: 'Failed' };

/** Control commands, allowed or refused, newest first; filtered by line and user on the server. */
export function createAuditLog(panel, ctx) {
  const { store } = ctx;
  const line = h('select', { id: 'audit-line' }, h('option', { value: '', text: 'All lines' }));
  const user = h('input', { id: 'audit-user', type: 'search', list: 'audit-users', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'All users' });
  const userList = h('datalist', { id: 'audit-users' });
  const limit = h('select', { id: 'audit-limit' }, ['50', '100', '500', '1000'].map((n) => h('option', { value: n, text: n })));
  limit.value = '100';
  const count = h('p', { class: 'hint', 'aria-live': 'polite' });
  const rows = h('tbody');
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Line', line), field('User', user), userList, field('Entries at most', limit),
    h('button', { type: 'submit', id: 'audit-refresh', text: 'Refresh' }));
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  line.addEventListener('change', () => load());
  limit.addEventListener('change', () => load());
  user.addEventListener('change', () => load());

  panel.append(
    h('h2', { text: 'Audit log' }),
    h('p', { class: 'hint', text: 'Every call-control command, carried out or refused, newest first. Refused ones are marked “Denied”.' }),
    filters,
    count,
    h('div', { class: 'table-wrap card' }, h('table', { class: 'audit stack-on-phone' },
      h('caption', { class: 'visually-hidden', text: 'Control actions, newest first' }),
      h('thead', {}, h('tr', {}, ['Time', 'User', 'Tenant', 'Action', 'Line', 'Call', 'Result'].map((t) => h('th', { scope: 'col', text: t })))),
      rows)));

  function row(entry) {
    const kind = entry.result === 'ok' ? 'ok' : entry.result.startsWith('denied') ? 'denied' : 'failed';
    const reason = kind === 'denied' ? entry.result.replace(/^denied:?\s*/, '') : kind === 'failed' ? entry.result : '';
    const id = entry.line ?? null;
    const known = id === null ? undefined : store.lines.get(id);
    const lineCell = id === null ? '–' : `#${id}${known ? ` ${lineText(known)}` : ''}`;
    return h('tr', { 'data-result': kind, 'data-user': entry.user, 'data-line': id ?? '', 'data-call': entry.call ?? '' },
      h('td', { 'data-label': 'Time', text: formatDateTime(entry.at) }), h('td', { 'data-label': 'User', text: entry.user }),
      h('td', { 'data-label': 'Tenant', text: entry.tenant ?? '–' }), h('td', { 'data-label': 'Action', text: entry.action }),
      h('td', { 'data-label': 'Line', text: lineCell }), h('td', { 'data-label': 'Call', class: 'num', text: entry.call ?? '–' }),
      h('td', { 'data-label': 'Result', class: 'audit-result' },
        h('span', { class: 'badge', 'data-status': kind, text: RESULT_LABELS[kind] }), reason ? ` ${reason}` : null));
  }

  // Only the answer to the last request counts, however the answers arrive.
  let latest = 0;
  async function load() {
    const query = new URLSearchParams();
    if (line.value) query.set('line', line.value);
    const who = user.value.trim();
    if (who) query.set('user', who);
    query.set('limit', limit.value);
    const mine = ++latest;
    const entries = await attempt('Could not load the audit log', () => get(`/audit?${query}`));
    if (mine !== latest || !entries) return;
    const scope = [line.value && `line #${line.value}`, who && `user ${who}`].filter(Boolean).join(' and ');
    const more = entries.length >= Number(limit.value) ? `; only the last ${limit.value} are shown` : '';
    setText(count, `${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}${scope ? ` for ${scope}` : ''}${more}.`);
    replaceChildren(rows, entries.map(row));
  }

  async function loadUsers() {
    const users = await attempt('Could not load the users', () => get('/users'));
    if (users) replaceChildren(userList, users.map((u) => h('option', { value: u.name, label: u.friendly_name || u.name })));
  }

  return {
    show() {
      loadUsers();
      load();
    },
    render() {
      setOptions(line, [['', 'All lines'], ...store.lineList().map((l) => [l.id, `#${l.id} ${lineText(l)}`])]);
    },
  };
}
