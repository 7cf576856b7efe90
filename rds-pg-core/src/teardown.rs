//! Teardown and password rotation: what `drop_database`, `drop_user` and `rotate_password`
//! inspect (one bulk query per database) and the pure planners that turn it into steps.
//!
//! The seed's commands fail on RDS because master is not a superuser (see
//! `rds-semantics.md` §3): dropping a database needs the owner's privileges, and dropping a role
//! needs `REASSIGN OWNED`/`DROP OWNED` in **every** database where it owns objects or holds
//! privileges, run by someone with the privileges of the role and of every role that granted it
//! something. The planners here gain exactly those memberships for the operation.

use std::collections::BTreeMap;

use postgres::types::Type;
use postgres::Client;

use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inspect::{RoleAccess, RoleState, ServerFacts};
use crate::plan::{self, Plan, Step, StepKind};
use crate::secret::Password;
use crate::spec::{DropDatabaseOptions, DropUserOptions};

fn q(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// Databases rds-pg never drops, whatever the caller asks.
const PROTECTED_DATABASES: [&str; 4] = ["postgres", "template0", "template1", "rdsadmin"];

// ---------------------------------------------------------------------------------------------
// drop_database
// ---------------------------------------------------------------------------------------------

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
                coalesce(s.clients, '{{}}')
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
        owner_cols = crate::inspect::role_columns("o", major),
    );
    let row = client.query_typed_one(
        &sql,
        &[(&database, Type::TEXT), (&ignore_pids, Type::INT4_ARRAY)],
    )?;
    if !row.get::<_, bool>(0) {
        return Ok(DropDatabaseSnapshot::default());
    }
    let pids: Vec<i32> = row.get(3 + crate::inspect::ROLE_COLUMNS);
    let users: Vec<String> = row.get(4 + crate::inspect::ROLE_COLUMNS);
    let apps: Vec<String> = row.get(5 + crate::inspect::ROLE_COLUMNS);
    let clients: Vec<String> = row.get(6 + crate::inspect::ROLE_COLUMNS);
    Ok(DropDatabaseSnapshot {
        owner: row.get(1),
        owner_state: crate::inspect::read_role(&row, 3),
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
    })
}

/// Refuses databases rds-pg never drops, before any SQL.
///
/// # Errors
/// [`Error::PolicyViolation`] for `postgres`, the templates, `rdsadmin`, the maintenance
/// database; [`Error::InvalidName`] for names reserved by RDS.
pub fn check_droppable_database(facts: &ServerFacts, name: &DatabaseName) -> Result<()> {
    if PROTECTED_DATABASES.contains(&name.as_str()) {
        return Err(Error::PolicyViolation(format!(
            "database {:?} belongs to the RDS instance itself; rds-pg never drops it",
            name.as_str()
        )));
    }
    if name.as_str() == facts.current_database {
        return Err(Error::PolicyViolation(format!(
            "database {:?} is the maintenance database rds-pg is connected to; connect to \
             another one (usually postgres) to drop it",
            name.as_str()
        )));
    }
    name.ensure_creatable()
}

