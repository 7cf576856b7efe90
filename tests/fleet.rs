//! Inventories for the fleet tests: instances pointing at sandboxes, master's passwords in a
//! password file written here (never in the inventory), and the projects' credentials delivered to
//! files of the same temporary directory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rds_pg_core::pgpass;
use rds_pg_core::ConnectOptions;

use crate::Sandbox;

/// An `[[instance]]`'s TLS lines for `sandbox`: verify-full against its CA on 15+, without TLS
/// before (as the sandbox serves).
pub fn instance_tls(sandbox: &Sandbox) -> String {
    match sandbox.ca_cert_path() {
        Some(ca) => format!("sslrootcert = {:?}\n", ca.display().to_string()),
        None => "sslmode = \"disable\"\n".to_owned(),
    }
}

/// A temporary directory holding an inventory, master's password file and what the projects'
/// credentials sinks write.
pub struct FleetFixture {
    dir: tempfile::TempDir,
    pgpass_lines: Vec<String>,
}

impl Default for FleetFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl FleetFixture {
    /// An empty fixture.
    pub fn new() -> Self {
        FleetFixture {
            dir: tempfile::tempdir().expect("a temporary directory"),
            pgpass_lines: Vec::new(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Master's password file (mode 0600).
    pub fn master_pgpass(&self) -> PathBuf {
        self.path("master.pgpass")
    }

    /// A `[[client]]` table.
    pub fn client(name: &str, account_id: &str) -> String {
        format!("[[client]]\nname = \"{name}\"\naccount_id = \"{account_id}\"\n\n")
    }

    /// The `[[instance]]` table of `sandbox` (TLS verify-full against its CA on 15+, without TLS
    /// before, as the sandbox serves), its master's password added to the fixture's password
    /// file.
    pub fn instance(&mut self, name: &str, client: &str, sandbox: &Sandbox) -> String {
        let line = pgpass::format_line(
            "127.0.0.1",
            sandbox.port(),
            "postgres",
            sandbox.master_user(),
            sandbox.master_password(),
        )
        .expect("a pgpass line");
        self.pgpass_lines.push(line.expose().to_owned());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(self.master_pgpass())
            .expect("master's password file");
        for l in &self.pgpass_lines {
            writeln!(f, "{l}").unwrap();
        }
        let tls = instance_tls(sandbox);
        format!(
            "[[instance]]\nname = \"{name}\"\nclient = \"{client}\"\nenvironment = \"production\"\n\
             region = \"eu-west-1\"\npostgres_major = {}\nendpoint = \"127.0.0.1\"\nport = {}\n\
             master_user = \"{}\"\nmaster_password = {{ pgpass = \"{}\" }}\n{tls}\n",
            sandbox.major_version(),
            sandbox.port(),
            sandbox.master_user(),
            self.master_pgpass().display()
        )
    }

    /// The head of a `[[project]]` table on `instance`.
    pub fn project(name: &str, client: &str, instance: &str) -> String {
        format!(
            "[[project]]\nname = \"{name}\"\nclient = \"{client}\"\nenvironment = \"production\"\n\
             region = \"eu-west-1\"\ninstance = \"{instance}\"\n\n"
        )
    }

    /// Writes the inventory `text` and returns its path.
    pub fn write_inventory(&self, text: &str) -> PathBuf {
        let path = self.path("fleet.toml");
        std::fs::write(&path, text).expect("the inventory");
        path
    }

    /// The options an env file delivered by rds-pg gives (its `DATABASE_URL`).
    pub fn env_file_login(&self, name: &str) -> ConnectOptions {
        let text =
            std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let url = text
            .lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL="))
            .unwrap_or_else(|| panic!("{name} has no DATABASE_URL: {text}"));
        let url = url.trim_matches('\'');
        url.parse()
            .unwrap_or_else(|e| panic!("{name}: DATABASE_URL does not parse: {e}"))
    }
}
