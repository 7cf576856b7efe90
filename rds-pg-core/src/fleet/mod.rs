//! Converging a fleet: every instance of an [`Inventory`] brought to what the inventory says —
//! login roles (their credentials delivered where the inventory says when rds-pg creates them;
//! an IAM user, `iam = true` in `[project.roles]`, has none and needs no sink),
//! databases with their extensions, read-only grants, schema `public` closed in the maintenance
//! database and the template — through the same planners and operations as the
//! [`Provisioner`](crate::Provisioner)'s, several instances at a time.
//!
//! A run with nothing to change costs one inspection query per database after connecting: one in
//! the maintenance database for the server facts and every role and database of the instance
//! (the bulk inspection of [`crate::inspect::instance`]), one in each project database for its
//! owner and all its readers, and before PostgreSQL 15 one in `template1` (new databases are
//! copied from it). Only when something differs are locks taken and operations run, each
//! inspecting again under its locks.
//!
//! Nothing is dropped unless [`FleetOptions::prune`] is set and the plan lists it (databases and
//! login roles no project on the instance claims; never master, `postgres`, the templates,
//! `rdsadmin`, reserved names or roles holding more than a project role may), and no database
//! moves to another owner unless [`FleetOptions::take_over`] is set and the plan lists it:
//! otherwise an inventory naming another owner for an existing database is a finding.
//!
//! ```no_run
//! use rds_pg_core::fleet::{self, FleetOptions};
//! use rds_pg_core::Inventory;
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! let inventory = Inventory::load("fleet.toml")?;
//! let plan = fleet::plan(&inventory, &FleetOptions::new())?; // connects, changes nothing
//! for instance in &plan.instances {
//!     println!("{instance}");
//! }
//! if plan.differs() {
//!     let done = fleet::apply(&inventory, &FleetOptions::new().jobs(4))?;
//!     assert!(!done.has_errors(), "{done}");
//! }
//! # Ok(())
//! # }
//! ```

mod apply;
mod plan;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::inventory::{Environment, Inventory};
use crate::plan::{Plan, Report};

/// How many instances are processed at once by default.
pub const DEFAULT_JOBS: usize = 4;

/// What a run reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Connecting to the instance and inspecting it.
    Started {
        /// The instance.
        instance: String,
    },
    /// The instance was inspected and planned.
    Planned {
        /// The instance.
        instance: String,
        /// How many items differ from the inventory.
        changes: usize,
    },
    /// An operation is about to run.
    Applying {
        /// The instance.
        instance: String,
        /// The item, as [`Item`]'s `Display` names it.
        item: String,
        /// How many operations ran before it.
        done: usize,
        /// How many will run.
        total: usize,
    },
    /// The instance is done.
    Finished {
        /// The instance.
        instance: String,
        /// Its one-line summary ([`InstanceReport::summary`]).
        summary: String,
        /// Whether it ended without an error or a finding.
        ok: bool,
    },
}

/// A callback that receives [`Progress`], from the threads that process instances.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a fleet run does beyond converging: which instances, how many at once, and whether it
/// may drop or move what the inventory does not claim.
#[derive(Clone)]
pub struct FleetOptions {
    /// The instances to process, by name; empty is every instance of the inventory.
    pub instances: Vec<String>,
    /// How many instances are processed at once (default [`DEFAULT_JOBS`]; at least 1).
    pub jobs: usize,
    /// Drop databases and login roles that no project on the instance claims (default false;
    /// an instance no project of the inventory is on is not emptied: a finding).
    pub prune: bool,
    /// Hand an existing database the inventory gives another owner to that owner (default
    /// false: a finding).
    pub take_over: bool,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for FleetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetOptions")
            .field("instances", &self.instances)
            .field("jobs", &self.jobs)
            .field("prune", &self.prune)
            .field("take_over", &self.take_over)
            .field("progress", &self.progress.as_ref().map(|_| "callback"))
            .finish()
    }
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl FleetOptions {
    /// Every instance, [`DEFAULT_JOBS`] at a time, nothing pruned or taken over, no progress.
    pub fn new() -> Self {
        FleetOptions {
            instances: Vec::new(),
            jobs: DEFAULT_JOBS,
            prune: false,
            take_over: false,
            progress: None,
        }
    }

    /// Adds an instance to process (the others are left alone).
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instances.push(name.into());
        self
    }

    /// Sets how many instances are processed at once (0 is taken as 1).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Sets whether unclaimed databases and login roles are dropped.
    pub fn prune(mut self, yes: bool) -> Self {
        self.prune = yes;
        self
    }

    /// Sets whether databases move to the owner the inventory names.
    pub fn take_over(mut self, yes: bool) -> Self {
        self.take_over = yes;
        self
    }

    /// Sets the callback that receives [`Progress`] (called from worker threads).
    pub fn on_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    fn report(&self, event: Progress) {
        if let Some(f) = &self.progress {
            f(&event);
        }
    }
}

/// Whether a run only planned or also applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `fleet plan`: inspect and plan, change nothing.
    Plan,
    /// `fleet apply`: plan, then run what differs.
    Apply,
}

