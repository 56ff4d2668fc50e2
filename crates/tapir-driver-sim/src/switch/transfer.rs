//! Moving calls between extensions: blind and consultation transfer, conference, redirect
//! and pickup.

use tapir_model::{
    CallOrigin, CallReason, CallState, ConnectedMode, DisconnectMode, ErrorKind, Party, TapiError,
};
use tapir_provider::{CallRef, Completion, DeviceKey, PickupFrom};

use super::calls::is_connected;
use super::leg::{External, Far, Leg, LegId, Side, Target, call_ref};
use super::routing::Offer;
use super::{Switch, TimerAction, wrong_state};
use crate::config::ExternalBehaviour;

const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

impl Switch {
    /// The leg leaves the call: `id` goes idle and its far end `from` calls `to`.
    pub(super) fn blind_transfer(&mut self, call: &CallRef, to: &str) -> Result<(), TapiError> {
        let leg = self.leg_in(call, is_connected, "connected")?;
        let (id, station) = (leg.id, leg.station);
        let from = self.far_side(leg)?;
        let target = self.target_not_self(to, station)?;
        self.not_to_itself(&from, &target)?;
        let offer = Offer {
            reason: CallReason::Transfer,
            called: self.target_party(&target),
            redirecting: self.station_party(station),
        };
        self.leave(id);
        self.put_through(from, target, offer);
        Ok(())
    }

