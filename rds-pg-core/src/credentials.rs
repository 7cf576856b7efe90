//! Handing a project's credentials over: [`Credentials`] as a `DATABASE_URL`, a pgpass line, an
//! env file or JSON, delivered to a [`CredentialSink`] (an env file, a pgpass file, a command).
//!
//! Every output that contains the password is returned wrapped in a [`Password`], so nothing shows
//! it unless the caller calls [`Password::expose`]. Files are written atomically with mode `0600`
//! from the moment they exist; a command receives the credentials on its standard input, never in
//! its arguments or environment, and its output is captured, never shown, with the password
//! redacted from any error. Programs rds-pg runs (a credential command, `pg_dump`, `pg_restore`)
//! never inherit a variable that may carry master's credentials (see
//! [`is_credential_variable`]).

use std::ffi::{OsStr, OsString};
use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use percent_encoding::utf8_percent_encode;
use zeroize::Zeroizing;

use crate::config::{ConnectOptions, SslMode};
use crate::conninfo::COMPONENT;
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::pgpass::{self, Fields, Key};
use crate::private_file;
use crate::secret::Password;

/// What replaces the password in a failed command's output.
const REDACTED: &str = "[redacted]";

/// Everything a client needs to log in as a project user: where, as whom, with which password and
/// how TLS is checked.
///
/// `Debug` shows the password as `[redacted]`; there is no `Display`. The outputs that contain the
/// password ([`Credentials::database_url`], [`Credentials::pgpass_line`],
/// [`Credentials::env_file`], [`Credentials::json`]) return it wrapped in a [`Password`].
///
/// The fields are public; every output checks them first (see [`Credentials::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Host name, IP address or Unix-socket directory, as libpq's `host`.
    pub host: String,
    /// TCP port (also names the socket file in a socket directory).
    pub port: u16,
    /// The database to connect to.
    pub database: DatabaseName,
    /// The role to log in as.
    pub user: RoleName,
    /// The role's password.
    pub password: Password,
    /// How TLS is used and checked.
    pub sslmode: SslMode,
    /// The PEM file of trusted CA certificates (for RDS: AWS's `global-bundle.pem`).
    pub sslrootcert: Option<PathBuf>,
}

