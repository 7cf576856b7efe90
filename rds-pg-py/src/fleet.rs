//! `fleet_plan` and `fleet_apply`: an inventory's instances converged (or planned), with typed
//! reports — `FleetReport`, `InstanceReport`, `FleetItem` — whose errors are the exceptions the
//! rest of the binding raises (as values, not raised).

use pyo3::prelude::*;
use rds_pg_core::fleet as core_fleet;

use crate::errors::{to_py_err, IntoPyResult};
use crate::inventory::Inventory;
use crate::plan::{Plan, Report};
use crate::spec::str_repr;

/// One thing the inventory asks of an instance and where it stands: `kind` (`"instance"`,
/// `"user"`, `"database"`, `"read_only_grant"`, `"drop_database"`, `"drop_user"`), `name`,
/// `database` (for a grant), `project`, `state` (`"in_sync"`, `"planned"`, `"pending"`,
/// `"blocked"`, `"applied"`, `"failed"`, `"skipped"`), the `plan` or `report`, the `reason`
/// (pending, skipped), the `error` (blocked: a finding; failed) as an `RdsPgError` instance, and
/// `notes`.
#[pyclass(frozen, module = "rds_pg", name = "FleetItem")]
pub struct FleetItem {
    kind: &'static str,
    name: String,
    database: Option<String>,
    project: Option<String>,
    state: &'static str,
    differs: bool,
    label: String,
    plan: Option<Py<Plan>>,
    report: Option<Py<Report>>,
    reason: Option<String>,
    error: Option<Py<PyAny>>,
    notes: Vec<String>,
}

#[pymethods]
impl FleetItem {
    /// What it is.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// The role or database (for a grant: the reader); for the instance, what about it.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The database, for a read-only grant.
    #[getter]
    fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The project, or None.
    #[getter]
    fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// Where it stands.
    #[getter]
    fn state(&self) -> &'static str {
        self.state
    }

    /// Whether it differs from the inventory (or changed, after `fleet_apply`).
    #[getter]
    fn differs(&self) -> bool {
        self.differs
    }

    /// The steps that would run (`"planned"`), or None.
    #[getter]
    fn plan(&self, py: Python<'_>) -> Option<Py<Plan>> {
        self.plan.as_ref().map(|p| p.clone_ref(py))
    }

    /// What ran (`"applied"`), or None.
    #[getter]
    fn report(&self, py: Python<'_>) -> Option<Py<Report>> {
        self.report.as_ref().map(|r| r.clone_ref(py))
    }

    /// Why it is pending or was skipped, or None.
    #[getter]
    fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The finding (`"blocked"`) or failure (`"failed"`) as an exception instance (its `hint`
    /// is the fix), or None.
    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.error.as_ref().map(|e| e.clone_ref(py))
    }

    /// Things rds_pg noticed about it.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "FleetItem(kind={}, name={}, state={})",
            str_repr(py, self.kind)?,
            str_repr(py, &self.name)?,
            str_repr(py, self.state)?
        ))
    }

    fn __str__(&self) -> String {
        format!("{}: {}", self.label, self.state)
    }
}

/// What a run found and did on one instance: `name`, `client`, `environment`, `endpoint`,
/// `server_version`, `summary`, counts (`changes`, `findings`, `failures`,
/// `inspection_queries`), `elapsed` (seconds), `error` (why it could not be processed, an
/// exception instance, or None), `notes` and `items`.
#[pyclass(frozen, module = "rds_pg", name = "InstanceReport")]
pub struct InstanceReport {
    name: String,
    client: String,
    environment: &'static str,
    endpoint: String,
    server_version: Option<String>,
    summary: String,
    text: String,
    differs: bool,
    changes: usize,
    findings: usize,
    failures: usize,
    inspection_queries: usize,
    elapsed: f64,
    error: Option<Py<PyAny>>,
    notes: Vec<String>,
    items: Vec<Py<FleetItem>>,
}

#[pymethods]
impl InstanceReport {
    /// The instance's name in the inventory.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Its client.
    #[getter]
    fn client(&self) -> &str {
        &self.client
    }

