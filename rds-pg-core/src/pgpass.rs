//! libpq's password file (`PGPASSFILE` or `~/.pgpass`): reading, matching and writing lines.
//!
//! The rules are those of libpq's `passwordFromFile` and `pwdfMatchesString` (`fe-connect.c`):
//!
//! * a line is `host:port:database:username:password`; `\` escapes the next character (so `\:`
//!   is a colon inside a field and `\\` a backslash) in every field;
//! * a line whose first character is `#` is a comment, empty lines are skipped, trailing `\r`
//!   and `\n` are stripped, and a line with fewer than five fields never matches;
//! * a field written exactly `*` matches anything; an escaped `\*` is a literal star;
//! * an unescaped colon ends a field only once the searched value is used up, so it may also
//!   match a colon inside the value (an unescaped IPv6 address matches);
//! * fields are compared as text: the port `05432` does not match port 5432;
//! * the connection host is searched as `localhost` when it is empty or libpq's default
//!   Unix-socket directory;
//! * the first matching line wins, even when its password is empty (libpq then has no password);
//! * a file that is not a plain file, or that the group or others may access, is ignored; libpq
//!   prints a warning on standard error, rds-pg returns it ([`PgPassWarning`]) for the caller to
//!   show.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Password;

/// The host name libpq searches for when the connection host is empty or a default socket
/// directory (`DefaultHost` in `fe-connect.c`).
const DEFAULT_HOST: &str = "localhost";

/// `DEFAULT_PGSOCKET_DIR` of the libpq builds in use: `/tmp` upstream, `/var/run/postgresql`
/// on Debian and Ubuntu, `/run/postgresql` on Fedora, RHEL and Arch. libpq compares the
/// connection host to its own build's value with `strcmp`, so a path is matched as written
/// (`/tmp/` with a trailing slash is not the default directory).
const DEFAULT_SOCKET_DIRS: &[&str] = &["/tmp", "/var/run/postgresql", "/run/postgresql"];

/// One line of a password file, with every field unescaped.
///
/// A `host`, `port`, `database` or `username` of `*` is a wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgPassEntry {
    /// The host name, socket directory or `*`.
    pub host: String,
    /// The port, as text (libpq compares it as text), or `*`.
    pub port: String,
    /// The database name or `*`.
    pub database: String,
    /// The role name or `*`.
    pub username: String,
    /// The password (may be empty: libpq then sends no password).
    pub password: Password,
}

/// The file location libpq would use: `$PGPASSFILE` if set and non-empty, else `$HOME/.pgpass`
/// (`%APPDATA%\postgresql\pgpass.conf` on Windows).
///
/// When `HOME` is unset or empty, the home directory of the effective user from the password
/// database is used, as libpq does; `None` when no home directory is known.
pub fn default_path() -> Option<PathBuf> {
    path_from_env(|name| std::env::var_os(name))
}

/// [`default_path`] with the environment read through `get`.
fn path_from_env(get: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let get = |name: &str| get(name).filter(|v| !v.is_empty());
    if let Some(file) = get("PGPASSFILE") {
        return Some(PathBuf::from(file));
    }
    #[cfg(windows)]
    {
        get("APPDATA").map(|dir| PathBuf::from(dir).join("postgresql").join("pgpass.conf"))
    }
    #[cfg(not(windows))]
    {
        let home = match get("HOME") {
            Some(home) => PathBuf::from(home),
            None => {
                // On Unix `home_dir` falls back to getpwuid_r(geteuid()), libpq's own fallback.
                #[allow(deprecated)]
                let home = std::env::home_dir();
                home.filter(|h| !h.as_os_str().is_empty())?
            }
        };
        Some(home.join(".pgpass"))
    }
}

/// `path` when one is given, else the file libpq would use ([`default_path`]).
///
/// # Errors
/// [`Error::InvalidInput`] when no path is given and no home directory is known (`PGPASSFILE`
/// and `HOME` unset, and no home directory in the password database).
pub fn path_or_default(path: Option<PathBuf>) -> Result<PathBuf> {
    path.or_else(default_path).ok_or_else(|| {
        Error::InvalidInput(
            "no home directory for the default password file (~/.pgpass): give the password \
             file's path, or set PGPASSFILE"
                .into(),
        )
    })
}

