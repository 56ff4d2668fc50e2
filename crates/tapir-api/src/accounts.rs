//! Accounts endpoints: login, users, tokens, teams, line assignments, tsecimp and the audit
//! log. The rules (who may manage whom) live in `tapir_access`; this module only translates.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tapir_access::{
    Assignment, AuditEntry, IssuedToken, TeamRecord, TokenRecord, UserChange, UserRecord,
    UserRequest,
};
use tapir_model::{LineId, Relation, Right, Role};
use tapir_wire::{
    AssignBody, AssignmentDto, AuditDto, ErrorDto, IssuedTokenDto, LineRightDto, LoginBody,
    LoginDto, MeDto, NewTeamBody, NewTokenBody, NewUserBody, PasswordBody, TeamDto, TeamRightBody,
    TokenDto, TsecimpResultDto, UserDto, UserPatchBody,
};

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::rest::{JsonBody, gate, parse_id};

/// The client's address, when the server knows it (for limiting failed logins).
pub(crate) struct ClientAddress(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientAddress(address))
    }
}

fn word<T: std::str::FromStr<Err = tapir_model::UnknownWord>>(
    text: Option<&str>,
    default: T,
) -> Result<T, ApiError> {
    text.map_or(Ok(default), |t| {
        t.parse()
            .map_err(|e: tapir_model::UnknownWord| ApiError::Unprocessable(e.to_string()))
    })
}

pub(crate) fn user_dto(user: &UserRecord) -> UserDto {
    UserDto {
        name: user.name.clone(),
        tenant: user.tenant.clone(),
        role: user.role.as_str().into(),
        friendly_name: user.friendly_name.clone(),
        may_dial: user.may_dial,
        has_password: user.password_hash.is_some(),
        created_at: user.created_at,
    }
}

fn token_dto(token: &TokenRecord, user: &str) -> TokenDto {
    TokenDto {
        id: token.id,
        user: user.to_owned(),
        label: token.label.clone(),
        kind: token.kind.as_str().into(),
        created_at: token.created_at,
        expires_at: token.expires_at,
        revoked_at: token.revoked_at,
    }
}

fn issued_dto(issued: &IssuedToken, user: &str) -> IssuedTokenDto {
    IssuedTokenDto {
        token: issued.token.expose(),
        info: token_dto(&issued.record, user),
    }
}

#[utoipa::path(post, path = "/api/v1/login", tag = "accounts", request_body = LoginBody,
    security(()),
    responses((status = 200, body = LoginDto), (status = 401, body = ErrorDto),
        (status = 429, body = ErrorDto, description = "Too many failed logins")))]
pub(crate) async fn login(
    State(state): State<ApiState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<LoginDto>, ApiError> {
    let (issued, user) = state
        .accounts
        .login(&body.user, &body.password, address)
        .await?;
    Ok(Json(LoginDto {
        token: issued.token.expose(),
        expires_at: issued.record.expires_at,
        user: user_dto(&user),
    }))
}

#[utoipa::path(post, path = "/api/v1/logout", tag = "accounts",
    responses((status = 204, description = "The token used is revoked")))]
pub(crate) async fn logout(
    State(state): State<ApiState>,
    Caller(caller): Caller,
) -> Result<StatusCode, ApiError> {
    state.accounts.logout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    responses((status = 200, body = MeDto), (status = 401, body = ErrorDto)))]
pub(crate) async fn me(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<MeDto>, ApiError> {
    let user = state.accounts.user_named(&caller.0, &caller.0.name).await?;
    let snapshot = state.engine.snapshot().await?;
    let gate = gate(&state, &caller, &snapshot.instances);
    let lines = snapshot
        .lines
        .iter()
        .filter_map(|l| {
            let right = gate.line_right(l);
            (right > Right::None).then(|| LineRightDto {
                line: l.line.id.0,
                right: right.as_str().into(),
            })
        })
        .collect();
    Ok(Json(MeDto {
        user: user_dto(&user),
        lines,
    }))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "accounts",
    responses((status = 200, body = [UserDto])))]
pub(crate) async fn users(
    State(state): State<ApiState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<UserDto>>, ApiError> {
    let users = state.accounts.users(&caller).await?;
    Ok(Json(users.iter().map(user_dto).collect()))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = NewUserBody,
    responses((status = 201, body = UserDto), (status = 403, body = ErrorDto),
        (status = 409, body = ErrorDto), (status = 422, body = ErrorDto)))]
