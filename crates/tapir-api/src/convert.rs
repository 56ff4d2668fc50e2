//! The core's views as wire DTOs.

use tapir_core::{CallSnapshot, Event, InstanceInfo, LineSnapshot, Sequenced, Snapshot};
use tapir_wire::{CallDto, EventDto, InstanceDto, LineDto, SequencedDto, SnapshotDto};

pub(crate) fn line(l: &LineSnapshot) -> LineDto {
    LineDto::new(&l.line, &l.instance)
}

pub(crate) fn call(c: &CallSnapshot) -> CallDto {
    CallDto::new(&c.call, c.features)
}

pub(crate) fn instance(i: &InstanceInfo) -> InstanceDto {
    InstanceDto {
        name: i.name.clone(),
        driver: i.driver.into(),
        status: i.status.as_str().into(),
        reason: i.status.reason().map(String::from),
        since: i.since,
        lines: i.lines,
        capabilities: i
            .capabilities
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

/// A snapshot, limited to `lines` when given.
pub(crate) fn snapshot(s: &Snapshot, lines: Option<&dyn Fn(u32) -> bool>) -> SnapshotDto {
    let keep = |id: u32| lines.is_none_or(|f| f(id));
    SnapshotDto {
        epoch: s.epoch,
        seq: s.seq,
        instances: s.instances.iter().map(instance).collect(),
        lines: s
            .lines
            .iter()
            .filter(|l| keep(l.line.id.0))
            .map(line)
            .collect(),
        calls: s
            .calls
            .iter()
            .filter(|c| keep(c.call.line.0))
            .map(call)
            .collect(),
    }
}

pub(crate) fn event(e: &Event) -> EventDto {
    match e {
        Event::LineCreated(l) => EventDto::LineCreated { line: line(l) },
        Event::LineChanged(l) => EventDto::LineChanged { line: line(l) },
        Event::LineRemoved { line, instance } => EventDto::LineRemoved {
            line: line.0,
            instance: instance.clone(),
        },
        Event::LinePurged { line, instance } => EventDto::LinePurged {
            line: line.0,
            instance: instance.clone(),
        },
        Event::CallNew(c) => EventDto::CallNew { call: call(c) },
        Event::CallState(c) => EventDto::CallState { call: call(c) },
        Event::CallInfo { call: c, changed } => EventDto::call_info(call(c), *changed),
        Event::CallFeatures(c) => EventDto::CallFeatures { call: call(c) },
        Event::InstanceChanged(i) => EventDto::InstanceChanged {
            instance: instance(i),
        },
    }
}

pub(crate) fn sequenced(s: &Sequenced) -> SequencedDto {
    SequencedDto {
        seq: s.seq,
        at: s.at,
        event: event(&s.event),
    }
}
