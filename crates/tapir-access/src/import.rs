//! Line assignments from and to tsecimp files: names and addresses resolved against one
//! tenant's users and lines, every problem reported with its place, and nothing applied
//! unless the whole file is good.

use std::collections::HashMap;

use tapir_model::{LineId, Relation, Right, Role};
use tapir_store::{AssignmentBatch, KnownLine, NewUser, Store, UserRecord};

use crate::error::{AccessError, ImportProblem};
use crate::policy::{Policies, Principal};
use crate::service::{Accounts, now_seconds};
use crate::tsecimp::{self, Document, LineEntry, LineRef, Position, UserEntry};

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub users_created: Vec<String>,
    pub lines_given: usize,
    pub lines_taken: usize,
    pub users_cleared: Vec<String>,
}

fn problem(position: Position, message: String) -> ImportProblem {
    ImportProblem {
        line: position.line,
        column: position.column,
        message,
    }
}

/// One tenant's lines, by id and by address.
struct TenantLines {
    tenant: String,
    by_id: HashMap<LineId, String>,
    by_address: HashMap<String, Vec<(LineId, String)>>,
}

impl TenantLines {
    fn new(tenant: &str, policies: &Policies, lines: Vec<(String, KnownLine)>) -> TenantLines {
        let mut tenant_lines = TenantLines {
            tenant: tenant.to_owned(),
            by_id: HashMap::new(),
            by_address: HashMap::new(),
        };
        let in_tenant = |instance: &str| policies.get(instance).is_some_and(|p| p.tenant == tenant);
        for (instance, line) in lines.into_iter().filter(|(i, _)| in_tenant(i)) {
            tenant_lines.by_id.insert(line.id, instance.clone());
            tenant_lines
                .by_address
                .entry(line.address)
                .or_default()
                .push((line.id, instance));
        }
        tenant_lines
    }

    fn resolve(&self, entry: &LineEntry) -> Result<LineId, ImportProblem> {
        let tenant = &self.tenant;
        match &entry.line {
            LineRef::PermanentId(id) => {
                let id = LineId(*id);
                if self.by_id.contains_key(&id) {
                    Ok(id)
                } else {
                    Err(problem(
                        entry.position,
                        format!("no line with permanent ID {id} in tenant {tenant:?}"),
                    ))
                }
            }
            LineRef::Address(address) => match self.by_address.get(address).map(Vec::as_slice) {
                Some([(id, _)]) => Ok(*id),
                Some(many) if many.len() > 1 => {
                    let list: Vec<String> = many
                        .iter()
                        .map(|(id, instance)| format!("{id} on {instance}"))
                        .collect();
                    Err(problem(
                        entry.position,
                        format!(
                            "address {address:?} names several lines ({}); use <PermanentID>",
                            list.join(", ")
                        ),
                    ))
                }
                _ => Err(problem(
                    entry.position,
                    format!("no line with address {address:?} in tenant {tenant:?}"),
                )),
            },
        }
    }
}

/// The changes a valid document makes, as owned data for the store's batch.
#[derive(Default)]
struct Plan {
    new_users: Vec<(String, String)>,
    friendly_names: Vec<(String, String)>,
    cleared: Vec<String>,
    give: Vec<(String, LineId)>,
    take: Vec<(String, LineId)>,
}

