//! Restoring an archive as the project user: check that the restoring role is the target's
//! owner and holds no privilege beyond it, read the archive's table of contents, leave out what
//! the user cannot and need not restore, run pg_restore on the rest in one transaction.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::Client;

use super::archive::{major_of, ArchiveVersion};
use super::toc::{EntryKind, Toc, TocEntry};
use super::tools::{self, ClientProgram, ClientTool, ToolWorkDir};
use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::ident::DatabaseName;
use crate::provision::Provisioner;
use crate::spec::Extension;
use crate::tunnel::SshForward;

/// What to restore, where to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// How to connect: the restoring user and, as dbname, the existing target database. The
    /// user must be the target's owner and hold no privilege beyond it (see [`restore_with`]):
    /// whatever the archive holds runs with this user's privileges.
    pub connection: ConnectOptions,
    /// The archive: a custom-format file or a directory-format directory.
    pub archive: PathBuf,
    /// `None` or `Some(1)`: one transaction (`--single-transaction`: any error rolls everything
    /// back). `Some(n)` above one: `n` parallel jobs, which pg_restore cannot run as one
    /// transaction; the first error still stops it (`--exit-on-error`), but what was restored
    /// before stays.
    pub jobs: Option<u32>,
    /// Where `pg_restore` (and psql, for [`RestoreRoute::ScriptThroughPsql`]) is; `None`
    /// searches the directories of `RDS_PG_TOOLS_DIRS`, `PATH`, then `/usr/lib/postgresql/*/bin`
    /// ([`tools::search_dirs`]). A configured directory is the only place searched.
    pub tools_dir: Option<PathBuf>,
    /// Extensions master may create in the target before the restore (with the ones they
    /// require), when the target lacks them: the only extensions created on the restore's
    /// behalf. An extension the archive uses that the target lacks and that is not named here
    /// fails the restore ([`Error::MissingExtensions`]) before anything changes. Default none.
    pub create_extensions: Vec<Extension>,
    /// An SSH forward to reach the server through: opened to the connection's server when the
    /// restore starts, closed when it ends, on every path; pg_restore (or psql) goes through it.
    /// Master's [`Provisioner`], when given, keeps its own connection. `None`: direct.
    pub ssh: Option<SshForward>,
}

impl RestoreOptions {
    /// Restores `archive` into the database `connection` names, in one transaction, tools
    /// searched for, no extension created.
    pub fn new(connection: ConnectOptions, archive: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            connection,
            archive: archive.into(),
            jobs: None,
            tools_dir: None,
            create_extensions: Vec::new(),
            ssh: None,
        }
    }

    /// Names extensions master may create in the target first, when it lacks them (added to
    /// those already named; needs master's [`Provisioner`] in [`restore_with`]).
    pub fn create_extensions(mut self, extensions: impl IntoIterator<Item = Extension>) -> Self {
        self.create_extensions.extend(extensions);
        self
    }

    /// Restores into `database` instead of the connection's database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.connection = self.connection.for_database(database);
        self
    }

    crate::builder::setters! {
        /// Sets the number of parallel jobs (above one: not one transaction).
        jobs = some u32;
        /// Looks for `pg_restore` in `dir` only.
        tools_dir = some_into PathBuf;
        /// Restores through an SSH forward, open for the restore only.
        ssh = some SshForward;
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
    /// The extension is one the caller named for master to create in the target before the
    /// restore ([`RestoreOptions::create_extensions`]).
    ExtensionCreatedFirst {
        /// The extension.
        extension: String,
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
            SkipReason::ExtensionCreatedFirst { extension } => write!(
                f,
                "extension {extension} is created by master before the restore (named by the caller)"
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

/// How far a dump or a restore has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Tables dumped, or entries restored, so far.
    pub done: usize,
    /// Tables to dump, or entries to restore.
    pub total: usize,
    /// The tool's line about what it is on (`dumping contents of table "public.places"`,
    /// `creating TABLE "public.places"`).
    pub message: String,
    /// A dump's archive size so far, in bytes (all files of a directory archive; see
    /// [`super::archive_size`]); `None` for a restore.
    pub bytes: Option<u64>,
}

/// What a restore would do: the archive's entries, those left out and why, the extensions master
/// would create first and those the target lacks.
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
    /// Extensions named in [`RestoreOptions::create_extensions`] (and those they require) that
    /// the target lacks: master creates them before pg_restore runs.
    pub create_extensions: Vec<String>,
    /// Extensions the archive uses that the target lacks and that are not named for master to
    /// create: the restore refuses ([`Error::MissingExtensions`]) until master creates them or
    /// they are named.
    pub missing_extensions: Vec<String>,
    /// How pg_restore's SQL reaches the server.
    pub route: RestoreRoute,
}

/// How pg_restore's SQL reaches the target server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreRoute {
    /// pg_restore connects to the target itself (the usual way).
    Direct,
    /// pg_restore 17 or newer into a server older than 17 (an archive only such a pg_restore
    /// reads, with no pg_restore of the server's major version installed): pg_restore always sets
    /// `transaction_timeout`, which those servers reject. pg_restore then writes the SQL script
    /// instead (`--file=-`, its psql meta-commands locked by `\restrict` with a random key), rds-pg
    /// leaves out that one `SET transaction_timeout = 0;` line of the script's fixed preamble,
    /// and this psql (of pg_restore's major version) runs the rest as the restoring user in one
    /// transaction (`--single-transaction`, `ON_ERROR_STOP`): a failure of either program
    /// rolls everything back. Parallel jobs are not used.
    ScriptThroughPsql {
        /// The psql that runs the script.
        psql: ClientTool,
    },
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
                    one_line(&s.reason.to_string()),
                    entry.list_line()
                )),
                None => out.push_str(&format!("{}\n", entry.list_line())),
            }
        }
        out
    }
}

