//! `backup_run`, `backup_verify`, `backup_prune` and `backup_list`: the core's backups of an
//! inventory, and their reports. Everything runs without the GIL; per-database errors are
//! exception objects of the usual classes, on the report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use rds_pg_core::backup::{self as core, Selection};
use rds_pg_core::{ConnectOptions, Error, SslMode};

use crate::errors::{to_py_err, IntoPyResult};
use crate::inventory::Inventory;
use crate::spec::str_repr;

/// An inventory given as `Inventory` or as the path of its file.
fn inventory_arg(py: Python<'_>, inventory: &Bound<'_, PyAny>) -> PyResult<rds_pg_core::Inventory> {
    if let Ok(i) = inventory.cast::<Inventory>() {
        return Ok(i.get().inner.clone());
    }
    let path: PathBuf = inventory.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err("inventory must be rds_pg.Inventory or a path")
    })?;
    py.detach(|| rds_pg_core::Inventory::load(&path))
        .py_result(py)
}

/// The TLS settings every connection starts from: the libpq environment, then the arguments.
fn tls_arg(
    py: Python<'_>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
) -> PyResult<ConnectOptions> {
    let mut options = ConnectOptions::from_env().py_result(py)?;
    if let Some(mode) = sslmode {
        options = options.sslmode(mode.parse::<SslMode>().py_result(py)?);
    }
    if let Some(ca) = sslrootcert {
        options = options.sslrootcert(ca);
    }
    Ok(options)
}

fn selection(
    instance: Option<String>,
    project: Option<String>,
    database: Option<String>,
) -> Selection {
    Selection {
        instance,
        project,
        database,
    }
}

fn py_error(py: Python<'_>, error: Error) -> Py<PyAny> {
    to_py_err(py, error).into_value(py).into_any()
}

/// A table of an archive: rows in the dump's snapshot and the planner's estimate.
#[pyclass(frozen, get_all, module = "rds_pg", name = "BackupTable")]
#[derive(Clone)]
pub struct BackupTable {
    /// The schema.
    schema: String,
    /// The table.
    table: String,
    /// Rows in the dump's snapshot (None: not counted).
    rows: Option<i64>,
    /// `pg_class.reltuples` when dumped (None: never analyzed).
    estimated_rows: Option<i64>,
    /// The extension whose configuration table it is, or None.
    extension: Option<String>,
}

/// An archive and what its manifest says.
#[pyclass(frozen, get_all, module = "rds_pg", name = "BackupArchive")]
#[derive(Clone)]
pub struct BackupArchive {
    /// The client.
    client: String,
    /// The instance.
    instance: String,
    /// The project.
    project: String,
    /// The database.
    database: String,
    /// The role that dumped it.
    role: String,
    /// The archive file (or directory).
    path: PathBuf,
    /// Its manifest.
    manifest_path: PathBuf,
    /// `"custom"` or `"directory"`.
    format: String,
    /// Whether it is encrypted (age).
    encrypted: bool,
    /// The age recipients it is encrypted to.
    recipients: Vec<String>,
    /// Its size in bytes, as stored.
    bytes: u64,
    /// SHA-256 of the archive as stored.
    sha256: String,
    /// When the dump started (RFC 3339, UTC).
    started_at: String,
    /// When the archive was complete.
    finished_at: String,
    /// The server's version.
    server_version: String,
    /// The pg_dump version.
    pg_dump_version: String,
    /// Table-of-contents entries per kind.
    toc: BTreeMap<String, usize>,
    /// The extensions the database had.
    extensions: Vec<String>,
    /// The tables whose rows it holds.
    tables: Vec<BackupTable>,
    /// Rows of the project's tables in the dump's snapshot.
    rows: i64,
    /// `"unverified"`, `"verified"` or `"failed"`.
    verification: &'static str,
    /// When it was last verified, or None.
    verified_at: Option<String>,
    /// What the last verification found wrong.
    problems: Vec<String>,
    /// Whether it was uploaded (None: no upload was configured).
    uploaded: Option<bool>,
}

