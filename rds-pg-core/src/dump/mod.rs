//! Dump and restore as the project user: version-matched `pg_dump`/`pg_restore`, a filtered
//! table of contents so a restore can run in one transaction and fail loudly, and backup
//! verification in a scratch database.
//!
//! ```no_run
//! use rds_pg_core::dump::{dump, restore_with, DumpFormat, DumpOptions, RestoreOptions};
//! use rds_pg_core::{ConnectOptions, Extension, Provisioner};
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! let shop = ConnectOptions::from_env()?.user("shop").dbname("shop");
//! let dumped = dump(&DumpOptions::new(shop.clone(), "shop.dump"))?;
//! println!("{} bytes in {:?} with {}", dumped.bytes, dumped.duration, dumped.tool);
//!
//! // Into a database owned by the restoring user (never as master: the archive's content runs
//! // with the restoring role's privileges). Master creates only the extensions named here, when
//! // the target lacks them; anything the user cannot restore is left out, the rest is one
//! // transaction.
//! let mut master = Provisioner::connect(&ConnectOptions::from_env()?)?;
//! let options = RestoreOptions::new(shop.dbname("shop_copy"), "shop.dump")
//!     .create_extensions([Extension::Hstore]);
//! let report = restore_with(&options, Some(&mut master), &mut |p| {
//!     eprintln!("{}/{}", p.done, p.total)
//! })?;
//! for skipped in &report.skipped {
//!     println!("left out {}: {}", skipped.entry, skipped.reason);
//! }
//! # let _ = DumpFormat::Directory;
//! # Ok(())
//! # }
//! ```
//!
//! Passwords reach the tools only through a `0600` password file in a private temporary
//! directory (`PGPASSFILE`), deleted when the tool has finished: never on argv, never in
//! `PGPASSWORD`. The tools inherit no `PG*` variable of this process (nor `DATABASE_URL` or
//! `RDS_PG_*`): only those rds-pg sets for the connection. Archives are private: a dump file is
//! created `0600`, a directory archive `0700` with its files `0600`, whatever the umask.

mod archive;
mod restore;
mod script;
pub mod toc;
pub mod tools;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::ident::SchemaName;
use crate::tunnel::SshForward;

pub use archive::{major_of, ArchiveVersion};
pub use restore::{
    list_command, plan_restore, read_toc, restore, restore_command, restore_with, Progress,
    RestoreOptions, RestorePlan, RestoreReport, RestoreRoute, SkipReason, SkippedEntry,
    PRIVILEGED_ROLES,
};
pub use toc::{EntryKind, Toc, TocEntry, TocHeader};
pub use tools::{ClientProgram, ClientTool, ToolWorkDir};
pub(crate) use verify::count_rows;
pub use verify::{verify_backup, verify_backup_with, TableRowCount, VerifyOptions, VerifyReport};

/// The archive format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DumpFormat {
    /// One compressed file (`pg_dump --format=custom`); restorable in parallel from a file.
    #[default]
    Custom,
    /// A directory with one file per table (`--format=directory`); the only format pg_dump can
    /// write with several jobs.
    Directory,
}

impl DumpFormat {
    /// pg_dump's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpFormat::Custom => "custom",
            DumpFormat::Directory => "directory",
        }
    }
}

impl fmt::Display for DumpFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DumpFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "custom" | "c" => Ok(DumpFormat::Custom),
            "directory" | "d" => Ok(DumpFormat::Directory),
            other => Err(Error::InvalidInput(format!(
                "unknown dump format {other:?}: expected custom or directory"
            ))),
        }
    }
}

