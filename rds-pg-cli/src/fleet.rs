//! `rds-pg fleet …`: load the inventory (and the AWS JSON), run the check or the plan/apply in
//! core, print the findings and items on standard error for people (with progress per instance
//! on a terminal) or one JSON document on standard output.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rds_pg_core::fleet::{
    self, FleetOptions, FleetReport, InstanceReport, Item, ItemState, Mode, Progress,
};
use rds_pg_core::inventory::{AwsSnapshot, CheckReport, Finding, Location};
use rds_pg_core::{Error, Inventory, Result, Step};
use serde_json::{json, Value};

use crate::cli::{FleetCommand, FleetRunArgs};
use crate::output::{error_json, print_error, print_json, step_mark, EXIT_FAILED, EXIT_USAGE};

/// The exit status of `fleet plan --exit-code` when something differs (and of `fleet apply
/// --exit-code` when something changed).
pub const EXIT_DIFFERS: u8 = 2;

/// Runs a fleet subcommand and returns its exit status.
pub fn run(cmd: FleetCommand) -> u8 {
    match cmd {
        FleetCommand::Check {
            inventory,
            aws_json,
            json,
        } => check(&inventory, &aws_json, json),
        FleetCommand::Plan {
            inventory,
            run,
            exit_code,
        } => converge(&inventory, &run, exit_code, Mode::Plan),
        FleetCommand::Apply {
            inventory,
            run,
            exit_code,
        } => converge(&inventory, &run, exit_code, Mode::Apply),
    }
}

/// `fleet plan` / `fleet apply`: 1 on errors (an unreadable inventory included, so that 2 only
/// ever means "differs"); with `exit_code`, 2 when something differs (plan) or changed (apply).
fn converge(inventory: &Path, args: &FleetRunArgs, exit_code: bool, mode: Mode) -> u8 {
    let title = format!("fleet {} {}", mode.as_str(), inventory.display());
    let loaded = match Inventory::load(inventory) {
        Ok(i) => i,
        Err(e) => {
            if args.json {
                print_json(&converge_document(inventory, mode, None, Some(&e)));
            }
            print_error(&title, &e);
            return EXIT_FAILED;
        }
    };
    let mut options = FleetOptions::new()
        .jobs(usize::from(args.jobs))
        .prune(args.prune)
        .take_over(args.take_over);
    for name in &args.instances {
        options = options.instance(name.as_str());
    }
    if std::io::stderr().is_terminal() {
        let verb = mode.as_str();
        options = options.on_progress(Arc::new(move |p: &Progress| progress_line(verb, p)));
    }
    let result = match mode {
        Mode::Plan => fleet::plan(&loaded, &options),
        Mode::Apply => fleet::apply(&loaded, &options),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                print_json(&converge_document(inventory, mode, None, Some(&e)));
            }
            print_error(&title, &e);
            return EXIT_FAILED;
        }
    };
    if args.json {
        print_json(&converge_document(inventory, mode, Some(&report), None));
    } else {
        print_report(&report, &title);
    }
    if report.has_errors() {
        EXIT_FAILED
    } else if exit_code && report.differs() {
        EXIT_DIFFERS
    } else {
        0
    }
}

/// One progress line on standard error (a terminal).
fn progress_line(verb: &str, p: &Progress) {
    let line = match p {
        Progress::Started { instance } => format!("{instance}: connecting and inspecting…"),
        Progress::Planned { instance, changes } => match changes {
            0 => format!("{instance}: in sync"),
            n => format!("{instance}: {n} to change"),
        },
        Progress::Applying {
            instance,
            item,
            done,
            total,
        } => format!("{instance}: [{}/{total}] {item}", done + 1),
        Progress::Finished {
            instance,
            summary,
            ok,
        } => format!(
            "{instance}: {} {summary}",
            if *ok { "done:" } else { "FAILED:" }
        ),
        _ => return,
    };
    let _ = writeln!(std::io::stderr().lock(), "fleet {verb}: {line}");
}

/// The database a step runs in, for display.
fn step_database(step: &Step) -> &str {
    step.database
        .as_ref()
        .map(|d| d.as_str())
        .unwrap_or("postgres")
}

fn print_steps(err: &mut impl Write, steps: &[Step], dry_run: bool) {
    for step in steps {
        let _ = writeln!(
            err,
            "  {:<10} {:<12} {}",
            step_mark(step, dry_run),
            step_database(step),
            step.sql()
        );
    }
}

fn print_item(err: &mut impl Write, item: &Item) {
    let project = item
        .project
        .as_ref()
        .map(|p| format!(" (project {p})"))
        .unwrap_or_default();
    let state = match &item.state {
        ItemState::Planned(_) => "would change".to_owned(),
        ItemState::Pending(why) => format!("would change ({why})"),
        ItemState::Blocked(_) => "finding".to_owned(),
        ItemState::Applied(r) if r.changed => "changed".to_owned(),
        ItemState::Applied(_) => "unchanged".to_owned(),
        ItemState::Failed(_) => "FAILED".to_owned(),
        ItemState::Skipped(why) => format!("skipped: {why}"),
        ItemState::InSync => "in sync".to_owned(),
        _ => item.state.as_str().to_owned(),
    };
    let _ = writeln!(err, "{item}{project}: {state}");
    match &item.state {
        ItemState::Planned(plan) => print_steps(err, &plan.steps, true),
        ItemState::Applied(report) => print_steps(err, &report.steps, false),
        ItemState::Blocked(e) | ItemState::Failed(e) => {
            let _ = writeln!(err, "  {:<10} {e}", "error");
        }
        _ => {}
    }
    for note in &item.notes {
        let _ = writeln!(err, "  {:<10} {note}", "note");
    }
}

