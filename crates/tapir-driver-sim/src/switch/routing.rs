//! Putting calls through: dialling, do-not-disturb, forwarding, busy, ringing and the trunk.
//!
//! Forwarding is applied once: a call that arrived by forwarding is not forwarded again, so
//! forwarding chains stop after one step and loops cannot happen. Do-not-disturb comes
//! before forwarding.

use tapir_model::{
    BusyMode, CallOrigin, CallReason, CallState, ConnectedMode, DisconnectMode, ErrorKind,
    ForwardMode, OfferingMode, Party, TapiError,
};

use super::leg::{External, Far, Leg, LegId, Side, Target, is_forward};
use super::{Switch, TimerAction};
use crate::config::ExternalBehaviour;
use crate::dial;

/// How a call is offered to an extension.
#[derive(Debug, Clone)]
pub(super) struct Offer {
    pub reason: CallReason,
    /// The number the call was meant for.
    pub called: Party,
    /// Who redirected, forwarded or transferred the call here.
    pub redirecting: Party,
}

impl Offer {
    pub fn direct(called: Party) -> Offer {
        Offer {
            reason: CallReason::Direct,
            called,
            redirecting: Party::default(),
        }
    }
}

impl Switch {
    /// Where the dialled number `to` leads.
    pub(super) fn target(&self, to: &str) -> Result<Target, TapiError> {
        let number = dial::normalize(to)?;
        if let Some(station) = self.extension(&number) {
            return Ok(Target::Extension(station));
        }
        let (behaviour, name) = self.config.external_for(&number);
        Ok(Target::External(External {
            number,
            name,
            behaviour,
        }))
    }

    /// Where `to` leads, refusing the extension `from` itself.
    pub(super) fn target_not_self(&self, to: &str, from: usize) -> Result<Target, TapiError> {
        let target = self.target(to)?;
        if target == Target::Extension(from) {
            return Err(TapiError::new(
                ErrorKind::TargetSelf,
                format!("extension {} cannot call itself", self.station_number(from)),
            ));
        }
        Ok(target)
    }

    pub(super) fn target_party(&self, target: &Target) -> Party {
        match target {
            Target::Extension(station) => self.station_party(*station),
            Target::External(external) => external.party(),
        }
    }

    /// A new outbound leg on `station`, not yet inserted.
    pub(super) fn outbound_leg(&mut self, station: usize, state: CallState) -> Leg {
        let mut leg = Leg::new(self.alloc_leg(), station, state, CallOrigin::Outbound);
        leg.caller = self.station_party(station);
        leg
    }

    /// Leg `id` dials `target`: dialing, proceeding, and the destination is reached after
    /// the ring delay.
    pub(super) fn start_dialing(&mut self, id: LegId, target: Target) {
        let called = self.target_party(&target);
        self.update(id, |leg| {
            leg.called = called;
            leg.far = Far::Pending(target);
        });
        self.set_state(id, CallState::Dialing);
        self.set_state(id, CallState::Proceeding);
        self.schedule(self.config.ring_delay_ms, TimerAction::Deliver(id));
    }

    /// The ring delay of leg `id` passed: its pending destination is reached.
    pub(super) fn deliver(&mut self, id: LegId) {
        let Some(Far::Pending(target)) = self.legs.get(&id).map(|leg| leg.far.clone()) else {
            return; // the call was dropped or put elsewhere in the meantime
        };
        let called = self.target_party(&target);
        self.route(Side::Leg(id), target, Offer::direct(called));
    }

    /// Puts `from` through to `target`.
    pub(super) fn route(&mut self, from: Side, target: Target, offer: Offer) {
        match target {
            Target::Extension(station) => self.offer_to_station(from, station, offer),
            Target::External(external) => self.ring_external(from, external),
        }
    }

    /// Offers a call from `from` to extension `station`, applying do-not-disturb,
    /// forwarding and busy.
    pub(super) fn offer_to_station(&mut self, from: Side, station: usize, offer: Offer) {
        let Some(settings) = self.station(station) else {
            return self.busy(from, BusyMode::Unavail);
        };
        if settings.do_not_disturb {
            return self.busy(from, BusyMode::Station);
        }
        let may_forward = !is_forward(offer.reason);
        let unconditional = settings
            .forward(ForwardMode::Unconditional)
            .map(str::to_owned);
        let on_busy = settings.forward(ForwardMode::Busy).map(str::to_owned);
        if may_forward && let Some(destination) = unconditional {
            let reason = CallReason::ForwardUnconditional;
            return self.forward(from, station, &destination, reason, offer.called);
        }
        if self.is_busy(station) {
            return match on_busy.filter(|_| may_forward) {
                Some(destination) => {
                    let reason = CallReason::ForwardBusy;
                    self.forward(from, station, &destination, reason, offer.called)
                }
                None => self.busy(from, BusyMode::Station),
            };
        }
        self.ring(from, station, offer);
    }

