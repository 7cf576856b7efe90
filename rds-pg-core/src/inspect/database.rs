//! What database, extension and read-only operations read: the maintenance database's view of
//! a database ([`ClusterSnapshot`]) and a database's own contents ([`DatabaseSnapshot`]).

use postgres::types::Type;
use postgres::Client;

use std::collections::BTreeMap;

use super::{read_role, role_columns, RoleState, ROLE_COLUMNS};
use crate::error::Result;
use crate::plan::{QuotedRelation, RelationKind};

/// A database as `pg_database` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseState {
    /// Its owner.
    pub owner: String,
    /// Its encoding.
    pub encoding: String,
    /// CONNECTION LIMIT.
    pub connection_limit: i32,
    /// Whether PUBLIC holds any privilege on it (by default CONNECT and TEMPORARY).
    pub public_has_privileges: bool,
    /// Whether master has the current owner's privileges.
    pub master_has_owner_privileges: bool,
    /// Whether master may connect to it (needed to inspect it), through PUBLIC or its own grant.
    pub master_can_connect: bool,
    /// Whether master holds CONNECT of its own in the database's ACL (or owns it), so it keeps
    /// it once PUBLIC loses CONNECT.
    pub master_has_connect_grant: bool,
}

/// An extension the server can install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailableExtension {
    /// Its name.
    pub name: String,
    /// Whether any version is trusted (creatable by a role with CREATE on the database).
    pub trusted: bool,
}

/// The snapshot of the maintenance database that database operations plan from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// The database, if it exists.
    pub database: Option<DatabaseState>,
    /// The role named as owner (or read-only role), if it exists.
    pub role: Option<RoleState>,
    /// The database's current owner, when it exists (for read-only grants).
    pub owner: Option<RoleState>,
    /// Requested extensions the server has.
    pub available: Vec<AvailableExtension>,
    /// Whether the read-only role may already connect to the database.
    pub role_can_connect: bool,
    /// Whether the read-only role holds an explicit grant on the database.
    pub role_has_database_grant: bool,
    /// The login roles master holds a leftover membership of (sorted).
    pub leftover_memberships: Vec<String>,
}

/// The select list of a [`ClusterSnapshot`] (read by [`read_cluster`], [`CLUSTER_COLUMNS`]
/// columns) over the aliases `r` (the role asked about, a `pg_roles` row or NULLs), `d` (the
/// `pg_database` row or NULLs), `dow` (its owner's `pg_roles` row) and `x` (`names` and
/// `trusted`, arrays of the available extensions asked about, or NULLs).
pub(crate) fn cluster_columns(major: u32) -> String {
    format!(
        "{role_cols}, {owner_cols},
                d.oid IS NOT NULL, coalesce(dow.rolname::pg_catalog.text, ''),
                coalesce(pg_catalog.pg_encoding_to_char(d.encoding)::pg_catalog.text, ''),
                coalesce(d.datconnlimit, -1),
                coalesce(EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
                                  WHERE a.grantee OPERATOR(pg_catalog.=) 0), false),
                CASE WHEN d.oid IS NULL THEN false ELSE pg_catalog.pg_has_role(CURRENT_USER, d.datdba, 'USAGE') END,
                coalesce(x.names, '{{}}'), coalesce(x.trusted, '{{}}'),
                CASE WHEN d.oid IS NULL OR r.oid IS NULL THEN false
                     ELSE pg_catalog.has_database_privilege(r.oid, d.oid, 'CONNECT') END,
                coalesce(EXISTS (SELECT 1 FROM pg_catalog.aclexplode(d.datacl) a
                                  WHERE a.grantee OPERATOR(pg_catalog.=) r.oid), false),
                CASE WHEN d.oid IS NULL THEN false
                     ELSE pg_catalog.has_database_privilege(CURRENT_USER, d.oid, 'CONNECT') END,
                coalesce(EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
                                  JOIN pg_catalog.pg_roles me ON me.oid OPERATOR(pg_catalog.=) a.grantee
                                 WHERE me.rolname OPERATOR(pg_catalog.=) CURRENT_USER
                                   AND a.privilege_type OPERATOR(pg_catalog.=) 'CONNECT'), false),
                {leftovers}",
        role_cols = role_columns("r", major),
        owner_cols = role_columns("dow", major),
        leftovers = super::leftover_memberships_column(major),
    )
}

