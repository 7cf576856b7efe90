//! What the audit reads: one catalog query for the cluster (roles, memberships, databases and
//! their ACLs, who may connect where, settings, and from the shared `pg_shdepend` which objects of
//! which database can matter), one per database (schemas open to creation, and by oid only those
//! objects: names that shadow `pg_catalog`, SECURITY DEFINER functions, grant options, objects of
//! other roles in `postgres` and `template1`), each answered as one JSON document; and whether the
//! server lets a login without TLS reach authentication. Never reads `pg_authid`.

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
    /// What `pg_shdepend` says may matter inside each database (see [`DependencyRow`]).
    pub dependencies: Vec<DependencyRow>,
}

/// Rows of `pg_shdepend` (a shared catalog, read once for every database) grouped by database,
/// kind and catalog: the routines and operators of roles other than the bootstrap superuser
/// (`o`), the objects whose privileges name a role other than master and the superusers (`a`),
/// and in `postgres` and `template1` every object such a role owns (`o`). A database's own
/// query then looks only at these, by oid.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct DependencyRow {
    pub database: u32,
    pub deptype: String,
    /// The catalog the objects are in (`pg_proc`, `pg_class`, …).
    pub catalog: String,
    pub objects: Vec<u32>,
    pub subids: Vec<i32>,
    /// The owner (`o`) or the role named in the privileges (`a`), per object.
    pub roles: Vec<u32>,
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
WITH trusted AS (
  SELECT r.oid FROM pg_catalog.pg_roles r
   WHERE r.rolsuper OR r.rolname OPERATOR(pg_catalog.=) CURRENT_USER),
req AS (
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
       AND pg_catalog.has_database_privilege(r.oid, d.oid, 'CONNECT')), '[]'::pg_catalog.json),
  'dependencies', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'database', x.dbid::pg_catalog.int8, 'deptype', x.deptype::pg_catalog.text,
             'catalog', c.relname::pg_catalog.text, 'objects', x.objs, 'subids', x.subids,
             'roles', x.roles))
      FROM (SELECT s.dbid, s.deptype, s.classid,
                   pg_catalog.array_agg(s.objid::pg_catalog.int8 ORDER BY s.objid, s.objsubid, s.refobjid) AS objs,
                   pg_catalog.array_agg(s.objsubid ORDER BY s.objid, s.objsubid, s.refobjid) AS subids,
                   pg_catalog.array_agg(s.refobjid::pg_catalog.int8 ORDER BY s.objid, s.objsubid, s.refobjid) AS roles
              FROM pg_catalog.pg_shdepend s
             WHERE s.dbid OPERATOR(pg_catalog.<>) 0
               AND s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
               AND ((s.deptype OPERATOR(pg_catalog.=) 'o'
                     AND s.classid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc'::pg_catalog.regclass,
                                                                    'pg_catalog.pg_operator'::pg_catalog.regclass]::pg_catalog.oid[]))
                    OR (s.refobjid OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT t.oid FROM trusted t))
                        AND ((s.deptype OPERATOR(pg_catalog.=) 'a'
                              AND s.classid OPERATOR(pg_catalog.=) ANY (ARRAY[
                                    'pg_catalog.pg_class'::pg_catalog.regclass, 'pg_catalog.pg_namespace'::pg_catalog.regclass,
                                    'pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_type'::pg_catalog.regclass,
                                    'pg_catalog.pg_largeobject_metadata'::pg_catalog.regclass,
                                    'pg_catalog.pg_foreign_server'::pg_catalog.regclass,
                                    'pg_catalog.pg_default_acl'::pg_catalog.regclass]::pg_catalog.oid[]))
                             OR (s.deptype OPERATOR(pg_catalog.=) 'o'
                                 AND s.dbid OPERATOR(pg_catalog.=) ANY (ARRAY(
                                       SELECT d.oid FROM pg_catalog.pg_database d
                                        WHERE d.datname OPERATOR(pg_catalog.=) ANY (ARRAY['postgres', 'template1']::pg_catalog.name[])))))))
             GROUP BY s.dbid, s.deptype, s.classid) x
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.classid), '[]'::pg_catalog.json)
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

