//! IAM database authentication (issue 15): an IAM user has no password and logs in only with a
//! token (here the sandbox's emulated one, through `password_command`), and master keeps logging
//! in with its password during and after every operation on such a user.

use std::sync::{Arc, Mutex};

use rds_pg_core::provision::fault::{Fault, FaultPoint};
use rds_pg_core::spec::Extension;
use rds_pg_core::{
    Change, ConnectOptions, DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions,
    Error, Password, Plan, Provisioner, ReadOnlyGrant, RoleName, StepKind, UserSpec,
};
use rds_pg_tests::{
    assert_password_refused, connect_error, err, login_as_application, ok, per_version,
    provisioner, Sandbox,
};

/// Whether `role` is directly a member of `rds_iam`, and whether it has no password (read as
/// the bootstrap superuser: only it may read `pg_authid`).
fn iam_state(sandbox: &Sandbox, role: &str) -> (bool, bool) {
    let mut admin = rds_pg_core::connect(&sandbox.rdsadmin_options()).unwrap();
    let row = admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                             WHERE m.member = a.oid AND g.rolname = 'rds_iam'),
                    a.rolpassword IS NULL
               FROM pg_authid a WHERE a.rolname = $1",
            &[&role],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Master opens a new connection with its password, and holds no membership (other than
/// `rds_superuser`) of a role that is a member of `rds_iam`: the condition under which RDS makes
/// it log in with IAM. The ADMIN-only membership PostgreSQL 16+ gives master of every role it
/// creates (no INHERIT, no SET) does not count: with it, an RDS master keeps its password login
/// after creating IAM users, as AWS documents. `None` when all is well, else what is wrong.
fn master_trouble(sandbox_master: &ConnectOptions) -> Option<String> {
    let mut c = match rds_pg_core::connect(sandbox_master) {
        Ok(c) => c,
        Err(e) => return Some(format!("master cannot log in: {e}")),
    };
    let row = c
        .query_one(
            "SELECT pg_catalog.array_agg(g.rolname::text)
               FROM pg_catalog.pg_auth_members m
               JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
              WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER)
                AND g.rolname <> 'rds_superuser' AND g.rolname <> 'rds_iam'
                AND (coalesce((pg_catalog.to_jsonb(m) ->> 'inherit_option')::bool, true)
                     OR coalesce((pg_catalog.to_jsonb(m) ->> 'set_option')::bool, true))
                AND pg_catalog.pg_has_role(g.oid, 'rds_iam', 'MEMBER')",
            &[],
        )
        .unwrap();
    let roles: Option<Vec<String>> = row.get(0);
    roles.map(|r| format!("master is a member of {r:?}, which are in rds_iam"))
}

/// Installs a hook that checks [`master_trouble`] at every boundary of the operation (and fails
/// the operation there when `fail_at` says so); returns the troubles seen and the boundaries.
fn watch(
    p: &mut Provisioner,
    sandbox: &Sandbox,
    fail_at: Option<usize>,
) -> Arc<Mutex<(Vec<String>, usize)>> {
    let seen = Arc::new(Mutex::new((Vec::new(), 0)));
    let log = seen.clone();
    let master = sandbox.master_options();
    p.set_fault_hook(Some(Box::new(move |point: &FaultPoint<'_>| {
        let mut log = log.lock().unwrap();
        let index = log.1;
        log.1 += 1;
        if let Some(t) = master_trouble(&master) {
            let sql: Vec<String> = point.steps.iter().map(|s| s.sql()).collect();
            log.0.push(format!("before {sql:?}: {t}"));
        }
        if fail_at == Some(index) {
            return Fault::Fail(Error::io(
                "fault injected",
                std::io::Error::other("injected failure"),
            ));
        }
        Fault::Continue
    })));
    seen
}

fn assert_master_fine(
    p: &mut Provisioner,
    sandbox: &Sandbox,
    seen: &Arc<Mutex<(Vec<String>, usize)>>,
    what: &str,
) {
    p.set_fault_hook(None);
    let (troubles, points) = seen.lock().unwrap().clone();
    assert!(points > 0, "{what}: the operation sent something");
    assert!(troubles.is_empty(), "{what}: {troubles:#?}");
    if let Some(t) = master_trouble(&sandbox.master_options()) {
        panic!("after {what}: {t}");
    }
}

/// The kinds of the plan's steps, in order.
fn kinds(plan: &Plan) -> Vec<StepKind> {
    plan.steps.iter().map(|s| s.kind()).collect()
}