/// `text` with line breaks (and other control characters) as spaces: a list file line is one
/// line whatever a name holds (pg_restore reads each line's leading dump id only).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A name as pg_dump writes it in a comment's tag (`fmtId`): double quotes removed and doubled
/// ones undone (`"my s"` → `my s`, `"a""b"` → `a"b`); a bare name as it is.
fn unquote(name: &str) -> String {
    match name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .filter(|n| !n.is_empty())
    {
        Some(inner) => inner.replace("\"\"", "\""),
        None => name.to_owned(),
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
    /// Extensions master created in the target first: those named in
    /// [`RestoreOptions::create_extensions`] (and the ones they require) that it lacked.
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
    /// How its SQL reached the server (through psql for a server older than pg_restore 17+).
    pub route: RestoreRoute,
    /// Warnings pg_restore printed (its progress lines left out); empty for a clean restore.
    pub warnings: Vec<String>,
}

/// `pg_restore --list <archive>`: the table of contents, without connecting anywhere.
pub fn list_command(tool: &ClientTool, archive: &Path) -> Command {
    let mut cmd = tools::tool_command(&tool.path);
    cmd.arg("--list").arg(positional(archive));
    cmd
}

/// Reads and parses the table of contents of `archive` with `tool` (`pg_restore --list`).
///
/// The listing quotes nothing: a schema, name or owner holding a space cannot be told from the
/// next field (see [`Toc::parse`]). rds-pg itself reads the table of contents from the archive
/// with [`Toc::read_archive`], which is exact.
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
pub(crate) fn positional(path: &Path) -> PathBuf {
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
    /// The extensions' configuration tables.
    pub config_tables: Vec<ConfigTable>,
    /// Every schema.
    pub schemas: Vec<TargetSchema>,
}

/// An extension's configuration table in the target, as the restoring user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigTable {
    pub schema: String,
    pub table: String,
    pub owner: String,
    /// Whether the restoring user may insert into it.
    pub writable: bool,
}

/// A schema in the target, as the restoring user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetSchema {
    pub name: String,
    pub owner: String,
    /// Whether the restoring user can act as its owner.
    pub usable: bool,
}

/// The archive's entries sorted by [`filter_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilteredEntries {
    /// The entries to restore, in the archive's order.
    pub kept: Vec<TocEntry>,
    /// The entries left out, and why.
    pub skipped: Vec<SkippedEntry>,
    /// The archive's extensions the target lacks and that are not created first.
    pub missing: Vec<String>,
}

fn target_facts(client: &mut Client) -> Result<TargetFacts> {
    let mut facts = TargetFacts::default();
    for row in client.query(
        "SELECT extname::pg_catalog.text FROM pg_catalog.pg_extension",
        &[],
    )? {
        facts.extensions.insert(row.get(0));
    }
    let rows = client.query(
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text,
                pg_catalog.pg_get_userbyid(c.relowner)::pg_catalog.text,
                pg_catalog.has_table_privilege(c.oid, 'INSERT')
           FROM pg_catalog.pg_extension e
          CROSS JOIN LATERAL pg_catalog.unnest(e.extconfig) AS cfg(reloid)
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) cfg.reloid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace",
        &[],
    )?;
    for row in rows {
        facts.config_tables.push(ConfigTable {
            schema: row.get(0),
            table: row.get(1),
            owner: row.get(2),
            writable: row.get(3),
        });
    }
    let rows = client.query(
        "SELECT nspname::pg_catalog.text, pg_catalog.pg_get_userbyid(nspowner)::pg_catalog.text,
                pg_catalog.pg_has_role(nspowner, 'USAGE')
           FROM pg_catalog.pg_namespace",
        &[],
    )?;
    for row in rows {
        facts.schemas.push(TargetSchema {
            name: row.get(0),
            owner: row.get(1),
            usable: row.get(2),
        });
    }
    Ok(facts)
}