/// Parses the text of a password file (no permission check).
///
/// Comment lines (first character `#`), empty lines and lines with fewer than five fields are
/// skipped; fields after the fifth are ignored, as libpq ignores them. `\` escapes the next
/// character in every field; a `\` at the very end of a line is kept as a literal backslash
/// (libpq keeps it in the password). A NUL character ends a line, as it ends libpq's C string.
///
/// The entries are for reading a file's contents, not for matching: libpq matches the raw text
/// of each line, and two of its corner cases cannot be expressed by unescaped entries.
/// [`lookup`], which matches the file's bytes as libpq does, keeps both:
///
/// * `\*` unescapes to `*`, which reads like a wildcard, whereas libpq lets it match only a
///   value that is literally `*`;
/// * libpq ends a field at an unescaped colon only once the searched value is used up, so an
///   unescaped colon also matches a colon in the value (`fe80::1:5432:db:user:pw` matches host
///   `fe80::1`); this function splits such a line at every unescaped colon.
pub fn parse(text: &str) -> Vec<PgPassEntry> {
    text.split('\n').filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<PgPassEntry> {
    let line = line.split('\0').next().unwrap_or_default();
    if line.starts_with('#') {
        return None;
    }
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return None;
    }
    let mut fields = split_fields(line);
    if fields.len() < 5 {
        return None;
    }
    fields.truncate(5);
    let password = Password::new(fields.pop()?);
    let username = fields.pop()?;
    let database = fields.pop()?;
    let port = fields.pop()?;
    let host = fields.pop()?;
    Some(PgPassEntry {
        host,
        port,
        database,
        username,
        password,
    })
}

/// Splits a line at unescaped colons, unescaping every field.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::with_capacity(5);
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.push(chars.next().unwrap_or('\\')),
            ':' => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The host libpq searches the file for: `localhost` for an empty host or a default socket
/// directory, the host itself otherwise.
pub(crate) fn search_host(host: &str) -> &str {
    if host.is_empty() || DEFAULT_SOCKET_DIRS.contains(&host) {
        DEFAULT_HOST
    } else {
        host
    }
}

/// Why libpq ignores a password file, with the warning it prints for it (the file's text is
/// never read then).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgPassWarning {
    /// The path names a directory, a FIFO, a device or the like.
    NotAPlainFile {
        /// The file.
        path: PathBuf,
    },
    /// The file's mode grants the group or others some permission (Unix).
    GroupOrWorldAccess {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for PgPassWarning {
    /// libpq's words, without its `WARNING: ` prefix: `password file "/home/me/.pgpass" has
    /// group or world access; permissions should be u=rw (0600) or less`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgPassWarning::NotAPlainFile { path } => {
                write!(
                    f,
                    "password file \"{}\" is not a plain file",
                    path.display()
                )
            }
            PgPassWarning::GroupOrWorldAccess { path } => write!(
                f,
                "password file \"{}\" has group or world access; permissions should be u=rw \
                 (0600) or less",
                path.display()
            ),
        }
    }
}

/// What [`lookup`] found in a password file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgPassLookup {
    /// The password of the first matching line; `None` when no line matches, the matching line's
    /// password is empty, or the file was ignored.
    pub password: Option<Password>,
    /// Why the file was ignored, when it was (libpq prints this as a warning).
    pub warning: Option<PgPassWarning>,
}

