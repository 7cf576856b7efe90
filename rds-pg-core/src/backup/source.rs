//! Where a backup's credentials come from: a project role's, read back from where the inventory
//! says they were delivered (its pgpass file, its env file, or a `read_command`), and master's,
//! from where the inventory says master's password is.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::ConnectOptions;
use crate::credentials::CredentialSink;
use crate::error::{Error, Result};
use crate::inventory::{Instance, MasterPassword, Project, RoleCredentials};
use crate::secret::Password;

/// The most a credential command may print.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Where a role's credentials are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialSource {
    /// The password file a `pgpass` sink wrote: the line for the instance's endpoint, port, the
    /// database and the role.
    Pgpass(PathBuf),
    /// The env file an `env_file` sink wrote (`PGUSER`, `PGPASSWORD`, … or `DATABASE_URL`).
    EnvFile(PathBuf),
    /// A command (no shell; the environment without credential variables) that prints the JSON
    /// document a command sink received, a `postgresql://` URI, or the password alone.
    Command(Vec<OsString>),
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Pgpass(p) => write!(f, "password file \"{}\"", p.display()),
            CredentialSource::EnvFile(p) => write!(f, "env file \"{}\"", p.display()),
            CredentialSource::Command(argv) => match argv.first() {
                Some(p) => write!(f, "read command {:?}", p.to_string_lossy()),
                None => f.write_str("empty read command"),
            },
        }
    }
}

/// The source for `role` of `project`: its `read_command` when it has one, else the file its
/// sink writes.
///
/// # Errors
/// [`Error::MissingCredentials`] when the inventory names no sink for the role, or only a command
/// sink without `read_command` (it cannot be read back).
pub fn credential_source(project: &Project, role: &str) -> Result<CredentialSource> {
    let entry: Option<&RoleCredentials> =
        project.credentials.iter().find(|c| c.role.as_str() == role);
    let Some(entry) = entry else {
        return Err(Error::MissingCredentials {
            role: role.to_owned(),
            expected: format!(
                "[project.credentials] of project {:?} ({})",
                project.name, project.locations.entry
            ),
            reason: "the inventory says nowhere where its credentials were delivered; add \
                     `ROLE = { pgpass = \"FILE\" }` (or env_file, or command with read_command)"
                .into(),
        });
    };
    if let Some(argv) = &entry.read_command {
        return Ok(CredentialSource::Command(argv.clone()));
    }
    match &entry.sink {
        CredentialSink::Pgpass(path) => Ok(CredentialSource::Pgpass(path.clone())),
        CredentialSink::EnvFile(path) => Ok(CredentialSource::EnvFile(path.clone())),
        sink => Err(Error::MissingCredentials {
            role: role.to_owned(),
            expected: format!("the {sink} ({})", entry.location),
            reason: "a command sink cannot be read back; add read_command = [\"PROGRAM\", …] \
                     that prints them (the JSON the sink received, a postgresql:// URI, or \
                     the password)"
                .into(),
        }),
    }
}

