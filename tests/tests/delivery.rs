//! A password change and its delivery are one unit (issue 13): a sink that fails rolls the change
//! back — the old password keeps working, a new role is not created — and says so; a commit that
//! fails after the credentials were delivered is `Error::Uncommitted`, naming the state.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rds_pg_core::provision::fault::{Fault, FaultPoint};
use rds_pg_core::{
    connect, CredentialDelivery, CredentialSink, DatabaseName, Error, ErrorKind, Password,
    Provisioner, RoleName, UserSpec,
};
use rds_pg_tests::reliability::{assert_no_leftover_membership, assert_no_secret};
use rds_pg_tests::{log_mark, ok, per_version, provisioner, statements_since, Sandbox};

fn role(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

fn role_exists(sandbox: &Sandbox, name: &str) -> bool {
    sandbox
        .connect_rdsadmin("postgres")
        .unwrap()
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)",
            &[&name],
        )
        .unwrap()
        .get(0)
}

#[track_caller]
fn logs_in(sandbox: &Sandbox, user: &str, password: &Password) -> bool {
    connect(&sandbox.options_for(user).password(password.clone())).is_ok()
}

/// Sinks that cannot take the credentials: a command that fails, one that does not exist, and
/// an env file whose path is a directory.
fn failing_sinks(dir: &Path) -> Vec<CredentialSink> {
    let occupied = dir.join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    vec![
        CredentialSink::command(["sh", "-c", "cat > /dev/null; exit 1"]),
        CredentialSink::command([dir.join("no-such-vault-client")]),
        CredentialSink::EnvFile(occupied),
    ]
}

#[track_caller]
fn assert_not_delivered(e: &Error, user: &str, what: &str) {
    assert!(matches!(e, Error::NotDelivered { .. }), "{what}: {e:?}");
    let text = e.to_string();
    assert!(
        text.contains("nothing was changed") && text.contains("rolled back"),
        "{what}: the error says nothing changed: {text}"
    );
    assert!(
        text.contains(&format!("{user:?}")),
        "{what}: names the role: {text}"
    );
}

per_version!(
    fn a_failing_sink_leaves_the_old_password_and_creates_no_role(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let mut p = provisioner(sandbox);
        let old = Password::new("Old-shop-pw'$$\\");
        ok(p.ensure_user(&UserSpec::new("shop").unwrap().password(old.clone())), "ensure_user");
        for (i, sink) in failing_sinks(dir.path()).into_iter().enumerate() {
            let delivery = CredentialDelivery::new(sink.clone());
            // Rotation: refused, rolled back, and the old password still works.
            let new = Password::new(format!("New-shop-pw-{i}"));
            let mark = log_mark(sandbox);
            let e = p
                .rotate_password_delivering(&role("shop"), Some(new.clone()), &delivery)
                .expect_err("a rotation whose credentials cannot be delivered");
            assert_not_delivered(&e, "shop", &format!("rotation to {sink}"));
            assert_no_secret(&format!("{e}\n{e:?}"), &[&new, &old], true, "the error");
            assert!(logs_in(sandbox, "shop", &old), "the old password works after {sink}");
            assert!(!logs_in(sandbox, "shop", &new), "the undelivered password was not set");
            let sent = statements_since(sandbox, mark);
            assert!(
                sent.iter().any(|s| s.trim() == "ROLLBACK") && !sent.iter().any(|s| s.contains("COMMIT")),
                "the change was rolled back: {sent:?}"
            );
            // Creation: no role is left behind.
            let user = format!("shop_new{i}");
            let e = p
                .ensure_user_delivering(&UserSpec::new(&user).unwrap(), &delivery)
                .expect_err("a creation whose credentials cannot be delivered");
            assert_not_delivered(&e, &user, &format!("creation to {sink}"));
            assert!(!role_exists(sandbox, &user), "{user} was not created");
            // The same provisioner goes on working (its session is not stuck in a transaction).
            let report = ok(
                p.ensure_user(&UserSpec::new(&user).unwrap().password(new.clone())),
                "ensure_user after a failed delivery",
            );
            assert!(report.changed);
            assert!(logs_in(sandbox, &user, &new));
        }
        // A sink that works: the rotation and the creation are made and delivered.
        let file = dir.path().join("shop.env");
        let delivery = CredentialDelivery::new(CredentialSink::EnvFile(file.clone()));
        let report = ok(p.rotate_password_delivering(&role("shop"), None, &delivery), "rotation");
        let delivered = report.new_password.clone().expect("the new password");
        assert!(std::fs::read_to_string(&file).unwrap().contains(delivered.expose()));
        assert!(logs_in(sandbox, "shop", &delivered));
        assert!(!logs_in(sandbox, "shop", &old));
        assert_no_leftover_membership(sandbox, "after the deliveries");
    }
);

