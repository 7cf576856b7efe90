//! Restoring an archive as the project user: read its table of contents, leave out what the
//! user cannot and need not restore, run pg_restore on the rest in one transaction.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::Client;

use super::toc::{EntryKind, Toc, TocEntry};
use super::tools::{self, ClientProgram, ClientTool, ToolWorkDir};
use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::ident::DatabaseName;
use crate::provision::Provisioner;
use crate::spec::Extension;

/// What to restore, where to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// How to connect: the restoring user (the target database's owner) and, as dbname, the
    /// existing target database.
    pub connection: ConnectOptions,
    /// The archive: a custom-format file or a directory-format directory.
    pub archive: PathBuf,
    /// `None` or `Some(1)`: one transaction (`--single-transaction`: any error rolls everything
    /// back). `Some(n)` above one: `n` parallel jobs, which pg_restore cannot run as one
    /// transaction; the first error still stops it (`--exit-on-error`), but what was restored
    /// before stays.
    pub jobs: Option<u32>,
    /// Where `pg_restore` is; `None` searches `PATH` then `/usr/lib/postgresql/*/bin`. A
    /// configured directory is the only place searched.
    pub tools_dir: Option<PathBuf>,
}

impl RestoreOptions {
    /// Restores `archive` into the database `connection` names, in one transaction, tools
    /// searched for.
    pub fn new(connection: ConnectOptions, archive: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            connection,
            archive: archive.into(),
            jobs: None,
            tools_dir: None,
        }
    }

    /// Restores into `database` instead of the connection's database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.connection = self.connection.for_database(database);
        self
    }

    /// Sets the number of parallel jobs (above one: not one transaction).
    pub fn jobs(mut self, jobs: u32) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Looks for `pg_restore` in `dir` only.
    pub fn tools_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tools_dir = Some(dir.into());
        self
    }

    /// Whether the restore runs as one transaction.
    pub fn single_transaction(&self) -> bool {
        self.jobs.unwrap_or(1) <= 1
    }

    /// Checks the options before anything runs.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for zero jobs; [`Error::NotFound`] for a missing archive.
    pub fn validate(&self) -> Result<()> {
        if self.jobs == Some(0) {
            return Err(Error::InvalidInput("jobs must be at least 1".into()));
        }
        if !self.archive.exists() {
            return Err(Error::NotFound {
                message: format!("archive {} does not exist", self.archive.display()),
                source: None,
            });
        }
        Ok(())
    }
}

/// Why an archive entry is left out of a restore.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// The extension already exists in the target (master created it, as only master can on
    /// RDS); creating it again is at best a no-op.
    ExtensionExists {
        /// The extension.
        extension: String,
    },
    /// A comment on an extension the target already has: it came with the extension, and only
    /// the extension's owner may change it (`must be owner of extension`).
    ExtensionComment {
        /// The extension.
        extension: String,
    },
    /// Rows of an extension's configuration table that the restoring user may not write (owned
    /// by another role, like PostGIS's `spatial_ref_sys` on RDS): the extension fills the table
    /// itself; rows added to it by hand in the source are not restored.
    ExtensionConfigData {
        /// `schema.table`.
        table: String,
        /// The table's owner in the target.
        owner: String,
    },
    /// Privileges (`ACL`, `DEFAULT ACL`) are not copied (`--no-acl`): the target's grants are
    /// made by rds-pg for the target's roles.
    Privileges,
    /// A comment on a schema that exists in the target and belongs to a role the restoring user
    /// cannot act as (`must be owner of schema`).
    SchemaNotOwned {
        /// The schema.
        schema: String,
        /// Its owner in the target.
        owner: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::ExtensionExists { extension } => {
                write!(f, "extension {extension} already exists in the target")
            }
            SkipReason::ExtensionComment { extension } => write!(
                f,
                "the comment of extension {extension} comes with the extension (only its owner may set it)"
            ),
            SkipReason::ExtensionConfigData { table, owner } => write!(
                f,
                "{table} is an extension's configuration table owned by {owner}, which the \
                 restoring user may not write; the extension provides its rows (rows added by \
                 hand in the source are not restored)"
            ),
            SkipReason::Privileges => f.write_str("privileges are not copied (--no-acl)"),
            SkipReason::SchemaNotOwned { schema, owner } => write!(
                f,
                "schema {schema} belongs to {owner}, which the restoring user cannot act as"
            ),
        }
    }
}

