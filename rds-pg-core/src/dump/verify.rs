//! Verifying a backup: restore it into a scratch database, compare row counts with the source,
//! drop the scratch database.

use std::path::PathBuf;

use postgres::Client;
use postgres_protocol::escape::escape_identifier;

use super::restore::{
    choose_pg_restore, restore_with, restoring_role, Progress, RestoreOptions, RestoreReport,
};
use super::toc::Toc;
use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, MAX_NAME_BYTES};
use crate::provision::Provisioner;
use crate::spec::{DatabaseSpec, DropDatabaseOptions, Extension};
use crate::tunnel::SshForward;

/// What to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The project user's connection to the source database (the one that was dumped). The
    /// scratch database is owned by this user, who restores into it.
    pub source: ConnectOptions,
    /// The archive to verify.
    pub archive: PathBuf,
    /// Parallel restore jobs (`None`: one transaction).
    pub jobs: Option<u32>,
    /// Where `pg_restore` is (`None`: searched for).
    pub tools_dir: Option<PathBuf>,
    /// The scratch database's name (`None`: `<source>_verify_<random>`). It must not exist.
    pub scratch_database: Option<DatabaseName>,
    /// The extensions master creates in the scratch database before the restore. `None` (the
    /// default): the extensions installed in the source database now (read over the project
    /// user's connection; `plpgsql` left out), never the archive's list. An extension the
    /// archive uses that the scratch database then lacks fails the verification
    /// ([`Error::MissingExtensions`]).
    pub extensions: Option<Vec<Extension>>,
    /// An SSH forward to reach the server through, for the source and the scratch database:
    /// opened to the source's server when the verification starts, closed when it ends, on
    /// every path. Master's [`Provisioner`] keeps its own connection. `None`: direct.
    pub ssh: Option<SshForward>,
}

impl VerifyOptions {
    /// Verifies `archive` against the database `source` connects to.
    pub fn new(source: ConnectOptions, archive: impl Into<PathBuf>) -> Self {
        VerifyOptions {
            source,
            archive: archive.into(),
            jobs: None,
            tools_dir: None,
            scratch_database: None,
            extensions: None,
            ssh: None,
        }
    }

    /// Creates exactly `extensions` in the scratch database (instead of the source's).
    pub fn extensions(mut self, extensions: impl IntoIterator<Item = Extension>) -> Self {
        self.extensions = Some(extensions.into_iter().collect());
        self
    }

    crate::builder::setters! {
        /// Restores with `jobs` parallel jobs.
        jobs = some u32;
        /// Looks for `pg_restore` in `dir` only.
        tools_dir = some_into PathBuf;
        /// Reaches the source (and the scratch database) through an SSH forward, open for the
        /// verification only.
        ssh = some SshForward;
    }

    /// Names the scratch database.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name.
    pub fn scratch_database(mut self, name: impl Into<String>) -> Result<Self> {
        self.scratch_database = Some(DatabaseName::creatable(name)?);
        Ok(self)
    }
}

/// A table's row count in the source and in the restored copy (`None`: the table is missing
/// there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRowCount {
    /// The schema.
    pub schema: String,
    /// The table.
    pub table: String,
    /// Rows in the source database now.
    pub source: Option<i64>,
    /// Rows in the restored copy.
    pub restored: Option<i64>,
}

impl TableRowCount {
    /// Whether both sides have the table with the same number of rows.
    pub fn matches(&self) -> bool {
        self.source.is_some() && self.source == self.restored
    }
}

/// The result of [`verify_backup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The scratch database the archive was restored into.
    pub scratch_database: String,
    /// The restore.
    pub restore: RestoreReport,
    /// Row counts of every table the archive holds rows for.
    pub tables: Vec<TableRowCount>,
    /// Whether the scratch database was dropped afterwards.
    pub scratch_dropped: bool,
}

impl VerifyReport {
    /// The tables whose counts differ (or that are missing on one side).
    pub fn mismatches(&self) -> Vec<&TableRowCount> {
        self.tables.iter().filter(|t| !t.matches()).collect()
    }

    /// Whether every table matched.
    pub fn is_verified(&self) -> bool {
        self.mismatches().is_empty()
    }
}

/// Restores `options.archive` into a new scratch database owned by the source's user (created
/// and dropped by `master`, with the extensions of [`VerifyOptions::extensions`]: by default
/// those installed in the source database), then counts the rows of every table the archive
/// holds data for, in the source and in the copy.
///
/// Everything that touches the archive's content runs as the project user of `options.source`:
/// the restore (see [`restore_with`]: the user must hold no privilege beyond its own, checked
/// before the scratch database is created) and both row counts (a restored table's row-level
/// security policy or a view could run the project's code as whoever reads it). Master only
/// creates the scratch database with its extensions and drops it.
///
/// The source is counted as it is now: verify right after dumping, or expect the differences
/// that writes since the dump made. Differences are reported, not an error. The scratch database
/// is dropped whatever fails once it may exist: creating it or its extensions, the restore (a
/// broken archive, a killed pg_restore), counting; master's membership of the user is never left
/// behind (see [`Provisioner::ensure_database`]). The archive's table of contents is read (from
/// the archive itself, exactly, whatever the names hold) and the pg_restore chosen before
/// anything is created.
///
/// # Errors
/// [`Error::RestoreRole`] (kind `PolicyViolation`) for a privileged source user, before any
/// change; as [`restore_with`] and [`Provisioner::ensure_database`]; connection errors.
pub fn verify_backup(master: &mut Provisioner, options: &VerifyOptions) -> Result<VerifyReport> {
    verify_backup_with(master, options, &mut |_| {})
}