/// Plans `drop_database`.
///
/// # Errors
/// As [`check_droppable_database`]; [`Error::StillInUse`] naming the connected sessions unless
/// `options.force`; [`Error::PolicyViolation`] for a template or a database owned by a
/// superuser; [`Error::PermissionDenied`] with the fix when master cannot gain the owner's
/// privileges (16+ without ADMIN).
pub fn plan_drop_database(
    facts: &ServerFacts,
    snapshot: &DropDatabaseSnapshot,
    name: &DatabaseName,
    options: &DropDatabaseOptions,
) -> Result<Plan> {
    check_droppable_database(facts, name)?;
    let mut plan = Plan::default();
    let (Some(owner), Some(owner_state)) = (&snapshot.owner, &snapshot.owner_state) else {
        plan.notes
            .push(format!("database {:?} does not exist", name.as_str()));
        return Ok(plan);
    };
    if snapshot.is_template {
        return Err(Error::PolicyViolation(format!(
            "database {:?} is a template; rds-pg does not drop templates",
            name.as_str()
        )));
    }
    if owner_state.superuser && !facts.is_superuser {
        return Err(Error::PolicyViolation(format!(
            "database {:?} is owned by superuser {owner:?}; the RDS master cannot drop it",
            name.as_str()
        )));
    }
    if !snapshot.sessions.is_empty() && !options.force {
        return Err(Error::StillInUse {
            message: format!(
                "database {:?} has {} connected session(s): {}; stop them or drop with force \
                 (terminates them)",
                name.as_str(),
                snapshot.sessions.len(),
                list(&snapshot.sessions)
            ),
            source: None,
        });
    }
    // DROP DATABASE needs the owner's privileges (an inheriting membership on 16+).
    let membership = if owner == &facts.current_user {
        None
    } else {
        let access = RoleAccess {
            // SET is not needed to drop; ask only for what is missing.
            set: true,
            ..owner_state.access.clone()
        };
        plan::temporary_membership(facts, owner, &access)?
    };
    if let Some((grant, _)) = &membership {
        plan.steps.push(grant.clone());
    }
    let mut sql = format!("DROP DATABASE IF EXISTS {}", name.quoted());
    let reason = if options.force && !snapshot.sessions.is_empty() {
        sql.push_str(" WITH (FORCE)");
        format!(
            "requested; terminates {} session(s): {}",
            snapshot.sessions.len(),
            list(&snapshot.sessions)
        )
    } else {
        if options.force {
            sql.push_str(" WITH (FORCE)");
        }
        "requested".to_owned()
    };
    plan.steps
        .push(Step::new(None, StepKind::Change, sql, reason).standalone());
    if let Some((_, revoke)) = membership {
        plan.steps.push(revoke);
    }
    Ok(plan)
}

fn list(sessions: &[Session]) -> String {
    sessions
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// drop_user
// ---------------------------------------------------------------------------------------------

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
    pub database_grants: Vec<(String, String)>,
    /// Roles it is a member of.
    pub member_of: Vec<String>,
    /// Roles that are members of it (master excluded).
    pub members: Vec<String>,
    /// What master can do with each role that granted it something (database grants here; other
    /// grantors come from [`DropUserDatabase::grantors`]).
    pub grantor_access: BTreeMap<String, (RoleState, bool)>,
}

