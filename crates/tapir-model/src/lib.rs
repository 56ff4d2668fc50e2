//! The telephony model of tapir: lines, calls, TAPI call states, call features and errors.
//!
//! This crate does no I/O, has no async and no serialisation: it is the vocabulary that the
//! core, the drivers and the client protocol share. It follows Microsoft TAPI 2.x semantics.
//!
//! # Layout
//! - [`ids`]: server-wide identifiers for instances, lines, calls and requests.
//! - [`state`]: the 16 `LINECALLSTATE` states with their detail modes.
//! - [`party`]: caller, called, connected and redirecting parties; origin and reason.
//! - [`call`]: a call appearance on a line, and the transition rules between states.
//! - [`line`]: a line (one address in this version), its forwarding and do-not-disturb.
//! - [`features`]: which actions are possible now for a call (TAPI's `dwCallFeatures`).
//! - [`command`]: the call-control commands clients give.
//! - [`error`]: typed errors that map onto TAPI's `LINEERR_*` codes.
//! - [`access`]: rights, relations, roles and operating modes of the rights model.

pub mod access;
pub mod call;
pub mod command;
pub mod error;
pub mod features;
pub mod ids;
pub mod line;
pub mod party;
pub mod state;

pub use access::{OperatingMode, Relation, Right, Role, UnknownWord};
pub use call::{Call, CallInfo, CallInfoChange, Transition, classify_transition};
pub use command::{Command, PbxSimAction, PickupTarget, SimAction};
pub use error::{ErrorKind, TapiError};
pub use features::{CallFeatures, Capabilities, call_features};
pub use ids::{CallId, InstanceId, LineId, RequestId};
pub use line::{Forward, ForwardMode, Line, LineStatus};
pub use party::{CallOrigin, CallReason, Party};
pub use state::{
    BusyMode, CallState, ConnectedMode, DialtoneMode, DisconnectMode, OfferingMode, SpecialInfo,
};

/// Milliseconds since the Unix epoch. The model never reads a clock; the core stamps times.
pub type Timestamp = u64;
