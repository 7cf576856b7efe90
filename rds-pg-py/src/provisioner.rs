//! `connect()` and `Provisioner`: a master connection shared safely between threads, each call
//! made without the GIL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyString};
use rds_pg_core as core;
use rds_pg_core::{ConnectOptions, DatabaseName, Error, RoleName};

use crate::credentials::Credentials;
use crate::errors::{closed, to_py_err, IntoPyResult, RdsPgError};
use crate::plan::{Plan, Report};
use crate::secret::{optional_password_arg, password_arg};
use crate::spec::{extensions_arg, DatabaseSpec, ReadOnlyGrant, UserSpec};

/// A duration argument: seconds (int or float) or a `datetime.timedelta`.
pub(crate) fn duration_arg(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Duration> {
    let seconds: f64 = if value.is_instance_of::<PyDelta>() {
        value.call_method0("total_seconds")?.extract()?
    } else {
        value.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{what} must be seconds (int or float) or a datetime.timedelta"
            ))
        })?
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        to_py_err(
            value.py(),
            Error::InvalidInput(format!("{what} must be a positive number of seconds")),
        )
    })
}

/// Connection options in libpq's order of precedence: the environment (`PGHOST`, …,
/// `PGPASSFILE`), then `dsn`, then keyword arguments.
pub(crate) struct ConnectArgs<'py> {
    pub dsn: Option<String>,
    pub host: Option<String>,
    pub hostaddr: Option<String>,
    pub password_command: Option<Vec<String>>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub dbname: Option<String>,
    pub password: Option<Bound<'py, PyAny>>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<PathBuf>,
    pub passfile: Option<PathBuf>,
    pub connect_timeout: Option<Bound<'py, PyAny>>,
    pub application_name: Option<String>,
}

impl ConnectArgs<'_> {
    pub(crate) fn options(&self, py: Python<'_>, base: ConnectOptions) -> PyResult<ConnectOptions> {
        let mut o = base;
        if let Some(dsn) = &self.dsn {
            o.apply_str(dsn).py_result(py)?;
        }
        let mut set = |key: &str, value: Option<String>| -> PyResult<()> {
            if let Some(v) = value {
                o.set(key, v).py_result(py)?;
            }
            Ok(())
        };
        set("host", self.host.clone())?;
        set("hostaddr", self.hostaddr.clone())?;
        set("port", self.port.map(|p| p.to_string()))?;
        set("user", self.user.clone())?;
        set("dbname", self.dbname.clone())?;
        set("sslmode", self.sslmode.clone())?;
        set("application_name", self.application_name.clone())?;
        if let Some(path) = &self.sslrootcert {
            o = o.sslrootcert(path);
        }
        if let Some(path) = &self.passfile {
            o = o.passfile(path);
        }
        if let Some(password) = optional_password_arg(self.password.as_ref())? {
            o = o.password(password);
        }
        if let Some(argv) = &self.password_command {
            o = o.password_command(argv);
        }
        if let Some(timeout) = &self.connect_timeout {
            o = o.connect_timeout(duration_arg(timeout, "connect_timeout")?);
        }
        Ok(o)
    }
}

/// Connects as master and returns a [`Provisioner`], without the GIL.
pub(crate) fn open(
    py: Python<'_>,
    options: ConnectOptions,
    lock_timeout: Option<Duration>,
) -> PyResult<Provisioner> {
    open_through(py, options, lock_timeout, None)
}

/// The SSH forward of a call's `ssh=…, ssh_config=…` arguments (`connect`, `dump`, `restore`,
/// `verify_backup`): `ssh` is the destination, `ssh_config` an ssh configuration file, which
/// needs a destination.
pub(crate) fn ssh_forward(
    py: Python<'_>,
    ssh: Option<String>,
    ssh_config: Option<PathBuf>,
) -> PyResult<Option<core::tunnel::SshForward>> {
    match (ssh, ssh_config) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(to_py_err(
            py,
            Error::InvalidInput("ssh_config needs ssh (the destination)".into()),
        )),
        (Some(destination), config) => {
            let mut forward = core::tunnel::SshForward::new(destination).py_result(py)?;
            if let Some(config) = config {
                forward = forward.config_file(config);
            }
            Ok(Some(forward))
        }
    }
}

