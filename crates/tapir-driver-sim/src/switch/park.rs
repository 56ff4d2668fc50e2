//! Call park: a connected call's far end waits at a park place (701-720, like Asterisk's
//! default lot) until some extension takes it back with unpark.
//!
//! The parking extension's leg ends (TAPI's park leaves the parker idle); the parked side
//! stays connected, to the park place, with nobody at the far end. A parked extension that
//! hangs up frees its place; an outside caller waits until unparked.

use tapir_model::{CallOrigin, CallReason, CallState, ConnectedMode, ErrorKind, Party, TapiError};
use tapir_provider::{CallRef, Completion, DeviceKey};

use super::Switch;
use super::calls::is_connected;
use super::leg::{Far, Leg, Side, call_ref};

const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

/// The park places, in the order a non-directed park fills them.
pub(super) const PLACES: std::ops::RangeInclusive<u32> = 701..=720;

impl Switch {
    /// Parks the far end of `call` at `to`, or at the first free place.
    pub(super) fn park(
        &mut self,
        call: &CallRef,
        to: Option<&str>,
    ) -> Result<Completion, TapiError> {
        let leg = self.leg_in(call, is_connected, "connected")?;
        if leg.related.is_some() || leg.conference.is_some() {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                format!(
                    "call c{} is part of a consultation or conference; finish that first",
                    leg.id
                ),
            ));
        }
        let parked = Side::of(&leg.far).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidCallState,
                format!("call c{} has nobody at the far end to park", leg.id),
            )
        })?;
        let id = leg.id;
        let place = match to {
            Some(place) => self.free_place(place)?,
            None => self.first_free_place()?,
        };
        self.end(id, None);
        if let Side::Leg(waiting) = &parked {
            let at = park_party(&place);
            self.update(*waiting, |leg| {
                leg.far = Far::Nobody;
                leg.connected = at;
            });
            self.report(*waiting);
        }
        self.parked.insert(place.clone(), parked);
        Ok(Completion::Parked { at: place })
    }

    /// Takes the call parked at `from` onto `device` as a new connected call.
    pub(super) fn unpark(
        &mut self,
        device: &DeviceKey,
        from: &str,
    ) -> Result<Completion, TapiError> {
        let station = self.station_index(device)?;
        let parked = self.waiting_at(from).ok_or_else(|| {
            TapiError::new(
                ErrorKind::TargetNotFound,
                format!("nothing is parked at {from}"),
            )
        })?;
        if self.side_station(&parked) == Some(station) {
            return Err(TapiError::new(
                ErrorKind::TargetSelf,
                format!("extension {} cannot unpark its own call", device.0),
            ));
        }
        self.no_active_leg(station)?;
        self.parked.remove(from);
        let origin = match parked {
            Side::Leg(_) => CallOrigin::Internal,
            Side::External(_) => CallOrigin::External,
        };
        let mut leg = Leg::new(self.alloc_leg(), station, CONNECTED, origin);
        leg.reason = CallReason::Unpark;
        leg.caller = self.side_party(&parked);
        leg.called = self.station_party(station);
        leg.connected = self.side_party(&parked);
        leg.redirecting = park_party(from);
        leg.far = parked.as_far();
        let id = leg.id;
        self.insert(leg);
        self.report(id);
        if let Side::Leg(waiting) = parked {
            let taker = self.station_party(station);
            self.update(waiting, |leg| {
                leg.far = Far::Leg(id);
                leg.connected = taker;
            });
            self.report(waiting);
        }
        Ok(Completion::Call(call_ref(id)))
    }

    /// `place` if it is a park place with nothing waiting.
    fn free_place(&self, place: &str) -> Result<String, TapiError> {
        let known = place
            .parse::<u32>()
            .is_ok_and(|number| PLACES.contains(&number) && place == number.to_string());
        if !known {
            return Err(TapiError::new(
                ErrorKind::InvalidAddress,
                format!(
                    "{place} is not a park place (this switch parks at {}-{})",
                    PLACES.start(),
                    PLACES.end()
                ),
            ));
        }
        if self.waiting_at(place).is_some() {
            return Err(TapiError::new(
                ErrorKind::ResourceUnavailable,
                format!("a call is already parked at {place}"),
            ));
        }
        Ok(place.to_owned())
    }

    fn first_free_place(&self) -> Result<String, TapiError> {
        PLACES
            .map(|number| number.to_string())
            .find(|place| self.waiting_at(place).is_none())
            .ok_or_else(|| {
                TapiError::new(ErrorKind::ResourceUnavailable, "every park place is taken")
            })
    }

    /// Who waits at `place`; a parked extension that hung up no longer does.
    fn waiting_at(&self, place: &str) -> Option<Side> {
        match self.parked.get(place)? {
            Side::Leg(id) => self
                .legs
                .get(id)
                .filter(|leg| leg.far == Far::Nobody && is_connected(leg.state))
                .map(|_| Side::Leg(*id)),
            external => Some(external.clone()),
        }
    }
}

/// The park place as the party a parked or unparked call is connected through.
fn park_party(place: &str) -> Party {
    Party::named(place, "Park")
}