/// The options a backup connects with as `role` to `database` on `instance`: the instance's
/// endpoint and port, TLS settings and connect timeout from `base` (nothing else of it: not its
/// user, password or password file, which are master's), and the password read from `source`.
///
/// # Errors
/// [`Error::MissingCredentials`] naming the source when it holds no password for the role (no
/// matching pgpass line, a file that does not exist or that libpq would ignore, a command that
/// prints nothing); [`Error::Tool`] when a read command fails.
pub fn project_options(
    base: &ConnectOptions,
    instance: &Instance,
    role: &str,
    database: &str,
    source: &CredentialSource,
) -> Result<ConnectOptions> {
    let options = server_options(base, instance).user(role).dbname(database);
    let missing = |reason: String| Error::MissingCredentials {
        role: role.to_owned(),
        expected: source.to_string(),
        reason,
    };
    let password = match source {
        CredentialSource::Pgpass(path) => {
            if !path.exists() {
                return Err(missing("the file does not exist".into()));
            }
            let found = crate::pgpass::lookup(
                path,
                options.get_host(),
                options.get_port(),
                database,
                role,
            )?;
            if let Some(warning) = found.warning {
                return Err(missing(format!("libpq would ignore it: {warning}")));
            }
            found.password.ok_or_else(|| {
                missing(format!(
                    "no line matches {}:{}:{database}:{role}",
                    crate::pgpass::search_host(options.get_host()),
                    options.get_port()
                ))
            })?
        }
        CredentialSource::EnvFile(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(missing("the file does not exist".into()))
                }
                Err(e) => return Err(Error::io(format!("reading {source}"), e)),
            };
            let vars = parse_env_file(&text).map_err(missing)?;
            let from_file = ConnectOptions::new().with_env_from(|k| vars.get(k).cloned())?;
            let from_url = match vars.get("DATABASE_URL") {
                Some(url) => Some(
                    url.parse::<ConnectOptions>()
                        .map_err(|e| missing(format!("its DATABASE_URL cannot be read: {e}")))?,
                ),
                None => None,
            };
            let (user, password) = match (&from_url, from_file.get_password()) {
                (_, Some(p)) if vars.contains_key("PGUSER") => (from_file.get_user(), p.clone()),
                (Some(url), _) if url.get_password().is_some() => (
                    url.get_user(),
                    url.get_password().cloned().expect("checked"),
                ),
                _ => {
                    return Err(missing(
                        "it holds no PGPASSWORD or DATABASE_URL password".into(),
                    ))
                }
            };
            if user != role {
                return Err(missing(format!(
                    "it holds the credentials of {user:?}, not of {role:?}"
                )));
            }
            password
        }
        CredentialSource::Command(argv) => {
            let printed = run_read_command(argv)?;
            let (user, password) = parse_printed(&printed).map_err(missing)?;
            if let Some(user) = user.filter(|u| u != role) {
                return Err(missing(format!(
                    "it printed the credentials of {user:?}, not of {role:?}"
                )));
            }
            password
        }
    };
    if password.is_empty() {
        return Err(missing("the password is empty".into()));
    }
    Ok(options.password(password))
}

/// The instance's endpoint and port with `base`'s TLS settings, connect timeout and application
/// name, and nothing else of `base`.
pub(crate) fn server_options(base: &ConnectOptions, instance: &Instance) -> ConnectOptions {
    let mut options = ConnectOptions::new()
        .host(instance.endpoint.as_str())
        .port(instance.port)
        .sslmode(base.get_sslmode())
        .application_name(base.get_application_name());
    if let Some(ca) = base.get_sslrootcert() {
        options = options.sslrootcert(ca);
    }
    if let Some(timeout) = base.get_connect_timeout() {
        options = options.connect_timeout(timeout);
    }
    options
}

/// Master's options for `instance`: endpoint, port, `base`'s TLS settings, master's user, the
/// maintenance database, and the password from where the inventory says (a password file is
/// searched as libpq does; an environment variable or a command is read now).
///
/// # Errors
/// [`Error::MissingCredentials`] when the variable is unset or the command prints nothing;
/// [`Error::Tool`] when the command fails.
pub fn master_options(base: &ConnectOptions, instance: &Instance) -> Result<ConnectOptions> {
    let options = server_options(base, instance)
        .user(instance.master_user.as_str())
        .dbname(crate::config::DEFAULT_DBNAME);
    let missing = |reason: String| Error::MissingCredentials {
        role: instance.master_user.as_str().to_owned(),
        expected: instance.master_password.to_string(),
        reason,
    };
    Ok(match &instance.master_password {
        MasterPassword::Pgpass(None) => options,
        MasterPassword::Pgpass(Some(path)) => options.passfile(path),
        MasterPassword::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => options.password(Password::new(v)),
            _ => return Err(missing("it is not set".into())),
        },
        MasterPassword::Command(argv) => {
            let printed = run_read_command(argv)?;
            let (_, password) = parse_printed(&printed).map_err(missing)?;
            options.password(password)
        }
    })
}

