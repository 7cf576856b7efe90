//! `Inventory` and `fleet check`'s typed results: `CheckReport`, `Finding`, `FindingObject`,
//! `Location`, and `InventoryProblem` (on the `InvalidInput` an invalid inventory raises).

use std::path::PathBuf;

use pyo3::prelude::*;
use rds_pg_core::inventory as inv;

use crate::errors::IntoPyResult;
use crate::spec::str_repr;

/// Where something is: a file and a line and column (from 1) in an inventory, or a JSON pointer
/// (`/DBInstances/0/PubliclyAccessible`) in AWS JSON. `str()` is `file:line:column` or
/// `file#pointer`.
#[pyclass(frozen, module = "rds_pg", name = "Location")]
pub struct Location {
    inner: inv::Location,
}

#[pymethods]
impl Location {
    /// The file, as given.
    #[getter]
    fn file(&self) -> &str {
        &self.inner.file
    }

    /// The line, from 1; None in JSON.
    #[getter]
    fn line(&self) -> Option<u32> {
        self.inner.line
    }

    /// The column, from 1, in characters; None in JSON.
    #[getter]
    fn column(&self) -> Option<u32> {
        self.inner.column
    }

    /// The JSON pointer of the value; None in an inventory.
    #[getter]
    fn pointer(&self) -> Option<&str> {
        self.inner.pointer.as_deref()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Location({})",
            str_repr(py, &self.inner.to_string())?
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

fn location(py: Python<'_>, location: &inv::Location) -> PyResult<Py<Location>> {
    Py::new(
        py,
        Location {
            inner: location.clone(),
        },
    )
}

/// One problem of an invalid inventory: its `location` and `message`. `InvalidInput.problems`
/// lists them all when `Inventory.load` fails.
#[pyclass(frozen, module = "rds_pg", name = "InventoryProblem")]
pub struct InventoryProblem {
    inner: inv::Problem,
}

#[pymethods]
impl InventoryProblem {
    /// Where the problem is.
    #[getter]
    fn location(&self, py: Python<'_>) -> PyResult<Py<Location>> {
        location(py, &self.inner.location)
    }

    /// What is wrong.
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "InventoryProblem({}, {})",
            str_repr(py, &self.inner.location.to_string())?,
            str_repr(py, &self.inner.message)?
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// The problems of an inventory error, for `InvalidInput.problems`.
pub(crate) fn problems(
    py: Python<'_>,
    error: &inv::InventoryError,
) -> PyResult<Vec<Py<InventoryProblem>>> {
    error
        .problems
        .iter()
        .map(|p| Py::new(py, InventoryProblem { inner: p.clone() }))
        .collect()
}

/// One entry a finding is about: `kind` (`"client"`, `"instance"`, `"project"`, `"database"`,
/// `"role"`, `"policy"`, `"db_instance"` or `"security_group"`), `name` and `location`.
#[pyclass(frozen, module = "rds_pg", name = "FindingObject")]
pub struct FindingObject {
    inner: inv::FindingObject,
}

#[pymethods]
impl FindingObject {
    /// What it is.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }

    /// Its name (a DB instance's identifier, a security group's id).
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where it is.
    #[getter]
    fn location(&self, py: Python<'_>) -> PyResult<Py<Location>> {
        location(py, &self.inner.location)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "FindingObject(kind={}, name={}, location={})",
            str_repr(py, self.inner.kind.as_str())?,
            str_repr(py, &self.inner.name)?,
            str_repr(py, &self.inner.location.to_string())?
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// One broken rule: `rule` (its stable id, e.g. `"one-client-per-instance"`), `severity`
/// (`"error"` or `"warning"`), `message`, the `objects` involved and the `fix` in words.
#[pyclass(frozen, module = "rds_pg", name = "Finding")]
pub struct Finding {
    inner: inv::Finding,
}

#[pymethods]
impl Finding {
    /// The rule's stable id.
    #[getter]
    fn rule(&self) -> &'static str {
        self.inner.rule.id()
    }

    /// `"error"` or `"warning"`.
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }

    /// What is wrong.
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }

    /// The entries involved, each with its place.
    #[getter]
    fn objects(&self, py: Python<'_>) -> PyResult<Vec<Py<FindingObject>>> {
        self.inner
            .objects
            .iter()
            .map(|o| Py::new(py, FindingObject { inner: o.clone() }))
            .collect()
    }

    /// How to fix it.
    #[getter]
    fn fix(&self) -> &str {
        &self.inner.fix
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Finding(rule={}, severity={}, objects={})",
            str_repr(py, self.inner.rule.id())?,
            str_repr(py, self.inner.severity.as_str())?,
            self.inner.objects.len()
        ))
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// What `Inventory.check` found: `findings` (iterate it, or `len()` it), `clean`, and what was
/// checked. `str()` is the summary line.
#[pyclass(frozen, sequence, module = "rds_pg", name = "CheckReport")]
pub struct CheckReport {
    inner: inv::CheckReport,
}

impl CheckReport {
    fn findings_list(&self, py: Python<'_>) -> PyResult<Vec<Py<Finding>>> {
        self.inner
            .findings
            .iter()
            .map(|f| Py::new(py, Finding { inner: f.clone() }))
            .collect()
    }
}

#[pymethods]
impl CheckReport {
    /// Every finding, in the order of the inventory, then of the AWS JSON.
    #[getter]
    fn findings(&self, py: Python<'_>) -> PyResult<Vec<Py<Finding>>> {
        self.findings_list(py)
    }

    /// Whether nothing was found.
    #[getter]
    fn clean(&self) -> bool {
        self.inner.is_clean()
    }

    /// How many instances the inventory has.
    #[getter]
    fn instances(&self) -> usize {
        self.inner.instances
    }

    /// How many projects the inventory has.
    #[getter]
    fn projects(&self) -> usize {
        self.inner.projects
    }

    /// How many DB instances the AWS JSON described; None when none was given.
    #[getter]
    fn aws_db_instances(&self) -> Option<usize> {
        self.inner.aws_db_instances
    }

    fn __len__(&self) -> usize {
        self.inner.findings.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
        pyo3::types::PyList::new(py, self.findings_list(py)?)?.try_iter()
    }

    fn __repr__(&self) -> String {
        format!(
            "CheckReport(findings={}, clean={})",
            self.inner.findings.len(),
            if self.inner.is_clean() {
                "True"
            } else {
                "False"
            }
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// A fleet's inventory: clients, their RDS instances and the projects on them, read from TOML.
///
/// `Inventory.load(path)` raises `InvalidInput` listing every problem in `.problems` (each with
/// its line), or `IoError` when the file cannot be read. `check()` applies the hosting policies;
/// `check(aws_json=[...])` also compares each instance with the JSON that `aws rds
/// describe-db-instances` and `aws ec2 describe-security-groups` printed. Nothing connects.
#[pyclass(frozen, module = "rds_pg", name = "Inventory")]
pub struct Inventory {
    pub(crate) inner: inv::Inventory,
}

#[pymethods]
impl Inventory {
    /// Reads and validates the inventory file at `path`.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| inv::Inventory::load(&path)).py_result(py)?;
        Ok(Inventory { inner })
    }

    /// Validates inventory `text`; `name` stands for the file in messages and locations.
    #[staticmethod]
    #[pyo3(signature = (text, name = "<string>"))]
    fn from_str(py: Python<'_>, text: &str, name: &str) -> PyResult<Self> {
        let inner = inv::Inventory::from_str(text, name).py_result(py)?;
        Ok(Inventory { inner })
    }

    /// The file it was read from.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }

    /// The clients' names, in file order.
    #[getter]
    fn client_names(&self) -> Vec<&str> {
        self.inner.clients.iter().map(|c| c.name.as_str()).collect()
    }

    /// The instances' names, in file order.
    #[getter]
    fn instance_names(&self) -> Vec<&str> {
        self.inner
            .instances
            .iter()
            .map(|i| i.name.as_str())
            .collect()
    }

    /// The projects' names, in file order.
    #[getter]
    fn project_names(&self) -> Vec<&str> {
        self.inner
            .projects
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    }

    /// The fewest days of automated backups the policy asks of every instance.
    #[getter]
    fn backup_retention_days(&self) -> u32 {
        self.inner.policy.backup_retention_days
    }

    /// Applies the hosting policies and, given `aws_json` (paths of `aws rds
    /// describe-db-instances` / `aws ec2 describe-security-groups` output), the AWS rules.
    #[pyo3(signature = (aws_json = None))]
    fn check(&self, py: Python<'_>, aws_json: Option<Vec<PathBuf>>) -> PyResult<CheckReport> {
        let aws = match aws_json {
            Some(paths) if !paths.is_empty() => Some(
                py.detach(|| inv::AwsSnapshot::load_all(&paths))
                    .py_result(py)?,
            ),
            _ => None,
        };
        Ok(CheckReport {
            inner: self.inner.check(aws.as_ref()),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Inventory({}, clients={}, instances={}, projects={})",
            str_repr(py, &self.inner.source)?,
            self.inner.clients.len(),
            self.inner.instances.len(),
            self.inner.projects.len()
        ))
    }
}
