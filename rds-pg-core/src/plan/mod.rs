//! Plans and reports: the ordered steps an operation runs (or would run), each a typed
//! [`Change`] with the database it runs in and why it is needed. Planners are pure functions of
//! a spec, a snapshot of the server ([`crate::inspect`]) and the server's facts; [`render`](mod@render) is the
//! only place a change becomes SQL.
//!
//! One module per operation: [`user`] (project roles), [`password`] (rotation), [`database`]
//! (databases and extensions), [`read_only`], [`drop`](mod@drop) (databases and roles), [`instance`].

pub mod change;
pub mod database;
pub mod drop;
pub mod instance;
pub mod password;
pub mod read_only;
pub mod render;
pub mod user;

use std::fmt;

pub use change::{
    Change, ExtensionSchema, Grantee, QuotedRelation, RelationKind, RoleAttribute, TopologyTable,
};
pub(crate) use database::ensure_master_can_connect;
pub use database::{plan_database, plan_extensions, resolve_template};
pub use drop::{
    check_droppable_database, check_droppable_role, plan_drop_database, plan_drop_user,
};
pub use instance::plan_secure_instance;
pub use password::plan_rotate_password;
pub use read_only::{plan_grant_read_only, plan_revoke_read_only};
pub use render::{render, RenderContext, Secrets};
pub use user::plan_user;

use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inspect::{RoleState, ServerFacts};
use crate::secret::Password;

/// What a step does, for callers that present plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepKind {
    /// A change the user asked for.
    Change,
    /// A membership master needs for the operation, revoked at the end.
    TemporaryGrant,
    /// The revocation of a [`StepKind::TemporaryGrant`].
    TemporaryRevoke,
    /// `SET ROLE` to act as the database owner (so the owner owns what is created).
    SetRole,
    /// `RESET ROLE`.
    ResetRole,
    /// `REVOKE rds_iam FROM` an IAM user master is about to become a member of, so master keeps
    /// logging in with its password ([`Change::SuspendIam`]).
    SuspendIam,
    /// The `GRANT rds_iam` that ends a [`StepKind::SuspendIam`], run after the temporary revoke,
    /// on the error path too ([`Change::RestoreIam`]).
    RestoreIam,
}

impl StepKind {
    /// The kind's name in JSON documents and the Python binding (`change`, `temporary_grant`,
    /// `temporary_revoke`, `set_role`, `reset_role`, `suspend_iam`, `restore_iam`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Change => "change",
            StepKind::TemporaryGrant => "temporary_grant",
            StepKind::TemporaryRevoke => "temporary_revoke",
            StepKind::SetRole => "set_role",
            StepKind::ResetRole => "reset_role",
            StepKind::SuspendIam => "suspend_iam",
            StepKind::RestoreIam => "restore_iam",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One statement of a plan.
#[derive(Clone, PartialEq, Eq)]
pub struct Step {
    /// The database the statement runs in; `None` is the maintenance database master is
    /// connected to.
    pub database: Option<DatabaseName>,
    /// What it does.
    pub change: Change,
    /// Why it is needed.
    pub reason: String,
    /// The server it is rendered for.
    context: RenderContext,
}

impl Step {
    pub(crate) fn new(
        facts: &ServerFacts,
        database: Option<&DatabaseName>,
        change: Change,
        reason: impl Into<String>,
    ) -> Self {
        Step {
            database: database.cloned(),
            change,
            reason: reason.into(),
            context: RenderContext::from(facts),
        }
    }

    /// The statement, with any password verifier replaced by `'[redacted]'`.
    pub fn sql(&self) -> String {
        render(&self.change, self.context, Secrets::Redacted)
    }

    /// The statement to send: [`Step::sql`] with the verifier written out.
    pub(crate) fn executable_sql(&self) -> String {
        render(&self.change, self.context, Secrets::Revealed)
    }

    /// What kind of step it is.
    pub fn kind(&self) -> StepKind {
        match &self.change {
            Change::GrantTemporaryMembership { .. } => StepKind::TemporaryGrant,
            Change::RevokeTemporaryMembership { .. } => StepKind::TemporaryRevoke,
            Change::SetRole { .. } => StepKind::SetRole,
            Change::ResetRole => StepKind::ResetRole,
            Change::SuspendIam { .. } => StepKind::SuspendIam,
            Change::RestoreIam { .. } => StepKind::RestoreIam,
            _ => StepKind::Change,
        }
    }

    /// Whether it is sent on its own: PostgreSQL forbids it inside a transaction block
    /// (`CREATE DATABASE`), or it runs in a session of its own.
    pub fn standalone(&self) -> bool {
        self.change.is_standalone()
    }

