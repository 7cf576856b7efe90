//! What the audit reads: one catalog query for the cluster (roles, memberships, databases and
//! their ACLs, who may connect where, settings), one per database (schemas open to creation,
//! objects of other roles in `postgres` and `template1`, names that shadow `pg_catalog`,
//! SECURITY DEFINER functions, grant options), each answered as one JSON document; and whether
//! the server lets a login without TLS reach authentication. Never reads `pg_authid`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use postgres::types::Type;
use serde::Deserialize;

use super::rules::Scope;
use crate::config::ConnectOptions;
use crate::error::{Error, ErrorKind, Result, SqlState};

/// A role as `pg_roles` shows it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct RoleRow {
    pub oid: u32,
    pub name: String,
    pub login: bool,
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connection_limit: i32,
    pub valid_until: Option<String>,
    /// With a `valid_until` requirement for the role: whether the role expires later (or never).
    pub expires_after: Option<bool>,
}

/// One row of `pg_auth_members`, with 16's options (before 16: INHERIT is the member's
/// `rolinherit`, SET is true).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct MembershipRow {
    pub role: u32,
    pub member: u32,
    pub grantor: u32,
    pub admin: bool,
    pub inherit: bool,
    pub set: bool,
}

/// One entry of an ACL, as `aclexplode` shows it (grantee 0 is PUBLIC).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct AclRow {
    pub grantor: u32,
    pub grantee: u32,
    pub privilege: String,
    pub grantable: bool,
}

/// A database as `pg_database` shows it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct DatabaseRow {
    pub oid: u32,
    pub name: String,
    pub owner: u32,
    pub allow_connections: bool,
    pub is_template: bool,
    pub master_can_connect: bool,
    /// Its ACL (the default one when `datacl` is NULL).
    pub acl: Vec<AclRow>,
}

/// What the cluster-wide query reads.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct ClusterCatalog {
    pub version_num: u32,
    pub current_user: String,
    pub current_database: String,
    pub search_path: String,
    pub rds_force_ssl: Option<String>,
    pub ssl: String,
    pub password_encryption: String,
    pub roles: Vec<RoleRow>,
    pub memberships: Vec<MembershipRow>,
    pub databases: Vec<DatabaseRow>,
    /// (login role, database) pairs where the role may connect.
    pub connect: Vec<(u32, u32)>,
}

/// An object found in a database.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct ObjectRow {
    /// `pg_describe_object`'s description.
    pub description: String,
    /// `pg_identify_object`'s type (`function`, `operator`, `table`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub schema: Option<String>,
    /// `pg_identify_object`'s identity (quoted, schema-qualified).
    pub identity: Option<String>,
    pub owner: u32,
}

/// A schema some role other than its owner may create in.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct SchemaCreateRow {
    pub schema: String,
    pub owner: u32,
    pub grantor: u32,
    pub grantee: u32,
}

/// A privilege held WITH GRANT OPTION on an object by a role that does not own it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct GrantOptionRow {
    pub description: String,
    /// The GRANT keyword for its kind (`TABLE`, `SEQUENCE`, `SCHEMA`, `ROUTINE`, …).
    pub keyword: String,
    pub identity: String,
    pub owner: u32,
    pub grantor: u32,
    pub grantee: u32,
    pub privilege: String,
}

/// A default privilege held WITH GRANT OPTION.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct DefaultGrantOptionRow {
    /// The role whose future objects it is for.
    pub role: u32,
    /// The schema, when it is for one.
    pub schema: Option<String>,
    /// `r` tables, `S` sequences, `f` functions, `T` types, `n` schemas.
    pub objtype: String,
    pub grantee: u32,
    pub privilege: String,
}

/// What the query in one database reads.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct DatabaseCatalog {
    pub database: String,
    pub schema_create: Vec<SchemaCreateRow>,
    /// Objects owned by roles other than master and the superusers (`postgres` and
    /// `template1` only).
    pub owned: Vec<ObjectRow>,
    pub shadowing: Vec<ObjectRow>,
    /// SECURITY DEFINER functions of no extension (project databases only).
    pub security_definers: Vec<ObjectRow>,
    pub grant_options: Vec<GrantOptionRow>,
    pub default_grant_options: Vec<DefaultGrantOptionRow>,
}

