//! The mapping from dialog-info documents to tapir's call reports: a synchronous state
//! machine with no I/O and no clock, fed one document at a time by the owner loop (or a
//! test) through [`Tracker::apply`].
//!
//! - `state`: a dialog's RFC 4235 state and direction as a TAPI call state, and terminated
//!   events as disconnect modes.
//!
//! Each line follows one entity (its address of record). One appearance exists per
//! `call-id` per line; a call between two monitored lines appears on both.
//!
//! Kamailio's parallel workers reorder what they publish and notify, so no single document
//! is trusted to move a call backwards:
//! - versions count per subscription; an older or repeated version only moves dialogs that
//!   are live on the line forward (up to confirmed): it starts, ends and removes nothing;
//! - a dialog's state only moves forward (trying, proceeding, early, confirmed, terminated):
//!   an entry behind the state already applied is an older view and is ignored;
//! - two entries for the same dialog in one document (a stale presentity beside the current
//!   one) count as the more advanced; entries of different dialogs with the same `call-id`
//!   (forks) count as the most alive;
//! - documents are `state="full"`, but a dialog missing from one full (or empty) document
//!   ends only when the next one lacks it too; the first document of a subscription is the
//!   whole truth at once.
//!
//! Terminated dialogs linger in later documents: an ended `call-id` is remembered until a
//! full document no longer lists it, so it never comes back.
//!
//! Hold is not a dialog state: RFC 4235 has none for it, and a held call may be resumed and
//! held again any number of times. It is a flag beside the dialog state (set by the phone's
//! answer to a remote hold, or by the evapi feed's hold and resume events): a confirmed
//! dialog reports `onhold` while the flag is set and `connected` otherwise, so the reported
//! state goes back and forth while the dialog state itself still only moves forward, and a
//! later (or reordered) document of the confirmed dialog does not undo a hold. Only the
//! holding side's appearance goes on hold; the held side stays connected (TAPI's remote hold).
//!
//! A transfer seen on the evapi feed (a REFER: `transferor` asks `transferee` to call
//! `target`) waits for the new dialog from the transferee to the target; the first line
//! that shows it binds the transfer to its `call-id`, and every appearance of that `call-id`
//! then reports reason `transfer` with the transferor as the redirecting party. The feed and
//! the NOTIFYs race (Kamailio relays the REFER while the transferee already dials), so a
//! transfer whose new dialog is already on a line binds to it at once and its appearances
//! are reported again. A transfer that never sees its dialog is forgotten by the owner loop
//! after a while (the mapping has no clock). REFERs of the provider's own 3PCC are not
//! transfers.
//!
//! The provider's own 3PCC dialogs (remote user = the controller) are never reported. A made
//! call is the dialog the line's phone starts after the REFER: it is bound to a reference
//! minted when the command arrived, and its reports are held back until the command has
//! completed, so that the completion comes first.

pub mod state;

use std::collections::{BTreeMap, BTreeSet};

use tapir_model::{CallOrigin, CallReason, CallState, Party};
use tapir_provider::{CallRef, CallReport, DeviceKey};

use crate::dialog_info::{DialogEntry, DialogInfo, DialogState, Direction, DocumentState};

/// A monitored line as the mapping knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    pub device: DeviceKey,
    /// The line's own number (the user part of its address).
    pub user: String,
    pub name: Option<String>,
}

/// One call appearance on one line.
#[derive(Debug, Clone)]
struct Appearance {
    call: CallRef,
    call_id: String,
    direction: Direction,
    /// The most advanced dialog state applied.
    dialog: DialogState,
    /// Absent from the last full document: one more absence ends it.
    missing: bool,
    state: CallState,
    caller: Party,
    called: Party,
    connected: Party,
    origin: CallOrigin,
    /// The last report sent, to send only changes.
    last: Option<CallReport>,
    /// Reports are held back until the made call that owns it has completed.
    held: bool,
    /// The line holds the call: its phone accepted a remote hold, or the evapi feed saw it
    /// hold. Dialog-info cannot show hold; a confirmed dialog then reports on hold.
    on_hold: bool,
    /// Set when the call is a transfer's new dialog.
    redirect: Option<Redirect>,
}

