//! The engine's tables of lines and calls, keyed both by server id and by PBX-native key,
//! and how a provider report becomes domain events.
//!
//! Every mutating function appends the events it causes to `out`; the engine publishes them
//! in that order. Nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tapir_model::{
    Call, CallFeatures, CallId, CallInfo, CallState, Capabilities, InstanceId, Line, LineId,
    LineStatus, Timestamp, Transition, call_features,
};
use tapir_provider::{CallRef, CallReport, Device, DeviceKey, DeviceStatus};

use crate::view::{CallSnapshot, Event, LineSnapshot};

#[derive(Debug)]
struct LineEntry {
    line: Line,
    device: DeviceKey,
    instance_name: String,
}

#[derive(Debug)]
struct CallEntry {
    call: Call,
    features: CallFeatures,
    instance: InstanceId,
    call_ref: CallRef,
}

/// Lines and calls of every instance.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    lines: BTreeMap<LineId, LineEntry>,
    line_by_device: HashMap<(InstanceId, DeviceKey), LineId>,
    calls: BTreeMap<CallId, CallEntry>,
    call_by_ref: HashMap<(InstanceId, CallRef), CallId>,
    calls_on_line: HashMap<LineId, BTreeSet<CallId>>,
    next_call: u64,
}

impl LineEntry {
    fn snapshot(&self) -> LineSnapshot {
        LineSnapshot {
            line: self.line.clone(),
            instance: self.instance_name.clone(),
        }
    }
}

impl CallEntry {
    fn snapshot(&self) -> CallSnapshot {
        CallSnapshot {
            call: self.call.clone(),
            features: self.features,
            instance: self.instance,
        }
    }
}

impl Tables {
    pub(crate) fn line(&self, id: LineId) -> Option<LineSnapshot> {
        self.lines.get(&id).map(LineEntry::snapshot)
    }

    pub(crate) fn lines(&self) -> Vec<LineSnapshot> {
        self.lines.values().map(LineEntry::snapshot).collect()
    }

    pub(crate) fn line_count(&self, instance: InstanceId) -> usize {
        self.lines
            .values()
            .filter(|l| l.line.instance == instance)
            .count()
    }

    pub(crate) fn call(&self, id: CallId) -> Option<CallSnapshot> {
        self.calls.get(&id).map(CallEntry::snapshot)
    }

    pub(crate) fn calls(&self) -> Vec<CallSnapshot> {
        self.calls.values().map(CallEntry::snapshot).collect()
    }

    pub(crate) fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The PBX key of a line, with its instance.
    pub(crate) fn device_of(&self, line: LineId) -> Option<(InstanceId, &DeviceKey)> {
        self.lines.get(&line).map(|l| (l.line.instance, &l.device))
    }

    /// The PBX reference of a call, with its instance.
    pub(crate) fn call_ref_of(&self, call: CallId) -> Option<(InstanceId, &CallRef)> {
        self.calls.get(&call).map(|c| (c.instance, &c.call_ref))
    }

    /// The other calls on the line of `call`.
    pub(crate) fn line_mates(&self, call: &Call) -> Vec<&Call> {
        self.calls_on_line
            .get(&call.line)
            .into_iter()
            .flatten()
            .filter(|id| **id != call.id)
            .filter_map(|id| self.calls.get(id).map(|c| &c.call))
            .collect()
    }

    /// The server id of a PBX call reference, allocating one on first sight so that a command
    /// result and the call's first report agree.
    pub(crate) fn call_id_for(&mut self, instance: InstanceId, call_ref: &CallRef) -> CallId {
        if let Some(id) = self.call_by_ref.get(&(instance, call_ref.clone())) {
            return *id;
        }
        self.next_call += 1;
        let id = CallId(self.next_call);
        self.call_by_ref.insert((instance, call_ref.clone()), id);
        id
    }

    /// Creates or refreshes the lines of `instance` for these devices (ids already resolved
    /// and names already built). A defunct line that comes back is announced as created.
    pub(crate) fn upsert_lines(
        &mut self,
        instance: InstanceId,
        instance_name: &str,
        devices: Vec<(LineId, Device)>,
        out: &mut Vec<Event>,
    ) {
        for (id, device) in devices {
            let line = Line {
                id,
                instance,
                address: device.address,
                name: device.name,
                status: LineStatus::InService,
                forwards: Vec::new(),
                do_not_disturb: false,
            };
            match self.lines.get_mut(&id) {
                Some(entry) => {
                    let returning = entry.line.status == LineStatus::Defunct;
                    let updated = Line {
                        forwards: entry.line.forwards.clone(),
                        do_not_disturb: entry.line.do_not_disturb,
                        ..line
                    };
                    if returning {
                        entry.line = updated;
                        out.push(Event::LineCreated(entry.snapshot()));
                    } else if entry.line != updated {
                        entry.line = updated;
                        out.push(Event::LineChanged(entry.snapshot()));
                    }
                }
                None => {
                    self.line_by_device
                        .insert((instance, device.key.clone()), id);
                    let entry = LineEntry {
                        line,
                        device: device.key,
                        instance_name: instance_name.to_owned(),
                    };
                    out.push(Event::LineCreated(entry.snapshot()));
                    self.lines.insert(id, entry);
                }
            }
        }
    }

