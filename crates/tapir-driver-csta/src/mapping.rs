//! The synchronous state machine from CSTA events to call appearances (csta-xml.md §6.2).
//!
//! One appearance per (monitored device, CSTA call id). Its [`CallRef`] is fixed when it is
//! first seen and kept when the switch renumbers the call on transfer or conference, so the
//! core keeps one call. State comes from the event type and whether the monitored device is
//! the one that acted; `localConnectionInfo` is optional on real switches and not relied on.
//!
//! Conferences are reported flat: every remaining appearance is `Connected` (TAPI's parent
//! and child appearances are not built yet).
//!
//! # Service state
//!
//! A device is out of service when its MonitorStart was refused, when the switch reports it
//! with OutOfServiceEvent (until BackInServiceEvent), or when the switch ends its monitor
//! (a MonitorStop from the switching function).
//!
//! Only losing the monitor ends the device's calls. ECMA-269 delivers OutOfServiceEvent and
//! BackInServiceEvent *over the device's monitor*, so that monitor is still running while the
//! device is out of service: every call on it is still followed, and whatever the switch does
//! to them (ConnectionCleared when the phone really went away) still arrives. Ending them on
//! OutOfServiceEvent would show idle a call that a switch kept up (a registration lapse does
//! not drop media on every switch) and could never bring it back, since no event would restart
//! it. Without a monitor nothing more will be heard about the calls, so they are reported idle
//! at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tapir_model::{
    BusyMode, CallOrigin, CallReason, CallState, ConnectedMode, DialtoneMode, DisconnectMode,
    Forward, ForwardMode, OfferingMode, Party,
};
use tapir_provider::{CallRef, CallReport, DeviceKey, DeviceStatus};

use crate::message::{CallEvent, CallEventKind, ConnectionId, Event, ForwardingItem, SnapshotCall};

/// What the mapping tells the core after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Call(Box<CallReport>),
    Status(DeviceStatus),
    /// A device went out of service or came back.
    Service {
        device: DeviceKey,
        in_service: bool,
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct Appearance {
    report: CallReport,
    /// The device's connection as the switch names it, for requests about this call.
    connection: ConnectionId,
}

/// All monitored devices and their call appearances.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    monitors: HashMap<String, String>,
    calls: BTreeMap<CallRef, Appearance>,
    /// (device, CSTA call id) → the appearance's stable reference.
    index: HashMap<(String, String), CallRef>,
    statuses: BTreeMap<String, DeviceStatus>,
    out_of_service: BTreeSet<String>,
}

/// The key of a call id; switches that omit call ids (the pyssimist peer) get one call each.
fn call_key(connection: &ConnectionId) -> String {
    connection.call.clone().unwrap_or_else(|| "-".into())
}

/// The plain number inside an OSV identifier (`N<302118840100>;noa=nk`) or a `tel:` URI.
pub fn number_of(identifier: &str) -> &str {
    if let Some(start) = identifier.find('<')
        && let Some(len) = identifier[start + 1..].find('>')
    {
        return &identifier[start + 1..start + 1 + len];
    }
    let plain = identifier.strip_prefix("tel:").unwrap_or(identifier);
    plain.split(';').next().unwrap_or(plain)
}

fn same_device(a: &str, b: &str) -> bool {
    number_of(a) == number_of(b)
}

fn party(identifier: &Option<String>) -> Option<Party> {
    identifier.as_deref().map(|id| Party::number(number_of(id)))
}

impl Mapping {
    /// Forgets everything (after the link dropped); monitors and snapshots rebuild it.
    pub fn reset(&mut self) {
        *self = Mapping::default();
    }

    pub fn monitor_started(&mut self, device: &str, cross_ref: &str) {
        self.monitors
            .insert(cross_ref.to_owned(), device.to_owned());
    }

    /// `device` could not be monitored: it is out of service until a MonitorStart succeeds.
    pub fn monitor_refused(&mut self, device: &str) {
        self.out_of_service.insert(device.to_owned());
    }