/// What the role owns or holds in one database, read in that database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropUserDatabase {
    /// Objects it owns, counted by catalog (`relations`, `functions`, …).
    pub owned: Vec<(String, i64)>,
    /// Objects on which it holds privileges, counted by catalog.
    pub privileges: Vec<(String, i64)>,
    /// Roles that granted it those privileges, each with what master can do with it and whether
    /// the grantor is a superuser. `pg_database_owner` appears as the database's owner.
    pub grantors: Vec<(String, RoleAccess, bool)>,
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
                            AND u.rolname OPERATOR(pg_catalog.<>) CURRENT_USER), '{{}}')
           FROM (SELECT $1::pg_catalog.text AS name, $2::pg_catalog.text AS target) n
           LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) n.name
           LEFT JOIN pg_catalog.pg_roles t ON t.rolname OPERATOR(pg_catalog.=) n.target",
        role_cols = crate::inspect::role_columns("r", major),
        target_cols = crate::inspect::role_columns("t", major),
    );
    let row = client.query_typed_one(&sql, &[(&role, Type::TEXT), (&reassign_to, Type::TEXT)])?;
    let cols = crate::inspect::ROLE_COLUMNS;
    let at = 2 * cols;
    let names: Vec<String> = row.get(at + 1);
    let can: Vec<bool> = row.get(at + 2);
    let allow: Vec<bool> = row.get(at + 3);
    let owners: Vec<String> = row.get(at + 4);
    let grant_dbs: Vec<String> = row.get(at + 5);
    let grantors: Vec<String> = row.get(at + 6);
    let mut snapshot = DropUserSnapshot {
        role: crate::inspect::read_role(&row, 0),
        reassign_to: crate::inspect::read_role(&row, cols),
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
        database_grants: grant_dbs.into_iter().zip(grantors).collect(),
        member_of: row.get(at + 7),
        members: row.get(at + 8),
        grantor_access: BTreeMap::new(),
    };
    let mut wanted: Vec<String> = snapshot
        .database_grants
        .iter()
        .map(|(_, g)| g.clone())
        .collect();
    wanted.sort();
    wanted.dedup();
    if !wanted.is_empty() {
        let sql = format!(
            "SELECT r.rolname::pg_catalog.text, {cols} FROM pg_catalog.pg_roles r
              WHERE r.rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[])",
            cols = crate::inspect::role_columns("r", major)
        );
        for row in client.query_typed(&sql, &[(&wanted, Type::TEXT_ARRAY)])? {
            let name: String = row.get(0);
            if let Some(state) = crate::inspect::read_role(&row, 1) {
                let superuser = state.superuser;
                snapshot.grantor_access.insert(name, (state, superuser));
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
        let mut out: Vec<(String, i64)> = Vec::new();
        for (c, n) in cats.into_iter().zip(ns) {
            let label = catalog_label(&c).to_owned();
            match out.iter_mut().find(|(l, _)| *l == label) {
                Some(e) => e.1 += n,
                None => out.push((label, n)),
            }
        }
        out
    };
    Ok(DropUserDatabase {
        owned: merge(owned_cat, owned_n),
        privileges: merge(priv_cat, priv_n),
        grantors: names
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n,
                    RoleAccess {
                        usage: usage[i],
                        set: set[i],
                        admin: admin[i],
                    },
                    superuser[i],
                )
            })
            .collect(),
    })
}

