//! The provider's owner loop: connect, log in, wait for `FullyBooted`, synchronise, follow
//! events and serve requests; on any failure report `Down`, back off and start again.
//!
//! One task owns the connection, the mapping and the table of actions in flight; nothing is
//! spawned. A request whose action was sent when the link failed completes as
//! `outcome_unknown` and is never sent again: Asterisk may or may not have carried it out.

use std::collections::HashMap;
use std::time::Duration;

use tapir_model::{ErrorKind, Forward, RequestId, TapiError};
use tapir_provider::{
    Completion, DeviceKey, DeviceStatus, ProviderContext, ProviderError, ProviderEvent,
    ProviderRequest,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

use crate::commands::{self, DND_FAMILY, Plan, Tolerate, forward_family};
use crate::config::{AmiConfig, FeatureStore};
use crate::connection::{Connection, LinkError, Reply};
use crate::mapping::Tracker;
use crate::mapping::lines::Lines;
use crate::message::{Action, Message};
use tapir_provider::backoff::Backoff;

/// How long Asterisk may take to finish booting after the login.
const BOOT_WAIT: Duration = Duration::from_secs(60);

/// Why a session ended.
#[derive(Debug)]
enum End {
    Shutdown,
    CoreGone,
    Link(LinkError),
}

impl From<LinkError> for End {
    fn from(error: LinkError) -> End {
        End::Link(error)
    }
}

/// Runs the provider until shutdown.
pub async fn run(config: AmiConfig, mut cx: ProviderContext) -> Result<(), ProviderError> {
    let mut backoff = Backoff::new(
        Duration::from_millis(config.reconnect_min_ms),
        Duration::from_millis(config.reconnect_max_ms),
    );
    let mut announced_down = false;
    loop {
        let mut session = Session::new(&config);
        let end = session.run(&mut cx).await;
        // Whatever was in flight may or may not have happened; it is never resent.
        session.abandon(&cx.events).await?;
        let error = match end {
            End::Shutdown => return Ok(()),
            End::CoreGone => return Err(ProviderError::CoreGone),
            End::Link(error) => error,
        };
        if session.synchronized {
            backoff.reset();
        }
        let reason = error.to_string();
        tracing::warn!(instance = %cx.instance, %reason, "Asterisk link lost");
        if session.up_sent || !announced_down {
            send(&cx.events, ProviderEvent::Down { reason }).await?;
            announced_down = true;
        }
        if wait_down(backoff.next_delay(), &mut cx).await? {
            return Ok(());
        }
    }
}

/// Waits out the back-off, refusing requests meanwhile; true when shutdown came.
async fn wait_down(delay: Duration, cx: &mut ProviderContext) -> Result<bool, ProviderError> {
    let until = sleep(delay);
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = cx.shutdown.cancelled() => return Ok(true),
            () = &mut until => return Ok(false),
            Some(request) = cx.requests.recv() => {
                let error = TapiError::new(
                    ErrorKind::InvalidLineState,
                    "the link to Asterisk is down; reconnecting",
                );
                complete(&cx.events, request.id, Err(error)).await?;
            }
        }
    }
}

/// What an action in flight is for.
#[derive(Debug, Clone)]
enum Purpose {
    Ping,
    /// One action of a request; the request completes when all of its actions answered.
    Command {
        request: RequestId,
        tolerate: Tolerate,
    },
    /// An Originate: only a refusal completes here; success waits for the channel.
    Originate,
    /// A Park: only a refusal completes here; success waits for `ParkedCall`.
    Park,
    /// An Atxfer: the answer completes the consultation request either way.
    Consult,
    /// A list queried again after a `Reload`.
    Relist,
}

/// One connected link's state.
struct Session<'a> {
    config: &'a AmiConfig,
    tracker: Tracker,
    in_flight: HashMap<String, Purpose>,
    /// Per request: actions still unanswered, and the first failure.
    requests: HashMap<RequestId, (usize, Option<TapiError>)>,
    /// Replies of the lists asked for after a reload, by ActionID.
    relists: HashMap<String, Vec<Message>>,
    up_sent: bool,
    synchronized: bool,
}

