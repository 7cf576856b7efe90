//! A throw-away RDS-like PostgreSQL instance: `rdsadmin` as the bootstrap superuser, the `rds_*`
//! roles of the chosen major version, a non-superuser master, TLS-only logins on 15+, an extension
//! whitelist (pgextwlist) where it is installed, and every statement logged to a file.
//!
//! Used by the test suite, the demo and the Python binding. See `docs/rds-semantics.md` §1 and §5
//! of the project for what is emulated and the known gaps.

mod certs;
mod install;

use std::net::TcpListener;
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

/// Untrusted extensions an RDS master may create (through RDS's whitelist), when the server has
/// them. Trusted extensions are deliberately left off: see `rds-semantics.md` §5.
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

/// How to build a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    version: Option<u32>,
    bin_dir: Option<PathBuf>,
    master_user: String,
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
        }
    }

    /// Selects the PostgreSQL major version.
    pub fn version(mut self, major: u32) -> Self {
        self.version = Some(major);
        self
    }

    /// Uses the server binaries in `bin_dir` instead of searching.
    pub fn bin_dir(mut self, bin_dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(bin_dir.into());
        self
    }

    /// Names the master user (RDS lets you choose it; `master` and `postgres` are common).
    pub fn master_user(mut self, name: impl Into<String>) -> Self {
        self.master_user = name.into();
        self
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

/// A running RDS-like PostgreSQL server in a temporary directory.
///
/// Dropping it stops the server and deletes the directory, also while a panic unwinds.
pub struct Sandbox {
    dir: tempfile::TempDir,
    install: Installation,
    run_as: Option<RunAs>,
    port: u16,
    master_user: String,
    master_password: Password,
    rdsadmin_password: Password,
    ca_path: Option<PathBuf>,
    whitelist: Vec<String>,
    startup: Duration,
    running: bool,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("dir", &self.dir.path())
            .field("version", &self.install.version)
            .field("port", &self.port)
            .field("master_user", &self.master_user)
            .finish_non_exhaustive()
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
        let dir = tempfile::Builder::new()
            .prefix("rds-pg-sandbox-")
            .tempdir()
            .map_err(|e| Error::io("creating the sandbox directory", e))?;
        let mut sandbox = Sandbox {
            dir,
            install,
            run_as,
            port: 0,
            master_user: options.master_user,
            master_password: Password::generate()?,
            rdsadmin_password: Password::generate()?,
            ca_path: None,
            whitelist: Vec::new(),
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
        self.install.major
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for one of the server's tools, run as the unprivileged account when needed,
    /// with a clean libpq environment and C messages.
    fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.install.tool(name));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        cmd.env("LC_ALL", "C")
            .env("LANG", "C")
            .current_dir(self.dir.path());
        if let Some(RunAs { uid, gid }) = self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<()> {
        let out = cmd
            .output()
            .map_err(|e| Error::io(format!("running {what}"), e))?;
        if out.status.success() {
            return Ok(());
        }
        let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr.push_str(&String::from_utf8_lossy(&out.stdout));
        if let Ok(log) = std::fs::read_to_string(self.log_path()) {
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

    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, contents)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
        self.give_to_server_account(path)
    }

    fn give_to_server_account(&self, path: &Path) -> Result<()> {
        if let Some(RunAs { uid, gid }) = self.run_as {
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
        let mut pw = self.rdsadmin_password.expose().as_bytes().to_vec();
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
             listen_addresses = '127.0.0.1'\n\
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
            self.ca_path = Some(ca);
        }
        if self.install.has_pgextwlist() {
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
        let hba = format!(
            "# rds-pg sandbox: TCP only{}\n\
             {host} rdsadmin rdsadmin 127.0.0.1/32 {method}\n\
             host   rdsadmin all      127.0.0.1/32 reject\n\
             {host} all      all      127.0.0.1/32 {method}\n",
            if tls {
                ", TLS only (like rds.force_ssl = 1)"
            } else {
                ""
            }
        );
        self.write_file(&data.join("pg_hba.conf"), hba.as_bytes(), 0o600)?;
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let mut last_err = None;
        for _ in 0..5 {
            self.port = free_port()?;
            let mut cmd = self.tool("pg_ctl");
            cmd.arg("start")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", "60", "-s"])
                .arg("-o")
                .arg(format!("-p {}", self.port));
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
        let master = crate::RoleName::new(self.master_user.as_str())?;
        let m = master.quoted();
        let verifier = self.master_password.scram_verifier();
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
        if self.install.has_pgextwlist() {
            let rows = admin.query(
                "SELECT name FROM pg_available_extension_versions \
                 GROUP BY name HAVING NOT bool_or(trusted) AND name = ANY($1) ORDER BY name",
                &[&WHITELISTED_EXTENSIONS],
            )?;
            self.whitelist = rows.iter().map(|r| r.get::<_, String>(0)).collect();
            sql.push_str(&format!(
                "ALTER ROLE {m} SET extwlist.extensions = {};\n",
                postgres_protocol::escape::escape_literal(&self.whitelist.join(","))
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
    /// 15+, plaintext before), without user or password.
    fn base_options(&self) -> ConnectOptions {
        let o = ConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(10))
            .passfile(self.dir.path().join("no-pgpass"));
        match &self.ca_path {
            Some(ca) => o.sslmode(SslMode::VerifyFull).sslrootcert(ca),
            None => o.sslmode(SslMode::Disable),
        }
    }

    /// Connection options of the master user, password included.
    pub fn master_options(&self) -> ConnectOptions {
        self.base_options()
            .user(self.master_user.as_str())
            .password(self.master_password.clone())
    }

    /// Connection options of `rdsadmin`, the real superuser. For test assertions only: rds-pg
    /// never has these on RDS.
    pub fn rdsadmin_options(&self) -> ConnectOptions {
        self.base_options()
            .user("rdsadmin")
            .password(self.rdsadmin_password.clone())
    }

    /// Connection options for another role on this server (no password: set one).
    pub fn options_for(&self, user: &str) -> ConnectOptions {
        self.base_options().user(user)
    }

    /// Opens a connection as master to the `postgres` database.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect_master(&self) -> Result<postgres::Client> {
        crate::connect(&self.master_options())
    }

    /// Opens a connection as `rdsadmin` (tests only) to `dbname`.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect_rdsadmin(&self, dbname: &str) -> Result<postgres::Client> {
        crate::connect(&self.rdsadmin_options().dbname(dbname))
    }

    /// The master user's name.
    pub fn master_user(&self) -> &str {
        &self.master_user
    }

    /// The master user's password.
    pub fn master_password(&self) -> &Password {
        &self.master_password
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The major version (13–18).
    pub fn major_version(&self) -> u32 {
        self.install.major
    }

    /// The full server version (`16.14`).
    pub fn version(&self) -> &str {
        &self.install.version
    }

    /// The server binaries in use.
    pub fn installation(&self) -> &Installation {
        &self.install
    }

    /// The sandbox CA certificate (PEM), on 15+ where TLS is required.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// Whether untrusted extensions can be created by master through the whitelist.
    pub fn has_extension_whitelist(&self) -> bool {
        !self.whitelist.is_empty()
    }

    /// The untrusted extensions master may create.
    pub fn whitelisted_extensions(&self) -> &[String] {
        &self.whitelist
    }

    /// Whether master can create PostGIS here.
    pub fn has_postgis(&self) -> bool {
        self.whitelist.iter().any(|e| e == "postgis")
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log, which records every statement (`log_statement = 'all'`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
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

    fn stop_server(&mut self, mode: &str) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
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