/// As [`open`], through `ssh` (an SSH destination) when given: the forward is opened first and
/// lives as long as the provisioner.
pub(crate) fn open_through(
    py: Python<'_>,
    options: ConnectOptions,
    lock_timeout: Option<Duration>,
    ssh: Option<core::tunnel::SshForward>,
) -> PyResult<Provisioner> {
    crate::errors::warn_about_pgpass(py, &options)?;
    let (inner, tunnel) = py
        .detach(move || {
            let tunnel = match ssh {
                Some(forward) => Some(forward.open(&options)?),
                None => None,
            };
            let options = match &tunnel {
                Some(t) => t.apply(options),
                None => options,
            };
            let p = core::Provisioner::connect(&options)?;
            let p = match lock_timeout {
                Some(t) => p.with_lock_timeout(t)?,
                None => p,
            };
            Ok::<_, core::Error>((p, tunnel))
        })
        .py_result(py)?;
    Ok(Provisioner {
        tunnel: Mutex::new(tunnel),
        options: inner.options().clone(),
        target: inner.options().target(),
        major: inner.facts().major,
        current_user: inner.facts().current_user.clone(),
        inner: Mutex::new(Some(inner)),
        holder: AtomicU64::new(0),
    })
}

/// A number for the current thread, never 0 (which stands for "nobody").
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

/// Connects to PostgreSQL as the master user and returns a `Provisioner`.
///
/// Settings come from the libpq environment (`PGHOST`, `PGHOSTADDR`, `PGPORT`, `PGUSER`, `PGDATABASE`,
/// `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`),
/// then `dsn` (`"host=… user=…"` or `"postgresql://…"`), then the keyword arguments; without a
/// password the pgpass file (`passfile`, `PGPASSFILE` or `~/.pgpass`) is searched as libpq does.
/// `hostaddr` is the numeric address to connect to instead of resolving `host`, which still names
/// the server for certificate verification and the password file (libpq's `hostaddr`).
/// `password_command` (a list: program and arguments, run without a shell) prints the password
/// of each connection, run again for every one and never cached, e.g. `["aws", "rds",
/// "generate-db-auth-token", "--hostname", …]` for an IAM token; it replaces `password` and the
/// password file.
/// `ssh="user@host"` reaches the server through an SSH forward via that host (the system `ssh`,
/// honouring `~/.ssh/config`; see `rds-pg --ssh`): `host` and `port` are resolved from there,
/// TLS still checks `host`'s certificate, and the forward is closed with the provisioner
/// (`close()`, the end of a `with` block), or when the process ends. Only this provisioner's
/// connections use it. `ssh_config` is an ssh configuration file to use instead of
/// `~/.ssh/config` (`ssh -F`).
/// `dbname` is the maintenance database (default `postgres`). `lock_timeout` (seconds or a
/// `timedelta`, default 10 s; 0 waits indefinitely, as in PostgreSQL) bounds every wait for a
/// lock. Raises `ConnectionError`, `TlsError`
/// or `InvalidInput`.
#[pyfunction]
#[pyo3(signature = (
    dsn=None, *, host=None, port=None, user=None, dbname=None, password=None, sslmode=None,
    sslrootcert=None, lock_timeout=None, passfile=None, connect_timeout=None,
    application_name=None, hostaddr=None, password_command=None, ssh=None,
    ssh_config=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn connect<'py>(
    py: Python<'py>,
    dsn: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    dbname: Option<String>,
    password: Option<Bound<'py, PyAny>>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
    lock_timeout: Option<Bound<'py, PyAny>>,
    passfile: Option<PathBuf>,
    connect_timeout: Option<Bound<'py, PyAny>>,
    application_name: Option<String>,
    hostaddr: Option<String>,
    password_command: Option<Vec<String>>,
    ssh: Option<String>,
    ssh_config: Option<PathBuf>,
) -> PyResult<Provisioner> {
    let ssh = ssh_forward(py, ssh, ssh_config)?;
    let args = ConnectArgs {
        dsn,
        host,
        hostaddr,
        password_command,
        port,
        user,
        dbname,
        password,
        sslmode,
        sslrootcert,
        passfile,
        connect_timeout,
        application_name,
    };
    let options = args.options(py, ConnectOptions::from_env().py_result(py)?)?;
    let lock_timeout = lock_timeout
        .map(|t| duration_arg(&t, "lock_timeout"))
        .transpose()?;
    open_through(py, options, lock_timeout, ssh)
}

