//! Master's connection to an inventory instance: endpoint, port and master user from the
//! inventory, TLS `verify-full` against the inventory's root certificate (or `PGSSLROOTCERT`),
//! and the password from where the inventory says (a password file, an environment variable or a
//! command), never written anywhere.

use std::path::PathBuf;
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
    /// - `{ command = [...] }`: the options' password command
    ///   ([`ConnectOptions::password_command`]), run for each connection and never cached (an
    ///   IAM token lives 15 minutes): without a shell, standard input closed, this process's
    ///   environment without any `PG*` or `RDS_PG_*` variable and without `DATABASE_URL`; it
    ///   prints the password alone on one line, a JSON object with a `password` (such as the
    ///   secret AWS Secrets Manager keeps for an RDS master), or a `postgresql://` URI.
    ///
    /// The password is in the options only (never in a message); every database rds-pg connects
    /// to on the instance uses it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the instance when no password is found, the variable is
    /// unset, the command prints nothing or none of those shapes, or TLS verification lacks a
    /// root certificate; [`Error::NotFound`] for a command that does not exist; [`Error::Tool`]
    /// for one that fails (with its standard error, what it printed redacted); [`Error::Io`] for
    /// an unreadable password file.
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
            // Run for each connection, never cached: an IAM token lives 15 minutes.
            MasterPassword::Command(argv) => {
                return Ok(options.password_command(argv.iter().cloned()))
            }
        };
        Ok(options.password(password))
    }
}

/// The user (when said) and password of what a command printed: a JSON object with `password`
/// (and `user` or `username`), such as the document a command sink received or the secret AWS
/// Secrets Manager keeps for an RDS master; a `postgresql://` URI; or the password alone on one
/// line. Surrounding white space is not part of it. The error says what is wrong, without the
/// output.
pub(crate) fn parse_printed(
    printed: &Password,
) -> std::result::Result<(Option<String>, Password), String> {
    let text = printed.expose().trim();
    if text.is_empty() {
        return Err("it printed nothing".into());
    }
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| "it printed something that looks like JSON but is not".to_owned())?;
        let password = value
            .get("password")
            .and_then(|p| p.as_str())
            .ok_or("its JSON has no \"password\" string")?;
        let user = ["user", "username"]
            .iter()
            .find_map(|k| value.get(*k).and_then(|u| u.as_str()))
            .map(str::to_owned);
        return Ok((user, Password::new(password)));
    }
    if text.starts_with("postgresql://") || text.starts_with("postgres://") {
        let options: ConnectOptions = text
            .parse()
            .map_err(|_| "it printed a URI that cannot be read".to_owned())?;
        let password = options
            .get_password()
            .cloned()
            .ok_or("its URI holds no password")?;
        return Ok((Some(options.get_user()), password));
    }
    if text.contains(['\n', '\r']) {
        return Err(
            "it printed several lines: print the JSON document, a postgresql:// URI, or the \
             password alone"
                .into(),
        );
    }
    Ok((None, Password::new(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SslMode;
    use crate::credentials::Credentials;
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
        // The command is the options' password command: it runs for each connection
        // (resolve_password), never when the options are made.
        let resolve = |extra: &str| {
            instance(&format!("sslmode = \"require\"\n{extra}"))
                .connect_options_with(no_env)
                .unwrap()
                .resolve_password()
        };
        let i = instance(
            "sslmode = \"require\"\nmaster_password = { command = [\"printf\", \"%s\\\\n\", \"pw with $HOME; and spaces\"] }",
        );
        let o = i.connect_options_with(no_env).unwrap();
        assert!(o.get_password().is_none(), "not run yet");
        assert_eq!(
            o.resolve_password().unwrap().unwrap().expose(),
            "pw with $HOME; and spaces",
            "no shell expands or splits it"
        );
        let e = resolve(
            "master_password = { command = [\"sh\", \"-c\", \"echo secret-ish; echo locked: secret-ish >&2; exit 3\"] }",
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tool);
        assert!(e.to_string().contains("locked"), "{e}");
        assert!(
            !e.to_string().contains("secret-ish"),
            "what it printed is redacted: {e}"
        );
        // The secret Secrets Manager keeps for an RDS master, as `aws secretsmanager
        // get-secret-value --query SecretString --output text` prints it.
        let json = resolve(
            "master_password = { command = [\"printf\", \"%s\\\\n\", \"{\\\"username\\\":\\\"admin\\\",\\\"password\\\":\\\"from-the-vault\\\"}\"] }",
        );
        assert_eq!(json.unwrap().unwrap().expose(), "from-the-vault");
        let two = resolve("master_password = { command = [\"printf\", \"a\\\\nb\\\\n\"] }");
        assert_eq!(two.unwrap_err().kind(), crate::ErrorKind::InvalidInput);
        let missing = resolve("master_password = { command = [\"/nonexistent/lpass\"] }");
        assert_eq!(missing.unwrap_err().kind(), crate::ErrorKind::NotFound);
    }

    #[test]
    fn printed_credentials_in_three_shapes() {
        let c = Credentials::new("h", 5432, "shop", "shop", "s3:cret'\"").unwrap();
        let (user, pw) = parse_printed(&c.json().unwrap()).unwrap();
        assert_eq!((user.as_deref(), pw.expose()), (Some("shop"), "s3:cret'\""));
        let (user, pw) = parse_printed(&c.database_url().unwrap()).unwrap();
        assert_eq!((user.as_deref(), pw.expose()), (Some("shop"), "s3:cret'\""));
        let (user, pw) = parse_printed(&Password::new("only-the-password\n")).unwrap();
        assert_eq!((user, pw.expose()), (None, "only-the-password"));
        for bad in ["", "  \n", "{\"user\": \"x\"}", "{not json", "a\nb"] {
            assert!(parse_printed(&Password::new(bad)).is_err(), "{bad:?}");
        }
    }
}