    /// For a temporary grant or revoke: the role master gains or gives up for the operation.
    pub fn temporary_role(&self) -> Option<&RoleName> {
        self.change.temporary_role()
    }

    /// Whether it removes a membership that was there before the operation.
    pub fn removes_leftover(&self) -> bool {
        matches!(
            self.change,
            Change::RevokeTemporaryMembership { leftover: true, .. }
        )
    }

    /// A revoke of a leftover membership of a role the operation does not otherwise touch: it
    /// runs only when no other rds-pg operation holds that role's lock.
    pub fn only_if_unlocked(&self) -> bool {
        matches!(
            self.change,
            Change::RevokeTemporaryMembership {
                if_unlocked: true,
                ..
            }
        )
    }

    /// A revoke (or an IAM restore) that runs only when the operation failed (the role itself is
    /// being dropped).
    pub(crate) fn only_on_failure(&self) -> bool {
        matches!(
            self.change,
            Change::RevokeTemporaryMembership {
                only_on_failure: true,
                ..
            } | Change::RestoreIam {
                only_on_failure: true,
                ..
            }
        )
    }

    /// Whether it belongs to the end of an operation, run after the body and on its error path
    /// too: a temporary revoke, or the IAM restore that follows it.
    pub(crate) fn is_cleanup(&self) -> bool {
        matches!(
            self.kind(),
            StepKind::TemporaryRevoke | StepKind::RestoreIam
        )
    }

    /// Where the step runs, for display.
    pub fn database_label(&self) -> &str {
        self.database
            .as_ref()
            .map(|d| d.as_str())
            .unwrap_or("(maintenance)")
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("database", &self.database)
            .field("sql", &self.sql())
            .field("reason", &self.reason)
            .field("kind", &self.kind())
            .finish()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {};  -- {}",
            self.database_label(),
            self.sql(),
            self.reason
        )
    }
}

/// The steps an operation would run, in order. Empty when there is nothing to change.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The statements, in order.
    pub steps: Vec<Step>,
    /// Things rds-pg noticed and will not change (with the reason).
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The redacted SQL of every step.
    pub fn sql(&self) -> Vec<String> {
        self.steps.iter().map(Step::sql).collect()
    }

    /// The changes, in order.
    pub fn changes(&self) -> Vec<&Change> {
        self.steps.iter().map(|s| &s.change).collect()
    }

    /// Roles master is granted for the duration of the operation.
    pub fn temporary_grants(&self) -> Vec<&RoleName> {
        self.steps
            .iter()
            .filter(|s| s.kind() == StepKind::TemporaryGrant)
            .filter_map(Step::temporary_role)
            .collect()
    }

    /// Whether a step sets a password (creates a role with one, or changes it).
    pub fn sets_password(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.change,
                Change::CreateRole {
                    password: Some(_),
                    ..
                } | Change::SetPassword { .. }
            )
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            writeln!(f, "nothing to change")?;
        }
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// What an operation did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Whether anything changed.
    pub changed: bool,
    /// The statements that ran, in order (redacted).
    pub steps: Vec<Step>,
    /// Memberships master was granted for the operation and that were revoked at the end.
    pub temporary_grants: Vec<RoleName>,
    /// Things rds-pg noticed and did not change.
    pub notes: Vec<String>,
    /// The password generated for the operation, when one was set: shown once, here.
    pub generated_password: Option<Password>,
    /// The password the operation set (the caller's or a generated one), when it set one: what
    /// the project's servers need now. Never shown: [`Report`]'s `Debug` redacts it.
    pub new_password: Option<Password>,
    /// Where the new credentials were delivered, when the operation delivered them.
    pub credentials_delivered_to: Option<String>,
}