impl Credentials {
    /// Credentials for `user` with `password` on `database` at `host:port`, with libpq's default
    /// sslmode `prefer` and no root certificate (set them with [`Credentials::sslmode`] and
    /// [`Credentials::sslrootcert`]).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a user or database name PostgreSQL cannot hold (see
    /// [`RoleName::new`]), [`Error::InvalidInput`] for an empty host or password, port 0, or a
    /// line break or NUL in any field.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        database: impl AsRef<str>,
        user: impl AsRef<str>,
        password: impl Into<Password>,
    ) -> Result<Self> {
        let credentials = Credentials {
            host: host.into(),
            port,
            database: DatabaseName::new(database.as_ref())?,
            user: RoleName::new(user.as_ref())?,
            password: password.into(),
            sslmode: SslMode::default(),
            sslrootcert: None,
        };
        credentials.validate()?;
        Ok(credentials)
    }

    /// Credentials for `user` on `database` at the server `options` point to: the options' host
    /// (a name, an address or a socket directory, as given), port, sslmode and root certificate.
    /// The options' own user, database and password (the master's) are not used.
    ///
    /// # Errors
    /// As [`Credentials::new`].
    pub fn from_options(
        options: &ConnectOptions,
        user: impl AsRef<str>,
        database: impl AsRef<str>,
        password: impl Into<Password>,
    ) -> Result<Self> {
        let mut credentials = Credentials::new(
            options.get_host(),
            options.get_port(),
            database,
            user,
            password,
        )?;
        credentials.sslmode = options.get_sslmode();
        credentials.sslrootcert = options.get_sslrootcert().map(Path::to_path_buf);
        credentials.validate()?;
        Ok(credentials)
    }

    crate::builder::setters! {
        /// Sets the host.
        host = into String;
        /// Sets the port.
        port = u16;
        /// Sets the TLS mode.
        sslmode = SslMode;
        /// Sets the PEM file of trusted CA certificates.
        sslrootcert = some_into PathBuf;
    }

    /// Checks that every output can carry these credentials exactly: a non-empty host and
    /// password, a port other than 0, no line break or NUL in any field (a pgpass file, an env
    /// file and libpq cannot hold them) and a root-certificate path that is valid UTF-8.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field, never showing the password.
    pub fn validate(&self) -> Result<()> {
        let refuse = |what: &str| Err(Error::InvalidInput(format!("credentials: {what}")));
        if self.host.is_empty() {
            return refuse("the host is empty");
        }
        if self.port == 0 {
            return refuse("the port is 0");
        }
        if self.password.is_empty() {
            return refuse("the password is empty");
        }
        let sslrootcert = match &self.sslrootcert {
            Some(path) => match path.to_str() {
                Some(p) => Some(p),
                None => return refuse("the sslrootcert path is not valid UTF-8"),
            },
            None => None,
        };
        for (name, value) in [
            ("host", Some(self.host.as_str())),
            ("database name", Some(self.database.as_str())),
            ("user name", Some(self.user.as_str())),
            ("password", Some(self.password.expose())),
            ("sslrootcert path", sslrootcert),
        ] {
            if value.is_some_and(|v| v.contains(['\n', '\r', '\0'])) {
                return refuse(&format!(
                    "the {name} contains a line break or a NUL character"
                ));
            }
        }
        Ok(())
    }

    fn sslrootcert_str(&self) -> Option<&str> {
        // `validate` has refused a path that is not UTF-8.
        self.sslrootcert.as_deref().and_then(Path::to_str)
    }

    /// The options of a connection with these credentials (rds-pg's defaults for the rest), for
    /// example to check that they work.
    pub fn connect_options(&self) -> ConnectOptions {
        let options = ConnectOptions::new()
            .host(self.host.as_str())
            .port(self.port)
            .user(self.user.as_str())
            .dbname(self.database.as_str())
            .password(self.password.clone())
            .sslmode(self.sslmode);
        match &self.sslrootcert {
            Some(path) => options.sslrootcert(path),
            None => options,
        }
    }

    /// `postgresql://user:password@host:port/database?sslmode=…[&sslrootcert=…]`, every
    /// component percent-encoded (only `A-Z a-z 0-9 - . _ ~` stay as they are; an IPv6 address
    /// keeps its colons inside `[…]`; a socket directory is encoded whole, `/` as `%2F`; the
    /// sslrootcert path keeps its `/`).
    ///
    /// libpq (`psql "$DATABASE_URL"`) and [`ConnectOptions`]'s parser read it back to exactly
    /// these fields (it is [`ConnectOptions::to_uri_with_password`] of
    /// [`Credentials::connect_options`]).
    ///
    /// # Errors
    /// As [`Credentials::validate`].
    pub fn database_url(&self) -> Result<Password> {
        self.validate()?;
        self.connect_options().to_uri_with_password()
    }

    /// The host a pgpass line must name to be found: libpq searches an empty host or its default
    /// socket directory (`/tmp`, `/var/run/postgresql`, `/run/postgresql`) as `localhost`.
    fn pgpass_host(&self) -> &str {
        pgpass::search_host(&self.host)
    }

    /// The key libpq searches the password file for with these credentials.
    fn pgpass_key(&self) -> Key {
        Key::new(
            &self.host,
            self.port,
            self.database.as_str(),
            self.user.as_str(),
        )
    }

    /// The password-file line for these credentials (no trailing newline), fields escaped with
    /// [`pgpass::format_line`]. A default socket directory is written as `localhost`, the name
    /// libpq searches the file for.
    ///
    /// # Errors
    /// As [`Credentials::validate`].
    pub fn pgpass_line(&self) -> Result<Password> {
        self.validate()?;
        pgpass::format_line(
            self.pgpass_host(),
            self.port,
            self.database.as_str(),
            self.user.as_str(),
            &self.password,
        )
    }

    /// The `NAME=value` pairs of the env file, in order.
    fn env_pairs(&self) -> Result<Vec<(&'static str, Password)>> {
        let mut pairs = vec![
            ("DATABASE_URL", self.database_url()?),
            ("PGHOST", Password::new(self.host.as_str())),
            ("PGPORT", Password::new(self.port.to_string())),
            ("PGDATABASE", Password::new(self.database.as_str())),
            ("PGUSER", Password::new(self.user.as_str())),
            ("PGPASSWORD", self.password.clone()),
            ("PGSSLMODE", Password::new(self.sslmode.as_str())),
        ];
        if let Some(path) = self.sslrootcert_str() {
            pairs.push(("PGSSLROOTCERT", Password::new(path)));
        }
        Ok(pairs)
    }

    /// The text of an env file: a comment line, then `DATABASE_URL`, `PGHOST`, `PGPORT`,
    /// `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE` and, when set, `PGSSLROOTCERT`, one
    /// `NAME=value` line each.
    ///
    /// Each value is quoted so that POSIX `sh`/`bash` (`set -a; . ./file`) and systemd's
    /// `EnvironmentFile=` read back exactly the value, whatever it contains: `'value'` when it
    /// holds no `'` or `\`, otherwise `"value"` with `\` before `"`, `\`, `$` and `` ` ``.
    /// python-dotenv (1.2) reads the same values, except one holding `${` (it expands variables
    /// even inside quotes, unless called with `interpolate=False`) or holding a `'` or `\`
    /// together with a `$` or `` ` `` (it keeps the backslash before those two). `DATABASE_URL`
    /// is percent-encoded, so every one of these readers gets it exactly. Docker's `--env-file`
    /// does not unquote values and cannot read this file.
    ///
    /// # Errors
    /// As [`Credentials::validate`].
    pub fn env_file(&self) -> Result<Password> {
        let mut text = Zeroizing::new(String::from(
            "# PostgreSQL credentials written by rds-pg. Load with: set -a; . ./FILE; set +a\n",
        ));
        for (name, value) in self.env_pairs()? {
            text.push_str(name);
            text.push('=');
            push_env_quoted(&mut text, value.expose());
            text.push('\n');
        }
        Ok(Password::new(text.as_str()))
    }

    /// The credentials as one JSON object (no trailing newline):
    ///
    /// ```text
    /// {"host":"…","port":5432,"database":"…","user":"…","password":"…","sslmode":"verify-full",
    ///  "sslrootcert":"…" or null,"database_url":"postgresql://…",
    ///  "engine":"postgres","username":"…","dbname":"…"}
    /// ```
    ///
    /// `engine`, `username` and `dbname` repeat the values under the names of AWS Secrets
    /// Manager's format for database credentials, so RDS Proxy and the rotation functions can use
    /// the secret as it is.
    ///
    /// # Errors
    /// As [`Credentials::validate`].
    pub fn json(&self) -> Result<Password> {
        let url = self.database_url()?;
        let mut json = Zeroizing::new(String::from("{"));
        let field = |json: &mut String, name: &str, value: Option<&str>| {
            if json.len() > 1 {
                json.push(',');
            }
            push_json_string(json, name);
            json.push(':');
            match value {
                Some(v) => push_json_string(json, v),
                None => json.push_str("null"),
            }
        };
        field(&mut json, "host", Some(&self.host));
        json.push_str(",\"port\":");
        json.push_str(&self.port.to_string());
        field(&mut json, "database", Some(self.database.as_str()));
        field(&mut json, "user", Some(self.user.as_str()));
        field(&mut json, "password", Some(self.password.expose()));
        field(&mut json, "sslmode", Some(self.sslmode.as_str()));
        field(&mut json, "sslrootcert", self.sslrootcert_str());
        field(&mut json, "database_url", Some(url.expose()));
        field(&mut json, "engine", Some("postgres"));
        field(&mut json, "username", Some(self.user.as_str()));
        field(&mut json, "dbname", Some(self.database.as_str()));
        json.push('}');
        Ok(Password::new(json.as_str()))
    }

    /// Delivers the credentials to `sink` (see [`CredentialSink`]), after
    /// [`CredentialSink::check`].
    ///
    /// # Errors
    /// As [`CredentialSink::check`], [`Credentials::write_env_file`],
    /// [`Credentials::write_pgpass`] or [`Credentials::send_to_command`].
    pub fn deliver(&self, sink: &CredentialSink) -> Result<()> {
        sink.check()?;
        match sink {
            CredentialSink::EnvFile(path) => self.write_env_file(path),
            CredentialSink::Pgpass(path) => self.write_pgpass(path),
            CredentialSink::Command(argv) => self.send_to_command(argv),
        }
    }

    /// Writes [`Credentials::env_file`] to `path`, replacing the file atomically: a temporary file
    /// in the same directory, created with mode `0600` (never readable by others, even briefly),
    /// written, flushed to disk and renamed over `path`. A symbolic link at `path` is followed;
    /// an existing file's owner and group are kept when the process may set them. The directory
    /// must exist.
    ///
    /// # Errors
    /// As [`Credentials::validate`]; [`Error::Io`] when the file cannot be written.
    pub fn write_env_file(&self, path: &Path) -> Result<()> {
        let text = self.env_file()?;
        private_file::replace(path, text.expose().as_bytes())
    }

    /// Adds the credentials' line to the password file at `path`, or replaces the line for the
    /// same host, port, database and user, atomically and with mode `0600` (as
    /// [`Credentials::write_env_file`]; a missing file is created).
    ///
    /// Every other line, comments included, is kept byte for byte. Lines naming the same
    /// host:port:database:user are replaced by the one new line, placed where libpq will find it
    /// first: at the first line that would match these credentials (a wildcard line, or the old
    /// line), else at the end. The file is read back with libpq's rules before it replaces the
    /// old one. Two processes updating the same file at once may lose one of the updates.
    ///
    /// # Errors
    /// As [`Credentials::validate`]; [`Error::Io`] when the file cannot be read or written;
    /// [`Error::InvalidInput`] when an earlier line that cannot be moved would still win (an
    /// unescaped IPv6 address, see [`pgpass::parse`]).
    pub fn write_pgpass(&self, path: &Path) -> Result<()> {
        let line = self.pgpass_line()?;
        let target = private_file::resolve_symlink(path)?;
        let existing = match std::fs::read(&target) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Zeroizing::new(Vec::new()),
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read password file \"{}\"", target.display()),
                    e,
                ))
            }
        };
        let text = self.merge_pgpass(&existing, line.expose());
        private_file::replace_checked(&target, &text, |written| {
            let found = pgpass::lookup(
                written,
                &self.host,
                self.port,
                self.database.as_str(),
                self.user.as_str(),
            )?;
            if found.password.as_ref() == Some(&self.password) {
                Ok(())
            } else {
                Err(Error::InvalidInput(format!(
                    "password file \"{}\": an earlier line matches {}:{}:{}:{} and would win over \
                     the new one; edit the file by hand",
                    target.display(),
                    self.pgpass_host(),
                    self.port,
                    self.database,
                    self.user
                )))
            }
        })
    }

    /// The password file `existing` with `line` in place of the lines for the same key: the lines
    /// naming exactly this host, port, database and user go, and `line` goes where libpq will
    /// find it first (at the first line that would match, else at the end). Lines are matched
    /// byte for byte as libpq matches them ([`Key::match_line`]).
    fn merge_pgpass(&self, existing: &[u8], line: &str) -> Zeroizing<Vec<u8>> {
        let key = self.pgpass_key();
        let mut out = Zeroizing::new(Vec::with_capacity(existing.len() + line.len() + 1));
        let mut placed = false;
        let mut place = |out: &mut Vec<u8>| {
            if !placed {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
                placed = true;
            }
        };
        let body = existing.strip_suffix(b"\n").unwrap_or(existing);
        if !existing.is_empty() {
            for raw in body.split(|&b| b == b'\n') {
                if key.match_line(raw, Fields::Exact).is_some() {
                    place(&mut out);
                    continue;
                }
                // A line that libpq would find first: the new line goes before it.
                if key.match_line(raw, Fields::Wildcards).is_some() {
                    place(&mut out);
                }
                out.extend_from_slice(raw);
                out.push(b'\n');
            }
        }
        place(&mut out);
        out
    }

    /// Runs `argv` (program and arguments, no shell) with [`Credentials::json`] on its standard
    /// input, followed by end of file; its standard output and error are captured, not shown.
    ///
    /// What the command receives, exactly:
    /// - **arguments**: `argv` as given (the program is looked up on `PATH`); nothing is added;
    /// - **standard input**: the JSON document ([`Credentials::json`], the project user's
    ///   password included), then end of file. This is the only place the credentials are;
    /// - **environment**: this process's environment without every variable that may carry
    ///   master's credentials ([`is_credential_variable`]: every `PG*` variable, such as
    ///   `PGPASSWORD`, `PGPASSFILE`, `PGUSER`, `PGSERVICE`; every `RDS_PG_*` variable; and
    ///   `DATABASE_URL`). Everything else is kept: `PATH`, `HOME`, `AWS_*` (so `aws
    ///   secretsmanager …` finds its profile and region), `VAULT_ADDR`, `VAULT_TOKEN`, …;
    /// - **standard output and error**: pipes read by rds-pg, never shown (a failure's message
    ///   carries them, redacted);
    /// - the working directory and the controlling terminal of this process: one that prompts on
    ///   `/dev/tty` waits for an answer.
    ///
    /// Works with secret stores that read standard input, for example
    /// `aws secretsmanager put-secret-value --secret-id ID --secret-string file:///dev/stdin`
    /// and `vault kv put secret/app -` (both store the JSON object as it is),
    /// `lpass add --non-interactive --notes NAME` (a secure note holding the JSON), or a small
    /// script that picks fields for a store with its own format (`op`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty `argv` and as [`Credentials::validate`];
    /// [`Error::NotFound`] when the program does not exist; [`Error::Io`] when it cannot be
    /// started or its input cannot be written; [`Error::Tool`] when it exits unsuccessfully,
    /// with its standard error (or, when that is empty, its standard output), in which the
    /// password, in any of the forms it was sent in, is replaced by `[redacted]`.
    pub fn send_to_command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<()> {
        self.send_to_command_with_env(argv, std::env::vars_os())
    }

    /// As [`Credentials::send_to_command`], the command's environment taken from `environment`
    /// (this process's, in production) less the credential variables.
    fn send_to_command_with_env<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        environment: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<()> {
        let Some((program, args)) = argv.split_first() else {
            return Err(Error::InvalidInput(
                "the credential command is empty: give a program and its arguments".into(),
            ));
        };
        let program = program.as_ref();
        let json = self.json()?;
        let tool = program.to_string_lossy().into_owned();
        let mut command = Command::new(program);
        environment_without_credentials(&mut command, environment);
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound {
                    message: format!("credential command {tool:?} (is it installed and on PATH?)"),
                    source: None,
                },
                _ => Error::io(format!("cannot run credential command {tool:?}"), e),
            })?;
        let stdin = child.stdin.take();
        let (written, output) = std::thread::scope(|scope| {
            // Write from a thread while the output is read, so that a command which writes a lot
            // before reading its input cannot dead-lock with us.
            let writer = scope.spawn(move || match stdin {
                Some(mut stdin) => stdin.write_all(json.expose().as_bytes()),
                None => Ok(()),
            });
            let output = child.wait_with_output();
            (writer.join(), output)
        });
        let output = output
            .map_err(|e| Error::io(format!("cannot wait for credential command {tool:?}"), e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let shown = if stderr.trim().is_empty() {
                String::from_utf8_lossy(&output.stdout)
            } else {
                stderr
            };
            return Err(Error::Tool {
                tool,
                status: output.status.to_string(),
                stderr: self.redact(shown.trim()),
            });
        }
        match written {
            Ok(Ok(())) => Ok(()),
            // The command finished successfully without reading all of its input: its choice.
            Ok(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Ok(Err(e)) => Err(Error::io(
                format!("cannot write to credential command {tool:?}"),
                e,
            )),
            Err(_) => Err(Error::io(
                format!("cannot write to credential command {tool:?}"),
                io::Error::other("the writing thread panicked"),
            )),
        }
    }

    /// `text` with the password replaced by `[redacted]`, in every form the outputs carry it:
    /// as it is, percent-encoded, JSON-escaped, pgpass-escaped and env-file-quoted.
    fn redact(&self, text: &str) -> String {
        let password = self.password.expose();
        let mut json = Zeroizing::new(String::new());
        push_json_string(&mut json, password);
        let mut quoted = Zeroizing::new(String::new());
        push_env_quoted(&mut quoted, password);
        let mut forms: Vec<Zeroizing<String>> = vec![
            Zeroizing::new(password.to_owned()),
            Zeroizing::new(utf8_percent_encode(password, COMPONENT).to_string()),
            Zeroizing::new(json[1..json.len() - 1].to_owned()),
            Zeroizing::new(pgpass::escape_field(password)),
            Zeroizing::new(quoted[1..quoted.len() - 1].to_owned()),
        ];
        // Longest first, so that no form is left half-replaced by a shorter one.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let mut out = text.to_owned();
        for form in forms.iter().filter(|f| !f.is_empty()) {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Whether the environment variable `name` is one that the programs rds-pg runs (a
/// [`CredentialSink::Command`], `pg_dump`, `pg_restore`) never inherit, because it may carry
/// master's credentials or say where they are: every name starting with `PG` (libpq's
/// `PGPASSWORD`, `PGPASSFILE`, `PGUSER`, `PGSERVICE`, `PGSERVICEFILE`, `PGOPTIONS`, …), every
/// name starting with `RDS_PG_` (rds-pg's own, such as `RDS_PG_SANDBOX_DIR`, whose directory
/// holds the sandbox master's password file) and `DATABASE_URL`. Names are compared as they are
/// (environment variables are case-sensitive).
pub fn is_credential_variable(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.starts_with(b"PG") || bytes.starts_with(b"RDS_PG_") || bytes == b"DATABASE_URL"
}

/// Gives `command` exactly `environment` less the variables [`is_credential_variable`] names:
/// nothing of this process's environment is inherited beyond what is passed.
pub(crate) fn environment_without_credentials(
    command: &mut Command,
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) {
    command.env_clear();
    for (name, value) in environment {
        if !is_credential_variable(&name) {
            command.env(name, value);
        }
    }
}

/// Where [`Credentials::deliver`] puts the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSink {
    /// An env file (`DATABASE_URL=…` and the `PG*` variables) replacing the file at this path;
    /// see [`Credentials::write_env_file`].
    EnvFile(PathBuf),
    /// A password file in which the credentials' line is added or replaced; see
    /// [`Credentials::write_pgpass`]. [`pgpass::default_path`] gives the one libpq reads.
    Pgpass(PathBuf),
    /// A command (program and arguments, run without a shell) that receives the credentials as
    /// JSON on its standard input and nowhere else. Its environment is this process's without
    /// any `PG*` or `RDS_PG_*` variable and without `DATABASE_URL` (so none of master's
    /// credentials reach it); `PATH`, `HOME`, `AWS_*` and the rest are kept. See
    /// [`Credentials::send_to_command`] for exactly what it receives.
    Command(Vec<OsString>),
}

impl CredentialSink {
    /// A [`CredentialSink::Command`] from a program and its arguments.
    pub fn command<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        CredentialSink::Command(argv.into_iter().map(Into::into).collect())
    }

    /// Checks, before anything changes, what can be known about the sink without writing to it:
    /// a file's directory exists (the file itself is created or replaced), a command is not
    /// empty. Call it before setting a password that is to be delivered here, so that a typo in
    /// the path fails before the old password stops working; [`Credentials::deliver`] calls it
    /// too.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file and its missing directory, or for an empty
    /// command.
    pub fn check(&self) -> Result<()> {
        match self {
            CredentialSink::EnvFile(path) | CredentialSink::Pgpass(path) => {
                let dir = private_file::directory_of(path);
                if dir.is_dir() {
                    Ok(())
                } else {
                    Err(Error::InvalidInput(format!(
                        "cannot write credentials to {}: {} is not a directory",
                        path.display(),
                        dir.display()
                    )))
                }
            }
            CredentialSink::Command(argv) if argv.is_empty() => Err(Error::InvalidInput(
                "the credential command is empty: give a program and its arguments".into(),
            )),
            CredentialSink::Command(_) => Ok(()),
        }
    }
}

impl fmt::Display for CredentialSink {
    /// `env file "PATH"`, `password file "PATH"` or `command "PROGRAM"` (without its arguments).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSink::EnvFile(path) => write!(f, "env file \"{}\"", path.display()),
            CredentialSink::Pgpass(path) => write!(f, "password file \"{}\"", path.display()),
            CredentialSink::Command(argv) => match argv.first() {
                Some(program) => write!(f, "command {:?}", program.to_string_lossy()),
                None => f.write_str("empty command"),
            },
        }
    }
}