/// What one database's query looks at beyond its schemas: the candidates `pg_shdepend` named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Candidates {
    /// Routines and operators of non-bootstrap roles (shadowing, SECURITY DEFINER).
    pub routines: Vec<u32>,
    pub operators: Vec<u32>,
    /// Objects whose privileges name an untrusted role, by catalog (grant options).
    pub acl: Vec<(&'static str, Vec<u32>)>,
    /// Default privileges naming an untrusted role.
    pub default_acls: Vec<u32>,
    /// `postgres` and `template1`: objects owned by untrusted roles (catalog oid, object, sub-id,
    /// owner).
    pub owned: (Vec<u32>, Vec<u32>, Vec<i32>, Vec<u32>),
}

/// The catalogs whose privileges can hold grant options, with the GRANT keyword and the owner
/// and ACL columns.
const ACL_CATALOGS: [(&str, &str, &str, &str); 6] = [
    (
        "pg_class",
        "CASE WHEN x.relkind OPERATOR(pg_catalog.=) 'S' THEN 'SEQUENCE' ELSE 'TABLE' END",
        "relowner",
        "relacl",
    ),
    ("pg_namespace", "'SCHEMA'", "nspowner", "nspacl"),
    ("pg_proc", "'ROUTINE'", "proowner", "proacl"),
    (
        "pg_type",
        "CASE WHEN x.typtype OPERATOR(pg_catalog.=) 'd' THEN 'DOMAIN' ELSE 'TYPE' END",
        "typowner",
        "typacl",
    ),
    (
        "pg_largeobject_metadata",
        "'LARGE OBJECT'",
        "lomowner",
        "lomacl",
    ),
    (
        "pg_foreign_server",
        "'FOREIGN SERVER'",
        "srvowner",
        "srvacl",
    ),
];

impl Candidates {
    /// The candidates of database `oid`, from the cluster query.
    pub(crate) fn of(cluster: &ClusterCatalog, oid: u32) -> Candidates {
        let mut c = Candidates::default();
        let system = cluster
            .databases
            .iter()
            .any(|db| db.oid == oid && (db.name == "postgres" || db.name == "template1"));
        let trusted = |r: u32| {
            cluster
                .roles
                .iter()
                .any(|x| x.oid == r && (x.superuser || x.name == cluster.current_user))
        };
        for d in cluster.dependencies.iter().filter(|d| d.database == oid) {
            match (d.deptype.as_str(), d.catalog.as_str()) {
                ("o", "pg_proc") => c.routines.extend(&d.objects),
                ("o", "pg_operator") => c.operators.extend(&d.objects),
                ("a", "pg_default_acl") => c.default_acls.extend(&d.objects),
                ("a", catalog) => {
                    if let Some((name, ..)) = ACL_CATALOGS.iter().find(|(n, ..)| *n == catalog) {
                        let mut objects = d.objects.clone();
                        objects.dedup();
                        c.acl.push((name, objects));
                    }
                }
                _ => {}
            }
            // In postgres and template1 the cluster query also sent every object an untrusted
            // role owns (the routines of trusted roles are among the `o` rows too).
            if d.deptype == "o" && system {
                let Some(class) = catalog_oid(&d.catalog) else {
                    continue;
                };
                for i in 0..d.objects.len() {
                    if !trusted(d.roles[i]) {
                        c.owned.0.push(class);
                        c.owned.1.push(d.objects[i]);
                        c.owned.2.push(d.subids[i]);
                        c.owned.3.push(d.roles[i]);
                    }
                }
            }
        }
        c.routines.dedup();
        c.operators.dedup();
        c.default_acls.dedup();
        c
    }
}

/// The oids of the catalogs the cluster query names (fixed in PostgreSQL's catalog headers);
/// others are looked up by name in the database's query.
fn catalog_oid(name: &str) -> Option<u32> {
    Some(match name {
        "pg_class" => 1259,
        "pg_proc" => 1255,
        "pg_type" => 1247,
        "pg_namespace" => 2615,
        "pg_operator" => 2617,
        "pg_largeobject_metadata" => 2995,
        "pg_foreign_server" => 1417,
        "pg_default_acl" => 826,
        _ => return None,
    })
}

