//! Reading what the server has: one bulk catalog query per database into a snapshot, read in
//! master's pinned sessions with every name qualified. Never reads `pg_authid`.
//!
//! [`database`] holds what database operations read, [`drop`](mod@drop) what teardown reads; this module
//! the server's facts and the roles.

pub mod database;
pub mod drop;
pub mod instance;

pub use database::*;
pub use drop::*;
pub use instance::*;

use postgres::types::Type;
use postgres::Client;

use crate::connect::ServerVersion;
use crate::error::{Error, Result};

/// Facts about the server and the connected (master) role, read once at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFacts {
    /// `server_version_num`.
    pub version: ServerVersion,
    /// The major version (13–18).
    pub major: u32,
    /// The connected role.
    pub current_user: String,
    /// The database the connection is in (the maintenance database).
    pub current_database: String,
    /// Whether the connected role is a superuser (never on RDS).
    pub is_superuser: bool,
    /// Its direct memberships.
    pub memberships: Vec<Membership>,
    /// RDS's list of supported extensions (`rds.extensions`), or the sandbox's whitelist
    /// (`extwlist.extensions`), when the server has one.
    pub extension_whitelist: Option<Vec<String>>,
}

/// One direct membership of the connected role, with PostgreSQL 16's options (before 16: INHERIT
/// follows the member's `rolinherit`, SET is always true).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The role it is a member of.
    pub role: String,
    /// WITH ADMIN OPTION.
    pub admin: bool,
    /// Inherits the role's privileges.
    pub inherit: bool,
    /// May `SET ROLE` to it.
    pub set: bool,
}

