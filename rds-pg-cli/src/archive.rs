//! `rds-pg dump` and `rds-pg restore`: the core's dump and restore, with progress on a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rds_pg_core::dump::{
    self, plan_restore, restore_with, DumpOptions, Progress, RestoreOptions, SkippedEntry,
};
use rds_pg_core::{ConnectOptions, Error, Provisioner, Result, RoleName};
use serde_json::{json, Value};

use crate::cli::{DumpArgs, DumpFormat, RestoreArgs};
use crate::output::{Line, Outcome, Printer};

/// A one-line progress display on standard error, shown only when it is a terminal.
pub(crate) struct ProgressLine {
    shown: bool,
    enabled: bool,
}

impl ProgressLine {
    pub(crate) fn new(json: bool) -> Self {
        ProgressLine {
            shown: false,
            enabled: !json && std::io::stderr().is_terminal(),
        }
    }

    pub(crate) fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let text: String = text.chars().take(100).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        self.shown = true;
    }

    pub(crate) fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

/// `12.3 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Runs `rds-pg dump`: the connected user dumps `args.database`.
pub fn dump(options: ConnectOptions, args: DumpArgs) -> (Outcome, Result<Outcome>) {
    let title = format!("dump {:?}", args.database.as_str());
    let base = Outcome::new(title.clone());
    let mut dump_options = DumpOptions::new(options, &args.file).database(args.database.as_str());
    dump_options = dump_options.format(match args.format {
        DumpFormat::Custom => dump::DumpFormat::Custom,
        DumpFormat::Directory => dump::DumpFormat::Directory,
    });
    if let Some(jobs) = args.jobs {
        dump_options = dump_options.jobs(jobs);
    }
    if let Some(dir) = &args.tools_dir {
        dump_options = dump_options.tools_dir(dir);
    }
    let mut line = ProgressLine::new(args.json);
    let started = Instant::now();
    // Tables started (from the core's progress) and bytes written so far (polled: one large
    // table is a long time between table starts).
    let tables = std::sync::Mutex::new((0usize, 0usize));
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            dump::dump_with(&dump_options, &mut |p: &Progress| {
                *tables.lock().unwrap() = (p.done, p.total);
            })
        });
        while !worker.is_finished() {
            let (done, total) = *tables.lock().unwrap();
            line.show(&format!(
                "{title}: table {done}/{total}, {} written, {}s",
                human_bytes(dump::archive_size(&args.file).unwrap_or(0)),
                started.elapsed().as_secs()
            ));
            std::thread::sleep(Duration::from_millis(200));
        }
        worker.join().expect("the dump thread does not panic")
    });
    line.clear();
    let result = result.map(|report| {
        let mut outcome = Outcome::new(title);
        outcome.changed = true;
        outcome.lines.push(Line::new(
            "written",
            args.database.as_str().to_owned(),
            format!(
                "{} {} archive {} by {} (server {})",
                human_bytes(report.bytes),
                report.format,
                report.path.display(),
                report.tool,
                report.server_version
            ),
        ));
        outcome.summary = Some(format!("done in {:.1?}", report.duration));
        let extra = &mut outcome.extra;
        extra.insert("file".into(), json!(report.path));
        extra.insert("format".into(), json!(report.format.as_str()));
        extra.insert("bytes".into(), json!(report.bytes));
        extra.insert("duration_ms".into(), json!(millis(report.duration)));
        extra.insert("tool".into(), json!(report.tool.path));
        extra.insert("tool_version".into(), json!(report.tool.version));
        extra.insert("server_version".into(), json!(report.server_version));
        outcome
    });
    (base, result)
}

fn skipped_json(skipped: &[SkippedEntry]) -> Value {
    Value::Array(
        skipped
            .iter()
            .map(|s| json!({"entry": s.entry.to_string(), "reason": s.reason.to_string()}))
            .collect(),
    )
}