/// Who transferred a call, for its reports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Redirect {
    redirecting: Party,
}

/// A transfer (REFER) whose new dialog has not been seen yet.
#[derive(Debug, Clone)]
struct PendingTransfer {
    key: u64,
    /// The REFER's dialog: the transferred call, not the new one.
    call_id: String,
    transferee: String,
    target: String,
    redirect: Redirect,
}

/// A transfer as the evapi feed reports it (user parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub call_id: String,
    pub transferor: String,
    pub transferee: String,
    pub target: String,
}

/// The most transfers waiting for their dialog at once; older ones give way.
const MAX_PENDING_TRANSFERS: usize = 64;

/// A made call waiting for (or bound to) the dialog its REFER makes the phone start.
#[derive(Debug, Clone)]
struct MadeCall {
    key: u64,
    call: CallRef,
    to_user: Option<String>,
    bound: Option<String>,
    completed: bool,
}

#[derive(Debug, Clone)]
struct LineCalls {
    spec: LineSpec,
    subscription: Option<String>,
    version: Option<u64>,
    calls: BTreeMap<String, Appearance>,
    /// `call-id`s ended here that later documents may still list as terminated.
    ended: BTreeSet<String>,
    made: Vec<MadeCall>,
}

/// What happened to a document, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Older than (or the same as) the version already applied.
    Stale {
        version: u64,
        current: u64,
    },
    UnknownLine,
}

/// The calls on the monitored lines as tapir sees them.
#[derive(Debug, Clone)]
pub struct Tracker {
    lines: BTreeMap<DeviceKey, LineCalls>,
    users: BTreeSet<String>,
    controller_user: String,
    next_made: u64,
    transfers: Vec<PendingTransfer>,
    /// The `call-id`s of transfers' new dialogs, while some line still has the call.
    transferred: BTreeMap<String, Redirect>,
    next_transfer: u64,
}

impl Tracker {
    pub fn new(lines: Vec<LineSpec>, controller_user: &str) -> Tracker {
        let users = lines.iter().map(|l| l.user.clone()).collect();
        let lines = lines
            .into_iter()
            .map(|spec| {
                let calls = LineCalls {
                    spec: spec.clone(),
                    subscription: None,
                    version: None,
                    calls: BTreeMap::new(),
                    ended: BTreeSet::new(),
                    made: Vec::new(),
                };
                (spec.device, calls)
            })
            .collect();
        Tracker {
            lines,
            users,
            controller_user: controller_user.to_owned(),
            next_made: 0,
            transfers: Vec::new(),
            transferred: BTreeMap::new(),
            next_transfer: 0,
        }
    }

    /// Applies one document received on `subscription` (the SUBSCRIBE's Call-ID) for
    /// `device`, appending the reports tapir must be told to `out`.
    pub fn apply(
        &mut self,
        device: &DeviceKey,
        subscription: &str,
        info: &DialogInfo,
        out: &mut Vec<CallReport>,
    ) -> Applied {
        // Borrowed apart: one line's calls change while the transfers are bound.
        let Tracker {
            lines,
            users,
            controller_user: controller,
            transfers,
            transferred,
            ..
        } = self;
        let Some(line) = lines.get_mut(device) else {
            return Applied::UnknownLine;
        };
        if line.subscription.as_deref() != Some(subscription) {
            line.subscription = Some(subscription.to_owned());
            line.version = None;
        }
        let groups = by_call_id(info, controller);
        if let Some(current) = line.version
            && info.version <= current
        {
            for (call_id, entry) in &groups {
                line.advance(
                    call_id,
                    entry,
                    users,
                    transferred.get(call_id.as_str()),
                    out,
                );
            }
            return Applied::Stale {
                version: info.version,
                current,
            };
        }
        let first = line.version.is_none();
        line.version = Some(info.version);
        for (call_id, entry) in &groups {
            if line.is_new(call_id) && entry.state != DialogState::Terminated {
                bind_transfer(transfers, transferred, call_id, entry, &line.spec.user);
            }
            let redirect = transferred.get(call_id.as_str());
            line.update(call_id, entry, users, redirect, out);
        }
        if info.state == DocumentState::Full {
            line.absent_from_full_document(|id| groups.contains_key(id), first, out);
            line.ended.retain(|id| groups.contains_key(id));
        }
        self.forget_ended_transfers();
        Applied::Applied
    }

