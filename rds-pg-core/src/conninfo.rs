//! libpq connection strings, `key=value` lists and `postgresql://` URIs, as keyword/value pairs:
//! read ([`parse`]) and written ([`write_keyword_value`], [`write_uri`]), each the other's inverse.
//!
//! The grammar is libpq's (`conninfo_parse`, `conninfo_uri_parse_options`,
//! `conninfo_uri_parse_params` and `conninfo_uri_decode` in `fe-connect.c`). Error messages never
//! quote a value, and name a keyword only when it is one of libpq's, so a password (or a piece of
//! one, after a missing quote) never reaches a message or a log.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Every keyword of libpq's `PQconninfoOptions` (PostgreSQL 13 to 18), for error messages only:
/// a word that is not one of these may be part of a value and is not repeated.
const KNOWN_KEYWORDS: &[&str] = &[
    "service",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslcertmode",
    "sslpassword",
    "sslkeylogfile",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "require_auth",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "replication",
    "target_session_attrs",
    "load_balance_hosts",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
    "requiressl",
];

/// The URI designators libpq recognizes, compared case-sensitively as libpq does.
const URI_PREFIXES: &[&str] = &["postgresql://", "postgres://"];

/// Parses a libpq connection string into `(keyword, value)` pairs, in order.
///
/// Two forms, told apart as libpq does (a string starting with `postgresql://` or `postgres://`,
/// case-sensitive, is a URI; anything else is a `key=value` list):
///
/// * `host=db port=5432 password='a b\'c'`: whitespace around `=` is allowed; a value is either
///   single-quoted (`\'` and `\\` escapes, any `\x` stands for `x`) or runs to the next
///   whitespace (where `\` also escapes the next character); `key=` followed by whitespace takes
///   the *next word* as its value, exactly like libpq (`host= port=1` sets host to `port=1`).
/// * `postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]`: every component
///   is percent-decoded (`+` is not a space), a bracketed host is an IPv6 address (`[::1]`),
///   empty components are left out, and the query parameters follow as further pairs. As in
///   libpq ≥ 18, spaces around a component are ignored and a space inside one is an error
///   (write `%20`); as in libpq, `ssl=true` in the query means `sslmode=require`, and the
///   user-information part ends at the first `@` before any `/` (a `@` in a query value must
///   be written `%40`).
///
/// Keys are returned as written (libpq's names: `host`, `port`, `user`, `password`, `dbname`,
/// `sslmode`, …); unknown keys are returned too, for the caller to accept or refuse. A key may
/// repeat; with libpq the last one wins.
///
/// # Errors
/// [`Error::InvalidInput`] for a malformed string, a NUL character, several hosts in a URI, or a
/// URI component that is not valid UTF-8 once decoded. Messages never contain a value.
pub(crate) fn parse(s: &str) -> Result<Vec<(String, String)>> {
    if s.contains('\0') {
        return Err(Error::InvalidInput(
            "connection string contains a NUL character".into(),
        ));
    }
    match URI_PREFIXES.iter().find(|p| s.starts_with(*p)) {
        Some(prefix) => parse_uri(&s[prefix.len()..]),
        None => parse_keyword_value(s),
    }
}

/// C's `isspace` in the C locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// `keyword "x"` for a libpq keyword, a vague phrase for anything else (it may be a value).
fn describe_key(key: &str) -> String {
    if KNOWN_KEYWORDS.contains(&key) {
        format!("\"{key}\"")
    } else {
        "a word that is not a connection option".into()
    }
}

/// `conninfo_parse`: `key = value` pairs.
fn parse_keyword_value(s: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|&c| is_space(c)).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }

        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && !is_space(c)) {
            key.push(c);
        }
        while chars.next_if(|&c| is_space(c)).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            return Err(Error::InvalidInput(format!(
                "missing \"=\" after {} in connection string (quote values that contain \
                 spaces: key='a b')",
                describe_key(&key)
            )));
        }
        if key.is_empty() {
            return Err(Error::InvalidInput(
                "missing parameter name before \"=\" in connection string".into(),
            ));
        }
        while chars.next_if(|&c| is_space(c)).is_some() {}

        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(Error::InvalidInput(format!(
                            "unterminated quoted string in connection string (the value of {})",
                            describe_key(&key)
                        )))
                    }
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next() {
                match c {
                    c if is_space(c) => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A component of a URI, for error messages.
enum Part<'a> {
    User,
    Password,
    Host,
    Port,
    Dbname,
    ParamName,
    ParamValue(&'a str),
}

impl fmt::Display for Part<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::User => f.write_str("user name"),
            Part::Password => f.write_str("password"),
            Part::Host => f.write_str("host"),
            Part::Port => f.write_str("port"),
            Part::Dbname => f.write_str("database name"),
            Part::ParamName => f.write_str("name of a query parameter"),
            Part::ParamValue(key) if KNOWN_KEYWORDS.contains(key) => {
                write!(f, "value of the query parameter \"{key}\"")
            }
            Part::ParamValue(_) => f.write_str("value of a query parameter"),
        }
    }
}

