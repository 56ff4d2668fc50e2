//! The `run` scenario: one command connection places calls at a fixed rate and drops them
//! after the hold time; K clients subscribe and check every event they get.
//!
//! Lines are split in halves: call `i` goes from line `i` of the lower half to line `i` of
//! the upper half, which auto-answers. A pair carries one call at a time.
//!
//! Latencies:
//! - *event latency* (every event, every client): the client's wall clock at receipt minus
//!   the event's `at`. `at` has millisecond resolution and is truncated, so this reads up to
//!   1 ms high (0.5 ms on average).
//! - *first event*, *connected* and *command result* (the command connection only): measured
//!   from the moment the `make_call` command was sent, with a monotonic clock at microsecond
//!   resolution.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tapir_wire::{ClientMessage, CommandDto, EventDto, LineDto, ServerMessage};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::ServerArgs;
use crate::server::{ProcSample, Server, Startup};
use crate::stats::{self, Percentiles, Second};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long the clients may take to connect and receive their snapshots.
const CONNECT_PATIENCE: Duration = Duration::from_secs(120);
/// How long calls may take to finish after the last one was started (beyond the hold time).
const DRAIN_PATIENCE: Duration = Duration::from_secs(10);
/// How long the clients may take to receive the last event after the calls finished.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(15);
/// How many clients connect at the same time.
const CONNECT_BATCH: u32 = 10;
/// How many failure descriptions a report keeps.
const MAX_FAILURE_NOTES: usize = 10;

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub lines: u32,
    pub rate: f64,
    pub hold_ms: u64,
    pub duration_s: u64,
    pub clients: u32,
    pub share: Option<f64>,
    /// How many of the clients subscribe to a share of the lines (the rest to all).
    pub share_clients: u32,
}

/// Counters the call driver publishes while it runs.
#[derive(Default)]
struct Progress {
    started: AtomicU64,
    completed: AtomicU64,
    active: AtomicU64,
}

/// What one client saw.
struct ClientStats {
    /// The lines it subscribed to; `None` for all.
    lines: Option<HashSet<u32>>,
    events: AtomicU64,
    /// Bytes of the event messages received.
    event_bytes: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    /// Snapshots after the first (the server resynchronised a lagging client).
    resnapshots: AtomicU64,
    first_seq: AtomicU64,
    last_seq: AtomicU64,
    /// Latencies since the last per-second report.
    interval: Mutex<Histogram<u64>>,
}

/// The whole report of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub startup: Option<Startup>,
    pub lines_in_service: usize,
    pub clients_connected_ms: f64,
    pub seconds: Vec<Second>,
    pub totals: Totals,
    /// The same stream through a plain loopback TCP relay (`--baseline`).
    pub baseline: Option<crate::relay::RelayReport>,
    /// Event latency of this run divided by the relay's (`as_run` figures): p50, p99.
    pub ratio_to_relay: Option<Ratio>,
    pub notes: Vec<&'static str>,
}

/// How many times slower than the plain relay.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratio {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub calls_started: u64,
    pub calls_completed: u64,
    /// Attempts that found every line pair busy (the rate and hold time need more lines).
    pub calls_skipped_no_free_line: u64,
    pub command_errors: u64,
    /// Calls that missed ringing, connected or idle on either side.
    pub lifecycle_failures: u64,
    /// Calls still up when the run ended.
    pub unfinished_calls: u64,
    pub events_delivered: u64,
    pub events_per_s: f64,
    /// Mean size of an event message (WebSocket payload), bytes.
    pub mean_event_bytes: f64,
    pub event_latency: Percentiles,
    pub make_call_result_latency: Percentiles,
    pub first_event_latency: Percentiles,
    pub connected_latency: Percentiles,
    pub lost: u64,
    pub reordered: u64,
    pub resnapshots: u64,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_mib_max: Option<f64>,
    pub bench_cpu_pct: Option<f64>,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// Runs the scenario and prints the report; `Ok(false)` when events were lost or reordered
