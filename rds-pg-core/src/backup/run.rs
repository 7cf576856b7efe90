//! `backup run`: one archive per project database, made as the project's own role.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::encrypt::{EncryptingPipe, Recipient, ENCRYPTED_SUFFIX};
use super::manifest::{
    archive_digest, toc_counts, Encryption, Manifest, TableRows, ToolRecord, UploadRecord,
    Verification, MANIFEST_SUFFIX, MANIFEST_VERSION,
};
use super::source::{credential_source, project_options};
use super::time::UtcTime;
use super::upload::{UploadCommand, UploadNames};
use super::{create_private_dirs, database_dir, path_component, Archive, Selection};
use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::dump::{self, tools, ClientProgram, ClientTool, DumpFormat, DumpOptions, Progress, Toc};
use crate::error::{Error, Result};
use crate::inventory::{Instance, Inventory, Project};

/// What `backup run` does, beyond what the inventory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRunOptions {
    /// The connection settings every connection starts from: TLS (`sslmode`, `sslrootcert`),
    /// connect timeout and application name. Host, port, user, database and password come from
    /// the inventory and the credentials it names; nothing else of these options is used.
    pub connection: ConnectOptions,
    /// The backup directory; `None`: the inventory's `[policy] backup_dir`.
    pub root: Option<PathBuf>,
    /// Which databases.
    pub selection: Selection,
    /// pg_dump jobs; above one, the archive is a directory (`--format=directory`), which can be
    /// neither encrypted nor uploaded.
    pub jobs: Option<u32>,
    /// The age recipients to encrypt to; `None`: the inventory's (the client's
    /// `backup_encrypt_to`, else the policy's); an empty list: not encrypted.
    pub encrypt_to: Option<Vec<Recipient>>,
    /// The upload command; `None`: the inventory's `backup_upload`.
    pub upload: Option<UploadCommand>,
    /// Upload nothing, whatever the inventory says.
    pub skip_upload: bool,
    /// Where pg_dump and pg_restore are (`None`: searched for).
    pub tools_dir: Option<PathBuf>,
    /// Whether every table's rows are counted in the dump's snapshot (default `true`), a full
    /// scan of each table beside pg_dump's, so that a verification compares exact row counts;
    /// `false` records the planner's estimates only, and a verification then checks that each
    /// table restores, not how many rows it has.
    pub count_rows: bool,
}

impl BackupRunOptions {
    /// Backs up every database of the inventory into its `backup_dir`, with the TLS settings of
    /// `connection`.
    pub fn new(connection: ConnectOptions) -> BackupRunOptions {
        BackupRunOptions {
            connection,
            root: None,
            selection: Selection::all(),
            jobs: None,
            encrypt_to: None,
            upload: None,
            skip_upload: false,
            tools_dir: None,
            count_rows: true,
        }
    }

    crate::builder::setters! {
        /// Writes under `dir`.
        root = some_into PathBuf;
        /// Backs up only `selection`'s databases.
        selection = Selection;
        /// Runs pg_dump with `jobs` jobs (a directory archive when above one).
        jobs = some u32;
        /// Encrypts to exactly these recipients (none: not encrypted).
        encrypt_to = some Vec<Recipient>;
        /// Uploads with `command`.
        upload = some UploadCommand;
        /// Uploads nothing.
        skip_upload = bool;
        /// Looks for pg_dump and pg_restore in `dir` only.
        tools_dir = some_into PathBuf;
        /// Counts (or not) every table's rows in the dump's snapshot.
        count_rows = bool;
    }
}

/// A database to back up, as the inventory names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTarget {
    /// The client.
    pub client: String,
    /// The instance.
    pub instance: String,
    /// The project.
    pub project: String,
    /// The database.
    pub database: String,
    /// Its owner, the role the dump runs as.
    pub role: String,
}

/// A database's archive, made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedUp {
    /// The archive and its manifest.
    pub archive: Archive,
    /// How long pg_dump ran.
    pub dump_duration: Duration,
    /// How long the whole backup of the database took (upload excluded).
    pub duration: Duration,
}

/// One database's backup.
#[derive(Debug)]
pub struct DatabaseBackup {
    /// Which database.
    pub target: BackupTarget,
    /// The archive, or why there is none.
    pub result: Result<BackedUp>,
    /// The upload, when one was configured and the archive was made.
    pub upload: Option<Result<()>>,
}

