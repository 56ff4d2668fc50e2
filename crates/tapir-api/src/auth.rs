//! Who the caller is, and what of the engine's state and commands it may see and use.
//!
//! Every route but `/healthz` and `/login` takes a [`Caller`]. A [`Gate`] answers, for one
//! caller, which instances, lines, calls and events are visible, from the instance policies
//! and the caller's grants. Lines the caller cannot see are answered exactly like lines that
//! do not exist, so nothing leaks across tenants.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tapir_access::{AuditTarget, Denial, InstancePolicy, Need, Policies, Principal};
use tapir_core::{CallSnapshot, Event, InstanceInfo, LineSnapshot, Snapshot};
use tapir_model::{CallId, Command, ErrorKind, InstanceId, LineId, PickupTarget, Right, TapiError};

use crate::ApiState;
use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Clone)]
pub(crate) struct Caller(pub Arc<Principal>);

/// The bearer token of a request's `Authorization` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) fn missing_credentials() -> ApiError {
    ApiError::Unauthenticated(
        "missing credentials: send `Authorization: Bearer <token>` (from `POST /api/v1/login` \
         or `tapir token create`)"
            .into(),
    )
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(missing_credentials)?;
        let principal = state.accounts.authenticate(token).await?;
        Ok(Caller(Arc::new(principal)))
    }
}

/// What one caller may see, at one point of the event stream.
pub(crate) struct Gate {
    principal: Arc<Principal>,
    policies: Arc<Policies>,
    /// Instance names by id, learnt from snapshots and instance events.
    instances: HashMap<InstanceId, String>,
}

impl Gate {
    pub(crate) fn new(
        principal: Arc<Principal>,
        policies: Arc<Policies>,
        instances: &[InstanceInfo],
    ) -> Gate {
        let mut gate = Gate {
            principal,
            policies,
            instances: HashMap::new(),
        };
        for info in instances {
            gate.instances.insert(info.id, info.name.clone());
        }
        gate
    }

    pub(crate) fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// True when `principal` and `policies` give the same view as this gate's.
    pub(crate) fn same_view(&self, principal: &Principal, policies: &Arc<Policies>) -> bool {
        *self.principal == *principal && Arc::ptr_eq(&self.policies, policies)
    }

    /// This gate for a changed caller or policies, keeping the instance names it learnt.
    pub(crate) fn renewed(&self, principal: Arc<Principal>, policies: Arc<Policies>) -> Gate {
        Gate {
            principal,
            policies,
            instances: self.instances.clone(),
        }
    }

    /// Adds the names of `instances`; names are never forgotten, so that events of an
    /// instance that has gone since can still be placed.
    pub(crate) fn know(&mut self, instances: &[InstanceInfo]) {
        for info in instances {
            self.instances.insert(info.id, info.name.clone());
        }
    }

    /// Keeps the instance names current; call before [`Gate::event_visible`].
    pub(crate) fn learn(&mut self, event: &Event) {
        if let Event::InstanceChanged(info) = event {
            self.instances.insert(info.id, info.name.clone());
        }
    }

    /// True when the caller sees everything, so shared unfiltered text may be sent.
    pub(crate) fn sees_all(&self) -> bool {
        self.principal.is_global_admin()
    }

    fn policy(&self, instance: &str) -> Option<&InstancePolicy> {
        self.policies.get(instance)
    }

    fn right_on(&self, instance: &str, line: LineId) -> Right {
        match self.policy(instance) {
            Some(policy) => self.principal.right(policy, line),
            // An instance without a policy is being set up; only the server's
            // administrators see it.
            None if self.sees_all() => Right::Control,
            None => Right::None,
        }
    }

    pub(crate) fn instance_visible(&self, info: &InstanceInfo) -> bool {
        match self.policy(&info.name) {
            Some(policy) => self.principal.in_tenant(&policy.tenant),
            None => self.sees_all(),
        }
    }

    pub(crate) fn line_right(&self, line: &LineSnapshot) -> Right {
        self.right_on(&line.instance, line.line.id)
    }

