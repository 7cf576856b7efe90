//! A throw-away RDS-like PostgreSQL instance: `rdsadmin` as the bootstrap superuser, the `rds_*`
//! roles of the chosen major version, a non-superuser master, TLS-only logins on 15+, an extension
//! whitelist (pgextwlist) where it is installed, and every statement logged to a file.
//!
//! Used by the test suite, the demo and the Python binding. What differs from RDS: on 16+ the
//! `pg_read_all_data` and `pg_write_all_data` memberships of `rds_superuser` are neither inherited
//! nor settable (a plain server cannot hide `pg_authid` from their members, as RDS does: stricter
//! than RDS, never looser); where pgextwlist is not installed for a version, master cannot create
//! untrusted extensions at all.
//!
//! IAM database authentication is emulated: a member of `rds_iam` (directly or through any
//! chain of memberships) cannot log in with a password, as on RDS, but the refusal is
//! `pg_hba.conf`'s ("pg_hba.conf rejects connection") where RDS answers "PAM authentication
//! failed"; [`Sandbox::iam_token`] stands for `aws rds generate-db-auth-token`. On 16+
//! master holds ADMIN on `rds_iam` (so it can grant it, as on RDS), which PostgreSQL counts as
//! membership: there master's own `pg_hba.conf` line comes before the refusal, so a
//! master that is a member of an IAM user is not locked out as it would be on RDS (on 13–15 it
//! is, as on RDS).
//!
//! A security group that admits only the application servers can be emulated too
//! ([`SandboxOptions::security_group`]): logins are then admitted only from one client address,
//! so the instance is reached only through an SSH forward via the host at that address.

mod certs;
mod install;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use install::{
    available_versions, find_installation, install_root, unprivileged_account, Installation, RunAs,
    INSTALL_ROOT_ENV, SUPPORTED_VERSIONS,
};

use crate::config::{ConnectOptions, SslMode};
use crate::error::{Error, Result};
use crate::secret::Password;

/// The DNS name the sandbox's server certificate carries besides `localhost`, `127.0.0.1` and
/// `::1`, standing for an RDS endpoint name (`….rds.amazonaws.com`). It never resolves (`.invalid`
/// is reserved for that), so a connection with this host reaches the sandbox only through a
/// `hostaddr` (or a forward), with `verify-full` checking the certificate for this name: the way
/// an operator reaches RDS from outside its VPC.
pub const ENDPOINT_NAME: &str = "db.sandbox.rds-pg.invalid";

/// Untrusted extensions an RDS master may create (through RDS's whitelist), when the server has
/// them. Trusted extensions are deliberately left off: the whitelist is a session setting that
/// survives `SET ROLE`, so a whitelisted trusted extension would be created by the superuser even
/// when the database owner runs `CREATE EXTENSION`; off the list, they follow PostgreSQL's own
/// rule (created, and owned, by whoever has CREATE on the database).
pub const WHITELISTED_EXTENSIONS: &[&str] = &[
    "postgis",
    "postgis_raster",
    "postgis_topology",
    "postgis_tiger_geocoder",
    "address_standardizer",
    "address_standardizer_data_us",
    "pg_stat_statements",
    "postgres_fdw",
    "dblink",
    "pg_buffercache",
    "pgstattuple",
    "pgrowlocks",
    "pg_prewarm",
    "amcheck",
];

/// The `pg_hba.conf` line that refuses password logins to members of `rds_iam` connecting from
/// `clients`, for connection type `host` (`hostssl` when only TLS is accepted, so a plaintext
/// login still finds no entry).
fn iam_reject_line(host: &str, clients: &str) -> String {
    format!("{host} all      +rds_iam {clients} reject")
}

/// An emulated RDS security group: see [`SandboxOptions::security_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SecurityGroup {
    listen: Ipv4Addr,
    client: Ipv4Addr,
}

/// How to build a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    version: Option<u32>,
    bin_dir: Option<PathBuf>,
    master_user: String,
    dir: Option<PathBuf>,
    security_group: Option<SecurityGroup>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxOptions {
    /// Defaults: the preferred available version (15 when PostGIS and pgextwlist are installed
    /// for it, else the newest), binaries found by [`find_installation`], master user `master`.
    pub fn new() -> Self {
        SandboxOptions {
            version: None,
            bin_dir: None,
            master_user: "master".into(),
            dir: None,
            security_group: None,
        }
    }

    /// Emulates an RDS security group that admits only the application servers: the server
    /// also listens on `listen` (an address of this machine, such as one end of a veth pair),
    /// and every role but `rdsadmin` may log in only from `client` (the application server's
    /// address). A connection from anywhere else, 127.0.0.1 included, finds no `pg_hba.conf`
    /// entry, so the instance is reachable only through that server, by an SSH forward.
    /// `rdsadmin` (AWS's own account, used for the set-up and by [`Sandbox::iam_token`]) keeps
    /// logging in on 127.0.0.1. [`Sandbox::master_options`] still names 127.0.0.1: aim them at
    /// `listen` through the forward.
    pub fn security_group(mut self, listen: Ipv4Addr, client: Ipv4Addr) -> Self {
        self.security_group = Some(SecurityGroup { listen, client });
        self
    }

    crate::builder::setters! {
        /// Creates the sandbox in this directory (which must not exist, or be an empty
        /// directory) instead of a new temporary directory. It is deleted when the sandbox
        /// stops, as a temporary one is.
        dir = some_into PathBuf;
        /// Selects the PostgreSQL major version.
        version = some u32;
        /// Uses the server binaries in this directory instead of searching.
        bin_dir = some_into PathBuf;
        /// Names the master user (RDS lets you choose it; `master` and `postgres` are common).
        master_user = into String;
    }
}