/// How many columns [`cluster_columns`] has.
pub(crate) const CLUSTER_COLUMNS: usize = 2 * ROLE_COLUMNS + 13;

/// The available extensions among `$N` (a `text[]` parameter), as the `x` of
/// [`cluster_columns`]: a lateral subquery that reads the server's control files only when the
/// array is not empty and `gate` (SQL) holds.
pub(crate) fn available_extensions_lateral(param: &str, gate: &str) -> String {
    format!(
        "LEFT JOIN LATERAL (
                SELECT pg_catalog.array_agg(e.name::pg_catalog.text ORDER BY e.name) AS names,
                       pg_catalog.array_agg(e.t ORDER BY e.name) AS trusted
                  FROM (SELECT v.name, pg_catalog.bool_or(v.trusted) AS t
                          FROM pg_catalog.pg_available_extension_versions v
                         WHERE {gate} AND pg_catalog.cardinality({param}::pg_catalog.text[]) OPERATOR(pg_catalog.>) 0
                           AND v.name OPERATOR(pg_catalog.=) ANY ({param}::pg_catalog.name[])
                         GROUP BY v.name) e) x ON true"
    )
}

pub(crate) fn cluster_snapshot(
    client: &mut Client,
    major: u32,
    database: &str,
    role: &str,
    extensions: &[String],
) -> Result<ClusterSnapshot> {
    let sql = format!(
        "SELECT {columns}
           FROM (SELECT $1::pg_catalog.text AS dbname, $2::pg_catalog.text AS rolename) n
           LEFT JOIN pg_catalog.pg_database d ON d.datname OPERATOR(pg_catalog.=) n.dbname
           LEFT JOIN pg_catalog.pg_roles dow ON dow.oid OPERATOR(pg_catalog.=) d.datdba
           LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) n.rolename
           {available}",
        columns = cluster_columns(major),
        available = available_extensions_lateral("$3", "true"),
    );
    let row = client.query_typed_one(
        &sql,
        &[
            (&database, Type::TEXT),
            (&role, Type::TEXT),
            (&extensions, Type::TEXT_ARRAY),
        ],
    )?;
    Ok(read_cluster(&row, 0))
}

/// Reads the [`cluster_columns`] starting at `at`.
pub(crate) fn read_cluster(row: &postgres::Row, at: usize) -> ClusterSnapshot {
    let role_state = read_role(row, at);
    let owner_state = read_role(row, at + ROLE_COLUMNS);
    let at = at + 2 * ROLE_COLUMNS;
    let database = row.get::<_, bool>(at).then(|| DatabaseState {
        owner: row.get(at + 1),
        encoding: row.get(at + 2),
        connection_limit: row.get(at + 3),
        public_has_privileges: row.get(at + 4),
        master_has_owner_privileges: row.get(at + 5),
        master_can_connect: row.get(at + 10),
        master_has_connect_grant: row.get(at + 11),
    });
    let names: Vec<String> = row.get(at + 6);
    let trusted: Vec<bool> = row.get(at + 7);
    ClusterSnapshot {
        database,
        role: role_state,
        owner: owner_state,
        available: names
            .into_iter()
            .zip(trusted)
            .map(|(name, trusted)| AvailableExtension { name, trusted })
            .collect(),
        role_can_connect: row.get(at + 8),
        role_has_database_grant: row.get(at + 9),
        leftover_memberships: row.get(at + 12),
    }
}

/// An installed extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledExtension {
    /// Its name.
    pub name: String,
    /// The schema its objects live in.
    pub schema: String,
}

/// A schema as seen for a read-only grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaState {
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Whether the read-only role has USAGE (directly, through PUBLIC or a membership).
    pub role_has_usage: bool,
    /// Whether the read-only role holds an explicit USAGE grant.
    pub role_has_explicit_usage: bool,
}