/// The query that reads [`ServerFacts`]: one row, [`FACTS_COLUMNS`] columns, read by
/// [`read_facts`]. It can be a derived table of a larger query.
pub(crate) const FACTS_SQL: &str = "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4,
                r.rolname::pg_catalog.text, pg_catalog.current_database()::pg_catalog.text,
                r.rolsuper,
                coalesce(pg_catalog.array_agg(g.rolname::pg_catalog.text ORDER BY g.rolname)
                         FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(pg_catalog.array_agg(m.admin ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(pg_catalog.array_agg(m.inh ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(pg_catalog.array_agg(m.sett ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(pg_catalog.current_setting('rds.extensions', true),
                         pg_catalog.current_setting('extwlist.extensions', true)),
                pg_catalog.current_setting('search_path')
           FROM pg_catalog.pg_roles r
           LEFT JOIN LATERAL (
                SELECT am.roleid, pg_catalog.bool_or(am.admin_option) AS admin,
                       pg_catalog.bool_or(coalesce((pg_catalog.to_jsonb(am) OPERATOR(pg_catalog.->>) 'inherit_option')::pg_catalog.bool,
                                                   r.rolinherit)) AS inh,
                       pg_catalog.bool_or(coalesce((pg_catalog.to_jsonb(am) OPERATOR(pg_catalog.->>) 'set_option')::pg_catalog.bool,
                                                   true)) AS sett
                  FROM pg_catalog.pg_auth_members am WHERE am.member OPERATOR(pg_catalog.=) r.oid
                 GROUP BY am.roleid) m ON true
           LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) m.roleid
          WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER
          GROUP BY r.oid, r.rolname, r.rolsuper";

/// How many columns [`FACTS_SQL`] has.
pub(crate) const FACTS_COLUMNS: usize = 10;

pub(crate) fn server_facts(client: &mut Client) -> Result<ServerFacts> {
    // to_jsonb() reads the 16+ option columns where they exist and yields NULL before 16, so one
    // query serves every version.
    let row = client.query_typed_one(FACTS_SQL, &[])?;
    read_facts(&row, 0)
}

/// Reads the [`FACTS_SQL`] columns starting at `at`, refusing a session whose `search_path` is
/// not the one rds-pg pinned.
pub(crate) fn read_facts(row: &postgres::Row, at: usize) -> Result<ServerFacts> {
    let search_path: String = row.get(at + 9);
    if search_path.replace(' ', "") != crate::connect::PINNED_SEARCH_PATH.replace(' ', "") {
        return Err(Error::PolicyViolation(format!(
            "the session's search_path is {search_path:?}, not the {:?} rds-pg sets when it \
             connects: something between rds-pg and PostgreSQL (a connection pooler such as \
             PgBouncer or RDS Proxy) dropped the startup options; connect to the instance directly",
            crate::connect::PINNED_SEARCH_PATH
        )));
    }
    let version = ServerVersion(row.get::<_, i32>(at) as u32);
    let roles: Vec<String> = row.get(at + 4);
    let admin: Vec<bool> = row.get(at + 5);
    let inherit: Vec<bool> = row.get(at + 6);
    let set: Vec<bool> = row.get(at + 7);
    let whitelist: Option<String> = row.get(at + 8);
    Ok(ServerFacts {
        version,
        major: version.major(),
        current_user: row.get(at + 1),
        current_database: row.get(at + 2),
        is_superuser: row.get(at + 3),
        memberships: roles
            .into_iter()
            .enumerate()
            .map(|(i, role)| Membership {
                role,
                admin: admin[i],
                inherit: inherit[i],
                set: set[i],
            })
            .collect(),
        extension_whitelist: whitelist
            .filter(|w| !w.trim().is_empty())
            .map(|w| split_list(&w)),
    })
}

pub(crate) fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the connected role can do with another role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleAccess {
    /// Has the role's privileges (an inheriting membership).
    pub usage: bool,
    /// May `SET ROLE` to it (before 16: any membership).
    pub set: bool,
    /// Holds ADMIN OPTION on it (may grant it, on 16+ the condition for `GRANT role TO master`).
    pub admin: bool,
}

impl RoleAccess {
    /// Whether master can act as the role both ways (SET ROLE and its privileges).
    pub fn acts_as(&self) -> bool {
        self.usage && self.set
    }
}

/// A role as `pg_roles` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleState {
    /// Superuser.
    pub superuser: bool,
    /// LOGIN.
    pub can_login: bool,
    /// CREATEDB.
    pub create_db: bool,
    /// CREATEROLE.
    pub create_role: bool,
    /// REPLICATION.
    pub replication: bool,
    /// BYPASSRLS.
    pub bypass_rls: bool,
    /// CONNECTION LIMIT.
    pub connection_limit: i32,
    /// Whether VALID UNTIL differs from the spec's (false when the spec has none).
    pub valid_until_differs: bool,
    /// The privileged roles it is a member of, directly or through any chain of memberships:
    /// those of [`PRIVILEGED_ROLES`] that exist on the server, and the connected (master) role.
    /// Sorted.
    pub privileged_memberships: Vec<String>,
    /// It is the connected role.
    pub is_current_user: bool,
    /// What the connected role can do with it.
    pub access: RoleAccess,
    /// Whether master holds a membership of it of the kind rds-pg grants only for the duration
    /// of an operation (no ADMIN OPTION; on 16+ with INHERIT or SET), which a run that was
    /// killed, or a manual grant, left behind. The next operation touching the role removes it.
    /// The membership PostgreSQL 16+ gives the creator of a role (ADMIN only) is not one.
    pub leftover_membership: bool,
    /// Whether it is directly a member of `rds_iam`: an IAM user, who logs in with IAM
    /// authentication tokens instead of a password.
    pub iam: bool,
}

impl RoleState {
    /// Whether it is a member of `rds_superuser` (directly or through a chain).
    pub fn rds_superuser_member(&self) -> bool {
        self.privileged_memberships
            .iter()
            .any(|r| r == "rds_superuser")
    }

    /// What makes it more than a project role, in words (`SUPERUSER`, `CREATEDB`, `member of
    /// rds_superuser`, …); empty for a plain role. The connected role itself is reported
    /// separately ([`RoleState::is_current_user`]).
    pub fn privileges_beyond_a_project_role(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (has, attr) in [
            (self.superuser, "SUPERUSER"),
            (self.create_role, "CREATEROLE"),
            (self.create_db, "CREATEDB"),
            (self.replication, "REPLICATION"),
            (self.bypass_rls, "BYPASSRLS"),
        ] {
            if has {
                out.push(attr.to_owned());
            }
        }
        for role in &self.privileged_memberships {
            out.push(format!("member of {role}"));
        }
        out
    }
}

/// Roles whose members hold privileges over other projects or the instance (RDS's
/// `rds_superuser`, `rds_password`, `rds_replication` and PostgreSQL's predefined roles that read,
/// write or signal everything): a project role is never a member of one, however indirectly.
pub const PRIVILEGED_ROLES: [&str; 7] = [
    "rds_superuser",
    "rds_password",
    "rds_replication",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_signal_backend",
    "pg_monitor",
];

/// `SET` privilege test for `pg_has_role`: 16+ has it; before, any membership allows SET ROLE.
fn set_privilege(major: u32) -> &'static str {
    if major >= 16 {
        "SET"
    } else {
        "MEMBER"
    }
}

/// SQL columns describing role `alias` (a `pg_roles` row, possibly NULL from a LEFT JOIN). Every
/// name is qualified: these run in master's sessions.
pub(crate) fn role_columns(alias: &str, major: u32) -> String {
    let set = set_privilege(major);
    let privileged = PRIVILEGED_ROLES
        .iter()
        .map(|r| postgres_protocol::escape::escape_literal(r))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{a}.oid IS NOT NULL, coalesce({a}.rolsuper, false), coalesce({a}.rolcanlogin, false),
         coalesce({a}.rolcreatedb, false), coalesce({a}.rolcreaterole, false),
         coalesce({a}.rolreplication, false), coalesce({a}.rolbypassrls, false),
         coalesce({a}.rolconnlimit, -1),
         CASE WHEN {a}.oid IS NULL THEN '{{}}'::pg_catalog.text[] ELSE ARRAY(
              SELECT s.rolname::pg_catalog.text FROM pg_catalog.pg_roles s
               WHERE (s.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[{privileged}]::pg_catalog.name[])
                      OR s.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
                 AND s.oid OPERATOR(pg_catalog.<>) {a}.oid
                 AND pg_catalog.pg_has_role({a}.oid, s.oid, 'MEMBER')
               ORDER BY 1) END,
         coalesce({a}.rolname OPERATOR(pg_catalog.=) CURRENT_USER, false),
         CASE WHEN {a}.oid IS NULL THEN false ELSE pg_catalog.pg_has_role(CURRENT_USER, {a}.oid, 'USAGE') END,
         CASE WHEN {a}.oid IS NULL THEN false ELSE pg_catalog.pg_has_role(CURRENT_USER, {a}.oid, '{set}') END,
         CASE WHEN {a}.oid IS NULL THEN false
              ELSE pg_catalog.pg_has_role(CURRENT_USER, {a}.oid, 'MEMBER WITH ADMIN OPTION') END,
         EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members lm
                  WHERE lm.roleid OPERATOR(pg_catalog.=) {a}.oid
                    AND lm.member OPERATOR(pg_catalog.=) (SELECT u.oid FROM pg_catalog.pg_roles u
                                                          WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
                    AND NOT lm.admin_option
                    AND (coalesce((pg_catalog.to_jsonb(lm) OPERATOR(pg_catalog.->>) 'inherit_option')::pg_catalog.bool, true)
                         OR coalesce((pg_catalog.to_jsonb(lm) OPERATOR(pg_catalog.->>) 'set_option')::pg_catalog.bool, true))),
         EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members im
                   JOIN pg_catalog.pg_roles ir ON ir.oid OPERATOR(pg_catalog.=) im.roleid
                  WHERE im.member OPERATOR(pg_catalog.=) {a}.oid
                    AND ir.rolname OPERATOR(pg_catalog.=) 'rds_iam')",
        a = alias
    )
}

/// SQL column (a `text[]`, sorted): the login roles master holds a leftover membership of —
/// one of the kind rds-pg grants only for the duration of an operation (no ADMIN OPTION; on 16+
/// with INHERIT or SET), as [`RoleState::leftover_membership`] — that look like project roles:
/// not master, no SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS, not a member of
/// any of [`PRIVILEGED_ROLES`], no `pg_`/`rds_` name. The membership PostgreSQL 16+ gives the
/// creator of a role (ADMIN only) is not one. Read by every operation that touches roles or
/// databases, which removes such a membership when no other rds-pg operation holds the role's
/// lock (a run killed after `GRANT owner TO master` whose re-run no longer needs the owner).
///
/// On 16+ only memberships master granted itself count: a `REVOKE role FROM master` run by master
/// removes no other (one granted by a superuser is that superuser's to take back).
pub(crate) fn leftover_memberships_column(major: u32) -> String {
    let privileged = PRIVILEGED_ROLES
        .iter()
        .map(|r| postgres_protocol::escape::escape_literal(r))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "ARRAY(SELECT DISTINCT lg.rolname::pg_catalog.text
                 FROM pg_catalog.pg_auth_members lm
                 JOIN pg_catalog.pg_roles lg ON lg.oid OPERATOR(pg_catalog.=) lm.roleid
                WHERE lm.member OPERATOR(pg_catalog.=) (SELECT u.oid FROM pg_catalog.pg_roles u
                                                        WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
                  AND NOT lm.admin_option
                  AND (coalesce((pg_catalog.to_jsonb(lm) OPERATOR(pg_catalog.->>) 'inherit_option')::pg_catalog.bool, true)
                       OR coalesce((pg_catalog.to_jsonb(lm) OPERATOR(pg_catalog.->>) 'set_option')::pg_catalog.bool, true)){grantor}
                  AND lg.rolcanlogin AND NOT lg.rolsuper AND NOT lg.rolcreatedb AND NOT lg.rolcreaterole
                  AND NOT lg.rolreplication AND NOT lg.rolbypassrls
                  AND lg.rolname OPERATOR(pg_catalog.<>) CURRENT_USER
                  AND NOT pg_catalog.starts_with(lg.rolname::pg_catalog.text, 'pg_')
                  AND NOT pg_catalog.starts_with(lg.rolname::pg_catalog.text, 'rds_')
                  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles lp
                                   WHERE lp.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[{privileged}]::pg_catalog.name[])
                                     AND pg_catalog.pg_has_role(lg.oid, lp.oid, 'MEMBER'))
                ORDER BY 1)",
        grantor = if major >= 16 {
            "
                  AND lm.grantor OPERATOR(pg_catalog.=) lm.member"
        } else {
            ""
        }
    )
}

