//! Accounts, tokens, teams, line assignments and the audit log as clients see them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An account. Passwords are never shown; `has_password` says whether it can log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserDto {
    pub name: String,
    /// `null` only for administrators of every tenant.
    pub tenant: Option<String>,
    /// `admin` or `user`.
    pub role: String,
    pub friendly_name: String,
    /// May dial and hang up where an instance reserves that to authorised users.
    pub may_dial: bool,
    pub has_password: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// `POST /users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub name: String,
    /// Default: the caller's tenant. Only administrators of every tenant may omit it for a
    /// new administrator that spans tenants.
    #[serde(default)]
    pub tenant: Option<String>,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// At least 8 characters; without one the account cannot log in with a password (an
    /// application that uses tokens).
    #[serde(default)]
    pub password: Option<String>,
    /// Default true.
    #[serde(default)]
    pub may_dial: Option<bool>,
}

/// `PATCH /users/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[serde(default)]
    pub friendly_name: Option<String>,
    #[serde(default)]
    pub may_dial: Option<bool>,
}

/// `PUT /users/{name}/password`: `null` removes the password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: Option<String>,
}

/// `POST /login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub user: String,
    pub password: String,
}

/// A token with its secret: shown once, when it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedTokenDto {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenDto,
}

/// What `POST /login` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginDto {
    pub token: String,
    /// Seconds since the Unix epoch.
    pub expires_at: Option<i64>,
    pub user: UserDto,
}

/// A token without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenDto {
    pub id: i64,
    pub user: String,
    pub label: String,
    /// `api`, `session` or `local`.
    pub kind: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// The token's user; default the caller.
    #[serde(default)]
    pub user: Option<String>,
    pub label: String,
    /// Seconds until it expires; default never.
    #[serde(default)]
    pub lifetime_s: Option<i64>,
}

/// A team: members get `member_right` on each other's own lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TeamDto {
    pub name: String,
    pub tenant: String,
    /// `none`, `monitor` or `control`.
    pub member_right: String,
    pub members: Vec<String>,
}

/// `POST /teams`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeamBody {
    pub name: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// Default `monitor`.
    #[serde(default)]
    pub member_right: Option<String>,
}

/// `PUT /teams/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRightBody {
    pub member_right: String,
}

/// A line a user has directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentDto {
    pub user: String,
    pub line: u32,
    /// `own` or `assigned`.
    pub relation: String,
    /// `monitor` or `control` (own lines are always `control`).
    pub right: String,
}

/// `PUT /users/{name}/lines/{line}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// `assigned` (default) or `own`.
    #[serde(default)]
    pub relation: Option<String>,
    /// `control` (default) or `monitor`.
    #[serde(default)]
    pub right: Option<String>,
}

/// What a tsecimp import changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct TsecimpResultDto {
    pub users_created: Vec<String>,
    pub lines_given: usize,
    pub lines_taken: usize,
    /// Users whose assigned lines were cleared first (`NoMerge`, or no `LineList`).
    pub users_cleared: Vec<String>,
}

/// One control action in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditDto {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub user: String,
    pub tenant: Option<String>,
    pub action: String,
    pub line: Option<u32>,
    pub call: Option<u64>,
    /// `ok`, or the error's name.
    pub result: String,
}

/// `GET /me`: the caller and the lines it may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeDto {
    pub user: UserDto,
    pub lines: Vec<LineRightDto>,
}

/// The caller's right on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineRightDto {
    pub line: u32,
    /// `monitor` or `control`.
    pub right: String,
}