/// Asserts that the plan suspends `role`'s rds_iam before master gains it and restores it after
/// master gave it up.
fn assert_suspended_around_membership(plan: &Plan, role: &str) {
    let k = kinds(plan);
    let pos = |kind: StepKind| k.iter().position(|x| *x == kind);
    let suspend = pos(StepKind::SuspendIam).unwrap_or_else(|| panic!("no suspension:\n{plan}"));
    let grant = pos(StepKind::TemporaryGrant).unwrap_or_else(|| panic!("no grant:\n{plan}"));
    let revoke = k
        .iter()
        .rposition(|x| *x == StepKind::TemporaryRevoke)
        .unwrap_or_else(|| panic!("no revoke:\n{plan}"));
    let restore = pos(StepKind::RestoreIam).unwrap_or_else(|| panic!("no restore:\n{plan}"));
    assert!(
        suspend < grant && grant < revoke && revoke < restore,
        "{plan}"
    );
    assert_eq!(
        plan.steps[suspend].sql(),
        format!("REVOKE rds_iam FROM \"{role}\"")
    );
    assert_eq!(
        plan.steps[restore].sql(),
        format!("GRANT rds_iam TO \"{role}\"")
    );
}

/// Options that log in as `role` with a password command printing `token` (from a private
/// file, as a token helper's output would be).
fn token_options(
    sandbox: &Sandbox,
    dir: &std::path::Path,
    role: &str,
    token: &Password,
) -> ConnectOptions {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join(format!("{role}.token"));
    std::fs::write(&file, token.expose()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    sandbox
        .options_for(role)
        .password_command(["cat".into(), file.into_os_string()])
}

per_version!(
    fn an_iam_user_logs_in_only_with_a_token_and_master_is_never_locked_out(sandbox) {
        let mut p = provisioner(sandbox);
        let dir = tempfile::tempdir().unwrap();
        let name = "iam_app";
        let report = ok(
            p.ensure_user(&UserSpec::new(name).unwrap().iam(true)),
            "ensure_user iam",
        );
        assert!(report.new_password.is_none() && report.generated_password.is_none());
        assert_eq!(iam_state(sandbox, name), (true, true), "member of rds_iam, no password");
        // Converged: nothing more to do.
        assert!(ok(p.plan_ensure_user(&UserSpec::new(name).unwrap().iam(true)), "plan").is_empty());

        // Any password is refused, even one the role really has.
        let known = Password::generate().unwrap();
        let mut admin = rds_pg_core::connect(&sandbox.rdsadmin_options()).unwrap();
        admin
            .batch_execute(&format!(
                "ALTER ROLE {name} PASSWORD {}",
                postgres_protocol::escape::escape_literal(known.scram_verifier().expose())
            ))
            .unwrap();
        let e = connect_error(&sandbox.options_for(name).password(known));
        assert!(e.to_string().contains("pg_hba.conf rejects connection"), "{e}");
        // The token, through a password command, logs it in.
        let token = ok(sandbox.iam_token(name), "iam_token");
        let opts = token_options(sandbox, dir.path(), name, &token);
        let mut c = ok(login_as_application(&opts), "token login");
        let who: String = c.query_one("SELECT current_user::text", &[]).unwrap().get(0);
        assert_eq!(who, name);
        drop(c);

        // A database owned by the IAM user, with an extension: the plan suspends rds_iam around
        // master's membership, and master logs in at every boundary.
        let spec = DatabaseSpec::new(name, name)
            .unwrap()
            .extension(Extension::Hstore);
        let plan = ok(p.plan_ensure_database(&spec), "plan_ensure_database");
        eprintln!("ensure_database plan on {}:\n{plan}", sandbox.major_version());
        assert_suspended_around_membership(&plan, name);
        let seen = watch(&mut p, sandbox, None);
        let report = ok(p.ensure_database(&spec), "ensure_database");
        assert_master_fine(&mut p, sandbox, &seen, "ensure_database");
        assert!(report
            .steps
            .iter()
            .any(|s| s.kind() == StepKind::RestoreIam));
        assert!(iam_state(sandbox, name).0, "rds_iam restored");
        let mut c = ok(
            login_as_application(&opts.clone().dbname(name)),
            "token login to its database",
        );
        c.batch_execute("CREATE TABLE t (h hstore); INSERT INTO t VALUES ('a=>1')")
            .unwrap();
        drop(c);

        // A failure half-way still restores rds_iam and ends master's membership.
        let failing = DatabaseSpec::new("iam_app_fail", name)
            .unwrap()
            .extension(Extension::Hstore);
        let seen = watch(&mut p, sandbox, Some(2));
        err(p.ensure_database(&failing), "ensure_database with a fault");
        assert_master_fine(&mut p, sandbox, &seen, "the failed ensure_database");
        assert!(iam_state(sandbox, name).0, "rds_iam restored after a failure");

        // A read-only user of its database.
        let reader_password = Password::generate().unwrap();
        ok(
            p.ensure_user(&UserSpec::new("iam_reader").unwrap().password(reader_password.clone())),
            "ensure_user reader",
        );
        let grant = ReadOnlyGrant::new(name, "iam_reader").unwrap();
        let seen = watch(&mut p, sandbox, None);
        ok(p.grant_read_only(&grant), "grant_read_only");
        assert_master_fine(&mut p, sandbox, &seen, "grant_read_only");
        assert!(iam_state(sandbox, name).0);
        let mut r = ok(
            login_as_application(&sandbox.options_for("iam_reader").password(reader_password).dbname(name)),
            "reader login",
        );
        let n: i64 = r.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
        assert_eq!(n, 1);
        drop(r);

        // Dropping its databases, then the user.
        for database in [name, "iam_app_fail"] {
            let seen = watch(&mut p, sandbox, None);
            let db = DatabaseName::new(database).unwrap();
            ok(
                p.drop_database(&db, &DropDatabaseOptions::new()),
                "drop_database",
            );
            assert_master_fine(&mut p, sandbox, &seen, "drop_database");
        }
        assert!(iam_state(sandbox, name).0);
        let seen = watch(&mut p, sandbox, None);
        ok(
            p.drop_user(&RoleName::new(name).unwrap(), &DropUserOptions::new()),
            "drop_user",
        );
        assert_master_fine(&mut p, sandbox, &seen, "drop_user");
    }
);

per_version!(
    /// A run killed between the suspension and the restore leaves the IAM user without
    /// rds_iam (master logs in); the next `ensure_user` of its IAM spec grants it again.
    fn a_killed_run_leaves_the_user_without_rds_iam_until_ensure_user(sandbox) {
        let mut p = provisioner(sandbox);
        let name = "iam_killed";
        let spec = UserSpec::new(name).unwrap().iam(true);
        ok(p.ensure_user(&spec), "ensure_user iam");
        let mut killed = provisioner(sandbox);
        let mut batches = 0;
        killed.set_fault_hook(Some(Box::new(move |_: &FaultPoint<'_>| {
            batches += 1;
            if batches == 2 {
                Fault::Abandon
            } else {
                Fault::Continue
            }
        })));
        err(
            killed.ensure_database(&DatabaseSpec::new(name, name).unwrap()),
            "killed ensure_database",
        );
        drop(killed);
        assert_eq!(iam_state(sandbox, name), (false, true), "suspended, not restored");
        assert!(master_trouble(&sandbox.master_options()).is_none());
        let plan = ok(p.plan_ensure_user(&spec), "plan");
        assert!(
            plan.changes().contains(&&Change::GrantIam { role: RoleName::new(name).unwrap() }),
            "{plan}"
        );
        ok(p.ensure_user(&spec), "ensure_user converges");
        assert!(iam_state(sandbox, name).0);
        assert!(master_trouble(&sandbox.master_options()).is_none());
        assert!(ok(p.plan_ensure_user(&spec), "plan").is_empty());
    }
);

