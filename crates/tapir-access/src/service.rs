//! [`Accounts`]: the service the API asks who a caller is and what the caller may manage.
//!
//! It owns its own connection to the store (SQLite serialises writers; the engine has the
//! other connection) and runs every query off the async workers. Every change to accounts,
//! rights or instance policies bumps a generation that open WebSocket sessions watch, so a
//! new assignment shows (or a revoked token ends a session) at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tapir_model::{LineId, Relation, Right, Role};
use tapir_store::{
    Assignment, AuditEntry, AuditQuery, NewToken, NewUser, Seconds, Store, TeamRecord, TokenKind,
    TokenRecord, UserChange, UserRecord,
};
use tokio::sync::{mpsc, watch};

use crate::error::AccessError;
use crate::limiter::LoginLimiter;
use crate::password;
use crate::policy::{InstancePolicy, Policies, Principal};
use crate::token::{self, BearerToken};

/// How long a password login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The user the server's own CLI token belongs to when no administrator exists yet.
pub const FIRST_ADMIN: &str = "admin";
/// Audit entries waiting to be written before writers wait.
const AUDIT_QUEUE: usize = 16_384;

/// A new account as an administrator asks for it.
#[derive(Debug, Clone)]
pub struct UserRequest {
    pub name: String,
    pub tenant: Option<String>,
    pub role: Role,
    pub friendly_name: String,
    pub password: Option<String>,
    pub may_dial: bool,
}

/// What a control action acted on, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditTarget {
    /// The tenant of the line's instance.
    pub tenant: Option<String>,
    pub line: Option<LineId>,
    pub call: Option<u64>,
}

/// A token just made: the only time its secret is seen.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: BearerToken,
    pub record: TokenRecord,
}

/// Accounts, tokens, teams, assignments and the audit log.
pub struct Accounts {
    store: Arc<Mutex<Store>>,
    generation: watch::Sender<u64>,
    policies: watch::Sender<Arc<Policies>>,
    limiter: Mutex<LoginLimiter>,
    audit: mpsc::Sender<AuditEntry>,
}

pub(crate) fn now_seconds() -> Seconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Never held across an await; a poisoned lock still guards consistent data because
    // every write is one SQL transaction.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn unauthenticated() -> AccessError {
    AccessError::Unauthenticated("invalid or expired credentials".into())
}

fn forbidden(what: &str) -> AccessError {
    AccessError::Forbidden(format!("only an administrator may {what}"))
}

impl Accounts {
    /// The service over `store`, with an audit writer task on the current runtime.
    pub fn start(store: Store, policies: Policies) -> Arc<Accounts> {
        let store = Arc::new(Mutex::new(store));
        let (audit, queue) = mpsc::channel(AUDIT_QUEUE);
        tokio::spawn(write_audit(store.clone(), queue));
        Arc::new(Accounts {
            store,
            generation: watch::Sender::new(0),
            policies: watch::Sender::new(Arc::new(policies)),
            limiter: Mutex::default(),
            audit,
        })
    }

