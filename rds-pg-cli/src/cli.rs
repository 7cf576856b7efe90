//! The command line: every subcommand, its options and its `--help` example.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use rds_pg_core::{
    CredentialDelivery, CredentialFormat, CredentialSink, DatabaseName, Extension, RoleName,
    SchemaName, SslMode,
};

/// Provision PostgreSQL on Amazon RDS, where the master user is not a superuser.
///
/// Connects as master with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
/// PGPASSFILE, PGSSLMODE, PGSSLROOTCERT) and ~/.pgpass, as psql does; the options below override
/// them. Exit status: 0 success, 1 the operation failed, 2 usage error.
#[derive(Debug, Parser)]
#[command(
    name = "rds-pg",
    version,
    disable_help_flag = true,
    after_help = "Example, against a practice sandbox:\n  \
                  eval \"$(rds-pg sandbox start)\"\n  \
                  rds-pg user create shop --credentials-pgpass \"$PGPASSFILE\"\n  \
                  rds-pg db create shop --owner shop --extension postgis --extension hstore\n  \
                  rds-pg sandbox stop"
)]
pub struct Cli {
    /// Connection options (override the libpq environment).
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Print help (`-h` is --host, as in psql).
    #[arg(long, action = ArgAction::Help, global = true)]
    help: Option<bool>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where and how to connect as master; unset options come from the libpq environment.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Server host name or address [env: PGHOST; default: localhost].
    #[arg(short = 'h', long, global = true, help_heading = "Connection")]
    pub host: Option<String>,
    /// Numeric IP address to connect to instead of resolving --host, which still names the
    /// server for certificate verification and the password file [env: PGHOSTADDR].
    #[arg(
        long,
        global = true,
        value_name = "ADDRESS",
        help_heading = "Connection"
    )]
    pub hostaddr: Option<String>,
    /// Server port [env: PGPORT; default: 5432].
    #[arg(short = 'p', long, global = true, help_heading = "Connection")]
    pub port: Option<u16>,
    /// Master user name [env: PGUSER; default: the OS user].
    #[arg(short = 'U', long, global = true, help_heading = "Connection")]
    pub username: Option<String>,
    /// Maintenance database [env: PGDATABASE; default: postgres].
    #[arg(short = 'd', long, global = true, help_heading = "Connection")]
    pub dbname: Option<String>,
    /// TLS mode: disable, prefer, require, verify-ca, verify-full [env: PGSSLMODE].
    #[arg(long, global = true, value_parser = parse_sslmode, help_heading = "Connection")]
    pub sslmode: Option<SslMode>,
    /// CA certificates to verify the server with, e.g. AWS's global-bundle.pem
    /// [env: PGSSLROOTCERT].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub sslrootcert: Option<PathBuf>,
    /// Command whose output is the password, run for each connection (split into words as a
    /// shell would, but run without one; never cached, never shown), e.g. an RDS IAM token:
    /// "aws rds generate-db-auth-token --hostname HOST --port 5432 --username USER --region
    /// REGION". Replaces PGPASSWORD and the password file.
    #[arg(
        long,
        global = true,
        value_name = "COMMAND",
        help_heading = "Connection"
    )]
    pub password_command: Option<String>,
    /// Reach the server through an SSH forward via this host (user@host, a ~/.ssh/config alias
    /// or ssh://user@host:port), with the system ssh: the host and port are resolved and
    /// reached from there, TLS still runs end to end, and the forward ends with the command.
    #[arg(
        long,
        global = true,
        value_name = "DESTINATION",
        help_heading = "Connection"
    )]
    pub ssh: Option<String>,
    /// ssh configuration file instead of ~/.ssh/config (ssh -F), for --ssh and for the
    /// forwards of an inventory's `via` (fleet, backup).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "RDS_PG_SSH_CONFIG",
        help_heading = "Connection"
    )]
    pub ssh_config: Option<PathBuf>,
}

