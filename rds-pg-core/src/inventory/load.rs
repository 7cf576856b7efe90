//! Reading an inventory: TOML (with spans) → raw entries (serde) → validated types, every
//! problem collected with its line and column.
//!
//! Each entry (`[[client]]`, `[[instance]]`, `[[project]]`, `[[project.database]]`, a
//! credentials sink, a master-password source, `[policy]`) is deserialized on its own, so a
//! problem in one does not hide the others; when an entry fails, each of its keys is tried
//! alone, so every unknown key and every value of the wrong type is reported, and the entry's
//! other keys are still validated.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::{
    is_region, rds_endpoint_region, Client, Environment, Instance, Inventory, InventoryError,
    Location, Locations, MasterPassword, Policy, Problem, Project, ProjectDatabase,
    RoleCredentials, RoleSettings, BACKUP_RETENTION_DAYS, DEFAULT_PORT, SUPPORTED_MAJORS,
};
use crate::config::SslMode;
use crate::credentials::{CredentialFormat, CredentialSink};
use crate::ident::{DatabaseName, RoleName, MAX_NAME_BYTES};
use crate::spec::Extension;

type Span = Range<usize>;

// ---------------------------------------------------------------------------------------------
// Raw entries: what serde reads. Every field is optional so that each key can be read alone;
// the conversion below says which are required.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    backup_retention_days: Option<Spanned<i64>>,
    backup_dir: Option<Spanned<String>>,
    backup_keep_last: Option<Spanned<i64>>,
    backup_keep_daily: Option<Spanned<i64>>,
    backup_keep_weekly: Option<Spanned<i64>>,
    backup_keep_monthly: Option<Spanned<i64>>,
    backup_keep_yearly: Option<Spanned<i64>>,
    backup_encrypt_to: Option<Vec<Spanned<String>>>,
    backup_upload: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Option<Spanned<String>>,
    account_id: Option<Spanned<String>>,
    secrets: Option<Spanned<String>>,
    backup_encrypt_to: Option<Vec<Spanned<String>>>,
}