    /// The evapi feed saw `transfer`: the transferee's dialog to the target carries the
    /// transferor as its redirecting party. If a line already shows that dialog, its
    /// appearances' new reports go to `out`; otherwise the transfer waits for it, and the key
    /// to forget it with (if it never comes) is returned. `None` when nothing waits: bound at
    /// once, or the provider's own REFER (3PCC), which is not a transfer.
    pub fn expect_transfer(
        &mut self,
        transfer: Transfer,
        out: &mut Vec<CallReport>,
    ) -> Option<u64> {
        if transfer.transferor == self.controller_user {
            return None;
        }
        let redirecting = self
            .lines
            .values()
            .find(|line| line.spec.user == transfer.transferor)
            .map(|line| line.own_party())
            .unwrap_or_else(|| Party::number(transfer.transferor.clone()));
        let redirect = Redirect { redirecting };
        if let Some(call_id) = self.dialog_of(&transfer) {
            for line in self.lines.values_mut() {
                if let Some(appearance) = line.calls.get_mut(&call_id) {
                    appearance.redirect = Some(redirect.clone());
                    line.emit(&call_id, out);
                }
            }
            self.transferred.insert(call_id, redirect);
            return None;
        }
        self.next_transfer += 1;
        let key = self.next_transfer;
        if self.transfers.len() >= MAX_PENDING_TRANSFERS {
            self.transfers.remove(0);
        }
        self.transfers.push(PendingTransfer {
            key,
            call_id: transfer.call_id,
            transferee: transfer.transferee,
            target: transfer.target,
            redirect,
        });
        Some(key)
    }

    /// The `call-id` of a live dialog from the transferee to the target that is not the
    /// REFER's own and not already a transfer's; an unanswered one first (the new dialog has
    /// rarely been answered by the time the feed reports the REFER).
    fn dialog_of(&self, transfer: &Transfer) -> Option<String> {
        self.lines
            .values()
            .flat_map(|line| line.calls.values())
            .filter(|a| {
                a.call_id != transfer.call_id
                    && !self.transferred.contains_key(&a.call_id)
                    && a.caller.number.as_deref() == Some(transfer.transferee.as_str())
                    && a.called.number.as_deref() == Some(transfer.target.as_str())
            })
            .min_by_key(|a| a.dialog == DialogState::Confirmed)
            .map(|a| a.call_id.clone())
    }

    /// Forgets a transfer whose new dialog was never seen (a bound one stays with its call).
    pub fn forget_transfer(&mut self, key: u64) {
        self.transfers.retain(|t| t.key != key);
    }

    /// Drops the transfers of calls no line has any more.
    fn forget_ended_transfers(&mut self) {
        if self.transferred.is_empty() {
            return;
        }
        let lines = &self.lines;
        self.transferred
            .retain(|call_id, _| lines.values().any(|line| line.calls.contains_key(call_id)));
    }

    /// An empty NOTIFY body (Kamailio's for an entity without dialogs): a full document that
    /// lists no dialog.
    pub fn apply_empty(
        &mut self,
        device: &DeviceKey,
        subscription: &str,
        out: &mut Vec<CallReport>,
    ) {
        let Some(line) = self.lines.get_mut(device) else {
            return;
        };
        if line.subscription.as_deref() != Some(subscription) {
            line.subscription = Some(subscription.to_owned());
            line.version = None;
        }
        let first = line.version.is_none();
        line.absent_from_full_document(|_| false, first, out);
        line.ended.clear();
        self.forget_ended_transfers();
    }

