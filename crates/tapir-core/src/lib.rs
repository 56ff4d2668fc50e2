//! tapir's engine: the one task that owns every line and call, sequences events and routes
//! commands to the PBX drivers.
//!
//! # Layout
//! - [`Engine`]: starts the owner task and the providers of each configured instance.
//! - [`EngineHandle`]: the cloneable way in for the API: queries, commands, subscriptions.
//! - `engine`: the owner task's loop: provider events, client requests, command deadlines.
//! - `tables`: lines and calls with their PBX-native keys, and how a provider report becomes
//!   domain events.
//! - `routing`: how a client command is checked against the model and turned into a provider
//!   command.
//! - `journal`: sequence numbers, the bounded resume buffer and the broadcast to subscribers.
//! - `template`: line names from per-instance templates.
//! - [`view`]: what the engine publishes: snapshots and sequenced [`Event`]s.
//!
//! # Invariants
//! - One task owns all state; everything else talks to it over channels. No shared locks.
//! - Sequence numbers are assigned in one place (the journal) before fan-out, so every
//!   subscriber sees one order; per-line order follows.
//! - A command completes exactly once: with the provider's result, a typed error, or
//!   `outcome_unknown` when the PBX does not answer in time. It is never replayed.
//! - The core knows no PBX protocol; drivers are reached only through `tapir-provider`.
//! - The PBX is the ground truth for live calls: after a reconnect the provider's
//!   `Synchronized` report replaces what the core believed.

mod engine;
mod handle;
mod journal;
mod routing;
mod tables;
mod template;
pub mod view;

pub use engine::{Engine, EngineConfig, InstanceChange, InstanceSpec, Presentation, StartError};
pub use handle::{EngineHandle, EngineStopped, ReconfigureError, Subscription, SubscriptionStart};
pub use template::{LineNameTemplate, PRESETS as LINE_NAME_PRESETS, TemplateError};
pub use view::{
    CallSnapshot, CommandOutcome, Event, InstanceInfo, InstanceStatus, LineSnapshot, Sequenced,
    Snapshot,
};

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> tapir_model::Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