/// The snapshot of one database (connected to it) that in-database steps plan from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseSnapshot {
    /// The owner of schema `public` (`pg_database_owner` on 15+ clusters); `None` when there is
    /// no `public` schema.
    pub public_owner: Option<String>,
    /// Whether PUBLIC may create in schema `public` (true before 15 unless revoked).
    pub public_create_for_public: bool,
    /// Installed extensions.
    pub extensions: Vec<InstalledExtension>,
    /// Owners of the relations extension fix-ups re-own (`schema.relation` → owner).
    pub relation_owners: BTreeMap<String, String>,
    /// Owner of schema `topology`, if present.
    pub topology_owner: Option<String>,
    /// The requested schemas that exist.
    pub schemas: Vec<SchemaState>,
    /// Relations of the requested schemas owned by the database owner that the read-only role
    /// cannot read, sorted.
    pub unreadable: Vec<Relation>,
    /// Relations the read-only role holds an explicit SELECT on, sorted.
    pub explicitly_readable: Vec<Relation>,
    /// Relations in the requested schemas not owned by the database owner and unreadable.
    pub foreign_unreadable: Vec<QuotedRelation>,
    /// Default privileges of the owner that already give SELECT to the role, sorted.
    pub default_selects: Vec<DefaultSelect>,
    /// Functions, aggregates, procedures and operators in `public` (and `topology`) that share a
    /// name with a `pg_catalog` one and belong to no extension: names an extension script, which
    /// runs with these schemas on its `search_path`, could resolve to the planter's code. Read
    /// only when asked ([`SnapshotScope::shadowing`]).
    pub shadowing: Vec<DatabaseObject>,
    /// What makes the database unsafe to copy as a template, when asked
    /// ([`SnapshotScope::template`]).
    pub template_hazards: Option<TemplateHazards>,
    /// Whether this stands for a database master could not look inside (no CONNECT yet): its
    /// contents, shadowing objects included, are unknown.
    pub uninspected: bool,
}

impl DatabaseSnapshot {
    /// The snapshot of a database about to be created from `template0`, which cannot be
    /// connected to, so it is described from the version: its schema `public` belongs to
    /// `pg_database_owner` from 15 on, and before 15 to the bootstrap superuser with CREATE for
    /// PUBLIC.
    pub fn fresh_from_template0(major: u32) -> DatabaseSnapshot {
        DatabaseSnapshot {
            public_owner: Some(if major >= 15 {
                "pg_database_owner".into()
            } else {
                "rdsadmin".into()
            }),
            public_create_for_public: major < 15,
            ..DatabaseSnapshot::default()
        }
    }
}

/// A table-like relation or a sequence.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Relation {
    /// Its name as the server quoted it.
    pub name: QuotedRelation,
    /// Table-like or sequence.
    pub kind: RelationKind,
}

/// A default privilege (`ALTER DEFAULT PRIVILEGES`) of the database owner that gives the
/// read-only role SELECT on what it creates later.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DefaultSelect {
    /// The schema it applies to.
    pub schema: String,
    /// Tables or sequences.
    pub kind: RelationKind,
}

/// A schema other roles may create objects in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaCreateGrant {
    /// The schema.
    pub schema: String,
    /// Who may create in it (`PUBLIC` for everyone).
    pub grantee: String,
}

/// What `database_snapshot` reads beyond the basics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotScope {
    /// Look for objects that shadow `pg_catalog` names (before creating extensions).
    pub shadowing: bool,
    /// Audit the database as the template of a new database.
    pub template: bool,
}

/// An object found in a database, as an operator reads it and as SQL can drop it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DatabaseObject {
    /// `pg_describe_object`'s description, e.g. `function public.format(text,name,name)`.
    pub description: String,
    /// Its owner.
    pub owner: String,
    /// The schema it is in, when it is in one.
    pub schema: Option<String>,
    /// Whether the schema it is in belongs to master (or it is master's own schema), so master
    /// can drop it without the owner's privileges.
    pub schema_owned_by_master: bool,
    /// `DROP <kind> <identity>` for it, when its kind has a plain DROP statement.
    pub drop_sql: Option<String>,
}

/// Why a database is unsafe as a template: everything in it is copied into every database
/// created from it, owners and privileges included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateHazards {
    /// Objects owned by roles other than master and the superusers.
    pub foreign_objects: Vec<DatabaseObject>,
    /// Schemas in which roles other than master and the superusers may create objects.
    pub schema_create_grants: Vec<SchemaCreateGrant>,
    /// Roles other than master and the superusers that may create schemas in the database
    /// (`PUBLIC` for everyone).
    pub database_create_grants: Vec<String>,
}