/// Whether connections must use TLS, as far as the audit can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TlsState {
    /// `rds.force_ssl` is on, or a login without TLS was refused before authentication.
    Required,
    /// TLS is not required; why the audit says so.
    NotRequired(String),
    /// The audit cannot tell; why.
    Unknown(String),
}

/// Everything one audit read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub cluster: ClusterCatalog,
    /// The databases looked inside, sorted by name.
    pub databases: Vec<DatabaseCatalog>,
    /// Databases master could not look inside, with the reason.
    pub not_audited: Vec<(String, String)>,
    pub tls: TlsState,
}

/// Names of the databases RDS and PostgreSQL create, which belong to no project.
pub(crate) const SYSTEM_DATABASES: [&str; 4] = ["postgres", "template0", "template1", "rdsadmin"];

const CLUSTER_SQL: &str = "
WITH req AS (
  SELECT u.n AS name, u.v AS valid_until
    FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[])) AS u(n, v))
SELECT pg_catalog.json_build_object(
  'version_num', pg_catalog.current_setting('server_version_num')::pg_catalog.int4,
  'current_user', CURRENT_USER::pg_catalog.text,
  'current_database', pg_catalog.current_database()::pg_catalog.text,
  'search_path', pg_catalog.current_setting('search_path'),
  'rds_force_ssl', pg_catalog.current_setting('rds.force_ssl', true),
  'ssl', pg_catalog.current_setting('ssl'),
  'password_encryption', pg_catalog.current_setting('password_encryption'),
  'roles', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'oid', r.oid::pg_catalog.int8, 'name', r.rolname::pg_catalog.text,
             'login', r.rolcanlogin, 'superuser', r.rolsuper, 'createdb', r.rolcreatedb,
             'createrole', r.rolcreaterole, 'replication', r.rolreplication,
             'bypassrls', r.rolbypassrls, 'connection_limit', r.rolconnlimit,
             'valid_until', r.rolvaliduntil::pg_catalog.text,
             'expires_after', (SELECT r.rolvaliduntil IS NULL
                                      OR r.rolvaliduntil OPERATOR(pg_catalog.>) q.valid_until::pg_catalog.timestamptz
                                 FROM req q
                                WHERE q.name OPERATOR(pg_catalog.=) r.rolname::pg_catalog.text
                                  AND q.valid_until IS NOT NULL))
           ORDER BY r.rolname)
      FROM pg_catalog.pg_roles r), '[]'::pg_catalog.json),
  'memberships', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'role', am.roleid::pg_catalog.int8, 'member', am.member::pg_catalog.int8,
             'grantor', am.grantor::pg_catalog.int8, 'admin', am.admin_option,
             'inherit', coalesce((pg_catalog.to_jsonb(am) OPERATOR(pg_catalog.->>) 'inherit_option')::pg_catalog.bool,
                                 m.rolinherit),
             'set', coalesce((pg_catalog.to_jsonb(am) OPERATOR(pg_catalog.->>) 'set_option')::pg_catalog.bool,
                             true)))
      FROM pg_catalog.pg_auth_members am
      JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) am.member), '[]'::pg_catalog.json),
  'databases', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'oid', d.oid::pg_catalog.int8, 'name', d.datname::pg_catalog.text,
             'owner', d.datdba::pg_catalog.int8, 'allow_connections', d.datallowconn,
             'is_template', d.datistemplate,
             'master_can_connect', pg_catalog.has_database_privilege(CURRENT_USER, d.oid, 'CONNECT'),
             'acl', coalesce((
               SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                        'grantor', a.grantor::pg_catalog.int8, 'grantee', a.grantee::pg_catalog.int8,
                        'privilege', a.privilege_type, 'grantable', a.is_grantable))
                 FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a),
               '[]'::pg_catalog.json))
           ORDER BY d.datname)
      FROM pg_catalog.pg_database d), '[]'::pg_catalog.json),
  'connect', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_array(r.oid::pg_catalog.int8, d.oid::pg_catalog.int8))
      FROM pg_catalog.pg_roles r CROSS JOIN pg_catalog.pg_database d
     WHERE r.rolcanlogin AND d.datallowconn
       AND r.oid OPERATOR(pg_catalog.<>) 10
       AND r.rolname OPERATOR(pg_catalog.<>) CURRENT_USER
       AND pg_catalog.has_database_privilege(r.oid, d.oid, 'CONNECT')), '[]'::pg_catalog.json)
)::pg_catalog.text";