fn plan(
    document: &Document,
    tenant: &str,
    users: &[UserRecord],
    lines: &TenantLines,
) -> Result<Plan, Vec<ImportProblem>> {
    let by_name: HashMap<String, &UserRecord> =
        users.iter().map(|u| (u.name.to_lowercase(), u)).collect();
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    for entry in &document.users {
        let name = entry.domain_user.clone();
        match by_name.get(&name.to_lowercase()) {
            Some(user) if user.tenant.as_deref() != Some(tenant) => problems.push(problem(
                entry.position,
                format!("the user name {name:?} is taken outside tenant {tenant:?}"),
            )),
            Some(_) => {
                if let Some(friendly) = &entry.friendly_name {
                    plan.friendly_names.push((name.clone(), friendly.clone()));
                }
            }
            None => plan.new_users.push((
                name.clone(),
                entry.friendly_name.clone().unwrap_or_default(),
            )),
        }
        plan_lines(entry, &name, lines, &mut plan, &mut problems);
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

fn plan_lines(
    entry: &UserEntry,
    name: &str,
    lines: &TenantLines,
    plan: &mut Plan,
    problems: &mut Vec<ImportProblem>,
) {
    if entry.no_merge || entry.lines.is_none() {
        plan.cleared.push(name.to_owned());
    }
    for line in entry.lines.iter().flatten() {
        match lines.resolve(line) {
            Ok(id) if line.remove => plan.take.push((name.to_owned(), id)),
            Ok(id) => plan.give.push((name.to_owned(), id)),
            Err(p) => problems.push(p),
        }
    }
}

fn apply(store: &mut Store, plan: &Plan, tenant: &str) -> Result<(), AccessError> {
    let now = now_seconds();
    let batch = AssignmentBatch {
        new_users: plan
            .new_users
            .iter()
            .map(|(name, friendly)| NewUser {
                name,
                tenant: Some(tenant),
                role: Role::User,
                friendly_name: friendly,
                password_hash: None,
                may_dial: true,
                created_at: now,
            })
            .collect(),
        friendly_names: plan
            .friendly_names
            .iter()
            .map(|(n, f)| (n.as_str(), f.as_str()))
            .collect(),
        cleared: plan.cleared.iter().map(String::as_str).collect(),
        give: plan
            .give
            .iter()
            .map(|(n, l)| (n.as_str(), *l, Relation::Assigned, Right::Control))
            .collect(),
        take: plan.take.iter().map(|(n, l)| (n.as_str(), *l)).collect(),
    };
    Ok(store.apply_assignments(&batch)?)
}

impl Accounts {
    /// The tenant an import or export is about: the one named, else the caller's, else the
    /// only tenant the server has.
    fn tenant_for(
        &self,
        caller: &Principal,
        tenant: Option<String>,
    ) -> Result<String, AccessError> {
        let only_tenant = || {
            let policies = self.policies();
            let mut tenants: Vec<&String> = policies.values().map(|p| &p.tenant).collect();
            tenants.sort();
            tenants.dedup();
            match tenants.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            }
        };
        let tenant = tenant
            .or_else(|| caller.tenant.clone())
            .or_else(only_tenant)
            .ok_or_else(|| {
                AccessError::Invalid("the server has several tenants: name one (?tenant=)".into())
            })?;
        if caller.administers(&tenant) {
            Ok(tenant)
        } else {
            Err(AccessError::Forbidden(
                "only an administrator of the tenant may import or export assignments".into(),
            ))
        }
    }

    /// Applies a tsecimp file to `tenant` (default: the caller's), all or nothing.
    pub async fn import_tsecimp(
        &self,
        caller: &Principal,
        tenant: Option<String>,
        text: &str,
    ) -> Result<ImportSummary, AccessError> {
        let tenant = self.tenant_for(caller, tenant)?;
        let document = tsecimp::parse(text).map_err(|problems| {
            AccessError::Import(
                problems
                    .into_iter()
                    .map(|p| problem(p.position, p.message))
                    .collect(),
            )
        })?;
        let policies = self.policies();
        self.change(move |store| {
            let lines = TenantLines::new(&tenant, &policies, store.all_known_lines()?);
            let users = store.users(None)?;
            let plan = plan(&document, &tenant, &users, &lines).map_err(AccessError::Import)?;
            apply(store, &plan, &tenant)?;
            Ok(ImportSummary {
                users_created: plan.new_users.iter().map(|(n, _)| n.clone()).collect(),
                lines_given: plan.give.len(),
                lines_taken: plan.take.len(),
                users_cleared: plan.cleared,
            })
        })
        .await
    }

    /// The tenant's assigned lines as a tsecimp file: every user of the tenant, with
    /// `NoMerge` so that importing it again reproduces exactly these assignments.
    pub async fn export_tsecimp(
        &self,
        caller: &Principal,
        tenant: Option<String>,
    ) -> Result<String, AccessError> {
        let tenant = self.tenant_for(caller, tenant)?;
        let document = self
            .with_store(move |store| {
                let assignments = store.assignments(None)?;
                let users = store
                    .users(Some(&tenant))?
                    .into_iter()
                    .map(|user| UserEntry {
                        lines: Some(
                            assignments
                                .iter()
                                .filter(|a| {
                                    a.user_id == user.id && a.relation == Relation::Assigned
                                })
                                .map(|a| LineEntry {
                                    line: LineRef::PermanentId(a.line.0),
                                    remove: false,
                                    position: Position::default(),
                                })
                                .collect(),
                        ),
                        friendly_name: Some(user.friendly_name.clone()).filter(|f| !f.is_empty()),
                        domain_user: user.name,
                        no_merge: true,
                        position: Position::default(),
                    })
                    .collect();
                Ok(Document { users })
            })
            .await?;
        Ok(tsecimp::export(&document))
    }
}