/// `--dry-run` and `--json`, taken by every command that changes something.
#[derive(Debug, Clone, Copy, Args)]
pub struct ChangeArgs {
    /// Print the SQL that would run (secrets redacted) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document on standard output (steps, changed, temporary grants, errors).
    #[arg(long)]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Project login roles: create, drop, set a new password.
    #[command(subcommand)]
    User(UserCommand),
    /// Project databases: create (owned by the project user), drop.
    #[command(name = "db", subcommand)]
    Database(DatabaseCommand),
    /// Extensions in an existing database.
    #[command(name = "ext", subcommand)]
    Extension(ExtensionCommand),
    /// Read-only access to a database.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Dump a database with pg_dump, as the connected user (the archive is created private:
    /// a file 0600, a directory 0700).
    #[command(after_help = "Example (as the project user, as the seed advises):\n  \
                            rds-pg -U shop dump shop --file shop.dump")]
    Dump(DumpArgs),
    /// Restore a dump into an existing database, connected as its owner (a project user
    /// without CREATEROLE, CREATEDB or rds_superuser-like memberships: master is refused, as
    /// the archive's content runs with the restoring role's privileges).
    #[command(after_help = "Examples:\n  \
                            rds-pg -U shop2 restore shop2 --file shop.dump\n  \
                            rds-pg -U shop2 restore shop2 --file shop.dump --extension hstore --master-user master")]
    Restore(RestoreArgs),
    /// The instance itself: close what lets any login role plant objects master would see.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// A local RDS-like instance to practise on.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// A fleet of clients, instances and projects described in an inventory file.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Audit the isolation of a live instance, as master: privileged or cross-project roles and
    /// memberships, master's leftover memberships, grant and admin options, PUBLIC's access,
    /// schemas open to creation, objects that shadow pg_catalog, SECURITY DEFINER functions of
    /// privileged roles, who may connect where (against the inventory when given), TLS and
    /// password settings. One connection per database, --jobs at once. Exit status: 0 clean
    /// (info findings aside), 1 findings or the audit failed, 2 usage error or invalid input.
    #[command(after_help = "Examples:\n  \
                            rds-pg audit\n  \
                            rds-pg audit --inventory fleet.toml --instance acme-prod --json\n  \
                            rds-pg audit --fix   # revokes what loses no data, then audits again")]
    Audit(AuditArgs),
    /// Logical backups of an inventory's databases, outside RDS: made as each project's role,
    /// verified by restoring them as a throw-away role, kept under a retention policy.
    #[command(subcommand)]
    Backup(BackupCommand),
}

/// `rds-pg audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Compare with this inventory (TOML; see examples/inventory.toml): who may connect where,
    /// which roles and databases belong to no project, the limits it sets for roles.
    #[arg(long, value_name = "INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// The inventory instance this server is [default: the one whose endpoint and port are the
    /// connection's, or the only one].
    #[arg(long, value_name = "NAME", requires = "inventory")]
    pub instance: Option<String>,
    /// Apply the fixes that lose no data (revokes, leftover memberships), list the others, and
    /// audit again.
    #[arg(long)]
    pub fix: bool,
    /// How many databases to inspect at once, each over its own connection (1-32).
    #[arg(long, value_name = "N", default_value_t = rds_pg_core::audit::DEFAULT_JOBS,
          value_parser = audit_jobs)]
    pub jobs: usize,
    /// Print one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
}