impl fmt::Display for Report {
    /// `changed` or `no change`, then each statement that ran and each note, one per line (as
    /// [`Plan`]'s listing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", if self.changed { "changed" } else { "no change" })?;
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by the planners
// ---------------------------------------------------------------------------------------------

pub(crate) fn q(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// Refuses the connected role, superusers and `rds_superuser` members: roles that administer the
/// instance, which rds-pg never drops.
pub(crate) fn refuse_administrator(name: &str, role: &RoleState, what: &str) -> Result<()> {
    if role.is_current_user {
        return Err(Error::PolicyViolation(format!(
            "{name:?} is the connected master user; rds-pg does not use it as a {what}"
        )));
    }
    if role.superuser {
        return Err(Error::PolicyViolation(format!(
            "{name:?} is a superuser; refusing to use it as a {what}"
        )));
    }
    if role.rds_superuser_member() {
        return Err(Error::PolicyViolation(format!(
            "{name:?} is a member of rds_superuser; refusing to use it as a {what}"
        )));
    }
    Ok(())
}

/// Refuses, as a project's user, owner or reader, a role that holds anything beyond its own
/// objects: SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS, or membership (through any
/// chain) of a privileged role or of master. A compromised project server would hold those
/// privileges; rds-pg does not quietly remove them either, since whatever the role did with them
/// needs a look first. The error names the SQL that removes them.
pub(crate) fn refuse_privileged(name: &str, role: &RoleState, what: &str) -> Result<()> {
    if role.is_current_user {
        return Err(Error::PolicyViolation(format!(
            "{name:?} is the connected master user; rds-pg does not use it as a {what}"
        )));
    }
    let beyond = role.privileges_beyond_a_project_role();
    if beyond.is_empty() {
        return Ok(());
    }
    let quoted = q(name);
    let mut fix = Vec::new();
    let attrs: Vec<&str> = [
        (role.superuser, "NOSUPERUSER"),
        (role.create_role, "NOCREATEROLE"),
        (role.create_db, "NOCREATEDB"),
        (role.replication, "NOREPLICATION"),
        (role.bypass_rls, "NOBYPASSRLS"),
    ]
    .into_iter()
    .filter_map(|(has, attr)| has.then_some(attr))
    .collect();
    if !attrs.is_empty() {
        fix.push(format!("ALTER ROLE {quoted} {}", attrs.join(" ")));
    }
    for r in &role.privileged_memberships {
        fix.push(format!("REVOKE {} FROM {quoted}", q(r)));
    }
    Err(Error::Refused {
        message: format!(
            "{name:?} holds {}; a {what} must hold nothing beyond its own objects (whoever \
             controls the project's server would hold these too). Check what the role did \
             with them before removing them",
            beyond.join(", ")
        ),
        fix: format!(
            "{} (a membership through another role is revoked from that role)",
            fix.join("; ")
        ),
    })
}

pub(crate) fn missing_admin(facts: &ServerFacts, role: &str) -> Error {
    Error::PermissionDenied {
        message: format!(
            "{:?} lacks ADMIN OPTION on role {role:?}, which PostgreSQL {} requires to act for it",
            facts.current_user, facts.major
        ),
        hint: Some(format!(
            "a role holding ADMIN OPTION on {role:?} (the one that created it) runs: GRANT {} TO {} WITH ADMIN OPTION",
            q(role),
            q(&facts.current_user)
        )),
        source: None,
    }
}

/// What master needs of a role for an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// To `SET ROLE` to it: the statements that need the role run as it. On 16+ the temporary
    /// membership is `INHERIT FALSE, SET TRUE`, so master never holds the role's privileges
    /// (nor, through it, `rds_iam`).
    SetRole,
    /// Its privileges, master acting with them (drops, `REASSIGN OWNED`, untrusted extensions
    /// created in its database).
    Privileges,
}

/// A temporary membership: the grant that starts it (none when master already holds a
/// leftover one) and the revoke that ends it.
#[derive(Clone, Debug)]
pub(crate) struct TemporaryMembership {
    /// `REVOKE rds_iam FROM role`, before the grant, when the role is an IAM user.
    pub(crate) suspend: Option<Step>,
    pub(crate) grant: Option<Step>,
    pub(crate) revoke: Step,
    /// `GRANT rds_iam TO role`, after the revoke, when the role is an IAM user.
    pub(crate) restore: Option<Step>,
}

impl TemporaryMembership {
    /// The steps that start it, in order (the IAM suspension, then the grant).
    pub(crate) fn start(&self) -> Vec<Step> {
        self.suspend.iter().chain(&self.grant).cloned().collect()
    }

