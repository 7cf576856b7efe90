//! The isolation audit of a live instance, as master: who may reach what, what a project could
//! make master run, and what an operation that died left behind — each [`Finding`] with its
//! [`Rule`], [`Severity`], the objects involved and the SQL that fixes it.
//!
//! One bulk catalog query for the roles, memberships, databases and settings, then one per
//! database (at most [`AuditOptions::jobs`] connections at once, one per database), then the
//! [`Rule`]s over what was read. [`AuditOptions::fix`] applies the fixes that cannot lose data
//! (revokes, leftover memberships) and audits again.
//!
//! ```no_run
//! use rds_pg_core::audit::{self, AuditOptions};
//! use rds_pg_core::{ConnectOptions, Inventory};
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! let master = ConnectOptions::from_env()?;
//! let inventory = Inventory::load("fleet.toml")?;
//! let report = audit::run(&master, &AuditOptions::new().inventory(inventory, None))?;
//! for finding in &report.findings {
//!     println!("{finding}\n");
//! }
//! println!("{report}");
//! # Ok(())
//! # }
//! ```

use std::fmt;

use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::provision::Provisioner;

mod fix;
mod inspect;
mod rules;

/// The most connections an audit opens at once ([`AuditOptions::jobs`]).
pub const MAX_JOBS: usize = 32;

/// How many databases an audit inspects at once unless told ([`AuditOptions::jobs`]).
pub const DEFAULT_JOBS: usize = 4;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Isolation is broken: one project's role can reach another project's data or the
    /// instance's privileges, or can make master run its code.
    Error,
    /// A weakness that breaks no isolation by itself yet (a setting, something the inventory does
    /// not know, something the audit could not look at).
    Warning,
    /// Worth knowing; does not make the audit fail.
    Info,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

crate::rule::rule_enum! {
    enum = "A rule the audit applies; [`Rule::id`] is its stable name.",
    all = "Every rule, in the order findings are reported.",
    id = "The rule's stable id, e.g. `public-database-access`.",
    severity = "The severity of its findings (a few rules report some findings lower, see [`Finding::severity`]).";
    /// A login role other than master has SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or
    /// BYPASSRLS (one finding per attribute).
    RoleAttribute = "role-attribute", Error;
    /// A login role is a member, directly or through a chain, of `rds_superuser`, master,
    /// `pg_read_all_data`, `pg_write_all_data`, `pg_signal_backend`, `pg_monitor`,
    /// `rds_password` or `rds_replication` (the first such role on each chain).
    PrivilegedMembership = "privileged-membership", Error;
    /// A role of one project is a member, directly or through a chain, of another project's
    /// role.
    CrossProjectMembership = "cross-project-membership", Error;
    /// Master is a member of a project role beyond what PostgreSQL gives a role's creator: on
    /// 16+ a membership with INHERIT or SET (the ADMIN-only one is not a finding), on 13–15 any
    /// membership. rds-pg grants them for the length of an operation; one left over means an
    /// operation died (one that is running shows too; [`AuditOptions::fix`] leaves it while the
    /// operation holds its lock on the role).
    MasterMembership = "master-membership", Error;
    /// A project role holds ADMIN OPTION on a role (it may grant the role, on 16+ to itself).
    AdminOption = "admin-option", Error;
    /// A project role holds a privilege WITH GRANT OPTION on an object it does not own (a
    /// database, schema, relation, routine, type, large object, foreign server, or default
    /// privileges; languages and foreign-data wrappers belong to superusers, whose grants a
    /// project cannot make).
    GrantOption = "grant-option", Error;
    /// PUBLIC may CONNECT to, or create TEMPORARY objects in, a database other than `postgres`
    /// and the templates.
    PublicDatabaseAccess = "public-database-access", Error;
    /// A role other than a schema's owner (master and superusers aside) may CREATE in it.
    SchemaCreate = "schema-create", Error;
    /// PUBLIC may CREATE in schema `public` of `postgres` or `template1` (RDS's default on 13
    /// and 14): any login role can plant objects there, and `template1`'s are copied into every
    /// new database.
    PublicSchemaCreate = "public-schema-create", Error;
    /// An object in `postgres` or `template1` is owned by a role other than master and the
    /// superusers.
    SystemDatabaseObject = "system-database-object", Error;
    /// A function, aggregate, procedure or operator outside `pg_catalog`, of no extension and
    /// owned by a role other than master, has the name of a `pg_catalog` one: a session that
    /// resolves names through its schema can run the owner's code instead.
    ShadowingObject = "shadowing-object", Error;
    /// A SECURITY DEFINER function of no extension in a project database is owned by a
    /// privileged role (a superuser, master, a role with the attributes or memberships above):
    /// whoever may call it runs code with that role's privileges.
    SecurityDefiner = "security-definer", Error;
    /// A project's login role can connect to a database that is not its project's (with an
    /// inventory: an owner only to its project's databases, a reader only to those it reads),
    /// for a reason no other finding reports.
    ConnectOutsideProject = "connect-outside-project", Error;
    /// With an inventory: a database is owned by a role other than the owner the inventory
    /// names.
    DatabaseOwner = "database-owner", Error;
    /// A login role no project claims (a warning with an inventory; without one, a login role
    /// that owns no database, is no member of a project's role and may connect to none of their
    /// databases, reported as info).
    UnclaimedLoginRole = "unclaimed-login-role", Warning;
    /// With an inventory: a database no project of the instance names.
    UnclaimedDatabase = "unclaimed-database", Warning;
    /// Master cannot look inside a database (no CONNECT, or connections are not allowed, or the
    /// connection failed): its content is not audited.
    DatabaseNotAudited = "database-not-audited", Warning;
    /// Connections are not required to use TLS (`rds.force_ssl` is off; on a server without
    /// that setting: `ssl` is off, or a login without TLS reaches authentication). Info when the
    /// audit cannot tell.
    TlsRequired = "tls-required", Warning;
    /// `password_encryption` is not `scram-sha-256`.
    PasswordEncryption = "password-encryption", Warning;
    /// With an inventory that sets `connection_limit` for a role: the role has no connection
    /// limit, or a higher one.
    RoleConnectionLimit = "role-connection-limit", Warning;
    /// With an inventory that sets `valid_until` for a role: the role's password never expires,
    /// or expires later (not for an IAM user, a member of `rds_iam`: it has no password, and
    /// `VALID UNTIL` limits password logins only).
    RoleValidUntil = "role-valid-until", Warning;
    /// With an inventory that sets `iam` for a role: the role is not (directly) a member of
    /// `rds_iam` though `iam = true`, or is one though `iam = false`.
    RoleIam = "role-iam", Warning;
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.id())
    }
}

