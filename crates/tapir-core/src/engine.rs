//! The owner task: the one place where lines and calls change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tapir_model::{
    Capabilities, Command, ErrorKind, InstanceId, LineId, LineStatus, RequestId, TapiError,
};
use tapir_provider::{
    Completion, Device, Provider, ProviderContext, ProviderError, ProviderEvent, ProviderRequest,
};
use tapir_store::{DeviceIdentity, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::handle::{EngineHandle, Request, Subscription, SubscriptionStart};
use crate::journal::Journal;
use crate::now_ms;
use crate::routing::{InstanceLookup, route};
use crate::tables::Tables;
use crate::view::{CommandOutcome, Event, InstanceInfo, InstanceStatus, Snapshot};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a command may wait for its PBX before it completes as `outcome_unknown`.
    pub command_timeout: Duration,
    /// How many past events are kept for clients that reconnect.
    pub resume_buffer: usize,
    /// How many events a slow subscriber may fall behind before it must resume.
    pub subscriber_backlog: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            command_timeout: Duration::from_secs(10),
            resume_buffer: 100_000,
            subscriber_backlog: 16_384,
        }
    }
}

/// One configured PBX connection, ready to start.
pub struct InstanceSpec {
    pub name: String,
    pub provider: Box<dyn Provider>,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("two instances are named {0:?}; instance names must be unique")]
    DuplicateInstance(String),
}

/// Starts the engine.
pub struct Engine;

impl Engine {
    /// Spawns the owner task and every instance's provider. The task ends when `shutdown`
    /// fires, after the providers have stopped.
    pub fn start(
        config: EngineConfig,
        store: Store,
        instances: Vec<InstanceSpec>,
        shutdown: CancellationToken,
    ) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), StartError> {
        let mut names = BTreeSet::new();
        for spec in &instances {
            if !names.insert(spec.name.clone()) {
                return Err(StartError::DuplicateInstance(spec.name.clone()));
            }
        }
        let (request_tx, request_rx) = mpsc::channel(1024);
        let (inbound_tx, inbound_rx) = mpsc::channel(4096);
        let mut owner = Owner {
            journal: Journal::new(config.resume_buffer, config.subscriber_backlog),
            config,
            store: Arc::new(Mutex::new(store)),
            tables: Tables::default(),
            instances: Instances::default(),
            pending: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_request: 0,
            tasks: JoinSet::new(),
            providers_shutdown: shutdown.child_token(),
            settled: BTreeSet::new(),
            settle_waiters: Vec::new(),
        };
        for (index, spec) in instances.into_iter().enumerate() {
            owner.start_instance(InstanceId(index as u32 + 1), spec, inbound_tx.clone());
        }
        drop(inbound_tx);
        let task = tokio::spawn(owner.run(request_rx, inbound_rx, shutdown));
        Ok((EngineHandle::new(request_tx), task))
    }
}

/// Messages from the provider side.
enum Inbound {
    Event(InstanceId, ProviderEvent),
    Exited(InstanceId, Result<(), ProviderError>),
}

struct Instance {
    name: String,
    driver: &'static str,
    capabilities: Capabilities,
    status: InstanceStatus,
    requests: mpsc::Sender<ProviderRequest>,
}

#[derive(Default)]
struct Instances(BTreeMap<InstanceId, Instance>);

impl InstanceLookup for Instances {
    fn ready(&self, id: InstanceId) -> Result<Capabilities, TapiError> {
        let instance = self.0.get(&id).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidLineState,
                format!("instance {id} is not running"),
            )
        })?;
        match &instance.status {
            InstanceStatus::Up => Ok(instance.capabilities),
            other => Err(TapiError::new(
                ErrorKind::InvalidLineState,
                format!(
                    "the PBX link of instance {} is {}{}",
                    instance.name,
                    other.as_str(),
                    other.reason().map(|r| format!(": {r}")).unwrap_or_default()
                ),
            )),
        }
    }
}

struct Pending {
    reply: oneshot::Sender<Result<CommandOutcome, TapiError>>,
    instance: InstanceId,
    command: &'static str,
    deadline: Instant,
}

