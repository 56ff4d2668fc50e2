//! Who may see and do what on which line: the rights model as pure functions.
//!
//! A line's right for a caller depends on the caller (role, tenant, grants) and on the line's
//! instance (tenant, operating mode). Another tenant's lines are invisible, not forbidden:
//! callers cannot tell them from lines that do not exist.

use std::collections::HashMap;

use tapir_model::{LineId, OperatingMode, Relation, Right, Role};
use tapir_store::Grant;

/// How one instance decides rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePolicy {
    pub tenant: String,
    pub mode: OperatingMode,
    /// In terminal-server mode: only users allowed to dial may place and drop calls.
    pub restrict_dialing: bool,
}

/// Every instance's policy, by instance name.
pub type Policies = HashMap<String, InstancePolicy>;

/// The tenant of instances that name none.
pub const DEFAULT_TENANT: &str = "default";

/// An authenticated caller and the lines its account has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub name: String,
    /// `None` only for administrators of every tenant.
    pub tenant: Option<String>,
    pub role: Role,
    pub may_dial: bool,
    /// The token the caller authenticated with.
    pub token_id: i64,
    /// Own and assigned lines.
    direct: HashMap<LineId, Right>,
    /// Teammates' own lines.
    team: HashMap<LineId, Right>,
}

/// What an action needs on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// See the line and its calls.
    Monitor,
    /// Act on the line or its calls.
    Control,
    /// Place a call (also a consultation call) or drop one: control, and where the instance
    /// reserves it, the dial right.
    Dial,
}

/// Why an action on a line is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The caller cannot see the line at all: answer as if it did not exist.
    Invisible,
    /// The caller sees the line but lacks the right.
    NotPermitted(Right),
    /// The instance reserves dialling and hanging up to authorised users.
    DialingReserved,
}

