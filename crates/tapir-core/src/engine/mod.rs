//! The owner task: the one place where lines and calls change.
//!
//! - `instances`: starting, stopping and reconfiguring providers; line ids and names.
//! - `commands`: routing commands to providers, their completion and deadlines.

mod commands;
mod instances;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tapir_model::{Capabilities, ErrorKind, InstanceId, RequestId, TapiError};
use tapir_numbers::{DialError, NumberPlan};
use tapir_provider::{
    CallReport, PbxIdentity, Provider, ProviderError, ProviderEvent, ProviderRequest, TraceSwitch,
};
use tapir_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::handle::{EngineHandle, Request, Subscription, SubscriptionStart};
use crate::journal::Journal;
use crate::now_ms;
use crate::routing::InstanceLookup;
use crate::tables::Tables;
use crate::template::LineNameTemplate;
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

/// How an instance's lines and numbers are presented to clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presentation {
    pub line_name: LineNameTemplate,
    /// The location and format for numbers; `None` passes numbers through as the PBX and the
    /// clients give them.
    pub numbers: Option<NumberPlan>,
}

impl Presentation {
    /// A number from the PBX, as clients see it.
    fn present(&self, number: &str) -> String {
        match &self.numbers {
            Some(plan) => plan.present(number),
            None => number.to_owned(),
        }
    }

    /// Presents every number of a call report.
    fn present_report(&self, report: &mut CallReport) {
        if self.numbers.is_none() {
            return;
        }
        for party in [
            &mut report.caller,
            &mut report.called,
            &mut report.connected,
            &mut report.redirecting,
            &mut report.redirection,
        ] {
            if let Some(number) = &party.number {
                party.number = Some(self.present(number));
            }
        }
    }

    /// A number from a client, as the PBX must receive it.
    fn dialable(&self, number: &str) -> Result<String, TapiError> {
        let Some(plan) = &self.numbers else {
            let number = number.trim();
            if number.is_empty() {
                return Err(TapiError::new(
                    ErrorKind::InvalidAddress,
                    "the number to dial is empty",
                ));
            }
            return Ok(number.to_owned());
        };
        plan.dialable(number).map_err(|error| {
            let message = match error {
                DialError::InvalidCharacter {
                    character,
                    position,
                } => format!(
                    "cannot dial {number:?}: {character:?} at position {} is not a dialable \
                     character",
                    position + 1
                ),
                other => other.to_string(),
            };
            TapiError::new(ErrorKind::InvalidAddress, message)
        })
    }
}

/// One configured PBX connection, ready to start.
pub struct InstanceSpec {
    pub name: String,
    pub provider: Box<dyn Provider>,
    pub presentation: Presentation,
}

/// A change to the running set of instances (a config reload).
pub enum InstanceChange {
    /// Start a new instance.
    Add(InstanceSpec),
    /// Stop an instance and forget its lines (their ids stay in the store).
    Remove(String),
    /// Stop an instance and start it again with new settings; its line ids stay.
    Replace(InstanceSpec),
}

/// Why the engine could not start or reconfigure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("two instances are named {0:?}; instance names must be unique")]
    DuplicateInstance(String),
    #[error("no instance is named {0:?}")]
    UnknownInstance(String),
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
        let epoch = now_ms();
        let mut owner = Owner {
            epoch,
            journal: Journal::new(config.resume_buffer, config.subscriber_backlog),
            config,
            store: Arc::new(Mutex::new(store)),
            tables: Tables::default(),
            instances: Instances::default(),
            next_instance: 0,
            pending: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_request: 0,
            tasks: JoinSet::new(),
            providers_shutdown: shutdown.child_token(),
            inbound: inbound_tx,
            settled: BTreeSet::new(),
            settle_waiters: Vec::new(),
            snapshot_cache: None,
        };
        for spec in instances {
            owner.start_instance(spec);
        }
        let task = tokio::spawn(owner.run(request_rx, inbound_rx, shutdown));
        Ok((EngineHandle::new(request_tx, epoch), task))
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
    identity: PbxIdentity,
    presentation: Presentation,
    status: InstanceStatus,
    /// When `status` last changed.
    status_since: tapir_model::Timestamp,
    requests: mpsc::Sender<ProviderRequest>,
    /// Stops this instance's provider alone.
    stop: CancellationToken,
    /// Whether the provider traces its raw PBX traffic.
    trace: TraceSwitch,
}

#[derive(Default)]
struct Instances(BTreeMap<InstanceId, Instance>);

