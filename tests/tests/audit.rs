//! The isolation audit on a live instance: a freshly provisioned instance audits clean; each way
//! of breaking isolation, one at a time, yields exactly its finding (rule and objects); `--fix`
//! repairs the revocable ones (a second audit is clean, and the affected role, logged in, can no
//! longer do what the break allowed) and only lists the others; an inventory adds who may connect
//! where, unclaimed roles and databases, and role limits.

use rds_pg_core::audit::{self, AuditObject, AuditOptions, AuditReport, Finding, ObjectKind, Rule};
use rds_pg_core::{
    DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions, ErrorKind, Extension,
    Inventory, Password, Provisioner, ReadOnlyGrant, RoleName, UserSpec,
};
use rds_pg_tests::{
    connect_error, err, log_mark, login_as_application, ok, per_version, provisioner,
    statements_since, Sandbox,
};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const PROJECTS: [&str; 2] = ["alpha", "beta"];

fn password(role: &str) -> Password {
    Password::new(format!("{role}-Audit-pw-1"))
}

/// Two projects, each an owner with a database (hstore, a trusted extension the owner owns) and
/// a read-only user, provisioned by rds-pg on a secured instance.
fn provision(sandbox: &Sandbox) -> Provisioner {
    let mut p = provisioner(sandbox);
    for project in PROJECTS {
        let reader = format!("{project}_ro");
        for role in [project, reader.as_str()] {
            ok(
                p.ensure_user(&UserSpec::new(role).unwrap().password(password(role))),
                &format!("ensure_user({role})"),
            );
        }
        let spec = DatabaseSpec::new(project, project)
            .unwrap()
            .extensions([Extension::Hstore]);
        ok(
            p.ensure_database(&spec),
            &format!("ensure_database({project})"),
        );
        ok(
            p.grant_read_only(&ReadOnlyGrant::new(project, &reader).unwrap()),
            &format!("grant_read_only({project}, {reader})"),
        );
    }
    p
}

fn login(sandbox: &Sandbox, role: &str, db: &str) -> rds_pg_core::Result<postgres::Client> {
    login_as_application(
        &sandbox
            .options_for(role)
            .password(password(role))
            .dbname(db),
    )
}

fn as_role(sandbox: &Sandbox, role: &str, db: &str) -> postgres::Client {
    ok(
        login(sandbox, role, db),
        &format!("log in as {role} to {db}"),
    )
}

/// Findings the sandbox has for what it emulates of RDS's defaults on this version, not for
/// anything a project did: no TLS before 15 (`rds.force_ssl` is off on RDS 13 and 14), MD5
/// password hashing on 13.
fn baseline(major: u32) -> Vec<Rule> {
    match major {
        13 => vec![Rule::TlsRequired, Rule::PasswordEncryption],
        14 => vec![Rule::TlsRequired],
        _ => vec![],
    }
}

fn run(sandbox: &Sandbox, options: &AuditOptions) -> AuditReport {
    ok(audit::run(&sandbox.master_options(), options), "audit")
}

/// The findings beyond the version's baseline, after checking that the baseline's are there.
fn beyond_baseline(sandbox: &Sandbox, report: &AuditReport) -> Vec<Finding> {
    let base = baseline(sandbox.major_version());
    for rule in &base {
        assert_eq!(
            report.of(*rule).count(),
            1,
            "the baseline finding {rule} of PostgreSQL {}: {report:#?}",
            sandbox.major_version()
        );
    }
    report
        .findings
        .iter()
        .filter(|f| !base.contains(&f.rule))
        .cloned()
        .collect()
}

fn assert_clean(sandbox: &Sandbox, report: &AuditReport, what: &str) {
    let extra = beyond_baseline(sandbox, report);
    assert!(
        extra.is_empty(),
        "{what}: unexpected findings:\n{}",
        text(&extra)
    );
    assert_eq!(
        report.is_clean(),
        baseline(sandbox.major_version()).is_empty(),
        "{what}: {report}"
    );
}

