//! `memory`: one idle server per size; start-up time and resident memory, and the memory
//! each additional idle line costs (the difference between consecutive sizes).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
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
    let http = reqwest::Client::new();
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
        server.wait_lines(&http, lines).await?;
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