/// What kind of thing a finding names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A role (login or not); `PUBLIC` for everyone.
    Role,
    /// A database.
    Database,
    /// A schema (in [`AuditObject::database`]).
    Schema,
    /// An object in a database (its `pg_describe_object` description, in
    /// [`AuditObject::database`]).
    Object,
    /// A server setting.
    Setting,
    /// A project (of the inventory, or the owner role that stands for one without it).
    Project,
}

impl ObjectKind {
    /// `role`, `database`, `schema`, `object`, `setting` or `project`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ObjectKind::Role => "role",
            ObjectKind::Database => "database",
            ObjectKind::Schema => "schema",
            ObjectKind::Object => "object",
            ObjectKind::Setting => "setting",
            ObjectKind::Project => "project",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One thing a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuditObject {
    /// What it is.
    pub kind: ObjectKind,
    /// Its name (for an object: its description, e.g. `function public.format(text,name,name)`;
    /// for a setting: `name = value`).
    pub name: String,
    /// The database a schema or object is in.
    pub database: Option<String>,
}

impl AuditObject {
    /// An object of `kind` named `name`, in no particular database.
    pub fn new(kind: ObjectKind, name: impl Into<String>) -> Self {
        AuditObject {
            kind,
            name: name.into(),
            database: None,
        }
    }

    /// An object of `kind` named `name` in `database`.
    pub fn in_database(
        kind: ObjectKind,
        name: impl Into<String>,
        database: impl Into<String>,
    ) -> Self {
        AuditObject {
            kind,
            name: name.into(),
            database: Some(database.into()),
        }
    }
}

impl fmt::Display for AuditObject {
    /// `role "shop"`, `schema "public" in database "shop"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ObjectKind::Object | ObjectKind::Setting => write!(f, "{} {}", self.kind, self.name)?,
            _ => write!(f, "{} {:?}", self.kind, self.name)?,
        }
        if let Some(db) = &self.database {
            write!(f, " in database {db:?}")?;
        }
        Ok(())
    }
}

/// One statement of a fix: its SQL, the database it runs in and the role it runs as.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FixStatement {
    /// The database whose connection runs it; `None`: any (role and database-level statements,
    /// run in the maintenance database).
    pub database: Option<String>,
    /// The role it must run as (`SET ROLE`), when not master: the grantor of what it revokes.
    pub run_as: Option<String>,
    /// The statement.
    pub sql: String,
}

impl fmt::Display for FixStatement {
    /// The SQL, then where and as whom it runs when that matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql)?;
        match (&self.database, &self.run_as) {
            (Some(db), Some(role)) => write!(f, "  -- in database {db:?}, as {role:?}"),
            (Some(db), None) => write!(f, "  -- in database {db:?}"),
            (None, Some(role)) => write!(f, "  -- as {role:?}"),
            (None, None) => Ok(()),
        }
    }
}

