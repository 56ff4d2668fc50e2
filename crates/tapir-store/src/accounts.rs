//! Users, API tokens, teams, line assignments and the audit log.
//!
//! Secrets never reach this module in clear: passwords arrive as argon2 PHC strings and
//! tokens as hashes of their secret part.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use tapir_model::{LineId, Relation, Right, Role};

use crate::{Store, StoreError, sql};

/// Seconds since the Unix epoch.
pub type Seconds = i64;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    /// `None` only for administrators of every tenant.
    pub tenant: Option<String>,
    pub role: Role,
    pub friendly_name: String,
    /// The argon2 PHC string; `None` when the account cannot log in with a password.
    pub password_hash: Option<String>,
    /// May dial and hang up where an instance reserves that to authorised users.
    pub may_dial: bool,
    pub created_at: Seconds,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub tenant: Option<&'a str>,
    pub role: Role,
    pub friendly_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub may_dial: bool,
    pub created_at: Seconds,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// `Some(None)` removes the password.
    pub password_hash: Option<Option<String>>,
    pub friendly_name: Option<String>,
    pub may_dial: Option<bool>,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A long-lived token for an application, made by an administrator.
    Api,
    /// Made by a password login; expires.
    Session,
    /// The server's own token for the CLI on the same machine; replaced at every start.
    Local,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
            TokenKind::Local => "local",
        }
    }

    fn parse(word: &str) -> TokenKind {
        match word {
            "session" => TokenKind::Session,
            "local" => TokenKind::Local,
            _ => TokenKind::Api,
        }
    }
}

/// A token as stored (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub user_id: i64,
    pub label: String,
    pub kind: TokenKind,
    pub secret_hash: Vec<u8>,
    pub created_at: Seconds,
    pub expires_at: Option<Seconds>,
    pub revoked_at: Option<Seconds>,
}

/// A new token.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub user_id: i64,
    pub label: &'a str,
    pub kind: TokenKind,
    pub secret_hash: &'a [u8],
    pub created_at: Seconds,
    pub expires_at: Option<Seconds>,
}

/// A team: members get `member_right` on each other's own lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRecord {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub member_right: Right,
    /// Member user ids.
    pub members: Vec<i64>,
}

/// A line a user has directly (own or assigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub user_id: i64,
    pub line: LineId,
    pub relation: Relation,
    pub right: Right,
}

/// A line a user has, directly or through a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub line: LineId,
    pub relation: Relation,
    pub right: Right,
}

/// One control action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub user: String,
    pub tenant: Option<String>,
    pub action: String,
    pub line: Option<LineId>,
    pub call: Option<u64>,
    /// `ok`, or the error's kind.
    pub result: String,
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery<'a> {
    /// Only this tenant's entries.
    pub tenant: Option<&'a str>,
    pub line: Option<LineId>,
    pub user: Option<&'a str>,
    pub limit: usize,
}

const USER_COLUMNS: &str =
    "id, name, tenant, role, friendly_name, password_hash, may_dial, created_at";

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    let role: String = row.get(3)?;
    Ok(UserRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        tenant: row.get(2)?,
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::User
        },
        friendly_name: row.get(4)?,
        password_hash: row.get(5)?,
        may_dial: row.get(6)?,
        created_at: row.get(7)?,
    })
}

fn token_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let kind: String = row.get(3)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        user_id: row.get(1)?,
        label: row.get(2)?,
        kind: TokenKind::parse(&kind),
        secret_hash: row.get(4)?,
        created_at: row.get(5)?,
        expires_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

fn right_of(word: &str) -> Right {
    word.parse().unwrap_or(Right::None)
}

fn line_of(id: i64) -> Result<LineId, StoreError> {
    u32::try_from(id)
        .map(LineId)
        .map_err(|_| StoreError::IdsExhausted(id))
}

/// A unique-key violation becomes a conflict that names what exists already.
fn unique(what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| match source {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(what)
        }
        source => StoreError::Sql {
            context: "writing an account",
            source,
        },
    }
}