impl TemplateHazards {
    /// Whether the template is safe to copy.
    pub fn is_empty(&self) -> bool {
        self.foreign_objects.is_empty()
            && self.schema_create_grants.is_empty()
            && self.database_create_grants.is_empty()
    }
}

/// The query behind [`database_snapshot`] (its columns read by [`read_database_snapshot`]), run
/// connected to the database, with SQL expressions for its inputs: the owner's name (`text`), the
/// read-only role's name (`text`, NULL for none), the schemas of interest (`text[]`), and whether
/// to look for shadowing objects and template hazards (`boolean`s). With parameters they are
/// `$1`…`$5`; the fleet's bulk inspection gives column references of a lateral join instead.
const DATABASE_SNAPSHOT_SQL: &str = "WITH o AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) {owner}),
              ro AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) {reader}),
              fix AS (
                SELECT n.nspname, c.relname, c.relowner FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                 WHERE (c.relname OPERATOR(pg_catalog.=) 'spatial_ref_sys'
                        OR (n.nspname OPERATOR(pg_catalog.=) 'topology'
                            AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['topology', 'layer']::pg_catalog.name[])))
                   AND c.relkind OPERATOR(pg_catalog.=) 'r'),
              rel AS (
                SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS qname,
                       CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S' THEN 'S' ELSE 'r' END AS kind,
                       c.relowner OPERATOR(pg_catalog.=) (SELECT oid FROM o) AS owned,
                       CASE WHEN (SELECT oid FROM ro) IS NULL THEN true
                            WHEN c.relkind OPERATOR(pg_catalog.=) 'S'
                            THEN pg_catalog.has_sequence_privilege((SELECT oid FROM ro), c.oid, 'SELECT')
                            ELSE pg_catalog.has_table_privilege((SELECT oid FROM ro), c.oid, 'SELECT') END AS readable,
                       EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a
                                WHERE a.grantee OPERATOR(pg_catalog.=) (SELECT oid FROM ro)
                                  AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT') AS explicit
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                 WHERE n.nspname OPERATOR(pg_catalog.=) ANY ({schemas}::pg_catalog.name[])
                   AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f', 'S']::pg_catalog.\"char\"[])
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND d.objid OPERATOR(pg_catalog.=) c.oid
                                      AND d.deptype OPERATOR(pg_catalog.=) 'i')
              ),
              sch AS (
                SELECT n.oid, n.nspname, n.nspacl, r.rolname AS owner FROM pg_catalog.pg_namespace n
                  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                 WHERE n.nspname OPERATOR(pg_catalog.=) ANY ({schemas}::pg_catalog.name[])),
              here AS (SELECT oid, datdba, datacl FROM pg_catalog.pg_database
                        WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()),
              trusted_role AS (
                SELECT r.oid FROM pg_catalog.pg_roles r
                 WHERE r.rolsuper OR r.rolname OPERATOR(pg_catalog.=) CURRENT_USER),
              objs AS (
                SELECT 't' AS why, s.classid, s.objid, s.objsubid, r.rolname AS owner
                  FROM pg_catalog.pg_shdepend s
                  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) s.refobjid
                 WHERE {template} AND s.dbid OPERATOR(pg_catalog.=) (SELECT oid FROM here)
                   AND s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
                   AND s.deptype OPERATOR(pg_catalog.=) 'o'
                   AND s.refobjid OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT oid FROM trusted_role))
                UNION ALL
                SELECT 's', x.classid, x.objid, 0, r.rolname FROM (
                    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass AS classid, p.oid AS objid,
                           p.proowner AS owner, p.pronamespace AS nsp, p.proname AS name
                      FROM pg_catalog.pg_proc p
                    UNION ALL
                    SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid, o.oprowner,
                           o.oprnamespace, o.oprname
                      FROM pg_catalog.pg_operator o) x
                  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) x.nsp
                  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) x.owner
                 WHERE {shadowing} AND n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['public', 'topology']::pg_catalog.name[])
                   AND (EXISTS (SELECT 1 FROM pg_catalog.pg_proc c
                                 WHERE c.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                                   AND c.proname OPERATOR(pg_catalog.=) x.name)
                        OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator c
                                    WHERE c.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                                      AND c.oprname OPERATOR(pg_catalog.=) x.name))
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid OPERATOR(pg_catalog.=) x.classid
                                      AND d.objid OPERATOR(pg_catalog.=) x.objid
                                      AND d.deptype OPERATOR(pg_catalog.=) 'e')),
              described AS (
                SELECT o.why, o.owner::pg_catalog.text AS owner,
                       pg_catalog.pg_describe_object(o.classid, o.objid, o.objsubid) AS what,
                       i.schema,
                       -- IF EXISTS: an earlier statement's CASCADE may have dropped it already,
                       -- whatever the order; an aggregate without arguments is name(*).
                       CASE WHEN i.type OPERATOR(pg_catalog.=) 'composite type'
                            THEN pg_catalog.concat('DROP TYPE IF EXISTS ', i.identity, ' CASCADE')
                            WHEN i.type OPERATOR(pg_catalog.=) 'aggregate'
                                 AND pg_catalog.right(i.identity, 2) OPERATOR(pg_catalog.=) '()'
                            THEN pg_catalog.concat('DROP AGGREGATE IF EXISTS ',
                                                   pg_catalog.left(i.identity, -2), '(*) CASCADE')
                            WHEN i.type OPERATOR(pg_catalog.=) ANY (ARRAY[
                                 'table', 'view', 'materialized view', 'sequence', 'foreign table',
                                 'index', 'function', 'aggregate', 'procedure', 'operator', 'type',
                                 'domain', 'schema', 'collation', 'conversion',
                                 'text search configuration', 'text search dictionary',
                                 'statistics object', 'operator class', 'operator family'])
                            THEN pg_catalog.concat('DROP ', pg_catalog.upper(i.type), ' IF EXISTS ',
                                                   i.identity, ' CASCADE')
                       END AS drop_sql,
                       coalesce((SELECT n.nspowner OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT oid FROM trusted_role))
                                        OR (n.nspowner OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                                               WHERE r.rolname OPERATOR(pg_catalog.=) 'pg_database_owner')
                                            AND (SELECT datdba FROM here) OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT oid FROM trusted_role)))
                                   FROM pg_catalog.pg_namespace n
                                  WHERE n.nspname OPERATOR(pg_catalog.=) i.schema), false) AS master_schema
                  FROM objs o CROSS JOIN LATERAL pg_catalog.pg_identify_object(o.classid, o.objid, o.objsubid) i),
              default_selects AS (
                SELECT n.nspname::pg_catalog.text AS schema_name, da.defaclobjtype::pg_catalog.text AS objtype
                  FROM pg_catalog.pg_default_acl da
                  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) da.defaclnamespace
                 WHERE da.defaclrole OPERATOR(pg_catalog.=) (SELECT oid FROM o)
                   AND n.nspname OPERATOR(pg_catalog.=) ANY ({schemas}::pg_catalog.name[])
                   AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(da.defaclacl) a
                                WHERE a.grantee OPERATOR(pg_catalog.=) (SELECT oid FROM ro)
                                  AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT')),
              create_grants AS (
                SELECT n.nspname::pg_catalog.text AS target,
                       CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                            ELSE g.rolname::pg_catalog.text END AS grantee
                  FROM pg_catalog.pg_namespace n
                 CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
                  LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee
                 WHERE {template} AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                   AND (a.grantee OPERATOR(pg_catalog.=) 0
                        OR (g.rolname OPERATOR(pg_catalog.<>) 'pg_database_owner'
                            AND a.grantee OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT oid FROM trusted_role)))
                        OR (g.rolname OPERATOR(pg_catalog.=) 'pg_database_owner'
                            AND (SELECT datdba FROM here) OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT oid FROM trusted_role))))),
              db_create_grants AS (
                SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                            ELSE g.rolname::pg_catalog.text END AS grantee
                  FROM here CROSS JOIN LATERAL pg_catalog.aclexplode(here.datacl) a
                  LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee
                 WHERE {template} AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                   AND a.grantee OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT oid FROM trusted_role)))
         SELECT (SELECT r.rolname::pg_catalog.text FROM pg_catalog.pg_namespace n
                   JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                  WHERE n.nspname OPERATOR(pg_catalog.=) 'public'),
                ARRAY(SELECT e.extname::pg_catalog.text FROM pg_catalog.pg_extension e ORDER BY e.extname),
                ARRAY(SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e
                        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
                       ORDER BY e.extname),
                ARRAY(SELECT pg_catalog.concat(f.nspname, '.', f.relname) FROM fix f ORDER BY 1),
                ARRAY(SELECT r.rolname::pg_catalog.text FROM fix f
                        JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) f.relowner
                       ORDER BY pg_catalog.concat(f.nspname, '.', f.relname)),
                (SELECT r.rolname::pg_catalog.text FROM pg_catalog.pg_namespace n
                   JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                  WHERE n.nspname OPERATOR(pg_catalog.=) 'topology'),
                ARRAY(SELECT sch.nspname::pg_catalog.text FROM sch ORDER BY sch.nspname),
                ARRAY(SELECT sch.owner::pg_catalog.text FROM sch ORDER BY sch.nspname),
                ARRAY(SELECT CASE WHEN (SELECT oid FROM ro) IS NULL THEN false
                                  ELSE pg_catalog.has_schema_privilege((SELECT oid FROM ro), sch.oid, 'USAGE') END
                        FROM sch ORDER BY sch.nspname),
                ARRAY(SELECT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(sch.nspacl) a
                                      WHERE a.grantee OPERATOR(pg_catalog.=) (SELECT oid FROM ro))
                        FROM sch ORDER BY sch.nspname),
                ARRAY(SELECT qname FROM rel WHERE owned AND NOT readable ORDER BY qname),
                ARRAY(SELECT kind FROM rel WHERE owned AND NOT readable ORDER BY qname),
                ARRAY(SELECT qname FROM rel WHERE explicit ORDER BY qname),
                ARRAY(SELECT kind FROM rel WHERE explicit ORDER BY qname),
                ARRAY(SELECT qname FROM rel WHERE NOT owned AND NOT readable ORDER BY qname),
                ARRAY(SELECT pg_catalog.concat(ds.schema_name, ':', ds.objtype) FROM default_selects ds
                       ORDER BY ds.schema_name, ds.objtype),
                EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n,
                               pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
                         WHERE n.nspname OPERATOR(pg_catalog.=) 'public' AND a.grantee OPERATOR(pg_catalog.=) 0
                           AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'),
                ARRAY(SELECT why FROM described ORDER BY why, what, owner),
                ARRAY(SELECT what FROM described ORDER BY why, what, owner),
                ARRAY(SELECT owner FROM described ORDER BY why, what, owner),
                ARRAY(SELECT coalesce(schema, '') FROM described ORDER BY why, what, owner),
                ARRAY(SELECT master_schema FROM described ORDER BY why, what, owner),
                ARRAY(SELECT coalesce(drop_sql, '') FROM described ORDER BY why, what, owner),
                ARRAY(SELECT target FROM create_grants ORDER BY target, grantee),
                ARRAY(SELECT grantee FROM create_grants ORDER BY target, grantee),
                ARRAY(SELECT grantee FROM db_create_grants ORDER BY 1)";