    /// The line's subscription is gone: its calls are no longer known and end.
    pub fn clear_line(&mut self, device: &DeviceKey, out: &mut Vec<CallReport>) {
        if let Some(line) = self.lines.get_mut(device) {
            let ids: Vec<String> = line.calls.keys().cloned().collect();
            for call_id in ids {
                line.end(&call_id, tapir_model::DisconnectMode::Unknown, out);
            }
            line.subscription = None;
            line.version = None;
            line.ended.clear();
        }
        self.forget_ended_transfers();
    }

    /// Forgets every call without reports (the link is down; the next `Synchronized`
    /// rebuilds).
    pub fn forget_all(&mut self) {
        for line in self.lines.values_mut() {
            line.calls.clear();
            line.ended.clear();
            line.subscription = None;
            line.version = None;
        }
        self.transfers.clear();
        self.transferred.clear();
    }

    /// The current report of every live appearance, for `Synchronized`.
    pub fn calls(&self) -> Vec<CallReport> {
        let mut reports = Vec::new();
        for line in self.lines.values() {
            for appearance in line.calls.values().filter(|a| !a.held) {
                reports.push(line.report(appearance));
            }
        }
        reports
    }

    /// Marks the reports of `calls()` as sent, so only changes follow.
    pub fn mark_synchronized(&mut self) {
        for line in self.lines.values_mut() {
            let reports: Vec<(String, CallReport)> = line
                .calls
                .values()
                .filter(|a| !a.held)
                .map(|a| (a.call_id.clone(), line.report(a)))
                .collect();
            for (call_id, report) in reports {
                if let Some(appearance) = line.calls.get_mut(&call_id) {
                    appearance.last = Some(report);
                }
            }
        }
    }

    /// The `call-id` and line of an appearance.
    pub fn find(&self, call: &CallRef) -> Option<(DeviceKey, String)> {
        self.lines.iter().find_map(|(device, line)| {
            line.calls
                .values()
                .find(|a| &a.call == call)
                .map(|a| (device.clone(), a.call_id.clone()))
        })
    }

    /// The state of an appearance.
    pub fn state_of(&self, call: &CallRef) -> Option<CallState> {
        self.lines
            .values()
            .find_map(|line| line.calls.values().find(|a| &a.call == call))
            .map(|a| a.state)
    }

    /// The phone holds (`on_hold`) or resumed a connected appearance; its report follows.
    /// Returns false when the appearance is gone or not connected.
    pub fn set_on_hold(
        &mut self,
        call: &CallRef,
        on_hold: bool,
        out: &mut Vec<CallReport>,
    ) -> bool {
        for line in self.lines.values_mut() {
            let Some(appearance) = line.calls.values_mut().find(|a| &a.call == call) else {
                continue;
            };
            if appearance.dialog != DialogState::Confirmed {
                return false;
            }
            appearance.hold(on_hold);
            let call_id = appearance.call_id.clone();
            line.emit(&call_id, out);
            return true;
        }
        false
    }

    /// The evapi feed saw the line of `holder` (a user part) hold or resume the dialog
    /// `call_id`: that line's appearance goes on hold or back to connected; the other
    /// side's stays as it is. A hold seen before the dialog-info shows the dialog confirmed
    /// applies once it does. Returns false when no line of `holder` has the call.
    pub fn hold_by(
        &mut self,
        call_id: &str,
        holder: &str,
        on_hold: bool,
        out: &mut Vec<CallReport>,
    ) -> bool {
        let mut found = false;
        for line in self.lines.values_mut().filter(|l| l.spec.user == holder) {
            let Some(appearance) = line.calls.get_mut(call_id) else {
                continue;
            };
            appearance.hold(on_hold);
            line.emit(call_id, out);
            found = true;
        }
        found
    }

    /// The lines on which a dialog with `call_id` is still live, with their state.
    pub fn live(&self, call_id: &str) -> Vec<(DeviceKey, CallState)> {
        self.lines
            .iter()
            .filter_map(|(device, line)| line.calls.get(call_id).map(|a| (device.clone(), a.state)))
            .collect()
    }