/// Keys of `[[instance]]` read as entries of their own.
const INSTANCE_NESTED: &[&str] = &["master_password"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: Option<Spanned<String>>,
    client: Option<Spanned<String>>,
    environment: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    postgres_major: Option<Spanned<i64>>,
    endpoint: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    master_user: Option<Spanned<String>>,
    via: Option<Spanned<String>>,
    sslmode: Option<Spanned<String>>,
    sslrootcert: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMasterPassword {
    pgpass: Option<Spanned<String>>,
    env: Option<Spanned<String>>,
    command: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Keys of `[[project]]` read as entries of their own.
const PROJECT_NESTED: &[&str] = &["database", "credentials", "roles"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Option<Spanned<String>>,
    client: Option<Spanned<String>>,
    environment: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    instance: Option<Spanned<String>>,
    postgres_major: Option<Spanned<i64>>,
    secrets: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    name: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    extensions: Option<Vec<Spanned<String>>>,
    readers: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleSettings {
    connection_limit: Option<Spanned<i64>>,
    valid_until: Option<Spanned<String>>,
    iam: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    env_file: Option<Spanned<String>>,
    pgpass: Option<Spanned<String>>,
    command: Option<Spanned<Vec<Spanned<String>>>>,
    format: Option<Spanned<String>>,
    read_command: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One entry read by serde, with what the conversion needs to report problems.
struct Entry<'i, T> {
    raw: T,
    /// The entry's span.
    span: Span,
    /// Keys that were given but could not be read (already reported).
    bad: BTreeSet<String>,
    /// The keys read as entries of their own.
    nested: Vec<(Spanned<String>, Spanned<DeValue<'i>>)>,
    /// Every key given (nested ones included), at its value.
    keys: Vec<(String, Span)>,
}

// ---------------------------------------------------------------------------------------------
// The loader: positions, problems, and reading entries.
// ---------------------------------------------------------------------------------------------

struct Loader<'t> {
    text: &'t str,
    file: &'t str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// Each problem with the byte offset it is at, for sorting.
    problems: Vec<(usize, Problem)>,
}

impl<'t> Loader<'t> {
    fn new(text: &'t str, file: &'t str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Loader {
            text,
            file,
            line_starts,
            problems: Vec::new(),
        }
    }

    fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        Location::at(self.file, line as u32 + 1, column as u32 + 1)
    }

    fn locations(&self, span: &Span, keys: &[(String, Span)]) -> Locations {
        Locations {
            entry: self.location(span.start),
            keys: keys
                .iter()
                .map(|(k, s)| (k.clone(), self.location(s.start)))
                .collect(),
        }
    }

    fn problem(&mut self, span: &Span, message: impl Into<String>) {
        let location = self.location(span.start);
        self.problems.push((
            span.start,
            Problem {
                location,
                message: message.into(),
            },
        ));
    }

    /// A problem reported by the TOML parser or serde, at its own span or else at `fallback`.
    fn toml_problem(&mut self, err: &toml::de::Error, fallback: &Span, what: &str) {
        let span = err.span().unwrap_or_else(|| fallback.clone());
        let message = err
            .message()
            .replace("unknown field", "unknown key")
            .replace("expected i64", "expected an integer");
        let message = if what.is_empty() {
            message
        } else {
            format!("{what}: {message}")
        };
        self.problem(&span, message);
    }

    fn finish(mut self) -> InventoryError {
        self.problems.sort_by_key(|(offset, _)| *offset);
        self.problems.dedup_by(|a, b| a.1 == b.1);
        InventoryError {
            file: self.file.to_owned(),
            problems: self.problems.into_iter().map(|(_, p)| p).collect(),
        }
    }

    /// Reads one entry (a table) into `T`, except the `nested` keys, which the caller reads.
    fn entry<'i, T: DeserializeOwned>(
        &mut self,
        what: &str,
        value: Spanned<DeValue<'i>>,
        nested: &[&str],
    ) -> Option<Entry<'i, T>> {
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            self.problem(&span, format!("{what} must be a table"));
            return None;
        };
        let keys: Vec<(String, Span)> = table
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), v.span()))
            .collect();
        let mut own = DeTable::new();
        let mut nested_entries = Vec::new();
        for (key, value) in table {
            if nested.contains(&key.get_ref().as_ref()) {
                let key = Spanned::new(key.span(), key.get_ref().to_string());
                nested_entries.push((key, value));
            } else {
                own.insert(key, value);
            }
        }
        let read = |table: DeTable<'i>| {
            T::deserialize(ValueDeserializer::from(Spanned::new(
                span.clone(),
                DeValue::Table(table),
            )))
        };
        let mut bad = BTreeSet::new();
        let raw = match read(own.clone()) {
            Ok(raw) => raw,
            Err(whole) => {
                // Try each key alone, to report every key that cannot be read.
                for (key, value) in own.iter() {
                    let mut single = DeTable::new();
                    single.insert(key.clone(), value.clone());
                    if let Err(e) = read(single) {
                        if e.message().starts_with("unknown field") {
                            // serde lists the keys it reads; the nested ones are read here.
                            let nested: Vec<String> =
                                nested.iter().map(|k| format!("`{k}`")).collect();
                            let mut message = e.message().to_owned();
                            if !nested.is_empty() {
                                message.push_str(&format!(", or {}", nested.join(", ")));
                            }
                            let e: toml::de::Error = serde::de::Error::custom(message);
                            self.toml_problem(&e, &key.span(), what);
                        } else {
                            self.toml_problem(&e, &value.span(), what);
                        }
                        bad.insert(key.get_ref().to_string());
                    }
                }
                if bad.is_empty() {
                    self.toml_problem(&whole, &span, what);
                    return None;
                }
                let rest: DeTable<'i> = own
                    .into_iter()
                    .filter(|(k, _)| !bad.contains(k.get_ref().as_ref()))
                    .collect();
                match read(rest) {
                    Ok(raw) => raw,
                    Err(e) => {
                        self.toml_problem(&e, &span, what);
                        return None;
                    }
                }
            }
        };
        Some(Entry {
            raw,
            span,
            bad,
            nested: nested_entries,
            keys,
        })
    }

    /// `value`, or a problem saying the entry lacks `key` (unless the key was given with a value
    /// that could not be read, which was reported already).
    fn required<T, U>(
        &mut self,
        entry: &Entry<'_, U>,
        value: Option<T>,
        what: &str,
        key: &str,
    ) -> Option<T> {
        if value.is_none() && !entry.bad.contains(key) {
            self.problem(&entry.span, format!("{what}: missing key `{key}`"));
        }
        value
    }

    /// An array of tables (`[[key]]`): its elements, or a problem.
    fn array_of_tables<'i>(
        &mut self,
        key: &Spanned<DeString>,
        value: Spanned<DeValue<'i>>,
    ) -> Vec<Spanned<DeValue<'i>>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => items.into_iter().collect(),
            other => {
                let name = key.get_ref();
                let hint = if matches!(other, DeValue::Table(_)) {
                    format!("; write [[{name}]] for each entry")
                } else {
                    String::new()
                };
                self.problem(&span, format!("`{name}` must be an array of tables{hint}"));
                Vec::new()
            }
        }
    }
}

type DeString<'i> = std::borrow::Cow<'i, str>;

/// How messages name an entry before it is read: `client "acme"` when it has a string `name`,
/// else `[[client]]`.
fn label(kind: &str, header: &str, value: &Spanned<DeValue<'_>>) -> String {
    match value
        .get_ref()
        .as_table()
        .and_then(|t| t.get("name"))
        .and_then(|n| n.get_ref().as_str())
    {
        Some(name) => format!("{kind} {name:?}"),
        None => header.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Value checks shared by the entries.
// ---------------------------------------------------------------------------------------------

/// A name of a client, instance or project: 1–63 bytes of ASCII letters, digits, `_`, `.` and
/// `-`, starting with a letter or digit (it ends up in file names, vault paths and command
/// lines).
fn check_entry_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("must be 1 to {MAX_NAME_BYTES} bytes long"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(
            "may hold only ASCII letters, digits, '_', '.' and '-', and must start with a \
             letter or digit"
                .into(),
        );
    }
    Ok(())
}

fn check_text(value: &str) -> std::result::Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains(['\0', '\n', '\r']) {
        return Err("must not contain a line break or NUL".into());
    }
    Ok(())
}