/// The human listing: each instance's items that differ, its notes, then a summary table.
fn print_report(report: &FleetReport, title: &str) {
    let mut err = std::io::stderr().lock();
    for instance in &report.instances {
        let _ = writeln!(err, "== {}", instance_line(instance, report.mode));
        if let Some(e) = &instance.error {
            let _ = writeln!(err, "  {:<10} {e}", "error");
            if let Some(fix) = e.hint() {
                let _ = writeln!(err, "  {:<10} {fix}", "fix");
            }
        }
        for note in &instance.notes {
            let _ = writeln!(err, "  {:<10} {note}", "note");
        }
        for item in instance.items.iter().filter(|i| i.state.differs()) {
            print_item(&mut err, item);
        }
    }
    let _ = writeln!(err);
    let rows: Vec<[String; 8]> = report
        .instances
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.client.clone(),
                i.server_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                i.items.len().to_string(),
                i.changes().to_string(),
                (i.findings() + i.failures() + usize::from(i.error.is_some())).to_string(),
                i.inspection_queries.to_string(),
                format!("{:.1}s", i.elapsed.as_secs_f64()),
            ]
        })
        .collect();
    let changes = match report.mode {
        Mode::Plan => "to change",
        _ => "changed",
    };
    let header = [
        "instance", "client", "version", "items", changes, "problems", "queries", "time",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(err, "{}", cells.join("  ").trim_end());
    }
    let total: usize = report.instances.iter().map(InstanceReport::changes).sum();
    let problems: usize = report
        .instances
        .iter()
        .map(|i| i.findings() + i.failures() + usize::from(i.error.is_some()))
        .sum();
    let verdict = if report.is_in_sync() {
        "in sync".to_owned()
    } else {
        format!("{total} {changes}, {problems} problem(s)")
    };
    let _ = writeln!(
        err,
        "{title}: {} instance(s), {verdict}",
        report.instances.len()
    );
}

fn instance_line(i: &InstanceReport, mode: Mode) -> String {
    let version = i
        .server_version
        .map(|v| format!(", PostgreSQL {v}"))
        .unwrap_or_default();
    format!("{} ({}{version}): {}", i.name, i.endpoint, i.summary(mode))
}

fn steps_json(steps: &[Step]) -> Vec<Value> {
    steps
        .iter()
        .map(|s| {
            json!({
                "database": step_database(s),
                "sql": s.sql(),
                "reason": s.reason,
                "kind": s.kind().as_str(),
            })
        })
        .collect()
}

fn item_json(item: &Item) -> Value {
    let (steps, reason, error, changed) = match &item.state {
        ItemState::Planned(p) => (steps_json(&p.steps), None, None, None),
        ItemState::Applied(r) => (steps_json(&r.steps), None, None, Some(r.changed)),
        ItemState::Pending(why) | ItemState::Skipped(why) => {
            (Vec::new(), Some(why.clone()), None, None)
        }
        ItemState::Blocked(e) | ItemState::Failed(e) => {
            (Vec::new(), None, Some(error_json(e)), None)
        }
        _ => (Vec::new(), None, None, None),
    };
    json!({
        "kind": item.kind.as_str(),
        "name": item.name,
        "database": item.database,
        "project": item.project,
        "state": item.state.as_str(),
        "differs": item.state.differs(),
        "changed": changed,
        "reason": reason,
        "steps": steps,
        "notes": item.notes,
        "error": error,
    })
}

fn instance_json(i: &InstanceReport, mode: Mode) -> Value {
    json!({
        "name": i.name,
        "client": i.client,
        "environment": i.environment.as_str(),
        "endpoint": i.endpoint,
        "server_version": i.server_version.map(|v| v.to_string()),
        "summary": i.summary(mode),
        "differs": i.differs(),
        "changes": i.changes(),
        "findings": i.findings(),
        "failures": i.failures(),
        "inspection_queries": i.inspection_queries,
        "elapsed_ms": i.elapsed.as_millis() as u64,
        "error": i.error.as_ref().map(error_json),
        "notes": i.notes,
        "items": i.items.iter().map(item_json).collect::<Vec<_>>(),
    })
}

/// The one JSON document of `fleet plan` / `fleet apply`.
fn converge_document(
    inventory: &Path,
    mode: Mode,
    report: Option<&FleetReport>,
    error: Option<&Error>,
) -> Value {
    let errors: Vec<Value> = error.map(inventory_error_json).into_iter().collect();
    json!({
        "command": format!("fleet {}", mode.as_str()),
        "inventory": inventory,
        "in_sync": report.map(FleetReport::is_in_sync),
        "differs": report.map(FleetReport::differs),
        "has_errors": report.map(FleetReport::has_errors).unwrap_or(true),
        "instances": report
            .map(|r| r.instances.iter().map(|i| instance_json(i, mode)).collect::<Vec<_>>())
            .unwrap_or_default(),
        "errors": errors,
    })
}

/// An error as JSON, with every problem of an invalid inventory.
fn inventory_error_json(e: &Error) -> Value {
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
    let errors: Vec<Value> = error.map(inventory_error_json).into_iter().collect();
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
