//! tapir's Asterisk provider (`asterisk`): follows and controls an Asterisk PBX through the
//! Asterisk Manager Interface (AMI).
//!
//! Every PJSIP endpoint becomes a line; each of its channels is a call appearance, reported
//! as TAPI sees it. Made calls are `Originate`s of the line's phone; forwarding and
//! do-not-disturb live in AstDB as FreePBX keeps them. Configure it with [`AmiConfig`] and
//! run it as [`AmiProvider`].
//!
//! # Layout
//! - `config`: [`AmiConfig`] and its validation; the secret never reaches a log.
//! - [`codec`]: AMI framing, `check` then `parse`, with a size limit and typed errors.
//! - [`message`]: raw messages, actions, channel snapshots and the typed [`message::AmiEvent`]s.
//! - [`mapping`]: the synchronous state machine from events to call reports:
//!   - `mapping::lines`: endpoints as lines and their extensions;
//!   - `mapping::channel`: a channel and its TAPI picture;
//!   - `mapping::consultation`: an `Atxfer` shown as the original and consultation calls;
//!   - `mapping::cause`: hangup causes as disconnect modes.
//! - `commands`: tapir's commands as AMI actions, and the capabilities offered.
//! - `connection`: one AMI connection (TCP, or TLS by `tapir_provider::tls`): banner, login,
//!   actions correlated by ActionID.
//! - `session`: the owner loop: synchronise, follow, serve, reconnect with back-off.
//! - `provider`: [`AmiProvider`] and the connection test.

pub mod codec;
mod commands;
mod config;
mod connection;
pub mod mapping;
pub mod message;
mod provider;
mod session;

pub use config::{AmiConfig, FeatureStore, NEEDED_EVENT_CLASSES, PhoneControl, Technology};
pub use provider::AmiProvider;
