//! Logical backups of a fleet, outside RDS: one archive per project database, made as the
//! project's own role, kept under a policy, verified by restoring it as a throw-away role.
//!
//! ```text
//! DIR/<client>/<instance>/<database>/20261201T103000Z.dump        the archive (pg_dump custom)
//! DIR/<client>/<instance>/<database>/20261201T103000Z.dump.age    … or encrypted to age keys
//! DIR/<client>/<instance>/<database>/20261201T103000Z.json        its manifest
//! ```
//!
//! - [`run`]: for each database of the inventory (or of one instance or project), reads the
//!   owner's credentials back from where the inventory says they were delivered, exports a
//!   snapshot as that role, dumps it with pg_dump in that snapshot and counts every table's rows
//!   in it, then writes the manifest ([`Manifest`]: checksum, size, tools, times, table of
//!   contents per kind, rows and row estimates) and uploads both when asked. Master is never
//!   used. A failing database does not stop the others.
//! - [`verify`]: restores an archive into a scratch database owned by a throw-away role that
//!   master creates for it (with a password only rds-pg holds, in memory), as that role, and
//!   compares the checksum, the table of contents and every table's row count with the
//!   manifest; records the outcome in the manifest; drops the database and the role whatever
//!   happened.
//! - [`prune`]: removes what a [`RetentionPolicy`] does not keep, per database, never the newest
//!   verified archive; [`retention::plan`] is the pure decision.
//! - [`list`]: the archives under a directory, with their verification state.
//!
//! ```no_run
//! use rds_pg_core::backup::{self, BackupRunOptions, BackupVerifyOptions};
//! use rds_pg_core::{ConnectOptions, Inventory};
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! let inventory = Inventory::load("fleet.toml")?;
//! let tls = ConnectOptions::from_env()?; // sslmode and sslrootcert for every connection
//! let run = backup::run(&inventory, &BackupRunOptions::new(tls.clone()).root("/srv/backups"))?;
//! for db in &run.databases {
//!     match &db.result {
//!         Ok(done) => println!("{}: {}", db.target.database, done.archive.path.display()),
//!         Err(e) => eprintln!("{}: {e}", db.target.database),
//!     }
//! }
//! let verified = backup::verify(&inventory, &BackupVerifyOptions::new(tls).root("/srv/backups"))?;
//! assert!(verified.succeeded());
//! # Ok(())
//! # }
//! ```

mod encrypt;
mod manifest;
pub mod retention;
mod run;
mod source;
mod time;
mod upload;
mod verify;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::{Error, Result};

pub use encrypt::{with_decrypted, Identities, Recipient, ENCRYPTED_SUFFIX};
pub use manifest::{
    archive_digest, toc_counts, Encryption, Manifest, TableRows, ToolRecord, UploadRecord,
    Verification, VerificationState, MANIFEST_SUFFIX, MANIFEST_VERSION,
};
pub use retention::{KeepReason, RetentionPolicy, Rule};
pub use run::{
    run, run_with, BackedUp, BackupRunOptions, BackupRunReport, DatabaseBackup, RunEvent,
};
pub use source::{credential_source, master_options, project_options, CredentialSource};
pub use time::{CivilTime, UtcTime};
pub use upload::{UploadCommand, UploadNames, UPLOAD_PLACEHOLDERS};
pub use verify::{
    verify, verify_archive, verify_with, ArchiveVerification, BackupVerifyOptions,
    BackupVerifyReport, Cleanup, TableCheck, VerifyEvent, SCRATCH_PREFIX,
};

/// The inventory's backup settings (`[policy]` keys `backup_dir`, `backup_keep_last`,
/// `backup_keep_daily`, `backup_keep_weekly`, `backup_keep_monthly`, `backup_keep_yearly`,
/// `backup_encrypt_to`, `backup_upload`; a client's `backup_encrypt_to` replaces the policy's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupPolicy {
    /// Where archives go when the command line does not say.
    pub dir: Option<PathBuf>,
    /// What `backup prune` keeps when the command line does not say.
    pub retention: RetentionPolicy,
    /// The age recipients archives are encrypted to (none: not encrypted).
    pub encrypt_to: Vec<String>,
    /// The command each archive and manifest is uploaded with (see [`UploadCommand`]).
    pub upload: Option<Vec<OsString>>,
}

/// Which databases an operation covers: all, or those of one instance, project or database
/// name (combined: all must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this instance's databases.
    pub instance: Option<String>,
    /// Only this project's.
    pub project: Option<String>,
    /// Only databases of this name.
    pub database: Option<String>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Selection {
        Selection::default()
    }

    /// Whether a database of `project` named `database` on `instance` is selected.
    pub fn matches(&self, instance: &str, project: &str, database: &str) -> bool {
        self.instance.as_deref().is_none_or(|i| i == instance)
            && self.project.as_deref().is_none_or(|p| p == project)
            && self.database.as_deref().is_none_or(|d| d == database)
    }

    /// Checks that the instance and project named exist in `inventory`.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming what the inventory lacks.
    pub fn check(&self, inventory: &crate::Inventory) -> Result<()> {
        if let Some(i) = &self.instance {
            if inventory.instance(i).is_none() {
                return Err(not_found(format!("the inventory has no instance {i:?}")));
            }
        }
        if let Some(p) = &self.project {
            if inventory.project(p).is_none() {
                return Err(not_found(format!("the inventory has no project {p:?}")));
            }
        }
        Ok(())
    }
}

