//! `rds-pg fleet …`: load the inventory (and the AWS JSON), run the check in core, print the
//! findings on standard error for people or one JSON document on standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use rds_pg_core::inventory::{AwsSnapshot, CheckReport, Finding, Location};
use rds_pg_core::{Error, Inventory, Result};
use serde_json::{json, Value};

use crate::cli::FleetCommand;
use crate::output::{error_json, print_error, print_json, EXIT_FAILED, EXIT_USAGE};

/// Runs a fleet subcommand and returns its exit status.
pub fn run(cmd: FleetCommand) -> u8 {
    match cmd {
        FleetCommand::Check {
            inventory,
            aws_json,
            json,
        } => check(&inventory, &aws_json, json),
    }
}

fn load(inventory: &Path, aws_json: &[PathBuf]) -> Result<(Inventory, Option<AwsSnapshot>)> {
    let inventory = Inventory::load(inventory)?;
    let aws = if aws_json.is_empty() {
        None
    } else {
        Some(AwsSnapshot::load_all(aws_json)?)
    };
    Ok((inventory, aws))
}

/// `fleet check`: 0 clean, 1 findings, 2 when the input cannot be read or is invalid.
fn check(inventory: &Path, aws_json: &[PathBuf], json: bool) -> u8 {
    let title = format!("fleet check {}", inventory.display());
    let (loaded, aws) = match load(inventory, aws_json) {
        Ok(loaded) => loaded,
        Err(e) => {
            if json {
                print_json(&document(inventory, aws_json, None, Some(&e)));
            }
            print_error(&title, &e);
            return EXIT_USAGE;
        }
    };
    let report = loaded.check(aws.as_ref());
    if json {
        print_json(&document(inventory, aws_json, Some(&report), None));
    } else {
        let mut err = std::io::stderr().lock();
        for finding in &report.findings {
            let _ = writeln!(err, "{finding}\n");
        }
        let _ = writeln!(err, "fleet check {report}");
    }
    if report.is_clean() {
        0
    } else {
        EXIT_FAILED
    }
}

fn location_json(location: &Location) -> Value {
    json!({
        "file": location.file,
        "line": location.line,
        "column": location.column,
        "pointer": location.pointer,
    })
}

fn finding_json(finding: &Finding) -> Value {
    let objects: Vec<Value> = finding
        .objects
        .iter()
        .map(|o| {
            let mut object = location_json(&o.location);
            object["kind"] = json!(o.kind.as_str());
            object["name"] = json!(o.name);
            object
        })
        .collect();
    json!({
        "rule": finding.rule.id(),
        "severity": finding.severity.as_str(),
        "message": finding.message,
        "objects": objects,
        "fix": finding.fix,
    })
}

/// The one JSON document: the findings, or the error that stopped the check (with every
/// problem of an invalid inventory).
fn document(
    inventory: &Path,
    aws_json: &[PathBuf],
    report: Option<&CheckReport>,
    error: Option<&Error>,
) -> Value {
    let errors: Vec<Value> = error
        .map(|e| {
            let mut value = error_json(e);
            if let Error::Inventory(inv) = e {
                value["problems"] = inv
                    .problems
                    .iter()
                    .map(|p| {
                        let mut problem = location_json(&p.location);
                        problem["message"] = json!(p.message);
                        problem
                    })
                    .collect();
            }
            value
        })
        .into_iter()
        .collect();
    json!({
        "command": "fleet check",
        "inventory": inventory,
        "aws_json": aws_json,
        "clean": report.map(CheckReport::is_clean),
        "instances": report.map(|r| r.instances),
        "projects": report.map(|r| r.projects),
        "aws_db_instances": report.and_then(|r| r.aws_db_instances),
        "findings": report.map(|r| r.findings.iter().map(finding_json).collect::<Vec<_>>()).unwrap_or_default(),
        "errors": errors,
    })
}
