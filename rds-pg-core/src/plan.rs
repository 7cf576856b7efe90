//! Plans and reports: the ordered steps an operation runs (or would run), each with the database
//! it runs in, its SQL with secrets redacted, and why it is needed.

use std::fmt;

use crate::ident::{DatabaseName, RoleName};
use crate::secret::{Password, ScramVerifier};

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
}

/// One statement of a plan.
#[derive(Clone)]
pub struct Step {
    /// The database the statement runs in; `None` is the maintenance database master is
    /// connected to.
    pub database: Option<DatabaseName>,
    /// The statement, with any password or verifier replaced by `[redacted]`.
    pub sql: String,
    /// Why it is needed.
    pub reason: String,
    /// What kind of step it is.
    pub kind: StepKind,
    /// Whether PostgreSQL forbids it inside a transaction block (`CREATE DATABASE`), so it is
    /// sent on its own.
    pub standalone: bool,
    /// The statement to execute when it differs from `sql` (it carries a verifier).
    secret: Option<ScramVerifier>,
    /// For temporary grants and revokes: the role master gains or gives up.
    pub(crate) role: Option<RoleName>,
    /// A revoke that runs only when the operation failed (the role itself is being dropped).
    pub(crate) only_on_failure: bool,
    /// Whether it runs alone in a session of its own whose default `search_path` is
    /// PostgreSQL's (`"$user", public`) rather than rds-pg's pinned one: only `CREATE EXTENSION`
    /// of an extension whose script reads the default path
    /// ([`Extension::script_reads_default_search_path`]).
    pub(crate) default_search_path: bool,
}

/// The placeholder that stands for a verifier in [`Step::sql`].
pub(crate) const REDACTED: &str = "'[redacted]'";

impl Step {
    pub(crate) fn new(
        database: Option<&DatabaseName>,
        kind: StepKind,
        sql: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Step {
            database: database.cloned(),
            sql: sql.into(),
            reason: reason.into(),
            kind,
            standalone: false,
            secret: None,
            role: None,
            only_on_failure: false,
            default_search_path: false,
        }
    }

    /// Runs alone, in a session whose default `search_path` is PostgreSQL's.
    pub(crate) fn in_default_search_path_session(mut self) -> Self {
        self.standalone = true;
        self.default_search_path = true;
        self
    }

    pub(crate) fn for_role(mut self, role: &RoleName) -> Self {
        self.role = Some(role.clone());
        self
    }

    pub(crate) fn only_on_failure(mut self) -> Self {
        self.only_on_failure = true;
        self
    }

    /// For a temporary grant or revoke: the role master gains or gives up for the operation.
    pub fn temporary_role(&self) -> Option<&RoleName> {
        self.role.as_ref()
    }

    /// A step whose SQL holds [`REDACTED`] where the verifier goes.
    pub(crate) fn with_verifier(mut self, verifier: ScramVerifier) -> Self {
        debug_assert!(self.sql.contains(REDACTED));
        self.secret = Some(verifier);
        self
    }

    pub(crate) fn standalone(mut self) -> Self {
        self.standalone = true;
        self
    }

    /// The SQL to send: [`Step::sql`] with the verifier filled in.
    pub(crate) fn executable_sql(&self) -> String {
        match &self.secret {
            Some(v) => self.sql.replacen(
                REDACTED,
                &postgres_protocol::escape::escape_literal(v.expose()),
                1,
            ),
            None => self.sql.clone(),
        }
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
            .field("sql", &self.sql)
            .field("reason", &self.reason)
            .field("kind", &self.kind)
            .field("standalone", &self.standalone)
            .finish()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {};  -- {}",
            self.database_label(),
            self.sql,
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
    /// The password generated for a new role (not part of any SQL).
    pub(crate) generated_password: Option<Password>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The redacted SQL of every step.
    pub fn sql(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.sql.as_str()).collect()
    }

    /// Roles master is granted for the duration of the operation.
    pub fn temporary_grants(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.kind == StepKind::TemporaryGrant)
            .map(|s| s.sql.clone())
            .collect()
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
    /// The password generated for a new role: shown once, here.
    pub generated_password: Option<Password>,
}

// ---------------------------------------------------------------------------------------------
// Planning: pure functions (snapshot × server facts × spec → steps). No server needed.
// ---------------------------------------------------------------------------------------------

use crate::error::{Error, Result};
use crate::ident::SchemaName;
use crate::inspect::{
    ClusterSnapshot, DatabaseObject, DatabaseSnapshot, RoleAccess, RoleState, ServerFacts,
    TemplateHazards, UserSnapshot,
};
use crate::spec::{DatabaseSpec, Extension, ReadOnlyGrant, UserSpec};