pub(crate) async fn create_user(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<NewUserBody>,
) -> Result<Response, ApiError> {
    let request = UserRequest {
        name: body.name,
        tenant: body.tenant,
        role: word(body.role.as_deref(), Role::User)?,
        friendly_name: body.friendly_name.unwrap_or_default(),
        password: body.password,
        may_dial: body.may_dial.unwrap_or(true),
    };
    let user = state.accounts.create_user(&caller, request).await?;
    Ok((StatusCode::CREATED, Json(user_dto(&user))).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "accounts",
    params(("name" = String, Path)),
    responses((status = 200, body = UserDto), (status = 404, body = ErrorDto)))]
pub(crate) async fn user(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<UserDto>, ApiError> {
    Ok(Json(user_dto(
        &state.accounts.user_named(&caller, &name).await?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "accounts",
    params(("name" = String, Path)), request_body = UserPatchBody,
    responses((status = 200, body = UserDto), (status = 403, body = ErrorDto),
        (status = 404, body = ErrorDto)))]
pub(crate) async fn change_user(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UserPatchBody>,
) -> Result<Json<UserDto>, ApiError> {
    let change = UserChange {
        password_hash: None,
        friendly_name: body.friendly_name,
        may_dial: body.may_dial,
    };
    let user = state.accounts.change_user(&caller, &name, change).await?;
    Ok(Json(user_dto(&user)))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "accounts",
    params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorDto), (status = 404, body = ErrorDto)))]
pub(crate) async fn delete_user(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_user(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "accounts",
    params(("name" = String, Path)), request_body = PasswordBody,
    responses((status = 204), (status = 403, body = ErrorDto), (status = 422, body = ErrorDto)))]
pub(crate) async fn set_password(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .set_password(&caller, &name, body.password.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/users/{name}/lines/{line}", tag = "accounts",
    params(("name" = String, Path), ("line" = u32, Path)), request_body = AssignBody,
    responses((status = 200, body = AssignmentDto), (status = 403, body = ErrorDto),
        (status = 404, body = ErrorDto)))]