    /// The steps that end it, in order (the revoke, then the IAM restore).
    pub(crate) fn end(&self) -> Vec<Step> {
        std::iter::once(&self.revoke)
            .chain(&self.restore)
            .cloned()
            .collect()
    }
}

/// The reason of the revoke that removes a leftover membership.
const LEFTOVER_REASON: &str = "master was left a member of it (an operation that was killed, or \
                               a manual grant); rds-pg grants that only for an operation";

/// The temporary membership master needs to act for `role` (its state in `state`), or nothing
/// when it already can; a leftover membership is reused and removed at the end.
pub(crate) fn temporary_membership(
    facts: &ServerFacts,
    role: &str,
    state: &RoleState,
    need: Need,
) -> Result<Option<TemporaryMembership>> {
    temporary_membership_ending(facts, role, state, need, false)
}

/// As [`temporary_membership`]; `only_on_failure` makes the revoke run only when the operation
/// failed (the role itself is being dropped).
pub(crate) fn temporary_membership_ending(
    facts: &ServerFacts,
    role: &str,
    state: &RoleState,
    need: Need,
    only_on_failure: bool,
) -> Result<Option<TemporaryMembership>> {
    let access = &state.access;
    let satisfied = match need {
        Need::SetRole => access.set,
        Need::Privileges => access.usage,
    };
    if facts.is_superuser || (satisfied && !state.leftover_membership) {
        return Ok(None);
    }
    let name = RoleName::from_catalog(role);
    let member = RoleName::from_catalog(&facts.current_user);
    let grant = if satisfied {
        None
    } else {
        if facts.major >= 16 && !access.admin {
            return Err(missing_admin(facts, role));
        }
        Some(Step::new(
            facts,
            None,
            Change::GrantTemporaryMembership {
                role: name.clone(),
                member: member.clone(),
                inherit: need == Need::Privileges,
            },
            format!(
                "{} must act as {role:?} (RDS master is not a superuser)",
                facts.current_user
            ),
        ))
    };
    let leftover = state.leftover_membership;
    let revoke = Step::new(
        facts,
        None,
        Change::RevokeTemporaryMembership {
            role: name,
            member,
            only_on_failure,
            leftover,
            if_unlocked: false,
        },
        if leftover {
            LEFTOVER_REASON
        } else {
            "drop the temporary membership"
        },
    );
    // Master must never be a member of a member of rds_iam, not even for an operation: on RDS
    // (and in the sandbox) it could no longer log in with its password, and rds-pg opens new
    // connections mid-operation. The IAM user gives up rds_iam first and gets it back after
    // master gave up the membership (on the error path too); a run killed in between leaves
    // the user without it, which its next ensure_user grants again.
    let (suspend, restore) = if state.iam {
        (
            Some(Step::new(
                facts,
                None,
                Change::SuspendIam {
                    role: RoleName::from_catalog(role),
                },
                format!(
                    "{role:?} is an IAM user: master, made a member of it, would have to log in \
                     with IAM too; suspended for the operation"
                ),
            )),
            Some(Step::new(
                facts,
                None,
                Change::RestoreIam {
                    role: RoleName::from_catalog(role),
                    only_on_failure,
                },
                "master gave up its membership: the IAM user gets rds_iam back",
            )),
        )
    } else {
        (None, None)
    };
    Ok(Some(TemporaryMembership {
        suspend,
        grant,
        revoke,
        restore,
    }))
}

/// The revoke of a leftover membership of a role an operation touches without needing it.
pub(crate) fn leftover_cleanup(facts: &ServerFacts, role: &str, state: &RoleState) -> Option<Step> {
    state.leftover_membership.then(|| {
        Step::new(
            facts,
            None,
            Change::RevokeTemporaryMembership {
                role: RoleName::from_catalog(role),
                member: RoleName::from_catalog(&facts.current_user),
                only_on_failure: false,
                leftover: true,
                if_unlocked: false,
            },
            LEFTOVER_REASON,
        )
    })
}

/// Wraps the plan's steps with the temporary membership when one is needed (and there is
/// anything to do); a leftover membership is removed even when there is nothing else to do.
pub(crate) fn with_membership(membership: Option<TemporaryMembership>, plan: &mut Plan) {
    let Some(m) = membership else {
        return;
    };
    if plan.steps.is_empty() {
        if m.grant.is_none() {
            plan.steps.extend(m.start());
            plan.steps.extend(m.end());
        }
        return;
    }
    plan.steps.splice(0..0, m.start());
    plan.steps.extend(m.end());
}

/// Adds the removal of leftover memberships of the roles an operation touches.
pub(crate) fn with_leftover_cleanup<'a>(
    facts: &ServerFacts,
    roles: impl IntoIterator<Item = (&'a str, &'a RoleState)>,
    plan: &mut Plan,
) {
    for (name, state) in roles {
        let already = plan.steps.iter().any(|s| {
            s.kind() == StepKind::TemporaryRevoke
                && s.temporary_role().map(|r| r.as_str()) == Some(name)
        });
        if !already {
            plan.steps.extend(leftover_cleanup(facts, name, state));
        }
    }
}

/// The reason of the revoke of a leftover membership of a role the operation does not touch.
const UNTOUCHED_LEFTOVER_REASON: &str =
    "master was left a member of it (an operation that was killed, or a manual grant); rds-pg \
     grants that only for an operation (revoked unless an rds-pg operation on the role is running)";