/// A master connection that provisions and tears down project users and databases.
///
/// Every operation inspects the catalog, plans, then applies; running it again changes nothing.
/// `plan_*` twins return the `Plan` without changing anything. Calls release the GIL; a
/// `Provisioner` may be shared between threads (its calls run one at a time) and separate
/// provisioners work in parallel. Use it as a context manager, or call `close()`.
#[pyclass(frozen, module = "rds_pg", name = "Provisioner")]
pub struct Provisioner {
    pub(crate) inner: Mutex<Option<core::Provisioner>>,
    /// The SSH forward of `connect(ssh=…)`, closed with the provisioner.
    tunnel: Mutex<Option<core::tunnel::SshTunnel>>,
    options: ConnectOptions,
    target: String,
    major: u32,
    current_user: String,
    /// The thread inside a call, holding `inner` (0: none): a callback of that call (a progress
    /// callback) that uses this provisioner again gets an error instead of a deadlock.
    holder: AtomicU64,
}

fn role(py: Python<'_>, name: &str) -> PyResult<RoleName> {
    RoleName::new(name).py_result(py)
}

fn database(py: Python<'_>, name: &str) -> PyResult<DatabaseName> {
    DatabaseName::new(name).py_result(py)
}

/// A user argument: a `UserSpec` or a role name.
fn user_spec_arg(value: &Bound<'_, PyAny>) -> PyResult<core::UserSpec> {
    if let Ok(spec) = value.cast::<UserSpec>() {
        return Ok(spec.get().inner.clone());
    }
    if value.is_instance_of::<PyString>() {
        let name: String = value.extract()?;
        return core::UserSpec::new(name).py_result(value.py());
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "expected an rds_pg.UserSpec or a role name",
    ))
}

impl Provisioner {
    /// Runs `op` on the connection without the GIL: waiting for the lock and the call itself let
    /// other Python threads run.
    pub(crate) fn call<T: Send>(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut core::Provisioner) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        self.refuse_reentry("used")?;
        let outcome = py.detach(|| {
            let mut guard = match self.inner.lock() {
                Ok(guard) => guard,
                Err(_) => return Err(None),
            };
            self.holder.store(thread_number(), Ordering::SeqCst);
            let result = match guard.as_mut() {
                Some(p) => op(p).map_err(Some),
                None => Err(None),
            };
            self.holder.store(0, Ordering::SeqCst);
            result
        });
        outcome.map_err(|e| match e {
            Some(e) => to_py_err(py, e),
            None => match self.inner.lock() {
                Err(_) => RdsPgError::new_err(
                    "the provisioner is unusable: an earlier call panicked while using it",
                ),
                Ok(_) => closed("the provisioner"),
            },
        })
    }

    /// Refuses to wait for `inner` from the thread that holds it: the caller is a callback of
    /// the call in progress, and waiting would never end.
    fn refuse_reentry(&self, what: &str) -> PyResult<()> {
        if self.holder.load(Ordering::SeqCst) == thread_number() {
            return Err(RdsPgError::new_err(format!(
                "this Provisioner cannot be {what} from inside one of its own calls (for example \
                 a restore's progress callback): it is busy with that call until it returns; use \
                 another Provisioner, or do this after the call"
            )));
        }
        Ok(())
    }

    fn plan(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut core::Provisioner) -> Result<core::Plan, Error> + Send,
    ) -> PyResult<Plan> {
        self.call(py, op).map(|inner| Plan { inner })
    }

    fn report(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut core::Provisioner) -> Result<core::Report, Error> + Send,
    ) -> PyResult<Report> {
        self.call(py, op).map(|inner| Report { inner })
    }
}

/// The credential delivery the keyword arguments name (at most one sink), checked before
/// anything changes.
fn delivery_arg(
    py: Python<'_>,
    env_file: Option<PathBuf>,
    pgpass: Option<PathBuf>,
    command: Option<Vec<String>>,
    database: Option<String>,
    format: Option<String>,
) -> PyResult<Option<core::CredentialDelivery>> {
    let mut sinks = Vec::new();
    sinks.extend(env_file.map(core::CredentialSink::EnvFile));
    sinks.extend(pgpass.map(core::CredentialSink::Pgpass));
    sinks.extend(command.map(core::CredentialSink::command));
    if sinks.len() > 1 {
        return Err(Error::InvalidInput(
            "give at most one of env_file, pgpass and command".into(),
        ))
        .py_result(py);
    }
    let Some(sink) = sinks.pop() else {
        if database.is_some() || format.is_some() {
            return Err(Error::InvalidInput(
                "credentials_database and credentials_format need env_file, pgpass or command"
                    .into(),
            ))
            .py_result(py);
        }
        return Ok(None);
    };
    let mut delivery = core::CredentialDelivery::new(sink);
    if let Some(d) = database {
        delivery = delivery.database(core::DatabaseName::new(d).py_result(py)?);
    }
    if let Some(f) = format {
        delivery = delivery.format(f.parse::<core::CredentialFormat>().py_result(py)?);
    }
    delivery.check().py_result(py)?;
    Ok(Some(delivery))
}

