//! tapir's Windows TAPI service provider (`tapir.tsp`).
//!
//! TAPISRV loads the DLL and calls its `TSPI_*` exports; the TSP shows tapir's lines as TAPI
//! line devices and carries call control to the server over the WebSocket API.
//!
//! # Layout
//! - `devices`: lines and calls as TAPI devices and handles; every change yields the
//!   messages TAPISRV must get, in order. No I/O; tested natively.
//! - `structs`: filling TAPI's variable-size structures from lines and calls.
//! - `engine`: the connection thread: WebSocket, reconnect and resume, and the only caller of
//!   TAPISRV's callbacks.
//! - `provider`: one provider instance (a permanent provider id): the TSPI functions'
//!   behaviour, platform-neutral.
//! - `config`: an instance's settings and `TapirConfigure`'s command line.
//! - `dialog_template`: the configuration dialog's layout as an in-memory Win32 template.
//! - `exports` (Windows only): the `extern "system"` functions, panic-safe, and the registry,
//!   DPAPI and log file behind them.

pub mod config;
pub mod devices;
#[cfg(any(windows, test))]
mod dialog_template;
pub mod engine;
pub mod provider;
pub mod structs;
#[cfg(windows)]
mod windows;