fn counts(items: &[(String, i64)]) -> String {
    items
        .iter()
        .map(|(what, n)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses roles rds-pg never drops, before any SQL.
///
/// # Errors
/// [`Error::InvalidName`] for names reserved by RDS (`rdsadmin`, `rds_*`, …).
pub fn check_droppable_role(name: &RoleName) -> Result<()> {
    name.ensure_creatable()
}

/// Plans `drop_user` from the maintenance snapshot and one snapshot per dependent database
/// (keyed by name; the maintenance database's is under its name too).
///
/// # Errors
/// [`Error::PolicyViolation`] for master, a superuser, an `rds_superuser` member, a role owning
/// databases without `reassign_to`, or privileges granted by a superuser;
/// [`Error::PermissionDenied`] naming databases master cannot connect to, or a role master
/// cannot gain on 16+; [`Error::NotFound`] for a missing `reassign_to` — all before any SQL.
pub fn plan_drop_user(
    facts: &ServerFacts,
    cluster: &DropUserSnapshot,
    per_database: &BTreeMap<String, DropUserDatabase>,
    name: &RoleName,
    options: &DropUserOptions,
) -> Result<Plan> {
    check_droppable_role(name)?;
    let mut plan = Plan::default();
    let Some(role) = &cluster.role else {
        plan.notes
            .push(format!("role {:?} does not exist", name.as_str()));
        return Ok(plan);
    };
    plan::refuse_administrator(name.as_str(), role, "role to drop")?;
    if let Some(target) = &options.reassign_to {
        target.ensure_creatable().or_else(|e| {
            // master itself is a fine heir even when its name is reserved-looking.
            if target.as_str() == facts.current_user {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        if target == name {
            return Err(Error::InvalidInput(format!(
                "cannot reassign {:?}'s objects to itself",
                name.as_str()
            )));
        }
        let state = cluster
            .reassign_to
            .as_ref()
            .ok_or_else(|| Error::NotFound {
                message: format!("role {:?} (reassign_to) does not exist", target.as_str()),
                source: None,
            })?;
        if state.superuser {
            return Err(Error::PolicyViolation(format!(
                "{:?} is a superuser; the RDS master cannot give objects to it",
                target.as_str()
            )));
        }
    } else if !cluster.owned_databases.is_empty() {
        return Err(Error::PolicyViolation(format!(
            "role {:?} owns database(s) {}; drop them first (drop_database) or reassign them \
             (reassign_to)",
            name.as_str(),
            cluster.owned_databases.join(", ")
        )));
    }
    let unreachable: Vec<&DependentDatabase> = cluster
        .databases
        .iter()
        .filter(|d| d.name != facts.current_database)
        .filter(|d| !d.allows_connections || !d.master_can_connect)
        .collect();
    if !unreachable.is_empty() && !facts.is_superuser {
        let names: Vec<String> = unreachable.iter().map(|d| d.name.clone()).collect();
        let fix = unreachable
            .iter()
            .filter(|d| d.allows_connections)
            .map(|d| {
                format!(
                    "{} runs GRANT CONNECT ON DATABASE {} TO {}",
                    d.owner,
                    q(&d.name),
                    q(&facts.current_user)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::PermissionDenied {
            message: format!(
                "role {:?} owns objects or holds privileges in database(s) {} that {:?} cannot \
                 connect to, so they cannot be cleaned",
                name.as_str(),
                names.join(", "),
                facts.current_user
            ),
            hint: (!fix.is_empty()).then_some(fix),
            source: None,
        });
    }

    // Memberships master needs: the role itself, the heir, and whoever granted the role
    // something (DROP OWNED can only revoke what master may revoke as that grantor).
    let mut needed: Vec<(String, RoleAccess)> =
        vec![(name.as_str().to_owned(), role.access.clone())];
    if let (Some(target), Some(state)) = (&options.reassign_to, &cluster.reassign_to) {
        needed.push((target.as_str().to_owned(), state.access.clone()));
    }
    let mut superuser_grants: Vec<String> = Vec::new();
    for (db, grantor) in &cluster.database_grants {
        if let Some((state, superuser)) = cluster.grantor_access.get(grantor) {
            if *superuser {
                superuser_grants.push(format!("database {db} (by {grantor})"));
            } else if grantor != &facts.current_user {
                needed.push((grantor.clone(), state.access.clone()));
            }
        }
    }
    for (db, snapshot) in per_database {
        for (grantor, access, superuser) in &snapshot.grantors {
            if *superuser {
                superuser_grants.push(format!("objects in {db} (by {grantor})"));
            } else {
                needed.push((grantor.clone(), access.clone()));
            }
        }
    }
    if !superuser_grants.is_empty() && !facts.is_superuser {
        return Err(Error::PolicyViolation(format!(
            "role {:?} holds privileges granted by a superuser on {}; the RDS master cannot revoke \
             them, so the role cannot be dropped",
            name.as_str(),
            superuser_grants.join(", ")
        )));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut grants = Vec::new();
    let mut revokes = Vec::new();
    for (who, access) in needed {
        if seen.contains(&who) || who == facts.current_user {
            continue;
        }
        seen.push(who.clone());
        if let Some((grant, revoke)) = plan::temporary_membership(facts, &who, &access)? {
            grants.push(grant);
            // The role's own membership goes away with DROP ROLE.
            revokes.push(if who == name.as_str() {
                revoke.only_on_failure()
            } else {
                revoke
            });
        }
    }
    plan.steps.extend(grants);

    let role_q = name.quoted();
    let owned_steps = |database: Option<&DatabaseName>, summary: Option<&DropUserDatabase>| {
        let mut steps = Vec::new();
        let (owned, privileges) = summary
            .map(|s| (counts(&s.owned), counts(&s.privileges)))
            .unwrap_or_default();
        if let Some(target) = &options.reassign_to {
            let what = if owned.is_empty() {
                "anything the role still owns".to_owned()
            } else {
                owned.clone()
            };
            steps.push(Step::new(
                database,
                StepKind::Change,
                format!("REASSIGN OWNED BY {role_q} TO {}", target.quoted()),
                format!("gives {what} to {:?}", target.as_str()),
            ));
        }
        let mut what = Vec::new();
        if options.reassign_to.is_none() && !owned.is_empty() {
            what.push(format!("drops {owned}"));
        }
        if !privileges.is_empty() {
            what.push(format!("revokes privileges on {privileges}"));
        }
        if what.is_empty() {
            what.push("revokes database-level privileges".to_owned());
        }
        steps.push(Step::new(
            database,
            StepKind::Change,
            format!("DROP OWNED BY {role_q}"),
            what.join("; "),
        ));
        steps
    };
    for d in &cluster.databases {
        if d.name == facts.current_database {
            continue;
        }
        let database = DatabaseName::new(&d.name)?;
        plan.steps
            .extend(owned_steps(Some(&database), per_database.get(&d.name)));
    }
    // The maintenance database last: it also covers shared objects (database grants, owned
    // databases when reassigning).
    plan.steps
        .extend(owned_steps(None, per_database.get(&facts.current_database)));
    let mut reason = "requested".to_owned();
    if !cluster.member_of.is_empty() || !cluster.members.is_empty() {
        let mut parts = Vec::new();
        if !cluster.member_of.is_empty() {
            parts.push(format!("member of {}", cluster.member_of.join(", ")));
        }
        if !cluster.members.is_empty() {
            parts.push(format!("granted to {}", cluster.members.join(", ")));
        }
        reason = format!("requested; removes its memberships ({})", parts.join("; "));
    }
    plan.steps.push(Step::new(
        None,
        StepKind::Change,
        format!("DROP ROLE {role_q}"),
        reason,
    ));
    for (db, grantor) in &cluster.database_grants {
        plan.notes.push(format!(
            "revokes {:?}'s privileges on database {db} (granted by {grantor})",
            name.as_str()
        ));
    }
    plan.steps.extend(revokes);
    Ok(plan)
}

// ---------------------------------------------------------------------------------------------
// rotate_password
// ---------------------------------------------------------------------------------------------

/// Plans `rotate_password` for an existing role (`snapshot` from `user_snapshot`).
///
/// # Errors
/// [`Error::NotFound`] for a missing role; [`Error::PolicyViolation`] for master, a superuser or
/// an `rds_superuser` member; [`Error::PermissionDenied`] on 16+ without ADMIN on the role.
pub fn plan_rotate_password(
    facts: &ServerFacts,
    role: Option<&RoleState>,
    name: &RoleName,
    password: Option<Password>,
) -> Result<Plan> {
    name.ensure_creatable()?;
    let role = role.ok_or_else(|| Error::NotFound {
        message: format!("role {:?} does not exist", name.as_str()),
        source: None,
    })?;
    plan::refuse_privileged(
        name.as_str(),
        role,
        "project user whose password rds-pg rotates",
    )?;
    if facts.major >= 16 && !role.access.admin && !facts.is_superuser {
        return Err(plan::missing_admin(facts, name.as_str()));
    }
    let mut plan = Plan::default();
    let password = match password {
        Some(p) => p,
        None => {
            let p = Password::generate()?;
            plan.generated_password = Some(p.clone());
            p
        }
    };
    plan.steps.push(
        Step::new(
            None,
            StepKind::Change,
            format!("ALTER ROLE {} PASSWORD {}", name.quoted(), plan::REDACTED),
            "new password (sent as a SCRAM-SHA-256 verifier)",
        )
        .with_verifier(password.scram_verifier()),
    );
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{facts, project_role};

    /// What master has on a role it created on 16+: ADMIN only.
    fn admin_only() -> RoleAccess {
        RoleAccess {
            usage: false,
            set: false,
            admin: true,
        }
    }

    fn db_snapshot(access: RoleAccess, sessions: usize) -> DropDatabaseSnapshot {
        DropDatabaseSnapshot {
            owner: Some("shop".into()),
            owner_state: Some(project_role(access)),
            is_template: false,
            sessions: (0..sessions)
                .map(|i| Session {
                    pid: 100 + i as i32,
                    user: "shop".into(),
                    application: "psql".into(),
                    client: "10.0.0.9".into(),
                })
                .collect(),
        }
    }

    fn name(s: &str) -> DatabaseName {
        DatabaseName::new(s).unwrap()
    }

    #[test]
    fn protected_and_maintenance_databases_are_refused() {
        let f = facts(16);
        for n in ["postgres", "template0", "template1", "rdsadmin"] {
            let e = plan_drop_database(
                &f,
                &db_snapshot(admin_only(), 0),
                &name(n),
                &Default::default(),
            )
            .unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::PolicyViolation, "{n}");
        }
        let mut f = facts(16);
        f.current_database = "maint".into();
        let e = plan_drop_database(
            &f,
            &db_snapshot(admin_only(), 0),
            &name("maint"),
            &Default::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("maintenance database"), "{e}");
    }

    #[test]
    fn a_missing_database_is_no_change() {
        let plan = plan_drop_database(
            &facts(13),
            &DropDatabaseSnapshot::default(),
            &name("gone"),
            &Default::default(),
        )
        .unwrap();
        assert!(plan.is_empty());
        assert!(plan.notes[0].contains("does not exist"));
    }

    #[test]
    fn sessions_refuse_the_drop_unless_forced() {
        let snapshot = db_snapshot(admin_only(), 2);
        let e = plan_drop_database(&facts(16), &snapshot, &name("shop_db"), &Default::default())
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StillInUse);
        assert!(
            e.to_string()
                .contains("shop (pid 100, from 10.0.0.9, application \"psql\")"),
            "{e}"
        );
        let plan = plan_drop_database(
            &facts(16),
            &snapshot,
            &name("shop_db"),
            &DropDatabaseOptions::new().force(true),
        )
        .unwrap();
        let sql = plan.sql();
        assert_eq!(
            sql,
            vec![
                "GRANT \"shop\" TO \"master\" WITH INHERIT TRUE, SET TRUE",
                "DROP DATABASE IF EXISTS \"shop_db\" WITH (FORCE)",
                "REVOKE \"shop\" FROM \"master\"",
            ]
        );
        assert!(plan.steps[1].standalone, "DROP DATABASE is sent on its own");
        assert_eq!(
            plan.steps[0].temporary_role().map(|r| r.as_str()),
            Some("shop")
        );
    }

    #[test]
    fn a_member_of_the_owner_drops_without_a_temporary_grant() {
        let access = RoleAccess {
            usage: true,
            set: false,
            admin: true,
        };
        let plan = plan_drop_database(
            &facts(16),
            &db_snapshot(access, 0),
            &name("shop_db"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(plan.sql(), vec!["DROP DATABASE IF EXISTS \"shop_db\""]);
    }

    #[test]
    fn without_admin_on_16_the_drop_fails_with_the_fix() {
        let e = plan_drop_database(
            &facts(16),
            &db_snapshot(RoleAccess::default(), 0),
            &name("shop_db"),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied);
        assert!(e.hint().unwrap().contains("WITH ADMIN OPTION"), "{e}");
        // Before 16 CREATEROLE is enough to grant the membership.
        let plan = plan_drop_database(
            &facts(15),
            &db_snapshot(RoleAccess::default(), 0),
            &name("shop_db"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(plan.sql()[0], "GRANT \"shop\" TO \"master\"");
    }

    fn user_snapshot(databases: &[&str]) -> DropUserSnapshot {
        DropUserSnapshot {
            role: Some(project_role(admin_only())),
            databases: databases
                .iter()
                .map(|d| DependentDatabase {
                    name: (*d).into(),
                    master_can_connect: true,
                    allows_connections: true,
                    owner: "host".into(),
                })
                .collect(),
            ..DropUserSnapshot::default()
        }
    }

    fn role(s: &str) -> RoleName {
        RoleName::new(s).unwrap()
    }

    #[test]
    fn drop_user_cleans_every_database_then_the_maintenance_one() {
        let mut per_db = BTreeMap::new();
        per_db.insert(
            "a".to_owned(),
            DropUserDatabase {
                owned: vec![("relations".into(), 3)],
                privileges: vec![("schemas".into(), 1)],
                grantors: vec![("host".into(), admin_only(), false)],
            },
        );
        let snapshot = user_snapshot(&["a", "postgres"]);
        let plan = plan_drop_user(
            &facts(16),
            &snapshot,
            &per_db,
            &role("app"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            plan.sql(),
            vec![
                "GRANT \"app\" TO \"master\" WITH INHERIT TRUE, SET TRUE",
                "GRANT \"host\" TO \"master\" WITH INHERIT TRUE, SET TRUE",
                "DROP OWNED BY \"app\"",
                "DROP OWNED BY \"app\"",
                "DROP ROLE \"app\"",
                "REVOKE \"app\" FROM \"master\"",
                "REVOKE \"host\" FROM \"master\"",
            ]
        );
        assert_eq!(plan.steps[2].database_label(), "a");
        assert_eq!(
            plan.steps[2].reason,
            "drops 3 relations; revokes privileges on 1 schemas"
        );
        assert_eq!(plan.steps[3].database_label(), "(maintenance)");
        assert!(
            plan.steps[5].only_on_failure,
            "app's membership goes with DROP ROLE"
        );
        assert!(!plan.steps[6].only_on_failure);
    }

    #[test]
    fn drop_user_refuses_owned_databases_and_unreachable_ones() {
        let mut snapshot = user_snapshot(&["a"]);
        snapshot.owned_databases = vec!["app_db".into()];
        let e = plan_drop_user(
            &facts(15),
            &snapshot,
            &BTreeMap::new(),
            &role("app"),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PolicyViolation);
        assert!(e.to_string().contains("app_db"));

        let mut snapshot = user_snapshot(&["a"]);
        snapshot.databases[0].master_can_connect = false;
        let e = plan_drop_user(
            &facts(15),
            &snapshot,
            &BTreeMap::new(),
            &role("app"),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied);
        assert!(
            e.hint()
                .unwrap()
                .contains("GRANT CONNECT ON DATABASE \"a\" TO \"master\""),
            "{e}"
        );
    }

    #[test]
    fn drop_user_refuses_privileges_granted_by_a_superuser() {
        let mut per_db = BTreeMap::new();
        per_db.insert(
            "a".to_owned(),
            DropUserDatabase {
                grantors: vec![("rdsadmin".into(), RoleAccess::default(), true)],
                ..DropUserDatabase::default()
            },
        );
        let e = plan_drop_user(
            &facts(15),
            &user_snapshot(&["a"]),
            &per_db,
            &role("app"),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PolicyViolation);
        assert!(e.to_string().contains("rdsadmin"));
    }

    #[test]
    fn rotate_never_shows_the_password() {
        let plan = plan_rotate_password(
            &facts(16),
            Some(&project_role(admin_only())),
            &role("app"),
            None,
        )
        .unwrap();
        let generated = plan.generated_password.clone().unwrap();
        let shown = format!("{plan}{plan:?}");
        assert!(!shown.contains(generated.expose()));
        assert!(!shown.contains("SCRAM-SHA-256$"));
        assert!(plan.steps[0].executable_sql().contains("SCRAM-SHA-256$"));
        let e = plan_rotate_password(
            &facts(16),
            Some(&project_role(RoleAccess::default())),
            &role("app"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied);
    }
}