/// or calls failed.
pub async fn run(
    plan: Plan,
    args: &ServerArgs,
    tapir: &Path,
    json: bool,
    baseline: bool,
    json_out: Option<&Path>,
) -> Result<bool> {
    let (mut server, startup) = match &args.server {
        Some(url) => (Server::external(url, args.pid, args.token.clone())?, None),
        None => {
            let (server, spawned) = Server::start(tapir, plan.lines, true)?;
            let listening_ms = ms(spawned.elapsed());
            server.wait_lines(plan.lines).await?;
            let all_lines_ms = ms(spawned.elapsed());
            let startup = Startup {
                listening_ms,
                all_lines_ms,
            };
            (server, Some(startup))
        }
    };
    if args.server.is_some() {
        server.wait_lines(plan.lines).await?;
    }
    if let (Some(startup), false) = (startup, json) {
        println!(
            "server up: listening after {:.0} ms, {} lines in service after {:.0} ms",
            startup.listening_ms, plan.lines, startup.all_lines_ms
        );
    }

    // The command connection: it also subscribes to everything, to follow each call.
    let (mut driver_socket, _) = connect(&server.ws_url())
        .await
        .context("cannot open the command WebSocket")?;
    send(&mut driver_socket, &subscribe(None)).await?;
    let snapshot = loop {
        match next_message(&mut driver_socket).await? {
            ServerMessage::Snapshot(snapshot) => break snapshot,
            _ => continue,
        }
    };
    let mut lines: Vec<LineDto> = snapshot.lines;
    lines.sort_by_key(|l| (l.address.len(), l.address.clone()));
    if lines.len() < plan.lines as usize {
        bail!(
            "the server has {} lines, the plan needs {}",
            lines.len(),
            plan.lines
        );
    }
    lines.truncate(plan.lines as usize);
    let lines_in_service = lines.iter().filter(|l| l.status == "in_service").count();

    // The subscribed clients.
    let connecting = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    let ids: Vec<u32> = lines.iter().map(|l| l.id).collect();
    let (ready_tx, mut ready_rx) =
        tokio::sync::mpsc::channel::<Result<()>>(plan.clients as usize + 1);
    let mut waited = 0;
    for k in 0..plan.clients {
        let share = (k < plan.share_clients).then_some(plan.share).flatten();
        let subset = share.map(|f| window(&ids, k, plan.clients, f));
        let stats = Arc::new(ClientStats {
            lines: subset.as_ref().map(|s| s.iter().copied().collect()),
            events: AtomicU64::new(0),
            event_bytes: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            resnapshots: AtomicU64::new(0),
            first_seq: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            interval: Mutex::new(stats::histogram()),
        });
        clients.push(stats.clone());
        tasks.push(tokio::spawn(client(
            server.ws_url(),
            subset,
            stats,
            ready_tx.clone(),
            stop_rx.clone(),
        )));
        // Connect in batches: a burst of upgrades with large snapshots is not the subject.
        if (k + 1) % CONNECT_BATCH == 0 {
            while waited < k + 1 {
                wait_ready(&mut ready_rx).await?;
                waited += 1;
            }
        }
    }
    drop(ready_tx);
    while waited < plan.clients {
        wait_ready(&mut ready_rx).await?;
        waited += 1;
    }
    let clients_connected_ms = ms(connecting.elapsed());
    if !json {
        println!(
            "{} clients subscribed in {clients_connected_ms:.0} ms; {} lines ({} in service), \
             {} calls/s, hold {} ms, {} s",
            plan.clients, plan.lines, lines_in_service, plan.rate, plan.hold_ms, plan.duration_s
        );
        println!("{}", Second::HEADER);
    }

    // The calls, with a report every second.
    let progress = Arc::new(Progress::default());
    let driver = Driver::new(&lines, &plan, snapshot.seq);
    let driver_task = tokio::spawn(driver.run(driver_socket, progress.clone()));
    let mut total = stats::histogram();
    let mut seconds = Vec::new();
    let run_start = Instant::now();
    let first_sample = server.sample();
    let bench_first = ProcSample::read(std::process::id());
    let mut last_sample = first_sample;
    let mut last_events = 0;
    let mut rss_max: Option<u64> = None;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let limit =
        Duration::from_secs(plan.duration_s) + Duration::from_millis(plan.hold_ms) + DRAIN_PATIENCE;
    while !driver_task.is_finished() && run_start.elapsed() < limit + Duration::from_secs(2) {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
        }
        let mut interval = stats::histogram();
        drain(&clients, &mut interval, &mut total);
        let events: u64 = clients
            .iter()
            .map(|c| c.events.load(Ordering::Relaxed))
            .sum();
        let sample = server.sample();
        let cpu = match (last_sample, sample) {
            (Some(a), Some(b)) => Some((b.cpu_s - a.cpu_s) * 100.0),
            _ => None,
        };
        if let Some(s) = sample {
            rss_max = Some(rss_max.unwrap_or(0).max(s.rss_kib));
        }
        last_sample = sample;
        let second = Second {
            t_s: run_start.elapsed().as_secs_f64().round() as u64,
            calls_started: progress.started.load(Ordering::Relaxed),
            calls_completed: progress.completed.load(Ordering::Relaxed),
            active_calls: progress.active.load(Ordering::Relaxed),
            events_delivered: events - last_events,
            event_latency: Percentiles::of(&interval),
            lost: clients.iter().map(|c| c.lost.load(Ordering::Relaxed)).sum(),
            reordered: clients
                .iter()
                .map(|c| c.reordered.load(Ordering::Relaxed))
                .sum(),
            server_cpu_pct: cpu,
            server_rss_mib: sample.map(|s| s.rss_kib as f64 / 1024.0),
        };
        last_events = events;
        if !json {
            println!("{}", second.row());
        }
        seconds.push(second);
    }
    let calls_elapsed = run_start.elapsed();
    let outcome = driver_task.await.context("the call driver panicked")??;

    // Let every client reach the last event, then stop them.
    let expected = expected_counts(&clients, &outcome.log, outcome.last_seq);
    let stream_events = outcome.log.len() as u64;
    let catch_up = Instant::now() + CATCH_UP_PATIENCE;
    loop {
        let behind = clients.iter().zip(&expected).any(|(c, want)| match want {
            None => c.last_seq.load(Ordering::Relaxed) < outcome.last_seq,
            Some(n) => c.events.load(Ordering::Relaxed) < *n,
        });
        if !behind || Instant::now() > catch_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut failures = outcome.failures;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => note(&mut failures, format!("a client failed: {e:#}")),
            Ok(Err(e)) => note(&mut failures, format!("a client panicked: {e}")),
            Err(_) => note(&mut failures, "a client did not stop".into()),
        }
    }
    drain(&clients, &mut stats::histogram(), &mut total);
    let end_sample = server.sample();
    let bench_end = ProcSample::read(std::process::id());
    server.stop();

    let mut totals = Totals {
        calls_started: outcome.started,
        calls_completed: outcome.completed,
        calls_skipped_no_free_line: outcome.skipped,
        command_errors: outcome.command_errors,
        lifecycle_failures: outcome.lifecycle_failures,
        unfinished_calls: outcome.unfinished,
        events_delivered: clients
            .iter()
            .map(|c| c.events.load(Ordering::Relaxed))
            .sum(),
        event_latency: Percentiles::of(&total),
        make_call_result_latency: Percentiles::of(&outcome.result_latency),
        first_event_latency: Percentiles::of(&outcome.first_event_latency),
        connected_latency: Percentiles::of(&outcome.connected_latency),
        lost: outcome.lost
            + clients
                .iter()
                .map(|c| c.lost.load(Ordering::Relaxed))
                .sum::<u64>(),
        reordered: outcome.reordered
            + clients
                .iter()
                .map(|c| c.reordered.load(Ordering::Relaxed))
                .sum::<u64>(),
        resnapshots: clients
            .iter()
            .map(|c| c.resnapshots.load(Ordering::Relaxed))
            .sum(),
        server_rss_mib_max: rss_max.map(|k| k as f64 / 1024.0),
        ..Totals::default()
    };
    let event_bytes: u64 = clients
        .iter()
        .map(|c| c.event_bytes.load(Ordering::Relaxed))
        .sum();
    totals.mean_event_bytes = event_bytes as f64 / totals.events_delivered.max(1) as f64;
    totals.events_per_s = totals.events_delivered as f64 / calls_elapsed.as_secs_f64().max(0.001);
    let secs = calls_elapsed.as_secs_f64().max(0.001);
    if let (Some(a), Some(b)) = (first_sample, end_sample) {
        totals.server_cpu_pct = Some((b.cpu_s - a.cpu_s) * 100.0 / secs);
    }
    if let (Some(a), Some(b)) = (bench_first, bench_end) {
        totals.bench_cpu_pct = Some((b.cpu_s - a.cpu_s) * 100.0 / secs);
    }
    // Events a share client should have had but did not get.
    for (c, want) in clients.iter().zip(&expected) {
        if let Some(n) = want {
            let got = c.events.load(Ordering::Relaxed);
            if got < *n {
                totals.lost += n - got;
            }
        }
    }
    for (what, count) in [
        ("lost events", totals.lost),
        ("reordered events", totals.reordered),
        ("snapshots after falling behind", totals.resnapshots),
        (
            "calls with an incomplete lifecycle",
            totals.lifecycle_failures,
        ),
        ("calls not finished", totals.unfinished_calls),
        ("failed commands", totals.command_errors),
    ] {
        if count > 0 {
            failures.insert(0, format!("{count} {what}"));
        }
    }
    if totals.calls_completed == 0 {
        failures.push("no call completed".into());
    }
    totals.passed = failures.is_empty();
    totals.failures = failures;
    let baseline = if baseline && stream_events > 0 {
        let shape = crate::relay::Shape {
            // The command connection receives every event too.
            clients: plan.clients + 1,
            messages_per_s: stream_events as f64 / secs,
            msg_bytes: (totals.mean_event_bytes.round() as usize)
                .clamp(crate::relay::MIN_FRAME, crate::relay::MAX_FRAME),
            duration_s: secs.round().max(1.0) as u64,
        };
        Some(crate::relay::measure(shape).await?)
    } else {
        None
    };
    let ratio_to_relay = baseline.as_ref().map(|b| {
        let r = |run: f64, relay: f64| run / relay.max(0.001);
        Ratio {
            p50: r(totals.event_latency.p50_ms, b.latency_as_run.p50_ms),
            p99: r(totals.event_latency.p99_ms, b.latency_as_run.p99_ms),
            p999: r(totals.event_latency.p999_ms, b.latency_as_run.p999_ms),
        }
    });
    let report = Report {
        plan,
        startup,
        lines_in_service,
        clients_connected_ms,
        seconds,
        totals,
        baseline,
        ratio_to_relay,
        notes: vec![
            "event_latency: client receipt (wall clock) minus the event's `at` (ms resolution, \
             truncated): reads up to 1 ms high",
            "first_event/connected/make_call_result latency: from sending make_call, monotonic \
             clock, on the command connection",
            "server and load tool share the machine's cores",
        ],
    };
    print_report(&report, json)?;
    if let Some(path) = json_out {
        append_json(path, &report)?;
    }
    Ok(report.totals.passed)
}