/// Runs a command that prints credentials: no shell, standard input closed, the environment
/// without credential variables; its standard output (at most 64 KiB) is returned.
fn run_read_command(argv: &[OsString]) -> Result<Password> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidInput("the read command is empty".into()));
    };
    let tool = program.to_string_lossy().into_owned();
    let mut command = Command::new(program);
    crate::credentials::environment_without_credentials(&mut command, std::env::vars_os());
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                message: format!("credential read command {tool:?} (is it installed and on PATH?)"),
                source: None,
            },
            _ => Error::io(format!("cannot run credential read command {tool:?}"), e),
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut out = zeroize::Zeroizing::new(Vec::new());
    (&mut stdout)
        .take(MAX_OUTPUT)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(format!("reading credential read command {tool:?}"), e))?;
    drop(stdout);
    let status = child
        .wait()
        .map_err(|e| Error::io(format!("waiting for credential read command {tool:?}"), e))?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::Tool {
            tool,
            status: status.to_string(),
            stderr: errors.trim().to_owned(),
        });
    }
    String::from_utf8(out.to_vec())
        .map(Password::new)
        .map_err(|_| {
            Error::InvalidInput(format!(
                "credential read command {tool:?} printed no UTF-8 text"
            ))
        })
}

/// The user (when said) and password of what a read command printed: a JSON object with
/// `password` (and `user` or `username`), a `postgresql://` URI, or the password on one line.
fn parse_printed(printed: &Password) -> std::result::Result<(Option<String>, Password), String> {
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

/// The `NAME=value` lines of an env file as rds-pg writes them (see
/// [`crate::Credentials::env_file`]): values in single quotes taken as they are, values in double
/// quotes with `\` escaping `"`, `\`, `$` and `` ` ``, unquoted values up to the line's end;
/// comments and empty lines skipped; an `export ` prefix allowed.
pub(crate) fn parse_env_file(text: &str) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, raw)) = line.split_once('=') else {
            return Err(format!("line {} is not NAME=value", n + 1));
        };
        let value = if let Some(rest) = raw.strip_prefix('\'') {
            rest.strip_suffix('\'')
                .filter(|v| !v.contains('\''))
                .ok_or_else(|| format!("line {}: an unterminated '…' value", n + 1))?
                .to_owned()
        } else if let Some(rest) = raw.strip_prefix('"') {
            let body = rest
                .strip_suffix('"')
                .ok_or_else(|| format!("line {}: an unterminated \"…\" value", n + 1))?;
            let mut value = String::new();
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => value.push(e),
                        Some(other) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => value.push('\\'),
                    },
                    '"' => return Err(format!("line {}: a stray '\"'", n + 1)),
                    c => value.push(c),
                }
            }
            value
        } else {
            raw.trim_end().to_owned()
        };
        vars.insert(name.trim().to_owned(), value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Credentials;

    #[test]
    fn env_files_written_by_rds_pg_read_back_exactly() {
        for password in [
            "plain",
            "it's",
            "dq\"uote",
            "$HOME `id` \\x",
            "ünï 🔑",
            "a'b\\c$d",
        ] {
            let c = Credentials::new("db.example.com", 6543, "shop", "shop", password).unwrap();
            let text = c.env_file().unwrap();
            let vars = parse_env_file(text.expose()).unwrap();
            assert_eq!(vars["PGPASSWORD"], password, "{password:?}");
            assert_eq!(vars["PGUSER"], "shop");
            let url: ConnectOptions = vars["DATABASE_URL"].parse().unwrap();
            assert_eq!(url.get_password().unwrap().expose(), password);
        }
        assert!(parse_env_file("X='open\n").is_err());
        assert!(parse_env_file("just words\n").is_err());
        assert_eq!(
            parse_env_file("# c\n\nexport A=b c \n").unwrap()["A"],
            "b c"
        );
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