/// What to dump, where to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOptions {
    /// How to connect: the project user (with its password or a pgpass entry) and, as dbname,
    /// the database to dump.
    pub connection: ConnectOptions,
    /// The archive to write: a file (custom format; created, or an existing one replaced) or a
    /// directory that does not exist yet or is empty (directory format). The file gets mode
    /// `0600`, the directory `0700` and its files `0600`, whatever the process umask.
    pub output: PathBuf,
    /// The archive format (default custom).
    pub format: DumpFormat,
    /// Parallel jobs (directory format only); `None` is one.
    pub jobs: Option<u32>,
    /// Schemas left out of the dump.
    pub exclude_schemas: Vec<SchemaName>,
    /// Where `pg_dump` is; `None` searches the directories of `RDS_PG_TOOLS_DIRS`, `PATH`, then
    /// `/usr/lib/postgresql/*/bin` ([`tools::search_dirs`]). A configured directory is the only
    /// place searched.
    pub tools_dir: Option<PathBuf>,
    /// A snapshot exported by another session (`pg_export_snapshot()`, whose transaction stays
    /// open until pg_dump has started): pg_dump dumps exactly what that session sees
    /// (`--snapshot`). `None`: pg_dump takes its own.
    pub snapshot: Option<String>,
    /// Whether pg_dump waits for the archive to reach the disk (its default); `false` passes
    /// `--no-sync`, for an output that cannot be synced (a pipe whose reader syncs what it
    /// writes).
    pub sync: bool,
    /// An SSH forward to reach the server through: opened to the connection's server (its
    /// `hostaddr`, else its host, as the SSH server reaches it) when the dump starts, closed
    /// when it ends, on every path; pg_dump goes through it, TLS verified for the host name.
    /// `None`: the server is reached directly.
    pub ssh: Option<SshForward>,
}

impl DumpOptions {
    /// Dumps the database `connection` names to `output`, custom format, one job, nothing
    /// excluded, tools searched for.
    pub fn new(connection: ConnectOptions, output: impl Into<PathBuf>) -> Self {
        DumpOptions {
            connection,
            output: output.into(),
            format: DumpFormat::Custom,
            jobs: None,
            exclude_schemas: Vec::new(),
            tools_dir: None,
            snapshot: None,
            sync: true,
            ssh: None,
        }
    }

    /// Dumps `database` instead of the connection's database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.connection = self.connection.for_database(database);
        self
    }

    crate::builder::setters! {
        /// Sets the archive format.
        format = DumpFormat;
        /// Sets the number of parallel jobs (needs [`DumpFormat::Directory`] when above one).
        jobs = some u32;
        /// Looks for `pg_dump` in `dir` only.
        tools_dir = some_into PathBuf;
        /// Dumps the snapshot another session exported (`pg_export_snapshot()`).
        snapshot = some_into String;
        /// Sets whether pg_dump syncs the archive to disk (`false`: `--no-sync`).
        sync = bool;
        /// Dumps through an SSH forward, open for the dump only.
        ssh = some SshForward;
    }

    /// Leaves schema `name` out of the dump.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name PostgreSQL would not accept.
    pub fn exclude_schema(mut self, name: impl Into<String>) -> Result<Self> {
        self.exclude_schemas.push(SchemaName::new(name)?);
        Ok(self)
    }

    /// Checks the options before anything runs.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for zero jobs, several jobs with the custom format, or an empty
    /// output path.
    pub fn validate(&self) -> Result<()> {
        if self.output.as_os_str().is_empty() {
            return Err(Error::InvalidInput("the dump needs an output path".into()));
        }
        match self.jobs {
            Some(0) => Err(Error::InvalidInput("jobs must be at least 1".into())),
            Some(n) if n > 1 && self.format != DumpFormat::Directory => {
                Err(Error::InvalidInput(format!(
                    "pg_dump runs {n} jobs only with the directory format (got {})",
                    self.format
                )))
            }
            _ => Ok(()),
        }
    }
}

/// What a dump produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReport {
    /// The archive written.
    pub path: PathBuf,
    /// Its format.
    pub format: DumpFormat,
    /// Its size in bytes (all files, for the directory format).
    pub bytes: u64,
    /// How long pg_dump ran.
    pub duration: Duration,
    /// The pg_dump that ran.
    pub tool: ClientTool,
    /// The server's version.
    pub server_version: String,
}