per_version!(
    fn switching_between_password_and_iam_is_planned_explicitly(sandbox) {
        let mut p = provisioner(sandbox);
        let dir = tempfile::tempdir().unwrap();
        let name = "switcher";
        let first = Password::generate().unwrap();
        ok(
            p.ensure_user(&UserSpec::new(name).unwrap().password(first.clone())),
            "ensure_user",
        );
        ok(
            login_as_application(&sandbox.options_for(name).password(first.clone())),
            "password login",
        );
        // A spec without the choice leaves the user as it is.
        assert!(ok(p.plan_ensure_user(&UserSpec::new(name).unwrap()), "plan").is_empty());

        let to_iam = UserSpec::new(name).unwrap().iam(true);
        let plan = ok(p.plan_ensure_user(&to_iam), "plan to IAM");
        assert_eq!(
            plan.changes(),
            [
                &Change::GrantIam { role: RoleName::new(name).unwrap() },
                &Change::ClearPassword { role: RoleName::new(name).unwrap() }
            ],
            "{plan}"
        );
        let report = ok(p.ensure_user(&to_iam), "to IAM");
        assert!(report.new_password.is_none());
        assert_eq!(iam_state(sandbox, name), (true, true));
        let e = connect_error(&sandbox.options_for(name).password(first.clone()));
        assert!(e.to_string().contains("pg_hba.conf rejects connection"), "{e}");
        let token = ok(sandbox.iam_token(name), "iam_token");
        ok(
            login_as_application(&token_options(sandbox, dir.path(), name, &token)),
            "token login",
        );
        // Without the choice an IAM user stays one.
        assert!(ok(p.plan_ensure_user(&UserSpec::new(name).unwrap()), "plan").is_empty());

        let second = Password::generate().unwrap();
        let back = UserSpec::new(name).unwrap().iam(false).password(second.clone());
        let plan = ok(p.plan_ensure_user(&back), "plan back");
        assert_eq!(
            plan.sql(),
            [
                format!("REVOKE rds_iam FROM \"{name}\""),
                format!("ALTER ROLE \"{name}\" PASSWORD '[redacted]'")
            ],
            "{plan}"
        );
        let report = ok(p.ensure_user(&back), "back to a password");
        assert!(report.new_password.is_some());
        assert_eq!(iam_state(sandbox, name), (false, false));
        ok(
            login_as_application(&sandbox.options_for(name).password(second)),
            "password login with the new password",
        );
        let e = connect_error(&sandbox.options_for(name).password(first));
        assert_password_refused(&e, name);
        // Master logs in throughout.
        assert!(master_trouble(&sandbox.master_options()).is_none());
    }
);