    /// Whether `device` is a monitored line.
    pub fn has_line(&self, device: &DeviceKey) -> bool {
        self.lines.contains_key(device)
    }

    /// A line's number.
    pub fn user_of(&self, device: &DeviceKey) -> Option<&str> {
        self.lines.get(device).map(|l| l.spec.user.as_str())
    }

    /// Expects the dialog that a made call will make the phone of `device` start towards
    /// `to_user`; returns the key to finish it with and the reference the call will carry.
    pub fn expect_made_call(
        &mut self,
        device: &DeviceKey,
        to_user: Option<String>,
    ) -> Option<(u64, CallRef)> {
        let line = self.lines.get_mut(device)?;
        self.next_made += 1;
        let key = self.next_made;
        let call = CallRef(format!("{}/made-{key}", device.0));
        line.made.push(MadeCall {
            key,
            call: call.clone(),
            to_user,
            bound: None,
            completed: false,
        });
        Some((key, call))
    }

    /// The made call `key` completed (`succeeded`) or failed: its held reports are released
    /// into `out`. A failed one that never bound is forgotten.
    pub fn finish_made_call(&mut self, key: u64, succeeded: bool, out: &mut Vec<CallReport>) {
        for line in self.lines.values_mut() {
            let Some(index) = line.made.iter().position(|m| m.key == key) else {
                continue;
            };
            let made = &mut line.made[index];
            made.completed = true;
            let bound = made.bound.clone();
            if !succeeded || bound.is_some() {
                line.made.remove(index);
            }
            if let Some(call_id) = bound
                && let Some(appearance) = line.calls.get_mut(&call_id)
            {
                appearance.held = false;
                line.emit(&call_id, out);
            }
            return;
        }
    }

    /// Drops made calls that never saw their dialog (after the REFER succeeded).
    pub fn forget_made_call(&mut self, key: u64) {
        for line in self.lines.values_mut() {
            line.made.retain(|m| m.key != key);
        }
    }
}

impl Appearance {
    /// Sets or clears the hold flag; a confirmed dialog's state follows it at once.
    fn hold(&mut self, on_hold: bool) {
        self.on_hold = on_hold;
        if self.dialog == DialogState::Confirmed {
            self.state = if on_hold {
                CallState::OnHold
            } else {
                state::call_state(self.dialog, self.direction)
            };
        }
    }
}

/// The document's dialogs by `call-id` (forks of one call are one appearance: the most alive
/// fork stands for it), leaving out the provider's own 3PCC dialogs (remote = `controller`).
fn by_call_id<'a>(info: &'a DialogInfo, controller: &str) -> BTreeMap<String, &'a DialogEntry> {
    let mut groups: BTreeMap<String, &DialogEntry> = BTreeMap::new();
    for entry in &info.dialogs {
        if entry.remote.user().as_deref() == Some(controller) {
            continue;
        }
        let key = entry.call_id.clone().unwrap_or_else(|| entry.id.clone());
        let keep = groups.get(&key).is_some_and(|kept| {
            if kept.id == entry.id {
                kept.state >= entry.state
            } else {
                state::rank(kept.state) >= state::rank(entry.state)
            }
        });
        if !keep {
            groups.insert(key, entry);
        }
    }
    groups
}

/// Binds the pending transfer that `entry` (a new dialog on the line of `user`) is the new
/// dialog of: from the transferee to the target.
fn bind_transfer(
    transfers: &mut Vec<PendingTransfer>,
    transferred: &mut BTreeMap<String, Redirect>,
    call_id: &str,
    entry: &DialogEntry,
    user: &str,
) {
    if transferred.contains_key(call_id) || transfers.is_empty() {
        return;
    }
    let local = entry.local.user().unwrap_or_else(|| user.to_owned());
    let Some(remote) = entry.remote.user() else {
        return;
    };
    let (caller, called) = match entry.direction {
        Some(Direction::Initiator) => (local, remote),
        Some(Direction::Recipient) | None => (remote, local),
    };
    let Some(index) = transfers
        .iter()
        .position(|t| t.call_id != call_id && t.transferee == caller && t.target == called)
    else {
        return;
    };
    let transfer = transfers.remove(index);
    transferred.insert(call_id.to_owned(), transfer.redirect);
}