/// The `pg_dump` command for `options` with `tool`, reading the password from `passfile`
/// (see [`tools::connection_command`] for the connection arguments and environment).
pub fn dump_command(options: &DumpOptions, tool: &ClientTool, passfile: &Path) -> Command {
    let mut cmd = tools::connection_command(tool, &options.connection, passfile);
    cmd.arg(format!("--format={}", options.format))
        .arg(tools::path_arg("file", &options.output));
    if let Some(jobs) = options.jobs.filter(|j| *j > 1) {
        cmd.arg(format!("--jobs={jobs}"));
    }
    if !options.sync {
        cmd.arg("--no-sync");
    }
    if let Some(snapshot) = &options.snapshot {
        cmd.arg(format!("--snapshot={snapshot}"));
    }
    for schema in &options.exclude_schemas {
        // A double-quoted pattern matches the name exactly (no wildcards, case kept).
        cmd.arg(format!("--exclude-schema={}", schema.quoted()));
    }
    cmd
}

/// Dumps a database as the user in `options.connection`.
///
/// Reads the server version over a connection, picks the `pg_dump` whose major equals the
/// server's, else the nearest newer one ([`tools::find`]; the report names it), writes the password to a private temporary `PGPASSFILE`, creates the
/// archive's file (`0600`) or directory (`0700`) and runs pg_dump, then sets the files of a
/// directory archive to `0600`. When pg_dump fails, a file or directory the dump created is
/// removed.
///
/// # Errors
/// [`Error::InvalidInput`] for bad options; connection errors; [`Error::ToolVersion`] when no
/// pg_dump is new enough; [`Error::Tool`] with pg_dump's standard error when it fails.
pub fn dump(options: &DumpOptions) -> Result<DumpReport> {
    dump_with(options, &mut |_| {})
}

/// As [`dump`], reporting progress to `progress`: tables whose rows are dumped so far, out of
/// the tables the database has outside the excluded schemas (counted in the same connection that
/// reads the server version; extension configuration tables included), and the archive's size
/// so far ([`Progress::bytes`], as [`archive_size`] reads it when pg_dump starts on a table).
/// `done` reaches `total` when pg_dump succeeds; the last report has the archive's final size.
/// Between two reports (one large table) [`archive_size`] can be polled from another thread.
///
/// # Errors
/// As [`dump`].
pub fn dump_with(options: &DumpOptions, progress: &mut dyn FnMut(&Progress)) -> Result<DumpReport> {
    options.validate()?;
    if let Some(forward) = &options.ssh {
        let tunnel = forward.open(&options.connection)?;
        let through = DumpOptions {
            connection: tunnel.apply(options.connection.clone()),
            ssh: None,
            ..options.clone()
        };
        return dump_with(&through, progress);
    }
    let (server, total) = server_version_and_tables(options)?;
    let tool = tools::find(ClientProgram::PgDump, server, options.tools_dir.as_deref())?;
    dump_prepared(options, server, total, tool, progress)
}