/// `conninfo_uri_decode`: percent-decoding, `%00` refused, spaces around the component ignored
/// and spaces inside it refused (libpq 18).
fn decode(raw: &str, part: Part<'_>) -> Result<String> {
    let trimmed = raw.trim_matches(' ');
    let bytes = trimmed.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).and_then(|&b| (b as char).to_digit(16));
            match (hex(i + 1), hex(i + 2)) {
                (Some(0), Some(0)) => {
                    return Err(Error::InvalidInput(format!(
                        "forbidden %00 in the {part} of the connection URI"
                    )))
                }
                (Some(_), Some(_)) => i += 3,
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "invalid percent-encoding in the {part} of the connection URI (\"%\" must \
                         be followed by two hexadecimal digits; write a percent sign as %25)"
                    )))
                }
            }
        } else {
            i += 1;
        }
    }
    if trimmed.contains(' ') {
        return Err(Error::InvalidInput(format!(
            "unexpected space in the {part} of the connection URI (write a space as %20)"
        )));
    }
    match percent_decode_str(trimmed).decode_utf8() {
        Ok(decoded) => Ok(decoded.into_owned()),
        Err(_) => Err(Error::InvalidInput(format!(
            "the {part} of the connection URI is not valid UTF-8 once percent-decoded"
        ))),
    }
}

/// The index of the first byte of `s[from..]` in `stops`, or `s.len()`.
fn find_any(s: &str, from: usize, stops: &[u8]) -> usize {
    s.as_bytes()[from..]
        .iter()
        .position(|b| stops.contains(b))
        .map_or(s.len(), |i| from + i)
}

/// `conninfo_uri_parse_options`, on the URI without its `postgresql://` designator.
///
/// Every delimiter is ASCII, so every index below is on a `char` boundary.
fn parse_uri(uri: &str) -> Result<Vec<(String, String)>> {
    let b = uri.as_bytes();
    let mut pairs = Vec::new();
    let mut p = 0;

    // user[:password]@ — libpq looks for '@' before the first '/' only.
    let at = find_any(uri, 0, b"@/");
    if b.get(at) == Some(&b'@') {
        let userinfo = &uri[..at];
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            pairs.push(("user".to_owned(), decode(user, Part::User)?));
        }
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            pairs.push(("password".to_owned(), decode(password, Part::Password)?));
        }
        p = at + 1;
    }

    // host, a bracketed IPv6 address or a name/IPv4 address.
    let host;
    if b.get(p) == Some(&b'[') {
        let start = p + 1;
        let close = find_any(uri, start, b"]");
        if close == uri.len() {
            return Err(Error::InvalidInput(
                "missing \"]\" after the IPv6 host address in the connection URI".into(),
            ));
        }
        if close == start {
            return Err(Error::InvalidInput(
                "empty IPv6 host address \"[]\" in the connection URI".into(),
            ));
        }
        host = &uri[start..close];
        p = close + 1;
        if !matches!(b.get(p), None | Some(b':' | b'/' | b'?' | b',')) {
            return Err(Error::InvalidInput(
                "unexpected character after the IPv6 host address in the connection URI \
                 (expected \":\", \"/\", \"?\" or the end)"
                    .into(),
            ));
        }
    } else {
        let end = find_any(uri, p, b":/?,");
        host = &uri[p..end];
        p = end;
    }

    let mut port = "";
    if b.get(p) == Some(&b':') {
        let end = find_any(uri, p + 1, b"/?,");
        port = &uri[p + 1..end];
        p = end;
    }
    if b.get(p) == Some(&b',') {
        return Err(Error::InvalidInput(
            "several hosts are not supported in connection URIs".into(),
        ));
    }
    if !host.is_empty() {
        pairs.push(("host".to_owned(), decode(host, Part::Host)?));
    }
    if !port.is_empty() {
        pairs.push(("port".to_owned(), decode(port, Part::Port)?));
    }

    // /dbname
    if b.get(p) == Some(&b'/') {
        let end = find_any(uri, p + 1, b"?");
        let dbname = &uri[p + 1..end];
        if !dbname.is_empty() {
            pairs.push(("dbname".to_owned(), decode(dbname, Part::Dbname)?));
        }
        p = end;
    }

    // ?params
    if b.get(p) == Some(&b'?') {
        parse_params(&uri[p + 1..], &mut pairs)?;
    }
    Ok(pairs)
}

