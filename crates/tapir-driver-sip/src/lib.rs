//! tapir's SIP provider (`sip`): follows lines through RFC 4235 dialog subscriptions at a
//! SIP registrar (Kamailio with presence and pua_dialoginfo) and controls calls by
//! third-party call control and Kamailio's JSON-RPC.
//!
//! Every configured address of record becomes a line. Its calls are read from the
//! `dialog-info+xml` documents the registrar NOTIFYs; made calls are an INVITE to the line's
//! phone followed by an in-dialog REFER to the destination; drop ends the dialog through
//! `dlg.end_dlg`. Configure it with [`SipConfig`] and run it as [`SipProvider`].
//!
//! # Layout
//! - `config`: [`SipConfig`] and its validation; the digest password never reaches a log.
//! - [`dialog_info`]: RFC 4235 documents read with quick-xml, leniently but never panicking.
//! - [`mapping`]: the synchronous state machine from documents to call reports.
//! - [`status`]: SIP final responses as typed call-control errors.
//! - `stack`: rsipstack's endpoint, transport and dialog layer, requests with digest
//!   answers, and the dispatch of incoming requests.
//! - `tls_link`: over TLS, the provider's one connection to the registrar (why one, and
//!   why dialled by the provider).
//! - `subscription`: one line's dialog subscription: subscribe, refresh, resubscribe.
//! - `control`: make call by 3PCC (INVITE, REFER, NOTIFY sipfrag, BYE) and drop.
//! - `phone_control`: answer, hold and resume through the phone (NOTIFY `talk`/`hold`, or
//!   uaCSTA in INFO), for the phone types that take them.
//! - [`evapi`]: the optional feed of Kamailio's evapi module (hold, resume, transfers):
//!   a bounded netstring reader, the events, and the connection with its back-off.
//! - `rpc`: Kamailio JSON-RPC over UDP datagrams or HTTP (dialogs, registrations).
//! - `session`: the owner loop: lines, their service (subscription, registration),
//!   keep-alive, reports, commands, shutdown.
//! - `provider`: [`SipProvider`] and the connection test (an OPTIONS ping).

mod config;
mod control;
pub mod dialog_info;
pub mod evapi;
pub mod mapping;
mod phone_control;
mod provider;
mod rpc;
mod session;
mod stack;
pub mod status;
mod subscription;
mod tls_link;

pub use config::{
    Credentials, EvapiEndpoint, LineConfig, NumberRange, PhoneType, Registrar, RemoteControl,
    RpcEndpoint, SipConfig, Transport,
};
pub use provider::SipProvider;