impl From<&core::Archive> for BackupArchive {
    fn from(a: &core::Archive) -> Self {
        let m = &a.manifest;
        BackupArchive {
            client: m.client.clone(),
            instance: m.instance.clone(),
            project: m.project.clone(),
            database: m.database.clone(),
            role: m.role.clone(),
            path: a.path.clone(),
            manifest_path: a.manifest_path.clone(),
            format: m.format.clone(),
            encrypted: m.encryption.is_some(),
            recipients: m
                .encryption
                .as_ref()
                .map(|e| e.recipients.clone())
                .unwrap_or_default(),
            bytes: m.bytes,
            sha256: m.sha256.clone(),
            started_at: m.started_at.to_string(),
            finished_at: m.finished_at.to_string(),
            server_version: m.server_version.clone(),
            pg_dump_version: m.pg_dump.version.clone(),
            toc: m.toc.clone(),
            extensions: m.extensions.clone(),
            tables: m
                .tables
                .iter()
                .map(|t| BackupTable {
                    schema: t.schema.clone(),
                    table: t.table.clone(),
                    rows: t.rows,
                    estimated_rows: t.estimated_rows,
                    extension: t.extension.clone(),
                })
                .collect(),
            rows: m.rows(),
            verification: m.verification.state.as_str(),
            verified_at: m.verification.at.map(|t| t.to_string()),
            problems: m.verification.problems.clone(),
            uploaded: m.upload.as_ref().map(|u| u.uploaded),
        }
    }
}

#[pymethods]
impl BackupArchive {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "BackupArchive({}, database={}, verification={})",
            str_repr(py, &self.path.to_string_lossy())?,
            str_repr(py, &self.database)?,
            str_repr(py, self.verification)?,
        ))
    }
}

/// One database's backup: its archive, or the error that stopped it.
#[pyclass(frozen, get_all, module = "rds_pg", name = "DatabaseBackup")]
pub struct DatabaseBackup {
    /// The client.
    client: String,
    /// The instance.
    instance: String,
    /// The project.
    project: String,
    /// The database.
    database: String,
    /// The role the dump ran as.
    role: String,
    /// The archive, or None when it failed.
    archive: Option<BackupArchive>,
    /// Why it failed (an `RdsPgError` subclass: `NotFound` for missing credentials), or None.
    error: Option<Py<PyAny>>,
    /// Whether it was uploaded (None: no upload).
    uploaded: Option<bool>,
    /// Why the upload failed, or None.
    upload_error: Option<Py<PyAny>>,
    /// Whether the archive was made (and uploaded, when asked).
    succeeded: bool,
    /// Seconds the database's backup took (None when it failed).
    duration: Option<f64>,
}

#[pymethods]
impl DatabaseBackup {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "DatabaseBackup(database={}, succeeded={})",
            str_repr(py, &self.database)?,
            if self.succeeded { "True" } else { "False" }
        ))
    }
}

/// What `backup_run` did; iterating gives each `DatabaseBackup`.
#[pyclass(frozen, get_all, module = "rds_pg", name = "BackupRunReport")]
pub struct BackupRunReport {
    /// The backup directory.
    root: PathBuf,
    /// Each database, in inventory order.
    databases: Vec<Py<DatabaseBackup>>,
    /// Whether every database was backed up (and uploaded, when asked).
    succeeded: bool,
    /// Seconds it all took.
    duration: f64,
}

#[pymethods]
impl BackupRunReport {
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let list = pyo3::types::PyList::new(py, self.databases.iter().map(|d| d.clone_ref(py)))?;
        Ok(list.as_any().try_iter()?.into_any().unbind())
    }

    fn __len__(&self) -> usize {
        self.databases.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "BackupRunReport(root={}, databases={}, succeeded={})",
            str_repr(py, &self.root.to_string_lossy())?,
            self.databases.len(),
            if self.succeeded { "True" } else { "False" }
        ))
    }
}

