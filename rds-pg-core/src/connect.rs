//! Opening connections: TLS per `sslmode`, the password from the options or pgpass, errors sorted
//! into kinds.

use std::fmt;

use postgres::Client;

use crate::config::{ConnectOptions, SslMode};
use crate::error::{Error, Result, SqlState};

/// The `search_path` every connection rds-pg opens is pinned to, from the first query on: only
/// the system catalog, then the session's own temporary schema, so no name in a schema another
/// role can create in (`public` above all) is ever resolved — the protection pg_dump gives
/// itself. Set in the startup packet, it also outranks `ALTER DATABASE … SET search_path` and
/// `ALTER ROLE … SET search_path`, which a database's owner controls.
pub const PINNED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// Opens a connection with `options`.
///
/// The password is the configured one or the first matching pgpass entry. `verify-ca` and
/// `verify-full` check the server certificate against `sslrootcert`; `prefer` falls back to
/// plaintext only when the server does not offer TLS. The session's `search_path` is
/// [`PINNED_SEARCH_PATH`] from the start: qualify names (`public.t`) or set the path yourself
/// in a session that runs your own SQL.
///
/// # Errors
/// [`Error::Connection`] when the server cannot be reached or refuses the login,
/// [`Error::Tls`] for TLS set-up or verification failures.
pub fn connect(options: &ConnectOptions) -> Result<Client> {
    connect_inner(options, None)
}

/// A client configuration for `options`' server, role, database and application name: the TCP
/// connection goes to the forward or the hostaddr when set (to the host and port otherwise),
/// while TLS verifies the certificate for the host, as libpq does with `hostaddr`.
pub(crate) fn base_config(options: &ConnectOptions) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host(options.get_host())
        .port(options.connect_port())
        .user(&options.get_user())
        .dbname(options.get_dbname())
        .application_name(options.get_application_name());
    if let Some(addr) = options.connect_addr() {
        config.hostaddr(addr);
    }
    config
}

fn connect_inner(options: &ConnectOptions, server_options: Option<&str>) -> Result<Client> {
    let mut config = base_config(options);
    config.ssl_mode(match options.get_sslmode() {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            postgres::config::SslMode::Require
        }
    });
    // The startup packet's options reach the server before any query runs and take precedence
    // over per-database and per-role settings.
    let mut startup = format!("-c search_path={}", PINNED_SEARCH_PATH.replace(' ', ""));
    if let Some(o) = server_options.filter(|o| !o.is_empty()) {
        startup.push(' ');
        startup.push_str(o);
    }
    config.options(&startup);
    if let Some(timeout) = options.get_connect_timeout() {
        config.connect_timeout(timeout);
    }
    if let Some(password) = options.resolve_password()? {
        config.password(password.expose());
    }
    let connector = crate::tls::make_connector(options.get_sslmode(), options.get_sslrootcert())?;
    config
        .connect(connector)
        .map_err(|e| connection_error(options, e))
}

fn connection_error(options: &ConnectOptions, err: postgres::Error) -> Error {
    let target = options.target();
    // A TLS verification failure surfaces as an io::Error wrapping a rustls::Error.
    // io::Error::source() skips the wrapped error itself, so look inside with get_ref().
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(s) = source {
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        for candidate in [
            Some(s),
            inner.map(|e| e as &(dyn std::error::Error + 'static)),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Error::Tls {
                    message: format!("{target}: {tls}"),
                    source: Some(Box::new(tls.clone())),
                };
            }
        }
        source = inner.and_then(|e| e.source()).or_else(|| s.source());
    }
    let message = match err.as_db_error() {
        Some(db) if *db.code() == SqlState::INVALID_PASSWORD => {
            format!(
                "password authentication failed for user {:?}",
                options.get_user()
            )
        }
        Some(db) => db.message().to_owned(),
        None => {
            let mut m = err.to_string();
            if let Some(s) = std::error::Error::source(&err) {
                m = format!("{m}: {s}");
            }
            m
        }
    };
    Error::Connection {
        target,
        message,
        source: Some(Box::new(err)),
    }
}

/// A server's version, as `server_version_num` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion(pub u32);

impl ServerVersion {
    /// Reads `server_version_num` over `client`.
    ///
    /// # Errors
    /// A server error.
    pub fn query(client: &mut Client) -> Result<Self> {
        let row = client.query_typed_one(
            "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
            &[],
        )?;
        let n: i32 = row.get(0);
        Ok(ServerVersion(n as u32))
    }

    /// The major version (13, 14, …).
    pub fn major(self) -> u32 {
        self.0 / 10000
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10000, self.0 % 10000)
    }
}

/// As [`connect`], with server settings sent in the startup packet (no extra round trip).
///
/// # Errors
/// As [`connect`].
pub(crate) fn connect_with_settings(
    options: &ConnectOptions,
    settings: &[(&str, String)],
) -> Result<Client> {
    let mut extra = String::new();
    for (k, v) in settings {
        extra.push_str(&format!("-c {k}={v} "));
    }
    connect_inner(options, Some(extra.trim_end()))
}
