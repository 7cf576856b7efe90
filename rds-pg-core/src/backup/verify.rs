//! `backup verify`: restore an archive into a scratch database owned by a throw-away role, as
//! that role, compare it with the manifest, record the outcome, drop both whatever happened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::encrypt::{DecryptingPipe, Identities};
use super::manifest::{archive_digest, toc_counts, ToolRecord, Verification, VerificationState};
use super::source::master_options;
use super::time::UtcTime;
use super::{list, Archive, Selection};
use crate::config::ConnectOptions;
use crate::dump::{self, tools, ClientProgram, Progress, RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inventory::Inventory;
use crate::provision::Provisioner;
use crate::secret::Password;
use crate::spec::{DatabaseSpec, DropDatabaseOptions, DropUserOptions, Extension, UserSpec};

/// The name prefix of the scratch database and the throw-away role of a verification
/// (`rdspg_verify_1a2b3c4d`): anything named so that outlives a verification is a leftover.
pub const SCRATCH_PREFIX: &str = "rdspg_verify_";

/// How long the throw-away role's password is valid, should a crash leave the role behind.
const SCRATCH_ROLE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What `backup verify` verifies, and how.
#[derive(Debug, Clone)]
pub struct BackupVerifyOptions {
    /// The connection settings master's connections start from: TLS (`sslmode`,
    /// `sslrootcert`), connect timeout, application name. Host, port, user and password come
    /// from the inventory.
    pub connection: ConnectOptions,
    /// The backup directory; `None`: the inventory's `[policy] backup_dir`.
    pub root: Option<PathBuf>,
    /// Which databases (the newest archive of each is verified).
    pub selection: Selection,
    /// Verify this archive (or manifest) instead.
    pub archive: Option<PathBuf>,
    /// The identities that decrypt encrypted archives.
    pub identities: Option<Identities>,
    /// Where pg_restore is (`None`: searched for).
    pub tools_dir: Option<PathBuf>,
}

impl BackupVerifyOptions {
    /// Verifies the newest archive of every database of the inventory, under its `backup_dir`.
    pub fn new(connection: ConnectOptions) -> BackupVerifyOptions {
        BackupVerifyOptions {
            connection,
            root: None,
            selection: Selection::all(),
            archive: None,
            identities: None,
            tools_dir: None,
        }
    }

    crate::builder::setters! {
        /// Looks for archives under `dir`.
        root = some_into PathBuf;
        /// Verifies the newest archive of `selection`'s databases.
        selection = Selection;
        /// Verifies this archive (or the archive of this manifest) only.
        archive = some_into PathBuf;
        /// Decrypts with these identities.
        identities = some Identities;
        /// Looks for pg_restore in `dir` only.
        tools_dir = some_into PathBuf;
    }
}

/// A table's rows in the dump's snapshot and in the restored copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    /// The schema.
    pub schema: String,
    /// The table.
    pub table: String,
    /// Rows the manifest records (`None`: not counted when dumped).
    pub expected: Option<i64>,
    /// Rows in the restored copy (`None`: the table is missing there).
    pub restored: Option<i64>,
    /// The extension whose configuration table it is, if it is one.
    pub extension: Option<String>,
}

impl TableCheck {
    /// Whether the copy has the table, with the recorded number of rows when one was recorded.
    pub fn matches(&self) -> bool {
        self.restored.is_some() && (self.expected.is_none() || self.expected == self.restored)
    }
}

/// The drop of a verification's scratch database and throw-away role.
#[derive(Debug)]
pub struct Cleanup {
    /// The scratch database's and the role's name.
    pub name: String,
    /// Why the database could not be dropped, when it could not.
    pub database_error: Option<Error>,
    /// Why the role could not be dropped, when it could not.
    pub role_error: Option<Error>,
}

impl Cleanup {
    /// Whether both are gone.
    pub fn succeeded(&self) -> bool {
        self.database_error.is_none() && self.role_error.is_none()
    }
}

