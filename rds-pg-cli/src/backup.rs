//! `rds-pg backup …`: run, verify, prune and list through the core's `backup` module, with
//! progress on a terminal, a line per database and a summary on standard error, or one JSON
//! document on standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use rds_pg_core::backup::{
    self, Archive, ArchiveVerification, BackupRunOptions, BackupVerifyOptions, DatabaseBackup,
    Identities, Listing, PruneOptions, PruneReport, RetentionPolicy, RunEvent, Selection,
    VerifyEvent,
};
use rds_pg_core::{Error, Inventory, Result};
use serde_json::{json, Value};

use crate::archive::{human_bytes, millis, ProgressLine};
use crate::cli::{BackupCommand, ConnectionArgs, SelectionArgs};
use crate::output::{error_json, exit_status, print_error, print_json, EXIT_FAILED, EXIT_USAGE};

/// Runs a backup subcommand and returns its exit status.
pub fn run(conn: &ConnectionArgs, cmd: BackupCommand) -> u8 {
    match cmd {
        BackupCommand::Run {
            inventory,
            selection,
            to,
            jobs,
            encrypt_to,
            no_encrypt,
            no_upload,
            no_count,
            tools_dir,
            json,
        } => {
            let title = format!("backup run {}", inventory.display());
            let loaded = match Inventory::load(&inventory) {
                Ok(loaded) => loaded,
                Err(e) => return fail("backup run", &title, json, &e, EXIT_USAGE),
            };
            let result = (|| {
                let mut options = BackupRunOptions::new(crate::connect_options(conn)?)
                    .selection(selection_of(selection))
                    .skip_upload(no_upload)
                    .count_rows(!no_count);
                if let Some(dir) = to {
                    options = options.root(dir);
                }
                if let Some(jobs) = jobs {
                    options = options.jobs(jobs);
                }
                if no_encrypt {
                    options = options.encrypt_to(Vec::new());
                } else if !encrypt_to.is_empty() {
                    options = options.encrypt_to(encrypt_to);
                }
                if let Some(dir) = tools_dir {
                    options = options.tools_dir(dir);
                }
                let mut line = ProgressLine::new(json);
                let report = backup::run_with(&loaded, &options, &mut |event| match event {
                    RunEvent::Started(t) => line.show(&format!(
                        "{title}: {}/{}/{}: starting",
                        t.client, t.instance, t.database
                    )),
                    RunEvent::Dumping {
                        target: t,
                        progress,
                    } => line.show(&format!(
                        "{title}: {}/{}/{}: table {}/{}, {}",
                        t.client,
                        t.instance,
                        t.database,
                        progress.done,
                        progress.total,
                        human_bytes(progress.bytes.unwrap_or(0))
                    )),
                    RunEvent::Uploading(t) => line.show(&format!(
                        "{title}: {}/{}/{}: uploading",
                        t.client, t.instance, t.database
                    )),
                    RunEvent::Finished(done) => {
                        line.clear();
                        if !json {
                            print_backup_line(done);
                        }
                    }
                    _ => {}
                });
                line.clear();
                report
            })();
            match result {
                Ok(report) => {
                    let ok = report.databases.iter().filter(|d| d.succeeded()).count();
                    let n = report.databases.len();
                    if json {
                        print_json(&json!({
                            "command": "backup run",
                            "inventory": inventory,
                            "root": report.root,
                            "succeeded": report.succeeded(),
                            "duration_ms": millis(report.duration),
                            "databases": report.databases.iter().map(backup_json).collect::<Vec<_>>(),
                            "errors": [],
                        }));
                    } else {
                        eprintln!(
                            "{title}: {ok} of {n} {} backed up into {} in {:.1?}{}",
                            if n == 1 { "database" } else { "databases" },
                            report.root.display(),
                            report.duration,
                            if ok == n {
                                String::new()
                            } else {
                                format!(" ({} failed)", n - ok)
                            }
                        );
                    }
                    if report.succeeded() {
                        0
                    } else {
                        EXIT_FAILED
                    }
                }
                Err(e) => fail("backup run", &title, json, &e, exit_status(&e)),
            }
        }
        BackupCommand::Verify {
            inventory,
            selection,
            to,
            archive,
            identity,
            tools_dir,
            json,
        } => {
            let title = format!("backup verify {}", inventory.display());
            let loaded = match Inventory::load(&inventory) {
                Ok(loaded) => loaded,
                Err(e) => return fail("backup verify", &title, json, &e, EXIT_USAGE),
            };
            let result = (|| {
                let mut options = BackupVerifyOptions::new(crate::connect_options(conn)?)
                    .selection(selection_of(selection));
                if let Some(dir) = to {
                    options = options.root(dir);
                }
                if let Some(path) = archive {
                    options = options.archive(path);
                }
                if let Some(file) = identity {
                    options = options.identities(Identities::from_file(file)?);
                }
                if let Some(dir) = tools_dir {
                    options = options.tools_dir(dir);
                }
                let mut line = ProgressLine::new(json);
                let report = backup::verify_with(&loaded, &options, &mut |event| match event {
                    VerifyEvent::Started(a) => {
                        line.show(&format!("{title}: {}: restoring", a.group()))
                    }
                    VerifyEvent::Restoring { archive, progress } => line.show(&format!(
                        "{title}: {}: {}/{} entries",
                        archive.group(),
                        progress.done,
                        progress.total
                    )),
                    VerifyEvent::Finished(v) => {
                        line.clear();
                        if !json {
                            print_verify_line(v);
                        }
                    }
                    _ => {}
                });
                line.clear();
                report
            })();
            match result {
                Ok(report) => {
                    let ok = report.archives.iter().filter(|a| a.succeeded()).count();
                    let n = report.archives.len();
                    if json {
                        print_json(&json!({
                            "command": "backup verify",
                            "inventory": inventory,
                            "succeeded": report.succeeded(),
                            "archives": report.archives.iter().map(verify_json).collect::<Vec<_>>(),
                            "errors": [],
                        }));
                    } else {
                        eprintln!(
                            "{title}: {ok} of {n} {} verified",
                            if n == 1 { "archive" } else { "archives" }
                        );
                    }
                    if report.succeeded() {
                        0
                    } else {
                        EXIT_FAILED
                    }
                }
                Err(e) => fail("backup verify", &title, json, &e, exit_status(&e)),
            }
        }
        BackupCommand::Prune {
            target,
            selection,
            to,
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            dry_run,
            json,
        } => {
            let title = format!("backup prune {}", target.display());
            let (root, mut policy) = match root_and_policy(&target, to) {
                Ok(found) => found,
                Err(e) => return fail("backup prune", &title, json, &e, EXIT_USAGE),
            };
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
            let options = PruneOptions::new(policy)
                .dry_run(dry_run)
                .selection(selection_of(selection));
            let result = backup::prune(&root, &options);
            match result {
                Ok(report) => {
                    if json {
                        print_json(&prune_json(&report));
                    } else {
                        print_prune(&title, &report);
                    }
                    if report.succeeded() {
                        0
                    } else {
                        EXIT_FAILED
                    }
                }
                Err(e) => fail("backup prune", &title, json, &e, exit_status(&e)),
            }
        }
        BackupCommand::List {
            target,
            selection,
            to,
            json,
        } => {
            let title = format!("backup list {}", target.display());
            let root = match root_and_policy(&target, to) {
                Ok((root, _)) => root,
                Err(e) => return fail("backup list", &title, json, &e, EXIT_USAGE),
            };
            let result = backup::list(&root, &selection_of(selection)).map(|l| (root, l));
            match result {
                Ok((root, listing)) => {
                    if json {
                        print_json(&json!({
                            "command": "backup list",
                            "root": root,
                            "archives": listing.archives.iter().map(archive_json).collect::<Vec<_>>(),
                            "unreadable": unreadable_json(&listing),
                            "errors": [],
                        }));
                    } else {
                        print_list(&title, &listing);
                    }
                    0
                }
                Err(e) => fail("backup list", &title, json, &e, exit_status(&e)),
            }
        }
    }
}

