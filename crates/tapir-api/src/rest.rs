//! The REST handlers under `/api/v1`, plus `/healthz` and `/metrics`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tapir_core::InstanceInfo;
use tapir_model::{CallId, LineId, Right};
use tapir_wire::{
    CallDto, CommandDto, CommandResultDto, DialBody, DigitsBody, DndBody, ErrorDto, ForwardsBody,
    InstanceDto, LineDto, ParkBody, PickupBody, PickupOntoLineBody, SimActionDto, SwapBody,
    UnparkBody,
};

use crate::ApiState;
use crate::auth::{self, Caller, Gate};
use crate::convert;
use crate::error::ApiError;

/// A JSON body parsed strictly, with a 400 that says what is wrong.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        parse_body(&bytes).map(JsonBody)
    }
}

fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// An empty body, or an empty JSON object, for actions that take no parameters.
fn parse_optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_body(bytes)
    }
}

pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid {what} id {raw:?}: expected a number")))
}

pub(crate) async fn run(
    state: &ApiState,
    caller: &Caller,
    command: CommandDto,
) -> Result<CommandResultDto, ApiError> {
    let command = command.into_model()?;
    let outcome = auth::execute(state, &caller.0, command).await?;
    Ok(CommandResultDto {
        request: outcome.request.0,
        call: outcome.call.map(|c| c.0),
        parked_at: outcome.parked_at,
    })
}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The server runs")))]
pub(crate) async fn healthz() -> Response {
    // Unauthenticated, so it names nothing: instance health is under /instances.
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(
    State(state): State<ApiState>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    // Metrics cover every tenant, so only the server's administrators read them.
    if !caller.is_global_admin() {
        return Err(ApiError::Forbidden(
            "only an administrator of every tenant may read the metrics".into(),
        ));
    }
    let text = state
        .metrics
        .as_ref()
        .map(|m| m.render())
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
        .into_response()
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

#[utoipa::path(get, path = "/api/v1/instances", tag = "lines",
    responses((status = 200, body = [InstanceDto])))]
pub(crate) async fn instances(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<InstanceDto>>, ApiError> {
    let instances = state.engine.instances().await?;
    let gate = gate(&state, &caller, &instances);
    Ok(Json(
        instances
            .iter()
            .filter(|i| gate.instance_visible(i))
            .map(convert::instance)
            .collect(),
    ))
}

pub(crate) fn gate(state: &ApiState, caller: &Caller, instances: &[InstanceInfo]) -> Gate {
    Gate::new(caller.0.clone(), state.accounts.policies(), instances)
}

#[utoipa::path(get, path = "/api/v1/lines", tag = "lines",
    responses((status = 200, body = [LineDto])))]
pub(crate) async fn lines(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<LineDto>>, ApiError> {
    let snapshot = state.engine.snapshot().await?;
    let gate = gate(&state, &caller, &snapshot.instances);
    Ok(Json(
        snapshot
            .lines
            .iter()
            .filter(|l| gate.line_right(l) > Right::None)
            .map(convert::line)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/lines/{id}", tag = "lines",
    params(("id" = u32, Path, description = "Permanent line id")),
    responses((status = 200, body = LineDto), (status = 404, body = ErrorDto)))]
pub(crate) async fn line(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<LineDto>, ApiError> {
    let id = LineId(parse_id(&id, "line")?);
    let gate = gate(&state, &caller, &[]);
    match state.engine.line(id).await? {
        Some(line) if gate.line_right(&line) > Right::None => Ok(Json(convert::line(&line))),
        _ => Err(ApiError::NotFound(format!("no line {id}"))),
    }
}

/// Query of `GET /calls`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallsQuery {
    /// Only the calls on this line.
    line: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/calls", tag = "calls", params(CallsQuery),
    responses((status = 200, body = [CallDto])))]
pub(crate) async fn calls(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<CallsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<CallDto>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let snapshot = state.engine.snapshot().await?;
    let gate = gate(&state, &caller, &snapshot.instances);
    let calls = snapshot
        .calls
        .iter()
        .filter(|c| query.line.is_none_or(|l| c.call.line.0 == l))
        .filter(|c| gate.call_right(c) > Right::None)
        .map(convert::call)
        .collect();
    Ok(Json(calls))
}

#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls",
    params(("id" = u64, Path, description = "Call id")),
    responses((status = 200, body = CallDto), (status = 404, body = ErrorDto)))]