    /// Lines the store remembers for `instance`, known before its PBX reports: out of
    /// service until the PBX confirms them, defunct if it does not.
    pub(crate) fn insert_known_lines(
        &mut self,
        instance: InstanceId,
        instance_name: &str,
        known: Vec<(LineId, Device)>,
        out: &mut Vec<Event>,
    ) {
        for (id, device) in known {
            if self.lines.contains_key(&id) {
                continue;
            }
            let entry = LineEntry {
                line: Line {
                    id,
                    instance,
                    address: device.address,
                    name: device.name,
                    status: LineStatus::OutOfService,
                    forwards: Vec::new(),
                    do_not_disturb: false,
                },
                device: device.key.clone(),
                instance_name: instance_name.to_owned(),
            };
            self.line_by_device.insert((instance, device.key), id);
            out.push(Event::LineCreated(entry.snapshot()));
            self.lines.insert(id, entry);
        }
    }

    /// Makes the lines of `instance` that are not in `keep` defunct.
    pub(crate) fn retain_lines(
        &mut self,
        instance: InstanceId,
        keep: &BTreeSet<LineId>,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let gone: Vec<LineId> = self
            .lines
            .values()
            .filter(|l| l.line.instance == instance && !keep.contains(&l.line.id))
            .map(|l| l.line.id)
            .collect();
        for line in gone {
            self.make_defunct(line, now, out);
        }
    }

    /// The PBX no longer has this line's device: its calls end, and it stays listed as
    /// defunct (announced to clients as removed) until purged or back.
    pub(crate) fn make_defunct(&mut self, line: LineId, now: Timestamp, out: &mut Vec<Event>) {
        if self
            .lines
            .get(&line)
            .is_none_or(|l| l.line.status == LineStatus::Defunct)
        {
            return;
        }
        self.end_calls_on(line, now, out);
        if let Some(entry) = self.lines.get_mut(&line) {
            entry.line.status = LineStatus::Defunct;
            out.push(Event::LineRemoved {
                line,
                instance: entry.instance_name.clone(),
            });
        }
    }

    /// Forgets a line entirely (purged, or its instance was removed); its calls end first.
    pub(crate) fn forget_line(&mut self, line: LineId, now: Timestamp, out: &mut Vec<Event>) {
        self.end_calls_on(line, now, out);
        if let Some(entry) = self.lines.remove(&line) {
            self.line_by_device
                .remove(&(entry.line.instance, entry.device));
            self.calls_on_line.remove(&line);
            if entry.line.status != LineStatus::Defunct {
                out.push(Event::LineRemoved {
                    line,
                    instance: entry.instance_name.clone(),
                });
            }
            out.push(Event::LinePurged {
                line,
                instance: entry.instance_name,
            });
        }
    }

    fn end_calls_on(&mut self, line: LineId, now: Timestamp, out: &mut Vec<Event>) {
        let calls: Vec<CallId> = self
            .calls_on_line
            .get(&line)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for call in calls {
            self.end_call(call, now, out);
        }
    }

    /// The lines of `instance`.
    pub(crate) fn lines_of(&self, instance: InstanceId) -> Vec<LineId> {
        self.lines
            .values()
            .filter(|l| l.line.instance == instance)
            .map(|l| l.line.id)
            .collect()
    }

    pub(crate) fn line_by_device(&self, instance: InstanceId, key: &DeviceKey) -> Option<LineId> {
        self.line_by_device.get(&(instance, key.clone())).copied()
    }

    /// Marks every line of `instance` in or out of service.
    pub(crate) fn set_instance_lines_status(
        &mut self,
        instance: InstanceId,
        status: LineStatus,
        out: &mut Vec<Event>,
    ) {
        for entry in self.lines.values_mut() {
            if entry.line.instance == instance && entry.line.status != status {
                entry.line.status = status;
                out.push(Event::LineChanged(entry.snapshot()));
            }
        }
    }

    /// One device of a running instance went out of service or came back. A defunct line
    /// stays defunct.
    pub(crate) fn set_device_service(
        &mut self,
        instance: InstanceId,
        device: &DeviceKey,
        in_service: bool,
        out: &mut Vec<Event>,
    ) {
        let Some(id) = self.line_by_device(instance, device) else {
            tracing::warn!(device = %device.0, "service state for an unknown device ignored");
            return;
        };
        let status = if in_service {
            LineStatus::InService
        } else {
            LineStatus::OutOfService
        };
        if let Some(entry) = self.lines.get_mut(&id)
            && entry.line.status != LineStatus::Defunct
            && entry.line.status != status
        {
            entry.line.status = status;
            out.push(Event::LineChanged(entry.snapshot()));
        }
    }

