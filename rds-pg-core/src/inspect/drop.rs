//! What teardown reads: the sessions and owner of a database about to be dropped, and where a
//! role about to be dropped owns objects or holds privileges (one `pg_shdepend` query in the
//! maintenance database, then one query in each database it names).

use std::collections::BTreeMap;

use postgres::types::Type;
use postgres::Client;

use super::{read_role, role_columns, RoleAccess, RoleState, ROLE_COLUMNS};
use crate::error::Result;

/// A session connected to a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Backend process id.
    pub pid: i32,
    /// The role it logged in as (empty when hidden).
    pub user: String,
    /// `application_name`.
    pub application: String,
    /// Client address (empty for Unix sockets or when hidden).
    pub client: String,
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {}", self.user, self.pid)?;
        if !self.client.is_empty() {
            write!(f, ", from {}", self.client)?;
        }
        if !self.application.is_empty() {
            write!(f, ", application {:?}", self.application)?;
        }
        f.write_str(")")
    }
}

/// What `drop_database` plans from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropDatabaseSnapshot {
    /// The database's owner, when the database exists.
    pub owner: Option<String>,
    /// The owner as `pg_roles` shows it.
    pub owner_state: Option<RoleState>,
    /// Whether it is marked as a template.
    pub is_template: bool,
    /// Client sessions connected to it (other than rds-pg's own).
    pub sessions: Vec<Session>,
    /// The login roles master holds a leftover membership of (sorted), read also when the
    /// database is gone (a run killed between `DROP DATABASE` and giving up the owner).
    pub leftover_memberships: Vec<String>,
}

pub(crate) fn drop_database_snapshot(
    client: &mut Client,
    major: u32,
    database: &str,
    ignore_pids: &[i32],
) -> Result<DropDatabaseSnapshot> {
    let sql = format!(
        "SELECT d.oid IS NOT NULL, o.rolname::pg_catalog.text, coalesce(d.datistemplate, false), {owner_cols},
                coalesce(s.pids, '{{}}'), coalesce(s.users, '{{}}'), coalesce(s.apps, '{{}}'),
                coalesce(s.clients, '{{}}'), {leftovers}
           FROM (SELECT $1::pg_catalog.text AS dbname) n
           LEFT JOIN pg_catalog.pg_database d ON d.datname OPERATOR(pg_catalog.=) n.dbname
           LEFT JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) d.datdba
           LEFT JOIN LATERAL (
                SELECT pg_catalog.array_agg(a.pid ORDER BY a.pid) AS pids,
                       pg_catalog.array_agg(coalesce(a.usename::pg_catalog.text, '') ORDER BY a.pid) AS users,
                       pg_catalog.array_agg(coalesce(a.application_name, '') ORDER BY a.pid) AS apps,
                       pg_catalog.array_agg(coalesce(pg_catalog.host(a.client_addr), '') ORDER BY a.pid) AS clients
                  FROM pg_catalog.pg_stat_activity a
                 WHERE a.datid OPERATOR(pg_catalog.=) d.oid
                   AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                   AND a.pid OPERATOR(pg_catalog.<>) ALL ($2::pg_catalog.int4[])
                   AND a.backend_type OPERATOR(pg_catalog.=) 'client backend') s ON true",
        owner_cols = role_columns("o", major),
        leftovers = super::leftover_memberships_column(major),
    );
    let row = client.query_typed_one(
        &sql,
        &[(&database, Type::TEXT), (&ignore_pids, Type::INT4_ARRAY)],
    )?;
    let leftover_memberships: Vec<String> = row.get(7 + ROLE_COLUMNS);
    if !row.get::<_, bool>(0) {
        return Ok(DropDatabaseSnapshot {
            leftover_memberships,
            ..DropDatabaseSnapshot::default()
        });
    }
    let pids: Vec<i32> = row.get(3 + ROLE_COLUMNS);
    let users: Vec<String> = row.get(4 + ROLE_COLUMNS);
    let apps: Vec<String> = row.get(5 + ROLE_COLUMNS);
    let clients: Vec<String> = row.get(6 + ROLE_COLUMNS);
    Ok(DropDatabaseSnapshot {
        owner: row.get(1),
        owner_state: read_role(&row, 3),
        is_template: row.get(2),
        sessions: pids
            .into_iter()
            .enumerate()
            .map(|(i, pid)| Session {
                pid,
                user: users[i].clone(),
                application: apps[i].clone(),
                client: clients[i].clone(),
            })
            .collect(),
        leftover_memberships,
    })
}