/// The verification of one archive.
#[derive(Debug)]
pub struct ArchiveVerification {
    /// `client/instance/database`.
    pub label: String,
    /// The archive, its manifest as recorded afterwards; `None` when none was found.
    pub archive: Option<Archive>,
    /// `Ok` when the archive is verified; [`Error::BackupVerification`] listing every check that
    /// failed (recorded in the manifest); another error when the check could not be made (no
    /// identity, no pg_restore, no master, a scratch database master could not create: not
    /// recorded).
    pub result: Result<()>,
    /// Whether the outcome was written to the manifest.
    pub recorded: bool,
    /// Each table's rows, recorded and restored.
    pub tables: Vec<TableCheck>,
    /// The restore, when it succeeded.
    pub restore: Option<RestoreReport>,
    /// The drop of the scratch database and role, when they were created.
    pub cleanup: Option<Cleanup>,
    /// How long it took.
    pub duration: Duration,
}

impl ArchiveVerification {
    /// Whether the archive is verified and nothing was left behind.
    pub fn succeeded(&self) -> bool {
        self.result.is_ok() && self.cleanup.as_ref().is_none_or(Cleanup::succeeded)
    }
}

/// What `backup verify` did.
#[derive(Debug)]
pub struct BackupVerifyReport {
    /// Each archive verified (or database without one).
    pub archives: Vec<ArchiveVerification>,
}

impl BackupVerifyReport {
    /// Whether every archive was verified and every scratch database and role dropped.
    pub fn succeeded(&self) -> bool {
        self.archives.iter().all(ArchiveVerification::succeeded)
    }
}

/// What [`verify_with`] reports as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyEvent<'a> {
    /// An archive's verification starts.
    Started(&'a Archive),
    /// pg_restore's progress.
    Restoring {
        /// Which archive.
        archive: &'a Archive,
        /// How far it is.
        progress: &'a Progress,
    },
    /// An archive is done.
    Finished(&'a ArchiveVerification),
}

/// Verifies archives; see [`verify_with`].
///
/// # Errors
/// As [`verify_with`].
pub fn verify(inventory: &Inventory, options: &BackupVerifyOptions) -> Result<BackupVerifyReport> {
    verify_with(inventory, options, &mut |_| {})
}

/// Verifies the newest archive of each selected database (or `options.archive`) with
/// [`verify_archive`], connecting as each instance's master as the inventory says (once per
/// instance). A database without an archive is reported as such.
///
/// # Errors
/// Before anything runs: [`Error::InvalidInput`] without a backup directory (when no archive is
/// named); [`Error::NotFound`] for a selection naming what the inventory lacks, or a backup
/// directory that does not exist.
pub fn verify_with(
    inventory: &Inventory,
    options: &BackupVerifyOptions,
    events: &mut dyn FnMut(&VerifyEvent<'_>),
) -> Result<BackupVerifyReport> {
    options.selection.check(inventory)?;
    let mut found: Vec<std::result::Result<Archive, (String, Error)>> = Vec::new();
    if let Some(path) = &options.archive {
        found.push(Archive::find(path).map_err(|e| (path.display().to_string(), e)));
    } else {
        let root = options
            .root
            .clone()
            .or_else(|| inventory.policy.backups.dir.clone())
            .ok_or_else(|| {
                Error::InvalidInput(
                    "no backup directory: give one (--to DIR) or set backup_dir in the \
                     inventory's [policy]"
                        .into(),
                )
            })?;
        let listing = list(&root, &options.selection)?;
        for project in &inventory.projects {
            for database in &project.databases {
                let db = database.name.as_str();
                if !options
                    .selection
                    .matches(&project.instance, &project.name, db)
                {
                    continue;
                }
                let newest = listing
                    .archives
                    .iter()
                    .filter(|a| {
                        let m = &a.manifest;
                        m.client == project.client
                            && m.instance == project.instance
                            && m.database == db
                    })
                    .max_by_key(|a| a.manifest.started_at);
                let label = format!("{}/{}/{db}", project.client, project.instance);
                found.push(match newest {
                    Some(a) => Ok(a.clone()),
                    None => Err((
                        label,
                        Error::NotFound {
                            message: format!(
                                "no archive of database {db:?} under {}",
                                root.display()
                            ),
                            source: None,
                        },
                    )),
                });
            }
        }
    }
    let mut masters: HashMap<String, Provisioner> = HashMap::new();
    let mut archives = Vec::new();
    for entry in found {
        let started = Instant::now();
        let archive = match entry {
            Ok(a) => a,
            Err((label, e)) => {
                let v = failed(label, None, e, started);
                events(&VerifyEvent::Finished(&v));
                archives.push(v);
                continue;
            }
        };
        events(&VerifyEvent::Started(&archive));
        let master = match master_for(inventory, options, &archive, &mut masters) {
            Ok(m) => m,
            Err(e) => {
                let v = failed(archive.group(), Some(archive), e, started);
                events(&VerifyEvent::Finished(&v));
                archives.push(v);
                continue;
            }
        };
        let v = verify_archive(
            master,
            &archive,
            options.identities.as_ref(),
            options.tools_dir.as_deref(),
            &mut |p| {
                events(&VerifyEvent::Restoring {
                    archive: &archive,
                    progress: p,
                })
            },
        );
        events(&VerifyEvent::Finished(&v));
        archives.push(v);
    }
    Ok(BackupVerifyReport { archives })
}

fn failed(
    label: String,
    archive: Option<Archive>,
    e: Error,
    started: Instant,
) -> ArchiveVerification {
    ArchiveVerification {
        label,
        archive,
        result: Err(e),
        recorded: false,
        tables: Vec::new(),
        restore: None,
        cleanup: None,
        duration: started.elapsed(),
    }
}

fn master_for<'m>(
    inventory: &Inventory,
    options: &BackupVerifyOptions,
    archive: &Archive,
    masters: &'m mut HashMap<String, Provisioner>,
) -> Result<&'m mut Provisioner> {
    let name = &archive.manifest.instance;
    if !masters.contains_key(name) {
        let instance = inventory.instance(name).ok_or_else(|| Error::NotFound {
            message: format!(
                "the archive {} is of instance {name:?}, which the inventory does not have",
                archive.path.display()
            ),
            source: None,
        })?;
        let master = Provisioner::connect(&master_options(&options.connection, instance)?)?;
        masters.insert(name.clone(), master);
    }
    Ok(masters.get_mut(name).expect("inserted above"))
}