/// Appends one report as a line of JSON to `path` (the `plot` input).
pub fn append_json(path: &Path, report: &impl Serialize) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let text = serde_json::to_string(report)?;
    writeln!(file, "{text}").with_context(|| format!("cannot write {}", path.display()))
}

/// Waits for one client to have its snapshot.
async fn wait_ready(ready: &mut tokio::sync::mpsc::Receiver<Result<()>>) -> Result<()> {
    match tokio::time::timeout(CONNECT_PATIENCE, ready.recv()).await {
        Ok(Some(Ok(()))) => Ok(()),
        Ok(Some(Err(e))) => Err(e.context("a client could not subscribe")),
        Ok(None) => bail!("the clients stopped before subscribing"),
        Err(_) => bail!("the clients did not subscribe within {CONNECT_PATIENCE:?}"),
    }
}

/// Lines `[k/K .. k/K + share)` of `ids`, wrapping around.
fn window(ids: &[u32], k: u32, clients: u32, share: f64) -> Vec<u32> {
    let n = ids.len();
    let count = ((n as f64 * share).ceil() as usize).clamp(1, n);
    let start = (k as usize * n) / clients.max(1) as usize;
    (0..count).map(|i| ids[(start + i) % n]).collect()
}

/// Moves every client's latencies of the last interval into `interval` and `total`.
fn drain(clients: &[Arc<ClientStats>], interval: &mut Histogram<u64>, total: &mut Histogram<u64>) {
    for c in clients {
        let Ok(mut h) = c.interval.lock() else {
            continue;
        };
        let _ = interval.add(&*h);
        let _ = total.add(&*h);
        h.reset();
    }
}

