//! `relay`: the physical-limit baseline. The same shape of event stream as a `run` (message
//! size, messages per second, number of clients) pushed through a plain loopback TCP relay
//! that does no parsing: one producer connection writes fixed-size frames, the relay copies
//! every chunk it reads to K reader connections, and each reader timestamps every frame.
//!
//! A frame is `msg_bytes` long: 16 decimal digits of the send time (µs since the Unix epoch),
//! 16 of a sequence number, space padding and a final `\n`. Readers check the sequence
//! numbers (lost or reordered frames are counted) and record two latencies:
//! - `exact`: receipt minus send time, in µs;
//! - `as_run`: receipt minus the send time truncated to the millisecond, which is how `run`
//!   measures events (their `at` has ms resolution). Ratios against `run` use this one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::stats::{self, Percentiles};

/// The smallest frame: two 16-digit fields and the newline.
pub const MIN_FRAME: usize = 33;
/// The largest frame accepted.
pub const MAX_FRAME: usize = 65_536;
/// How many chunks a slow reader may have queued before the relay waits for it.
const READER_QUEUE: usize = 4096;
/// How long readers may take to get the last frame after the producer stopped.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(15);

/// The stream to push.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    /// Reader connections (the `run`'s clients).
    pub clients: u32,
    /// Frames per second from the producer (calls/s × events per call).
    pub messages_per_s: f64,
    /// Bytes per frame (the mean event message size of the matching `run`).
    pub msg_bytes: usize,
    /// How long the producer writes.
    pub duration_s: u64,
}

/// What the readers saw.
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    pub shape: Shape,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub delivered_per_s: f64,
    pub latency_exact: Percentiles,
    pub latency_as_run: Percentiles,
    pub lost: u64,
    pub reordered: u64,
    pub bench_cpu_pct: Option<f64>,
    pub passed: bool,
}

struct Reader {
    delivered: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    last_seq: AtomicU64,
    exact: Mutex<Histogram<u64>>,
    as_run: Mutex<Histogram<u64>>,
}

/// Runs the relay, the producer and the readers in this process and measures.
pub async fn measure(shape: Shape) -> Result<RelayReport> {
    if !(MIN_FRAME..=MAX_FRAME).contains(&shape.msg_bytes) {
        bail!("--msg-bytes must be between {MIN_FRAME} and {MAX_FRAME}");
    }
    if !(shape.messages_per_s > 0.0 && shape.messages_per_s <= 10_000_000.0) {
        bail!("the message rate must be above 0 and at most 10,000,000/s");
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on loopback")?;
    let addr = listener.local_addr()?;
    let clients = shape.clients as usize;

    // The relay: the first connection is the producer, the next K the readers.
    let relay = tokio::spawn(async move {
        let (mut producer, _) = listener.accept().await?;
        producer.set_nodelay(true)?;
        let mut outs = Vec::with_capacity(clients);
        let mut writers = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (mut socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(READER_QUEUE);
            outs.push(tx);
            writers.push(tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if socket.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = socket.shutdown().await;
            }));
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = producer.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let chunk: Arc<[u8]> = Arc::from(&buf[..n]);
            for tx in &outs {
                if tx.send(chunk.clone()).await.is_err() {
                    break;
                }
            }
        }
        drop(outs);
        for w in writers {
            let _ = w.await;
        }
        anyhow::Ok(())
    });

    let mut producer = TcpStream::connect(addr)
        .await
        .context("cannot connect the producer")?;
    producer.set_nodelay(true)?;
    let mut readers = Vec::with_capacity(clients);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let socket = TcpStream::connect(addr)
            .await
            .context("cannot connect a reader")?;
        socket.set_nodelay(true)?;
        let reader = Arc::new(Reader {
            delivered: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            exact: Mutex::new(stats::histogram()),
            as_run: Mutex::new(stats::histogram()),
        });
        readers.push(reader.clone());
        tasks.push(tokio::spawn(read_frames(socket, shape.msg_bytes, reader)));
    }

    // The producer: frames due by now, every millisecond, as the call driver paces calls.
    let bench_first = crate::server::ProcSample::read(std::process::id());
    let start = Instant::now();
    let duration = Duration::from_secs(shape.duration_s);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent: u64 = 0;
    let mut batch = Vec::new();
    while start.elapsed() < duration {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * shape.messages_per_s) as u64;
        batch.clear();
        while sent < due {
            sent += 1;
            frame(&mut batch, crate::load::now_us(), sent, shape.msg_bytes);
        }
        if !batch.is_empty() {
            producer
                .write_all(&batch)
                .await
                .context("the producer cannot write")?;
        }
    }
    let elapsed = start.elapsed();
    producer.shutdown().await.ok();
    let deadline = Instant::now() + CATCH_UP_PATIENCE;
    while readers
        .iter()
        .any(|r| r.last_seq.load(Ordering::Relaxed) < sent)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bench_end = crate::server::ProcSample::read(std::process::id());
    drop(producer);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e.context("a reader failed")),
            Ok(Err(e)) => bail!("a reader panicked: {e}"),
            Err(_) => bail!("a reader did not stop"),
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), relay).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e.context("the relay failed")),
        Ok(Err(e)) => bail!("the relay panicked: {e}"),
        Err(_) => bail!("the relay did not stop"),
    }

    let mut exact = stats::histogram();
    let mut as_run = stats::histogram();
    let mut lost = 0;
    let mut reordered = 0;
    let mut delivered = 0;
    for r in &readers {
        if let Ok(h) = r.exact.lock() {
            let _ = exact.add(&*h);
        }
        if let Ok(h) = r.as_run.lock() {
            let _ = as_run.add(&*h);
        }
        delivered += r.delivered.load(Ordering::Relaxed);
        reordered += r.reordered.load(Ordering::Relaxed);
        lost += r.lost.load(Ordering::Relaxed)
            + sent.saturating_sub(r.last_seq.load(Ordering::Relaxed));
    }
    let secs = elapsed.as_secs_f64().max(0.001);
    let bench_cpu_pct = match (bench_first, bench_end) {
        (Some(a), Some(b)) => Some((b.cpu_s - a.cpu_s) * 100.0 / secs),
        _ => None,
    };
    Ok(RelayReport {
        shape,
        messages_sent: sent,
        messages_delivered: delivered,
        delivered_per_s: delivered as f64 / secs,
        latency_exact: Percentiles::of(&exact),
        latency_as_run: Percentiles::of(&as_run),
        lost,
        reordered,
        bench_cpu_pct,
        passed: lost == 0 && reordered == 0,
    })
}