/// The schemas a project can create in (every schema but the system's).
const NSP_CTE: &str = "
WITH nsp AS (
  SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n
   WHERE n.nspname OPERATOR(pg_catalog.<>) 'information_schema'
     AND NOT n.nspname OPERATOR(pg_catalog.~~) 'pg\\_%')";

/// Builds one database's query and its parameters: `$1` the trusted roles (master and the
/// superusers), `$2` whether SECURITY DEFINER functions count (project databases), then the
/// candidates' oid arrays. Only the catalogs with candidates appear in it: a new session pays
/// for every catalog and plan node it touches, and the audit opens one session per database.
struct DatabaseQuery {
    sql: String,
    oids: Vec<Vec<u32>>,
    subids: Option<Vec<i32>>,
}

fn database_query(c: &Candidates) -> DatabaseQuery {
    let mut oids: Vec<Vec<u32>> = Vec::new();
    // Parameter numbers: $1 trusted, $2 project, then the oid arrays in order, then the
    // sub-ids of owned objects last ($SUBIDS until the count is known).
    fn param(oids: &mut Vec<Vec<u32>>, v: &[u32]) -> String {
        oids.push(v.to_vec());
        format!("${}::pg_catalog.oid[]", oids.len() + 2)
    }
    let mut ctes = String::from(NSP_CTE);
    let mut objects: Vec<String> = Vec::new();
    let mut flagged: Vec<String> = Vec::new();
    if !c.routines.is_empty() {
        flagged.push(format!(
            "SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid AS classid, p.oid AS objid,
                    p.proowner AS owner,
                    p.proowner OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.oid[])
                      AND EXISTS (SELECT 1 FROM pg_catalog.pg_proc c
                                   WHERE c.proname OPERATOR(pg_catalog.=) p.proname
                                     AND c.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace) AS shadows,
                    $2 AND p.prosecdef AS secdef
               FROM pg_catalog.pg_proc p
              WHERE p.oid OPERATOR(pg_catalog.=) ANY ({})
                AND p.pronamespace OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT nsp.oid FROM nsp))",
            param(&mut oids, &c.routines)
        ));
    }
    if !c.operators.is_empty() {
        flagged.push(format!(
            "SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass::pg_catalog.oid, o.oid, o.oprowner,
                    o.oprowner OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.oid[])
                      AND EXISTS (SELECT 1 FROM pg_catalog.pg_operator c
                                   WHERE c.oprname OPERATOR(pg_catalog.=) o.oprname
                                     AND c.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace),
                    false
               FROM pg_catalog.pg_operator o
              WHERE o.oid OPERATOR(pg_catalog.=) ANY ({})
                AND o.oprnamespace OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT nsp.oid FROM nsp))",
            param(&mut oids, &c.operators)
        ));
    }
    if !flagged.is_empty() {
        ctes.push_str(&format!(
            ",\nflagged AS (\n  {})",
            flagged.join("\n  UNION ALL\n  ")
        ));
        objects.push(
            "SELECT CASE WHEN f.shadows THEN 'shadowing' ELSE 'secdef' END::pg_catalog.text AS why,
                    f.classid, f.objid, 0 AS objsubid, f.owner
               FROM flagged f
              WHERE (f.shadows OR f.secdef)
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                 WHERE d.classid OPERATOR(pg_catalog.=) f.classid
                                   AND d.objid OPERATOR(pg_catalog.=) f.objid
                                   AND d.deptype OPERATOR(pg_catalog.=) 'e')"
                .to_owned(),
        );
    }
    let mut subids = None;
    if !c.owned.0.is_empty() {
        let classes = param(&mut oids, &c.owned.0);
        let objs = param(&mut oids, &c.owned.1);
        let owners = param(&mut oids, &c.owned.3);
        subids = Some(c.owned.2.clone());
        objects.push(format!(
            "SELECT 'owned'::pg_catalog.text AS why, o.classid, o.objid, o.objsubid, o.owner
               FROM ROWS FROM (pg_catalog.unnest({classes}), pg_catalog.unnest({objs}),
                               pg_catalog.unnest($SUBIDS::pg_catalog.int4[]), pg_catalog.unnest({owners}))
                    AS o(classid, objid, objsubid, owner)"
        ));
    }
    if !objects.is_empty() {
        ctes.push_str(&format!(
            ",\nobjects AS (\n  {})",
            objects.join("\n  UNION ALL\n  ")
        ));
    }
    let mut acls = Vec::new();
    for (catalog, list) in &c.acl {
        let (_, keyword, owner, acl) = ACL_CATALOGS
            .iter()
            .find(|(n, ..)| n == catalog)
            .expect("a known catalog");
        acls.push(format!(
            "SELECT 'pg_catalog.{catalog}'::pg_catalog.regclass::pg_catalog.oid AS classid, x.oid AS objid,
                    x.{owner} AS owner, x.{acl} AS acl, {keyword} AS keyword
               FROM pg_catalog.{catalog} x
              WHERE x.oid OPERATOR(pg_catalog.=) ANY ({})",
            param(&mut oids, list)
        ));
    }
    if !acls.is_empty() {
        ctes.push_str(&format!(
            ",\nacls AS (\n  {}),
grant_options AS (
  SELECT x.classid, x.objid, x.owner, x.keyword, a.grantor, a.grantee, a.privilege_type
    FROM acls x CROSS JOIN LATERAL pg_catalog.aclexplode(x.acl) a
   WHERE a.is_grantable AND a.grantee OPERATOR(pg_catalog.<>) x.owner
     AND a.grantee OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.oid[]))",
            acls.join("\n  UNION ALL\n  ")
        ));
    }
    let none = "'[]'::pg_catalog.json";
    let objects_json = if objects.is_empty() {
        none.to_owned()
    } else {
        "coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'why', o.why, 'description', pg_catalog.pg_describe_object(o.classid, o.objid, o.objsubid),
             'type', i.type, 'schema', i.schema, 'identity', i.identity,
             'owner', o.owner::pg_catalog.int8))
      FROM objects o
     CROSS JOIN LATERAL pg_catalog.pg_identify_object(o.classid, o.objid, o.objsubid) i), '[]'::pg_catalog.json)"
            .to_owned()
    };
    let grant_json = if acls.is_empty() {
        none.to_owned()
    } else {
        "coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'description', pg_catalog.pg_describe_object(g.classid, g.objid, 0),
             'keyword', g.keyword,
             'identity', (pg_catalog.pg_identify_object(g.classid, g.objid, 0)).identity,
             'owner', g.owner::pg_catalog.int8, 'grantor', g.grantor::pg_catalog.int8,
             'grantee', g.grantee::pg_catalog.int8, 'privilege', g.privilege_type))
      FROM grant_options g), '[]'::pg_catalog.json)"
            .to_owned()
    };
    let default_json = if c.default_acls.is_empty() {
        none.to_owned()
    } else {
        format!(
            "coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'role', da.defaclrole::pg_catalog.int8, 'schema', n.nspname::pg_catalog.text,
             'objtype', da.defaclobjtype::pg_catalog.text, 'grantee', a.grantee::pg_catalog.int8,
             'privilege', a.privilege_type))
      FROM pg_catalog.pg_default_acl da
      LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) da.defaclnamespace
     CROSS JOIN LATERAL pg_catalog.aclexplode(da.defaclacl) a
     WHERE da.oid OPERATOR(pg_catalog.=) ANY ({})
       AND a.is_grantable AND a.grantee OPERATOR(pg_catalog.<>) da.defaclrole
       AND a.grantee OPERATOR(pg_catalog.<>) ALL ($1::pg_catalog.oid[])), '[]'::pg_catalog.json)",
            param(&mut oids, &c.default_acls)
        )
    };
    let sql = format!(
        "{ctes}
SELECT pg_catalog.json_build_object(
  'database', pg_catalog.current_database()::pg_catalog.text,
  'schema_create', coalesce((
    SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
             'schema', n.nspname::pg_catalog.text, 'owner', n.nspowner::pg_catalog.int8,
             'grantor', a.grantor::pg_catalog.int8, 'grantee', a.grantee::pg_catalog.int8))
      FROM nsp n
     CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
     WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner), '[]'::pg_catalog.json),
  'objects', {objects_json},
  'grant_options', {grant_json},
  'default_grant_options', {default_json}
)::pg_catalog.text"
    );
    let sql = sql.replace("$SUBIDS", &format!("${}", oids.len() + 3));
    DatabaseQuery { sql, oids, subids }
}