/// Adds the removal of master's leftover memberships of login roles (`leftovers`, from the
/// operation's inspection) that the plan does not already end, except those in `keep` (roles the
/// plan drops: their memberships go with them). Each runs only when no other rds-pg operation
/// holds the role's lock ([`Step::only_if_unlocked`]): a membership such an operation holds is
/// its own, in use.
pub(crate) fn with_untouched_leftovers(
    facts: &ServerFacts,
    leftovers: &[String],
    keep: &[&str],
    plan: &mut Plan,
) {
    if facts.is_superuser {
        return;
    }
    for role in leftovers {
        if keep.contains(&role.as_str()) || role == &facts.current_user {
            continue;
        }
        let handled = plan
            .steps
            .iter()
            .any(|s| s.temporary_role().map(|r| r.as_str()) == Some(role.as_str()));
        if handled {
            continue;
        }
        plan.steps.push(Step::new(
            facts,
            None,
            Change::RevokeTemporaryMembership {
                role: RoleName::from_catalog(role),
                member: RoleName::from_catalog(&facts.current_user),
                only_on_failure: false,
                leftover: true,
                if_unlocked: true,
            },
            UNTOUCHED_LEFTOVER_REASON,
        ));
    }
}

/// Appends `steps` run as `owner` (SET ROLE … RESET ROLE), so what they create or grant comes
/// from the owner and PostgreSQL warns about nothing.
pub(crate) fn as_owner_block(
    facts: &ServerFacts,
    database: Option<&DatabaseName>,
    owner: &RoleName,
    reason: &str,
    steps: Vec<Step>,
    plan: &mut Plan,
) {
    if steps.is_empty() {
        return;
    }
    plan.steps.push(Step::new(
        facts,
        database,
        Change::SetRole {
            role: owner.clone(),
        },
        reason,
    ));
    plan.steps.extend(steps);
    plan.steps.push(Step::new(
        facts,
        database,
        Change::ResetRole,
        "back to master",
    ));
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::connect::ServerVersion;
    use crate::inspect::{RoleAccess, RoleState, ServerFacts};

    pub(crate) fn facts(major: u32) -> ServerFacts {
        ServerFacts {
            version: ServerVersion(major * 10000 + 1),
            major,
            current_user: "master".into(),
            current_database: "postgres".into(),
            is_superuser: false,
            memberships: vec![],
            extension_whitelist: Some(vec!["postgis".into()]),
        }
    }

    pub(crate) fn project_role(access: RoleAccess) -> RoleState {
        RoleState {
            can_login: true,
            connection_limit: -1,
            access,
            ..RoleState::default()
        }
    }

    /// What master has on a role it created on 16+: ADMIN only.
    pub(crate) const CREATED_BY_MASTER_16: RoleAccess = RoleAccess {
        usage: false,
        set: false,
        admin: true,
    };

    pub(crate) fn sql(plan: &super::Plan) -> Vec<String> {
        plan.sql()
    }

    #[test]
    fn leftovers_of_untouched_roles_are_revoked_only_when_unlocked() {
        use super::{Change, Plan, Step};
        use crate::ident::RoleName;
        for major in [14, 16] {
            let f = facts(major);
            let mut plan = Plan::default();
            // The plan ends its own membership of "owner" already.
            plan.steps.push(Step::new(
                &f,
                None,
                Change::RevokeTemporaryMembership {
                    role: RoleName::new("owner").unwrap(),
                    member: RoleName::new("master").unwrap(),
                    only_on_failure: false,
                    leftover: false,
                    if_unlocked: false,
                },
                "drop the temporary membership",
            ));
            let leftovers = ["gone".to_owned(), "heir".to_owned(), "owner".to_owned()];
            super::with_untouched_leftovers(&f, &leftovers, &["gone"], &mut plan);
            assert_eq!(
                sql(&plan),
                [
                    "REVOKE \"owner\" FROM \"master\"",
                    "REVOKE \"heir\" FROM \"master\""
                ]
            );
            let heir = &plan.steps[1];
            assert!(heir.removes_leftover() && heir.only_if_unlocked());
            assert!(!plan.steps[0].only_if_unlocked());
            assert!(heir
                .reason
                .contains("unless an rds-pg operation on the role is running"));
            // A superuser master holds no memberships to give up.
            let mut su = Plan::default();
            let facts_su = super::super::inspect::ServerFacts {
                is_superuser: true,
                ..f.clone()
            };
            super::with_untouched_leftovers(&facts_su, &leftovers, &[], &mut su);
            assert!(su.is_empty());
        }
    }
}