    /// Runs `f` on the store off the async workers.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, AccessError> + Send + 'static,
    ) -> Result<T, AccessError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&store)))
            .await
            .map_err(|e| AccessError::Internal(format!("store task failed: {e}")))?
    }

    /// Runs a change and tells the watchers.
    pub(crate) async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, AccessError> + Send + 'static,
    ) -> Result<T, AccessError> {
        let result = self.with_store(f).await;
        self.bump();
        result
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Changes whenever accounts, rights or policies change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn policies(&self) -> Arc<Policies> {
        self.policies.borrow().clone()
    }

    /// The instances' policies after a start or a reload.
    pub fn set_policies(&self, policies: Policies) {
        self.policies.send_replace(Arc::new(policies));
        self.bump();
    }

    pub(crate) fn policy_of(&self, instance: &str) -> Option<InstancePolicy> {
        self.policies.borrow().get(instance).cloned()
    }

    /// Makes sure an administrator exists and issues a fresh token for the CLI on this
    /// machine, revoking the previous one.
    pub async fn issue_local_token(&self) -> Result<BearerToken, AccessError> {
        let secret = token::new_secret().map_err(|e| AccessError::Internal(e.to_string()))?;
        let hash = token::secret_hash(&secret);
        let id = self
            .change(move |store| {
                let admin = local_admin(store)?;
                let now = now_seconds();
                store.revoke_tokens_of_kind(admin.id, TokenKind::Local, now)?;
                let record = store.create_token(&NewToken {
                    user_id: admin.id,
                    label: "local CLI",
                    kind: TokenKind::Local,
                    secret_hash: &hash,
                    created_at: now,
                    expires_at: None,
                })?;
                Ok(record.id)
            })
            .await?;
        Ok(BearerToken::new(id, secret))
    }

    /// Who presents `text` as a bearer token.
    pub async fn authenticate(&self, text: &str) -> Result<Principal, AccessError> {
        let token = BearerToken::parse(text).ok_or_else(unauthenticated)?;
        self.with_store(move |store| {
            let record = store.token(token.id)?.ok_or_else(unauthenticated)?;
            let live = record.revoked_at.is_none()
                && record.expires_at.is_none_or(|at| at > now_seconds());
            if !live || !token.matches(&record.secret_hash) {
                return Err(unauthenticated());
            }
            let user = store.user(record.user_id)?.ok_or_else(unauthenticated)?;
            principal(store, user, record.id)
        })
        .await
    }

    /// Checks a password and opens a session. Failures are counted per user name and
    /// address, logged without the password, and answered alike whatever was wrong.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<(IssuedToken, UserRecord), AccessError> {
        if let Err(wait) = lock(&self.limiter).check(name, address, Instant::now()) {
            tracing::warn!(user = name, ?address, "login refused: too many failures");
            return Err(AccessError::RateLimited {
                seconds: wait.as_secs().max(1),
            });
        }
        let (name_owned, password_owned) = (name.to_owned(), password.to_owned());
        let user = self
            .with_store(move |store| {
                let user = store.user_by_name(&name_owned)?;
                let hash = user.as_ref().and_then(|u| u.password_hash.clone());
                let good = match &hash {
                    Some(hash) => password::verify(hash, &password_owned),
                    None => {
                        password::verify_nothing(&password_owned);
                        false
                    }
                };
                Ok(user.filter(|_| good))
            })
            .await?;
        let Some(user) = user else {
            lock(&self.limiter).failed(name, address, Instant::now());
            tracing::warn!(user = name, ?address, "login failed");
            return Err(unauthenticated());
        };
        lock(&self.limiter).succeeded(name);
        tracing::info!(user = %user.name, ?address, "login");
        let lifetime = i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let issued = self
            .issue(user.id, "login".into(), TokenKind::Session, Some(lifetime))
            .await?;
        Ok((issued, user))
    }

    /// Ends the session or revokes the token the caller used.
    pub async fn logout(&self, caller: &Principal) -> Result<(), AccessError> {
        let id = caller.token_id;
        self.change(move |store| {
            store
                .revoke_token(id, now_seconds())
                .map(|_| ())
                .map_err(Into::into)
        })
        .await
    }

    async fn issue(
        &self,
        user_id: i64,
        label: String,
        kind: TokenKind,
        lifetime: Option<Seconds>,
    ) -> Result<IssuedToken, AccessError> {
        let secret = token::new_secret().map_err(|e| AccessError::Internal(e.to_string()))?;
        let hash = token::secret_hash(&secret);
        // A new token changes nobody's rights: no need to wake the sessions.
        let record = self
            .with_store(move |store| {
                let now = now_seconds();
                Ok(store.create_token(&NewToken {
                    user_id,
                    label: &label,
                    kind,
                    secret_hash: &hash,
                    created_at: now,
                    expires_at: lifetime.map(|l| now.saturating_add(l)),
                })?)
            })
            .await?;
        Ok(IssuedToken {
            token: BearerToken::new(record.id, secret),
            record,
        })
    }

    /// The account named `name` as `caller` may see it: itself, or any account of a tenant
    /// it administers. Others are reported missing, not forbidden.
    pub async fn user_named(
        &self,
        caller: &Principal,
        name: &str,
    ) -> Result<UserRecord, AccessError> {
        let name_owned = name.to_owned();
        let user = self
            .with_store(move |store| Ok(store.user_by_name(&name_owned)?))
            .await?;
        user.filter(|u| may_see_user(caller, u))
            .ok_or_else(|| AccessError::NotFound(format!("no user {name:?}")))
    }

    pub async fn users(&self, caller: &Principal) -> Result<Vec<UserRecord>, AccessError> {
        let users = self.with_store(|store| Ok(store.users(None)?)).await?;
        Ok(users
            .into_iter()
            .filter(|u| may_see_user(caller, u))
            .collect())
    }

    pub async fn create_user(
        &self,
        caller: &Principal,
        request: UserRequest,
    ) -> Result<UserRecord, AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("create users"));
        }
        let tenant = match (&request.tenant, &caller.tenant) {
            (Some(t), Some(own)) if t != own => {
                return Err(AccessError::Forbidden(format!(
                    "you administer tenant {own:?} only"
                )));
            }
            (Some(t), _) => Some(t.clone()),
            (None, Some(own)) => Some(own.clone()),
            (None, None) if request.role == Role::Admin => None,
            (None, None) => {
                return Err(AccessError::Invalid(
                    "a user needs a tenant; only administrators may span tenants".into(),
                ));
            }
        };
        if let Some(t) = &tenant {
            validate_name("tenant", t)?;
        }
        validate_name("user", &request.name)?;
        let hash = hash_off_runtime(request.password.clone()).await?;
        self.change(move |store| {
            Ok(store.create_user(&NewUser {
                name: &request.name,
                tenant: tenant.as_deref(),
                role: request.role,
                friendly_name: &request.friendly_name,
                password_hash: hash.as_deref(),
                may_dial: request.may_dial,
                created_at: now_seconds(),
            })?)
        })
        .await
    }

    /// Sets a password: one's own, or as an administrator anybody's of its tenants.
    pub async fn set_password(
        &self,
        caller: &Principal,
        name: &str,
        password: Option<&str>,
    ) -> Result<(), AccessError> {
        let user = self.user_named(caller, name).await?;
        if user.id != caller.user_id && !caller.is_admin() {
            return Err(forbidden("set another user's password"));
        }
        let hash = hash_off_runtime(password.map(str::to_owned)).await?;
        self.change(move |store| {
            store.change_user(
                user.id,
                &UserChange {
                    password_hash: Some(hash),
                    ..UserChange::default()
                },
            )?;
            Ok(())
        })
        .await
    }

    pub async fn change_user(
        &self,
        caller: &Principal,
        name: &str,
        change: UserChange,
    ) -> Result<UserRecord, AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("change users"));
        }
        let user = self.user_named(caller, name).await?;
        let id = user.id;
        self.change(move |store| {
            store.change_user(id, &change)?;
            store
                .user(id)?
                .ok_or_else(|| AccessError::NotFound("the user vanished".into()))
        })
        .await
    }

    pub async fn delete_user(&self, caller: &Principal, name: &str) -> Result<(), AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("delete users"));
        }
        let user = self.user_named(caller, name).await?;
        if user.id == caller.user_id {
            return Err(AccessError::Invalid("you cannot delete yourself".into()));
        }
        self.change(move |store| {
            store.delete_user(user.id)?;
            Ok(())
        })
        .await
    }

    /// A token for an application: for the caller itself, or made by an administrator for
    /// a user of its tenant. `lifetime` `None` never expires.
    pub async fn create_token(
        &self,
        caller: &Principal,
        user: &str,
        label: String,
        lifetime: Option<Seconds>,
    ) -> Result<IssuedToken, AccessError> {
        let owner = self.user_named(caller, user).await?;
        if owner.id != caller.user_id && !caller.is_admin() {
            return Err(forbidden("make tokens for other users"));
        }
        if lifetime.is_some_and(|l| l <= 0) {
            return Err(AccessError::Invalid(
                "a token's lifetime must be positive".into(),
            ));
        }
        self.issue(owner.id, label, TokenKind::Api, lifetime).await
    }

    /// The tokens the caller may see (its own; an administrator's tenants' too), with the
    /// name of their user.
    pub async fn tokens(
        &self,
        caller: &Principal,
    ) -> Result<Vec<(TokenRecord, String)>, AccessError> {
        let users: HashMap<i64, UserRecord> = self
            .users(caller)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let tokens = self.with_store(|store| Ok(store.tokens(None)?)).await?;
        Ok(tokens
            .into_iter()
            .filter_map(|t| {
                let user = users.get(&t.user_id)?;
                let visible = user.id == caller.user_id || caller.is_admin();
                visible.then(|| (t, user.name.clone()))
            })
            .collect())
    }

    pub async fn revoke_token(&self, caller: &Principal, id: i64) -> Result<(), AccessError> {
        let visible = self
            .tokens(caller)
            .await?
            .into_iter()
            .any(|(t, _)| t.id == id);
        if !visible {
            return Err(AccessError::NotFound(format!("no token {id}")));
        }
        let revoked = self
            .change(move |store| Ok(store.revoke_token(id, now_seconds())?))
            .await?;
        if revoked {
            Ok(())
        } else {
            Err(AccessError::Conflict(format!(
                "token {id} is revoked already"
            )))
        }
    }

    pub async fn teams(&self, caller: &Principal) -> Result<Vec<TeamRecord>, AccessError> {
        let teams = self.with_store(|store| Ok(store.teams(None)?)).await?;
        Ok(teams
            .into_iter()
            .filter(|t| {
                caller.in_tenant(&t.tenant)
                    && (caller.is_admin() || t.members.contains(&caller.user_id))
            })
            .collect())
    }

    pub async fn create_team(
        &self,
        caller: &Principal,
        tenant: Option<String>,
        name: String,
        right: Right,
    ) -> Result<TeamRecord, AccessError> {
        let tenant = tenant
            .or_else(|| caller.tenant.clone())
            .ok_or_else(|| AccessError::Invalid("name the team's tenant".into()))?;
        if !caller.administers(&tenant) {
            return Err(forbidden("create teams"));
        }
        validate_name("team", &name)?;
        self.change(move |store| Ok(store.create_team(&tenant, &name, right)?))
            .await
    }

    async fn team_named(&self, caller: &Principal, name: &str) -> Result<TeamRecord, AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("manage teams"));
        }
        self.teams(caller)
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| AccessError::NotFound(format!("no team {name:?}")))
    }

    pub async fn delete_team(&self, caller: &Principal, name: &str) -> Result<(), AccessError> {
        let team = self.team_named(caller, name).await?;
        self.change(move |store| {
            store.delete_team(team.id)?;
            Ok(())
        })
        .await
    }

    pub async fn set_team_right(
        &self,
        caller: &Principal,
        name: &str,
        right: Right,
    ) -> Result<(), AccessError> {
        let team = self.team_named(caller, name).await?;
        self.change(move |store| {
            store.set_team_right(team.id, right)?;
            Ok(())
        })
        .await
    }

    /// Adds or removes a member; the member must belong to the team's tenant.
    pub async fn set_team_member(
        &self,
        caller: &Principal,
        team: &str,
        user: &str,
        member: bool,
    ) -> Result<(), AccessError> {
        let team = self.team_named(caller, team).await?;
        let user = self.user_named(caller, user).await?;
        if user.tenant.as_deref() != Some(team.tenant.as_str()) {
            return Err(AccessError::Invalid(format!(
                "user {:?} is not in the team's tenant {:?}",
                user.name, team.tenant
            )));
        }
        self.change(move |store| {
            store.set_team_member(team.id, user.id, member)?;
            Ok(())
        })
        .await
    }

    /// The tenant of line `line`, from the instance it belongs to.
    async fn line_tenant(&self, line: LineId) -> Result<Option<String>, AccessError> {
        let lines = self
            .with_store(|store| Ok(store.all_known_lines()?))
            .await?;
        Ok(lines
            .into_iter()
            .find(|(_, l)| l.id == line)
            .and_then(|(instance, _)| self.policy_of(&instance))
            .map(|p| p.tenant))
    }

    /// Gives a user of the caller's tenants a line of the same tenant.
    pub async fn assign(
        &self,
        caller: &Principal,
        user: &str,
        line: LineId,
        relation: Relation,
        right: Right,
    ) -> Result<(), AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("assign lines"));
        }
        if relation == Relation::Team {
            return Err(AccessError::Invalid(
                "team lines come from teams; assign own or assigned".into(),
            ));
        }
        let user = self.user_named(caller, user).await?;
        let line_tenant = self.line_tenant(line).await?;
        let same_tenant = line_tenant.is_some() && line_tenant == user.tenant;
        if !same_tenant || !line_tenant.as_deref().is_some_and(|t| caller.in_tenant(t)) {
            return Err(AccessError::NotFound(format!(
                "no line {line} in the tenant of user {:?}",
                user.name
            )));
        }
        let right = if relation == Relation::Own {
            Right::Control
        } else {
            right
        };
        self.change(move |store| {
            Ok(store.assign(Assignment {
                user_id: user.id,
                line,
                relation,
                right,
            })?)
        })
        .await
    }

    pub async fn unassign(
        &self,
        caller: &Principal,
        user: &str,
        line: LineId,
    ) -> Result<(), AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("assign lines"));
        }
        let user = self.user_named(caller, user).await?;
        let removed = self
            .change(move |store| Ok(store.unassign(user.id, line)?))
            .await?;
        if removed {
            Ok(())
        } else {
            Err(AccessError::NotFound(format!(
                "the user does not have line {line}"
            )))
        }
    }

    /// The direct assignments of the users the caller may see, with their user names.
    pub async fn assignments(
        &self,
        caller: &Principal,
    ) -> Result<Vec<(Assignment, String)>, AccessError> {
        let users: HashMap<i64, String> = self
            .users(caller)
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
        let all = self
            .with_store(|store| Ok(store.assignments(None)?))
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|a| users.get(&a.user_id).map(|name| (a, name.clone())))
            .collect())
    }

    /// Queues an audit entry for a control action of `caller`; writing happens in batches
    /// on the audit task, off the command's path.
    pub async fn record(
        &self,
        caller: &Principal,
        action: &str,
        target: AuditTarget,
        result: &str,
    ) {
        let entry = AuditEntry {
            at_ms: now_ms(),
            user: caller.name.clone(),
            tenant: target.tenant.or_else(|| caller.tenant.clone()),
            action: action.to_owned(),
            line: target.line,
            call: target.call,
            result: result.to_owned(),
        };
        if self.audit.send(entry).await.is_err() {
            tracing::error!("the audit writer stopped; an audit entry is lost");
        }
    }

    /// Audit entries the caller may read: administrators only, their own tenants only.
    pub async fn audit(
        &self,
        caller: &Principal,
        line: Option<LineId>,
        user: Option<String>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AccessError> {
        if !caller.is_admin() {
            return Err(forbidden("read the audit log"));
        }
        let tenant = caller.tenant.clone();
        self.with_store(move |store| {
            Ok(store.audit(&AuditQuery {
                tenant: tenant.as_deref(),
                line,
                user: user.as_deref(),
                limit,
            })?)
        })
        .await
    }
}