const DATABASE_SQL: &str = "
WITH trusted AS (
  SELECT r.oid FROM pg_catalog.pg_roles r
   WHERE r.rolsuper OR r.rolname OPERATOR(pg_catalog.=) CURRENT_USER),
nsp AS (
  SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n
   WHERE n.nspname OPERATOR(pg_catalog.<>) 'information_schema'
     AND NOT n.nspname OPERATOR(pg_catalog.~~) 'pg\\_%'),
schema_create AS (
  SELECT n.nspname, n.nspowner, a.grantor, a.grantee FROM nsp n
   CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
   WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
     AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner),
owned AS (
  SELECT s.classid, s.objid, s.objsubid, s.refobjid AS owner FROM pg_catalog.pg_shdepend s
   WHERE $1 AND s.dbid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                               WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
     AND s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
     AND s.deptype OPERATOR(pg_catalog.=) 'o'
     AND s.refobjid OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT t.oid FROM trusted t))),
candidates AS (
  SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass AS classid, p.oid AS objid, p.proowner AS owner,
         EXISTS (SELECT 1 FROM pg_catalog.pg_proc c
                  WHERE c.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                    AND c.proname OPERATOR(pg_catalog.=) p.proname) AS shadows,
         $2 AND p.prosecdef AS secdef
    FROM pg_catalog.pg_proc p JOIN nsp ON nsp.oid OPERATOR(pg_catalog.=) p.pronamespace
  UNION ALL
  SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid, o.oprowner,
         EXISTS (SELECT 1 FROM pg_catalog.pg_operator c
                  WHERE c.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                    AND c.oprname OPERATOR(pg_catalog.=) o.oprname),
         false
    FROM pg_catalog.pg_operator o JOIN nsp ON nsp.oid OPERATOR(pg_catalog.=) o.oprnamespace),
flagged AS (
  SELECT x.classid, x.objid, x.owner, x.shadows AND x.owner OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT t.oid FROM trusted t)) AS shadows,
         x.secdef
    FROM candidates x
   WHERE (x.shadows OR x.secdef)
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid OPERATOR(pg_catalog.=) x.classid
                        AND d.objid OPERATOR(pg_catalog.=) x.objid
                        AND d.deptype OPERATOR(pg_catalog.=) 'e')),
acls AS (
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass AS classid, c.oid AS objid, c.relowner AS owner, c.relacl AS acl,
         CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS keyword
    FROM pg_catalog.pg_class c WHERE c.relacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, n.oid, n.nspowner, n.nspacl, 'SCHEMA'
    FROM pg_catalog.pg_namespace n WHERE n.nspacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, p.proowner, p.proacl, 'ROUTINE'
    FROM pg_catalog.pg_proc p WHERE p.proacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid, t.typowner, t.typacl,
         CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN 'DOMAIN' ELSE 'TYPE' END
    FROM pg_catalog.pg_type t WHERE t.typacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_language'::pg_catalog.regclass, l.oid, l.lanowner, l.lanacl, 'LANGUAGE'
    FROM pg_catalog.pg_language l WHERE l.lanacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_largeobject_metadata'::pg_catalog.regclass, m.oid, m.lomowner, m.lomacl, 'LARGE OBJECT'
    FROM pg_catalog.pg_largeobject_metadata m WHERE m.lomacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass, w.oid, w.fdwowner, w.fdwacl, 'FOREIGN DATA WRAPPER'
    FROM pg_catalog.pg_foreign_data_wrapper w WHERE w.fdwacl IS NOT NULL
  UNION ALL
  SELECT 'pg_catalog.pg_foreign_server'::pg_catalog.regclass, s.oid, s.srvowner, s.srvacl, 'FOREIGN SERVER'
    FROM pg_catalog.pg_foreign_server s WHERE s.srvacl IS NOT NULL),
