//! Basic call control: make, answer, drop, hold, unhold and swap.

use tapir_model::{CallState, ConnectedMode, DisconnectMode, ErrorKind, TapiError};
use tapir_provider::{CallRef, Completion, DeviceKey};

use super::leg::{Far, LegId, call_ref};
use super::{Switch, unknown_call, wrong_state};

const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

impl Switch {
    pub(super) fn make_call(
        &mut self,
        device: &DeviceKey,
        to: &str,
    ) -> Result<Completion, TapiError> {
        let station = self.station_index(device)?;
        let target = self.target_not_self(to, station)?;
        self.no_active_leg(station)?;
        let leg = self.outbound_leg(station, CallState::Dialing);
        let id = leg.id;
        self.insert(leg);
        self.start_dialing(id, target);
        Ok(Completion::Call(call_ref(id)))
    }

    /// An application claims an offered call; it keeps ringing until answered.
    pub(super) fn accept_call(&mut self, call: &CallRef) -> Result<(), TapiError> {
        let id = self
            .leg_in(call, |s| matches!(s, CallState::Offering(_)), "offering")?
            .id;
        self.set_state(id, CallState::Accepted);
        Ok(())
    }

    pub(super) fn answer_call(&mut self, call: &CallRef) -> Result<(), TapiError> {
        let id = self.leg_id(call)?;
        self.answer(id)
    }

    /// Answers the ringing leg `id`: it and its caller are connected.
    pub(super) fn answer(&mut self, id: LegId) -> Result<(), TapiError> {
        let leg = self.legs.get(&id).ok_or_else(|| unknown_call(id))?;
        if !leg.state.is_alerting() {
            return Err(wrong_state(leg, "offering or accepted"));
        }
        let station = leg.station;
        let far = leg.far.clone();
        self.no_active_leg(station)?;
        let caller = self.far_party(&far);
        self.update(id, |leg| leg.connected = caller);
        self.set_state(id, CONNECTED);
        if let Far::Leg(other) = far {
            let answerer = self.station_party(station);
            self.update(other, |leg| leg.connected = answerer);
            self.progress(other, CONNECTED);
        }
        Ok(())
    }

    pub(super) fn drop_call(&mut self, call: &CallRef) -> Result<(), TapiError> {
        let id = self.leg_id(call)?;
        self.hang_up(id);
        Ok(())
    }

    /// Leg `id`'s own user ends it. Its far end is disconnected, a conference parent takes
    /// its members with it, and a consultation gives the held original back.
    pub(super) fn hang_up(&mut self, id: LegId) {
        // Members first: the last one to go ends the parent (see `after_end`).
        for member in self.members_of(id) {
            self.hang_up(member);
        }
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let far = leg.far.clone();
        let (related, conference) = (leg.related, leg.conference);
        // Dropping a ringing call rejects it; the caller learns why.
        let mode = if leg.state.is_alerting() {
            DisconnectMode::Reject
        } else {
            DisconnectMode::Normal
        };
        self.end(id, None);
        if let Far::Leg(other) = far {
            self.far_end_gone(other, mode);
        }
        self.after_end(related, conference);
    }

    /// The far end of leg `id` went away: the switch clears the leg (disconnected, then
    /// idle). A ringing leg whose caller gave up is cancelled; a conference member simply
    /// leaves the conference.
    pub(super) fn far_end_gone(&mut self, id: LegId, mode: DisconnectMode) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let (related, conference) = (leg.related, leg.conference);
        match leg.state {
            CallState::Conferenced => self.end(id, None),
            state if state.is_alerting() => self.end(id, Some(DisconnectMode::Cancelled)),
            _ => self.end(id, Some(mode)),
        }
        self.after_end(related, conference);
    }

    /// Tidies up after a leg ended: the other half of its consultation, and its conference
    /// parent when no member is left.
    pub(super) fn after_end(&mut self, related: Option<LegId>, conference: Option<LegId>) {
        if let Some(other) = related {
            self.release_related(other);
        }
        if let Some(parent) = conference
            && self.members_of(parent).is_empty()
        {
            self.end(parent, None);
        }
    }

    /// The other half of leg `id`'s consultation ended. A held original comes back (TAPI's
    /// rule for dropping a consultation call), onto plain hold if something else is active.
    fn release_related(&mut self, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let pending = matches!(
            leg.state,
            CallState::OnHoldPendTransfer | CallState::OnHoldPendConf
        );
        let station = leg.station;
        self.update(id, |leg| leg.related = None);
        if !pending {
            return self.report(id);
        }
        let state = match self.active_leg(station) {
            Some(_) => CallState::OnHold,
            None => CONNECTED,
        };
        self.set_state(id, state);
    }

    /// The conference members of a parent leg, in order.
    pub(super) fn members_of(&self, parent: LegId) -> Vec<LegId> {
        let Some(leg) = self.legs.get(&parent) else {
            return Vec::new();
        };
        self.legs_of(leg.station)
            .into_iter()
            .filter(|id| {
                self.legs
                    .get(id)
                    .is_some_and(|m| m.conference == Some(parent))
            })
            .collect()
    }

    pub(super) fn hold_call(&mut self, call: &CallRef) -> Result<(), TapiError> {
        let id = self.leg_in(call, is_connected, "connected")?.id;
        self.set_state(id, CallState::OnHold);
        Ok(())
    }

    /// DTMF on a connected call: the simulated far end hears it; nothing else changes.
    pub(super) fn generate_digits(
        &mut self,
        call: &CallRef,
        digits: &str,
    ) -> Result<(), TapiError> {
        self.leg_in(call, is_connected, "connected")?;
        tracing::debug!(call = %call.0, digits, "DTMF sent");
        Ok(())
    }

    pub(super) fn unhold_call(&mut self, call: &CallRef) -> Result<(), TapiError> {
        let leg = self.leg_in(call, CallState::is_held, "on hold")?;
        let (id, station) = (leg.id, leg.station);
        if self.active_leg(station).is_some() {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                format!(
                    "extension {} has another active call; use swap to change to call c{id}",
                    self.station_number(station)
                ),
            ));
        }
        self.set_state(id, CONNECTED);
        Ok(())
    }

    pub(super) fn swap_calls(&mut self, active: &CallRef, held: &CallRef) -> Result<(), TapiError> {
        let swappable = |state| {
            matches!(
                state,
                CallState::Connected(_)
                    | CallState::Dialing
                    | CallState::Proceeding
                    | CallState::Ringback
            )
        };
        let active = self.leg_in(active, swappable, "connected, dialing or ringing back")?;
        let (active_id, station) = (active.id, active.station);
        let held = self.leg_in(held, CallState::is_held, "on hold")?;
        let held_id = held.id;
        if held.station != station {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                format!(
                    "calls c{active_id} and c{held_id} are on different extensions; swap \
                     needs two calls of one extension"
                ),
            ));
        }
        self.set_state(active_id, CallState::OnHold);
        self.set_state(held_id, CONNECTED);
        Ok(())
    }
}

pub(super) fn is_connected(state: CallState) -> bool {
    matches!(state, CallState::Connected(_))
}