/// `conninfo_uri_parse_params`: `key=value` pairs separated by `&`.
fn parse_params(query: &str, pairs: &mut Vec<(String, String)>) -> Result<()> {
    if query.is_empty() {
        return Ok(());
    }
    // One trailing '&' is allowed (libpq stops at the end of the string); empty parameters
    // elsewhere are not.
    let query = query.strip_suffix('&').unwrap_or(query);
    for param in query.split('&') {
        let Some((raw_key, raw_value)) = param.split_once('=') else {
            return Err(Error::InvalidInput(
                "missing \"=\" in a query parameter of the connection URI".into(),
            ));
        };
        let key = decode(raw_key, Part::ParamName)?;
        if raw_value.contains('=') {
            return Err(Error::InvalidInput(format!(
                "extra \"=\" in the value of {} in the query of the connection URI (write it as \
                 %3D)",
                describe_key(&key)
            )));
        }
        if key.is_empty() {
            return Err(Error::InvalidInput(
                "empty query parameter name in the connection URI".into(),
            ));
        }
        let value = decode(raw_value, Part::ParamValue(&key))?;
        // libpq: "Special keyword handling for improved JDBC compatibility."
        if key == "ssl" && value == "true" {
            pairs.push(("sslmode".to_owned(), "require".to_owned()));
        } else {
            pairs.push((key, value));
        }
    }
    Ok(())
}

/// What a URI component keeps unencoded: RFC 3986's unreserved characters. Everything else,
/// including every non-ASCII byte, is percent-encoded, which libpq and [`parse`] decode.
pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An IPv6 address inside `[…]` keeps its colons (a zone's `%` is encoded as `%25`).
const IPV6_HOST: &AsciiSet = &COMPONENT.remove(b':');

/// A path in a query value keeps its slashes, for readability; both parsers accept them.
const QUERY_PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// The keywords whose values [`write_keyword_value`] writes bare: a port, a mode, a number of
/// seconds (digits and `a-z-` only, which need no quotes).
const BARE_KEYWORDS: &[&str] = &["port", "sslmode", "connect_timeout"];

/// The keywords a URI carries outside its query: they have their own place in it.
const URI_PLACED: &[&str] = &["user", "password", "host", "port", "dbname"];

/// A writer of `(keyword, value)` pairs: [`write_keyword_value`] or [`write_uri`].
pub(crate) type Writer = fn(&[(&str, &str)]) -> Result<Zeroizing<String>>;

/// Refuses a value no connection string can carry (a NUL), naming the keyword only.
fn check_value(key: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "cannot write the {key} to a connection string: it contains a NUL character"
        )));
    }
    Ok(())
}

/// `value` quoted for a `key=value` string: `'…'` with `\` and `'` escaped, which libpq (and
/// [`parse`]) read back to exactly `value`, whatever it holds.
pub(crate) fn quote_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `pairs` as a `key=value` connection string, in order, separated by spaces: every value is
/// quoted ([`quote_value`]) except a port, an sslmode and a connect timeout. Wrapped because a
/// pair may be the password.
///
/// # Errors
/// [`Error::InvalidInput`] for a value holding a NUL (naming the keyword, never the value).
pub(crate) fn write_keyword_value(pairs: &[(&str, &str)]) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    for (key, value) in pairs {
        check_value(key, value)?;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        let bare = BARE_KEYWORDS.contains(key)
            && !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if bare {
            out.push_str(value);
        } else {
            out.push_str(&Zeroizing::new(quote_value(value)));
        }
    }
    Ok(out)
}