/// `rds-pg instance …`
#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Revoke PUBLIC's CREATE on schema public in postgres and template1 (open on RDS 13 and
    /// 14): until then any login role can plant objects there, and what it plants in template1
    /// is copied into every new database, so `db create` refuses such a template. Revokes
    /// only; drops nothing.
    #[command(after_help = "Example:\n  rds-pg instance secure --dry-run")]
    Secure {
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// Where a created or rotated password goes instead of standard output.
#[derive(Debug, Clone, Args)]
pub struct CredentialsArgs {
    /// Write the credentials as an env file (DATABASE_URL and PG* lines) to FILE, mode 0600.
    #[arg(long, value_name = "FILE", group = "sink")]
    pub credentials_env: Option<PathBuf>,
    /// Add or replace the user's line in the password file FILE, mode 0600.
    #[arg(long, value_name = "FILE", group = "sink")]
    pub credentials_pgpass: Option<PathBuf>,
    /// Run CMD with `sh -c`, the credentials as JSON on its standard input (e.g. a vault client).
    #[arg(long, value_name = "CMD", group = "sink")]
    pub credentials_cmd: Option<String>,
    /// The database the credentials are for [default: the user's name].
    #[arg(long, value_name = "DB", requires = "sink", value_parser = any_database_name)]
    pub credentials_database: Option<DatabaseName>,
    /// What --credentials-cmd receives: rds-pg (every field, DATABASE_URL included) or
    /// secretsmanager (the JSON AWS Secrets Manager's rotation functions read: engine, host,
    /// username, password, dbname, port, ssl) [default: rds-pg].
    #[arg(
        long,
        value_name = "FORMAT",
        requires = "credentials_cmd",
        conflicts_with_all = ["credentials_env", "credentials_pgpass"],
        value_parser = credential_format
    )]
    pub credentials_format: Option<CredentialFormat>,
}

impl CredentialsArgs {
    /// Where the new credentials go, when a sink was given.
    pub fn delivery(&self) -> Option<CredentialDelivery> {
        let mut delivery = CredentialDelivery::new(self.sink()?);
        if let Some(d) = &self.credentials_database {
            delivery = delivery.database(d.clone());
        }
        if let Some(f) = self.credentials_format {
            delivery = delivery.format(f);
        }
        Some(delivery)
    }

    /// The sink given, if any.
    pub fn sink(&self) -> Option<CredentialSink> {
        if let Some(path) = &self.credentials_env {
            return Some(CredentialSink::EnvFile(path.clone()));
        }
        if let Some(path) = &self.credentials_pgpass {
            return Some(CredentialSink::Pgpass(path.clone()));
        }
        self.credentials_cmd
            .as_ref()
            .map(|cmd| CredentialSink::command(["sh", "-c", cmd.as_str()]))
    }
}