fn selection_of(args: SelectionArgs) -> Selection {
    Selection {
        instance: args.instance,
        project: args.project,
        database: args.database,
    }
}

/// The backup directory and retention policy: a directory given itself (no policy), or an
/// inventory's (`--to` replacing its backup_dir).
fn root_and_policy(target: &Path, to: Option<PathBuf>) -> Result<(PathBuf, RetentionPolicy)> {
    if target.is_dir() {
        if to.is_some() {
            return Err(Error::InvalidInput(
                "--to goes with an inventory; here the backup directory is given itself".into(),
            ));
        }
        return Ok((target.to_owned(), RetentionPolicy::default()));
    }
    let inventory = Inventory::load(target)?;
    let backups = &inventory.policy.backups;
    let root = to.or_else(|| backups.dir.clone()).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{} sets no backup_dir in its [policy]: give the backup directory with --to DIR",
            target.display()
        ))
    })?;
    Ok((root, backups.retention))
}

fn fail(command: &str, title: &str, json: bool, error: &Error, status: u8) -> u8 {
    if json {
        let mut doc = json!({"command": command, "errors": [error_json(error)]});
        if let Error::Inventory(inv) = error {
            doc["errors"][0]["problems"] = inv
                .problems
                .iter()
                .map(|p| json!({"location": p.location.to_string(), "message": p.message}))
                .collect();
        }
        print_json(&doc);
    }
    print_error(title, error);
    status
}