impl<'a> Session<'a> {
    fn new(config: &'a AmiConfig) -> Session<'a> {
        Session {
            config,
            tracker: Tracker::default(),
            in_flight: HashMap::new(),
            requests: HashMap::new(),
            relists: HashMap::new(),
            up_sent: false,
            synchronized: false,
        }
    }

    async fn run(&mut self, cx: &mut ProviderContext) -> End {
        let trace = cx.trace.clone();
        let connecting = async {
            let mut connection = Connection::open(self.config).await?.traced(trace);
            connection
                .login(self.config, &self.config.events.join(","))
                .await?;
            wait_fully_booted(&mut connection).await?;
            Ok::<Connection, LinkError>(connection)
        };
        let mut connection = tokio::select! {
            () = cx.shutdown.cancelled() => return End::Shutdown,
            result = connecting => match result {
                Ok(connection) => connection,
                Err(error) => return End::Link(error),
            },
        };
        tracing::info!(instance = %cx.instance, version = %connection.version, "logged in to Asterisk");
        if send(&cx.events, ProviderEvent::Up).await.is_err() {
            return End::CoreGone;
        }
        self.up_sent = true;
        let synchronized = tokio::select! {
            () = cx.shutdown.cancelled() => return End::Shutdown,
            result = self.synchronize(&mut connection, &cx.events) => result,
        };
        if let Err(end) = synchronized {
            return end;
        }
        self.synchronized = true;
        self.serve(&mut connection, cx).await
    }

    /// Reads the PBX's full state and sends it as one `Synchronized`.
    async fn synchronize(
        &mut self,
        connection: &mut Connection,
        events: &mpsc::Sender<ProviderEvent>,
    ) -> Result<(), End> {
        let limit = self.config.connect_timeout();
        let (list_endpoints, _) = self.config.endpoint_technology.endpoint_list();
        let actions = [
            list_endpoints,
            "ExtensionStateList",
            "CoreShowChannels",
            "DeviceStateList",
        ]
        .map(|name| Action::new(name, &connection.next_id()))
        .to_vec();
        let replies = connection.call_all(actions, limit).await?;
        let [endpoints, hints, channels, device_states] = &replies[..] else {
            return Err(End::Link(LinkError::Protocol(
                "missing status replies".into(),
            )));
        };
        self.tracker = Tracker::new(self.build_lines(&endpoints.items, &hints.items));
        // Asterisk before 13 has no DeviceStateList: every line is then taken as reachable.
        self.tracker.load_device_states(&device_states.items);
        let calls = self.tracker.load(&channels.items);
        let statuses = self.statuses(connection).await?;
        let synchronized = ProviderEvent::Synchronized {
            devices: self.tracker.lines().devices(),
            calls,
            statuses,
            out_of_service: self.tracker.lines().unreachable(),
        };
        send(events, synchronized).await.map_err(|_| End::CoreGone)
    }

    fn build_lines(&self, endpoints: &[Message], hints: &[Message]) -> Lines {
        let config = self.config;
        Lines::build(
            config.endpoint_technology,
            endpoints,
            hints,
            &config.extension_map,
            |endpoint, extension| config.line_name(endpoint, extension),
        )
    }

    /// Forwarding and do-not-disturb of every line, from AstDB when configured.
    async fn statuses(&self, connection: &mut Connection) -> Result<Vec<DeviceStatus>, End> {
        let devices = self.tracker.lines().devices();
        if self.config.feature_store == FeatureStore::None {
            return Ok(devices.into_iter().map(|d| empty_status(d.key)).collect());
        }
        let families = [
            DND_FAMILY,
            forward_family(tapir_model::ForwardMode::Unconditional),
            forward_family(tapir_model::ForwardMode::Busy),
            forward_family(tapir_model::ForwardMode::NoAnswer),
        ];
        let mut actions = Vec::new();
        for device in &devices {
            for family in families {
                actions.push(
                    Action::new("DBGet", &connection.next_id())
                        .with("Family", family)
                        .with("Key", &device.address),
                );
            }
        }
        let replies = connection
            .call_all(actions, self.config.connect_timeout())
            .await?;
        Ok(devices
            .into_iter()
            .zip(replies.chunks(families.len()))
            .map(|(device, replies)| status_from_db(device.key, replies))
            .collect())
    }

    /// Follows events and serves requests until the link fails or shutdown.
    async fn serve(&mut self, connection: &mut Connection, cx: &mut ProviderContext) -> End {
        let interval = self.config.ping_interval();
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let mut requests_open = true;
        loop {
            let next_check = ping_sent.unwrap_or(last_heard) + interval;
            let step = tokio::select! {
                biased;
                () = cx.shutdown.cancelled() => return End::Shutdown,
                message = connection.recv() => match message {
                    Ok(message) => {
                        last_heard = Instant::now();
                        ping_sent = None;
                        self.on_message(connection, &message, &cx.events).await
                    }
                    Err(error) => Err(End::Link(error)),
                },
                request = cx.requests.recv(), if requests_open => match request {
                    Some(request) => self.on_request(connection, request, &cx.events).await,
                    None => {
                        requests_open = false;
                        Ok(())
                    }
                },
                () = tokio::time::sleep_until(next_check) => {
                    if ping_sent.is_some() {
                        Err(End::Link(LinkError::Timeout(interval, "answering a ping")))
                    } else {
                        ping_sent = Some(Instant::now());
                        self.ping(connection).await
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn ping(&mut self, connection: &mut Connection) -> Result<(), End> {
        let id = connection.next_id();
        self.in_flight.insert(id.clone(), Purpose::Ping);
        connection.send(Action::new("Ping", &id)).await?;
        Ok(())
    }

    async fn on_message(
        &mut self,
        connection: &mut Connection,
        message: &Message,
        events: &mpsc::Sender<ProviderEvent>,
    ) -> Result<(), End> {
        let mut out = Vec::new();
        if let Some(id) = message.action_id()
            && let Some(purpose) = self.in_flight.get(id).cloned()
            && message.event() != Some("OriginateResponse")
        {
            self.on_reply(id, purpose, message, &mut out);
        } else if message.event() == Some("Reload") {
            self.relist(connection).await?;
        } else if message.event() == Some("Shutdown") {
            return Err(End::Link(LinkError::Protocol(
                "Asterisk is shutting down".into(),
            )));
        } else {
            self.tracker.handle(message, &mut out);
        }
        for event in out {
            send(events, event).await.map_err(|_| End::CoreGone)?;
        }
        Ok(())
    }

    /// A response or list item for an action in flight.
    fn on_reply(
        &mut self,
        id: &str,
        purpose: Purpose,
        message: &Message,
        out: &mut Vec<ProviderEvent>,
    ) {
        let success = message
            .response()
            .map(|r| r.eq_ignore_ascii_case("Success"));
        match purpose {
            Purpose::Ping => {
                self.in_flight.remove(id);
            }
            Purpose::Command { request, tolerate } => {
                self.in_flight.remove(id);
                let error = (success == Some(false))
                    .then(|| command_error(message, tolerate))
                    .flatten();
                self.answered(request, error, out);
            }
            Purpose::Originate => {
                self.in_flight.remove(id);
                if success == Some(false)
                    && let Some(request) = self.tracker.cancel_originate(id)
                {
                    let error = command_error(message, Tolerate::Nothing);
                    out.extend(error.map(|e| completed(request, Err(e))));
                }
            }
            Purpose::Park => {
                self.in_flight.remove(id);
                if success == Some(false)
                    && let Some(request) = self.tracker.cancel_park(id)
                {
                    let error = command_error(message, Tolerate::Nothing);
                    out.extend(error.map(|e| completed(request, Err(e))));
                }
            }
            Purpose::Consult => {
                self.in_flight.remove(id);
                if success == Some(true) {
                    self.tracker.start_consultation(id, out);
                } else if let Some(request) = self.tracker.cancel_consult(id) {
                    let error = command_error(message, Tolerate::Nothing).unwrap_or_else(|| {
                        TapiError::new(ErrorKind::OperationFailed, "Asterisk refused the Atxfer")
                    });
                    out.push(completed(request, Err(error)));
                }
            }
            Purpose::Relist => self.relist_item(id, message, out),
        }
    }

    /// One action of `request` answered; completes it when it was the last.
    fn answered(
        &mut self,
        request: RequestId,
        error: Option<TapiError>,
        out: &mut Vec<ProviderEvent>,
    ) {
        let Some((remaining, first_error)) = self.requests.get_mut(&request) else {
            return;
        };
        *remaining -= 1;
        if first_error.is_none() {
            *first_error = error;
        }
        if *remaining == 0
            && let Some((_, error)) = self.requests.remove(&request)
        {
            out.push(completed(request, error.map_or(Ok(Completion::Done), Err)));
        }
    }

    async fn on_request(
        &mut self,
        connection: &mut Connection,
        request: ProviderRequest,
        events: &mpsc::Sender<ProviderEvent>,
    ) -> Result<(), End> {
        let config = self.config;
        let mut next_id = || connection.next_id();
        let plan = match commands::plan(config, &self.tracker, &request, &mut next_id) {
            Ok(plan) => plan,
            Err(error) => {
                return complete(events, request.id, Err(error))
                    .await
                    .map_err(|_| End::CoreGone);
            }
        };
        self.note_effects(&request);
        match plan {
            Plan::Single(action) => {
                self.track(request.id, vec![(action, Tolerate::Nothing)], connection)
                    .await
            }
            Plan::Batch(actions) => self.track(request.id, actions, connection).await,
            Plan::Originate(action, pending) => {
                self.in_flight
                    .insert(action.id().to_string(), Purpose::Originate);
                self.tracker.expect_originate(pending);
                connection.send(action).await.map_err(End::Link)
            }
            Plan::Park(action, pending) => {
                self.in_flight
                    .insert(action.id().to_string(), Purpose::Park);
                self.tracker.expect_park(pending);
                connection.send(action).await.map_err(End::Link)
            }
            Plan::Consult(action, pending) => {
                self.in_flight
                    .insert(action.id().to_string(), Purpose::Consult);
                self.tracker.expect_consult(pending);
                connection.send(action).await.map_err(End::Link)
            }
        }
    }

    /// Tells the mapping what a command will cause, so the events read right.
    fn note_effects(&mut self, request: &ProviderRequest) {
        match &request.command {
            tapir_provider::ProviderCommand::Drop { call } => self.tracker.note_drop(&call.0),
            tapir_provider::ProviderCommand::CompleteTransfer { held, .. } => {
                self.tracker.note_drop(&held.0);
            }
            tapir_provider::ProviderCommand::Redirect { call, .. } => {
                self.tracker.note_redirect(&call.0);
            }
            _ => {}
        }
    }

    async fn track(
        &mut self,
        request: RequestId,
        actions: Vec<(Action, Tolerate)>,
        connection: &mut Connection,
    ) -> Result<(), End> {
        self.requests.insert(request, (actions.len(), None));
        for (action, tolerate) in actions {
            self.in_flight.insert(
                action.id().to_string(),
                Purpose::Command { request, tolerate },
            );
            connection.send(action).await?;
        }
        Ok(())
    }

    /// After a `Reload`, asks for the endpoints and hints again to add and remove lines.
    async fn relist(&mut self, connection: &mut Connection) -> Result<(), End> {
        let (list_endpoints, _) = self.config.endpoint_technology.endpoint_list();
        for name in [list_endpoints, "ExtensionStateList"] {
            let id = connection.next_id();
            self.in_flight.insert(id.clone(), Purpose::Relist);
            self.relists.insert(id.clone(), Vec::new());
            connection.send(Action::new(name, &id)).await?;
        }
        Ok(())
    }

    fn relist_item(&mut self, id: &str, message: &Message, out: &mut Vec<ProviderEvent>) {
        let done =
            message.is_list_end() || (message.response().is_some() && !message.starts_list());
        if message.event().is_some()
            && !done
            && let Some(items) = self.relists.get_mut(id)
        {
            items.push(message.clone());
        }
        if !done {
            return;
        }
        self.in_flight.remove(id);
        let waiting = self
            .in_flight
            .values()
            .any(|p| matches!(p, Purpose::Relist));
        if waiting {
            return;
        }
        let mut lists: Vec<(String, Vec<Message>)> = self.relists.drain().collect();
        lists.sort_by(|a, b| a.0.cmp(&b.0));
        let (_, entry) = self.config.endpoint_technology.endpoint_list();
        let (endpoints, hints): (Vec<Message>, Vec<Message>) = lists
            .into_iter()
            .flat_map(|(_, items)| items)
            .partition(|m| m.event() == Some(entry));
        let lines = self.build_lines(&endpoints, &hints);
        for device in lines.missing_from(self.tracker.lines()) {
            out.push(ProviderEvent::DeviceAdded(device));
        }
        for device in self.tracker.lines().missing_from(&lines) {
            out.push(ProviderEvent::DeviceRemoved(device.key));
        }
        self.tracker.set_lines(lines);
    }

    /// Completes every request still in flight as `outcome_unknown`.
    async fn abandon(&mut self, events: &mpsc::Sender<ProviderEvent>) -> Result<(), ProviderError> {
        let mut requests: Vec<RequestId> = self.requests.drain().map(|(r, _)| r).collect();
        requests.extend(self.tracker.take_pending());
        requests.sort();
        requests.dedup();
        for request in requests {
            let error = TapiError::new(
                ErrorKind::OutcomeUnknown,
                "the link to Asterisk failed before the command was confirmed; it is not repeated",
            );
            complete(events, request, Err(error)).await?;
        }
        self.in_flight.clear();
        Ok(())
    }
}

/// Reads until Asterisk says it has finished booting.
async fn wait_fully_booted(connection: &mut Connection) -> Result<(), LinkError> {
    let wait = async {
        loop {
            if connection.recv().await?.event() == Some("FullyBooted") {
                return Ok(());
            }
        }
    };
    timeout(BOOT_WAIT, wait)
        .await
        .map_err(|_| LinkError::Timeout(BOOT_WAIT, "waiting for FullyBooted"))?
}

/// The error an `Error` response means for a command, or `None` when it is tolerated.
fn command_error(message: &Message, tolerate: Tolerate) -> Option<TapiError> {
    let text = message.text("Message");
    if tolerate == Tolerate::MissingEntry && text.to_ascii_lowercase().contains("not found") {
        return None;
    }
    let kind = if text.to_ascii_lowercase().contains("no such channel") {
        ErrorKind::InvalidCall
    } else {
        ErrorKind::OperationFailed
    };
    Some(TapiError::new(kind, format!("Asterisk: {text}")))
}

fn status_from_db(device: DeviceKey, replies: &[Reply]) -> DeviceStatus {
    let value = |index: usize| {
        let reply = replies.get(index)?;
        let item = reply.items.first()?;
        reply
            .is_success()
            .then(|| item.text("Val").to_string())
            .filter(|v| !v.is_empty())
    };
    let forwards = tapir_model::ForwardMode::ALL
        .iter()
        .enumerate()
        .filter_map(|(index, mode)| {
            value(index + 1).map(|destination| Forward {
                mode: *mode,
                destination,
            })
        })
        .collect();
    DeviceStatus {
        device,
        forwards,
        do_not_disturb: value(0).is_some_and(|v| v.eq_ignore_ascii_case("YES")),
    }
}

fn empty_status(device: DeviceKey) -> DeviceStatus {
    DeviceStatus {
        device,
        forwards: Vec::new(),
        do_not_disturb: false,
    }
}

fn completed(request: RequestId, outcome: Result<Completion, TapiError>) -> ProviderEvent {
    ProviderEvent::Completed { request, outcome }
}

async fn complete(
    events: &mpsc::Sender<ProviderEvent>,
    request: RequestId,
    outcome: Result<Completion, TapiError>,
) -> Result<(), ProviderError> {
    send(events, completed(request, outcome)).await
}

async fn send(
    events: &mpsc::Sender<ProviderEvent>,
    event: ProviderEvent,
) -> Result<(), ProviderError> {
    events
        .send(event)
        .await
        .map_err(|_| ProviderError::CoreGone)
}