fn q(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

fn lit(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

/// Refuses the connected role, superusers and `rds_superuser` members: roles that administer the
/// instance, which rds-pg never drops or changes.
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

/// Plans `ensure_user`.
///
/// # Errors
/// [`Error::PolicyViolation`] for a role that is master, a superuser, an `rds_superuser` member,
/// or has REPLICATION/BYPASSRLS (which master cannot remove); [`Error::PermissionDenied`] on 16+
/// when master lacks ADMIN on an existing role that needs changes.
pub fn plan_user(facts: &ServerFacts, snapshot: &UserSnapshot, spec: &UserSpec) -> Result<Plan> {
    spec.validate()?;
    let name = spec.name.quoted();
    let mut plan = Plan::default();
    match &snapshot.role {
        None => {
            let mut sql = format!(
                "CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            );
            if let Some(limit) = spec.connection_limit {
                sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
            }
            if let Some(ts) = &spec.valid_until {
                sql.push_str(&format!(" VALID UNTIL {}", lit(ts)));
            }
            sql.push_str(" PASSWORD ");
            sql.push_str(REDACTED);
            let password = match &spec.password {
                Some(p) => p.clone(),
                None => {
                    let p = Password::generate()?;
                    plan.generated_password = Some(p.clone());
                    p
                }
            };
            plan.steps.push(
                Step::new(None, StepKind::Change, sql, "the role does not exist")
                    .with_verifier(password.scram_verifier()),
            );
        }
        Some(role) => {
            refuse_privileged(spec.name.as_str(), role, "project user")?;
            let mut attrs = Vec::new();
            if !role.can_login {
                attrs.push("LOGIN".to_owned());
            }
            if let Some(limit) = spec
                .connection_limit
                .filter(|l| *l != role.connection_limit)
            {
                attrs.push(format!("CONNECTION LIMIT {limit}"));
            }
            if let (Some(ts), true) = (&spec.valid_until, role.valid_until_differs) {
                attrs.push(format!("VALID UNTIL {}", lit(ts)));
            }
            if !attrs.is_empty() {
                if facts.major >= 16 && !role.access.admin && !facts.is_superuser {
                    return Err(missing_admin(facts, spec.name.as_str()));
                }
                plan.steps.push(Step::new(
                    None,
                    StepKind::Change,
                    format!("ALTER ROLE {name} {}", attrs.join(" ")),
                    "the role's attributes differ from a project user's",
                ));
            }
            if spec.password.is_some() {
                plan.notes.push(format!(
                    "{:?} exists: its password was left unchanged (rotate it explicitly)",
                    spec.name.as_str()
                ));
            }
        }
    }
    Ok(plan)
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

/// The temporary membership master needs to act as `owner`, as a (grant, revoke) pair, or
/// nothing when it already can.
pub(crate) fn temporary_membership(
    facts: &ServerFacts,
    owner: &str,
    access: &RoleAccess,
) -> Result<Option<(Step, Step)>> {
    if facts.is_superuser || access.acts_as() {
        return Ok(None);
    }
    if facts.major >= 16 && !access.admin {
        return Err(missing_admin(facts, owner));
    }
    let grant_sql = if facts.major >= 16 {
        format!(
            "GRANT {} TO {} WITH INHERIT TRUE, SET TRUE",
            q(owner),
            q(&facts.current_user)
        )
    } else {
        format!("GRANT {} TO {}", q(owner), q(&facts.current_user))
    };
    let grant = Step::new(
        None,
        StepKind::TemporaryGrant,
        grant_sql,
        format!(
            "{} must act as {owner:?} (RDS master is not a superuser)",
            facts.current_user
        ),
    );
    let revoke = Step::new(
        None,
        StepKind::TemporaryRevoke,
        format!("REVOKE {} FROM {}", q(owner), q(&facts.current_user)),
        "drop the temporary membership",
    );
    // Catalog names of project roles are valid RoleNames; master never gains a `pg_` role.
    Ok(Some(match RoleName::new(owner) {
        Ok(role) => (grant.for_role(&role), revoke.for_role(&role)),
        Err(_) => (grant, revoke),
    }))
}

/// Whether an extension may be created by master here, checked before any SQL.
fn check_extension_allowed(
    facts: &ServerFacts,
    snapshot: &ClusterSnapshot,
    ext: &Extension,
) -> Result<bool> {
    let name = ext.name();
    let Some(available) = snapshot.available.iter().find(|a| a.name == name) else {
        return Err(Error::NotFound {
            message: format!("extension {name:?} is not available on this server"),
            source: None,
        });
    };
    if !available.trusted && !facts.is_superuser {
        let listed = facts
            .extension_whitelist
            .as_ref()
            .map(|w| w.iter().any(|e| e == name));
        if listed != Some(true) {
            return Err(Error::PermissionDenied {
                message: format!(
                    "extension {name:?} is not trusted and not in this server's extension whitelist \
                     (rds.extensions), so {:?} cannot create it",
                    facts.current_user
                ),
                hint: Some("choose an extension RDS supports for this engine version".into()),
                source: None,
            });
        }
    }
    Ok(available.trusted)
}

/// The requested extensions with their prerequisites first, each once.
fn with_requirements(extensions: &[Extension]) -> Vec<Extension> {
    let mut out: Vec<Extension> = Vec::new();
    for e in extensions {
        for r in e.requires() {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

/// `description (owner)` of each object, comma-separated.
fn describe_objects(objects: &[DatabaseObject]) -> String {
    objects
        .iter()
        .map(|o| format!("{} (owner {:?})", o.description, o.owner))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal of an extension whose script would run where the owner planted names that shadow
/// pg_catalog's: an untrusted extension's script runs as master (through RDS's whitelist, as the
/// superuser), so any of them it called would run the planter's code with those rights.
fn shadowing_refusal(
    database: &DatabaseName,
    owner: &RoleName,
    ext: &Extension,
    trusted: bool,
    shadowing: &[DatabaseObject],
) -> Error {
    let drops: Vec<String> = shadowing
        .iter()
        .map(|o| {
            o.drop_sql
                .clone()
                .unwrap_or_else(|| format!("-- remove {}", o.description))
        })
        .collect();
    Error::Refused {
        message: format!(
            "{} extension {ext} would run its script in {:?} with {} on its search_path: any of \
             them it called would run as {}. The owner {:?} removes them (the fix's SQL) or \
             moves them to another schema",
            if trusted { "trusted" } else { "untrusted" },
            database.as_str(),
            describe_objects(shadowing),
            if trusted {
                "the bootstrap superuser"
            } else {
                "master or the superuser"
            },
            owner.as_str()
        ),
        fix: drops.join(";\n"),
    }
}

/// The refusal of a template that holds what would be copied into a new database.
fn template_refusal(
    facts: &ServerFacts,
    template: &DatabaseName,
    database: &DatabaseName,
    hazards: &TemplateHazards,
) -> Error {
    let mut problems = Vec::new();
    let mut fix = Vec::new();
    if !hazards.foreign_objects.is_empty() {
        problems.push(format!(
            "it holds {} object(s) of roles other than {:?}: {}",
            hazards.foreign_objects.len(),
            facts.current_user,
            describe_objects(&hazards.foreign_objects)
        ));
        let mut owners: Vec<&str> = Vec::new();
        for o in &hazards.foreign_objects {
            match (&o.drop_sql, o.schema_owned_by_master || o.schema.is_none()) {
                (Some(sql), true) => fix.push(sql.clone()),
                _ => {
                    if !owners.contains(&o.owner.as_str()) {
                        owners.push(&o.owner);
                    }
                }
            }
        }
        for owner in owners {
            fix.push(format!(
                "-- as {owner:?} (or a role with its privileges): DROP OWNED BY {} in {:?} \
                 (what remains of it there)",
                q(owner),
                template.as_str()
            ));
        }
    }
    for (schema, grantee) in &hazards.schema_create_grants {
        problems.push(format!("{grantee} may create objects in schema {schema:?}"));
        fix.push(format!(
            "REVOKE CREATE ON SCHEMA {} FROM {}",
            q(schema),
            grantee_sql(grantee)
        ));
    }
    for grantee in &hazards.database_create_grants {
        problems.push(format!("{grantee} may create schemas in it"));
        fix.push(format!(
            "REVOKE CREATE ON DATABASE {} FROM {}",
            template.quoted(),
            grantee_sql(grantee)
        ));
    }
    Error::Refused {
        message: format!(
            "template {:?} is not safe to copy into new database {:?}: {}. Everything in a \
             template is copied into the databases created from it, owners and privileges \
             included. Connected to {:?} as {:?}, the fix's SQL cleans it (`rds-pg instance \
             secure` revokes PUBLIC's CREATE on schema public in postgres and template1)",
            template.as_str(),
            database.as_str(),
            problems.join("; "),
            template.as_str(),
            facts.current_user,
        ),
        fix: fix.join(";\n"),
    }
}

fn grantee_sql(grantee: &str) -> String {
    if grantee == "PUBLIC" {
        "PUBLIC".to_owned()
    } else {
        q(grantee)
    }
}

/// The template a new database is created from: the spec's, else `template0` on 15+ and
/// `template1` before 15 (see [`DatabaseSpec::template`]).
pub fn resolve_template(facts: &ServerFacts, spec: &DatabaseSpec) -> crate::ident::DatabaseName {
    spec.template.clone().unwrap_or_else(|| {
        let name = if facts.major >= 15 {
            "template0"
        } else {
            "template1"
        };
        crate::ident::DatabaseName::new(name).expect("a valid name")
    })
}

/// The database snapshot of a database about to be created from `template0` (which cannot be
/// connected to, so it is described from the version).
pub fn fresh_database_snapshot(facts: &ServerFacts) -> DatabaseSnapshot {
    DatabaseSnapshot {
        // template0's public schema: pg_database_owner from 15 on, the bootstrap superuser (with
        // CREATE for PUBLIC) before.
        public_owner: Some(if facts.major >= 15 {
            "pg_database_owner".into()
        } else {
            "rdsadmin".into()
        }),
        public_create_for_public: facts.major < 15,
        ..DatabaseSnapshot::default()
    }
}

/// Plans the in-database part of `ensure_database`/`ensure_extensions`: extensions, fix-ups and
/// the public schema's owner.
fn plan_in_database(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    database: &crate::ident::DatabaseName,
    owner: &RoleName,
    extensions: &[Extension],
    strict: bool,
    plan: &mut Plan,
) -> Result<()> {
    let d = Some(database);
    let mut as_owner = Vec::new();
    let mut shadow_noted = false;
    for ext in with_requirements(extensions) {
        let trusted = check_extension_allowed(facts, cluster, &ext)?;
        let installed = db.extensions.iter().find(|e| e.name == ext.name());
        if installed.is_none() && db.uninspected && !trusted {
            return Err(Error::Refused {
                message: format!(
                    "master cannot look inside database {:?} yet (no CONNECT), so it cannot check \
                     what the owner planted where untrusted extension {ext} would run its script",
                    database.as_str()
                ),
                fix: format!(
                    "converge the database without extensions first (it grants master CONNECT), \
                     then add {ext}"
                ),
            });
        }
        if installed.is_none() && !db.shadowing.is_empty() {
            if !trusted || strict {
                return Err(shadowing_refusal(
                    database,
                    owner,
                    &ext,
                    trusted,
                    &db.shadowing,
                ));
            }
            if !shadow_noted {
                shadow_noted = true;
                plan.notes.push(format!(
                    "{} in {:?} share a name with pg_catalog ones and belong to no extension: \
                     trusted extensions are still created (as the owner, who could create them \
                     too); untrusted ones would be refused",
                    describe_objects(&db.shadowing),
                    database.as_str()
                ));
            }
        }
        let schema = match installed {
            Some(e) => e.schema.clone(),
            None => {
                let schema_clause = if ext == Extension::PostgisTopology {
                    ""
                } else {
                    " SCHEMA public"
                };
                let sql = format!(
                    "CREATE EXTENSION IF NOT EXISTS {}{schema_clause}",
                    q(ext.name())
                );
                if trusted {
                    as_owner.push(Step::new(
                        d,
                        StepKind::Change,
                        sql,
                        format!("trusted extension {ext}: created as the owner, who then owns it"),
                    ));
                } else {
                    let step = Step::new(
                        d,
                        StepKind::Change,
                        sql,
                        format!("untrusted extension {ext}: only master may create it"),
                    );
                    plan.steps.push(if ext.script_reads_default_search_path() {
                        step.in_default_search_path_session()
                    } else {
                        step
                    });
                }
                "public".to_owned()
            }
        };
        let owned_by_owner = |qualified: &str| {
            db.relation_owners
                .iter()
                .any(|(rel, o)| rel == qualified && o == owner.as_str())
        };
        let needs_fixup = match &ext {
            Extension::Postgis => !owned_by_owner(&format!("{schema}.spatial_ref_sys")),
            Extension::PostgisTopology => {
                db.topology_owner.as_deref() != Some(owner.as_str())
                    || !owned_by_owner("topology.topology")
                    || !owned_by_owner("topology.layer")
            }
            _ => false,
        };
        if needs_fixup {
            for sql in ext.fixups(&schema, owner) {
                plan.steps.push(Step::new(
                    d,
                    StepKind::Change,
                    sql,
                    format!("the owner must own {ext}'s tables to use them fully"),
                ));
            }
        }
    }
    // Schema public: the owner's (directly or as pg_database_owner), and, as on 15+, nobody
    // else may create in it.
    let owner_controls_public = match db.public_owner.as_deref() {
        None => false,
        Some("pg_database_owner") => true,
        Some(o) if o == owner.as_str() => true,
        Some(o) => {
            let master_owns = o == facts.current_user
                || facts.memberships.iter().any(|m| m.role == o && m.inherit);
            if master_owns || facts.is_superuser {
                plan.steps.push(Step::new(
                    d,
                    StepKind::Change,
                    format!("ALTER SCHEMA public OWNER TO {}", owner.quoted()),
                    format!("schema public is owned by {o:?}, not pg_database_owner"),
                ));
                true
            } else {
                plan.notes.push(format!(
                    "schema public in {:?} is owned by {o:?}, which master cannot act for; left as is \
                     (PUBLIC keeps CREATE on it: create the database from template1 instead)",
                    database.as_str()
                ));
                false
            }
        }
    };
    if owner_controls_public && db.public_create_for_public {
        as_owner.push(Step::new(
            d,
            StepKind::Change,
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            "only the owner may create objects in schema public (the 15+ default)",
        ));
    }
    if !as_owner.is_empty() {
        plan.steps.push(Step::new(
            d,
            StepKind::SetRole,
            format!("SET ROLE {}", owner.quoted()),
            "act as the owner",
        ));
        plan.steps.extend(as_owner);
        plan.steps.push(Step::new(
            d,
            StepKind::ResetRole,
            "RESET ROLE",
            "back to master",
        ));
    }
    Ok(())
}

/// Wraps `steps` with the temporary membership when one is needed.
fn with_membership(membership: Option<(Step, Step)>, plan: &mut Plan) {
    if plan.steps.is_empty() {
        return;
    }
    if let Some((grant, revoke)) = membership {
        plan.steps.insert(0, grant);
        plan.steps.push(revoke);
    }
}

/// Plans `ensure_database`. `db` is the inspected database, or [`fresh_database_snapshot`] when
/// it does not exist yet.
///
/// # Errors
/// [`Error::NotFound`] for a missing owner or an unavailable extension,
/// [`Error::PolicyViolation`] for a privileged owner or an encoding mismatch,
/// [`Error::PermissionDenied`] (with the fix) when master cannot gain the owner's membership.
pub fn plan_database(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    spec: &DatabaseSpec,
) -> Result<Plan> {
    spec.validate()?;
    let owner = cluster.role.as_ref().ok_or_else(|| Error::NotFound {
        message: format!(
            "owner role {:?} does not exist (ensure_user first)",
            spec.owner.as_str()
        ),
        source: None,
    })?;
    refuse_privileged(spec.owner.as_str(), owner, "database owner")?;
    let mut plan = Plan::default();
    let name = spec.name.quoted();
    let owner_q = spec.owner.quoted();
    match &cluster.database {
        None => {
            let template = resolve_template(facts, spec);
            if let Some(hazards) = db.template_hazards.as_ref().filter(|h| !h.is_empty()) {
                return Err(template_refusal(facts, &template, &spec.name, hazards));
            }
            let mut sql = format!(
                "CREATE DATABASE {name} OWNER {owner_q} TEMPLATE {}",
                template.quoted()
            );
            sql.push_str(&format!(" ENCODING {}", lit(&spec.encoding)));
            if let Some(l) = &spec.locale {
                sql.push_str(&format!(" LOCALE {}", lit(l)));
            }
            if let Some(l) = &spec.lc_collate {
                sql.push_str(&format!(" LC_COLLATE {}", lit(l)));
            }
            if let Some(l) = &spec.lc_ctype {
                sql.push_str(&format!(" LC_CTYPE {}", lit(l)));
            }
            if let Some(limit) = spec.connection_limit {
                sql.push_str(&format!(" CONNECTION LIMIT {limit}"));
            }
            plan.steps.push(
                Step::new(None, StepKind::Change, sql, "the database does not exist").standalone(),
            );
            plan.steps.push(Step::new(
                None,
                StepKind::Change,
                format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
                "only the project's roles may connect",
            ));
            plan.steps.push(master_connect_step(facts, &spec.name));
        }
        Some(state) => {
            if !same_encoding(&state.encoding, &spec.encoding) {
                return Err(Error::PolicyViolation(format!(
                    "database {:?} exists with encoding {}, not {}; rds-pg does not recreate databases",
                    spec.name.as_str(),
                    state.encoding,
                    spec.encoding
                )));
            }
            if state.owner != spec.owner.as_str() {
                if !state.master_has_owner_privileges && !facts.is_superuser {
                    return Err(Error::PermissionDenied {
                        message: format!(
                            "database {:?} is owned by {:?}, whose privileges master does not have",
                            spec.name.as_str(),
                            state.owner
                        ),
                        hint: Some(format!(
                            "GRANT {} TO {}",
                            q(&state.owner),
                            q(&facts.current_user)
                        )),
                        source: None,
                    });
                }
                plan.steps.push(Step::new(
                    None,
                    StepKind::Change,
                    format!("ALTER DATABASE {name} OWNER TO {owner_q}"),
                    format!("owned by {:?}", state.owner),
                ));
            }
            if let Some(limit) = spec
                .connection_limit
                .filter(|l| *l != state.connection_limit)
            {
                plan.steps.push(Step::new(
                    None,
                    StepKind::Change,
                    format!("ALTER DATABASE {name} CONNECTION LIMIT {limit}"),
                    "the connection limit differs",
                ));
            }
            if state.public_has_privileges {
                plan.steps.push(Step::new(
                    None,
                    StepKind::Change,
                    format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
                    "PUBLIC may connect to it",
                ));
            }
            if !state.master_can_connect && !facts.is_superuser {
                plan.steps.push(master_connect_step(facts, &spec.name));
            }
        }
    }
    plan_in_database(
        facts,
        cluster,
        db,
        &spec.name,
        &spec.owner,
        &spec.extensions,
        spec.strict,
        &mut plan,
    )?;
    with_membership(
        temporary_membership(facts, spec.owner.as_str(), &owner.access)?,
        &mut plan,
    );
    Ok(plan)
}

/// Plans `secure_instance`: in each database given (`None` is the maintenance database), revoke
/// PUBLIC's CREATE on schema `public` where it is granted and master controls the schema. Before
/// PostgreSQL 15 every login role may create there, in `postgres` and `template1` included, and
/// whatever it creates in `template1` is copied into every database created from it.
pub fn plan_secure_instance(
    facts: &ServerFacts,
    databases: &[(Option<DatabaseName>, DatabaseSnapshot)],
) -> Plan {
    let mut plan = Plan::default();
    for (database, db) in databases {
        let label = database
            .as_ref()
            .map(|d| d.as_str())
            .unwrap_or(&facts.current_database);
        if !db.public_create_for_public {
            continue;
        }
        let controls = match db.public_owner.as_deref() {
            None => continue,
            Some("pg_database_owner") => true,
            Some(o) => {
                o == facts.current_user
                    || facts.is_superuser
                    || facts.memberships.iter().any(|m| m.role == o && m.inherit)
            }
        };
        if controls {
            plan.steps.push(Step::new(
                database.as_ref(),
                StepKind::Change,
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                format!(
                    "any login role may create objects in schema public of {label:?}{}",
                    if label == "template1" {
                        ", and they would be copied into every database created from it"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            plan.notes.push(format!(
                "PUBLIC may create in schema public of {label:?}, which is owned by {:?}: only \
                 its owner can revoke that",
                db.public_owner.as_deref().unwrap_or_default()
            ));
        }
    }
    plan
}

/// `GRANT CONNECT … TO master`, so later runs can inspect the database once PUBLIC lost CONNECT
/// (the seed grants master all privileges on the database for the same reason).
fn master_connect_step(facts: &ServerFacts, database: &crate::ident::DatabaseName) -> Step {
    Step::new(
        None,
        StepKind::Change,
        format!(
            "GRANT CONNECT ON DATABASE {} TO {}",
            database.quoted(),
            q(&facts.current_user)
        ),
        "master must be able to connect to inspect and maintain it",
    )
}

/// Refuses to plan inside a database master cannot connect to.
pub(crate) fn ensure_master_can_connect(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    database: &crate::ident::DatabaseName,
) -> Result<()> {
    match &cluster.database {
        Some(d) if !d.master_can_connect && !facts.is_superuser => Err(Error::PermissionDenied {
            message: format!("{:?} has no CONNECT privilege on database {:?}", facts.current_user, database.as_str()),
            hint: Some(format!(
                "run ensure_database for {:?} once (it grants master CONNECT), or as its owner: GRANT CONNECT ON DATABASE {} TO {}",
                database.as_str(),
                database.quoted(),
                q(&facts.current_user)
            )),
            source: None,
        }),
        _ => Ok(()),
    }
}

/// Encoding names as PostgreSQL compares them: case, `-` and `_` do not matter (`utf-8` = `UTF8`).
fn same_encoding(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_uppercase()
    };
    norm(a) == norm(b)
}

/// Plans `ensure_extensions` for an existing database (owner from the cluster snapshot).
///
/// # Errors
/// As [`plan_database`].
pub fn plan_extensions(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    database: &crate::ident::DatabaseName,
    extensions: &[Extension],
) -> Result<Plan> {
    let state = cluster.database.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("database {:?} does not exist", database.as_str()),
        source: None,
    })?;
    let owner_state = cluster.owner.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("the owner of {:?} is not visible", database.as_str()),
        source: None,
    })?;
    let owner = RoleName::new(state.owner.as_str())?;
    let mut plan = Plan::default();
    plan_in_database(
        facts, cluster, db, database, &owner, extensions, false, &mut plan,
    )?;
    if owner.as_str() != facts.current_user {
        with_membership(
            temporary_membership(facts, owner.as_str(), &owner_state.access)?,
            &mut plan,
        );
    }
    Ok(plan)
}

fn relation_list(items: &[(String, char)], kind: char) -> Vec<&str> {
    items
        .iter()
        .filter(|(_, k)| *k == kind)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// Plans `grant_read_only`: CONNECT, USAGE, SELECT on existing tables and sequences, and default
/// privileges, all granted as the database owner.
///
/// # Errors
/// [`Error::NotFound`] for a missing database, role or schema; [`Error::PolicyViolation`] for a
/// privileged role; [`Error::PermissionDenied`] when master cannot act as the owner.
pub fn plan_grant_read_only(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    grant: &ReadOnlyGrant,
) -> Result<Plan> {
    grant.validate()?;
    let (state, owner_state, role) = read_only_subjects(cluster, grant)?;
    refuse_privileged(grant.role.as_str(), role, "read-only user")?;
    check_schemas(db, &grant.schemas, &grant.database)?;
    let owner = RoleName::new(state.owner.as_str())?;
    let o = owner.quoted();
    let r = grant.role.quoted();
    let d = Some(&grant.database);
    let mut plan = Plan::default();
    let mut maint = Vec::new();
    if !cluster.role_can_connect {
        maint.push(Step::new(
            None,
            StepKind::Change,
            format!(
                "GRANT CONNECT ON DATABASE {} TO {r}",
                grant.database.quoted()
            ),
            "the role may not connect",
        ));
    }
    let mut inside = Vec::new();
    for schema in &db.schemas {
        let s = q(&schema.name);
        let owner_controls = schema.owner == owner.as_str() || schema.owner == "pg_database_owner";
        if !schema.role_has_usage {
            if owner_controls {
                inside.push(Step::new(
                    d,
                    StepKind::Change,
                    format!("GRANT USAGE ON SCHEMA {s} TO {r}"),
                    "the role cannot use the schema",
                ));
            } else {
                plan.notes.push(format!(
                    "schema {:?} is owned by {:?}, not the database owner; USAGE not granted",
                    schema.name, schema.owner
                ));
            }
        }
    }
    let tables = relation_list(&db.unreadable, 'r');
    if !tables.is_empty() {
        inside.push(Step::new(
            d,
            StepKind::Change,
            format!("GRANT SELECT ON TABLE {} TO {r}", tables.join(", ")),
            "existing tables and views the role cannot read",
        ));
    }
    let sequences = relation_list(&db.unreadable, 'S');
    if grant.sequences && !sequences.is_empty() {
        inside.push(Step::new(
            d,
            StepKind::Change,
            format!("GRANT SELECT ON SEQUENCE {} TO {r}", sequences.join(", ")),
            "existing sequences the role cannot read",
        ));
    }
    for foreign in &db.foreign_unreadable {
        plan.notes.push(format!(
            "{foreign} is not owned by the database owner; SELECT not granted"
        ));
    }
    if grant.future {
        for schema in &db.schemas {
            let mut kinds = vec![('r', "TABLES")];
            if grant.sequences {
                kinds.push(('S', "SEQUENCES"));
            }
            for (kind, word) in kinds {
                if !db
                    .default_selects
                    .iter()
                    .any(|(s, k)| s == &schema.name && *k == kind)
                {
                    inside.push(Step::new(d, StepKind::Change, format!("ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {} GRANT SELECT ON {word} TO {r}", q(&schema.name)), format!("{word} the owner creates later must be readable too").to_lowercase()));
                }
            }
        }
    }
    as_owner_block(None, &owner, maint, &mut plan);
    as_owner_block(d, &owner, inside, &mut plan);
    if owner.as_str() != facts.current_user {
        with_membership(
            temporary_membership(facts, owner.as_str(), &owner_state.access)?,
            &mut plan,
        );
    }
    Ok(plan)
}

/// Plans `revoke_read_only`: removes what [`plan_grant_read_only`] grants.
///
/// # Errors
/// As [`plan_grant_read_only`].
pub fn plan_revoke_read_only(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    grant: &ReadOnlyGrant,
) -> Result<Plan> {
    grant.validate()?;
    let (state, owner_state, _role) = read_only_subjects(cluster, grant)?;
    let owner = RoleName::new(state.owner.as_str())?;
    let o = owner.quoted();
    let r = grant.role.quoted();
    let d = Some(&grant.database);
    let mut plan = Plan::default();
    let mut inside = Vec::new();
    let tables = relation_list(&db.explicitly_readable, 'r');
    if !tables.is_empty() {
        inside.push(Step::new(
            d,
            StepKind::Change,
            format!("REVOKE SELECT ON TABLE {} FROM {r}", tables.join(", ")),
            "read access to tables",
        ));
    }
    let sequences = relation_list(&db.explicitly_readable, 'S');
    if !sequences.is_empty() {
        inside.push(Step::new(
            d,
            StepKind::Change,
            format!(
                "REVOKE SELECT ON SEQUENCE {} FROM {r}",
                sequences.join(", ")
            ),
            "read access to sequences",
        ));
    }
    for (schema, kind) in &db.default_selects {
        let word = if *kind == 'S' { "SEQUENCES" } else { "TABLES" };
        inside.push(Step::new(d, StepKind::Change, format!("ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {} REVOKE SELECT ON {word} FROM {r}", q(schema)), "read access to future objects"));
    }
    for schema in &db.schemas {
        if schema.role_has_explicit_usage {
            inside.push(Step::new(
                d,
                StepKind::Change,
                format!("REVOKE USAGE ON SCHEMA {} FROM {r}", q(&schema.name)),
                "schema access",
            ));
        }
    }
    let mut maint = Vec::new();
    if cluster.role_has_database_grant {
        maint.push(Step::new(
            None,
            StepKind::Change,
            format!(
                "REVOKE ALL ON DATABASE {} FROM {r}",
                grant.database.quoted()
            ),
            "the role may connect",
        ));
    }
    as_owner_block(d, &owner, inside, &mut plan);
    as_owner_block(None, &owner, maint, &mut plan);
    if owner.as_str() != facts.current_user {
        with_membership(
            temporary_membership(facts, owner.as_str(), &owner_state.access)?,
            &mut plan,
        );
    }
    Ok(plan)
}

fn read_only_subjects<'a>(
    cluster: &'a ClusterSnapshot,
    grant: &ReadOnlyGrant,
) -> Result<(
    &'a crate::inspect::DatabaseState,
    &'a RoleState,
    &'a RoleState,
)> {
    let state = cluster.database.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("database {:?} does not exist", grant.database.as_str()),
        source: None,
    })?;
    let owner = cluster.owner.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("the owner of {:?} is not visible", grant.database.as_str()),
        source: None,
    })?;
    let role = cluster.role.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("role {:?} does not exist", grant.role.as_str()),
        source: None,
    })?;
    Ok((state, owner, role))
}

fn check_schemas(
    db: &DatabaseSnapshot,
    schemas: &[SchemaName],
    database: &crate::ident::DatabaseName,
) -> Result<()> {
    for s in schemas {
        if !db.schemas.iter().any(|x| x.name == s.as_str()) {
            return Err(Error::NotFound {
                message: format!(
                    "schema {:?} does not exist in database {:?}",
                    s.as_str(),
                    database.as_str()
                ),
                source: None,
            });
        }
    }
    Ok(())
}

/// Appends `steps` run as `owner` (SET ROLE … RESET ROLE), so grants come from the owner and
/// PostgreSQL warns about nothing.
fn as_owner_block(
    database: Option<&crate::ident::DatabaseName>,
    owner: &RoleName,
    steps: Vec<Step>,
    plan: &mut Plan,
) {
    if steps.is_empty() {
        return;
    }
    plan.steps.push(Step::new(
        database,
        StepKind::SetRole,
        format!("SET ROLE {}", owner.quoted()),
        "grant as the owner",
    ));
    plan.steps.extend(steps);
    plan.steps.push(Step::new(
        database,
        StepKind::ResetRole,
        "RESET ROLE",
        "back to master",
    ));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::connect::ServerVersion;
    use crate::inspect::{AvailableExtension, DatabaseState, InstalledExtension, SchemaState};

    pub(crate) fn facts(major: u32) -> ServerFacts {
        ServerFacts {
            version: ServerVersion(major * 10000 + 1),
            major,
            current_user: "master".into(),
            current_database: "postgres".into(),
            is_superuser: false,
            can_create_role: true,
            can_create_db: true,
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

    fn cluster(access: RoleAccess, database: Option<DatabaseState>) -> ClusterSnapshot {
        ClusterSnapshot {
            database,
            role: Some(project_role(access)),
            owner: None,
            available: vec![
                AvailableExtension {
                    name: "hstore".into(),
                    trusted: true,
                },
                AvailableExtension {
                    name: "postgis".into(),
                    trusted: false,
                },
                AvailableExtension {
                    name: "pg_stat_statements".into(),
                    trusted: false,
                },
            ],
            role_can_connect: false,
            role_has_database_grant: false,
        }
    }

    fn sql(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|s| s.sql.clone()).collect()
    }

    const CREATED_BY_MASTER_16: RoleAccess = RoleAccess {
        usage: false,
        set: false,
        admin: true,
    };

    #[test]
    fn new_user_gets_a_verifier_and_a_generated_password_that_never_shows() {
        let spec = UserSpec::new("app").unwrap();
        let plan = plan_user(&facts(15), &UserSnapshot::default(), &spec).unwrap();
        assert_eq!(
            sql(&plan),
            ["CREATE ROLE \"app\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '[redacted]'"]
        );
        let password = plan.generated_password.clone().expect("generated");
        let executable = plan.steps[0].executable_sql();
        assert!(executable.contains("'SCRAM-SHA-256$4096:"));
        assert!(!executable.contains(password.expose()));
        assert!(!format!("{plan:?}{plan}").contains(password.expose()));
    }

    #[test]
    fn existing_compliant_user_needs_nothing_and_keeps_its_password() {
        let spec = UserSpec::new("app").unwrap().password("x");
        let snap = UserSnapshot {
            role: Some(project_role(RoleAccess::default())),
        };
        let plan = plan_user(&facts(16), &snap, &spec).unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.notes.len(), 1, "says the password was left unchanged");
    }

    #[test]
    fn privileged_roles_are_refused() {
        let spec = UserSpec::new("app").unwrap();
        for role in [
            RoleState {
                superuser: true,
                ..RoleState::default()
            },
            RoleState {
                is_current_user: true,
                ..RoleState::default()
            },
            RoleState {
                privileged_memberships: vec!["rds_superuser".into()],
                ..RoleState::default()
            },
            RoleState {
                bypass_rls: true,
                ..RoleState::default()
            },
        ] {
            let err = plan_user(&facts(15), &UserSnapshot { role: Some(role) }, &spec).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::PolicyViolation, "{err}");
        }
    }

    #[test]
    fn converging_an_existing_role_needs_admin_on_16() {
        let spec = UserSpec::new("app").unwrap();
        let snap = UserSnapshot {
            role: Some(RoleState {
                can_login: false,
                ..project_role(RoleAccess::default())
            }),
        };
        let plan = plan_user(&facts(15), &snap, &spec).unwrap();
        assert_eq!(sql(&plan), ["ALTER ROLE \"app\" LOGIN"]);
        let err = plan_user(&facts(16), &snap, &spec).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
        assert!(
            err.hint()
                .unwrap()
                .contains("GRANT \"app\" TO \"master\" WITH ADMIN OPTION"),
            "{err}"
        );
    }

    #[test]
    fn roles_holding_more_than_a_project_role_are_refused_with_the_sql_that_fixes_them() {
        let cases: [(RoleState, &str); 4] = [
            (
                RoleState {
                    create_db: true,
                    create_role: true,
                    ..project_role(RoleAccess::default())
                },
                "ALTER ROLE \"app\" NOCREATEROLE NOCREATEDB",
            ),
            (
                RoleState {
                    privileged_memberships: vec!["pg_read_all_data".into()],
                    ..project_role(RoleAccess::default())
                },
                "REVOKE \"pg_read_all_data\" FROM \"app\"",
            ),
            (
                RoleState {
                    privileged_memberships: vec!["master".into()],
                    ..project_role(RoleAccess::default())
                },
                "REVOKE \"master\" FROM \"app\"",
            ),
            (
                RoleState {
                    replication: true,
                    ..project_role(RoleAccess::default())
                },
                "ALTER ROLE \"app\" NOREPLICATION",
            ),
        ];
        for (role, fix) in cases {
            let snap = UserSnapshot {
                role: Some(role.clone()),
            };
            for major in [13, 16] {
                let err =
                    plan_user(&facts(major), &snap, &UserSpec::new("app").unwrap()).unwrap_err();
                assert_eq!(err.kind(), crate::ErrorKind::PolicyViolation, "{err}");
                assert!(err.hint().unwrap().contains(fix), "{err}");
            }
            // As an owner and as a reader too.
            let mut c = cluster(RoleAccess::default(), None);
            c.role = Some(role.clone());
            let err = plan_database(
                &facts(15),
                &c,
                &fresh_database_snapshot(&facts(15)),
                &db_spec(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::PolicyViolation, "{err}");
        }
    }

    fn db_spec() -> DatabaseSpec {
        DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::Hstore)
            .extension(Extension::Postgis)
    }

    #[test]
    fn new_database_on_13_to_15_uses_a_plain_temporary_grant() {
        for major in [13, 14, 15] {
            let f = facts(major);
            // Before 15 the default template is template1, whose public schema master owns.
            let snapshot = if major < 15 {
                DatabaseSnapshot {
                    public_owner: Some("master".into()),
                    public_create_for_public: true,
                    ..DatabaseSnapshot::default()
                }
            } else {
                fresh_database_snapshot(&f)
            };
            let plan = plan_database(
                &f,
                &cluster(RoleAccess::default(), None),
                &snapshot,
                &db_spec(),
            )
            .unwrap();
            let sql = sql(&plan);
            assert_eq!(sql.first().unwrap(), "GRANT \"app\" TO \"master\"");
            assert_eq!(sql.last().unwrap(), "REVOKE \"app\" FROM \"master\"");
            assert!(plan.steps[1].standalone, "CREATE DATABASE goes alone");
            let template = if major < 15 { "template1" } else { "template0" };
            assert_eq!(sql[1], format!("CREATE DATABASE \"appdb\" OWNER \"app\" TEMPLATE \"{template}\" ENCODING 'UTF8'"));
            assert_eq!(sql[2], "REVOKE ALL ON DATABASE \"appdb\" FROM PUBLIC");
            assert_eq!(sql[3], "GRANT CONNECT ON DATABASE \"appdb\" TO \"master\"");
            // PostGIS as master, then its table to the owner; hstore as the owner.
            assert!(sql
                .contains(&"CREATE EXTENSION IF NOT EXISTS \"postgis\" SCHEMA public".to_owned()));
            assert!(
                sql.contains(&"ALTER TABLE \"public\".spatial_ref_sys OWNER TO \"app\"".to_owned())
            );
            let set = sql.iter().position(|s| s == "SET ROLE \"app\"").unwrap();
            assert_eq!(
                sql[set + 1],
                "CREATE EXTENSION IF NOT EXISTS \"hstore\" SCHEMA public"
            );
            if major < 15 {
                assert!(
                    sql[..set].contains(&"ALTER SCHEMA public OWNER TO \"app\"".to_owned()),
                    "{sql:?}"
                );
                assert_eq!(sql[set + 2], "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
                assert_eq!(sql[set + 3], "RESET ROLE");
            } else {
                assert_eq!(sql[set + 2], "RESET ROLE");
            }
            assert_eq!(plan.temporary_grants().len(), 1);
            assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        }
    }

    #[test]
    fn template0_before_15_cannot_be_secured_and_says_so() {
        let f = facts(14);
        let spec = db_spec().template("template0").unwrap();
        let plan = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &fresh_database_snapshot(&f),
            &spec,
        )
        .unwrap();
        assert_eq!(plan.notes.len(), 1);
        assert!(plan.notes[0].contains("template1"), "{:?}", plan.notes);
        assert!(!plan
            .sql()
            .contains(&"REVOKE CREATE ON SCHEMA public FROM PUBLIC"));
    }

    #[test]
    fn new_database_on_16_needs_admin_and_grants_inherit_and_set() {
        let f = facts(16);
        let plan = plan_database(
            &f,
            &cluster(CREATED_BY_MASTER_16, None),
            &fresh_database_snapshot(&f),
            &db_spec(),
        )
        .unwrap();
        assert_eq!(
            sql(&plan)[0],
            "GRANT \"app\" TO \"master\" WITH INHERIT TRUE, SET TRUE"
        );

        let err = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &fresh_database_snapshot(&f),
            &db_spec(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
        assert!(err.hint().unwrap().contains("WITH ADMIN OPTION"), "{err}");
    }

    #[test]
    fn an_existing_membership_means_no_temporary_grant() {
        let f = facts(17);
        let access = RoleAccess {
            usage: true,
            set: true,
            admin: true,
        };
        let plan = plan_database(
            &f,
            &cluster(access, None),
            &fresh_database_snapshot(&f),
            &db_spec(),
        )
        .unwrap();
        assert!(plan
            .steps
            .iter()
            .all(|s| s.kind != StepKind::TemporaryGrant));
        assert!(plan
            .steps
            .iter()
            .all(|s| s.kind != StepKind::TemporaryRevoke));
    }

    #[test]
    fn public_schema_not_owned_by_pg_database_owner_is_handed_over_when_master_can() {
        let f = facts(14);
        let state = DatabaseState {
            owner: "app".into(),
            encoding: "UTF8".into(),
            connection_limit: -1,
            public_has_privileges: false,
            master_has_owner_privileges: true,
            master_can_connect: true,
        };
        let mut db = DatabaseSnapshot {
            public_owner: Some("master".into()),
            ..DatabaseSnapshot::default()
        };
        let spec = DatabaseSpec::new("appdb", "app").unwrap();
        let access = RoleAccess {
            usage: true,
            set: true,
            admin: false,
        };
        let plan = plan_database(
            &f,
            &cluster(access.clone(), Some(state.clone())),
            &db,
            &spec,
        )
        .unwrap();
        assert_eq!(sql(&plan), ["ALTER SCHEMA public OWNER TO \"app\""]);
        // Owned by pg_database_owner (15+) or by the owner already: nothing to do.
        for owner in ["pg_database_owner", "app"] {
            db.public_owner = Some(owner.into());
            assert!(plan_database(
                &f,
                &cluster(access.clone(), Some(state.clone())),
                &db,
                &spec
            )
            .unwrap()
            .is_empty());
        }
    }

    #[test]
    fn provisioned_database_needs_nothing() {
        let f = facts(15);
        let state = DatabaseState {
            owner: "app".into(),
            encoding: "UTF8".into(),
            connection_limit: -1,
            public_has_privileges: false,
            master_has_owner_privileges: false,
            master_can_connect: true,
        };
        let db = DatabaseSnapshot {
            public_owner: Some("pg_database_owner".into()),
            extensions: vec![
                InstalledExtension {
                    name: "hstore".into(),
                    schema: "public".into(),
                },
                InstalledExtension {
                    name: "postgis".into(),
                    schema: "public".into(),
                },
            ],
            relation_owners: vec![("public.spatial_ref_sys".into(), "app".into())],
            ..DatabaseSnapshot::default()
        };
        let plan = plan_database(
            &f,
            &cluster(RoleAccess::default(), Some(state)),
            &db,
            &db_spec(),
        )
        .unwrap();
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn unavailable_or_unlisted_extensions_fail_before_any_sql() {
        let f = facts(15);
        let spec = DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::Other("nope".into()));
        let err = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &fresh_database_snapshot(&f),
            &spec,
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        let spec = DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::PgStatStatements);
        let err = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &fresh_database_snapshot(&f),
            &spec,
        )
        .unwrap_err();
        assert_eq!(
            err.kind(),
            crate::ErrorKind::PermissionDenied,
            "untrusted and not whitelisted"
        );
    }

    #[test]
    fn read_only_grant_is_made_as_the_owner_per_relation() {
        let f = facts(16);
        let mut c = cluster(
            RoleAccess::default(),
            Some(DatabaseState {
                owner: "app".into(),
                encoding: "UTF8".into(),
                connection_limit: -1,
                public_has_privileges: false,
                master_has_owner_privileges: false,
                master_can_connect: true,
            }),
        );
        c.owner = Some(project_role(CREATED_BY_MASTER_16));
        let db = DatabaseSnapshot {
            schemas: vec![SchemaState {
                name: "public".into(),
                owner: "pg_database_owner".into(),
                role_has_usage: false,
                role_has_explicit_usage: false,
            }],
            unreadable: vec![("public.t".into(), 'r'), ("public.t_id_seq".into(), 'S')],
            foreign_unreadable: vec!["public.other".into()],
            ..DatabaseSnapshot::default()
        };
        let grant = ReadOnlyGrant::new("appdb", "ro").unwrap();
        let plan = plan_grant_read_only(&f, &c, &db, &grant).unwrap();
        assert_eq!(
            sql(&plan),
            [
                "GRANT \"app\" TO \"master\" WITH INHERIT TRUE, SET TRUE",
                "SET ROLE \"app\"",
                "GRANT CONNECT ON DATABASE \"appdb\" TO \"ro\"",
                "RESET ROLE",
                "SET ROLE \"app\"",
                "GRANT USAGE ON SCHEMA \"public\" TO \"ro\"",
                "GRANT SELECT ON TABLE public.t TO \"ro\"",
                "GRANT SELECT ON SEQUENCE public.t_id_seq TO \"ro\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"public\" GRANT SELECT ON TABLES TO \"ro\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"public\" GRANT SELECT ON SEQUENCES TO \"ro\"",
                "RESET ROLE",
                "REVOKE \"app\" FROM \"master\"",
            ]
        );
        assert_eq!(
            plan.notes.len(),
            1,
            "public.other is not the owner's: noted, not granted"
        );
    }
}
