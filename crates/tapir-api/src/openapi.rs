//! The OpenAPI document of the v1 API, generated from the handlers and wire types.

use utoipa::OpenApi;

use crate::{admin, rest};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tapir API",
        version = "1",
        description = "Lines, calls and call control of every PBX that tapir serves. \
            Events stream over the WebSocket at /api/v1/ws (see the ClientMessage and \
            ServerMessage schemas)."
    ),
    paths(
        rest::healthz,
        rest::metrics,
        rest::instances,
        rest::lines,
        rest::line,
        rest::calls,
        rest::call,
        rest::make_call,
        rest::call_action,
        rest::set_forwards,
        rest::set_dnd,
        rest::pickup_onto_line,
        rest::simulate,
        admin::purge_lines,
        admin::purge_line,
        admin::simulate_pbx,
        admin::reload,
        admin::test_instance,
        admin::set_log_level,
        admin::set_trace
    ),
    components(schemas(
        tapir_wire::ClientMessage,
        tapir_wire::ServerMessage,
        tapir_wire::SnapshotDto,
        tapir_wire::SequencedDto,
        tapir_wire::EventDto,
        tapir_wire::CommandDto
    ))
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}