    /// A MonitorStart sent again succeeded: `device` is back in service; its snapshot
    /// follows ([`Mapping::resnapshot`]).
    pub fn monitor_restarted(&mut self, device: &str, cross_ref: &str) -> Vec<Output> {
        self.monitor_started(device, cross_ref);
        self.set_service(device, true, "the device is monitored again".into())
            .into_iter()
            .collect()
    }

    /// The switch ended the monitor `cross_ref`: its device goes out of service and its calls,
    /// which nothing will report on any more, end.
    pub fn monitor_ended(&mut self, cross_ref: &str) -> Vec<Output> {
        let Some(device) = self.monitors.remove(cross_ref) else {
            return Vec::new();
        };
        let mut out: Vec<Output> = self
            .set_service(
                &device,
                false,
                "the switch ended the device's monitor".into(),
            )
            .into_iter()
            .collect();
        let ended: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, a)| a.report.device.0 == device)
            .map(|(r, _)| r.clone())
            .collect();
        for call_ref in ended {
            if let Some(appearance) = self.calls.get_mut(&call_ref) {
                appearance.report.state = CallState::Idle;
                out.push(Output::Call(Box::new(appearance.report.clone())));
            }
            self.forget(&call_ref);
        }
        out
    }

    /// Records a device's service state; an output only when it changed.
    fn set_service(&mut self, device: &str, in_service: bool, reason: String) -> Option<Output> {
        let changed = if in_service {
            self.out_of_service.remove(device)
        } else {
            self.out_of_service.insert(device.to_owned())
        };
        changed.then(|| Output::Service {
            device: DeviceKey(device.to_owned()),
            in_service,
            reason,
        })
    }

    /// The devices out of service now, for `Synchronized`.
    pub fn out_of_service(&self) -> Vec<DeviceKey> {
        self.out_of_service.iter().cloned().map(DeviceKey).collect()
    }

    /// Whether `device` is monitored (its MonitorStart succeeded and the switch has not
    /// ended it).
    pub fn is_monitored(&self, device: &str) -> bool {
        self.monitors.values().any(|d| d == device)
    }

    /// The monitored device of a cross-reference id.
    pub fn device_for(&self, cross_ref: &str) -> Option<&str> {
        self.monitors.get(cross_ref).map(String::as_str)
    }

    /// The reference of `device`'s appearance of `connection`, made up when new.
    pub fn call_ref(&mut self, device: &str, connection: &ConnectionId) -> CallRef {
        let key = (device.to_owned(), call_key(connection));
        self.index
            .entry(key)
            .or_insert_with(|| CallRef(format!("{device}/{}", call_key(connection))))
            .clone()
    }

    /// The connection a request about `call` must name.
    pub fn connection(&self, call: &CallRef) -> Option<&ConnectionId> {
        self.calls.get(call).map(|a| &a.connection)
    }

    /// The device `call` appears on.
    pub fn device_of(&self, call: &CallRef) -> Option<&DeviceKey> {
        self.calls.get(call).map(|a| &a.report.device)
    }

    /// A call alerting at `device`, for a pickup by device.
    pub fn alerting_at(&self, device: &str) -> Option<CallRef> {
        self.calls
            .iter()
            .find(|(_, a)| a.report.device.0 == device && a.report.state.is_alerting())
            .map(|(r, _)| r.clone())
    }

    /// Every live appearance, for `Synchronized`.
    pub fn reports(&self) -> Vec<CallReport> {
        self.calls.values().map(|a| a.report.clone()).collect()
    }

    /// Forwarding and do-not-disturb of the devices that reported any.
    pub fn statuses(&self) -> Vec<DeviceStatus> {
        self.statuses.values().cloned().collect()
    }

    /// The forwarding a GetForwarding answer lists for `device`. A `forwardDND` entry that is
    /// on means do-not-disturb (some switches report it only that way).
    pub fn forwarding_state(&mut self, device: &str, items: &[ForwardingItem]) {
        let status = self.status_of(device);
        status.forwards.clear();
        for item in items.iter().filter(|i| i.on) {
            if item.kind.starts_with("forwardDND") {
                status.do_not_disturb = true;
                continue;
            }
            if let (Some(mode), Some(to)) = (forward_mode(&item.kind), &item.to) {
                status.forwards.retain(|f| f.mode != mode);
                status.forwards.push(Forward {
                    mode,
                    destination: number_of(to).to_owned(),
                });
            }
        }
    }

    /// The do-not-disturb state a GetDoNotDisturb answer gives for `device`.
    pub fn do_not_disturb_state(&mut self, device: &str, on: bool) {
        self.status_of(device).do_not_disturb = on;
    }

    /// The calls a SnapshotDevice answer lists for `device`; they replace what events said
    /// before it, since the snapshot is the switch's picture at the time it answered.
    /// A snapshot of `device` taken while the link was up (after its monitor came back): its
    /// calls become the snapshot's, each reported; a call the snapshot no longer lists ends.
    pub fn resnapshot(&mut self, device: &str, calls: &[SnapshotCall]) -> Vec<Output> {
        let before: Vec<CallReport> = self.device_reports(device);
        self.snapshot(device, calls);
        let mut out = Vec::new();
        for mut gone in before {
            if !self.calls.contains_key(&gone.call) {
                gone.state = CallState::Idle;
                out.push(Output::Call(Box::new(gone)));
            }
        }
        out.extend(
            self.device_reports(device)
                .into_iter()
                .map(|report| Output::Call(Box::new(report))),
        );
        out
    }

    fn device_reports(&self, device: &str) -> Vec<CallReport> {
        self.calls
            .values()
            .filter(|a| a.report.device.0 == device)
            .map(|a| a.report.clone())
            .collect()
    }

    pub fn snapshot(&mut self, device: &str, calls: &[SnapshotCall]) {
        let before: Vec<CallRef> = self
            .calls
            .iter()
            .filter(|(_, a)| a.report.device.0 == device)
            .map(|(r, _)| r.clone())
            .collect();
        for call_ref in before {
            self.forget(&call_ref);
        }
        for call in calls {
            let Some(state) = snapshot_state(&call.state) else {
                continue;
            };
            let call_ref = self.call_ref(device, &call.connection);
            let mut report = blank_report(device, call_ref.clone());
            report.state = state;
            let connection = self.connection_for(device, &call.connection);
            self.calls
                .insert(call_ref, Appearance { report, connection });
        }
    }

    /// Applies one event; returns what changed.
    pub fn apply(&mut self, event: &Event) -> Vec<Output> {
        match event {
            Event::Call(call) => {
                let Some(device) = self.device_for(&call.cross_ref).map(String::from) else {
                    return Vec::new();
                };
                self.apply_call(&device, call)
            }
            Event::Forwarding {
                cross_ref,
                kind,
                on,
                to,
                ..
            } => self.forwarding(cross_ref, kind, *on, to.as_deref()),
            Event::DoNotDisturb { cross_ref, on, .. } => {
                let Some(status) = self.status_for(cross_ref) else {
                    return Vec::new();
                };
                status.do_not_disturb = *on;
                vec![Output::Status(status.clone())]
            }
            Event::Service {
                cross_ref,
                in_service,
                cause,
            } => {
                let Some(device) = self.device_for(cross_ref).map(String::from) else {
                    return Vec::new();
                };
                let reason = match (in_service, cause) {
                    (true, _) => "the switch reported the device back in service".to_owned(),
                    (false, Some(cause)) => {
                        format!("the switch reported the device out of service ({cause})")
                    }
                    (false, None) => "the switch reported the device out of service".to_owned(),
                };
                self.set_service(&device, *in_service, reason)
                    .into_iter()
                    .collect()
            }
        }
    }

    fn status_for(&mut self, cross_ref: &str) -> Option<&mut DeviceStatus> {
        let device = self.monitors.get(cross_ref)?.clone();
        Some(self.status_of(&device))
    }

    fn status_of(&mut self, device: &str) -> &mut DeviceStatus {
        self.statuses
            .entry(device.to_owned())
            .or_insert_with(|| DeviceStatus {
                device: DeviceKey(device.to_owned()),
                forwards: Vec::new(),
                do_not_disturb: false,
            })
    }

    fn forwarding(
        &mut self,
        cross_ref: &str,
        kind: &str,
        on: bool,
        to: Option<&str>,
    ) -> Vec<Output> {
        let Some(mode) = forward_mode(kind) else {
            return Vec::new();
        };
        let Some(status) = self.status_for(cross_ref) else {
            return Vec::new();
        };
        status.forwards.retain(|f| f.mode != mode);
        if let (true, Some(to)) = (on, to) {
            status.forwards.push(Forward {
                mode,
                destination: number_of(to).to_owned(),
            });
        }
        vec![Output::Status(status.clone())]
    }

    fn apply_call(&mut self, device: &str, event: &CallEvent) -> Vec<Output> {
        match event.kind {
            CallEventKind::Transferred | CallEventKind::Conferenced => self.merge(device, event),
            _ => self.update(device, event).into_iter().collect(),
        }
    }

    /// The connection to remember: the event's when it is the device's, else the device's own.
    fn connection_for(&self, device: &str, connection: &ConnectionId) -> ConnectionId {
        let mine = connection
            .device
            .as_deref()
            .is_some_and(|d| same_device(d, device));
        ConnectionId {
            call: connection.call.clone(),
            device: if mine {
                connection.device.clone()
            } else {
                Some(device.to_owned())
            },
        }
    }

    fn update(&mut self, device: &str, event: &CallEvent) -> Option<Output> {
        let key = (device.to_owned(), call_key(&event.connection));
        let existing = self
            .index
            .get(&key)
            .cloned()
            .filter(|r| self.calls.contains_key(r));
        // The acting device decides; the connection's device only when none is named.
        let local = event
            .subject
            .as_deref()
            .or(event.connection.device.as_deref())
            .is_some_and(|d| same_device(d, device));
        let call_ref = match existing {
            Some(call_ref) => call_ref,
            None if starts_call(event.kind) => {
                let call_ref = self.call_ref(device, &event.connection);
                let mut report = blank_report(device, call_ref.clone());
                report.origin = origin(event, local);
                report.reason = reason(event.cause.as_deref());
                report.related = self.consulted_from(device, event);
                let connection = self.connection_for(device, &event.connection);
                self.calls
                    .insert(call_ref.clone(), Appearance { report, connection });
                call_ref
            }
            None => return None,
        };
        let appearance = self.calls.get_mut(&call_ref)?;
        let report = &mut appearance.report;
        fill_parties(report, event);
        report.state = next_state(report.state, event, local);
        if let (CallEventKind::Established, false) = (event.kind, local) {
            report.connected = party(&event.subject).unwrap_or_default();
        } else if event.kind == CallEventKind::Established {
            let other = if report.origin == CallOrigin::Outbound {
                &event.called
            } else {
                &event.calling
            };
            report.connected = party(other).unwrap_or_default();
        }
        if event.kind == CallEventKind::Diverted {
            report.redirection = party(&event.destination).unwrap_or_default();
        }
        let out = report.clone();
        if out.state == CallState::Idle {
            self.forget(&call_ref);
        }
        Some(Output::Call(Box::new(out)))
    }

    /// A consultation call relates to the device's call on consultation hold.
    fn consulted_from(&mut self, device: &str, event: &CallEvent) -> Option<CallRef> {
        if event.cause.as_deref() != Some("consultation") {
            return None;
        }
        let held = self
            .calls
            .iter_mut()
            .find(|(_, a)| a.report.device.0 == device && a.report.state.is_held())?;
        held.1.report.state = CallState::OnHoldPendTransfer;
        Some(held.0.clone())
    }

    fn forget(&mut self, call_ref: &CallRef) {
        self.calls.remove(call_ref);
        self.index.retain(|_, r| r != call_ref);
    }

    /// A transfer or conference: the device that acted leaves (its secondary call ends);
    /// the others keep their appearance under the call's new id.
    fn merge(&mut self, device: &str, event: &CallEvent) -> Vec<Output> {
        let acted = event
            .subject
            .as_deref()
            .is_some_and(|d| same_device(d, device));
        let olds: Vec<ConnectionId> = std::iter::once(event.connection.clone())
            .chain(event.secondary_old.clone())
            .collect();
        let new_call = event
            .changes
            .iter()
            .find_map(|c| c.new.call.clone())
            .or_else(|| event.connection.call.clone());
        let mut out = Vec::new();
        for (i, old) in olds.iter().enumerate() {
            let key = (device.to_owned(), call_key(old));
            let Some(call_ref) = self.index.get(&key).cloned() else {
                continue;
            };
            let Some(appearance) = self.calls.get_mut(&call_ref) else {
                continue;
            };
            let report = &mut appearance.report;
            let leaves = acted && (event.kind == CallEventKind::Transferred || i > 0);
            if leaves {
                report.state = CallState::Idle;
                out.push(Output::Call(Box::new(report.clone())));
                self.forget(&call_ref);
                continue;
            }
            report.state = CallState::Connected(ConnectedMode::Active);
            report.related = None;
            if event.kind == CallEventKind::Transferred {
                report.reason = CallReason::Transfer;
                if let Some(other) = event
                    .changes
                    .iter()
                    .find_map(|c| c.endpoint.as_deref().filter(|e| !same_device(e, device)))
                {
                    report.connected = Party::number(number_of(other));
                }
            }
            appearance.connection.call = new_call.clone();
            out.push(Output::Call(Box::new(report.clone())));
            self.index.remove(&key);
            let new_key = (
                device.to_owned(),
                new_call.clone().unwrap_or_else(|| "-".into()),
            );
            self.index.insert(new_key, call_ref);
        }
        out
    }
}

