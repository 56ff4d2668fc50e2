//! The PBX's phones as tapir lines: endpoints from the technology's list action
//! (`PJSIPShowEndpoints`, `SIPpeers`, `IAXpeerlist`), extensions from the hints of
//! `ExtensionStateList` or the configured map.

use std::collections::{BTreeMap, BTreeSet};

use tapir_provider::{Device, DeviceKey};

use crate::config::Technology;
use crate::message::Message;

/// The endpoints that are lines, by endpoint name.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    technology: Technology,
    devices: BTreeMap<String, Device>,
    /// Endpoints whose device state is `UNAVAILABLE`: no registered contact, or one that does
    /// not answer qualify. Their lines are out of service.
    unreachable: BTreeSet<String>,
}

impl Lines {
    /// Lines for the endpoints of `technology`.
    pub fn new(technology: Technology) -> Lines {
        Lines {
            technology,
            devices: BTreeMap::new(),
            unreachable: BTreeSet::new(),
        }
    }

    /// A device state for `device` (`PJSIP/201`): when it is a line's and makes the line
    /// reachable or unreachable, the line and whether it is in service now.
    pub fn device_state(&mut self, device: &str, state: &str) -> Option<(DeviceKey, bool)> {
        let endpoint = device
            .strip_prefix(self.technology.prefix())?
            .strip_prefix('/')?;
        let key = self.devices.get(endpoint)?.key.clone();
        let changed = if state.eq_ignore_ascii_case("UNAVAILABLE") {
            self.unreachable.insert(endpoint.to_string())
        } else {
            self.unreachable.remove(endpoint)
        };
        changed.then(|| (key.clone(), !self.unreachable.contains(endpoint)))
    }

    /// The lines out of service because their phone is unreachable.
    pub fn unreachable(&self) -> Vec<DeviceKey> {
        self.unreachable
            .iter()
            .filter_map(|endpoint| self.devices.get(endpoint))
            .map(|device| device.key.clone())
            .collect()
    }

    /// Takes over what `previous` knew of the reachability of the endpoints both have.
    pub fn keep_reachability(&mut self, previous: &Lines) {
        self.unreachable = previous
            .unreachable
            .iter()
            .filter(|endpoint| self.devices.contains_key(*endpoint))
            .cloned()
            .collect();
    }

    /// Builds the lines from the items of an endpoint list and a hint list.
    ///
    /// `extension_map` wins over hints; an endpoint with neither is its own extension.
    pub fn build(
        technology: Technology,
        endpoints: &[Message],
        hints: &[Message],
        extension_map: &BTreeMap<String, String>,
        name: impl Fn(&str, &str) -> String,
    ) -> Lines {
        let hinted = hint_extensions(technology.prefix(), hints);
        let mut lines = Lines::new(technology);
        let (_, entry) = technology.endpoint_list();
        for endpoint in endpoints
            .iter()
            .filter_map(|item| endpoint_name(item, entry))
        {
            let extension = extension_map
                .get(endpoint)
                .or_else(|| hinted.get(endpoint))
                .map_or(endpoint, String::as_str);
            let mut device = Device::new(endpoint, extension, name(endpoint, extension));
            device.alias = Some(endpoint.to_string());
            lines.devices.insert(endpoint.to_string(), device);
        }
        lines
    }

    pub fn devices(&self) -> Vec<Device> {
        self.devices.values().cloned().collect()
    }

    pub fn get(&self, key: &DeviceKey) -> Option<&Device> {
        self.devices.get(&key.0)
    }

    /// The line a channel belongs to: `PJSIP/201-00000010` is endpoint 201's.
    pub fn of_channel(&self, channel: &str) -> Option<&Device> {
        let rest = channel
            .strip_prefix(self.technology.prefix())?
            .strip_prefix('/')?;
        let endpoint = rest.rsplit_once('-').map_or(rest, |(endpoint, _)| endpoint);
        self.devices.get(endpoint)
    }

    /// True when `number` is the address of one of the lines.
    pub fn is_address(&self, number: &str) -> bool {
        self.devices.values().any(|d| d.address == number)
    }