    pub(crate) fn call_right(&self, call: &CallSnapshot) -> Right {
        match self.instances.get(&call.instance) {
            Some(name) => self.right_on(name, call.call.line),
            None if self.sees_all() => Right::Control,
            None => Right::None,
        }
    }

    pub(crate) fn event_visible(&self, event: &Event) -> bool {
        if self.sees_all() {
            return true;
        }
        match event {
            Event::LineCreated(l) | Event::LineChanged(l) => self.line_right(l) > Right::None,
            Event::LineRemoved { line, instance } | Event::LinePurged { line, instance } => {
                self.right_on(instance, *line) > Right::None
            }
            Event::CallNew(c) | Event::CallState(c) | Event::CallFeatures(c) => {
                self.call_right(c) > Right::None
            }
            Event::CallInfo { call, .. } => self.call_right(call) > Right::None,
            Event::InstanceChanged(info) => self.instance_visible(info),
        }
    }

    /// The part of `snapshot` the caller may see.
    pub(crate) fn filter(&self, snapshot: &Snapshot) -> Snapshot {
        Snapshot {
            epoch: snapshot.epoch,
            seq: snapshot.seq,
            instances: snapshot
                .instances
                .iter()
                .filter(|i| self.instance_visible(i))
                .cloned()
                .collect(),
            lines: snapshot
                .lines
                .iter()
                .filter(|l| self.line_right(l) > Right::None)
                .cloned()
                .collect(),
            calls: snapshot
                .calls
                .iter()
                .filter(|c| self.call_right(c) > Right::None)
                .cloned()
                .collect(),
        }
    }
}

/// What a command needs on which line or call.
enum Target {
    Line(LineId, Need),
    Call(CallId, Need),
    Instance(String),
}

fn targets(command: &Command) -> Vec<Target> {
    use Need::{Control, Dial, Monitor};
    match command {
        Command::MakeCall { line, .. } => vec![Target::Line(*line, Dial)],
        // A consultation places a new call: dialling, where dialling is reserved.
        Command::Drop { call } | Command::Consult { call, .. } => vec![Target::Call(*call, Dial)],
        Command::Accept { call }
        | Command::Answer { call }
        | Command::Hold { call }
        | Command::Unhold { call }
        | Command::BlindTransfer { call, .. }
        | Command::CompleteTransfer { call }
        | Command::Conference { call }
        | Command::GenerateDigits { call, .. }
        | Command::Park { call, .. }
        | Command::Redirect { call, .. } => vec![Target::Call(*call, Control)],
        Command::Swap { call, with } => {
            let mut targets = vec![Target::Call(*call, Control)];
            targets.extend(with.map(|w| Target::Call(w, Control)));
            targets
        }
        Command::Pickup { line, target } => vec![
            Target::Line(*line, Control),
            match target {
                PickupTarget::Call(call) => Target::Call(*call, Monitor),
                PickupTarget::Line(from) => Target::Line(*from, Monitor),
            },
        ],
        Command::SetForwards { line, .. }
        | Command::Unpark { line, .. }
        | Command::SetDoNotDisturb { line, .. }
        | Command::Simulate { line, .. } => vec![Target::Line(*line, Control)],
        Command::SimulatePbx { instance, .. } => vec![Target::Instance(instance.clone())],
    }
}

fn refusal(denial: Denial, what: &str, unknown: TapiError) -> TapiError {
    match denial {
        Denial::Invisible => unknown,
        Denial::NotPermitted(_) => {
            TapiError::new(ErrorKind::NotOwner, format!("you may only monitor {what}"))
        }
        Denial::DialingReserved => TapiError::new(
            ErrorKind::NotOwner,
            format!("placing and dropping calls on {what} is reserved to authorised users"),
        ),
    }
}

/// A command's line or call as the engine knows it.
struct Resolved {
    /// The instance's name; `None` when the line does not exist.
    instance: Option<String>,
    line: LineId,
    call: Option<CallId>,
    need: Need,
    /// How refusals name it: "line 7", "call 9".
    what: String,
    /// The engine's own error for an id that does not exist.
    unknown: TapiError,
}

