//! Credentials hand-off (issue 4): the env file and the pgpass entry work as they are — `psql`
//! logs in with them, `sh`/`bash` read back every value exactly, the `DATABASE_URL` parses back to
//! the same credentials — for awkward passwords too; the command sink receives valid JSON, and a
//! failing command is an error that does not leak the password.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rds_pg_core::{
    connect, ConnectOptions, CredentialSink, Credentials, DatabaseSpec, Error, ErrorKind, Password,
    Provisioner, SslMode, UserSpec,
};
use rds_pg_tests::{err, ok, per_version, Sandbox};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A password with every character a URL, a pgpass line, sh quoting or JSON treats specially.
const AWKWARD_PASSWORD: &str = "p'a\"s$s`w\\o r:d@h/o#s%25t?x&y=z+* ü🔑 ${HOME} !";

/// A `psql` binary: Debian's client (any version 13–18 speaks to every server here), else one
/// on `PATH`.
fn psql() -> PathBuf {
    let debian = (13..=18)
        .rev()
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/psql")))
        .find(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("psql"))
                .find(|p| p.is_file())
        })
    };
    debian.or_else(on_path).unwrap_or_else(|| {
        panic!(
            "psql not found (looked in /usr/lib/postgresql/*/bin and PATH): run \
             `RDS_PG_TEST_VERSIONS=15 make setup`, which installs postgresql-client-15"
        )
    })
}

/// A program on `PATH`, or a panic saying how to install it.
fn require(program: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} not found on PATH: apt-get install {package}"))
}