/// A hook that terminates the provisioner's own session between delivery and COMMIT.
fn terminate_before_commit(
    sandbox: &Sandbox,
    fired: Arc<Mutex<bool>>,
) -> rds_pg_core::provision::fault::FaultHook {
    let rdsadmin = sandbox.rdsadmin_options();
    Box::new(move |point: &FaultPoint<'_>| {
        if point.before_commit {
            let mut admin = connect(&rdsadmin).unwrap();
            admin
                .batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE application_name = 'rds-pg-uncommitted'",
                )
                .unwrap();
            // Wait until it is gone, so COMMIT finds its connection closed.
            for _ in 0..500 {
                let left: i64 = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rds-pg-uncommitted'",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                if left == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            *fired.lock().unwrap() = true;
        }
        Fault::Continue
    })
}

per_version!(
    fn a_commit_that_fails_after_delivery_is_uncommitted_and_says_which_state(sandbox) {
        let dir = tempfile::tempdir().unwrap();
        let old = Password::new("Old-uncommitted-pw");
        ok(
            provisioner(sandbox).ensure_user(&UserSpec::new("shop").unwrap().password(old.clone())),
            "ensure_user",
        );
        let passfile = dir.path().join("pgpass");
        let delivery = CredentialDelivery::new(CredentialSink::Pgpass(passfile.clone()))
            .database(DatabaseName::new("postgres").unwrap());
        for creating in [false, true] {
            let fired = Arc::new(Mutex::new(false));
            let options = sandbox.master_options().application_name("rds-pg-uncommitted");
            let mut p = ok(Provisioner::connect(&options), "connect");
            p.set_fault_hook(Some(terminate_before_commit(sandbox, fired.clone())));
            let new = Password::new("Delivered-but-uncommitted-pw");
            let (user, result) = if creating {
                ("shop_created", p.ensure_user_delivering(&UserSpec::new("shop_created").unwrap().password(new.clone()), &delivery))
            } else {
                ("shop", p.rotate_password_delivering(&role("shop"), Some(new.clone()), &delivery))
            };
            assert!(*fired.lock().unwrap(), "the hook ran before COMMIT");
            let e = result.expect_err("COMMIT on a terminated session");
            assert!(matches!(e, Error::Uncommitted { .. }), "{e:?}");
            assert_eq!(e.kind(), ErrorKind::Server);
            assert_no_secret(&format!("{e}\n{e:?}"), &[&new, &old], true, "the error");
            let text = e.to_string();
            assert!(text.contains("delivered") && text.contains("COMMIT"), "{text}");
            // The state, exactly: which role, where its credentials went, and what to run.
            assert!(text.contains(&format!("{user:?}")), "the error names the role: {text}");
            assert!(
                text.contains(&delivery.sink.to_string()),
                "the error names where the credentials went: {text}"
            );
            assert!(text.contains("again"), "the error says to run the operation again: {text}");
            // What the server kept: the session died before COMMIT, so nothing.
            if creating {
                assert!(!role_exists(sandbox, user));
            } else {
                assert!(logs_in(sandbox, user, &old), "the old password still works");
            }
            // The delivered file holds the uncommitted password; running the operation again
            // finishes the job.
            drop(p);
            let mut q = provisioner(sandbox);
            let report = if creating {
                ok(q.ensure_user_delivering(&UserSpec::new(user).unwrap().password(new.clone()), &delivery), "again")
            } else {
                ok(q.rotate_password_delivering(&role(user), Some(new.clone()), &delivery), "again")
            };
            assert!(report.changed);
            let mut c = rds_pg_tests::login_as_application(
                &sandbox.options_for(user).dbname("postgres").passfile(&passfile),
            )
            .unwrap_or_else(|e| panic!("{user} logs in with the delivered file: {e}"));
            c.batch_execute("SELECT 1").unwrap();
        }
        assert_no_leftover_membership(sandbox, "after the uncommitted runs");
    }
);
