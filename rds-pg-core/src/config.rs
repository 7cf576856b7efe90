//! Connection options: the libpq environment, `~/.pgpass`, connection strings and explicit
//! overrides, field by field.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Password;

/// How TLS is used, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, without verifying the certificate (libpq's default).
    #[default]
    Prefer,
    /// Always use TLS; do not verify the certificate.
    Require,
    /// Always use TLS and verify that the certificate chains to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and also check that the certificate names the host.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`verify-full`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server certificate is checked against a trust anchor.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(Error::InvalidInput(
                    "sslmode \"allow\" is not supported; use \"prefer\" or stricter".into(),
                ))
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "invalid sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }
}

/// Where and how to connect, built like libpq builds it.
///
/// [`ConnectOptions::new`] states every default; [`ConnectOptions::from_env`] starts from the
/// libpq environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGPASSFILE`,
/// `PGSSLMODE`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`); setters override field by field;
/// [`FromStr`] reads `key=value` and `postgresql://` strings. When no password is given, the
/// pgpass file (`PGPASSFILE` or `~/.pgpass`) is searched with libpq's matching rules at connect time.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    host: String,
    port: u16,
    user: Option<String>,
    dbname: Option<String>,
    password: Option<Password>,
    passfile: Option<PathBuf>,
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    application_name: String,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The maintenance database used when none is given.
pub const DEFAULT_DBNAME: &str = "postgres";

impl ConnectOptions {
    /// Options with every default and nothing read from the environment: host `localhost`, port
    /// 5432, user = the OS user, dbname `postgres` (the maintenance database), no password (pgpass
    /// is consulted), sslmode `prefer`, no root certificate, no connect timeout, application name
    /// `rds-pg`.
    pub fn new() -> Self {
        ConnectOptions {
            host: "localhost".into(),
            port: 5432,
            user: None,
            dbname: None,
            password: None,
            passfile: None,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            connect_timeout: None,
            application_name: "rds-pg".into(),
        }
    }

    /// Options from the libpq environment variables, on top of [`ConnectOptions::new`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unparsable `PGPORT`, `PGSSLMODE` or `PGCONNECT_TIMEOUT`.
    pub fn from_env() -> Result<Self> {
        Self::new().with_env_from(|k| std::env::var(k).ok())
    }

    /// Applies libpq environment variables read through `get` (for tests and embedding).
    ///
    /// # Errors
    /// As [`ConnectOptions::from_env`].
    pub fn with_env_from(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        for (var, key) in [
            ("PGHOST", "host"),
            ("PGPORT", "port"),
            ("PGUSER", "user"),
            ("PGDATABASE", "dbname"),
            ("PGPASSFILE", "passfile"),
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
            ("PGCONNECT_TIMEOUT", "connect_timeout"),
            ("PGAPPNAME", "application_name"),
        ] {
            if let Some(v) = get(var) {
                self.set(key, v)?;
            }
        }
        if let Some(pw) = get("PGPASSWORD") {
            self.password = Some(Password::new(pw));
        }
        Ok(self)
    }

    /// Applies one libpq keyword. Unknown keywords are refused.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown keyword or a bad value.
    pub fn set(&mut self, key: &str, value: String) -> Result<&mut Self> {
        match key {
            "host" | "hostaddr" => {
                if value.contains(',') {
                    return Err(Error::InvalidInput(
                        "several hosts are not supported".into(),
                    ));
                }
                self.host = value;
            }
            "port" => {
                self.port = value.parse().map_err(|_| {
                    Error::InvalidInput(format!("invalid port {value:?}: expected 1-65535"))
                })?;
                if self.port == 0 {
                    return Err(Error::InvalidInput(
                        "invalid port \"0\": expected 1-65535".into(),
                    ));
                }
            }
            "user" => self.user = Some(value),
            "dbname" => self.dbname = Some(value),
            "password" => self.password = Some(Password::new(value)),
            "passfile" => self.passfile = Some(PathBuf::from(value)),
            "sslmode" => self.sslmode = value.parse()?,
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "connect_timeout" => {
                let secs: u64 = value.trim().parse().map_err(|_| {
                    Error::InvalidInput(format!(
                        "invalid connect_timeout {value:?}: expected seconds"
                    ))
                })?;
                // libpq: zero, negative or absent means wait indefinitely; 1 is raised to 2.
                self.connect_timeout = (secs > 0).then(|| Duration::from_secs(secs.max(2)));
            }
            "application_name" | "fallback_application_name" => self.application_name = value,
            other => {
                // After a missing quote, a "key" may be a piece of a password: name it only
                // when it looks like a keyword.
                let shown = if !other.is_empty()
                    && other.len() <= 40
                    && other.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                {
                    format!(" {other:?}")
                } else {
                    String::new()
                };
                return Err(Error::InvalidInput(format!(
                    "unsupported connection option{shown}"
                )));
            }
        }
        Ok(self)
    }

