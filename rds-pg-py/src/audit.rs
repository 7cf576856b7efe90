//! `Provisioner.audit()`'s typed results: `AuditReport`, `AuditFinding`, `AuditObject`,
//! `FixStatement`, `AppliedFix` and `ConnectAccess`.

use pyo3::prelude::*;
use rds_pg_core::audit as core;

use crate::spec::str_repr;

fn optional_repr(py: Python<'_>, value: Option<&str>) -> PyResult<String> {
    value.map_or(Ok("None".into()), |v| str_repr(py, v))
}

/// One thing a finding is about: `kind` (`"role"`, `"database"`, `"schema"`, `"object"`,
/// `"setting"` or `"project"`), `name` (`"PUBLIC"` for every role; an object's description such
/// as `"function public.format(text,name,name)"`) and the `database` a schema or object is in.
#[pyclass(frozen, module = "rds_pg", name = "AuditObject")]
pub struct AuditObject {
    inner: core::AuditObject,
}

#[pymethods]
impl AuditObject {
    /// What it is.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }

    /// Its name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// The database a schema or object is in; None otherwise.
    #[getter]
    fn database(&self) -> Option<&str> {
        self.inner.database.as_deref()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<AuditObject>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.hash(&mut h);
        h.finish()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "AuditObject(kind={}, name={}, database={})",
            str_repr(py, self.inner.kind.as_str())?,
            str_repr(py, &self.inner.name)?,
            optional_repr(py, self.inner.database.as_deref())?
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// One statement of a fix: `sql`, the `database` whose connection runs it (None: the
/// maintenance database) and the role it runs as (`run_as`, None: master).
#[pyclass(frozen, module = "rds_pg", name = "FixStatement")]
pub struct FixStatement {
    inner: core::FixStatement,
}

#[pymethods]
impl FixStatement {
    /// The statement.
    #[getter]
    fn sql(&self) -> &str {
        &self.inner.sql
    }

    /// The database it runs in; None: any (the maintenance database).
    #[getter]
    fn database(&self) -> Option<&str> {
        self.inner.database.as_deref()
    }

    /// The role it runs as (`SET ROLE`), the grantor of what it revokes; None: master.
    #[getter]
    fn run_as(&self) -> Option<&str> {
        self.inner.run_as.as_deref()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "FixStatement({}, database={}, run_as={})",
            str_repr(py, &self.inner.sql)?,
            optional_repr(py, self.inner.database.as_deref())?,
            optional_repr(py, self.inner.run_as.as_deref())?
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

fn statement(py: Python<'_>, s: &core::FixStatement) -> PyResult<Py<FixStatement>> {
    Py::new(py, FixStatement { inner: s.clone() })
}

/// One broken rule: `rule` (its stable id, e.g. `"public-database-access"`), `severity`
/// (`"error"`, `"warning"` or `"info"`), `message`, the `objects` involved, `fix_sql` (the
/// statements that repair it, empty when no SQL can), `fixable` (whether `audit(fix=True)`
/// applies them) and `fix` (what the fix does, or why it is left to you).
#[pyclass(frozen, module = "rds_pg", name = "AuditFinding")]
pub struct AuditFinding {
    inner: core::Finding,
}

pub(crate) fn finding(py: Python<'_>, f: &core::Finding) -> PyResult<Py<AuditFinding>> {
    Py::new(py, AuditFinding { inner: f.clone() })
}

#[pymethods]
impl AuditFinding {
    /// The rule's stable id.
    #[getter]
    fn rule(&self) -> &'static str {
        self.inner.rule.id()
    }

    /// `"error"`, `"warning"` or `"info"`.
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }

    /// What is wrong.
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }

    /// The roles, databases, schemas, objects or settings involved.
    #[getter]
    fn objects(&self, py: Python<'_>) -> PyResult<Vec<Py<AuditObject>>> {
        self.inner
            .objects
            .iter()
            .map(|o| Py::new(py, AuditObject { inner: o.clone() }))
            .collect()
    }

    /// The SQL that repairs it, statement by statement.
    #[getter]
    fn fix_sql(&self) -> Vec<&str> {
        self.inner.fix_sql()
    }

    /// The statements with where and as whom each runs.
    #[getter]
    fn fix_statements(&self, py: Python<'_>) -> PyResult<Vec<Py<FixStatement>>> {
        self.inner
            .fix
            .statements
            .iter()
            .map(|s| statement(py, s))
            .collect()
    }

    /// Whether `audit(fix=True)` applies the fix (revokes and leftover memberships master may
    /// remove, which lose no data).
    #[getter]
    fn fixable(&self) -> bool {
        self.inner.fix.automatic
    }

    /// What the fix does, or why it is not applied and what to do instead.
    #[getter]
    fn fix(&self) -> &str {
        &self.inner.fix.note
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "AuditFinding(rule={}, severity={}, objects={}, fixable={})",
            str_repr(py, self.inner.rule.id())?,
            str_repr(py, self.inner.severity.as_str())?,
            self.inner.objects.len(),
            if self.inner.fix.automatic {
                "True"
            } else {
                "False"
            }
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// A fix that `audit(fix=True)` ran: the `finding` it repairs (from the audit before), and
/// `results`, one `(FixStatement, error)` pair per statement (`error` None: it ran).
#[pyclass(frozen, module = "rds_pg", name = "AppliedFix")]
pub struct AppliedFix {
    inner: core::AppliedFix,
}

#[pymethods]
impl AppliedFix {
    /// The finding it repairs.
    #[getter]
    fn finding(&self, py: Python<'_>) -> PyResult<Py<AuditFinding>> {
        finding(py, &self.inner.finding)
    }

    /// Each statement and the error it raised (None: it ran).
    #[getter]
    fn results(&self, py: Python<'_>) -> PyResult<Vec<(Py<FixStatement>, Option<String>)>> {
        self.inner
            .results
            .iter()
            .map(|(s, e)| Ok((statement(py, s)?, e.clone())))
            .collect()
    }

    /// Whether every statement ran.
    #[getter]
    fn succeeded(&self) -> bool {
        self.inner.succeeded()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "AppliedFix(rule={}, statements={}, succeeded={})",
            str_repr(py, self.inner.finding.rule.id())?,
            self.inner.results.len(),
            if self.inner.succeeded() {
                "True"
            } else {
                "False"
            }
        ))
    }
}

/// Which login roles may connect to one `database` (its `owner`, its `project` when known).
#[pyclass(frozen, module = "rds_pg", name = "ConnectAccess")]
pub struct ConnectAccess {
    inner: core::ConnectAccess,
}

#[pymethods]
impl ConnectAccess {
    /// The database.
    #[getter]
    fn database(&self) -> &str {
        &self.inner.database
    }