/// Reads the role columns of [`role_columns`] starting at `at`; `None` when the role is missing.
pub(crate) fn read_role(row: &postgres::Row, at: usize) -> Option<RoleState> {
    if !row.get::<_, bool>(at) {
        return None;
    }
    Some(RoleState {
        superuser: row.get(at + 1),
        can_login: row.get(at + 2),
        create_db: row.get(at + 3),
        create_role: row.get(at + 4),
        replication: row.get(at + 5),
        bypass_rls: row.get(at + 6),
        connection_limit: row.get(at + 7),
        valid_until_differs: false,
        privileged_memberships: row.get(at + 8),
        is_current_user: row.get(at + 9),
        access: RoleAccess {
            usage: row.get(at + 10),
            set: row.get(at + 11),
            admin: row.get(at + 12),
        },
        leftover_membership: row.get(at + 13),
        iam: row.get(at + 14),
    })
}

pub(crate) const ROLE_COLUMNS: usize = 15;

/// The snapshot `ensure_user` plans from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSnapshot {
    /// The role, if it exists.
    pub role: Option<RoleState>,
    /// The login roles master holds a leftover membership of (sorted).
    pub leftover_memberships: Vec<String>,
}

pub(crate) fn user_snapshot(
    client: &mut Client,
    major: u32,
    name: &str,
    valid_until: Option<&str>,
) -> Result<UserSnapshot> {
    let sql = format!(
        "SELECT {}, CASE WHEN $2::pg_catalog.text IS NULL THEN false
                         ELSE r.rolvaliduntil IS DISTINCT FROM $2::pg_catalog.text::pg_catalog.timestamptz END,
                {}
           FROM (SELECT $1::pg_catalog.text AS name) n
           LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) n.name",
        role_columns("r", major),
        leftover_memberships_column(major)
    );
    let row = client.query_typed_one(&sql, &[(&name, Type::TEXT), (&valid_until, Type::TEXT)])?;
    let role = read_role(&row, 0).map(|mut r| {
        r.valid_until_differs = row.get(ROLE_COLUMNS);
        r
    });
    Ok(UserSnapshot {
        role,
        leftover_memberships: row.get(ROLE_COLUMNS + 1),
    })
}