    /// Sends a call for extension `station` on to its forwarding `destination`.
    fn forward(
        &mut self,
        from: Side,
        station: usize,
        destination: &str,
        reason: CallReason,
        called: Party,
    ) {
        // Destinations were checked when the forwarding was set, so this cannot fail.
        let Ok(target) = self.target(destination) else {
            return self.busy(from, BusyMode::Unknown);
        };
        let redirection = self.target_party(&target);
        if let Side::Leg(caller) = &from {
            self.update(*caller, |leg| leg.redirection = redirection);
        }
        let offer = Offer {
            reason,
            called,
            redirecting: self.station_party(station),
        };
        self.route(from, target, offer);
    }

    /// The calling side hears busy; an outside caller simply goes away.
    fn busy(&mut self, from: Side, mode: BusyMode) {
        if let Side::Leg(caller) = from {
            self.update(caller, |leg| {
                leg.far = Far::Nobody;
                leg.connected = Party::default();
            });
            self.set_state(caller, CallState::Busy(mode));
        }
    }

    /// A new ringing leg on `station` for a call from `from`.
    fn ring(&mut self, from: Side, station: usize, offer: Offer) {
        let origin = match from {
            Side::Leg(_) => CallOrigin::Internal,
            Side::External(_) => CallOrigin::External,
        };
        let mut leg = Leg::new(
            self.alloc_leg(),
            station,
            CallState::Offering(OfferingMode::Active),
            origin,
        );
        leg.reason = offer.reason;
        leg.caller = self.side_party(&from);
        leg.called = offer.called;
        leg.redirecting = offer.redirecting;
        leg.far = from.as_far();
        let id = leg.id;
        self.insert(leg);
        self.report(id);
        // Forwarding on no answer is looked up when the timeout passes, so setting it while
        // a call rings still takes effect.
        self.schedule(self.config.no_answer_timeout_ms, TimerAction::NoAnswer(id));
        if self.station(station).is_some_and(|s| s.auto_answer) {
            self.schedule(
                self.config.auto_answer_delay_ms,
                TimerAction::AutoAnswer(id),
            );
        }
        if let Side::Leg(caller) = from {
            self.update(caller, |leg| {
                leg.far = Far::Leg(id);
                leg.connected = Party::default();
            });
            self.progress(caller, CallState::Ringback);
        }
    }

    /// The calling side reaches an outside number, which behaves as configured. Between two
    /// outside parties the call leaves the switch and nothing is left to report.
    fn ring_external(&mut self, from: Side, external: External) {
        let Side::Leg(caller) = from else { return };
        let behaviour = external.behaviour;
        self.update(caller, |leg| {
            leg.far = Far::External(external);
            leg.connected = Party::default();
        });
        match behaviour {
            ExternalBehaviour::Answer => {
                self.progress(caller, CallState::Ringback);
                let delay = self.config.external_answer_delay_ms;
                self.schedule(delay, TimerAction::ExternalAnswer(caller));
            }
            ExternalBehaviour::NoAnswer => self.progress(caller, CallState::Ringback),
            ExternalBehaviour::Busy => self.busy(Side::Leg(caller), BusyMode::Trunk),
            ExternalBehaviour::Reject => {
                self.update(caller, |leg| leg.far = Far::Nobody);
                self.set_state(caller, CallState::Disconnected(DisconnectMode::Reject));
            }
        }
    }

    /// Timer: an outside number rang long enough and answers leg `id`'s call.
    pub(super) fn external_answers(&mut self, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let Far::External(external) = &leg.far else {
            return;
        };
        let still_ringing =
            leg.state == CallState::Ringback || (leg.state.is_held() && leg.connected.is_unknown());
        if external.behaviour != ExternalBehaviour::Answer || !still_ringing {
            return;
        }
        let party = external.party();
        self.update(id, |leg| leg.connected = party);
        self.progress(id, CallState::Connected(ConnectedMode::Active));
    }

    /// Timer: an auto-answering extension picks up.
    pub(super) fn auto_answer(&mut self, id: LegId) {
        if let Err(error) = self.answer(id) {
            tracing::debug!(call = id, %error, "auto answer skipped");
        }
    }

    /// Timer: leg `id` rang for the no-answer timeout; if its extension forwards on no
    /// answer, the call moves on and the leg goes idle.
    pub(super) fn forward_no_answer(&mut self, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        if !leg.state.is_alerting() || leg.was_forwarded() {
            return;
        }
        let station = leg.station;
        let called = leg.called.clone();
        let Some(from) = Side::of(&leg.far) else {
            return;
        };
        let Some(destination) = self
            .station(station)
            .and_then(|s| s.forward(ForwardMode::NoAnswer))
            .map(str::to_owned)
        else {
            return;
        };
        self.end(id, None);
        let reason = CallReason::ForwardNoAnswer;
        self.forward(from, station, &destination, reason, called);
    }
}