/// [`DATABASE_SNAPSHOT_SQL`] with its inputs.
pub(crate) fn database_snapshot_sql(
    owner: &str,
    reader: &str,
    schemas: &str,
    shadowing: &str,
    template: &str,
) -> String {
    DATABASE_SNAPSHOT_SQL
        .replace("{owner}", owner)
        .replace("{reader}", reader)
        .replace("{schemas}", schemas)
        .replace("{shadowing}", shadowing)
        .replace("{template}", template)
}

pub(crate) fn database_snapshot(
    client: &mut Client,
    owner: &str,
    role: Option<&str>,
    schemas: &[String],
    scope: SnapshotScope,
) -> Result<DatabaseSnapshot> {
    let row = client.query_typed_one(
        &database_snapshot_sql("$1", "$2", "$3", "$4", "$5"),
        &[
            (&owner, Type::TEXT),
            (&role, Type::TEXT),
            (&schemas, Type::TEXT_ARRAY),
            (&scope.shadowing, Type::BOOL),
            (&scope.template, Type::BOOL),
        ],
    )?;
    Ok(read_database_snapshot(&row, 0, scope))
}

/// Reads the columns of [`DATABASE_SNAPSHOT_SQL`] starting at `at`; `scope` says what was
/// asked (template hazards are `None` unless asked).
pub(crate) fn read_database_snapshot(
    row: &postgres::Row,
    at: usize,
    scope: SnapshotScope,
) -> DatabaseSnapshot {
    let why: Vec<String> = row.get(at + 17);
    let what: Vec<String> = row.get(at + 18);
    let owners: Vec<String> = row.get(at + 19);
    let obj_schemas: Vec<String> = row.get(at + 20);
    let master_schema: Vec<bool> = row.get(at + 21);
    let drops: Vec<String> = row.get(at + 22);
    let mut shadowing = Vec::new();
    let mut foreign_objects = Vec::new();
    for i in 0..why.len() {
        let object = DatabaseObject {
            description: what[i].clone(),
            owner: owners[i].clone(),
            schema: Some(obj_schemas[i].clone()).filter(|s| !s.is_empty()),
            schema_owned_by_master: master_schema[i],
            drop_sql: Some(drops[i].clone()).filter(|s| !s.is_empty()),
        };
        if why[i] == "s" {
            shadowing.push(object);
        } else {
            foreign_objects.push(object);
        }
    }
    let grant_targets: Vec<String> = row.get(at + 23);
    let grantees: Vec<String> = row.get(at + 24);
    let template_hazards = scope.template.then(|| TemplateHazards {
        foreign_objects,
        schema_create_grants: grant_targets
            .into_iter()
            .zip(grantees)
            .map(|(schema, grantee)| SchemaCreateGrant { schema, grantee })
            .collect(),
        database_create_grants: row.get(at + 25),
    });
    let ext_names: Vec<String> = row.get(at + 1);
    let ext_schemas: Vec<String> = row.get(at + 2);
    let rel_names: Vec<String> = row.get(at + 3);
    let rel_owners: Vec<String> = row.get(at + 4);
    let schema_names: Vec<String> = row.get(at + 6);
    let schema_owners: Vec<String> = row.get(at + 7);
    let usage: Vec<bool> = row.get(at + 8);
    let explicit_usage: Vec<bool> = row.get(at + 9);
    let kind = |k: &str| {
        if k == "S" {
            RelationKind::Sequence
        } else {
            RelationKind::Table
        }
    };
    let relations = |names: Vec<String>, kinds: Vec<String>| -> Vec<Relation> {
        names
            .into_iter()
            .zip(kinds)
            .map(|(n, k)| Relation {
                name: QuotedRelation(n),
                kind: kind(&k),
            })
            .collect()
    };
    let default_selects: Vec<String> = row.get(at + 15);
    DatabaseSnapshot {
        public_owner: row.get(at),
        public_create_for_public: row.get(at + 16),
        extensions: ext_names
            .into_iter()
            .zip(ext_schemas)
            .map(|(name, schema)| InstalledExtension { name, schema })
            .collect(),
        relation_owners: rel_names.into_iter().zip(rel_owners).collect(),
        topology_owner: row.get(at + 5),
        schemas: schema_names
            .into_iter()
            .enumerate()
            .map(|(i, name)| SchemaState {
                name,
                owner: schema_owners[i].clone(),
                role_has_usage: usage[i],
                role_has_explicit_usage: explicit_usage[i],
            })
            .collect(),
        unreadable: relations(row.get(at + 10), row.get(at + 11)),
        explicitly_readable: relations(row.get(at + 12), row.get(at + 13)),
        foreign_unreadable: row
            .get::<_, Vec<String>>(at + 14)
            .into_iter()
            .map(QuotedRelation)
            .collect(),
        default_selects: default_selects
            .into_iter()
            .filter_map(|s| {
                let (schema, objtype) = s.rsplit_once(':')?;
                Some(DefaultSelect {
                    schema: schema.to_owned(),
                    kind: kind(objtype),
                })
            })
            .collect(),
        shadowing,
        template_hazards,
        uninspected: false,
    }
}