/// Master's connection for `--master-user`: the server and TLS settings of `options`, the
/// maintenance database, and a password from the password file only (a `PGPASSWORD` given for
/// the restoring user is not master's).
fn master_options(options: &ConnectOptions, master: &RoleName) -> ConnectOptions {
    let mut master_options = ConnectOptions::new()
        .host(options.get_host())
        .port(options.get_port())
        .user(master.as_str())
        .dbname(options.get_dbname())
        .sslmode(options.get_sslmode())
        .application_name(options.get_application_name());
    if let Some(ca) = options.get_sslrootcert() {
        master_options = master_options.sslrootcert(ca);
    }
    if let Some(passfile) = options.passfile_path() {
        master_options = master_options.passfile(passfile);
    }
    if let Some(timeout) = options.get_connect_timeout() {
        master_options = master_options.connect_timeout(timeout);
    }
    master_options
}

/// Runs `rds-pg restore`: the connected user (the target's owner) restores into
/// `args.database`; with `--extension`, `--master-user` creates the named extensions first.
pub fn restore(options: ConnectOptions, args: RestoreArgs) -> (Outcome, Result<Outcome>) {
    let title = format!("restore {:?}", args.database.as_str());
    let mut base = Outcome::new(title.clone());
    base.dry_run = args.change.dry_run;
    let database = args.database.as_str().to_owned();
    let master = args
        .master_user
        .as_ref()
        .filter(|_| !args.extensions.is_empty())
        .map(|user| master_options(&options, user));
    let mut restore_options = RestoreOptions::new(options, &args.file)
        .database(database.as_str())
        .create_extensions(args.extensions.iter().cloned());
    if let Some(jobs) = args.jobs {
        restore_options = restore_options.jobs(jobs);
    }
    if let Some(dir) = &args.tools_dir {
        restore_options = restore_options.tools_dir(dir);
    }
    let mut outcome = Outcome::new(title.clone());
    outcome.dry_run = args.change.dry_run;
    let left_out = |outcome: &mut Outcome, skipped: &[SkippedEntry]| {
        for s in skipped {
            outcome.lines.push(Line::new(
                "left out",
                database.clone(),
                format!("{}: {}", s.entry, s.reason),
            ));
        }
    };
    let identities = match args
        .identity
        .as_ref()
        .map(rds_pg_core::backup::Identities::from_file)
    {
        Some(Err(e)) => return (base, Err(e)),
        Some(Ok(ids)) => Some(ids),
        None => None,
    };
    let identities = identities.as_ref();
    if args.change.dry_run {
        let result = decrypting(&restore_options, identities, plan_restore).map(|plan| {
            left_out(&mut outcome, &plan.skipped);
            outcome.lines.push(Line::new(
                "would run",
                database.clone(),
                format!(
                    "{} of {} entries, {}, with {}{}",
                    plan.kept.len(),
                    plan.toc.entries.len(),
                    if restore_options.single_transaction()
                        || plan.route != rds_pg_core::dump::RestoreRoute::Direct
                    {
                        "in one transaction"
                    } else {
                        "in parallel"
                    },
                    plan.tool,
                    route_note(&plan.route)
                ),
            ));
            for extension in &plan.create_extensions {
                outcome.lines.push(Line::new(
                    "would run",
                    database.clone(),
                    format!("master creates extension {extension} first"),
                ));
            }
            if !plan.missing_extensions.is_empty() {
                outcome.notes.push(format!(
                    "the target lacks extension(s) {}, which the restore would refuse: name them \
                     with --extension (and --master-user), or have master create them first \
                     (rds-pg ext enable {} {})",
                    plan.missing_extensions.join(", "),
                    database,
                    plan.missing_extensions.join(" ")
                ));
            }
            outcome.summary = Some(format!(
                "dry run: {} entries planned, nothing changed",
                plan.kept.len()
            ));
            let extra = &mut outcome.extra;
            extra.insert("entries_total".into(), json!(plan.toc.entries.len()));
            extra.insert("entries_planned".into(), json!(plan.kept.len()));
            extra.insert("skipped".into(), skipped_json(&plan.skipped));
            extra.insert("missing_extensions".into(), json!(plan.missing_extensions));
            extra.insert("create_extensions".into(), json!(plan.create_extensions));
            extra.insert("tool".into(), json!(plan.tool.path));
            outcome
        });
        return (base, result);
    }
    let mut line = ProgressLine::new(args.change.json);
    let mut show = |p: &Progress| {
        line.show(&format!(
            "{title}: {}/{} entries: {}",
            p.done, p.total, p.message
        ))
    };
    let result = decrypting(&restore_options, identities, |o| match &master {
        Some(master) => {
            Provisioner::connect(master).and_then(|mut m| restore_with(o, Some(&mut m), &mut show))
        }
        None => restore_with(o, None, &mut show),
    })
    .map(|mut report| {
        // Read through the decrypting pipe: name the archive itself.
        report.archive = restore_options.archive.clone();
        report.bytes = dump::archive_size(&report.archive).unwrap_or(report.bytes);
        report
    });
    line.clear();
    if let Err(Error::MissingExtensions { extensions, .. }) = &result {
        let named: Vec<String> = extensions
            .iter()
            .map(|e| format!("--extension {e}"))
            .collect();
        eprintln!(
            "{title}: to have master create them first, add {} --master-user <master's user>",
            named.join(" ")
        );
    }
    let result = result.map(|report| {
        for extension in &report.created_extensions {
            outcome.lines.push(Line::new(
                "changed",
                database.clone(),
                format!("extension {extension} created by master"),
            ));
        }
        left_out(&mut outcome, &report.skipped);
        outcome.changed = report.entries_restored > 0;
        outcome.lines.push(Line::new(
            "restored",
            database.clone(),
            format!(
                "{} of {} entries from {} ({}), {}, by {}{}",
                report.entries_restored,
                report.entries_total,
                report.archive.display(),
                human_bytes(report.bytes),
                if report.single_transaction {
                    "in one transaction".to_owned()
                } else {
                    format!("{} jobs", report.jobs)
                },
                report.tool,
                route_note(&report.route)
            ),
        ));
        for w in &report.warnings {
            outcome
                .lines
                .push(Line::new("warning", database.clone(), w.clone()));
        }
        outcome.summary = Some(format!(
            "changed ({} entries restored, {} left out, {:.1?})",
            report.entries_restored,
            report.skipped.len(),
            report.duration
        ));
        let extra = &mut outcome.extra;
        extra.insert("entries_total".into(), json!(report.entries_total));
        extra.insert("entries_restored".into(), json!(report.entries_restored));
        extra.insert("skipped".into(), skipped_json(&report.skipped));
        extra.insert(
            "single_transaction".into(),
            json!(report.single_transaction),
        );
        extra.insert("jobs".into(), json!(report.jobs));
        extra.insert(
            "created_extensions".into(),
            json!(report.created_extensions),
        );
        extra.insert("warnings".into(), json!(report.warnings));
        extra.insert("duration_ms".into(), json!(millis(report.duration)));
        extra.insert("tool".into(), json!(report.tool.path));
        extra.insert("tool_version".into(), json!(report.tool.version));
        outcome
    });
    (base, result)
}