impl Store {
    pub fn create_user(&mut self, user: &NewUser<'_>) -> Result<UserRecord, StoreError> {
        self.conn
            .execute(
                "INSERT INTO users (name, tenant, role, friendly_name, password_hash, may_dial, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    user.name,
                    user.tenant,
                    user.role.as_str(),
                    user.friendly_name,
                    user.password_hash,
                    user.may_dial,
                    user.created_at
                ],
            )
            .map_err(unique(format!("a user named {:?} exists already", user.name)))?;
        let id = self.conn.last_insert_rowid();
        self.user(id)?
            .ok_or(StoreError::Conflict(format!("user {id} vanished")))
    }

    pub fn user(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                params![id],
                user_row,
            )
            .optional()
            .map_err(sql("reading a user"))
    }

    /// The user named `name` (names compare without case).
    pub fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                params![name],
                user_row,
            )
            .optional()
            .map_err(sql("reading a user"))
    }

    /// Every user, or those of one tenant, by name.
    pub fn users(&self, tenant: Option<&str>) -> Result<Vec<UserRecord>, StoreError> {
        let mut query = self
            .conn
            .prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE ?1 IS NULL OR tenant = ?1 ORDER BY name"
            ))
            .map_err(sql("preparing the user list"))?;
        let rows = query
            .query_map(params![tenant], user_row)
            .map_err(sql("listing users"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("reading a user"))
    }

    pub fn change_user(&mut self, id: i64, change: &UserChange) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("starting a transaction"))?;
        let found = tx
            .query_row("SELECT 1 FROM users WHERE id = ?1", params![id], |_| Ok(()))
            .optional()
            .map_err(sql("finding a user"))?
            .is_some();
        if let Some(hash) = &change.password_hash {
            tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![id, hash],
            )
            .map_err(sql("setting a password"))?;
        }
        if let Some(name) = &change.friendly_name {
            tx.execute(
                "UPDATE users SET friendly_name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map_err(sql("setting a friendly name"))?;
        }
        if let Some(may_dial) = change.may_dial {
            tx.execute(
                "UPDATE users SET may_dial = ?2 WHERE id = ?1",
                params![id, may_dial],
            )
            .map_err(sql("setting the dial right"))?;
        }
        tx.commit().map_err(sql("committing a user change"))?;
        Ok(found)
    }

    /// Deletes a user with its tokens, assignments and team memberships.
    pub fn delete_user(&mut self, id: i64) -> Result<bool, StoreError> {
        let deleted = self
            .conn
            .execute("DELETE FROM users WHERE id = ?1", params![id])
            .map_err(sql("deleting a user"))?;
        Ok(deleted > 0)
    }

    pub fn admin_count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM users WHERE role = 'admin'",
                [],
                |row| row.get(0),
            )
            .map_err(sql("counting administrators"))
    }

    pub fn create_token(&mut self, token: &NewToken<'_>) -> Result<TokenRecord, StoreError> {
        self.conn
            .execute(
                "INSERT INTO tokens (user_id, label, kind, secret_hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.user_id,
                    token.label,
                    token.kind.as_str(),
                    token.secret_hash,
                    token.created_at,
                    token.expires_at
                ],
            )
            .map_err(sql("creating a token"))?;
        let id = self.conn.last_insert_rowid();
        self.token(id)?
            .ok_or(StoreError::Conflict(format!("token {id} vanished")))
    }

    pub fn token(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, user_id, label, kind, secret_hash, created_at, expires_at, revoked_at
                 FROM tokens WHERE id = ?1",
                params![id],
                token_row,
            )
            .optional()
            .map_err(sql("reading a token"))
    }

    /// The tokens of one user, or of everybody, oldest first.
    pub fn tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenRecord>, StoreError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT id, user_id, label, kind, secret_hash, created_at, expires_at, revoked_at
                 FROM tokens WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id",
            )
            .map_err(sql("preparing the token list"))?;
        let rows = query
            .query_map(params![user_id], token_row)
            .map_err(sql("listing tokens"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("reading a token"))
    }

    /// Revokes one token; false when it does not exist or was revoked already.
    pub fn revoke_token(&mut self, id: i64, at: Seconds) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )
            .map_err(sql("revoking a token"))?;
        Ok(changed > 0)
    }

    /// Revokes every live token of `kind` that `user_id` has.
    pub fn revoke_tokens_of_kind(
        &mut self,
        user_id: i64,
        kind: TokenKind,
        at: Seconds,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE tokens SET revoked_at = ?3
                 WHERE user_id = ?1 AND kind = ?2 AND revoked_at IS NULL",
                params![user_id, kind.as_str(), at],
            )
            .map_err(sql("revoking tokens"))
    }

    pub fn create_team(
        &mut self,
        tenant: &str,
        name: &str,
        member_right: Right,
    ) -> Result<TeamRecord, StoreError> {
        self.conn
            .execute(
                "INSERT INTO teams (tenant, name, member_right) VALUES (?1, ?2, ?3)",
                params![tenant, name, member_right.as_str()],
            )
            .map_err(unique(format!(
                "tenant {tenant:?} has a team named {name:?} already"
            )))?;
        Ok(TeamRecord {
            id: self.conn.last_insert_rowid(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            member_right,
            members: Vec::new(),
        })
    }

    pub fn delete_team(&mut self, id: i64) -> Result<bool, StoreError> {
        let deleted = self
            .conn
            .execute("DELETE FROM teams WHERE id = ?1", params![id])
            .map_err(sql("deleting a team"))?;
        Ok(deleted > 0)
    }

    pub fn set_team_right(&mut self, id: i64, right: Right) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE teams SET member_right = ?2 WHERE id = ?1",
                params![id, right.as_str()],
            )
            .map_err(sql("setting a team's right"))?;
        Ok(changed > 0)
    }

    /// Adds (`member` true) or removes a team member.
    pub fn set_team_member(
        &mut self,
        team: i64,
        user: i64,
        member: bool,
    ) -> Result<(), StoreError> {
        let statement = if member {
            "INSERT OR IGNORE INTO team_members (team_id, user_id) VALUES (?1, ?2)"
        } else {
            "DELETE FROM team_members WHERE team_id = ?1 AND user_id = ?2"
        };
        self.conn
            .execute(statement, params![team, user])
            .map_err(sql("changing a team's members"))?;
        Ok(())
    }

    /// Every team, or those of one tenant, with their members.
    pub fn teams(&self, tenant: Option<&str>) -> Result<Vec<TeamRecord>, StoreError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT t.id, t.tenant, t.name, t.member_right, m.user_id
                 FROM teams t LEFT JOIN team_members m ON m.team_id = t.id
                 WHERE ?1 IS NULL OR t.tenant = ?1 ORDER BY t.name, m.user_id",
            )
            .map_err(sql("preparing the team list"))?;
        let rows = query
            .query_map(params![tenant], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(sql("listing teams"))?;
        let mut teams: Vec<TeamRecord> = Vec::new();
        for row in rows {
            let (id, tenant, name, right, member) = row.map_err(sql("reading a team"))?;
            if teams.last().is_none_or(|t| t.id != id) {
                teams.push(TeamRecord {
                    id,
                    tenant,
                    name,
                    member_right: right_of(&right),
                    members: Vec::new(),
                });
            }
            if let (Some(team), Some(member)) = (teams.last_mut(), member) {
                team.members.push(member);
            }
        }
        Ok(teams)
    }

    /// Gives `user` the line (replacing an earlier relation to it).
    pub fn assign(&mut self, assignment: Assignment) -> Result<(), StoreError> {
        assign_in(&self.conn, assignment)
    }

    /// Takes the line from `user`; false when the user did not have it.
    pub fn unassign(&mut self, user_id: i64, line: LineId) -> Result<bool, StoreError> {
        let deleted = self
            .conn
            .execute(
                "DELETE FROM line_assignments WHERE user_id = ?1 AND line_id = ?2",
                params![user_id, line.0],
            )
            .map_err(sql("removing an assignment"))?;
        Ok(deleted > 0)
    }

    /// The direct assignments of one user, or of everybody, by user and line.
    pub fn assignments(&self, user_id: Option<i64>) -> Result<Vec<Assignment>, StoreError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT user_id, line_id, relation, right FROM line_assignments
                 WHERE ?1 IS NULL OR user_id = ?1 ORDER BY user_id, line_id",
            )
            .map_err(sql("preparing the assignment list"))?;
        let rows = query
            .query_map(params![user_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(sql("listing assignments"))?;
        let mut assignments = Vec::new();
        for row in rows {
            let (user_id, line, relation, right) = row.map_err(sql("reading an assignment"))?;
            assignments.push(Assignment {
                user_id,
                line: line_of(line)?,
                relation: relation.parse().unwrap_or(Relation::Assigned),
                right: right_of(&right),
            });
        }
        Ok(assignments)
    }

    /// Every line `user_id` has: own and assigned lines, and teammates' own lines with the
    /// team's right. A line may appear more than once, by different relations.
    pub fn grants(&self, user_id: i64) -> Result<Vec<Grant>, StoreError> {
        let mut query = self
            .conn
            .prepare(
                "SELECT line_id, relation, right FROM line_assignments WHERE user_id = ?1
                 UNION ALL
                 SELECT a.line_id, 'team', t.member_right
                 FROM team_members me
                 JOIN teams t ON t.id = me.team_id
                 JOIN team_members mate ON mate.team_id = me.team_id AND mate.user_id != me.user_id
                 JOIN line_assignments a ON a.user_id = mate.user_id AND a.relation = 'own'
                 WHERE me.user_id = ?1",
            )
            .map_err(sql("preparing the grant query"))?;
        let rows = query
            .query_map(params![user_id], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(sql("reading grants"))?;
        let mut grants = Vec::new();
        for row in rows {
            let (line, relation, right) = row.map_err(sql("reading a grant"))?;
            grants.push(Grant {
                line: line_of(line)?,
                relation: relation.parse().unwrap_or(Relation::Assigned),
                right: right_of(&right),
            });
        }
        Ok(grants)
    }

    /// Applies a whole batch of assignment changes in one transaction: users to create,
    /// users whose assignments are cleared first, lines to give and lines to take. Nothing is
    /// changed when any step fails.
    pub fn apply_assignments(&mut self, batch: &AssignmentBatch<'_>) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("starting a transaction"))?;
        apply_batch(&tx, batch)?;
        tx.commit().map_err(sql("committing assignments"))
    }

    pub fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("starting a transaction"))?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO audit (at_ms, user, tenant, action, line, call, result)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql("preparing the audit insert"))?;
            for entry in entries {
                insert
                    .execute(params![
                        entry.at_ms,
                        entry.user,
                        entry.tenant,
                        entry.action,
                        entry.line.map(|l| l.0),
                        entry.call.and_then(|c| i64::try_from(c).ok()),
                        entry.result
                    ])
                    .map_err(sql("writing the audit log"))?;
            }
        }
        tx.commit().map_err(sql("committing the audit log"))
    }

    /// Audit entries, newest first.
    pub fn audit(&self, query: &AuditQuery<'_>) -> Result<Vec<AuditEntry>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT at_ms, user, tenant, action, line, call, result FROM audit
                 WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR line = ?2)
                   AND (?3 IS NULL OR user = ?3)
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(sql("preparing the audit query"))?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(
                params![query.tenant, query.line.map(|l| l.0), query.user, limit],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                        row.get::<_, Option<i64>>(5)?,
                        row.get::<_, String>(6)?,
                    ))
                },
            )
            .map_err(sql("reading the audit log"))?;
        let mut entries = Vec::new();
        for row in rows {
            let (at_ms, user, tenant, action, line, call, result) =
                row.map_err(sql("reading an audit entry"))?;
            entries.push(AuditEntry {
                at_ms,
                user,
                tenant,
                action,
                line: line.map(line_of).transpose()?,
                call: call.and_then(|c| u64::try_from(c).ok()),
                result,
            });
        }
        Ok(entries)
    }
}

