// What the console knows: instances, lines and calls from the WebSocket's snapshot and events,
// the recent events for the log, and the sequence number to resume from. The server's
// snapshot replaces everything; each event carries the full picture of its line or call.

const LOG_SIZE = 500;
const MINUTE_MS = 60000;

export class Store {
  constructor() {
    this.listeners = new Set();
    this.reset();
    /** The last ~500 events, oldest first, kept across snapshots. */
    this.log = [];
    /** Arrival times of recent events, for "events per minute". */
    this.arrivals = [];
    this.logged = 0;
    this.snapshots = 0;
    /** Server clock minus browser clock, so call durations do not depend on a skewed PC clock. */
    this.clockOffset = 0;
    this.clockSamples = [];
  }

  reset() {
    this.seq = null;
    /** The server run the sequence numbers belong to. */
    this.epoch = null;
    this.instances = new Map();
    this.lines = new Map();
    this.calls = new Map();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed(kind) {
    for (const listener of this.listeners) listener(kind);
  }

  /** The server's time now: the browser's clock corrected by what events said (noteClock). */
  now() {
    return Date.now() + this.clockOffset;
  }

  /** Applies one server message (snapshot or event). */
  apply(message) {
    if (message.type === 'snapshot') this.applySnapshot(message);
    else if (message.type === 'event') this.applyEvent(message);
  }

  applySnapshot(snapshot) {
    this.reset();
    this.seq = snapshot.seq;
    this.epoch = snapshot.epoch;
    for (const instance of snapshot.instances) this.instances.set(instance.name, instance);
    for (const line of snapshot.lines) this.lines.set(line.id, line);
    for (const call of snapshot.calls) this.calls.set(call.id, call);
    this.snapshots += 1;
    this.record({ seq: snapshot.seq, at: Date.now(), event: 'snapshot', text: `${snapshot.lines.length} lines, ${snapshot.calls.length} calls` });
    this.changed('snapshot');
  }

  applyEvent(event) {
    // A replay after a reconnect may repeat what we already have.
    if (this.seq !== null && event.seq <= this.seq) return;
    this.seq = event.seq;
    this.noteClock(event.at);
    switch (event.event) {
      case 'line_created':
      case 'line_changed':
        this.lines.set(event.line.id, event.line);
        break;
      case 'line_removed': {
        // The PBX lost the device: the line stays, defunct, until purged.
        const line = this.lines.get(event.line);
        if (line) this.lines.set(line.id, { ...line, status: 'defunct' });
        break;
      }
      case 'line_purged':
        this.lines.delete(event.line);
        for (const call of this.calls.values()) if (call.line === event.line) this.calls.delete(call.id);
        break;
      case 'call_new':
      case 'call_state':
      case 'call_info':
      case 'call_features':
        // idle is the last event about a call.
        if (event.call.state === 'idle') this.calls.delete(event.call.id);
        else this.calls.set(event.call.id, event.call);
        break;
      case 'instance_changed':
        this.instances.set(event.instance.name, event.instance);
        break;
      default:
        break; // an event kind this console does not know yet: keep going
    }
    this.record(describe(event, this.lines));
    this.countArrival();
    this.changed('event');
  }

  record(entry) {
    this.logged += 1;
    entry.id = this.logged; // a key for the log's rows: sequence numbers can repeat (snapshots)
    this.log.push(entry);
    if (this.log.length > LOG_SIZE) this.log.splice(0, this.log.length - LOG_SIZE);
  }

  /**
   * Learns the server's clock from an event's time. An event is never stamped after it
   * arrives, so the largest recent `at - now` is the best estimate; events replayed after a
   * reconnect are old and must not pull the estimate back (hence the maximum over a minute).
   */
  noteClock(at) {
    // One sample per second (its largest) keeps this cheap at hundreds of events a second.
    const now = Date.now();
    const second = Math.floor(now / 1000);
    const last = this.clockSamples[this.clockSamples.length - 1];
    if (last && last[0] === second) last[1] = Math.max(last[1], at - now);
    else this.clockSamples.push([second, at - now]);
    while (this.clockSamples[0][0] <= second - 60) this.clockSamples.shift();
    this.clockOffset = Math.max(...this.clockSamples.map(([, offset]) => offset));
  }

  countArrival() {
    const now = Date.now();
    this.arrivals.push(now);
    while (this.arrivals.length && this.arrivals[0] < now - MINUTE_MS) this.arrivals.shift();
  }

  eventsPerMinute() {
    const since = Date.now() - MINUTE_MS;
    return this.arrivals.filter((t) => t >= since).length;
  }

  /** Calls sorted by line, then age. */
  callList() {
    return [...this.calls.values()].sort((a, b) => a.line - b.line || a.created_at - b.created_at);
  }

  lineList() {
    return [...this.lines.values()].sort((a, b) => a.id - b.id);
  }
}

/** A log entry: what the event was about, in a line a person reads. */
function describe(event, lines) {
  const entry = { seq: event.seq, at: event.at, event: event.event, instance: null, line: null, call: null, text: '' };
  if (event.call) {
    entry.call = event.call.id;
    entry.line = event.call.line;
    entry.instance = lines.get(event.call.line)?.instance ?? null;
    entry.text = event.call.state + (event.changed ? ` (${event.changed.join(', ')})` : '');
  } else if (typeof event.line === 'object' && event.line) {
    entry.line = event.line.id;
    entry.instance = event.line.instance;
    entry.text = `${event.line.name}: ${event.line.status}`;
  } else if (event.line !== undefined) {
    entry.line = event.line;
    entry.instance = event.instance;
  } else if (event.instance) {
    entry.instance = event.instance.name;
    entry.text = event.instance.status + (event.instance.reason ? `: ${event.instance.reason}` : '');
  }
  return entry;
}
