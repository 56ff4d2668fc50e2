//! The owner loop: connect, monitor, snapshot and read forwarding, serve commands and events,
//! keep the link alive, and reconnect with capped back-off and jitter. A device whose monitor
//! the switch refused or ended is monitored again while the link stays up (see [`Remonitor`])
//! and resynchronised from a fresh snapshot.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tapir_model::{ErrorKind, RequestId, TapiError};
use tapir_provider::backoff::Backoff;
use tapir_provider::{
    Completion, Device, ProviderContext, ProviderError, ProviderEvent, ProviderRequest,
};
use tokio::time::{Instant, interval, sleep};

use crate::commands::{self, tapi_error};
use crate::config::{CstaConfig, Dialect};
use crate::link::{Link, LinkError};
use crate::mapping::{Mapping, Output};
use crate::message::{Event, Incoming, Request, SnapshotCall};
use crate::remonitor::Remonitor;

/// A request waiting for its answer.
#[derive(Debug)]
struct Pending {
    purpose: Purpose,
    sent: Instant,
}

/// What an answer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    KeepAlive,
    Command(RequestId),
    /// A MonitorStart for a device that lost (or never had) its monitor.
    Monitor(String),
    /// The SnapshotDevice that follows such a MonitorStart.
    Snapshot(String),
}

/// A segmented snapshot taken while serving: its segments may come before or after the
/// response that names the device.
#[derive(Debug, Default)]
struct Segments {
    device: Option<String>,
    parts: BTreeMap<u32, Vec<SnapshotCall>>,
    complete: bool,
}

impl Pending {
    fn request(&self) -> Option<RequestId> {
        match self.purpose {
            Purpose::Command(request) => Some(request),
            _ => None,
        }
    }
}

/// A command's requests still open, and its first error.
#[derive(Debug)]
struct Batch {
    remaining: usize,
    error: Option<TapiError>,
    creates_on: Option<String>,
    call: Option<tapir_provider::CallRef>,
}