/// [`dump_with`] for a caller that already knows the server's version, the number of tables
/// whose data pg_dump dumps and the pg_dump to run (a backup, whose snapshot session has read
/// them): no connection of its own before pg_dump's.
pub(crate) fn dump_prepared(
    options: &DumpOptions,
    server: ServerVersion,
    total: usize,
    tool: ClientTool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DumpReport> {
    options.validate()?;
    let work = ToolWorkDir::create(&options.connection)?;
    let output = PrivateOutput::prepare(&options.output, options.format)?;
    let mut cmd = dump_command(options, &tool, work.passfile());
    cmd.arg("--verbose");
    let started = Instant::now();
    let mut diagnostics = Vec::new();
    let mut done = 0;
    let status = tools::run_reading_stderr(&mut cmd, &tool, &mut |line| match dump_line(line) {
        DumpLine::Table(message) => {
            done += 1;
            progress(&Progress {
                done,
                total: total.max(done),
                message: message.to_owned(),
                bytes: Some(archive_size(&options.output).unwrap_or(0)),
            });
        }
        DumpLine::Info => {}
        DumpLine::Diagnostic => diagnostics.push(line.to_owned()),
    })?;
    let duration = started.elapsed();
    drop(work);
    if !status.success() {
        output.discard();
        return Err(tools::tool_failed(&tool, status, diagnostics.join("\n")));
    }
    output.finish()?;
    let bytes = archive_size(&options.output)?;
    progress(&Progress {
        done: total.max(done),
        total: total.max(done),
        message: "done".into(),
        bytes: Some(bytes),
    });
    Ok(DumpReport {
        path: options.output.clone(),
        format: options.format,
        bytes,
        duration,
        tool,
        server_version: server.to_string(),
    })
}

/// The archive's place, made private before pg_dump writes into it: a custom-format file is
/// created (or an existing one re-moded) `0600`, a directory-format directory created (or an
/// existing empty one re-moded) `0700`, whatever the process umask. pg_dump creates the files of a
/// directory archive with the umask's mode; [`PrivateOutput::finish`] sets them to `0600`
/// (nobody else could open them meanwhile: the directory is `0700`).
#[derive(Debug)]
struct PrivateOutput {
    path: PathBuf,
    /// Whether rds-pg created the file or directory (removed again when pg_dump fails).
    created: bool,
    directory: bool,
}

impl PrivateOutput {
    fn prepare(path: &Path, format: DumpFormat) -> Result<PrivateOutput> {
        let context = || format!("preparing the archive {}", path.display());
        let existed = std::fs::symlink_metadata(path).is_ok();
        let directory = format == DumpFormat::Directory;
        if directory {
            if !existed {
                let mut builder = std::fs::DirBuilder::new();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::DirBuilderExt;
                    builder.mode(0o700);
                }
                builder.create(path).map_err(|e| Error::io(context(), e))?;
                set_mode(path, 0o700)?;
            } else if path.is_dir() {
                let empty = std::fs::read_dir(path)
                    .map_err(|e| Error::io(context(), e))?
                    .next()
                    .is_none();
                // A directory with files in it is pg_dump's to refuse; an empty one becomes the
                // archive.
                if empty {
                    set_mode(path, 0o700)?;
                }
            }
        } else {
            let mut open = std::fs::OpenOptions::new();
            open.write(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                open.mode(0o600);
            }
            // When it cannot be opened (a directory in the way, a missing parent, no
            // permission), pg_dump cannot open it either, and says so in its own words.
            if let Ok(file) = open.open(path) {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    // The umask may have taken bits away, an existing file may have had more.
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| Error::io(context(), e))?;
                }
                #[cfg(not(unix))]
                drop(file);
            }
        }
        Ok(PrivateOutput {
            path: path.to_owned(),
            created: !existed && std::fs::symlink_metadata(path).is_ok(),
            directory,
        })
    }

    /// After a successful dump: every file of a directory archive `0600`, the directory `0700`.
    fn finish(self) -> Result<()> {
        if self.directory {
            make_private(&self.path)?;
        }
        Ok(())
    }

    /// After a failed dump: removes what rds-pg created (a partial archive is not a backup);
    /// anything that was there before is left, made private.
    fn discard(self) {
        if self.created {
            let _ = if self.directory {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
        } else if self.directory {
            let _ = make_private(&self.path);
        }
    }
}

