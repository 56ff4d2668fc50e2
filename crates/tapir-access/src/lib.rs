//! Accounts and rights: who a caller is, which lines it may see and control, and who may
//! manage what.
//!
//! # Layout
//! - `policy`: the rights model as pure functions ([`Principal::check`]).
//! - `service`: [`Accounts`], the async service over the store: authentication, logins,
//!   users, tokens, teams, line assignments, the audit log.
//! - `tsecimp`: Microsoft's tsecimp XML (parse, validate, export); `import` applies it.
//! - `password` (argon2id), `token` (bearer tokens, stored as hashes), `limiter` (failed
//!   logins).
//!
//! # Invariants
//! - No password or token secret is stored, logged or returned after it is made.
//! - Another tenant's lines, users and teams are reported missing, never forbidden.
//! - Every change bumps the generation that open sessions watch.

mod error;
mod import;
mod limiter;
mod password;
mod policy;
mod service;
mod token;
pub mod tsecimp;

pub use error::{AccessError, ImportProblem};
pub use import::ImportSummary;
pub use password::MIN_PASSWORD_CHARS;
pub use policy::{DEFAULT_TENANT, Denial, InstancePolicy, Need, Policies, Principal};
pub use service::{Accounts, AuditTarget, FIRST_ADMIN, IssuedToken, SESSION_LIFETIME, UserRequest};
pub use tapir_store::{
    Assignment, AuditEntry, TeamRecord, TokenKind, TokenRecord, UserChange, UserRecord,
};
pub use token::BearerToken;