    crate::builder::setters! {
        /// Sets the host name or IP address.
        host = into String;
        /// Sets the TCP port.
        port = u16;
        /// Sets the role to log in as.
        user = some_into String;
        /// Sets the database to connect to.
        dbname = some_into String;
        /// Sets the password (otherwise pgpass is consulted).
        password = some_into Password;
        /// Sets the pgpass file to search instead of `PGPASSFILE`/`~/.pgpass`.
        passfile = some_into PathBuf;
        /// Sets the TLS mode.
        sslmode = SslMode;
        /// Sets the PEM file of trusted CA certificates (for RDS: AWS's `global-bundle.pem`).
        sslrootcert = some_into PathBuf;
        /// Sets how long to wait for the connection to be made.
        connect_timeout = some Duration;
        /// Sets the `application_name` reported to the server (default `rds-pg`).
        application_name = into String;
    }

    /// The host.
    pub fn get_host(&self) -> &str {
        &self.host
    }
    /// The port.
    pub fn get_port(&self) -> u16 {
        self.port
    }
    /// The role to log in as: the configured user, else the OS user.
    pub fn get_user(&self) -> String {
        self.user.clone().unwrap_or_else(os_user)
    }
    /// The database to connect to (default [`DEFAULT_DBNAME`]).
    pub fn get_dbname(&self) -> &str {
        self.dbname.as_deref().unwrap_or(DEFAULT_DBNAME)
    }
    /// The explicitly configured password, if any (pgpass is not consulted here).
    pub fn get_password(&self) -> Option<&Password> {
        self.password.as_ref()
    }
    /// The TLS mode.
    pub fn get_sslmode(&self) -> SslMode {
        self.sslmode
    }
    /// The CA file, if any.
    pub fn get_sslrootcert(&self) -> Option<&Path> {
        self.sslrootcert.as_deref()
    }
    /// The connect timeout, if any.
    pub fn get_connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }
    /// The application name.
    pub fn get_application_name(&self) -> &str {
        &self.application_name
    }

    /// The same credentials, for another database on the same server.
    pub fn for_database(&self, dbname: impl Into<String>) -> Self {
        let mut o = self.clone();
        o.dbname = Some(dbname.into());
        o
    }

    /// The pgpass file that would be searched.
    pub fn passfile_path(&self) -> Option<PathBuf> {
        self.passfile.clone().or_else(crate::pgpass::default_path)
    }

    /// The password to send: the configured one, else the first matching pgpass entry.
    ///
    /// A password file that libpq would ignore (not a plain file, or open to the group or
    /// others) is ignored; [`ConnectOptions::pgpass_warning`] says so.
    ///
    /// # Errors
    /// An unreadable pgpass file (a missing or too-open one is not an error: libpq ignores it).
    pub fn resolve_password(&self) -> Result<Option<Password>> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        Ok(self.search_passfile()?.password)
    }

    /// The warning libpq prints when a connection with these options consults a password file
    /// it then ignores (`password file "…" has group or world access; …`), for the caller to
    /// show; `None` when a password is set, no file is consulted, or the file is fine (or
    /// missing, or unreadable: connecting reports that).
    pub fn pgpass_warning(&self) -> Option<crate::pgpass::PgPassWarning> {
        if self.password.is_some() {
            return None;
        }
        self.search_passfile().ok()?.warning
    }

    fn search_passfile(&self) -> Result<crate::pgpass::PgPassLookup> {
        match self.passfile_path() {
            Some(path) => crate::pgpass::lookup(
                &path,
                &self.host,
                self.port,
                self.get_dbname(),
                &self.get_user(),
            ),
            None => Ok(crate::pgpass::PgPassLookup::default()),
        }
    }

    /// The settings a connection string for these options carries, in order, without the
    /// password: `host`, `port`, `user` and `dbname` (the resolved ones: the OS user and
    /// `postgres` when unset), `sslmode`, then `sslrootcert`, `passfile` and `connect_timeout`
    /// when set, and `application_name` when it is not the default `rds-pg`.
    fn conninfo_pairs(&self) -> Result<Vec<(&'static str, String)>> {
        let path = |name: &str, path: &Path| {
            path.to_str().map(str::to_owned).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "cannot write the {name} path to a connection string: it is not valid UTF-8"
                ))
            })
        };
        let mut pairs = vec![
            ("host", self.host.clone()),
            ("port", self.port.to_string()),
            ("user", self.get_user()),
            ("dbname", self.get_dbname().to_owned()),
            ("sslmode", self.sslmode.as_str().to_owned()),
        ];
        if let Some(ca) = &self.sslrootcert {
            pairs.push(("sslrootcert", path("sslrootcert", ca)?));
        }
        if let Some(file) = &self.passfile {
            pairs.push(("passfile", path("passfile", file)?));
        }
        if let Some(timeout) = self.connect_timeout {
            // libpq counts whole seconds: round a fraction up, as waiting longer is safe.
            let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
            pairs.push(("connect_timeout", secs.to_string()));
        }
        if self.application_name != ConnectOptions::new().application_name {
            pairs.push(("application_name", self.application_name.clone()));
        }
        Ok(pairs)
    }

    /// These options as a libpq `key=value` connection string, which `psql`, libpq and
    /// [`ConnectOptions`]'s [`FromStr`] read back to the same options: `host='db.example'
    /// port=5432 user='shop' dbname='shop' sslmode=verify-full sslrootcert='/etc/rds.pem'`
    /// (`passfile`, `connect_timeout` and a non-default `application_name` follow when set).
    /// Values are single-quoted with `\` and `'` escaped. The password is never written: it is a
    /// secret (see [`ConnectOptions::to_conninfo_with_password`]). The user and database are
    /// written as resolved (the OS user and `postgres` when unset), since libpq's defaults
    /// differ from rds-pg's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a value no connection string can hold (a NUL character, a
    /// path that is not valid UTF-8), naming the setting, never its value.
    pub fn to_conninfo(&self) -> Result<String> {
        Ok(self
            .write(crate::conninfo::write_keyword_value, false)?
            .to_string())
    }

    /// As [`ConnectOptions::to_conninfo`], with `password='…'` last when a password is set
    /// (a password file is not read for it), wrapped because it holds the secret.
    ///
    /// # Errors
    /// As [`ConnectOptions::to_conninfo`].
    pub fn to_conninfo_with_password(&self) -> Result<Password> {
        let written = self.write(crate::conninfo::write_keyword_value, true)?;
        Ok(Password::new(written.as_str()))
    }

    /// These options as a `postgresql://user@host:port/dbname?sslmode=…` URI (the settings of
    /// [`ConnectOptions::to_conninfo`], every component percent-encoded, the others in the query
    /// in the same order), which `psql`, libpq and [`FromStr`] read back to the same options. The
    /// password is never written (see [`ConnectOptions::to_uri_with_password`]).
    ///
    /// # Errors
    /// As [`ConnectOptions::to_conninfo`].
    pub fn to_uri(&self) -> Result<String> {
        Ok(self.write(crate::conninfo::write_uri, false)?.to_string())
    }

    /// As [`ConnectOptions::to_uri`], with the password after the user
    /// (`postgresql://user:password@…`) when a non-empty one is set, wrapped because it holds
    /// the secret.
    ///
    /// # Errors
    /// As [`ConnectOptions::to_conninfo`].
    pub fn to_uri_with_password(&self) -> Result<Password> {
        let written = self.write(crate::conninfo::write_uri, true)?;
        Ok(Password::new(written.as_str()))
    }

    /// [`Self::conninfo_pairs`], and the password last when `with_password` and one is set,
    /// written by `writer`.
    fn write(
        &self,
        writer: crate::conninfo::Writer,
        with_password: bool,
    ) -> Result<Zeroizing<String>> {
        let pairs = self.conninfo_pairs()?;
        let mut borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let (true, Some(password)) = (with_password, &self.password) {
            borrowed.push(("password", password.expose()));
        }
        writer(&borrowed)
    }

    /// `user@host:port/dbname`, for messages.
    pub fn target(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.get_user(),
            self.host,
            self.port,
            self.get_dbname()
        )
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("passfile", &self.passfile)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .finish()
    }
}

