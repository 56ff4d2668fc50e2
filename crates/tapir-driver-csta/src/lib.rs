//! tapir's CSTA provider (`csta`): follows and controls a switch through CSTA Phase III over
//! XML (ECMA-269 services, ECMA-323 XML, ECMA-354 sessions) on TCP or TLS.
//!
//! CSTA has no standard way to list a switch's devices, so the lines are the configured
//! `devices`; each is monitored with `MonitorStart` and read with `SnapshotDevice` after
//! every (re)connect. Configure it with [`CstaConfig`] and run it as [`CstaProvider`].
//!
//! # Layout
//! - `config`: [`CstaConfig`], [`Dialect`] and validation; the password never reaches a log.
//! - [`codec`]: the 8-byte header framing, `check` then `parse`, with resynchronisation.
//! - [`xml`]: a local-name element tree over quick-xml (namespace and prefix blind).
//! - [`message`]: typed incoming messages and the requests tapir sends, in schema order.
//! - [`mapping`]: the synchronous state machine from events to call reports.
//! - `commands`: tapir's commands as CSTA requests; CSTA errors as TAPI errors.
//! - `link`: one connection: TCP or TLS (`tapir_provider::tls`), invoke ids, protocol trace, the session handshake,
//!   snapshots (segmented or not).
//! - `session`: the owner loop: monitor, snapshot, serve, keep alive, reconnect.
//! - `remonitor`: when to ask again for a lost or refused device monitor (per-device back-off).
//! - `provider`: [`CstaProvider`] and the connection test.

pub mod codec;
mod commands;
mod config;
mod link;
pub mod mapping;
pub mod message;
mod provider;
mod remonitor;
mod session;
pub mod xml;

pub use config::{CstaConfig, DEFAULT_PORT, Dialect};
pub use provider::CstaProvider;
