//! TLS for tapir's API: serving HTTPS and WSS, trusting a server's certificate in the CLI,
//! and making a self-signed pair to try it out.
//!
//! # Layout
//! - `server_tls`: a PEM certificate and key into a rustls config; the HTTPS accept loop.
//! - `client_tls`: web PKI roots plus an extra CA file, for the CLI.
//! - `self_signed`: `tapir tls self-signed`.
//!
//! rustls runs on the `ring` provider throughout.

pub mod client_tls;
pub mod self_signed;
pub mod server_tls;
