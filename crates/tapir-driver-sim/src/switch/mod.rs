//! The switching logic: a plain synchronous state machine with no I/O and no clock.
//!
//! [`Switch::handle`] takes one request and returns every event it causes, its one
//! `Completed` included; [`Switch::fire_due`] runs the timers that are due. Time is given in
//! milliseconds since the switch started, so tests drive the clock by hand.
//!
//! Events of one command come in this order: for a command that creates a call, the
//! `Completed` first (the contract wants clients to learn the call before its events), then
//! the reports; for every other command the reports of its direct effects, then the
//! `Completed`. What the switch then does by itself (ringing after the ring delay, answers by
//! auto-answering extensions or outside numbers, forwarding on no answer) runs from timers
//! and follows, even when its delay is 0.
//!
//! Every command checks everything before it changes anything, so a failed command has no
//! effects and its `Completed` is the only event.

mod calls;
mod extensions;
mod handset;
mod leg;
mod park;
mod routing;
mod settings;
mod transfer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use tapir_model::{CallState, DisconnectMode, ErrorKind, Forward, ForwardMode, Party, TapiError};
use tapir_provider::{
    CallRef, Completion, Device, DeviceKey, DeviceStatus, ProviderCommand, ProviderEvent,
    ProviderRequest,
};

use crate::config::SimConfig;
use leg::{Far, Leg, LegId, Side};

/// Something the switch does by itself once a delay has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerAction {
    /// The ring delay of a dialled call passed: the destination is reached.
    Deliver(LegId),
    /// An auto-answering extension answers its ringing leg.
    AutoAnswer(LegId),
    /// A leg rang unanswered for the no-answer timeout: forward on no answer.
    NoAnswer(LegId),
    /// A ringing outside number answers.
    ExternalAnswer(LegId),
}

/// One extension's settings and call appearances.
#[derive(Debug, Clone, Default)]
struct Station {
    number: String,
    name: String,
    /// False once the extension was removed; its slot stays so that indices stay valid.
    present: bool,
    do_not_disturb: bool,
    forwards: Vec<Forward>,
    auto_answer: bool,
    /// Live legs in the order they appeared.
    legs: Vec<LegId>,
}

impl Station {
    fn new(number: String, name: Option<String>) -> Station {
        let name = name.unwrap_or_else(|| format!("Extension {number}"));
        Station {
            number,
            name,
            present: true,
            ..Station::default()
        }
    }

    fn forward(&self, mode: ForwardMode) -> Option<&str> {
        self.forwards
            .iter()
            .find(|forward| forward.mode == mode)
            .map(|forward| forward.destination.as_str())
    }
}

/// The simulated switch.
#[derive(Debug)]
pub(crate) struct Switch {
    config: SimConfig,
    stations: Vec<Station>,
    /// Extension number to station index, removed extensions included.
    by_number: HashMap<String, usize>,
    legs: HashMap<LegId, Leg>,
    next_leg: LegId,
    /// Pending timers by (due time in ms, sequence number): earliest first, ties in order.
    /// Timers are never cancelled; each checks when it fires that it still applies.
    timers: BTreeMap<(u64, u64), TimerAction>,
    next_timer: u64,
    /// The switch's clock in ms, as last given by the caller.
    now: u64,
    /// Events produced by the step in progress.
    out: Vec<ProviderEvent>,
    /// Who waits at each occupied park place.
    parked: BTreeMap<String, Side>,
}

impl Switch {
    /// A switch with every extension idle. `config` must have passed
    /// [`SimConfig::validate`]; extensions in `auto_answer` that are not ours are ignored.
    pub fn new(config: SimConfig) -> Switch {
        let first = u64::from(config.first_extension);
        let mut stations: Vec<Station> = (0..u64::from(config.extensions))
            .map(|offset| Station::new((first + offset).to_string(), None))
            .collect();
        for extension in &config.auto_answer {
            if let Some(station) = config
                .extension_index(extension)
                .and_then(|index| stations.get_mut(index))
            {
                station.auto_answer = true;
            }
        }
        let by_number = stations
            .iter()
            .enumerate()
            .map(|(i, s)| (s.number.clone(), i))
            .collect();
        Switch {
            config,
            stations,
            by_number,
            legs: HashMap::new(),
            next_leg: 1,
            timers: BTreeMap::new(),
            next_timer: 0,
            now: 0,
            out: Vec::new(),
            parked: BTreeMap::new(),
        }
    }

    /// Every extension, in number order.
    pub fn devices(&self) -> Vec<Device> {
        self.present_stations()
            .map(|station| {
                Device::new(
                    self.station_key(station).0,
                    self.station_number(station),
                    self.station_name(station),
                )
            })
            .collect()
    }

    /// The forwarding and do-not-disturb of every extension, defaults included.
    pub fn statuses(&self) -> Vec<DeviceStatus> {
        self.present_stations()
            .map(|station| self.status(station))
            .collect()
    }

