//! The [`Provisioner`]: a master connection plus server facts, running every operation as
//! inspect → plan → apply.

use std::collections::HashMap;
use std::time::Duration;

use postgres::types::Type;
use postgres::Client;

use crate::config::ConnectOptions;
use crate::credentials::{CredentialFormat, CredentialSink, Credentials};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inspect::{
    self, AvailableExtension, ClusterSnapshot, DatabaseSnapshot, ServerFacts, SnapshotScope,
};
use crate::plan::{self, Plan, Report, Step, StepKind};
use crate::secret::{NewPassword, Password};
use crate::spec::{
    DatabaseSpec, DropDatabaseOptions, DropUserOptions, Extension, ReadOnlyGrant, UserSpec,
};

/// How often, and how far apart, `drop_database` looks again at sessions that may be exiting.
const SESSION_GRACE_CHECKS: u32 = 10;
const SESSION_GRACE_INTERVAL: Duration = Duration::from_millis(100);

/// The database whose advisory locks serialise rds-pg's runs on an instance.
pub const LOCK_DATABASE: &str = "postgres";

/// At most this many connections to databases other than the maintenance one are kept open
/// by default (a fleet apply keeps one per database of its instance while it runs).
const MAX_CACHED_CONNECTIONS: usize = 2;

/// How long a statement waits for a lock before failing (default).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A master connection to the maintenance database plus what rds-pg knows about the server.
///
/// Every public operation is idempotent: it inspects the catalog (one bulk query per database),
/// plans the missing steps and applies them; with nothing to change it costs one inspection round
/// trip per database. `plan_*` twins return the steps without running anything.
pub struct Provisioner {
    options: ConnectOptions,
    client: Client,
    facts: ServerFacts,
    lock_timeout: Duration,
    /// Connections to other databases, opened on first use (at most one per database).
    others: HashMap<String, Client>,
    /// How many of `others` are kept open ([`Provisioner::keep_connections`]).
    max_cached: usize,
    /// Extensions the server can install, as far as asked (the list is read from disk by the
    /// server, so it is read once per name).
    available: HashMap<String, AvailableExtension>,
    /// The test-only hook called between batches.
    #[cfg(feature = "fault-injection")]
    fault: Option<fault::FaultHook>,
}

/// A test-only hook between the batches of an operation (feature `fault-injection`): the
/// reliability tests kill sessions, restart the server or abandon an operation half-way there.
#[cfg(feature = "fault-injection")]
pub mod fault {
    use crate::error::Error;
    use crate::plan::Step;