/// Appends `value` quoted for an env file that sh and systemd read identically (see
/// [`Credentials::env_file`]).
fn push_env_quoted(out: &mut String, value: &str) {
    if !value.contains(['\'', '\\']) {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
        return;
    }
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Appends `value` as a JSON string (RFC 8259: `"` and `\` escaped, every control character
/// below U+0020 written as an escape, everything else as UTF-8).
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords with every character the formats treat specially.
    const AWKWARD: &[&str] = &[
        "plain",
        "it's",
        "dq\"uote",
        "$HOME and ${HOME} and $(id) and `id`",
        "back\\slash\\\\double",
        "ends with backslash\\",
        "sp ace and\ttab",
        "colon:at@slash/hash#percent%25question?amp&eq=plus+",
        "ünïcødé 🔑 \u{2028}",
        "'\"$\\`!*;|<>(){}[]~^",
        "\\'",
        "'",
        "\u{1}\u{1f}\u{7f}",
        "#lead",
        " lead and trail ",
    ];

    fn creds(password: &str) -> Credentials {
        Credentials::new("db.example.com", 6543, "my db:1", "app:o'neil", password)
            .unwrap()
            .sslmode(SslMode::VerifyFull)
            .sslrootcert("/etc/ssl/rds bundle/global-bundle.pem")
    }

    #[test]
    fn database_url_round_trips_through_our_parser() {
        for password in AWKWARD {
            let c = creds(password);
            let url = c.database_url().unwrap();
            let o: ConnectOptions = url.expose().parse().unwrap_or_else(|e| {
                panic!("{password:?}: {e}");
            });
            assert_eq!(o.get_host(), "db.example.com");
            assert_eq!(o.get_port(), 6543);
            assert_eq!(o.get_dbname(), "my db:1");
            assert_eq!(o.get_user(), "app:o'neil");
            assert_eq!(o.get_password().unwrap().expose(), *password);
            assert_eq!(o.get_sslmode(), SslMode::VerifyFull);
            assert_eq!(
                o.get_sslrootcert(),
                Some(Path::new("/etc/ssl/rds bundle/global-bundle.pem"))
            );
        }
    }

    #[test]
    fn database_url_encodes_every_component() {
        let c = creds("p@ss:w/rd ü%");
        assert_eq!(
            c.database_url().unwrap().expose(),
            "postgresql://app%3Ao%27neil:p%40ss%3Aw%2Frd%20%C3%BC%25@db.example.com:6543/\
             my%20db%3A1?sslmode=verify-full&sslrootcert=/etc/ssl/rds%20bundle/global-bundle.pem"
        );
        let c = Credentials::new("fe80::1%eth0", 5432, "d", "u", "pw").unwrap();
        let url = c.database_url().unwrap();
        assert_eq!(
            url.expose(),
            "postgresql://u:pw@[fe80::1%25eth0]:5432/d?sslmode=prefer"
        );
        let o: ConnectOptions = url.expose().parse().unwrap();
        assert_eq!(o.get_host(), "fe80::1%eth0");
        let c = Credentials::new("/var/run/postgresql", 5432, "d", "u", "pw").unwrap();
        let url = c.database_url().unwrap();
        assert_eq!(
            url.expose(),
            "postgresql://u:pw@%2Fvar%2Frun%2Fpostgresql:5432/d?sslmode=prefer"
        );
        let o: ConnectOptions = url.expose().parse().unwrap();
        assert_eq!(o.get_host(), "/var/run/postgresql");
        assert_eq!(format!("{url:?}"), "Password([redacted])");
    }

    #[test]
    fn pgpass_line_round_trips() {
        for password in AWKWARD {
            let c = creds(password);
            let line = c.pgpass_line().unwrap();
            let entries = pgpass::parse(line.expose());
            assert_eq!(entries.len(), 1, "{password:?}");
            let e = &entries[0];
            assert_eq!(e.host, "db.example.com");
            assert_eq!(e.port, "6543");
            assert_eq!(e.database, "my db:1");
            assert_eq!(e.username, "app:o'neil");
            assert_eq!(e.password.expose(), *password);
        }
        let c = creds("a:b\\c");
        assert_eq!(
            c.pgpass_line().unwrap().expose(),
            "db.example.com:6543:my db\\:1:app\\:o'neil:a\\:b\\\\c"
        );
    }

    #[test]
    fn pgpass_line_names_default_socket_directories_as_localhost() {
        for host in [
            "/tmp",
            "/var/run/postgresql",
            "/run/postgresql",
            "localhost",
        ] {
            let c = Credentials::new(host, 5432, "d", "u", "pw").unwrap();
            assert_eq!(c.pgpass_line().unwrap().expose(), "localhost:5432:d:u:pw");
        }
        let c = Credentials::new("/srv/pg", 5432, "d", "u", "pw").unwrap();
        assert_eq!(c.pgpass_line().unwrap().expose(), "/srv/pg:5432:d:u:pw");
    }

    /// Reads an env file value the way POSIX sh does for the two quotings we write.
    fn sh_unquote(value: &str) -> String {
        if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            assert!(!inner.contains('\''), "{value}");
            return inner.to_owned();
        }
        let inner = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("unquoted value {value}"));
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let next = chars.next().expect("a character after a backslash");
                    if !matches!(next, '"' | '\\' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(next);
                }
                '"' | '$' | '`' => panic!("unescaped {c} in {value}"),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn env_file_quotes_every_value() {
        for password in AWKWARD {
            let c = creds(password);
            let text = c.env_file().unwrap();
            let lines: Vec<&str> = text.expose().lines().collect();
            assert!(lines[0].starts_with("# "));
            let pairs: Vec<(&str, String)> = lines[1..]
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k, sh_unquote(v))
                })
                .collect();
            let names: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
            assert_eq!(
                names,
                [
                    "DATABASE_URL",
                    "PGHOST",
                    "PGPORT",
                    "PGDATABASE",
                    "PGUSER",
                    "PGPASSWORD",
                    "PGSSLMODE",
                    "PGSSLROOTCERT"
                ]
            );
            let value = |k: &str| pairs.iter().find(|(n, _)| *n == k).unwrap().1.clone();
            assert_eq!(value("PGPASSWORD"), *password);
            assert_eq!(value("PGUSER"), "app:o'neil");
            assert_eq!(value("PGDATABASE"), "my db:1");
            assert_eq!(value("PGPORT"), "6543");
            assert_eq!(value("PGSSLMODE"), "verify-full");
            assert_eq!(
                value("PGSSLROOTCERT"),
                "/etc/ssl/rds bundle/global-bundle.pem"
            );
            assert_eq!(value("DATABASE_URL"), c.database_url().unwrap().expose());
            // The URL never needs the double-quoted form, so every reader agrees on it.
            assert!(lines[1].starts_with("DATABASE_URL='"), "{password:?}");
        }
    }

    #[test]
    fn env_quoting_picks_the_form_every_reader_agrees_on() {
        let quoted = |v: &str| {
            let mut s = String::new();
            push_env_quoted(&mut s, v);
            s
        };
        assert_eq!(quoted("a $b `c` \"d\""), "'a $b `c` \"d\"'");
        assert_eq!(quoted("it's"), "\"it's\"");
        assert_eq!(quoted("a\\b"), "\"a\\\\b\"");
        assert_eq!(quoted("'$`\"\\"), "\"'\\$\\`\\\"\\\\\"");
        assert_eq!(quoted(""), "''");
    }

    #[test]
    fn json_escapes_strings_per_rfc_8259() {
        let s = |v: &str| {
            let mut out = String::new();
            push_json_string(&mut out, v);
            out
        };
        assert_eq!(s("a\"b\\c/d"), "\"a\\\"b\\\\c/d\"");
        assert_eq!(s("\n\r\t\u{8}\u{c}"), "\"\\n\\r\\t\\b\\f\"");
        assert_eq!(
            s("\u{0}\u{1}\u{1f}\u{7f}"),
            "\"\\u0000\\u0001\\u001f\u{7f}\""
        );
        assert_eq!(s("ü 🔑 \u{2028}"), "\"ü 🔑 \u{2028}\"");
    }

    #[test]
    fn json_has_every_field() {
        let c = creds("p\"w");
        let json = c.json().unwrap();
        let url = c.database_url().unwrap();
        assert_eq!(
            json.expose(),
            format!(
                "{{\"host\":\"db.example.com\",\"port\":6543,\"database\":\"my db:1\",\
                 \"user\":\"app:o'neil\",\"password\":\"p\\\"w\",\"sslmode\":\"verify-full\",\
                 \"sslrootcert\":\"/etc/ssl/rds bundle/global-bundle.pem\",\
                 \"database_url\":\"{}\",\"engine\":\"postgres\",\"username\":\"app:o'neil\",\
                 \"dbname\":\"my db:1\"}}",
                url.expose()
            )
        );
        let c = Credentials::new("h", 1, "d", "u", "pw").unwrap();
        assert!(c.json().unwrap().expose().contains("\"sslrootcert\":null"));
    }

    #[test]
    fn from_options_takes_the_server_not_the_master() {
        let master = ConnectOptions::new()
            .host("db.example.com")
            .port(6000)
            .user("master")
            .dbname("postgres")
            .password("master-secret")
            .sslmode(SslMode::VerifyCa)
            .sslrootcert("/ca.pem");
        let c = Credentials::from_options(&master, "app", "appdb", "app-secret").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("db.example.com", 6000));
        assert_eq!((c.user.as_str(), c.database.as_str()), ("app", "appdb"));
        assert_eq!(c.password.expose(), "app-secret");
        assert_eq!(c.sslmode, SslMode::VerifyCa);
        assert_eq!(c.sslrootcert.as_deref(), Some(Path::new("/ca.pem")));
        let o = c.connect_options();
        assert_eq!(o.target(), "app@db.example.com:6000/appdb");
        assert_eq!(o.get_password().unwrap().expose(), "app-secret");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = creds("topsecret");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
        for out in [
            c.database_url().unwrap(),
            c.pgpass_line().unwrap(),
            c.env_file().unwrap(),
            c.json().unwrap(),
        ] {
            assert_eq!(format!("{out:?}"), "Password([redacted])");
            assert_eq!(out.to_string(), "[redacted]");
        }
    }

    #[test]
    fn what_the_outputs_cannot_hold_is_refused() {
        let bad = [
            Credentials::new("h", 1, "d", "u", "line\nbreak-secret"),
            Credentials::new("h", 1, "d", "u", "cr\r-secret"),
            Credentials::new("h", 1, "d", "u", "nul\0-secret"),
            Credentials::new("h", 1, "d", "u", ""),
            Credentials::new("", 1, "d", "u", "secret"),
            Credentials::new("h", 0, "d", "u", "secret"),
            Credentials::new("h", 1, "d\nx", "u", "secret"),
            Credentials::new("h\n", 1, "d", "u", "secret"),
        ];
        for result in bad {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        assert_eq!(
            Credentials::new("h", 1, "d", "", "pw").unwrap_err().kind(),
            crate::ErrorKind::InvalidName
        );
        // Fields set after construction are checked by every output.
        let mut c = Credentials::new("h", 1, "d", "u", "pw").unwrap();
        c.password = Password::new("new\nline");
        assert!(c.database_url().is_err());
        assert!(c.pgpass_line().is_err());
        assert!(c.env_file().is_err());
        assert!(c.json().is_err());
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let c = Credentials::new("h", 1, "d", "u", "pw")
                .unwrap()
                .sslrootcert(OsStr::from_bytes(b"/ca\xff.pem"));
            assert_eq!(
                c.database_url().unwrap_err().kind(),
                crate::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn redaction_covers_every_form_of_the_password() {
        let c = creds("p'a\"s$s\\w:o@r/d ü");
        let pw = c.password.expose();
        let json = c.json().unwrap();
        let text = format!(
            "raw={pw} url={} json={} pgpass={} env={}",
            utf8_percent_encode(pw, COMPONENT),
            json.expose(),
            c.pgpass_line().unwrap().expose(),
            c.env_file().unwrap().expose(),
        );
        let redacted = c.redact(&text);
        assert!(!redacted.contains(pw), "{redacted}");
        assert!(!redacted.contains("s$s"), "{redacted}");
        assert!(!redacted.contains("s\\$s"), "{redacted}");
        assert!(!redacted.contains("o%40r"), "{redacted}");
        assert!(
            redacted.contains("raw=[redacted] url=[redacted]"),
            "{redacted}"
        );
    }

    #[test]
    fn merge_pgpass_replaces_the_same_key_and_keeps_the_rest() {
        let c = Credentials::new("h", 5432, "d", "u", "new").unwrap();
        let line = c.pgpass_line().unwrap();
        let merge =
            |old: &[u8]| String::from_utf8_lossy(&c.merge_pgpass(old, line.expose())).into_owned();
        assert_eq!(merge(b""), "h:5432:d:u:new\n");
        assert_eq!(
            merge(b"# mine\nother:1:x:y:keep\r\nh:5432:d:u:old\nh:5432:d:u:dup\nlast:1:a:b:c"),
            "# mine\nother:1:x:y:keep\r\nh:5432:d:u:new\nlast:1:a:b:c\n"
        );
        // Goes before a wildcard line that would otherwise win, and the old line goes away.
        assert_eq!(
            merge(b"a:1:b:c:d\n*:*:*:u:wild\nh:5432:d:u:old\n"),
            "a:1:b:c:d\nh:5432:d:u:new\n*:*:*:u:wild\n"
        );
        // A line for another port, database or user is not touched; bytes that are not UTF-8
        // are kept.
        assert_eq!(
            merge(b"h:5433:d:u:x\nh:5432:e:u:x\n\xff\xfe:1:2:3:4\n"),
            "h:5433:d:u:x\nh:5432:e:u:x\n\u{fffd}\u{fffd}:1:2:3:4\nh:5432:d:u:new\n"
        );
        assert_eq!(
            c.merge_pgpass(b"\xff\xfe:1:2:3:4\n", line.expose())[..2],
            [0xff, 0xfe]
        );
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("app.env");
        std::fs::write(&env, "old").unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = creds("pw");
        c.write_env_file(&env).unwrap();
        assert_eq!(mode(&env), 0o600);
        assert_eq!(
            std::fs::read_to_string(&env).unwrap(),
            c.env_file().unwrap().expose()
        );

        // A symbolic link is followed: the link stays, its target is replaced.
        let real = dir.path().join("real-pgpass");
        std::fs::write(&real, "# keep me\n").unwrap();
        let link = dir.path().join("pgpass");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        c.write_pgpass(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(mode(&real), 0o600);
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            format!("# keep me\n{}\n", c.pgpass_line().unwrap().expose())
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        // A link to a file that does not exist yet creates the file.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("sub/created.env", &dangling).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        c.write_env_file(&dangling).unwrap();
        assert_eq!(mode(&dir.path().join("sub/created.env")), 0o600);
        let looping = dir.path().join("loop");
        std::os::unix::fs::symlink("loop", &looping).unwrap();
        assert_eq!(
            c.write_env_file(&looping).unwrap_err().kind(),
            crate::ErrorKind::Io
        );

        let missing_dir = dir.path().join("nope").join("pgpass");
        let err = c.write_pgpass(&missing_dir).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Io);
    }

    #[test]
    fn lines_are_matched_as_libpq_matches_them() {
        // libpq matches an unescaped IPv6 address (an unescaped colon may match a colon in the
        // value), so such a line for the same key is the old line: it is replaced, and its
        // password is gone from the file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# mine\nfe80::1:5432:d:u:old-secret\nother:1:x:y:z\n",
        )
        .unwrap();
        let c = Credentials::new("fe80::1", 5432, "d", "u", "new-secret").unwrap();
        c.write_pgpass(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\nfe80\\:\\:1:5432:d:u:new-secret\nother:1:x:y:z\n"
        );
        // An escaped star is a literal star for libpq, not a wildcard: the new line does not go
        // before it; a real wildcard line does get the new line in front of it.
        let c = Credentials::new("h", 5432, "d", "u", "new").unwrap();
        let line = c.pgpass_line().unwrap();
        let merged = c.merge_pgpass(b"\\*:*:*:*:lit\n*:*:*:u:wild\n", line.expose());
        assert_eq!(
            String::from_utf8_lossy(&merged),
            "\\*:*:*:*:lit\nh:5432:d:u:new\n*:*:*:u:wild\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_sink_is_checked_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        for sink in [
            CredentialSink::EnvFile(dir.path().join("app.env")),
            CredentialSink::Pgpass(dir.path().join("pgpass")),
            CredentialSink::Pgpass("pgpass-in-the-working-directory".into()),
            CredentialSink::command(["true"]),
        ] {
            sink.check().unwrap_or_else(|e| panic!("{sink}: {e}"));
        }
        let missing = dir.path().join("nope").join("app.env");
        let err = CredentialSink::EnvFile(missing.clone())
            .check()
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            format!(
                "invalid input: cannot write credentials to {}: {} is not a directory",
                missing.display(),
                dir.path().join("nope").display()
            )
        );
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let under_a_file = CredentialSink::Pgpass(file.join("pgpass"));
        assert_eq!(
            under_a_file.check().unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        let empty = CredentialSink::Command(Vec::new());
        assert_eq!(
            empty.check().unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        // deliver checks first: nothing is written, the error is the check's.
        let c = creds("pw");
        let err = c
            .deliver(&CredentialSink::EnvFile(missing.clone()))
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn sink_display_names_the_place_not_the_secret() {
        assert_eq!(
            CredentialSink::EnvFile("/x/app.env".into()).to_string(),
            "env file \"/x/app.env\""
        );
        assert_eq!(
            CredentialSink::command(["lpass", "add", "--non-interactive"]).to_string(),
            "command \"lpass\""
        );
    }

    #[test]
    fn credential_variables_are_named_exactly() {
        for name in [
            "PGPASSWORD",
            "PGPASSFILE",
            "PGUSER",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGHOST",
            "PG",
            "DATABASE_URL",
            "RDS_PG_SANDBOX_DIR",
            "RDS_PG_POSTGRES_ROOT",
        ] {
            assert!(is_credential_variable(OsStr::new(name)), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "AWS_PROFILE",
            "AWS_SECRET_ACCESS_KEY",
            "VAULT_ADDR",
            "pgpassword",
            "MY_DATABASE_URL",
            "DATABASE_URLS",
            "RDS_PGX",
            "LANG",
        ] {
            assert!(!is_credential_variable(OsStr::new(name)), "{name}");
        }
    }

    /// The command really runs with the environment it is given less the credential variables:
    /// it writes what it received to a file, read back here.
    #[cfg(unix)]
    #[test]
    fn a_command_sink_gets_no_credential_variable() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("env");
        let master_password = "master-Pa55-in-the-environment";
        let environment: Vec<(OsString, OsString)> = [
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("HOME", "/home/deploy".into()),
            ("AWS_PROFILE", "vault-writer".into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("PGPASSWORD", master_password.into()),
            ("PGPASSFILE", "/root/.pgpass".into()),
            ("PGUSER", "master".into()),
            ("PGSERVICE", "rds-master".into()),
            ("PGOPTIONS", "-c role=master".into()),
            (
                "DATABASE_URL",
                format!("postgresql://master:{master_password}@db/postgres"),
            ),
            ("RDS_PG_SANDBOX_DIR", "/tmp/practice".into()),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        let creds = creds("project-secret");
        let script = format!(
            "env > '{}'; cat > '{}.stdin'",
            seen.display(),
            seen.display()
        );
        creds
            .send_to_command_with_env(&["sh", "-c", script.as_str()], environment)
            .unwrap();
        let env = std::fs::read_to_string(&seen).unwrap();
        let names: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        for kept in ["PATH", "HOME", "AWS_PROFILE", "AWS_REGION"] {
            assert!(names.contains(&kept), "{kept} is kept: {env}");
        }
        for name in &names {
            assert!(
                !name.starts_with("PG") && !name.starts_with("RDS_PG_") && *name != "DATABASE_URL",
                "{name} reached the command: {env}"
            );
        }
        assert!(!env.contains(master_password), "{env}");
        assert!(
            !env.contains("project-secret"),
            "the credentials are not in the environment"
        );
        let stdin = std::fs::read_to_string(format!("{}.stdin", seen.display())).unwrap();
        assert_eq!(
            stdin,
            creds.json().unwrap().expose(),
            "standard input holds them"
        );
    }
}