/// How to repair a finding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fix {
    /// The statements that repair it, in order (empty when no SQL can).
    pub statements: Vec<FixStatement>,
    /// Whether [`AuditOptions::fix`] applies them: revokes and leftover memberships that master
    /// may remove, which lose no data.
    pub automatic: bool,
    /// What the fix does, or why it is not applied automatically and what to do instead.
    pub note: String,
}

impl Fix {
    /// A fix [`AuditOptions::fix`] applies.
    pub(crate) fn automatic(statements: Vec<FixStatement>, note: impl Into<String>) -> Self {
        Fix {
            statements,
            automatic: true,
            note: note.into(),
        }
    }

    /// A fix an operator applies by hand.
    pub(crate) fn manual(statements: Vec<FixStatement>, note: impl Into<String>) -> Self {
        Fix {
            statements,
            automatic: false,
            note: note.into(),
        }
    }

    /// A fix in words only.
    pub(crate) fn note(note: impl Into<String>) -> Self {
        Fix::manual(Vec::new(), note)
    }
}

/// One broken rule: which, how bad, what is wrong, the objects involved and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Its severity (usually the rule's).
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The roles, databases, schemas, objects or settings involved.
    pub objects: Vec<AuditObject>,
    /// How to repair it.
    pub fix: Fix,
}

impl Finding {
    /// A finding of `rule`, with the rule's severity.
    pub fn new(
        rule: Rule,
        message: impl Into<String>,
        objects: Vec<AuditObject>,
        fix: Fix,
    ) -> Self {
        Finding {
            rule,
            severity: rule.severity(),
            message: message.into(),
            objects,
            fix,
        }
    }

    /// The same finding with another severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The SQL that repairs it, statement by statement (empty when no SQL can).
    pub fn fix_sql(&self) -> Vec<&str> {
        self.fix.statements.iter().map(|s| s.sql.as_str()).collect()
    }
}

impl fmt::Display for Finding {
    /// A block: `SEVERITY RULE: message`, one line per object, the fix's statements and note.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<7} {}: {}", self.severity, self.rule, self.message)?;
        for object in &self.objects {
            write!(f, "\n        {object}")?;
        }
        let label = if self.fix.automatic {
            "fix (--fix applies it)"
        } else {
            "fix (by hand)"
        };
        match self.fix.statements.as_slice() {
            [] => write!(f, "\n        fix: {}", self.fix.note),
            statements => {
                write!(f, "\n        {label}: {}", self.fix.note)?;
                for s in statements {
                    write!(f, "\n          {s}")?;
                }
                Ok(())
            }
        }
    }
}

/// Which login roles may connect to one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectAccess {
    /// The database.
    pub database: String,
    /// Its owner.
    pub owner: String,
    /// The project it belongs to (the inventory's, or its owner's name without one), if any.
    pub project: Option<String>,
    /// The login roles (master and the bootstrap superuser aside) that may connect to it,
    /// sorted.
    pub roles: Vec<String>,
}

/// A fix that [`AuditOptions::fix`] ran, and how each statement went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedFix {
    /// The finding it repairs (from the audit before the fix).
    pub finding: Finding,
    /// Each statement, with the error it raised (`None`: it ran).
    pub results: Vec<(FixStatement, Option<String>)>,
}

impl AppliedFix {
    /// Whether every statement ran.
    pub fn succeeded(&self) -> bool {
        self.results.iter().all(|(_, e)| e.is_none())
    }
}

/// What [`run`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditReport {
    /// The server's version.
    pub server_version: ServerVersion,
    /// The role the audit ran as (master).
    pub master: String,
    /// `user@host:port/dbname` of the master connection.
    pub target: String,
    /// The inventory instance the audit compared the server with, if any.
    pub instance: Option<String>,
    /// Every finding, ordered by rule then by the objects involved. With
    /// [`AuditOptions::fix`]: what is left after the fixes.
    pub findings: Vec<Finding>,
    /// The databases audited (master connected and looked inside), sorted.
    pub databases: Vec<String>,
    /// How many login roles there are (master and the bootstrap superuser aside).
    pub login_roles: usize,
    /// Which login roles may connect to which database (`postgres`, the templates and
    /// `rdsadmin` aside), by database.
    pub connect_matrix: Vec<ConnectAccess>,
    /// With [`AuditOptions::fix`]: the fixes that ran, before [`AuditReport::findings`] was
    /// audited again.
    pub fixed: Vec<AppliedFix>,
}

impl AuditReport {
    /// Whether nothing of severity error or warning was found.
    pub fn is_clean(&self) -> bool {
        self.findings.iter().all(|f| f.severity == Severity::Info)
    }

    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The findings of `rule`.
    pub fn of(&self, rule: Rule) -> impl Iterator<Item = &Finding> + '_ {
        self.findings.iter().filter(move |f| f.rule == rule)
    }
}

