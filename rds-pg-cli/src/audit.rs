//! `rds-pg audit`: load the inventory when given, run the audit in core, print the findings on
//! standard error for people or one JSON document on standard output.

use std::io::Write;

use rds_pg_core::audit::{self, AppliedFix, AuditObject, AuditOptions, AuditReport, Finding};
use rds_pg_core::{ConnectOptions, Error, Inventory};
use serde_json::{json, Value};

use crate::cli::AuditArgs;
use crate::output::{error_json, exit_status, print_error, print_json, EXIT_FAILED, EXIT_USAGE};

const TITLE: &str = "audit";

/// Runs the audit and returns the exit status: 0 clean, 1 findings or failure, 2 bad input (an
/// inventory that cannot be read or is invalid included).
pub fn run(options: &ConnectOptions, args: &AuditArgs) -> u8 {
    let mut settings = AuditOptions::new().jobs(args.jobs).fix(args.fix);
    if let Some(path) = &args.inventory {
        match Inventory::load(path) {
            Ok(inventory) => {
                settings = settings.inventory(inventory, args.instance.as_deref());
            }
            Err(e) => {
                failed(&e, args.json);
                return EXIT_USAGE;
            }
        }
    }
    match audit::run(options, &settings) {
        Ok(report) => {
            print(&report, args.json);
            if report.is_clean() {
                0
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => failed(&e, args.json),
    }
}

/// Prints an error that stopped the audit and returns its exit status.
pub fn failed(error: &Error, json: bool) -> u8 {
    if json {
        print_json(&json!({
            "command": TITLE,
            "clean": Value::Null,
            "findings": [],
            "fixed": [],
            "errors": [error_json(error)],
        }));
    }
    print_error(TITLE, error);
    exit_status(error)
}

fn print(report: &AuditReport, json: bool) {
    if json {
        print_json(&document(report));
        return;
    }
    let mut err = std::io::stderr().lock();
    for fixed in &report.fixed {
        for (statement, error) in &fixed.results {
            match error {
                None => {
                    let _ = writeln!(err, "fixed   {}: {statement}", fixed.finding.rule);
                }
                Some(e) => {
                    let _ = writeln!(
                        err,
                        "failed  {}: {statement}\n        {e}",
                        fixed.finding.rule
                    );
                }
            }
        }
    }
    if !report.fixed.is_empty() {
        let _ = writeln!(err);
    }
    for finding in &report.findings {
        let _ = writeln!(err, "{finding}\n");
    }
    let _ = writeln!(err, "{TITLE} {}: {report}", report.target);
}

fn object_json(o: &AuditObject) -> Value {
    json!({ "kind": o.kind.as_str(), "name": o.name, "database": o.database })
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "rule": f.rule.id(),
        "severity": f.severity.as_str(),
        "message": f.message,
        "objects": f.objects.iter().map(object_json).collect::<Vec<_>>(),
        "fix_sql": f.fix_sql(),
        "fix": {
            "automatic": f.fix.automatic,
            "note": f.fix.note,
            "statements": f.fix.statements.iter().map(|s| json!({
                "database": s.database, "run_as": s.run_as, "sql": s.sql,
            })).collect::<Vec<_>>(),
        },
    })
}

fn fixed_json(f: &AppliedFix) -> Value {
    json!({
        "rule": f.finding.rule.id(),
        "message": f.finding.message,
        "objects": f.finding.objects.iter().map(object_json).collect::<Vec<_>>(),
        "succeeded": f.succeeded(),
        "statements": f.results.iter().map(|(s, e)| json!({
            "database": s.database, "run_as": s.run_as, "sql": s.sql, "error": e,
        })).collect::<Vec<_>>(),
    })
}

fn document(report: &AuditReport) -> Value {
    json!({
        "command": TITLE,
        "target": report.target,
        "server_version": report.server_version.to_string(),
        "master": report.master,
        "instance": report.instance,
        "clean": report.is_clean(),
        "counts": {
            "error": report.count(audit::Severity::Error),
            "warning": report.count(audit::Severity::Warning),
            "info": report.count(audit::Severity::Info),
        },
        "databases": report.databases,
        "login_roles": report.login_roles,
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "connect_matrix": report.connect_matrix.iter().map(|c| json!({
            "database": c.database, "owner": c.owner, "project": c.project, "roles": c.roles,
        })).collect::<Vec<_>>(),
        "fixed": report.fixed.iter().map(fixed_json).collect::<Vec<_>>(),
        "errors": [],
    })
}
