//! Finding `pg_dump`/`pg_restore` for a server (the one whose major version equals the server's,
//! else the nearest newer one), and running them with the password in a private temporary
//! password file.
//!
//! The tools are searched for in the directories of [`TOOLS_DIRS_ENV`] (`RDS_PG_TOOLS_DIRS`,
//! separated like `PATH`), then each `PATH` entry, then `/usr/lib/postgresql/<major>/bin` (where
//! Debian's and the PGDG packages install each major version side by side), unless a tools
//! directory is configured, which is then the only place searched.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::ConnectOptions;
use crate::connect::ServerVersion;
use crate::error::{Error, Result};
use crate::secret::Password;

/// Where Debian and Ubuntu install each major version's client tools (`/usr/lib/postgresql/15/bin`).
pub const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";

/// Environment variable naming extra directories to search for the client tools, separated like
/// `PATH` (`/opt/pg18/bin:/opt/pg16/bin`); they are searched before `PATH`. rds-pg reads it
/// itself and never passes it on to the tools.
pub const TOOLS_DIRS_ENV: &str = "RDS_PG_TOOLS_DIRS";

/// One of the client programs rds-pg runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientProgram {
    /// `pg_dump`.
    PgDump,
    /// `pg_restore`.
    PgRestore,
    /// `psql`: runs pg_restore's SQL script when pg_restore cannot connect to the server itself
    /// (a restore into a server older than 17 with pg_restore 17 or newer).
    Psql,
}

impl ClientProgram {
    /// The executable's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            ClientProgram::PgDump => "pg_dump",
            ClientProgram::PgRestore => "pg_restore",
            ClientProgram::Psql => "psql",
        }
    }
}

impl fmt::Display for ClientProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// A client program found on this machine, with the version it reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientTool {
    /// Which program.
    pub program: ClientProgram,
    /// The executable.
    pub path: PathBuf,
    /// The version it reports (`15.18`).
    pub version: String,
    /// Its major version (15).
    pub major: u32,
}

impl fmt::Display for ClientTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path.display(), self.version)
    }
}

/// Reads the version out of `pg_dump --version` output (`pg_dump (PostgreSQL) 15.18 (Debian
/// 15.18-0+deb12u1)`, `pg_restore (PostgreSQL) 18beta1`): the version text and its major.
pub fn parse_version_output(output: &str) -> Option<(String, u32)> {
    let line = output.lines().next()?;
    let rest = line.split_once("(PostgreSQL) ")?.1;
    let version = rest.split_whitespace().next()?;
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    let mut major: u32 = digits.parse().ok()?;
    if major < 10 {
        // 9.6 and older: the major is two numbers; none of them is new enough for 13+ anyway.
        major = 9;
    }
    Some((version.to_owned(), major))
}

/// Runs `path --version` and reads what it says.
///
/// # Errors
/// [`Error::Io`] when the program cannot run, [`Error::Tool`] when its output is not a
/// PostgreSQL version line.
pub fn probe(program: ClientProgram, path: &Path) -> Result<ClientTool> {
    let out = tool_command(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {} --version", path.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_version_output(&text) {
        Some((version, major)) if out.status.success() => Ok(ClientTool {
            program,
            path: path.to_owned(),
            version,
            major,
        }),
        _ => Err(Error::Tool {
            tool: format!("{} --version", path.display()),
            status: out.status.to_string(),
            stderr: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        }),
    }
}

/// The directories searched when no tools directory is configured: each entry of
/// [`TOOLS_DIRS_ENV`] in order, each `PATH` entry in order, then `/usr/lib/postgresql/<major>/bin`,
/// newest major first.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for variable in [TOOLS_DIRS_ENV, "PATH"] {
        if let Some(value) = std::env::var_os(variable) {
            dirs.extend(std::env::split_paths(&value).filter(|d| !d.as_os_str().is_empty()));
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_LIB_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    dirs.extend(versioned.into_iter().map(|(_, d)| d));
    dirs
}

/// Every usable copy of `program`: in `tools_dir` only when one is configured, else in
/// [`search_dirs`] order. Copies that resolve to the same file are listed once; Debian's
/// `pg_wrapper` (`/usr/bin/pg_dump`) is left out because the version it reports without a
/// cluster need not be the one it runs, and the versioned directories it picks from are searched
/// directly.
pub fn find_all(program: ClientProgram, tools_dir: Option<&Path>) -> Vec<ClientTool> {
    match tools_dir {
        Some(dir) => find_all_in(program, &[dir.to_owned()]),
        None => find_all_in(program, &search_dirs()),
    }
}