/// Sets `path`'s permission bits to `mode` (Unix; elsewhere nothing).
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("making {} private", path.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// A directory archive made private: the directory and its subdirectories `0700`, its files
/// `0600` (symbolic links are left alone; pg_dump writes none).
fn make_private(dir: &Path) -> Result<()> {
    set_mode(dir, 0o700)?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
        if kind.is_dir() {
            make_private(&entry.path())?;
        } else if kind.is_file() {
            set_mode(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

/// A line of `pg_dump --verbose`'s standard error.
#[derive(Debug, PartialEq, Eq)]
enum DumpLine<'a> {
    /// It starts dumping a table's rows (`dumping contents of table "public.t"`).
    Table(&'a str),
    /// Other progress chatter.
    Info,
    /// An error, a warning or anything not recognised: kept for the error report.
    Diagnostic,
}

fn dump_line(line: &str) -> DumpLine<'_> {
    // With --jobs the workers share pg_dump's unbuffered standard error, which writes the
    // "pg_dump: " prefix, the message and the line break separately: one worker's prefix can
    // land before or inside another's line. A line may so carry the prefix twice, or not at
    // all, or end with another worker's prefix.
    let mut rest = line;
    let mut prefixed = false;
    while let Some(r) = rest.strip_prefix("pg_dump: ") {
        rest = r;
        prefixed = true;
    }
    if rest.starts_with("dumping contents of table ") {
        let message = match rest.find("pg_dump: ") {
            Some(at) => &rest[..at],
            None => rest,
        };
        return DumpLine::Table(message);
    }
    if !prefixed {
        return DumpLine::Diagnostic;
    }
    if rest.starts_with("error:")
        || rest.starts_with("warning:")
        || rest.starts_with("detail:")
        || rest.starts_with("hint:")
    {
        DumpLine::Diagnostic
    } else if rest.starts_with("dumping contents of table ") {
        DumpLine::Table(rest)
    } else {
        DumpLine::Info
    }
}

/// The server version and the number of tables whose rows pg_dump will dump (user tables outside
/// the excluded and system schemas, plus extensions' configuration tables), in one query.
fn server_version_and_tables(options: &DumpOptions) -> Result<(ServerVersion, usize)> {
    let mut client = crate::connect::connect(&options.connection)?;
    let excluded: Vec<String> = options
        .exclude_schemas
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let row = client.query_typed_one(
        "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4,
                (SELECT pg_catalog.count(*)
                   FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                  WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
                    AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.<>) ALL($1)
                    AND n.nspname::pg_catalog.text
                        OPERATOR(pg_catalog.<>) ALL('{pg_catalog,information_schema}')
                    AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\\_%'
                    AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=)
                                            'pg_catalog.pg_class'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) c.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) 'e')
                         OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
                                     WHERE c.oid OPERATOR(pg_catalog.=) ANY(e.extconfig))))",
        &[(&excluded, postgres::types::Type::TEXT_ARRAY)],
    )?;
    let version: i32 = row.get(0);
    let tables: i64 = row.get(1);
    Ok((ServerVersion(version as u32), tables as usize))
}