/// For each share client, how many events it should have received: those about its lines
/// (and instance events) after its snapshot, up to `last_seq`. `None` for full clients,
/// which are checked by sequence number.
fn expected_counts(
    clients: &[Arc<ClientStats>],
    log: &[(u64, Option<u32>)],
    last_seq: u64,
) -> Vec<Option<u64>> {
    clients
        .iter()
        .map(|c| {
            let lines = c.lines.as_ref()?;
            let first = c.first_seq.load(Ordering::Relaxed);
            let n = log
                .iter()
                .filter(|(seq, line)| {
                    *seq > first && *seq <= last_seq && line.is_none_or(|l| lines.contains(&l))
                })
                .count();
            Some(n as u64)
        })
        .collect()
}

fn note(failures: &mut Vec<String>, text: String) {
    if failures.len() < MAX_FAILURE_NOTES {
        failures.push(text);
    }
}

fn print_report(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let t = &report.totals;
    println!();
    println!("calls started          {}", t.calls_started);
    println!("calls completed        {}", t.calls_completed);
    println!(
        "calls skipped          {} (no free line pair)",
        t.calls_skipped_no_free_line
    );
    println!(
        "events delivered       {} ({:.0}/s over {} clients)",
        t.events_delivered, t.events_per_s, report.plan.clients
    );
    println!("latency ms             p50/p99/p99.9/max");
    println!("  event (from `at`)    {}", t.event_latency.cell());
    println!(
        "  make_call result     {}",
        t.make_call_result_latency.cell()
    );
    println!("  first event of call  {}", t.first_event_latency.cell());
    println!("  call connected       {}", t.connected_latency.cell());
    println!("lost / reordered       {} / {}", t.lost, t.reordered);
    println!("resnapshots            {}", t.resnapshots);
    println!(
        "server cpu             {}% of one core (avg), rss max {} MiB; load tool cpu {}%",
        stats::opt(t.server_cpu_pct, 0),
        stats::opt(t.server_rss_mib_max, 1),
        stats::opt(t.bench_cpu_pct, 0)
    );
    println!("mean event message     {:.0} bytes", t.mean_event_bytes);
    if let (Some(b), Some(r)) = (&report.baseline, &report.ratio_to_relay) {
        println!(
            "relay baseline         {} ms ({} readers, {:.0} msg/s of {} B; lost {}, reordered {})",
            b.latency_as_run.cell(),
            b.shape.clients,
            b.shape.messages_per_s,
            b.shape.msg_bytes,
            b.lost,
            b.reordered
        );
        println!("  exact (µs clock)     {} ms", b.latency_exact.cell());
        println!(
            "ratio to relay         p50 {:.1}x, p99 {:.1}x, p99.9 {:.1}x",
            r.p50, r.p99, r.p999
        );
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    if t.passed {
        println!("PASS");
    } else {
        println!("FAIL: {}", t.failures.join("; "));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Opens a WebSocket with Nagle's algorithm off: small commands go out at once.
pub async fn connect(
    url: &str,
) -> Result<
    (
        Socket,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    // tungstenite zero-fills its whole read chunk before every read attempt (128 KiB by
    // default), which made the tool, not the server, the bottleneck with many clients.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK_BYTES);
    tokio_tungstenite::connect_async_with_config(url, Some(config), true).await
}

/// How much one socket read of a client asks for.
const READ_CHUNK_BYTES: usize = 16 * 1024;

pub fn subscribe(lines: Option<Vec<u32>>) -> ClientMessage {
    ClientMessage::Subscribe {
        since: None,
        epoch: None,
        lines,
    }
}

pub async fn send(socket: &mut Socket, message: &ClientMessage) -> Result<()> {
    let text = serde_json::to_string(message)?;
    socket
        .send(Message::Text(text.into()))
        .await
        .context("WebSocket send failed")
}

/// The next server message, typed; fails on close or when nothing comes for a minute.
async fn next_message(socket: &mut Socket) -> Result<ServerMessage> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .context("no WebSocket message for 60 s")?
            .context("the server closed the WebSocket")?
            .context("WebSocket error")?;
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str())
                .with_context(|| format!("unreadable server message {}", text.as_str()));
        }
    }
}

