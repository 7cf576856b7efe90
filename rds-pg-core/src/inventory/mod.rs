//! A fleet's inventory: [`Client`]s, their RDS [`Instance`]s and the [`Project`]s hosted on them,
//! loaded from a TOML file with every problem reported at its line, and checked against the
//! hosting policies without connecting to anything (see [`Inventory::check`]).
//!
//! ```toml
//! [policy]
//! backup_retention_days = 14
//!
//! [[client]]
//! name = "acme"
//! account_id = "111122223333"
//! secrets = "Shared-acme"
//!
//! [[instance]]
//! name = "acme-prod"
//! client = "acme"
//! environment = "production"
//! postgres_major = 16
//! endpoint = "acme-prod.c9akciq32.eu-west-1.rds.amazonaws.com"
//! master_user = "acme_admin"
//! master_password = { command = ["lpass", "show", "--password", "Shared-acme/acme-prod"] }
//!
//! [[project]]
//! name = "shop"
//! client = "acme"
//! environment = "production"
//! region = "eu-west-1"
//! instance = "acme-prod"
//!
//! [[project.database]]
//! name = "shop"
//! owner = "shop"
//! extensions = ["postgis", "hstore"]
//! readers = ["shop_ro"]
//!
//! [project.credentials]
//! shop = { env_file = "/etc/shop/db.env" }
//!
//! [project.roles]                     # optional: what `rds-pg audit` requires of each role
//! shop = { connection_limit = 20, valid_until = "2027-06-30" }
//! shop_ro = { iam = true }            # an IAM database authentication user: no password
//! ```
//!
//! ```no_run
//! use rds_pg_core::inventory::{AwsSnapshot, Inventory};
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! let inventory = Inventory::load("fleet.toml")?; // every problem at its line, or the inventory
//! let aws = AwsSnapshot::load("describe-db-instances.json")?; // `aws rds describe-db-instances`
//! for finding in &inventory.check(Some(&aws)).findings {
//!     println!("{finding}");
//! }
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::config::SslMode;
use crate::credentials::{CredentialFormat, CredentialSink};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::spec::{DatabaseSpec, Extension, ReadOnlyGrant};

mod aws;
mod check;
mod connect;
mod load;

pub(crate) use crate::password_command::run_printing_command;
pub use aws::{AwsSnapshot, DbInstance, IngressRule, SecurityGroup};
pub(crate) use check::check_instance;
pub use check::{CheckReport, Finding, FindingObject, ObjectKind, Rule, Severity};
pub(crate) use connect::parse_printed;
pub use connect::DEFAULT_CONNECT_TIMEOUT;

/// The PostgreSQL major versions an inventory may name (those rds-pg supports).
pub const SUPPORTED_MAJORS: RangeInclusive<u32> = 13..=18;

/// How long RDS can keep automated backups, in days (0 turns them off).
pub const BACKUP_RETENTION_DAYS: RangeInclusive<u32> = 0..=35;

/// The backup retention [`Policy::backup_retention_days`] requires when the inventory does not
/// say: 7 days, the RDS console's default.
pub const DEFAULT_BACKUP_RETENTION_DAYS: u32 = 7;

/// The port an instance listens on when the inventory does not say.
pub const DEFAULT_PORT: u16 = 5432;

/// Where something is: a file and, when known, a line and column (1-based, columns counted in
/// characters) or, in a JSON document, a JSON pointer (RFC 6901, e.g. `/DBInstances/0`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file, as given to the loader (or the name given to `from_str`).
    pub file: String,
    /// The line, from 1.
    pub line: Option<u32>,
    /// The column, from 1, in characters.
    pub column: Option<u32>,
    /// The JSON pointer of the value, for JSON documents.
    pub pointer: Option<String>,
}

impl Location {
    /// A place in a text file.
    pub fn at(file: impl Into<String>, line: u32, column: u32) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
            column: Some(column),
            pointer: None,
        }
    }

    /// A value in a JSON document.
    pub fn in_json(file: impl Into<String>, pointer: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            line: None,
            column: None,
            pointer: Some(pointer.into()),
        }
    }
}