/// tapir's forwarding mode of an ECMA-269 forwarding type; the internal/external variants
/// are not told apart by tapir's model.
fn forward_mode(kind: &str) -> Option<ForwardMode> {
    match kind {
        "forwardImmediate" | "forwardImmInt" | "forwardImmExt" => Some(ForwardMode::Unconditional),
        "forwardBusy" | "forwardBusyInt" | "forwardBusyExt" => Some(ForwardMode::Busy),
        "forwardNoAns" | "forwardNoAnsInt" | "forwardNoAnsExt" => Some(ForwardMode::NoAnswer),
        _ => None,
    }
}

fn blank_report(device: &str, call: CallRef) -> CallReport {
    CallReport {
        device: DeviceKey(device.to_owned()),
        call,
        state: CallState::Unknown,
        origin: CallOrigin::Unknown,
        reason: CallReason::Direct,
        caller: Party::default(),
        called: Party::default(),
        connected: Party::default(),
        redirecting: Party::default(),
        redirection: Party::default(),
        related: None,
        conference: None,
    }
}

fn starts_call(kind: CallEventKind) -> bool {
    matches!(
        kind,
        CallEventKind::ServiceInitiated
            | CallEventKind::Originated
            | CallEventKind::NetworkReached
            | CallEventKind::Delivered
            | CallEventKind::Established
            | CallEventKind::Queued
            | CallEventKind::Failed
    )
}