impl LineCalls {
    /// Whether `call_id` would be a new appearance here (neither live nor ended).
    fn is_new(&self, call_id: &str) -> bool {
        !self.calls.contains_key(call_id) && !self.ended.contains(call_id)
    }

    /// The line itself as a party: its number, and its name if configured.
    fn own_party(&self) -> Party {
        match &self.spec.name {
            Some(name) => Party::named(self.spec.user.clone(), name.clone()),
            None => Party::number(self.spec.user.clone()),
        }
    }

    /// Marks the calls a full document does not list (`listed`); ends those it is the
    /// second such document for, or all of them when it is the subscription's `first`.
    fn absent_from_full_document(
        &mut self,
        listed: impl Fn(&str) -> bool,
        first: bool,
        out: &mut Vec<CallReport>,
    ) {
        let absent: Vec<String> = self
            .calls
            .keys()
            .filter(|id| !listed(id))
            .cloned()
            .collect();
        for call_id in absent {
            let Some(appearance) = self.calls.get_mut(&call_id) else {
                continue;
            };
            if first || appearance.missing {
                self.end(&call_id, tapir_model::DisconnectMode::Normal, out);
            } else {
                appearance.missing = true;
            }
        }
    }

    /// A document older than the one applied (Kamailio's workers send them out of order)
    /// may still carry a later state of a live dialog: it moves that dialog forward, up to
    /// confirmed. It starts and ends nothing: a call it lists may be over and forgotten, and
    /// its absences and terminations are older news than what was applied.
    fn advance(
        &mut self,
        call_id: &str,
        entry: &DialogEntry,
        users: &BTreeSet<String>,
        redirect: Option<&Redirect>,
        out: &mut Vec<CallReport>,
    ) {
        let Some(appearance) = self.calls.get(call_id) else {
            return;
        };
        if entry.state == DialogState::Terminated || entry.state <= appearance.dialog {
            return;
        }
        let missing = appearance.missing;
        self.update(call_id, entry, users, redirect, out);
        if let Some(appearance) = self.calls.get_mut(call_id) {
            appearance.missing = missing;
        }
    }

    fn update(
        &mut self,
        call_id: &str,
        entry: &DialogEntry,
        users: &BTreeSet<String>,
        redirect: Option<&Redirect>,
        out: &mut Vec<CallReport>,
    ) {
        if entry.state == DialogState::Terminated {
            if self.calls.contains_key(call_id) {
                let mode = state::disconnect_mode(entry.event.as_deref(), entry.code);
                self.end(call_id, mode, out);
            } else {
                self.ended.insert(call_id.to_owned());
            }
            return;
        }
        if self.ended.contains(call_id) {
            return;
        }
        if let Some(appearance) = self.calls.get_mut(call_id) {
            appearance.missing = false;
            if entry.state < appearance.dialog {
                return;
            }
        }
        let known = self.calls.get(call_id).map(|a| a.direction);
        let direction = entry.direction.or(known).unwrap_or(Direction::Recipient);
        let own = party(&entry.local).unwrap_or_else(|| self.own_party());
        let other = party(&entry.remote).unwrap_or_default();
        let (caller, called) = match direction {
            Direction::Initiator => (own, other.clone()),
            Direction::Recipient => (other.clone(), own),
        };
        let call_state = state::call_state(entry.state, direction);
        let connected = if entry.state == DialogState::Confirmed {
            other.clone()
        } else {
            self.calls
                .get(call_id)
                .map(|a| a.connected.clone())
                .unwrap_or_default()
        };
        let origin = match direction {
            Direction::Initiator => CallOrigin::Outbound,
            Direction::Recipient if other.number.as_ref().is_some_and(|n| users.contains(n)) => {
                CallOrigin::Internal
            }
            Direction::Recipient => CallOrigin::Inbound,
        };
        if !self.calls.contains_key(call_id) {
            let (call, held) = self.bind_made_call(call_id, direction, &other);
            let appearance = Appearance {
                call,
                call_id: call_id.to_owned(),
                direction,
                dialog: entry.state,
                missing: false,
                state: call_state,
                caller: caller.clone(),
                called: called.clone(),
                connected: connected.clone(),
                origin,
                last: None,
                held,
                on_hold: false,
                redirect: None,
            };
            self.calls.insert(call_id.to_owned(), appearance);
        }
        if let Some(appearance) = self.calls.get_mut(call_id) {
            appearance.direction = direction;
            appearance.dialog = entry.state;
            appearance.state = if appearance.on_hold && entry.state == DialogState::Confirmed {
                CallState::OnHold
            } else {
                call_state
            };
            appearance.caller = caller;
            appearance.called = called;
            appearance.connected = connected;
            appearance.origin = origin;
            if let Some(redirect) = redirect {
                appearance.redirect = Some(redirect.clone());
            }
        }
        self.emit(call_id, out);
    }