/// `pairs` as a `postgresql://user:password@host:port/dbname?key=value&…` URI: `user`,
/// `password` (when not empty: a URI cannot carry an empty one), `host` (an IPv6 address in
/// `[…]`), `port` and `dbname` in their places, every other pair in the query, in order. Every
/// component is percent-encoded (only `A-Z a-z 0-9 - . _ ~` stay as they are; an IPv6 address
/// keeps its colons; a socket directory is encoded whole, `/` as `%2F`; a query value keeps its
/// `/`). Wrapped because a pair may be the password.
///
/// # Errors
/// [`Error::InvalidInput`] for a value holding a NUL (naming the keyword, never the value).
pub(crate) fn write_uri(pairs: &[(&str, &str)]) -> Result<Zeroizing<String>> {
    for (key, value) in pairs {
        check_value(key, value)?;
    }
    let get = |key: &str| pairs.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut url = Zeroizing::new(String::from("postgresql://"));
    let user = get("user").filter(|u| !u.is_empty());
    let password = get("password").filter(|p| !p.is_empty());
    if user.is_some() || password.is_some() {
        url.extend(utf8_percent_encode(user.unwrap_or_default(), COMPONENT));
        if let Some(password) = password {
            url.push(':');
            url.extend(utf8_percent_encode(password, COMPONENT));
        }
        url.push('@');
    }
    if let Some(host) = get("host") {
        if host.contains(':') && !host.starts_with('/') {
            url.push('[');
            url.extend(utf8_percent_encode(host, IPV6_HOST));
            url.push(']');
        } else {
            url.extend(utf8_percent_encode(host, COMPONENT));
        }
    }
    if let Some(port) = get("port") {
        url.push(':');
        url.extend(utf8_percent_encode(port, COMPONENT));
    }
    if let Some(dbname) = get("dbname") {
        url.push('/');
        url.extend(utf8_percent_encode(dbname, COMPONENT));
    }
    let mut separator = '?';
    for (key, value) in pairs.iter().filter(|(k, _)| !URI_PLACED.contains(k)) {
        url.push(separator);
        separator = '&';
        url.extend(utf8_percent_encode(key, COMPONENT));
        url.push('=');
        url.extend(utf8_percent_encode(value, QUERY_PATH));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<(String, String)> {
        match parse(s) {
            Ok(pairs) => pairs,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The error message, checked to be an `InvalidInput` that does not contain `secret`.
    fn err(s: &str, secret: &str) -> String {
        let e = parse(s).expect_err(s);
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            secret.is_empty() || !msg.contains(secret),
            "message leaks a value: {msg}"
        );
        msg
    }

    #[test]
    fn keyword_value_basics() {
        assert_eq!(
            ok("host=db port=5432 user=u dbname=app"),
            pairs(&[
                ("host", "db"),
                ("port", "5432"),
                ("user", "u"),
                ("dbname", "app")
            ])
        );
        assert_eq!(ok(""), pairs(&[]));
        assert_eq!(ok(" \t\n "), pairs(&[]));
        assert_eq!(
            ok("  host = db\tport\n=\r5432  "),
            pairs(&[("host", "db"), ("port", "5432")])
        );
        assert_eq!(
            ok("bogus=1 host=h"),
            pairs(&[("bogus", "1"), ("host", "h")])
        );
        assert_eq!(ok("host=a host=b"), pairs(&[("host", "a"), ("host", "b")]));
    }

    #[test]
    fn keyword_value_quoting_and_escapes() {
        assert_eq!(ok(r"password='a b\'c'"), pairs(&[("password", "a b'c")]));
        assert_eq!(
            ok(r"password='back\\slash'"),
            pairs(&[("password", r"back\slash")])
        );
        assert_eq!(ok(r"password='\x'"), pairs(&[("password", "x")]));
        assert_eq!(
            ok("password='' host=h"),
            pairs(&[("password", ""), ("host", "h")])
        );
        assert_eq!(
            ok("dbname='my db'host=h"),
            pairs(&[("dbname", "my db"), ("host", "h")])
        );
        assert_eq!(ok(r"password=a\ b\'c\\"), pairs(&[("password", r"a b'c\")]));
        assert_eq!(ok("password=it's"), pairs(&[("password", "it's")]));
        assert_eq!(
            ok("password='ünï $$ :@/'"),
            pairs(&[("password", "ünï $$ :@/")])
        );
        assert_eq!(
            ok(r"password=trailing\"),
            pairs(&[("password", "trailing")])
        );
        // libpq: an empty unquoted value takes the next word.
        assert_eq!(ok("host= port=5"), pairs(&[("host", "port=5")]));
        assert_eq!(ok("host="), pairs(&[("host", "")]));
        assert_eq!(ok("options=-c\\ x=1"), pairs(&[("options", "-c x=1")]));
    }

    #[test]
    fn keyword_value_errors_do_not_leak_values() {
        let msg = err("host", "");
        assert!(msg.contains("missing \"=\" after \"host\""), "{msg}");
        // An unquoted password with a space: the second half is not repeated.
        let msg = err("password=hunter two-secret", "two-secret");
        assert!(msg.contains("missing \"=\""), "{msg}");
        let msg = err("password='unterminated-secret", "unterminated-secret");
        assert!(msg.contains("unterminated quoted string"), "{msg}");
        assert!(msg.contains("\"password\""), "{msg}");
        let msg = err(r"password='ends-secret\'", "ends-secret");
        assert!(msg.contains("unterminated"), "{msg}");
        let msg = err("=value-secret", "value-secret");
        assert!(msg.contains("missing parameter name"), "{msg}");
        err("host=a\0b", "");
    }

    #[test]
    fn uri_components() {
        assert_eq!(
            ok("postgresql://alice:s3cret@db.example:6432/app?sslmode=verify-full"),
            pairs(&[
                ("user", "alice"),
                ("password", "s3cret"),
                ("host", "db.example"),
                ("port", "6432"),
                ("dbname", "app"),
                ("sslmode", "verify-full"),
            ])
        );
        assert_eq!(ok("postgres://h"), pairs(&[("host", "h")]));
        assert_eq!(ok("postgresql://"), pairs(&[]));
        assert_eq!(ok("postgresql:///db"), pairs(&[("dbname", "db")]));
        assert_eq!(ok("postgresql://h/"), pairs(&[("host", "h")]));
        assert_eq!(ok("postgresql://h:/"), pairs(&[("host", "h")]));
        assert_eq!(ok("postgresql://:5433/"), pairs(&[("port", "5433")]));
        assert_eq!(
            ok("postgresql://u@h"),
            pairs(&[("user", "u"), ("host", "h")])
        );
        assert_eq!(ok("postgresql://u@"), pairs(&[("user", "u")]));
        assert_eq!(ok("postgresql://@h"), pairs(&[("host", "h")]));
        assert_eq!(
            ok("postgresql://:pw@h"),
            pairs(&[("password", "pw"), ("host", "h")])
        );
        assert_eq!(
            ok("postgresql://u:@h"),
            pairs(&[("user", "u"), ("host", "h")])
        );
        assert_eq!(
            ok("postgresql://h/a/b"),
            pairs(&[("host", "h"), ("dbname", "a/b")])
        );
        // The password runs to the '@': further colons belong to it.
        assert_eq!(
            ok("postgresql://u:a:b@h"),
            pairs(&[("user", "u"), ("password", "a:b"), ("host", "h")])
        );
    }

    #[test]
    fn uri_percent_decoding() {
        assert_eq!(
            ok("postgresql://ma%40ster:p%40ss%3Aw@h/my%20db"),
            pairs(&[
                ("user", "ma@ster"),
                ("password", "p@ss:w"),
                ("host", "h"),
                ("dbname", "my db")
            ])
        );
        assert_eq!(
            ok("postgresql://u:%C3%BCn%C3%AF@h"),
            pairs(&[("user", "u"), ("password", "ünï"), ("host", "h")])
        );
        assert_eq!(
            ok("postgresql://u:a+b@h"),
            pairs(&[("user", "u"), ("password", "a+b"), ("host", "h")])
        );
        assert_eq!(
            ok("postgresql://%2Fvar%2Frun%2Fpostgresql/db"),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(ok("postgresql://%68ost"), pairs(&[("host", "host")]));
        assert_eq!(
            ok("postgresql://h?u%73er=x"),
            pairs(&[("host", "h"), ("user", "x")])
        );
        // Non-ASCII written as is.
        assert_eq!(
            ok("postgresql://h/bäse"),
            pairs(&[("host", "h"), ("dbname", "bäse")])
        );
    }

    #[test]
    fn uri_ipv6_hosts() {
        assert_eq!(ok("postgresql://[::1]"), pairs(&[("host", "::1")]));
        assert_eq!(
            ok("postgresql://u:pw@[2001:db8::1]:5433/db"),
            pairs(&[
                ("user", "u"),
                ("password", "pw"),
                ("host", "2001:db8::1"),
                ("port", "5433"),
                ("dbname", "db")
            ])
        );
        assert_eq!(
            ok("postgresql://[::1]/db"),
            pairs(&[("host", "::1"), ("dbname", "db")])
        );
        assert_eq!(
            ok("postgresql://[::1]?sslmode=disable"),
            pairs(&[("host", "::1"), ("sslmode", "disable")])
        );
        assert_eq!(
            ok("postgresql://[fe80::1%25eth0]"),
            pairs(&[("host", "fe80::1%eth0")])
        );
    }

    #[test]
    fn uri_query_parameters() {
        assert_eq!(
            ok("postgresql://h/db?sslmode=require&application_name=my%20app&connect_timeout=10"),
            pairs(&[
                ("host", "h"),
                ("dbname", "db"),
                ("sslmode", "require"),
                ("application_name", "my app"),
                ("connect_timeout", "10"),
            ])
        );
        assert_eq!(
            ok("postgresql://?host=/tmp&port=5433"),
            pairs(&[("host", "/tmp"), ("port", "5433")])
        );
        assert_eq!(ok("postgresql://h?"), pairs(&[("host", "h")]));
        assert_eq!(
            ok("postgresql://h?a=1&"),
            pairs(&[("host", "h"), ("a", "1")])
        );
        assert_eq!(
            ok("postgresql://h?user="),
            pairs(&[("host", "h"), ("user", "")])
        );
        assert_eq!(
            ok("postgresql://h?ssl=true"),
            pairs(&[("host", "h"), ("sslmode", "require")])
        );
        assert_eq!(
            ok("postgresql://h?ssl=false"),
            pairs(&[("host", "h"), ("ssl", "false")])
        );
        assert_eq!(
            ok("postgresql://h?password=p%26w"),
            pairs(&[("host", "h"), ("password", "p&w")])
        );
        // libpq: the user-information part ends at the first '@' before any '/'.
        assert_eq!(
            ok("postgresql://h/db?user=a@b"),
            pairs(&[("host", "h"), ("dbname", "db"), ("user", "a@b")])
        );
        assert_eq!(
            ok("postgresql://h?user=a@b"),
            pairs(&[("user", "h?user=a"), ("host", "b")])
        );
    }

    #[test]
    fn uri_spaces_follow_libpq_18() {
        assert_eq!(
            ok("postgresql://h/db?application_name= x "),
            pairs(&[("host", "h"), ("dbname", "db"), ("application_name", "x")])
        );
        assert_eq!(
            ok("postgresql://u: pw @h"),
            pairs(&[("user", "u"), ("password", "pw"), ("host", "h")])
        );
        let msg = err("postgresql://u:two words-secret@h", "words-secret");
        assert!(msg.contains("%20") && msg.contains("password"), "{msg}");
    }

    #[test]
    fn uri_scheme_is_case_sensitive() {
        // Not a URI for libpq, so parsed (and refused) as key=value.
        let msg = err("PostgreSQL://u:pw-secret@h", "pw-secret");
        assert!(msg.contains("missing \"=\""), "{msg}");
    }

    #[test]
    fn uri_errors_do_not_leak_values() {
        let msg = err("postgresql://u:bad%zzpw-secret@h", "pw-secret");
        assert!(
            msg.contains("invalid percent-encoding") && msg.contains("password"),
            "{msg}"
        );
        let msg = err("postgresql://u:trailing-secret%4@h", "trailing-secret");
        assert!(msg.contains("invalid percent-encoding"), "{msg}");
        let msg = err("postgresql://u:nul%00-secret@h", "nul");
        assert!(msg.contains("%00"), "{msg}");
        let msg = err("postgresql://u:%FF-secret@h", "-secret");
        assert!(msg.contains("UTF-8"), "{msg}");
        let msg = err("postgresql://h?password=x%zz-secret", "-secret");
        assert!(msg.contains("\"password\""), "{msg}");
        let msg = err("postgresql://h?weird=x%zz-secret", "-secret");
        assert!(msg.contains("a query parameter"), "{msg}");
        let msg = err("postgresql://h?password=a=b-secret", "b-secret");
        assert!(msg.contains("extra \"=\""), "{msg}");
        let msg = err("postgresql://h?pw-secret", "pw-secret");
        assert!(msg.contains("missing \"=\""), "{msg}");
        err("postgresql://h?a=1&&b=2", "");
        err("postgresql://h?&", "");
        err("postgresql://h?=x", "");
        err("postgresql://h/db%", "");
    }

    #[test]
    fn uri_host_errors() {
        assert!(err("postgresql://[::1", "").contains("\"]\""));
        assert!(err("postgresql://[]", "").contains("empty IPv6"));
        assert!(err("postgresql://[::1]x", "").contains("unexpected character"));
        assert!(err("postgresql://a,b/db", "").contains("several hosts"));
        assert!(err("postgresql://a:5432,b:5433", "").contains("several hosts"));
        assert!(err("postgresql://[::1],[::2]", "").contains("several hosts"));
        // A percent-encoded comma is a host name character here; the caller sees it.
        assert_eq!(ok("postgresql://a%2Cb"), pairs(&[("host", "a,b")]));
    }

    /// Values a connection string has to carry: quotes, backslashes, spaces, `=`, `&`, `@`,
    /// `:`, `/`, `%`, `?`, non-ASCII, leading and trailing spaces.
    const AWKWARD: &[&str] = &[
        "plain",
        "it's",
        "back\\slash \\' both",
        " lead and trail ",
        "a=b&c=d",
        "user@host:5432/db?x=%20",
        "ünïcødé 🔑",
        "'",
        "\\",
        "tab\tand\nnewline",
        "#hash",
    ];

    #[test]
    fn keyword_value_strings_round_trip() {
        for value in AWKWARD {
            let written = write_keyword_value(&[
                ("host", "db.example"),
                ("port", "6543"),
                ("user", *value),
                ("dbname", *value),
                ("sslmode", "verify-full"),
                ("password", *value),
            ])
            .unwrap();
            assert_eq!(
                ok(&written),
                pairs(&[
                    ("host", "db.example"),
                    ("port", "6543"),
                    ("user", *value),
                    ("dbname", *value),
                    ("sslmode", "verify-full"),
                    ("password", *value)
                ]),
                "{}",
                *written
            );
        }
        assert_eq!(
            *write_keyword_value(&[("host", "h"), ("port", "5432"), ("user", "o'neil")]).unwrap(),
            r"host='h' port=5432 user='o\'neil'"
        );
        // A value that is not a plain word is quoted even for a bare keyword.
        assert_eq!(
            *write_keyword_value(&[("port", "54 32")]).unwrap(),
            "port='54 32'"
        );
    }

    #[test]
    fn uris_round_trip() {
        for value in AWKWARD {
            let input = [
                ("user", *value),
                ("password", *value),
                ("host", "db.example"),
                ("port", "6543"),
                ("dbname", *value),
                ("sslmode", "verify-ca"),
                ("sslrootcert", "/etc/ssl/rds bundle/ca.pem"),
                ("application_name", *value),
            ];
            let written = write_uri(&input).unwrap();
            assert_eq!(ok(&written), pairs(&input), "{}", *written);
        }
        for host in ["fe80::1%eth0", "::1", "/var/run/postgresql", "10.0.0.1"] {
            let written = write_uri(&[("host", host), ("dbname", "d")]).unwrap();
            assert_eq!(
                ok(&written),
                pairs(&[("host", host), ("dbname", "d")]),
                "{}",
                *written
            );
        }
        assert_eq!(
            *write_uri(&[
                ("user", "u"),
                ("host", "::1"),
                ("port", "1"),
                ("sslmode", "require")
            ])
            .unwrap(),
            "postgresql://u@[::1]:1?sslmode=require"
        );
        // No user, and an empty password (which a URI cannot carry): no user-information part.
        assert_eq!(
            *write_uri(&[("password", ""), ("host", "h")]).unwrap(),
            "postgresql://h"
        );
    }

    #[test]
    fn a_nul_cannot_be_written_and_the_message_names_the_keyword_only() {
        for result in [
            write_keyword_value(&[("password", "se\0cret")]).map(|_| ()),
            write_uri(&[("password", "se\0cret")]).map(|_| ()),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            let msg = e.to_string();
            assert!(msg.contains("password") && !msg.contains("cret"), "{msg}");
        }
    }
}
