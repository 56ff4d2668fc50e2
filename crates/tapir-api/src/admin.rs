//! Administrative endpoints: purging defunct lines, simulated-PBX changes, config reload,
//! connection tests and log levels.

use axum::Json;
use axum::extract::{Path, State};
use tapir_model::LineId;
use tapir_wire::{
    CommandDto, CommandResultDto, ErrorDto, InstanceTestDto, LogLevelBody, PbxSimActionDto,
    PurgeBody, PurgedDto, ReloadDto, TraceBody,
};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::rest::{JsonBody, parse_id, run};
use crate::{AdminError, ApiState};

/// Only an administrator of every tenant may act on the whole server.
fn server_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.is_global_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only an administrator of every tenant may do this".into(),
        ))
    }
}

/// An instance is administered by the administrators of its tenant; to everyone else of
/// other tenants it does not exist.
fn instance_admin(state: &ApiState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    let policies = state.accounts.policies();
    let tenant = policies.get(name).map(|p| p.tenant.as_str());
    match tenant {
        Some(t) if caller.0.administers(t) => Ok(()),
        Some(t) if caller.0.in_tenant(t) => Err(ApiError::Forbidden(format!(
            "only an administrator may manage instance {name:?}"
        ))),
        None if caller.0.is_global_admin() => Ok(()),
        _ => Err(ApiError::NotFound(format!("no instance {name:?}"))),
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::NotFound(m) => ApiError::NotFound(m),
            AdminError::Invalid(m) => ApiError::Unprocessable(m),
        }
    }
}

fn admin(state: &ApiState) -> Result<std::sync::Arc<dyn crate::Admin>, ApiError> {
    state.admin.clone().ok_or_else(|| {
        ApiError::NotImplemented("this server was started without administration".into())
    })
}

async fn purge(
    state: &ApiState,
    caller: &Caller,
    lines: Vec<u32>,
) -> Result<Json<PurgedDto>, ApiError> {
    if !caller.0.is_global_admin() {
        let policies = state.accounts.policies();
        for id in &lines {
            let line = state.engine.line(LineId(*id)).await?;
            let tenant = line
                .as_ref()
                .and_then(|l| policies.get(&l.instance))
                .map(|p| p.tenant.as_str());
            match tenant {
                Some(t) if caller.0.administers(t) => {}
                Some(t) if caller.0.in_tenant(t) => {
                    return Err(ApiError::Forbidden(
                        "only an administrator may purge lines".into(),
                    ));
                }
                _ => return Err(ApiError::NotFound(format!("no line {id}"))),
            }
        }
    }
    let purged = state
        .engine
        .purge_lines(lines.into_iter().map(LineId).collect())
        .await?;
    Ok(Json(PurgedDto {
        purged: purged.into_iter().map(|l| l.0).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/lines/purge", tag = "administration",
    request_body = PurgeBody,
    responses((status = 200, body = PurgedDto), (status = 409, body = ErrorDto)))]
pub(crate) async fn purge_lines(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<PurgeBody>,
) -> Result<Json<PurgedDto>, ApiError> {
    purge(&state, &caller, body.lines).await
}

#[utoipa::path(delete, path = "/api/v1/lines/{id}", tag = "administration",
    params(("id" = u32, Path, description = "A defunct line")),
    responses((status = 200, body = PurgedDto), (status = 404, body = ErrorDto),
        (status = 409, body = ErrorDto, description = "The line is not defunct")))]
pub(crate) async fn purge_line(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PurgedDto>, ApiError> {
    let id = parse_id(&id, "line")?;
    purge(&state, &caller, vec![id]).await
}

#[utoipa::path(post, path = "/api/v1/instances/{name}/sim", tag = "simulator",
    params(("name" = String, Path)), request_body = PbxSimActionDto,
    responses((status = 200, body = CommandResultDto), (status = 422, body = ErrorDto)))]
pub(crate) async fn simulate_pbx(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(action): JsonBody<PbxSimActionDto>,
) -> Result<Json<CommandResultDto>, ApiError> {
    Ok(Json(
        run(&state, &caller, CommandDto::sim_pbx(name, action)).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/reload", tag = "administration",
    responses((status = 200, body = ReloadDto),
        (status = 422, body = ErrorDto, description = "The config is invalid; nothing changed")))]
pub(crate) async fn reload(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ReloadDto>, ApiError> {
    server_admin(&caller)?;
    Ok(Json(admin(&state)?.reload().await?))
}

#[utoipa::path(post, path = "/api/v1/instances/{name}/test", tag = "administration",
    params(("name" = String, Path)),
    responses((status = 200, body = InstanceTestDto, description = "The test ran; `ok` says \
        whether the PBX could be reached"), (status = 404, body = ErrorDto)))]
pub(crate) async fn test_instance(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<InstanceTestDto>, ApiError> {
    instance_admin(&state, &caller, &name)?;
    Ok(Json(admin(&state)?.test_instance(name).await?))
}

#[utoipa::path(put, path = "/api/v1/instances/{name}/log", tag = "administration",
    params(("name" = String, Path)), request_body = LogLevelBody,
    responses((status = 200), (status = 404, body = ErrorDto), (status = 422, body = ErrorDto)))]
pub(crate) async fn set_log_level(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<LogLevelBody>,
) -> Result<Json<LogLevelBody>, ApiError> {
    instance_admin(&state, &caller, &name)?;
    admin(&state)?.set_log_level(name, body.level.clone())?;
    Ok(Json(body))
}

#[utoipa::path(put, path = "/api/v1/instances/{name}/trace", tag = "administration",
    params(("name" = String, Path)), request_body = TraceBody,
    responses((status = 200, body = TraceBody), (status = 404, body = ErrorDto)))]
pub(crate) async fn set_trace(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<TraceBody>,
) -> Result<Json<TraceBody>, ApiError> {
    instance_admin(&state, &caller, &name)?;
    admin(&state)?.set_trace(name, body.enabled).await?;
    Ok(Json(body))
}