/// Every usable copy of `program` in `dirs`, in that order (see [`find_all`]).
pub fn find_all_in(program: ClientProgram, dirs: &[PathBuf]) -> Vec<ClientTool> {
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for dir in dirs {
        let path = dir.join(program.file_name());
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        if !real.is_file() || seen.contains(&real) {
            continue;
        }
        seen.push(real.clone());
        if real.file_name() == Some(OsStr::new("pg_wrapper")) {
            continue;
        }
        if let Ok(tool) = probe(program, &path) {
            found.push(tool);
        }
    }
    found
}

/// The client to use for a server of major version `server_major` among `found` (in search
/// order): the first whose major equals the server's, else the first of the nearest newer major.
/// An older client is never chosen: pg_dump refuses newer servers (`aborting because of server
/// version mismatch`), and a newer client than needed writes archives (or sends settings, such as
/// pg_restore 17's `transaction_timeout`) that older servers and tools do not understand.
pub fn choose(found: &[ClientTool], server_major: u32) -> Option<&ClientTool> {
    let major = found
        .iter()
        .map(|t| t.major)
        .filter(|m| *m >= server_major)
        .min()?;
    found.iter().find(|t| t.major == major)
}

/// The copy of `program` (see [`find_all`]) to use for `server`: see [`choose`].
///
/// # Errors
/// [`Error::ToolVersion`] naming the server version, every client found and how to get one that
/// works.
pub fn find(
    program: ClientProgram,
    server: ServerVersion,
    tools_dir: Option<&Path>,
) -> Result<ClientTool> {
    let found = find_all(program, tools_dir);
    if let Some(tool) = choose(&found, server.major()) {
        return Ok(tool.clone());
    }
    Err(version_error(program, server, tools_dir, &found))
}

/// The [`Error::ToolVersion`] for a server newer than every client in `found`.
pub(crate) fn version_error(
    program: ClientProgram,
    server: ServerVersion,
    tools_dir: Option<&Path>,
    found: &[ClientTool],
) -> Error {
    let major = server.major();
    let place = match tools_dir {
        Some(dir) => format!("in {}", dir.display()),
        None => format!("in {TOOLS_DIRS_ENV}, on PATH or in {DEBIAN_LIB_DIR}/*/bin"),
    };
    Error::ToolVersion {
        tool: program.file_name().to_owned(),
        server_version: server.to_string(),
        server_major: major,
        found: found.iter().map(|t| t.to_string()).collect(),
        fix: format!(
            "install the PostgreSQL {major} (or newer) client tools, which are not {place} \
             (Debian/Ubuntu: `apt-get install postgresql-client-{major}` from apt.postgresql.org; \
             RHEL: `dnf install postgresql{major}`), or name a {program} {major}+ bin \
             directory in {TOOLS_DIRS_ENV} or as the tools directory"
        ),
    }
}

/// A private temporary directory holding a `0600` password file for one tool run (and, for a
/// restore, the filtered table of contents). Dropping it deletes both.
#[derive(Debug)]
pub struct ToolWorkDir {
    dir: tempfile::TempDir,
    passfile: PathBuf,
}

impl ToolWorkDir {
    /// Creates the directory (mode `0700`) and writes the password of `connection` (the
    /// configured one, else the first matching pgpass entry) to `pgpass` (mode `0600`) as a
    /// `*:port:*:user:password` line. Without a password the file is empty, so the tool never
    /// reads another password file.
    ///
    /// # Errors
    /// [`Error::Io`] for file-system errors; [`Error::InvalidInput`] for a password a pgpass file
    /// cannot hold (a line break).
    pub fn create(connection: &ConnectOptions) -> Result<ToolWorkDir> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("rds-pg-tool-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let passfile = dir.path().join("pgpass");
        let contents = match connection.resolve_password()? {
            Some(password) => {
                let user = connection.get_user();
                let line =
                    crate::pgpass::format_line("*", connection.get_port(), "*", &user, &password)?;
                Password::new(format!("{}\n", line.expose()))
            }
            None => Password::new(""),
        };
        crate::private_file::replace(&passfile, contents.expose().as_bytes())?;
        Ok(ToolWorkDir { dir, passfile })
    }

