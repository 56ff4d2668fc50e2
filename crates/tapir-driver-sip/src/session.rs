//! The provider's owner loop: it owns the mapping, the lines' service state and the commands
//! in flight. Subscriptions, the keep-alive and each command run as tasks of `JoinSet`s that
//! report back over channels; nothing is detached.
//!
//! The instance is up while the registrar answers and at least one line's subscription is
//! active: then `Up` and one `Synchronized` (after every line has had its first NOTIFY, or a
//! short grace period) carry every line and every live call. When the registrar stops
//! answering the keep-alive, or the last subscription fails, the instance is `Down` and the
//! core shows every line out of service; when the registrar answers again every line
//! subscribes anew (it may have restarted and forgotten them). A single line whose
//! subscription fails while others work goes out of service on its own (its calls end) and
//! comes back when its subscription is accepted again.
//!
//! With `registration_poll_ms`, usrloc is read over JSON-RPC on that period: a line whose
//! phone is not registered is out of service too (its calls are still followed: the
//! subscription works), and back in service once the phone registers again.
//!
//! With `evapi`, a task follows Kamailio's evapi feed (module `evapi`): hold, resume and
//! transfers go to the mapping. The feed is optional in every sense: the instance's state
//! never depends on it, and without it calls are followed from dialog-info alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::Method;
use tapir_model::{CallState, ErrorKind, RequestId, TapiError};
use tapir_provider::{
    CallRef, CallReport, Completion, Device, DeviceKey, ProviderCommand, ProviderContext,
    ProviderError, ProviderEvent, ProviderRequest,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

use crate::config::{Line, SipConfig, is_user_part};
use crate::control::{self, MakeCall};
use crate::dialog_info::{self, uri_user};
use crate::evapi::{self, FeedEvent, FeedSettings};
use crate::mapping::{Applied, LineSpec, Tracker, Transfer};
use crate::phone_control::{self, PhoneAction, PhoneRequest};
use crate::rpc::Rpc;
use crate::stack::{Stack, uri};
use crate::status::Failure;
use crate::subscription::{self, LineEvent, Settings, Signal};

/// How long `Up` waits for every line's first NOTIFY before synchronising what it has.
const SYNC_GRACE: Duration = Duration::from_secs(2);

/// What a command task reports.
enum Outcome {
    Made {
        request: RequestId,
        key: u64,
        call: CallRef,
        result: Result<(), TapiError>,
    },
    Dropped {
        request: RequestId,
        call_id: String,
        result: Result<(), TapiError>,
    },
    /// The line's phone took (or refused) an answer, hold or resume request.
    PhoneAsked {
        request: RequestId,
        action: PhoneAction,
        call: CallRef,
        result: Result<(), TapiError>,
    },
}

/// A drop whose `dlg.end_dlg` went through, waiting for the dialog-info to confirm.
struct PendingDrop {
    request: RequestId,
    call_id: String,
    deadline: Instant,
}

/// A transfer the evapi feed reported, waiting for its new dialog in the dialog-info.
struct PendingTransfer {
    key: u64,
    deadline: Instant,
}

/// An answer the phone took, waiting for the dialog-info to show the call connected.
struct PendingAnswer {
    request: RequestId,
    call: CallRef,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct LineState {
    active: bool,
    /// The first NOTIFY of the current subscription arrived.
    notified: bool,
    /// At least one subscription attempt ended (for the first synchronisation).
    tried: bool,
    /// Whether the phone is registered, when registrations are followed and were read.
    registered: Option<bool>,
}

impl LineState {
    /// In service: subscribed, and not known to be unregistered.
    fn in_service(&self) -> bool {
        self.active && self.registered != Some(false)
    }
}

/// Runs the provider until shutdown.
pub async fn run(config: SipConfig, cx: ProviderContext) -> Result<(), ProviderError> {
    let lines = config.expand_lines()?;
    let stack = Stack::start(&config)
        .await
        .map_err(|e| ProviderError::Config(e.to_string()))?;
    let stack = Arc::new(stack);
    tracing::info!(instance = %cx.instance, local = %stack.local(), registrar = %config.registrar_address(),
        lines = lines.len(), "SIP provider started");
    let mut owner = Owner::new(config, lines, stack.clone(), cx);
    let result = owner.run().await;
    owner.stop().await;
    drop(owner);
    if let Ok(stack) = Arc::try_unwrap(stack) {
        stack.shutdown().await;
    }
    result
}

struct Owner {
    config: SipConfig,
    lines: Vec<Line>,
    stack: Arc<Stack>,
    cx: ProviderContext,
    tracker: Tracker,
    states: BTreeMap<DeviceKey, LineState>,
    signals: BTreeMap<DeviceKey, mpsc::Sender<Signal>>,
    background: JoinSet<()>,
    commands: JoinSet<Outcome>,
    rpc: Option<Rpc>,
    up: bool,
    registrar_ok: bool,
    sync_deadline: Option<Instant>,
    /// `Down` was sent since the last `Up` (or at start): it is said once, not per retry.
    down_reported: bool,
    drops: Vec<PendingDrop>,
    answers: Vec<PendingAnswer>,
    transfers: Vec<PendingTransfer>,
    /// Answer and hold are offered (every line's phone takes remote control).
    remote_control: bool,
}

fn device_of(line: &Line) -> DeviceKey {
    DeviceKey(line.aor.clone())
}

impl Owner {
    fn new(config: SipConfig, lines: Vec<Line>, stack: Arc<Stack>, cx: ProviderContext) -> Owner {
        let specs = lines
            .iter()
            .map(|l| LineSpec {
                device: device_of(l),
                user: l.user.clone(),
                name: l.name.clone(),
            })
            .collect();
        let tracker = Tracker::new(specs, &config.controller_user);
        let rpc = config
            .rpc
            .clone()
            .map(|endpoint| Rpc::new(endpoint, config.request_timeout()));
        Owner {
            tracker,
            states: lines
                .iter()
                .map(|l| (device_of(l), LineState::default()))
                .collect(),
            signals: BTreeMap::new(),
            background: JoinSet::new(),
            commands: JoinSet::new(),
            rpc,
            up: false,
            registrar_ok: true,
            sync_deadline: None,
            down_reported: false,
            drops: Vec::new(),
            answers: Vec::new(),
            transfers: Vec::new(),
            remote_control: config.every_phone_is_remote_controlled(),
            config,
            lines,
            stack,
            cx,
        }
    }

    async fn run(&mut self) -> Result<(), ProviderError> {
        let (line_tx, mut line_rx) = mpsc::channel(1024);
        let (ping_tx, mut ping_rx) = mpsc::channel(8);
        let (registration_tx, mut registration_rx) = mpsc::channel(2);
        let (feed_tx, mut feed_rx) = mpsc::channel(256);
        let stop = self.cx.shutdown.child_token();
        for line in self.lines.clone() {
            let (signal_tx, signal_rx) = mpsc::channel(4);
            self.signals.insert(device_of(&line), signal_tx);
            let settings = Settings {
                device: device_of(&line),
                aor: line.aor.clone(),
                watcher: self.config.controller_user.clone(),
                watcher_domain: self.config.registrar.host.clone(),
                expires: self.config.subscription_expires_s,
                limit: self.config.request_timeout(),
                retry_min: Duration::from_millis(self.config.retry_min_ms),
                retry_max: Duration::from_millis(self.config.retry_max_ms),
            };
            self.background.spawn(subscription::run(
                self.stack.clone(),
                settings,
                line_tx.clone(),
                signal_rx,
                stop.clone(),
            ));
        }
        self.background.spawn(keepalive(
            self.stack.clone(),
            self.config.clone(),
            ping_tx,
            stop.clone(),
        ));
        if let (Some(period), Some(rpc)) = (self.config.registration_poll_ms, self.rpc.clone()) {
            self.background.spawn(poll_registrations(
                rpc,
                Duration::from_millis(period),
                registration_tx,
                stop.clone(),
            ));
        }
        if let Some(endpoint) = self.config.evapi.clone() {
            let settings = FeedSettings {
                endpoint,
                connect_timeout: self.config.request_timeout(),
                retry_min: Duration::from_millis(self.config.retry_min_ms),
                retry_max: Duration::from_millis(self.config.retry_max_ms),
            };
            self.background
                .spawn(evapi::run(settings, feed_tx, stop.clone()));
        } else {
            drop(feed_tx);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            let sync_at = self
                .sync_deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = self.cx.shutdown.cancelled() => return Ok(()),
                Some(event) = line_rx.recv() => self.on_line(event).await?,
                Some(alive) = ping_rx.recv() => self.on_ping(alive).await?,
                Some(registered) = registration_rx.recv() => self.on_registrations(registered).await?,
                Some(event) = feed_rx.recv() => self.on_feed(event).await?,
                Some(request) = self.cx.requests.recv() => self.on_request(request).await?,
                Some(done) = self.commands.join_next(), if !self.commands.is_empty() => {
                    if let Ok(outcome) = done {
                        self.on_outcome(outcome).await?;
                    }
                }
                () = sleep_until(sync_at), if self.sync_deadline.is_some() => {
                    self.sync_deadline = None;
                    self.synchronize(true).await?;
                }
                _ = tick.tick() => self.check_pending(Instant::now()).await?,
            }
        }
    }

    /// Stops the subscriptions (they unsubscribe) and the commands in flight.
    async fn stop(&mut self) {
        self.commands.abort_all();
        let wait = async { while self.background.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(3), wait)
            .await
            .is_err()
        {
            self.background.abort_all();
        }
        self.signals.clear();
    }

    async fn send(&self, event: ProviderEvent) -> Result<(), ProviderError> {
        self.cx
            .events
            .send(event)
            .await
            .map_err(|_| ProviderError::CoreGone)
    }

    async fn report(&self, reports: Vec<CallReport>) -> Result<(), ProviderError> {
        if !self.up {
            return Ok(());
        }
        for report in reports {
            self.send(ProviderEvent::Call(Box::new(report))).await?;
        }
        Ok(())
    }

    async fn complete(
        &self,
        request: RequestId,
        outcome: Result<Completion, TapiError>,
    ) -> Result<(), ProviderError> {
        self.send(ProviderEvent::Completed { request, outcome })
            .await
    }

    async fn on_line(&mut self, event: LineEvent) -> Result<(), ProviderError> {
        match event {
            LineEvent::Active {
                device,
                subscription,
            } => {
                tracing::info!(line = %device.0, %subscription, "dialog subscription active");
                let was_in_service = self.states.get(&device).is_some_and(LineState::in_service);
                if let Some(state) = self.states.get_mut(&device) {
                    state.active = true;
                    state.notified = false;
                }
                let in_service = self.states.get(&device).is_some_and(LineState::in_service);
                if self.up && !was_in_service && in_service {
                    self.send(ProviderEvent::DeviceService {
                        device: device.clone(),
                        in_service: true,
                        reason: "dialog subscription active".into(),
                    })
                    .await?;
                }
                if !self.up && self.sync_deadline.is_none() {
                    self.sync_deadline = Some(Instant::now() + SYNC_GRACE);
                }
            }
            LineEvent::Failed {
                device,
                reason,
                again_at_once,
            } => {
                let was_active = self.states.get(&device).is_some_and(|s| s.active);
                let was_in_service = self.states.get(&device).is_some_and(LineState::in_service);
                if let Some(state) = self.states.get_mut(&device) {
                    state.active = false;
                    state.notified = false;
                    // An attempt follows at once: its outcome settles the line, not this.
                    state.tried |= !again_at_once;
                }
                if was_active {
                    let mut out = Vec::new();
                    self.tracker.clear_line(&device, &mut out);
                    self.report(out).await?;
                }
                if self.up && !self.states.values().any(|s| s.active) {
                    self.go_down(format!("no line is subscribed: {reason}"))
                        .await?;
                } else if self.up && was_in_service {
                    self.send(ProviderEvent::DeviceService {
                        device,
                        in_service: false,
                        reason: format!("dialog subscription failed: {reason}"),
                    })
                    .await?;
                } else if !self.up {
                    self.synchronize(false).await?;
                    // Every line tried and none works (a wrong password, say): say so,
                    // rather than leave the instance starting for ever. Retries go on.
                    let none_works = self.states.values().all(|s| s.tried && !s.active);
                    if !self.up && none_works && !self.down_reported {
                        tracing::warn!(instance = %self.cx.instance, %reason, "no line could subscribe");
                        self.down_reported = true;
                        self.send(ProviderEvent::Down {
                            reason: format!("no line could subscribe: {reason}"),
                        })
                        .await?;
                    }
                }
            }
            LineEvent::Notify { device, notify } => {
                let mut out = Vec::new();
                if notify.truncated {
                    // Documents list every dialog of the last seconds: a busy line's outgrow
                    // a UDP datagram rsipstack reads. Only TCP carries them whole.
                    tracing::warn!(line = %device.0, received = notify.body.len(),
                        "dialog-info NOTIFY cut short (larger than the SIP stack's 8 KB UDP buffer) and ignored; \
                         use registrar transport = \"tcp\" for busy lines");
                }
                let parsed = if notify.truncated {
                    Err(dialog_info::DialogInfoError::TooLarge)
                } else {
                    dialog_info::parse(&notify.body)
                };
                match parsed {
                    Err(_) if notify.truncated => {}
                    Err(error) => {
                        tracing::warn!(line = %device.0, %error,
                            body = %String::from_utf8_lossy(&notify.body[..notify.body.len().min(512)]),
                            "malformed dialog-info NOTIFY ignored");
                    }
                    Ok(None) => self
                        .tracker
                        .apply_empty(&device, &notify.subscription, &mut out),
                    Ok(Some(info)) => {
                        tracing::debug!(line = %device.0, version = info.version,
                            dialogs = ?info.dialogs.iter().map(|d| (d.call_id.as_deref().unwrap_or(&d.id), d.state)).collect::<Vec<_>>(),
                            "dialog-info");
                        let applied =
                            self.tracker
                                .apply(&device, &notify.subscription, &info, &mut out);
                        if let Applied::Stale { version, current } = applied {
                            tracing::debug!(line = %device.0, version, current, "older dialog-info version: only live dialogs moved forward");
                        }
                    }
                }
                if let Some(state) = self.states.get_mut(&device) {
                    state.notified = true;
                    state.tried = true;
                }
                self.report(out).await?;
                if self.up {
                    self.check_pending(Instant::now()).await?;
                } else {
                    self.synchronize(false).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends `Up` and `Synchronized` once every line was heard from (or `grace_over`).
    async fn synchronize(&mut self, grace_over: bool) -> Result<(), ProviderError> {
        if self.up || !self.registrar_ok || !self.states.values().any(|s| s.active) {
            return Ok(());
        }
        let settled = self
            .states
            .values()
            .all(|s| (s.active && s.notified) || (!s.active && s.tried));
        if !settled && !grace_over {
            return Ok(());
        }
        self.sync_deadline = None;
        self.up = true;
        self.down_reported = false;
        self.send(ProviderEvent::Up).await?;
        let devices = self
            .lines
            .iter()
            .map(|l| {
                let name = l
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("Extension {}", l.user));
                Device {
                    alias: Some(l.aor.clone()),
                    ..Device::new(l.aor.clone(), l.user.clone(), name)
                }
            })
            .collect();
        let calls = self.tracker.calls();
        self.tracker.mark_synchronized();
        let out_of_service: Vec<DeviceKey> = self
            .states
            .iter()
            .filter(|(_, s)| !s.in_service())
            .map(|(d, _)| d.clone())
            .collect();
        if !out_of_service.is_empty() {
            tracing::warn!(lines = ?out_of_service, "lines without an active subscription or registration are out of service");
        }
        self.send(ProviderEvent::Synchronized {
            devices,
            calls,
            statuses: Vec::new(),
            out_of_service,
        })
        .await
    }

    async fn go_down(&mut self, reason: String) -> Result<(), ProviderError> {
        tracing::warn!(instance = %self.cx.instance, %reason, "SIP provider down");
        let was_up = self.up;
        self.up = false;
        self.sync_deadline = None;
        self.tracker.forget_all();
        for state in self.states.values_mut() {
            state.notified = false;
        }
        if was_up {
            self.down_reported = true;
            self.send(ProviderEvent::Down { reason }).await?;
        }
        Ok(())
    }

    async fn on_ping(&mut self, alive: Result<(), String>) -> Result<(), ProviderError> {
        match alive {
            Ok(()) if !self.registrar_ok => {
                tracing::info!("the registrar answers again; subscribing every line anew");
                self.registrar_ok = true;
                for state in self.states.values_mut() {
                    state.active = false;
                    state.tried = false;
                }
                for signal in self.signals.values() {
                    let _ = signal.try_send(Signal::Resubscribe);
                }
            }
            Ok(()) => {}
            Err(reason) => {
                if self.registrar_ok {
                    self.registrar_ok = false;
                    self.go_down(format!("the registrar does not answer: {reason}"))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// An event of the evapi feed: a hold or resume is reported at once on the holding line;
    /// a transfer marks the dialog it made, or waits (up to `answer_timeout_ms`) for it.
    async fn on_feed(&mut self, event: FeedEvent) -> Result<(), ProviderError> {
        let mut out = Vec::new();
        match event {
            FeedEvent::Hold {
                call_id,
                by,
                on_hold,
            } => {
                if !self.tracker.hold_by(&call_id, &by, on_hold, &mut out) {
                    // Not a monitored line's hold (an outside party's, or a call unknown).
                    tracing::debug!(%call_id, %by, on_hold, "hold or resume of no monitored appearance");
                }
            }
            FeedEvent::Transfer {
                call_id,
                transferor,
                transferee,
                target,
            } => {
                let transfer = Transfer {
                    call_id,
                    transferor,
                    transferee,
                    target,
                };
                if let Some(key) = self.tracker.expect_transfer(transfer, &mut out) {
                    let wait = Duration::from_millis(self.config.answer_timeout_ms);
                    self.transfers.push(PendingTransfer {
                        key,
                        deadline: Instant::now() + wait,
                    });
                }
            }
        }
        self.report(out).await
    }

    /// Forgets the transfers whose new dialog did not come in time.
    fn expire_transfers(&mut self, now: Instant) {
        let tracker = &mut self.tracker;
        self.transfers.retain(|transfer| {
            let waiting = now < transfer.deadline;
            if !waiting {
                tracker.forget_transfer(transfer.key);
            }
            waiting
        });
    }

    /// A reading of usrloc: lines whose registration changed go out of or back in service.
    async fn on_registrations(
        &mut self,
        registered: Result<BTreeSet<String>, String>,
    ) -> Result<(), ProviderError> {
        let aors = match registered {
            Ok(aors) => aors,
            Err(reason) => {
                // Unknown is not unregistered: lines keep the state last read.
                tracing::warn!(%reason, "cannot read registrations");
                return Ok(());
            }
        };
        let mut changes = Vec::new();
        for line in &self.lines {
            let device = device_of(line);
            let Some(state) = self.states.get_mut(&device) else {
                continue;
            };
            let now = is_registered(line, &aors);
            let was_in_service = state.in_service();
            let first = state.registered.is_none();
            state.registered = Some(now);
            if first && !now {
                tracing::info!(line = %line.aor, "the phone is not registered");
            }
            if state.in_service() != was_in_service {
                changes.push((device, now));
            }
        }
        if !self.up {
            return Ok(());
        }
        for (device, registered) in changes {
            tracing::info!(line = %device.0, registered, "registration changed");
            let reason = if registered {
                "the phone registered"
            } else {
                "the phone is not registered"
            };
            self.send(ProviderEvent::DeviceService {
                device,
                in_service: registered,
                reason: reason.into(),
            })
            .await?;
        }
        Ok(())
    }

    async fn on_request(&mut self, request: ProviderRequest) -> Result<(), ProviderError> {
        let id = request.id;
        if !self.up {
            let error = TapiError::new(
                ErrorKind::InvalidLineState,
                "the registrar is unreachable or no line is subscribed",
            );
            return self.complete(id, Err(error)).await;
        }
        match request.command {
            ProviderCommand::MakeCall { device, to } => self.make_call(id, device, to).await,
            ProviderCommand::Drop { call } => self.drop_call(id, call).await,
            ProviderCommand::Answer { call } => self.ask_phone(id, call, PhoneAction::Answer).await,
            ProviderCommand::Hold { call } => self.ask_phone(id, call, PhoneAction::Hold).await,
            ProviderCommand::Unhold { call } => self.ask_phone(id, call, PhoneAction::Resume).await,
            other => {
                let error = TapiError::new(
                    ErrorKind::OperationUnavailable,
                    format!("the SIP provider cannot do this: {other:?}"),
                );
                self.complete(id, Err(error)).await
            }
        }
    }

    async fn make_call(
        &mut self,
        request: RequestId,
        device: DeviceKey,
        to: String,
    ) -> Result<(), ProviderError> {
        let Some(line) = self.lines.iter().find(|l| device_of(l) == device).cloned() else {
            let error = TapiError::new(ErrorKind::InvalidLine, format!("no line {}", device.0));
            return self.complete(request, Err(error)).await;
        };
        if !self.states.get(&device).is_some_and(|s| s.active) {
            let error = TapiError::new(
                ErrorKind::InvalidLineState,
                format!("line {} has no active subscription", line.aor),
            );
            return self.complete(request, Err(error)).await;
        }
        if self
            .states
            .get(&device)
            .is_some_and(|s| s.registered == Some(false))
        {
            let error = TapiError::new(
                ErrorKind::InvalidLineState,
                format!("the phone of line {} is not registered", line.aor),
            );
            return self.complete(request, Err(error)).await;
        }
        let destination = match destination(&to, &line.domain) {
            Ok(destination) => destination,
            Err(error) => return self.complete(request, Err(error)).await,
        };
        let to_user = uri_user(&destination);
        if to_user.as_deref() == Some(line.user.as_str()) {
            let error = TapiError::new(ErrorKind::TargetSelf, "a line cannot call itself");
            return self.complete(request, Err(error)).await;
        }
        let Some((key, call)) = self.tracker.expect_made_call(&device, to_user) else {
            let error = TapiError::new(ErrorKind::InvalidLine, format!("no line {}", device.0));
            return self.complete(request, Err(error)).await;
        };
        let phone = self.config.phone_of(&line);
        let settings = MakeCall {
            line: line.aor.clone(),
            number: line.user.clone(),
            destination,
            controller: self.config.controller_user.clone(),
            domain: line.domain.clone(),
            alert_info: phone.alert_info,
            answer_after: phone.answer_after,
            answer_timeout: Duration::from_millis(self.config.answer_timeout_ms),
            limit: self.config.request_timeout(),
        };
        let stack = self.stack.clone();
        self.commands.spawn(async move {
            let result = control::make_call(&stack, settings).await;
            Outcome::Made {
                request,
                key,
                call,
                result,
            }
        });
        Ok(())
    }

    async fn drop_call(&mut self, request: RequestId, call: CallRef) -> Result<(), ProviderError> {
        let Some(rpc) = self.rpc.clone() else {
            let error = TapiError::new(
                ErrorKind::OperationUnavailable,
                "drop needs Kamailio's JSON-RPC (`rpc` in the configuration)",
            );
            return self.complete(request, Err(error)).await;
        };
        let Some((_, call_id)) = self.tracker.find(&call) else {
            let error = TapiError::new(ErrorKind::InvalidCall, format!("no call {}", call.0));
            return self.complete(request, Err(error)).await;
        };
        self.commands.spawn(async move {
            let result = control::end_dialog(&rpc, &call_id).await;
            Outcome::Dropped {
                request,
                call_id,
                result,
            }
        });
        Ok(())
    }

    /// Asks the phone of the call's line to answer, hold or resume it, when the instance
    /// offers that and the call is in the state the action needs.
    async fn ask_phone(
        &mut self,
        request: RequestId,
        call: CallRef,
        action: PhoneAction,
    ) -> Result<(), ProviderError> {
        if !self.remote_control {
            let error = TapiError::new(
                ErrorKind::OperationUnavailable,
                format!(
                    "{} is not offered: not every line's phone type has a remote `control`",
                    action.name()
                ),
            );
            return self.complete(request, Err(error)).await;
        }
        let Some((device, call_id)) = self.tracker.find(&call) else {
            let error = TapiError::new(ErrorKind::InvalidCall, format!("no call {}", call.0));
            return self.complete(request, Err(error)).await;
        };
        let Some(line) = self.lines.iter().find(|l| device_of(l) == device).cloned() else {
            let error = TapiError::new(ErrorKind::InvalidLine, format!("no line {}", device.0));
            return self.complete(request, Err(error)).await;
        };
        let phone = self.config.phone_of(&line);
        let state = self.tracker.state_of(&call);
        let fits = match action {
            PhoneAction::Answer => matches!(state, Some(CallState::Offering(_))),
            PhoneAction::Hold => matches!(state, Some(CallState::Connected(_))),
            PhoneAction::Resume => state == Some(CallState::OnHold),
        };
        if !fits {
            let error = TapiError::new(
                ErrorKind::InvalidCallState,
                format!("cannot {} a call that is {state:?}", action.name()),
            );
            return self.complete(request, Err(error)).await;
        }
        let ask = PhoneRequest {
            line: line.aor.clone(),
            number: line.user.clone(),
            controller: self.config.controller_user.clone(),
            domain: line.domain.clone(),
            control: phone.control,
            action,
            call_id,
            limit: self.config.request_timeout(),
        };
        let stack = self.stack.clone();
        self.commands.spawn(async move {
            let result = phone_control::ask_phone(&stack, ask).await;
            Outcome::PhoneAsked {
                request,
                action,
                call,
                result,
            }
        });
        Ok(())
    }

    /// The phone took a request: an answer is done once the dialog-info shows the call
    /// connected. Hold and resume are done at once, and reported by the provider itself:
    /// Kamailio's dialog-info (pua_dialoginfo) says nothing about hold, so the phone's 2xx
    /// is all there is to go by.
    async fn on_phone_asked(
        &mut self,
        request: RequestId,
        action: PhoneAction,
        call: CallRef,
    ) -> Result<(), ProviderError> {
        match action {
            PhoneAction::Answer => {
                let deadline = Instant::now() + Duration::from_millis(self.config.answer_verify_ms);
                self.answers.push(PendingAnswer {
                    request,
                    call,
                    deadline,
                });
                self.check_answers(Instant::now()).await
            }
            PhoneAction::Hold | PhoneAction::Resume => {
                let mut out = Vec::new();
                let on_hold = action == PhoneAction::Hold;
                let outcome = if self.tracker.set_on_hold(&call, on_hold, &mut out) {
                    Ok(Completion::Done)
                } else {
                    Err(TapiError::new(
                        ErrorKind::OutcomeUnknown,
                        format!(
                            "the phone took the {} request, but the call is no longer connected",
                            action.name()
                        ),
                    ))
                };
                self.complete(request, outcome).await?;
                self.report(out).await
            }
        }
    }

    async fn on_outcome(&mut self, outcome: Outcome) -> Result<(), ProviderError> {
        match outcome {
            Outcome::Made {
                request,
                key,
                call,
                result,
            } => {
                let succeeded = result.is_ok();
                match result {
                    Ok(()) => {
                        tracing::info!(call = %call.0, "made call transferred");
                        self.complete(request, Ok(Completion::Call(call))).await?;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "make call failed");
                        self.complete(request, Err(error)).await?;
                    }
                }
                let mut out = Vec::new();
                self.tracker.finish_made_call(key, succeeded, &mut out);
                self.report(out).await
            }
            Outcome::Dropped {
                request,
                call_id,
                result,
            } => match result {
                Err(error) => self.complete(request, Err(error)).await,
                Ok(()) => {
                    let deadline =
                        Instant::now() + Duration::from_millis(self.config.drop_verify_ms);
                    self.drops.push(PendingDrop {
                        request,
                        call_id,
                        deadline,
                    });
                    self.check_drops(Instant::now()).await
                }
            },
            Outcome::PhoneAsked {
                request,
                action,
                call,
                result,
            } => match result {
                Err(error) => {
                    tracing::warn!(%error, call = %call.0, "the phone did not take the request");
                    self.complete(request, Err(error)).await
                }
                Ok(()) => self.on_phone_asked(request, action, call).await,
            },
        }
    }

    /// Completes what waits for the dialog-info: drops and answers.
    async fn check_pending(&mut self, now: Instant) -> Result<(), ProviderError> {
        self.expire_transfers(now);
        self.check_drops(now).await?;
        self.check_answers(now).await
    }

    /// Completes the answers whose call shows connected, has ended, or whose time is up.
    async fn check_answers(&mut self, now: Instant) -> Result<(), ProviderError> {
        let mut done = Vec::new();
        let verify_ms = self.config.answer_verify_ms;
        self.answers.retain(|answer| {
            let outcome = match self.tracker.state_of(&answer.call) {
                Some(CallState::Connected(_)) => Ok(Completion::Done),
                None => Err(TapiError::new(
                    ErrorKind::OperationFailed,
                    "the call ended before it was answered",
                )),
                Some(_) if now >= answer.deadline => Err(TapiError::new(
                    ErrorKind::OperationFailed,
                    format!(
                        "the phone took the answer request, but the call did not connect within {verify_ms} ms"
                    ),
                )),
                Some(_) => return true,
            };
            done.push((answer.request, outcome));
            false
        });
        for (request, outcome) in done {
            self.complete(request, outcome).await?;
        }
        Ok(())
    }

    /// Completes the drops whose dialog is gone from every line, or whose time is up.
    async fn check_drops(&mut self, now: Instant) -> Result<(), ProviderError> {
        let mut done = Vec::new();
        self.drops.retain(|drop| {
            let live = self.tracker.live(&drop.call_id);
            if live.is_empty() {
                done.push((drop.request, Ok(Completion::Done)));
                return false;
            }
            if now >= drop.deadline {
                let left: Vec<String> = live
                    .iter()
                    .map(|(device, state)| format!("{} ({})", device.0, state.name()))
                    .collect();
                let error = TapiError::new(
                    ErrorKind::OperationFailed,
                    format!(
                        "Kamailio ended the dialog but it is still live on {}",
                        left.join(", ")
                    ),
                );
                done.push((drop.request, Err(error)));
                return false;
            }
            true
        });
        for (request, outcome) in done {
            self.complete(request, outcome).await?;
        }
        Ok(())
    }
}

/// The SIP URI a made call goes to: a number on the line's domain, or a `sip:` URI.
fn destination(to: &str, domain: &str) -> Result<String, TapiError> {
    let to = to.trim();
    let invalid = || TapiError::new(ErrorKind::InvalidAddress, format!("cannot dial `{to}`"));
    if to.starts_with("sip:") {
        if to
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == '>' || c == '<')
        {
            return Err(invalid());
        }
        uri(to).map_err(|_| invalid())?;
        return Ok(to.to_owned());
    }
    if !is_user_part(to) {
        return Err(invalid());
    }
    Ok(format!("sip:{to}@{domain}"))
}

/// Whether usrloc's `aors` hold `line`: by bare user, or by `user@host` when the registrar
/// keys with domains (with or without the configured port).
fn is_registered(line: &Line, aors: &BTreeSet<String>) -> bool {
    let user = line.user.to_ascii_lowercase();
    let domain = line.domain.to_ascii_lowercase();
    let host = match domain.find(']') {
        // An IPv6 literal: the port, if any, follows the bracket.
        Some(end) => &domain[..=end],
        None => domain.split(':').next().unwrap_or(&domain),
    };
    aors.contains(&user)
        || aors.contains(&format!("{user}@{domain}"))
        || aors.contains(&format!("{user}@{host}"))
}

/// Reads the registrations at once and then every `period`, reporting each reading.
async fn poll_registrations(
    rpc: Rpc,
    period: Duration,
    results: mpsc::Sender<Result<BTreeSet<String>, String>>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let reading = tokio::select! {
            () = stop.cancelled() => return,
            reading = rpc.registered() => reading.map_err(|e| e.to_string()),
        };
        if results.send(reading).await.is_err() {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(period) => {}
        }
    }
}

/// Sends an OPTIONS to the registrar every `keepalive_interval_ms`, reporting each result.
async fn keepalive(
    stack: Arc<Stack>,
    config: SipConfig,
    results: mpsc::Sender<Result<(), String>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let interval = Duration::from_millis(config.keepalive_interval_ms);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(interval) => {}
        }
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = options(&stack, &config) => result,
        };
        if results
            .send(
                result
                    .map(|_| ())
                    .map_err(|f| f.to_error("OPTIONS").message),
            )
            .await
            .is_err()
        {
            return;
        }
    }
}

/// One OPTIONS to the registrar: its final status code and reason.
pub async fn options(stack: &Stack, config: &SipConfig) -> Result<(u16, String), Failure> {
    let target = uri(&format!("sip:{}", config.registrar_address()))?;
    let from = uri(&format!(
        "sip:{}@{}",
        config.controller_user, config.registrar.host
    ))?;
    let request = stack
        .new_request(Method::Options, target.clone(), from, target, None)
        .await?;
    let (response, _) = stack.send(request, config.request_timeout()).await?;
    Ok((
        response.status_code.code(),
        response.wire_reason.unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_match_bare_users_or_users_at_the_domain() {
        let line = |aor: &str| {
            let config = SipConfig::new("127.0.0.1", 5060, &[aor]);
            config.expand_lines().unwrap().remove(0)
        };
        let aors: BTreeSet<String> = ["201", "alice@example.org", "bob@example.org"]
            .into_iter()
            .map(String::from)
            .collect();
        assert!(is_registered(&line("sip:201@127.0.0.1"), &aors));
        assert!(!is_registered(&line("sip:202@127.0.0.1"), &aors));
        assert!(is_registered(&line("sip:Alice@Example.org"), &aors));
        assert!(is_registered(&line("sip:bob@example.org:5070"), &aors));
        assert!(!is_registered(&line("sip:alice@example.net"), &aors));
        let v6: BTreeSet<String> = ["7@[::1]".to_string()].into_iter().collect();
        assert!(is_registered(&line("sip:7@[::1]:5060"), &v6));
    }

    #[test]
    fn destinations_are_numbers_or_sip_uris() {
        assert_eq!(
            destination("203", "127.0.0.1").unwrap(),
            "sip:203@127.0.0.1"
        );
        assert_eq!(
            destination("sip:203@127.0.0.1:5070", "x").unwrap(),
            "sip:203@127.0.0.1:5070"
        );
        for bad in ["", "20 3", "sip:a>b@c", "2\r\n03", "tel:203"] {
            let error = destination(bad, "127.0.0.1").unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidAddress, "{bad}");
        }
    }
}
