//! What the reliability suites (`faults.rs`, `concurrency.rs`) look at after a run: memberships
//! master was left with, a project's whole state as the catalog shows it (names made
//! independent of the project's prefix, so two projects provisioned the same way compare
//! equal), and the secrets that must appear nowhere.

use rds_pg_core::Password;

use crate::Sandbox;

/// Memberships master holds in roles that are not the instance's own (`pg_*`, `rds_*`): those
/// rds-pg grants only for the duration of an operation. Before 16 every membership counts; on
/// 16+ one with INHERIT or SET does (the ADMIN-only membership PostgreSQL gives the creator of a
/// role does not). Each as `role {options}`.
pub fn leftover_memberships(sandbox: &Sandbox) -> Vec<String> {
    let mut admin = sandbox
        .connect_rdsadmin("postgres")
        .expect("rdsadmin connects");
    let rows = admin
        .query(
            "SELECT r.rolname::text, (to_jsonb(a) - 'oid' - 'roleid' - 'member' - 'grantor')::text
               FROM pg_auth_members a
               JOIN pg_roles r ON r.oid = a.roleid
               JOIN pg_roles m ON m.oid = a.member
              WHERE m.rolname = $1
                AND NOT starts_with(r.rolname, 'pg_') AND NOT starts_with(r.rolname, 'rds_')
                AND (current_setting('server_version_num')::int < 160000
                     OR coalesce((to_jsonb(a) ->> 'inherit_option')::bool, true)
                     OR coalesce((to_jsonb(a) ->> 'set_option')::bool, true))
              ORDER BY 1",
            &[&sandbox.master_user()],
        )
        .expect("pg_auth_members is readable");
    rows.iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect()
}

/// Panics when master holds a temporary-kind membership of any project role.
#[track_caller]
pub fn assert_no_leftover_membership(sandbox: &Sandbox, what: &str) {
    let left = leftover_memberships(sandbox);
    assert!(
        left.is_empty(),
        "{what}: master was left a member of {left:?}"
    );
}

