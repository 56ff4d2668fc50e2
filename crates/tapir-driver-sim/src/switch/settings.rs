//! An extension's settings: forwarding and do-not-disturb.

use tapir_model::{ErrorKind, Forward, TapiError};
use tapir_provider::{DeviceKey, ProviderEvent};

use super::Switch;
use super::leg::Target;

impl Switch {
    /// Replaces the extension's forwarding. Destinations are stored in normal form, so the
    /// status shows what the switch will dial.
    pub(super) fn set_forwards(
        &mut self,
        device: &DeviceKey,
        forwards: Vec<Forward>,
    ) -> Result<(), TapiError> {
        let station = self.station_index(device)?;
        let mut checked = Vec::with_capacity(forwards.len());
        for forward in forwards {
            let target = self.target(&forward.destination)?;
            if target == Target::Extension(station) {
                return Err(TapiError::new(
                    ErrorKind::TargetSelf,
                    format!("extension {} cannot forward to itself", device.0),
                ));
            }
            checked.push(Forward {
                mode: forward.mode,
                destination: self.target_number(&target),
            });
        }
        if let Some(settings) = self.stations.get_mut(station) {
            settings.forwards = checked;
        }
        self.report_status(station);
        Ok(())
    }

    pub(super) fn set_do_not_disturb(
        &mut self,
        device: &DeviceKey,
        enabled: bool,
    ) -> Result<(), TapiError> {
        let station = self.station_index(device)?;
        if let Some(settings) = self.stations.get_mut(station) {
            settings.do_not_disturb = enabled;
        }
        self.report_status(station);
        Ok(())
    }

    fn report_status(&mut self, station: usize) {
        let status = self.status(station);
        self.out.push(ProviderEvent::DeviceStatus(status));
    }

    fn target_number(&self, target: &Target) -> String {
        match target {
            Target::Extension(station) => self.station_number(*station),
            Target::External(external) => external.number.clone(),
        }
    }
}
