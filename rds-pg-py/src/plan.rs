//! `Step`, `Plan` and `Report`: read-only views of what an operation would run or did run.

use pyo3::prelude::*;
use rds_pg_core as core;

use crate::secret::Secret;

/// One statement of a plan or report. `sql` never holds a password or verifier (they show as
/// `'[redacted]'`).
#[pyclass(frozen, module = "rds_pg", name = "Step")]
pub struct Step {
    inner: core::Step,
}

#[pymethods]
impl Step {
    /// The database the statement runs in; None is the maintenance database master is
    /// connected to.
    #[getter]
    fn database(&self) -> Option<&str> {
        self.inner.database.as_ref().map(|d| d.as_str())
    }

    /// The statement, redacted.
    #[getter]
    fn sql(&self) -> String {
        self.inner.sql()
    }

    /// Why it is needed.
    #[getter]
    fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// What kind of step it is: `"change"`, `"temporary_grant"`, `"temporary_revoke"`,
    /// `"set_role"`, `"reset_role"`, `"suspend_iam"` or `"restore_iam"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().as_str()
    }

    /// Whether it is sent on its own, outside a transaction block (`CREATE DATABASE`).
    #[getter]
    fn standalone(&self) -> bool {
        self.inner.standalone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Step(database={:?}, kind={:?}, sql={:?})",
            self.inner.database_label(),
            self.inner.kind().as_str(),
            self.inner.sql()
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

fn steps(py: Python<'_>, steps: &[core::Step]) -> PyResult<Vec<Py<Step>>> {
    steps
        .iter()
        .map(|s| Py::new(py, Step { inner: s.clone() }))
        .collect()
}

/// The steps an operation would run, in order; empty (and false) when there is nothing to
/// change. `str(plan)` is the dry-run listing.
#[pyclass(frozen, sequence, module = "rds_pg", name = "Plan")]
pub struct Plan {
    pub(crate) inner: core::Plan,
}

#[pymethods]
impl Plan {
    /// The statements, in order.
    #[getter]
    fn steps(&self, py: Python<'_>) -> PyResult<Vec<Py<Step>>> {
        steps(py, &self.inner.steps)
    }

    /// Things rds_pg noticed and will not change, with the reason.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.inner.notes.clone()
    }

    /// The redacted SQL of every step.
    #[getter]
    fn sql(&self) -> Vec<String> {
        self.inner.sql()
    }

    /// The statements that grant master a membership for the duration of the operation.
    #[getter]
    fn temporary_grants(&self) -> Vec<String> {
        self.inner
            .steps
            .iter()
            .filter(|s| s.kind() == core::StepKind::TemporaryGrant)
            .map(|s| s.sql())
            .collect()
    }

    /// Whether there is nothing to do.
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    fn __len__(&self) -> usize {
        self.inner.steps.len()
    }

    fn __bool__(&self) -> bool {
        !self.inner.is_empty()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
        pyo3::types::PyList::new(py, steps(py, &self.inner.steps)?)?.try_iter()
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Py<Step>> {
        let len = self.inner.steps.len() as isize;
        let i = if index < 0 { index + len } else { index };
        if !(0..len).contains(&i) {
            return Err(pyo3::exceptions::PyIndexError::new_err(
                "plan index out of range",
            ));
        }
        Py::new(
            py,
            Step {
                inner: self.inner.steps[i as usize].clone(),
            },
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "Plan(steps={}, notes={})",
            self.inner.steps.len(),
            self.inner.notes.len()
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// What an operation did. `generated_password` is a `Secret` when a password was generated (a
/// new role without one, or a rotation without one): it is shown only here, once.
#[pyclass(frozen, module = "rds_pg", name = "Report")]
pub struct Report {
    pub(crate) inner: core::Report,
}

#[pymethods]
impl Report {
    /// Whether anything changed.
    #[getter]
    fn changed(&self) -> bool {
        self.inner.changed
    }

    /// The statements that ran, in order (redacted).
    #[getter]
    fn steps(&self, py: Python<'_>) -> PyResult<Vec<Py<Step>>> {
        steps(py, &self.inner.steps)
    }

    /// Roles master was granted for the operation and that were revoked at the end.
    #[getter]
    fn temporary_grants(&self) -> Vec<&str> {
        self.inner
            .temporary_grants
            .iter()
            .map(|r| r.as_str())
            .collect()
    }

    /// Things rds_pg noticed and did not change.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.inner.notes.clone()
    }

    /// The generated password, or None.
    #[getter]
    fn generated_password(&self, py: Python<'_>) -> PyResult<Option<Py<Secret>>> {
        self.inner
            .generated_password
            .clone()
            .map(|p| Secret::wrap(py, p))
            .transpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "Report(changed={}, steps={}, notes={}, generated_password={})",
            if self.inner.changed { "True" } else { "False" },
            self.inner.steps.len(),
            self.inner.notes.len(),
            if self.inner.generated_password.is_some() {
                "Secret([redacted])"
            } else {
                "None"
            }
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}
