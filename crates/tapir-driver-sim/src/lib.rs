//! tapir's built-in simulated PBX (`sim`): a deterministic switch with numbered extensions
//! and a trunk for every other number.
//!
//! It is what tapir runs on with no configuration, a demo of every call feature, and a load
//! generator. It implements [`tapir_provider::Provider`] through [`SimProvider`], configured
//! by [`SimConfig`].
//!
//! # Layout
//! - `config`: [`SimConfig`] and the outside-number rules ([`ExternalRule`]), with validation.
//! - `dial`: the numbers a user may dial, and their normal form.
//! - `switch`: the switching logic, a synchronous state machine without I/O or clock:
//!   - `switch::leg`: call appearances and what is at their far end;
//!   - `switch::routing`: dialling, do-not-disturb, forwarding, busy, ringing, the trunk;
//!   - `switch::calls`: make, answer, drop, hold, unhold, swap;
//!   - `switch::transfer`: blind and consultation transfer, conference, redirect, pickup;
//!   - `switch::settings`: forwarding and do-not-disturb;
//!   - `switch::handset`: the person at the phone and the outside world ([`tapir_model::SimAction`]).
//! - `provider`: [`SimProvider`], the owner loop that feeds the switch requests and timers.

mod config;
mod dial;
mod provider;
mod switch;

pub use config::{ExternalBehaviour, ExternalRule, SimConfig};
pub use provider::SimProvider;