/// Runs one database's query over `client`; `trusted` are master's and the superusers' oids.
pub(crate) fn database(
    client: &mut postgres::Client,
    trusted: &[u32],
    project: bool,
    candidates: &Candidates,
) -> Result<DatabaseCatalog> {
    let query = database_query(candidates);
    let mut params: Vec<(&(dyn postgres::types::ToSql + Sync), Type)> =
        vec![(&trusted, Type::OID_ARRAY), (&project, Type::BOOL)];
    for list in &query.oids {
        params.push((list, Type::OID_ARRAY));
    }
    if let Some(subids) = &query.subids {
        params.push((subids, Type::INT4_ARRAY));
    }
    let row = client.query_typed_one(&query.sql, &params)?;
    let raw: RawDatabaseCatalog = parse(row.get(0), "database")?;
    let mut catalog = DatabaseCatalog {
        database: raw.database,
        schema_create: raw.schema_create,
        grant_options: raw.grant_options,
        default_grant_options: raw.default_grant_options,
        ..DatabaseCatalog::default()
    };
    for o in raw.objects {
        match o.why.as_str() {
            "owned" => catalog.owned.push(o.object),
            "shadowing" => catalog.shadowing.push(o.object),
            _ => catalog.security_definers.push(o.object),
        }
    }
    for list in [
        &mut catalog.owned,
        &mut catalog.shadowing,
        &mut catalog.security_definers,
    ] {
        list.sort_by(|a, b| a.description.cmp(&b.description));
    }
    Ok(catalog)
}

