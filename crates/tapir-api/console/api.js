// The server: REST requests with the bearer token, and the WebSocket connection that
// subscribes, reconnects with backoff and resumes from the last sequence number seen.
// Protocol: docs/API.md.

const API = '/api/v1';

/** An error as the server describes it: `code` is its stable name (`invalid_call_state`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let token = null;
let onUnauthenticated = () => {};

/** Sets the token every request carries, and what to do when the server no longer accepts it. */
export function setToken(value, whenRejected) {
  token = value;
  if (whenRejected) onUnauthenticated = whenRejected;
}

/**
 * One REST request. `json` is sent as JSON; `body` as is (with `contentType`). Answers the
 * parsed JSON, the text for other content types, or null for 204. Throws ApiError.
 */
export async function request(method, path, { json, body, contentType } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (contentType) {
    headers['Content-Type'] = contentType;
  }
  let response;
  try {
    response = await fetch(API + path, { method, headers, body, cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the tapir server; check the network.');
  }
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  const payload = type.includes('json') ? await response.json().catch(() => null) : await response.text();
  if (response.ok) return payload;
  const error = payload && typeof payload === 'object' ? payload : {};
  const failure = new ApiError(response.status, error.error || `http_${response.status}`,
    error.message || `The server answered ${response.status} ${response.statusText}.`);
  // A rejected login is a wrong password, not an expired session.
  if (response.status === 401 && path !== '/login') onUnauthenticated(failure);
  throw failure;
}

export const get = (path) => request('GET', path);
export const post = (path, json) => request('POST', path, { json });
export const put = (path, json) => request('PUT', path, { json });
export const del = (path) => request('DELETE', path);

/** Connection states shown by the indicator. */
export const CONNECTED = 'connected';
export const RECONNECTING = 'reconnecting';
export const OFFLINE = 'offline';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 15000;
/** The server gives up on a PBX after its command timeout (10 s by default); wait a bit longer. */
const COMMAND_TIMEOUT_MS = 20000;
// How often the console checks that the connection is alive, and how long it waits.
const PING_INTERVAL_MS = 20000;
const PONG_TIMEOUT_MS = 10000;

/**
 * The live connection. `onMessage(msg)` gets every snapshot and event; `onStatus(state, detail)`
 * every change of the connection; `lastSeq()` says where to resume after a drop (`since` and
 * the server run's `epoch`).
 */
export class Connection {
  constructor({ onMessage, onStatus, lastSeq }) {
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.lastSeq = lastSeq;
    this.socket = null;
    this.stopped = false;
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.pending = new Map();
    this.nextId = 1;
    this.state = OFFLINE;
    // The browser knows when the network goes away; retry at once when it comes back.
    this.onOnline = () => this.retryNow();
    this.onOffline = () => {
      if (!this.socket) this.setState(OFFLINE, 'no network');
    };
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  start() {
    this.stopped = false;
    this.setState(RECONNECTING, 'connecting');
    this.open();
  }

  /** Closes for good (logout). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    if (this.socket) this.socket.close(1000, 'logout');
    this.socket = null;
    this.failPending('The console was closed.');
    this.setState(OFFLINE);
  }

  /** Breaks the socket as a network failure would (used by the browser tests). */
  drop() {
    if (this.socket) this.socket.close(4000, 'dropped on purpose');
  }

  setState(state, detail = '') {
    this.state = state;
    this.onStatus(state, detail);
  }

  async open() {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.socket || this.opening) return;
    // A WebSocket that cannot open tells the page nothing about why. Asking /me first tells
    // an expired session (401: back to the login) from a server that cannot be reached.
    this.opening = true;
    try {
      await get('/me');
    } catch (error) {
      if (error.status !== 401) this.scheduleRetry(); // on 401 request() ended the session
      return;
    } finally {
      this.opening = false;
    }
    if (this.stopped || this.socket) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}${API}/ws?access_token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener('open', () => {
      const { since, epoch } = this.lastSeq();
      // Resume where we were: the server replays what we missed, or sends a fresh snapshot
      // (also when it restarted since: then the epoch differs).
      socket.send(JSON.stringify(since === null ? { type: 'subscribe' } : { type: 'subscribe', since, epoch }));
      this.retryMs = FIRST_RETRY_MS;
      this.setState(CONNECTED);
    });
    socket.addEventListener('message', (e) => this.receive(e.data));
    this.startHeartbeat(socket);
    socket.addEventListener('close', () => {
      clearInterval(this.heartbeat);
      clearTimeout(this.pongTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.failPending('The connection was lost before the server answered; check the call before trying again.');
      if (!this.stopped) this.scheduleRetry();
    });
  }

  /**
   * Browsers hide WebSocket pings, so a dead connection (a sleeping laptop, a lost NAT entry)
   * would go unnoticed: ask the server for a pong now and then, and drop a silent socket.
   */
  startHeartbeat(socket) {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: 'ping' }));
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => socket.close(4001, 'no pong'), PONG_TIMEOUT_MS);
    }, PING_INTERVAL_MS);
  }

  scheduleRetry() {
    if (this.stopped) return;
    const delay = this.retryMs;
    // Exponential backoff with jitter, so many consoles do not return at the same instant.
    this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
    const wait = Math.round(delay * (0.75 + Math.random() * 0.5));
    if (navigator.onLine === false) this.setState(OFFLINE, 'no network');
    else this.setState(RECONNECTING, `retrying in ${Math.max(1, Math.round(wait / 1000))} s`);
    this.retryTimer = setTimeout(() => this.open(), wait);
  }

  retryNow() {
    if (this.stopped || this.socket || this.opening) return;
    this.retryMs = FIRST_RETRY_MS;
    this.open();
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === 'pong') {
      clearTimeout(this.pongTimer);
      return;
    }
    if (message.type === 'result') {
      const waiting = this.pending.get(String(message.id));
      if (!waiting) return;
      this.pending.delete(String(message.id));
      clearTimeout(waiting.timer);
      if (message.ok) waiting.resolve(message);
      else {
        const e = message.error || {};
        waiting.reject(new ApiError(0, e.error || 'error', e.message || 'The command failed.'));
      }
      return;
    }
    if (message.type === 'error' && message.error?.error === 'unauthenticated') {
      // The token was revoked or expired: the server closes the session after this.
      this.stopped = true;
      onUnauthenticated(new ApiError(401, 'unauthenticated', message.error.message));
      return;
    }
    this.onMessage(message);
  }

  /** Sends a command (`{command: 'hold', call: 3}`); answers the result or throws ApiError. */
  command(fields) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError(0, 'offline', 'Not connected to the server; try again when the indicator shows Connected.'));
    }
    const id = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError(0, 'timeout', 'The server did not answer in time; the outcome is unknown.'));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ type: 'command', id, ...fields }));
    });
  }

  failPending(message) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new ApiError(0, 'connection_lost', message));
    }
    this.pending.clear();
  }
}