    /// The due time (ms) of the earliest timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.keys().next().map(|(due, _)| *due)
    }

    /// Carries out one request at time `now` and returns the events it causes, with exactly
    /// one `Completed` for it, followed by those of timers due by `now`.
    pub fn handle(&mut self, now: u64, request: ProviderRequest) -> Vec<ProviderEvent> {
        self.now = self.now.max(now);
        let outcome = self.execute(request.command);
        let mut events = std::mem::take(&mut self.out);
        let creates_call = matches!(outcome, Ok(Completion::Call(_)));
        let completed = ProviderEvent::Completed {
            request: request.id,
            outcome,
        };
        if creates_call {
            events.insert(0, completed);
        } else {
            events.push(completed);
        }
        self.run_due();
        events.append(&mut self.out);
        events
    }

    /// Runs every timer due by `now` and returns the events they cause.
    pub fn fire_due(&mut self, now: u64) -> Vec<ProviderEvent> {
        self.now = self.now.max(now);
        self.run_due();
        std::mem::take(&mut self.out)
    }

    fn execute(&mut self, command: ProviderCommand) -> Result<Completion, TapiError> {
        use ProviderCommand as C;
        match command {
            C::MakeCall { device, to } => self.make_call(&device, &to),
            C::Accept { call } => self.accept_call(&call).map(done),
            C::Answer { call } => self.answer_call(&call).map(done),
            C::Drop { call } => self.drop_call(&call).map(done),
            C::Hold { call } => self.hold_call(&call).map(done),
            C::Unhold { call } => self.unhold_call(&call).map(done),
            C::Swap { active, held } => self.swap_calls(&active, &held).map(done),
            C::BlindTransfer { call, to } => self.blind_transfer(&call, &to).map(done),
            C::Consult { call, to } => self.consult(&call, &to),
            C::CompleteTransfer { held, consult } => {
                self.complete_transfer(&held, &consult).map(done)
            }
            C::Conference { held, consult } => self.conference(&held, &consult),
            C::Redirect { call, to } => self.redirect(&call, &to).map(done),
            C::GenerateDigits { call, digits } => self.generate_digits(&call, &digits).map(done),
            C::Pickup { device, from } => self.pickup(&device, &from),
            C::Park { call, to } => self.park(&call, to.as_deref()),
            C::Unpark { device, from } => self.unpark(&device, &from),
            C::SetForwards { device, forwards } => self.set_forwards(&device, forwards).map(done),
            C::SetDoNotDisturb { device, enabled } => {
                self.set_do_not_disturb(&device, enabled).map(done)
            }
            C::Simulate { device, action } => self.simulate(&device, action).map(done),
            C::SimulatePbx(action) => self.change_extensions(action).map(done),
        }
    }

    fn run_due(&mut self) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let action = entry.remove();
            self.fire(action);
        }
    }

    /// Runs `action` after `delay_ms`; a delay of 0 runs it in this same step, after the
    /// current command.
    fn schedule(&mut self, delay_ms: u64, action: TimerAction) {
        let due = self.now.saturating_add(delay_ms);
        self.timers.insert((due, self.next_timer), action);
        self.next_timer += 1;
    }

    fn fire(&mut self, action: TimerAction) {
        match action {
            TimerAction::Deliver(leg) => self.deliver(leg),
            TimerAction::AutoAnswer(leg) => self.auto_answer(leg),
            TimerAction::NoAnswer(leg) => self.forward_no_answer(leg),
            TimerAction::ExternalAnswer(leg) => self.external_answers(leg),
        }
    }

    // ----- extensions -----

    fn station_index(&self, device: &DeviceKey) -> Result<usize, TapiError> {
        self.extension(&device.0).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidLine,
                format!(
                    "no extension {:?} on this switch (configured {})",
                    device.0,
                    self.config.range_text()
                ),
            )
        })
    }

    /// The station of a present extension with this number.
    fn extension(&self, number: &str) -> Option<usize> {
        self.by_number
            .get(number)
            .copied()
            .filter(|i| self.stations[*i].present)
    }

    fn present_stations(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.stations.len()).filter(|i| self.stations[*i].present)
    }

    fn station_number(&self, station: usize) -> String {
        self.stations
            .get(station)
            .map(|s| s.number.clone())
            .unwrap_or_default()
    }

    fn station_key(&self, station: usize) -> DeviceKey {
        DeviceKey(self.station_number(station))
    }

    fn station_name(&self, station: usize) -> String {
        self.stations
            .get(station)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }

    fn station_party(&self, station: usize) -> Party {
        Party::named(self.station_number(station), self.station_name(station))
    }

    fn station(&self, station: usize) -> Option<&Station> {
        self.stations.get(station)
    }

    fn status(&self, station: usize) -> DeviceStatus {
        let (forwards, do_not_disturb) = self
            .station(station)
            .map(|s| (s.forwards.clone(), s.do_not_disturb))
            .unwrap_or_default();
        DeviceStatus {
            device: self.station_key(station),
            forwards,
            do_not_disturb,
        }
    }

    /// The legs of an extension in the order they appeared.
    fn legs_of(&self, station: usize) -> Vec<LegId> {
        self.station(station)
            .map(|s| s.legs.clone())
            .unwrap_or_default()
    }

    /// The first leg of `station` whose state passes `test`.
    fn find_leg(&self, station: usize, test: impl Fn(CallState) -> bool) -> Option<LegId> {
        let station = self.station(station)?;
        station
            .legs
            .iter()
            .copied()
            .find(|id| self.legs.get(id).is_some_and(|leg| test(leg.state)))
    }

    /// The leg that occupies the station: dialling, ringing out, talking or conferenced.
    fn active_leg(&self, station: usize) -> Option<LegId> {
        self.find_leg(station, CallState::is_active)
    }

    fn alerting_leg(&self, station: usize) -> Option<LegId> {
        self.find_leg(station, CallState::is_alerting)
    }

    /// Busy for a new call: something active or already ringing.
    fn is_busy(&self, station: usize) -> bool {
        self.active_leg(station).is_some() || self.alerting_leg(station).is_some()
    }

    fn no_active_leg(&self, station: usize) -> Result<(), TapiError> {
        match self.active_leg(station) {
            None => Ok(()),
            Some(_) => Err(TapiError::new(
                ErrorKind::InvalidCallState,
                format!(
                    "extension {} already has an active call; hold it first",
                    self.station_number(station)
                ),
            )),
        }
    }

    // ----- legs -----

    fn leg_id(&self, call: &CallRef) -> Result<LegId, TapiError> {
        leg::parse_call_ref(call)
            .filter(|id| self.legs.contains_key(id))
            .ok_or_else(|| {
                TapiError::new(
                    ErrorKind::InvalidCall,
                    format!("no call {:?} on this switch", call.0),
                )
            })
    }

    /// The leg `call` names, if its state passes `test`; `wanted` says which states do.
    fn leg_in(
        &self,
        call: &CallRef,
        test: impl Fn(CallState) -> bool,
        wanted: &str,
    ) -> Result<&Leg, TapiError> {
        let id = self.leg_id(call)?;
        let leg = self.legs.get(&id).ok_or_else(|| unknown_call(id))?;
        if test(leg.state) {
            Ok(leg)
        } else {
            Err(wrong_state(leg, wanted))
        }
    }

    fn alloc_leg(&mut self) -> LegId {
        let id = self.next_leg;
        self.next_leg += 1;
        id
    }

    fn insert(&mut self, leg: Leg) {
        if let Some(station) = self.stations.get_mut(leg.station) {
            station.legs.push(leg.id);
        }
        self.legs.insert(leg.id, leg);
    }

    /// Changes leg `id`, if it still exists, without reporting.
    fn update(&mut self, id: LegId, change: impl FnOnce(&mut Leg)) {
        if let Some(leg) = self.legs.get_mut(&id) {
            change(leg);
        }
    }

    fn report(&mut self, id: LegId) {
        if let Some(leg) = self.legs.get(&id) {
            let report = leg.report(self.station_key(leg.station));
            self.out.push(ProviderEvent::Call(Box::new(report)));
        }
    }

    fn set_state(&mut self, id: LegId, state: CallState) {
        self.update(id, |leg| leg.state = state);
        self.report(id);
    }

    /// Moves a leg along its call's progress (ringback, connected); a held leg stays held
    /// and only its parties change.
    fn progress(&mut self, id: LegId, state: CallState) {
        self.update(id, |leg| {
            if !leg.state.is_held() {
                leg.state = state;
            }
        });
        self.report(id);
    }

    /// Reports a leg `Disconnected(mode)` (when given) and `Idle`, and forgets it. Nothing
    /// else changes: callers deal with its far end, consultation and conference.
    fn end(&mut self, id: LegId, mode: Option<DisconnectMode>) {
        if let Some(mode) = mode {
            self.set_state(id, CallState::Disconnected(mode));
        }
        self.set_state(id, CallState::Idle);
        if let Some(leg) = self.legs.remove(&id)
            && let Some(station) = self.stations.get_mut(leg.station)
        {
            station.legs.retain(|other| *other != id);
        }
    }

    /// The party at the far end of a leg, as the leg's user sees it.
    fn far_party(&self, far: &Far) -> Party {
        match far {
            Far::Leg(other) => self
                .legs
                .get(other)
                .map(|leg| self.station_party(leg.station))
                .unwrap_or_default(),
            Far::External(external) => external.party(),
            Far::Nobody | Far::Pending(_) => Party::default(),
        }
    }

    fn side_party(&self, side: &Side) -> Party {
        self.far_party(&side.as_far())
    }

    /// The extension a side stands for, if it is one of ours.
    fn side_station(&self, side: &Side) -> Option<usize> {
        match side {
            Side::Leg(id) => self.legs.get(id).map(|leg| leg.station),
            Side::External(_) => None,
        }
    }
}

fn done(_: ()) -> Completion {
    Completion::Done
}

fn unknown_call(id: LegId) -> TapiError {
    TapiError::new(
        ErrorKind::InvalidCall,
        format!("no call c{id} on this switch"),
    )
}

fn wrong_state(leg: &Leg, wanted: &str) -> TapiError {
    TapiError::new(
        ErrorKind::InvalidCallState,
        format!(
            "call c{} is {}; it must be {wanted}",
            leg.id,
            leg.state.name()
        ),
    )
}
