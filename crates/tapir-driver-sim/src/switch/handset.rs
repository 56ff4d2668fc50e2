//! What the person at an extension, or the world outside the switch, does
//! ([`SimAction`]).

use tapir_model::{CallState, DialtoneMode, DisconnectMode, ErrorKind, SimAction, TapiError};
use tapir_provider::DeviceKey;

use super::Switch;
use super::calls::is_connected;
use super::leg::{External, Far, LegId, Side};
use super::routing::Offer;
use crate::dial;

impl Switch {
    pub(super) fn simulate(
        &mut self,
        device: &DeviceKey,
        action: SimAction,
    ) -> Result<(), TapiError> {
        let station = self.station_index(device)?;
        match action {
            SimAction::OffHook => self.off_hook(station),
            SimAction::OnHook => self.on_hook(station),
            SimAction::Dial(digits) => self.dial_digits(station, &digits),
            SimAction::Hold => self.hold_key(station),
            SimAction::IncomingCall { from, name } => self.incoming(station, &from, name),
            SimAction::RemoteHangup => self.remote_hangup(station),
        }
    }

    /// Lifting the handset answers a ringing call, or else gives dial tone.
    fn off_hook(&mut self, station: usize) -> Result<(), TapiError> {
        if let Some(ringing) = self.alerting_leg(station) {
            return self.answer(ringing);
        }
        self.no_active_leg(station)?;
        self.dial_tone(station);
        Ok(())
    }

    fn dial_tone(&mut self, station: usize) -> LegId {
        let leg = self.outbound_leg(station, CallState::Dialtone(DialtoneMode::Normal));
        let id = leg.id;
        self.insert(leg);
        self.report(id);
        id
    }

    /// Dials on the leg with dial tone, lifting the handset first if needed.
    fn dial_digits(&mut self, station: usize, digits: &str) -> Result<(), TapiError> {
        let target = self.target_not_self(digits, station)?;
        let waiting = self.find_leg(station, |state| matches!(state, CallState::Dialtone(_)));
        let id = match waiting {
            Some(id) => id,
            None => {
                self.no_active_leg(station)?;
                self.dial_tone(station)
            }
        };
        self.start_dialing(id, target);
        Ok(())
    }

    /// Putting the handset down ends the active call (a whole conference, when in one), or
    /// clears a call the far end already ended.
    fn on_hook(&mut self, station: usize) -> Result<(), TapiError> {
        let active = self.active_leg(station).map(|id| {
            self.legs
                .get(&id)
                .and_then(|leg| leg.conference)
                .unwrap_or(id)
        });
        let gone = || self.find_leg(station, |state| matches!(state, CallState::Disconnected(_)));
        match active.or_else(gone) {
            Some(id) => {
                self.hang_up(id);
                Ok(())
            }
            None => Err(self.nothing_to_do(station, "a call to hang up")),
        }
    }

    fn hold_key(&mut self, station: usize) -> Result<(), TapiError> {
        let id = self
            .find_leg(station, is_connected)
            .ok_or_else(|| self.nothing_to_do(station, "a connected call to hold"))?;
        self.set_state(id, CallState::OnHold);
        Ok(())
    }

    /// An outside caller calls the extension. If it is busy (or has do-not-disturb) and
    /// does not forward, the caller hears busy outside the switch: no leg appears and the
    /// action still completes.
    fn incoming(
        &mut self,
        station: usize,
        from: &str,
        name: Option<String>,
    ) -> Result<(), TapiError> {
        let number = dial::normalize(from)?;
        let (behaviour, rule_name) = self.config.external_for(&number);
        let caller = External {
            number,
            name: name.or(rule_name),
            behaviour,
        };
        let offer = Offer::direct(self.station_party(station));
        self.offer_to_station(Side::External(caller), station, offer);
        Ok(())
    }

    /// The far end of the extension's active call (or else held, or else ringing call)
    /// hangs up.
    fn remote_hangup(&mut self, station: usize) -> Result<(), TapiError> {
        let has_far_end = |switch: &Switch, id: &LegId, test: fn(CallState) -> bool| {
            switch
                .legs
                .get(id)
                .is_some_and(|leg| test(leg.state) && Side::of(&leg.far).is_some())
        };
        let legs = self.legs_of(station);
        let tests: [fn(CallState) -> bool; 3] = [
            CallState::is_active,
            CallState::is_held,
            CallState::is_alerting,
        ];
        let chosen = tests
            .iter()
            .find_map(|test| legs.iter().find(|id| has_far_end(self, id, *test)).copied());
        let Some(id) = chosen else {
            return Err(self.nothing_to_do(station, "a call with a far end"));
        };
        match self.legs.get(&id).map(|leg| leg.far.clone()) {
            Some(Far::Leg(other)) => self.hang_up(other),
            _ => self.far_end_gone(id, DisconnectMode::Normal),
        }
        Ok(())
    }

    fn nothing_to_do(&self, station: usize, what: &str) -> TapiError {
        TapiError::new(
            ErrorKind::InvalidCallState,
            format!("extension {} has no {what}", self.station_number(station)),
        )
    }
}