    /// Puts the original on consultation hold and dials `to` on a new leg of the extension.
    pub(super) fn consult(&mut self, call: &CallRef, to: &str) -> Result<Completion, TapiError> {
        let leg = self.leg_in(call, is_connected, "connected")?;
        let (original, station) = (leg.id, leg.station);
        self.far_side(leg)?;
        if let Some(other) = leg.related {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                format!("call c{original} already has consultation call c{other}"),
            ));
        }
        let target = self.target_not_self(to, station)?;
        let mut consult = self.outbound_leg(station, CallState::Dialing);
        consult.related = Some(original);
        let id = consult.id;
        self.update(original, |leg| leg.related = Some(id));
        self.set_state(original, CallState::OnHoldPendTransfer);
        self.insert(consult);
        self.start_dialing(id, target);
        Ok(Completion::Call(call_ref(id)))
    }

    /// Joins the far ends of a held original and its consultation, and leaves.
    pub(super) fn complete_transfer(
        &mut self,
        held: &CallRef,
        consult: &CallRef,
    ) -> Result<(), TapiError> {
        let ready = |state| {
            matches!(
                state,
                CallState::Connected(_) | CallState::Ringback | CallState::Proceeding
            )
        };
        let (original, consult) = self.consultation(
            held,
            consult,
            ready,
            "connected, ringing back or proceeding",
        )?;
        let from = self.far_side(&original)?;
        let station = original.station;
        self.update(original.id, |leg| leg.related = None);
        self.update(consult.id, |leg| leg.related = None);
        self.end(original.id, None);
        self.end(consult.id, None);
        match consult.far {
            Far::Leg(other) => self.join(from, other),
            Far::External(external) => {
                let answered = is_connected(consult.state);
                self.join_external(from, external, answered);
            }
            Far::Pending(target) => {
                // Not reached yet: the original's far end dials on in the consultation's place.
                let offer = Offer {
                    reason: CallReason::Transfer,
                    called: self.target_party(&target),
                    redirecting: self.station_party(station),
                };
                self.put_through(from, target, offer);
            }
            Far::Nobody => self.abandon(from),
        }
        Ok(())
    }

    /// Joins the held original and its connected consultation into a conference on a new
    /// parent leg.
    pub(super) fn conference(
        &mut self,
        held: &CallRef,
        consult: &CallRef,
    ) -> Result<Completion, TapiError> {
        let (original, consult) = self.consultation(held, consult, is_connected, "connected")?;
        let station = original.station;
        let mut parent = Leg::new(self.alloc_leg(), station, CONNECTED, CallOrigin::Conference);
        parent.caller = self.station_party(station);
        let parent_id = parent.id;
        self.insert(parent);
        self.report(parent_id);
        let bridge = Party::named(self.station_number(station), "Conference");
        for member in [&original, &consult] {
            self.update(member.id, |leg| {
                leg.related = None;
                leg.conference = Some(parent_id);
            });
            self.set_state(member.id, CallState::Conferenced);
            if let Far::Leg(other) = member.far {
                let bridge = bridge.clone();
                self.update(other, |leg| leg.connected = bridge);
                self.report(other);
            }
        }
        Ok(Completion::Call(call_ref(parent_id)))
    }

    /// Deflects a ringing leg: it goes idle and its caller rings at `to`.
    pub(super) fn redirect(&mut self, call: &CallRef, to: &str) -> Result<(), TapiError> {
        let leg = self.leg_in(call, CallState::is_alerting, "offering")?;
        let (id, station) = (leg.id, leg.station);
        let from = self.far_side(leg)?;
        let called = leg.called.clone();
        let target = self.target_not_self(to, station)?;
        let redirection = self.target_party(&target);
        let offer = Offer {
            reason: CallReason::Redirect,
            called,
            redirecting: self.station_party(station),
        };
        self.end(id, None);
        if let Side::Leg(caller) = from {
            self.update(caller, |leg| leg.redirection = redirection);
        }
        self.route(from, target, offer);
        Ok(())
    }

    /// Takes a call ringing elsewhere onto `device`, connected at once.
    pub(super) fn pickup(
        &mut self,
        device: &DeviceKey,
        from: &PickupFrom,
    ) -> Result<Completion, TapiError> {
        let station = self.station_index(device)?;
        let ringing = self.ringing_for_pickup(station, from)?;
        self.no_active_leg(station)?;
        let ringing =
            self.legs.get(&ringing).cloned().ok_or_else(|| {
                TapiError::new(ErrorKind::InvalidCall, format!("no call c{ringing}"))
            })?;
        let mut leg = Leg::new(self.alloc_leg(), station, CONNECTED, ringing.origin);
        leg.reason = CallReason::Pickup;
        leg.caller = ringing.caller.clone();
        leg.called = ringing.called.clone();
        leg.connected = self.far_party(&ringing.far);
        leg.redirecting = self.station_party(ringing.station);
        leg.far = ringing.far.clone();
        let id = leg.id;
        self.end(ringing.id, Some(DisconnectMode::Pickup));
        self.insert(leg);
        self.report(id);
        if let Far::Leg(caller) = ringing.far {
            let picker = self.station_party(station);
            self.update(caller, |leg| {
                leg.far = Far::Leg(id);
                leg.connected = picker;
            });
            self.progress(caller, CONNECTED);
        }
        Ok(Completion::Call(call_ref(id)))
    }

    /// The ringing leg a pickup by `station` takes.
    fn ringing_for_pickup(&self, station: usize, from: &PickupFrom) -> Result<LegId, TapiError> {
        let number = self.station_number(station);
        let self_pickup = || {
            TapiError::new(
                ErrorKind::TargetSelf,
                format!("extension {number} cannot pick up its own call"),
            )
        };
        match from {
            PickupFrom::Call(call) => {
                let leg = self.leg_in(call, CallState::is_alerting, "offering")?;
                if leg.station == station {
                    return Err(self_pickup());
                }
                Ok(leg.id)
            }
            PickupFrom::Device(device) => {
                let other = self.station_index(device)?;
                if other == station {
                    return Err(self_pickup());
                }
                self.alerting_leg(other).ok_or_else(|| {
                    TapiError::new(
                        ErrorKind::TargetNotFound,
                        format!("nothing rings at extension {} to pick up", device.0),
                    )
                })
            }
        }
    }

    /// A held original and its consultation, checked for a transfer or conference.
    fn consultation(
        &self,
        held: &CallRef,
        consult: &CallRef,
        ready: impl Fn(CallState) -> bool,
        wanted: &str,
    ) -> Result<(Leg, Leg), TapiError> {
        let is_pending = |state| state == CallState::OnHoldPendTransfer;
        let original = self.leg_in(held, is_pending, "on hold pending transfer")?;
        let consult_id = self.leg_id(consult)?;
        if original.related != Some(consult_id) {
            return Err(TapiError::new(
                ErrorKind::InvalidConsultCall,
                format!(
                    "call {} is not the consultation of call c{}",
                    consult.0, original.id
                ),
            ));
        }
        let consult = self.leg_in(consult, |_| true, wanted)?;
        if !ready(consult.state) {
            return Err(wrong_state(consult, wanted));
        }
        Ok((original.clone(), consult.clone()))
    }

    /// Who is at the far end of `leg`, for commands that need somebody there.
    fn far_side(&self, leg: &Leg) -> Result<Side, TapiError> {
        Side::of(&leg.far).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidCallState,
                format!("call c{} has nobody at the far end", leg.id),
            )
        })
    }

    /// Refuses to transfer the far end of a call to its own extension.
    fn not_to_itself(&self, from: &Side, target: &Target) -> Result<(), TapiError> {
        match (self.side_station(from), target) {
            (Some(station), Target::Extension(to)) if station == *to => Err(TapiError::new(
                ErrorKind::TargetSelf,
                format!(
                    "extension {} cannot be transferred to itself",
                    self.station_number(station)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Leg `id` leaves its call without disturbing the far end.
    fn leave(&mut self, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let (related, conference) = (leg.related, leg.conference);
        self.end(id, None);
        self.after_end(related, conference);
    }

    /// The far end `from` of a transferred call now calls `target`: its called party changes
    /// and it rings back until the target answers.
    fn put_through(&mut self, from: Side, target: Target, offer: Offer) {
        if let Side::Leg(id) = from {
            let called = self.target_party(&target);
            self.update(id, |leg| {
                leg.called = called;
                leg.connected = Party::default();
                leg.far = Far::Nobody;
            });
        }
        self.route(from, target, offer);
    }

    /// Connects `from` with the leg `other` it was transferred to. A still ringing `other`
    /// now shows `from` as its caller, and `from` rings back until it answers.
    fn join(&mut self, from: Side, other: LegId) {
        let Some(leg) = self.legs.get(&other) else {
            return self.abandon(from);
        };
        let ringing = leg.state.is_alerting();
        let other_party = self.station_party(leg.station);
        let from_party = self.side_party(&from);
        self.update(other, |leg| {
            leg.far = from.as_far();
            if ringing {
                leg.caller = from_party;
            } else {
                leg.connected = from_party;
            }
        });
        self.report(other);
        if let Side::Leg(id) = from {
            self.update(id, |leg| {
                leg.far = Far::Leg(other);
                leg.called = other_party.clone();
                leg.connected = if ringing {
                    Party::default()
                } else {
                    other_party
                };
            });
            let state = if ringing {
                CallState::Ringback
            } else {
                CONNECTED
            };
            self.progress(id, state);
        }
    }

    /// Connects `from` with the outside number a consultation reached. If the number has not
    /// answered yet, its answer delay starts again for `from`.
    fn join_external(&mut self, from: Side, external: External, answered: bool) {
        let Side::Leg(id) = from else {
            return; // two outside parties: the call leaves the switch
        };
        let party = external.party();
        let answers = external.behaviour == ExternalBehaviour::Answer;
        self.update(id, |leg| {
            leg.far = Far::External(external);
            leg.called = party.clone();
            leg.connected = if answered { party } else { Party::default() };
        });
        if answered {
            return self.report(id);
        }
        self.progress(id, CallState::Ringback);
        if answers {
            let delay = self.config.external_answer_delay_ms;
            self.schedule(delay, TimerAction::ExternalAnswer(id));
        }
    }

    /// The far end `from` is left with nobody: the switch clears its leg.
    fn abandon(&mut self, from: Side) {
        if let Side::Leg(id) = from {
            self.far_end_gone(id, DisconnectMode::Normal);
        }
    }
}