/// Assignment changes applied together (a tsecimp import).
#[derive(Debug, Clone, Default)]
pub struct AssignmentBatch<'a> {
    pub new_users: Vec<NewUser<'a>>,
    /// (user name, friendly name) to set on existing users.
    pub friendly_names: Vec<(&'a str, &'a str)>,
    /// Users (by name) whose assigned lines are all removed before lines are given (own
    /// lines stay: they are not assignments).
    pub cleared: Vec<&'a str>,
    /// (user name, line, relation, right) to give.
    pub give: Vec<(&'a str, LineId, Relation, Right)>,
    /// (user name, line) to take, when it is assigned (not own).
    pub take: Vec<(&'a str, LineId)>,
}

fn user_id_in(tx: &Transaction<'_>, name: &str) -> Result<i64, StoreError> {
    tx.query_row(
        "SELECT id FROM users WHERE name = ?1",
        params![name],
        |row| row.get(0),
    )
    .optional()
    .map_err(sql("finding a user"))?
    .ok_or_else(|| StoreError::Conflict(format!("no user named {name:?}")))
}

fn apply_batch(tx: &Transaction<'_>, batch: &AssignmentBatch<'_>) -> Result<(), StoreError> {
    for user in &batch.new_users {
        tx.execute(
            "INSERT INTO users (name, tenant, role, friendly_name, password_hash, may_dial, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                user.name,
                user.tenant,
                user.role.as_str(),
                user.friendly_name,
                user.password_hash,
                user.may_dial,
                user.created_at
            ],
        )
        .map_err(unique(format!("a user named {:?} exists already", user.name)))?;
    }
    for (name, friendly) in &batch.friendly_names {
        tx.execute(
            "UPDATE users SET friendly_name = ?2 WHERE name = ?1",
            params![name, friendly],
        )
        .map_err(sql("setting a friendly name"))?;
    }
    for name in &batch.cleared {
        let user = user_id_in(tx, name)?;
        tx.execute(
            "DELETE FROM line_assignments WHERE user_id = ?1 AND relation = 'assigned'",
            params![user],
        )
        .map_err(sql("clearing assignments"))?;
    }
    for (name, line) in &batch.take {
        let user = user_id_in(tx, name)?;
        tx.execute(
            "DELETE FROM line_assignments
             WHERE user_id = ?1 AND line_id = ?2 AND relation = 'assigned'",
            params![user, line.0],
        )
        .map_err(sql("removing an assignment"))?;
    }
    for (name, line, relation, right) in &batch.give {
        let user_id = user_id_in(tx, name)?;
        let own: Option<String> = tx
            .query_row(
                "SELECT relation FROM line_assignments
                 WHERE user_id = ?1 AND line_id = ?2 AND relation = 'own'",
                params![user_id, line.0],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql("reading an assignment"))?;
        if own.is_some() {
            continue;
        }
        assign_in(
            tx,
            Assignment {
                user_id,
                line: *line,
                relation: *relation,
                right: *right,
            },
        )?;
    }
    Ok(())
}