/// A database where the role to drop owns objects or holds privileges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependentDatabase {
    /// Its name.
    pub name: String,
    /// Whether master may connect to it (needed to clean it).
    pub master_can_connect: bool,
    /// Whether it accepts connections at all (`datallowconn`).
    pub allows_connections: bool,
    /// Its owner.
    pub owner: String,
}

/// What `drop_user` plans from, read in the maintenance database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropUserSnapshot {
    /// The role, when it exists.
    pub role: Option<RoleState>,
    /// The `reassign_to` role, when given and it exists.
    pub reassign_to: Option<RoleState>,
    /// Databases the role owns.
    pub owned_databases: Vec<String>,
    /// Databases (the maintenance one included) where it owns objects or holds privileges.
    pub databases: Vec<DependentDatabase>,
    /// Databases on which it holds privileges (`GRANT … ON DATABASE`), with the grantors.
    pub database_grants: Vec<DatabaseGrant>,
    /// Roles it is a member of.
    pub member_of: Vec<String>,
    /// Roles that are members of it (master excluded).
    pub members: Vec<String>,
    /// Each role that granted it privileges on a database, as `pg_roles` shows it (other
    /// grantors come from [`DropUserDatabase::grantors`]).
    pub grantor_access: BTreeMap<String, RoleState>,
    /// The login roles master holds a leftover membership of (sorted), read also when the role
    /// is gone (a run killed after `DROP ROLE`, before giving up the heir and the grantors).
    pub leftover_memberships: Vec<String>,
}

/// A privilege on a database held by the role to drop.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DatabaseGrant {
    /// The database.
    pub database: String,
    /// Who granted it.
    pub grantor: String,
}

/// A role that granted the role to drop privileges inside a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grantor {
    /// The grantor (`pg_database_owner` appears as the database's owner).
    pub name: String,
    /// What master can do with it.
    pub access: RoleAccess,
    /// Whether it is a superuser (master cannot revoke what it granted).
    pub superuser: bool,
}

/// What the role owns or holds in one database, read in that database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropUserDatabase {
    /// Objects it owns, counted by kind (`relations`, `functions`, …).
    pub owned: BTreeMap<String, i64>,
    /// Objects on which it holds privileges, counted by kind.
    pub privileges: BTreeMap<String, i64>,
    /// Roles that granted it those privileges, sorted by name.
    pub grantors: Vec<Grantor>,
}