/// `rdspg_verify_<8 hex digits>`.
fn scratch_name() -> Result<String> {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random)
        .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
    Ok(format!("{SCRATCH_PREFIX}{}", super::manifest::hex(&random)))
}

/// Verifies one archive as `master`'s instance holds it:
///
/// 1. before anything is created: the archive exists; an encrypted one opens with `identities`
///    (decrypted into a private pipe as pg_restore reads it, never to disk); a pg_restore new
///    enough for the server is found;
/// 2. its SHA-256 and size are compared with the manifest's (an archive that changed is
///    reported, and still restored, to say how bad the damage is), its table of contents is read
///    and counted per kind against the manifest's;
/// 3. master creates a throw-away login role `rdspg_verify_…` (a generated password held in
///    memory only, valid for a day) and a scratch database of the same name owned by it, with
///    the extensions the manifest lists;
/// 4. the archive is restored as that role ([`dump::restore_with`]: one transaction, ownership
///    and privileges left out), never as master or the project's role; each table's rows are
///    counted as that role and compared with the manifest;
/// 5. the scratch database and the role are dropped, whatever failed before;
/// 6. the outcome is written to the manifest (atomically) when the archive was examined.
///
/// Never panics and never returns early: everything is in the returned verification.
pub fn verify_archive(
    master: &mut Provisioner,
    archive: &Archive,
    identities: Option<&Identities>,
    tools_dir: Option<&Path>,
    progress: &mut dyn FnMut(&Progress),
) -> ArchiveVerification {
    let started = Instant::now();
    let mut v = ArchiveVerification {
        label: archive.group(),
        archive: Some(archive.clone()),
        result: Ok(()),
        recorded: false,
        tables: Vec::new(),
        restore: None,
        cleanup: None,
        duration: Duration::ZERO,
    };
    let manifest = &archive.manifest;
    let prepared = (|| -> Result<_> {
        if std::fs::symlink_metadata(&archive.path).is_err() {
            return Err(Error::NotFound {
                message: format!("archive {} does not exist", archive.path.display()),
                source: None,
            });
        }
        let pipe = match (&manifest.encryption, identities) {
            (None, _) => None,
            (Some(_), Some(ids)) => Some(DecryptingPipe::start(&archive.path, ids)?),
            (Some(_), None) => {
                return Err(Error::InvalidInput(format!(
                    "archive {} is encrypted: give the age identity file that decrypts it \
                     (--identity FILE)",
                    archive.path.display()
                )))
            }
        };
        let tool = tools::find(ClientProgram::PgRestore, master.facts().version, tools_dir)?;
        Ok((pipe, tool))
    })();
    let (pipe, tool) = match prepared {
        Ok(p) => p,
        Err(e) => {
            v.result = Err(e);
            v.duration = started.elapsed();
            return v;
        }
    };
    let source = pipe
        .as_ref()
        .map_or(archive.path.clone(), |p| p.path().to_owned());
    let mut problems = Vec::new();
    match archive_digest(&archive.path) {
        Ok((sha, bytes)) if sha == manifest.sha256 && bytes == manifest.bytes => {}
        Ok((sha, bytes)) => problems.push(format!(
            "the archive changed since it was written: it has {bytes} bytes with SHA-256 {sha}, \
             the manifest says {} bytes with SHA-256 {}",
            manifest.bytes, manifest.sha256
        )),
        Err(e) => problems.push(format!("its checksum cannot be computed: {e}")),
    }
    let toc = match dump::read_toc(&tool, &source) {
        Ok(toc) => {
            let counts = toc_counts(&toc);
            if counts != manifest.toc {
                let kinds: std::collections::BTreeSet<&String> =
                    counts.keys().chain(manifest.toc.keys()).collect();
                let differences: Vec<String> = kinds
                    .into_iter()
                    .filter_map(|k| {
                        let (have, want) = (
                            counts.get(k).copied().unwrap_or(0),
                            manifest.toc.get(k).copied().unwrap_or(0),
                        );
                        (have != want).then(|| format!("{k}: {have} (manifest: {want})"))
                    })
                    .collect();
                problems.push(format!(
                    "its table of contents differs from the manifest's: {}",
                    differences.join(", ")
                ));
            }
            Some(toc)
        }
        Err(e) => {
            problems.push(format!("its table of contents cannot be read: {e}"));
            None
        }
    };
    let mut stopped: Option<Error> = None;
    if toc.is_some() {
        match scratch_name() {
            Ok(name) => {
                match restore_as_throwaway(master, archive, &name, &source, &tool, progress) {
                    Ok((restore, tables, mut restore_problems)) => {
                        v.restore = restore;
                        v.tables = tables;
                        problems.append(&mut restore_problems);
                    }
                    Err(e) => stopped = Some(e),
                }
                v.cleanup = Some(cleanup(master, &name));
            }
            Err(e) => stopped = Some(e),
        }
    }
    if let Some(e) = pipe.as_ref().and_then(|p| p.error()) {
        if !problems.iter().any(|p| p.contains(&e)) {
            problems.push(e);
        }
    }
    drop(pipe);
    if let Some(e) = stopped {
        v.result = Err(e);
        v.duration = started.elapsed();
        return v;
    }
    let verification = Verification {
        state: if problems.is_empty() {
            VerificationState::Verified
        } else {
            VerificationState::Failed
        },
        at: Some(UtcTime::now()),
        server_version: Some(master.facts().version.to_string()),
        pg_restore: Some(ToolRecord {
            path: tool.path.clone(),
            version: tool.version.clone(),
        }),
        duration_ms: Some(started.elapsed().as_millis().try_into().unwrap_or(u64::MAX)),
        tables_checked: v.tables.len(),
        rows_restored: v
            .tables
            .iter()
            .filter(|t| t.extension.is_none())
            .filter_map(|t| t.restored)
            .sum(),
        problems: problems.clone(),
    };
    let mut recorded = archive.clone();
    recorded.manifest.verification = verification;
    match recorded.manifest.write(&recorded.manifest_path) {
        Ok(()) => {
            v.recorded = true;
            v.archive = Some(recorded);
        }
        Err(e) => problems.push(format!("the outcome could not be recorded: {e}")),
    }
    if !problems.is_empty() {
        v.result = Err(Error::BackupVerification {
            archive: archive.path.display().to_string(),
            problems,
        });
    }
    v.duration = started.elapsed();
    v
}