impl Mode {
    /// `plan` or `apply`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "plan",
            Mode::Apply => "apply",
        }
    }
}

/// What an [`Item`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ItemKind {
    /// The instance itself: its PostgreSQL version, schema `public` of the maintenance database
    /// and `template1`.
    Instance,
    /// A project's login role.
    User,
    /// A project's database, its owner and extensions.
    Database,
    /// A reader's read-only access to a database.
    ReadOnlyGrant,
    /// A database no project claims, dropped with `prune`.
    DropDatabase,
    /// A login role no project claims, dropped with `prune`.
    DropUser,
}

impl ItemKind {
    /// `instance`, `user`, `database`, `read_only_grant`, `drop_database` or `drop_user`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Instance => "instance",
            ItemKind::User => "user",
            ItemKind::Database => "database",
            ItemKind::ReadOnlyGrant => "read_only_grant",
            ItemKind::DropDatabase => "drop_database",
            ItemKind::DropUser => "drop_user",
        }
    }
}

/// Where an item stands.
#[derive(Debug)]
#[non_exhaustive]
pub enum ItemState {
    /// As the inventory says: nothing to do.
    InSync,
    /// Differs; these steps would bring it in line (`fleet plan`).
    Planned(Plan),
    /// Differs; its steps depend on a change listed before it (a database that does not exist
    /// yet, a role about to be created) and are decided when that change is made.
    Pending(String),
    /// Differs in a way rds-pg does not change as asked: a finding, with the fix in the error
    /// ([`Error::hint`]). Nothing of it is run.
    Blocked(Error),
    /// Brought in line (`fleet apply`): what ran.
    Applied(Report),
    /// The operation failed (`fleet apply`).
    Failed(Error),
    /// Not run because an item it depends on is blocked or failed.
    Skipped(String),
}

impl ItemState {
    /// `in_sync`, `planned`, `pending`, `blocked`, `applied`, `failed` or `skipped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemState::InSync => "in_sync",
            ItemState::Planned(_) => "planned",
            ItemState::Pending(_) => "pending",
            ItemState::Blocked(_) => "blocked",
            ItemState::Applied(_) => "applied",
            ItemState::Failed(_) => "failed",
            ItemState::Skipped(_) => "skipped",
        }
    }

    /// Whether the item differs from the inventory (for `plan`: would change or is blocked; for
    /// `apply`: was changed, failed, blocked or skipped).
    pub fn differs(&self) -> bool {
        match self {
            ItemState::InSync => false,
            ItemState::Applied(report) => report.changed,
            _ => true,
        }
    }

    /// The error of a blocked or failed item.
    pub fn error(&self) -> Option<&Error> {
        match self {
            ItemState::Blocked(e) | ItemState::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether it would change something, or did.
    fn changes(&self) -> bool {
        match self {
            ItemState::Planned(_) | ItemState::Pending(_) => true,
            ItemState::Applied(report) => report.changed,
            _ => false,
        }
    }
}

/// One thing the inventory asks of an instance, and where it stands.
#[derive(Debug)]
#[non_exhaustive]
pub struct Item {
    /// What it is.
    pub kind: ItemKind,
    /// The role or database (for a grant: the reader); for the instance, what about it.
    pub name: String,
    /// The database, for a read-only grant.
    pub database: Option<String>,
    /// The project it belongs to; `None` for the instance and for what no project claims.
    pub project: Option<String>,
    /// Where it stands.
    pub state: ItemState,
    /// Things rds-pg noticed about it and does not change.
    pub notes: Vec<String>,
}

impl Item {
    fn new(kind: ItemKind, name: impl Into<String>, project: Option<&str>) -> Item {
        Item {
            kind,
            name: name.into(),
            database: None,
            project: project.map(str::to_owned),
            state: ItemState::InSync,
            notes: Vec::new(),
        }
    }
}

impl fmt::Display for Item {
    /// `user "shop"`, `database "shop"`, `read-only grant of "shop_ro" on "shop"`,
    /// `drop database "old"`, `drop user "old"`, or the instance item's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ItemKind::Instance => write!(f, "instance: {}", self.name),
            ItemKind::User => write!(f, "user {:?}", self.name),
            ItemKind::Database => write!(f, "database {:?}", self.name),
            ItemKind::ReadOnlyGrant => write!(
                f,
                "read-only grant of {:?} on {:?}",
                self.name,
                self.database.as_deref().unwrap_or_default()
            ),
            ItemKind::DropDatabase => write!(f, "drop database {:?}", self.name),
            ItemKind::DropUser => write!(f, "drop user {:?}", self.name),
        }
    }
}