/// Runs `shell -c script` with an empty environment except `PATH` and `HOME` (a directory with
/// no `.pgpass` or `.psqlrc`) and `env`, so only the files under test provide credentials.
fn run_clean(
    shell: &str,
    script: &str,
    args: &[&OsStr],
    home: &Path,
    env: &[(&str, &OsStr)],
) -> Output {
    let mut cmd = Command::new(shell);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .arg("-c")
        .arg(script)
        .arg(shell)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The values a POSIX shell (`sh` is dash on Debian) or bash gets from `set -a; . FILE`.
fn read_env_file_with(shell: &str, file: &Path, home: &Path) -> BTreeMap<String, String> {
    let names = [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGPASSWORD",
        "PGSSLMODE",
        "PGSSLROOTCERT",
    ];
    let script = format!(
        "set -a; . \"$1\" || exit 1; set +a; for n in {}; do eval \"printf '%s=%s\\0' $n \\\"\\${{$n-<unset>}}\\\"\"; done",
        names.join(" ")
    );
    let out = run_clean(shell, &script, &[file.as_os_str()], home, &[]);
    assert!(
        out.status.success(),
        "{shell} cannot source the env file: {}",
        text(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "{shell}: {}", text(&out.stderr));
    out.stdout
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let pair = String::from_utf8(pair.to_vec()).expect("UTF-8 from the shell");
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// What the env file must hold for `creds`.
fn expected_env(creds: &Credentials) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: &str| m.insert(k.to_owned(), v.to_owned());
    put("DATABASE_URL", creds.database_url().unwrap().expose());
    put("PGHOST", &creds.host);
    put("PGPORT", &creds.port.to_string());
    put("PGDATABASE", creds.database.as_str());
    put("PGUSER", creds.user.as_str());
    put("PGPASSWORD", creds.password.expose());
    put("PGSSLMODE", creds.sslmode.as_str());
    put(
        "PGSSLROOTCERT",
        creds
            .sslrootcert
            .as_deref()
            .map_or("<unset>", |p| p.to_str().unwrap()),
    );
    m
}

/// A project user with `password` (or a generated one) and the credentials for it on `database`.
fn project_user(
    sandbox: &Sandbox,
    rds: &mut Provisioner,
    user: &str,
    database: &str,
    password: Option<&str>,
) -> Credentials {
    let mut spec = ok(UserSpec::new(user), "UserSpec::new");
    if let Some(p) = password {
        spec = spec.password(Password::new(p));
    }
    let report = ok(rds.ensure_user(&spec), "ensure_user");
    let password = match password {
        Some(p) => Password::new(p),
        None => report
            .generated_password
            .expect("a generated password for a new role"),
    };
    ok(
        Credentials::from_options(&sandbox.master_options(), user, database, password),
        "Credentials::from_options",
    )
}

/// psql's output for `select current_user, current_database()` run by `script` (which ends by
/// running psql "$@"), or a panic with psql's error.
fn psql_whoami(
    script: &str,
    env_file: &Path,
    home: &Path,
    env: &[(&str, &OsStr)],
    how: &str,
) -> String {
    let psql = psql();
    let args = [
        env_file.as_os_str(),
        psql.as_os_str(),
        OsStr::new("-X"),
        OsStr::new("-w"),
        OsStr::new("-A"),
        OsStr::new("-t"),
        OsStr::new("-c"),
        OsStr::new("select current_user || '|' || current_database()"),
    ];
    let out = run_clean("/bin/sh", script, &args, home, env);
    assert!(
        out.status.success(),
        "psql with {how} failed: {}{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout).trim_end_matches('\n').to_owned()
}

/// Scripts that source the env file (`$1`), drop all but one way of giving the password, and run
/// psql (`$2 …`): the pgpass file (`PGPASSFILE`), the `DATABASE_URL` alone, the `PG*` variables.
const PSQL_WITH_PGPASS: &str = "set -a; . \"$1\"; set +a; unset PGPASSWORD DATABASE_URL; \
                                shift; exec \"$@\"";
const PSQL_WITH_URL: &str = "set -a; . \"$1\"; set +a; url=$DATABASE_URL; \
                             unset DATABASE_URL PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD \
                             PGSSLMODE PGSSLROOTCERT; shift; p=$1; shift; exec \"$p\" -d \"$url\" \"$@\"";
const PSQL_WITH_ENV: &str = "set -a; . \"$1\"; set +a; unset DATABASE_URL; shift; exec \"$@\"";

// ---------------------------------------------------------------------------------------------
// The env file and the pgpass entry work as they are
// ---------------------------------------------------------------------------------------------

per_version!(
    fn env_file_and_pgpass_entry_work_as_they_are(sandbox) {
        let mut rds = rds_pg_tests::provisioner(sandbox);
        let db = "app db:ü";
        let awkward = project_user(sandbox, &mut rds, "app user:1", db, Some(AWKWARD_PASSWORD));
        ok(
            rds.ensure_database(&ok(DatabaseSpec::new(db, "app user:1"), "DatabaseSpec::new")),
            "ensure_database",
        );
        // Double-quoted in the env file (it has ' and \ but no $ or `), and a backslash user.
        let quoted = project_user(sandbox, &mut rds, "o'neil\\x", "postgres", Some("it's a \\ \"pw\""));
        let generated = project_user(sandbox, &mut rds, "app", "postgres", None);

        // The credentials carry the server's TLS settings: verify-full against the sandbox CA
        // where the server requires TLS (15+), none before.
        match sandbox.ca_cert_path() {
            Some(ca) => {
                assert_eq!(awkward.sslmode, SslMode::VerifyFull);
                assert_eq!(awkward.sslrootcert.as_deref(), Some(ca));
            }
            None => {
                assert_eq!(awkward.sslmode, SslMode::Disable);
                assert_eq!(awkward.sslrootcert, None);
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let pgpass = dir.path().join("pgpass");
        // An existing file with other people's lines, a stale line for the awkward user, and too
        // open a mode: the stale line is replaced, the others kept, the mode fixed.
        let stale = ok(
            Credentials { password: Password::new("stale"), ..awkward.clone() }.pgpass_line(),
            "pgpass_line",
        );
        let before = format!(
            "# my servers\nother.example:5432:*:me:keep\\:me\n{}\n\n# end\n",
            stale.expose()
        );
        std::fs::write(&pgpass, &before).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
        }

        for (i, creds) in [&awkward, &quoted, &generated].into_iter().enumerate() {
            let who = format!("{}@{}", creds.user, creds.database);
            let env_file = dir.path().join(format!("app{i}.env"));
            ok(creds.deliver(&CredentialSink::EnvFile(env_file.clone())), "deliver env file");
            ok(creds.deliver(&CredentialSink::Pgpass(pgpass.clone())), "deliver pgpass");
            #[cfg(unix)]
            {
                assert_eq!(mode(&env_file), 0o600, "env file of {who}");
                assert_eq!(mode(&pgpass), 0o600, "pgpass file after {who}");
            }

            // sh (dash) and bash read back every value exactly.
            for shell in ["/bin/sh", "bash"] {
                assert_eq!(
                    read_env_file_with(shell, &env_file, &home),
                    expected_env(creds),
                    "{shell} reading the env file of {who}"
                );
            }

            let expected = format!("{}|{}", creds.user, creds.database);
            let nowhere = dir.path().join("no-such-pgpass");
            // psql finds the password in the pgpass file and nowhere else.
            let out = psql_whoami(
                PSQL_WITH_PGPASS,
                &env_file,
                &home,
                &[("PGPASSFILE", pgpass.as_os_str())],
                "PGPASSFILE",
            );
            assert_eq!(out, expected, "psql with PGPASSFILE as {who}");
            // psql with the DATABASE_URL alone.
            let out = psql_whoami(
                PSQL_WITH_URL,
                &env_file,
                &home,
                &[("PGPASSFILE", nowhere.as_os_str())],
                "DATABASE_URL",
            );
            assert_eq!(out, expected, "psql \"$DATABASE_URL\" as {who}");
            // psql with the PG* variables alone.
            let out = psql_whoami(
                PSQL_WITH_ENV,
                &env_file,
                &home,
                &[("PGPASSFILE", nowhere.as_os_str())],
                "PGPASSWORD",
            );
            assert_eq!(out, expected, "psql with the PG* variables as {who}");

            // Proof that the password came from those files: without them psql cannot log in.
            let psql = psql();
            let args: Vec<&OsStr> = [env_file.as_os_str(), psql.as_os_str()]
                .into_iter()
                .chain(["-X", "-w", "-c", "select 1"].map(OsStr::new))
                .collect();
            let out = run_clean(
                "/bin/sh",
                PSQL_WITH_PGPASS,
                &args,
                &home,
                &[("PGPASSFILE", nowhere.as_os_str())],
            );
            assert!(!out.status.success(), "psql logged in as {who} without a password");
            assert!(
                text(&out.stderr).contains("password"),
                "psql without a password as {who}: {}",
                text(&out.stderr)
            );

            // The DATABASE_URL, as the shell read it, parses back to the same credentials with
            // rds-pg's own parser, and rds-pg logs in with it.
            let url = read_env_file_with("/bin/sh", &env_file, &home)["DATABASE_URL"].clone();
            let parsed: ConnectOptions = ok(url.parse(), "parse DATABASE_URL");
            assert_eq!(parsed.get_host(), creds.host);
            assert_eq!(parsed.get_port(), creds.port);
            assert_eq!(parsed.get_user(), creds.user.as_str());
            assert_eq!(parsed.get_dbname(), creds.database.as_str());
            assert_eq!(parsed.get_password(), Some(&creds.password));
            assert_eq!(parsed.get_sslmode(), creds.sslmode);
            assert_eq!(parsed.get_sslrootcert(), creds.sslrootcert.as_deref());
            let mut client = ok(connect(&parsed), "connect with the DATABASE_URL");
            let row = client.query_one("SELECT current_user::text", &[]).unwrap();
            assert_eq!(row.get::<_, String>(0), creds.user.as_str());
        }

        // Every user has exactly one line; the other lines are kept byte for byte.
        let after = std::fs::read_to_string(&pgpass).unwrap();
        let lines: Vec<&str> = after.lines().collect();
        assert_eq!(
            lines,
            [
                "# my servers",
                "other.example:5432:*:me:keep\\:me",
                ok(awkward.pgpass_line(), "pgpass_line").expose(),
                "",
                "# end",
                ok(quoted.pgpass_line(), "pgpass_line").expose(),
                ok(generated.pgpass_line(), "pgpass_line").expose(),
            ],
            "{after}"
        );
        assert!(!after.contains("stale"));
        // Delivering again changes nothing: the entry is replaced, not duplicated.
        for creds in [&awkward, &quoted, &generated] {
            ok(creds.deliver(&CredentialSink::Pgpass(pgpass.clone())), "deliver pgpass again");
        }
        assert_eq!(std::fs::read_to_string(&pgpass).unwrap(), after);
        #[cfg(unix)]
        assert_eq!(mode(&pgpass), 0o600);
        // No temporary file is left in the directory.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["app0.env", "app1.env", "app2.env", "home", "pgpass"]);
    }
);

// ---------------------------------------------------------------------------------------------
// The command sink
// ---------------------------------------------------------------------------------------------

/// A Python program that reads JSON from `/dev/stdin` (as `aws … file:///dev/stdin` does) with
/// the strict standard parser and writes `key<TAB>type<TAB>hex of the UTF-8 value` lines to
/// `argv[1]`.
const JSON_READER: &str = r#"
import json, sys
with open("/dev/stdin", encoding="utf-8") as f:
    data = json.load(f)
with open(sys.argv[1], "w") as out:
    for key, value in data.items():
        kind = type(value).__name__
        shown = "" if value is None else str(value)
        out.write(key + "\t" + kind + "\t" + shown.encode("utf-8").hex() + "\n")
"#;

fn unhex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

per_version!(
    fn command_sink_receives_json_and_failures_are_errors(sandbox) {
        let python = require("python3", "python3");
        let mut rds = rds_pg_tests::provisioner(sandbox);
        // Control characters, quotes, backslashes and non-ASCII: every JSON escape.
        let password = format!("{AWKWARD_PASSWORD}\t\u{1}\u{1f}\"\\\u{7f}\u{2028}");
        let creds = project_user(sandbox, &mut rds, "vault_app", "postgres", Some(&password));

        let dir = tempfile::tempdir().unwrap();
        let received = dir.path().join("received.tsv");
        let sink = CredentialSink::command([
            python.as_os_str(),
            OsStr::new("-c"),
            OsStr::new(JSON_READER),
            received.as_os_str(),
        ]);
        ok(creds.deliver(&sink), "deliver to the JSON reader");

        let got: BTreeMap<String, (String, String)> = std::fs::read_to_string(&received)
            .unwrap()
            .lines()
            .map(|l| {
                let mut f = l.split('\t');
                let (k, t, v) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
                (k.to_owned(), (t.to_owned(), unhex(v)))
            })
            .collect();
        let s = |v: &str| ("str".to_owned(), v.to_owned());
        let url = ok(creds.database_url(), "database_url");
        let mut expected = BTreeMap::from([
            ("host".to_owned(), s(&creds.host)),
            ("port".to_owned(), ("int".to_owned(), creds.port.to_string())),
            ("database".to_owned(), s("postgres")),
            ("dbname".to_owned(), s("postgres")),
            ("user".to_owned(), s("vault_app")),
            ("username".to_owned(), s("vault_app")),
            ("password".to_owned(), s(&password)),
            ("sslmode".to_owned(), s(creds.sslmode.as_str())),
            ("database_url".to_owned(), s(url.expose())),
            ("engine".to_owned(), s("postgres")),
        ]);
        expected.insert(
            "sslrootcert".to_owned(),
            match &creds.sslrootcert {
                Some(p) => s(p.to_str().unwrap()),
                None => ("NoneType".to_owned(), String::new()),
            },
        );
        assert_eq!(got, expected);

        // The URL the command received logs in.
        let parsed: ConnectOptions = ok(got["database_url"].1.parse(), "parse database_url");
        let mut client = ok(connect(&parsed), "connect with the received database_url");
        let row = client.query_one("SELECT current_user::text", &[]).unwrap();
        assert_eq!(row.get::<_, String>(0), "vault_app");

        // A failing command is an error with its exit status and standard error.
        let failing = CredentialSink::command(["sh", "-c", "cat >/dev/null; echo oops >&2; exit 3"]);
        match err(creds.deliver(&failing), "a command exiting with 3") {
            Error::Tool { tool, status, stderr } => {
                assert_eq!(tool, "sh");
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "oops");
            }
            other => panic!("expected Error::Tool, got {other:?}"),
        }

        // A command that echoes its input (the JSON, with the password in three forms) to
        // stderr and fails: the error says what happened without the password.
        let echoing = CredentialSink::command(["sh", "-c", "cat >&2; exit 1"]);
        let e = err(creds.deliver(&echoing), "a command echoing its input");
        assert_eq!(e.kind(), ErrorKind::Tool);
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("vault_app"), "the rest of the output is kept: {shown}");
        for secret in [AWKWARD_PASSWORD, "s$s`w", "o%20r%3Ad", "w\\\\o r"] {
            assert!(!shown.contains(secret), "{secret:?} leaked: {shown}");
        }
        // Its standard output is shown when standard error is empty, redacted as well.
        let e = err(
            creds.deliver(&CredentialSink::command(["sh", "-c", "cat; exit 1"])),
            "a command echoing its input to stdout",
        );
        assert!(!e.to_string().contains(AWKWARD_PASSWORD), "{e}");
        assert!(e.to_string().contains("[redacted]"), "{e}");

        // A command that succeeds has its output captured, not passed through.
        ok(creds.deliver(&CredentialSink::command(["cat"])), "cat");
        // A command that ignores its input is its own business.
        ok(creds.deliver(&CredentialSink::command(["true"])), "true");

        // A missing program is a clear error.
        let e = err(
            creds.deliver(&CredentialSink::command(["rds-pg-no-such-secret-store", "put"])),
            "a missing program",
        );
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("rds-pg-no-such-secret-store"), "{e}");
        let e = err(creds.deliver(&CredentialSink::Command(Vec::new())), "an empty command");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
);

per_version!(
    /// A role master was left a member of (an operation that was killed): delivering credentials
    /// for it still works, the new password commits with its delivery, and the leftover
    /// membership is removed afterwards.
    fn delivering_to_a_role_with_a_leftover_membership(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let mut rds = rds_pg_tests::provisioner(sandbox);
        ok(rds.ensure_user(&UserSpec::new("leftie").unwrap()), "ensure_user");
        let grant = if sandbox.major_version() >= 16 {
            "GRANT leftie TO CURRENT_USER WITH INHERIT TRUE, SET TRUE"
        } else {
            "GRANT leftie TO CURRENT_USER"
        };
        sandbox.connect_master().unwrap().batch_execute(grant).unwrap();
        let leftover = || -> i64 {
            sandbox
                .connect_rdsadmin("postgres")
                .unwrap()
                .query_one(
                    "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                      JOIN pg_roles u ON u.oid = m.member
                     WHERE r.rolname = 'leftie' AND u.rolname = $1 AND NOT m.admin_option",
                    &[&sandbox.master_user()],
                )
                .unwrap()
                .get(0)
        };
        assert_eq!(leftover(), 1);
        let env = dir.path().join("leftie.env");
        let delivery = rds_pg_core::CredentialDelivery::new(CredentialSink::EnvFile(env.clone()))
            .database(rds_pg_core::DatabaseName::new("postgres").unwrap());
        // An existing role: nothing to deliver, the leftover is removed.
        let report = ok(
            rds.ensure_user_delivering(&UserSpec::new("leftie").unwrap(), &delivery),
            "ensure_user_delivering",
        );
        assert!(report.steps.iter().all(|s| s.removes_leftover()), "{report}");
        assert_eq!(leftover(), 0);
        assert!(!env.exists());
        sandbox.connect_master().unwrap().batch_execute(grant).unwrap();
        let report = ok(
            rds.rotate_password_delivering(&rds_pg_core::RoleName::new("leftie").unwrap(), None, &delivery),
            "rotate_password_delivering",
        );
        assert!(report.changed && report.credentials_delivered_to.is_some(), "{report}");
        assert!(report.steps.iter().any(|s| s.removes_leftover()), "{report}");
        assert_eq!(leftover(), 0);
        let text = std::fs::read_to_string(&env).unwrap();
        let password = text
            .lines()
            .find_map(|l| l.strip_prefix("PGPASSWORD='"))
            .and_then(|l| l.strip_suffix('\''))
            .unwrap();
        connect(&sandbox.options_for("leftie").password(Password::new(password)))
            .expect("the delivered password is the one set");
    }
);
