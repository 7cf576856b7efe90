//! Master's connection to an inventory instance: endpoint, port and master user from the
//! inventory, TLS `verify-full` against the inventory's root certificate (or `PGSSLROOTCERT`),
//! and the password from where the inventory says (a password file, an environment variable or a
//! command), never written anywhere.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Instance, MasterPassword};
use crate::config::{ConnectOptions, DEFAULT_DBNAME};
use crate::error::{Error, Result};
use crate::secret::Password;

/// How long master's connection to an instance may take when `PGCONNECT_TIMEOUT` does not say.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Instance {
    /// The options of master's connection to this instance: the endpoint and port, the master
    /// user, the maintenance database `postgres`, the inventory's `sslmode` (default
    /// `verify-full`) against the inventory's `sslrootcert` or else `PGSSLROOTCERT`, a connect
    /// timeout (`PGCONNECT_TIMEOUT`, default 10 s), and master's password, read now from where
    /// `master_password` says:
    ///
    /// - `{ pgpass = "PATH" }` (or no `master_password`: `PGPASSFILE`, else `~/.pgpass`): the
    ///   first line matching the endpoint, port, `postgres` and the master user, with libpq's
    ///   rules;
    /// - `{ env = "NAME" }`: the variable's value;
    /// - `{ command = [...] }`: the program's standard output (run without a shell, standard
    ///   input closed, this process's environment), one line, its line break removed.
    ///
    /// The password is in the options only (never in a message); every database rds-pg connects
    /// to on the instance uses it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the instance when no password is found, the variable is
    /// unset, the command prints nothing or more than one line, or TLS verification lacks a root
    /// certificate; [`Error::NotFound`] for a command that does not exist; [`Error::Tool`] for
    /// one that fails (with its standard error); [`Error::Io`] for an unreadable password file.
    pub fn connect_options(&self) -> Result<ConnectOptions> {
        self.connect_options_with(|name| std::env::var(name).ok())
    }

    /// As [`Instance::connect_options`], environment variables read through `env` (for tests
    /// and embedding; a command still runs with this process's environment).
    ///
    /// # Errors
    /// As [`Instance::connect_options`].
    pub fn connect_options_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectOptions> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let what = format!("instance {:?}", self.name);
        let mut options = ConnectOptions::new()
            .host(self.endpoint.as_str())
            .port(self.port)
            .user(self.master_user.as_str())
            .dbname(DEFAULT_DBNAME)
            .sslmode(self.sslmode)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .application_name("rds-pg fleet");
        if let Some(seconds) = env("PGCONNECT_TIMEOUT") {
            options.set("connect_timeout", seconds)?;
        }
        match self
            .sslrootcert
            .clone()
            .or_else(|| env("PGSSLROOTCERT").map(PathBuf::from))
        {
            Some(ca) => options = options.sslrootcert(ca),
            None if self.sslmode.verifies() => {
                return Err(Error::InvalidInput(format!(
                    "{what}: sslmode {} needs the CA certificates to verify the server with: set \
                     `sslrootcert` in the inventory or PGSSLROOTCERT (for RDS: AWS's \
                     global-bundle.pem)",
                    self.sslmode
                )))
            }
            None => {}
        }
        let password = match &self.master_password {
            MasterPassword::Pgpass(path) => {
                let passfile = match path {
                    Some(p) => Some(p.clone()),
                    None => env("PGPASSFILE")
                        .map(PathBuf::from)
                        .or_else(crate::pgpass::default_path),
                };
                let found = match &passfile {
                    Some(p) => options.clone().passfile(p).resolve_password()?,
                    None => None,
                };
                found.ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{what}: no line for {}:{}:{}:{} in {}",
                        self.endpoint,
                        self.port,
                        DEFAULT_DBNAME,
                        self.master_user.as_str(),
                        match &passfile {
                            Some(p) => format!("password file \"{}\"", p.display()),
                            None => "a password file (no PGPASSFILE and no home directory)".into(),
                        }
                    ))
                })?
            }
            MasterPassword::Env(name) => env(name).map(Password::new).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{what}: environment variable {name} (master's password) is not set"
                ))
            })?,
            MasterPassword::Command(argv) => password_from_command(&what, argv)?,
        };
        Ok(options.password(password))
    }
}