/// `rds-pg user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a project login role (LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE), or converge an
    /// existing one. Without --password-stdin a password is generated and printed once on
    /// standard output, unless a --credentials-* option says where it goes.
    #[command(after_help = "Examples:\n  \
                            rds-pg user create shop --credentials-pgpass ~/.pgpass\n  \
                            rds-pg user create shop --credentials-format secretsmanager \\\n    \
                            --credentials-cmd 'aws secretsmanager put-secret-value --secret-id shop-db --secret-string file:///dev/stdin'\n  \
                            rds-pg user create shop | lpass add --non-interactive --password-stdin shop-db\n  \
                            lpass show --password shop-db | rds-pg user create shop --password-stdin")]
    Create {
        /// The role to create.
        #[arg(value_parser = role_name)]
        name: RoleName,
        /// Read the password from standard input (a pipe) instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Maximum concurrent connections (-1: unlimited).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        connection_limit: Option<i32>,
        /// Password expiry, as PostgreSQL reads a timestamp ('2030-01-01', 'infinity').
        #[arg(long, value_name = "TS")]
        valid_until: Option<String>,
        /// An IAM user: no password, a member of rds_iam, logs in with IAM tokens (an existing
        /// password user is switched: GRANT rds_iam, PASSWORD NULL).
        #[arg(long, conflicts_with_all = ["password_stdin", "no_iam"])]
        iam: bool,
        /// A password user: an existing IAM user is switched back (REVOKE rds_iam and a new
        /// password, generated or from --password-stdin).
        #[arg(long)]
        no_iam: bool,
        #[command(flatten)]
        credentials: CredentialsArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Drop a project role: in every database, reassign (with --reassign-to) or drop what it
    /// owns and the privileges it holds, then DROP ROLE.
    #[command(after_help = "Example:\n  rds-pg user drop shop_ro")]
    Drop {
        /// The role to drop.
        #[arg(value_parser = role_name)]
        name: RoleName,
        /// Give what the role owns (databases included) to ROLE instead of dropping it.
        #[arg(long, value_name = "ROLE", value_parser = role_name)]
        reassign_to: Option<RoleName>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Set a new password (generated unless --password-stdin), sent as a SCRAM verifier.
    #[command(after_help = "Example:\n  \
                            rds-pg user password shop --credentials-env /etc/shop/db.env")]
    Password {
        /// The role.
        #[arg(value_parser = role_name)]
        name: RoleName,
        /// Read the password from standard input (a pipe) instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        credentials: CredentialsArgs,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// `rds-pg db …`
#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Create a database owned by a project user, PUBLIC's access revoked, with extensions
    /// (untrusted ones created by master, trusted ones by the owner); converge an existing one.
    #[command(after_help = "Example:\n  \
                            rds-pg db create shop --owner shop --extension postgis --extension hstore")]
    Create {
        /// The database to create.
        #[arg(value_parser = database_name)]
        name: DatabaseName,
        /// The project user that owns it.
        #[arg(long, value_name = "USER", value_parser = role_name)]
        owner: RoleName,
        /// An extension to create in it (repeat for several).
        #[arg(long = "extension", value_name = "EXT", value_parser = extension)]
        extensions: Vec<Extension>,
        /// Encoding [default: UTF8].
        #[arg(long, value_name = "E")]
        encoding: Option<String>,
        /// Locale (collation and character classes).
        #[arg(long, value_name = "L")]
        locale: Option<String>,
        /// Template database [default: template0 on 15+, template1 before]; any but template0
        /// must hold nothing of other roles and let nobody else create in it.
        #[arg(long, value_name = "DB", value_parser = any_database_name)]
        template: Option<DatabaseName>,
        /// Also refuse trusted extensions when the owner's schema holds functions or operators
        /// named like pg_catalog's (untrusted ones are always refused then).
        #[arg(long)]
        strict: bool,
        /// Give an existing database owned by another role to --owner (master gains both roles
        /// for the move); without it, that is refused.
        #[arg(long)]
        take_over: bool,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Drop a project database (master gains the owner's privileges for it).
    #[command(after_help = "Example:\n  rds-pg db drop shop --force")]
    Drop {
        /// The database to drop.
        #[arg(value_parser = database_name)]
        name: DatabaseName,
        /// Terminate connected sessions instead of failing.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// `rds-pg ext …`
#[derive(Debug, Subcommand)]
pub enum ExtensionCommand {
    /// Create extensions in an existing database, with RDS's fix-ups (spatial_ref_sys is handed
    /// to the owner).
    #[command(after_help = "Example:\n  rds-pg ext enable shop postgis hstore")]
    Enable {
        /// The database.
        #[arg(value_parser = database_name)]
        database: DatabaseName,
        /// The extensions.
        #[arg(required = true, value_name = "EXT", value_parser = extension)]
        extensions: Vec<Extension>,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// `rds-pg grant …`
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Give a role read access: CONNECT, USAGE on the schemas, SELECT on their tables and
    /// sequences, and default privileges so tables created later are readable too.
    #[command(after_help = "Example:\n  rds-pg grant readonly shop shop_ro --schema public")]
    Readonly {
        /// The database.
        #[arg(value_parser = database_name)]
        database: DatabaseName,
        /// The role that gets read access.
        #[arg(value_parser = role_name)]
        role: RoleName,
        /// A schema (repeat for several) [default: public].
        #[arg(long = "schema", value_name = "S", value_parser = schema_name)]
        schemas: Vec<SchemaName>,
        /// Leave tables created later alone (no default privileges).
        #[arg(long)]
        no_future: bool,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove what `grant readonly` granted.
    #[command(after_help = "Example:\n  rds-pg grant revoke-readonly shop shop_ro")]
    RevokeReadonly {
        /// The database.
        #[arg(value_parser = database_name)]
        database: DatabaseName,
        /// The role.
        #[arg(value_parser = role_name)]
        role: RoleName,
        /// A schema (repeat for several) [default: public].
        #[arg(long = "schema", value_name = "S", value_parser = schema_name)]
        schemas: Vec<SchemaName>,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// pg_dump's archive formats rds-pg writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// One file (`pg_dump --format=custom`).
    Custom,
    /// A directory, written in parallel with --jobs.
    Directory,
}

/// `rds-pg dump …`
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The database.
    #[arg(value_parser = any_database_name)]
    pub database: DatabaseName,
    /// Where to write the archive.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Archive format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Custom)]
    pub format: DumpFormat,
    /// Parallel jobs (directory format only).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,
    /// The directory of the pg_dump to use [default: RDS_PG_TOOLS_DIRS, PATH, then
    /// /usr/lib/postgresql/*/bin: the server's major, else the nearest newer].
    #[arg(long, value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,
    /// Print one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
}

/// `rds-pg restore …`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The database to restore into (it must exist, with its extensions).
    #[arg(value_parser = database_name)]
    pub database: DatabaseName,
    /// The archive (a custom-format file or a directory).
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Parallel jobs (above 1: not one transaction, so a failure leaves what was restored).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,
    /// The directory of the pg_restore to use [default: RDS_PG_TOOLS_DIRS, PATH, then
    /// /usr/lib/postgresql/*/bin: the server's major, else the nearest newer that reads the
    /// archive].
    #[arg(long, value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,
    /// An extension master creates in the database first when it lacks it (repeat for
    /// several); needs --master-user. Extensions the archive uses that the database lacks and
    /// that are not named make the restore fail before anything changes.
    #[arg(
        long = "extension",
        value_name = "EXT",
        value_parser = extension,
        requires = "master_user"
    )]
    pub extensions: Vec<Extension>,
    /// The master user that creates the --extension ones (same host, port and TLS settings;
    /// its password from the password file, as for the other commands).
    #[arg(long, value_name = "USER", value_parser = any_role_name)]
    pub master_user: Option<RoleName>,
    /// The age identity file that decrypts an encrypted archive (`.dump.age`): it is decrypted
    /// as pg_restore reads it, never to disk (one job only).
    #[arg(long, value_name = "FILE", conflicts_with = "jobs")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `rds-pg sandbox …`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start an RDS-like PostgreSQL instance that keeps running, and print the `export PG…=…`
    /// lines that point psql and rds-pg at it as master (password in a pgpass file).
    #[command(after_help = "Example:\n  \
                            eval \"$(rds-pg sandbox start --pg-version 15)\"\n  \
                            rds-pg user create practice\n  \
                            rds-pg sandbox stop")]
    Start {
        /// PostgreSQL major version (13-18) [default: 15 with PostGIS when installed, else the
        /// newest installed].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(13..=18))]
        pg_version: Option<u32>,
        /// Directory for the instance (new or empty) [default: a new one under the temporary
        /// directory].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Also listen on this IPv4 address of the machine (such as one end of a veth pair), for
        /// practice with a security group (`--admit`).
        #[arg(long, value_name = "ADDR", requires = "admit")]
        listen_on: Option<std::net::Ipv4Addr>,
        /// Admit logins (but rdsadmin's) only from this IPv4 address, as an RDS security group
        /// that admits only the application servers: then even the printed PGHOST, 127.0.0.1,
        /// is refused, and the instance is reached through an SSH forward via that server
        /// (`rds-pg --ssh … --hostaddr LISTEN-ON`).
        #[arg(long, value_name = "ADDR", requires = "listen_on")]
        admit: Option<std::net::Ipv4Addr>,
        /// Print one JSON document instead of export lines.
        #[arg(long)]
        json: bool,
    },
    /// Stop the sandbox and delete its directory.
    #[command(after_help = "Example:\n  rds-pg sandbox stop --dir /tmp/practice")]
    Stop {
        /// The sandbox directory.
        #[arg(long, value_name = "DIR", env = "RDS_PG_SANDBOX_DIR")]
        dir: PathBuf,
    },
    /// Say whether the sandbox runs, and where (exit status 1 when it does not).
    #[command(after_help = "Example:\n  rds-pg sandbox status --dir /tmp/practice")]
    Status {
        /// The sandbox directory.
        #[arg(long, value_name = "DIR", env = "RDS_PG_SANDBOX_DIR")]
        dir: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `rds-pg fleet …`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Check an inventory against the hosting policies (one client per instance, same region,
    /// staging and production apart, one PostgreSQL major per instance, no shared or reserved
    /// names) and, with --aws-json, each instance against what AWS describes. Connects to
    /// nothing. Exit status: 0 clean, 1 findings, 2 usage error or unreadable or invalid input.
    #[command(after_help = "Examples:\n  \
                            rds-pg fleet check fleet.toml\n  \
                            aws rds describe-db-instances > rds.json\n  \
                            aws ec2 describe-security-groups > groups.json\n  \
                            rds-pg fleet check fleet.toml --aws-json rds.json --aws-json groups.json")]
    Check {
        /// The inventory (TOML; see examples/inventory.toml).
        inventory: PathBuf,
        /// The JSON that `aws rds describe-db-instances` or `aws ec2 describe-security-groups`
        /// printed (repeat for several accounts, regions or commands).
        #[arg(long = "aws-json", value_name = "FILE")]
        aws_json: Vec<PathBuf>,
        /// Print one JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Connect to each instance as its master (endpoint, master user and password source from
    /// the inventory, TLS verify-full) and list what differs from the inventory: users,
    /// databases, extensions, read-only grants, schema public of postgres and template1, and
    /// with --prune what no project claims. Changes nothing. Exit status: 0 (with --exit-code:
    /// in sync), 2 (with --exit-code) differs, 1 errors.
    #[command(after_help = "Examples:\n  \
                            rds-pg fleet plan fleet.toml\n  \
                            rds-pg fleet plan fleet.toml --instance acme-prod --exit-code   # a drift gate for CI")]
    Plan {
        /// The inventory (TOML; see examples/inventory.toml).
        inventory: PathBuf,
        #[command(flatten)]
        run: FleetRunArgs,
        /// Exit 2 when an instance differs from the inventory, 0 when every one is in sync.
        #[arg(long)]
        exit_code: bool,
    },
    /// Plan as `fleet plan`, then bring each instance that differs in line, each operation under
    /// its locks; a role rds-pg creates has its credentials delivered where the inventory says
    /// before its creation commits. Exit status: 0 done (with --exit-code: nothing changed), 2
    /// (with --exit-code) something changed, 1 errors or findings left.
    #[command(after_help = "Examples:\n  \
                            rds-pg fleet apply fleet.toml --jobs 8\n  \
                            rds-pg fleet apply fleet.toml --instance acme-prod --prune --take-over")]
    Apply {
        /// The inventory (TOML; see examples/inventory.toml).
        inventory: PathBuf,
        #[command(flatten)]
        run: FleetRunArgs,
        /// Exit 2 when something changed, 0 when nothing did.
        #[arg(long)]
        exit_code: bool,
    },
}

/// What `fleet plan` and `fleet apply` run over, and what they may do beyond converging.
#[derive(Debug, Clone, Args)]
pub struct FleetRunArgs {
    /// Only this instance (repeat for several) [default: every instance].
    #[arg(long = "instance", value_name = "NAME")]
    pub instances: Vec<String>,
    /// Instances processed at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Also drop databases and login roles that no project on the instance claims (never
    /// master, postgres, the templates, rdsadmin, reserved names or privileged roles).
    #[arg(long)]
    pub prune: bool,
    /// Give an existing database the inventory names another owner for to that owner
    /// (otherwise a finding).
    #[arg(long)]
    pub take_over: bool,
    /// Print one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
}

fn audit_jobs(s: &str) -> Result<usize, String> {
    let max = rds_pg_core::audit::MAX_JOBS;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from 1 to {max}")),
    }
}

/// Which databases of the inventory a backup command covers.
#[derive(Debug, Clone, Args)]
pub struct SelectionArgs {
    /// Only the databases on this instance.
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Only this project's databases.
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Only databases of this name.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
}

/// `rds-pg backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Dump every database of the inventory (or of --instance/--project/--database) as its
    /// owner, with the credentials read back from where the inventory says they were delivered
    /// (never master's), into DIR/<client>/<instance>/<database>/<UTC timestamp>.dump with a
    /// manifest next to it (<timestamp>.json: checksum, size, tools, table of contents, row
    /// counts). A failing database does not stop the others. Exit status: 0 all backed up, 1 a
    /// database failed, 2 usage error or unreadable inventory.
    #[command(after_help = "Examples:\n  \
                            rds-pg backup run fleet.toml --to /srv/backups\n  \
                            rds-pg backup run fleet.toml --project shop --encrypt-to age1…\n  \
                            rds-pg backup run fleet.toml --instance acme-prod --jobs 4 --json")]
    Run {
        /// The inventory (TOML).
        inventory: PathBuf,
        #[command(flatten)]
        selection: SelectionArgs,
        /// The backup directory [default: the inventory's [policy] backup_dir].
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// pg_dump jobs; above 1 the archive is a directory (not encrypted, not uploaded).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: Option<u32>,
        /// Encrypt to this age recipient (age1…; repeat for several) instead of the
        /// inventory's backup_encrypt_to.
        #[arg(long = "encrypt-to", value_name = "RECIPIENT", value_parser = recipient)]
        encrypt_to: Vec<rds_pg_core::backup::Recipient>,
        /// Do not encrypt, whatever the inventory says.
        #[arg(long, conflicts_with = "encrypt_to")]
        no_encrypt: bool,
        /// Do not upload, whatever the inventory's backup_upload says.
        #[arg(long)]
        no_upload: bool,
        /// Do not count every table's rows in the dump's snapshot (a scan of each table beside
        /// pg_dump's): the manifest keeps the planner's estimates, and verify then checks that
        /// each table restores, not its row count.
        #[arg(long)]
        no_count: bool,
        /// The directory of the pg_dump and pg_restore to use [default: searched for].
        #[arg(long, value_name = "DIR")]
        tools_dir: Option<PathBuf>,
        /// Print one JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Restore the newest archive of each database (or --archive) into a scratch database
    /// owned by a throw-away role that master creates for it, as that role; compare checksum,
    /// table of contents and row counts with the manifest; record the result in the manifest;
    /// drop the scratch database and role whatever happened. Exit status: 0 all verified, 1 an
    /// archive failed, 2 usage error.
    #[command(after_help = "Examples:\n  \
                            rds-pg backup verify fleet.toml --to /srv/backups\n  \
                            rds-pg backup verify fleet.toml --archive /srv/backups/acme/acme-prod/shop/20261201T030000Z.dump.age --identity key.txt")]
    Verify {
        /// The inventory (TOML): where each instance's master password comes from.
        inventory: PathBuf,
        #[command(flatten)]
        selection: SelectionArgs,
        /// The backup directory [default: the inventory's [policy] backup_dir].
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Verify this archive (or manifest) only.
        #[arg(long, value_name = "PATH")]
        archive: Option<PathBuf>,
        /// The age identity file that decrypts encrypted archives.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The directory of the pg_restore to use [default: searched for].
        #[arg(long, value_name = "DIR")]
        tools_dir: Option<PathBuf>,
        /// Print one JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Remove the archives a retention policy does not keep, per database (restic's forget
    /// rules: an archive kept by any rule is kept), never the newest verified one. The policy
    /// is the inventory's backup_keep_* keys, each replaced by the option given. Exit status: 0
    /// done, 1 an archive could not be removed, 2 usage error.
    #[command(after_help = "Examples:\n  \
                            rds-pg backup prune fleet.toml --dry-run\n  \
                            rds-pg backup prune /srv/backups --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12")]
    Prune {
        /// The inventory (TOML), or the backup directory itself.
        target: PathBuf,
        #[command(flatten)]
        selection: SelectionArgs,
        /// The backup directory, with an inventory [default: its [policy] backup_dir].
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Keep the newest N archives.
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep the newest archive of each of the last N days that have one (UTC).
        #[arg(long, value_name = "N")]
        keep_daily: Option<u32>,
        /// Keep the newest archive of each of the last N ISO weeks that have one.
        #[arg(long, value_name = "N")]
        keep_weekly: Option<u32>,
        /// Keep the newest archive of each of the last N months that have one.
        #[arg(long, value_name = "N")]
        keep_monthly: Option<u32>,
        /// Keep the newest archive of each of the last N years that have one.
        #[arg(long, value_name = "N")]
        keep_yearly: Option<u32>,
        /// List exactly what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
    /// List the archives with their size and verification state.
    #[command(after_help = "Examples:\n  \
                            rds-pg backup list fleet.toml\n  \
                            rds-pg backup list /srv/backups --database shop --json")]
    List {
        /// The inventory (TOML), or the backup directory itself.
        target: PathBuf,
        #[command(flatten)]
        selection: SelectionArgs,
        /// The backup directory, with an inventory [default: its [policy] backup_dir].
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Print one JSON document on standard output.
        #[arg(long)]
        json: bool,
    },
}

fn recipient(s: &str) -> Result<rds_pg_core::backup::Recipient, String> {
    rds_pg_core::backup::Recipient::parse(s).map_err(|e| e.to_string())
}

fn parse_sslmode(s: &str) -> Result<SslMode, String> {
    s.parse().map_err(|e: rds_pg_core::Error| e.to_string())
}

fn role_name(s: &str) -> Result<RoleName, String> {
    RoleName::creatable(s).map_err(|e| e.to_string())
}

fn any_role_name(s: &str) -> Result<RoleName, String> {
    RoleName::new(s).map_err(|e| e.to_string())
}

fn database_name(s: &str) -> Result<DatabaseName, String> {
    DatabaseName::creatable(s).map_err(|e| e.to_string())
}

fn any_database_name(s: &str) -> Result<DatabaseName, String> {
    DatabaseName::new(s).map_err(|e| e.to_string())
}

fn schema_name(s: &str) -> Result<SchemaName, String> {
    SchemaName::new(s).map_err(|e| e.to_string())
}

fn credential_format(s: &str) -> Result<CredentialFormat, String> {
    s.parse().map_err(|e: rds_pg_core::Error| e.to_string())
}

fn extension(s: &str) -> Result<Extension, String> {
    Extension::from_name(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_help_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            let subs: Vec<_> = cmd.get_subcommands().collect();
            if subs.is_empty() {
                let help = cmd.get_after_help().map(|h| h.to_string());
                assert!(
                    help.is_some_and(|h| h.contains("Example") && h.contains("rds-pg")),
                    "{path} has no example in its --help"
                );
            }
            for s in subs {
                walk(s, &format!("{path} {}", s.get_name()));
            }
        }
        walk(&Cli::command(), "rds-pg");
    }
}
