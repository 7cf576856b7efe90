//! The `rds-pg` command. Argument parsing and printing only: every behaviour lives in
//! `rds-pg-core`.

// The argument structs' doc comments are the command's --help text, not rustdoc: they name TOML
// tables (`[policy]`) and placeholders (`<client>`) as a user types them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod archive;
mod audit;
mod backup;
mod cli;
mod fleet;
mod output;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::Parser;
use rds_pg_core::sandbox::{DetachedSandbox, Sandbox, SandboxOptions};
use rds_pg_core::{
    ConnectOptions, DatabaseSpec, DropDatabaseOptions, DropUserOptions, Error, Password,
    Provisioner, ReadOnlyGrant, Result, UserSpec,
};
use serde_json::json;

use crate::cli::{
    ChangeArgs, Cli, Command, ConnectionArgs, CredentialsArgs, DatabaseCommand, ExtensionCommand,
    GrantCommand, InstanceCommand, SandboxCommand, UserCommand,
};
use crate::output::{print_error, print_json, Outcome, Printer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(config) = &cli.connection.ssh_config {
        // Before any thread: the forwards of an inventory's `via` read it too.
        std::env::set_var(rds_pg_core::tunnel::SSH_CONFIG_ENV, config);
    }
    let status = run(cli);
    // The forward of --ssh, if one was opened, ends with the command.
    drop(TUNNEL.lock().unwrap_or_else(|e| e.into_inner()).take());
    ExitCode::from(status)
}

/// The forward `--ssh` opened: one per run, closed when the command ends (and by ssh itself if
/// this process dies first).
static TUNNEL: std::sync::Mutex<Option<rds_pg_core::tunnel::SshTunnel>> =
    std::sync::Mutex::new(None);

fn run(cli: Cli) -> u8 {
    let conn = &cli.connection;
    if conn.ssh.is_some() && matches!(cli.command, Command::Fleet(_) | Command::Backup(_)) {
        eprintln!(
            "rds-pg: --ssh opens one forward for a command that connects to one server; fleet \
             and backup commands reach each instance through the SSH destination of its `via` \
             in the inventory (--ssh-config applies to those)"
        );
        return 2;
    }
    match cli.command {
        Command::User(cmd) => user(conn, cmd),
        Command::Database(cmd) => database(conn, cmd),
        Command::Extension(ExtensionCommand::Enable {
            database,
            extensions,
            change,
        }) => {
            let names: Vec<&str> = extensions.iter().map(|e| e.name()).collect();
            let title = format!("ext enable {:?} {}", database.as_str(), names.join(" "));
            changing(conn, change, title, |p, o| {
                if change.dry_run {
                    Ok(o.with_plan(p.plan_ensure_extensions(&database, &extensions)?))
                } else {
                    Ok(o.with_report(p.ensure_extensions(&database, &extensions)?))
                }
            })
        }
        Command::Grant(cmd) => grant(conn, cmd),
        Command::Instance(InstanceCommand::Secure { change }) => {
            changing(conn, change, "instance secure".to_owned(), |p, o| {
                if change.dry_run {
                    Ok(o.with_plan(p.plan_secure_instance()?))
                } else {
                    Ok(o.with_report(p.secure_instance()?))
                }
            })
        }
        Command::Dump(args) => {
            let printer = Printer { json: args.json };
            let database = args.database.as_str().to_owned();
            match connect_options(conn) {
                Ok(options) => archive::print(printer, &database, archive::dump(options, args)),
                Err(e) => {
                    printer.failure(&Outcome::new(format!("dump {database:?}")), &e, &database)
                }
            }
        }
        Command::Restore(args) => {
            let printer = Printer {
                json: args.change.json,
            };
            let database = args.database.as_str().to_owned();
            match connect_options(conn) {
                Ok(options) => archive::print(printer, &database, archive::restore(options, args)),
                Err(e) => printer.failure(
                    &Outcome::new(format!("restore {database:?}")),
                    &e,
                    &database,
                ),
            }
        }
        Command::Sandbox(cmd) => sandbox(cmd),
        Command::Fleet(cmd) => fleet::run(cmd),
        Command::Audit(args) => match connect_options(conn) {
            Ok(options) => audit::run(&options, &args),
            Err(e) => audit::failed(&e, args.json),
        },
        Command::Backup(cmd) => backup::run(conn, cmd),
    }
}

