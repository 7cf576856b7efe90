//! Secrets (issue 13): `Debug` and `Display` of every public type that holds a password —
//! `Password`, `NewPassword`, `ScramVerifier`, `UserSpec`, `ConnectOptions`, `Credentials`,
//! `PgPassEntry`, `Plan`, `Step`, `Report`, `Provisioner`, `Sandbox` — and every error rds-pg
//! returns on the way of a password (a refused login, a malformed connection string or URL, a
//! bad environment, a refused password, a sink that fails and echoes what it got, a sink that
//! cannot be written) hold no cleartext password and no SCRAM verifier. The fault and
//! concurrency suites check the server log, reports and errors of their runs as well; the CLI's
//! `reliability` suite checks child processes.

use rds_pg_core::{
    connect, ConnectOptions, CredentialDelivery, CredentialSink, Credentials, DatabaseSpec, Error,
    NewPassword, Password, Provisioner, ReadOnlyGrant, RoleName, UserSpec,
};
use rds_pg_tests::reliability::assert_no_secret;
use rds_pg_tests::{ok, per_version, provisioner};

/// A password with the characters quoting code gets wrong, long enough to be found anywhere.
const SECRET: &str = "Sekr3t-'quo\"ted'-\\back-$$dollar$$-ü🔑";

fn secret() -> Password {
    Password::new(SECRET)
}

#[track_caller]
fn clean<T: std::fmt::Debug>(value: &T, what: &str, passwords: &[&Password]) {
    assert_no_secret(&format!("{value:?}\n{value:#?}"), passwords, true, what);
}

#[track_caller]
fn clean_error(e: &Error, what: &str, passwords: &[&Password]) {
    let mut text = format!("{e}\n{e:?}\n{:?}", e.hint());
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!("\n{s}\n{s:?}"));
        source = s.source();
    }
    eprintln!("{what}: {e}");
    assert_no_secret(&text, passwords, true, what);
}