/// `1 table`, `3 tables`.
fn count(n: i64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn print_backup_line(done: &DatabaseBackup) {
    let t = &done.target;
    let what = format!("{}/{}/{}", t.client, t.instance, t.database);
    let mut err = std::io::stderr().lock();
    match &done.result {
        Ok(b) => {
            let m = &b.archive.manifest;
            let _ = writeln!(
                err,
                "{:<9} {what}  {}  {}, {}, {}, as {:?} in {:.1?}{}",
                "written",
                file_name(&b.archive.path),
                human_bytes(m.bytes),
                count(m.project_tables().count() as i64, "table"),
                count(m.rows(), "row"),
                m.role,
                b.duration,
                if m.encryption.is_some() {
                    ", encrypted"
                } else {
                    ""
                }
            );
            match &done.upload {
                Some(Ok(())) => {
                    let _ = writeln!(err, "{:<9} {what}  archive and manifest", "uploaded");
                }
                Some(Err(e)) => {
                    let _ = writeln!(err, "{:<9} {what}  upload: {e}", "failed");
                }
                None => {}
            }
        }
        Err(e) => {
            let _ = writeln!(err, "{:<9} {what}  {e}", "failed");
        }
    }
}

fn print_verify_line(v: &ArchiveVerification) {
    let mut err = std::io::stderr().lock();
    let name = v
        .archive
        .as_ref()
        .map(|a| file_name(&a.path))
        .unwrap_or_default();
    match &v.result {
        Ok(()) => {
            let own = || v.tables.iter().filter(|t| t.extension.is_none());
            let rows: i64 = own().filter_map(|t| t.restored).sum();
            let scratch = v.cleanup.as_ref().map(|c| c.name.as_str()).unwrap_or("");
            let _ = writeln!(
                err,
                "{:<9} {}  {name}  {}, {} as in the dump's snapshot; restored as {scratch:?} \
                 in {:.1?}",
                "verified",
                v.label,
                count(own().count() as i64, "table"),
                count(rows, "row"),
                v.duration
            );
        }
        Err(Error::BackupVerification { problems, .. }) => {
            let _ = writeln!(err, "{:<9} {}  {name}", "failed", v.label);
            for p in problems {
                let _ = writeln!(err, "{:<9}   {}", "", p.replace('\n', "\n              "));
            }
        }
        Err(e) => {
            let _ = writeln!(err, "{:<9} {}  {name}  {e}", "error", v.label);
        }
    }
    if let Some(c) = &v.cleanup {
        for (what, e) in [("database", &c.database_error), ("role", &c.role_error)] {
            if let Some(e) = e {
                let _ = writeln!(
                    err,
                    "{:<9} {}  the scratch {what} {:?} was not dropped: {e}",
                    "error", v.label, c.name
                );
            }
        }
    }
}

fn print_prune(title: &str, report: &PruneReport) {
    let mut err = std::io::stderr().lock();
    for d in &report.decisions {
        let m = &d.archive.manifest;
        let mark = match (d.keep(), report.dry_run, d.removed) {
            (true, _, _) => "keep",
            (false, true, _) => "would go",
            (false, false, true) => "removed",
            (false, false, false) => "failed",
        };
        let reasons: Vec<String> = d.reasons.iter().map(|r| r.to_string()).collect();
        let line = format!(
            "{mark:<9} {}  {}  {:<10}  {}{}",
            d.archive.group(),
            file_name(&d.archive.path),
            m.verification.state,
            reasons.join(", "),
            d.error
                .as_ref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
        let _ = writeln!(err, "{}", line.trim_end());
    }
    for (path, why) in &report.unreadable {
        let _ = writeln!(err, "{:<9} {}  {why}", "skipped", path.display());
    }
    let gone = report.removals().count();
    let kept = report.decisions.len() - gone;
    let _ = writeln!(
        err,
        "{title}: {}: {gone} {} {}, {kept} kept{}",
        report.policy,
        if gone == 1 { "archive" } else { "archives" },
        if report.dry_run {
            "would go (dry run: nothing removed)"
        } else {
            "removed"
        },
        if report.succeeded() {
            ""
        } else {
            " (some could not be removed)"
        }
    );
}

fn print_list(title: &str, listing: &Listing) {
    let mut err = std::io::stderr().lock();
    for a in &listing.archives {
        let m = &a.manifest;
        let line = format!(
            "{}  {}  {:>9}  {:<10}  {}{}",
            a.group(),
            file_name(&a.path),
            human_bytes(m.bytes),
            m.verification.state,
            m.verification.at.map(|t| t.to_string()).unwrap_or_default(),
            if m.encryption.is_some() {
                "  encrypted"
            } else {
                ""
            }
        );
        let _ = writeln!(err, "{}", line.trim_end());
    }
    for (path, why) in &listing.unreadable {
        let _ = writeln!(err, "unreadable {}  {why}", path.display());
    }
    let _ = writeln!(err, "{title}: {} archives", listing.archives.len());
}

fn archive_json(a: &Archive) -> Value {
    let m = &a.manifest;
    json!({
        "client": m.client,
        "instance": m.instance,
        "project": m.project,
        "database": m.database,
        "role": m.role,
        "archive": a.path,
        "manifest": a.manifest_path,
        "format": m.format,
        "encrypted": m.encryption.is_some(),
        "bytes": m.bytes,
        "sha256": m.sha256,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "server_version": m.server_version,
        "pg_dump_version": m.pg_dump.version,
        "toc": m.toc,
        "tables": m.project_tables().count(),
        "rows": m.rows(),
        "verification": m.verification.state.as_str(),
        "verified_at": m.verification.at,
        "problems": m.verification.problems,
        "uploaded": m.upload.as_ref().map(|u| u.uploaded),
    })
}

fn unreadable_json(listing: &Listing) -> Value {
    listing
        .unreadable
        .iter()
        .map(|(p, why)| json!({"manifest": p, "error": why}))
        .collect()
}

fn backup_json(d: &DatabaseBackup) -> Value {
    let t = &d.target;
    let mut v = json!({
        "client": t.client,
        "instance": t.instance,
        "project": t.project,
        "database": t.database,
        "role": t.role,
        "succeeded": d.succeeded(),
    });
    match &d.result {
        Ok(b) => {
            v["archive"] = archive_json(&b.archive);
            v["duration_ms"] = json!(millis(b.duration));
            v["dump_duration_ms"] = json!(millis(b.dump_duration));
            v["error"] = Value::Null;
        }
        Err(e) => {
            v["archive"] = Value::Null;
            v["error"] = error_json(e);
        }
    }
    v["upload"] = match &d.upload {
        None => Value::Null,
        Some(Ok(())) => json!({"uploaded": true, "error": null}),
        Some(Err(e)) => json!({"uploaded": false, "error": error_json(e)}),
    };
    v
}

fn verify_json(v: &ArchiveVerification) -> Value {
    let (problems, error) = match &v.result {
        Ok(()) => (Vec::new(), Value::Null),
        Err(Error::BackupVerification { problems, .. }) => (problems.clone(), Value::Null),
        Err(e) => (Vec::new(), error_json(e)),
    };
    json!({
        "label": v.label,
        "archive": v.archive.as_ref().map(archive_json),
        "verified": v.result.is_ok(),
        "succeeded": v.succeeded(),
        "recorded": v.recorded,
        "problems": problems,
        "error": error,
        "tables": v.tables.iter().map(|t| json!({
            "schema": t.schema, "table": t.table, "expected": t.expected, "restored": t.restored,
            "extension": t.extension,
        })).collect::<Vec<_>>(),
        "scratch": v.cleanup.as_ref().map(|c| json!({
            "name": c.name,
            "database_dropped": c.database_error.is_none(),
            "role_dropped": c.role_error.is_none(),
            "errors": cleanup_errors(c),
        })),
        "duration_ms": millis(v.duration),
    })
}

fn cleanup_errors(c: &backup::Cleanup) -> Vec<Value> {
    [&c.database_error, &c.role_error]
        .into_iter()
        .filter_map(|e| e.as_ref().map(error_json))
        .collect()
}

fn prune_json(report: &PruneReport) -> Value {
    json!({
        "command": "backup prune",
        "root": report.root,
        "policy": report.policy.to_string(),
        "dry_run": report.dry_run,
        "succeeded": report.succeeded(),
        "archives": report.decisions.iter().map(|d| {
            let mut v = archive_json(&d.archive);
            v["keep"] = json!(d.keep());
            v["reasons"] = json!(d.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>());
            v["removed"] = json!(d.removed);
            v["error"] = d.error.as_ref().map(error_json).unwrap_or(Value::Null);
            v
        }).collect::<Vec<_>>(),
        "unreadable": report.unreadable.iter().map(|(p, why)| json!({"manifest": p, "error": why})).collect::<Vec<_>>(),
        "errors": [],
    })
}