impl fmt::Display for Location {
    /// `file:line:column`, `file#/json/pointer` or `file`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(pointer) = &self.pointer {
            write!(f, "#{pointer}")?;
        }
        Ok(())
    }
}

/// One reason an inventory could not be loaded, at its place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// An inventory file that could not be loaded: every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryError {
    /// The file, as given.
    pub file: String,
    /// Every problem, in the order of their places in the file.
    pub problems: Vec<Problem>,
}

impl fmt::Display for InventoryError {
    /// `FILE: N problems` followed by one `FILE:LINE:COLUMN: message` line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "inventory {}: {n} {}",
            self.file,
            if n == 1 { "problem" } else { "problems" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InventoryError {}

/// Whether an instance or a project is for staging or for production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Environment {
    /// `staging`.
    Staging,
    /// `production`.
    Production,
}

impl Environment {
    /// `staging` or `production`, as the inventory spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Environment {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "staging" => Ok(Environment::Staging),
            "production" => Ok(Environment::Production),
            _ => Err(Error::InvalidInput(format!(
                "environment {s:?} is neither \"staging\" nor \"production\""
            ))),
        }
    }
}

/// Where an instance's master password comes from. The inventory holds no password.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterPassword {
    /// A password file in libpq's format; `None` is the one libpq reads (`PGPASSFILE`, else
    /// `~/.pgpass`). Inventory: `master_password = { pgpass = "PATH" }`, or no `master_password`.
    Pgpass(Option<PathBuf>),
    /// An environment variable holding it. Inventory: `master_password = { env = "NAME" }`.
    Env(String),
    /// A program (and arguments, run without a shell) that prints it on its standard output:
    /// the instance's password command, run for each connection and never cached
    /// ([`crate::ConnectOptions::password_command`]), so it may print an IAM token as well as a
    /// stored password. Inventory: `master_password = { command = ["lpass", "show",
    /// "--password", "…"] }`.
    Command(Vec<OsString>),
}

impl fmt::Display for MasterPassword {
    /// `the default password file`, `password file "PATH"`, `environment variable NAME` or
    /// `command "PROGRAM"` (without its arguments).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterPassword::Pgpass(None) => f.write_str("the default password file"),
            MasterPassword::Pgpass(Some(path)) => {
                write!(f, "password file \"{}\"", path.display())
            }
            MasterPassword::Env(name) => write!(f, "environment variable {name}"),
            MasterPassword::Command(argv) => match argv.first() {
                Some(program) => write!(f, "command {:?}", program.to_string_lossy()),
                None => f.write_str("empty command"),
            },
        }
    }
}

/// The inventory's rules for every instance (`[policy]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// The fewest days of automated backups an instance must keep (`BackupRetentionPeriod`),
    /// within [`BACKUP_RETENTION_DAYS`]; default [`DEFAULT_BACKUP_RETENTION_DAYS`].
    pub backup_retention_days: u32,
    /// Where `backup_retention_days` is set, if it is.
    pub location: Option<Location>,
    /// How rds-pg's own logical backups are kept (`backup_*` keys; see [`crate::backup`]).
    pub backups: crate::backup::BackupPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            backup_retention_days: DEFAULT_BACKUP_RETENTION_DAYS,
            location: None,
            backups: crate::backup::BackupPolicy::default(),
        }
    }
}

/// A client: the AWS account that holds its instances, and where its shared secrets go
/// (`[[client]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Client {
    /// The client's name, unique in the inventory.
    pub name: String,
    /// Its 12-digit AWS account id.
    pub account_id: String,
    /// Where the client's shared secrets (its instances' master credentials) are kept, as the
    /// team names it: a vault path, a password-manager folder. Free-form.
    pub secrets: Option<String>,
    /// The age recipients its backups are encrypted to (`backup_encrypt_to`), instead of the
    /// policy's; empty: the policy's.
    pub backup_encrypt_to: Vec<String>,
    /// Where each of its keys is.
    pub locations: Locations,
}