/// The master connection options: the libpq environment and pgpass, then the command line.
fn connect_options(args: &ConnectionArgs) -> Result<ConnectOptions> {
    if args.password_command.is_none()
        && std::env::var_os("PGPASSWORD").is_some_and(|v| !v.is_empty())
    {
        eprintln!(
            "warning: PGPASSWORD is set; other users may be able to read a process's environment. \
             Prefer a password file: ~/.pgpass or PGPASSFILE, mode 0600, one \
             host:port:database:user:password line"
        );
    }
    let mut options = ConnectOptions::from_env()?;
    if let Some(host) = &args.host {
        options = options.host(host);
    }
    if let Some(addr) = &args.hostaddr {
        options.set("hostaddr", addr.clone())?;
    }
    if let Some(port) = args.port {
        options = options.port(port);
    }
    if let Some(user) = &args.username {
        options = options.user(user);
    }
    if let Some(dbname) = &args.dbname {
        options = options.dbname(dbname);
    }
    if let Some(mode) = args.sslmode {
        options = options.sslmode(mode);
    }
    if let Some(ca) = &args.sslrootcert {
        options = options.sslrootcert(ca);
    }
    if let Some(command) = &args.password_command {
        options = options.password_command(password_command_words(command)?);
    }
    if let Some(destination) = &args.ssh {
        let mut forward = rds_pg_core::tunnel::SshForward::new(destination)?;
        if let Some(config) = &args.ssh_config {
            forward = forward.config_file(config);
        }
        let mut tunnel = TUNNEL.lock().unwrap_or_else(|e| e.into_inner());
        if tunnel.is_none() {
            *tunnel = Some(forward.open(&options)?);
        }
        options = tunnel.as_ref().expect("opened").apply(options);
    }
    if let Some(w) = options.pgpass_warning() {
        eprintln!("WARNING: {w}");
    }
    Ok(options)
}

/// The words of `--password-command`, split as a shell would (quotes and backslashes), without
/// running a shell.
fn password_command_words(command: &str) -> Result<Vec<String>> {
    match shlex::split(command) {
        Some(words) if !words.is_empty() => Ok(words),
        Some(_) => Err(rds_pg_core::Error::InvalidInput(
            "--password-command is empty: give a program and its arguments".into(),
        )),
        None => Err(rds_pg_core::Error::InvalidInput(
            "--password-command has an unterminated quote or a trailing backslash".into(),
        )),
    }
}

/// Runs a changing command: connect as master, run `op` (which plans when `--dry-run`), print.
fn changing(
    conn: &ConnectionArgs,
    change: ChangeArgs,
    title: String,
    op: impl FnOnce(&mut Provisioner, Outcome) -> Result<Outcome>,
) -> u8 {
    let printer = Printer { json: change.json };
    let outcome = || {
        let mut o = Outcome::new(title.clone());
        o.dry_run = change.dry_run;
        o
    };
    let options = match connect_options(conn) {
        Ok(o) => o,
        Err(e) => return printer.failure(&outcome(), &e, "postgres"),
    };
    let maintenance = options.get_dbname().to_owned();
    let result = Provisioner::connect(&options).and_then(|mut p| op(&mut p, outcome()));
    match result {
        Ok(done) => {
            printer.success(&done, &maintenance);
            0
        }
        Err(e) => printer.failure(&outcome(), &e, &maintenance),
    }
}

/// Reads a password from standard input, which must not be a terminal (it would echo).
fn password_from_stdin() -> Result<Password> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::InvalidInput(
            "--password-stdin reads the password from a pipe, and standard input is a terminal \
             (e.g. `lpass show --password NAME | rds-pg user create NAME --password-stdin`)"
                .into(),
        ));
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| Error::io("reading the password from standard input", e))?;
    let password = Password::new(text);
    let trimmed = password
        .expose()
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(password.expose());
    if trimmed.is_empty() {
        return Err(Error::InvalidInput("no password on standard input".into()));
    }
    if trimmed.contains(['\n', '\r']) {
        return Err(Error::InvalidInput(
            "the password on standard input must be one line".into(),
        ));
    }
    Ok(Password::new(trimmed))
}