fn not_found(message: String) -> Error {
    Error::NotFound {
        message,
        source: None,
    }
}

/// Bytes kept as they are in a path component: letters, digits, `-`, `_`, `.`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// `name` as one path component: percent-encoded except letters, digits, `-`, `_` and `.`, and a
/// leading `.` encoded too (so no name is `.`, `..` or hidden).
pub fn path_component(name: &str) -> String {
    let encoded = utf8_percent_encode(name, COMPONENT).to_string();
    match encoded.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => encoded,
    }
}

/// The directory of a database's archives: `root/<client>/<instance>/<database>`.
pub fn database_dir(root: &Path, client: &str, instance: &str, database: &str) -> PathBuf {
    root.join(path_component(client))
        .join(path_component(instance))
        .join(path_component(database))
}

/// An archive and its manifest, as found under a backup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// The archive (file or directory).
    pub path: PathBuf,
    /// What the manifest says.
    pub manifest: Manifest,
}

impl Archive {
    /// Reads the manifest at `manifest_path`; the archive is the file it names next to it.
    ///
    /// # Errors
    /// As [`Manifest::read`]; [`Error::InvalidInput`] for a manifest naming a file elsewhere.
    pub fn read(manifest_path: &Path) -> Result<Archive> {
        let manifest = Manifest::read(manifest_path)?;
        let name = Path::new(&manifest.archive);
        let plain = name.components().count() == 1
            && matches!(
                name.components().next(),
                Some(std::path::Component::Normal(_))
            );
        if !plain {
            return Err(Error::InvalidInput(format!(
                "manifest {} names the archive {:?}, which is not a file next to it",
                manifest_path.display(),
                manifest.archive
            )));
        }
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        Ok(Archive {
            manifest_path: manifest_path.to_owned(),
            path: dir.join(name),
            manifest,
        })
    }

    /// Finds the archive of `path`: a manifest, or an archive with its manifest next to it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no manifest is found; as [`Archive::read`].
    pub fn find(path: &Path) -> Result<Archive> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else {
            return Err(not_found(format!("{} names no archive", path.display())));
        };
        if name.ends_with(MANIFEST_SUFFIX) {
            return Archive::read(path);
        }
        let stamp = name.split('.').next().unwrap_or_default();
        let manifest_path = path.with_file_name(format!("{stamp}{MANIFEST_SUFFIX}"));
        if !manifest_path.is_file() {
            return Err(not_found(format!(
                "no manifest {} next to the archive {}",
                manifest_path.display(),
                path.display()
            )));
        }
        let archive = Archive::read(&manifest_path)?;
        if archive.manifest.archive != name {
            return Err(not_found(format!(
                "the manifest {} is about {}, not {name}",
                manifest_path.display(),
                archive.manifest.archive
            )));
        }
        Ok(archive)
    }

    /// `client/instance/database`: the group retention decides in.
    pub fn group(&self) -> String {
        let m = &self.manifest;
        format!("{}/{}/{}", m.client, m.instance, m.database)
    }
}

/// What [`list`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The archives, by client, instance, database, then oldest first.
    pub archives: Vec<Archive>,
    /// Manifests that could not be read, and why: never touched by [`prune`].
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The archives under `root` (`<client>/<instance>/<database>/<timestamp>.json`) that `selection`
/// covers (its project is matched against each manifest's).
///
/// # Errors
/// [`Error::NotFound`] when `root` is not a directory; [`Error::Io`] when it cannot be listed.
pub fn list(root: &Path, selection: &Selection) -> Result<Listing> {
    if !root.is_dir() {
        return Err(not_found(format!(
            "backup directory {} does not exist",
            root.display()
        )));
    }
    let mut listing = Listing::default();
    for client in subdirs(root)? {
        for instance in subdirs(&client)? {
            for database in subdirs(&instance)? {
                let entries = std::fs::read_dir(&database)
                    .map_err(|e| Error::io(format!("listing {}", database.display()), e))?;
                for entry in entries {
                    let entry = entry
                        .map_err(|e| Error::io(format!("listing {}", database.display()), e))?;
                    let path = entry.path();
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let Some(stamp) = name.strip_suffix(MANIFEST_SUFFIX) else {
                        continue;
                    };
                    if UtcTime::parse_compact(stamp).is_err() || !path.is_file() {
                        continue;
                    }
                    match Archive::read(&path) {
                        Ok(archive) => {
                            let m = &archive.manifest;
                            if selection.matches(&m.instance, &m.project, &m.database) {
                                listing.archives.push(archive);
                            }
                        }
                        Err(e) => listing.unreadable.push((path, e.to_string())),
                    }
                }
            }
        }
    }
    listing.archives.sort_by(|a, b| {
        (a.group(), a.manifest.started_at, &a.manifest_path).cmp(&(
            b.group(),
            b.manifest.started_at,
            &b.manifest_path,
        ))
    });
    listing.unreadable.sort();
    Ok(listing)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// What to prune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOptions {
    /// What to keep.
    pub policy: RetentionPolicy,
    /// List what would be removed, and remove nothing.
    pub dry_run: bool,
    /// Which databases' archives.
    pub selection: Selection,
}