grant_options AS (
  SELECT x.classid, x.objid, x.owner, x.keyword, a.grantor, a.grantee, a.privilege_type
    FROM acls x CROSS JOIN LATERAL pg_catalog.aclexplode(x.acl) a
   WHERE a.is_grantable AND a.grantee OPERATOR(pg_catalog.<>) x.owner
     AND a.grantee OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT t.oid FROM trusted t))),
described AS (
  SELECT 'owned' AS why, o.classid, o.objid, o.objsubid, o.owner FROM owned o
  UNION ALL
  SELECT 'shadowing', f.classid, f.objid, 0, f.owner FROM flagged f WHERE f.shadows
  UNION ALL
  SELECT 'secdef', f.classid, f.objid, 0, f.owner FROM flagged f WHERE f.secdef),
objects AS (
  SELECT d.why, pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS description,
         i.type, i.schema, i.identity, d.owner
    FROM described d CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) i)
SELECT pg_catalog.json_build_object(
  'database', pg_catalog.current_database()::pg_catalog.text,
  'schema_create', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'schema', s.nspname::pg_catalog.text, 'owner', s.nspowner::pg_catalog.int8,
             'grantor', s.grantor::pg_catalog.int8, 'grantee', s.grantee::pg_catalog.int8)
           ORDER BY s.nspname, s.grantee)
      FROM schema_create s), '[]'::pg_catalog.json),
  'owned', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'description', o.description, 'type', o.type, 'schema', o.schema,
             'identity', o.identity, 'owner', o.owner::pg_catalog.int8) ORDER BY o.description)
      FROM objects o WHERE o.why OPERATOR(pg_catalog.=) 'owned'), '[]'::pg_catalog.json),
  'shadowing', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'description', o.description, 'type', o.type, 'schema', o.schema,
             'identity', o.identity, 'owner', o.owner::pg_catalog.int8) ORDER BY o.description)
      FROM objects o WHERE o.why OPERATOR(pg_catalog.=) 'shadowing'), '[]'::pg_catalog.json),
  'security_definers', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'description', o.description, 'type', o.type, 'schema', o.schema,
             'identity', o.identity, 'owner', o.owner::pg_catalog.int8) ORDER BY o.description)
      FROM objects o WHERE o.why OPERATOR(pg_catalog.=) 'secdef'), '[]'::pg_catalog.json),
  'grant_options', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'description', pg_catalog.pg_describe_object(g.classid, g.objid, 0),
             'keyword', g.keyword,
             'identity', (pg_catalog.pg_identify_object(g.classid, g.objid, 0)).identity,
             'owner', g.owner::pg_catalog.int8, 'grantor', g.grantor::pg_catalog.int8,
             'grantee', g.grantee::pg_catalog.int8, 'privilege', g.privilege_type)
           ORDER BY g.classid, g.objid, g.grantee, g.privilege_type)
      FROM grant_options g), '[]'::pg_catalog.json),
  'default_grant_options', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'role', da.defaclrole::pg_catalog.int8, 'schema', n.nspname::pg_catalog.text,
             'objtype', da.defaclobjtype::pg_catalog.text, 'grantee', a.grantee::pg_catalog.int8,
             'privilege', a.privilege_type)
           ORDER BY da.defaclrole, n.nspname, da.defaclobjtype, a.grantee, a.privilege_type)
      FROM pg_catalog.pg_default_acl da
      LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) da.defaclnamespace
     CROSS JOIN LATERAL pg_catalog.aclexplode(da.defaclacl) a
     WHERE a.is_grantable AND a.grantee OPERATOR(pg_catalog.<>) da.defaclrole
       AND a.grantee OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT t.oid FROM trusted t))), '[]'::pg_catalog.json)
)::pg_catalog.text";