/// Everything the catalog says about the roles and databases whose names start with `prefix`,
/// read as rdsadmin, one line per fact, with `prefix` replaced by `P`: attributes (whether a
/// password is set, not which), memberships with their options and grantor, databases (owner,
/// sorted ACL, limits), and in each of those databases its extensions, schemas, relations,
/// function owners and default privileges. With `shared_schemas`, also the ACL of schema
/// `public` in `postgres` and `template1`. OIDs and password hashes are left out, and ACLs are
/// sorted, so two projects provisioned the same way (whatever happened on the way) give the
/// same text.
pub fn project_state(sandbox: &Sandbox, prefix: &str, shared_schemas: bool) -> String {
    let mut admin = sandbox
        .connect_rdsadmin("postgres")
        .expect("rdsadmin connects");
    let mut lines: Vec<String> = Vec::new();
    let mut push_rows = |client: &mut postgres::Client, sql: &str, label: &str| {
        for row in client.query(sql, &[&prefix]).expect(label) {
            lines.push(format!("{label}: {}", row.get::<_, String>(0)));
        }
    };
    push_rows(
        &mut admin,
        "SELECT format('%s super=%s inherit=%s createrole=%s createdb=%s login=%s repl=%s \
                        bypassrls=%s connlimit=%s until=%s password=%s',
                       rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
                       rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil,
                       rolpassword IS NOT NULL)
           FROM pg_authid WHERE starts_with(rolname, $1) ORDER BY rolname",
        "role",
    );
    push_rows(
        &mut admin,
        "SELECT format('%s in %s by %s %s', m.rolname, r.rolname, g.rolname,
                       (to_jsonb(a) - 'oid' - 'roleid' - 'member' - 'grantor')::text)
           FROM pg_auth_members a
           JOIN pg_roles r ON r.oid = a.roleid
           JOIN pg_roles m ON m.oid = a.member
           LEFT JOIN pg_roles g ON g.oid = a.grantor
          WHERE starts_with(r.rolname, $1) OR starts_with(m.rolname, $1)
          ORDER BY 1",
        "membership",
    );
    push_rows(
        &mut admin,
        "SELECT format('%s owner=%s acl=%s connlimit=%s allowconn=%s template=%s', datname,
                       pg_get_userbyid(datdba),
                       (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(datacl) x),
                       datconnlimit, datallowconn, datistemplate)
           FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
        "database",
    );
    push_rows(
        &mut admin,
        "SELECT format('%s x%s', what, count(*)) FROM (
             SELECT format('%s %s %s', coalesce(d.datname, '(shared)'), s.classid::regclass,
                           s.deptype) AS what
               FROM pg_shdepend s
               JOIN pg_roles r ON r.oid = s.refobjid AND s.refclassid = 'pg_authid'::regclass
               LEFT JOIN pg_database d ON d.oid = s.dbid
              WHERE starts_with(r.rolname, $1)
                AND (d.datname IS NULL OR NOT starts_with(d.datname, $1))) s
          GROUP BY what ORDER BY what",
        "shared dependency outside the project",
    );
    let databases: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) AND datallowconn
              ORDER BY 1",
            &[&prefix],
        )
        .expect("databases")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut per_database: Vec<String> = databases.clone();
    if shared_schemas {
        per_database.extend(["postgres".to_owned(), "template1".to_owned()]);
    }
    for db in &per_database {
        let mut c = sandbox.connect_rdsadmin(db).expect("rdsadmin connects");
        let shared = !databases.contains(db);
        let schemas = if shared {
            "n.nspname = 'public'"
        } else {
            "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND NOT starts_with(n.nspname, 'pg_temp') AND NOT starts_with(n.nspname, 'pg_toast_temp')"
        };
        // $1 is used by every query (the prefix), so each one mentions it.
        let queries = [
            (
                "extension",
                "SELECT format('%s owner=%s schema=%s version=%s', extname, pg_get_userbyid(extowner),
                               extnamespace::regnamespace, extversion)
                   FROM pg_extension WHERE $1::text IS NOT NULL ORDER BY 1"
                    .to_owned(),
            ),
            (
                "schema",
                format!(
                    "SELECT format('%s owner=%s acl=%s', n.nspname, pg_get_userbyid(n.nspowner),
                                   (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(n.nspacl) x))
                       FROM pg_namespace n WHERE $1::text IS NOT NULL AND {schemas} ORDER BY 1"
                ),
            ),
            (
                "relation",
                format!(
                    "SELECT format('%s.%s kind=%s owner=%s acl=%s', n.nspname, c.relname, c.relkind,
                                   pg_get_userbyid(c.relowner),
                                   (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(c.relacl) x))
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE $1::text IS NOT NULL AND {schemas} ORDER BY 1"
                ),
            ),
            (
                "functions",
                format!(
                    "SELECT format('owner=%s x%s', pg_get_userbyid(p.proowner), count(*))
                       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE $1::text IS NOT NULL AND {schemas} GROUP BY p.proowner ORDER BY 1"
                ),
            ),
            (
                "default privileges",
                "SELECT format('for %s in %s on %s: %s', pg_get_userbyid(d.defaclrole),
                               coalesce(d.defaclnamespace::regnamespace::text, '(all)'),
                               d.defaclobjtype,
                               (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(d.defaclacl) x))
                   FROM pg_default_acl d WHERE $1::text IS NOT NULL ORDER BY 1"
                    .to_owned(),
            ),
        ];
        for (label, sql) in queries {
            let label = if shared {
                format!("{db} {label}")
            } else {
                format!("[{db}] {label}")
            };
            push_rows(&mut c, &sql, &label);
        }
    }
    lines.join("\n").replace(prefix, "P")
}

/// Panics when `text` holds any of `passwords` in cleartext, as an SQL literal, or a SCRAM
/// verifier (`SCRAM-SHA-256$`) when `no_verifier`.
#[track_caller]
pub fn assert_no_secret(text: &str, passwords: &[&Password], no_verifier: bool, what: &str) {
    for p in passwords {
        let clear = p.expose();
        if clear.is_empty() {
            continue;
        }
        assert!(
            !text.contains(clear),
            "{what} holds a cleartext password ({} characters)",
            clear.chars().count()
        );
        let literal = postgres_protocol::escape::escape_literal(clear);
        assert!(
            !text.contains(literal.trim()),
            "{what} holds a password as an SQL literal"
        );
    }
    if no_verifier {
        assert!(
            !text.contains("SCRAM-SHA-256$"),
            "{what} holds a SCRAM verifier"
        );
    }
}