/// The version a sandbox uses when none is asked for: 15 when its installation has pgextwlist
/// (so PostGIS works as on RDS), else the newest installed.
pub fn preferred_version() -> Option<u32> {
    if find_installation(15)
        .map(|i| i.has_pgextwlist())
        .unwrap_or(false)
    {
        return Some(15);
    }
    available_versions().last().copied()
}

/// The accessors [`Sandbox`] and [`DetachedSandbox`] share, written once over the fields both
/// have, their `root()` directory and their `base_options()`; the documentation of
/// `options_for` is given, as the two differ in the password file they consult.
macro_rules! server_accessors {
    ($(#[$options_for:meta])*) => {
        /// The options a client program is told to connect with, as in a connection string
        /// handed to `psql` (see [`ConnectOptions::to_conninfo`]): host, port, database
        /// `postgres` and the TLS settings (verify-full against the sandbox CA on 15+), without
        /// user, password, password file or timeout, so that the client's own password file
        /// applies.
        pub fn client_options(&self) -> ConnectOptions {
            client_options(self.server.port, self.server.ca_path.as_deref())
        }

        /// Connection options of the master user, password included.
        pub fn master_options(&self) -> ConnectOptions {
            self.base_options()
                .user(self.server.master_user.as_str())
                .password(self.server.master_password.clone())
        }

        /// Connection options of `rdsadmin`, the real superuser. For test assertions only:
        /// rds-pg never has these on RDS.
        pub fn rdsadmin_options(&self) -> ConnectOptions {
            self.base_options()
                .user("rdsadmin")
                .password(self.server.rdsadmin_password.clone())
        }

        $(#[$options_for])*
        pub fn options_for(&self, user: &str) -> ConnectOptions {
            self.base_options().user(user)
        }

        /// The master user's name.
        pub fn master_user(&self) -> &str {
            &self.server.master_user
        }

        /// The master user's password.
        pub fn master_password(&self) -> &Password {
            &self.server.master_password
        }

        /// The TCP port on 127.0.0.1.
        pub fn port(&self) -> u16 {
            self.server.port
        }

        /// The major version (13–18).
        pub fn major_version(&self) -> u32 {
            self.server.install.major
        }

        /// The full server version (`16.14`).
        pub fn version(&self) -> &str {
            &self.server.install.version
        }

        /// The sandbox CA certificate (PEM), on 15+ where TLS is required.
        pub fn ca_cert_path(&self) -> Option<&Path> {
            self.server.ca_path.as_deref()
        }

        /// The untrusted extensions master may create.
        pub fn whitelisted_extensions(&self) -> &[String] {
            &self.server.whitelist
        }

        /// Whether master can create PostGIS here.
        pub fn has_postgis(&self) -> bool {
            self.server.whitelist.iter().any(|e| e == "postgis")
        }

        /// The sandbox directory.
        pub fn dir(&self) -> &Path {
            self.root()
        }

        /// The server log, which records every statement (`log_statement = 'all'`).
        pub fn log_path(&self) -> PathBuf {
            self.root().join("postgres.log")
        }
    };
}

/// A running RDS-like PostgreSQL server in a temporary directory.
///
/// Dropping it stops the server and deletes the directory, also while a panic unwinds.
pub struct Sandbox {
    dir: tempfile::TempDir,
    server: Server,
    security_group: Option<SecurityGroup>,
    startup: Duration,
    running: bool,
}

/// What a sandbox server is, whether this process started it ([`Sandbox`]) or found it again
/// ([`DetachedSandbox`]).
#[derive(Clone)]
struct Server {
    install: Installation,
    run_as: Option<RunAs>,
    port: u16,
    master_user: String,
    master_password: Password,
    rdsadmin_password: Password,
    ca_path: Option<PathBuf>,
    whitelist: Vec<String>,
}

impl Server {
    /// `Debug` of a sandbox named `name` in `dir`: never a password.
    fn debug(&self, f: &mut std::fmt::Formatter<'_>, name: &str, dir: &Path) -> std::fmt::Result {
        f.debug_struct(name)
            .field("dir", &dir)
            .field("version", &self.install.version)
            .field("port", &self.port)
            .field("master_user", &self.master_user)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.server.debug(f, "Sandbox", self.dir.path())
    }
}

impl Sandbox {
    /// Builds and starts a sandbox.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no binaries exist for the version (the message says how to
    /// install them), [`Error::Tool`] when initdb or pg_ctl fail (with their output), and
    /// connection errors from the set-up.
    pub fn start(options: SandboxOptions) -> Result<Sandbox> {
        let begun = Instant::now();
        let install = match (&options.bin_dir, options.version) {
            (Some(dir), v) => {
                let inst = Installation::from_bin_dir(dir)?;
                if let Some(v) = v.filter(|v| *v != inst.major) {
                    return Err(Error::InvalidInput(format!(
                        "{} holds PostgreSQL {}, not {v}",
                        dir.display(),
                        inst.major
                    )));
                }
                inst
            }
            (None, Some(v)) => find_installation(v)?,
            (None, None) => {
                let v = preferred_version().ok_or_else(|| Error::NotFound {
                    message: format!(
                        "no PostgreSQL server binaries found for any of {SUPPORTED_VERSIONS:?}; \
                         install them with `make setup` (scripts/setup-postgres.sh)"
                    ),
                    source: None,
                })?;
                find_installation(v)?
            }
        };
        crate::RoleName::creatable(options.master_user.as_str())?;
        let run_as = unprivileged_account();
        let install = install::reachable_by(&install, run_as)?;
        let dir = create_sandbox_dir(options.dir.as_deref(), run_as)?;
        let mut sandbox = Sandbox {
            dir,
            server: Server {
                install,
                run_as,
                port: 0,
                master_user: options.master_user,
                master_password: Password::generate()?,
                rdsadmin_password: Password::generate()?,
                ca_path: None,
                whitelist: Vec::new(),
            },
            security_group: options.security_group,
            startup: Duration::ZERO,
            running: false,
        };
        sandbox.init_cluster()?;
        sandbox.start_server()?;
        sandbox.create_rds_roles()?;
        sandbox.startup = begun.elapsed();
        Ok(sandbox)
    }

    fn major(&self) -> u32 {
        self.server.install.major
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The client addresses `pg_hba.conf` admits for every role but `rdsadmin`.
    fn clients(&self) -> String {
        let client = self
            .security_group
            .map_or(Ipv4Addr::LOCALHOST, |g| g.client);
        format!("{client}/32")
    }

    /// A command for one of the server's tools, run as the unprivileged account when needed,
    /// with a clean libpq environment and C messages.
    fn tool(&self, name: &str) -> Command {
        server_tool(
            &self.server.install,
            self.server.run_as,
            self.dir.path(),
            name,
        )
    }

    fn run(&self, cmd: Command, what: &str) -> Result<()> {
        run_tool(cmd, what, &self.log_path())
    }

    /// Writes `path` (atomically, private until its mode is set), sets `mode` and gives it to
    /// the server's account.
    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        crate::private_file::replace(path, contents)?;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
        }
        self.give_to_server_account(path)
    }

    fn give_to_server_account(&self, path: &Path) -> Result<()> {
        if let Some(RunAs { uid, gid }) = self.server.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
        }
        Ok(())
    }

    fn init_cluster(&mut self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let root = self.dir.path().to_owned();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("chmod sandbox directory", e))?;
        self.give_to_server_account(&root)?;
        // initdb reads the bootstrap password from a file; it is removed right after.
        let pwfile = root.join("rdsadmin.pw");
        let mut pw = self.server.rdsadmin_password.expose().as_bytes().to_vec();
        pw.push(b'\n');
        self.write_file(&pwfile, &pw, 0o600)?;
        zeroize::Zeroize::zeroize(&mut pw);
        let auth = if self.major() >= 14 {
            "scram-sha-256"
        } else {
            "md5"
        };
        let mut cmd = self.tool("initdb");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", "rdsadmin", "-E", "UTF8", "--no-locale", "--no-sync"])
            .arg(format!("--auth={auth}"))
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = self.run(cmd, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        result?;

        let data = self.data_dir();
        let mut conf = format!(
            "\n# rds-pg sandbox: an RDS-like instance\n\
             listen_addresses = '{}'\n\
             unix_socket_directories = ''\n\
             password_encryption = '{}'\n\
             log_statement = 'all'\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n\
             log_connections = on\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             max_connections = 100\n\
             lc_messages = 'C'\n",
            match self.security_group {
                Some(g) => format!("127.0.0.1, {}", g.listen),
                None => "127.0.0.1".into(),
            },
            if self.major() >= 14 {
                "scram-sha-256"
            } else {
                "md5"
            }
        );
        let tls = self.major() >= 15;
        if tls {
            let certs = certs::generate()?;
            let ca = root.join("ca.crt");
            self.write_file(&ca, certs.ca_pem.as_bytes(), 0o644)?;
            self.write_file(
                &data.join("server.crt"),
                certs.server_cert_pem.as_bytes(),
                0o644,
            )?;
            self.write_file(
                &data.join("server.key"),
                certs.server_key_pem.as_bytes(),
                0o600,
            )?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            self.server.ca_path = Some(ca);
        }
        if self.server.install.has_pgextwlist() {
            let hooks = root.join("extwlist");
            for (ext, sql) in [
                ("postgis", POSTGIS_AFTER_CREATE),
                ("postgis_topology", TOPOLOGY_AFTER_CREATE),
            ] {
                let d = hooks.join(ext);
                std::fs::create_dir_all(&d).map_err(|e| Error::io("creating extwlist hooks", e))?;
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| Error::io("chmod extwlist hooks", e))?;
                self.write_file(&d.join("after-create.sql"), sql.as_bytes(), 0o644)?;
            }
            std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("chmod extwlist hooks", e))?;
            conf.push_str(&format!(
                "local_preload_libraries = 'pgextwlist'\n\
                 extwlist.extensions = ''\n\
                 extwlist.custom_path = '{}'\n",
                hooks.display()
            ));
        }
        append(&data.join("postgresql.conf"), &conf)?;

        let method = if self.major() >= 14 {
            "scram-sha-256"
        } else {
            "md5"
        };
        let host = if tls { "hostssl" } else { "host" };
        // IAM emulation: members of rds_iam (through any chain) cannot log in with a password,
        // as on RDS; Sandbox::iam_token adds a line for one role above that refusal. On 16+
        // master holds ADMIN on rds_iam (granted to it directly), which pg_hba counts as
        // membership, so master's own line comes first there.
        let clients = self.clients();
        let master_line = if self.major() >= 16 {
            format!(
                "{host} all      {} {clients} {method}\n",
                crate::RoleName::new(self.server.master_user.as_str())?.quoted()
            )
        } else {
            String::new()
        };
        let hba = format!(
            "# rds-pg sandbox: TCP only{}{}\n\
             {host} rdsadmin rdsadmin 127.0.0.1/32 {method}\n\
             host   rdsadmin all      127.0.0.1/32 reject\n\
             {host} all      rdsadmin 127.0.0.1/32 {method}\n\
             {master_line}\
             {iam_reject}\n\
             {host} all      all      {clients} {method}\n",
            if tls {
                ", TLS only (like rds.force_ssl = 1)"
            } else {
                ""
            },
            if self.security_group.is_some() {
                "; a security group admits only the application server"
            } else {
                ""
            },
            iam_reject = iam_reject_line(host, &clients),
        );
        self.write_file(&data.join("pg_hba.conf"), hba.as_bytes(), 0o600)?;
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let mut last_err = None;
        for _ in 0..5 {
            self.server.port = free_port()?;
            let mut cmd = self.tool("pg_ctl");
            cmd.arg("start")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", "60", "-s"])
                .arg("-o")
                .arg(format!("-p {}", self.server.port));
            match self.run(cmd, "pg_ctl start") {
                Ok(()) => {
                    self.running = true;
                    return Ok(());
                }
                Err(e) => {
                    let port_taken = matches!(&e, Error::Tool { stderr, .. }
                        if stderr.contains("could not bind") || stderr.contains("already in use"));
                    if !port_taken {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("five attempts"))
    }

    fn create_rds_roles(&mut self) -> Result<()> {
        let mut admin = crate::connect(&self.rdsadmin_options())?;
        let v = self.major();
        let mut superuser_roles = vec![
            "pg_monitor",
            "pg_signal_backend",
            "rds_password",
            "rds_replication",
        ];
        if v >= 15 {
            superuser_roles.push("pg_checkpoint");
        }
        if v >= 16 {
            superuser_roles.extend(["pg_create_subscription", "pg_use_reserved_connections"]);
        }
        if v >= 17 {
            superuser_roles.push("pg_maintain");
        }
        let master = crate::RoleName::new(self.server.master_user.as_str())?;
        let m = master.quoted();
        let verifier = self.server.master_password.scram_verifier();
        let mut sql = String::from(
            "CREATE ROLE rds_superuser NOLOGIN;\n\
             CREATE ROLE rds_replication NOLOGIN;\n\
             CREATE ROLE rds_password NOLOGIN;\n\
             CREATE ROLE rds_iam NOLOGIN;\n\
             CREATE ROLE rds_ad NOLOGIN;\n",
        );
        sql.push_str(&format!(
            "GRANT {} TO rds_superuser WITH ADMIN OPTION;\n",
            superuser_roles.join(", ")
        ));
        if v >= 16 {
            // A plain server cannot hide pg_authid from pg_read_all_data members the way RDS
            // does, so these are grantable but neither inherited nor settable (stricter than RDS).
            sql.push_str(
                "GRANT pg_read_all_data, pg_write_all_data TO rds_superuser \
                 WITH ADMIN TRUE, INHERIT FALSE, SET FALSE;\n",
            );
        }
        sql.push_str(&format!(
            "CREATE ROLE {m} LOGIN NOSUPERUSER INHERIT CREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {};\n\
             GRANT rds_superuser TO {m};\n\
             ALTER DATABASE postgres OWNER TO {m};\n\
             ALTER DATABASE template1 OWNER TO {m};\n",
            postgres_protocol::escape::escape_literal(verifier.expose())
        ));
        if v >= 16 {
            // RDS lets master grant rds_iam; on 16+ that takes ADMIN on it (before, CREATEROLE).
            // Held by master itself (ADMIN only), not through rds_superuser: pg_hba counts any
            // membership, and a role someone made a member of rds_superuser is no IAM user.
            sql.push_str(&format!(
                "GRANT rds_iam TO {m} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE;\n"
            ));
        }
        if self.server.install.has_pgextwlist() {
            let rows = admin.query(
                "SELECT name FROM pg_available_extension_versions \
                 GROUP BY name HAVING NOT bool_or(trusted) AND name = ANY($1) ORDER BY name",
                &[&WHITELISTED_EXTENSIONS],
            )?;
            self.server.whitelist = rows.iter().map(|r| r.get::<_, String>(0)).collect();
            sql.push_str(&format!(
                "ALTER ROLE {m} SET extwlist.extensions = {};\n",
                postgres_protocol::escape::escape_literal(&self.server.whitelist.join(","))
            ));
        }
        if v <= 14 {
            sql.push_str(&format!("ALTER SCHEMA public OWNER TO {m};\n"));
        }
        admin.batch_execute(&sql)?;
        // CREATE DATABASE cannot share a multi-statement query (an implicit transaction).
        admin.batch_execute("CREATE DATABASE rdsadmin")?;
        admin.batch_execute("REVOKE ALL ON DATABASE rdsadmin FROM PUBLIC")?;
        if v <= 14 {
            let mut t1 = crate::connect(&self.rdsadmin_options().dbname("template1"))?;
            t1.batch_execute(&format!("ALTER SCHEMA public OWNER TO {m};"))?;
        }
        Ok(())
    }

    /// The options of a connection to this server (sslmode verify-full against the sandbox CA on
    /// 15+, plaintext before), without user or password; the only password file consulted does
    /// not exist, so that no file of the user running the tests is read.
    fn base_options(&self) -> ConnectOptions {
        server_options(
            self.server.port,
            self.server.ca_path.as_deref(),
            self.root().join("no-pgpass"),
        )
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    server_accessors! {
        /// Connection options for another role on this server (no password: set one).
    }

    /// Emulation of an IAM authentication token (RDS's `aws rds generate-db-auth-token`) for
    /// `role`, a member of `rds_iam`, for tests: the sandbox refuses every password login of a
    /// member of `rds_iam` (as RDS does; RDS says "PAM authentication failed", the sandbox says
    /// that `pg_hba.conf` rejects the connection), and this call makes it accept the returned
    /// token as `role`'s password: the bootstrap superuser sets the token as the role's password
    /// and a `pg_hba.conf` line above the rejection lets that role use it (the server reloads
    /// its configuration). Unlike a real token it does not expire, and once a role has one, a
    /// wrong password for it fails as a wrong password ("password authentication failed") rather
    /// than as the rejection. Returns once a login with it succeeds (with a
    /// [security group](SandboxOptions::security_group), where a login can come only through
    /// the application server, as soon as the server is told to reload its configuration).
    ///
    /// # Errors
    /// Connection and file errors; [`Error::Tool`] when the login still fails after 10 s.
    pub fn iam_token(&self, role: &str) -> Result<Password> {
        let name = crate::RoleName::new(role)?;
        let token = Password::generate()?;
        let mut admin = crate::connect(&self.rdsadmin_options())?;
        admin.batch_execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            name.quoted(),
            postgres_protocol::escape::escape_literal(token.scram_verifier().expose())
        ))?;
        let hba_path = self.data_dir().join("pg_hba.conf");
        let hba =
            std::fs::read_to_string(&hba_path).map_err(|e| Error::io("reading pg_hba.conf", e))?;
        let method = if self.major() >= 14 {
            "scram-sha-256"
        } else {
            "md5"
        };
        let host = if self.server.ca_path.is_some() {
            "hostssl"
        } else {
            "host"
        };
        let clients = self.clients();
        let line = format!("{host} all      {} {clients} {method}", name.quoted());
        if !hba.lines().any(|l| l == line) {
            let reject = iam_reject_line(host, &clients);
            let hba = hba.replacen(&reject, &format!("{line}\n{reject}"), 1);
            self.write_file(&hba_path, hba.as_bytes(), 0o600)?;
            admin.batch_execute("SELECT pg_reload_conf()")?;
        }
        let _ = admin.close();
        if self.security_group.is_some() {
            return Ok(token);
        }
        let options = self.options_for(role).password(token.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match crate::connect(&options) {
                Ok(c) => {
                    let _ = c.close();
                    return Ok(token);
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::Tool {
                        tool: "sandbox iam_token".into(),
                        status: "login refused".into(),
                        stderr: format!("the token does not log {role:?} in: {e}"),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Opens a connection as master to the `postgres` database, as psql would: after
    /// connecting, the session's `search_path` is PostgreSQL's default (`"$user", public`), not
    /// the one rds-pg pins for its own sessions ([`crate::connect::PINNED_SEARCH_PATH`]). For
    /// practice and tests: SQL typed here resolves names as an operator's psql session does.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect_master(&self) -> Result<postgres::Client> {
        psql_like(crate::connect(&self.master_options())?)
    }

    /// Opens a connection as `rdsadmin` (tests only) to `dbname`, with PostgreSQL's default
    /// `search_path` as [`Sandbox::connect_master`].
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect_rdsadmin(&self, dbname: &str) -> Result<postgres::Client> {
        psql_like(crate::connect(&self.rdsadmin_options().dbname(dbname))?)
    }

    /// The server binaries in use.
    pub fn installation(&self) -> &Installation {
        &self.server.install
    }

    /// Whether untrusted extensions can be created by master through the whitelist.
    pub fn has_extension_whitelist(&self) -> bool {
        !self.server.whitelist.is_empty()
    }

    /// The server log's text so far.
    ///
    /// # Errors
    /// An unreadable log file.
    pub fn log_text(&self) -> Result<String> {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| Error::io("reading the sandbox log", e))
    }

    /// How long [`Sandbox::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Stops the server (fast shutdown) and deletes the directory.
    ///
    /// # Errors
    /// pg_ctl failures.
    pub fn stop(mut self) -> Result<()> {
        self.stop_server("fast")
    }

    /// A handle that stops, starts and restarts this sandbox's server from anywhere (another
    /// thread, a test's fault-injection hook), keeping its port, data and log. For tests of
    /// what a client does when its server goes away.
    pub fn control(&self) -> ServerControl {
        ServerControl {
            install: self.server.install.clone(),
            run_as: self.server.run_as,
            dir: self.dir.path().to_owned(),
            port: self.server.port,
        }
    }

    /// Restarts the server (fast shutdown, which ends every session, then start on the same
    /// port), as an RDS reboot or failover does to its clients; returns once it accepts
    /// connections again.
    ///
    /// # Errors
    /// pg_ctl failures.
    pub fn restart(&self) -> Result<()> {
        self.control().restart()
    }

    fn stop_server(&mut self, mode: &str) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        // A ServerControl may have stopped it.
        if !self.control().is_running().unwrap_or(true) {
            return Ok(());
        }
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-s", "-t", "30"]);
        self.run(cmd, "pg_ctl stop")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop_server("immediate");
    }
}

/// Stops, starts and restarts a [`Sandbox`]'s server, keeping its port, data directory and log
/// ([`Sandbox::control`]). The [`Sandbox`] still owns the directory: dropping it stops the server
/// and deletes everything, whatever this handle did.
#[derive(Clone, Debug)]
pub struct ServerControl {
    install: Installation,
    run_as: Option<RunAs>,
    dir: PathBuf,
    port: u16,
}

impl ServerControl {
    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = server_tool(&self.install, self.run_as, &self.dir, "pg_ctl");
        cmd.arg(action).arg("-D").arg(self.dir.join("data"));
        cmd
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Whether the server is running (`pg_ctl status`).
    ///
    /// # Errors
    /// [`Error::Tool`] when pg_ctl cannot tell.
    pub fn is_running(&self) -> Result<bool> {
        let out = self
            .pg_ctl("status")
            .output()
            .map_err(|e| Error::io("running pg_ctl status", e))?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(Error::Tool {
                tool: "pg_ctl status".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
        }
    }

    /// Stops the server with a fast shutdown (sessions are ended); connections are refused
    /// until [`ServerControl::start`].
    ///
    /// # Errors
    /// pg_ctl failures (also when the server is not running).
    pub fn stop(&self) -> Result<()> {
        let mut cmd = self.pg_ctl("stop");
        cmd.args(["-m", "fast", "-w", "-s", "-t", "30"]);
        run_tool(cmd, "pg_ctl stop", &self.log_path())
    }

    /// Starts the stopped server again on its port and waits until it accepts connections.
    ///
    /// # Errors
    /// pg_ctl failures (also when the server runs already, or its port was taken meanwhile).
    pub fn start(&self) -> Result<()> {
        let mut cmd = self.pg_ctl("start");
        cmd.arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-s"])
            .arg("-o")
            .arg(format!("-p {}", self.port));
        run_tool(cmd, "pg_ctl start", &self.log_path())
    }

    /// Restarts the server: fast shutdown, which ends every session, then start on the same
    /// port; returns once it accepts connections again.
    ///
    /// # Errors
    /// pg_ctl failures.
    pub fn restart(&self) -> Result<()> {
        let mut cmd = self.pg_ctl("restart");
        cmd.arg("-l")
            .arg(self.log_path())
            .args(["-m", "fast", "-w", "-t", "60", "-s"])
            .arg("-o")
            .arg(format!("-p {}", self.port));
        run_tool(cmd, "pg_ctl restart", &self.log_path())
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free port", e))
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Run by pgextwlist as superuser after `CREATE EXTENSION postgis`: RDS leaves PostGIS's tables
/// re-ownable by `rds_superuser` members.
const POSTGIS_AFTER_CREATE: &str =
    "ALTER TABLE @extschema@.spatial_ref_sys OWNER TO rds_superuser;\n";

/// The same for postgis_topology: its schema, tables and sequences.
const TOPOLOGY_AFTER_CREATE: &str = "\
ALTER SCHEMA topology OWNER TO rds_superuser;
ALTER TABLE topology.topology OWNER TO rds_superuser;
ALTER TABLE topology.layer OWNER TO rds_superuser;
";

/// A command for one of the server's tools in `install`, run as `run_as` when set, in `cwd`,
/// with a clean libpq environment and C messages.
fn server_tool(install: &Installation, run_as: Option<RunAs>, cwd: &Path, name: &str) -> Command {
    let mut cmd = Command::new(install.tool(name));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.env("LC_ALL", "C").env("LANG", "C").current_dir(cwd);
    if let Some(RunAs { uid, gid }) = run_as {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Runs `cmd`; a failure becomes [`Error::Tool`] with its output and the last lines of the
/// server log at `log_path`.
fn run_tool(mut cmd: Command, what: &str, log_path: &Path) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {what}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    stderr.push_str(&String::from_utf8_lossy(&out.stdout));
    if let Ok(log) = std::fs::read_to_string(log_path) {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        stderr.push_str("\nserver log (last lines):\n");
        stderr.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Err(Error::Tool {
        tool: what.to_owned(),
        status: out.status.to_string(),
        stderr,
    })
}

/// The sandbox directory: a new temporary one, or exactly `wanted` (absent or empty), which the
/// server account must be able to reach.
fn create_sandbox_dir(wanted: Option<&Path>, run_as: Option<RunAs>) -> Result<tempfile::TempDir> {
    let Some(wanted) = wanted else {
        return tempfile::Builder::new()
            .prefix("rds-pg-sandbox-")
            .tempdir()
            .map_err(|e| Error::io("creating the sandbox directory", e));
    };
    let path = std::path::absolute(wanted)
        .map_err(|e| Error::io(format!("resolving {}", wanted.display()), e))?;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::InvalidInput(format!(
            "{} cannot be a sandbox directory",
            path.display()
        )));
    };
    if path.to_string_lossy().contains(['\n', '\r']) {
        return Err(Error::InvalidInput(
            "a sandbox directory name must not contain a line break".into(),
        ));
    }
    match std::fs::read_dir(&path) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "{} is not empty: choose a new or empty directory for the sandbox",
                    path.display()
                )));
            }
            std::fs::remove_dir(&path)
                .map_err(|e| Error::io(format!("replacing {}", path.display()), e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    }
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    if run_as.is_some() && !install::traversable_by_others(parent) {
        return Err(Error::InvalidInput(format!(
            "{} is not reachable by the unprivileged account the server runs as (this process \
             is root): choose a directory under /tmp",
            parent.display()
        )));
    }
    // No random suffix: exactly `path`, created by tempfile so that it is removed the same way.
    tempfile::Builder::new()
        .prefix(name)
        .rand_bytes(0)
        .tempdir_in(parent)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

/// The file in a detached sandbox's directory that describes it (mode 0600).
pub const STATE_FILE: &str = "rds-pg-sandbox.state";

/// The password file a detached sandbox writes for its master user (mode 0600).
pub const PASSFILE: &str = "pgpass";

impl Sandbox {
    /// Leaves the server running after this value is gone, for a shell session to use: writes
    /// a password file for master ([`PASSFILE`]) and a state file ([`STATE_FILE`]) in the
    /// sandbox directory, both mode 0600, and returns the handle that stops it later
    /// ([`DetachedSandbox::stop`], or [`DetachedSandbox::open`] from another process).
    ///
    /// # Errors
    /// I/O errors writing the files; the sandbox is then stopped and removed as on drop.
    pub fn detach(mut self) -> Result<DetachedSandbox> {
        let detached = DetachedSandbox {
            dir: self.dir.path().to_owned(),
            server: self.server.clone(),
        };
        detached.write_files()?;
        // From here on nothing stops the server or deletes the directory on drop.
        self.running = false;
        self.dir.disable_cleanup(true);
        Ok(detached)
    }
}

/// A sandbox left running by [`Sandbox::detach`], found again from its directory.
///
/// Dropping it leaves the server running; [`DetachedSandbox::stop`] stops it and deletes the
/// directory.
pub struct DetachedSandbox {
    dir: PathBuf,
    server: Server,
}

impl std::fmt::Debug for DetachedSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.server.debug(f, "DetachedSandbox", &self.dir)
    }
}

const LOOPBACK: &str = "127.0.0.1";

impl DetachedSandbox {
    /// Reads the state of the sandbox detached in `dir`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `dir` holds no sandbox state (nothing is touched then);
    /// [`Error::InvalidInput`] for a damaged state or password file.
    pub fn open(dir: impl AsRef<Path>) -> Result<DetachedSandbox> {
        let dir = std::path::absolute(dir.as_ref())
            .map_err(|e| Error::io(format!("resolving {}", dir.as_ref().display()), e))?;
        let state_path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&state_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    message: format!(
                        "no sandbox in {} (no {STATE_FILE}); start one with `rds-pg sandbox start`",
                        dir.display()
                    ),
                    source: None,
                })
            }
            Err(e) => return Err(Error::io(format!("reading {}", state_path.display()), e)),
        };
        let fields: std::collections::HashMap<&str, &str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        let damaged =
            |what: &str| Error::InvalidInput(format!("{}: bad {what}", state_path.display()));
        let field = |key: &str| fields.get(key).copied().ok_or_else(|| damaged(key));
        let install = Installation {
            bin_dir: PathBuf::from(field("bin_dir")?),
            major: field("major")?.parse().map_err(|_| damaged("major"))?,
            version: field("version")?.to_owned(),
        };
        let port: u16 = field("port")?.parse().map_err(|_| damaged("port"))?;
        let master_user = field("master_user")?.to_owned();
        let rdsadmin_password = Password::new(field("rdsadmin_password")?);
        let passfile = dir.join(PASSFILE);
        let master_password =
            crate::pgpass::lookup(&passfile, LOOPBACK, port, "postgres", &master_user)?
                .password
                .ok_or_else(|| damaged(&format!("{PASSFILE} (no line for the master user)")))?;
        let whitelist = field("whitelist")?
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(DetachedSandbox {
            server: Server {
                install,
                run_as: unprivileged_account(),
                port,
                master_user,
                master_password,
                rdsadmin_password,
                ca_path: fields.get("ca").map(PathBuf::from),
                whitelist,
            },
            dir,
        })
    }

    fn write_files(&self) -> Result<()> {
        let line = crate::pgpass::format_line(
            LOOPBACK,
            self.server.port,
            "*",
            &self.server.master_user,
            &self.server.master_password,
        )?;
        let passfile = Password::new(format!(
            "# master of the rds-pg sandbox on {LOOPBACK}:{}\n{}\n",
            self.server.port,
            line.expose()
        ));
        crate::private_file::replace(&self.passfile_path(), passfile.expose().as_bytes())?;
        let mut state = format!(
            "# rds-pg sandbox, left running by `rds-pg sandbox start`; stop it with\n\
             # `rds-pg sandbox stop --dir {}`\n\
             version={}\nmajor={}\nbin_dir={}\nport={}\nmaster_user={}\nwhitelist={}\n\
             rdsadmin_password={}\n",
            self.dir.display(),
            self.server.install.version,
            self.server.install.major,
            self.server.install.bin_dir.display(),
            self.server.port,
            self.server.master_user,
            self.server.whitelist.join(","),
            self.server.rdsadmin_password.expose(),
        );
        if let Some(ca) = &self.server.ca_path {
            state.push_str(&format!("ca={}\n", ca.display()));
        }
        let state = Password::new(state);
        crate::private_file::replace(&self.dir.join(STATE_FILE), state.expose().as_bytes())
    }

    /// The password file holding master's line ([`PASSFILE`] in the directory).
    pub fn passfile_path(&self) -> PathBuf {
        self.dir.join(PASSFILE)
    }

    /// As [`Sandbox`]'s, with the sandbox's own password file ([`PASSFILE`]).
    fn base_options(&self) -> ConnectOptions {
        server_options(
            self.server.port,
            self.server.ca_path.as_deref(),
            self.passfile_path(),
        )
    }

    fn root(&self) -> &Path {
        &self.dir
    }

    server_accessors! {
        /// Connection options for another role on this server; the password comes from the
        /// sandbox's password file unless one is set.
    }

    /// The libpq environment that makes `psql` and `rds-pg` connect as master: `PGHOST`,
    /// `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSFILE`, `PGSSLMODE` and, on 15+,
    /// `PGSSLROOTCERT`. No password: it is in the password file.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", LOOPBACK.to_owned()),
            ("PGPORT", self.server.port.to_string()),
            ("PGUSER", self.server.master_user.clone()),
            ("PGDATABASE", "postgres".to_owned()),
            (
                "PGPASSFILE",
                self.passfile_path().to_string_lossy().into_owned(),
            ),
        ];
        match &self.server.ca_path {
            Some(ca) => {
                env.push(("PGSSLMODE", SslMode::VerifyFull.as_str().to_owned()));
                env.push(("PGSSLROOTCERT", ca.to_string_lossy().into_owned()));
            }
            None => env.push(("PGSSLMODE", SslMode::Disable.as_str().to_owned())),
        }
        env
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Whether the server is running (`pg_ctl status`).
    ///
    /// # Errors
    /// [`Error::Tool`] when pg_ctl cannot tell (a missing data directory, for example).
    pub fn is_running(&self) -> Result<bool> {
        let mut cmd = server_tool(
            &self.server.install,
            self.server.run_as,
            &self.dir,
            "pg_ctl",
        );
        cmd.arg("status").arg("-D").arg(self.data_dir());
        let out = cmd
            .output()
            .map_err(|e| Error::io("running pg_ctl status", e))?;
        match out.status.code() {
            Some(0) => Ok(true),
            // 3: no server running on an existing data directory.
            Some(3) => Ok(false),
            _ => Err(Error::Tool {
                tool: "pg_ctl status".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
        }
    }

    /// Stops the server (fast shutdown) if it runs, then deletes the directory.
    ///
    /// # Errors
    /// pg_ctl failures, including a data directory pg_ctl cannot read (the directory is then
    /// kept), and I/O errors.
    pub fn stop(self) -> Result<()> {
        if self.is_running()? {
            let mut cmd = server_tool(
                &self.server.install,
                self.server.run_as,
                &self.dir,
                "pg_ctl",
            );
            cmd.arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-s", "-t", "30"]);
            run_tool(cmd, "pg_ctl stop", &self.log_path())?;
        }
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("removing {}", self.dir.display()), e))
    }
}

/// Gives a session PostgreSQL's default `search_path`, as a psql session has.
fn psql_like(mut client: postgres::Client) -> Result<postgres::Client> {
    client.batch_execute("SET search_path TO \"$user\", public")?;
    Ok(client)
}

/// The options a client is told to reach a sandbox server on `port` with: `postgres` on
/// 127.0.0.1, sslmode verify-full against `ca` on 15+, plaintext before; no user, password or
/// password file.
fn client_options(port: u16, ca: Option<&Path>) -> ConnectOptions {
    let o = ConnectOptions::new()
        .host(LOOPBACK)
        .port(port)
        .dbname("postgres");
    match ca {
        Some(ca) => o.sslmode(SslMode::VerifyFull).sslrootcert(ca),
        None => o.sslmode(SslMode::Disable),
    }
}

/// [`client_options`] for rds-pg's own connections: a 10 s connect timeout, and `passfile` the
/// only password file consulted.
fn server_options(port: u16, ca: Option<&Path>, passfile: PathBuf) -> ConnectOptions {
    client_options(port, ca)
        .connect_timeout(Duration::from_secs(10))
        .passfile(passfile)
}