/// The fields a client checks in every message; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    at: Option<u64>,
}

/// A subscribed client: checks sequence numbers and records latencies until stopped.
async fn client(
    url: String,
    lines: Option<Vec<u32>>,
    stats: Arc<ClientStats>,
    ready: tokio::sync::mpsc::Sender<Result<()>>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let full = lines.is_none();
    let connected = connect(&url).await;
    let mut socket = match connected {
        Ok((socket, _)) => socket,
        Err(e) => {
            let _ = ready
                .send(Err(anyhow::anyhow!("cannot connect to {url}: {e}")))
                .await;
            return Ok(());
        }
    };
    if let Err(e) = send(&mut socket, &subscribe(lines)).await {
        let _ = ready.send(Err(e)).await;
        return Ok(());
    }
    let mut last: Option<u64> = None;
    loop {
        let message = tokio::select! {
            m = socket.next() => m,
            _ = stop.changed() => break,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => bail!("the server closed the WebSocket"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("WebSocket error: {e}"),
        };
        let received = now_us();
        let head: Head = serde_json::from_str(text.as_str())
            .with_context(|| format!("unreadable server message {}", text.as_str()))?;
        match (head.kind, head.seq) {
            ("snapshot", Some(seq)) => {
                if last.is_none() {
                    stats.first_seq.store(seq, Ordering::Relaxed);
                    let _ = ready.send(Ok(())).await;
                } else {
                    stats.resnapshots.fetch_add(1, Ordering::Relaxed);
                }
                last = Some(seq);
                stats.last_seq.store(seq, Ordering::Relaxed);
            }
            ("event", Some(seq)) => {
                let Some(previous) = last else {
                    bail!("an event came before the snapshot");
                };
                if seq <= previous {
                    stats.reordered.fetch_add(1, Ordering::Relaxed);
                } else {
                    if full && seq > previous + 1 {
                        stats.lost.fetch_add(seq - previous - 1, Ordering::Relaxed);
                    }
                    last = Some(seq);
                    stats.last_seq.store(seq, Ordering::Relaxed);
                }
                stats.events.fetch_add(1, Ordering::Relaxed);
                stats
                    .event_bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                if let Some(at) = head.at
                    && let Ok(mut h) = stats.interval.lock()
                {
                    stats::record(&mut h, received.saturating_sub(at * 1000));
                }
            }
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}

/// One caller line and its auto-answering callee.
struct Pair {
    caller: u32,
    callee: u32,
    callee_address: String,
}

/// The call a pair carries now.
struct Active {
    sent: Instant,
    caller_call: Option<u64>,
    callee_call: Option<u64>,
    first_event: bool,
    ringing: bool,
    caller_connected: bool,
    callee_connected: bool,
    caller_idle: bool,
    callee_idle: bool,
}

/// What the driver found.
struct Outcome {
    started: u64,
    completed: u64,
    skipped: u64,
    command_errors: u64,
    lifecycle_failures: u64,
    unfinished: u64,
    lost: u64,
    reordered: u64,
    last_seq: u64,
    /// Every event seen: its sequence number and line.
    log: Vec<(u64, Option<u32>)>,
    result_latency: Histogram<u64>,
    first_event_latency: Histogram<u64>,
    connected_latency: Histogram<u64>,
    failures: Vec<String>,
}

/// Places and drops the calls, and follows each through its states.
struct Driver {
    rate: f64,
    hold: Duration,
    duration: Duration,
    pairs: Vec<Pair>,
    slots: Vec<Option<Active>>,
    free: VecDeque<usize>,
    by_call: HashMap<u64, usize>,
    by_callee_line: HashMap<u32, usize>,
    /// Caller line → pair: under load a call's first events may come before the result of
    /// its `make_call`, and are then attributed by line (a pair carries one call at a time).
    by_caller_line: HashMap<u32, usize>,
    drops: VecDeque<(Instant, usize)>,
    out: Outcome,
}

impl Driver {
    fn new(lines: &[LineDto], plan: &Plan, seq: u64) -> Driver {
        let half = lines.len() / 2;
        let pairs: Vec<Pair> = (0..half)
            .map(|i| Pair {
                caller: lines[i].id,
                callee: lines[half + i].id,
                callee_address: lines[half + i].address.clone(),
            })
            .collect();
        let pairs_callers = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.caller, i))
            .collect();
        let by_callee_line = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.callee, i))
            .collect();
        Driver {
            rate: plan.rate,
            hold: Duration::from_millis(plan.hold_ms),
            duration: Duration::from_secs(plan.duration_s),
            slots: (0..pairs.len()).map(|_| None).collect(),
            free: (0..pairs.len()).collect(),
            pairs,
            by_call: HashMap::new(),
            by_callee_line,
            by_caller_line: pairs_callers,
            drops: VecDeque::new(),
            out: Outcome {
                started: 0,
                completed: 0,
                skipped: 0,
                command_errors: 0,
                lifecycle_failures: 0,
                unfinished: 0,
                lost: 0,
                reordered: 0,
                last_seq: seq,
                log: Vec::new(),
                result_latency: stats::histogram(),
                first_event_latency: stats::histogram(),
                connected_latency: stats::histogram(),
                failures: Vec::new(),
            },
        }
    }

    async fn run(mut self, socket: Socket, progress: Arc<Progress>) -> Result<Outcome> {
        let (mut sink, mut stream) = socket.split();
        let start = Instant::now();
        let stop_starting = start + self.duration;
        let give_up = stop_starting + self.hold + DRAIN_PATIENCE;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut scheduled: u64 = 0;
        loop {
            let now = Instant::now();
            let active = self.slots.len() - self.free.len();
            progress.active.store(active as u64, Ordering::Relaxed);
            if (now >= stop_starting && active == 0) || now >= give_up {
                self.out.unfinished = active as u64;
                for (p, slot) in self.slots.iter().enumerate() {
                    if let Some(a) = slot {
                        note(
                            &mut self.out.failures,
                            format!(
                                "unfinished call from line {}: caller call {:?} (connected {}, idle {}), \
                             callee call {:?} (connected {}, idle {})",
                                self.pairs[p].caller,
                                a.caller_call,
                                a.caller_connected,
                                a.caller_idle,
                                a.callee_call,
                                a.callee_connected,
                                a.callee_idle
                            ),
                        );
                    }
                }
                break;
            }
            let next_drop = self
                .drops
                .front()
                .map(|d| tokio::time::Instant::from_std(d.0));
            tokio::select! {
                message = stream.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => bail!("command WebSocket error: {e}"),
                        None => bail!("the server closed the command WebSocket"),
                    };
                    let message: ServerMessage = serde_json::from_str(text.as_str())
                        .with_context(|| format!("unreadable server message {}", text.as_str()))?;
                    self.handle(message, &progress);
                }
                _ = tick.tick(), if now < stop_starting => {
                    let due = (start.elapsed().as_secs_f64() * self.rate) as u64;
                    let mut sent = false;
                    while scheduled < due {
                        scheduled += 1;
                        let Some(p) = self.free.pop_front() else {
                            self.out.skipped += 1;
                            continue;
                        };
                        let command = CommandDto::MakeCall {
                            line: self.pairs[p].caller,
                            to: self.pairs[p].callee_address.clone(),
                        };
                        let text = serde_json::to_string(&ClientMessage::Command {
                            id: format!("m{p}"),
                            command,
                        })?;
                        self.slots[p] = Some(Active {
                            sent: Instant::now(),
                            caller_call: None,
                            callee_call: None,
                            first_event: false,
                            ringing: false,
                            caller_connected: false,
                            callee_connected: false,
                            caller_idle: false,
                            callee_idle: false,
                        });
                        sink.feed(Message::Text(text.into())).await.context("WebSocket send failed")?;
                        self.out.started += 1;
                        sent = true;
                    }
                    if sent {
                        sink.flush().await.context("WebSocket send failed")?;
                        progress.started.store(self.out.started, Ordering::Relaxed);
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(give_up)) => {}
                _ = tokio::time::sleep_until(next_drop.unwrap_or_else(tokio::time::Instant::now)), if next_drop.is_some() => {
                    let now = Instant::now();
                    while let Some(&(at, p)) = self.drops.front() {
                        if at > now {
                            break;
                        }
                        self.drops.pop_front();
                        let Some(call) = self.slots[p].as_ref().and_then(|a| a.caller_call) else {
                            continue;
                        };
                        let text = serde_json::to_string(&ClientMessage::Command {
                            id: format!("d{p}"),
                            command: CommandDto::Drop { call },
                        })?;
                        sink.feed(Message::Text(text.into())).await.context("WebSocket send failed")?;
                    }
                    sink.flush().await.context("WebSocket send failed")?;
                }
            }
        }
        let _ = sink.close().await;
        Ok(self.out)
    }

    fn handle(&mut self, message: ServerMessage, progress: &Progress) {
        match message {
            ServerMessage::Result {
                id,
                ok,
                call,
                error,
                ..
            } => {
                let Some(p) = id.get(1..).and_then(|n| n.parse::<usize>().ok()) else {
                    return;
                };
                if !ok {
                    self.out.command_errors += 1;
                    let why = error.map(|e| e.message).unwrap_or_default();
                    note(
                        &mut self.out.failures,
                        format!("command {id} failed: {why}"),
                    );
                    if id.starts_with('m') && self.slots.get(p).is_some_and(Option::is_some) {
                        self.slots[p] = None;
                        self.free.push_back(p);
                    }
                    return;
                }
                if id.starts_with('m')
                    && let Some(Some(active)) = self.slots.get_mut(p)
                {
                    stats::record(
                        &mut self.out.result_latency,
                        active.sent.elapsed().as_micros() as u64,
                    );
                    match (call, active.caller_call) {
                        // Its first events came first and named the call already.
                        (Some(call), Some(known)) if call != known => {
                            self.out.lifecycle_failures += 1;
                            note(
                                &mut self.out.failures,
                                format!(
                                    "make_call {id} answered call {call}, but its line's events named call {known}"
                                ),
                            );
                        }
                        (Some(call), _) => {
                            active.caller_call = Some(call);
                            self.by_call.insert(call, p);
                        }
                        (None, _) => {}
                    }
                }
            }
            ServerMessage::Event(event) => {
                let seq = event.seq;
                if seq <= self.out.last_seq {
                    self.out.reordered += 1;
                    return;
                }
                if seq > self.out.last_seq + 1 {
                    self.out.lost += seq - self.out.last_seq - 1;
                }
                self.out.last_seq = seq;
                self.out.log.push((seq, event.event.line()));
                self.follow(&event.event, progress);
            }
            ServerMessage::Snapshot(snapshot) => {
                note(
                    &mut self.out.failures,
                    format!(
                        "the command connection got a second snapshot at {}",
                        snapshot.seq
                    ),
                );
                self.out.lost += 1;
                self.out.last_seq = snapshot.seq;
            }
            ServerMessage::Error { error } => {
                self.out.command_errors += 1;
                note(
                    &mut self.out.failures,
                    format!("server error: {}", error.message),
                );
            }
            // The load tool sends no pings.
            ServerMessage::Pong { .. } => {}
        }
    }

    /// Moves a call of ours along; completes its pair when both sides are idle.
    fn follow(&mut self, event: &EventDto, progress: &Progress) {
        let (call, new) = match event {
            EventDto::CallNew { call } => (call, true),
            EventDto::CallState { call }
            | EventDto::CallInfo { call, .. }
            | EventDto::CallFeatures { call } => (call, false),
            _ => return,
        };
        let p = match self.by_call.get(&call.id) {
            Some(&p) => p,
            None => {
                if let Some(&p) = self.by_caller_line.get(&call.line) {
                    match self.slots[p].as_mut() {
                        Some(active) if new && active.caller_call.is_none() => {
                            active.caller_call = Some(call.id);
                            self.by_call.insert(call.id, p);
                        }
                        _ => {
                            if new {
                                note(
                                    &mut self.out.failures,
                                    format!(
                                        "a call {} on caller line {} that is not ours",
                                        call.id, call.line
                                    ),
                                );
                                self.out.lifecycle_failures += 1;
                            }
                            return;
                        }
                    }
                    return self.follow(event, progress);
                }
                let Some(&p) = self.by_callee_line.get(&call.line) else {
                    return;
                };
                match self.slots[p].as_mut() {
                    Some(active) if new && active.callee_call.is_none() => {
                        active.callee_call = Some(call.id);
                        self.by_call.insert(call.id, p);
                        p
                    }
                    _ => return,
                }
            }
        };
        let Some(active) = self.slots[p].as_mut() else {
            return;
        };
        let caller = active.caller_call == Some(call.id);
        let state = call.state.as_str();
        if caller {
            if !active.first_event {
                active.first_event = true;
                stats::record(
                    &mut self.out.first_event_latency,
                    active.sent.elapsed().as_micros() as u64,
                );
            }
            match state {
                "ringback" => active.ringing = true,
                "connected" if !active.caller_connected => {
                    active.caller_connected = true;
                    stats::record(
                        &mut self.out.connected_latency,
                        active.sent.elapsed().as_micros() as u64,
                    );
                    self.drops.push_back((Instant::now() + self.hold, p));
                }
                "idle" => active.caller_idle = true,
                _ => {}
            }
        } else {
            match state {
                "offering" => active.ringing = true,
                "connected" => active.callee_connected = true,
                "idle" => active.callee_idle = true,
                _ => {}
            }
        }
        if state == "idle" {
            self.by_call.remove(&call.id);
        }
        if active.caller_idle && active.callee_idle {
            if !(active.ringing && active.caller_connected && active.callee_connected) {
                self.out.lifecycle_failures += 1;
                note(
                    &mut self.out.failures,
                    format!(
                        "call from line {} ended without ringing, connected on both sides and idle",
                        self.pairs[p].caller
                    ),
                );
            }
            self.slots[p] = None;
            self.free.push_back(p);
            self.out.completed += 1;
            progress
                .completed
                .store(self.out.completed, Ordering::Relaxed);
        }
    }
}