fn text(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn role(name: &str) -> AuditObject {
    AuditObject::new(ObjectKind::Role, name)
}

fn database(name: &str) -> AuditObject {
    AuditObject::new(ObjectKind::Database, name)
}

/// Exactly one finding beyond the baseline, of `rule` with `objects`; returns it.
#[track_caller]
fn exactly(
    sandbox: &Sandbox,
    report: &AuditReport,
    rule: Rule,
    objects: &[AuditObject],
) -> Finding {
    let extra = beyond_baseline(sandbox, report);
    assert_eq!(
        extra.len(),
        1,
        "expected one {rule} finding, got:\n{}",
        text(&extra)
    );
    let f = extra.into_iter().next().unwrap();
    assert_eq!(f.rule, rule, "{f}");
    assert_eq!(f.objects, objects, "{f}");
    f
}

/// Runs `--fix`; asserts it applied `finding`'s statements without error and that what is left
/// is the baseline.
#[track_caller]
fn fix_and_check(sandbox: &Sandbox, finding: &Finding) {
    assert!(finding.fix.automatic, "{finding}");
    let after = run(sandbox, &AuditOptions::new().fix(true));
    assert_eq!(after.fixed.len(), 1, "{:#?}", after.fixed);
    let applied = &after.fixed[0];
    assert_eq!(&applied.finding, finding);
    assert!(applied.succeeded(), "{:#?}", applied.results);
    assert_clean(sandbox, &after, "after --fix");
}

fn db_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

per_version!(
    fn a_provisioned_instance_audits_clean_with_one_query_per_database(sandbox) {
        let p = provision(sandbox);
        let mark = log_mark(sandbox);
        let report = ok(p.audit(&AuditOptions::new()), "Provisioner::audit");
        assert_clean(sandbox, &report, "fresh instance");
        assert_eq!(report.master, sandbox.master_user());
        assert_eq!(report.login_roles, 4);
        assert_eq!(report.databases, ["alpha", "beta", "postgres", "template1"]);
        // Who may connect where: each project's owner and reader, nobody else.
        let matrix: Vec<(String, Vec<String>)> = report
            .connect_matrix
            .iter()
            .map(|c| (c.database.clone(), c.roles.clone()))
            .collect();
        assert_eq!(
            matrix,
            [
                ("alpha".to_owned(), vec!["alpha".to_owned(), "alpha_ro".to_owned()]),
                ("beta".to_owned(), vec!["beta".to_owned(), "beta_ro".to_owned()]),
            ]
        );
        assert_eq!(report.connect_matrix[0].project.as_deref(), Some("alpha"));
        // One bulk query for the cluster, then one per database, each over a connection of its
        // own (the maintenance database's shares the first): nothing else is sent.
        let statements = statements_since(sandbox, mark);
        assert_eq!(statements.len(), 1 + report.databases.len(), "{statements:#?}");
        assert!(statements.iter().all(|s| s.contains("pg_catalog.json_build_object")));
        let log = sandbox.log_text().unwrap();
        let connections = log[mark..]
            .lines()
            .filter(|l| l.contains("connection authorized: user=master"))
            .count();
        assert_eq!(connections, report.databases.len(), "{}", &log[mark..]);
        // The other operations' results are untouched by an audit.
        assert_eq!(report.fixed, []);
        assert!(report.to_string().contains("4 databases and 4 login roles audited"), "{report}");
    }
);

per_version!(
    fn each_break_is_exactly_its_finding_and_fix_repairs_the_revocable_ones(sandbox) {
        let major = sandbox.major_version();
        let _p = provision(sandbox);
        let master = sandbox.master_user().to_owned();
        let clean = run(sandbox, &AuditOptions::new());
        assert_clean(sandbox, &clean, "fresh instance");

        // 1. PUBLIC may connect to a project's database: the other project's user gets in.
        as_role(sandbox, "alpha", "alpha")
            .batch_execute("GRANT CONNECT ON DATABASE alpha TO PUBLIC")
            .unwrap();
        ok(login(sandbox, "beta", "alpha"), "beta connects to alpha through PUBLIC");
        let report = run(sandbox, &AuditOptions::new());
        let f = exactly(sandbox, &report, Rule::PublicDatabaseAccess, &[database("alpha"), role("PUBLIC")]);
        assert_eq!(f.fix_sql(), ["REVOKE CONNECT ON DATABASE \"alpha\" FROM PUBLIC"]);
        assert_eq!(f.fix.statements[0].run_as.as_deref(), Some("alpha"), "the grantor revokes");
        fix_and_check(sandbox, &f);
        let e = connect_error(&sandbox.options_for("beta").password(password("beta")).dbname("alpha"));
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.to_string().contains("permission denied for database"), "{e}");
        ok(login(sandbox, "alpha_ro", "alpha"), "alpha's reader still connects");

        // 2. A project role with CREATEDB.
        sandbox
            .connect_master()
            .unwrap()
            .batch_execute("ALTER ROLE beta CREATEDB")
            .unwrap();
        let report = run(sandbox, &AuditOptions::new());
        let f = exactly(sandbox, &report, Rule::RoleAttribute, &[role("beta")]);
        assert_eq!(f.fix_sql(), ["ALTER ROLE \"beta\" NOCREATEDB"]);
        fix_and_check(sandbox, &f);
        let e = as_role(sandbox, "beta", "beta")
            .batch_execute("CREATE DATABASE beta_copy")
            .unwrap_err();
        assert!(db_message(&e).contains("permission denied to create database"), "{e:?}");

        // 3. Project alpha a member of project beta: alpha reaches beta's database.
        sandbox
            .connect_master()
            .unwrap()
            .batch_execute("GRANT beta TO alpha")
            .unwrap();
        ok(login(sandbox, "alpha", "beta"), "alpha connects to beta as a member of beta");
        let report = run(sandbox, &AuditOptions::new());
        let f = exactly(sandbox, &report, Rule::CrossProjectMembership, &[role("alpha"), role("beta")]);
        assert_eq!(f.fix_sql(), ["REVOKE \"beta\" FROM \"alpha\""]);
        fix_and_check(sandbox, &f);
        let e = connect_error(&sandbox.options_for("alpha").password(password("alpha")).dbname("beta"));
        assert!(e.to_string().contains("permission denied for database"), "{e}");

        // 4. A project role made a member of rds_superuser by the superuser. Before 16 master's
        //    CREATEROLE may revoke it; on 16+ only a role with ADMIN OPTION on rds_superuser
        //    may, which master is not: listed, not applied.
        sandbox
            .connect_rdsadmin("postgres")
            .unwrap()
            .batch_execute("GRANT rds_superuser TO alpha_ro")
            .unwrap();
        let report = run(sandbox, &AuditOptions::new());
        let f = exactly(
            sandbox,
            &report,
            Rule::PrivilegedMembership,
            &[role("alpha_ro"), role("rds_superuser")],
        );
        let is_member = |sandbox: &Sandbox| -> bool {
            as_role(sandbox, "alpha_ro", "alpha")
                .query_one("SELECT pg_has_role(current_user, 'rds_superuser', 'MEMBER')", &[])
                .unwrap()
                .get(0)
        };
        assert!(is_member(sandbox));
        if major < 16 {
            assert_eq!(f.fix_sql(), ["REVOKE \"rds_superuser\" FROM \"alpha_ro\""]);
            fix_and_check(sandbox, &f);
            assert!(!is_member(sandbox), "alpha_ro is still a member of rds_superuser");
        } else {
            assert!(!f.fix.automatic, "{f}");
            assert_eq!(f.fix_sql(), ["REVOKE \"rds_superuser\" FROM \"alpha_ro\" GRANTED BY \"rdsadmin\""]);
            assert!(f.fix.note.contains("only a superuser can revoke it"), "{f}");
            let after = run(sandbox, &AuditOptions::new().fix(true));
            assert_eq!(after.fixed, [], "nothing to apply");
            exactly(sandbox, &after, Rule::PrivilegedMembership, &[role("alpha_ro"), role("rds_superuser")]);
            assert!(is_member(sandbox), "--fix left it, as it said");
            sandbox
                .connect_rdsadmin("postgres")
                .unwrap()
                .batch_execute("REVOKE rds_superuser FROM alpha_ro")
                .unwrap();
            assert_clean(sandbox, &run(sandbox, &AuditOptions::new()), "after the superuser's revoke");
        }

        // 5. Master left a member of a project role by an operation that died (16+: with
        //    INHERIT and SET, beyond the creator's ADMIN-only membership).
        let mut as_master = sandbox.connect_master().unwrap();
        as_master.batch_execute("GRANT alpha TO CURRENT_USER").unwrap();
        let report = run(sandbox, &AuditOptions::new());
        let f = exactly(sandbox, &report, Rule::MasterMembership, &[role(&master), role("alpha")]);
        assert_eq!(f.fix_sql(), [format!("REVOKE \"alpha\" FROM \"{master}\"")]);
        fix_and_check(sandbox, &f);
        let e = sandbox
            .connect_master()
            .unwrap()
            .batch_execute("SET ROLE alpha")
            .unwrap_err();
        assert!(db_message(&e).contains("permission denied to set role"), "{e:?}");

        // 6. A function planted in a project's database with the name of a pg_catalog one:
        //    dropping it is the owner's call, so it is listed and --fix leaves it.
        let mut beta = as_role(sandbox, "beta", "beta");
        beta.batch_execute(
            "CREATE FUNCTION public.format(text, name, name) RETURNS text
                 LANGUAGE sql AS $$ SELECT pg_catalog.format($1, $2, $3) $$",
        )
        .unwrap();
        let report = run(sandbox, &AuditOptions::new());
        let description = "function public.format(text,name,name)";
        let f = exactly(
            sandbox,
            &report,
            Rule::ShadowingObject,
            &[
                database("beta"),
                AuditObject::in_database(ObjectKind::Schema, "public", "beta"),
                AuditObject::in_database(ObjectKind::Object, description, "beta"),
                role("beta"),
            ],
        );
        assert!(!f.fix.automatic, "{f}");
        assert_eq!(
            f.fix_sql(),
            ["DROP FUNCTION public.format(pg_catalog.text,pg_catalog.name,pg_catalog.name)"]
        );
        let after = run(sandbox, &AuditOptions::new().fix(true));
        assert_eq!(after.fixed, []);
        assert_eq!(beyond_baseline(sandbox, &after), std::slice::from_ref(&f));
        let still: i64 = beta
            .query_one("SELECT count(*) FROM pg_proc WHERE proname = 'format' AND pronamespace = 'public'::regnamespace", &[])
            .unwrap()
            .get(0);
        assert_eq!(still, 1, "--fix dropped nothing");
        beta.batch_execute(f.fix_sql()[0]).unwrap();
        assert_clean(sandbox, &run(sandbox, &AuditOptions::new()), "after the owner's drop");
    }
);