/// Runs `argv` without a shell and reads the password it prints.
fn password_from_command(what: &str, argv: &[OsString]) -> Result<Password> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidInput(format!(
            "{what}: master_password's command is empty"
        )));
    };
    let tool = program.to_string_lossy().into_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                message: format!(
                    "{what}: master password command {tool:?} (is it installed and on PATH?)"
                ),
                source: None,
            },
            _ => Error::io(
                format!("{what}: cannot run master password command {tool:?}"),
                e,
            ),
        })?;
    let mut stdout = zeroize::Zeroizing::new(Vec::new());
    let mut stderr = Vec::new();
    // Read standard error on a thread while standard output is read, so that a command writing
    // a lot to either cannot dead-lock with us.
    let err_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = err_pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    });
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).map_err(|e| {
            Error::io(
                format!("{what}: reading master password command {tool:?}"),
                e,
            )
        })?;
    }
    stderr.extend(reader.join().unwrap_or_default());
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("{what}: waiting for {tool:?}"), e))?;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&stdout).into_owned());
    let line = text
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&text);
    if !status.success() {
        let mut shown = String::from_utf8_lossy(&stderr).trim().to_owned();
        if !line.is_empty() && shown.contains(line) {
            shown = shown.replace(line, "[redacted]");
        }
        return Err(Error::Tool {
            tool,
            status: status.to_string(),
            stderr: shown,
        });
    }
    if line.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{what}: master password command {tool:?} printed nothing"
        )));
    }
    if line.contains(['\n', '\r', '\0']) {
        return Err(Error::InvalidInput(format!(
            "{what}: master password command {tool:?} printed more than one line (the password \
             is its whole standard output, one line)"
        )));
    }
    Ok(Password::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SslMode;
    use crate::inventory::Inventory;

    fn instance(extra: &str) -> Instance {
        let text = format!(
            "[[client]]\nname = \"acme\"\naccount_id = \"111122223333\"\n\n\
             [[instance]]\nname = \"db1\"\nclient = \"acme\"\nenvironment = \"staging\"\n\
             region = \"eu-west-1\"\npostgres_major = 16\nendpoint = \"db.example.com\"\n\
             port = 6432\nmaster_user = \"admin\"\n{extra}\n"
        );
        Inventory::from_str(&text, "t.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .instances
            .remove(0)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_password_comes_from_an_environment_variable() {
        let i = instance(
            "sslrootcert = \"/etc/rds/global-bundle.pem\"\nmaster_password = { env = \"DB1_PW\" }",
        );
        let o = i
            .connect_options_with(|k| (k == "DB1_PW").then(|| "s3cret:pw".to_owned()))
            .unwrap();
        assert_eq!(o.get_host(), "db.example.com");
        assert_eq!(o.get_port(), 6432);
        assert_eq!(o.get_user(), "admin");
        assert_eq!(o.get_dbname(), "postgres");
        assert_eq!(o.get_sslmode(), SslMode::VerifyFull);
        assert_eq!(
            o.get_sslrootcert(),
            Some(std::path::Path::new("/etc/rds/global-bundle.pem"))
        );
        assert_eq!(o.get_password().unwrap().expose(), "s3cret:pw");
        assert!(!format!("{o:?}").contains("s3cret"));
        let e = i.connect_options_with(no_env).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("DB1_PW"), "{e}");
    }

    #[test]
    fn verify_full_needs_a_root_certificate() {
        let i = instance("master_password = { env = \"PW\" }");
        let env = |k: &str| match k {
            "PW" => Some("pw".to_owned()),
            "PGSSLROOTCERT" => Some("/from/env.pem".to_owned()),
            _ => None,
        };
        let o = i.connect_options_with(env).unwrap();
        assert_eq!(
            o.get_sslrootcert(),
            Some(std::path::Path::new("/from/env.pem"))
        );
        let e = i
            .connect_options_with(|k| (k == "PW").then(|| "pw".to_owned()))
            .unwrap_err();
        assert!(e.to_string().contains("sslrootcert"), "{e}");
        let plain = instance("sslmode = \"disable\"\nmaster_password = { env = \"PW\" }");
        let o = plain
            .connect_options_with(|k| (k == "PW").then(|| "pw".to_owned()))
            .unwrap();
        assert_eq!(o.get_sslmode(), SslMode::Disable);
    }

    #[test]
    fn the_password_comes_from_a_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let pgpass = dir.path().join("pgpass");
        std::fs::write(
            &pgpass,
            "other.example.com:6432:*:admin:wrong\ndb.example.com:6432:postgres:admin:right\\:pw\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let i = instance(&format!(
            "sslmode = \"require\"\nmaster_password = {{ pgpass = \"{}\" }}",
            pgpass.display()
        ));
        let o = i.connect_options_with(no_env).unwrap();
        assert_eq!(o.get_password().unwrap().expose(), "right:pw");
        // No master_password: PGPASSFILE.
        let default = instance("sslmode = \"require\"");
        let path = pgpass.display().to_string();
        let o = default
            .connect_options_with(|k| (k == "PGPASSFILE").then(|| path.clone()))
            .unwrap();
        assert_eq!(o.get_password().unwrap().expose(), "right:pw");
        std::fs::write(&pgpass, "db.example.com:6432:postgres:someone:else\n").unwrap();
        let e = i.connect_options_with(no_env).unwrap_err();
        assert!(
            e.to_string()
                .contains("no line for db.example.com:6432:postgres:admin"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_password_comes_from_a_command_without_a_shell() {
        let i = instance(
            "sslmode = \"require\"\nmaster_password = { command = [\"printf\", \"%s\\\\n\", \"pw with $HOME; and spaces\"] }",
        );
        let o = i.connect_options_with(no_env).unwrap();
        assert_eq!(
            o.get_password().unwrap().expose(),
            "pw with $HOME; and spaces",
            "no shell expands or splits it"
        );
        let failing = instance(
            "sslmode = \"require\"\nmaster_password = { command = [\"sh\", \"-c\", \"echo secret-ish; echo locked >&2; exit 3\"] }",
        );
        let e = failing.connect_options_with(no_env).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tool);
        assert!(e.to_string().contains("locked"), "{e}");
        let two = instance(
            "sslmode = \"require\"\nmaster_password = { command = [\"printf\", \"a\\\\nb\\\\n\"] }",
        );
        assert_eq!(
            two.connect_options_with(no_env).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        let missing = instance(
            "sslmode = \"require\"\nmaster_password = { command = [\"/nonexistent/lpass\"] }",
        );
        assert_eq!(
            missing.connect_options_with(no_env).unwrap_err().kind(),
            crate::ErrorKind::NotFound
        );
    }
}