fn check_env_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn check_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err("must be a host name of 1 to 253 bytes".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/:@?#".contains(c))
    {
        return Err(
            "must be a host name only (no scheme, port, path or spaces; the port is `port`)".into(),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The document.
// ---------------------------------------------------------------------------------------------

/// Parses and validates an inventory.
pub(super) fn parse(text: &str, file: &str) -> Result<Inventory, InventoryError> {
    let mut l = Loader::new(text, file);
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // After a syntax error the rest of the document is a guess: report the syntax only.
        for e in &errors {
            l.toml_problem(e, &(0..0), "");
        }
        return Err(l.finish());
    }
    let mut policy_value = None;
    let mut client_values = Vec::new();
    let mut instance_values = Vec::new();
    let mut project_values = Vec::new();
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "policy" => policy_value = Some(value),
            "client" => client_values = l.array_of_tables(&key, value),
            "instance" => instance_values = l.array_of_tables(&key, value),
            "project" => project_values = l.array_of_tables(&key, value),
            other => l.problem(
                &key.span(),
                format!(
                    "unknown key `{other}`; an inventory has [policy], [[client]], [[instance]] \
                     and [[project]]"
                ),
            ),
        }
    }

    let policy = match policy_value {
        Some(value) => read_policy(&mut l, value),
        None => Policy::default(),
    };
    let (clients, client_names) = read_clients(&mut l, client_values);
    let (instances, instance_names) = read_instances(&mut l, instance_values, &client_names);
    let projects = read_projects(&mut l, project_values, &client_names, &instance_names);

    if l.problems.is_empty() {
        Ok(Inventory {
            source: file.to_owned(),
            policy,
            clients,
            instances,
            projects,
        })
    } else {
        Err(l.finish())
    }
}

fn read_policy(l: &mut Loader<'_>, value: Spanned<DeValue<'_>>) -> Policy {
    let mut policy = Policy::default();
    let Some(e) = l.entry::<RawPolicy>("[policy]", value, &[]) else {
        return policy;
    };
    if let Some(days) = e.raw.backup_retention_days {
        let span = days.span();
        let v = *days.get_ref();
        match u32::try_from(v) {
            Ok(d) if BACKUP_RETENTION_DAYS.contains(&d) => {
                policy.backup_retention_days = d;
                policy.location = Some(l.location(span.start));
            }
            _ => l.problem(
                &span,
                format!(
                    "[policy]: backup_retention_days = {v} is out of range: RDS keeps automated \
                     backups {} to {} days",
                    BACKUP_RETENTION_DAYS.start(),
                    BACKUP_RETENTION_DAYS.end()
                ),
            ),
        }
    }
    let b = &mut policy.backups;
    if let Some(dir) = &e.raw.backup_dir {
        b.dir = path(l, "[policy]", "backup_dir", dir);
    }
    for (key, value, slot) in [
        (
            "backup_keep_last",
            &e.raw.backup_keep_last,
            &mut b.retention.keep_last,
        ),
        (
            "backup_keep_daily",
            &e.raw.backup_keep_daily,
            &mut b.retention.keep_daily,
        ),
        (
            "backup_keep_weekly",
            &e.raw.backup_keep_weekly,
            &mut b.retention.keep_weekly,
        ),
        (
            "backup_keep_monthly",
            &e.raw.backup_keep_monthly,
            &mut b.retention.keep_monthly,
        ),
        (
            "backup_keep_yearly",
            &e.raw.backup_keep_yearly,
            &mut b.retention.keep_yearly,
        ),
    ] {
        if let Some(v) = value {
            match u32::try_from(*v.get_ref()) {
                Ok(n) => *slot = n,
                Err(_) => l.problem(
                    &v.span(),
                    format!(
                        "[policy]: {key} = {} must be a count, 0 or more",
                        v.get_ref()
                    ),
                ),
            }
        }
    }
    if let Some(recipients) = &e.raw.backup_encrypt_to {
        b.encrypt_to = recipients_of(l, "[policy]", recipients);
    }
    if let Some(command) = &e.raw.backup_upload {
        b.upload = argv(l, "[policy]: backup_upload", command);
    }
    policy
}

/// Age recipients (`age1…`), each checked.
fn recipients_of(l: &mut Loader<'_>, what: &str, values: &[Spanned<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for value in values {
        match crate::backup::Recipient::parse(value.get_ref()) {
            Ok(_) => out.push(value.get_ref().clone()),
            Err(e) => l.problem(&value.span(), format!("{what}: backup_encrypt_to: {e}")),
        }
    }
    out
}