fn assign_in(conn: &rusqlite::Connection, assignment: Assignment) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO line_assignments (user_id, line_id, relation, right) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id, line_id) DO UPDATE SET relation = ?3, right = ?4",
        params![
            assignment.user_id,
            assignment.line.0,
            assignment.relation.as_str(),
            assignment.right.as_str()
        ],
    )
    .map_err(|source| match source {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(format!(
                "line {} or user {} does not exist",
                assignment.line, assignment.user_id
            ))
        }
        source => StoreError::Sql {
            context: "assigning a line",
            source,
        },
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceIdentity;

    fn user<'a>(name: &'a str, tenant: Option<&'a str>) -> NewUser<'a> {
        NewUser {
            name,
            tenant,
            role: Role::User,
            friendly_name: "",
            password_hash: None,
            may_dial: true,
            created_at: 0,
        }
    }

    fn store_with_lines(count: usize) -> (Store, Vec<LineId>) {
        let mut store = Store::open_in_memory().unwrap();
        let keys: Vec<String> = (0..count).map(|n| format!("{}", 201 + n)).collect();
        let devices: Vec<DeviceIdentity<'_>> = keys
            .iter()
            .map(|k| DeviceIdentity {
                key: k,
                address: k,
                name: k,
            })
            .collect();
        let ids = store.line_ids("pbx", &devices).unwrap();
        (store, ids)
    }

    fn assign(store: &mut Store, user_id: i64, line: LineId, relation: Relation, right: Right) {
        store
            .assign(Assignment {
                user_id,
                line,
                relation,
                right,
            })
            .unwrap();
    }

    #[test]
    fn names_are_unique_without_case() {
        let mut store = Store::open_in_memory().unwrap();
        store.create_user(&user("Alice", Some("acme"))).unwrap();
        let err = store
            .create_user(&user("alice", Some("globex")))
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(store.user_by_name("ALICE").unwrap().unwrap().name, "Alice");
    }

    #[test]
    fn grants_include_teammates_own_lines_with_the_team_right() {
        let (mut store, lines) = store_with_lines(3);
        let alice = store.create_user(&user("alice", Some("acme"))).unwrap().id;
        let bob = store.create_user(&user("bob", Some("acme"))).unwrap().id;
        assign(&mut store, alice, lines[0], Relation::Own, Right::Control);
        assign(&mut store, bob, lines[1], Relation::Own, Right::Control);
        assign(
            &mut store,
            bob,
            lines[2],
            Relation::Assigned,
            Right::Control,
        );
        let team = store.create_team("acme", "sales", Right::Monitor).unwrap();
        store.set_team_member(team.id, alice, true).unwrap();
        store.set_team_member(team.id, bob, true).unwrap();

        let grants = store.grants(alice).unwrap();
        assert!(grants.contains(&Grant {
            line: lines[1],
            relation: Relation::Team,
            right: Right::Monitor
        }));
        assert!(
            !grants.iter().any(|g| g.line == lines[2]),
            "a teammate's assigned line is not a team line: {grants:?}"
        );
        store.set_team_right(team.id, Right::Control).unwrap();
        assert!(store.grants(alice).unwrap().contains(&Grant {
            line: lines[1],
            relation: Relation::Team,
            right: Right::Control
        }));
        let teams = store.teams(Some("acme")).unwrap();
        assert_eq!(teams[0].members, vec![alice, bob]);
    }

    #[test]
    fn purging_a_line_or_deleting_a_user_removes_its_assignments() {
        let (mut store, lines) = store_with_lines(2);
        let alice = store.create_user(&user("alice", Some("acme"))).unwrap().id;
        assign(
            &mut store,
            alice,
            lines[0],
            Relation::Assigned,
            Right::Monitor,
        );
        assign(
            &mut store,
            alice,
            lines[1],
            Relation::Assigned,
            Right::Control,
        );
        store.purge(&[lines[0]]).unwrap();
        assert_eq!(store.assignments(Some(alice)).unwrap().len(), 1);
        store.delete_user(alice).unwrap();
        assert!(store.assignments(None).unwrap().is_empty());
        let err = store
            .assign(Assignment {
                user_id: 999,
                line: lines[1],
                relation: Relation::Own,
                right: Right::Control,
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    }

    #[test]
    fn a_failing_batch_changes_nothing_and_own_lines_survive_a_clear() {
        let (mut store, lines) = store_with_lines(2);
        let alice = store.create_user(&user("alice", Some("acme"))).unwrap().id;
        assign(&mut store, alice, lines[0], Relation::Own, Right::Control);
        assign(
            &mut store,
            alice,
            lines[1],
            Relation::Assigned,
            Right::Control,
        );
        let failing = AssignmentBatch {
            new_users: vec![user("carol", Some("acme"))],
            cleared: vec!["alice"],
            give: vec![("nobody", lines[0], Relation::Assigned, Right::Control)],
            ..AssignmentBatch::default()
        };
        assert!(store.apply_assignments(&failing).is_err());
        assert!(store.user_by_name("carol").unwrap().is_none());
        assert_eq!(store.assignments(Some(alice)).unwrap().len(), 2);

        let clearing = AssignmentBatch {
            cleared: vec!["alice"],
            give: vec![("alice", lines[0], Relation::Assigned, Right::Monitor)],
            ..AssignmentBatch::default()
        };
        store.apply_assignments(&clearing).unwrap();
        let left = store.assignments(Some(alice)).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].relation, left[0].right),
            (Relation::Own, Right::Control),
            "an import neither clears nor downgrades an own line"
        );
    }

    #[test]
    fn tokens_are_revoked_once_and_by_kind() {
        let mut store = Store::open_in_memory().unwrap();
        let alice = store.create_user(&user("alice", None)).unwrap().id;
        let token = |kind| NewToken {
            user_id: alice,
            label: "t",
            kind,
            secret_hash: b"hash",
            created_at: 1,
            expires_at: None,
        };
        let api = store.create_token(&token(TokenKind::Api)).unwrap();
        let local = store.create_token(&token(TokenKind::Local)).unwrap();
        assert_eq!(
            store
                .revoke_tokens_of_kind(alice, TokenKind::Local, 5)
                .unwrap(),
            1
        );
        assert_eq!(store.token(local.id).unwrap().unwrap().revoked_at, Some(5));
        assert!(store.token(api.id).unwrap().unwrap().revoked_at.is_none());
        assert!(store.revoke_token(api.id, 6).unwrap());
        assert!(!store.revoke_token(api.id, 7).unwrap(), "revoked already");
    }

    #[test]
    fn the_audit_log_is_read_newest_first_per_tenant() {
        let mut store = Store::open_in_memory().unwrap();
        let entry = |at_ms, tenant: &str| AuditEntry {
            at_ms,
            user: "alice".into(),
            tenant: Some(tenant.into()),
            action: "make_call".into(),
            line: Some(LineId(1)),
            call: Some(7),
            result: "ok".into(),
        };
        store
            .append_audit(&[entry(1, "acme"), entry(2, "globex"), entry(3, "acme")])
            .unwrap();
        let acme = store
            .audit(&AuditQuery {
                tenant: Some("acme"),
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(acme.iter().map(|e| e.at_ms).collect::<Vec<_>>(), vec![3, 1]);
    }
}