fn user(conn: &ConnectionArgs, cmd: UserCommand) -> u8 {
    match cmd {
        UserCommand::Create {
            name,
            password_stdin,
            connection_limit,
            valid_until,
            iam,
            no_iam,
            credentials,
            change,
        } => {
            let title = format!("user create {:?}", name.as_str());
            changing(conn, change, title, |p, o| {
                let mut spec = UserSpec::new(name.as_str())?;
                if password_stdin {
                    spec = spec.password(password_from_stdin()?);
                }
                if let Some(limit) = connection_limit {
                    spec = spec.connection_limit(limit);
                }
                if let Some(ts) = valid_until {
                    spec = spec.valid_until(ts);
                }
                if iam || no_iam {
                    spec = spec.iam(iam);
                }
                let delivery = credentials.delivery();
                if let Some(d) = &delivery {
                    d.check()?;
                }
                if change.dry_run {
                    return Ok(with_sink_note(
                        o.with_plan(p.plan_ensure_user(&spec)?),
                        &credentials,
                    ));
                }
                Ok(match &delivery {
                    Some(d) => delivered(o.with_report(p.ensure_user_delivering(&spec, d)?)),
                    None => o.with_report(p.ensure_user(&spec)?),
                })
            })
        }
        UserCommand::Drop {
            name,
            reassign_to,
            change,
        } => {
            let title = format!("user drop {:?}", name.as_str());
            changing(conn, change, title, |p, o| {
                let mut options = DropUserOptions::new();
                if let Some(heir) = reassign_to {
                    options = options.reassign_to(heir.as_str())?;
                }
                if change.dry_run {
                    Ok(o.with_plan(p.plan_drop_user(&name, &options)?))
                } else {
                    Ok(o.with_report(p.drop_user(&name, &options)?))
                }
            })
        }
        UserCommand::Password {
            name,
            password_stdin,
            credentials,
            change,
        } => {
            let title = format!("user password {:?}", name.as_str());
            changing(conn, change, title, |p, o| {
                let password = if password_stdin {
                    Some(password_from_stdin()?)
                } else {
                    None
                };
                let delivery = credentials.delivery();
                if let Some(d) = &delivery {
                    d.check()?;
                }
                if change.dry_run {
                    return Ok(with_sink_note(
                        o.with_plan(p.plan_rotate_password(&name, password)?),
                        &credentials,
                    ));
                }
                Ok(match &delivery {
                    Some(d) => {
                        delivered(o.with_report(p.rotate_password_delivering(&name, password, d)?))
                    }
                    None => o.with_report(p.rotate_password(&name, password)?),
                })
            })
        }
    }
}

/// An outcome whose credentials went to a sink: the password is not printed, the sink is named.
fn delivered(mut outcome: Outcome) -> Outcome {
    outcome.credentials = outcome.delivered_to.take();
    outcome.password = None;
    outcome
}

/// Says, in a dry run, where the credentials would go.
fn with_sink_note(mut outcome: Outcome, args: &CredentialsArgs) -> Outcome {
    if let (Some(sink), false) = (args.sink(), outcome.steps.is_empty()) {
        outcome
            .notes
            .push(format!("the new password would be written to the {sink}"));
    }
    outcome
}

fn database(conn: &ConnectionArgs, cmd: DatabaseCommand) -> u8 {
    match cmd {
        DatabaseCommand::Create {
            name,
            owner,
            extensions,
            encoding,
            locale,
            template,
            strict,
            take_over,
            change,
        } => {
            let title = format!("db create {:?}", name.as_str());
            changing(conn, change, title, |p, o| {
                let mut spec = DatabaseSpec::new(name.as_str(), owner.as_str())?
                    .extensions(extensions)
                    .strict(strict)
                    .take_over(take_over);
                if let Some(t) = &template {
                    spec = spec.template(t.as_str())?;
                }
                if let Some(e) = encoding {
                    spec = spec.encoding(e);
                }
                if let Some(l) = locale {
                    spec = spec.locale(l);
                }
                if change.dry_run {
                    Ok(o.with_plan(p.plan_ensure_database(&spec)?))
                } else {
                    Ok(o.with_report(p.ensure_database(&spec)?))
                }
            })
        }
        DatabaseCommand::Drop {
            name,
            force,
            change,
        } => {
            let title = format!("db drop {:?}", name.as_str());
            changing(conn, change, title, |p, o| {
                let options = DropDatabaseOptions::new().force(force);
                if change.dry_run {
                    Ok(o.with_plan(p.plan_drop_database(&name, &options)?))
                } else {
                    Ok(o.with_report(p.drop_database(&name, &options)?))
                }
            })
        }
    }
}

fn grant(conn: &ConnectionArgs, cmd: GrantCommand) -> u8 {
    let (database, role, schemas, future, revoke, change) = match cmd {
        GrantCommand::Readonly {
            database,
            role,
            schemas,
            no_future,
            change,
        } => (database, role, schemas, !no_future, false, change),
        GrantCommand::RevokeReadonly {
            database,
            role,
            schemas,
            change,
        } => (database, role, schemas, true, true, change),
    };
    let verb = if revoke {
        "grant revoke-readonly"
    } else {
        "grant readonly"
    };
    let title = format!("{verb} {:?} {:?}", database.as_str(), role.as_str());
    changing(conn, change, title, |p, o| {
        let mut grant = ReadOnlyGrant::new(database.as_str(), role.as_str())?.future(future);
        if !schemas.is_empty() {
            grant = grant.schemas(schemas.iter().map(|s| s.as_str()))?;
        }
        match (revoke, change.dry_run) {
            (false, true) => Ok(o.with_plan(p.plan_grant_read_only(&grant)?)),
            (false, false) => Ok(o.with_report(p.grant_read_only(&grant)?)),
            (true, true) => Ok(o.with_plan(p.plan_revoke_read_only(&grant)?)),
            (true, false) => Ok(o.with_report(p.revoke_read_only(&grant)?)),
        }
    })
}