pub(crate) async fn call(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CallDto>, ApiError> {
    let id = CallId(parse_id(&id, "call")?);
    let instances = state.engine.instances().await?;
    let gate = gate(&state, &caller, &instances);
    match state.engine.call(id).await? {
        Some(call) if gate.call_right(&call) > Right::None => Ok(Json(convert::call(&call))),
        _ => Err(ApiError::NotFound(format!("no call {id}"))),
    }
}

#[utoipa::path(post, path = "/api/v1/lines/{id}/calls", tag = "calls",
    params(("id" = u32, Path, description = "The line that places the call")),
    request_body = DialBody,
    responses((status = 201, body = CommandResultDto, description = "The call was placed"),
        (status = 404, body = ErrorDto), (status = 409, body = ErrorDto),
        (status = 422, body = ErrorDto), (status = 504, body = ErrorDto)))]
pub(crate) async fn make_call(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DialBody>,
) -> Result<Response, ApiError> {
    let line = parse_id(&id, "line")?;
    let result = run(&state, &caller, CommandDto::MakeCall { line, to: body.to }).await?;
    let location = result
        .call
        .map(|c| format!("{}/calls/{c}", tapir_wire::API_PREFIX));
    let mut response = (StatusCode::CREATED, Json(result)).into_response();
    if let Some(location) = location.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `POST /calls/{id}/{action}`: answer, drop, hold, unhold, swap, transfer, consult,
/// complete-transfer, conference, redirect, digits, pickup, park.
#[utoipa::path(post, path = "/api/v1/calls/{id}/{action}", tag = "calls",
    params(("id" = u64, Path, description = "Call id"),
        ("action" = String, Path, description = "answer, drop, hold, unhold, swap, transfer, \
         consult, complete-transfer, conference, redirect, digits, pickup or park")),
    request_body(content = DialBody, description = "`{\"to\"}` for transfer, consult and \
        redirect; `{\"with\"}` (optional) for swap; `{\"line\"}` for pickup; `{\"to\"}` \
        (optional: the park place) for park; none otherwise"),
    responses((status = 200, body = CommandResultDto), (status = 404, body = ErrorDto),
        (status = 409, body = ErrorDto), (status = 422, body = ErrorDto),
        (status = 501, body = ErrorDto), (status = 504, body = ErrorDto)))]
pub(crate) async fn call_action(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<CommandResultDto>, ApiError> {
    let call: u64 = parse_id(&id, "call")?;
    let none = |bytes: &[u8]| parse_optional_body::<NoBody>(bytes).map(|_| ());
    let command = match action.replace('_', "-").as_str() {
        "accept" => none(&body).map(|_| CommandDto::Accept { call })?,
        "answer" => none(&body).map(|_| CommandDto::Answer { call })?,
        "drop" => none(&body).map(|_| CommandDto::Drop { call })?,
        "hold" => none(&body).map(|_| CommandDto::Hold { call })?,
        "unhold" => none(&body).map(|_| CommandDto::Unhold { call })?,
        "complete-transfer" => none(&body).map(|_| CommandDto::CompleteTransfer { call })?,
        "conference" => none(&body).map(|_| CommandDto::Conference { call })?,
        "swap" => {
            let SwapBody { with } = parse_optional_body(&body)?;
            CommandDto::Swap { call, with }
        }
        "transfer" => CommandDto::Transfer {
            call,
            to: parse_body::<DialBody>(&body)?.to,
        },
        "consult" => CommandDto::Consult {
            call,
            to: parse_body::<DialBody>(&body)?.to,
        },
        "digits" => CommandDto::GenerateDigits {
            call,
            digits: parse_body::<DigitsBody>(&body)?.digits,
        },
        "redirect" => CommandDto::Redirect {
            call,
            to: parse_body::<DialBody>(&body)?.to,
        },
        "pickup" => {
            let PickupBody { line } = parse_body(&body)?;
            CommandDto::Pickup {
                line,
                call: Some(call),
                from_line: None,
            }
        }
        "park" => {
            let ParkBody { to } = parse_optional_body(&body)?;
            CommandDto::Park { call, to }
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "unknown call action {other:?}; use answer, drop, hold, unhold, swap, transfer, \
                 consult, complete-transfer, conference, redirect, digits, pickup or park"
            )));
        }
    };
    Ok(Json(run(&state, &caller, command).await?))
}