/// Backs up the inventory's databases (or those of `instance`, `project`, `database`) as their
/// owners, into `to` (default: the inventory's `[policy] backup_dir`). `encrypt_to`: age
/// recipients (`[]`: not encrypted; None: the inventory's); `upload=False` skips the
/// inventory's `backup_upload`; `jobs` above 1 writes directory archives. `sslmode` and
/// `sslrootcert` (default: the libpq environment) apply to every connection.
#[pyfunction]
#[pyo3(signature = (
    inventory, to=None, *, instance=None, project=None, database=None, jobs=None,
    encrypt_to=None, upload=true, tools_dir=None, sslmode=None, sslrootcert=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backup_run(
    py: Python<'_>,
    inventory: &Bound<'_, PyAny>,
    to: Option<PathBuf>,
    instance: Option<String>,
    project: Option<String>,
    database: Option<String>,
    jobs: Option<u32>,
    encrypt_to: Option<Vec<String>>,
    upload: bool,
    tools_dir: Option<PathBuf>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
) -> PyResult<BackupRunReport> {
    let inventory = inventory_arg(py, inventory)?;
    let mut options = core::BackupRunOptions::new(tls_arg(py, sslmode, sslrootcert)?)
        .selection(selection(instance, project, database))
        .skip_upload(!upload);
    options.root = to;
    options.jobs = jobs;
    options.tools_dir = tools_dir;
    if let Some(recipients) = encrypt_to {
        let parsed = recipients
            .iter()
            .map(|r| core::Recipient::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .py_result(py)?;
        options = options.encrypt_to(parsed);
    }
    let report = py
        .detach(|| core::run(&inventory, &options))
        .py_result(py)?;
    let succeeded = report.succeeded();
    let mut databases = Vec::with_capacity(report.databases.len());
    for d in report.databases {
        let ok = d.succeeded();
        let (archive, error, duration) = match d.result {
            Ok(done) => (
                Some(BackupArchive::from(&done.archive)),
                None,
                Some(done.duration.as_secs_f64()),
            ),
            Err(e) => (None, Some(py_error(py, e)), None),
        };
        let (uploaded, upload_error) = match d.upload {
            None => (None, None),
            Some(Ok(())) => (Some(true), None),
            Some(Err(e)) => (Some(false), Some(py_error(py, e))),
        };
        let t = d.target;
        databases.push(Py::new(
            py,
            DatabaseBackup {
                client: t.client,
                instance: t.instance,
                project: t.project,
                database: t.database,
                role: t.role,
                archive,
                error,
                uploaded,
                upload_error,
                succeeded: ok,
                duration,
            },
        )?);
    }
    Ok(BackupRunReport {
        root: report.root,
        databases,
        succeeded,
        duration: report.duration.as_secs_f64(),
    })
}

/// A table's rows as recorded and as restored.
#[pyclass(frozen, get_all, module = "rds_pg", name = "BackupTableCheck")]
#[derive(Clone)]
pub struct BackupTableCheck {
    /// The schema.
    schema: String,
    /// The table.
    table: String,
    /// Rows the manifest records.
    expected: Option<i64>,
    /// Rows in the restored copy (None: missing there).
    restored: Option<i64>,
    /// Whether they agree.
    matches: bool,
}

/// One archive's verification.
#[pyclass(frozen, get_all, module = "rds_pg", name = "ArchiveVerification")]
pub struct ArchiveVerification {
    /// `client/instance/database`.
    label: String,
    /// The archive (its manifest as recorded afterwards), or None when none was found.
    archive: Option<BackupArchive>,
    /// Whether the archive is verified.
    verified: bool,
    /// Whether it is verified and the scratch database and role were dropped.
    succeeded: bool,
    /// Whether the outcome was written to the manifest.
    recorded: bool,
    /// Every check that failed (recorded in the manifest).
    problems: Vec<String>,
    /// The error: `InvalidInput` for a failed verification (see `problems`), another class
    /// when the check could not be made; None when verified.
    error: Option<Py<PyAny>>,
    /// Each table's rows.
    tables: Vec<BackupTableCheck>,
    /// The scratch database's and throw-away role's name, when they were created.
    scratch: Option<String>,
    /// Whether both were dropped (None when they were not created).
    scratch_dropped: Option<bool>,
    /// Seconds it took.
    duration: f64,
}

#[pymethods]
impl ArchiveVerification {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ArchiveVerification({}, verified={}, problems={})",
            str_repr(py, &self.label)?,
            if self.verified { "True" } else { "False" },
            self.problems.len()
        ))
    }
}

/// What `backup_verify` did; iterating gives each `ArchiveVerification`.
#[pyclass(frozen, get_all, module = "rds_pg", name = "BackupVerifyReport")]
pub struct BackupVerifyReport {
    /// Each archive (or database without one).
    archives: Vec<Py<ArchiveVerification>>,
    /// Whether every archive was verified and nothing was left behind.
    succeeded: bool,
}