/// Reads the password file at `path` and returns the password of the first line matching
/// `(host, port, dbname, user)`, matching the bytes of each line exactly as libpq does:
///
/// * a field `*` matches anything; other fields must equal the value exactly (`\` escapes the
///   next character; an unescaped colon may match a colon in the value);
/// * `host` is searched as `localhost` when it is empty or a default Unix-socket directory
///   (`/tmp`, `/var/run/postgresql`, `/run/postgresql`); any other socket directory must be
///   written in the file as it is given;
/// * an empty `dbname` or `user` matches nothing (libpq does not search then);
/// * the first matching line wins: when its password is empty the result is no password, and
///   later lines are not consulted, because libpq stops at that line.
///
/// A missing file gives no password. A file that is not a plain file, or whose mode grants the
/// group or others any permission (`mode & 0o077 != 0`, Unix only), is ignored, as libpq
/// ignores it: [`PgPassLookup::warning`] says why, in libpq's words, for the caller to show.
///
/// # Errors
/// [`Error::Io`] when the file exists but cannot be read (libpq silently ignores such a file);
/// [`Error::InvalidInput`] when the matching password is not valid UTF-8.
pub fn lookup(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Result<PgPassLookup> {
    let found = |password| PgPassLookup {
        password,
        warning: None,
    };
    let ignored = |warning| PgPassLookup {
        password: None,
        warning: Some(warning),
    };
    if dbname.is_empty() || user.is_empty() {
        return Ok(found(None));
    }
    let context = || format!("cannot read password file \"{}\"", path.display());
    // Like libpq: stat first, so that a FIFO or device is never opened.
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => return Ok(found(None)),
        Err(e) => return Err(Error::io(context(), e)),
    };
    if let Some(warning) = unusable(path, &meta) {
        return Ok(ignored(warning));
    }
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if is_missing(&e) => return Ok(found(None)),
        Err(e) => return Err(Error::io(context(), e)),
    };
    // Check the opened file again, in case the path was replaced in between.
    let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
    if let Some(warning) = unusable(path, &meta) {
        return Ok(ignored(warning));
    }
    let mut contents = Zeroizing::new(Vec::new());
    file.read_to_end(&mut contents)
        .map_err(|e| Error::io(context(), e))?;

    let key = Key::new(host, port, dbname, user);
    let Some(password) = contents
        .split(|&b| b == b'\n')
        .find_map(|line| key.match_line(line, Fields::Wildcards))
    else {
        return Ok(found(None));
    };
    if password.is_empty() {
        return Ok(found(None));
    }
    match std::str::from_utf8(&password) {
        Ok(p) => Ok(found(Some(Password::new(p)))),
        Err(_) => Err(Error::InvalidInput(format!(
            "the password of the matching line of password file \"{}\" is not valid UTF-8",
            path.display()
        ))),
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Why libpq would not read a file with this metadata, if it would not.
fn unusable(path: &Path, meta: &Metadata) -> Option<PgPassWarning> {
    if !meta.is_file() {
        return Some(PgPassWarning::NotAPlainFile {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Some(PgPassWarning::GroupOrWorldAccess {
                path: path.to_owned(),
            });
        }
    }
    None
}

/// How the first four fields of a line are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// As libpq does: a field `*` matches any value.
    Wildcards,
    /// A field matches only the value written out (a `*` only the value `*`): the line names
    /// exactly this host, port, database and user.
    Exact,
}

/// The four values a line of a password file is matched against: the searched host (see
/// [`search_host`]), the port as text, the database and the user.
pub(crate) struct Key {
    host: String,
    port: String,
    database: String,
    user: String,
}

impl Key {
    /// The key libpq searches for when connecting to `host:port` as `user` to `dbname`.
    pub(crate) fn new(host: &str, port: u16, dbname: &str, user: &str) -> Key {
        Key {
            host: search_host(host).to_owned(),
            port: port.to_string(),
            database: dbname.to_owned(),
            user: user.to_owned(),
        }
    }

    /// libpq's match of one line of the file (without its `\n`): the unescaped password when
    /// the line's first four fields match, compared as `fields` says. Comments, blank lines and
    /// lines with fewer than five fields match nothing.
    pub(crate) fn match_line(&self, line: &[u8], fields: Fields) -> Option<Zeroizing<Vec<u8>>> {
        // A C string ends at the first NUL.
        let line = line.split(|&b| b == 0).next().unwrap_or_default();
        if line.first() == Some(&b'#') {
            return None;
        }
        let mut end = line.len();
        while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
            end -= 1;
        }
        let line = &line[..end];
        if line.is_empty() {
            return None;
        }
        let tokens = [&self.host, &self.port, &self.database, &self.user];
        let mut rest = Some(line);
        for token in tokens {
            rest = rest.and_then(|r| match_field(r, token.as_bytes(), fields));
        }
        rest.map(unescape_password)
    }
}

