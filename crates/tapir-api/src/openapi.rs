//! The OpenAPI document of the v1 API, generated from the handlers and wire types.

use utoipa::OpenApi;

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{accounts, admin, rest};

/// Every path takes a bearer token (but `/healthz` and `/login`, which say so themselves).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

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
        rest::unpark,
        rest::simulate,
        admin::purge_lines,
        admin::purge_line,
        admin::simulate_pbx,
        admin::reload,
        admin::test_instance,
        admin::set_log_level,
        admin::set_trace,
        accounts::login,
        accounts::logout,
        accounts::me,
        accounts::users,
        accounts::create_user,
        accounts::user,
        accounts::change_user,
        accounts::delete_user,
        accounts::set_password,
        accounts::assign,
        accounts::unassign,
        accounts::assignments,
        accounts::tokens,
        accounts::create_token,
        accounts::revoke_token,
        accounts::teams,
        accounts::create_team,
        accounts::set_team_right,
        accounts::delete_team,
        accounts::add_member,
        accounts::remove_member,
        accounts::export_tsecimp,
        accounts::import_tsecimp,
        accounts::audit
    ),
    modifiers(&BearerAuth),
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