#[pymethods]
impl BackupVerifyReport {
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let list = pyo3::types::PyList::new(py, self.archives.iter().map(|d| d.clone_ref(py)))?;
        Ok(list.as_any().try_iter()?.into_any().unbind())
    }

    fn __len__(&self) -> usize {
        self.archives.len()
    }
}

/// Verifies the newest archive of each database of the inventory (or `archive`): restored into a
/// scratch database owned by a throw-away role master creates, as that role, compared with the
/// manifest, the outcome recorded in it; the database and role dropped whatever happened.
/// `identity`: the age identity file for encrypted archives.
#[pyfunction]
#[pyo3(signature = (
    inventory, to=None, *, archive=None, identity=None, instance=None, project=None,
    database=None, tools_dir=None, sslmode=None, sslrootcert=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backup_verify(
    py: Python<'_>,
    inventory: &Bound<'_, PyAny>,
    to: Option<PathBuf>,
    archive: Option<PathBuf>,
    identity: Option<PathBuf>,
    instance: Option<String>,
    project: Option<String>,
    database: Option<String>,
    tools_dir: Option<PathBuf>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
) -> PyResult<BackupVerifyReport> {
    let inventory = inventory_arg(py, inventory)?;
    let mut options = core::BackupVerifyOptions::new(tls_arg(py, sslmode, sslrootcert)?)
        .selection(selection(instance, project, database));
    options.root = to;
    options.archive = archive;
    options.tools_dir = tools_dir;
    if let Some(file) = identity {
        options = options.identities(core::Identities::from_file(file).py_result(py)?);
    }
    let report = py
        .detach(|| core::verify(&inventory, &options))
        .py_result(py)?;
    let succeeded = report.succeeded();
    let mut archives = Vec::new();
    for v in report.archives {
        let ok = v.succeeded();
        let verified = v.result.is_ok();
        let problems = match &v.result {
            Err(Error::BackupVerification { problems, .. }) => problems.clone(),
            _ => Vec::new(),
        };
        let scratch = v.cleanup.as_ref().map(|c| c.name.clone());
        let scratch_dropped = v.cleanup.as_ref().map(|c| c.succeeded());
        archives.push(Py::new(
            py,
            ArchiveVerification {
                label: v.label,
                archive: v.archive.as_ref().map(BackupArchive::from),
                verified,
                succeeded: ok,
                recorded: v.recorded,
                problems,
                error: v.result.err().map(|e| py_error(py, e)),
                tables: v
                    .tables
                    .iter()
                    .map(|t| BackupTableCheck {
                        schema: t.schema.clone(),
                        table: t.table.clone(),
                        expected: t.expected,
                        restored: t.restored,
                        matches: t.matches(),
                    })
                    .collect(),
                scratch,
                scratch_dropped,
                duration: v.duration.as_secs_f64(),
            },
        )?);
    }
    Ok(BackupVerifyReport {
        archives,
        succeeded,
    })
}

/// The backup directory and policy of `target`: an `Inventory`, an inventory's path, or the
/// backup directory itself.
fn target_arg(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    to: Option<PathBuf>,
) -> PyResult<(PathBuf, core::RetentionPolicy)> {
    let inventory = if target.cast::<Inventory>().is_ok() {
        inventory_arg(py, target)?
    } else {
        let path: PathBuf = target.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(
                "target must be rds_pg.Inventory, an inventory's path or a backup directory",
            )
        })?;
        if path.is_dir() {
            if to.is_some() {
                return Err(to_py_err(
                    py,
                    Error::InvalidInput("`to` goes with an inventory, not a directory".into()),
                ));
            }
            return Ok((path, core::RetentionPolicy::default()));
        }
        inventory_arg(py, target)?
    };
    let backups = &inventory.policy.backups;
    let root = to.or_else(|| backups.dir.clone()).ok_or_else(|| {
        to_py_err(
            py,
            Error::InvalidInput(
                "the inventory sets no backup_dir in its [policy]: give `to`".into(),
            ),
        )
    })?;
    Ok((root, backups.retention))
}