/// Sorts the archive's entries into kept and skipped for a target where master first creates
/// the extensions in `created_first`, and lists the archive's extensions the target lacks
/// otherwise. Pure: extensions the target has (or master creates first), their comments and
/// the configuration rows of extensions master owns are left out, as are ownership and ACLs.
pub(crate) fn filter_entries(
    toc: &Toc,
    target: &TargetFacts,
    created_first: &BTreeSet<String>,
) -> FilteredEntries {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    let mut missing = Vec::new();
    let present = |ext: &str| target.extensions.contains(ext) || created_first.contains(ext);
    for entry in &toc.entries {
        let reason = match &entry.kind {
            EntryKind::Extension => {
                if target.extensions.contains(&entry.name) {
                    Some(SkipReason::ExtensionExists {
                        extension: entry.name.clone(),
                    })
                } else if created_first.contains(&entry.name) {
                    Some(SkipReason::ExtensionCreatedFirst {
                        extension: entry.name.clone(),
                    })
                } else {
                    missing.push(entry.name.clone());
                    None
                }
            }
            EntryKind::Acl | EntryKind::DefaultAcl => Some(SkipReason::Privileges),
            EntryKind::Comment => match entry.target().map(|(kind, name)| (kind, unquote(name))) {
                Some(("EXTENSION", ext)) if present(&ext) => {
                    Some(SkipReason::ExtensionComment { extension: ext })
                }
                Some(("SCHEMA", schema)) => target
                    .schemas
                    .iter()
                    .find(|s| s.name == schema && !s.usable)
                    .map(|s| SkipReason::SchemaNotOwned {
                        schema: s.name.clone(),
                        owner: s.owner.clone(),
                    }),
                _ => None,
            },
            EntryKind::TableData => target
                .config_tables
                .iter()
                .find(|t| {
                    Some(t.schema.as_str()) == entry.schema.as_deref()
                        && t.table == entry.name
                        && !t.writable
                })
                .map(|t| SkipReason::ExtensionConfigData {
                    table: format!("{}.{}", t.schema, t.table),
                    owner: t.owner.clone(),
                }),
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
    FilteredEntries {
        kept,
        skipped,
        missing,
    }
}

/// Roles whose members rds-pg never lets restore an archive (membership, direct or through any
/// chain, gives powers beyond a database owner's; those a server lacks are ignored): the roles a
/// project role is never a member of.
pub use crate::inspect::PRIVILEGED_ROLES;

/// The role a restore logs in as, as the target database sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoringRole {
    /// The login (session) role: what an archive entry's `RESET ROLE` returns to.
    pub role: String,
    /// The connected database.
    pub database: String,
    /// Its owner.
    pub owner: String,
    /// Whether the role is the owner.
    pub is_owner: bool,
    /// What makes the role privileged: its own attributes (`CREATEROLE`) and the roles it is a
    /// member of that are privileged (`member of rds_superuser`, `member of master (CREATEDB,
    /// CREATEROLE)`). Empty for an ordinary project role.
    pub privileges: Vec<String>,
}

/// Reads, over `client`, who the session's login role is, whether it owns the connected
/// database and what makes it privileged: SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or
/// BYPASSRLS on itself or on any role it is a member of (directly or through any chain, whatever
/// the INHERIT and SET options: an archive entry can `SET ROLE`), or membership of a role in
/// [`PRIVILEGED_ROLES`].
pub(crate) fn restoring_role(client: &mut Client) -> Result<RestoringRole> {
    let row = client.query_one(
        "SELECT s.rolname::pg_catalog.text, pg_catalog.current_database()::pg_catalog.text,
                pg_catalog.pg_get_userbyid(d.datdba)::pg_catalog.text,
                d.datdba OPERATOR(pg_catalog.=) s.oid
           FROM pg_catalog.pg_database d, pg_catalog.pg_roles s
          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
            AND s.rolname OPERATOR(pg_catalog.=) SESSION_USER",
        &[],
    )?;
    let named: Vec<&str> = PRIVILEGED_ROLES.to_vec();
    let rows = client.query(
        "SELECT r.rolname::pg_catalog.text, r.rolname OPERATOR(pg_catalog.=) SESSION_USER,
                r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls
           FROM pg_catalog.pg_roles r
          WHERE pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER')
            AND (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                 OR r.rolbypassrls
                 OR r.rolname::pg_catalog.text OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[]))
          ORDER BY 2 DESC, 1",
        &[&named],
    )?;
    let mut privileges = Vec::new();
    for r in rows {
        let (name, itself): (String, bool) = (r.get(0), r.get(1));
        let attributes: Vec<&str> = [
            "SUPERUSER",
            "CREATEROLE",
            "CREATEDB",
            "REPLICATION",
            "BYPASSRLS",
        ]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| r.get::<_, bool>(i + 2))
        .map(|(_, a)| a)
        .collect();
        if itself {
            privileges.extend(attributes.into_iter().map(str::to_owned));
        } else if attributes.is_empty() {
            privileges.push(format!("member of {name}"));
        } else {
            privileges.push(format!("member of {name} ({})", attributes.join(", ")));
        }
    }
    Ok(RestoringRole {
        role: row.get(0),
        database: row.get(1),
        owner: row.get(2),
        is_owner: row.get(3),
        privileges,
    })
}