impl FromStr for ConnectOptions {
    type Err = Error;

    /// Parses a `key=value` conninfo string or a `postgresql://` URI on top of
    /// [`ConnectOptions::new`] (the environment is not read).
    fn from_str(s: &str) -> Result<Self> {
        let mut o = ConnectOptions::new();
        o.apply_str(s)?;
        Ok(o)
    }
}

impl ConnectOptions {
    /// Applies a `key=value` conninfo string or a `postgresql://` URI on top of these options.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed string or an unsupported keyword.
    pub fn apply_str(&mut self, s: &str) -> Result<&mut Self> {
        for (k, v) in crate::conninfo::parse(s)? {
            self.set(&k, v)?;
        }
        Ok(self)
    }
}

/// The name of the OS user running this process (libpq's default role name).
fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_stated() {
        let o = ConnectOptions::new();
        assert_eq!(o.get_host(), "localhost");
        assert_eq!(o.get_port(), 5432);
        assert_eq!(o.get_dbname(), "postgres");
        assert_eq!(o.get_sslmode(), SslMode::Prefer);
        assert_eq!(o.get_application_name(), "rds-pg");
        assert!(o.get_password().is_none());
    }

    #[test]
    fn environment_then_overrides() {
        let o = ConnectOptions::new()
            .with_env_from(env(&[
                ("PGHOST", "db.example"),
                ("PGPORT", "6543"),
                ("PGUSER", "master"),
                ("PGDATABASE", "maint"),
                ("PGPASSWORD", "pw"),
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", "/etc/rds.pem"),
                ("PGCONNECT_TIMEOUT", "1"),
                ("PGAPPNAME", ""),
            ]))
            .unwrap()
            .dbname("other");
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_user(), "master");
        assert_eq!(o.get_dbname(), "other");
        assert_eq!(o.get_password().unwrap().expose(), "pw");
        assert_eq!(o.get_sslmode(), SslMode::VerifyFull);
        assert_eq!(o.get_sslrootcert(), Some(Path::new("/etc/rds.pem")));
        assert_eq!(o.get_connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(
            o.get_application_name(),
            "rds-pg",
            "empty variables are ignored"
        );
    }

    #[test]
    fn bad_environment_values_are_typed_errors() {
        for (k, v) in [
            ("PGPORT", "x"),
            ("PGSSLMODE", "sometimes"),
            ("PGCONNECT_TIMEOUT", "soon"),
        ] {
            let err = ConnectOptions::new()
                .with_env_from(env(&[(k, v)]))
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{k}");
        }
    }

    #[test]
    fn connection_strings_override_field_by_field() {
        let o: ConnectOptions =
            "host=h port=5433 user=u dbname='my db' sslmode=require password='a b'"
                .parse()
                .unwrap();
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_dbname()),
            ("h", 5433, "my db")
        );
        assert_eq!(o.get_password().unwrap().expose(), "a b");
        assert_eq!(o.get_sslmode(), SslMode::Require);

        let o: ConnectOptions =
            "postgresql://ma%40ster:p%3Aw@[::1]:6000/db?sslmode=verify-ca&application_name=x"
                .parse()
                .unwrap();
        assert_eq!(o.get_user(), "ma@ster");
        assert_eq!(o.get_host(), "::1");
        assert_eq!(o.get_port(), 6000);
        assert_eq!(o.get_password().unwrap().expose(), "p:w");
        assert_eq!(o.get_sslmode(), SslMode::VerifyCa);
        assert_eq!(o.get_application_name(), "x");
        assert!(ConnectOptions::from_str("host=a bogus=1").is_err());
    }

    #[test]
    fn debug_redacts_the_password() {
        let o = ConnectOptions::new().password("topsecret");
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }

    #[test]
    fn for_database_keeps_credentials() {
        let o = ConnectOptions::new().user("m").password("pw").port(7000);
        let other = o.for_database("proj");
        assert_eq!(other.get_dbname(), "proj");
        assert_eq!(other.get_port(), 7000);
        assert_eq!(other.get_password(), o.get_password());
    }

    fn every_setting() -> ConnectOptions {
        ConnectOptions::new()
            .host("db.example.com")
            .port(6543)
            .user("app:o'neil")
            .dbname("my db")
            .password("p@ss 'w\\rd' ü")
            .passfile("/etc/app/pg pass")
            .sslmode(SslMode::VerifyFull)
            .sslrootcert("/etc/ssl/rds bundle/global-bundle.pem")
            .connect_timeout(Duration::from_secs(7))
            .application_name("deploy tool")
    }

    #[test]
    fn conninfo_and_uri_round_trip_without_the_password() {
        let o = every_setting();
        let mut without_password = o.clone();
        without_password.password = None;
        for written in [o.to_conninfo().unwrap(), o.to_uri().unwrap()] {
            assert!(
                !written.contains("p@ss") && !written.contains("p%40ss"),
                "{written}"
            );
            let back: ConnectOptions = written.parse().unwrap();
            assert_eq!(back, without_password, "{written}");
        }
        for written in [
            o.to_conninfo_with_password().unwrap(),
            o.to_uri_with_password().unwrap(),
        ] {
            assert_eq!(format!("{written:?}"), "Password([redacted])");
            let back: ConnectOptions = written.expose().parse().unwrap();
            assert_eq!(back, o);
        }
        assert_eq!(
            o.to_conninfo().unwrap(),
            "host='db.example.com' port=6543 user='app:o\\'neil' dbname='my db' \
             sslmode=verify-full sslrootcert='/etc/ssl/rds bundle/global-bundle.pem' \
             passfile='/etc/app/pg pass' connect_timeout=7 application_name='deploy tool'"
        );
        assert_eq!(
            o.to_uri().unwrap(),
            "postgresql://app%3Ao%27neil@db.example.com:6543/my%20db?sslmode=verify-full\
             &sslrootcert=/etc/ssl/rds%20bundle/global-bundle.pem&passfile=/etc/app/pg%20pass\
             &connect_timeout=7&application_name=deploy%20tool"
        );
    }

    #[test]
    fn defaults_are_written_as_resolved_and_left_out_when_libpq_agrees() {
        let o = ConnectOptions::new().user("u");
        assert_eq!(
            o.to_conninfo().unwrap(),
            "host='localhost' port=5432 user='u' dbname='postgres' sslmode=prefer"
        );
        assert_eq!(
            o.to_uri().unwrap(),
            "postgresql://u@localhost:5432/postgres?sslmode=prefer"
        );
        let back: ConnectOptions = o.to_conninfo().unwrap().parse().unwrap();
        assert_eq!(
            back.get_dbname(),
            "postgres",
            "rds-pg's default, not libpq's (the user)"
        );
        assert_eq!(back.get_application_name(), "rds-pg");
        // A fraction of a second is rounded up: libpq counts whole seconds.
        let o = o.connect_timeout(Duration::from_millis(2500));
        assert!(o.to_conninfo().unwrap().ends_with("connect_timeout=3"));
    }

    #[test]
    fn what_a_connection_string_cannot_hold_is_refused() {
        let e = ConnectOptions::new()
            .user("nul\0user")
            .to_conninfo()
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        let e = ConnectOptions::new()
            .password("se\0cret")
            .to_uri_with_password()
            .unwrap_err();
        assert!(!e.to_string().contains("cret"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let o = ConnectOptions::new().sslrootcert(std::ffi::OsStr::from_bytes(b"/ca\xff.pem"));
            assert_eq!(
                o.to_uri().unwrap_err().kind(),
                crate::ErrorKind::InvalidInput
            );
        }
    }
}