fn origin(event: &CallEvent, local: bool) -> CallOrigin {
    match event.kind {
        CallEventKind::ServiceInitiated | CallEventKind::Originated => CallOrigin::Outbound,
        CallEventKind::Delivered | CallEventKind::Queued if local => CallOrigin::Inbound,
        CallEventKind::Delivered | CallEventKind::NetworkReached => CallOrigin::Outbound,
        _ => CallOrigin::Unknown,
    }
}

/// LINECALLREASON from a CSTA event cause.
pub fn reason(cause: Option<&str>) -> CallReason {
    match cause.unwrap_or("") {
        "callForwardImmediate" | "callForward" => CallReason::ForwardUnconditional,
        "callForwardBusy" => CallReason::ForwardBusy,
        "callForwardNoAnswer" => CallReason::ForwardNoAnswer,
        "redirected" => CallReason::Redirect,
        "transfer" | "singleStepTransfer" => CallReason::Transfer,
        "callPickup" => CallReason::Pickup,
        "park" | "parkedCall" => CallReason::Unpark,
        _ => CallReason::Direct,
    }
}

/// LINEDISCONNECTMODE from a CSTA event cause.
pub fn disconnect_mode(cause: Option<&str>) -> DisconnectMode {
    match cause.unwrap_or("") {
        "normalClearing" | "normal" => DisconnectMode::Normal,
        "busy" => DisconnectMode::Busy,
        "callNotAnswered" => DisconnectMode::NoAnswer,
        "callCancelled" => DisconnectMode::Cancelled,
        "numberUnallocated" | "invalidNumberFormat" => DisconnectMode::BadAddress,
        "destNotObtainable" => DisconnectMode::Unreachable,
        "networkCongestion" | "resourcesNotAvailable" | "trunksBusy" => DisconnectMode::Congestion,
        "doNotDisturb" => DisconnectMode::DoNotDisturb,
        "blocked" | "callBack" => DisconnectMode::Blocked,
        "redirected" | "callForward" => DisconnectMode::Forwarded,
        "callPickup" => DisconnectMode::Pickup,
        "reorderTone" | "networkOutOfOrder" => DisconnectMode::OutOfOrder,
        _ => DisconnectMode::Unknown,
    }
}

