//! Shared fixtures: the five locations that the tables are written for.

#![allow(dead_code)]

use tapir_numbers::{Location, NumberFormat, NumberPlan};

/// Berlin, Germany: area 30, outside line 0.
pub fn berlin() -> Location {
    location("DE", "30", "0")
}

/// New York, US: area 212, outside line 9 (national prefix 1 and international 011 from the
/// metadata, checked in `plan.rs`).
pub fn new_york() -> Location {
    location("US", "212", "9")
}

/// London, UK: area 20, outside line 9.
pub fn london() -> Location {
    location("GB", "20", "9")
}

/// Zurich, Switzerland: area 44, outside line 0.
pub fn zurich() -> Location {
    location("CH", "44", "0")
}

/// Sydney, Australia: area 2, outside line 0, international prefix 0011.
pub fn sydney() -> Location {
    let mut location = location("AU", "2", "0");
    location.international_prefix = Some("0011".into());
    location
}

pub fn all() -> Vec<(&'static str, Location)> {
    vec![
        ("berlin", berlin()),
        ("new_york", new_york()),
        ("london", london()),
        ("zurich", zurich()),
        ("sydney", sydney()),
    ]
}

pub const FORMATS: [NumberFormat; 5] = [
    NumberFormat::International,
    NumberFormat::InternationalNoPlus,
    NumberFormat::Phonebook,
    NumberFormat::PhonebookInternational,
    NumberFormat::Raw,
];

pub fn plan(location: Location, format: NumberFormat) -> NumberPlan {
    NumberPlan::new(location, format).expect("test locations are valid")
}

fn location(country: &str, area: &str, access: &str) -> Location {
    let mut location = Location::new(country);
    location.area_code = Some(area.into());
    location.access_code = Some(access.into());
    location
}