impl Instances {
    fn by_name(&self, name: &str) -> Option<InstanceId> {
        self.0
            .iter()
            .find(|(_, i)| i.name == name)
            .map(|(id, _)| *id)
    }
}

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

    fn by_name(&self, name: &str) -> Option<InstanceId> {
        Instances::by_name(self, name)
    }

    fn dialable(&self, instance: InstanceId, number: &str) -> Result<String, TapiError> {
        match self.0.get(&instance) {
            Some(instance) => instance.presentation.dialable(number),
            None => Presentation::default().dialable(number),
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
    /// This run's event stream: sequence numbers start again in every run.
    epoch: u64,
    config: EngineConfig,
    journal: Journal,
    store: Arc<Mutex<Store>>,
    tables: Tables,
    instances: Instances,
    next_instance: u32,
    pending: HashMap<RequestId, Pending>,
    deadlines: BTreeMap<(Instant, RequestId), ()>,
    next_request: u64,
    tasks: JoinSet<()>,
    providers_shutdown: CancellationToken,
    /// Kept to start instances added later.
    inbound: mpsc::Sender<Inbound>,
    /// Instances that have reported their devices at least once, or failed.
    settled: BTreeSet<InstanceId>,
    settle_waiters: Vec<oneshot::Sender<()>>,
    snapshot_cache: Option<Arc<Snapshot>>,
}

impl Owner {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut inbound: mpsc::Receiver<Inbound>,
        shutdown: CancellationToken,
    ) {
        let starting: Vec<InstanceId> = self.instances.0.keys().copied().collect();
        for id in starting {
            self.load_known_lines(id).await;
        }
        loop {
            let next_deadline = self.deadlines.keys().next().map(|(at, _)| *at);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(message) = inbound.recv() => self.on_inbound(message).await,
                Some(request) = requests.recv() => self.on_request(request).await,
                _ = sleep_until(next_deadline) => self.expire_requests(),
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
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
        if !events.is_empty() {
            self.snapshot_cache = None;
        }
        let now = now_ms();
        for event in events {
            self.journal.publish(now, event);
        }
        metrics::gauge!("tapir_calls").set(self.tables.call_count() as f64);
    }

    async fn on_inbound(&mut self, message: Inbound) {
        match message {
            Inbound::Event(id, event) if self.instances.0.contains_key(&id) => {
                self.on_provider_event(id, event).await
            }
            Inbound::Exited(id, result) if self.instances.0.contains_key(&id) => {
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
            // A stopped instance's last words.
            Inbound::Event(..) | Inbound::Exited(..) => {}
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

    fn instance_info(&self, id: InstanceId) -> Option<InstanceInfo> {
        self.instances.0.get(&id).map(|i| InstanceInfo {
            id,
            name: i.name.clone(),
            driver: i.driver,
            status: i.status.clone(),
            since: i.status_since,
            lines: self.tables.line_count(id),
            capabilities: i.capabilities,
        })
    }

    fn capabilities(&self, id: InstanceId) -> Capabilities {
        self.instances
            .0
            .get(&id)
            .map(|i| i.capabilities)
            .unwrap_or(Capabilities::empty())
    }

    async fn on_request(&mut self, request: Request) {
        match request {
            Request::Execute { command, reply } => self.execute(command, reply),
            Request::Snapshot { reply } => {
                let _ = reply.send(self.shared_snapshot());
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
                    None => SubscriptionStart::Snapshot(self.shared_snapshot()),
                };
                let _ = reply.send(Subscription { start, events });
            }
            Request::Purge { lines, reply } => {
                let _ = reply.send(self.purge(lines).await);
            }
            Request::SetTrace {
                instance,
                enabled,
                reply,
            } => {
                let result = match self.instances.by_name(&instance) {
                    Some(id) => {
                        if let Some(instance) = self.instances.0.get(&id) {
                            instance.trace.set(enabled);
                        }
                        Ok(())
                    }
                    None => Err(StartError::UnknownInstance(instance)),
                };
                let _ = reply.send(result);
            }
            Request::Reconfigure { changes, reply } => {
                let _ = reply.send(self.reconfigure(changes).await);
            }
        }
    }

    /// The snapshot at the current sequence number, built once: every change publishes an
    /// event, so an unchanged sequence number means unchanged state.
    fn shared_snapshot(&mut self) -> Arc<Snapshot> {
        if let Some(cached) = &self.snapshot_cache
            && cached.seq == self.journal.seq()
        {
            return cached.clone();
        }
        let snapshot = Arc::new(self.snapshot());
        self.snapshot_cache = Some(snapshot.clone());
        snapshot
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            epoch: self.epoch,
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
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