/// Runs until shutdown.
pub async fn run(config: CstaConfig, mut cx: ProviderContext) -> Result<(), ProviderError> {
    let mut backoff = Backoff::new(
        Duration::from_millis(config.reconnect_min_ms),
        Duration::from_millis(config.reconnect_max_ms),
    );
    loop {
        let reason = tokio::select! {
            _ = cx.shutdown.cancelled() => return Ok(()),
            opened = Link::open(&config, cx.trace.clone()) => match opened {
                Ok(link) => {
                    backoff.reset();
                    match serve(link, &config, &mut cx).await {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            },
        };
        tracing::warn!(instance = %cx.instance, %reason, "CSTA link down");
        send(
            &cx,
            ProviderEvent::Down {
                reason: reason.to_string(),
            },
        )
        .await?;
        let until = Instant::now() + backoff.next_delay();
        // Commands given while the link is down are refused at once, not queued.
        loop {
            tokio::select! {
                _ = cx.shutdown.cancelled() => return Ok(()),
                _ = sleep_until(until) => break,
                Some(request) = cx.requests.recv() => {
                    let error = TapiError::new(ErrorKind::InvalidLineState, "the CSTA link is down");
                    send(&cx, completed(request.id, Err(error))).await?;
                }
            }
        }
    }
}

async fn sleep_until(until: Instant) {
    sleep(until.saturating_duration_since(Instant::now())).await;
}

async fn send(cx: &ProviderContext, event: ProviderEvent) -> Result<(), ProviderError> {
    cx.events
        .send(event)
        .await
        .map_err(|_| ProviderError::CoreGone)
}

fn completed(request: RequestId, outcome: Result<Completion, TapiError>) -> ProviderEvent {
    ProviderEvent::Completed { request, outcome }
}

/// Monitors every device, reads its calls and its forwarding; the devices as lines. A device
/// whose monitor is refused stays a line, out of service, with no calls (nothing would keep
/// them current).
async fn synchronise(
    link: &mut Link,
    config: &CstaConfig,
    mapping: &mut Mapping,
) -> Result<Vec<Device>, LinkError> {
    let mut devices = Vec::new();
    let mut asks = StatusQueries::default();
    for device in &config.devices {
        devices.push(Device::new(
            device.clone(),
            device.clone(),
            format!("Device {device}"),
        ));
        let start = Request::MonitorStart {
            device: device.clone(),
        };
        match link.call(&start, config).await? {
            Incoming::MonitorStarted { cross_ref } => mapping.monitor_started(device, &cross_ref),
            other => {
                tracing::warn!(device, answer = ?other, "MonitorStart refused; the device is out of service");
                mapping.monitor_refused(device);
                apply_early(link, mapping);
                continue;
            }
        }
        let snapshot = link.snapshot(device, config).await?;
        // Events that came before the snapshot's answer are older than the picture it gives.
        apply_early(link, mapping);
        if let Some(calls) = snapshot {
            mapping.snapshot(device, &calls);
        }
        asks.read(link, config, mapping, device).await?;
        apply_early(link, mapping);
    }
    Ok(devices)
}

/// Applies what arrived while synchronisation waited; the reports are not sent, since
/// `Synchronized` carries the whole picture.
fn apply_early(link: &mut Link, mapping: &mut Mapping) {
    for incoming in link.take_early() {
        match incoming {
            Incoming::Event(event) => {
                mapping.apply(&event);
            }
            Incoming::MonitorEnded { cross_ref } => {
                mapping.monitor_ended(&cross_ref);
            }
            _ => {}
        }
    }
}

/// GetForwarding and GetDoNotDisturb at synchronisation. Both are optional services: a
/// switch that refuses one or leaves it unanswered is not asked again until the next
/// synchronisation, so that one silent switch costs one request timeout, not one per device.
#[derive(Debug, Default)]
struct StatusQueries {
    no_forwarding: bool,
    no_do_not_disturb: bool,
}

impl StatusQueries {
    async fn read(
        &mut self,
        link: &mut Link,
        config: &CstaConfig,
        mapping: &mut Mapping,
        device: &str,
    ) -> Result<(), LinkError> {
        if !self.no_forwarding {
            let request = Request::GetForwarding {
                device: device.to_owned(),
            };
            match optional(link.call(&request, config).await)? {
                Some(Incoming::Forwarding { items }) => mapping.forwarding_state(device, &items),
                other => {
                    tracing::info!(device, answer = ?other, "GetForwarding not answered; forwarding is known from events only");
                    self.no_forwarding = true;
                }
            }
        }
        if !self.no_do_not_disturb {
            let request = Request::GetDoNotDisturb {
                device: device.to_owned(),
            };
            match optional(link.call(&request, config).await)? {
                Some(Incoming::DoNotDisturb { on }) => mapping.do_not_disturb_state(device, on),
                other => {
                    tracing::info!(device, answer = ?other, "GetDoNotDisturb not answered; do-not-disturb is known from events only");
                    self.no_do_not_disturb = true;
                }
            }
        }
        Ok(())
    }
}

/// An answer to an optional request: a timeout is "no answer", other failures end the link.
fn optional(answer: Result<Incoming, LinkError>) -> Result<Option<Incoming>, LinkError> {
    match answer {
        Ok(answer) => Ok(Some(answer)),
        Err(LinkError::Timeout(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Everything one established link does.
struct Serve<'a> {
    link: Link,
    config: &'a CstaConfig,
    mapping: Mapping,
    pending: HashMap<u16, Pending>,
    batches: HashMap<RequestId, Batch>,
    /// Events held back while a call-creating command on their device awaits its answer.
    held: Vec<Event>,
    unanswered_keepalives: u32,
    remonitor: Remonitor,
    /// Segmented snapshots under way, by their `serviceCrossRefID`.
    segments: HashMap<String, Segments>,
}

async fn serve(
    mut link: Link,
    config: &CstaConfig,
    cx: &mut ProviderContext,
) -> Result<(), LinkError> {
    let mut mapping = Mapping::default();
    let devices = synchronise(&mut link, config, &mut mapping).await?;
    let sync = ProviderEvent::Synchronized {
        devices,
        calls: mapping.reports(),
        statuses: mapping.statuses(),
        out_of_service: mapping.out_of_service(),
    };
    for event in [ProviderEvent::Up, sync] {
        cx.events.send(event).await.map_err(|_| LinkError::Closed)?;
    }
    let mut state = Serve {
        link,
        config,
        mapping,
        pending: HashMap::new(),
        batches: HashMap::new(),
        held: Vec::new(),
        unanswered_keepalives: 0,
        remonitor: Remonitor::new(config),
        segments: HashMap::new(),
    };
    let outcome = state.run(cx).await;
    // Whatever was in flight may or may not have happened; it is never repeated.
    for (request, _) in state.batches.drain() {
        let error = TapiError::new(ErrorKind::OutcomeUnknown, "the CSTA link dropped");
        let _ = cx.events.send(completed(request, Err(error))).await;
    }
    outcome
}

impl Serve<'_> {
    async fn run(&mut self, cx: &mut ProviderContext) -> Result<(), LinkError> {
        let mut keepalive = interval(self.config.keepalive());
        keepalive.reset();
        let mut sweep = interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = cx.shutdown.cancelled() => return Ok(()),
                received = self.link.recv() => {
                    let (invoke, incoming) = received?;
                    self.incoming(cx, invoke, incoming).await?;
                }
                Some(request) = cx.requests.recv() => self.command(cx, request).await?,
                _ = keepalive.tick() => self.keepalive().await?,
                _ = sweep.tick() => {
                    self.expire(cx).await?;
                    self.monitor_again().await?;
                }
            }
        }
    }

    async fn keepalive(&mut self) -> Result<(), LinkError> {
        if self
            .pending
            .values()
            .any(|p| p.purpose == Purpose::KeepAlive)
        {
            self.unanswered_keepalives += 1;
            if self.unanswered_keepalives >= 2 {
                return Err(LinkError::Dead);
            }
            return Ok(());
        }
        let request = match (&self.link.dialect, &self.link.session_id) {
            (Dialect::Ecma354, Some(id)) => Request::ResetApplicationSessionTimer {
                session_id: id.clone(),
                duration_s: self.config.session_duration_s,
            },
            _ => Request::SystemStatus,
        };
        self.send(Purpose::KeepAlive, &request).await
    }

    /// Sends `request` under a fresh invoke id, remembering what its answer is for.
    async fn send(&mut self, purpose: Purpose, request: &Request) -> Result<(), LinkError> {
        let invoke = self.link.allocate(&self.pending);
        self.pending.insert(
            invoke,
            Pending {
                purpose,
                sent: Instant::now(),
            },
        );
        self.link.send(invoke, request).await
    }

    /// Whether a MonitorStart for `device` waits for its answer.
    fn monitor_asked(&self, device: &str) -> bool {
        self.pending
            .values()
            .any(|p| matches!(&p.purpose, Purpose::Monitor(d) if d == device))
    }

    /// Sends MonitorStart for each configured device without a monitor whose back-off has
    /// passed and that is not asked for already.
    async fn monitor_again(&mut self) -> Result<(), LinkError> {
        let unmonitored: Vec<String> = self
            .config
            .devices
            .iter()
            .filter(|d| !self.mapping.is_monitored(d) && !self.monitor_asked(d))
            .cloned()
            .collect();
        let due: Vec<String> = unmonitored
            .into_iter()
            .filter(|d| self.remonitor.due(d))
            .collect();
        for device in due {
            tracing::debug!(device, "asking again for a monitor");
            let purpose = Purpose::Monitor(device.clone());
            self.send(purpose, &Request::MonitorStart { device })
                .await?;
        }
        Ok(())
    }

    /// The answer to a MonitorStart sent again: the device is back in service, or stays out.
    async fn remonitored(
        &mut self,
        cx: &ProviderContext,
        device: String,
        answer: Incoming,
    ) -> Result<(), LinkError> {
        match answer {
            Incoming::MonitorStarted { cross_ref } => {
                tracing::info!(device, "monitored again; the device is back in service");
                self.remonitor.monitored(&device);
                let outputs = self.mapping.monitor_restarted(&device, &cross_ref);
                self.emit_all(cx, outputs).await?;
                let purpose = Purpose::Snapshot(device.clone());
                self.send(purpose, &Request::SnapshotDevice { device })
                    .await
            }
            other => {
                tracing::debug!(device, answer = ?other, "MonitorStart refused again");
                self.remonitor.refused(&device);
                Ok(())
            }
        }
    }

    /// The answer to the SnapshotDevice of a device monitored again: its calls at once, or
    /// the reference its segments come under.
    async fn snapshot_answered(
        &mut self,
        cx: &ProviderContext,
        device: String,
        answer: Incoming,
    ) -> Result<(), LinkError> {
        match answer {
            Incoming::Snapshot {
                calls,
                segmented: None,
            } => {
                let outputs = self.mapping.resnapshot(&device, &calls);
                self.emit_all(cx, outputs).await
            }
            Incoming::Snapshot {
                segmented: Some(cross_ref),
                ..
            } => {
                self.segments.entry(cross_ref.clone()).or_default().device = Some(device);
                self.snapshot_if_complete(cx, &cross_ref).await
            }
            other => {
                tracing::warn!(device, answer = ?other, "SnapshotDevice refused; the device's calls are learned from their events");
                Ok(())
            }
        }
    }

    /// Applies a segmented snapshot once its device is known and its last segment came.
    async fn snapshot_if_complete(
        &mut self,
        cx: &ProviderContext,
        cross_ref: &str,
    ) -> Result<(), LinkError> {
        let ready = self
            .segments
            .get(cross_ref)
            .is_some_and(|s| s.complete && s.device.is_some());
        if !ready {
            return Ok(());
        }
        let Some(Segments {
            device: Some(device),
            parts,
            ..
        }) = self.segments.remove(cross_ref)
        else {
            return Ok(());
        };
        let calls: Vec<SnapshotCall> = parts.into_values().flatten().collect();
        let outputs = self.mapping.resnapshot(&device, &calls);
        self.emit_all(cx, outputs).await
    }

    async fn command(
        &mut self,
        cx: &ProviderContext,
        request: ProviderRequest,
    ) -> Result<(), LinkError> {
        let plan = match commands::plan(&request.command, &self.mapping) {
            Ok(plan) => plan,
            Err(error) => return self.emit(cx, completed(request.id, Err(error))).await,
        };
        self.batches.insert(
            request.id,
            Batch {
                remaining: plan.requests.len(),
                error: None,
                creates_on: plan.creates_on,
                call: None,
            },
        );
        for csta in plan.requests {
            self.send(Purpose::Command(request.id), &csta).await?;
        }
        Ok(())
    }

    async fn incoming(
        &mut self,
        cx: &ProviderContext,
        invoke: u16,
        incoming: Incoming,
    ) -> Result<(), LinkError> {
        match incoming {
            Incoming::Event(event) => self.event(cx, event).await,
            Incoming::SystemStatus { .. } | Incoming::RequestSystemStatus => {
                self.link.send(invoke, &Request::SystemStatusResponse).await
            }
            Incoming::SnapshotSegment {
                cross_ref,
                segment,
                last,
                calls,
            } => {
                let segments = self.segments.entry(cross_ref.clone()).or_default();
                segments.parts.insert(segment, calls);
                segments.complete |= last;
                self.snapshot_if_complete(cx, &cross_ref).await
            }
            Incoming::MonitorEnded { cross_ref } => {
                self.link
                    .send(invoke, &Request::MonitorStopResponse)
                    .await?;
                let outputs = self.mapping.monitor_ended(&cross_ref);
                self.emit_all(cx, outputs).await
            }
            answer => {
                let Some(pending) = self.pending.remove(&invoke) else {
                    tracing::debug!(invoke, ?answer, "an answer nobody waits for");
                    return Ok(());
                };
                match pending.purpose {
                    Purpose::KeepAlive => {
                        self.unanswered_keepalives = 0;
                        Ok(())
                    }
                    Purpose::Command(request) => self.answer(cx, request, answer).await,
                    Purpose::Monitor(device) => self.remonitored(cx, device, answer).await,
                    Purpose::Snapshot(device) => self.snapshot_answered(cx, device, answer).await,
                }
            }
        }
    }

    async fn answer(
        &mut self,
        cx: &ProviderContext,
        request: RequestId,
        answer: Incoming,
    ) -> Result<(), LinkError> {
        let Some(batch) = self.batches.get_mut(&request) else {
            return Ok(());
        };
        batch.remaining = batch.remaining.saturating_sub(1);
        match answer {
            Incoming::Error(error) => {
                batch.error.get_or_insert(tapi_error(&error));
            }
            Incoming::CallCreated { connection } => {
                if let Some(device) = &batch.creates_on {
                    batch.call = Some(self.mapping.call_ref(device, &connection));
                }
            }
            _ => {}
        }
        if batch.remaining == 0 {
            self.finish(cx, request).await?;
        }
        Ok(())
    }

    /// Completes a command and then replays the events held back for it.
    async fn finish(&mut self, cx: &ProviderContext, request: RequestId) -> Result<(), LinkError> {
        let Some(batch) = self.batches.remove(&request) else {
            return Ok(());
        };
        self.pending.retain(|_, p| p.request() != Some(request));
        let outcome = match (batch.error, batch.call) {
            (Some(error), _) => Err(error),
            (None, Some(call)) => Ok(Completion::Call(call)),
            (None, None) => Ok(Completion::Done),
        };
        self.emit(cx, completed(request, outcome)).await?;
        for event in std::mem::take(&mut self.held) {
            self.event(cx, event).await?;
        }
        Ok(())
    }

    async fn expire(&mut self, cx: &ProviderContext) -> Result<(), LinkError> {
        let limit = self.config.request_timeout();
        let late: Vec<RequestId> = self
            .pending
            .values()
            .filter(|p| p.sent.elapsed() > limit)
            .filter_map(Pending::request)
            .collect();
        // An unanswered MonitorStart counts as refused (the next attempt asks again); a device
        // whose snapshot is not answered has its calls learned from their events.
        let unanswered: Vec<(u16, Purpose)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent.elapsed() > limit)
            .filter(|(_, p)| matches!(p.purpose, Purpose::Monitor(_) | Purpose::Snapshot(_)))
            .map(|(invoke, p)| (*invoke, p.purpose.clone()))
            .collect();
        for (invoke, purpose) in unanswered {
            self.pending.remove(&invoke);
            match purpose {
                Purpose::Monitor(device) => self.remonitor.refused(&device),
                Purpose::Snapshot(device) => {
                    tracing::warn!(device, "SnapshotDevice not answered in time");
                }
                Purpose::KeepAlive | Purpose::Command(_) => {}
            }
        }
        for request in late {
            if let Some(batch) = self.batches.get_mut(&request) {
                batch.error = Some(TapiError::new(
                    ErrorKind::OutcomeUnknown,
                    "the switch did not answer in time",
                ));
            }
            self.finish(cx, request).await?;
        }
        Ok(())
    }

    fn holds(&self, event: &Event) -> bool {
        let Event::Call(call) = event else {
            return false;
        };
        let device = self.mapping.device_for(&call.cross_ref);
        self.batches
            .values()
            .any(|b| b.creates_on.is_some() && b.creates_on.as_deref() == device)
    }

    async fn event(&mut self, cx: &ProviderContext, event: Event) -> Result<(), LinkError> {
        if self.holds(&event) {
            self.held.push(event);
            return Ok(());
        }
        let outputs = self.mapping.apply(&event);
        self.emit_all(cx, outputs).await
    }

    async fn emit_all(&self, cx: &ProviderContext, outputs: Vec<Output>) -> Result<(), LinkError> {
        for output in outputs {
            let event = match output {
                Output::Call(report) => ProviderEvent::Call(report),
                Output::Status(status) => ProviderEvent::DeviceStatus(status),
                Output::Service {
                    device,
                    in_service,
                    reason,
                } => ProviderEvent::DeviceService {
                    device,
                    in_service,
                    reason,
                },
            };
            self.emit(cx, event).await?;
        }
        Ok(())
    }

    async fn emit(&self, cx: &ProviderContext, event: ProviderEvent) -> Result<(), LinkError> {
        cx.events.send(event).await.map_err(|_| LinkError::Closed)
    }
}