    /// The channel that rings endpoint `key`, e.g. `PJSIP/201`.
    pub fn dial_string(&self, key: &DeviceKey) -> String {
        format!("{}/{}", self.technology.prefix(), key.0)
    }

    /// Devices in `self` but not in `other`.
    pub fn missing_from(&self, other: &Lines) -> Vec<Device> {
        self.devices
            .values()
            .filter(|d| !other.devices.contains_key(&d.key.0))
            .cloned()
            .collect()
    }
}

/// The endpoint named by one item of the list (`entry`: `EndpointList`, `PeerEntry`).
fn endpoint_name<'a>(item: &'a Message, entry: &str) -> Option<&'a str> {
    (item.event()? == entry).then_some(())?;
    item.get("ObjectName").filter(|n| !n.is_empty())
}

/// Endpoint → extension from `ExtensionStatus` items whose hint names one endpoint of the
/// technology (`PJSIP/201`, or `PJSIP/201&Custom:DND201`).
fn hint_extensions(technology: &str, hints: &[Message]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for item in hints {
        let (Some(exten), Some(hint)) = (item.get("Exten"), item.get("Hint")) else {
            continue;
        };
        let endpoints: Vec<&str> = hint
            .split('&')
            .filter_map(|part| part.strip_prefix(technology)?.strip_prefix('/'))
            .collect();
        if let [endpoint] = endpoints[..] {
            map.entry(endpoint.to_string())
                .or_insert_with(|| exten.to_string());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Message {
        Message::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn hints_and_the_map_give_extensions() {
        let endpoints = [
            item(&[("Event", "EndpointList"), ("ObjectName", "201")]),
            item(&[("Event", "EndpointList"), ("ObjectName", "alice")]),
            item(&[("Event", "EndpointList"), ("ObjectName", "bob")]),
        ];
        let hints = [item(&[
            ("Event", "ExtensionStatus"),
            ("Exten", "300"),
            ("Hint", "PJSIP/alice&Custom:DND300"),
        ])];
        let map = BTreeMap::from([("bob".to_string(), "301".to_string())]);
        let lines = Lines::build(Technology::Pjsip, &endpoints, &hints, &map, |e, x| {
            format!("{e} at {x}")
        });
        let addresses: Vec<_> = lines
            .devices()
            .into_iter()
            .map(|d| (d.key.0, d.address, d.name))
            .collect();
        assert_eq!(
            addresses,
            [
                ("201".into(), "201".into(), "201 at 201".into()),
                ("alice".into(), "300".into(), "alice at 300".into()),
                ("bob".into(), "301".into(), "bob at 301".into()),
            ]
        );
        assert_eq!(
            lines
                .of_channel("PJSIP/alice-0000000a")
                .map(|d| d.address.as_str()),
            Some("300")
        );
        assert!(lines.of_channel("Local/203@internal-00000000;1").is_none());
        assert!(lines.of_channel("SIP/201-00000001").is_none());
    }

    /// chan_sip's `SIPpeers` answer (its manager format in chan_sip.c): `PeerEntry` items.
    #[test]
    fn chan_sip_peers_are_lines_with_sip_channels() {
        let peers = [
            item(&[
                ("Event", "PeerEntry"),
                ("Channeltype", "SIP"),
                ("ObjectName", "201"),
                ("ChanObjectType", "peer"),
            ]),
            item(&[("Event", "EndpointList"), ("ObjectName", "pjsip-only")]),
        ];
        let hints = [item(&[
            ("Event", "ExtensionStatus"),
            ("Exten", "201"),
            ("Hint", "SIP/201"),
        ])];
        let lines = Lines::build(Technology::Sip, &peers, &hints, &BTreeMap::new(), |e, _| {
            e.to_string()
        });
        let keys: Vec<_> = lines.devices().into_iter().map(|d| d.key.0).collect();
        assert_eq!(keys, ["201"]);
        let key = DeviceKey("201".into());
        assert_eq!(lines.dial_string(&key), "SIP/201");
        assert!(lines.of_channel("SIP/201-00000001").is_some());
        assert!(lines.of_channel("PJSIP/201-00000001").is_none());
    }
}
