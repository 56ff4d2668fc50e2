//! Extensions that appear and vanish while the switch runs (an administrator's changes).

use tapir_model::{ErrorKind, PbxSimAction, TapiError};
use tapir_provider::{Device, ProviderEvent};

use super::{Station, Switch};

impl Switch {
    pub(super) fn change_extensions(&mut self, action: PbxSimAction) -> Result<(), TapiError> {
        match action {
            PbxSimAction::AddExtension { number, name } => self.add_extension(number, name),
            PbxSimAction::RemoveExtension { number } => self.remove_extension(&number),
        }
    }

    /// Adds an extension, or brings a removed one back with its old settings.
    fn add_extension(&mut self, number: String, name: Option<String>) -> Result<(), TapiError> {
        let canonical = !number.is_empty()
            && number.len() <= 15
            && number.bytes().all(|b| b.is_ascii_digit())
            && (number.len() == 1 || !number.starts_with('0'));
        if !canonical {
            return Err(TapiError::new(
                ErrorKind::InvalidParam,
                format!("{number:?} is not an extension number (digits, no leading 0)"),
            ));
        }
        let station = match self.by_number.get(&number).copied() {
            Some(index) if self.stations[index].present => {
                return Err(TapiError::new(
                    ErrorKind::InvalidParam,
                    format!("extension {number} exists already"),
                ));
            }
            Some(index) => {
                let station = &mut self.stations[index];
                station.present = true;
                if let Some(name) = name {
                    station.name = name;
                }
                index
            }
            None => {
                self.stations.push(Station::new(number.clone(), name));
                let index = self.stations.len() - 1;
                self.by_number.insert(number, index);
                index
            }
        };
        let device = Device::new(
            self.station_key(station).0,
            self.station_number(station),
            self.station_name(station),
        );
        self.out.push(ProviderEvent::DeviceAdded(device));
        let status = self.status(station);
        self.out.push(ProviderEvent::DeviceStatus(status));
        Ok(())
    }

    /// Removes an extension: its calls end as if its user hung up, then it is gone.
    fn remove_extension(&mut self, number: &str) -> Result<(), TapiError> {
        let station = self.extension(number).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidParam,
                format!("no extension {number} to remove"),
            )
        })?;
        let legs = self.stations[station].legs.clone();
        for leg in legs {
            self.hang_up(leg);
        }
        self.stations[station].present = false;
        let key = self.station_key(station);
        self.out.push(ProviderEvent::DeviceRemoved(key));
        Ok(())
    }
}