/// The size in bytes of an archive: a file's, or the sum of every file's under a directory
/// (a directory-format archive). Safe to call while pg_dump writes it.
///
/// # Errors
/// [`Error::Io`] when the path or an entry under it cannot be read (before pg_dump has created
/// it, for example).
pub fn archive_size(path: &Path) -> Result<u64> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    let entries =
        std::fs::read_dir(path).map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
        total += archive_size(&entry.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dump_lines_are_classified() {
        assert_eq!(
            dump_line("pg_dump: dumping contents of table \"public.a b\""),
            DumpLine::Table("dumping contents of table \"public.a b\"")
        );
        assert_eq!(dump_line("pg_dump: reading extensions"), DumpLine::Info);
        assert_eq!(
            dump_line("pg_dump: finished item 3348 TABLE DATA a"),
            DumpLine::Info
        );
        for line in [
            "pg_dump: error: query failed: ERROR:  permission denied for table t",
            "pg_dump: warning: there are circular foreign-key constraints",
            "pg_dump: detail: Query was: LOCK TABLE public.t IN ACCESS SHARE MODE",
            "could not open file",
        ] {
            assert_eq!(dump_line(line), DumpLine::Diagnostic, "{line}");
        }
    }

    #[test]
    fn lines_of_parallel_workers_that_interleave_still_name_their_tables() {
        // Two workers: prefix, prefix, message, message.
        assert_eq!(
            dump_line("pg_dump: pg_dump: dumping contents of table \"public.places\""),
            DumpLine::Table("dumping contents of table \"public.places\"")
        );
        assert_eq!(
            dump_line("dumping contents of table \"public.big\""),
            DumpLine::Table("dumping contents of table \"public.big\"")
        );
        // Another worker's prefix before this line's break.
        assert_eq!(
            dump_line("pg_dump: dumping contents of table \"public.big\"pg_dump: "),
            DumpLine::Table("dumping contents of table \"public.big\"")
        );
    }

    fn tool() -> ClientTool {
        ClientTool {
            program: ClientProgram::PgDump,
            path: "/usr/lib/postgresql/15/bin/pg_dump".into(),
            version: "15.18".into(),
            major: 15,
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn dump_command_argv() {
        let conn = ConnectOptions::new()
            .host("db.example")
            .user("shop")
            .dbname("shop")
            .password(crate::Password::new("secret-pw"));
        let options = DumpOptions::new(conn, "/backups/shop")
            .format(DumpFormat::Directory)
            .jobs(2)
            .exclude_schema("Audit")
            .unwrap();
        options.validate().unwrap();
        let cmd = dump_command(&options, &tool(), Path::new("/tmp/w/pgpass"));
        assert_eq!(cmd.get_program(), "/usr/lib/postgresql/15/bin/pg_dump");
        assert_eq!(
            args(&cmd),
            [
                "--host=db.example",
                "--port=5432",
                "--username=shop",
                "--no-password",
                "--dbname=shop",
                "--format=directory",
                "--file=/backups/shop",
                "--jobs=2",
                "--exclude-schema=\"Audit\"",
            ]
        );
        assert!(!format!("{cmd:?}").contains("secret-pw"));
    }

    #[test]
    fn one_job_adds_no_flag_and_custom_is_the_default() {
        let options =
            DumpOptions::new(ConnectOptions::new().user("u").dbname("d"), "x.dump").jobs(1);
        options.validate().unwrap();
        let a = args(&dump_command(&options, &tool(), Path::new("/p")));
        assert_eq!(&a[5..], ["--format=custom", "--file=x.dump"]);
    }

    #[test]
    fn bad_options_are_refused_before_anything_runs() {
        let conn = ConnectOptions::new();
        let e = DumpOptions::new(conn.clone(), "x")
            .jobs(0)
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        let e = DumpOptions::new(conn.clone(), "x")
            .jobs(4)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("directory format"), "{e}");
        let e = DumpOptions::new(conn.clone(), "").validate().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(DumpOptions::new(conn, "x").exclude_schema("").is_err());
        assert_eq!(
            "directory".parse::<DumpFormat>().unwrap(),
            DumpFormat::Directory
        );
        assert!("tar".parse::<DumpFormat>().is_err());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn archives_are_made_private_before_and_after_pg_dump() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A new file, and an existing one readable by everybody.
        let new = dir.path().join("new.dump");
        PrivateOutput::prepare(&new, DumpFormat::Custom).unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = dir.path().join("old.dump");
        std::fs::write(&old, b"previous archive").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = PrivateOutput::prepare(&old, DumpFormat::Custom).unwrap();
        assert_eq!(mode(&old), 0o600, "re-moded before pg_dump writes into it");
        assert!(!output.created);
        output.discard();
        assert!(old.exists(), "a file that was there is not removed");

        // A directory archive: created 0700; files pg_dump left with the umask's mode, 0600.
        let archive = dir.path().join("shop.dir");
        let output = PrivateOutput::prepare(&archive, DumpFormat::Directory).unwrap();
        assert_eq!(mode(&archive), 0o700);
        std::fs::write(archive.join("toc.dat"), b"toc").unwrap();
        std::fs::set_permissions(
            archive.join("toc.dat"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        output.finish().unwrap();
        assert_eq!(mode(&archive.join("toc.dat")), 0o600);

        // An existing empty directory becomes private; a failed dump removes only what it made.
        let empty = dir.path().join("empty.dir");
        std::fs::create_dir(&empty).unwrap();
        std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).unwrap();
        PrivateOutput::prepare(&empty, DumpFormat::Directory)
            .unwrap()
            .discard();
        assert_eq!(mode(&empty), 0o700);
        let made = dir.path().join("made.dir");
        let output = PrivateOutput::prepare(&made, DumpFormat::Directory).unwrap();
        std::fs::write(made.join("1.dat.gz"), b"partial").unwrap();
        output.discard();
        assert!(!made.exists(), "a partial archive is not left behind");
    }
}