/// The decision about one archive.
#[pyclass(frozen, get_all, module = "rds_pg", name = "PruneDecision")]
pub struct PruneDecision {
    /// The archive.
    archive: BackupArchive,
    /// Whether the policy keeps it.
    keep: bool,
    /// Why (`"last"`, `"daily"`, `"oldest monthly"`, `"newest verified"`, …); empty: it goes.
    reasons: Vec<String>,
    /// Whether it was removed (never in a dry run).
    removed: bool,
    /// Why it could not be removed, or None.
    error: Option<Py<PyAny>>,
}

/// What `backup_prune` decided and did; iterating gives each `PruneDecision`.
#[pyclass(frozen, get_all, module = "rds_pg", name = "PruneReport")]
pub struct PruneReport {
    /// The backup directory.
    root: PathBuf,
    /// The policy applied (`"keep 7 last, 14 daily"`).
    policy: String,
    /// Whether it was a dry run.
    dry_run: bool,
    /// Every archive, per database, newest first.
    decisions: Vec<Py<PruneDecision>>,
    /// Whether every removal that was due succeeded.
    succeeded: bool,
}

#[pymethods]
impl PruneReport {
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let list = pyo3::types::PyList::new(py, self.decisions.iter().map(|d| d.clone_ref(py)))?;
        Ok(list.as_any().try_iter()?.into_any().unbind())
    }

    fn __len__(&self) -> usize {
        self.decisions.len()
    }

    /// The archives that go (or would go).
    #[getter]
    fn removals(&self, py: Python<'_>) -> Vec<Py<PruneDecision>> {
        self.decisions
            .iter()
            .filter(|d| !d.get().keep)
            .map(|d| d.clone_ref(py))
            .collect()
    }
}

/// Removes the archives the retention policy does not keep, per database (never the newest
/// verified one). `target`: an `Inventory` or its path (policy from its `backup_keep_*` keys,
/// each replaced by the argument given) or the backup directory. `dry_run` lists and removes
/// nothing.
#[pyfunction]
#[pyo3(signature = (
    target, to=None, *, keep_last=None, keep_daily=None, keep_weekly=None, keep_monthly=None,
    keep_yearly=None, dry_run=false, instance=None, project=None, database=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backup_prune(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    to: Option<PathBuf>,
    keep_last: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    dry_run: bool,
    instance: Option<String>,
    project: Option<String>,
    database: Option<String>,
) -> PyResult<PruneReport> {
    let (root, mut policy) = target_arg(py, target, to)?;
    for (given, slot) in [
        (keep_last, &mut policy.keep_last),
        (keep_daily, &mut policy.keep_daily),
        (keep_weekly, &mut policy.keep_weekly),
        (keep_monthly, &mut policy.keep_monthly),
        (keep_yearly, &mut policy.keep_yearly),
    ] {
        if let Some(n) = given {
            *slot = n;
        }
    }
    let options = core::PruneOptions::new(policy)
        .dry_run(dry_run)
        .selection(selection(instance, project, database));
    let report = py.detach(|| core::prune(&root, &options)).py_result(py)?;
    let succeeded = report.succeeded();
    let mut decisions = Vec::new();
    for d in report.decisions {
        decisions.push(Py::new(
            py,
            PruneDecision {
                archive: BackupArchive::from(&d.archive),
                keep: d.keep(),
                reasons: d.reasons.iter().map(|r| r.to_string()).collect(),
                removed: d.removed,
                error: d.error.map(|e| py_error(py, e)),
            },
        )?);
    }
    Ok(PruneReport {
        root: report.root,
        policy: report.policy.to_string(),
        dry_run: report.dry_run,
        decisions,
        succeeded,
    })
}

/// The archives under the backup directory of `target` (an `Inventory`, its path, or the
/// directory), by database then oldest first.
#[pyfunction]
#[pyo3(signature = (target, to=None, *, instance=None, project=None, database=None))]
pub(crate) fn backup_list(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    to: Option<PathBuf>,
    instance: Option<String>,
    project: Option<String>,
    database: Option<String>,
) -> PyResult<Vec<BackupArchive>> {
    let (root, _) = target_arg(py, target, to)?;
    let selection = selection(instance, project, database);
    let listing = py.detach(|| core::list(&root, &selection)).py_result(py)?;
    Ok(listing.archives.iter().map(BackupArchive::from).collect())
}