    /// The password file to hand to the tool as `PGPASSFILE`.
    pub fn passfile(&self) -> &Path {
        &self.passfile
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A command for `program` whose environment is this process's without any variable that may
/// carry master's credentials ([`crate::credentials::is_credential_variable`]: every `PG*` and
/// `RDS_PG_*` variable and `DATABASE_URL`), with C messages (the output is parsed).
pub fn tool_command(program: &Path) -> Command {
    tool_command_with_env(program, std::env::vars_os())
}

fn tool_command_with_env(
    program: &Path,
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Command {
    let mut cmd = Command::new(program);
    crate::credentials::environment_without_credentials(&mut cmd, environment);
    cmd.env("LC_ALL", "C");
    cmd
}

/// A command for `tool` that connects with `connection`: host, port, user and database on argv;
/// the password only through `PGPASSFILE=passfile`; TLS through `PGSSLMODE`/`PGSSLROOTCERT`.
///
/// The only `PG*` variables the tool sees are those set here (`PGPASSFILE`, `PGSSLMODE`,
/// `PGAPPNAME`, and `PGSSLROOTCERT`/`PGCONNECT_TIMEOUT` when the connection has them): none is
/// inherited from this process (no `PGPASSWORD`, `PGOPTIONS`, `PGSERVICE`, `PGSERVICEFILE`, …),
/// and neither is `DATABASE_URL` or an `RDS_PG_*` variable (see [`tool_command`]). C messages
/// (the output is parsed). Never prompts for a password (`--no-password`).
pub fn connection_command(
    tool: &ClientTool,
    connection: &ConnectOptions,
    passfile: &Path,
) -> Command {
    connection_command_with_env(tool, connection, passfile, std::env::vars_os())
}

fn connection_command_with_env(
    tool: &ClientTool,
    connection: &ConnectOptions,
    passfile: &Path,
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Command {
    let mut cmd = tool_command_with_env(&tool.path, environment);
    cmd.env("PGPASSFILE", passfile)
        .env("PGSSLMODE", connection.get_sslmode().as_str())
        .env("PGAPPNAME", connection.get_application_name());
    if let Some(root) = connection.get_sslrootcert() {
        cmd.env("PGSSLROOTCERT", root);
    }
    if let Some(timeout) = connection.get_connect_timeout() {
        cmd.env("PGCONNECT_TIMEOUT", timeout.as_secs().max(2).to_string());
    }
    cmd.arg(format!("--host={}", connection.get_host()))
        .arg(format!("--port={}", connection.get_port()))
        .arg(format!("--username={}", connection.get_user()))
        .arg("--no-password")
        .arg(dbname_arg(connection.get_dbname()));
    cmd
}

/// `--dbname=<name>`; a name that the tools would read as a connection string (it contains `=`
/// or starts with a URI scheme) is passed as `dbname='<name>'` instead.
pub fn dbname_arg(name: &str) -> String {
    let looks_like_conninfo =
        name.contains('=') || name.starts_with("postgresql://") || name.starts_with("postgres://");
    if looks_like_conninfo {
        format!("--dbname=dbname={}", crate::conninfo::quote_value(name))
    } else {
        format!("--dbname={name}")
    }
}

/// `--<flag>=<path>` as one argument, without assuming the path is UTF-8.
pub(crate) fn path_arg(flag: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(format!("--{flag}="));
    arg.push(path.as_os_str());
    arg
}

/// The `Error::Tool` for a failed run: the program, its status and its standard error.
pub(crate) fn tool_failed(
    tool: &ClientTool,
    status: std::process::ExitStatus,
    stderr: String,
) -> Error {
    Error::Tool {
        tool: format!("{} ({})", tool.program, tool.path.display()),
        status: status.to_string(),
        stderr,
    }
}

/// Runs `cmd` (standard input and output closed, standard error piped) and hands `on_line`
/// each line of its standard error as it arrives, trailing white space removed; returns the exit
/// status. pg_dump and pg_restore report progress and errors there.
///
/// # Errors
/// [`Error::Io`] when the program cannot be started or read.
pub(crate) fn run_reading_stderr(
    cmd: &mut Command,
    tool: &ClientTool,
    on_line: &mut dyn FnMut(&str),
) -> Result<std::process::ExitStatus> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("running {}", tool.path.display()), e))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(format!("reading {}'s output", tool.program), e))?;
        if n == 0 {
            break;
        }
        on_line(String::from_utf8_lossy(&buf).trim_end());
    }
    child
        .wait()
        .map_err(|e| Error::io(format!("waiting for {}", tool.path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions() {
        assert_eq!(
            parse_version_output("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version_output("pg_restore (PostgreSQL) 18beta1\n"),
            Some(("18beta1".into(), 18))
        );
        assert_eq!(
            parse_version_output("pg_dump (PostgreSQL) 9.6.24\n"),
            Some(("9.6.24".into(), 9))
        );
        assert_eq!(parse_version_output("something else"), None);
        assert_eq!(parse_version_output(""), None);
    }

    #[test]
    fn dbname_that_looks_like_a_connection_string_is_quoted() {
        assert_eq!(dbname_arg("shop"), "--dbname=shop");
        assert_eq!(dbname_arg("a=b"), "--dbname=dbname='a=b'");
        assert_eq!(
            dbname_arg("postgresql://x"),
            "--dbname=dbname='postgresql://x'"
        );
        assert_eq!(dbname_arg("it's=\\"), r"--dbname=dbname='it\'s=\\'");
    }

    #[test]
    fn work_dir_holds_a_private_passfile_and_disappears() {
        let options = ConnectOptions::new()
            .user("alice")
            .port(6543)
            .password(crate::Password::new("s3:cret"));
        let work = ToolWorkDir::create(&options).unwrap();
        let text = std::fs::read_to_string(work.passfile()).unwrap();
        assert_eq!(text, "*:6543:*:alice:s3\\:cret\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(work.passfile())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(work.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "directory is private: {mode:o}");
        }
        let dir = work.path().to_owned();
        drop(work);
        assert!(!dir.exists());
    }

    #[test]
    fn connection_command_keeps_the_password_off_argv_and_env() {
        let options = ConnectOptions::new()
            .host("db.example")
            .port(6543)
            .user("alice")
            .dbname("shop")
            .password(crate::Password::new("hunter2-secret"))
            .sslmode(crate::SslMode::VerifyFull)
            .sslrootcert("/etc/ca.pem");
        let tool = ClientTool {
            program: ClientProgram::PgDump,
            path: "/opt/pg/bin/pg_dump".into(),
            version: "15.18".into(),
            major: 15,
        };
        let cmd = connection_command(&tool, &options, Path::new("/tmp/x/pgpass"));
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--host=db.example",
                "--port=6543",
                "--username=alice",
                "--no-password",
                "--dbname=shop"
            ]
        );
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        let get = |k: &str| {
            envs.iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(get("PGPASSFILE").as_deref(), Some("/tmp/x/pgpass"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("verify-full"));
        assert_eq!(get("PGSSLROOTCERT").as_deref(), Some("/etc/ca.pem"));
        assert!(get("PGPASSWORD").is_none());
        assert!(!format!("{cmd:?}").contains("hunter2"));
    }

    /// The operator's libpq variables never reach the tool: its environment is exactly what it
    /// was given less the credential variables, plus the few `PG*` variables rds-pg sets.
    #[test]
    fn connection_command_inherits_no_pg_variable() {
        let options = ConnectOptions::new()
            .user("alice")
            .dbname("shop")
            .password(crate::Password::new("alice-pw"))
            .sslmode(crate::SslMode::VerifyFull)
            .sslrootcert("/etc/ca.pem");
        let tool = ClientTool {
            program: ClientProgram::PgRestore,
            path: "/opt/pg/bin/pg_restore".into(),
            version: "15.18".into(),
            major: 15,
        };
        let inherited: Vec<(OsString, OsString)> = [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/deploy"),
            ("AWS_REGION", "eu-west-1"),
            ("PGPASSWORD", "master-secret"),
            ("PGPASSFILE", "/root/.pgpass"),
            ("PGOPTIONS", "-c search_path=evil"),
            ("PGSERVICE", "master"),
            ("PGSERVICEFILE", "/root/.pg_service.conf"),
            ("PGHOSTADDR", "203.0.113.9"),
            ("PGSSLKEY", "/root/master.key"),
            ("PGTARGETSESSIONATTRS", "read-write"),
            (
                "DATABASE_URL",
                "postgresql://master:master-secret@db/postgres",
            ),
            ("RDS_PG_SANDBOX_DIR", "/tmp/practice"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let cmd =
            connection_command_with_env(&tool, &options, Path::new("/tmp/w/pgpass"), inherited);
        let mut envs: Vec<(String, String)> = cmd
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        envs.sort();
        let expected: Vec<(String, String)> = [
            ("AWS_REGION", "eu-west-1"),
            ("HOME", "/home/deploy"),
            ("LC_ALL", "C"),
            ("PATH", "/usr/bin:/bin"),
            ("PGAPPNAME", "rds-pg"),
            ("PGPASSFILE", "/tmp/w/pgpass"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(envs, expected);
        assert!(!format!("{cmd:?}").contains("master-secret"));
    }
}