fn fill_parties(report: &mut CallReport, event: &CallEvent) {
    if let Some(p) = party(&event.calling) {
        report.caller = p;
    }
    if let Some(p) = party(&event.called) {
        report.called = p;
    }
    if let Some(p) = party(&event.last_redirection) {
        report.redirecting = p;
    }
}

fn next_state(current: CallState, event: &CallEvent, local: bool) -> CallState {
    let cause = event.cause.as_deref();
    match event.kind {
        CallEventKind::ServiceInitiated => CallState::Dialtone(DialtoneMode::Normal),
        CallEventKind::Originated | CallEventKind::NetworkReached => CallState::Proceeding,
        CallEventKind::Delivered | CallEventKind::Queued if local => {
            CallState::Offering(OfferingMode::Active)
        }
        CallEventKind::Delivered => CallState::Ringback,
        CallEventKind::Queued => CallState::Proceeding,
        CallEventKind::Established | CallEventKind::Retrieved if local => {
            CallState::Connected(ConnectedMode::Active)
        }
        CallEventKind::Established => CallState::Connected(ConnectedMode::Active),
        CallEventKind::Held if local && current == CallState::OnHoldPendTransfer => current,
        CallEventKind::Held if local && cause == Some("consultation") => {
            CallState::OnHoldPendTransfer
        }
        CallEventKind::Held if local => CallState::OnHold,
        CallEventKind::Held | CallEventKind::Retrieved => current,
        CallEventKind::Failed if cause == Some("busy") => CallState::Busy(BusyMode::Station),
        CallEventKind::Failed => CallState::Disconnected(disconnect_mode(cause)),
        CallEventKind::ConnectionCleared if local => CallState::Idle,
        CallEventKind::ConnectionCleared => CallState::Disconnected(disconnect_mode(cause)),
        CallEventKind::CallCleared => CallState::Idle,
        CallEventKind::Diverted if local => CallState::Idle,
        CallEventKind::Diverted | CallEventKind::Transferred | CallEventKind::Conferenced => {
            current
        }
    }
}