per_version!(
    fn several_breaks_at_once_are_fixed_in_one_run(sandbox) {
        let _p = provision(sandbox);
        let mut as_master = sandbox.connect_master().unwrap();
        // A reader granted ADMIN OPTION on its owner, a grant option on another project's
        // table, PUBLIC CREATE on a project schema, a leftover membership of master.
        as_master
            .batch_execute("GRANT alpha TO alpha_ro WITH ADMIN OPTION; GRANT beta TO CURRENT_USER")
            .unwrap();
        let mut beta = as_role(sandbox, "beta", "beta");
        beta.batch_execute(
            "CREATE TABLE public.orders (id int);
             GRANT SELECT ON public.orders TO beta_ro WITH GRANT OPTION;
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO beta_ro WITH GRANT OPTION;
             GRANT CREATE ON SCHEMA public TO PUBLIC",
        )
        .unwrap();
        let report = run(sandbox, &AuditOptions::new());
        let mut rules: Vec<Rule> = beyond_baseline(sandbox, &report).iter().map(|f| f.rule).collect();
        rules.sort();
        // ADMIN OPTION on alpha also makes alpha_ro a member of alpha (its own project).
        assert_eq!(
            rules,
            [
                Rule::MasterMembership,
                Rule::AdminOption,
                Rule::GrantOption,
                Rule::GrantOption,
                Rule::SchemaCreate
            ],
            "{}",
            text(&report.findings)
        );
        let extra = beyond_baseline(sandbox, &report);
        assert!(extra.iter().all(|f| f.fix.automatic), "{}", text(&extra));
        let grants: Vec<&Finding> = report.of(Rule::GrantOption).collect();
        let defaults = grants[0];
        assert_eq!(
            defaults.fix_sql(),
            ["ALTER DEFAULT PRIVILEGES FOR ROLE \"beta\" IN SCHEMA \"public\" REVOKE GRANT OPTION FOR SELECT ON TABLES FROM \"beta_ro\" CASCADE"]
        );
        assert_eq!(defaults.fix.statements[0].run_as.as_deref(), Some("beta"));
        let grant = grants[1];
        assert_eq!(
            grant.fix_sql(),
            ["REVOKE GRANT OPTION FOR SELECT ON TABLE public.orders FROM \"beta_ro\" CASCADE"]
        );
        assert_eq!(
            grant.objects,
            [role("beta_ro"), AuditObject::in_database(ObjectKind::Object, "table public.orders", "beta")]
        );
        let after = run(sandbox, &AuditOptions::new().fix(true).jobs(2));
        assert_eq!(after.fixed.len(), 5, "{:#?}", after.fixed);
        assert!(after.fixed.iter().all(|f| f.succeeded()), "{:#?}", after.fixed);
        assert_clean(sandbox, &after, "after --fix");
        // The reader still reads, and can no longer pass the privilege on.
        let mut reader = as_role(sandbox, "beta_ro", "beta");
        reader.batch_execute("SELECT * FROM public.orders").unwrap();
        // Without the grant option PostgreSQL only warns that nothing was granted.
        reader
            .batch_execute("GRANT SELECT ON public.orders TO PUBLIC")
            .unwrap();
        let public_reads: bool = reader
            .query_one("SELECT has_table_privilege('public', 'public.orders', 'SELECT')", &[])
            .unwrap()
            .get(0);
        assert!(!public_reads, "beta_ro passed SELECT on to PUBLIC");
        // Tables created later are readable, without the grant option.
        beta.batch_execute("CREATE TABLE public.later (id int)").unwrap();
        let (reads, passes): (bool, bool) = {
            let row = reader
                .query_one(
                    "SELECT has_table_privilege('public.later', 'SELECT'),
                            has_table_privilege('public.later', 'SELECT WITH GRANT OPTION')",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert!(reads && !passes, "reads {reads}, passes on {passes}");
        // Nobody but beta creates in beta's public schema.
        let e = as_role(sandbox, "beta_ro", "beta")
            .batch_execute("CREATE TABLE public.planted (x int)")
            .unwrap_err();
        assert!(db_message(&e).contains("permission denied"), "{e:?}");
        // No membership of master is left by --fix's own SET ROLE.
        let left: i64 = as_master
            .query_one(
                "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                  WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                    AND r.rolname IN ('alpha', 'beta', 'alpha_ro', 'beta_ro')
                    AND NOT (m.admin_option AND current_setting('server_version_num')::int >= 160000
                             AND NOT coalesce((to_jsonb(m) ->> 'set_option')::bool, true))",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    }
);

per_version!(
    fn what_fix_cannot_do_safely_is_listed_with_its_sql(sandbox) {
        let _p = provision(sandbox);
        let master = sandbox.master_user().to_owned();
        // A table a project role left in `postgres` (while an operator had opened its schema),
        // an operator planted in a project database, and a SECURITY DEFINER function of master's
        // in one.
        let mut admin = sandbox.connect_rdsadmin("postgres").unwrap();
        admin.batch_execute("GRANT CREATE ON SCHEMA public TO alpha").unwrap();
        as_role(sandbox, "alpha", "postgres")
            .batch_execute("CREATE TABLE public.loot (x int)")
            .unwrap();
        admin.batch_execute("REVOKE CREATE ON SCHEMA public FROM alpha").unwrap();
        let mut beta = as_role(sandbox, "beta", "beta");
        beta.batch_execute(
            "CREATE FUNCTION public.same_int(integer, integer) RETURNS boolean
                 LANGUAGE sql AS $$ SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
             CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer,
                                       FUNCTION = public.same_int);
             GRANT CREATE ON SCHEMA public TO CURRENT_USER",
        )
        .unwrap();
        beta.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO \"{master}\""))
            .unwrap();
        let mut as_master = ok(
            login_as_application(&sandbox.master_options().dbname("beta")),
            "master in beta",
        );
        as_master
            .batch_execute(
                "CREATE FUNCTION public.helper() RETURNS integer LANGUAGE sql SECURITY DEFINER
                     AS $$ SELECT 1 $$",
            )
            .unwrap();
        let report = run(sandbox, &AuditOptions::new());
        let found: Vec<(Rule, Vec<AuditObject>, Vec<String>)> = beyond_baseline(sandbox, &report)
            .into_iter()
            .map(|f| {
                assert!(!f.fix.automatic, "{f}");
                (f.rule, f.objects.clone(), f.fix_sql().into_iter().map(str::to_owned).collect())
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    Rule::SystemDatabaseObject,
                    vec![
                        AuditObject::in_database(ObjectKind::Object, "table public.loot", "postgres"),
                        role("alpha"),
                    ],
                    vec!["DROP TABLE public.loot".to_owned()],
                ),
                (
                    Rule::ShadowingObject,
                    vec![
                        database("beta"),
                        AuditObject::in_database(ObjectKind::Schema, "public", "beta"),
                        AuditObject::in_database(ObjectKind::Object, "operator public.=(integer,integer)", "beta"),
                        role("beta"),
                    ],
                    vec!["DROP OPERATOR public.=(integer,integer)".to_owned()],
                ),
                (
                    Rule::SecurityDefiner,
                    vec![
                        database("beta"),
                        AuditObject::in_database(ObjectKind::Object, "function public.helper()", "beta"),
                        role(&master),
                    ],
                    vec!["ALTER ROUTINE public.helper() SECURITY INVOKER".to_owned()],
                ),
            ],
            "{}",
            text(&report.findings)
        );
        let after = run(sandbox, &AuditOptions::new().fix(true));
        assert_eq!(after.fixed, []);
        assert_eq!(beyond_baseline(sandbox, &after).len(), 3);
        // Done by hand, as listed, the audit is clean again.
        as_master.batch_execute("ALTER ROUTINE public.helper() SECURITY INVOKER").unwrap();
        beta.batch_execute("DROP OPERATOR public.=(integer,integer)").unwrap();
        admin.batch_execute("DROP TABLE public.loot").unwrap();
        assert_clean(sandbox, &run(sandbox, &AuditOptions::new()), "after the manual fixes");
    }
);