/// Appends one frame to `out`.
fn frame(out: &mut Vec<u8>, sent_us: u64, seq: u64, size: usize) {
    let start = out.len();
    out.extend_from_slice(format!("{:016}{:016}", sent_us % 10u64.pow(16), seq).as_bytes());
    out.resize(start + size - 1, b' ');
    out.push(b'\n');
}

/// Reads fixed-size frames and records their latency until the relay closes.
async fn read_frames(mut socket: TcpStream, size: usize, reader: Arc<Reader>) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024 + size];
    let mut filled = 0;
    let mut exact = stats::histogram();
    let mut as_run = stats::histogram();
    let mut last = 0u64;
    loop {
        let n = socket
            .read(&mut buf[filled..])
            .await
            .context("reader socket")?;
        if n == 0 {
            break;
        }
        let received = crate::load::now_us();
        filled += n;
        let whole = filled / size * size;
        for f in buf[..whole].chunks_exact(size) {
            let (Some(sent_us), Some(seq)) = (digits(&f[..16]), digits(&f[16..32])) else {
                bail!("a malformed frame reached a reader");
            };
            record(&mut exact, received.saturating_sub(sent_us));
            record(&mut as_run, received.saturating_sub(sent_us / 1000 * 1000));
            if seq <= last {
                reader.reordered.fetch_add(1, Ordering::Relaxed);
            } else {
                if seq > last + 1 {
                    reader.lost.fetch_add(seq - last - 1, Ordering::Relaxed);
                }
                last = seq;
            }
            reader.delivered.fetch_add(1, Ordering::Relaxed);
        }
        reader.last_seq.store(last, Ordering::Relaxed);
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    if let Ok(mut h) = reader.exact.lock() {
        let _ = h.add(&exact);
    }
    if let Ok(mut h) = reader.as_run.lock() {
        let _ = h.add(&as_run);
    }
    Ok(())
}

fn record(h: &mut Histogram<u64>, micros: u64) {
    stats::record(h, micros);
}

/// A fixed-width decimal field.
fn digits(field: &[u8]) -> Option<u64> {
    std::str::from_utf8(field).ok()?.trim().parse().ok()
}

/// Prints a relay report as a table or JSON.
pub fn print(report: &RelayReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let s = &report.shape;
    println!(
        "relay: {} readers, {:.0} msg/s of {} B for {} s",
        s.clients, s.messages_per_s, s.msg_bytes, s.duration_s
    );
    println!(
        "messages sent          {} (delivered {}, {:.0}/s over all readers)",
        report.messages_sent, report.messages_delivered, report.delivered_per_s
    );
    println!("latency ms             p50/p99/p99.9/max");
    println!("  exact (µs clock)     {}", report.latency_exact.cell());
    println!("  as run measures      {}", report.latency_as_run.cell());
    println!(
        "lost / reordered       {} / {}",
        report.lost, report.reordered
    );
    println!(
        "load tool cpu          {}% (producer, relay and readers)",
        stats::opt(report.bench_cpu_pct, 0)
    );
    println!("{}", if report.passed { "PASS" } else { "FAIL" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_has_its_size_and_fields() {
        let mut out = Vec::new();
        frame(&mut out, 1_700_000_000_123_456, 42, 64);
        assert_eq!(out.len(), 64);
        assert_eq!(digits(&out[..16]), Some(1_700_000_000_123_456));
        assert_eq!(digits(&out[16..32]), Some(42));
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[tokio::test]
    async fn a_short_relay_loses_nothing() {
        let report = measure(Shape {
            clients: 3,
            messages_per_s: 2000.0,
            msg_bytes: 100,
            duration_s: 1,
        })
        .await
        .expect("relay");
        assert!(report.passed, "{report:?}");
        assert_eq!(report.messages_delivered, report.messages_sent * 3);
    }
}