/// `pwdfMatchesString`: if the field at the start of `buf` matches `token`, the rest of the
/// line after the field's colon.
///
/// With [`Fields::Wildcards`], a field that is exactly `*` (unescaped) matches any token;
/// otherwise the field, with `\` escaping the next byte, must equal the token.
fn match_field<'a>(buf: &'a [u8], token: &[u8], fields: Fields) -> Option<&'a [u8]> {
    if fields == Fields::Wildcards && buf.starts_with(b"*:") {
        return Some(&buf[2..]);
    }
    let mut i = 0;
    let mut t = 0;
    while i < buf.len() {
        let escaped = buf[i] == b'\\';
        if escaped {
            i += 1;
        }
        let c = buf.get(i).copied();
        if c == Some(b':') && !escaped && t == token.len() {
            return Some(&buf[i + 1..]);
        }
        if t == token.len() || c != Some(token[t]) {
            return None;
        }
        i += 1;
        t += 1;
    }
    None
}

/// libpq's de-escaping of the password: up to the first unescaped colon, `\` escaping the next
/// byte; a `\` at the very end is kept.
fn unescape_password(rest: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(rest.len()));
    let mut i = 0;
    while i < rest.len() && rest[i] != b':' {
        if rest[i] == b'\\' && i + 1 < rest.len() {
            i += 1;
        }
        out.push(rest[i]);
        i += 1;
    }
    out
}