/// An RDS for PostgreSQL instance of a client (`[[instance]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Instance {
    /// The instance's name, unique in the inventory (its RDS identifier, by convention).
    pub name: String,
    /// The client it belongs to.
    pub client: String,
    /// Staging or production.
    pub environment: Environment,
    /// Its AWS region: the `region` key, else the one its RDS endpoint names.
    pub region: String,
    /// The region the `region` key names, when there is one.
    pub explicit_region: Option<String>,
    /// The region named by the endpoint, when it is an RDS endpoint
    /// (`NAME.ID.REGION.rds.amazonaws.com`).
    pub endpoint_region: Option<String>,
    /// Its PostgreSQL major version (within [`SUPPORTED_MAJORS`]).
    pub postgres_major: u32,
    /// The host name clients connect to.
    pub endpoint: String,
    /// The port (default [`DEFAULT_PORT`]).
    pub port: u16,
    /// The master user AWS created with the instance.
    pub master_user: RoleName,
    /// Where the master's password comes from.
    pub master_password: MasterPassword,
    /// The SSH destination (`user@host`, a `~/.ssh/config` alias) through which rds-pg reaches
    /// the instance, when it is reachable only from inside its network (`via`).
    pub via: Option<String>,
    /// How master's connection uses TLS (`sslmode`; default [`SslMode::VerifyFull`]; `prefer`,
    /// which may silently go without, is refused).
    pub sslmode: SslMode,
    /// The CA certificates the server is verified with (`sslrootcert`; for RDS AWS's
    /// `global-bundle.pem`); `None` is `PGSSLROOTCERT`'s.
    pub sslrootcert: Option<PathBuf>,
    /// Where each of its keys is.
    pub locations: Locations,
}

/// A site or project: its servers' region and environment, the instance it lives on, its
/// databases and where its roles' credentials are delivered (`[[project]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Project {
    /// The project's name, unique in the inventory.
    pub name: String,
    /// The client it belongs to.
    pub client: String,
    /// Staging or production.
    pub environment: Environment,
    /// The AWS region of the servers that use its databases.
    pub region: String,
    /// The instance its databases live on.
    pub instance: String,
    /// The PostgreSQL major version it needs, if it says.
    pub postgres_major: Option<u32>,
    /// Where the project's own secrets are kept (a vault path, a password-manager folder).
    pub secrets: Option<String>,
    /// Its databases (`[[project.database]]`), at least one.
    pub databases: Vec<ProjectDatabase>,
    /// Where each role's credentials are delivered (`[project.credentials]`), in file order.
    pub credentials: Vec<RoleCredentials>,
    /// What the audit requires of each role, and how it authenticates (`[project.roles]`), in
    /// file order.
    pub role_settings: Vec<RoleSettings>,
    /// Where each of its keys is.
    pub locations: Locations,
}

/// One database of a project: its owner, extensions and read-only users
/// (`[[project.database]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectDatabase {
    /// The database.
    pub name: DatabaseName,
    /// The project login role that owns it.
    pub owner: RoleName,
    /// Extensions to create in it.
    pub extensions: Vec<Extension>,
    /// Login roles with read-only access to it (schema `public`, future tables included).
    pub readers: Vec<RoleName>,
    /// Where each of its keys is.
    pub locations: Locations,
    /// Where each reader is named, in the order of [`ProjectDatabase::readers`].
    pub reader_locations: Vec<Location>,
}

impl Instance {
    /// The SSH forward of `via`, if the instance has one.
    pub fn forward(&self) -> Option<crate::tunnel::SshForward> {
        self.via
            .as_deref()
            .and_then(|v| crate::tunnel::SshForward::new(v).ok())
    }

    /// `options` (a connection to this instance) through the SSH forward of `via`, opened now,
    /// with the tunnel that must outlive every connection made with them (it closes when
    /// dropped); without `via`, `options` as they are and no tunnel. `fleet plan|apply` and
    /// `backup run|verify` open one per instance for the length of the operation.
    ///
    /// # Errors
    /// [`Error::Tool`] with ssh's own message when the forward cannot be opened.
    pub fn through_via(
        &self,
        options: crate::ConnectOptions,
    ) -> Result<(crate::ConnectOptions, Option<crate::tunnel::SshTunnel>)> {
        match self.forward() {
            Some(forward) => {
                let tunnel = forward.open(&options)?;
                Ok((tunnel.apply(options), Some(tunnel)))
            }
            None => Ok((options, None)),
        }
    }
}

