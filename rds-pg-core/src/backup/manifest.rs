//! The manifest written next to every archive (`<UTC timestamp>.json`): what was dumped, by
//! which tools, its checksum, its table of contents and row counts, and what became of it since
//! (verification, upload). Rewritten atomically whenever it changes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::time::UtcTime;
use crate::dump::Toc;
use crate::error::{Error, Result};

/// The manifest format this version of rds-pg writes.
pub const MANIFEST_VERSION: u32 = 1;

/// File-name suffix of a manifest.
pub const MANIFEST_SUFFIX: &str = ".json";

/// Everything recorded about one archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] when written.
    pub manifest_version: u32,
    /// The inventory's client.
    pub client: String,
    /// The instance the database lives on.
    pub instance: String,
    /// The project it belongs to.
    pub project: String,
    /// The database dumped.
    pub database: String,
    /// The role that dumped it (the database's owner, never master).
    pub role: String,
    /// The archive's file (or directory) name, in the manifest's directory.
    pub archive: String,
    /// `custom` (one file) or `directory` (pg_dump `--jobs`).
    pub format: String,
    /// How the archive is encrypted, when it is.
    pub encryption: Option<Encryption>,
    /// SHA-256 of the archive as stored (lower-case hex): the file's, or for a directory the
    /// SHA-256 of its `sha256sum`-style listing (`<hex>  <path>\n` per file, sorted by path).
    pub sha256: String,
    /// The archive's size in bytes as stored (all files of a directory).
    pub bytes: u64,
    /// The server's version (`15.18`).
    pub server_version: String,
    /// The pg_dump that wrote it.
    pub pg_dump: ToolRecord,
    /// The rds-pg version that made the backup.
    pub rds_pg_version: String,
    /// When the dump started.
    pub started_at: UtcTime,
    /// When the archive and its checksum were complete.
    pub finished_at: UtcTime,
    /// Entries of the table of contents, per kind (`TABLE`, `TABLE DATA`, `INDEX`, …).
    pub toc: BTreeMap<String, usize>,
    /// Extensions installed in the database when it was dumped (`plpgsql` left out): those a
    /// verification creates in its scratch database.
    pub extensions: Vec<String>,
    /// Every table whose rows the archive holds, with its row count in the dump's snapshot and
    /// the planner's estimate (`pg_class.reltuples`).
    pub tables: Vec<TableRows>,
    /// The last verification.
    pub verification: Verification,
    /// The upload, when one was configured.
    pub upload: Option<UploadRecord>,
}

/// How an archive is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age` (<https://age-encryption.org/v1>).
    pub scheme: String,
    /// The recipients (public keys) it is encrypted to.
    pub recipients: Vec<String>,
}

/// A client program, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// Its path.
    pub path: PathBuf,
    /// The version it reports.
    pub version: String,
}

/// One table of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub table: String,
    /// Rows in the dump's snapshot (`count(*)` as the project user, in the snapshot pg_dump
    /// dumped); `None` when it could not be counted.
    pub rows: Option<i64>,
    /// `pg_class.reltuples` when the dump started; `None` when the table was never analyzed.
    pub estimated_rows: Option<i64>,
    /// The extension whose configuration table it is (PostGIS's `spatial_ref_sys`): pg_dump
    /// dumps only the rows the extension does not provide itself, while `rows` counts the whole
    /// table, as a restored copy (where the extension is created first) does too.
    #[serde(default)]
    pub extension: Option<String>,
}

/// Whether an archive is known to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    /// Never verified.
    #[default]
    Unverified,
    /// Restored into a scratch database, and the restored copy matched the manifest.
    Verified,
    /// The last verification failed.
    Failed,
}

impl VerificationState {
    /// `unverified`, `verified` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationState::Unverified => "unverified",
            VerificationState::Verified => "verified",
            VerificationState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for VerificationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The last verification of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Verification {
    /// The outcome.
    pub state: VerificationState,
    /// When it finished.
    pub at: Option<UtcTime>,
    /// The server it was restored on (`15.18`).
    pub server_version: Option<String>,
    /// The pg_restore that restored it.
    pub pg_restore: Option<ToolRecord>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Tables whose row counts were compared.
    pub tables_checked: usize,
    /// Rows found in the restored copy.
    pub rows_restored: i64,
    /// What failed (empty when verified).
    pub problems: Vec<String>,
}

/// An upload of the archive (and its manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UploadRecord {
    /// Whether it succeeded.
    pub uploaded: bool,
    /// The program (its arguments are not recorded).
    pub program: String,
    /// When it finished.
    pub at: UtcTime,
    /// What failed.
    pub error: Option<String>,
}