per_version!(
    fn fix_leaves_the_membership_of_an_operation_that_is_running(sandbox) {
        let _p = provision(sandbox);
        // Another rds-pg operation on alpha is under way: it holds alpha's lock and granted
        // master its temporary membership.
        let mut operation = sandbox.connect_master().unwrap();
        operation
            .batch_execute(
                "SELECT pg_advisory_lock(hashtextextended('rds-pg:role:alpha', 0));
                 GRANT alpha TO CURRENT_USER",
            )
            .unwrap();
        let after = run(sandbox, &AuditOptions::new().fix(true));
        assert_eq!(after.fixed.len(), 1);
        let (_, error) = &after.fixed[0].results[0];
        assert!(
            error.as_deref().is_some_and(|e| e.contains("holds the lock \"rds-pg:role:alpha\"")),
            "{error:?}"
        );
        exactly(
            sandbox,
            &after,
            Rule::MasterMembership,
            &[role(sandbox.master_user()), role("alpha")],
        );
        // Once the operation is over (here: died, its lock gone with its session), --fix removes
        // what it left.
        drop(operation);
        let mut master = sandbox.connect_master().unwrap();
        for _ in 0..100 {
            let held: i64 = master
                .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", &[])
                .unwrap()
                .get(0);
            if held == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let after = run(sandbox, &AuditOptions::new().fix(true));
        assert!(after.fixed[0].succeeded(), "{:#?}", after.fixed);
        assert_clean(sandbox, &after, "after the operation");
    }
);

fn inventory_text(sandbox: &Sandbox, roles: &str) -> String {
    format!(
        r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "sandbox"
client = "acme"
environment = "staging"
region = "eu-west-1"
postgres_major = {major}
endpoint = "127.0.0.1"
port = {port}
master_user = "{master}"

[[project]]
name = "alpha-site"
client = "acme"
environment = "staging"
region = "eu-west-1"
instance = "sandbox"

[[project.database]]
name = "alpha"
owner = "alpha"
readers = ["alpha_ro"]
{roles}

[[project]]
name = "beta-site"
client = "acme"
environment = "staging"
region = "eu-west-1"
instance = "sandbox"

[[project.database]]
name = "beta"
owner = "beta"
readers = ["beta_ro"]
"#,
        major = sandbox.major_version(),
        port = sandbox.port(),
        master = sandbox.master_user(),
    )
}

per_version!(
    fn with_an_inventory_the_connect_matrix_and_unclaimed_roles_are_checked(sandbox) {
        let mut p = provision(sandbox);
        let inventory = Inventory::from_str(&inventory_text(sandbox, ""), "fleet.toml").unwrap();
        let options = AuditOptions::new().inventory(inventory.clone(), None);
        let report = run(sandbox, &options);
        assert_clean(sandbox, &report, "fresh instance against the inventory");
        assert_eq!(report.instance.as_deref(), Some("sandbox"));
        assert_eq!(report.connect_matrix[0].project.as_deref(), Some("alpha-site"));

        // A reader of alpha granted CONNECT on beta by beta's owner: outside its project.
        as_role(sandbox, "beta", "beta")
            .batch_execute("GRANT CONNECT ON DATABASE beta TO alpha_ro")
            .unwrap();
        ok(login(sandbox, "alpha_ro", "beta"), "alpha_ro connects to beta");
        let report = run(sandbox, &options);
        let f = exactly(sandbox, &report, Rule::ConnectOutsideProject, &[role("alpha_ro"), database("beta")]);
        assert_eq!(f.fix_sql(), ["REVOKE CONNECT ON DATABASE \"beta\" FROM \"alpha_ro\""]);
        // Without the inventory the same grant makes alpha_ro a role of two projects.
        let bare = run(sandbox, &AuditOptions::new());
        let g = exactly(
            sandbox,
            &bare,
            Rule::ConnectOutsideProject,
            &[role("alpha_ro"), database("alpha"), database("beta")],
        );
        assert!(!g.fix.automatic, "without an inventory the audit cannot tell which to revoke");
        let after = run(sandbox, &options.clone().fix(true));
        assert_eq!(after.fixed.len(), 1);
        assert!(after.fixed[0].succeeded(), "{:#?}", after.fixed);
        assert_clean(sandbox, &after, "after --fix");
        let e = connect_error(&sandbox.options_for("alpha_ro").password(password("alpha_ro")).dbname("beta"));
        assert!(e.to_string().contains("permission denied for database"), "{e}");

        // A login role and a database no project claims.
        ok(p.ensure_user(&UserSpec::new("stray").unwrap().password(password("stray"))), "stray");
        ok(p.ensure_database(&DatabaseSpec::new("orphan", "stray").unwrap()), "orphan");
        let report = run(sandbox, &options);
        let mut found: Vec<(Rule, Vec<AuditObject>)> = beyond_baseline(sandbox, &report)
            .into_iter()
            .map(|f| (f.rule, f.objects))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                (Rule::UnclaimedLoginRole, vec![role("stray")]),
                (Rule::UnclaimedDatabase, vec![database("orphan"), role("stray")]),
            ]
        );
        // Without an inventory, a role that owns a database is a project of its own.
        assert_clean(sandbox, &run(sandbox, &AuditOptions::new()), "stray as a project");
        ok(
            p.drop_database(&DatabaseName::new("orphan").unwrap(), &DropDatabaseOptions::new()),
            "drop orphan",
        );
        ok(p.drop_user(&RoleName::new("stray").unwrap(), &DropUserOptions::new()), "drop stray");

        // Limits the inventory sets for roles.
        let limits = "[project.roles]\nalpha = { connection_limit = 5 }\nalpha_ro = { valid_until = \"2030-01-01\" }\n";
        let with_limits = Inventory::from_str(&inventory_text(sandbox, limits), "fleet.toml").unwrap();
        let limited = AuditOptions::new().inventory(with_limits, Some("sandbox"));
        let report = run(sandbox, &limited);
        let mut found: Vec<(Rule, Vec<AuditObject>)> = beyond_baseline(sandbox, &report)
            .into_iter()
            .map(|f| (f.rule, f.objects))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                (Rule::RoleConnectionLimit, vec![role("alpha")]),
                (Rule::RoleValidUntil, vec![role("alpha_ro")]),
            ]
        );
        let fixes: Vec<String> = report
            .findings
            .iter()
            .filter(|f| matches!(f.rule, Rule::RoleConnectionLimit | Rule::RoleValidUntil))
            .flat_map(|f| f.fix_sql().into_iter().map(str::to_owned))
            .collect();
        assert_eq!(
            fixes,
            [
                "ALTER ROLE \"alpha\" CONNECTION LIMIT 5",
                "ALTER ROLE \"alpha_ro\" VALID UNTIL '2030-01-01'"
            ]
        );
        let mut as_master = sandbox.connect_master().unwrap();
        for sql in &fixes {
            as_master.batch_execute(sql).unwrap();
        }
        assert_clean(sandbox, &run(sandbox, &limited), "after setting the limits");

        // How the inventory says a role authenticates: alpha_ro is no IAM user yet.
        let iam_audit = |text: &str| {
            let inventory = Inventory::from_str(&inventory_text(sandbox, text), "fleet.toml").unwrap();
            run(sandbox, &AuditOptions::new().inventory(inventory, Some("sandbox")))
        };
        let iam_findings = |report: &AuditReport| -> Vec<(Vec<AuditObject>, Vec<String>)> {
            beyond_baseline(sandbox, report)
                .into_iter()
                .filter(|f| f.rule == Rule::RoleIam)
                .map(|f| (f.objects.clone(), f.fix_sql().into_iter().map(str::to_owned).collect()))
                .collect()
        };
        let iam = "[project.roles]\nalpha_ro = { iam = true }\n";
        let password_user = "[project.roles]\nalpha_ro = { iam = false }\n";
        assert_clean(sandbox, &iam_audit(password_user), "a password user, as the inventory says");
        let report = iam_audit(iam);
        let found = iam_findings(&report);
        assert_eq!(
            found,
            [(vec![role("alpha_ro")], vec!["GRANT rds_iam TO \"alpha_ro\"".to_owned()])]
        );
        assert_eq!(beyond_baseline(sandbox, &report).len(), 1);
        as_master.batch_execute(&found[0].1[0]).unwrap();
        assert_clean(sandbox, &iam_audit(iam), "after granting rds_iam");
        // An IAM user has no password to expire: a valid_until it does not meet is no finding,
        // though the same requirement is one for a password user (below).
        let expired = "[project.roles]\nalpha_ro = { iam = true, valid_until = \"2020-01-01\" }\n";
        assert_clean(sandbox, &iam_audit(expired), "an IAM user's valid_until");
        let report = iam_audit(password_user);
        let found = iam_findings(&report);
        assert_eq!(found, [(vec![role("alpha_ro")], Vec::<String>::new())], "no SQL sets a password");
        assert!(beyond_baseline(sandbox, &report)[0].fix.note.contains("fleet apply"));
        as_master.batch_execute("REVOKE rds_iam FROM alpha_ro").unwrap();
        assert_clean(sandbox, &iam_audit(password_user), "after revoking rds_iam");
        let report = iam_audit("[project.roles]\nalpha_ro = { valid_until = \"2020-01-01\" }\n");
        let found: Vec<_> = beyond_baseline(sandbox, &report).into_iter().map(|f| f.rule).collect();
        assert_eq!(found, [Rule::RoleValidUntil], "a password user's valid_until");

        // Choosing the instance: an unknown name and a master user the inventory does not name
        // are refused before connecting.
        let e = err(
            audit::run(&sandbox.master_options(), &AuditOptions::new().inventory(inventory.clone(), Some("nope"))),
            "unknown instance",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("has no instance \"nope\""), "{e}");
        let e = err(
            audit::run(&sandbox.options_for("alpha").password(password("alpha")), &options),
            "another master",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(
            e.to_string().contains(&format!("names {:?} as master", sandbox.master_user())),
            "{e}"
        );
    }
);

per_version!(
    fn bad_options_are_refused_before_any_sql(sandbox) {
        let mark = log_mark(sandbox);
        for jobs in [0, audit::MAX_JOBS + 1] {
            let e = err(
                audit::run(&sandbox.master_options(), &AuditOptions::new().jobs(jobs)),
                "jobs out of range",
            );
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        assert_eq!(statements_since(sandbox, mark), Vec::<String>::new());
    }
);