    /// `"staging"` or `"production"`.
    #[getter]
    fn environment(&self) -> &'static str {
        self.environment
    }

    /// `endpoint:port`.
    #[getter]
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's version (`"16.4"`), or None when it was not reached.
    #[getter]
    fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    /// One line: `"in sync"`, `"3 to change"`, `"2 changed, 1 finding"`, `"error: …"`.
    #[getter]
    fn summary(&self) -> &str {
        &self.summary
    }

    /// Whether it differs from the inventory (or could not be looked at).
    #[getter]
    fn differs(&self) -> bool {
        self.differs
    }

    /// Items that would change (plan) or changed (apply).
    #[getter]
    fn changes(&self) -> usize {
        self.changes
    }

    /// Items blocked by a finding.
    #[getter]
    fn findings(&self) -> usize {
        self.findings
    }

    /// Items that failed or were skipped because of a failure.
    #[getter]
    fn failures(&self) -> usize {
        self.failures
    }

    /// How many inspection queries planning cost (one per database).
    #[getter]
    fn inspection_queries(&self) -> usize {
        self.inspection_queries
    }

    /// Seconds the instance took, connecting included.
    #[getter]
    fn elapsed(&self) -> f64 {
        self.elapsed
    }

    /// Why it could not be processed (an exception instance), or None.
    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.error.as_ref().map(|e| e.clone_ref(py))
    }

    /// Things rds_pg noticed (policy warnings, what no project claims).
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// Every item, in the order they are applied.
    #[getter]
    fn items(&self, py: Python<'_>) -> Vec<Py<FleetItem>> {
        self.items.iter().map(|i| i.clone_ref(py)).collect()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "InstanceReport(name={}, summary={})",
            str_repr(py, &self.name)?,
            str_repr(py, &self.summary)?
        ))
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }
}

/// What `fleet_plan` or `fleet_apply` found and did: `mode` (`"plan"` or `"apply"`), `source`,
/// `instances` (iterate it), `in_sync`, `differs`, `has_errors`. `str()` is one summary line per
/// instance.
#[pyclass(frozen, sequence, module = "rds_pg", name = "FleetReport")]
pub struct FleetReport {
    mode: &'static str,
    source: String,
    text: String,
    in_sync: bool,
    differs: bool,
    has_errors: bool,
    instances: Vec<Py<InstanceReport>>,
}

#[pymethods]
impl FleetReport {
    /// `"plan"` or `"apply"`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode
    }

    /// The inventory's file.
    #[getter]
    fn source(&self) -> &str {
        &self.source
    }

    /// Each instance processed, in inventory order.
    #[getter]
    fn instances(&self, py: Python<'_>) -> Vec<Py<InstanceReport>> {
        self.instances.iter().map(|i| i.clone_ref(py)).collect()
    }

    /// Whether every instance is as the inventory says.
    #[getter]
    fn in_sync(&self) -> bool {
        self.in_sync
    }

    /// Whether any instance differs (a CI drift gate's question).
    #[getter]
    fn differs(&self) -> bool {
        self.differs
    }

    /// Whether an instance could not be processed, an operation failed, or (after
    /// `fleet_apply`) a finding is left.
    #[getter]
    fn has_errors(&self) -> bool {
        self.has_errors
    }

    fn __len__(&self) -> usize {
        self.instances.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
        let items: Vec<Py<InstanceReport>> =
            self.instances.iter().map(|i| i.clone_ref(py)).collect();
        pyo3::types::PyList::new(py, items)?.try_iter()
    }

    fn __repr__(&self) -> String {
        format!(
            "FleetReport(mode={:?}, instances={}, in_sync={})",
            self.mode,
            self.instances.len(),
            if self.in_sync { "True" } else { "False" }
        )
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }
}

fn error_value(py: Python<'_>, error: rds_pg_core::Error) -> Py<PyAny> {
    to_py_err(py, error).into_value(py).into_any()
}