per_version!(
    fn no_type_or_error_shows_a_password(sandbox) {
        let pw = secret();
        let all = [&pw, sandbox.master_password()];

        // Plain values.
        assert_eq!(format!("{pw}"), "[redacted]");
        clean(&pw, "Password", &all);
        let verifier = pw.scram_verifier();
        assert_eq!(format!("{verifier}"), "[redacted]");
        clean(&verifier, "ScramVerifier", &all);
        let given = NewPassword::given(pw.clone());
        given.verifier(); // computed, so the value holds it
        clean(&given, "NewPassword (given)", &all);
        let generated = NewPassword::generate().unwrap();
        generated.verifier();
        clean(&generated, "NewPassword (generated)", &[generated.password()]);
        let spec = UserSpec::new("shop").unwrap().password(pw.clone());
        clean(&spec, "UserSpec", &all);
        let options = sandbox.master_options().password(pw.clone());
        clean(&options, "ConnectOptions", &all);
        assert!(!options.target().contains(SECRET));
        let creds = Credentials::from_options(&options, "shop", "shop", pw.clone()).unwrap();
        clean(&creds, "Credentials", &all);
        let line = rds_pg_core::pgpass::format_line("h", 5432, "*", "shop", &pw).unwrap();
        clean(&line, "a pgpass line (a Password)", &all);
        let entries = rds_pg_core::pgpass::parse(line.expose());
        assert_eq!(entries.len(), 1);
        clean(&entries, "PgPassEntry", &all);
        clean(
            &CredentialDelivery::new(CredentialSink::command(["vault", "write"])),
            "CredentialDelivery",
            &all,
        );
        clean(sandbox, "Sandbox", &all);

        // Plans, steps and reports with a given and a generated password.
        let mut p = provisioner(sandbox);
        clean(&p, "Provisioner", &all);
        let plan = ok(p.plan_ensure_user(&spec), "plan_ensure_user");
        let shown = format!("{plan}\n{plan:?}\n{}", plan.sql().join("\n"));
        assert_no_secret(&shown, &all, true, "Plan");
        for step in &plan.steps {
            assert_no_secret(&format!("{step}\n{step:?}\n{}", step.sql()), &all, true, "Step");
        }
        let report = ok(p.ensure_user(&spec), "ensure_user");
        assert_no_secret(&format!("{report}\n{report:?}"), &all, true, "Report");
        let report = ok(p.ensure_user(&UserSpec::new("shop_gen").unwrap()), "ensure_user");
        let gen = report.generated_password.clone().expect("generated");
        assert_no_secret(&format!("{report}\n{report:?}"), &[&gen], true, "Report (generated)");
        let report = ok(p.rotate_password(&RoleName::new("shop").unwrap(), Some(pw.clone())), "rotate");
        assert_no_secret(&format!("{report}\n{report:?}"), &all, true, "Report (rotation)");
        let plan = ok(p.plan_rotate_password(&RoleName::new("shop").unwrap(), None), "plan rotation");
        assert_no_secret(&format!("{plan}\n{plan:?}"), &all, true, "Plan (rotation)");
        ok(p.ensure_database(&DatabaseSpec::new("shop", "shop").unwrap()), "ensure_database");
        let report = ok(p.grant_read_only(&ReadOnlyGrant::new("shop", "shop_gen").unwrap()), "grant");
        assert_no_secret(&format!("{report}\n{report:?}"), &all, true, "Report (grant)");

        // Errors on the way of a password.
        let Err(e) = connect(&sandbox.options_for("shop").password(Password::new(format!("{SECRET}-wrong")))) else {
            panic!("a wrong password logged in");
        };
        clean_error(&e, "a refused login", &[&Password::new(format!("{SECRET}-wrong"))]);
        let e = Provisioner::connect(&sandbox.master_options().password(pw.clone()))
            .expect_err("master with a wrong password");
        clean_error(&e, "a refused master login", &all);

        let encoded: String = percent_encode(SECRET);
        for bad in [
            format!("host=h port=notaport password='{}'", SECRET.replace('\\', "\\\\").replace('\'', "\\'")),
            format!("host=h password='{}' bogus_keyword=1", SECRET.replace('\\', "\\\\").replace('\'', "\\'")),
            format!("host=h password='{}", SECRET.replace('\\', "\\\\").replace('\'', "\\'")),
            format!("postgresql://shop:{encoded}@h:notaport/db"),
            format!("postgresql://shop:{encoded}@h/db?bogus=1"),
            format!("postgresql://shop:{encoded}@h/db?sslmode=sometimes"),
            format!("postgresql://shop:{encoded}@[::1/db"),
        ] {
            let e = bad.parse::<ConnectOptions>().expect_err(&bad);
            clean_error(&e, "a malformed connection string", &[&pw, &Password::new(encoded.clone())]);
        }
        let e = ConnectOptions::new()
            .with_env_from(|k| match k {
                "PGPASSWORD" => Some(SECRET.to_owned()),
                "PGPORT" => Some("notaport".to_owned()),
                "DATABASE_URL" => Some(format!("postgresql://shop:{encoded}@h:0/db")),
                _ => None,
            })
            .expect_err("a bad environment");
        clean_error(&e, "a bad environment", &[&pw, &Password::new(encoded.clone())]);

        // A password rds-pg refuses is not repeated in the refusal.
        let with_nul = Password::new(format!("{SECRET}\0tail"));
        let e = p
            .ensure_user(&UserSpec::new("shop_nul").unwrap().password(with_nul.clone()))
            .expect_err("a password with NUL");
        clean_error(&e, "a refused password", &[&with_nul, &pw]);

        // A sink that fails and prints what it received (a vault client echoing its input):
        // the error carries its stderr, with the password redacted.
        let dir = tempfile::tempdir().unwrap();
        let echo = CredentialDelivery::new(CredentialSink::command([
            "sh",
            "-c",
            "cat >&2; echo; echo \"argv: $0 $*\" >&2; exit 1",
        ]));
        let e = p
            .rotate_password_delivering(&RoleName::new("shop").unwrap(), Some(pw.clone()), &echo)
            .expect_err("an echoing sink");
        assert!(matches!(e, Error::NotDelivered { .. }), "{e:?}");
        clean_error(&e, "a sink that echoes the credentials", &all);
        assert!(e.to_string().contains("\"password\":\"[redacted]\""), "{e}");
        let e = p
            .ensure_user_delivering(&UserSpec::new("shop_echo").unwrap(), &echo)
            .expect_err("an echoing sink on creation");
        clean_error(&e, "a sink that echoes generated credentials", &[sandbox.master_password()]);
        assert!(e.to_string().contains("\"password\":\"[redacted]\""), "{e}");
        // A file sink that cannot be written.
        let occupied = dir.path().join("occupied");
        std::fs::create_dir(&occupied).unwrap();
        let e = p
            .rotate_password_delivering(
                &RoleName::new("shop").unwrap(),
                Some(Password::new(format!("{SECRET}-2"))),
                &CredentialDelivery::new(CredentialSink::Pgpass(occupied)),
            )
            .expect_err("a password file that is a directory");
        clean_error(&e, "an unwritable sink", &[&Password::new(format!("{SECRET}-2"))]);
        // Credentials that an output cannot hold.
        let mut broken = creds.clone();
        broken.host = "h\nPGPASSWORD=x".into();
        let e = broken.env_file().expect_err("a host with a line break");
        clean_error(&e, "credentials an env file cannot hold", &all);
        let e = broken.deliver(&CredentialSink::command(["true"])).expect_err("invalid credentials");
        clean_error(&e, "invalid credentials", &all);

        // The server log of all this: no cleartext password.
        let log = sandbox.log_text().unwrap();
        assert_no_secret(&log, &[&pw, &gen, sandbox.master_password()], false, "the server log");
    }
);

/// Percent-encodes every byte that is not unreserved (RFC 3986), as a URL's userinfo needs.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