/// Checks an entry's `name`, and that no earlier entry of the kind has it.
fn entry_name(
    l: &mut Loader<'_>,
    kind: &str,
    name: Option<&Spanned<String>>,
    seen: &mut BTreeMap<String, Location>,
) -> Option<String> {
    let name = name?;
    let span = name.span();
    if let Err(reason) = check_entry_name(name.get_ref()) {
        l.problem(&span, format!("{kind} name {:?} {reason}", name.get_ref()));
        return None;
    }
    let here = l.location(span.start);
    if let Some(first) = seen.get(name.get_ref()) {
        l.problem(
            &span,
            format!(
                "a second {kind} is named {:?} (the first is at line {})",
                name.get_ref(),
                first.line.unwrap_or(0)
            ),
        );
        return None;
    }
    seen.insert(name.get_ref().clone(), here);
    Some(name.get_ref().clone())
}

/// Checks that `reference` names one of `known` (the `kind`s of the inventory).
fn reference(
    l: &mut Loader<'_>,
    what: &str,
    key: &str,
    reference: Option<&Spanned<String>>,
    kind: &str,
    known: &BTreeSet<String>,
) -> Option<String> {
    let r = reference?;
    if known.contains(r.get_ref()) {
        return Some(r.get_ref().clone());
    }
    let list: Vec<&str> = known.iter().map(String::as_str).collect();
    l.problem(
        &r.span(),
        format!(
            "{what}: `{key}` names {kind} {:?}, which the inventory does not have (it has: {})",
            r.get_ref(),
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(", ")
            }
        ),
    );
    None
}