    /// Its owner.
    #[getter]
    fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Its project (the inventory's, or its owner's name without one); None when none.
    #[getter]
    fn project(&self) -> Option<&str> {
        self.inner.project.as_deref()
    }

    /// The login roles that may connect to it (master aside), sorted.
    #[getter]
    fn roles(&self) -> Vec<&str> {
        self.inner.roles.iter().map(String::as_str).collect()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ConnectAccess({}, roles={:?})",
            str_repr(py, &self.inner.database)?,
            self.inner.roles
        ))
    }
}

/// What `Provisioner.audit()` found: `findings` (iterate it, or `len()` it), `clean` (no error
/// or warning), `fixed` (with `fix=True`: the fixes that ran before these findings were audited
/// again), `connect_matrix`, and what was audited. `str()` is the summary line.
#[pyclass(frozen, sequence, module = "rds_pg", name = "AuditReport")]
pub struct AuditReport {
    pub(crate) inner: core::AuditReport,
}

impl AuditReport {
    fn findings_list(&self, py: Python<'_>) -> PyResult<Vec<Py<AuditFinding>>> {
        self.inner.findings.iter().map(|f| finding(py, f)).collect()
    }
}

#[pymethods]
impl AuditReport {
    /// Every finding, by rule, then by the objects involved.
    #[getter]
    fn findings(&self, py: Python<'_>) -> PyResult<Vec<Py<AuditFinding>>> {
        self.findings_list(py)
    }

    /// Whether nothing of severity error or warning was found.
    #[getter]
    fn clean(&self) -> bool {
        self.inner.is_clean()
    }

    /// The fixes `fix=True` ran (empty otherwise).
    #[getter]
    fn fixed(&self, py: Python<'_>) -> PyResult<Vec<Py<AppliedFix>>> {
        self.inner
            .fixed
            .iter()
            .map(|f| Py::new(py, AppliedFix { inner: f.clone() }))
            .collect()
    }

    /// Which login roles may connect to which project database.
    #[getter]
    fn connect_matrix(&self, py: Python<'_>) -> PyResult<Vec<Py<ConnectAccess>>> {
        self.inner
            .connect_matrix
            .iter()
            .map(|c| Py::new(py, ConnectAccess { inner: c.clone() }))
            .collect()
    }

    /// The databases audited, sorted.
    #[getter]
    fn databases(&self) -> Vec<&str> {
        self.inner.databases.iter().map(String::as_str).collect()
    }

    /// How many login roles there are (master and the bootstrap superuser aside).
    #[getter]
    fn login_roles(&self) -> usize {
        self.inner.login_roles
    }

    /// The server's version (`"16.4"`).
    #[getter]
    fn server_version(&self) -> String {
        self.inner.server_version.to_string()
    }

    /// The inventory instance compared with; None without an inventory.
    #[getter]
    fn instance(&self) -> Option<&str> {
        self.inner.instance.as_deref()
    }

    fn __len__(&self) -> usize {
        self.inner.findings.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
        pyo3::types::PyList::new(py, self.findings_list(py)?)?.try_iter()
    }

    fn __repr__(&self) -> String {
        format!(
            "AuditReport(findings={}, clean={}, fixed={})",
            self.inner.findings.len(),
            if self.inner.is_clean() {
                "True"
            } else {
                "False"
            },
            self.inner.fixed.len()
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// Registers the classes.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AuditReport>()?;
    m.add_class::<AuditFinding>()?;
    m.add_class::<AuditObject>()?;
    m.add_class::<FixStatement>()?;
    m.add_class::<AppliedFix>()?;
    m.add_class::<ConnectAccess>()?;
    Ok(())
}