/// A snapshot's local connection state (or simple call state) as a TAPI state; `None` for
/// connections that no longer exist.
fn snapshot_state(state: &str) -> Option<CallState> {
    Some(match state {
        "null" | "callNull" => return None,
        "initiated" | "callPending" => CallState::Dialtone(DialtoneMode::Normal),
        "alerting" | "callReceived" => CallState::Offering(OfferingMode::Active),
        "callDelivered" | "callOriginated" => CallState::Ringback,
        "connected" | "callEstablished" => CallState::Connected(ConnectedMode::Active),
        "hold" | "callEstablishedHeld" | "callReceivedOnHold" | "callEstablishedOnHold" => {
            CallState::OnHold
        }
        "queued" | "callQueued" => CallState::Proceeding,
        "fail" | "callFailed" => CallState::Busy(BusyMode::Unknown),
        _ => CallState::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{self, Incoming};

    fn event(xml: &str) -> Event {
        match message::parse(xml.as_bytes()) {
            Ok(Incoming::Event(event)) => event,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn delivered(call: &str) -> Event {
        event(&format!(
            "<DeliveredEvent><monitorCrossRefID>7</monitorCrossRefID><connection><callID>{call}</callID><deviceID>201</deviceID></connection><alertingDevice><deviceIdentifier>201</deviceIdentifier></alertingDevice><callingDevice><deviceIdentifier>300</deviceIdentifier></callingDevice><cause>newCall</cause></DeliveredEvent>"
        ))
    }

    fn service(name: &str) -> Event {
        event(&format!(
            "<{name}><monitorCrossRefID>7</monitorCrossRefID><device><deviceIdentifier>201</deviceIdentifier></device></{name}>"
        ))
    }

    fn monitored() -> Mapping {
        let mut mapping = Mapping::default();
        mapping.monitor_started("201", "7");
        mapping
    }

    #[test]
    fn out_of_service_keeps_the_followed_calls_and_flips_once() {
        let mut mapping = monitored();
        mapping.apply(&delivered("C1"));
        let out = mapping.apply(&service("OutOfServiceEvent"));
        let [
            Output::Service {
                device,
                in_service: false,
                ..
            },
        ] = &out[..]
        else {
            panic!("{out:?}");
        };
        assert_eq!(device.0, "201");
        assert!(mapping.apply(&service("OutOfServiceEvent")).is_empty());
        assert_eq!(mapping.out_of_service(), [DeviceKey("201".into())]);
        // The monitor still runs: the call is kept and its events still apply.
        assert_eq!(mapping.reports().len(), 1);
        let out = mapping.apply(&service("BackInServiceEvent"));
        assert!(matches!(
            &out[..],
            [Output::Service {
                in_service: true,
                ..
            }]
        ));
        assert!(mapping.out_of_service().is_empty());
    }

    #[test]
    fn a_monitor_the_switch_ends_takes_its_calls_with_it() {
        let mut mapping = monitored();
        mapping.apply(&delivered("C1"));
        let out = mapping.monitor_ended("7");
        let [
            Output::Service {
                in_service: false, ..
            },
            Output::Call(report),
        ] = &out[..]
        else {
            panic!("{out:?}");
        };
        assert_eq!(report.state, CallState::Idle);
        assert!(mapping.reports().is_empty());
        assert!(!mapping.is_monitored("201"));
        assert_eq!(mapping.out_of_service(), [DeviceKey("201".into())]);
        assert!(
            mapping.apply(&delivered("C2")).is_empty(),
            "no monitor, no calls"
        );
        assert!(mapping.monitor_ended("7").is_empty());
    }

    #[test]
    fn get_forwarding_answers_become_the_status() {
        let mut mapping = monitored();
        let item = |kind: &str, on: bool, to: Option<&str>| ForwardingItem {
            kind: kind.into(),
            on,
            to: to.map(String::from),
        };
        mapping.forwarding_state(
            "201",
            &[
                item("forwardImmInt", true, Some("N<2000>;noa=nk")),
                item("forwardBusy", false, Some("2001")),
                item("forwardNoAns", true, Some("2002")),
                item("forwardDND", true, None),
            ],
        );
        let [status] = &mapping.statuses()[..] else {
            panic!("one status");
        };
        assert!(status.do_not_disturb, "forwardDND on means DND");
        let forwards: Vec<(ForwardMode, &str)> = status
            .forwards
            .iter()
            .map(|f| (f.mode, f.destination.as_str()))
            .collect();
        assert_eq!(
            forwards,
            [
                (ForwardMode::Unconditional, "2000"),
                (ForwardMode::NoAnswer, "2002")
            ]
        );
    }

    #[test]
    fn a_snapshot_replaces_what_events_said_before_it() {
        let mut mapping = monitored();
        mapping.apply(&delivered("C1"));
        let held = SnapshotCall {
            connection: ConnectionId {
                call: Some("C2".into()),
                device: Some("201".into()),
            },
            state: "hold".into(),
        };
        mapping.snapshot("201", &[held]);
        let reports = mapping.reports();
        let [report] = &reports[..] else {
            panic!("{reports:?}");
        };
        assert_eq!(report.call.0, "201/C2");
        assert_eq!(report.state, CallState::OnHold);
    }
}