    /// The reference of a new appearance: a waiting made call's if this is its dialog.
    fn bind_made_call(
        &mut self,
        call_id: &str,
        direction: Direction,
        other: &Party,
    ) -> (CallRef, bool) {
        if direction == Direction::Initiator
            && let Some(made) = self.made.iter_mut().find(|m| {
                m.bound.is_none()
                    && m.to_user
                        .as_ref()
                        .is_none_or(|to| other.number.as_ref() == Some(to))
            })
        {
            made.bound = Some(call_id.to_owned());
            let held = !made.completed;
            let call = made.call.clone();
            if made.completed {
                let key = made.key;
                self.made.retain(|m| m.key != key);
            }
            return (call, held);
        }
        (CallRef(format!("{}/{call_id}", self.spec.device.0)), false)
    }

    /// Ends an appearance: disconnected (if it was ever reported), then idle.
    fn end(&mut self, call_id: &str, mode: tapir_model::DisconnectMode, out: &mut Vec<CallReport>) {
        let Some(mut appearance) = self.calls.remove(call_id) else {
            return;
        };
        self.ended.insert(call_id.to_owned());
        self.made.retain(|m| m.bound.as_deref() != Some(call_id));
        if appearance.held {
            return;
        }
        appearance.state = CallState::Disconnected(mode);
        out.push(self.report(&appearance));
        appearance.state = CallState::Idle;
        out.push(self.report(&appearance));
    }

    /// Appends the appearance's report if it changed since the last one.
    fn emit(&mut self, call_id: &str, out: &mut Vec<CallReport>) {
        let Some(appearance) = self.calls.get(call_id) else {
            return;
        };
        if appearance.held {
            return;
        }
        let report = self.report(appearance);
        if appearance.last.as_ref() != Some(&report) {
            out.push(report.clone());
            if let Some(appearance) = self.calls.get_mut(call_id) {
                appearance.last = Some(report);
            }
        }
    }

    fn report(&self, appearance: &Appearance) -> CallReport {
        CallReport {
            device: self.spec.device.clone(),
            call: appearance.call.clone(),
            state: appearance.state,
            origin: appearance.origin,
            reason: if appearance.redirect.is_some() {
                CallReason::Transfer
            } else {
                CallReason::Direct
            },
            caller: appearance.caller.clone(),
            called: appearance.called.clone(),
            connected: appearance.connected.clone(),
            redirecting: appearance
                .redirect
                .as_ref()
                .map(|r| r.redirecting.clone())
                .unwrap_or_default(),
            redirection: Party::default(),
            related: None,
            conference: None,
        }
    }
}

/// A participant as a party: number from the URI's user part, name from `display`.
fn party(participant: &crate::dialog_info::Participant) -> Option<Party> {
    let number = participant.user();
    let name = participant.display.clone();
    (number.is_some() || name.is_some()).then_some(Party { number, name })
}

#[cfg(test)]
mod tests;
