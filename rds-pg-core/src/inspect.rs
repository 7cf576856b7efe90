//! Reading what the server has: one bulk catalog query per database into a snapshot. Never reads
//! `pg_authid`.

use postgres::types::Type;
use postgres::Client;

use crate::connect::ServerVersion;
use crate::error::Result;

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
    /// Whether it has CREATEROLE.
    pub can_create_role: bool,
    /// Whether it has CREATEDB.
    pub can_create_db: bool,
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

pub(crate) fn server_facts(client: &mut Client) -> Result<ServerFacts> {
    // to_jsonb() reads the 16+ option columns where they exist and yields NULL before 16, so one
    // query serves every version.
    let row = client.query_typed_one(
        "SELECT current_setting('server_version_num')::int4, r.rolname::text, current_database()::text,
                r.rolsuper, r.rolcreaterole, r.rolcreatedb,
                coalesce(array_agg(g.rolname::text ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(array_agg(m.admin ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(array_agg(m.inh ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(array_agg(m.sett ORDER BY g.rolname) FILTER (WHERE g.oid IS NOT NULL), '{}'),
                coalesce(current_setting('rds.extensions', true), current_setting('extwlist.extensions', true))
           FROM pg_roles r
           LEFT JOIN LATERAL (
                SELECT am.roleid, bool_or(am.admin_option) AS admin,
                       bool_or(coalesce((to_jsonb(am) ->> 'inherit_option')::bool, r.rolinherit)) AS inh,
                       bool_or(coalesce((to_jsonb(am) ->> 'set_option')::bool, true)) AS sett
                  FROM pg_auth_members am WHERE am.member = r.oid GROUP BY am.roleid) m ON true
           LEFT JOIN pg_roles g ON g.oid = m.roleid
          WHERE r.rolname = current_user
          GROUP BY r.oid, r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb",
        &[],
    )?;
    let version = ServerVersion(row.get::<_, i32>(0) as u32);
    let roles: Vec<String> = row.get(6);
    let admin: Vec<bool> = row.get(7);
    let inherit: Vec<bool> = row.get(8);
    let set: Vec<bool> = row.get(9);
    let whitelist: Option<String> = row.get(10);
    Ok(ServerFacts {
        version,
        major: version.major(),
        current_user: row.get(1),
        current_database: row.get(2),
        is_superuser: row.get(3),
        can_create_role: row.get(4),
        can_create_db: row.get(5),
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
    /// Member of `rds_superuser`.
    pub rds_superuser_member: bool,
    /// It is the connected role.
    pub is_current_user: bool,
    /// What the connected role can do with it.
    pub access: RoleAccess,
}

/// `SET` privilege test for `pg_has_role`: 16+ has it; before, any membership allows SET ROLE.
fn set_privilege(major: u32) -> &'static str {
    if major >= 16 {
        "SET"
    } else {
        "MEMBER"
    }
}

/// SQL columns describing role `alias` (a `pg_roles` row, possibly NULL from a LEFT JOIN).
pub(crate) fn role_columns(alias: &str, major: u32) -> String {
    let set = set_privilege(major);
    format!(
        "{a}.oid IS NOT NULL, coalesce({a}.rolsuper, false), coalesce({a}.rolcanlogin, false),
         coalesce({a}.rolcreatedb, false), coalesce({a}.rolcreaterole, false),
         coalesce({a}.rolreplication, false), coalesce({a}.rolbypassrls, false),
         coalesce({a}.rolconnlimit, -1),
         EXISTS (SELECT 1 FROM pg_roles s WHERE s.rolname = 'rds_superuser' AND {a}.oid IS NOT NULL
                   AND pg_has_role({a}.oid, s.oid, 'MEMBER')),
         coalesce({a}.rolname = current_user, false),
         CASE WHEN {a}.oid IS NULL THEN false ELSE pg_has_role(current_user, {a}.oid, 'USAGE') END,
         CASE WHEN {a}.oid IS NULL THEN false ELSE pg_has_role(current_user, {a}.oid, '{set}') END,
         CASE WHEN {a}.oid IS NULL THEN false
              ELSE pg_has_role(current_user, {a}.oid, 'MEMBER WITH ADMIN OPTION') END",
        a = alias
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
        rds_superuser_member: row.get(at + 8),
        is_current_user: row.get(at + 9),
        access: RoleAccess {
            usage: row.get(at + 10),
            set: row.get(at + 11),
            admin: row.get(at + 12),
        },
    })
}

pub(crate) const ROLE_COLUMNS: usize = 13;

/// The snapshot `ensure_user` plans from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSnapshot {
    /// The role, if it exists.
    pub role: Option<RoleState>,
}

pub(crate) fn user_snapshot(
    client: &mut Client,
    major: u32,
    name: &str,
    valid_until: Option<&str>,
) -> Result<UserSnapshot> {
    let sql = format!(
        "SELECT {}, CASE WHEN $2::text IS NULL THEN false
                         ELSE r.rolvaliduntil IS DISTINCT FROM $2::text::timestamptz END
           FROM (SELECT $1::text AS name) n LEFT JOIN pg_roles r ON r.rolname = n.name",
        role_columns("r", major)
    );
    let row = client.query_typed_one(&sql, &[(&name, Type::TEXT), (&valid_until, Type::TEXT)])?;
    let role = read_role(&row, 0).map(|mut r| {
        r.valid_until_differs = row.get(ROLE_COLUMNS);
        r
    });
    Ok(UserSnapshot { role })
}

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
    /// Whether master may connect to it (needed to inspect it).
    pub master_can_connect: bool,
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
}

pub(crate) fn cluster_snapshot(
    client: &mut Client,
    major: u32,
    database: &str,
    role: &str,
    extensions: &[String],
) -> Result<ClusterSnapshot> {
    let sql = format!(
        "SELECT {role_cols}, {owner_cols},
                d.oid IS NOT NULL, coalesce(dow.rolname::text, ''), coalesce(pg_encoding_to_char(d.encoding)::text, ''),
                coalesce(d.datconnlimit, -1),
                coalesce(EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                                  WHERE a.grantee = 0), false),
                CASE WHEN d.oid IS NULL THEN false ELSE pg_has_role(current_user, d.datdba, 'USAGE') END,
                coalesce(x.names, '{{}}'), coalesce(x.trusted, '{{}}'),
                CASE WHEN d.oid IS NULL OR r.oid IS NULL THEN false
                     ELSE has_database_privilege(r.oid, d.oid, 'CONNECT') END,
                coalesce(EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = r.oid), false),
                CASE WHEN d.oid IS NULL THEN false ELSE has_database_privilege(current_user, d.oid, 'CONNECT') END
           FROM (SELECT $1::text AS dbname, $2::text AS rolename) n
           LEFT JOIN pg_database d ON d.datname = n.dbname
           LEFT JOIN pg_roles dow ON dow.oid = d.datdba
           LEFT JOIN pg_roles r ON r.rolname = n.rolename
           LEFT JOIN LATERAL (
                SELECT array_agg(e.name::text ORDER BY e.name) AS names,
                       array_agg(e.t ORDER BY e.name) AS trusted
                  FROM (SELECT name, bool_or(trusted) AS t FROM pg_available_extension_versions
                         WHERE cardinality($3::text[]) > 0 AND name = ANY($3) GROUP BY name) e) x ON true",
        role_cols = role_columns("r", major),
        owner_cols = role_columns("dow", major),
    );
    let row = client.query_typed_one(
        &sql,
        &[
            (&database, Type::TEXT),
            (&role, Type::TEXT),
            (&extensions, Type::TEXT_ARRAY),
        ],
    )?;
    let role_state = read_role(&row, 0);
    let owner_state = read_role(&row, ROLE_COLUMNS);
    let at = 2 * ROLE_COLUMNS;
    let database = row.get::<_, bool>(at).then(|| DatabaseState {
        owner: row.get(at + 1),
        encoding: row.get(at + 2),
        connection_limit: row.get(at + 3),
        public_has_privileges: row.get(at + 4),
        master_has_owner_privileges: row.get(at + 5),
        master_can_connect: row.get(at + 10),
    });
    let names: Vec<String> = row.get(at + 6);
    let trusted: Vec<bool> = row.get(at + 7);
    Ok(ClusterSnapshot {
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
    })
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
    pub relation_owners: Vec<(String, String)>,
    /// Owner of schema `topology`, if present.
    pub topology_owner: Option<String>,
    /// The requested schemas that exist.
    pub schemas: Vec<SchemaState>,
    /// Relations of the requested schemas owned by the database owner that the read-only role
    /// cannot read (quoted `schema.name`), with their kind (`r` table-like, `S` sequence).
    pub unreadable: Vec<(String, char)>,
    /// Relations the read-only role holds an explicit SELECT on (quoted), with their kind.
    pub explicitly_readable: Vec<(String, char)>,
    /// Relations in the requested schemas not owned by the database owner and unreadable.
    pub foreign_unreadable: Vec<String>,
    /// Default privileges (`schema`, `r`|`S`) of the owner that already give SELECT to the role.
    pub default_selects: Vec<(String, char)>,
}

pub(crate) fn database_snapshot(
    client: &mut Client,
    owner: &str,
    role: Option<&str>,
    schemas: &[String],
) -> Result<DatabaseSnapshot> {
    let row = client.query_typed_one(
        "WITH o AS (SELECT oid FROM pg_roles WHERE rolname = $1),
              ro AS (SELECT oid FROM pg_roles WHERE rolname = $2),
              rel AS (
                SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS qname,
                       CASE WHEN c.relkind = 'S' THEN 'S' ELSE 'r' END AS kind,
                       c.relowner = (SELECT oid FROM o) AS owned,
                       CASE WHEN (SELECT oid FROM ro) IS NULL THEN true
                            WHEN c.relkind = 'S' THEN has_sequence_privilege((SELECT oid FROM ro), c.oid, 'SELECT')
                            ELSE has_table_privilege((SELECT oid FROM ro), c.oid, 'SELECT') END AS readable,
                       EXISTS (SELECT 1 FROM aclexplode(c.relacl) a
                                WHERE a.grantee = (SELECT oid FROM ro) AND a.privilege_type = 'SELECT') AS explicit
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = ANY($3) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                      AND d.objid = c.oid AND d.deptype = 'i')
              )
         SELECT (SELECT r.rolname::text FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                  WHERE n.nspname = 'public'),
                ARRAY(SELECT e.extname::text FROM pg_extension e ORDER BY e.extname),
                ARRAY(SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                       ORDER BY e.extname),
                ARRAY(SELECT format('%s.%s', n.nspname, c.relname) FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE (c.relname = 'spatial_ref_sys' OR (n.nspname = 'topology' AND c.relname IN ('topology', 'layer')))
                         AND c.relkind = 'r' ORDER BY 1),
                ARRAY(SELECT r.rolname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        JOIN pg_roles r ON r.oid = c.relowner
                       WHERE (c.relname = 'spatial_ref_sys' OR (n.nspname = 'topology' AND c.relname IN ('topology', 'layer')))
                         AND c.relkind = 'r' ORDER BY format('%s.%s', n.nspname, c.relname)),
                (SELECT r.rolname::text FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                  WHERE n.nspname = 'topology'),
                ARRAY(SELECT n.nspname::text FROM pg_namespace n WHERE n.nspname = ANY($3) ORDER BY n.nspname),
                ARRAY(SELECT r.rolname::text FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                       WHERE n.nspname = ANY($3) ORDER BY n.nspname),
                ARRAY(SELECT CASE WHEN (SELECT oid FROM ro) IS NULL THEN false
                                  ELSE has_schema_privilege((SELECT oid FROM ro), n.oid, 'USAGE') END
                        FROM pg_namespace n WHERE n.nspname = ANY($3) ORDER BY n.nspname),
                ARRAY(SELECT EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = (SELECT oid FROM ro))
                        FROM pg_namespace n WHERE n.nspname = ANY($3) ORDER BY n.nspname),
                ARRAY(SELECT qname FROM rel WHERE owned AND NOT readable ORDER BY qname),
                ARRAY(SELECT kind FROM rel WHERE owned AND NOT readable ORDER BY qname),
                ARRAY(SELECT qname FROM rel WHERE explicit ORDER BY qname),
                ARRAY(SELECT kind FROM rel WHERE explicit ORDER BY qname),
                ARRAY(SELECT qname FROM rel WHERE NOT owned AND NOT readable ORDER BY qname),
                ARRAY(SELECT n.nspname::text || ':' || da.defaclobjtype::text
                        FROM pg_default_acl da JOIN pg_namespace n ON n.oid = da.defaclnamespace
                       WHERE da.defaclrole = (SELECT oid FROM o) AND n.nspname = ANY($3)
                         AND EXISTS (SELECT 1 FROM aclexplode(da.defaclacl) a
                                      WHERE a.grantee = (SELECT oid FROM ro) AND a.privilege_type = 'SELECT')
                       ORDER BY 1),
                EXISTS (SELECT 1 FROM pg_namespace n,
                               aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                         WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')",
        &[
            (&owner, Type::TEXT),
            (&role, Type::TEXT),
            (&schemas, Type::TEXT_ARRAY),
        ],
    )?;
    let ext_names: Vec<String> = row.get(1);
    let ext_schemas: Vec<String> = row.get(2);
    let rel_names: Vec<String> = row.get(3);
    let rel_owners: Vec<String> = row.get(4);
    let schema_names: Vec<String> = row.get(6);
    let schema_owners: Vec<String> = row.get(7);
    let usage: Vec<bool> = row.get(8);
    let explicit_usage: Vec<bool> = row.get(9);
    let kinds = |names: Vec<String>, kinds: Vec<String>| -> Vec<(String, char)> {
        names
            .into_iter()
            .zip(kinds)
            .map(|(n, k)| (n, k.chars().next().unwrap_or('r')))
            .collect()
    };
    let default_selects: Vec<String> = row.get(15);
    Ok(DatabaseSnapshot {
        public_owner: row.get(0),
        public_create_for_public: row.get(16),
        extensions: ext_names
            .into_iter()
            .zip(ext_schemas)
            .map(|(name, schema)| InstalledExtension { name, schema })
            .collect(),
        relation_owners: rel_names.into_iter().zip(rel_owners).collect(),
        topology_owner: row.get(5),
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
        unreadable: kinds(row.get(10), row.get(11)),
        explicitly_readable: kinds(row.get(12), row.get(13)),
        foreign_unreadable: row.get(14),
        default_selects: default_selects
            .into_iter()
            .filter_map(|s| {
                let (schema, kind) = s.rsplit_once(':')?;
                Some((schema.to_owned(), kind.chars().next()?))
            })
            .collect(),
    })
}