impl fmt::Display for AuditReport {
    /// The summary line: `clean` or the counts, and what was audited.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.findings.len();
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        if self.is_clean() {
            f.write_str("clean")?;
            if n > 0 {
                write!(f, " ({})", plural(n, "info", "infos"))?;
            }
        } else {
            let automatic = self.findings.iter().filter(|f| f.fix.automatic).count();
            write!(
                f,
                "{} ({}, {}, {}; {automatic} fixable with --fix)",
                plural(n, "finding", "findings"),
                plural(self.count(Severity::Error), "error", "errors"),
                plural(self.count(Severity::Warning), "warning", "warnings"),
                plural(self.count(Severity::Info), "info", "infos"),
            )?;
        }
        write!(
            f,
            "; PostgreSQL {}, {} and {} audited",
            self.server_version,
            plural(self.databases.len(), "database", "databases"),
            plural(self.login_roles, "login role", "login roles"),
        )?;
        if let Some(instance) = &self.instance {
            write!(f, " against inventory instance {instance:?}")?;
        }
        if !self.fixed.is_empty() {
            let ok = self.fixed.iter().filter(|f| f.succeeded()).count();
            write!(
                f,
                "; --fix ran {} ({ok} without error) before this audit",
                plural(self.fixed.len(), "fix", "fixes")
            )?;
        }
        Ok(())
    }
}

/// What an audit compares the server with, how wide it runs, and whether it fixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// The inventory, and the name of its instance that is audited (`None`: the instance whose
    /// endpoint and port are the connection's, or the only one).
    pub inventory: Option<(Inventory, Option<String>)>,
    /// How many databases are inspected at once, each over its own connection (default
    /// [`DEFAULT_JOBS`], 1 to [`MAX_JOBS`]).
    pub jobs: usize,
    /// Apply the fixes that lose no data, then audit again (default false).
    pub fix: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions::new()
    }
}

impl AuditOptions {
    /// No inventory, [`DEFAULT_JOBS`] at once, no fixes.
    pub fn new() -> Self {
        AuditOptions {
            inventory: None,
            jobs: DEFAULT_JOBS,
            fix: false,
        }
    }

    /// Compares the server with `inventory`'s instance `instance` (`None`: the one whose
    /// endpoint and port are the connection's, or the only one).
    pub fn inventory(mut self, inventory: Inventory, instance: Option<&str>) -> Self {
        self.inventory = Some((inventory, instance.map(str::to_owned)));
        self
    }

    /// Sets how many databases are inspected at once.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs;
        self
    }

    /// Applies the fixes that lose no data, then audits again.
    pub fn fix(mut self, fix: bool) -> Self {
        self.fix = fix;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_JOBS).contains(&self.jobs) {
            return Err(Error::InvalidInput(format!(
                "jobs = {} is out of range: an audit opens 1 to {MAX_JOBS} connections at once",
                self.jobs
            )));
        }
        Ok(())
    }
}

/// Audits the instance `master` connects to (as master; its database is the maintenance
/// database). With [`AuditOptions::fix`], applies the fixes that lose no data, audits again and
/// returns the second audit with [`AuditReport::fixed`].
///
/// # Errors
/// [`Error::InvalidInput`] before connecting for bad options, an inventory instance that cannot
/// be chosen or whose master user is not `master`'s; connection and server errors of the master
/// connection. A database master cannot connect to is a finding
/// ([`Rule::DatabaseNotAudited`]), not an error.
pub fn run(master: &ConnectOptions, options: &AuditOptions) -> Result<AuditReport> {
    options.validate()?;
    let scope = rules::Scope::resolve(master, options.inventory.as_ref())?;
    let first = audit_once(master, options.jobs, &scope)?;
    if !options.fix {
        return Ok(first);
    }
    let fixed = fix::apply(master, options.jobs, &first)?;
    if fixed.is_empty() {
        return Ok(first);
    }
    let mut second = audit_once(master, options.jobs, &scope)?;
    second.fixed = fixed;
    Ok(second)
}

fn audit_once(master: &ConnectOptions, jobs: usize, scope: &rules::Scope) -> Result<AuditReport> {
    let snapshot = inspect::read(master, jobs, scope)?;
    Ok(rules::evaluate(&snapshot, scope, master.target()))
}

impl Provisioner {
    /// Audits the instance this provisioner is connected to, as [`run`] does with its
    /// connection options (the audit opens connections of its own).
    ///
    /// # Errors
    /// As [`run`].
    pub fn audit(&self, options: &AuditOptions) -> Result<AuditReport> {
        run(self.options(), options)
    }
}