/// Hashes a password on a blocking thread: argon2 is slow on purpose.
async fn hash_off_runtime(password: Option<String>) -> Result<Option<String>, AccessError> {
    let Some(password) = password else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| AccessError::Internal(format!("hashing task failed: {e}")))?
        .map(Some)
        .map_err(|e| AccessError::Invalid(e.to_string()))
}

fn may_see_user(caller: &Principal, user: &UserRecord) -> bool {
    if user.id == caller.user_id {
        return true;
    }
    caller.is_admin()
        && match (&caller.tenant, &user.tenant) {
            (None, _) => true,
            (Some(own), Some(theirs)) => own == theirs,
            (Some(_), None) => false,
        }
}

fn validate_name(what: &str, name: &str) -> Result<(), AccessError> {
    let valid = !name.is_empty()
        && name.chars().count() <= 128
        && !name.chars().any(|c| c.is_control())
        && name.trim() == name;
    if valid {
        Ok(())
    } else {
        Err(AccessError::Invalid(format!(
            "invalid {what} name {name:?}: 1 to 128 characters, no control characters, no \
             leading or trailing spaces"
        )))
    }
}

fn principal(store: &Store, user: UserRecord, token_id: i64) -> Result<Principal, AccessError> {
    let grants = store.grants(user.id)?;
    Ok(Principal::new(
        user.id,
        user.name,
        user.tenant,
        user.role,
        user.may_dial,
        token_id,
        &grants,
    ))
}