fn environment(
    l: &mut Loader<'_>,
    what: &str,
    value: Option<&Spanned<String>>,
) -> Option<Environment> {
    let v = value?;
    match v.get_ref().parse() {
        Ok(env) => Some(env),
        Err(_) => {
            l.problem(
                &v.span(),
                format!(
                    "{what}: environment {:?} is neither \"staging\" nor \"production\"",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

fn region(l: &mut Loader<'_>, what: &str, value: Option<&Spanned<String>>) -> Option<String> {
    let v = value?;
    if is_region(v.get_ref()) {
        Some(v.get_ref().clone())
    } else {
        l.problem(
            &v.span(),
            format!(
                "{what}: region {:?} is not an AWS region name (like \"eu-west-1\")",
                v.get_ref()
            ),
        );
        None
    }
}

fn major(l: &mut Loader<'_>, what: &str, value: Option<&Spanned<i64>>) -> Option<u32> {
    let v = value?;
    match u32::try_from(*v.get_ref()) {
        Ok(m) if SUPPORTED_MAJORS.contains(&m) => Some(m),
        _ => {
            l.problem(
                &v.span(),
                format!(
                    "{what}: postgres_major = {} is not supported: rds-pg supports PostgreSQL {} \
                     to {}",
                    v.get_ref(),
                    SUPPORTED_MAJORS.start(),
                    SUPPORTED_MAJORS.end()
                ),
            );
            None
        }
    }
}

fn optional_text(
    l: &mut Loader<'_>,
    what: &str,
    key: &str,
    value: Option<&Spanned<String>>,
) -> Option<String> {
    let v = value?;
    match check_text(v.get_ref()) {
        Ok(()) => Some(v.get_ref().clone()),
        Err(reason) => {
            l.problem(&v.span(), format!("{what}: `{key}` {reason}"));
            None
        }
    }
}

/// The clients that are valid, and the names of all whose name is (so that references to a
/// client with another problem are not reported as well).
fn read_clients(
    l: &mut Loader<'_>,
    values: Vec<Spanned<DeValue<'_>>>,
) -> (Vec<Client>, BTreeSet<String>) {
    let mut seen = BTreeMap::new();
    let mut clients = Vec::new();
    for value in values {
        let what = label("client", "[[client]]", &value);
        let Some(e) = l.entry::<RawClient>(&what, value, &[]) else {
            continue;
        };
        let name = l.required(&e, e.raw.name.as_ref(), &what, "name");
        let name = name.and_then(|n| entry_name(l, "client", Some(n), &mut seen));
        let account = l.required(&e, e.raw.account_id.as_ref(), &what, "account_id");
        let account_id = account.and_then(|a| {
            let v = a.get_ref();
            if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
                Some(v.clone())
            } else {
                l.problem(
                    &a.span(),
                    format!("{what}: account_id {v:?} is not a 12-digit AWS account id (write it as a string)"),
                );
                None
            }
        });
        let secrets = optional_text(l, &what, "secrets", e.raw.secrets.as_ref());
        let backup_encrypt_to = e
            .raw
            .backup_encrypt_to
            .as_ref()
            .map(|r| recipients_of(l, &what, r))
            .unwrap_or_default();
        if let (Some(name), Some(account_id)) = (name, account_id) {
            clients.push(Client {
                name,
                account_id,
                secrets,
                backup_encrypt_to,
                locations: l.locations(&e.span, &e.keys),
            });
        }
    }
    (clients, seen.into_keys().collect())
}

fn read_instances(
    l: &mut Loader<'_>,
    values: Vec<Spanned<DeValue<'_>>>,
    clients: &BTreeSet<String>,
) -> (Vec<Instance>, BTreeSet<String>) {
    let mut seen = BTreeMap::new();
    let mut endpoints: BTreeMap<(String, u16), String> = BTreeMap::new();
    let mut instances = Vec::new();
    for value in values {
        let what = label("instance", "[[instance]]", &value);
        let Some(e) = l.entry::<RawInstance>(&what, value, INSTANCE_NESTED) else {
            continue;
        };
        let r = &e.raw;
        let name = l.required(&e, r.name.as_ref(), &what, "name");
        let name = name.and_then(|n| entry_name(l, "instance", Some(n), &mut seen));
        let client = l.required(&e, r.client.as_ref(), &what, "client");
        let client = reference(l, &what, "client", client, "client", clients);
        let env = l.required(&e, r.environment.as_ref(), &what, "environment");
        let environment = environment(l, &what, env);
        let explicit_region = region(l, &what, r.region.as_ref());
        let major_value = l.required(&e, r.postgres_major.as_ref(), &what, "postgres_major");
        let postgres_major = major(l, &what, major_value);
        let endpoint = l.required(&e, r.endpoint.as_ref(), &what, "endpoint");
        let endpoint = endpoint.and_then(|ep| match check_host(ep.get_ref()) {
            Ok(()) => Some(ep.get_ref().clone()),
            Err(reason) => {
                l.problem(
                    &ep.span(),
                    format!("{what}: endpoint {:?} {reason}", ep.get_ref()),
                );
                None
            }
        });
        let endpoint_region = endpoint.as_deref().and_then(rds_endpoint_region);
        let port = match &r.port {
            None => Some(DEFAULT_PORT),
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    l.problem(
                        &p.span(),
                        format!(
                            "{what}: port {} is not a TCP port (1 to 65535)",
                            p.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let master = l.required(&e, r.master_user.as_ref(), &what, "master_user");
        let master_user = master.and_then(|m| match RoleName::new(m.get_ref().as_str()) {
            Ok(role) => Some(role),
            Err(err) => {
                l.problem(&m.span(), format!("{what}: master_user: {err}"));
                None
            }
        });
        let via = r.via.as_ref().and_then(|v| {
            match crate::tunnel::SshForward::new(v.get_ref().as_str()) {
                Ok(_) => Some(v.get_ref().clone()),
                Err(err) => {
                    l.problem(&v.span(), format!("{what}: via: {err}"));
                    None
                }
            }
        });
        let via_ok = via.is_some() || r.via.is_none();
        let sslmode = match &r.sslmode {
            None => Some(SslMode::VerifyFull),
            Some(m) => match m.get_ref().parse::<SslMode>() {
                Ok(mode) if mode != SslMode::Prefer => Some(mode),
                _ => {
                    l.problem(
                        &m.span(),
                        format!(
                            "{what}: sslmode {:?} is not one of \"verify-full\" (the default), \
                             \"verify-ca\", \"require\" or \"disable\"",
                            m.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let sslrootcert = match &r.sslrootcert {
            None => Some(None),
            Some(p) => path(l, &what, "sslrootcert", p).map(Some),
        };
        let mut master_password = Some(MasterPassword::Pgpass(None));
        for (key, value) in e.nested.iter().cloned() {
            if key.get_ref() == "master_password" {
                master_password =
                    read_master_password(l, &format!("{what}: master_password"), value);
            }
        }
        let region = explicit_region.clone().or_else(|| endpoint_region.clone());
        if region.is_none() && r.region.is_none() && endpoint.is_some() {
            l.problem(
                &e.span,
                format!(
                    "{what}: missing key `region` (the endpoint is not an RDS endpoint name, which \
                     would say it)"
                ),
            );
        }
        if let (Some(endpoint), Some(port), Some(name)) = (&endpoint, port, &name) {
            let key = (endpoint.to_ascii_lowercase(), port);
            if let Some(other) = endpoints.get(&key) {
                let span = e
                    .keys
                    .iter()
                    .find(|(k, _)| k == "endpoint")
                    .map(|(_, s)| s.clone())
                    .unwrap_or(e.span.clone());
                l.problem(
                    &span,
                    format!("{what}: instance {other:?} has the same endpoint and port"),
                );
            } else {
                endpoints.insert(key, name.clone());
            }
        }
        if let (
            Some(name),
            Some(client),
            Some(environment),
            Some(region),
            Some(postgres_major),
            Some(endpoint),
            Some(port),
            Some(master_user),
            Some(master_password),
            true,
            Some(sslmode),
            Some(sslrootcert),
        ) = (
            name,
            client,
            environment,
            region,
            postgres_major,
            endpoint,
            port,
            master_user,
            master_password,
            via_ok,
            sslmode,
            sslrootcert,
        ) {
            instances.push(Instance {
                name,
                client,
                environment,
                region,
                explicit_region,
                endpoint_region,
                postgres_major,
                endpoint,
                port,
                master_user,
                master_password,
                via,
                sslmode,
                sslrootcert,
                locations: l.locations(&e.span, &e.keys),
            });
        }
    }
    (instances, seen.into_keys().collect())
}

/// Checks a command's argv: a non-empty list whose program is not empty, without NUL.
fn argv(
    l: &mut Loader<'_>,
    what: &str,
    command: &Spanned<Vec<Spanned<String>>>,
) -> Option<Vec<OsString>> {
    let items = command.get_ref();
    if items.is_empty() || items[0].get_ref().is_empty() {
        l.problem(
            &command.span(),
            format!("{what}: `command` must be a program and its arguments, e.g. [\"vault\", \"kv\", \"put\", …]"),
        );
        return None;
    }
    let mut ok = true;
    for item in items {
        if item.get_ref().contains('\0') {
            l.problem(
                &item.span(),
                format!("{what}: a command argument contains NUL"),
            );
            ok = false;
        }
    }
    ok.then(|| items.iter().map(|s| OsString::from(s.get_ref())).collect())
}

fn path(l: &mut Loader<'_>, what: &str, key: &str, value: &Spanned<String>) -> Option<PathBuf> {
    if value.get_ref().is_empty() || value.get_ref().contains('\0') {
        l.problem(
            &value.span(),
            format!("{what}: `{key}` must be a file path"),
        );
        return None;
    }
    Some(PathBuf::from(value.get_ref()))
}

/// Exactly one of `keys` given: its name, or a problem.
fn one_of<'a>(
    l: &mut Loader<'_>,
    what: &str,
    span: &Span,
    given: &[(&'a str, bool)],
) -> Option<&'a str> {
    let present: Vec<&str> = given.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect();
    let all: Vec<String> = given.iter().map(|(k, _)| format!("`{k}`")).collect();
    match present.as_slice() {
        [one] => Some(one),
        [] => {
            l.problem(span, format!("{what}: give one of {}", all.join(", ")));
            None
        }
        many => {
            let many: Vec<String> = many.iter().map(|k| format!("`{k}`")).collect();
            l.problem(
                span,
                format!(
                    "{what}: give only one of {} (found {})",
                    all.join(", "),
                    many.join(" and ")
                ),
            );
            None
        }
    }
}

fn read_master_password(
    l: &mut Loader<'_>,
    what: &str,
    value: Spanned<DeValue<'_>>,
) -> Option<MasterPassword> {
    let e = l.entry::<RawMasterPassword>(what, value, &[])?;
    let r = &e.raw;
    let kind = one_of(
        l,
        what,
        &e.span,
        &[
            ("pgpass", r.pgpass.is_some() || e.bad.contains("pgpass")),
            ("env", r.env.is_some() || e.bad.contains("env")),
            ("command", r.command.is_some() || e.bad.contains("command")),
        ],
    )?;
    match kind {
        "pgpass" => {
            let p = r.pgpass.as_ref()?;
            path(l, what, "pgpass", p).map(|p| MasterPassword::Pgpass(Some(p)))
        }
        "env" => {
            let v = r.env.as_ref()?;
            if check_env_name(v.get_ref()) {
                Some(MasterPassword::Env(v.get_ref().clone()))
            } else {
                l.problem(
                    &v.span(),
                    format!(
                        "{what}: {:?} is not an environment variable name",
                        v.get_ref()
                    ),
                );
                None
            }
        }
        _ => {
            let c = r.command.as_ref()?;
            argv(l, what, c).map(MasterPassword::Command)
        }
    }
}

fn read_projects(
    l: &mut Loader<'_>,
    values: Vec<Spanned<DeValue<'_>>>,
    clients: &BTreeSet<String>,
    instance_names: &BTreeSet<String>,
) -> Vec<Project> {
    let mut seen = BTreeMap::new();
    let mut projects = Vec::new();
    for value in values {
        let what = label("project", "[[project]]", &value);
        let Some(e) = l.entry::<RawProject>(&what, value, PROJECT_NESTED) else {
            continue;
        };
        let r = &e.raw;
        let name = l.required(&e, r.name.as_ref(), &what, "name");
        let name = name.and_then(|n| entry_name(l, "project", Some(n), &mut seen));
        let client = l.required(&e, r.client.as_ref(), &what, "client");
        let client = reference(l, &what, "client", client, "client", clients);
        let env = l.required(&e, r.environment.as_ref(), &what, "environment");
        let environment = environment(l, &what, env);
        let reg = l.required(&e, r.region.as_ref(), &what, "region");
        let region = region(l, &what, reg);
        let inst = l.required(&e, r.instance.as_ref(), &what, "instance");
        let instance = reference(l, &what, "instance", inst, "instance", instance_names);
        let postgres_major = match &r.postgres_major {
            Some(m) => major(l, &what, Some(m)).map(Some),
            None => Some(None),
        };
        let secrets = optional_text(l, &what, "secrets", r.secrets.as_ref());

        let mut databases = Vec::new();
        let mut databases_ok = true;
        let mut credential_values = None;
        let mut role_values = None;
        let mut database_given = false;
        for (key, value) in e.nested.iter().cloned() {
            match key.get_ref().as_str() {
                "database" => {
                    database_given = true;
                    let span = value.span();
                    match value.into_inner() {
                        DeValue::Array(items) => {
                            for item in items {
                                match read_database(l, &what, item) {
                                    Some(db) => databases.push(db),
                                    None => databases_ok = false,
                                }
                            }
                        }
                        _ => {
                            l.problem(&span, format!("{what}: `database` must be an array of tables; write [[project.database]] for each"));
                            databases_ok = false;
                        }
                    }
                }
                "roles" => role_values = Some(value),
                _ => credential_values = Some(value),
            }
        }
        if !database_given {
            l.problem(
                &e.span,
                format!("{what}: no database; add a [[project.database]] with its name and owner"),
            );
            databases_ok = false;
        }
        let credentials = match credential_values {
            Some(value) => read_credentials(l, &what, value, databases_ok.then_some(&databases)),
            None => Some(Vec::new()),
        };
        let role_settings = match role_values {
            Some(value) => read_role_settings(l, &what, value, databases_ok.then_some(&databases)),
            None => Some(Vec::new()),
        };
        if let (
            Some(name),
            Some(client),
            Some(environment),
            Some(region),
            Some(instance),
            Some(postgres_major),
            Some(credentials),
            Some(role_settings),
            true,
        ) = (
            name,
            client,
            environment,
            region,
            instance,
            postgres_major,
            credentials,
            role_settings,
            databases_ok,
        ) {
            projects.push(Project {
                name,
                client,
                environment,
                region,
                instance,
                postgres_major,
                secrets,
                databases,
                credentials,
                role_settings,
                locations: l.locations(&e.span, &e.keys),
            });
        }
    }
    projects
}

/// A role name a project may create, or a problem.
fn role(l: &mut Loader<'_>, what: &str, key: &str, value: &Spanned<String>) -> Option<RoleName> {
    match RoleName::creatable(value.get_ref().as_str()) {
        Ok(role) => Some(role),
        Err(err) => {
            l.problem(&value.span(), format!("{what}: {key}: {err}"));
            None
        }
    }
}

fn read_database(
    l: &mut Loader<'_>,
    project: &str,
    value: Spanned<DeValue<'_>>,
) -> Option<ProjectDatabase> {
    let what = format!("{project}: [[project.database]]");
    let e = l.entry::<RawDatabase>(&what, value, &[])?;
    let r = &e.raw;
    let name = l.required(&e, r.name.as_ref(), &what, "name");
    let name = name.and_then(|n| match DatabaseName::creatable(n.get_ref().as_str()) {
        Ok(db) => Some(db),
        Err(err) => {
            l.problem(&n.span(), format!("{what}: name: {err}"));
            None
        }
    });
    let what = match &name {
        Some(n) => format!("{project}: database {:?}", n.as_str()),
        None => what,
    };
    let owner = l.required(&e, r.owner.as_ref(), &what, "owner");
    let owner = owner.and_then(|o| role(l, &what, "owner", o));
    let mut ok = true;
    let mut extensions = Vec::new();
    for ext in r.extensions.iter().flatten() {
        match Extension::from_name(ext.get_ref()) {
            Ok(x) if !extensions.contains(&x) => extensions.push(x),
            Ok(_) => {}
            Err(_) => {
                l.problem(
                    &ext.span(),
                    format!(
                        "{what}: extensions: {:?} is not an extension name (1 to 63 bytes, no NUL)",
                        ext.get_ref()
                    ),
                );
                ok = false;
            }
        }
    }
    let mut readers = Vec::new();
    let mut reader_locations = Vec::new();
    for reader in r.readers.iter().flatten() {
        match role(l, &what, "readers", reader) {
            Some(role) => {
                readers.push(role);
                reader_locations.push(l.location(reader.span().start));
            }
            None => ok = false,
        }
    }
    match (name, owner, ok) {
        (Some(name), Some(owner), true) => Some(ProjectDatabase {
            name,
            owner,
            extensions,
            readers,
            locations: l.locations(&e.span, &e.keys),
            reader_locations,
        }),
        _ => None,
    }
}

fn read_credentials(
    l: &mut Loader<'_>,
    project: &str,
    value: Spanned<DeValue<'_>>,
    databases: Option<&Vec<ProjectDatabase>>,
) -> Option<Vec<RoleCredentials>> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        l.problem(
            &span,
            format!(
                "{project}: `credentials` must be a table of role = {{ env_file = … }} entries"
            ),
        );
        return None;
    };
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let name = Spanned::new(key.span(), key.get_ref().to_string());
        let what = format!("{project}: credentials for {:?}", name.get_ref());
        let Some(role) = role(l, &format!("{project}: credentials"), "role", &name) else {
            ok = false;
            continue;
        };
        // Without the databases (they have problems of their own), the role cannot be checked.
        let known = databases.is_none_or(|dbs| {
            dbs.iter()
                .any(|d| d.owner == role || d.readers.contains(&role))
        });
        if !known {
            l.problem(
                &key.span(),
                format!(
                    "{what}: no database of the project is owned or read by {:?}",
                    role.as_str()
                ),
            );
            ok = false;
        }
        match read_sink(l, &what, value) {
            Some((sink, format, read_command)) if known => out.push(RoleCredentials {
                role,
                sink,
                format,
                read_command,
                location: l.location(key.span().start),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `[project.roles]`: role = { connection_limit = N, valid_until = "DATE", iam = BOOL }, for
/// roles of the project's databases.
fn read_role_settings(
    l: &mut Loader<'_>,
    project: &str,
    value: Spanned<DeValue<'_>>,
    databases: Option<&Vec<ProjectDatabase>>,
) -> Option<Vec<RoleSettings>> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        l.problem(
            &span,
            format!(
                "{project}: `roles` must be a table of role = {{ connection_limit = … }} entries"
            ),
        );
        return None;
    };
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let name = Spanned::new(key.span(), key.get_ref().to_string());
        let what = format!("{project}: roles: {:?}", name.get_ref());
        let Some(role) = role(l, &format!("{project}: roles"), "role", &name) else {
            ok = false;
            continue;
        };
        let known = databases.is_none_or(|dbs| {
            dbs.iter()
                .any(|d| d.owner == role || d.readers.contains(&role))
        });
        if !known {
            l.problem(
                &key.span(),
                format!("{what}: no database of the project is owned or read by it"),
            );
            ok = false;
        }
        let Some(e) = l.entry::<RawRoleSettings>(&what, value, &[]) else {
            ok = false;
            continue;
        };
        let mut connection_limit = None;
        if let Some(limit) = &e.raw.connection_limit {
            match i32::try_from(*limit.get_ref()) {
                Ok(n) if n >= 0 => connection_limit = Some(n),
                _ => {
                    l.problem(
                        &limit.span(),
                        format!(
                            "{what}: connection_limit = {} is out of range (0 to {})",
                            limit.get_ref(),
                            i32::MAX
                        ),
                    );
                    ok = false;
                }
            }
        }
        let mut valid_until = None;
        if let Some(ts) = &e.raw.valid_until {
            if looks_like_a_date(ts.get_ref()) {
                valid_until = Some(ts.get_ref().trim().to_owned());
            } else {
                l.problem(
                    &ts.span(),
                    format!(
                        "{what}: valid_until = {:?} is not a date (YYYY-MM-DD, optionally \
                         followed by a time and zone)",
                        ts.get_ref()
                    ),
                );
                ok = false;
            }
        }
        if known && e.bad.is_empty() {
            out.push(RoleSettings {
                role,
                connection_limit,
                valid_until,
                iam: e.raw.iam.as_ref().map(|b| *b.get_ref()),
                location: l.location(key.span().start),
            });
        } else {
            ok = false;
        }
    }
    ok.then_some(out)
}

/// `YYYY-MM-DD` with a plausible month and day, then nothing or a space or `T` and more (a time
/// and zone, which the server reads).
fn looks_like_a_date(s: &str) -> bool {
    let s = s.trim();
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 10
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (b.len() == 10 || matches!(b[10], b' ' | b'T'))
        && !s.contains('\0')
}

/// A credentials entry: its sink, the format a command receives, and the command that reads its
/// credentials back (`read_command`), if given.
type SinkEntry = (CredentialSink, CredentialFormat, Option<Vec<OsString>>);

fn read_sink(l: &mut Loader<'_>, what: &str, value: Spanned<DeValue<'_>>) -> Option<SinkEntry> {
    let e = l.entry::<RawSink>(what, value, &[])?;
    let r = &e.raw;
    let format = match &r.format {
        None => Some(CredentialFormat::RdsPg),
        Some(f) => match f.get_ref().parse::<CredentialFormat>() {
            Ok(format) => Some(format),
            Err(_) => {
                l.problem(
                    &f.span(),
                    format!(
                        "{what}: format {:?} is neither \"rds-pg\" (the default) nor \
                         \"secretsmanager\"",
                        f.get_ref()
                    ),
                );
                None
            }
        },
    };
    let read_command = match &r.read_command {
        Some(command) => argv(l, &format!("{what}: read_command"), command).map(Some),
        None => Some(None),
    };
    let kind = one_of(
        l,
        what,
        &e.span,
        &[
            (
                "env_file",
                r.env_file.is_some() || e.bad.contains("env_file"),
            ),
            ("pgpass", r.pgpass.is_some() || e.bad.contains("pgpass")),
            ("command", r.command.is_some() || e.bad.contains("command")),
        ],
    )?;
    let sink = match kind {
        "env_file" => path(l, what, "env_file", r.env_file.as_ref()?).map(CredentialSink::EnvFile),
        "pgpass" => path(l, what, "pgpass", r.pgpass.as_ref()?).map(CredentialSink::Pgpass),
        _ => argv(l, what, r.command.as_ref()?).map(CredentialSink::Command),
    };
    let (sink, format, read_command) = (sink?, format?, read_command?);
    if format.check_sink(&sink).is_err() {
        let span = r
            .format
            .as_ref()
            .map(|f| f.span())
            .unwrap_or(e.span.clone());
        l.problem(
            &span,
            format!(
                "{what}: format {format} is what a `command` receives on its standard input; \
                 `{kind}` writes a format of its own"
            ),
        );
        return None;
    }
    Some((sink, format, read_command))
}