impl DatabaseBackup {
    /// Whether the archive was made and, when asked, uploaded.
    pub fn succeeded(&self) -> bool {
        self.result.is_ok() && self.upload.as_ref().is_none_or(|u| u.is_ok())
    }
}

/// What `backup run` did.
#[derive(Debug)]
pub struct BackupRunReport {
    /// The backup directory.
    pub root: PathBuf,
    /// Each database, in inventory order.
    pub databases: Vec<DatabaseBackup>,
    /// How long it all took.
    pub duration: Duration,
}

impl BackupRunReport {
    /// Whether every database was backed up (and uploaded, when asked).
    pub fn succeeded(&self) -> bool {
        self.databases.iter().all(DatabaseBackup::succeeded)
    }
}

/// What [`run_with`] reports as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunEvent<'a> {
    /// A database's backup starts.
    Started(&'a BackupTarget),
    /// pg_dump's progress (tables dumped, archive bytes so far).
    Dumping {
        /// Which database.
        target: &'a BackupTarget,
        /// How far it is.
        progress: &'a Progress,
    },
    /// The archive is being uploaded.
    Uploading(&'a BackupTarget),
    /// A database is done.
    Finished(&'a DatabaseBackup),
}

/// Backs up the databases of `inventory` that `options` selects; see [`run_with`].
///
/// # Errors
/// As [`run_with`].
pub fn run(inventory: &Inventory, options: &BackupRunOptions) -> Result<BackupRunReport> {
    run_with(inventory, options, &mut |_| {})
}

/// Backs up each selected database, one after the other, as its owner:
///
/// 1. reads the owner's credentials back from where the inventory says they were delivered
///    ([`credential_source`]; [`Error::MissingCredentials`] names the place when they are not
///    there) and connects with them to the instance's endpoint — never as master;
/// 2. in that session, opens a read-only repeatable-read transaction, exports its snapshot, and
///    reads the server version, the extensions and each table's row estimate;
/// 3. runs pg_dump (custom format, or directory with several jobs) on that snapshot, into
///    `DIR/<client>/<instance>/<database>/<UTC timestamp>.dump` (`.dump.age` when encrypted:
///    pg_dump writes into a pipe and the archive is encrypted as it is written), while the
///    session counts every table's rows in the same snapshot;
/// 4. reads the archive's table of contents, computes its SHA-256, and writes the manifest
///    (`<UTC timestamp>.json`);
/// 5. uploads the archive, then the manifest, when an upload command is configured.
///
/// A database that fails leaves no archive and does not stop the others; its error is in its
/// [`DatabaseBackup`].
///
/// # Errors
/// Before anything runs: [`Error::InvalidInput`] without a backup directory, for zero jobs, or
/// for a directory archive (jobs above one) with encryption or upload; [`Error::NotFound`] when
/// the selection names an instance or project the inventory lacks, or matches no database.
pub fn run_with(
    inventory: &Inventory,
    options: &BackupRunOptions,
    events: &mut dyn FnMut(&RunEvent<'_>),
) -> Result<BackupRunReport> {
    let started = Instant::now();
    let policy = &inventory.policy.backups;
    let root = options
        .root
        .clone()
        .or_else(|| policy.dir.clone())
        .ok_or_else(|| {
            Error::InvalidInput(
                "no backup directory: give one (--to DIR) or set backup_dir in the inventory's \
             [policy]"
                    .into(),
            )
        })?;
    if options.jobs == Some(0) {
        return Err(Error::InvalidInput("jobs must be at least 1".into()));
    }
    options.selection.check(inventory)?;
    let directory = options.jobs.unwrap_or(1) > 1;
    let upload = match (&options.upload, &policy.upload, options.skip_upload) {
        (_, _, true) => None,
        (Some(u), _, _) => Some(u.clone()),
        (None, Some(argv), _) => Some(UploadCommand::new(argv.clone())?),
        (None, None, _) => None,
    };
    let mut targets = Vec::new();
    for project in &inventory.projects {
        for database in &project.databases {
            if options
                .selection
                .matches(&project.instance, &project.name, database.name.as_str())
            {
                let instance = inventory
                    .instance(&project.instance)
                    .expect("the loader checked the reference");
                let recipients = recipients_for(inventory, project, options)?;
                targets.push((project, database, instance, recipients));
            }
        }
    }
    if targets.is_empty() {
        return Err(Error::NotFound {
            message: "no database of the inventory matches the selection".into(),
            source: None,
        });
    }
    if directory && (upload.is_some() || targets.iter().any(|t| !t.3.is_empty())) {
        return Err(Error::InvalidInput(
            "several jobs write a directory archive, which rds-pg neither encrypts nor uploads \
             (both need one file): leave out --jobs, or encryption and upload"
                .into(),
        ));
    }
    create_private_dirs(&root)?;
    let mut databases = Vec::with_capacity(targets.len());
    for (project, database, instance, recipients) in targets {
        let target = BackupTarget {
            client: project.client.clone(),
            instance: instance.name.clone(),
            project: project.name.clone(),
            database: database.name.as_str().to_owned(),
            role: database.owner.as_str().to_owned(),
        };
        events(&RunEvent::Started(&target));
        let job = Job {
            target: &target,
            instance,
            project,
            root: &root,
            options,
            recipients: &recipients,
            directory,
        };
        let result = job.run(events);
        let upload = match (&result, &upload) {
            (Ok(done), Some(command)) => {
                events(&RunEvent::Uploading(&target));
                Some(upload_archive(&done.archive, command))
            }
            _ => None,
        };
        let backup = DatabaseBackup {
            target,
            result,
            upload,
        };
        events(&RunEvent::Finished(&backup));
        databases.push(backup);
    }
    Ok(BackupRunReport {
        root,
        databases,
        duration: started.elapsed(),
    })
}

/// The recipients `project`'s archives are encrypted to.
fn recipients_for(
    inventory: &Inventory,
    project: &Project,
    options: &BackupRunOptions,
) -> Result<Vec<Recipient>> {
    if let Some(given) = &options.encrypt_to {
        return Ok(given.clone());
    }
    let client = inventory.client(&project.client);
    let names = match client {
        Some(c) if !c.backup_encrypt_to.is_empty() => &c.backup_encrypt_to,
        _ => &inventory.policy.backups.encrypt_to,
    };
    names.iter().map(|n| Recipient::parse(n)).collect()
}

/// One database's backup.
struct Job<'a> {
    target: &'a BackupTarget,
    instance: &'a Instance,
    project: &'a Project,
    root: &'a Path,
    options: &'a BackupRunOptions,
    recipients: &'a [Recipient],
    directory: bool,
}

/// A table the snapshot session found, with its estimate.
#[derive(Clone)]
struct SnapshotTable {
    schema: String,
    table: String,
    estimate: Option<i64>,
    extension: Option<String>,
}

impl Job<'_> {
    fn run(&self, events: &mut dyn FnMut(&RunEvent<'_>)) -> Result<BackedUp> {
        let began = Instant::now();
        let target = self.target;
        let source = credential_source(self.project, &target.role)?;
        let connection = project_options(
            &self.options.connection,
            self.instance,
            &target.role,
            &target.database,
            &source,
        )?
        .application_name("rds-pg backup");
        let dir = database_dir(
            self.root,
            &target.client,
            &target.instance,
            &target.database,
        );
        create_private_dirs(&dir)?;
        let encrypted = !self.recipients.is_empty();
        // Names are the start time to the second: a backup that starts in the same second as
        // the previous one of the database waits for the next second.
        let (started_at, archive_name, archive_path, manifest_path) = {
            let mut attempts = 0;
            loop {
                let started_at = UtcTime::now();
                let stamp = started_at.compact();
                let archive_name = format!(
                    "{stamp}.dump{}",
                    if encrypted { ENCRYPTED_SUFFIX } else { "" }
                );
                let archive_path = dir.join(&archive_name);
                let manifest_path = dir.join(format!("{stamp}{MANIFEST_SUFFIX}"));
                let taken = [&archive_path, &manifest_path]
                    .iter()
                    .any(|p| std::fs::symlink_metadata(p).is_ok())
                    || std::fs::read_dir(&dir).is_ok_and(|entries| {
                        entries.flatten().any(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with(&format!("{stamp}."))
                        })
                    });
                if !taken {
                    break (started_at, archive_name, archive_path, manifest_path);
                }
                attempts += 1;
                if attempts > 3 {
                    return Err(Error::InvalidInput(format!(
                        "{} holds archives of {stamp} already",
                        dir.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(1000 - (now_millis() % 1000)));
            }
        };

        // The snapshot: pg_dump dumps it, this session counts the rows in it.
        let mut session = crate::connect::connect(&connection)?;
        let server = ServerVersion::query(&mut session)?;
        session.batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL row_security = off",
        )?;
        let snapshot: String = session
            .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])?
            .get(0);
        let extensions: Vec<String> = session
            .query(
                "SELECT extname::pg_catalog.text FROM pg_catalog.pg_extension
                  WHERE extname OPERATOR(pg_catalog.<>) 'plpgsql' ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let tables = snapshot_tables(&mut session)?;
        let pg_dump = tools::find(
            ClientProgram::PgDump,
            server,
            self.options.tools_dir.as_deref(),
        )?;
        let pg_restore = restore_tool(&pg_dump, server, self.options.tools_dir.as_deref())?;

        let count_rows = self.options.count_rows;
        let counting = {
            let tables = tables.clone();
            std::thread::spawn(move || {
                if !count_rows {
                    return (session, Ok(vec![None; tables.len()]));
                }
                let names: Vec<(&str, &str)> = tables
                    .iter()
                    .map(|t| (t.schema.as_str(), t.table.as_str()))
                    .collect();
                let counts = dump::count_rows(&mut session, &names);
                // The session (and its transaction, which keeps the snapshot importable) ends
                // only once pg_dump has finished.
                (session, counts)
            })
        };
        let pipe = if encrypted {
            Some(EncryptingPipe::start(
                &archive_path,
                self.recipients,
                &pg_restore,
            )?)
        } else {
            None
        };
        let output = pipe
            .as_ref()
            .map_or(archive_path.clone(), |p| p.path().to_owned());
        let mut dump_options = DumpOptions::new(connection, output)
            .snapshot(snapshot)
            .sync(pipe.is_none());
        if let Some(dir) = pg_dump.path.parent() {
            dump_options = dump_options.tools_dir(dir);
        }
        if self.directory {
            dump_options = dump_options
                .format(DumpFormat::Directory)
                .jobs(self.options.jobs.unwrap_or(1));
        }
        let dumped = dump::dump_with(&dump_options, &mut |p: &Progress| {
            let mut p = p.clone();
            if let Some(pipe) = &pipe {
                p.bytes = Some(pipe.plain_bytes());
            }
            events(&RunEvent::Dumping {
                target,
                progress: &p,
            });
        });
        let counts = match counting.join() {
            Ok((session, counts)) => {
                drop(session); // ends the snapshot's transaction
                counts
            }
            Err(_) => Err(Error::io(
                "counting rows",
                std::io::Error::other("the counting thread panicked"),
            )),
        };
        let encrypted_output = pipe.map(|p| p.finish(dumped.is_ok()));
        let discard = |e: Error| {
            let _ = if archive_path.is_dir() {
                std::fs::remove_dir_all(&archive_path)
            } else {
                std::fs::remove_file(&archive_path)
            };
            e
        };
        let report = dumped?;
        let encrypted_output = encrypted_output.transpose().map_err(discard)?;
        let counts = counts.map_err(|e| {
            discard(Error::InvalidInput(format!(
                "counting the rows in the dump's snapshot failed: {e}"
            )))
        })?;

        let (toc, sha256, bytes) = match encrypted_output {
            Some(e) => {
                let toc = Toc::parse(&e.listing).map_err(|err| {
                    discard(Error::Tool {
                        tool: format!("{} --list", pg_restore.path.display()),
                        status: "0".into(),
                        stderr: err.to_string(),
                    })
                })?;
                (toc, e.sha256, e.bytes)
            }
            None => {
                let toc = dump::read_toc(&pg_restore, &archive_path).map_err(discard)?;
                let (sha, bytes) = archive_digest(&archive_path).map_err(discard)?;
                (toc, sha, bytes)
            }
        };
        let counted: Vec<(SnapshotTable, Option<i64>)> = tables.into_iter().zip(counts).collect();
        let rows = toc
            .tables_with_data()
            .into_iter()
            .map(|(schema, table)| {
                let found = counted
                    .iter()
                    .find(|(t, _)| t.schema == schema && t.table == table);
                TableRows {
                    schema: schema.to_owned(),
                    table: table.to_owned(),
                    rows: found.and_then(|(_, n)| *n),
                    estimated_rows: found.and_then(|(t, _)| t.estimate),
                    extension: found.and_then(|(t, _)| t.extension.clone()),
                }
            })
            .collect();
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            client: target.client.clone(),
            instance: target.instance.clone(),
            project: target.project.clone(),
            database: target.database.clone(),
            role: target.role.clone(),
            archive: archive_name,
            format: if self.directory {
                "directory"
            } else {
                "custom"
            }
            .into(),
            encryption: encrypted.then(|| Encryption {
                scheme: "age".into(),
                recipients: self.recipients.iter().map(|r| r.to_string()).collect(),
            }),
            sha256,
            bytes,
            server_version: server.to_string(),
            pg_dump: ToolRecord {
                path: report.tool.path.clone(),
                version: report.tool.version.clone(),
            },
            rds_pg_version: env!("CARGO_PKG_VERSION").into(),
            started_at,
            finished_at: UtcTime::now(),
            toc: toc_counts(&toc),
            extensions,
            tables: rows,
            verification: Verification::default(),
            upload: None,
        };
        manifest.write(&manifest_path).map_err(discard)?;
        Ok(BackedUp {
            archive: Archive {
                manifest_path,
                path: archive_path,
                manifest,
            },
            dump_duration: report.duration,
            duration: began.elapsed(),
        })
    }
}

/// Milliseconds since 1970, for waiting until the next second.
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The pg_restore that reads what `pg_dump` writes: the one next to it when it has the same
/// major version, else the one the search finds for the server.
fn restore_tool(
    pg_dump: &ClientTool,
    server: ServerVersion,
    tools_dir: Option<&Path>,
) -> Result<ClientTool> {
    let beside = pg_dump
        .path
        .with_file_name(ClientProgram::PgRestore.file_name());
    match tools::probe(ClientProgram::PgRestore, &beside) {
        Ok(tool) if tool.major == pg_dump.major => Ok(tool),
        _ => tools::find(ClientProgram::PgRestore, server, tools_dir),
    }
}

/// The tables whose rows pg_dump dumps (ordinary tables outside the system schemas that are not
/// an extension's, or are an extension's configuration tables), with their row estimates, as
/// the snapshot session sees them.
fn snapshot_tables(session: &mut postgres::Client) -> Result<Vec<SnapshotTable>> {
    let rows = session.query(
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text,
                CASE WHEN c.reltuples OPERATOR(pg_catalog.<) 0 THEN NULL
                     ELSE c.reltuples::pg_catalog.int8 END,
                (SELECT e.extname::pg_catalog.text FROM pg_catalog.pg_extension e
                  WHERE c.oid OPERATOR(pg_catalog.=) ANY(e.extconfig) LIMIT 1)
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
            AND n.nspname::pg_catalog.text
                OPERATOR(pg_catalog.<>) ALL('{pg_catalog,information_schema}')
            AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\\_%'
            AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                              WHERE d.classid OPERATOR(pg_catalog.=)
                                    'pg_catalog.pg_class'::pg_catalog.regclass
                                AND d.objid OPERATOR(pg_catalog.=) c.oid
                                AND d.deptype OPERATOR(pg_catalog.=) 'e')
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
                             WHERE c.oid OPERATOR(pg_catalog.=) ANY(e.extconfig)))
          ORDER BY 1, 2",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| SnapshotTable {
            schema: r.get(0),
            table: r.get(1),
            estimate: r.get(2),
            extension: r.get(3),
        })
        .collect())
}

/// Uploads the archive, then its manifest, and records the outcome in the manifest.
fn upload_archive(archive: &Archive, command: &UploadCommand) -> Result<()> {
    let m = &archive.manifest;
    let database = path_component(&m.database);
    let manifest_name = archive
        .manifest_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = UploadNames {
        client: &m.client,
        instance: &m.instance,
        database: &database,
        file: &m.archive,
    };
    let result = command.upload(&archive.path, &names).and_then(|()| {
        let names = UploadNames {
            file: &manifest_name,
            ..names
        };
        command.upload(&archive.manifest_path, &names)
    });
    let mut manifest = m.clone();
    manifest.upload = Some(UploadRecord {
        uploaded: result.is_ok(),
        program: command.program().to_string_lossy().into_owned(),
        at: UtcTime::now(),
        error: result.as_ref().err().map(|e| e.to_string()),
    });
    manifest.write(&archive.manifest_path)?;
    result
}
