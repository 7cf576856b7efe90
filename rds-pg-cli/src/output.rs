//! Printing: one line per step and a summary on standard error for people, or one JSON
//! document on standard output for programs. A generated password alone goes to standard
//! output, so that `rds-pg user create x | vault-client` works.

use std::io::Write;

use rds_pg_core::{Error, ErrorKind, Password, Plan, Report, Step, StepKind};
use serde_json::{json, Value};

/// The exit status of a usage error (clap's, too).
pub const EXIT_USAGE: u8 = 2;
/// The exit status of a failed operation.
pub const EXIT_FAILED: u8 = 1;

/// What one command did, or would do with `--dry-run`.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The command and its main arguments, e.g. `user create "shop"`.
    pub title: String,
    /// Whether this is a dry run (the steps were planned, not run).
    pub dry_run: bool,
    /// Whether anything changed.
    pub changed: bool,
    /// The statements that ran (or would run).
    pub steps: Vec<Step>,
    /// Roles master was granted for the operation and gave up at the end.
    pub temporary_grants: Vec<String>,
    /// Things rds-pg noticed and did not change.
    pub notes: Vec<String>,
    /// A generated password to print (only when no credentials sink took it).
    pub password: Option<Password>,
    /// Where the credentials were written, for the summary.
    pub credentials: Option<String>,
    /// Where the operation's report says it delivered credentials.
    pub delivered_to: Option<String>,
    /// Lines that are not SQL statements (dump and restore): mark, database, text.
    pub lines: Vec<Line>,
    /// The summary, when the default one (from the steps) does not fit.
    pub summary: Option<String>,
    /// Extra fields for the JSON document (dump and restore details).
    pub extra: serde_json::Map<String, Value>,
}

impl Outcome {
    /// An outcome titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Outcome {
            title: title.into(),
            ..Outcome::default()
        }
    }

    /// Fills in what a report says.
    pub fn with_report(mut self, report: Report) -> Self {
        self.changed = report.changed;
        self.steps = report.steps;
        self.temporary_grants = report
            .temporary_grants
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        self.notes = report.notes;
        self.password = report.generated_password;
        self.delivered_to = report.credentials_delivered_to;
        self
    }

    /// Fills in what a plan says (a dry run: nothing changed).
    pub fn with_plan(mut self, plan: Plan) -> Self {
        self.dry_run = true;
        self.changed = false;
        self.temporary_grants = plan
            .temporary_grants()
            .into_iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        self.steps = plan.steps;
        self.notes = plan.notes;
        self
    }
}

/// A line of the human listing that is not an SQL statement (dump and restore): a mark, the
/// database, the text.
#[derive(Debug, Clone)]
pub struct Line {
    /// What happened (`written`, `restored`, `warning`, …).
    pub mark: String,
    /// The database it is about.
    pub database: String,
    /// The text.
    pub text: String,
}

impl Line {
    /// A line.
    pub fn new(
        mark: impl Into<String>,
        database: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Line {
            mark: mark.into(),
            database: database.into(),
            text: text.into(),
        }
    }
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// One JSON document on standard output instead of lines on standard error.
    pub json: bool,
}

fn step_database<'a>(step: &'a Step, maintenance: &'a str) -> &'a str {
    step.database
        .as_ref()
        .map(|d| d.as_str())
        .unwrap_or(maintenance)
}

/// The mark of a step in the human listing.
pub fn step_mark(step: &Step, dry_run: bool) -> &'static str {
    match (dry_run, step.kind()) {
        (true, _) => "would run",
        (false, StepKind::Change) => "changed",
        (false, StepKind::TemporaryGrant | StepKind::TemporaryRevoke) => "temporary",
        (false, StepKind::SuspendIam | StepKind::RestoreIam) => "iam",
        (false, _) => "as owner",
    }
}

