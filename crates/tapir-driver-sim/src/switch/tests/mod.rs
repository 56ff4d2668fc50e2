//! Tests of the switch, driven synchronously with a hand-moved clock.
//!
//! Every command goes through [`Sim::run`], which checks the contract on each: exactly one
//! `Completed` carrying the request's id, and for a command that creates a call, that
//! `Completed` before any report of the new call.

mod basic;
mod extensions;
mod features;
mod handset;
mod park;

use tapir_model::{ForwardMode, Party, RequestId, SimAction, TapiError};
use tapir_provider::{
    CallRef, CallReport, Completion, DeviceKey, PickupFrom, ProviderCommand, ProviderEvent,
    ProviderRequest,
};

use super::Switch;
use crate::config::SimConfig;

/// A switch with a clock and a request counter.
struct Sim {
    switch: Switch,
    now: u64,
    next_request: u64,
    /// Every event of the last command or timer step, for tests that look past reports.
    last_events: Vec<ProviderEvent>,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(SimConfig::default())
    }

    fn with(config: SimConfig) -> Sim {
        assert!(config.validate().is_ok(), "test config must be valid");
        Sim {
            switch: Switch::new(config),
            now: 0,
            next_request: 1,
            last_events: Vec::new(),
        }
    }

    /// Runs one command, checks its one `Completed`, and returns the outcome and reports.
    fn run(
        &mut self,
        command: ProviderCommand,
    ) -> (Result<Completion, TapiError>, Vec<CallReport>) {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let events = self
            .switch
            .handle(self.now, ProviderRequest { id, command });
        let completions: Vec<(usize, &Result<Completion, TapiError>)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, event)| match event {
                ProviderEvent::Completed { request, outcome } => {
                    assert_eq!(*request, id, "a completion for another request");
                    Some((i, outcome))
                }
                _ => None,
            })
            .collect();
        assert_eq!(completions.len(), 1, "exactly one Completed: {events:#?}");
        let (position, outcome) = completions[0];
        let outcome = outcome.clone();
        if let Ok(Completion::Call(call)) = &outcome {
            let first_report = events.iter().position(
                |event| matches!(event, ProviderEvent::Call(report) if report.call == *call),
            );
            assert!(
                first_report.is_some_and(|first| position < first),
                "Completed must precede the first report of {call:?}: {events:#?}"
            );
        }
        let reports = call_reports(&events);
        self.last_events = events;
        (outcome, reports)
    }

    /// Runs a command that must succeed with `Done`.
    fn ok(&mut self, command: ProviderCommand) -> Vec<CallReport> {
        let (outcome, reports) = self.run(command);
        assert_eq!(outcome, Ok(Completion::Done));
        reports
    }

    /// Runs a command that must create a call.
    fn call(&mut self, command: ProviderCommand) -> (CallRef, Vec<CallReport>) {
        match self.run(command) {
            (Ok(Completion::Call(call)), reports) => (call, reports),
            (other, _) => panic!("expected a new call, got {other:?}"),
        }
    }

    /// Runs a command that must fail without any other effect.
    fn fail(&mut self, command: ProviderCommand) -> TapiError {
        let (outcome, reports) = self.run(command);
        assert_eq!(self.last_events.len(), 1, "a failed command has no effects");
        assert!(reports.is_empty());
        outcome.expect_err("the command must fail")
    }

    /// Moves the clock on and returns the reports of the timers that fired.
    fn advance(&mut self, ms: u64) -> Vec<CallReport> {
        self.now += ms;
        let events = self.switch.fire_due(self.now);
        let reports = call_reports(&events);
        self.last_events = events;
        reports
    }

    /// Connects `from` and `to`; returns (caller's call, callee's call).
    fn connect(&mut self, from: &str, to: &str) -> (CallRef, CallRef) {
        let (caller, reports) = self.call(make_call(from, to));
        let ringing = last_call_on(&reports, to);
        self.ok(answer(&ringing));
        (caller, ringing)
    }
}

fn call_reports(events: &[ProviderEvent]) -> Vec<CallReport> {
    events
        .iter()
        .filter_map(|event| match event {
            ProviderEvent::Call(report) => Some(report.as_ref().clone()),
            _ => None,
        })
        .collect()
}

/// The reports as "call@device state[:mode]" lines, for comparing whole sequences.
fn steps(reports: &[CallReport]) -> Vec<String> {
    reports.iter().map(step).collect()
}

fn step(report: &CallReport) -> String {
    let state = match report.state.mode() {
        Some((mode, _)) => format!("{}:{mode}", report.state.name()),
        None => report.state.name().to_string(),
    };
    format!("{}@{} {state}", report.call.0, report.device.0)
}

/// The call of the last report about `device`.
fn last_call_on(reports: &[CallReport], device: &str) -> CallRef {
    reports
        .iter()
        .rev()
        .find(|report| report.device.0 == device)
        .map(|report| report.call.clone())
        .unwrap_or_else(|| panic!("no report on {device}: {:#?}", steps(reports)))
}

/// The last report about `call`.
fn last<'a>(reports: &'a [CallReport], call: &str) -> &'a CallReport {
    reports
        .iter()
        .rev()
        .find(|report| report.call.0 == call)
        .unwrap_or_else(|| panic!("no report of {call}: {:#?}", steps(reports)))
}

fn ext(number: &str) -> Party {
    Party::named(number, format!("Extension {number}"))
}

fn key(device: &str) -> DeviceKey {
    DeviceKey(device.to_string())
}

fn cref(call: &str) -> CallRef {
    CallRef(call.to_string())
}

fn make_call(device: &str, to: &str) -> ProviderCommand {
    ProviderCommand::MakeCall {
        device: key(device),
        to: to.to_string(),
    }
}

fn answer(call: &CallRef) -> ProviderCommand {
    ProviderCommand::Answer { call: call.clone() }
}

fn drop_call(call: &CallRef) -> ProviderCommand {
    ProviderCommand::Drop { call: call.clone() }
}

fn hold(call: &CallRef) -> ProviderCommand {
    ProviderCommand::Hold { call: call.clone() }
}

fn unhold(call: &CallRef) -> ProviderCommand {
    ProviderCommand::Unhold { call: call.clone() }
}

fn consult(call: &CallRef, to: &str) -> ProviderCommand {
    ProviderCommand::Consult {
        call: call.clone(),
        to: to.to_string(),
    }
}

fn complete(held: &CallRef, consult: &CallRef) -> ProviderCommand {
    ProviderCommand::CompleteTransfer {
        held: held.clone(),
        consult: consult.clone(),
    }
}

fn forwards(device: &str, rules: &[(ForwardMode, &str)]) -> ProviderCommand {
    ProviderCommand::SetForwards {
        device: key(device),
        forwards: rules
            .iter()
            .map(|(mode, destination)| tapir_model::Forward {
                mode: *mode,
                destination: destination.to_string(),
            })
            .collect(),
    }
}

fn simulate(device: &str, action: SimAction) -> ProviderCommand {
    ProviderCommand::Simulate {
        device: key(device),
        action,
    }
}

fn pickup(device: &str, from: PickupFrom) -> ProviderCommand {
    ProviderCommand::Pickup {
        device: key(device),
        from,
    }
}
