// The console's entry point: login and logout, the session (token in sessionStorage, so it
// ends with the browser tab), the live connection, the views and when they render.
//
// Test hook: `window.tapirConsole` exposes `dropConnection()` (breaks the WebSocket as a
// network failure would, so the reconnect-and-resume path can be tested), `status()`,
// `seq()` and `snapshots()` (how many snapshots arrived; a resume adds none).

import { setToken, get, post, Connection, CONNECTED, RECONNECTING } from './api.js';
import { Store } from './store.js';
import { byId, setText, setupTabs, showError, showNotice, clearMessages } from './ui.js';
import { createOperatorView, createIncomingNotices } from './operator.js';
import { createOverview, createLinesAdmin, createEventLog } from './admin.js';
import { createAccounts, createAssignments, createTeams, createAuditLog } from './accounts.js';

const TOKEN_KEY = 'tapir.token';
const TAB_KEY = 'tapir.tab';
/** A message for the login page that survives the reload which ends a session. */
const NOTICE_KEY = 'tapir.loginNotice';
/** At most this often: many events in a burst make one render. */
const RENDER_INTERVAL_MS = 100;

const store = new Store();
let connection = null;
let me = null;
/** line id → 'control' | 'monitor', from GET /me. */
let rights = new Map();
const views = new Map();
let currentView = 'view-operator';
let notices = null;

function showLogin() {
  byId('login-view').hidden = false;
  byId('app-view').hidden = true;
  byId('session').hidden = true;
  const notice = sessionStorage.getItem(NOTICE_KEY);
  if (notice) {
    sessionStorage.removeItem(NOTICE_KEY);
    showNotice(notice);
  }
  byId('login-user').focus();
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector('button');
  clearMessages();
  button.disabled = true;
  try {
    const answer = await post('/login', { user: form.user.value.trim(), password: form.password.value });
    sessionStorage.setItem(TOKEN_KEY, answer.token);
    form.password.value = '';
    await begin(answer.token);
  } catch (error) {
    showError(error.status === 401 ? 'Wrong user name or password.' : `Cannot log in: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

/**
 * Ends the session: forget the token and reload, which drops every view, timer and socket
 * at once, so nothing of one user's session can leak into the next.
 */
function endSession(message) {
  if (connection) connection.stop();
  sessionStorage.removeItem(TOKEN_KEY);
  if (message) sessionStorage.setItem(NOTICE_KEY, message);
  location.reload();
}

async function logout() {
  try {
    await post('/logout');
  } catch {
    // The token is forgotten here anyway; the server expires it.
  }
  endSession('You are logged out.');
}

/** Starts a session with a token: who am I, then the views and the live connection. */
async function begin(token) {
  setToken(token, () => endSession('Your session has ended; please log in again.'));
  const answer = await get('/me');
  setMe(answer);
  startSession();
}

function setMe(answer) {
  me = answer.user;
  rights = new Map(answer.lines.map((l) => [l.line, l.right]));
}

async function refreshRights() {
  try {
    setMe(await get('/me'));
    scheduleRender();
  } catch {
    // Keep the rights we know; the connection reports trouble on its own.
  }
}

function startSession() {
  const admin = me.role === 'admin';
  byId('login-view').hidden = true;
  byId('app-view').hidden = false;
  byId('session').hidden = false;
  const tenant = me.tenant ?? 'all tenants'; // only administrators of every tenant have none
  setText(byId('whoami'), `${me.friendly_name || me.name} · ${admin ? 'administrator' : 'operator'} · ${tenant}`);

  const ctx = {
    store,
    me,
    rightOf: (line) => rights.get(line) || null,
    connected: () => connection?.state === CONNECTED,
    tokenId: () => Number(/^tapir_(\d+)_/.exec(sessionStorage.getItem(TOKEN_KEY) || '')?.[1]),
    rerender: () => scheduleRender(),
    command: async (fields, what) => {
      try {
        return await connection.command(fields);
      } catch (error) {
        showError(`${what}: ${error.message}`);
        return null;
      }
    },
  };
  views.set('view-operator', createOperatorView(byId('view-operator'), ctx));
  notices = createIncomingNotices(byId('incoming'), ctx);
  // Non-administrators never get the administration views; the server refuses them anyway.
  for (const tab of document.querySelectorAll('[data-admin]')) tab.hidden = !admin;
  if (admin) {
    views.set('view-overview', createOverview(byId('view-overview'), ctx));
    views.set('view-lines', createLinesAdmin(byId('view-lines'), ctx));
    views.set('view-accounts', createAccounts(byId('view-accounts'), ctx));
    views.set('view-assignments', createAssignments(byId('view-assignments'), ctx));
    views.set('view-teams', createTeams(byId('view-teams'), ctx));
    views.set('view-events', createEventLog(byId('view-events'), ctx));
    views.set('view-audit', createAuditLog(byId('view-audit'), ctx));
  }
  const tabs = setupTabs(byId('tabs'), (id) => {
    currentView = id;
    sessionStorage.setItem(TAB_KEY, id);
    views.get(id)?.show?.();
    render();
  });
  tabs.select(sessionStorage.getItem(TAB_KEY) || 'view-operator');

  connection = new Connection({
    onMessage: (message) => {
      store.apply(message);
      // A snapshot also comes when my rights changed: learn them again.
      if (message.type === 'snapshot') refreshRights();
    },
    onStatus: showConnection,
    lastSeq: () => ({ since: store.seq, epoch: store.epoch }),
  });
  store.subscribe(scheduleRender);
  connection.start();
  setInterval(tick, 1000);

  window.tapirConsole = {
    dropConnection: () => connection.drop(),
    status: () => connection.state,
    seq: () => store.seq,
    snapshots: () => store.snapshots,
  };
}

function showConnection(state, detail) {
  scheduleRender(); // actions are offered only while connected
  const el = byId('connection');
  el.dataset.state = state;
  let text = 'Offline';
  if (state === CONNECTED) text = 'Connected';
  else if (state === RECONNECTING) text = detail === 'connecting' ? 'Connecting…' : 'Reconnecting…';
  if (detail && detail !== 'connecting') text += ` (${detail})`;
  setText(byId('connection-text'), text);
}

let renderTimer = null;
let lastRender = 0;

function scheduleRender() {
  if (renderTimer) return;
  const wait = Math.max(0, lastRender + RENDER_INTERVAL_MS - Date.now());
  renderTimer = setTimeout(render, wait);
}

/** Renders what is visible: the current view and the incoming-call notices. */
function render() {
  clearTimeout(renderTimer);
  renderTimer = null;
  lastRender = Date.now();
  notices?.render();
  views.get(currentView)?.render();
}

function tick() {
  const view = views.get(currentView);
  if (view?.tick) view.tick();
  else if (currentView === 'view-overview') view.render(); // events per minute, "since" ages
}

function boot() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin();
    return;
  }
  begin(token).catch((error) => {
    if (error.status === 401) return; // request() already ended the session
    // The server is unreachable for now: keep the session and try again.
    showError(`Cannot start the console: ${error.message} Trying again…`);
    setTimeout(() => { clearMessages(); boot(); }, 3000);
  });
}

byId('login-form').addEventListener('submit', login);
byId('logout').addEventListener('click', logout);
boot();