/// The administrator that owns the CLI token: `admin` if it is one of every tenant, else
/// the first such administrator, else a new `admin` without a password.
fn local_admin(store: &mut Store) -> Result<UserRecord, AccessError> {
    let global_admins: Vec<UserRecord> = store
        .users(None)?
        .into_iter()
        .filter(|u| u.role == Role::Admin && u.tenant.is_none())
        .collect();
    if let Some(admin) = global_admins
        .iter()
        .find(|u| u.name == FIRST_ADMIN)
        .or(global_admins.first())
    {
        return Ok(admin.clone());
    }
    tracing::info!(
        "no administrator yet: creating {FIRST_ADMIN:?} (set its password with `tapir user passwd {FIRST_ADMIN}`)"
    );
    Ok(store.create_user(&NewUser {
        name: FIRST_ADMIN,
        tenant: None,
        role: Role::Admin,
        friendly_name: "Administrator",
        password_hash: None,
        may_dial: true,
        created_at: now_seconds(),
    })?)
}

async fn write_audit(store: Arc<Mutex<Store>>, mut queue: mpsc::Receiver<AuditEntry>) {
    const BATCH: usize = 512;
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let entries = std::mem::take(&mut batch);
        let store = store.clone();
        let written =
            tokio::task::spawn_blocking(move || lock(&store).append_audit(&entries)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot write the audit log"),
            Err(error) => tracing::error!(%error, "the audit writer failed"),
        }
    }
}