fn parse<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| {
        Error::InvalidInput(format!(
            "the audit's {what} query returned a document rds-pg cannot read: {e}"
        ))
    })
}

/// Runs the cluster query over `client` (connected to the maintenance database).
pub(crate) fn cluster(client: &mut postgres::Client, scope: &Scope) -> Result<ClusterCatalog> {
    let (names, valid_until) = scope.valid_until_requirements();
    let row = client.query_typed_one(
        CLUSTER_SQL,
        &[(&names, Type::TEXT_ARRAY), (&valid_until, Type::TEXT_ARRAY)],
    )?;
    let cluster: ClusterCatalog = parse(row.get(0), "cluster")?;
    if cluster.search_path.replace(' ', "") != crate::connect::PINNED_SEARCH_PATH.replace(' ', "") {
        return Err(Error::PolicyViolation(format!(
            "the session's search_path is {:?}, not the {:?} rds-pg sets when it connects: \
             something between rds-pg and PostgreSQL (a connection pooler such as PgBouncer or \
             RDS Proxy) dropped the startup options; connect to the instance directly",
            cluster.search_path,
            crate::connect::PINNED_SEARCH_PATH
        )));
    }
    Ok(cluster)
}

/// Runs the per-database query over `client`.
pub(crate) fn database(
    client: &mut postgres::Client,
    system: bool,
    project: bool,
) -> Result<DatabaseCatalog> {
    let row = client.query_typed_one(
        DATABASE_SQL,
        &[(&system, Type::BOOL), (&project, Type::BOOL)],
    )?;
    parse(row.get(0), "database")
}

/// What to do with one database: look inside, or say why not.
enum Plan {
    Inspect {
        name: String,
        system: bool,
        project: bool,
    },
    Skip(String, String),
}

fn plans(cluster: &ClusterCatalog) -> Vec<Plan> {
    let master_super = cluster
        .roles
        .iter()
        .any(|r| r.name == cluster.current_user && r.superuser);
    let trusted = |oid: u32| {
        cluster
            .roles
            .iter()
            .any(|r| r.oid == oid && (r.superuser || r.name == cluster.current_user))
    };
    let mut out = Vec::new();
    for d in &cluster.databases {
        // RDS's own database and template0 accept no one, by design.
        if d.name == "rdsadmin" || d.name == "template0" {
            continue;
        }
        if !d.allow_connections {
            out.push(Plan::Skip(
                d.name.clone(),
                "it does not allow connections (datallowconn is false)".into(),
            ));
        } else if !(d.master_can_connect || master_super) {
            out.push(Plan::Skip(
                d.name.clone(),
                format!("{:?} may not connect to it", cluster.current_user),
            ));
        } else {
            out.push(Plan::Inspect {
                name: d.name.clone(),
                system: d.name == "postgres" || d.name == "template1",
                project: !SYSTEM_DATABASES.contains(&d.name.as_str()) && !trusted(d.owner),
            });
        }
    }
    out
}

/// Reads everything the rules need: the cluster query and the maintenance database's own over
/// the first connection, then every other database, `jobs` at a time.
pub(crate) fn read(master: &ConnectOptions, jobs: usize, scope: &Scope) -> Result<Snapshot> {
    let mut client = crate::connect::connect(master)?;
    let cluster = cluster(&mut client, scope)?;
    let tls = tls_state(master, &cluster);
    let mut databases = Vec::new();
    let mut not_audited = Vec::new();
    let mut queue = VecDeque::new();
    for plan in plans(&cluster) {
        match plan {
            Plan::Skip(name, why) => not_audited.push((name, why)),
            Plan::Inspect {
                name,
                system,
                project,
            } if name == cluster.current_database => {
                databases.push(database(&mut client, system, project)?);
            }
            inspect => queue.push_back(inspect),
        }
    }
    let _ = client.close();
    let queue = Mutex::new(queue);
    let results = Mutex::new(Vec::new());
    let workers = jobs.clamp(1, queue.lock().expect("not poisoned").len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = queue.lock().expect("not poisoned").pop_front();
                let Some(Plan::Inspect {
                    name,
                    system,
                    project,
                }) = next
                else {
                    break;
                };
                let outcome = inspect_one(master, &name, system, project);
                let failed = outcome.is_err();
                results.lock().expect("not poisoned").push((name, outcome));
                if failed {
                    // Stop taking work; the first error is reported.
                    queue.lock().expect("not poisoned").clear();
                }
            });
        }
    });
    for (name, outcome) in results.into_inner().expect("not poisoned") {
        match outcome? {
            Inspected::Catalog(c) => databases.push(c),
            Inspected::Gone => {}
            Inspected::Unreachable(why) => not_audited.push((name, why)),
        }
    }
    databases.sort_by(|a, b| a.database.cmp(&b.database));
    not_audited.sort();
    Ok(Snapshot {
        cluster,
        databases,
        not_audited,
        tls,
    })
}