#[pymethods]
impl Provisioner {
    /// Plans `ensure_user` without changing anything.
    fn plan_ensure_user(&self, py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<Plan> {
        let spec = user_spec_arg(spec)?;
        self.plan(py, move |p| p.plan_ensure_user(&spec))
    }

    /// Creates the project's login role (a `UserSpec` or a name), or converges an existing one
    /// to `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`. A generated password is returned once in
    /// `Report.generated_password`. Raises `PolicyViolation` for master, a superuser or an
    /// `rds_superuser` member, `PermissionDenied` (with `hint`) when master lacks ADMIN on an
    /// existing role (16+).
    ///
    /// With `env_file`, `pgpass` or `command` (one of them; `credentials_database` defaults to
    /// the user's name) a new role's credentials are delivered there as one unit with its
    /// creation: a failing sink leaves no role behind. Nothing is delivered for an existing role.
    /// `credentials_format="secretsmanager"` gives a `command` the JSON AWS Secrets Manager's
    /// rotation functions read (default `"rds-pg"`).
    #[pyo3(signature = (spec, *, env_file=None, pgpass=None, command=None, credentials_database=None, credentials_format=None))]
    #[allow(clippy::too_many_arguments)]
    fn ensure_user(
        &self,
        py: Python<'_>,
        spec: &Bound<'_, PyAny>,
        env_file: Option<PathBuf>,
        pgpass: Option<PathBuf>,
        command: Option<Vec<String>>,
        credentials_database: Option<String>,
        credentials_format: Option<String>,
    ) -> PyResult<Report> {
        let spec = user_spec_arg(spec)?;
        match delivery_arg(
            py,
            env_file,
            pgpass,
            command,
            credentials_database,
            credentials_format,
        )? {
            Some(d) => self.report(py, move |p| p.ensure_user_delivering(&spec, &d)),
            None => self.report(py, move |p| p.ensure_user(&spec)),
        }
    }

    /// Plans `ensure_database` without changing anything.
    fn plan_ensure_database(&self, py: Python<'_>, spec: &DatabaseSpec) -> PyResult<Plan> {
        let spec = spec.inner.clone();
        self.plan(py, move |p| p.plan_ensure_database(&spec))
    }

    /// Creates the project's database owned by its user (or converges an existing one): PUBLIC
    /// revoked, extensions created (untrusted ones as master, trusted ones as the owner), PostGIS
    /// tables and schema `public` handed to the owner. Raises `NotFound` for a missing owner or
    /// extension, `PolicyViolation` for a privileged owner, `PermissionDenied` (with `hint`)
    /// when master cannot act as the owner — all before any change.
    fn ensure_database(&self, py: Python<'_>, spec: &DatabaseSpec) -> PyResult<Report> {
        let spec = spec.inner.clone();
        self.report(py, move |p| p.ensure_database(&spec))
    }

    /// Plans `ensure_extensions` without changing anything.
    fn plan_ensure_extensions(
        &self,
        py: Python<'_>,
        database: &str,
        extensions: &Bound<'_, PyAny>,
    ) -> PyResult<Plan> {
        let name = self::database(py, database)?;
        let extensions = extensions_arg(extensions)?;
        self.plan(py, move |p| p.plan_ensure_extensions(&name, &extensions))
    }

    /// Creates `extensions` (`Extension` members or names) in an existing database, trusted ones
    /// as its owner, with their fix-ups. Raises `NotFound` for a missing database or extension.
    fn ensure_extensions(
        &self,
        py: Python<'_>,
        database: &str,
        extensions: &Bound<'_, PyAny>,
    ) -> PyResult<Report> {
        let name = self::database(py, database)?;
        let extensions = extensions_arg(extensions)?;
        self.report(py, move |p| p.ensure_extensions(&name, &extensions))
    }

    /// Plans `secure_instance` without changing anything.
    fn plan_secure_instance(&self, py: Python<'_>) -> PyResult<Plan> {
        self.plan(py, |p| p.plan_secure_instance())
    }

    /// Revokes PUBLIC's CREATE on schema public in the maintenance database, `postgres` and
    /// `template1` (open on RDS 13 and 14, where any login role could plant objects there and
    /// what it plants in `template1` is copied into every new database). Drops nothing.
    fn secure_instance(&self, py: Python<'_>) -> PyResult<Report> {
        self.report(py, |p| p.secure_instance())
    }

    /// Plans `grant_read_only` without changing anything.
    fn plan_grant_read_only(&self, py: Python<'_>, grant: &ReadOnlyGrant) -> PyResult<Plan> {
        let grant = grant.inner.clone();
        self.plan(py, move |p| p.plan_grant_read_only(&grant))
    }

    /// Gives `grant.role` read access to `grant.database`: CONNECT, USAGE on the schemas, SELECT
    /// on tables and sequences, and default privileges so tables created later are readable.
    /// Raises `NotFound` for a missing database, role or schema.
    fn grant_read_only(&self, py: Python<'_>, grant: &ReadOnlyGrant) -> PyResult<Report> {
        let grant = grant.inner.clone();
        self.report(py, move |p| p.grant_read_only(&grant))
    }

    /// Plans `revoke_read_only` without changing anything.
    fn plan_revoke_read_only(&self, py: Python<'_>, grant: &ReadOnlyGrant) -> PyResult<Plan> {
        let grant = grant.inner.clone();
        self.plan(py, move |p| p.plan_revoke_read_only(&grant))
    }

    /// Removes what `grant_read_only` granted.
    fn revoke_read_only(&self, py: Python<'_>, grant: &ReadOnlyGrant) -> PyResult<Report> {
        let grant = grant.inner.clone();
        self.report(py, move |p| p.revoke_read_only(&grant))
    }

    /// Plans `drop_database` without changing anything.
    #[pyo3(signature = (name, *, force=false))]
    fn plan_drop_database(&self, py: Python<'_>, name: &str, force: bool) -> PyResult<Plan> {
        let name = database(py, name)?;
        let options = core::DropDatabaseOptions::new().force(force);
        self.plan(py, move |p| p.plan_drop_database(&name, &options))
    }

    /// Drops database `name` (master takes ownership first, as RDS requires). A missing database
    /// is no change. Raises `StillInUse` when sessions are connected to it, unless `force`
    /// (which ends them).
    #[pyo3(signature = (name, *, force=false))]
    fn drop_database(&self, py: Python<'_>, name: &str, force: bool) -> PyResult<Report> {
        let name = database(py, name)?;
        let options = core::DropDatabaseOptions::new().force(force);
        self.report(py, move |p| p.drop_database(&name, &options))
    }

    /// Plans `drop_user` without changing anything.
    #[pyo3(signature = (name, *, reassign_to=None))]
    fn plan_drop_user(
        &self,
        py: Python<'_>,
        name: &str,
        reassign_to: Option<String>,
    ) -> PyResult<Plan> {
        let name = role(py, name)?;
        let options = drop_user_options(py, reassign_to)?;
        self.plan(py, move |p| p.plan_drop_user(&name, &options))
    }

    /// Drops role `name`: what it owns is handed to `reassign_to` (or dropped when None) and its
    /// privileges are revoked in every database, then `DROP ROLE`. A missing role is no change.
    #[pyo3(signature = (name, *, reassign_to=None))]
    fn drop_user(
        &self,
        py: Python<'_>,
        name: &str,
        reassign_to: Option<String>,
    ) -> PyResult<Report> {
        let name = role(py, name)?;
        let options = drop_user_options(py, reassign_to)?;
        self.report(py, move |p| p.drop_user(&name, &options))
    }

    /// Plans `rotate_password` without changing anything.
    #[pyo3(signature = (user, password=None))]
    fn plan_rotate_password(
        &self,
        py: Python<'_>,
        user: &str,
        password: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Plan> {
        let user = role(py, user)?;
        let password = optional_password_arg(password)?;
        self.plan(py, move |p| p.plan_rotate_password(&user, password))
    }

    /// Sets a new password (a `str` or `Secret`) for `user`; without one a password is
    /// generated and returned once in `Report.generated_password`. The password travels only as
    /// a SCRAM verifier.
    ///
    /// With `env_file`, `pgpass` or `command`, the new credentials are delivered there as one
    /// unit with the change: a failing sink leaves the old password working.
    #[pyo3(signature = (user, password=None, *, env_file=None, pgpass=None, command=None, credentials_database=None, credentials_format=None))]
    #[allow(clippy::too_many_arguments)]
    fn rotate_password(
        &self,
        py: Python<'_>,
        user: &str,
        password: Option<&Bound<'_, PyAny>>,
        env_file: Option<PathBuf>,
        pgpass: Option<PathBuf>,
        command: Option<Vec<String>>,
        credentials_database: Option<String>,
        credentials_format: Option<String>,
    ) -> PyResult<Report> {
        let user = role(py, user)?;
        let password = optional_password_arg(password)?;
        match delivery_arg(
            py,
            env_file,
            pgpass,
            command,
            credentials_database,
            credentials_format,
        )? {
            Some(d) => self.report(py, move |p| {
                p.rotate_password_delivering(&user, password, &d)
            }),
            None => self.report(py, move |p| p.rotate_password(&user, password)),
        }
    }

    /// Audits the instance's isolation (roles and memberships, PUBLIC's access, schemas open to
    /// creation, objects that shadow pg_catalog, who may connect where, TLS and password
    /// settings) and returns an `AuditReport`. `inventory` (an `Inventory`) adds what it says:
    /// which roles and databases belong to which project (`instance` names the inventory's
    /// instance; default: the one at this connection's endpoint and port, or the only one).
    /// `fix=True` applies the fixes that lose no data (revokes, leftover memberships) and
    /// returns the audit made after them, with `fixed`. `jobs` databases are inspected at once
    /// (default 4). Raises `InvalidInput` for bad options or an instance that cannot be chosen,
    /// and the connection errors.
    #[pyo3(signature = (inventory=None, fix=false, *, instance=None, jobs=None))]
    fn audit(
        &self,
        py: Python<'_>,
        inventory: Option<&crate::inventory::Inventory>,
        fix: bool,
        instance: Option<String>,
        jobs: Option<usize>,
    ) -> PyResult<crate::audit::AuditReport> {
        let mut options = core::AuditOptions::new().fix(fix);
        if let Some(jobs) = jobs {
            options = options.jobs(jobs);
        }
        match inventory {
            Some(inv) => options = options.inventory(inv.inner.clone(), instance.as_deref()),
            None if instance.is_some() => {
                return Err(to_py_err(
                    py,
                    Error::InvalidInput("instance= needs an inventory".into()),
                ))
            }
            None => {}
        }
        self.call(py, move |p| p.audit(&options))
            .map(|inner| crate::audit::AuditReport { inner })
    }

    /// `Credentials` for `user` on `database` with `password` (a `str` or `Secret`, for example
    /// `Report.generated_password`) at the server this provisioner is connected to, with its
    /// host, port, sslmode and sslrootcert.
    fn credentials(
        &self,
        py: Python<'_>,
        user: &str,
        database: &str,
        password: &Bound<'_, PyAny>,
    ) -> PyResult<Credentials> {
        let inner =
            core::Credentials::from_options(&self.options, user, database, password_arg(password)?)
                .py_result(py)?;
        Ok(Credentials { inner })
    }

    /// The server's major version (13–18).
    #[getter]
    fn major_version(&self) -> u32 {
        self.major
    }

    /// The role this provisioner is logged in as (master).
    #[getter]
    fn current_user(&self) -> &str {
        &self.current_user
    }

    /// Whether `close()` was called. Does not wait for a call in progress (one that is running
    /// means the provisioner is open).
    #[getter]
    fn closed(&self) -> bool {
        match self.inner.try_lock() {
            Ok(g) => g.is_none(),
            Err(_) => false,
        }
    }

    /// Closes the connections (waiting for a call in progress on another thread). Idempotent.
    /// Raises `RdsPgError` when called from inside one of this provisioner's own calls (a
    /// progress callback), which could never finish waiting.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.refuse_reentry("closed")?;
        py.detach(|| {
            let taken = match self.inner.lock() {
                Ok(mut g) => g.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            drop(taken);
            let tunnel = match self.tunnel.lock() {
                Ok(mut g) => g.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            drop(tunnel);
        });
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Provisioner({}, PostgreSQL {}{})",
            self.target,
            self.major,
            if self.closed() { ", closed" } else { "" }
        )
    }
}

fn drop_user_options(
    py: Python<'_>,
    reassign_to: Option<String>,
) -> PyResult<core::DropUserOptions> {
    let options = core::DropUserOptions::new();
    match reassign_to {
        Some(r) => options.reassign_to(r).py_result(py),
        None => Ok(options),
    }
}
