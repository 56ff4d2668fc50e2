//! `memory`: one idle server per size; start-up time and resident memory, and the memory
//! each additional idle line costs (the difference between consecutive sizes).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::server::{Server, Startup};

#[derive(Debug, Serialize)]
struct Size {
    lines: u32,
    startup: Startup,
    rss_kib: Option<u64>,
    /// (RSS - RSS of the previous size) / (lines - lines of the previous size).
    bytes_per_line: Option<f64>,
}

pub async fn run(sizes: &[u32], settle_ms: u64, tapir: &Path, json: bool) -> Result<()> {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut results: Vec<Size> = Vec::new();
    if !json {
        println!("   lines  listening ms  all lines ms     rss MiB  bytes/line (vs previous size)");
    }
    for &lines in &sorted {
        let (mut server, spawned) = Server::start(tapir, lines, false)?;
        let listening_ms = spawned.elapsed().as_secs_f64() * 1000.0;
        server.wait_lines(lines).await?;
        let all_lines_ms = spawned.elapsed().as_secs_f64() * 1000.0;
        tokio::time::sleep(Duration::from_millis(settle_ms)).await;
        let rss_kib = server.sample().map(|s| s.rss_kib);
        server.stop();
        let bytes_per_line = match (results.last(), rss_kib) {
            (Some(previous), Some(rss)) => previous.rss_kib.map(|before| {
                (rss as f64 - before as f64) * 1024.0 / f64::from(lines - previous.lines)
            }),
            _ => None,
        };
        let size = Size {
            lines,
            startup: Startup {
                listening_ms,
                all_lines_ms,
            },
            rss_kib,
            bytes_per_line,
        };
        if !json {
            println!(
                "{:>8} {:>13.0} {:>13.0} {:>11} {:>11}",
                size.lines,
                size.startup.listening_ms,
                size.startup.all_lines_ms,
                crate::stats::opt(size.rss_kib.map(|k| k as f64 / 1024.0), 1),
                crate::stats::opt(size.bytes_per_line, 0),
            );
        }
        results.push(size);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

/// How long placing the calls and seeing them connected may take, per size.
const CALLS_PATIENCE: Duration = Duration::from_secs(120);
/// How many `make_call` commands go out before waiting for their results.
const CALL_BATCH: u32 = 500;

#[derive(Debug, Serialize)]
struct Active {
    calls: u32,
    lines: u32,
    rss_idle_kib: Option<u64>,
    rss_active_kib: Option<u64>,
    calls_connected: u32,
    /// Events the server emitted while the calls were set up (kept in its replay log).
    events: u64,
    /// (RSS with the calls connected - RSS idle) / calls.
    bytes_per_active_call: Option<f64>,
    place_ms: f64,
}

/// For each count N: a server with 2N lines (the upper half auto-answers), RSS idle with
/// one subscribed WebSocket, then RSS with N calls connected and held.
pub async fn active(counts: &[u32], settle_ms: u64, tapir: &Path, json: bool) -> Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tapir_wire::{ClientMessage, CommandDto, EventDto, ServerMessage};
    use tokio_tungstenite::tungstenite::Message;

    let mut results = Vec::new();
    if !json {
        println!(
            "   calls    lines  idle MiB  active MiB  connected    events  place ms  bytes/active call"
        );
    }
    for &calls in counts {
        let lines = calls * 2;
        let (server, _) = Server::start(tapir, lines, true)?;
        server.wait_lines(lines).await?;
        let (mut socket, _) = crate::load::connect(&server.ws_url())
            .await
            .context("cannot open the WebSocket")?;
        crate::load::send(&mut socket, &crate::load::subscribe(None)).await?;
        let deadline = Instant::now() + CALLS_PATIENCE;
        let mut snapshot = None;
        while snapshot.is_none() {
            let message = next(&mut socket, deadline).await?;
            if let ServerMessage::Snapshot(s) = message {
                snapshot = Some(s);
            }
        }
        let Some(snapshot) = snapshot else {
            bail!("no snapshot");
        };
        let mut all = snapshot.lines;
        all.sort_by_key(|l| (l.address.len(), l.address.clone()));
        if all.len() < lines as usize {
            bail!("the server has {} lines, {lines} needed", all.len());
        }
        tokio::time::sleep(Duration::from_millis(settle_ms)).await;
        let rss_idle_kib = server.sample().map(|s| s.rss_kib);

        let placing = Instant::now();
        let half = calls as usize;
        let mut results_seen = 0u32;
        let mut connected = 0u32;
        let mut events = 0u64;
        let mut failed = 0u32;
        let mut sent = 0u32;
        while sent < calls || connected < calls * 2 {
            if sent < calls && results_seen == sent {
                let end = (sent + CALL_BATCH).min(calls);
                for i in sent..end {
                    let caller = &all[i as usize];
                    let callee = &all[half + i as usize];
                    let text = serde_json::to_string(&ClientMessage::Command {
                        id: format!("m{i}"),
                        command: CommandDto::MakeCall {
                            line: caller.id,
                            to: callee.address.clone(),
                        },
                    })?;
                    socket
                        .feed(Message::Text(text.into()))
                        .await
                        .context("WebSocket send failed")?;
                }
                socket.flush().await.context("WebSocket send failed")?;
                sent = end;
            }
            match next(&mut socket, deadline).await? {
                ServerMessage::Result { ok, .. } => {
                    results_seen += 1;
                    if !ok {
                        failed += 1;
                    }
                }
                ServerMessage::Event(event) => {
                    events += 1;
                    if let EventDto::CallState { call } = &event.event
                        && call.state == "connected"
                    {
                        connected += 1;
                    }
                }
                _ => {}
            }
            if failed > 0 && results_seen == calls {
                break;
            }
        }
        let place_ms = placing.elapsed().as_secs_f64() * 1000.0;
        // Read what is still coming (features, info) while settling.
        let settle_until = Instant::now() + Duration::from_millis(settle_ms);
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout_at(settle_until.into(), socket.next()).await
        {
            events += 1;
        }
        let rss_active_kib = server.sample().map(|s| s.rss_kib);
        let mut server = server;
        server.stop();
        let bytes_per_active_call = match (rss_idle_kib, rss_active_kib) {
            (Some(a), Some(b)) => Some((b as f64 - a as f64) * 1024.0 / f64::from(calls)),
            _ => None,
        };
        let row = Active {
            calls,
            lines,
            rss_idle_kib,
            rss_active_kib,
            calls_connected: connected / 2,
            events,
            bytes_per_active_call,
            place_ms,
        };
        if !json {
            println!(
                "{:>8} {:>8} {:>9} {:>11} {:>10} {:>9} {:>9.0} {:>18}",
                row.calls,
                row.lines,
                crate::stats::opt(row.rss_idle_kib.map(|k| k as f64 / 1024.0), 1),
                crate::stats::opt(row.rss_active_kib.map(|k| k as f64 / 1024.0), 1),
                row.calls_connected,
                row.events,
                row.place_ms,
                crate::stats::opt(row.bytes_per_active_call, 0),
            );
        }
        if failed > 0 {
            bail!("{failed} make_call commands failed at {calls} calls");
        }
        results.push(row);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

/// The next server message before `deadline`.
async fn next(
    socket: &mut crate::load::Socket,
    deadline: Instant,
) -> Result<tapir_wire::ServerMessage> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout_at(deadline.into(), socket.next())
            .await
            .context("the calls did not connect in time")?
            .context("the server closed the WebSocket")?
            .context("WebSocket error")?;
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str())
                .with_context(|| format!("unreadable server message {}", text.as_str()));
        }
    }
}