enum Inspected {
    Catalog(DatabaseCatalog),
    /// Dropped since the cluster query.
    Gone,
    /// Master could not connect: why.
    Unreachable(String),
}

fn inspect_one(
    master: &ConnectOptions,
    name: &str,
    system: bool,
    project: bool,
) -> Result<Inspected> {
    let mut client = match crate::connect::connect(&master.for_database(name)) {
        Ok(c) => c,
        Err(e) if e.sqlstate() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            return Ok(Inspected::Gone)
        }
        Err(e) if matches!(e.kind(), ErrorKind::Connection) => {
            return Ok(Inspected::Unreachable(format!(
                "the connection failed: {e}"
            )))
        }
        Err(e) => return Err(e),
    };
    let catalog = database(&mut client, system, project);
    let _ = client.close();
    catalog.map(Inspected::Catalog)
}

/// Whether connections must use TLS: `rds.force_ssl` on RDS; elsewhere `ssl`, and when it is on,
/// a login attempt without TLS and without a password (nothing secret is sent): refused before
/// authentication means TLS is required.
fn tls_state(master: &ConnectOptions, cluster: &ClusterCatalog) -> TlsState {
    if let Some(force) = cluster.rds_force_ssl.as_deref().filter(|v| !v.is_empty()) {
        return if matches!(force, "1" | "on" | "true") {
            TlsState::Required
        } else {
            TlsState::NotRequired(format!("rds.force_ssl = {force}"))
        };
    }
    if cluster.ssl != "on" {
        return TlsState::NotRequired(format!(
            "ssl = {}: the server offers no TLS at all",
            cluster.ssl
        ));
    }
    let host = master.get_host();
    if host.starts_with('/') || host.starts_with('@') {
        return TlsState::Unknown(format!(
            "connected through the socket {host}, where TLS does not apply; cannot tell what \
             TCP logins must do"
        ));
    }
    probe_plaintext(master)
}

fn probe_plaintext(master: &ConnectOptions) -> TlsState {
    let mut config = postgres::Config::new();
    config
        .host(master.get_host())
        .port(master.get_port())
        .user(&master.get_user())
        .dbname(master.get_dbname())
        .application_name(master.get_application_name())
        .ssl_mode(postgres::config::SslMode::Disable)
        .connect_timeout(
            master
                .get_connect_timeout()
                .unwrap_or(Duration::from_secs(10)),
        );
    match config.connect(postgres::NoTls) {
        Ok(client) => {
            let _ = client.close();
            TlsState::NotRequired(
                "a login without TLS and without a password succeeded (a trust rule in \
                 pg_hba.conf)"
                    .into(),
            )
        }
        Err(e) => match e.as_db_error() {
            Some(db) if *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                TlsState::Required
            }
            Some(db) => TlsState::Unknown(format!(
                "a login without TLS ended with: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            )),
            None if e.to_string().contains("password missing") => TlsState::NotRequired(
                "a login without TLS reaches password authentication (pg_hba.conf has a host \
                 rule, not only hostssl)"
                    .into(),
            ),
            None => TlsState::Unknown(format!("a login without TLS failed: {e}")),
        },
    }
}