/// The per-database document as the server sends it.
#[derive(Deserialize)]
struct RawDatabaseCatalog {
    database: String,
    schema_create: Vec<SchemaCreateRow>,
    objects: Vec<TaggedObject>,
    grant_options: Vec<GrantOptionRow>,
    default_grant_options: Vec<DefaultGrantOptionRow>,
}

#[derive(Deserialize)]
struct TaggedObject {
    why: String,
    #[serde(flatten)]
    object: ObjectRow,
}

/// What to do with one database: look inside, or say why not.
enum Plan {
    Inspect {
        name: String,
        project: bool,
        candidates: Candidates,
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
                project: !SYSTEM_DATABASES.contains(&d.name.as_str()) && !trusted(d.owner),
                candidates: Candidates::of(cluster, d.oid),
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
    let trusted: Vec<u32> = cluster
        .roles
        .iter()
        .filter(|r| r.superuser || r.name == cluster.current_user)
        .map(|r| r.oid)
        .collect();
    let trusted = trusted.as_slice();
    let mut databases = Vec::new();
    let mut not_audited = Vec::new();
    let mut queue = VecDeque::new();
    for plan in plans(&cluster) {
        match plan {
            Plan::Skip(name, why) => not_audited.push((name, why)),
            Plan::Inspect {
                name,
                project,
                candidates,
            } if name == cluster.current_database => {
                databases.push(database(&mut client, trusted, project, &candidates)?);
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
                    project,
                    candidates,
                }) = next
                else {
                    break;
                };
                let outcome = inspect_one(master, trusted, &name, project, &candidates);
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
    trusted: &[u32],
    name: &str,
    project: bool,
    candidates: &Candidates,
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
    let catalog = database(&mut client, trusted, project, candidates);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_with_nothing_to_look_at_only_reads_its_schemas() {
        let q = database_query(&Candidates::default());
        assert!(q.sql.contains("pg_catalog.pg_namespace"));
        for catalog in [
            "pg_proc",
            "pg_operator",
            "pg_depend",
            "pg_class",
            "pg_default_acl",
        ] {
            assert!(
                !q.sql.contains(&format!("pg_catalog.{catalog} ")),
                "{catalog}: {}",
                q.sql
            );
        }
        assert!(q.oids.is_empty() && q.subids.is_none());
    }

    #[test]
    fn candidates_become_numbered_oid_parameters_and_only_their_catalogs() {
        let c = Candidates {
            routines: vec![1, 2],
            operators: vec![],
            acl: vec![("pg_class", vec![7])],
            default_acls: vec![9],
            owned: (vec![1259], vec![5], vec![0], vec![44]),
        };
        let q = database_query(&c);
        assert_eq!(
            q.oids,
            [vec![1, 2], vec![1259], vec![5], vec![44], vec![7], vec![9]]
        );
        assert_eq!(q.subids, Some(vec![0]));
        for param in [
            "$3::pg_catalog.oid[]",
            "$4::",
            "$5::",
            "$6::",
            "$7::",
            "$8::",
        ] {
            assert!(q.sql.contains(param), "{param}");
        }
        assert!(
            q.sql.contains("pg_catalog.unnest($9::pg_catalog.int4[])"),
            "{}",
            q.sql
        );
        assert!(!q.sql.contains("pg_catalog.pg_operator o"));
        assert!(!q.sql.contains("$SUBIDS"));
    }

    #[test]
    fn pg_shdepend_rows_are_sorted_into_each_databases_candidates() {
        let role = |oid: u32, name: &str, superuser: bool| RoleRow {
            oid,
            name: name.into(),
            login: true,
            superuser,
            createdb: false,
            createrole: false,
            replication: false,
            bypassrls: false,
            connection_limit: -1,
            valid_until: None,
            expires_after: None,
        };
        let db = |oid: u32, name: &str| DatabaseRow {
            oid,
            name: name.into(),
            owner: 100,
            allow_connections: true,
            is_template: false,
            master_can_connect: true,
            acl: vec![],
        };
        let dep =
            |database: u32, deptype: &str, catalog: &str, objects: Vec<u32>, roles: Vec<u32>| {
                DependencyRow {
                    database,
                    deptype: deptype.into(),
                    catalog: catalog.into(),
                    subids: vec![0; objects.len()],
                    objects,
                    roles,
                }
            };
        let cluster = ClusterCatalog {
            version_num: 160001,
            current_user: "master".into(),
            current_database: "postgres".into(),
            search_path: "pg_catalog, pg_temp".into(),
            rds_force_ssl: None,
            ssl: "on".into(),
            password_encryption: "scram-sha-256".into(),
            roles: vec![
                role(10, "rdsadmin", true),
                role(100, "master", false),
                role(200, "shop", false),
            ],
            memberships: vec![],
            databases: vec![db(1, "postgres"), db(2, "shop")],
            connect: vec![],
            dependencies: vec![
                dep(1, "o", "pg_proc", vec![50, 51], vec![100, 200]),
                dep(1, "o", "pg_class", vec![60], vec![200]),
                dep(2, "o", "pg_proc", vec![70], vec![200]),
                dep(2, "a", "pg_class", vec![80, 80], vec![200, 201]),
                dep(2, "a", "pg_default_acl", vec![90], vec![200]),
                dep(2, "a", "pg_publication", vec![95], vec![200]),
            ],
        };
        let postgres = Candidates::of(&cluster, 1);
        assert_eq!(postgres.routines, [50, 51]);
        // Owned by shop (not master's): its routine and its table.
        assert_eq!(
            postgres.owned,
            (vec![1255, 1259], vec![51, 60], vec![0, 0], vec![200, 200])
        );
        let shop = Candidates::of(&cluster, 2);
        assert_eq!(shop.routines, [70]);
        assert_eq!(shop.acl, [("pg_class", vec![80])]);
        assert_eq!(shop.default_acls, [90]);
        assert_eq!(
            shop.owned.0,
            Vec::<u32>::new(),
            "only postgres and template1"
        );
    }
}