type Restored = (Option<RestoreReport>, Vec<TableCheck>, Vec<String>);

/// Creates the throw-away role and its scratch database, restores into it as the role and counts
/// the rows. `Err` when master could not create them (nothing was learned about the archive);
/// otherwise what failed is in the problems.
fn restore_as_throwaway(
    master: &mut Provisioner,
    archive: &Archive,
    name: &str,
    source: &Path,
    tool: &crate::dump::ClientTool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Restored> {
    let manifest = &archive.manifest;
    let password = Password::generate()?;
    let expires = UtcTime::now().plus(SCRATCH_ROLE_LIFETIME);
    master.ensure_user(
        &UserSpec::new(name)?
            .password(password.clone())
            .valid_until(expires.sql()),
    )?;
    let extensions = manifest
        .extensions
        .iter()
        .map(|e| Extension::from_name(e))
        .collect::<Result<Vec<_>>>()?;
    master.ensure_database(&DatabaseSpec::new(name, name)?.extensions(extensions))?;

    let m = master.options();
    let mut connection = ConnectOptions::new()
        .host(m.get_host())
        .port(m.get_port())
        .sslmode(m.get_sslmode())
        .application_name("rds-pg backup verify")
        .user(name)
        .dbname(name)
        .password(password);
    if let Some(ca) = m.get_sslrootcert() {
        connection = connection.sslrootcert(ca);
    }
    if let Some(timeout) = m.get_connect_timeout() {
        connection = connection.connect_timeout(timeout);
    }
    let mut options = RestoreOptions::new(connection.clone(), source);
    if let Some(dir) = tool.path.parent() {
        options = options.tools_dir(dir);
    }
    let mut problems = Vec::new();
    let report = match dump::restore_with(&options, None, progress) {
        Ok(report) => report,
        Err(e) => {
            problems.push(format!("it does not restore: {e}"));
            return Ok((None, Vec::new(), problems));
        }
    };
    let mut client = crate::connect::connect(&connection)?;
    let names: Vec<(&str, &str)> = manifest
        .tables
        .iter()
        .map(|t| (t.schema.as_str(), t.table.as_str()))
        .collect();
    let counts = dump::count_rows(&mut client, &names)?;
    let tables: Vec<TableCheck> = manifest
        .tables
        .iter()
        .zip(counts)
        .map(|(t, restored)| TableCheck {
            schema: t.schema.clone(),
            table: t.table.clone(),
            expected: t.rows,
            restored,
            extension: t.extension.clone(),
        })
        .collect();
    for t in tables.iter().filter(|t| !t.matches()) {
        let name = format!("{}.{}", t.schema, t.table);
        problems.push(match (t.expected, t.restored) {
            (_, None) => format!("table {name} is missing from the restored copy"),
            (None, Some(_)) => unreachable!("a table without a recorded count matches"),
            (Some(want), Some(have)) => {
                format!("table {name}: {have} rows restored, {want} in the dump's snapshot")
            }
        });
    }
    Ok((Some(report), tables, problems))
}

/// Drops the scratch database and the throw-away role (each attempted whatever the other did).
fn cleanup(master: &mut Provisioner, name: &str) -> Cleanup {
    let database_error = DatabaseName::new(name)
        .and_then(|db| master.drop_database(&db, &DropDatabaseOptions::new().force(true)))
        .err();
    let role_error = RoleName::new(name)
        .and_then(|role| master.drop_user(&role, &DropUserOptions::new()))
        .err();
    Cleanup {
        name: name.to_owned(),
        database_error,
        role_error,
    }
}