impl RestoringRole {
    /// The refusal when the role is privileged ([`Error::RestoreRole`]).
    pub(crate) fn refuse_privileged(&self) -> Result<()> {
        if self.privileges.is_empty() {
            Ok(())
        } else {
            Err(self.refusal())
        }
    }

    /// The refusal when the role is not the owner or is privileged ([`Error::RestoreRole`]).
    pub(crate) fn refuse_unless_owner(&self) -> Result<()> {
        self.refuse_privileged()?;
        if self.is_owner {
            Ok(())
        } else {
            Err(self.refusal())
        }
    }

    fn refusal(&self) -> Error {
        let hint = if self.is_owner {
            "restore into a database owned by a project user that holds none of these \
             privileges (`rds-pg db create DB --owner USER`), connected as that user: e.g. \
             PGUSER=<owner> with its password in a pgpass file"
                .to_owned()
        } else {
            format!(
                "restore as the owner: connect as {:?}, the project user who owns the database \
                 (e.g. PGUSER={} with its password in a pgpass file), not \
                 as {:?}",
                self.owner,
                shell_word(&self.owner),
                self.role
            )
        };
        Error::RestoreRole {
            database: self.database.clone(),
            role: self.role.clone(),
            owner: self.owner.clone(),
            privileges: self.privileges.clone(),
            hint,
        }
    }
}

/// `name` as one shell word (quoted when it holds anything but letters, digits and `._-`).
fn shell_word(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', r"'\''"))
    }
}

/// Connects to the target as the restoring user and checks that it may restore there: it must
/// be the target's owner and hold no privilege beyond it.
fn connect_target(options: &RestoreOptions) -> Result<(Client, ServerVersion)> {
    let mut client = crate::connect::connect(&options.connection)?;
    let version = ServerVersion::query(&mut client)?;
    restoring_role(&mut client)?.refuse_unless_owner()?;
    Ok((client, version))
}

/// The extensions named in `options` and those they require, by name.
fn named_extensions(options: &RestoreOptions) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for extension in &options.create_extensions {
        names.insert(extension.name().to_owned());
        for required in extension.requires() {
            names.insert(required.name().to_owned());
        }
    }
    names
}

/// Plans a restore without changing anything: checks the restoring role, reads the archive's
/// table of contents and the target, and says what would be left out, which named extensions
/// master would create first and which of the archive's extensions are missing.
///
/// # Errors
/// As [`restore_with`], except that missing extensions are listed in the plan, not an error,
/// and that naming extensions without a master is not checked.
pub fn plan_restore(options: &RestoreOptions) -> Result<RestorePlan> {
    options.validate()?;
    let (mut client, server) = connect_target(options)?;
    let toc = Toc::read_archive(&options.archive)?;
    let (tool, route) =
        choose_pg_restore(server, options.tools_dir.as_deref(), &toc, &options.archive)?;
    let facts = target_facts(&mut client)?;
    let create_extensions: BTreeSet<String> = named_extensions(options)
        .into_iter()
        .filter(|name| !facts.extensions.contains(name))
        .collect();
    let FilteredEntries {
        kept,
        skipped,
        missing: missing_extensions,
    } = filter_entries(&toc, &facts, &create_extensions);
    Ok(RestorePlan {
        database: options.connection.get_dbname().to_owned(),
        server_version: server.to_string(),
        tool,
        toc,
        kept,
        skipped,
        create_extensions: create_extensions.into_iter().collect(),
        missing_extensions,
        route,
    })
}