pub(crate) fn drop_user_snapshot(
    client: &mut Client,
    major: u32,
    role: &str,
    reassign_to: Option<&str>,
) -> Result<DropUserSnapshot> {
    let sql = format!(
        "WITH dep AS (
              SELECT DISTINCT s.dbid FROM pg_catalog.pg_shdepend s, pg_catalog.pg_roles r
               WHERE r.rolname OPERATOR(pg_catalog.=) $1
                 AND s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
                 AND s.refobjid OPERATOR(pg_catalog.=) r.oid AND s.dbid OPERATOR(pg_catalog.<>) 0),
              dbs AS (
              SELECT d.datname::pg_catalog.text AS name,
                     pg_catalog.has_database_privilege(CURRENT_USER, d.oid, 'CONNECT') AS can,
                     d.datallowconn AS allow, o.rolname::pg_catalog.text AS owner
                FROM pg_catalog.pg_database d
                JOIN dep ON dep.dbid OPERATOR(pg_catalog.=) d.oid
                JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) d.datdba),
              dgr AS (
              SELECT d.datname::pg_catalog.text AS name, g.rolname::pg_catalog.text AS grantor, g.oid AS goid
                FROM pg_catalog.pg_database d, pg_catalog.pg_roles r, pg_catalog.aclexplode(d.datacl) a,
                     pg_catalog.pg_roles g
               WHERE r.rolname OPERATOR(pg_catalog.=) $1 AND a.grantee OPERATOR(pg_catalog.=) r.oid
                 AND g.oid OPERATOR(pg_catalog.=) a.grantor AND g.oid OPERATOR(pg_catalog.<>) r.oid)
         SELECT {role_cols}, {target_cols},
                coalesce((SELECT pg_catalog.array_agg(x.datname::pg_catalog.text ORDER BY x.datname)
                            FROM pg_catalog.pg_database x
                           WHERE x.datdba OPERATOR(pg_catalog.=) r.oid), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(name ORDER BY name) FROM dbs), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(can ORDER BY name) FROM dbs), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(allow ORDER BY name) FROM dbs), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(owner ORDER BY name) FROM dbs), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(name ORDER BY name, grantor) FROM dgr), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(grantor ORDER BY name, grantor) FROM dgr), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(g.rolname::pg_catalog.text ORDER BY g.rolname)
                            FROM pg_catalog.pg_auth_members m
                            JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) m.roleid
                           WHERE m.member OPERATOR(pg_catalog.=) r.oid), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(u.rolname::pg_catalog.text ORDER BY u.rolname)
                            FROM pg_catalog.pg_auth_members m
                            JOIN pg_catalog.pg_roles u ON u.oid OPERATOR(pg_catalog.=) m.member
                          WHERE m.roleid OPERATOR(pg_catalog.=) r.oid
                            AND u.rolname OPERATOR(pg_catalog.<>) CURRENT_USER), '{{}}'),
                {leftovers}
           FROM (SELECT $1::pg_catalog.text AS name, $2::pg_catalog.text AS target) n
           LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) n.name
           LEFT JOIN pg_catalog.pg_roles t ON t.rolname OPERATOR(pg_catalog.=) n.target",
        role_cols = role_columns("r", major),
        target_cols = role_columns("t", major),
        leftovers = super::leftover_memberships_column(major),
    );
    let row = client.query_typed_one(&sql, &[(&role, Type::TEXT), (&reassign_to, Type::TEXT)])?;
    let cols = ROLE_COLUMNS;
    let at = 2 * cols;
    let names: Vec<String> = row.get(at + 1);
    let can: Vec<bool> = row.get(at + 2);
    let allow: Vec<bool> = row.get(at + 3);
    let owners: Vec<String> = row.get(at + 4);
    let grant_dbs: Vec<String> = row.get(at + 5);
    let grantors: Vec<String> = row.get(at + 6);
    let mut snapshot = DropUserSnapshot {
        role: read_role(&row, 0),
        reassign_to: read_role(&row, cols),
        owned_databases: row.get(at),
        databases: names
            .into_iter()
            .enumerate()
            .map(|(i, name)| DependentDatabase {
                name,
                master_can_connect: can[i],
                allows_connections: allow[i],
                owner: owners[i].clone(),
            })
            .collect(),
        database_grants: grant_dbs
            .into_iter()
            .zip(grantors)
            .map(|(database, grantor)| DatabaseGrant { database, grantor })
            .collect(),
        member_of: row.get(at + 7),
        members: row.get(at + 8),
        grantor_access: BTreeMap::new(),
        leftover_memberships: row.get(at + 9),
    };
    let mut wanted: Vec<String> = snapshot
        .database_grants
        .iter()
        .map(|g| g.grantor.clone())
        .collect();
    wanted.sort();
    wanted.dedup();
    if !wanted.is_empty() {
        let sql = format!(
            "SELECT r.rolname::pg_catalog.text, {cols} FROM pg_catalog.pg_roles r
              WHERE r.rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[])",
            cols = role_columns("r", major)
        );
        for row in client.query_typed(&sql, &[(&wanted, Type::TEXT_ARRAY)])? {
            let name: String = row.get(0);
            if let Some(state) = read_role(&row, 1) {
                snapshot.grantor_access.insert(name, state);
            }
        }
    }
    Ok(snapshot)
}

/// Catalog names as a user reads them.
fn catalog_label(catalog: &str) -> &str {
    match catalog {
        "pg_class" => "relations",
        "pg_proc" => "functions",
        "pg_type" => "types",
        "pg_namespace" => "schemas",
        "pg_default_acl" => "default privileges",
        "pg_largeobject" => "large objects",
        "pg_extension" => "extensions",
        "pg_foreign_server" => "foreign servers",
        "pg_foreign_data_wrapper" => "foreign-data wrappers",
        "pg_language" => "languages",
        "pg_collation" => "collations",
        "pg_conversion" => "conversions",
        "pg_operator" => "operators",
        "pg_opclass" => "operator classes",
        "pg_opfamily" => "operator families",
        "pg_ts_config" => "text search configurations",
        "pg_ts_dict" => "text search dictionaries",
        "pg_event_trigger" => "event triggers",
        "pg_publication" => "publications",
        "pg_subscription" => "subscriptions",
        "pg_statistic_ext" => "extended statistics",
        "pg_policy" => "policies",
        other => other,
    }
}