/// An archive entry left out of a restore, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkippedEntry {
    /// The entry.
    pub entry: TocEntry,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// How far a restore has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Entries restored so far.
    pub done: usize,
    /// Entries to restore.
    pub total: usize,
    /// pg_restore's line about the entry it is on (`creating TABLE "public.places"`).
    pub message: String,
}

/// What a restore would do: the archive's entries, those left out and why, and the extensions
/// the target lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    /// The target database.
    pub database: String,
    /// The target server's version.
    pub server_version: String,
    /// The pg_restore that would run.
    pub tool: ClientTool,
    /// The archive's table of contents.
    pub toc: Toc,
    /// The entries that would be restored, in the archive's order.
    pub kept: Vec<TocEntry>,
    /// The entries left out.
    pub skipped: Vec<SkippedEntry>,
    /// Extensions the archive uses that the target lacks (master must create them first).
    pub missing_extensions: Vec<String>,
}

impl RestorePlan {
    /// The `pg_restore --use-list` file: the archive's entries in order, the left-out ones
    /// commented out with the reason.
    pub fn list_file(&self) -> String {
        let skipped: HashMap<u32, &SkippedEntry> =
            self.skipped.iter().map(|s| (s.entry.dump_id, s)).collect();
        let mut out = String::from("; rds-pg: filtered table of contents\n");
        for entry in &self.toc.entries {
            match skipped.get(&entry.dump_id) {
                Some(s) => out.push_str(&format!(
                    "; left out: {}\n;{}\n",
                    s.reason.to_string().replace('\n', " "),
                    entry
                )),
                None => out.push_str(&format!("{entry}\n")),
            }
        }
        out
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The target database.
    pub database: String,
    /// The archive restored.
    pub archive: PathBuf,
    /// Entries in the archive.
    pub entries_total: usize,
    /// Entries restored.
    pub entries_restored: usize,
    /// Entries left out, and why.
    pub skipped: Vec<SkippedEntry>,
    /// Extensions master created in the target first (only when a master was passed).
    pub created_extensions: Vec<String>,
    /// Whether it ran as one transaction.
    pub single_transaction: bool,
    /// Parallel jobs (1 for one transaction).
    pub jobs: u32,
    /// The archive's size in bytes.
    pub bytes: u64,
    /// How long pg_restore ran.
    pub duration: Duration,
    /// The pg_restore that ran.
    pub tool: ClientTool,
    /// Warnings pg_restore printed (its progress lines left out); empty for a clean restore.
    pub warnings: Vec<String>,
}

/// `pg_restore --list <archive>`: the table of contents, without connecting anywhere.
pub fn list_command(tool: &ClientTool, archive: &Path) -> Command {
    let mut cmd = Command::new(&tool.path);
    cmd.env("LC_ALL", "C")
        .arg("--list")
        .arg(positional(archive));
    cmd
}

/// Reads and parses the table of contents of `archive` with `tool` (`pg_restore --list`).
///
/// # Errors
/// [`Error::Tool`] with pg_restore's standard error for an unreadable archive (truncated, not
/// an archive, written by a newer pg_dump).
pub fn read_toc(tool: &ClientTool, archive: &Path) -> Result<Toc> {
    let out = list_command(tool, archive)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {}", tool.path.display()), e))?;
    if !out.status.success() {
        return Err(tools::tool_failed(
            tool,
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Toc::parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| Error::Tool {
        tool: format!("{} --list ({})", tool.program, tool.path.display()),
        status: out.status.to_string(),
        stderr: e.to_string(),
    })
}

/// The `pg_restore` command for `options`, restoring the entries of `list` (see
/// [`RestorePlan::list_file`]) and reading the password from `passfile`.
///
/// Ownership and privileges are never restored (`--no-owner --no-acl`); progress is printed
/// (`--verbose`). One transaction (`--single-transaction`, which stops at the first error) or
/// `--jobs=N --exit-on-error`.
pub fn restore_command(
    options: &RestoreOptions,
    tool: &ClientTool,
    list: &Path,
    passfile: &Path,
) -> Command {
    let mut cmd = tools::connection_command(tool, &options.connection, passfile);
    cmd.arg("--no-owner").arg("--no-acl").arg("--verbose");
    match options.jobs.filter(|j| *j > 1) {
        None => {
            cmd.arg("--single-transaction");
        }
        Some(jobs) => {
            cmd.arg(format!("--jobs={jobs}")).arg("--exit-on-error");
        }
    }
    cmd.arg(tools::path_arg("use-list", list))
        .arg(positional(&options.archive));
    cmd
}

/// A path as a positional argument: one starting with `-` is written `./-…` so it is not read
/// as an option.
fn positional(path: &Path) -> PathBuf {
    if path.as_os_str().to_string_lossy().starts_with('-') {
        Path::new(".").join(path)
    } else {
        path.to_owned()
    }
}

/// What the restoring user sees in the target database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TargetFacts {
    /// Extensions present.
    pub extensions: BTreeSet<String>,
    /// Extension configuration tables: (schema, table, owner, writable by the user).
    pub config_tables: Vec<(String, String, String, bool)>,
    /// Schemas: (name, owner, the user can act as the owner).
    pub schemas: Vec<(String, String, bool)>,
}

fn target_facts(client: &mut Client) -> Result<TargetFacts> {
    let mut facts = TargetFacts::default();
    for row in client.query("SELECT extname::text FROM pg_catalog.pg_extension", &[])? {
        facts.extensions.insert(row.get(0));
    }
    let rows = client.query(
        "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text,
                pg_catalog.has_table_privilege(c.oid, 'INSERT')
           FROM pg_catalog.pg_extension e
          CROSS JOIN LATERAL unnest(e.extconfig) AS cfg(reloid)
           JOIN pg_catalog.pg_class c ON c.oid = cfg.reloid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
        &[],
    )?;
    for row in rows {
        facts
            .config_tables
            .push((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    let rows = client.query(
        "SELECT nspname::text, pg_catalog.pg_get_userbyid(nspowner)::text,
                pg_catalog.pg_has_role(nspowner, 'USAGE')
           FROM pg_catalog.pg_namespace",
        &[],
    )?;
    for row in rows {
        facts.schemas.push((row.get(0), row.get(1), row.get(2)));
    }
    Ok(facts)
}

/// Sorts the archive's entries into kept and skipped for a target, and lists the extensions the
/// target lacks. Pure: the rules of `rds-semantics.md` §4.
pub(crate) fn filter_entries(
    toc: &Toc,
    target: &TargetFacts,
) -> (Vec<TocEntry>, Vec<SkippedEntry>, Vec<String>) {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    let mut missing = Vec::new();
    for entry in &toc.entries {
        let reason = match &entry.kind {
            EntryKind::Extension => {
                if target.extensions.contains(&entry.name) {
                    Some(SkipReason::ExtensionExists {
                        extension: entry.name.clone(),
                    })
                } else {
                    missing.push(entry.name.clone());
                    None
                }
            }
            EntryKind::Acl | EntryKind::DefaultAcl => Some(SkipReason::Privileges),
            EntryKind::Comment => match entry.target() {
                Some(("EXTENSION", ext)) if target.extensions.contains(ext) => {
                    Some(SkipReason::ExtensionComment {
                        extension: ext.to_owned(),
                    })
                }
                Some(("SCHEMA", schema)) => target
                    .schemas
                    .iter()
                    .find(|(name, _, usable)| name == schema && !usable)
                    .map(|(name, owner, _)| SkipReason::SchemaNotOwned {
                        schema: name.clone(),
                        owner: owner.clone(),
                    }),
                _ => None,
            },
            EntryKind::TableData => target
                .config_tables
                .iter()
                .find(|(schema, table, _, writable)| {
                    Some(schema.as_str()) == entry.schema.as_deref()
                        && *table == entry.name
                        && !writable
                })
                .map(
                    |(schema, table, owner, _)| SkipReason::ExtensionConfigData {
                        table: format!("{schema}.{table}"),
                        owner: owner.clone(),
                    },
                ),
            _ => None,
        };
        match reason {
            Some(reason) => skipped.push(SkippedEntry {
                entry: entry.clone(),
                reason,
            }),
            None => kept.push(entry.clone()),
        }
    }
    (kept, skipped, missing)
}

/// Connects to the target as the restoring user and checks that it may restore there.
fn connect_target(options: &RestoreOptions) -> Result<(Client, ServerVersion)> {
    let mut client = crate::connect::connect(&options.connection)?;
    let version = ServerVersion::query(&mut client)?;
    let row = client.query_one(
        "SELECT current_user::text, pg_catalog.pg_get_userbyid(d.datdba)::text,
                pg_catalog.pg_has_role(d.datdba, 'USAGE')
           FROM pg_catalog.pg_database d WHERE d.datname = current_database()",
        &[],
    )?;
    let (user, owner, usable): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    if !usable {
        return Err(Error::PermissionDenied {
            message: format!(
                "{user:?} does not own database {:?} (its owner is {owner:?})",
                options.connection.get_dbname()
            ),
            hint: Some(format!(
                "restore as {owner:?}, or create the target database owned by {user:?}"
            )),
            source: None,
        });
    }
    Ok((client, version))
}

/// Plans a restore without changing anything: reads the archive's table of contents and the
/// target, and says what would be left out and which extensions are missing.
///
/// # Errors
/// As [`restore`], except that missing extensions are listed in the plan, not an error.
pub fn plan_restore(options: &RestoreOptions) -> Result<RestorePlan> {
    options.validate()?;
    let (mut client, server) = connect_target(options)?;
    let tool = tools::find(
        ClientProgram::PgRestore,
        server,
        options.tools_dir.as_deref(),
    )?;
    let toc = read_toc(&tool, &options.archive)?;
    let facts = target_facts(&mut client)?;
    let (kept, skipped, missing_extensions) = filter_entries(&toc, &facts);
    Ok(RestorePlan {
        database: options.connection.get_dbname().to_owned(),
        server_version: server.to_string(),
        tool,
        toc,
        kept,
        skipped,
        missing_extensions,
    })
}

/// Restores an archive into an existing database owned by the connecting user, in one
/// transaction; see [`restore_with`].
///
/// # Errors
/// As [`restore_with`].
pub fn restore(options: &RestoreOptions) -> Result<RestoreReport> {
    restore_with(options, None, &mut |_| {})
}

/// Restores an archive into an existing database owned by the connecting user.
///
/// 1. Reads the archive's table of contents (`pg_restore --list`).
/// 2. Leaves out what a non-superuser cannot and need not restore (see [`SkipReason`]).
/// 3. Runs `pg_restore --use-list` on the rest with `--no-owner --no-acl`, in one transaction
///    unless `options.jobs` asks for several jobs.
///
/// Extensions the archive uses must exist in the target; with `master`, the missing ones are
/// created first ([`Provisioner::ensure_extensions`]). `progress` is called as pg_restore works
/// through the entries, and once more when it has finished.
///
/// # Errors
/// [`Error::MissingExtensions`] listing the extensions the target lacks (without `master`), or for a
/// missing archive; [`Error::PermissionDenied`] when the user does not own the target;
/// [`Error::ToolVersion`] when no pg_restore is new enough; [`Error::Tool`] with pg_restore's
/// standard error when the archive cannot be read or an entry fails — in one transaction the
/// target is then left exactly as it was.
pub fn restore_with(
    options: &RestoreOptions,
    master: Option<&mut Provisioner>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RestoreReport> {
    let mut plan = plan_restore(options)?;
    let mut created_extensions = Vec::new();
    if !plan.missing_extensions.is_empty() {
        let Some(master) = master else {
            return Err(missing_extensions_error(&plan));
        };
        let database = DatabaseName::new(plan.database.clone())?;
        let extensions = plan
            .missing_extensions
            .iter()
            .map(|name| Extension::from_name(name))
            .collect::<Result<Vec<_>>>()?;
        master.ensure_extensions(&database, &extensions)?;
        created_extensions = plan.missing_extensions.clone();
        plan = plan_restore(options)?;
        if !plan.missing_extensions.is_empty() {
            return Err(missing_extensions_error(&plan));
        }
    }

    let work = ToolWorkDir::create(&options.connection)?;
    let list = work.path().join("restore.list");
    let mut file = tools::private_file(&list)?;
    file.write_all(plan.list_file().as_bytes())
        .map_err(|e| Error::io(format!("writing {}", list.display()), e))?;
    drop(file);

    let mut cmd = restore_command(options, &plan.tool, &list, work.passfile());
    let started = Instant::now();
    let (status, stderr, warnings) = run_with_progress(
        &mut cmd,
        &plan.tool,
        plan.kept.len(),
        !options.single_transaction(),
        progress,
    )?;
    let duration = started.elapsed();
    drop(work);
    if !status.success() {
        return Err(tools::tool_failed(&plan.tool, status, stderr));
    }
    Ok(RestoreReport {
        database: plan.database,
        archive: options.archive.clone(),
        entries_total: plan.toc.entries.len(),
        entries_restored: plan.kept.len(),
        skipped: plan.skipped,
        created_extensions,
        single_transaction: options.single_transaction(),
        jobs: options.jobs.unwrap_or(1).max(1),
        bytes: super::size_of(&options.archive)?,
        duration,
        tool: plan.tool,
        warnings,
    })
}

fn missing_extensions_error(plan: &RestorePlan) -> Error {
    Error::MissingExtensions {
        database: plan.database.clone(),
        extensions: plan.missing_extensions.clone(),
    }
}

/// Runs pg_restore, reading its standard error line by line: progress lines advance `progress`,
/// the others are kept. Returns the status, what to report when it failed (the warning and error
/// lines and the step it was on; not the thousands of progress lines) and the warning lines.
fn run_with_progress(
    cmd: &mut Command,
    tool: &ClientTool,
    total: usize,
    parallel: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(std::process::ExitStatus, String, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut last_step = String::new();
    let mut done = 0;
    let status =
        tools::run_reading_stderr(cmd, tool, &mut |line| match classify(line, parallel) {
            Line::EntryDone(message) => {
                last_step = message.to_owned();
                done = (done + 1).min(total);
                progress(&Progress {
                    done,
                    total,
                    message: message.to_owned(),
                });
            }
            Line::Info => {}
            Line::Diagnostic => warnings.push(line.to_owned()),
        })?;
    if status.success() {
        progress(&Progress {
            done: total,
            total,
            message: "done".into(),
        });
    }
    let mut report = warnings.join("\n");
    if !last_step.is_empty() {
        report.push_str(&format!(
            "\n(last step: {last_step}; {done} of {total} entries)"
        ));
    }
    Ok((status, report, warnings))
}

/// What a line of `pg_restore --verbose` standard error is.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// An entry was restored (serial: the line announcing it; parallel: `finished item`).
    EntryDone(&'a str),
    /// Other progress chatter.
    Info,
    /// A warning, an error or its continuation lines.
    Diagnostic,
}

fn classify(line: &str, parallel: bool) -> Line<'_> {
    if line.is_empty() {
        return Line::Info;
    }
    if parallel {
        return classify_parallel(line);
    }
    let Some(message) = line.strip_prefix("pg_restore: ") else {
        // Continuation of an error ("Command was: …") or a server message.
        return Line::Diagnostic;
    };
    const LEVELS: &[&str] = &["error:", "warning:", "detail:", "hint:", "fatal:"];
    if LEVELS.iter().any(|l| message.starts_with(l)) {
        return Line::Diagnostic;
    }
    let serial = ["creating ", "processing data for table ", "executing "];
    if serial.iter().any(|p| message.starts_with(p)) {
        Line::EntryDone(message)
    } else {
        Line::Info
    }
}

/// With `--jobs`, the workers share the pipe and pg_restore writes a line in several `write()`s,
/// so lines interleave (`pg_restore:pg_restore: processing data…`, then ` launching item …`):
/// look for what matters anywhere in the line instead of at its start.
fn classify_parallel(line: &str) -> Line<'_> {
    const MARKS: &[&str] = &[
        "error:",
        "warning:",
        "detail:",
        "hint:",
        "fatal:",
        "ERROR:",
        "WARNING:",
        "Command was:",
    ];
    if MARKS.iter().any(|m| line.contains(m)) {
        return Line::Diagnostic;
    }
    let done = [
        "finished item ",
        "processing item ",
        "processing missed item ",
    ];
    match done.iter().filter_map(|p| line.find(p)).min() {
        Some(i) => Line::EntryDone(&line[i..]),
        None => Line::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = ";
;     dbname: src
;
4; 3079 17566 EXTENSION - citext 
4448; 0 0 COMMENT - EXTENSION citext 
2; 3079 16394 EXTENSION - postgis 
4450; 0 0 COMMENT - EXTENSION postgis 
5; 3079 1 EXTENSION - ltree 
6; 0 0 COMMENT - EXTENSION ltree 
3; 2615 2200 SCHEMA - public pg_database_owner
4335; 0 0 COMMENT - SCHEMA public pg_database_owner
223; 1259 18950 TABLE public places alice
4451; 0 0 COMMENT public TABLE places alice
4453; 0 0 ACL public TABLE spatial_ref_sys alice
4454; 0 0 ACL - SCHEMA public pg_database_owner
9; 0 0 DEFAULT ACL - DEFAULT PRIVILEGES FOR TABLES alice
4439; 0 18950 TABLE DATA public places alice
4283; 0 16707 TABLE DATA public spatial_ref_sys alice
";

    fn facts(spatial_writable: bool, public_usable: bool) -> TargetFacts {
        TargetFacts {
            extensions: ["plpgsql", "citext", "postgis"]
                .into_iter()
                .map(String::from)
                .collect(),
            config_tables: vec![(
                "public".into(),
                "spatial_ref_sys".into(),
                if spatial_writable {
                    "bob"
                } else {
                    "rds_superuser"
                }
                .into(),
                spatial_writable,
            )],
            schemas: vec![(
                "public".into(),
                if public_usable { "bob" } else { "master" }.into(),
                public_usable,
            )],
        }
    }

    fn ids(entries: &[TocEntry]) -> Vec<u32> {
        entries.iter().map(|e| e.dump_id).collect()
    }

    #[test]
    fn leaves_out_existing_extensions_their_comments_and_privileges() {
        let toc = Toc::parse(LISTING).unwrap();
        let (kept, skipped, missing) = filter_entries(&toc, &facts(true, true));
        assert_eq!(missing, ["ltree"]);
        assert_eq!(
            ids(&kept),
            [5, 6, 3, 4335, 223, 4451, 4439, 4283],
            "ltree (missing) stays, to be created by master or refused"
        );
        let reasons: Vec<(u32, &SkipReason)> = skipped
            .iter()
            .map(|s| (s.entry.dump_id, &s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    4,
                    &SkipReason::ExtensionExists {
                        extension: "citext".into()
                    }
                ),
                (
                    4448,
                    &SkipReason::ExtensionComment {
                        extension: "citext".into()
                    }
                ),
                (
                    2,
                    &SkipReason::ExtensionExists {
                        extension: "postgis".into()
                    }
                ),
                (
                    4450,
                    &SkipReason::ExtensionComment {
                        extension: "postgis".into()
                    }
                ),
                (4453, &SkipReason::Privileges),
                (4454, &SkipReason::Privileges),
                (9, &SkipReason::Privileges),
            ]
        );
    }

    #[test]
    fn extension_config_rows_the_user_cannot_write_are_left_out() {
        let toc = Toc::parse(LISTING).unwrap();
        let (kept, skipped, _) = filter_entries(&toc, &facts(false, true));
        assert!(!ids(&kept).contains(&4283));
        assert!(ids(&kept).contains(&4439), "ordinary table data stays");
        let s = skipped.iter().find(|s| s.entry.dump_id == 4283).unwrap();
        assert_eq!(
            s.reason,
            SkipReason::ExtensionConfigData {
                table: "public.spatial_ref_sys".into(),
                owner: "rds_superuser".into()
            }
        );
        assert!(s.reason.to_string().contains("rds_superuser"));
    }

    #[test]
    fn comment_on_a_schema_of_another_role_is_left_out() {
        let toc = Toc::parse(LISTING).unwrap();
        let (kept, skipped, _) = filter_entries(&toc, &facts(true, false));
        assert!(!ids(&kept).contains(&4335));
        assert!(
            ids(&kept).contains(&3),
            "the schema entry itself creates nothing"
        );
        assert!(skipped.iter().any(|s| s.entry.dump_id == 4335
            && s.reason
                == SkipReason::SchemaNotOwned {
                    schema: "public".into(),
                    owner: "master".into()
                }));
    }

    #[test]
    fn list_file_comments_out_what_is_left_out() {
        let toc = Toc::parse(LISTING).unwrap();
        let (kept, skipped, missing_extensions) = filter_entries(&toc, &facts(true, true));
        let plan = RestorePlan {
            database: "dst".into(),
            server_version: "15.18".into(),
            tool: ClientTool {
                program: ClientProgram::PgRestore,
                path: "/x/pg_restore".into(),
                version: "15.18".into(),
                major: 15,
            },
            toc: toc.clone(),
            kept,
            skipped,
            missing_extensions,
        };
        let text = plan.list_file();
        let active: Vec<&str> = text.lines().filter(|l| !l.starts_with(';')).collect();
        assert_eq!(active.len(), plan.kept.len());
        assert!(active.contains(&"223; 1259 18950 TABLE public places alice"));
        assert!(text.contains(";2; 3079 16394 EXTENSION - postgis \n"));
        // Every line pg_restore reads starts with a kept dump id.
        let reread = Toc::parse(&text).unwrap();
        assert_eq!(ids(&reread.entries), ids(&plan.kept));
    }

    #[test]
    fn restore_command_argv() {
        let conn = ConnectOptions::new()
            .host("h")
            .port(5433)
            .user("bob")
            .dbname("dst")
            .password(crate::Password::new("pw-secret"));
        let tool = ClientTool {
            program: ClientProgram::PgRestore,
            path: "/usr/lib/postgresql/15/bin/pg_restore".into(),
            version: "15.18".into(),
            major: 15,
        };
        let options = RestoreOptions::new(conn, "/b/src.dump");
        let cmd = restore_command(
            &options,
            &tool,
            Path::new("/w/restore.list"),
            Path::new("/w/pgpass"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--host=h",
                "--port=5433",
                "--username=bob",
                "--no-password",
                "--dbname=dst",
                "--no-owner",
                "--no-acl",
                "--verbose",
                "--single-transaction",
                "--use-list=/w/restore.list",
                "/b/src.dump"
            ]
        );
        assert!(!format!("{cmd:?}").contains("pw-secret"));
        let parallel = options.clone().jobs(3);
        assert!(!parallel.single_transaction());
        let args: Vec<String> = restore_command(&parallel, &tool, Path::new("/l"), Path::new("/p"))
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[8..10], ["--jobs=3", "--exit-on-error"]);
        let odd = RestoreOptions::new(ConnectOptions::new(), "-weird.dump");
        let args: Vec<String> = list_command(&tool, &odd.archive)
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--list", "./-weird.dump"]);
    }

    #[test]
    fn progress_lines_are_counted_per_mode() {
        let serial = [
            ("pg_restore: connecting to database for restore", Line::Info),
            (
                "pg_restore: creating TABLE \"public.places\"",
                Line::EntryDone("creating TABLE \"public.places\""),
            ),
            (
                "pg_restore: processing data for table \"public.places\"",
                Line::EntryDone("processing data for table \"public.places\""),
            ),
            (
                "pg_restore: executing SEQUENCE SET counter",
                Line::EntryDone("executing SEQUENCE SET counter"),
            ),
            (
                "pg_restore: error: could not read from input file: end of file",
                Line::Diagnostic,
            ),
            (
                "pg_restore: warning: errors ignored on restore: 1",
                Line::Diagnostic,
            ),
            (
                "Command was: COMMENT ON EXTENSION postgis IS '…';",
                Line::Diagnostic,
            ),
            ("", Line::Info),
        ];
        for (line, expected) in serial {
            assert_eq!(classify(line, false), expected, "{line}");
        }
        let parallel = [
            ("pg_restore: processing item 223 TABLE places", true),
            ("pg_restore: creating TABLE \"public.places\"", false),
            ("pg_restore: launching item 4439 TABLE DATA places", false),
            ("pg_restore: finished item 4439 TABLE DATA places", true),
            (
                "pg_restore: processing missed item 4289 CONSTRAINT places places_pkey",
                true,
            ),
        ];
        for (line, counted) in parallel {
            assert_eq!(
                matches!(classify(line, true), Line::EntryDone(_)),
                counted,
                "{line}"
            );
        }
        // Workers' output interleaved in the shared pipe (seen under load on 14): chatter, not a
        // warning; errors are still recognised inside a garbled line.
        for line in [
            "pg_restore:pg_restore: processing data for table \"public.big\"",
            " launching item 3464 SEQUENCE SET counter",
        ] {
            assert_eq!(classify(line, true), Line::Info, "{line}");
        }
        assert_eq!(
            classify(
                "pg_restore: finished item 1 TABLE DATA apg_restore: finished item 2 TABLE DATA b",
                true
            ),
            Line::EntryDone("finished item 1 TABLE DATA apg_restore: finished item 2 TABLE DATA b"),
        );
        for line in [
            "pg_restore:pg_restore: error: could not execute query: ERROR:  boom",
            " warning: errors ignored on restore: 1",
        ] {
            assert_eq!(classify(line, true), Line::Diagnostic, "{line}");
        }
    }
}
