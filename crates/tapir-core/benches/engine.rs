//! The engine's event application and its fan-out to subscribers. A provider fed by the
//! benchmark reports 100 calls on 100 lines (offering, connected, disconnected, idle: 400
//! reports); the engine applies them, turns them into sequenced events and broadcasts those
//! to K subscribers. One iteration ends when every subscriber has received the batch's last
//! event. Run with `cargo bench -p tapir-core --bench engine`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tapir_core::{Engine, EngineConfig, EngineHandle, InstanceSpec, Presentation};
use tapir_model::{
    CallOrigin, CallReason, CallState, Capabilities, ConnectedMode, DisconnectMode, OfferingMode,
    Party,
};
use tapir_provider::{
    BoxFuture, CallRef, CallReport, Device, DeviceKey, Provider, ProviderContext, ProviderError,
    ProviderEvent, TestReport,
};
use tapir_store::Store;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

const LINES: u64 = 100;
const CALLS: u64 = 100;

/// Passes on what the benchmark sends.
struct Feed {
    events: mpsc::UnboundedReceiver<ProviderEvent>,
}

impl Provider for Feed {
    fn kind(&self) -> &'static str {
        "bench"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn run(self: Box<Self>, cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>> {
        let mut events = self.events;
        Box::pin(async move {
            loop {
                tokio::select! {
                    _ = cx.shutdown.cancelled() => return Ok(()),
                    Some(event) = events.recv() => {
                        cx.events.send(event).await.map_err(|_| ProviderError::CoreGone)?;
                    }
                }
            }
        })
    }

    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>> {
        Box::pin(async {
            Ok(TestReport {
                summary: "bench".into(),
                devices: LINES as usize,
            })
        })
    }
}

fn line(n: u64) -> String {
    format!("{}", 1000 + n % LINES)
}

fn report(call: u64, state: CallState) -> ProviderEvent {
    let device = line(call);
    ProviderEvent::Call(Box::new(CallReport {
        device: DeviceKey(device.clone()),
        call: CallRef(format!("c{call}")),
        state,
        origin: CallOrigin::External,
        reason: CallReason::Direct,
        caller: Party::number("+4930123456"),
        called: Party::number(device),
        connected: Party::default(),
        redirecting: Party::default(),
        redirection: Party::default(),
        related: None,
        conference: None,
    }))
}

/// The reports of calls `first..first + CALLS`, each from offering to idle.
fn batch(first: u64) -> Vec<ProviderEvent> {
    let states = [
        CallState::Offering(OfferingMode::Active),
        CallState::Connected(ConnectedMode::Active),
        CallState::Disconnected(DisconnectMode::Normal),
        CallState::Idle,
    ];
    (first..first + CALLS)
        .flat_map(|call| states.map(|state| report(call, state)))
        .collect()
}

/// A running engine with `subscribers` subscribers, each recording the last sequence number
/// it received.
struct Bench {
    runtime: Runtime,
    engine: EngineHandle,
    feed: mpsc::UnboundedSender<ProviderEvent>,
    seen: Vec<Arc<AtomicU64>>,
    target: Arc<AtomicU64>,
    reached: Arc<Notify>,
    next_call: u64,
    /// Sequenced events one batch makes.
    per_batch: u64,
    last_seq: u64,
    shutdown: CancellationToken,
}

impl Bench {
    fn start(subscribers: usize) -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let (feed, events) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let engine = runtime.block_on(async {
            let (engine, _task) = Engine::start(
                EngineConfig::default(),
                Store::open_in_memory().expect("an in-memory store"),
                vec![InstanceSpec {
                    name: "pbx".into(),
                    provider: Box::new(Feed { events }),
                    presentation: Presentation::default(),
                }],
                shutdown.clone(),
            )
            .expect("the engine starts");
            engine
        });
        let devices = (0..LINES)
            .map(|n| Device::new(line(n), line(n), format!("Line {}", line(n))))
            .collect();
        feed.send(ProviderEvent::Up).expect("the feed");
        feed.send(ProviderEvent::Synchronized {
            devices,
            calls: Vec::new(),
            statuses: Vec::new(),
            out_of_service: Vec::new(),
        })
        .expect("the feed");
        let target = Arc::new(AtomicU64::new(u64::MAX));
        let reached = Arc::new(Notify::new());
        let seen: Vec<Arc<AtomicU64>> = (0..subscribers)
            .map(|_| Arc::new(AtomicU64::new(0)))
            .collect();
        let mut bench = Bench {
            runtime,
            engine,
            feed,
            seen,
            target,
            reached,
            next_call: 0,
            per_batch: 0,
            last_seq: 0,
            shutdown,
        };
        bench.runtime.block_on(bench.settle());
        bench.subscribe();
        bench.calibrate();
        bench
    }

    /// Waits until the engine's sequence number stops moving; returns it.
    async fn settle(&self) -> u64 {
        let mut last = u64::MAX;
        loop {
            let seq = self.engine.snapshot().await.expect("the engine runs").seq;
            if seq == last {
                return seq;
            }
            last = seq;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn subscribe(&self) {
        for seen in &self.seen {
            let engine = self.engine.clone();
            let (seen, target, reached) = (seen.clone(), self.target.clone(), self.reached.clone());
            let mut subscription = self
                .runtime
                .block_on(engine.subscribe(None))
                .expect("a subscription");
            self.runtime.spawn(async move {
                while let Ok(event) = subscription.events.recv().await {
                    seen.store(event.seq, Ordering::Release);
                    if event.seq >= target.load(Ordering::Acquire) {
                        reached.notify_one();
                    }
                }
                panic!("a subscriber fell behind or the engine stopped");
            });
        }
    }

    /// Runs two batches untimed and learns how many events one makes (the same every time).
    fn calibrate(&mut self) {
        let mut deltas = Vec::new();
        for _ in 0..2 {
            let before = self.runtime.block_on(self.settle());
            self.send_batch();
            let after = self.runtime.block_on(self.settle());
            deltas.push(after - before);
            self.last_seq = after;
        }
        assert_eq!(
            deltas[0], deltas[1],
            "a batch makes the same events each time"
        );
        assert!(deltas[0] >= 4 * CALLS, "{deltas:?}");
        self.per_batch = deltas[0];
        self.runtime.block_on(self.all_reached(self.last_seq));
    }

    fn send_batch(&mut self) {
        for event in batch(self.next_call) {
            self.feed.send(event).expect("the feed");
        }
        self.next_call += CALLS;
    }

    async fn all_reached(&self, seq: u64) {
        loop {
            if self.seen.iter().all(|s| s.load(Ordering::Acquire) >= seq) {
                return;
            }
            self.reached.notified().await;
        }
    }

    /// One timed batch: sent, applied, and received by every subscriber.
    fn run_batch(&mut self) -> Duration {
        let target = self.last_seq + self.per_batch;
        self.target.store(target, Ordering::Release);
        let start = Instant::now();
        self.send_batch();
        self.runtime.block_on(self.all_reached(target));
        let elapsed = start.elapsed();
        self.last_seq = target;
        elapsed
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn apply_and_fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/apply_and_fan_out");
    group.throughput(Throughput::Elements(4 * CALLS));
    group.sample_size(20);
    for subscribers in [1, 10, 100] {
        let mut bench = Bench::start(subscribers);
        group.bench_function(BenchmarkId::from_parameter(subscribers), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.run_batch()).sum());
        });
    }
    group.finish();
}

criterion_group!(benches, apply_and_fan_out);
criterion_main!(benches);