pub(crate) fn drop_user_database(
    client: &mut Client,
    major: u32,
    role: &str,
) -> Result<DropUserDatabase> {
    // Every ACL column of a per-database catalog; pg_default_acl entries are granted by their
    // defaclrole. Privileges granted by pg_database_owner come back as the database's owner.
    let sql = format!(
        "WITH r AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1),
              here AS (SELECT oid, datdba FROM pg_catalog.pg_database
                        WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()),
              dep AS (
              SELECT s.classid::pg_catalog.regclass::pg_catalog.text AS catalog, s.deptype,
                     pg_catalog.count(*) AS n
                FROM pg_catalog.pg_shdepend s, r
               WHERE s.dbid OPERATOR(pg_catalog.=) (SELECT oid FROM here)
                 AND s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
                 AND s.refobjid OPERATOR(pg_catalog.=) r.oid
               GROUP BY 1, 2),
              acl AS (
              SELECT relacl AS acl FROM pg_catalog.pg_class UNION ALL
              SELECT attacl FROM pg_catalog.pg_attribute WHERE attacl IS NOT NULL UNION ALL
              SELECT nspacl FROM pg_catalog.pg_namespace UNION ALL
              SELECT proacl FROM pg_catalog.pg_proc UNION ALL
              SELECT typacl FROM pg_catalog.pg_type UNION ALL
              SELECT lanacl FROM pg_catalog.pg_language UNION ALL
              SELECT lomacl FROM pg_catalog.pg_largeobject_metadata UNION ALL
              SELECT fdwacl FROM pg_catalog.pg_foreign_data_wrapper UNION ALL
              SELECT srvacl FROM pg_catalog.pg_foreign_server UNION ALL
              SELECT defaclacl FROM pg_catalog.pg_default_acl),
              g AS (
              SELECT DISTINCT CASE WHEN a.grantor OPERATOR(pg_catalog.=)
                                        (SELECT oid FROM pg_catalog.pg_roles
                                          WHERE rolname OPERATOR(pg_catalog.=) 'pg_database_owner')
                                   THEN (SELECT datdba FROM here)
                                   ELSE a.grantor END AS goid
                FROM acl, r, pg_catalog.aclexplode(acl.acl) a
               WHERE acl.acl IS NOT NULL AND a.grantee OPERATOR(pg_catalog.=) r.oid
                 AND a.grantor OPERATOR(pg_catalog.<>) r.oid),
              gx AS (
              SELECT x.rolname, g.goid, x.rolsuper FROM g
                JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) g.goid
               WHERE x.rolname OPERATOR(pg_catalog.<>) CURRENT_USER)
         SELECT coalesce((SELECT pg_catalog.array_agg(catalog ORDER BY catalog) FROM dep
                           WHERE deptype OPERATOR(pg_catalog.=) 'o'), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(n ORDER BY catalog) FROM dep
                           WHERE deptype OPERATOR(pg_catalog.=) 'o'), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(catalog ORDER BY catalog) FROM dep
                           WHERE deptype OPERATOR(pg_catalog.<>) 'o'), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(n ORDER BY catalog) FROM dep
                           WHERE deptype OPERATOR(pg_catalog.<>) 'o'), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(rolname::pg_catalog.text ORDER BY rolname) FROM gx), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(pg_catalog.pg_has_role(CURRENT_USER, goid, 'USAGE')
                                                      ORDER BY rolname) FROM gx), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(pg_catalog.pg_has_role(CURRENT_USER, goid, '{set}')
                                                      ORDER BY rolname) FROM gx), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(pg_catalog.pg_has_role(CURRENT_USER, goid, 'MEMBER WITH ADMIN OPTION')
                                                      ORDER BY rolname) FROM gx), '{{}}'),
                coalesce((SELECT pg_catalog.array_agg(rolsuper ORDER BY rolname) FROM gx), '{{}}')",
        set = if major >= 16 { "SET" } else { "MEMBER" },
    );
    let row = client.query_typed_one(&sql, &[(&role, Type::TEXT)])?;
    let owned_cat: Vec<String> = row.get(0);
    let owned_n: Vec<i64> = row.get(1);
    let priv_cat: Vec<String> = row.get(2);
    let priv_n: Vec<i64> = row.get(3);
    let names: Vec<String> = row.get(4);
    let usage: Vec<bool> = row.get(5);
    let set: Vec<bool> = row.get(6);
    let admin: Vec<bool> = row.get(7);
    let superuser: Vec<bool> = row.get(8);
    let merge = |cats: Vec<String>, ns: Vec<i64>| {
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        for (c, n) in cats.into_iter().zip(ns) {
            *out.entry(catalog_label(&c).to_owned()).or_default() += n;
        }
        out
    };
    Ok(DropUserDatabase {
        owned: merge(owned_cat, owned_n),
        privileges: merge(priv_cat, priv_n),
        grantors: names
            .into_iter()
            .enumerate()
            .map(|(i, name)| Grantor {
                name,
                access: RoleAccess {
                    usage: usage[i],
                    set: set[i],
                    admin: admin[i],
                },
                superuser: superuser[i],
            })
            .collect(),
    })
}