/// Escapes one field for a password file line: `\` becomes `\\` and `:` becomes `\:`.
///
/// A field of `*` stays a wildcard. Line breaks are not escaped (the format cannot hold them);
/// [`format_line`] refuses them.
pub fn escape_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 2);
    for c in field.chars() {
        if c == '\\' || c == ':' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A full password file line (no trailing newline) for the given values, each field escaped.
///
/// Returns a [`Password`] because the line contains the secret. A `host`, `database` or
/// `username` of `*` is written as a wildcard. A host starting with `#` is written `\#…` so that
/// the line is not a comment.
///
/// # Errors
/// [`Error::InvalidInput`] (naming the field, never its value) when a field is empty (an empty
/// field matches nothing, and an empty password would shadow later lines as "no password") or
/// contains a line break or NUL, which a password file cannot represent.
pub fn format_line(
    host: &str,
    port: u16,
    database: &str,
    username: &str,
    password: &Password,
) -> Result<Password> {
    for (name, value) in [
        ("host", host),
        ("database name", database),
        ("user name", username),
        ("password", password.expose()),
    ] {
        if value.is_empty() {
            return Err(Error::InvalidInput(format!(
                "cannot write a password file line with an empty {name}{}",
                if name == "password" {
                    ""
                } else {
                    " (use \"*\" to match any)"
                }
            )));
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(Error::InvalidInput(format!(
                "cannot write the {name} to a password file: it contains a line break or a NUL \
                 character"
            )));
        }
    }
    let mut line = Zeroizing::new(String::new());
    if host.starts_with('#') {
        line.push('\\');
    }
    line.push_str(&escape_field(host));
    line.push(':');
    line.push_str(&port.to_string());
    line.push(':');
    line.push_str(&escape_field(database));
    line.push(':');
    line.push_str(&escape_field(username));
    line.push(':');
    line.push_str(&Zeroizing::new(escape_field(password.expose())));
    Ok(Password::new(line.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(p: &Option<Password>) -> Option<&str> {
        p.as_ref().map(Password::expose)
    }

    /// Writes `text` to a fresh file with `mode` and returns the directory guard and the path.
    fn write_file(text: &[u8], mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).unwrap();
        set_mode(&path, mode);
        (dir, path)
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(not(unix))]
    fn set_mode(_path: &Path, _mode: u32) {}

    /// The password `lookup` finds in a file holding `text`.
    fn found(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
        let (_dir, path) = write_file(text.as_bytes(), 0o600);
        let result = lookup(&path, host, port, db, user).unwrap();
        assert_eq!(result.warning, None);
        result.password.map(|p| p.expose().to_owned())
    }

    /// A reference for the plain cases: the first parsed entry whose fields are `*` or equal.
    fn reference(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
        let port = port.to_string();
        let host = search_host(host);
        let ok = |field: &str, value: &str| field == "*" || field == value;
        let entry = parse(text).into_iter().find(|e| {
            ok(&e.host, host) && ok(&e.port, &port) && ok(&e.database, db) && ok(&e.username, user)
        })?;
        Some(entry.password.expose().to_owned()).filter(|p| !p.is_empty())
    }

    #[test]
    fn parses_fields_comments_and_blank_lines() {
        let text = "# a comment\n\
                    \n\
                    db.example:5432:app:alice:s3cret\r\n\
                    \x20# x:1:d:u:not a comment\n\
                    *:*:*:bob:pw:ignored:fields\n\
                    too:few:fields:here\n\
                    host:5432:db:user:\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 4, "{entries:?}");
        let e = &entries[0];
        assert_eq!(
            (
                e.host.as_str(),
                e.port.as_str(),
                e.database.as_str(),
                e.username.as_str()
            ),
            ("db.example", "5432", "app", "alice")
        );
        assert_eq!(e.password.expose(), "s3cret", "trailing \\r is stripped");
        assert_eq!(
            entries[1].host, " # x",
            "only a # in the first column starts a comment"
        );
        assert_eq!(entries[1].port, "1");
        assert_eq!(entries[2].host, "*");
        assert_eq!(
            entries[2].password.expose(),
            "pw",
            "fields after the fifth are ignored"
        );
        assert_eq!(
            entries[3].password.expose(),
            "",
            "an empty password is still a line"
        );
        assert!(format!("{entries:?}").contains("[redacted]"));
        assert!(!format!("{entries:?}").contains("s3cret"));
    }

    #[test]
    fn unescapes_every_field() {
        let entries = parse(r"h\:x\\y:5432:d\:b:u\\:p\:a\\ss\w");
        let e = &entries[0];
        assert_eq!(e.host, r"h:x\y");
        assert_eq!(e.database, "d:b");
        assert_eq!(e.username, r"u\");
        assert_eq!(e.password.expose(), r"p:a\ssw");
        // A backslash at the very end of the line is kept, as libpq keeps it.
        assert_eq!(parse(r"h:1:d:u:pw\")[0].password.expose(), r"pw\");
        // A NUL ends the line like it ends libpq's C string.
        assert_eq!(parse("h:1:d:u:pw\0rest")[0].password.expose(), "pw");
    }

    #[test]
    fn wildcards_and_exact_fields() {
        let text = "*:*:*:*:any\n";
        assert_eq!(found(text, "h", 1, "d", "u"), Some("any".into()));
        let text = "db.example:5432:app:alice:exact\n*:5433:*:*:other-port\n";
        assert_eq!(
            found(text, "db.example", 5432, "app", "alice").as_deref(),
            Some("exact")
        );
        assert_eq!(
            found(text, "db.example", 5432, "app", "alice").as_deref(),
            Some("exact")
        );
        assert_eq!(found(text, "db.example", 5432, "app", "bob"), None);
        assert_eq!(
            found(text, "DB.example", 5432, "app", "alice"),
            None,
            "case matters"
        );
        assert_eq!(
            found(text, "db.example", 5433, "x", "y").as_deref(),
            Some("other-port")
        );
        // The port is compared as text, as libpq does.
        assert_eq!(found("h:05432:d:u:pw\n", "h", 5432, "d", "u"), None);
        // "**" or "*x" are not wildcards.
        assert_eq!(found("**:*:*:*:pw\n", "h", 1, "d", "u"), None);
        assert_eq!(
            found("**:*:*:*:pw\n", "**", 1, "d", "u").as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn escaped_star_is_a_literal_star_in_lookup() {
        let text = "\\*:*:*:*:literal\n*:*:*:*:wild\n";
        let (_dir, path) = write_file(text.as_bytes(), 0o600);
        let found = lookup(&path, "db.example", 5432, "d", "u").unwrap();
        assert_eq!(
            pw(&found.password),
            Some("wild"),
            "\\* must not match db.example"
        );
        let found = lookup(&path, "*", 5432, "d", "u").unwrap();
        assert_eq!(pw(&found.password), Some("literal"));
        // The parsed entries cannot tell them apart (documented on `parse`).
        assert_eq!(parse(text)[0].host, "*");
    }

    #[test]
    fn unescaped_colons_match_colons_in_lookup() {
        // libpq compares byte by byte and only ends a field at a colon once the value is used up,
        // so an unescaped IPv6 address still matches. The parsed entries split it into fields.
        let text = "fe80::1:5432:d:u:pw\n";
        assert_eq!(found(text, "fe80::1", 5432, "d", "u"), Some("pw".into()));
        assert_eq!(parse(text)[0].host, "fe80");
    }

    #[test]
    fn first_match_wins() {
        let text = "*:*:app:*:first\nh:5432:app:alice:second\n";
        assert_eq!(found(text, "h", 5432, "app", "alice"), Some("first".into()));
    }

    #[test]
    fn empty_password_stops_the_search_and_means_no_password() {
        let text = "h:5432:app:alice:\n*:*:*:*:later\n";
        assert_eq!(found(text, "h", 5432, "app", "alice"), None);
        assert_eq!(
            found(text, "h", 5432, "app", "bob").as_deref(),
            Some("later")
        );
    }

    #[test]
    fn empty_database_or_user_matches_nothing() {
        let text = "*:*:*:*:pw\n";
        assert_eq!(found(text, "h", 5432, "", "u"), None);
        assert_eq!(found(text, "h", 5432, "d", ""), None);
    }

    #[test]
    fn socket_and_empty_hosts_are_searched_as_localhost() {
        let text = "localhost:5432:app:alice:local\n/custom/sock:5432:app:alice:custom\n";
        for host in ["", "/tmp", "/var/run/postgresql", "/run/postgresql"] {
            assert_eq!(
                found(text, host, 5432, "app", "alice"),
                Some("local".into()),
                "host {host:?}"
            );
        }
        // Any other socket directory is matched as written, like libpq.
        assert_eq!(
            found(text, "/custom/sock", 5432, "app", "alice"),
            Some("custom".into())
        );
        assert_eq!(found(text, "/elsewhere", 5432, "app", "alice"), None);
        assert_eq!(
            found(text, "/tmp/", 5432, "app", "alice"),
            None,
            "strcmp, no canonicalization"
        );
        // A line naming a default socket directory is never reached: it is searched as localhost.
        assert_eq!(found("/tmp:5432:d:u:pw\n", "/tmp", 5432, "d", "u"), None);
        assert_eq!(
            found("localhost:5432:d:u:pw\n", "localhost", 5432, "d", "u").as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn escapes_in_host_and_password_match() {
        let text = "fe80\\:\\:1:5432:d:u:p\\:w\\\\d\n";
        assert_eq!(
            found(text, "fe80::1", 5432, "d", "u"),
            Some(r"p:w\d".into())
        );
        assert_eq!(found(text, "fe80", 5432, "d", "u"), None);
    }

    #[test]
    fn lookup_agrees_with_the_parsed_entries_outside_the_corner_cases() {
        let text = "# c\n\
                    a:1:d:u:one\n\
                    a\\:b:1:d:u:two\n\
                    *:2:d\\\\x:u:three\\\n\
                    \\*:3:*:*:four\n\
                    b:4:d:u\n\
                    b:4:d:u:five:six\r\r\n\
                    c:5:*:x\\y:seven";
        let cases = [
            ("a", 1, "d", "u"),
            ("a:b", 1, "d", "u"),
            ("zz", 2, "d\\x", "u"),
            ("b", 4, "d", "u"),
            ("c", 5, "any", "xy"),
            ("c", 5, "any", "x\\y"),
            ("nope", 9, "d", "u"),
        ];
        for (host, port, db, user) in cases {
            assert_eq!(
                found(text, host, port, db, user),
                reference(text, host, port, db, user),
                "{host} {port} {db} {user}"
            );
        }
        assert_eq!(
            found(text, "zz", 2, "d\\x", "u").as_deref(),
            Some("three\\")
        );
        assert_eq!(found(text, "b", 4, "d", "u").as_deref(), Some("five"));
        assert_eq!(found(text, "c", 5, "any", "xy").as_deref(), Some("seven"));
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_access_is_refused() {
        let text = b"*:*:*:*:secret\n";
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601, 0o777] {
            let (_dir, path) = write_file(text, mode);
            let found = lookup(&path, "h", 5432, "d", "u").unwrap();
            assert!(found.password.is_none(), "mode {mode:o} must be refused");
            assert_eq!(
                found.warning,
                Some(PgPassWarning::GroupOrWorldAccess { path: path.clone() })
            );
            assert_eq!(
                found.warning.unwrap().to_string(),
                format!(
                    "password file \"{}\" has group or world access; permissions should be \
                     u=rw (0600) or less",
                    path.display()
                ),
                "libpq's words"
            );
        }
        // The owner's own bits do not matter, as in libpq.
        for mode in [0o600, 0o400, 0o700] {
            let (_dir, path) = write_file(text, mode);
            let found = lookup(&path, "h", 5432, "d", "u").unwrap();
            assert_eq!(pw(&found.password), Some("secret"), "mode {mode:o}");
            assert_eq!(found.warning, None);
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlink_to_a_private_file_is_followed() {
        let (dir, path) = write_file(b"*:*:*:*:linked\n", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(
            pw(&lookup(&link, "h", 5432, "d", "u").unwrap().password),
            Some("linked")
        );
    }

    #[test]
    fn missing_file_and_directory_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        for path in [missing.clone(), missing.join("below")] {
            let found = lookup(&path, "h", 5432, "d", "u").unwrap();
            assert_eq!(
                found,
                PgPassLookup::default(),
                "a missing file: no password, no warning"
            );
        }
        let found = lookup(dir.path(), "h", 5432, "d", "u").unwrap();
        assert!(found.password.is_none());
        assert_eq!(
            found.warning.unwrap().to_string(),
            format!(
                "password file \"{}\" is not a plain file",
                dir.path().display()
            )
        );
    }

    #[test]
    fn invalid_utf8_is_ignored_unless_it_is_the_matching_password() {
        let mut text = b"h\xff:1:d:u:x\n".to_vec();
        text.extend_from_slice(b"h:1:d:u:ok\n");
        let (_dir, path) = write_file(&text, 0o600);
        assert_eq!(
            pw(&lookup(&path, "h", 1, "d", "u").unwrap().password),
            Some("ok")
        );

        let (_dir, path) = write_file(b"h:1:d:u:bad\xff\n", 0o600);
        let err = lookup(&path, "h", 1, "d", "u").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("bad"));
    }

    #[test]
    fn escape_field_escapes_backslash_and_colon_only() {
        assert_eq!(escape_field(r"a:b\c"), r"a\:b\\c");
        assert_eq!(escape_field("*"), "*");
        assert_eq!(escape_field("plain ünï"), "plain ünï");
        assert_eq!(escape_field(""), "");
    }

    #[test]
    fn format_line_round_trips_awkward_values() {
        let passwords = [
            "a:b\\c",
            "'",
            "$$",
            "ünïcødé 🔑",
            "\\",
            "ends with backslash\\",
            ":",
            "::lead",
            "*",
            "#hash",
            " spaces ",
            "\\:",
        ];
        for secret in passwords {
            let line = format_line(
                "db:host\\x",
                6543,
                "my:db",
                "us\\er",
                &Password::new(secret),
            )
            .unwrap();
            let entries = parse(line.expose());
            assert_eq!(entries.len(), 1, "one line for {secret:?}");
            let e = &entries[0];
            assert_eq!((e.host.as_str(), e.port.as_str()), ("db:host\\x", "6543"));
            assert_eq!(
                (e.database.as_str(), e.username.as_str()),
                ("my:db", "us\\er")
            );
            assert_eq!(e.password.expose(), secret);
            let text = format!("{}\n", line.expose());
            let expected = Some(secret.to_owned());
            assert_eq!(
                found(&text, "db:host\\x", 6543, "my:db", "us\\er"),
                expected
            );
        }
    }

    #[test]
    fn format_line_wildcards_and_comment_hosts() {
        let line = format_line("*", 5432, "*", "*", &Password::new("pw")).unwrap();
        assert_eq!(line.expose(), "*:5432:*:*:pw");
        let line = format_line("#weird", 5432, "d", "u", &Password::new("pw")).unwrap();
        assert_eq!(line.expose(), "\\#weird:5432:d:u:pw");
        assert_eq!(
            found(&format!("{}\n", line.expose()), "#weird", 5432, "d", "u").as_deref(),
            Some("pw")
        );
        assert_eq!(format!("{line:?}"), "Password([redacted])");
    }

    #[test]
    fn format_line_refuses_what_the_file_cannot_hold() {
        let ok = Password::new("pw");
        let cases: [(&str, &str, &str, Password); 6] = [
            ("h", "d", "u", Password::new("line\nbreak-secret")),
            ("h", "d", "u", Password::new("cr\r-secret")),
            ("h", "d", "u", Password::new("nul\0-secret")),
            ("h", "d", "u", Password::new("")),
            ("h\n*", "d", "u", ok.clone()),
            ("", "d", "u", ok.clone()),
        ];
        for (host, db, user, password) in cases {
            let err = format_line(host, 5432, db, user, &password).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn exact_fields_take_no_wildcard() {
        let key = Key::new("/tmp", 5432, "d", "u");
        let pw = |line: &str, fields| {
            key.match_line(line.as_bytes(), fields)
                .map(|p| String::from_utf8(p.to_vec()).unwrap())
        };
        assert_eq!(
            pw("localhost:5432:d:u:a", Fields::Exact).as_deref(),
            Some("a")
        );
        assert_eq!(pw("*:5432:d:u:a", Fields::Exact), None);
        assert_eq!(pw("*:5432:d:u:a", Fields::Wildcards).as_deref(), Some("a"));
        assert_eq!(pw("localhost:*:d:u:a", Fields::Exact), None);
        assert_eq!(pw("# localhost:5432:d:u:a", Fields::Wildcards), None);
        assert_eq!(
            pw("localhost:5432:d:u:a\r", Fields::Exact).as_deref(),
            Some("a")
        );
        let star = Key::new("h", 1, "*", "u");
        assert!(
            star.match_line(b"h:1:*:u:x", Fields::Exact).is_some(),
            "a literal * value"
        );
    }

    #[test]
    fn path_or_default_prefers_the_given_path() {
        assert_eq!(
            path_or_default(Some(PathBuf::from("/etc/app/pgpass"))).unwrap(),
            PathBuf::from("/etc/app/pgpass")
        );
        assert_eq!(path_or_default(None).ok(), default_path());
    }

    #[test]
    fn default_path_follows_pgpassfile_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            path_from_env(env(&[("PGPASSFILE", "/etc/pgpass"), ("HOME", "/home/me")])),
            Some(PathBuf::from("/etc/pgpass"))
        );
        #[cfg(not(windows))]
        {
            assert_eq!(
                path_from_env(env(&[("PGPASSFILE", ""), ("HOME", "/home/me")])),
                Some(PathBuf::from("/home/me/.pgpass"))
            );
            assert_eq!(
                path_from_env(env(&[("HOME", "/home/me")])),
                Some(PathBuf::from("/home/me/.pgpass"))
            );
        }
    }
}