impl ProjectDatabase {
    /// The [`DatabaseSpec`] that provisions this database.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a reserved name (the loader has refused those already).
    pub fn spec(&self) -> Result<DatabaseSpec> {
        Ok(DatabaseSpec::new(self.name.as_str(), self.owner.as_str())?
            .extensions(self.extensions.iter().cloned()))
    }

    /// The [`ReadOnlyGrant`] of each reader.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a reserved name (the loader has refused those already).
    pub fn read_only_grants(&self) -> Result<Vec<ReadOnlyGrant>> {
        self.readers
            .iter()
            .map(|r| ReadOnlyGrant::new(self.name.as_str(), r.as_str()))
            .collect()
    }
}

/// Where one role's credentials go when rds-pg creates it or sets its password.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleCredentials {
    /// The role (an owner or reader of one of the project's databases).
    pub role: RoleName,
    /// The sink: `{ env_file = "PATH" }`, `{ pgpass = "PATH" }` or `{ command = [ARGV…] }`.
    pub sink: CredentialSink,
    /// The document a command receives (`format = "rds-pg"`, the default, or
    /// `"secretsmanager"`, the shape AWS Secrets Manager's rotation functions read).
    pub format: CredentialFormat,
    /// A program (and arguments, run without a shell) that prints the credentials the sink
    /// holds (`read_command = [ARGV…]`), for `backup run`: a command sink cannot be read back
    /// otherwise. It prints the JSON document the sink received, a `postgresql://` URI, or the
    /// password alone on one line.
    pub read_command: Option<Vec<OsString>>,
    /// Where the entry is.
    pub location: Location,
}

/// What the inventory says of one project role beyond its databases (`[project.roles]`, e.g.
/// `shop = { connection_limit = 20, valid_until = "2027-06-30", iam = true }`): what
/// `rds-pg audit` requires of it, and how `fleet apply` makes it authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleSettings {
    /// The role (an owner or reader of one of the project's databases).
    pub role: RoleName,
    /// The most connections the role may have at once (`CONNECTION LIMIT`, 0 or more): a role
    /// without a limit, or with a higher one, is a finding.
    pub connection_limit: Option<i32>,
    /// When the role's password must expire at the latest (`VALID UNTIL`, a date such as
    /// `2027-06-30`, optionally with a time and zone as PostgreSQL reads them): a role whose
    /// password never expires, or expires later, is a finding.
    pub valid_until: Option<String>,
    /// How the role authenticates (`iam = true|false`): `Some(true)`, an IAM database
    /// authentication user (a member of `rds_iam`, no password; `fleet apply` creates it without
    /// a credentials entry and delivers nothing for it), `Some(false)`, a password user (an IAM
    /// user is switched back and its new password delivered); `None` leaves an existing role as
    /// it is (a new one gets a password). See [`UserSpec::iam`](crate::UserSpec::iam).
    pub iam: Option<bool>,
    /// Where the entry is.
    pub location: Location,
}

/// Where an inventory entry and each of its keys are in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    /// The entry itself (its `[[…]]` header or inline table).
    pub entry: Location,
    /// Each key that was given, by name, at its value.
    pub keys: Vec<(String, Location)>,
}

impl Locations {
    /// Where `key` is, or the entry when the key was not given.
    pub fn of(&self, key: &str) -> &Location {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, l)| l)
            .unwrap_or(&self.entry)
    }
}

/// A fleet: clients, their instances, the projects on them, and the policy they follow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inventory {
    /// The file it was loaded from (or the name given to [`Inventory::from_str`]).
    pub source: String,
    /// The `[policy]` table (defaults when there is none).
    pub policy: Policy,
    /// The clients, in file order.
    pub clients: Vec<Client>,
    /// The instances, in file order.
    pub instances: Vec<Instance>,
    /// The projects, in file order.
    pub projects: Vec<Project>,
}