/// As [`verify_backup`], reporting the restore's progress (entries done / total) to `progress`.
///
/// # Errors
/// As [`verify_backup`].
pub fn verify_backup_with(
    master: &mut Provisioner,
    options: &VerifyOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<VerifyReport> {
    if let Some(forward) = &options.ssh {
        let tunnel = forward.open(&options.source)?;
        let through = VerifyOptions {
            source: tunnel.apply(options.source.clone()),
            ssh: None,
            ..options.clone()
        };
        return verify_backup_with(master, &through, progress);
    }
    // A pgpass line names the source database; the scratch database is another one, so the
    // password is looked up once, for the source, and used for both. A password command is
    // left to run again for each connection (an IAM token is per connection, never cached).
    let resolved;
    let from_pgpass = if options.source.get_password().is_none()
        && options.source.get_password_command().is_none()
    {
        options.source.resolve_password()?
    } else {
        None
    };
    let options = match from_pgpass {
        Some(password) => {
            resolved = VerifyOptions {
                source: options.source.clone().password(password),
                ..options.clone()
            };
            &resolved
        }
        _ => options,
    };
    let source_db = options.source.get_dbname().to_owned();
    let scratch = match &options.scratch_database {
        Some(name) => name.clone(),
        None => scratch_name(&source_db)?,
    };
    let user = options.source.get_user();

    let mut source = crate::connect::connect(&options.source)?;
    let server = ServerVersion::query(&mut source)?;
    // The archive's content will run as this user: refuse a privileged one before anything
    // changes (the restore checks again, with ownership, in the scratch database).
    restoring_role(&mut source)?.refuse_privileged()?;
    let exists = source
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_database
              WHERE datname OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[&scratch.as_str()],
        )?
        .is_some();
    if exists {
        return Err(Error::InvalidInput(format!(
            "scratch database {:?} already exists; verify_backup creates and drops its own",
            scratch.as_str()
        )));
    }
    let extensions = match &options.extensions {
        Some(named) => named.clone(),
        None => installed_extensions(&mut source)?,
    };
    drop(source);
    let toc = Toc::read_archive(&options.archive)?;
    choose_pg_restore(server, options.tools_dir.as_deref(), &toc, &options.archive)?;
    let spec = DatabaseSpec::new(scratch.as_str(), user.as_str())?.extensions(extensions);

    // From here on the scratch database may exist: whatever fails, it is dropped.
    let result = master
        .ensure_database(&spec)
        .and_then(|_| restore_and_count(options, &scratch, &toc, progress));
    let dropped = master.drop_database(&scratch, &DropDatabaseOptions::new().force(true));
    let (restore, tables) = result?;
    dropped?;
    Ok(VerifyReport {
        scratch_database: scratch.as_str().to_owned(),
        restore,
        tables,
        scratch_dropped: true,
    })
}

fn restore_and_count(
    options: &VerifyOptions,
    scratch: &DatabaseName,
    toc: &Toc,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(RestoreReport, Vec<TableRowCount>)> {
    let mut restore_options = RestoreOptions::new(
        options.source.for_database(scratch.as_str()),
        &options.archive,
    );
    restore_options.jobs = options.jobs;
    restore_options.tools_dir = options.tools_dir.clone();
    let report = restore_with(&restore_options, None, progress)?;

    let tables = toc.tables_with_data();
    let mut source = crate::connect::connect(&options.source)?;
    let mut copy = crate::connect::connect(&restore_options.connection)?;
    let source_counts = count_rows(&mut source, &tables)?;
    let copy_counts = count_rows(&mut copy, &tables)?;
    let counts = tables
        .iter()
        .zip(source_counts.into_iter().zip(copy_counts))
        .map(|((schema, table), (source, restored))| TableRowCount {
            schema: (*schema).to_owned(),
            table: (*table).to_owned(),
            source,
            restored,
        })
        .collect();
    Ok((report, counts))
}

/// The extensions installed in the database `client` is connected to (`plpgsql`, which every
/// database has, left out), by name.
fn installed_extensions(client: &mut Client) -> Result<Vec<Extension>> {
    client
        .query(
            "SELECT extname::pg_catalog.text FROM pg_catalog.pg_extension
              WHERE extname OPERATOR(pg_catalog.<>) 'plpgsql'
              ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|row| Extension::from_name(row.get(0)))
        .collect()
}

/// Row counts of `tables` over `client` (the project user's connection, never master's: reading
/// a table can run the project's code), `None` for a table that does not exist there.
pub(crate) fn count_rows(client: &mut Client, tables: &[(&str, &str)]) -> Result<Vec<Option<i64>>> {
    let mut counts = Vec::with_capacity(tables.len());
    for (schema, table) in tables {
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                  WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text
                    AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.text",
                &[schema, table],
            )?
            .is_some();
        if !exists {
            counts.push(None);
            continue;
        }
        let sql = format!(
            "SELECT pg_catalog.count(*) FROM ONLY {}.{}",
            escape_identifier(schema),
            escape_identifier(table)
        );
        counts.push(Some(client.query_one(&sql, &[])?.get(0)));
    }
    Ok(counts)
}

/// `<source>_verify_<8 hex digits>`, the source part shortened to fit 63 bytes.
fn scratch_name(source: &str) -> Result<DatabaseName> {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random)
        .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
    let suffix = format!(
        "_verify_{}",
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut prefix = source.to_owned();
    while prefix.len() + suffix.len() > MAX_NAME_BYTES {
        prefix.pop();
    }
    DatabaseName::creatable(format!("{prefix}{suffix}"))
}