    pub(crate) fn apply_device_status(
        &mut self,
        instance: InstanceId,
        status: DeviceStatus,
        out: &mut Vec<Event>,
    ) {
        let Some(id) = self.line_by_device(instance, &status.device) else {
            tracing::warn!(device = %status.device.0, "status for an unknown device ignored");
            return;
        };
        if let Some(entry) = self.lines.get_mut(&id)
            && (entry.line.forwards != status.forwards
                || entry.line.do_not_disturb != status.do_not_disturb)
        {
            entry.line.forwards = status.forwards;
            entry.line.do_not_disturb = status.do_not_disturb;
            out.push(Event::LineChanged(entry.snapshot()));
        }
    }

    /// Applies one call report from a provider.
    pub(crate) fn apply_report(
        &mut self,
        instance: InstanceId,
        capabilities: Capabilities,
        report: CallReport,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let Some(line) = self.line_by_device(instance, &report.device) else {
            tracing::warn!(device = %report.device.0, call = %report.call.0,
                "call report for an unknown device ignored");
            return;
        };
        let id = self.call_id_for(instance, &report.call);
        let info = CallInfo {
            origin: report.origin,
            reason: report.reason,
            caller: report.caller,
            called: report.called,
            connected: report.connected,
            redirecting: report.redirecting,
            redirection: report.redirection,
            related: report.related.map(|r| self.call_id_for(instance, &r)),
            conference: report.conference.map(|r| self.call_id_for(instance, &r)),
        };
        match self.calls.get_mut(&id) {
            None if report.state == CallState::Idle => {
                // Created and ended before we saw it: nothing for clients to learn.
                self.call_by_ref.remove(&(instance, report.call));
                return;
            }
            None => {
                let call = Call::new(id, line, report.state, info, now);
                self.calls.insert(
                    id,
                    CallEntry {
                        call,
                        features: CallFeatures::empty(),
                        instance,
                        call_ref: report.call,
                    },
                );
                self.calls_on_line.entry(line).or_default().insert(id);
                let features = self.features_of(id, capabilities);
                if let Some(entry) = self.calls.get_mut(&id) {
                    entry.features = features;
                    out.push(Event::CallNew(entry.snapshot()));
                }
            }
            Some(entry) => {
                let changed = entry.call.info.changes_to(&info);
                if !changed.is_empty() {
                    entry.call.info = info;
                    out.push(Event::CallInfo {
                        call: entry.snapshot(),
                        changed,
                    });
                }
                if entry.call.state != report.state {
                    let from = entry.call.state;
                    match entry.call.enter(report.state, now) {
                        Transition::Forbidden => {
                            tracing::warn!(call = %id, from = from.name(), to = report.state.name(),
                                "impossible state change from the PBX ignored");
                            return;
                        }
                        Transition::Unusual => {
                            tracing::info!(call = %id, from = from.name(), to = report.state.name(),
                                "unusual state change from the PBX applied");
                        }
                        Transition::Expected => {}
                    }
                    let features = self.features_of(id, capabilities);
                    if let Some(entry) = self.calls.get_mut(&id) {
                        entry.features = features;
                        out.push(Event::CallState(entry.snapshot()));
                    }
                }
            }
        }
        if report.state == CallState::Idle {
            self.forget_call(id);
        }
        self.refresh_features(line, capabilities, out);
    }

    /// Ends every call of `instance` whose reference is not in `present` (after a resync).
    pub(crate) fn end_calls_except(
        &mut self,
        instance: InstanceId,
        present: &BTreeSet<CallRef>,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let gone: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.instance == instance && !present.contains(&c.call_ref))
            .map(|c| c.call.id)
            .collect();
        for call in gone {
            self.end_call(call, now, out);
        }
    }

    /// Reports a call idle and forgets it.
    fn end_call(&mut self, id: CallId, now: Timestamp, out: &mut Vec<Event>) {
        if let Some(entry) = self.calls.get_mut(&id) {
            entry.call.enter(CallState::Idle, now);
            entry.features = CallFeatures::empty();
            out.push(Event::CallState(entry.snapshot()));
        }
        self.forget_call(id);
    }

    fn forget_call(&mut self, id: CallId) {
        if let Some(entry) = self.calls.remove(&id) {
            self.call_by_ref.remove(&(entry.instance, entry.call_ref));
            if let Some(set) = self.calls_on_line.get_mut(&entry.call.line) {
                set.remove(&id);
            }
        }
    }

    fn features_of(&self, id: CallId, capabilities: Capabilities) -> CallFeatures {
        match self.calls.get(&id) {
            Some(entry) => call_features(&entry.call, self.line_mates(&entry.call), capabilities),
            None => CallFeatures::empty(),
        }
    }

    /// Recomputes the features of every call on `line`, reporting those that changed.
    fn refresh_features(&mut self, line: LineId, capabilities: Capabilities, out: &mut Vec<Event>) {
        let ids: Vec<CallId> = self
            .calls_on_line
            .get(&line)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for id in ids {
            let features = self.features_of(id, capabilities);
            if let Some(entry) = self.calls.get_mut(&id)
                && entry.features != features
            {
                entry.features = features;
                out.push(Event::CallFeatures(entry.snapshot()));
            }
        }
    }
}