impl PruneOptions {
    /// Prunes every database's archives with `policy`.
    pub fn new(policy: RetentionPolicy) -> PruneOptions {
        PruneOptions {
            policy,
            dry_run: false,
            selection: Selection::all(),
        }
    }

    crate::builder::setters! {
        /// Lists what would be removed and removes nothing.
        dry_run = bool;
        /// Prunes only `selection`'s archives.
        selection = Selection;
    }
}

/// The decision about one archive, and what became of it.
#[derive(Debug)]
pub struct PruneDecision {
    /// The archive.
    pub archive: Archive,
    /// Why it is kept; empty when it goes.
    pub reasons: Vec<KeepReason>,
    /// Whether it was removed (never in a dry run).
    pub removed: bool,
    /// Why it could not be removed.
    pub error: Option<Error>,
}

impl PruneDecision {
    /// Whether the policy keeps it.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// What [`prune`] decided and did.
#[derive(Debug)]
pub struct PruneReport {
    /// The backup directory.
    pub root: PathBuf,
    /// The policy applied.
    pub policy: RetentionPolicy,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Every archive, per database, newest first.
    pub decisions: Vec<PruneDecision>,
    /// Manifests that could not be read (their archives are left alone).
    pub unreadable: Vec<(PathBuf, String)>,
}

impl PruneReport {
    /// The archives that go (or would go).
    pub fn removals(&self) -> impl Iterator<Item = &PruneDecision> {
        self.decisions.iter().filter(|d| !d.keep())
    }

    /// Whether every removal that was due succeeded.
    pub fn succeeded(&self) -> bool {
        self.decisions.iter().all(|d| d.error.is_none())
    }
}

/// Applies `options.policy` to the archives under `root`, per database ([`retention::plan`]):
/// removes each archive it does not keep (the archive first, then its manifest), never the
/// newest verified one. A dry run removes nothing and lists exactly what would go.
///
/// # Errors
/// As [`list`]. An archive that cannot be removed is reported in its decision.
pub fn prune(root: &Path, options: &PruneOptions) -> Result<PruneReport> {
    let listing = list(root, &options.selection)?;
    let candidates: Vec<retention::Candidate<usize>> = listing
        .archives
        .iter()
        .enumerate()
        .map(|(i, a)| retention::Candidate {
            key: i,
            group: a.group(),
            time: a.manifest.started_at,
            verification: a.manifest.verification.state,
        })
        .collect();
    let plan = retention::plan(&candidates, &options.policy);
    let mut decisions = Vec::with_capacity(plan.len());
    for decision in plan {
        let archive = listing.archives[decision.key].clone();
        let mut d = PruneDecision {
            archive,
            reasons: decision.reasons,
            removed: false,
            error: None,
        };
        if !d.keep() && !options.dry_run {
            match remove_archive(&d.archive) {
                Ok(()) => d.removed = true,
                Err(e) => d.error = Some(e),
            }
        }
        decisions.push(d);
    }
    Ok(PruneReport {
        root: root.to_owned(),
        policy: options.policy,
        dry_run: options.dry_run,
        decisions,
        unreadable: listing.unreadable,
    })
}

fn remove_archive(archive: &Archive) -> Result<()> {
    let path = &archive.path;
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
    }
    std::fs::remove_file(&archive.manifest_path)
        .map_err(|e| Error::io(format!("removing {}", archive.manifest_path.display()), e))
}

/// Creates `dir` and its missing parents with mode `0700`.
pub(crate) fn create_private_dirs(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_path_components() {
        assert_eq!(path_component("shop"), "shop");
        assert_eq!(path_component("acme-prod.v2_x"), "acme-prod.v2_x");
        assert_eq!(path_component("my db/..\\"), "my%20db%2F..%5C");
        assert_eq!(path_component(".."), "%2E.");
        assert_eq!(path_component(".hidden"), "%2Ehidden");
        assert_eq!(path_component("Ünï"), "%C3%9Cn%C3%AF");
        assert_eq!(
            database_dir(Path::new("/b"), "acme", "acme-prod", "a/b"),
            Path::new("/b/acme/acme-prod/a%2Fb")
        );
        let s = Selection {
            instance: Some("i".into()),
            ..Selection::all()
        };
        assert!(s.matches("i", "p", "d") && !s.matches("j", "p", "d"));
    }
}