/// Quotes a value for a POSIX shell's `export NAME=value`.
fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:,@+".contains(&b))
    {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The environment variable that names the sandbox directory for `stop` and `status`.
const SANDBOX_DIR_ENV: &str = "RDS_PG_SANDBOX_DIR";

fn sandbox(cmd: SandboxCommand) -> u8 {
    let (title, result) = match cmd {
        SandboxCommand::Start {
            pg_version,
            dir,
            listen_on,
            admit,
            json,
        } => (
            "sandbox start",
            sandbox_start(pg_version, dir, listen_on.zip(admit), json),
        ),
        SandboxCommand::Stop { dir } => (
            "sandbox stop",
            DetachedSandbox::open(&dir).and_then(|sandbox| {
                let shown = sandbox.dir().display().to_string();
                sandbox.stop()?;
                eprintln!("sandbox stop: stopped the server and removed {shown}");
                Ok(0)
            }),
        ),
        SandboxCommand::Status { dir, json } => ("sandbox status", sandbox_status(&dir, json)),
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            print_error(title, &e);
            output::exit_status(&e)
        }
    }
}

fn sandbox_start(
    version: Option<u32>,
    dir: Option<std::path::PathBuf>,
    security_group: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
    json: bool,
) -> Result<u8> {
    let mut options = SandboxOptions::new();
    if let Some(v) = version {
        options = options.version(v);
    }
    if let Some(d) = dir {
        options = options.dir(d);
    }
    if let Some((listen, client)) = security_group {
        options = options.security_group(listen, client);
    }
    eprintln!("sandbox start: initialising an RDS-like PostgreSQL instance…");
    let sandbox = Sandbox::start(options)?;
    let startup = sandbox.startup_time();
    let sandbox = sandbox.detach()?;
    let dir = sandbox.dir().to_string_lossy().into_owned();
    let mut environment = sandbox.environment();
    environment.push((SANDBOX_DIR_ENV, dir.clone()));
    if json {
        let env: serde_json::Map<String, serde_json::Value> = environment
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        print_json(&json!({
            "dir": dir,
            "version": sandbox.version(),
            "major": sandbox.major_version(),
            "host": "127.0.0.1",
            "port": sandbox.port(),
            "master_user": sandbox.master_user(),
            "passfile": sandbox.passfile_path(),
            "postgis": sandbox.has_postgis(),
            "environment": env,
        }));
    } else {
        for (k, v) in &environment {
            println!("export {k}={}", shell_quote(v));
        }
    }
    eprintln!(
        "sandbox start: PostgreSQL {} on 127.0.0.1:{} (ready in {:.1?}), master {:?} (not a \
         superuser, as on RDS), password in {}; PostGIS {}",
        sandbox.version(),
        sandbox.port(),
        startup,
        sandbox.master_user(),
        sandbox.passfile_path().display(),
        if sandbox.has_postgis() {
            "available"
        } else {
            "not available on this version"
        },
    );
    if let Some((listen, client)) = security_group {
        eprintln!(
            "sandbox start: also listening on {listen}:{}; logins admitted only from {client} \
             (reach it through an SSH forward via that host, with --hostaddr {listen})",
            sandbox.port()
        );
    }
    if std::io::stdout().is_terminal() && !json {
        eprintln!(
            "sandbox start: to use it from this shell, run the export lines above \
             (next time: eval \"$(rds-pg sandbox start)\")"
        );
    }
    eprintln!(
        "sandbox start: it keeps running; stop it with: rds-pg sandbox stop --dir {}",
        shell_quote(&dir)
    );
    Ok(0)
}

fn sandbox_status(dir: &std::path::Path, json: bool) -> Result<u8> {
    let sandbox = DetachedSandbox::open(dir)?;
    let running = sandbox.is_running()?;
    if json {
        print_json(&json!({
            "dir": sandbox.dir(),
            "version": sandbox.version(),
            "major": sandbox.major_version(),
            "host": "127.0.0.1",
            "port": sandbox.port(),
            "master_user": sandbox.master_user(),
            "postgis": sandbox.has_postgis(),
            "running": running,
        }));
    } else {
        println!(
            "PostgreSQL {} sandbox in {}: {} on 127.0.0.1:{}, master {:?}",
            sandbox.version(),
            sandbox.dir().display(),
            if running { "running" } else { "not running" },
            sandbox.port(),
            sandbox.master_user(),
        );
    }
    Ok(if running { 0 } else { output::EXIT_FAILED })
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quoting_survives_eval() {
        assert_eq!(
            shell_quote("/tmp/rds-pg-sandbox-x1"),
            "/tmp/rds-pg-sandbox-x1"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