fn item(py: Python<'_>, item: core_fleet::Item) -> PyResult<Py<FleetItem>> {
    let label = item.to_string();
    let (kind, state, differs) = (
        item.kind.as_str(),
        item.state.as_str(),
        item.state.differs(),
    );
    let (mut plan, mut report, mut reason, mut error) = (None, None, None, None);
    match item.state {
        core_fleet::ItemState::Planned(p) => plan = Some(Py::new(py, Plan { inner: p })?),
        core_fleet::ItemState::Applied(r) => report = Some(Py::new(py, Report { inner: r })?),
        core_fleet::ItemState::Pending(why) | core_fleet::ItemState::Skipped(why) => {
            reason = Some(why)
        }
        core_fleet::ItemState::Blocked(e) | core_fleet::ItemState::Failed(e) => {
            error = Some(error_value(py, e))
        }
        _ => {}
    }
    Py::new(
        py,
        FleetItem {
            kind,
            name: item.name,
            database: item.database,
            project: item.project,
            state,
            differs,
            label,
            plan,
            report,
            reason,
            error,
            notes: item.notes,
        },
    )
}

fn report(py: Python<'_>, r: core_fleet::FleetReport) -> PyResult<FleetReport> {
    let text = r.to_string();
    let (in_sync, differs, has_errors) = (r.is_in_sync(), r.differs(), r.has_errors());
    let mode = r.mode;
    let mut instances = Vec::new();
    for i in r.instances {
        let summary = i.summary(mode);
        let text = i.to_string();
        let (differs, changes, findings, failures) =
            (i.differs(), i.changes(), i.findings(), i.failures());
        let items = i
            .items
            .into_iter()
            .map(|it| item(py, it))
            .collect::<PyResult<Vec<_>>>()?;
        instances.push(Py::new(
            py,
            InstanceReport {
                name: i.name,
                client: i.client,
                environment: i.environment.as_str(),
                endpoint: i.endpoint,
                server_version: i.server_version.map(|v| v.to_string()),
                summary,
                text,
                differs,
                changes,
                findings,
                failures,
                inspection_queries: i.inspection_queries,
                elapsed: i.elapsed.as_secs_f64(),
                error: i.error.map(|e| error_value(py, e)),
                notes: i.notes,
                items,
            },
        )?);
    }
    Ok(FleetReport {
        mode: mode.as_str(),
        source: r.source,
        text,
        in_sync,
        differs,
        has_errors,
        instances,
    })
}

fn options(
    instances: Option<Vec<String>>,
    jobs: usize,
    prune: bool,
    take_over: bool,
) -> core_fleet::FleetOptions {
    let mut o = core_fleet::FleetOptions::new()
        .jobs(jobs)
        .prune(prune)
        .take_over(take_over);
    for name in instances.into_iter().flatten() {
        o = o.instance(name);
    }
    o
}

/// Connects to each instance of `inventory` (or the `instances` named) as its master, at most
/// `jobs` at once, and plans what would bring it in line; changes nothing. With `prune`,
/// databases and login roles no project claims are listed to drop; with `take_over`, databases
/// the inventory gives another owner are listed to move (otherwise each is a finding). Raises
/// `InvalidInput` for an instance the inventory does not have; what goes wrong on an instance is
/// in its report.
#[pyfunction]
#[pyo3(signature = (inventory, *, instances=None, jobs=4, prune=false, take_over=false))]
pub fn fleet_plan(
    py: Python<'_>,
    inventory: &Inventory,
    instances: Option<Vec<String>>,
    jobs: usize,
    prune: bool,
    take_over: bool,
) -> PyResult<FleetReport> {
    let o = options(instances, jobs, prune, take_over);
    let r = py
        .detach(|| core_fleet::plan(&inventory.inner, &o))
        .py_result(py)?;
    report(py, r)
}

/// Plans as `fleet_plan`, then brings each instance that differs in line (each operation under
/// its locks); a role rds_pg creates has its credentials delivered where the inventory says
/// before its creation commits. Same arguments and errors as `fleet_plan`.
#[pyfunction]
#[pyo3(signature = (inventory, *, instances=None, jobs=4, prune=false, take_over=false))]
pub fn fleet_apply(
    py: Python<'_>,
    inventory: &Inventory,
    instances: Option<Vec<String>>,
    jobs: usize,
    prune: bool,
    take_over: bool,
) -> PyResult<FleetReport> {
    let o = options(instances, jobs, prune, take_over);
    let r = py
        .detach(|| core_fleet::apply(&inventory.inner, &o))
        .py_result(py)?;
    report(py, r)
}