async fn resolve(state: &ApiState, target: Target) -> Result<Resolved, ApiError> {
    match target {
        Target::Line(id, need) => Ok(Resolved {
            instance: state.engine.line(id).await?.map(|l| l.instance),
            line: id,
            call: None,
            need,
            what: format!("line {id}"),
            unknown: TapiError::new(ErrorKind::InvalidLine, format!("no line {id}")),
        }),
        Target::Call(id, need) => {
            let unknown = TapiError::new(ErrorKind::InvalidCall, format!("no call {id}"));
            let Some(call) = state.engine.call(id).await? else {
                return Err(unknown.into());
            };
            Ok(Resolved {
                instance: state.engine.line(call.call.line).await?.map(|l| l.instance),
                line: call.call.line,
                call: Some(id),
                need,
                what: format!("call {id}"),
                unknown,
            })
        }
        Target::Instance(_) => Err(ApiError::Internal("an instance is not a line".into())),
    }
}

/// An instance-wide action: administrators of the instance's tenant only; for callers of
/// other tenants the instance does not exist.
fn authorize_instance(
    policies: &Policies,
    principal: &Principal,
    name: &str,
    audit: &mut AuditTarget,
) -> Result<(), ApiError> {
    let policy = policies.get(name);
    match policy {
        Some(p) if principal.administers(&p.tenant) => {
            audit.tenant = Some(p.tenant.clone());
            Ok(())
        }
        None if principal.is_global_admin() => Ok(()),
        Some(p) if principal.in_tenant(&p.tenant) => Err(ApiError::Forbidden(format!(
            "only an administrator may manage instance {name:?}"
        ))),
        _ => Err(ApiError::NotFound(format!("no instance {name:?}"))),
    }
}

/// Checks `command` against the caller's rights before it reaches the engine, and notes in
/// `audit` what it acts on. Refusals read exactly like the engine's own errors for lines and
/// calls that do not exist, when the caller cannot see them; and what the caller cannot see
/// stays out of its tenant's audit log.
pub(crate) async fn authorize(
    state: &ApiState,
    principal: &Principal,
    command: &Command,
    audit: &mut AuditTarget,
) -> Result<(), ApiError> {
    let policies = state.accounts.policies();
    for target in targets(command) {
        if let Target::Instance(name) = &target {
            authorize_instance(&policies, principal, name, audit)?;
            continue;
        }
        let resolved = resolve(state, target).await?;
        let policy = resolved
            .instance
            .as_deref()
            .and_then(|name| policies.get(name));
        let Some(policy) = policy else {
            if principal.is_global_admin() {
                continue;
            }
            return Err(resolved.unknown.into());
        };
        let checked = principal.check(policy, resolved.line, resolved.need);
        if checked != Err(Denial::Invisible) {
            audit.tenant.get_or_insert_with(|| policy.tenant.clone());
            audit.line.get_or_insert(resolved.line);
            if let Some(call) = resolved.call {
                audit.call.get_or_insert(call.0);
            }
        }
        let Resolved { what, unknown, .. } = resolved;
        checked.map_err(|denial| refusal(denial, &what, unknown))?;
    }
    Ok(())
}

/// Runs a checked command and writes the audit entry, whatever the outcome.
pub(crate) async fn execute(
    state: &ApiState,
    principal: &Principal,
    command: Command,
) -> Result<tapir_core::CommandOutcome, ApiError> {
    let action = command.name();
    let mut target = AuditTarget::default();
    if let Err(error) = authorize(state, principal, &command, &mut target).await {
        let result = format!("denied: {}", error.name());
        state
            .accounts
            .record(principal, action, target, &result)
            .await;
        return Err(error);
    }
    let outcome = state.engine.execute(command).await;
    let result = match &outcome {
        Ok(_) => "ok",
        Err(error) => error.kind.as_str(),
    };
    if let Ok(outcome) = &outcome {
        target.call = target.call.or(outcome.call.map(|c| c.0));
    }
    state
        .accounts
        .record(principal, action, target, result)
        .await;
    Ok(outcome?)
}