pub(crate) async fn assign(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path((name, line)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<AssignmentDto>, ApiError> {
    let line = LineId(parse_id(&line, "line")?);
    let body: AssignBody = if body.iter().all(u8::is_ascii_whitespace) {
        AssignBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let relation = word(body.relation.as_deref(), Relation::Assigned)?;
    let right = word(body.right.as_deref(), Right::Control)?;
    if right == Right::None {
        return Err(ApiError::Unprocessable(
            "to take a line away, DELETE the assignment".into(),
        ));
    }
    state
        .accounts
        .assign(&caller, &name, line, relation, right)
        .await?;
    let right = if relation == Relation::Own {
        Right::Control
    } else {
        right
    };
    Ok(Json(AssignmentDto {
        user: name,
        line: line.0,
        relation: relation.as_str().into(),
        right: right.as_str().into(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}/lines/{line}", tag = "accounts",
    params(("name" = String, Path), ("line" = u32, Path)),
    responses((status = 204), (status = 404, body = ErrorDto)))]
pub(crate) async fn unassign(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path((name, line)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let line = LineId(parse_id(&line, "line")?);
    state.accounts.unassign(&caller, &name, line).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn assignment_dto((assignment, user): &(Assignment, String)) -> AssignmentDto {
    AssignmentDto {
        user: user.clone(),
        line: assignment.line.0,
        relation: assignment.relation.as_str().into(),
        right: assignment.right.as_str().into(),
    }
}

#[utoipa::path(get, path = "/api/v1/assignments", tag = "accounts",
    responses((status = 200, body = [AssignmentDto])))]
pub(crate) async fn assignments(
    State(state): State<ApiState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<AssignmentDto>>, ApiError> {
    let all = state.accounts.assignments(&caller).await?;
    Ok(Json(all.iter().map(assignment_dto).collect()))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "accounts",
    responses((status = 200, body = [TokenDto])))]
pub(crate) async fn tokens(
    State(state): State<ApiState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<TokenDto>>, ApiError> {
    let tokens = state.accounts.tokens(&caller).await?;
    Ok(Json(
        tokens.iter().map(|(t, user)| token_dto(t, user)).collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "accounts", request_body = NewTokenBody,
    responses((status = 201, body = IssuedTokenDto, description = "The only time the secret \
        is shown"), (status = 403, body = ErrorDto), (status = 404, body = ErrorDto)))]
pub(crate) async fn create_token(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<NewTokenBody>,
) -> Result<Response, ApiError> {
    let user = body.user.unwrap_or_else(|| caller.name.clone());
    let issued = state
        .accounts
        .create_token(&caller, &user, body.label, body.lifetime_s)
        .await?;
    Ok((StatusCode::CREATED, Json(issued_dto(&issued, &user))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "accounts",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorDto), (status = 409, body = ErrorDto)))]
pub(crate) async fn revoke_token(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "token")?;
    state.accounts.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn team_dto(state: &ApiState, caller: &Caller, team: &TeamRecord) -> TeamDto {
    let users = state.accounts.users(&caller.0).await.unwrap_or_default();
    TeamDto {
        name: team.name.clone(),
        tenant: team.tenant.clone(),
        member_right: team.member_right.as_str().into(),
        members: team
            .members
            .iter()
            .filter_map(|id| users.iter().find(|u| u.id == *id).map(|u| u.name.clone()))
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "accounts",
    responses((status = 200, body = [TeamDto])))]
pub(crate) async fn teams(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<TeamDto>>, ApiError> {
    let teams = state.accounts.teams(&caller.0).await?;
    let mut dtos = Vec::with_capacity(teams.len());
    for team in &teams {
        dtos.push(team_dto(&state, &caller, team).await);
    }
    Ok(Json(dtos))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "accounts", request_body = NewTeamBody,
    responses((status = 201, body = TeamDto), (status = 403, body = ErrorDto),
        (status = 409, body = ErrorDto)))]
pub(crate) async fn create_team(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewTeamBody>,
) -> Result<Response, ApiError> {
    let right = word(body.member_right.as_deref(), Right::Monitor)?;
    let team = state
        .accounts
        .create_team(&caller.0, body.tenant, body.name, right)
        .await?;
    let dto = team_dto(&state, &caller, &team).await;
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

#[utoipa::path(put, path = "/api/v1/teams/{name}", tag = "accounts",
    params(("name" = String, Path)), request_body = TeamRightBody,
    responses((status = 204), (status = 404, body = ErrorDto)))]
pub(crate) async fn set_team_right(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<TeamRightBody>,
) -> Result<StatusCode, ApiError> {
    let right = word(Some(&body.member_right), Right::Monitor)?;
    state.accounts.set_team_right(&caller, &name, right).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/teams/{name}", tag = "accounts",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorDto)))]
pub(crate) async fn delete_team(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.delete_team(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/teams/{name}/members/{user}", tag = "accounts",
    params(("name" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorDto), (status = 422, body = ErrorDto)))]
pub(crate) async fn add_member(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .set_team_member(&caller, &team, &user, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/teams/{name}/members/{user}", tag = "accounts",
    params(("name" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorDto)))]
pub(crate) async fn remove_member(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path((team, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .set_team_member(&caller, &team, &user, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the tsecimp endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantQuery {
    /// The tenant whose lines and users the file is about; default the caller's.
    tenant: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tsecimp", tag = "accounts", params(TenantQuery),
    responses((status = 200, description = "Microsoft tsecimp XML of the tenant's line \
        assignments", content_type = "application/xml")))]
pub(crate) async fn export_tsecimp(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    query: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let xml = state.accounts.export_tsecimp(&caller, query.tenant).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/tsecimp", tag = "accounts", params(TenantQuery),
    request_body(content = String, content_type = "application/xml",
        description = "A tsecimp `UserList`"),
    responses((status = 200, body = TsecimpResultDto),
        (status = 422, body = ErrorDto, description = "Each problem with its line and column; \
            nothing was imported")))]
pub(crate) async fn import_tsecimp(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    query: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Json<TsecimpResultDto>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("the file is not UTF-8: {e}")))?;
    let summary = state
        .accounts
        .import_tsecimp(&caller, query.tenant, text)
        .await?;
    Ok(Json(TsecimpResultDto {
        users_created: summary.users_created,
        lines_given: summary.lines_given,
        lines_taken: summary.lines_taken,
        users_cleared: summary.users_cleared,
    }))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    line: Option<u32>,
    user: Option<String>,
    /// Default 100, at most 10,000.
    limit: Option<usize>,
}

fn audit_dto(entry: &AuditEntry) -> AuditDto {
    AuditDto {
        at: entry.at_ms,
        user: entry.user.clone(),
        tenant: entry.tenant.clone(),
        action: entry.action.clone(),
        line: entry.line.map(|l| l.0),
        call: entry.call,
        result: entry.result.clone(),
    }
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "accounts", params(AuditParams),
    responses((status = 200, body = [AuditDto], description = "Newest first"),
        (status = 403, body = ErrorDto)))]
pub(crate) async fn audit(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    query: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditDto>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    let entries = state
        .accounts
        .audit(&caller, query.line.map(LineId), query.user, limit)
        .await?;
    Ok(Json(entries.iter().map(audit_dto).collect()))
}