impl Principal {
    pub fn new(
        user_id: i64,
        name: String,
        tenant: Option<String>,
        role: Role,
        may_dial: bool,
        token_id: i64,
        grants: &[Grant],
    ) -> Principal {
        let mut direct = HashMap::new();
        let mut team = HashMap::new();
        for grant in grants {
            let (table, right) = match grant.relation {
                Relation::Own => (&mut direct, Right::Control),
                Relation::Assigned => (&mut direct, grant.right),
                Relation::Team => (&mut team, grant.right),
            };
            let best: &mut Right = table.entry(grant.line).or_default();
            *best = (*best).max(right);
        }
        Principal {
            user_id,
            name,
            tenant,
            role,
            may_dial,
            token_id,
            direct,
            team,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// An administrator of every tenant.
    pub fn is_global_admin(&self) -> bool {
        self.is_admin() && self.tenant.is_none()
    }

    /// True when the caller belongs to `tenant` (or spans all tenants).
    pub fn in_tenant(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|own| own == tenant)
    }

    /// True when the caller administers `tenant`.
    pub fn administers(&self, tenant: &str) -> bool {
        self.is_admin() && self.in_tenant(tenant)
    }

    /// The caller's right on `line` of an instance with `policy`.
    pub fn right(&self, policy: &InstancePolicy, line: LineId) -> Right {
        if !self.in_tenant(&policy.tenant) {
            return Right::None;
        }
        if self.is_admin() {
            return Right::Control;
        }
        let direct = self.direct.get(&line).copied().unwrap_or_default();
        let team = self.team.get(&line).copied().unwrap_or_default();
        match policy.mode {
            OperatingMode::ServerApplication => Right::Control,
            OperatingMode::Workstation => direct.max(team),
            OperatingMode::TerminalServer => direct,
        }
    }

    /// Whether the caller may do what `need` names on `line`.
    pub fn check(&self, policy: &InstancePolicy, line: LineId, need: Need) -> Result<(), Denial> {
        let right = self.right(policy, line);
        let required = match need {
            Need::Monitor => Right::Monitor,
            Need::Control | Need::Dial => Right::Control,
        };
        if right == Right::None {
            return Err(Denial::Invisible);
        }
        if right < required {
            return Err(Denial::NotPermitted(right));
        }
        let dialing_reserved = need == Need::Dial
            && policy.mode == OperatingMode::TerminalServer
            && policy.restrict_dialing
            && !self.may_dial
            && !self.is_admin();
        if dialing_reserved {
            return Err(Denial::DialingReserved);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: OperatingMode) -> InstancePolicy {
        InstancePolicy {
            tenant: "acme".into(),
            mode,
            restrict_dialing: true,
        }
    }

    fn grant(line: u32, relation: Relation, right: Right) -> Grant {
        Grant {
            line: LineId(line),
            relation,
            right,
        }
    }

    fn user(grants: &[Grant]) -> Principal {
        Principal::new(
            1,
            "alice".into(),
            Some("acme".into()),
            Role::User,
            false,
            1,
            grants,
        )
    }

    #[test]
    fn workstation_gives_own_lines_control_and_team_lines_the_team_right() {
        let alice = user(&[
            grant(1, Relation::Own, Right::Monitor),
            grant(2, Relation::Team, Right::Monitor),
            grant(3, Relation::Assigned, Right::Monitor),
        ]);
        let ws = policy(OperatingMode::Workstation);
        assert_eq!(
            alice.right(&ws, LineId(1)),
            Right::Control,
            "own is always control"
        );
        assert_eq!(alice.right(&ws, LineId(2)), Right::Monitor);
        assert_eq!(alice.right(&ws, LineId(3)), Right::Monitor);
        assert_eq!(alice.right(&ws, LineId(4)), Right::None);
        assert_eq!(
            alice.check(&ws, LineId(2), Need::Control),
            Err(Denial::NotPermitted(Right::Monitor))
        );
        assert_eq!(
            alice.check(&ws, LineId(4), Need::Monitor),
            Err(Denial::Invisible)
        );
        assert_eq!(
            alice.check(&ws, LineId(1), Need::Dial),
            Ok(()),
            "not reserved here"
        );
    }

    #[test]
    fn terminal_server_ignores_teams_and_may_reserve_dialing() {
        let alice = user(&[
            grant(1, Relation::Assigned, Right::Control),
            grant(2, Relation::Team, Right::Control),
        ]);
        let ts = policy(OperatingMode::TerminalServer);
        assert_eq!(alice.right(&ts, LineId(2)), Right::None);
        assert_eq!(alice.check(&ts, LineId(1), Need::Control), Ok(()));
        assert_eq!(
            alice.check(&ts, LineId(1), Need::Dial),
            Err(Denial::DialingReserved)
        );
        let open = InstancePolicy {
            restrict_dialing: false,
            ..ts
        };
        assert_eq!(alice.check(&open, LineId(1), Need::Dial), Ok(()));
    }

    #[test]
    fn server_application_opens_every_line_of_the_tenant_only() {
        let app = user(&[]);
        let sa = policy(OperatingMode::ServerApplication);
        assert_eq!(app.right(&sa, LineId(99)), Right::Control);
        let other = InstancePolicy {
            tenant: "globex".into(),
            ..sa
        };
        assert_eq!(app.right(&other, LineId(99)), Right::None);
    }

    #[test]
    fn admins_control_their_tenant_and_global_admins_every_tenant() {
        let admin = Principal::new(
            2,
            "root".into(),
            Some("acme".into()),
            Role::Admin,
            true,
            1,
            &[],
        );
        let ts = policy(OperatingMode::TerminalServer);
        assert_eq!(admin.right(&ts, LineId(5)), Right::Control);
        let globex = InstancePolicy {
            tenant: "globex".into(),
            ..ts.clone()
        };
        assert_eq!(admin.right(&globex, LineId(5)), Right::None);
        let global = Principal::new(3, "op".into(), None, Role::Admin, true, 1, &[]);
        assert_eq!(global.right(&globex, LineId(5)), Right::Control);
        assert!(global.is_global_admin() && !admin.is_global_admin());
    }
}