impl Manifest {
    /// Reads the manifest at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; [`Error::InvalidInput`] when it is not a manifest.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading manifest {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidInput(format!("{} is not a backup manifest: {e}", path.display()))
        })?;
        if manifest.manifest_version > MANIFEST_VERSION {
            return Err(Error::InvalidInput(format!(
                "{} is a version {} manifest; this rds-pg reads version {MANIFEST_VERSION}",
                path.display(),
                manifest.manifest_version
            )));
        }
        Ok(manifest)
    }

    /// Writes the manifest to `path`, replacing it atomically (mode `0600`).
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io("encoding a manifest", std::io::Error::other(e)))?;
        text.push('\n');
        crate::private_file::replace(path, text.as_bytes())
    }

    /// The number of table-of-contents entries.
    pub fn toc_entries(&self) -> usize {
        self.toc.values().sum()
    }

    /// Rows counted in the dump's snapshot, over the tables that are not an extension's.
    pub fn rows(&self) -> i64 {
        self.project_tables().filter_map(|t| t.rows).sum()
    }

    /// The tables that are not an extension's configuration tables.
    pub fn project_tables(&self) -> impl Iterator<Item = &TableRows> {
        self.tables.iter().filter(|t| t.extension.is_none())
    }
}

/// Entries of `toc` per kind, as a manifest records them.
pub fn toc_counts(toc: &Toc) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in &toc.entries {
        *counts.entry(entry.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 and size of an archive as stored: a file's, or a directory's listing (see
/// [`Manifest::sha256`]).
///
/// # Errors
/// [`Error::Io`] when it cannot be read.
pub fn archive_digest(path: &Path) -> Result<(String, u64)> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.is_dir() {
        return file_digest(path);
    }
    let mut files = Vec::new();
    collect_files(path, Path::new(""), &mut files)?;
    files.sort();
    let mut listing = String::new();
    let mut total = 0;
    for relative in files {
        let (sha, bytes) = file_digest(&path.join(&relative))?;
        total += bytes;
        listing.push_str(&format!("{sha}  {}\n", relative.display()));
    }
    Ok((hex(&Sha256::digest(listing.as_bytes())), total))
}

fn collect_files(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(relative);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = relative.join(entry.file_name());
        if entry.path().is_dir() {
            collect_files(root, &name, out)?;
        } else {
            out.push(name);
        }
    }
    Ok(())
}

/// SHA-256 and size of one file.
fn file_digest(path: &Path) -> Result<(String, u64)> {
    let context = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(context(), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(context(), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            client: "acme".into(),
            instance: "acme-prod".into(),
            project: "shop".into(),
            database: "shop".into(),
            role: "shop".into(),
            archive: "20261201T103000Z.dump".into(),
            format: "custom".into(),
            encryption: None,
            sha256: "00".repeat(32),
            bytes: 1234,
            server_version: "15.18".into(),
            pg_dump: ToolRecord {
                path: "/usr/lib/postgresql/15/bin/pg_dump".into(),
                version: "15.18".into(),
            },
            rds_pg_version: "0.1.0".into(),
            started_at: "2026-12-01T10:30:00Z".parse().unwrap(),
            finished_at: "2026-12-01T10:30:02Z".parse().unwrap(),
            toc: [("TABLE".to_owned(), 2), ("TABLE DATA".to_owned(), 2)].into(),
            extensions: vec!["hstore".into()],
            tables: vec![TableRows {
                schema: "public".into(),
                table: "places".into(),
                rows: Some(200),
                estimated_rows: None,
                extension: None,
            }],
            verification: Verification::default(),
            upload: None,
        }
    }

    #[test]
    fn manifests_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("20261201T103000Z.json");
        let manifest = sample();
        manifest.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), manifest);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"started_at\": \"2026-12-01T10:30:00Z\""),
            "{text}"
        );
        assert!(text.contains("\"state\": \"unverified\""), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(manifest.toc_entries(), 4);
        let mut newer = serde_json::to_value(&manifest).unwrap();
        newer["manifest_version"] = serde_json::json!(MANIFEST_VERSION + 1);
        std::fs::write(&path, newer.to_string()).unwrap();
        assert!(Manifest::read(&path)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        std::fs::write(&path, "{}").unwrap();
        assert_eq!(
            Manifest::read(&path).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn digests_of_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.dump");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(
            archive_digest(&file).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
                3
            )
        );
        let archive = dir.path().join("d");
        std::fs::create_dir(&archive).unwrap();
        std::fs::write(archive.join("toc.dat"), b"abc").unwrap();
        std::fs::write(archive.join("1.dat.gz"), b"").unwrap();
        let listing =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  1.dat.gz\n\
                       ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  toc.dat\n";
        assert_eq!(
            archive_digest(&archive).unwrap(),
            (hex(&Sha256::digest(listing.as_bytes())), 3)
        );
    }
}