/// What a run found and did on one instance.
#[derive(Debug)]
#[non_exhaustive]
pub struct InstanceReport {
    /// The instance's name in the inventory.
    pub name: String,
    /// Its client.
    pub client: String,
    /// Staging or production.
    pub environment: Environment,
    /// `endpoint:port`.
    pub endpoint: String,
    /// The server's version, once connected.
    pub server_version: Option<ServerVersion>,
    /// Every item, in the order they are applied: the instance, users, databases, grants,
    /// then what `prune` drops.
    pub items: Vec<Item>,
    /// Things rds-pg noticed about the instance (policy warnings, what no project claims).
    pub notes: Vec<String>,
    /// Why the instance could not be processed (policy errors, connection, inspection), if so.
    pub error: Option<Error>,
    /// How many inspection queries the plan cost (one per database inspected).
    pub inspection_queries: usize,
    /// How long the instance took, connecting included.
    pub elapsed: Duration,
}

impl InstanceReport {
    /// Items that would change (plan) or changed (apply).
    pub fn changes(&self) -> usize {
        self.items.iter().filter(|i| i.state.changes()).count()
    }

    /// Items blocked by a finding.
    pub fn findings(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.state, ItemState::Blocked(_)))
            .count()
    }

    /// Items that failed or were skipped because of one.
    pub fn failures(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i.state, ItemState::Failed(_) | ItemState::Skipped(_)))
            .count()
    }

    /// Whether the instance differs from the inventory (or could not be looked at).
    pub fn differs(&self) -> bool {
        self.error.is_some() || self.items.iter().any(|i| i.state.differs())
    }

    /// Whether the instance ended in an error, a failed item, or (after `apply`) a finding.
    pub fn has_errors(&self) -> bool {
        self.error.is_some()
            || self.items.iter().any(|i| {
                matches!(
                    i.state,
                    ItemState::Failed(_) | ItemState::Skipped(_) | ItemState::Blocked(_)
                )
            })
    }

    /// One line: `in sync`, `3 to change`, `3 changed, 1 finding`, `error: …`.
    pub fn summary(&self, mode: Mode) -> String {
        if let Some(e) = &self.error {
            return format!("error: {e}");
        }
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        let changes = self.changes();
        if changes > 0 {
            parts.push(match mode {
                Mode::Plan => format!("{changes} to change"),
                Mode::Apply => format!("{changes} changed"),
            });
        }
        if self.findings() > 0 {
            parts.push(plural(self.findings(), "finding", "findings"));
        }
        if self.failures() > 0 {
            parts.push(plural(self.failures(), "failed", "failed"));
        }
        if parts.is_empty() {
            "in sync".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

impl fmt::Display for InstanceReport {
    /// The instance's line, then one line per item that is not in sync (with its error's fix).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.endpoint)?;
        if let Some(v) = self.server_version {
            write!(f, ", PostgreSQL {v}")?;
        }
        if let Some(e) = &self.error {
            return write!(f, ": {e}");
        }
        for item in self.items.iter().filter(|i| i.state.differs()) {
            write!(f, "\n  {item}: {}", item.state.as_str())?;
            if let Some(e) = item.state.error() {
                write!(f, ": {e}")?;
            }
        }
        Ok(())
    }
}

/// What a fleet run found and did, instance by instance.
#[derive(Debug)]
#[non_exhaustive]
pub struct FleetReport {
    /// Plan or apply.
    pub mode: Mode,
    /// The inventory's file.
    pub source: String,
    /// Each instance processed, in inventory order.
    pub instances: Vec<InstanceReport>,
}

impl FleetReport {
    /// Whether any instance differs from the inventory (the drift a CI gate looks for).
    pub fn differs(&self) -> bool {
        self.instances.iter().any(InstanceReport::differs)
    }

    /// Whether every instance is as the inventory says.
    pub fn is_in_sync(&self) -> bool {
        !self.differs()
    }

    /// Whether an instance could not be processed, an operation failed, or (after `apply`) a
    /// finding is left.
    pub fn has_errors(&self) -> bool {
        self.instances.iter().any(|i| match self.mode {
            Mode::Plan => {
                i.error.is_some()
                    || i.items
                        .iter()
                        .any(|it| matches!(it.state, ItemState::Failed(_)))
            }
            Mode::Apply => i.has_errors(),
        })
    }
}

impl fmt::Display for FleetReport {
    /// `fleet plan INVENTORY: N instances: …` and each instance's summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fleet {} {}: {} instance(s)",
            self.mode.as_str(),
            self.source,
            self.instances.len()
        )?;
        for i in &self.instances {
            write!(f, "\n{}: {}", i.name, i.summary(self.mode))?;
        }
        Ok(())
    }
}

/// Inspects every instance (or those `options` names) and plans what would bring it in line
/// with `inventory`, changing nothing.
///
/// # Errors
/// [`Error::InvalidInput`] for an instance name the inventory does not have. What goes wrong on
/// one instance is in its [`InstanceReport::error`], and the others go on.
pub fn plan(inventory: &Inventory, options: &FleetOptions) -> Result<FleetReport> {
    apply::run(inventory, options, Mode::Plan)
}

/// Plans as [`plan`] does, then, on each instance that differs, runs the operations that bring
/// it in line (each under its locks, planning again there): new roles' credentials are
/// delivered where the inventory says before their creation commits.
///
/// # Errors
/// As [`plan`].
pub fn apply(inventory: &Inventory, options: &FleetOptions) -> Result<FleetReport> {
    apply::run(inventory, options, Mode::Apply)
}