/// Runs `f` on `options`, or, with identities, on the same options reading the archive through a
/// pipe that decrypts it as pg_restore reads (never to disk).
fn decrypting<T>(
    options: &RestoreOptions,
    identities: Option<&rds_pg_core::backup::Identities>,
    f: impl FnOnce(&RestoreOptions) -> Result<T>,
) -> Result<T> {
    match identities {
        Some(ids) => rds_pg_core::backup::with_decrypted(&options.archive, ids, |pipe| {
            let mut through = options.clone();
            through.archive = pipe.to_owned();
            f(&through)
        }),
        None => f(options),
    }
}

/// Prints the outcome of a dump or restore; returns the exit status.
pub fn print(printer: Printer, database: &str, (base, result): (Outcome, Result<Outcome>)) -> u8 {
    match result {
        Ok(outcome) => {
            printer.success(&outcome, database);
            0
        }
        Err(e) => printer.failure(&base, &e, database),
    }
}

/// How pg_restore's SQL reached the server, when not directly: `, its script run by psql …`.
fn route_note(route: &rds_pg_core::dump::RestoreRoute) -> String {
    match route {
        rds_pg_core::dump::RestoreRoute::ScriptThroughPsql { psql } => format!(
            ", its script run by {psql} (pg_restore 17+ cannot connect to a server before 17)"
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