impl Inventory {
    /// Reads and validates the inventory file at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Inventory`] listing every problem
    /// (syntax, unknown or missing keys, wrong types, invalid names, values out of range,
    /// references to clients or instances that do not exist, duplicates), each at its line.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading inventory {}", path.display()), e))?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Validates the inventory `text`; `name` stands for the file in messages and locations.
    ///
    /// # Errors
    /// [`Error::Inventory`], as [`Inventory::load`].
    #[allow(clippy::should_implement_trait)] // it takes a name for messages, as FromStr cannot
    pub fn from_str(text: &str, name: &str) -> Result<Self> {
        load::parse(text, name).map_err(Error::from)
    }

    /// The client named `name`.
    pub fn client(&self, name: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The instance named `name`.
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// The project named `name`.
    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    /// The projects that live on the instance named `instance`, in file order.
    pub fn projects_on<'a>(&'a self, instance: &'a str) -> impl Iterator<Item = &'a Project> + 'a {
        self.projects.iter().filter(move |p| p.instance == instance)
    }

    /// Checks the inventory against the hosting policies, and, given `aws`, each instance against
    /// what AWS describes. Connects to nothing. See [`Rule`] for the rules.
    pub fn check(&self, aws: Option<&AwsSnapshot>) -> CheckReport {
        check::run(self, aws)
    }
}

impl Project {
    /// Every login role of the project (owners, then readers), each once, in file order.
    pub fn roles(&self) -> Vec<&RoleName> {
        let mut roles: Vec<&RoleName> = Vec::new();
        for db in &self.databases {
            if !roles.contains(&&db.owner) {
                roles.push(&db.owner);
            }
        }
        for db in &self.databases {
            for r in &db.readers {
                if !roles.contains(&r) {
                    roles.push(r);
                }
            }
        }
        roles
    }

    /// What the inventory requires of `role`, if it says.
    pub fn settings_for(&self, role: &RoleName) -> Option<&RoleSettings> {
        self.role_settings.iter().find(|s| &s.role == role)
    }

    /// Where `role`'s credentials go, if the inventory says.
    pub fn credentials_for(&self, role: &RoleName) -> Option<&CredentialSink> {
        self.credentials_entry(role).map(|c| &c.sink)
    }

    /// `role`'s credentials entry (sink and format), if the inventory has one.
    pub fn credentials_entry(&self, role: &RoleName) -> Option<&RoleCredentials> {
        self.credentials.iter().find(|c| &c.role == role)
    }
}

/// The AWS region an RDS endpoint names (`NAME.ID.REGION.rds.amazonaws.com`, also
/// `….rds.amazonaws.com.cn`), lower-cased; `None` for other host names.
pub fn rds_endpoint_region(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".rds.amazonaws.com")
        .or_else(|| host.strip_suffix(".rds.amazonaws.com.cn"))?;
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() < 3 {
        return None;
    }
    let region = *labels.last()?;
    is_region(region).then(|| region.to_owned())
}

/// Whether `s` looks like an AWS region name: lower-case words and a number joined by hyphens
/// (`eu-west-1`, `us-gov-west-1`, `ap-southeast-4`).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_read_from_rds_endpoints_only() {
        assert_eq!(
            rds_endpoint_region("shop.abc123xyz.eu-west-1.rds.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            rds_endpoint_region("X.ABC.US-GOV-WEST-1.RDS.AMAZONAWS.COM.").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            rds_endpoint_region("db.c1.cn-north-1.rds.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(rds_endpoint_region("db.example.com"), None);
        assert_eq!(rds_endpoint_region("eu-west-1.rds.amazonaws.com"), None);
        assert_eq!(
            rds_endpoint_region("x.y.notaregion.rds.amazonaws.com"),
            None
        );
        assert!(is_region("il-central-1"));
        assert!(!is_region("eu-west1"));
        assert!(!is_region("EU-west-1"));
    }

    #[test]
    fn locations_display_as_editors_read_them() {
        assert_eq!(Location::at("f.toml", 3, 7).to_string(), "f.toml:3:7");
        assert_eq!(
            Location::in_json("aws.json", "/DBInstances/0").to_string(),
            "aws.json#/DBInstances/0"
        );
    }
}