/// Whether pg_restore of major `tool_major` can send its SQL to a server of major
/// `server_major` itself: pg_restore 17 and newer begin every restore with `SET
/// transaction_timeout = 0`, a setting servers before 17 do not have.
fn connects_to(tool_major: u32, server_major: u32) -> bool {
    tool_major < 17 || server_major >= 17
}

/// The pg_restore for restoring `toc`'s archive into `server`, and how its SQL gets there.
///
/// Among the pg_restore programs found (see [`tools::find_all`]) whose major is at least the
/// server's and that read the archive's format, the nearest major wins (the server's own first,
/// see [`tools::choose`]), one that connects to the server itself before one that needs
/// [`RestoreRoute::ScriptThroughPsql`] (which also needs a psql of its major).
///
/// # Errors
/// [`Error::ToolVersion`] when no pg_restore is as new as the server; [`Error::ArchiveVersion`]
/// when those that are cannot read the archive (made by a newer pg_dump) or cannot reach the
/// server, saying why for each.
pub(crate) fn choose_pg_restore(
    server: ServerVersion,
    tools_dir: Option<&Path>,
    toc: &Toc,
    archive: &Path,
) -> Result<(ClientTool, RestoreRoute)> {
    let found = tools::find_all(ClientProgram::PgRestore, tools_dir);
    let server_major = server.major();
    let new_enough: Vec<&ClientTool> = found.iter().filter(|t| t.major >= server_major).collect();
    if new_enough.is_empty() {
        return Err(tools::version_error(
            ClientProgram::PgRestore,
            server,
            tools_dir,
            &found,
        ));
    }
    let format = toc.header.archive_version;
    let reads = |t: &ClientTool| format.is_none_or(|v| v.readable_by(t.major));
    let readers: Vec<ClientTool> = new_enough
        .iter()
        .filter(|t| reads(t))
        .map(|t| (*t).clone())
        .collect();
    let direct: Vec<ClientTool> = readers
        .iter()
        .filter(|t| connects_to(t.major, server_major))
        .cloned()
        .collect();
    if let Some(tool) = tools::choose(&direct, server_major) {
        return Ok((tool.clone(), RestoreRoute::Direct));
    }
    let psqls = tools::find_all(ClientProgram::Psql, tools_dir);
    let mut by_script: Vec<ClientTool> = readers.clone();
    by_script.sort_by_key(|t| t.major);
    for tool in &by_script {
        if let Some(psql) = psqls.iter().find(|p| p.major == tool.major) {
            return Ok((
                tool.clone(),
                RestoreRoute::ScriptThroughPsql { psql: psql.clone() },
            ));
        }
    }
    let dumped_by = toc.header.dumped_by.clone().unwrap_or_else(|| "?".into());
    let format_text = format.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let why: Vec<String> = new_enough
        .iter()
        .map(|t| {
            let reason = if !reads(t) {
                format!(
                    "reads archive formats up to {}",
                    ArchiveVersion::newest_readable_by(t.major)
                        .to_string()
                        .trim_end_matches("-255")
                )
            } else {
                format!(
                    "sets transaction_timeout, which PostgreSQL {server_major} lacks, and no psql \
                     {} was found to run its script",
                    t.major
                )
            };
            format!("{t} ({reason})")
        })
        .collect();
    let dump_major = toc.header.dumped_by.as_deref().and_then(major_of);
    let fix = match dump_major {
        Some(m) if m > server_major => format!(
            "dump the source again with pg_dump {server_major} (rds-pg uses the client whose major \
             equals the server's when it is installed: postgresql-client-{server_major}), or \
             install pg_restore {server_major} (postgresql-client-{server_major})"
        ),
        _ => format!(
            "install pg_restore {server_major} (postgresql-client-{server_major}), or the psql of \
             the same major as a pg_restore listed"
        ),
    };
    Err(Error::ArchiveVersion {
        archive: format!(
            "{} (written by pg_dump {dumped_by}, archive format {format_text})",
            archive.display()
        ),
        server_version: server.to_string(),
        found: why,
        fix,
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
/// 1. Checks, over the restoring user's connection, that its login role is the target
///    database's owner and is not privileged (SUPERUSER, CREATEROLE, CREATEDB, REPLICATION,
///    BYPASSRLS, or a member — through any chain — of a role that is, or of one of
///    [`PRIVILEGED_ROLES`]): the archive's content runs with that role's privileges, and `SET
///    ROLE` is no boundary (an entry can `RESET ROLE`). Master is refused.
/// 2. Reads the archive's table of contents from the archive ([`Toc::read_archive`]: exact
///    names) and picks the pg_restore: the server's major, else the nearest newer one, that
///    reads the archive's format (see [`RestoreRoute`] for pg_restore 17+ into older servers).
/// 3. Checks the extensions: those the archive uses must exist in the target or be named in
///    [`RestoreOptions::create_extensions`]; master creates the named ones the target lacks
///    ([`Provisioner::ensure_extensions`]). Nothing is created that the caller did not name.
/// 4. Leaves out what a non-superuser cannot and need not restore (see [`SkipReason`]).
/// 5. Runs `pg_restore --use-list` on the rest with `--no-owner --no-acl`, in one transaction
///    unless `options.jobs` asks for several jobs.
///
/// `progress` is called as pg_restore works through the entries, and once more when it has
/// finished.
///
/// # Errors
/// [`Error::InvalidInput`] for extensions named without `master` (before connecting) and as
/// [`RestoreOptions::validate`]; [`Error::RestoreRole`] (kind `PolicyViolation`) when the user
/// is not the target's owner or is privileged; [`Error::MissingExtensions`] listing the
/// extensions the target lacks that were not named; [`Error::ToolVersion`] when no pg_restore is
/// new enough; [`Error::ArchiveVersion`] when none of those can restore this archive into this
/// server; [`Error::InvalidInput`] for a file that is not an archive; [`Error::Tool`] with
/// pg_restore's (or psql's) standard error when the archive's data cannot be read or an entry
/// fails — in one transaction the target is then left exactly as it was. All but the
/// last are reported before anything changes.
pub fn restore_with(
    options: &RestoreOptions,
    master: Option<&mut Provisioner>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RestoreReport> {
    if let Some(forward) = &options.ssh {
        options.validate()?;
        let tunnel = forward.open(&options.connection)?;
        let through = RestoreOptions {
            connection: tunnel.apply(options.connection.clone()),
            ssh: None,
            ..options.clone()
        };
        return restore_with(&through, master, progress);
    }
    if !options.create_extensions.is_empty() && master.is_none() {
        let names: Vec<&str> = options.create_extensions.iter().map(|e| e.name()).collect();
        return Err(Error::InvalidInput(format!(
            "the restore names extensions for master to create ({}) but has no master \
             connection to create them with",
            names.join(", ")
        )));
    }
    let mut plan = plan_restore(options)?;
    if !plan.missing_extensions.is_empty() {
        return Err(missing_extensions_error(&plan));
    }
    let mut created_extensions = Vec::new();
    if !plan.create_extensions.is_empty() {
        let master = master.expect("checked above: extensions are named only with a master");
        let database = DatabaseName::new(plan.database.clone())?;
        let extensions = plan
            .create_extensions
            .iter()
            .map(|name| Extension::from_name(name))
            .collect::<Result<Vec<_>>>()?;
        master.ensure_extensions(&database, &extensions)?;
        created_extensions = plan.create_extensions.clone();
        plan = plan_restore(options)?;
        if !plan.missing_extensions.is_empty() || !plan.create_extensions.is_empty() {
            let mut plan = plan.clone();
            plan.missing_extensions
                .extend(plan.create_extensions.clone());
            return Err(missing_extensions_error(&plan));
        }
    }

    let work = ToolWorkDir::create(&options.connection)?;
    let list = work.path().join("restore.list");
    crate::private_file::replace(&list, plan.list_file().as_bytes())?;

    let started = Instant::now();
    let single_transaction = match &plan.route {
        RestoreRoute::Direct => {
            let mut cmd = restore_command(options, &plan.tool, &list, work.passfile());
            let run = run_with_progress(
                &mut cmd,
                &plan.tool,
                plan.kept.len(),
                !options.single_transaction(),
                progress,
            )?;
            if !run.status.success() {
                return Err(tools::tool_failed(&plan.tool, run.status, run.failure));
            }
            (options.single_transaction(), run.warnings)
        }
        RestoreRoute::ScriptThroughPsql { psql } => {
            let warnings = super::script::run(
                options,
                &plan.tool,
                psql,
                &list,
                work.passfile(),
                plan.kept.len(),
                progress,
            )?;
            (true, warnings)
        }
    };
    let duration = started.elapsed();
    drop(work);
    let (single_transaction, warnings) = single_transaction;
    Ok(RestoreReport {
        database: plan.database,
        archive: options.archive.clone(),
        entries_total: plan.toc.entries.len(),
        entries_restored: plan.kept.len(),
        skipped: plan.skipped,
        created_extensions,
        single_transaction,
        jobs: if single_transaction {
            1
        } else {
            options.jobs.unwrap_or(1).max(1)
        },
        bytes: super::archive_size(&options.archive)?,
        duration,
        tool: plan.tool,
        route: plan.route,
        warnings,
    })
}

fn missing_extensions_error(plan: &RestorePlan) -> Error {
    Error::MissingExtensions {
        database: plan.database.clone(),
        extensions: plan.missing_extensions.clone(),
    }
}

/// How a pg_restore run ended.
struct PgRestoreRun {
    status: std::process::ExitStatus,
    /// What to report when it failed: the warning and error lines and the step it was on (not
    /// the thousands of progress lines).
    failure: String,
    /// The warning and error lines.
    warnings: Vec<String>,
}

/// Runs pg_restore, reading its standard error line by line: progress lines advance `progress`,
/// the others are kept.
fn run_with_progress(
    cmd: &mut Command,
    tool: &ClientTool,
    total: usize,
    parallel: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<PgRestoreRun> {
    let mut warnings = Vec::new();
    let mut last_step = String::new();
    let mut done = 0;
    let mut lines = StderrLines::new(parallel);
    let status = tools::run_reading_stderr(cmd, tool, &mut |line| match lines.classify(line) {
        Line::EntryDone(message) => {
            last_step = message.to_owned();
            done = (done + 1).min(total);
            progress(&Progress {
                done,
                total,
                message: message.to_owned(),
                bytes: None,
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
            bytes: None,
        });
    }
    let mut report = warnings.join("\n");
    if !last_step.is_empty() {
        report.push_str(&format!(
            "\n(last step: {last_step}; {done} of {total} entries)"
        ));
    }
    Ok(PgRestoreRun {
        status,
        failure: report,
        warnings,
    })
}

/// What a line of `pg_restore --verbose` standard error is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// An entry was restored (serial: the line announcing it; parallel: `finished item`).
    EntryDone(&'a str),
    /// Other progress chatter.
    Info,
    /// A warning, an error or its continuation lines.
    Diagnostic,
}

/// Classifies pg_restore's standard error line by line, knowing what came before: a name holding
/// a line break spreads a progress line (`creating TABLE "s.a⏎b"`) over several, and the lines
/// that continue it (no `pg_restore: ` prefix, nothing that looks like an error) are chatter, not
/// warnings.
pub(crate) struct StderrLines {
    parallel: bool,
    continuing: bool,
}

impl StderrLines {
    /// For a serial (`parallel` false) or parallel restore.
    pub(crate) fn new(parallel: bool) -> StderrLines {
        StderrLines {
            parallel,
            continuing: false,
        }
    }

    /// What `line` is.
    pub(crate) fn classify<'a>(&mut self, line: &'a str) -> Line<'a> {
        let kind = classify(line, self.parallel);
        let continuation = !line.starts_with("pg_restore: ") && !line.is_empty();
        if self.continuing && continuation && kind == Line::Diagnostic && !looks_like_an_error(line)
        {
            return Line::Info;
        }
        if !continuation {
            self.continuing = kind != Line::Diagnostic;
        }
        kind
    }
}

/// Whether a line pg_restore (or the server, through it) wrote reads as part of an error report.
fn looks_like_an_error(line: &str) -> bool {
    const MARKS: &[&str] = &[
        "error:",
        "warning:",
        "detail:",
        "hint:",
        "fatal:",
        "ERROR:",
        "WARNING:",
        "DETAIL:",
        "HINT:",
        "FATAL:",
        "Command was:",
    ];
    MARKS.iter().any(|m| line.contains(m))
}

pub(crate) fn classify(line: &str, parallel: bool) -> Line<'_> {
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
            config_tables: vec![ConfigTable {
                schema: "public".into(),
                table: "spatial_ref_sys".into(),
                owner: if spatial_writable {
                    "bob"
                } else {
                    "rds_superuser"
                }
                .into(),
                writable: spatial_writable,
            }],
            schemas: vec![TargetSchema {
                name: "public".into(),
                owner: if public_usable { "bob" } else { "master" }.into(),
                usable: public_usable,
            }],
        }
    }

    fn ids(entries: &[TocEntry]) -> Vec<u32> {
        entries.iter().map(|e| e.dump_id).collect()
    }

    #[test]
    fn leaves_out_existing_extensions_their_comments_and_privileges() {
        let toc = Toc::parse(LISTING).unwrap();
        let FilteredEntries {
            kept,
            skipped,
            missing,
        } = filter_entries(&toc, &facts(true, true), &BTreeSet::new());
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
    fn extensions_named_for_master_are_left_out_and_not_missing() {
        let toc = Toc::parse(LISTING).unwrap();
        let named: BTreeSet<String> = ["ltree".to_owned()].into();
        let FilteredEntries {
            kept,
            skipped,
            missing,
        } = filter_entries(&toc, &facts(true, true), &named);
        assert!(missing.is_empty(), "{missing:?}");
        assert!(!ids(&kept).contains(&5) && !ids(&kept).contains(&6));
        let reason = |id: u32| {
            skipped
                .iter()
                .find(|s| s.entry.dump_id == id)
                .map(|s| s.reason.clone())
        };
        assert_eq!(
            reason(5),
            Some(SkipReason::ExtensionCreatedFirst {
                extension: "ltree".into()
            })
        );
        assert_eq!(
            reason(6),
            Some(SkipReason::ExtensionComment {
                extension: "ltree".into()
            })
        );
    }

    #[test]
    fn named_extensions_include_what_they_require() {
        let options = RestoreOptions::new(ConnectOptions::new(), "a.dump")
            .create_extensions([Extension::PostgisTopology])
            .create_extensions([Extension::Hstore]);
        let names: Vec<String> = named_extensions(&options).into_iter().collect();
        assert_eq!(names, ["hstore", "postgis", "postgis_topology"]);
    }

    #[test]
    fn the_refusal_says_how_to_restore_as_the_owner() {
        let master = RestoringRole {
            role: "master".into(),
            database: "shop".into(),
            owner: "shop".into(),
            is_owner: false,
            privileges: vec![
                "CREATEROLE".into(),
                "CREATEDB".into(),
                "member of rds_superuser".into(),
            ],
        };
        let e = master.refuse_unless_owner().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PolicyViolation);
        let text = e.to_string();
        assert!(
            text.contains("privileged (CREATEROLE, CREATEDB, member of rds_superuser)"),
            "{text}"
        );
        assert!(e.hint().unwrap().contains("PGUSER=shop"), "{text}");
        assert!(
            !text.contains("SET ROLE") && !text.contains("--role"),
            "{text}"
        );
        let other = RestoringRole {
            privileges: Vec::new(),
            role: "bob".into(),
            ..master.clone()
        };
        assert!(other.refuse_privileged().is_ok());
        let text = other.refuse_unless_owner().unwrap_err().to_string();
        assert!(
            text.contains("not the database's owner (\"shop\")"),
            "{text}"
        );
        let owner = RestoringRole {
            is_owner: true,
            ..other
        };
        assert!(owner.refuse_unless_owner().is_ok());
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn extension_config_rows_the_user_cannot_write_are_left_out() {
        let toc = Toc::parse(LISTING).unwrap();
        let FilteredEntries { kept, skipped, .. } =
            filter_entries(&toc, &facts(false, true), &BTreeSet::new());
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
        let FilteredEntries { kept, skipped, .. } =
            filter_entries(&toc, &facts(true, false), &BTreeSet::new());
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
        let FilteredEntries {
            kept,
            skipped,
            missing: missing_extensions,
        } = filter_entries(&toc, &facts(true, true), &BTreeSet::new());
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
            create_extensions: Vec::new(),
            missing_extensions,
            route: RestoreRoute::Direct,
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
        // A name with a line break continues a progress line; an error's lines stay diagnostics.
        let mut lines = StderrLines::new(false);
        let seen: Vec<bool> = [
            "pg_restore: creating TABLE \"public.a",
            "b\"",
            "pg_restore: processing data for table \"public.a",
            "b\"",
            "pg_restore: error: could not execute query: ERROR:  boom",
            "Command was: CREATE TABLE x;",
            "b\"",
        ]
        .iter()
        .map(|l| lines.classify(l) == Line::Diagnostic)
        .collect();
        assert_eq!(seen, [false, false, false, false, true, true, true]);
        for line in [
            "pg_restore:pg_restore: error: could not execute query: ERROR:  boom",
            " warning: errors ignored on restore: 1",
        ] {
            assert_eq!(classify(line, true), Line::Diagnostic, "{line}");
        }
    }
}