struct Owner {
    config: EngineConfig,
    journal: Journal,
    store: Arc<Mutex<Store>>,
    tables: Tables,
    instances: Instances,
    pending: HashMap<RequestId, Pending>,
    deadlines: BTreeMap<(Instant, RequestId), ()>,
    next_request: u64,
    tasks: JoinSet<()>,
    providers_shutdown: CancellationToken,
    /// Instances that have reported their devices at least once, or failed.
    settled: BTreeSet<InstanceId>,
    settle_waiters: Vec<oneshot::Sender<()>>,
}

impl Owner {
    fn start_instance(
        &mut self,
        id: InstanceId,
        spec: InstanceSpec,
        inbound: mpsc::Sender<Inbound>,
    ) {
        let (events_tx, mut events_rx) = mpsc::channel(4096);
        let (requests_tx, requests_rx) = mpsc::channel(1024);
        let driver = spec.provider.kind();
        let capabilities = spec.provider.capabilities();
        let cx = ProviderContext {
            instance: spec.name.clone(),
            events: events_tx,
            requests: requests_rx,
            shutdown: self.providers_shutdown.clone(),
        };
        let run = spec.provider.run(cx);
        let exit_tx = inbound.clone();
        self.tasks.spawn(async move {
            let result = run.await;
            let _ = exit_tx.send(Inbound::Exited(id, result)).await;
        });
        self.tasks.spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if inbound.send(Inbound::Event(id, event)).await.is_err() {
                    break;
                }
            }
        });
        self.instances.0.insert(
            id,
            Instance {
                name: spec.name,
                driver,
                capabilities,
                status: InstanceStatus::Starting,
                requests: requests_tx,
            },
        );
    }

    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut inbound: mpsc::Receiver<Inbound>,
        shutdown: CancellationToken,
    ) {
        loop {
            let next_deadline = self.deadlines.keys().next().map(|(at, _)| *at);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(message) = inbound.recv() => self.on_inbound(message).await,
                Some(request) = requests.recv() => self.on_request(request),
                _ = sleep_until(next_deadline) => self.expire_requests(),
            }
        }
        self.stop().await;
    }

    async fn stop(mut self) {
        self.providers_shutdown.cancel();
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(TapiError::new(
                ErrorKind::OutcomeUnknown,
                "the server shut down before the PBX answered",
            )));
        }
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("providers did not stop within 5 s; aborting them");
            self.tasks.shutdown().await;
        }
    }

    fn publish(&mut self, events: Vec<Event>) {
        let now = now_ms();
        for event in events {
            self.journal.publish(now, event);
        }
        metrics::gauge!("tapir_calls").set(self.tables.call_count() as f64);
    }

    async fn on_inbound(&mut self, message: Inbound) {
        match message {
            Inbound::Event(id, event) => self.on_provider_event(id, event).await,
            Inbound::Exited(id, result) => {
                let status = match result {
                    Ok(()) => InstanceStatus::Down {
                        reason: "stopped".into(),
                    },
                    Err(error) => {
                        tracing::error!(instance = %self.instance_name(id), %error,
                            "provider stopped");
                        InstanceStatus::Failed {
                            reason: error.to_string(),
                        }
                    }
                };
                self.set_status(id, status);
                self.mark_settled(id);
            }
        }
    }

    fn is_settled(&self) -> bool {
        self.instances.0.keys().all(|id| self.settled.contains(id))
    }

    fn mark_settled(&mut self, id: InstanceId) {
        self.settled.insert(id);
        if self.is_settled() {
            for waiter in self.settle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn instance_name(&self, id: InstanceId) -> String {
        self.instances
            .0
            .get(&id)
            .map(|i| i.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    fn set_status(&mut self, id: InstanceId, status: InstanceStatus) {
        let mut events = Vec::new();
        let line_status = if status == InstanceStatus::Up {
            LineStatus::InService
        } else {
            LineStatus::OutOfService
        };
        if let Some(instance) = self.instances.0.get_mut(&id) {
            if instance.status == status {
                return;
            }
            instance.status = status;
        }
        if line_status == LineStatus::OutOfService {
            self.tables
                .set_instance_lines_status(id, line_status, &mut events);
        }
        if let Some(info) = self.instance_info(id) {
            events.push(Event::InstanceChanged(info));
        }
        self.publish(events);
    }

    fn instance_info(&self, id: InstanceId) -> Option<InstanceInfo> {
        self.instances.0.get(&id).map(|i| InstanceInfo {
            id,
            name: i.name.clone(),
            driver: i.driver,
            status: i.status.clone(),
            lines: self.tables.line_count(id),
        })
    }

    fn capabilities(&self, id: InstanceId) -> Capabilities {
        self.instances
            .0
            .get(&id)
            .map(|i| i.capabilities)
            .unwrap_or(Capabilities::empty())
    }

    async fn on_provider_event(&mut self, id: InstanceId, event: ProviderEvent) {
        let mut events = Vec::new();
        let now = now_ms();
        match event {
            ProviderEvent::Up => self.set_status(id, InstanceStatus::Up),
            ProviderEvent::Down { reason } => self.set_status(id, InstanceStatus::Down { reason }),
            ProviderEvent::Synchronized {
                devices,
                calls,
                statuses,
            } => {
                let lines = match self.resolve_lines(id, devices).await {
                    Ok(lines) => lines,
                    Err(error) => {
                        tracing::error!(instance = %self.instance_name(id), %error,
                            "cannot assign line ids");
                        self.set_status(
                            id,
                            InstanceStatus::Failed {
                                reason: error.to_string(),
                            },
                        );
                        self.mark_settled(id);
                        return;
                    }
                };
                let keep: BTreeSet<LineId> = lines.iter().map(|(line, _)| *line).collect();
                let name = self.instance_name(id);
                self.tables.retain_lines(id, &keep, now, &mut events);
                self.tables.upsert_lines(id, &name, lines, &mut events);
                for status in statuses {
                    self.tables.apply_device_status(id, status, &mut events);
                }
                let present = calls.iter().map(|c| c.call.clone()).collect();
                self.tables.end_calls_except(id, &present, now, &mut events);
                let capabilities = self.capabilities(id);
                for report in calls {
                    self.tables
                        .apply_report(id, capabilities, report, now, &mut events);
                }
                metrics::gauge!("tapir_lines").set(self.tables.lines().len() as f64);
                if let Some(info) = self.instance_info(id) {
                    events.push(Event::InstanceChanged(info));
                }
                self.publish(std::mem::take(&mut events));
                self.mark_settled(id);
            }
            ProviderEvent::DeviceAdded(device) => {
                match self.resolve_lines(id, vec![device]).await {
                    Ok(lines) => {
                        let name = self.instance_name(id);
                        self.tables.upsert_lines(id, &name, lines, &mut events);
                    }
                    Err(error) => tracing::error!(%error, "cannot assign a line id"),
                }
            }
            ProviderEvent::DeviceRemoved(key) => {
                if let Some(line) = self.tables.line_by_device(id, &key) {
                    self.tables.remove_line(line, now, &mut events);
                }
            }
            ProviderEvent::DeviceStatus(status) => {
                self.tables.apply_device_status(id, status, &mut events)
            }
            ProviderEvent::Call(report) => {
                let capabilities = self.capabilities(id);
                self.tables
                    .apply_report(id, capabilities, *report, now, &mut events);
            }
            ProviderEvent::Completed { request, outcome } => self.complete(id, request, outcome),
        }
        self.publish(events);
    }

    /// Permanent ids for devices, from the store, off the async workers.
    async fn resolve_lines(
        &self,
        id: InstanceId,
        devices: Vec<Device>,
    ) -> Result<Vec<(LineId, Device)>, StoreError> {
        let store = self.store.clone();
        let instance = self.instance_name(id);
        let resolved = tokio::task::spawn_blocking(move || {
            let identities: Vec<DeviceIdentity<'_>> = devices
                .iter()
                .map(|d| DeviceIdentity {
                    key: &d.key.0,
                    address: &d.address,
                    name: &d.name,
                })
                .collect();
            let ids = match store.lock() {
                Ok(mut store) => store.line_ids(&instance, &identities),
                Err(poisoned) => poisoned.into_inner().line_ids(&instance, &identities),
            }?;
            Ok(ids.into_iter().zip(devices).collect())
        })
        .await;
        match resolved {
            Ok(result) => result,
            Err(join_error) => {
                tracing::error!(%join_error, "line id lookup panicked");
                Ok(Vec::new())
            }
        }
    }

    fn complete(
        &mut self,
        instance: InstanceId,
        request: RequestId,
        outcome: Result<Completion, TapiError>,
    ) {
        let Some(pending) = self.pending.remove(&request) else {
            tracing::warn!(%request, "a command completed after it was reported as outcome unknown");
            return;
        };
        self.deadlines.remove(&(pending.deadline, request));
        let result = outcome.map(|completion| CommandOutcome {
            request,
            call: match completion {
                Completion::Done => None,
                Completion::Call(call_ref) => Some(self.tables.call_id_for(instance, &call_ref)),
            },
        });
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind.as_str(),
        };
        metrics::counter!("tapir_commands_total", "command" => pending.command, "result" => label)
            .increment(1);
        let _ = pending.reply.send(result);
    }

    fn expire_requests(&mut self) {
        let now = Instant::now();
        while let Some(&(at, request)) = self.deadlines.keys().next() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, request));
            if let Some(pending) = self.pending.remove(&request) {
                tracing::warn!(%request, command = pending.command,
                    instance = %self.instance_name(pending.instance),
                    "the PBX did not answer in time; outcome unknown");
                metrics::counter!("tapir_commands_total", "command" => pending.command,
                    "result" => "outcome_unknown")
                .increment(1);
                let _ = pending.reply.send(Err(TapiError::new(
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "the PBX did not answer within {} ms; the command may or may not have \
                         taken effect and is not repeated",
                        self.config.command_timeout.as_millis()
                    ),
                )));
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Execute { command, reply } => self.execute(command, reply),
            Request::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Request::Line { id, reply } => {
                let _ = reply.send(self.tables.line(id));
            }
            Request::Call { id, reply } => {
                let _ = reply.send(self.tables.call(id));
            }
            Request::Instances { reply } => {
                let infos = self
                    .instances
                    .0
                    .keys()
                    .filter_map(|id| self.instance_info(*id))
                    .collect();
                let _ = reply.send(infos);
            }
            Request::WhenSettled { reply } => {
                if self.is_settled() {
                    let _ = reply.send(());
                } else {
                    self.settle_waiters.push(reply);
                }
            }
            Request::Subscribe { since, reply } => {
                let events = self.journal.receiver();
                let start = match since.and_then(|since| self.journal.since(since)) {
                    Some(missed) => SubscriptionStart::Replay(missed),
                    None => SubscriptionStart::Snapshot(self.snapshot()),
                };
                let _ = reply.send(Subscription { start, events });
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            seq: self.journal.seq(),
            instances: self
                .instances
                .0
                .keys()
                .filter_map(|id| self.instance_info(*id))
                .collect(),
            lines: self.tables.lines(),
            calls: self.tables.calls(),
        }
    }

    fn execute(
        &mut self,
        command: Command,
        reply: oneshot::Sender<Result<CommandOutcome, TapiError>>,
    ) {
        let name = command.name();
        let (instance, provider_command) = match route(&self.tables, &self.instances, &command) {
            Ok(routed) => routed,
            Err(error) => {
                metrics::counter!("tapir_commands_total", "command" => name,
                    "result" => error.kind.as_str())
                .increment(1);
                let _ = reply.send(Err(error));
                return;
            }
        };
        self.next_request += 1;
        let request = RequestId(self.next_request);
        let Some(target) = self.instances.0.get(&instance) else {
            let _ = reply.send(Err(TapiError::new(
                ErrorKind::InvalidLineState,
                "no such instance",
            )));
            return;
        };
        let sent = target.requests.try_send(ProviderRequest {
            id: request,
            command: provider_command,
        });
        if let Err(error) = sent {
            let (kind, why) = match error {
                mpsc::error::TrySendError::Full(_) => {
                    (ErrorKind::ResourceUnavailable, "is overloaded; try again")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    (ErrorKind::InvalidLineState, "is not running")
                }
            };
            let _ = reply.send(Err(TapiError::new(
                kind,
                format!("the provider of instance {} {why}", target.name),
            )));
            return;
        }
        let deadline = Instant::now() + self.config.command_timeout;
        self.deadlines.insert((deadline, request), ());
        self.pending.insert(
            request,
            Pending {
                reply,
                instance,
                command: name,
                deadline,
            },
        );
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