/// An action body that must be empty or `{}`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoBody {}

#[utoipa::path(put, path = "/api/v1/lines/{id}/forwards", tag = "lines",
    params(("id" = u32, Path)), request_body = ForwardsBody,
    responses((status = 200, body = CommandResultDto), (status = 404, body = ErrorDto),
        (status = 422, body = ErrorDto)))]
pub(crate) async fn set_forwards(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ForwardsBody>,
) -> Result<Json<CommandResultDto>, ApiError> {
    let line = parse_id(&id, "line")?;
    Ok(Json(
        run(
            &state,
            &caller,
            CommandDto::SetForwards {
                line,
                forwards: body.forwards,
            },
        )
        .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/lines/{id}/dnd", tag = "lines",
    params(("id" = u32, Path)), request_body = DndBody,
    responses((status = 200, body = CommandResultDto), (status = 404, body = ErrorDto)))]
pub(crate) async fn set_dnd(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DndBody>,
) -> Result<Json<CommandResultDto>, ApiError> {
    let line = parse_id(&id, "line")?;
    Ok(Json(
        run(
            &state,
            &caller,
            CommandDto::SetDnd {
                line,
                enabled: body.enabled,
            },
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/lines/{id}/pickup", tag = "calls",
    params(("id" = u32, Path, description = "The line that takes the call")),
    request_body = PickupOntoLineBody,
    responses((status = 200, body = CommandResultDto), (status = 409, body = ErrorDto)))]
pub(crate) async fn pickup_onto_line(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PickupOntoLineBody>,
) -> Result<Json<CommandResultDto>, ApiError> {
    let line = parse_id(&id, "line")?;
    let command = CommandDto::Pickup {
        line,
        call: body.call,
        from_line: body.from_line,
    };
    Ok(Json(run(&state, &caller, command).await?))
}

#[utoipa::path(post, path = "/api/v1/lines/{id}/unpark", tag = "calls",
    params(("id" = u32, Path, description = "The line that takes the parked call")),
    request_body = UnparkBody,
    responses((status = 200, body = CommandResultDto), (status = 404, body = ErrorDto),
        (status = 409, body = ErrorDto)))]
pub(crate) async fn unpark(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UnparkBody>,
) -> Result<Json<CommandResultDto>, ApiError> {
    let line = parse_id(&id, "line")?;
    let command = CommandDto::Unpark {
        line,
        from: body.from,
    };
    Ok(Json(run(&state, &caller, command).await?))
}

#[utoipa::path(post, path = "/api/v1/lines/{id}/sim", tag = "simulator",
    params(("id" = u32, Path)), request_body = SimActionDto,
    responses((status = 200, body = CommandResultDto), (status = 501, body = ErrorDto)))]
pub(crate) async fn simulate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(action): JsonBody<SimActionDto>,
) -> Result<Json<CommandResultDto>, ApiError> {
    let line = parse_id(&id, "line")?;
    Ok(Json(
        run(&state, &caller, CommandDto::sim(line, action)).await?,
    ))
}