impl Printer {
    /// Prints a successful outcome.
    pub fn success(&self, outcome: &Outcome, maintenance_db: &str) {
        if self.json {
            let mut doc = base_document(outcome, maintenance_db);
            doc.insert("errors".into(), json!([]));
            if let Some(p) = &outcome.password {
                doc.insert("generated_password".into(), json!(p.expose()));
            }
            print_json(&Value::Object(doc));
            return;
        }
        let mut err = std::io::stderr().lock();
        for step in &outcome.steps {
            let _ = writeln!(
                err,
                "{:<10} {:<12} {}",
                step_mark(step, outcome.dry_run),
                step_database(step, maintenance_db),
                step.sql()
            );
        }
        for Line {
            mark,
            database,
            text,
        } in &outcome.lines
        {
            let _ = writeln!(err, "{mark:<10} {database:<12} {text}");
        }
        for note in &outcome.notes {
            let _ = writeln!(err, "{:<10} {note}", "note");
        }
        let n = outcome.steps.len();
        let statements = if n == 1 { "statement" } else { "statements" };
        let summary = if let Some(summary) = &outcome.summary {
            summary.clone()
        } else if outcome.dry_run {
            if n == 0 {
                "dry run: nothing to change".to_owned()
            } else {
                format!("dry run: {n} {statements} planned, nothing changed")
            }
        } else if outcome.changed {
            let mut s = format!("changed ({n} {statements}");
            if !outcome.temporary_grants.is_empty() {
                let roles: Vec<String> = outcome
                    .temporary_grants
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect();
                s.push_str(&format!(
                    "; master was a member of {} for the operation only",
                    roles.join(", ")
                ));
            }
            s.push(')');
            s
        } else {
            "unchanged".to_owned()
        };
        let _ = writeln!(err, "{}: {summary}", outcome.title);
        if let Some(where_) = &outcome.credentials {
            let _ = writeln!(err, "{}: credentials written to {where_}", outcome.title);
        }
        if let Some(p) = &outcome.password {
            let _ = writeln!(
                err,
                "{}: generated password on standard output (shown once: store it now)",
                outcome.title
            );
            drop(err);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", p.expose());
            let _ = out.flush();
        }
    }

    /// Prints a failure and returns the exit status.
    pub fn failure(&self, outcome: &Outcome, error: &Error, maintenance_db: &str) -> u8 {
        let status = exit_status(error);
        if self.json {
            let mut doc = base_document(outcome, maintenance_db);
            // The steps that ran before the failure are not known: "changed" is null.
            doc.insert("changed".into(), Value::Null);
            doc.insert("errors".into(), json!([error_json(error)]));
            print_json(&Value::Object(doc));
        }
        print_error(&outcome.title, error);
        status
    }
}

fn base_document(outcome: &Outcome, maintenance_db: &str) -> serde_json::Map<String, Value> {
    let steps: Vec<Value> = outcome
        .steps
        .iter()
        .map(|s| {
            json!({
                "database": step_database(s, maintenance_db),
                "sql": s.sql(),
                "reason": s.reason,
                "kind": s.kind().as_str(),
            })
        })
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("command".into(), json!(outcome.title));
    doc.insert("dry_run".into(), json!(outcome.dry_run));
    doc.insert("changed".into(), json!(outcome.changed));
    doc.insert("steps".into(), Value::Array(steps));
    doc.insert("temporary_grants".into(), json!(outcome.temporary_grants));
    doc.insert("notes".into(), json!(outcome.notes));
    if let Some(c) = &outcome.credentials {
        doc.insert("credentials".into(), json!(c));
    }
    for (k, v) in &outcome.extra {
        doc.insert(k.clone(), v.clone());
    }
    doc
}

/// Prints a JSON document on standard output.
pub fn print_json(doc: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, doc);
    let _ = writeln!(out);
    let _ = out.flush();
}

/// The error as a JSON object: kind, message, fix (for permission errors), SQLSTATE.
pub fn error_json(error: &Error) -> Value {
    json!({
        "kind": error.kind().as_str(),
        "message": error.to_string(),
        "fix": error.hint(),
        "sqlstate": error.sqlstate().map(|s| s.code()),
    })
}

/// 2 for input rds-pg refused before contacting anything, 1 for everything else.
pub fn exit_status(error: &Error) -> u8 {
    match error.kind() {
        ErrorKind::InvalidName | ErrorKind::InvalidInput => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// Prints `error: <title>: <error>` and the causes the message does not already say.
pub fn print_error(title: &str, error: &Error) {
    let mut err = std::io::stderr().lock();
    let message = error.to_string();
    let _ = writeln!(err, "error: {title}: {message}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            let _ = writeln!(err, "  caused by: {text}");
        }
        source = cause.source();
    }
}