    /// Where an operation is.
    #[derive(Debug)]
    pub struct FaultPoint<'a> {
        /// The steps about to be sent as one batch (or, before a commit, those sent).
        pub steps: &'a [Step],
        /// Whether the batch ends a temporary membership (the cleanup part of an operation).
        pub cleanup: bool,
        /// Whether this is the point between delivering credentials and committing.
        pub before_commit: bool,
    }

    /// What the hook decides.
    #[derive(Debug)]
    pub enum Fault {
        /// Go on.
        Continue,
        /// Fail here with this error, as a failing statement would (cleanup still runs).
        Fail(Error),
        /// Stop here as a killed process would: nothing more is sent, no cleanup, no unlock.
        Abandon,
    }

    /// The hook.
    pub type FaultHook = Box<dyn FnMut(&FaultPoint<'_>) -> Fault + Send>;
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("options", &self.options)
            .field("facts", &self.facts)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// Connects as master with `options` (its database is the maintenance database, usually
    /// `postgres`) and reads the server facts.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect(options: &ConnectOptions) -> Result<Provisioner> {
        Self::connect_inspecting(options, |client| Ok((inspect::server_facts(client)?, ())))
            .map(|(provisioner, ())| provisioner)
    }

    /// Connects as [`Self::connect`] does, the server facts read by `first_query`: the
    /// session's first query, which reads them together with whatever else the caller needs
    /// (the fleet's bulk inspection), in one round trip.
    pub(crate) fn connect_inspecting<T>(
        options: &ConnectOptions,
        first_query: impl FnOnce(&mut Client) -> Result<(ServerFacts, T)>,
    ) -> Result<(Provisioner, T)> {
        let mut client = crate::connect::connect_with_settings(
            options,
            &session_settings(DEFAULT_LOCK_TIMEOUT),
        )?;
        let (facts, value) = first_query(&mut client)?;
        let provisioner = Provisioner {
            options: options.clone(),
            client,
            facts,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            others: HashMap::new(),
            max_cached: MAX_CACHED_CONNECTIONS,
            available: HashMap::new(),
            #[cfg(feature = "fault-injection")]
            fault: None,
        };
        Ok((provisioner, value))
    }

    /// Keeps up to `n` connections to other databases open (at least the default): a fleet
    /// apply, whose provisioner lives for one instance, keeps one per database it touches so
    /// that no database is connected to twice.
    pub(crate) fn keep_connections(&mut self, n: usize) {
        self.max_cached = n.max(MAX_CACHED_CONNECTIONS);
    }

    /// Remembers which extensions the server can install (read by the fleet's bulk
    /// inspection), so that operations do not read the server's control files again.
    pub(crate) fn remember_available(&mut self, available: &[AvailableExtension]) {
        for a in available {
            self.available.insert(a.name.clone(), a.clone());
        }
    }

    /// Sets how long a statement waits for a lock before failing with
    /// [`Error::StillInUse`] (default 10 s).
    ///
    /// # Errors
    /// A server error while changing the setting.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.lock_timeout = timeout;
        let sql = format!("SET lock_timeout = {}", timeout.as_millis());
        self.client.batch_execute(&sql)?;
        for c in self.others.values_mut() {
            c.batch_execute(&sql)?;
        }
        Ok(self)
    }

    /// Sets the test-only hook called before every batch an operation sends (feature
    /// `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub fn set_fault_hook(&mut self, hook: Option<fault::FaultHook>) {
        self.fault = hook;
    }

    /// Calls the fault hook, if any.
    #[allow(unused_variables)]
    fn fault_point(&mut self, steps: &[Step], cleanup: bool, before_commit: bool) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        if let Some(hook) = self.fault.as_mut() {
            let point = fault::FaultPoint {
                steps,
                cleanup,
                before_commit,
            };
            match hook(&point) {
                fault::Fault::Continue => {}
                fault::Fault::Fail(e) => return Err(e),
                fault::Fault::Abandon => return Err(Error::Abandoned),
            }
        }
        Ok(())
    }

    /// What rds-pg knows about the server and the master role.
    pub fn facts(&self) -> &ServerFacts {
        &self.facts
    }

    /// The connection options in use.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    fn database_client(&mut self, database: &DatabaseName) -> Result<&mut Client> {
        if database.as_str() == self.facts.current_database {
            if self.client.is_closed() {
                self.reconnect(None)?;
            }
            return Ok(&mut self.client);
        }
        if self
            .others
            .get(database.as_str())
            .is_some_and(|c| c.is_closed())
        {
            self.others.remove(database.as_str());
        }
        if !self.others.contains_key(database.as_str()) {
            self.evict_cached_connections();
            let options = self.options.for_database(database.as_str());
            let client = crate::connect::connect_with_settings(
                &options,
                &session_settings(self.lock_timeout),
            )?;
            self.others.insert(database.as_str().to_owned(), client);
        }
        Ok(self
            .others
            .get_mut(database.as_str())
            .expect("inserted above"))
    }

    /// Closes rds-pg's connection to `database`, if any, without a query.
    pub(crate) fn disconnect(&mut self, database: &DatabaseName) {
        if let Some(client) = self.others.remove(database.as_str()) {
            let _ = client.close();
        }
    }

    /// Keeps the cache of connections to other databases below [`MAX_CACHED_CONNECTIONS`] before
    /// one more is opened, so a long-lived provisioner does not hold a session in every
    /// database it ever touched. The lock database's connection is kept (it holds the advisory
    /// locks); the others open again on next use (every batch is self-contained).
    fn evict_cached_connections(&mut self) {
        while self.others.len() >= self.max_cached {
            let Some(victim) = self
                .others
                .keys()
                .find(|d| d.as_str() != LOCK_DATABASE)
                .cloned()
            else {
                return;
            };
            if let Some(client) = self.others.remove(&victim) {
                let _ = client.close();
            }
        }
    }

    /// Closes rds-pg's connection to `database`, if any, and returns its backend pid: the
    /// server may list the session for a moment after it closed.
    fn close_connection(&mut self, database: &DatabaseName) -> Option<i32> {
        let mut client = self.others.remove(database.as_str())?;
        let pid = backend_pid(&mut client);
        let _ = client.close();
        pid
    }

    fn client_for(&mut self, database: Option<&DatabaseName>) -> Result<&mut Client> {
        match database {
            None => {
                if self.client.is_closed() {
                    self.reconnect(None)?;
                }
                Ok(&mut self.client)
            }
            Some(d) => self.database_client(d),
        }
    }

    /// Forgets the connection to `database` (`None`: the maintenance database) and, for the
    /// maintenance one, opens it again; others reopen on next use.
    fn reconnect(&mut self, database: Option<&DatabaseName>) -> Result<()> {
        match database.filter(|d| d.as_str() != self.facts.current_database) {
            Some(d) => {
                self.others.remove(d.as_str());
            }
            None => {
                self.client = crate::connect::connect_with_settings(
                    &self.options,
                    &session_settings(self.lock_timeout),
                )?;
            }
        }
        Ok(())
    }

    /// Runs a read-only inspection over the connection to `database` (`None`: the maintenance
    /// database). A cached connection that turns out to be gone (a server restart, a terminated
    /// session, a database dropped and created again by someone else) is opened again once and
    /// the inspection repeated, instead of failing with "connection closed".
    pub(crate) fn inspecting<T>(
        &mut self,
        database: Option<&DatabaseName>,
        read: impl Fn(&mut Client, u32) -> Result<T>,
    ) -> Result<T> {
        let major = self.facts.major;
        match read(self.client_for(database)?, major) {
            Err(e) if e.is_connection_lost() => {
                self.reconnect(database)?;
                read(self.client_for(database)?, major)
            }
            other => other,
        }
    }

    /// Serialises changes to the same roles and databases across processes (session-level
    /// advisory locks taken in a fixed order, waiting at most `lock_timeout`; one round trip).
    /// Released by [`Self::unlock`].
    fn lock(&mut self, keys: &[String]) -> Result<()> {
        let client = self.lock_client();
        let result = client.query_typed(
            "SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtextextended(k, 0::pg_catalog.int8))
               FROM (SELECT DISTINCT k FROM pg_catalog.unnest($1::pg_catalog.text[]) k ORDER BY k) s",
            &[(&keys, Type::TEXT_ARRAY)],
        );
        if let Err(e) = result {
            // A later key timed out: the session still holds the earlier ones (session-level
            // advisory locks outlive the failed statement). rds-pg holds no other between
            // operations, so release them all.
            let _ = client.query_typed("SELECT pg_catalog.pg_advisory_unlock_all()", &[]);
            return Err(Error::from(e));
        }
        Ok(())
    }

    fn unlock(&mut self, keys: &[String]) {
        let _ = self.lock_client().query_typed(
            "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended(k, 0::pg_catalog.int8))
               FROM (SELECT DISTINCT k FROM pg_catalog.unnest($1::pg_catalog.text[]) k) s",
            &[(&keys, Type::TEXT_ARRAY)],
        );
    }

    /// The session locks are taken in: always in the database [`LOCK_DATABASE`] (advisory locks
    /// belong to a database), so runs connected to different maintenance databases still
    /// serialise; the maintenance connection when that database is unreachable.
    fn lock_client(&mut self) -> &mut Client {
        if self.facts.current_database != LOCK_DATABASE {
            let name = DatabaseName::from_catalog(LOCK_DATABASE);
            if self.database_client(&name).is_ok() {
                return self
                    .others
                    .get_mut(LOCK_DATABASE)
                    .expect("opened by database_client");
            }
        }
        &mut self.client
    }

    /// Runs `plan` and returns the report. Consecutive steps for the same database are sent as
    /// one batch (one round trip, one implicit transaction); `CREATE DATABASE` goes alone. A
    /// temporary membership is revoked even when a step fails.
    fn apply(&mut self, plan: Plan) -> Result<Report> {
        let mut report = Report {
            changed: !plan.steps.is_empty(),
            notes: plan.notes.clone(),
            ..Report::default()
        };
        let (body, revokes): (Vec<Step>, Vec<Step>) =
            plan.steps.into_iter().partition(|s| !s.is_cleanup());
        let result = self.run_steps(&body, &mut report);
        if matches!(result, Err(Error::Abandoned)) {
            return result.map(|_| report);
        }
        // Always drop a temporary membership that was granted, and one found left over; one of
        // a role the operation dropped went with it, so its revoke runs only when the operation
        // failed.
        let granted: Vec<RoleName> = report
            .steps
            .iter()
            .filter(|s| s.kind() == StepKind::TemporaryGrant)
            .filter_map(|s| s.temporary_role().cloned())
            .collect();
        // An IAM user whose rds_iam was suspended gets it back, after master's membership ended
        // (the same batch: both or neither).
        let suspended: Vec<RoleName> = report
            .steps
            .iter()
            .filter_map(|s| match &s.change {
                plan::Change::SuspendIam { role } => Some(role.clone()),
                _ => None,
            })
            .collect();
        let revokes: Vec<Step> = revokes
            .into_iter()
            .filter(|s| {
                let ours = match &s.change {
                    plan::Change::RestoreIam { role, .. } => suspended.contains(role),
                    _ => {
                        s.removes_leftover()
                            || s.temporary_role().is_some_and(|r| granted.contains(r))
                    }
                };
                ours && (result.is_err() || !s.only_on_failure())
            })
            .collect();
        let revoke_result = self.run_steps(&revokes, &mut report);
        report
            .notes
            .extend(leftover_notes(&self.facts, report.steps.iter()));
        report.temporary_grants.extend(granted);
        result.and(revoke_result)?;
        Ok(report)
    }

    /// The shape of every operation: plan; with nothing to change, stop (one inspection round
    /// trip per database); otherwise take the locks, plan again under them (another run may have
    /// done the work meanwhile), apply, release.
    fn ensure(
        &mut self,
        keys: &[String],
        plan: impl Fn(&mut Self) -> Result<Plan>,
    ) -> Result<Report> {
        self.ensure_then(keys, plan, None)
    }

    /// As [`Self::ensure`]; with `before_commit`, the plan (all of it in the maintenance
    /// database) runs in one explicit transaction that commits only when `before_commit`
    /// succeeds, and rolls back otherwise.
    fn ensure_then(
        &mut self,
        keys: &[String],
        plan: impl Fn(&mut Self) -> Result<Plan>,
        before_commit: Option<BeforeCommit<'_>>,
    ) -> Result<Report> {
        let first = match plan(self) {
            // The unlocked inspection may read a role from its snapshot and master's access to
            // it from the catalog as it is now (pg_has_role), which already shows another run's
            // committed DROP ROLE: a missing privilege is confirmed under the locks.
            Err(e) if e.kind() == crate::error::ErrorKind::PermissionDenied => {
                self.lock(keys)?;
                let again = plan(self);
                self.unlock(keys);
                again?
            }
            other => other?,
        };
        if first.is_empty() {
            return Ok(unchanged(first));
        }
        // Operations that gain and give up the same master→role membership (a read-only grant
        // and a database creation for the same owner) serialise on that role too.
        let mut keys = keys.to_vec();
        add_membership_keys(&first, &mut keys);
        // Leftover memberships of roles the operation does not otherwise touch: removed only
        // when no other rds-pg operation holds the role's lock (tried, never waited for, after
        // the operation's own locks), so a membership another run holds for its work stays.
        let untouched: Vec<String> = untouched_leftover_keys(&first);
        let mut attempts = 0;
        loop {
            self.lock(&keys)?;
            let held = match self.try_lock(&untouched, &keys) {
                Ok(held) => held,
                Err(e) => {
                    self.unlock(&keys);
                    return Err(e);
                }
            };
            // Planned again under the locks: another run may have done the work meanwhile, and a
            // membership seen now of a role whose lock this run holds is a leftover.
            let planned = plan(self).map(|mut p| {
                p.steps.retain(|s| {
                    !s.only_if_unlocked()
                        || s.temporary_role().is_some_and(|r| {
                            let key = lock_key("role", r.as_str());
                            keys.contains(&key) || held.contains(&key)
                        })
                });
                p
            });
            // A membership the locked plan needs of a role the first plan did not: lock that role
            // too and plan again, so no run gains or gives up a membership without its lock.
            if let Ok(p) = &planned {
                let before = keys.len();
                let mut wanted = keys.clone();
                add_membership_keys(p, &mut wanted);
                if wanted.len() > before && attempts < 3 {
                    attempts += 1;
                    self.unlock(&keys);
                    self.unlock(&held);
                    keys = wanted;
                    continue;
                }
            }
            let result = planned.and_then(|p| match before_commit {
                // Nothing to deliver without a new password: no transaction is needed.
                Some(hook) if p.sets_password() => {
                    // A leftover membership is removed after the commit, as a cleanup (the
                    // transaction holds only the change the credentials belong to).
                    let (body, cleanup): (Vec<Step>, Vec<Step>) =
                        p.steps.into_iter().partition(|s| !s.is_cleanup());
                    let body = Plan {
                        steps: body,
                        notes: p.notes,
                    };
                    let mut report = self.apply_in_transaction(body, hook)?;
                    if !cleanup.is_empty() {
                        let done = self.apply(Plan {
                            steps: cleanup,
                            notes: Vec::new(),
                        })?;
                        report.steps.extend(done.steps);
                        report.notes.extend(done.notes);
                    }
                    Ok(report)
                }
                Some(_) | None => self.apply(p),
            });
            if !matches!(result, Err(Error::Abandoned)) {
                self.unlock(&keys);
                self.unlock(&held);
            }
            return result;
        }
    }

    /// Tries the advisory locks `wanted` without waiting, skipping those in `own` (this run holds
    /// them already); returns the ones taken (one round trip, none when `wanted` is empty).
    fn try_lock(&mut self, wanted: &[String], own: &[String]) -> Result<Vec<String>> {
        let wanted: Vec<&String> = wanted.iter().filter(|k| !own.contains(k)).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.lock_client().query_typed(
            "SELECT k FROM (SELECT DISTINCT k FROM pg_catalog.unnest($1::pg_catalog.text[]) k) s
              WHERE pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended(k, 0::pg_catalog.int8))",
            &[(&wanted, Type::TEXT_ARRAY)],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Runs a maintenance-database plan inside `BEGIN … COMMIT`, calling `before_commit` between
    /// the last statement and the commit: its failure rolls everything back.
    fn apply_in_transaction(
        &mut self,
        plan: Plan,
        before_commit: BeforeCommit<'_>,
    ) -> Result<Report> {
        debug_assert!(plan.steps.iter().all(|s| s.database.is_none()
            && !s.standalone()
            && s.kind() != StepKind::TemporaryGrant));
        let mut report = Report {
            changed: !plan.steps.is_empty(),
            notes: plan.notes.clone(),
            steps: plan.steps.clone(),
            ..Report::default()
        };
        self.fault_point(&plan.steps, false, false)?;
        let mut sql = vec!["BEGIN".to_owned()];
        sql.extend(plan.steps.iter().map(Step::executable_sql));
        if let Err(e) = self.client.batch_execute(&sql.join(";\n")) {
            let _ = self.client.batch_execute("ROLLBACK");
            return Err(with_step_context(e));
        }
        if let Err(e) = before_commit(self, &report) {
            self.client
                .batch_execute("ROLLBACK")
                .map_err(|rollback| Error::Uncommitted {
                    message: format!(
                        "{e}; and the rollback failed too ({}), so whether the change happened is \
                         unknown: look at the role before running the command again",
                        Error::from(rollback)
                    ),
                })?;
            report.changed = false;
            return Err(e);
        }
        if let Err(e) = self.fault_point(&plan.steps, false, true) {
            if matches!(e, Error::Abandoned) {
                return Err(e);
            }
            let _ = self.client.batch_execute("ROLLBACK");
            return Err(e);
        }
        if let Err(e) = self.client.batch_execute("COMMIT") {
            return Err(Error::Uncommitted {
                message: format!(
                    "the change was made and delivered, but its COMMIT failed ({}): whether it \
                     took effect is unknown",
                    Error::from(e)
                ),
            });
        }
        report
            .notes
            .extend(leftover_notes(&self.facts, plan.steps.iter()));
        Ok(report)
    }

    fn run_steps(&mut self, steps: &[Step], report: &mut Report) -> Result<()> {
        let mut i = 0;
        while i < steps.len() {
            let mut j = i + 1;
            if !steps[i].standalone() {
                while j < steps.len()
                    && !steps[j].standalone()
                    && steps[j].database == steps[i].database
                {
                    j += 1;
                }
            }
            let batch = &steps[i..j];
            let cleanup = batch.iter().all(Step::is_cleanup);
            self.fault_point(batch, cleanup, false)?;
            let sql: Vec<String> = batch.iter().map(|s| s.executable_sql()).collect();
            if batch[0].change.needs_default_search_path() {
                // A script that reads the session's default search_path: a session of its own
                // that runs this one statement and closes.
                let database = batch[0]
                    .database
                    .as_ref()
                    .map(|d| d.as_str())
                    .unwrap_or(&self.facts.current_database);
                let options = self.options.for_database(database);
                let mut settings = session_settings(self.lock_timeout);
                settings.push(("search_path", "\"$user\",public".to_owned()));
                let mut client = crate::connect::connect_with_settings(&options, &settings)?;
                client
                    .batch_execute(&sql.join(";\n"))
                    .map_err(with_step_context)?;
                let _ = client.close();
            } else {
                let client = self.client_for(batch[0].database.as_ref())?;
                client
                    .batch_execute(&sql.join(";\n"))
                    .map_err(with_step_context)?;
            }
            report.steps.extend(batch.iter().cloned());
            i = j;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ users

    /// Plans [`Self::ensure_user`] without changing anything (a password is generated for the
    /// plan when the spec has none; it is in no SQL shown).
    ///
    /// # Errors
    /// As [`Self::ensure_user`].
    pub fn plan_ensure_user(&mut self, spec: &UserSpec) -> Result<Plan> {
        let password = NewPassword::given_or_generated(spec.password.clone())?;
        self.plan_user(spec, &password)
    }

    fn plan_user(&mut self, spec: &UserSpec, password: &NewPassword) -> Result<Plan> {
        spec.validate()?;
        let snapshot = self.inspecting(None, |c, major| {
            inspect::user_snapshot(c, major, spec.name.as_str(), spec.valid_until.as_deref())
        })?;
        let mut plan = plan::plan_user(&self.facts, &snapshot, spec, password)?;
        plan::with_untouched_leftovers(&self.facts, &snapshot.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Creates the project's login role, or converges an existing one to
    /// `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`. A generated password is returned once in
    /// the report; the password travels only as a SCRAM verifier.
    ///
    /// With [`UserSpec::iam`] the role is an IAM user (`PASSWORD NULL`, a member of `rds_iam`):
    /// no password is generated or delivered; an existing role is switched as the spec says.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] before any SQL for a password PostgreSQL would not store (empty,
    /// with NUL, or empty once SASLprep removes the characters it maps to nothing);
    /// [`Error::PolicyViolation`] for master itself or a role holding more than a project role
    /// may (a superuser, CREATEDB, CREATEROLE, an `rds_superuser` member, …);
    /// [`Error::PermissionDenied`] with the fix when master lacks ADMIN on it (16+).
    pub fn ensure_user(&mut self, spec: &UserSpec) -> Result<Report> {
        self.ensure_user_then(spec, None)
    }

    /// As [`Self::ensure_user`], handing a new role's credentials to `delivery` as one unit with
    /// its creation: the role is created in a transaction that commits only once the
    /// credentials were delivered, so a sink that fails leaves no role behind (and says so). An
    /// existing role's password is not changed, so nothing is delivered (a note says so).
    ///
    /// # Errors
    /// As [`Self::ensure_user`]; the sink's error when delivery fails (nothing was created);
    /// [`Error::Uncommitted`] when the credentials were delivered but the commit failed.
    pub fn ensure_user_delivering(
        &mut self,
        spec: &UserSpec,
        delivery: &CredentialDelivery,
    ) -> Result<Report> {
        delivery.check()?;
        self.ensure_user_then(spec, Some(delivery))
    }

    fn ensure_user_then(
        &mut self,
        spec: &UserSpec,
        delivery: Option<&CredentialDelivery>,
    ) -> Result<Report> {
        let password = NewPassword::given_or_generated(spec.password.clone())?;
        let keys = [lock_key("role", spec.name.as_str())];
        let user = spec.name.clone();
        let report = match delivery {
            None => self.ensure(&keys, |p| p.plan_user(spec, &password))?,
            Some(d) => self
                .ensure_then(
                    &keys,
                    |p| p.plan_user(spec, &password),
                    Some(&mut |p: &mut Self, r: &Report| p.deliver(r, &user, &password, d)),
                )
                .map_err(|e| uncommitted_state(e, &user, d, "creation"))?,
        };
        Ok(finish_password_report(report, &password, delivery))
    }

    /// Hands the new password of `user` to `delivery`, when the operation in `report` sets one.
    fn deliver(
        &self,
        report: &Report,
        user: &RoleName,
        password: &NewPassword,
        delivery: &CredentialDelivery,
    ) -> Result<()> {
        if !sets_password(report) {
            return Ok(());
        }
        let database = delivery
            .database
            .as_ref()
            .map(|d| d.as_str())
            .unwrap_or(user.as_str());
        Credentials::from_options(
            &self.options,
            user.as_str(),
            database,
            password.password().clone(),
        )?
        .deliver_as(&delivery.sink, delivery.format)
        .map_err(|e| Error::NotDelivered {
            sink: delivery.sink.to_string(),
            message: format!(
                "{e}; nothing was changed: the change to role {:?} was rolled back",
                user.as_str()
            ),
            source: Box::new(e),
        })
    }

    // ------------------------------------------------------------------ databases

    fn cluster_snapshot(
        &mut self,
        database: &str,
        role: &str,
        extensions: &[Extension],
    ) -> Result<ClusterSnapshot> {
        let names: Vec<String> = extensions_with_requirements(extensions);
        // pg_available_extension_versions reads every control file on the server (tens of ms):
        // ask only for extensions not seen yet; what is installable does not change meanwhile.
        let unseen: Vec<String> = names
            .iter()
            .filter(|n| !self.available.contains_key(n.as_str()))
            .cloned()
            .collect();
        let mut snapshot = self.inspecting(None, |c, major| {
            inspect::cluster_snapshot(c, major, database, role, &unseen)
        })?;
        for a in snapshot.available.drain(..) {
            self.available.insert(a.name.clone(), a);
        }
        snapshot.available = names
            .iter()
            .filter_map(|n| self.available.get(n.as_str()).cloned())
            .collect();
        Ok(snapshot)
    }

    fn database_snapshot(
        &mut self,
        database: &DatabaseName,
        owner: &str,
        role: Option<&str>,
        schemas: &[String],
        scope: SnapshotScope,
    ) -> Result<DatabaseSnapshot> {
        self.inspecting(Some(database), |c, _| {
            inspect::database_snapshot(c, owner, role, schemas, scope)
        })
    }

    /// Plans [`Self::ensure_database`] without changing anything.
    ///
    /// # Errors
    /// As [`Self::ensure_database`].
    pub fn plan_ensure_database(&mut self, spec: &DatabaseSpec) -> Result<Plan> {
        spec.validate()?;
        let cluster =
            self.cluster_snapshot(spec.name.as_str(), spec.owner.as_str(), &spec.extensions)?;
        let shadowing = SnapshotScope {
            shadowing: !spec.extensions.is_empty(),
            template: false,
        };
        let db = match &cluster.database {
            Some(d) if d.master_can_connect || self.facts.is_superuser => {
                self.database_snapshot(&spec.name, spec.owner.as_str(), None, &[], shadowing)?
            }
            // Master cannot look inside yet (the plan grants it CONNECT): plan the in-database
            // steps as for a new database; every one of them is idempotent. What the owner may
            // have planted there is unknown, which the planner treats as such.
            Some(_) => DatabaseSnapshot {
                uninspected: true,
                ..DatabaseSnapshot::default()
            },
            None => {
                let template = plan::resolve_template(&self.facts, spec);
                if template.as_str() == "template0" {
                    DatabaseSnapshot::fresh_from_template0(self.facts.major)
                } else {
                    // The new database starts as a copy of its template: inspect and audit that,
                    // then close the connection (CREATE DATABASE refuses a template in use).
                    let scope = SnapshotScope {
                        template: true,
                        ..shadowing
                    };
                    let snapshot =
                        self.database_snapshot(&template, spec.owner.as_str(), None, &[], scope);
                    let _ = self.close_connection(&template);
                    snapshot?
                }
            }
        };
        let mut plan = plan::plan_database(&self.facts, &cluster, &db, spec)?;
        plan::with_untouched_leftovers(&self.facts, &cluster.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Creates the project's database owned by its user (or converges an existing one): `REVOKE
    /// ALL … FROM PUBLIC`, extensions (untrusted ones as master, trusted ones as the owner),
    /// PostGIS fix-ups and the public schema's owner. Master gains the owner's membership for the
    /// operation when it lacks it and gives it up at the end.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing owner or extension, [`Error::PolicyViolation`] for a
    /// privileged owner, [`Error::PermissionDenied`] with the fix when master cannot act as the
    /// owner — all before any change.
    pub fn ensure_database(&mut self, spec: &DatabaseSpec) -> Result<Report> {
        let keys = [
            lock_key("role", spec.owner.as_str()),
            lock_key("database", spec.name.as_str()),
        ];
        self.ensure(&keys, |p| p.plan_ensure_database(spec))
    }

    /// Plans [`Self::ensure_extensions`] without changing anything.
    ///
    /// # Errors
    /// As [`Self::ensure_extensions`].
    pub fn plan_ensure_extensions(
        &mut self,
        database: &DatabaseName,
        extensions: &[Extension],
    ) -> Result<Plan> {
        let cluster = self.cluster_snapshot(database.as_str(), "", extensions)?;
        let owner = match &cluster.database {
            Some(d) => d.owner.clone(),
            None => {
                return Err(Error::NotFound {
                    message: format!("database {:?} does not exist", database.as_str()),
                    source: None,
                })
            }
        };
        plan::ensure_master_can_connect(&self.facts, &cluster, database)?;
        let scope = SnapshotScope {
            shadowing: !extensions.is_empty(),
            template: false,
        };
        let db = self.database_snapshot(database, &owner, None, &[], scope)?;
        let mut plan = plan::plan_extensions(&self.facts, &cluster, &db, database, extensions)?;
        plan::with_untouched_leftovers(&self.facts, &cluster.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Creates extensions in an existing database (trusted ones as its owner) with their fix-ups.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing database or extension; permission errors as
    /// [`Self::ensure_database`].
    pub fn ensure_extensions(
        &mut self,
        database: &DatabaseName,
        extensions: &[Extension],
    ) -> Result<Report> {
        let keys = [lock_key("database", database.as_str())];
        self.ensure(&keys, |p| p.plan_ensure_extensions(database, extensions))
    }

    // ------------------------------------------------------------------ read-only access

    fn read_only_snapshots(
        &mut self,
        grant: &ReadOnlyGrant,
    ) -> Result<(ClusterSnapshot, DatabaseSnapshot)> {
        grant.validate()?;
        let cluster = self.cluster_snapshot(grant.database.as_str(), grant.role.as_str(), &[])?;
        let Some(state) = &cluster.database else {
            return Err(Error::NotFound {
                message: format!("database {:?} does not exist", grant.database.as_str()),
                source: None,
            });
        };
        let owner = state.owner.clone();
        plan::ensure_master_can_connect(&self.facts, &cluster, &grant.database)?;
        let schemas: Vec<String> = grant
            .schemas
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let db = self.database_snapshot(
            &grant.database,
            &owner,
            Some(grant.role.as_str()),
            &schemas,
            SnapshotScope::default(),
        )?;
        Ok((cluster, db))
    }

    /// Plans [`Self::grant_read_only`] without changing anything.
    ///
    /// # Errors
    /// As [`Self::grant_read_only`].
    pub fn plan_grant_read_only(&mut self, grant: &ReadOnlyGrant) -> Result<Plan> {
        let (cluster, db) = self.read_only_snapshots(grant)?;
        let mut plan = plan::plan_grant_read_only(&self.facts, &cluster, &db, grant)?;
        plan::with_untouched_leftovers(&self.facts, &cluster.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Gives `grant.role` read access: CONNECT, USAGE on the schemas, SELECT on their tables and
    /// sequences, and `ALTER DEFAULT PRIVILEGES FOR ROLE <owner>` so tables created later are
    /// readable — granted as the owner, so PostgreSQL warns about nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing database, role or schema; permission errors as
    /// [`Self::ensure_database`].
    pub fn grant_read_only(&mut self, grant: &ReadOnlyGrant) -> Result<Report> {
        let keys = [lock_key("database", grant.database.as_str())];
        self.ensure(&keys, |p| p.plan_grant_read_only(grant))
    }

    /// Plans [`Self::revoke_read_only`] without changing anything.
    ///
    /// # Errors
    /// As [`Self::revoke_read_only`].
    pub fn plan_revoke_read_only(&mut self, grant: &ReadOnlyGrant) -> Result<Plan> {
        let (cluster, db) = self.read_only_snapshots(grant)?;
        let mut plan = plan::plan_revoke_read_only(&self.facts, &cluster, &db, grant)?;
        plan::with_untouched_leftovers(&self.facts, &cluster.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Removes what [`Self::grant_read_only`] granted.
    ///
    /// # Errors
    /// As [`Self::grant_read_only`].
    pub fn revoke_read_only(&mut self, grant: &ReadOnlyGrant) -> Result<Report> {
        let keys = [lock_key("database", grant.database.as_str())];
        self.ensure(&keys, |p| p.plan_revoke_read_only(grant))
    }
    // ------------------------------------------------------------------ the instance

    /// Plans [`Self::secure_instance`] without changing anything.
    ///
    /// # Errors
    /// Connection and server errors.
    pub fn plan_secure_instance(&mut self) -> Result<Plan> {
        let result = self.secure_instance_plan();
        let _ = self.close_connection(&template1());
        result
    }

    fn secure_instance_plan(&mut self) -> Result<Plan> {
        let mut names = vec![None];
        for name in ["postgres", "template1"] {
            if name != self.facts.current_database {
                names.push(Some(DatabaseName::new(name)?));
            }
        }
        let mut databases = Vec::new();
        for database in names {
            let snapshot = self.inspecting(database.as_ref(), |c, _| {
                inspect::database_snapshot(c, "", None, &[], SnapshotScope::default())
            })?;
            databases.push((database, snapshot));
        }
        Ok(plan::plan_secure_instance(&self.facts, &databases))
    }

    /// Closes schema `public` of the maintenance database, `postgres` and `template1` to
    /// creation by PUBLIC (`REVOKE CREATE ON SCHEMA public FROM PUBLIC`, where granted: RDS
    /// keeps PostgreSQL's pre-15 default there on 13 and 14). Until then any login role can plant
    /// objects there, and what it plants in `template1` is copied into every database created
    /// from it, which is why [`Self::ensure_database`] refuses such a template. Revokes only;
    /// drops nothing. Nothing to do on 15+ instances created as 15+.
    ///
    /// # Errors
    /// Connection and server errors.
    pub fn secure_instance(&mut self) -> Result<Report> {
        let keys = [lock_key("instance", "public-schemas")];
        let result = self.ensure(&keys, |p| p.secure_instance_plan());
        // CREATE DATABASE refuses a template that has sessions: do not keep one open.
        let _ = self.close_connection(&template1());
        result
    }

    // ------------------------------------------------------------------ teardown

    /// Plans [`Self::drop_database`] without changing anything (rds-pg's own connection to the
    /// database, if any, does not count as a session).
    ///
    /// # Errors
    /// As [`Self::drop_database`], except that sessions still exiting are not waited for.
    pub fn plan_drop_database(
        &mut self,
        name: &DatabaseName,
        options: &DropDatabaseOptions,
    ) -> Result<Plan> {
        plan::check_droppable_database(&self.facts, name)?;
        let own = match self.others.get_mut(name.as_str()) {
            Some(client) => backend_pid(client).into_iter().collect(),
            None => Vec::new(),
        };
        self.plan_drop_database_ignoring(name, options, &own)
    }

    fn plan_drop_database_ignoring(
        &mut self,
        name: &DatabaseName,
        options: &DropDatabaseOptions,
        own: &[i32],
    ) -> Result<Plan> {
        let snapshot = self.inspecting(None, |c, major| {
            inspect::drop_database_snapshot(c, major, name.as_str(), own)
        })?;
        let mut plan = plan::plan_drop_database(&self.facts, &snapshot, name, options)?;
        plan::with_untouched_leftovers(&self.facts, &snapshot.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Drops a project database from the maintenance database. Master gains the owner's
    /// privileges for the operation when it lacks them (the usual "alter owner to master, then
    /// drop" fails without them). A missing database is no change.
    ///
    /// # Errors
    /// [`Error::PolicyViolation`] for `postgres`, `template0`, `template1`, `rdsadmin`, the
    /// maintenance database or a template; [`Error::StillInUse`] listing the sessions still
    /// connected after about a second unless `options.force` (then `DROP DATABASE … WITH (FORCE)` terminates them) — all before
    /// any change; [`Error::PermissionDenied`] with the fix when master cannot gain the owner.
    pub fn drop_database(
        &mut self,
        name: &DatabaseName,
        options: &DropDatabaseOptions,
    ) -> Result<Report> {
        plan::check_droppable_database(&self.facts, name)?;
        // rds-pg's own connection to it would count as a session and block the drop: close it.
        let own: Vec<i32> = self.close_connection(name).into_iter().collect();
        let keys = [lock_key("database", name.as_str())];
        // A client that just disconnected (a pg_restore that finished, a deploy step's psql) is
        // listed until its backend has exited: give such sessions a moment, as DROP DATABASE
        // itself does, before calling the database busy.
        let mut waits = 0;
        loop {
            match self.ensure(&keys, |p| {
                p.plan_drop_database_ignoring(name, options, &own)
            }) {
                Err(Error::StillInUse { .. }) if !options.force && waits < SESSION_GRACE_CHECKS => {
                    std::thread::sleep(SESSION_GRACE_INTERVAL);
                    waits += 1;
                }
                result => return result,
            }
        }
    }

    /// Plans [`Self::drop_user`] without changing anything. Connects to every database where
    /// the role owns objects or holds privileges (one inspection query in each).
    ///
    /// # Errors
    /// As [`Self::drop_user`].
    pub fn plan_drop_user(&mut self, name: &RoleName, options: &DropUserOptions) -> Result<Plan> {
        plan::check_droppable_role(name)?;
        let heir = options.reassign_to.as_ref().map(|r| r.as_str());
        let cluster = self.inspecting(None, |c, major| {
            inspect::drop_user_snapshot(c, major, name.as_str(), heir)
        })?;
        let mut per_database = std::collections::BTreeMap::new();
        if cluster.role.is_some() {
            for d in &cluster.databases {
                let reachable = d.name == self.facts.current_database
                    || (d.allows_connections && (d.master_can_connect || self.facts.is_superuser));
                if !reachable {
                    continue; // the planner reports it before any change
                }
                let database = DatabaseName::from_catalog(&d.name);
                let snapshot = self.inspecting(Some(&database), |c, major| {
                    inspect::drop_user_database(c, major, name.as_str())
                })?;
                per_database.insert(d.name.clone(), snapshot);
            }
        }
        let mut plan = plan::plan_drop_user(&self.facts, &cluster, &per_database, name, options)?;
        // The role being dropped takes master's membership of it along.
        plan::with_untouched_leftovers(
            &self.facts,
            &cluster.leftover_memberships,
            &[name.as_str()],
            &mut plan,
        );
        Ok(plan)
    }

    /// Drops a project role the way a plain `dropuser` cannot: in every database where it owns
    /// objects or holds privileges, `REASSIGN OWNED BY … TO <reassign_to>` (when given) and `DROP
    /// OWNED BY …`; then `DROP ROLE`, which also removes its memberships. Master gains, for the
    /// operation, the role, the heir and every role that granted the role privileges. The report's
    /// steps say what was removed in each database. A missing role is no change.
    ///
    /// # Errors
    /// [`Error::PolicyViolation`] for master, a superuser, an `rds_superuser` member, or a role
    /// that owns a database when no `reassign_to` is given; [`Error::PermissionDenied`] naming
    /// databases master cannot connect to — all before any change.
    pub fn drop_user(&mut self, name: &RoleName, options: &DropUserOptions) -> Result<Report> {
        let mut keys = vec![lock_key("role", name.as_str())];
        if let Some(target) = &options.reassign_to {
            keys.push(lock_key("role", target.as_str()));
        }
        self.ensure(&keys, |p| p.plan_drop_user(name, options))
    }

    /// Plans [`Self::rotate_password`] without changing anything (a generated password is in
    /// no SQL shown).
    ///
    /// # Errors
    /// As [`Self::rotate_password`].
    pub fn plan_rotate_password(
        &mut self,
        user: &RoleName,
        password: Option<Password>,
    ) -> Result<Plan> {
        let password = NewPassword::given_or_generated(password)?;
        self.plan_rotation(user, &password)
    }

    fn plan_rotation(&mut self, user: &RoleName, password: &NewPassword) -> Result<Plan> {
        user.ensure_creatable()?;
        crate::secret::check_new_password(password.password())?;
        let snapshot = self.inspecting(None, |c, major| {
            inspect::user_snapshot(c, major, user.as_str(), None)
        })?;
        let mut plan =
            plan::plan_rotate_password(&self.facts, snapshot.role.as_ref(), user, password)?;
        plan::with_untouched_leftovers(&self.facts, &snapshot.leftover_memberships, &[], &mut plan);
        Ok(plan)
    }

    /// Sets a new password for a project role, sent as a SCRAM-SHA-256 verifier. With `None` a
    /// password is generated and returned once in [`Report::generated_password`]. Every call
    /// changes the password (the old one cannot be read back to compare).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] before any SQL for a password PostgreSQL would not store (empty,
    /// with NUL, or empty once SASLprep removes the characters it maps to nothing);
    /// [`Error::NotFound`] for a missing role; [`Error::PolicyViolation`] for master or a role
    /// holding more than a project role may; [`Error::PermissionDenied`] on 16+ without ADMIN
    /// on it.
    pub fn rotate_password(
        &mut self,
        user: &RoleName,
        password: Option<Password>,
    ) -> Result<Report> {
        self.rotate_password_then(user, password, None)
    }

    /// As [`Self::rotate_password`], handing the new credentials to `delivery` as one unit with
    /// the change: the new password is set in a transaction that commits only once it was
    /// delivered, so a sink that fails leaves the old password working (and says so).
    ///
    /// # Errors
    /// As [`Self::rotate_password`]; the sink's error when delivery fails (the password is
    /// unchanged); [`Error::Uncommitted`] when the credentials were delivered but the commit
    /// failed.
    pub fn rotate_password_delivering(
        &mut self,
        user: &RoleName,
        password: Option<Password>,
        delivery: &CredentialDelivery,
    ) -> Result<Report> {
        delivery.check()?;
        self.rotate_password_then(user, password, Some(delivery))
    }

    fn rotate_password_then(
        &mut self,
        user: &RoleName,
        password: Option<Password>,
        delivery: Option<&CredentialDelivery>,
    ) -> Result<Report> {
        let password = NewPassword::given_or_generated(password)?;
        let keys = [lock_key("role", user.as_str())];
        // Always a change: planning finds nothing already done, so the plan's first run only
        // checks; the locked re-plan is the one applied (with the same verifier).
        let report = match delivery {
            None => self.ensure(&keys, |p| p.plan_rotation(user, &password))?,
            Some(d) => self
                .ensure_then(
                    &keys,
                    |p| p.plan_rotation(user, &password),
                    Some(&mut |p: &mut Self, r: &Report| p.deliver(r, user, &password, d)),
                )
                .map_err(|e| uncommitted_state(e, user, d, "password change"))?,
        };
        Ok(finish_password_report(report, &password, delivery))
    }
}

/// Where an operation that sets a password hands the new credentials: a sink, the database
/// the credentials are for (default: the database named like the user, as projects are), and
/// the JSON document a command sink receives (default [`CredentialFormat::RdsPg`]).
#[derive(Clone, Debug)]
pub struct CredentialDelivery {
    /// Where the credentials go.
    pub sink: CredentialSink,
    /// The database they are for; `None` is the one named like the user.
    pub database: Option<DatabaseName>,
    /// The document a command sink receives on its standard input.
    pub format: CredentialFormat,
}

impl CredentialDelivery {
    /// Credentials for the database named like the user, to `sink`, in rds-pg's format.
    pub fn new(sink: CredentialSink) -> Self {
        CredentialDelivery {
            sink,
            database: None,
            format: CredentialFormat::default(),
        }
    }

    /// The credentials are for `database`.
    pub fn database(mut self, database: DatabaseName) -> Self {
        self.database = Some(database);
        self
    }

    /// A command sink receives the document of `format` (a file sink only takes
    /// [`CredentialFormat::RdsPg`], which [`CredentialDelivery::check`] says).
    pub fn format(mut self, format: CredentialFormat) -> Self {
        self.format = format;
        self
    }

    /// Refuses, before anything changes, a sink that cannot be written: a file whose
    /// directory does not exist, an empty command ([`CredentialSink::check`]), or a file sink
    /// given a command's format.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the missing directory, the empty command or the mismatched
    /// format.
    pub fn check(&self) -> Result<()> {
        self.format.check_sink(&self.sink)?;
        self.sink.check()
    }
}

/// Whether the operation reported set a password.
fn sets_password(report: &Report) -> bool {
    report.steps.iter().any(|s| {
        matches!(
            s.change,
            plan::Change::CreateRole {
                password: Some(_),
                ..
            } | plan::Change::SetPassword { .. }
        )
    })
}

/// Fills in which password is the new one (and whether it was generated), and where it went.
fn finish_password_report(
    mut report: Report,
    password: &NewPassword,
    delivery: Option<&CredentialDelivery>,
) -> Report {
    if sets_password(&report) {
        report.new_password = Some(password.password().clone());
        if password.is_generated() {
            report.generated_password = Some(password.password().clone());
        }
        if let Some(d) = delivery {
            report.credentials_delivered_to = Some(d.sink.to_string());
        }
    } else if let Some(d) = delivery {
        report.notes.push(format!(
            "no new password was set, so nothing was written to the {}",
            d.sink
        ));
    }
    report
}

fn backend_pid(client: &mut Client) -> Option<i32> {
    client
        .query_typed_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .ok()
        .map(|r| r.get(0))
}

/// What runs between an operation's last statement and its commit (credential delivery).
type BeforeCommit<'a> = &'a mut dyn FnMut(&mut Provisioner, &Report) -> Result<()>;

fn session_settings(lock_timeout: Duration) -> Vec<(&'static str, String)> {
    vec![("lock_timeout", lock_timeout.as_millis().to_string())]
}

fn template1() -> DatabaseName {
    DatabaseName::new("template1").expect("a valid name")
}

/// An [`Error::Uncommitted`] of a delivering operation, completed with the state: which role,
/// where its credentials went, and what finishes the job. Other errors pass unchanged.
fn uncommitted_state(
    error: Error,
    user: &RoleName,
    delivery: &CredentialDelivery,
    what: &str,
) -> Error {
    match error {
        Error::Uncommitted { message } => Error::Uncommitted {
            message: format!(
                "{message}. The {what} of role {:?} was delivered to {}; if the COMMIT took effect \
                 the delivered credentials work, otherwise the role is as it was. Run the same \
                 operation again with the same sink: it finishes the job either way (and \
                 delivers again whatever it changes)",
                user.as_str(),
                delivery.sink
            ),
        },
        other => other,
    }
}

/// The notes saying which leftover memberships the `steps` that ran removed.
fn leftover_notes<'a>(facts: &ServerFacts, steps: impl Iterator<Item = &'a Step>) -> Vec<String> {
    steps
        .filter(|s| s.removes_leftover())
        .filter_map(|s| s.temporary_role())
        .map(|role| {
            format!(
                "removed {:?}'s membership of {:?}, left by an operation that was killed (or \
                 granted by hand): rds-pg grants it only for the duration of an operation",
                facts.current_user,
                role.as_str()
            )
        })
        .collect()
}

/// Adds the lock key of every role `plan` gains or gives up a membership of for its work (not
/// the untouched leftovers, whose locks are only tried).
fn add_membership_keys(plan: &Plan, keys: &mut Vec<String>) {
    for step in plan.steps.iter().filter(|s| !s.only_if_unlocked()) {
        if let Some(role) = step.temporary_role() {
            let key = lock_key("role", role.as_str());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
}

/// The lock keys of the roles whose leftover memberships `plan` removes only when unlocked.
fn untouched_leftover_keys(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| s.only_if_unlocked())
        .filter_map(|s| s.temporary_role())
        .map(|r| lock_key("role", r.as_str()))
        .collect()
}

/// The advisory lock key of an operation on the role or database `name` (`kind`: `role`,
/// `database`, `instance`), taken in [`LOCK_DATABASE`].
pub(crate) fn lock_key(kind: &str, name: &str) -> String {
    format!("rds-pg:{kind}:{name}")
}

fn unchanged(plan: Plan) -> Report {
    Report {
        changed: false,
        notes: plan.notes,
        ..Report::default()
    }
}

/// The extensions a database asks for, prerequisites included, sorted and once each (what the
/// Provisioner asks the server about).
pub(crate) fn extensions_with_requirements(extensions: &[Extension]) -> Vec<String> {
    let mut names = Vec::new();
    for e in extensions {
        for r in e.requires() {
            names.push(r.name().to_owned());
        }
        names.push(e.name().to_owned());
    }
    names.sort();
    names.dedup();
    names
}

fn with_step_context(err: postgres::Error) -> Error {
    let hint = err.as_db_error().and_then(|db| {
        let msg = db.message();
        if msg.contains("must be member of role") || msg.contains("must be able to SET ROLE") {
            Some("master needs membership of the owner: GRANT <owner> TO <master> (16+: by a role with ADMIN OPTION on it)".to_owned())
        } else {
            None
        }
    });
    Error::from_postgres_with_hint(err, hint)
}

// A Provisioner moves between threads (the Python binding shares one behind a Mutex).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Provisioner>();
};
