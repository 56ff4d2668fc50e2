//! tapir's client API: REST and WebSocket over the engine. The only crate that knows HTTP.
//!
//! # Layout
//! - [`router`]: every route, ready for `axum::serve`.
//! - `rest`: the REST handlers under `/api/v1`.
//! - `admin`: purging lines, reloading the config, connection tests, log levels.
//! - `ws`: one WebSocket session: subscription, ordered events, commands and results.
//! - `convert`: the core's views as wire DTOs.
//! - `encoded`: event JSON shared by all WebSocket sessions.
//! - `error`: how errors become HTTP responses.
//! - `openapi`: the OpenAPI document served at `/api/v1/openapi.json`.
//! - `console`: the web console's files, compiled in, served at `/`.
//! - `auth`: the caller and what it may see and do; `accounts`: the accounts endpoints.
//!
//! # Invariants
//! - The API keeps no state of its own: every answer comes from the engine.
//! - Bad input gets a precise error and never closes a connection or stops the server.

mod accounts;
mod admin;
mod auth;
mod console;
mod convert;
mod encoded;
mod error;
mod openapi;
mod rest;
mod ws;

use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tapir_access::Accounts;
use tapir_core::EngineHandle;
use tapir_wire::{InstanceTestDto, ReloadDto};
use tokio_util::sync::CancellationToken;

pub use openapi::openapi_json;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub engine: EngineHandle,
    /// Who callers are and what they may do.
    pub accounts: Arc<Accounts>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Ends open WebSocket sessions when the server shuts down.
    pub shutdown: CancellationToken,
    /// Configuration actions (reload, connection tests, log levels), provided by the server
    /// binary that owns the config; `None` answers 501.
    pub admin: Option<Arc<dyn Admin>>,
    encoded: Arc<encoded::EncodedEvents>,
}

impl ApiState {
    pub fn new(
        engine: EngineHandle,
        accounts: Arc<Accounts>,
        metrics: Option<PrometheusHandle>,
        shutdown: CancellationToken,
        admin: Option<Arc<dyn Admin>>,
    ) -> ApiState {
        ApiState {
            engine,
            accounts,
            metrics,
            shutdown,
            admin,
            encoded: Arc::default(),
        }
    }
}

/// A boxed future an [`Admin`] returns.
pub type AdminFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why an administrative action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// What only the owner of the config can do.
pub trait Admin: Send + Sync {
    /// Reads the config file again and applies it; a bad config changes nothing.
    fn reload(self: Arc<Self>) -> AdminFuture<Result<ReloadDto, AdminError>>;
    /// Connects to an instance's PBX with its settings, without touching the running one.
    fn test_instance(
        self: Arc<Self>,
        name: String,
    ) -> AdminFuture<Result<InstanceTestDto, AdminError>>;
    /// Sets an instance's log level while tapir runs.
    fn set_log_level(&self, instance: String, level: String) -> Result<(), AdminError>;
    /// Switches an instance's protocol trace on or off while tapir runs.
    fn set_trace(
        self: Arc<Self>,
        instance: String,
        enabled: bool,
    ) -> AdminFuture<Result<(), AdminError>>;
}

/// Every route of the API.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(rest::openapi))
        .route("/instances", get(rest::instances))
        .route("/instances/{name}/sim", post(admin::simulate_pbx))
        .route("/instances/{name}/test", post(admin::test_instance))
        .route("/instances/{name}/log", put(admin::set_log_level))
        .route("/instances/{name}/trace", put(admin::set_trace))
        .route("/reload", post(admin::reload))
        .route("/lines/purge", post(admin::purge_lines))
        .route("/lines", get(rest::lines))
        .route("/lines/{id}", get(rest::line).delete(admin::purge_line))
        .route("/lines/{id}/calls", post(rest::make_call))
        .route("/lines/{id}/forwards", put(rest::set_forwards))
        .route("/lines/{id}/dnd", put(rest::set_dnd))
        .route("/lines/{id}/pickup", post(rest::pickup_onto_line))
        .route("/lines/{id}/unpark", post(rest::unpark))
        .route("/lines/{id}/sim", post(rest::simulate))
        .route("/calls", get(rest::calls))
        .route("/calls/{id}", get(rest::call))
        .route("/calls/{id}/{action}", post(rest::call_action))
        .route("/ws", get(ws::upgrade))
        .route("/login", post(accounts::login))
        .route("/logout", post(accounts::logout))
        .route("/me", get(accounts::me))
        .route("/users", get(accounts::users).post(accounts::create_user))
        .route(
            "/users/{name}",
            get(accounts::user)
                .patch(accounts::change_user)
                .delete(accounts::delete_user),
        )
        .route("/users/{name}/password", put(accounts::set_password))
        .route(
            "/users/{name}/lines/{line}",
            put(accounts::assign).delete(accounts::unassign),
        )
        .route("/assignments", get(accounts::assignments))
        .route(
            "/tokens",
            get(accounts::tokens).post(accounts::create_token),
        )
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/teams", get(accounts::teams).post(accounts::create_team))
        .route(
            "/teams/{name}",
            put(accounts::set_team_right).delete(accounts::delete_team),
        )
        .route(
            "/teams/{name}/members/{user}",
            put(accounts::add_member).delete(accounts::remove_member),
        )
        .route(
            "/tsecimp",
            get(accounts::export_tsecimp).post(accounts::import_tsecimp),
        )
        .route("/audit", get(accounts::audit))
        .fallback(rest::not_found);
    Router::new()
        .nest(tapir_wire::API_PREFIX, api)
        .route("/healthz", get(rest::healthz))
        .route("/metrics", get(rest::metrics))
        .merge(console::router())
        .fallback(rest::not_found)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small messages (events, results) must leave at once, not wait for Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot disable Nagle's algorithm on a connection");
        }
    });
    // The peer's address limits failed logins per client.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
