//! The bulk inspection of an instance for the fleet: one query in the maintenance database for
//! the server facts, every role and database an inventory names on the instance, and the roles
//! and databases nobody claims; one query in each project database for its owner and all its
//! readers. The per-operation snapshots ([`UserSnapshot`], [`ClusterSnapshot`],
//! [`DatabaseSnapshot`]) are read from the same column lists the per-operation inspections use,
//! so the planners see exactly what they would see one operation at a time.

use std::collections::BTreeMap;

use postgres::types::Type;
use postgres::Client;

use super::database::{
    available_extensions_lateral, cluster_columns, database_snapshot_sql, read_cluster,
    read_database_snapshot, CLUSTER_COLUMNS,
};
use super::{
    read_facts, AvailableExtension, ClusterSnapshot, DatabaseSnapshot, RoleState, ServerFacts,
    SnapshotScope, UserSnapshot, FACTS_COLUMNS, FACTS_SQL,
};
use crate::connect::ServerVersion;
use crate::error::Result;

/// What the bulk inspection of an instance is asked about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceRequest {
    /// The login roles the inventory names on the instance (owners and readers).
    pub roles: Vec<String>,
    /// Each database with the owner the inventory names.
    pub databases: Vec<(String, String)>,
    /// Each read-only grant: database and reader.
    pub grants: Vec<(String, String)>,
    /// Every extension a database asks for, prerequisites included.
    pub extensions: Vec<String>,
}

/// A database nobody in the inventory claims, as the maintenance database sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnclaimedDatabase {
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Whether the owner is a superuser (`rdsadmin` on RDS).
    pub owner_is_superuser: bool,
    /// `datistemplate`.
    pub is_template: bool,
    /// `datallowconn`.
    pub allows_connections: bool,
}

/// A login role nobody in the inventory claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnclaimedRole {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: RoleState,
}

/// What the maintenance database says about an instance, for the inventory's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSnapshot {
    /// The server and master.
    pub facts: ServerFacts,
    /// Each requested role, as [`UserSnapshot`] (the role's state, if it exists).
    pub users: BTreeMap<String, UserSnapshot>,
    /// Each requested database, as the [`ClusterSnapshot`] `ensure_database` plans from (the
    /// role is the owner the inventory names), keyed by database.
    pub databases: BTreeMap<String, ClusterSnapshot>,
    /// Each requested grant, as the [`ClusterSnapshot`] `grant_read_only` plans from (the role
    /// is the reader), keyed by (database, reader).
    pub grants: BTreeMap<(String, String), ClusterSnapshot>,
    /// The requested extensions the server has.
    pub available: Vec<AvailableExtension>,
    /// The maintenance database's schema `public` (owner and PUBLIC's CREATE), as
    /// `secure_instance` plans from.
    pub maintenance: DatabaseSnapshot,
    /// Databases not requested, in name order.
    pub unclaimed_databases: Vec<UnclaimedDatabase>,
    /// Login roles not requested, other than master, in name order.
    pub unclaimed_roles: Vec<UnclaimedRole>,
}

impl InstanceSnapshot {
    /// The [`ClusterSnapshot`] for a database spec, its `available` narrowed to `extensions`
    /// (as `ensure_database` asks).
    pub fn database_cluster(&self, database: &str, extensions: &[String]) -> ClusterSnapshot {
        let mut cluster = self.databases.get(database).cloned().unwrap_or_default();
        cluster.available = self
            .available
            .iter()
            .filter(|a| extensions.contains(&a.name))
            .cloned()
            .collect();
        cluster
    }
}

/// Whether role columns for `major` ask `pg_has_role` for SET (16+) or MEMBER.
fn set_privilege_of(major: u32) -> bool {
    major >= 16
}

/// Reads the instance in one query (two when `assumed_major`, the inventory's, is on the other
/// side of 16 from the server's: the role columns differ there).
pub(crate) fn instance_snapshot(
    client: &mut Client,
    assumed_major: u32,
    request: &InstanceRequest,
) -> Result<InstanceSnapshot> {
    match instance_query(client, assumed_major, request) {
        Ok(snapshot)
            if set_privilege_of(snapshot.facts.major) != set_privilege_of(assumed_major) =>
        {
            instance_query(client, snapshot.facts.major, request)
        }
        Err(e) if e.sqlstate().is_some() && set_privilege_of(assumed_major) => {
            // `pg_has_role(…, 'SET')` is refused before 16: ask the version, then again.
            match ServerVersion::query(client) {
                Ok(version) if !set_privilege_of(version.major()) => {
                    instance_query(client, version.major(), request)
                }
                _ => Err(e),
            }
        }
        other => other,
    }
}

const KIND_HEADER: &str = "header";
const KIND_USER: &str = "user";
const KIND_DATABASE: &str = "database";
const KIND_GRANT: &str = "grant";
const KIND_UNCLAIMED_ROLE: &str = "unclaimed_role";
const KIND_UNCLAIMED_DATABASE: &str = "unclaimed_database";

fn instance_query(
    client: &mut Client,
    major: u32,
    request: &InstanceRequest,
) -> Result<InstanceSnapshot> {
    let mut kinds: Vec<&str> = vec![KIND_HEADER];
    let mut dbnames: Vec<Option<&str>> = vec![None];
    let mut rolenames: Vec<Option<&str>> = vec![None];
    for role in &request.roles {
        kinds.push(KIND_USER);
        dbnames.push(None);
        rolenames.push(Some(role));
    }
    for (database, owner) in &request.databases {
        kinds.push(KIND_DATABASE);
        dbnames.push(Some(database));
        rolenames.push(Some(owner));
    }
    for (database, reader) in &request.grants {
        kinds.push(KIND_GRANT);
        dbnames.push(Some(database));
        rolenames.push(Some(reader));
    }
    let claimed_roles: Vec<&str> = request.roles.iter().map(String::as_str).collect();
    let claimed_databases: Vec<&str> = request.databases.iter().map(|(d, _)| d.as_str()).collect();
    let sql = format!(
        "SELECT f.*, n.kind, n.dbname, n.rolename, {cluster},
                coalesce(d.datistemplate, false), coalesce(d.datallowconn, false),
                CASE WHEN n.kind OPERATOR(pg_catalog.=) '{KIND_HEADER}' THEN
                     (SELECT pr.rolname::pg_catalog.text FROM pg_catalog.pg_namespace pn
                        JOIN pg_catalog.pg_roles pr ON pr.oid OPERATOR(pg_catalog.=) pn.nspowner
                       WHERE pn.nspname OPERATOR(pg_catalog.=) 'public') END,
                n.kind OPERATOR(pg_catalog.=) '{KIND_HEADER}' AND EXISTS (
                     SELECT 1 FROM pg_catalog.pg_namespace pn,
                            pg_catalog.aclexplode(coalesce(pn.nspacl, pg_catalog.acldefault('n', pn.nspowner))) pa
                      WHERE pn.nspname OPERATOR(pg_catalog.=) 'public' AND pa.grantee OPERATOR(pg_catalog.=) 0
                        AND pa.privilege_type OPERATOR(pg_catalog.=) 'CREATE')
           FROM ({facts}) f
          CROSS JOIN (
                SELECT u.i, u.kind, u.dbname, u.rolename
                  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),
                                  pg_catalog.unnest($2::pg_catalog.text[]),
                                  pg_catalog.unnest($3::pg_catalog.text[]))
                       WITH ORDINALITY AS u(kind, dbname, rolename, i)
                UNION ALL
                SELECT 0, '{KIND_UNCLAIMED_ROLE}', NULL::pg_catalog.text, ur.rolname::pg_catalog.text
                  FROM pg_catalog.pg_roles ur
                 WHERE ur.rolcanlogin AND ur.rolname OPERATOR(pg_catalog.<>) CURRENT_USER
                   AND ur.rolname OPERATOR(pg_catalog.<>) ALL ($4::pg_catalog.name[])
                UNION ALL
                SELECT 0, '{KIND_UNCLAIMED_DATABASE}', ud.datname::pg_catalog.text, NULL::pg_catalog.text
                  FROM pg_catalog.pg_database ud
                 WHERE ud.datname OPERATOR(pg_catalog.<>) ALL ($5::pg_catalog.name[])) n
           LEFT JOIN pg_catalog.pg_database d ON d.datname OPERATOR(pg_catalog.=) n.dbname
           LEFT JOIN pg_catalog.pg_roles dow ON dow.oid OPERATOR(pg_catalog.=) d.datdba
           LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) n.rolename
           {available}
          ORDER BY n.i, n.kind, n.dbname, n.rolename",
        cluster = cluster_columns(major),
        facts = FACTS_SQL,
        available = available_extensions_lateral(
            "$6",
            &format!("n.kind OPERATOR(pg_catalog.=) '{KIND_HEADER}'")
        ),
    );
    let rows = client.query_typed(
        &sql,
        &[
            (&kinds, Type::TEXT_ARRAY),
            (&dbnames, Type::TEXT_ARRAY),
            (&rolenames, Type::TEXT_ARRAY),
            (&claimed_roles, Type::TEXT_ARRAY),
            (&claimed_databases, Type::TEXT_ARRAY),
            (&request.extensions, Type::TEXT_ARRAY),
        ],
    )?;
    let header = rows
        .iter()
        .find(|r| r.get::<_, &str>(FACTS_COLUMNS) == KIND_HEADER)
        .ok_or_else(|| {
            crate::error::Error::InvalidInput(
                "the instance inspection returned no header row (is master's role visible in \
                 pg_roles?)"
                    .into(),
            )
        })?;
    let facts = read_facts(header, 0)?;
    let kind_at = FACTS_COLUMNS;
    let cluster_at = kind_at + 3;
    let extra_at = cluster_at + CLUSTER_COLUMNS;
    let header_cluster = read_cluster(header, cluster_at);
    let mut snapshot = InstanceSnapshot {
        facts,
        users: BTreeMap::new(),
        databases: BTreeMap::new(),
        grants: BTreeMap::new(),
        available: header_cluster.available,
        maintenance: DatabaseSnapshot {
            public_owner: header.get(extra_at + 2),
            public_create_for_public: header.get(extra_at + 3),
            ..DatabaseSnapshot::default()
        },
        unclaimed_databases: Vec::new(),
        unclaimed_roles: Vec::new(),
    };
    for row in &rows {
        let kind: &str = row.get(kind_at);
        let dbname: Option<String> = row.get(kind_at + 1);
        let rolename: Option<String> = row.get(kind_at + 2);
        let mut cluster = read_cluster(row, cluster_at);
        // The available extensions are read once, on the header row.
        cluster.available.clear();
        match kind {
            KIND_USER => {
                snapshot.users.insert(
                    rolename.unwrap_or_default(),
                    UserSnapshot {
                        role: cluster.role,
                        leftover_memberships: cluster.leftover_memberships,
                    },
                );
            }
            KIND_DATABASE => {
                snapshot
                    .databases
                    .insert(dbname.unwrap_or_default(), cluster);
            }
            KIND_GRANT => {
                snapshot.grants.insert(
                    (dbname.unwrap_or_default(), rolename.unwrap_or_default()),
                    cluster,
                );
            }
            KIND_UNCLAIMED_ROLE => {
                if let (Some(name), Some(state)) = (rolename, cluster.role) {
                    snapshot.unclaimed_roles.push(UnclaimedRole { name, state });
                }
            }
            KIND_UNCLAIMED_DATABASE => {
                if let (Some(name), Some(state)) = (dbname, cluster.database) {
                    snapshot.unclaimed_databases.push(UnclaimedDatabase {
                        name,
                        owner: state.owner,
                        owner_is_superuser: cluster.owner.is_some_and(|o| o.superuser),
                        is_template: row.get(extra_at),
                        allows_connections: row.get(extra_at + 1),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(snapshot)
}

/// One database's part of the bulk inspection: what `ensure_database` reads (as owner `owner`,
/// looking for shadowing objects when `shadowing`), then what `grant_read_only` reads for each
/// reader (as the database's current owner `current_owner`, in `schemas`), in one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseRequest {
    /// The owner the inventory names.
    pub owner: String,
    /// Whether extensions are asked for (shadowing objects are looked for then).
    pub shadowing: bool,
    /// The database's current owner (the grants are made as it).
    pub current_owner: String,
    /// The readers.
    pub readers: Vec<String>,
    /// The schemas the grants cover.
    pub schemas: Vec<String>,
}

/// What a project database holds: the snapshot `ensure_database` plans from, and the one
/// `grant_read_only` plans from for each reader, keyed by reader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseBulkSnapshot {
    /// For `ensure_database`.
    pub database: DatabaseSnapshot,
    /// For each reader's grant.
    pub readers: BTreeMap<String, DatabaseSnapshot>,
}

/// Reads a project database in one query (connected to it).
pub(crate) fn database_bulk_snapshot(
    client: &mut Client,
    request: &DatabaseRequest,
) -> Result<DatabaseBulkSnapshot> {
    let mut owners: Vec<&str> = vec![&request.owner];
    let mut readers: Vec<Option<&str>> = vec![None];
    let mut shadowing: Vec<bool> = vec![request.shadowing];
    for reader in &request.readers {
        owners.push(&request.current_owner);
        readers.push(Some(reader));
        shadowing.push(false);
    }
    let inner = database_snapshot_sql(
        "p.owner",
        "p.reader",
        "(CASE WHEN p.reader IS NULL THEN ARRAY[]::pg_catalog.text[] ELSE $4::pg_catalog.text[] END)",
        "p.shadowing",
        "false",
    );
    let sql = format!(
        "SELECT s.* FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),
                                    pg_catalog.unnest($2::pg_catalog.text[]),
                                    pg_catalog.unnest($3::pg_catalog.bool[]))
                          WITH ORDINALITY AS p(owner, reader, shadowing, i)
          CROSS JOIN LATERAL ({inner}) s
          ORDER BY p.i"
    );
    let rows = client.query_typed(
        &sql,
        &[
            (&owners, Type::TEXT_ARRAY),
            (&readers, Type::TEXT_ARRAY),
            (&shadowing, Type::BOOL_ARRAY),
            (&request.schemas, Type::TEXT_ARRAY),
        ],
    )?;
    let mut out = DatabaseBulkSnapshot::default();
    for (i, row) in rows.iter().enumerate() {
        let scope = SnapshotScope {
            shadowing: shadowing[i],
            template: false,
        };
        let snapshot = read_database_snapshot(row, 0, scope);
        match readers[i] {
            None => out.database = snapshot,
            Some(reader) => {
                out.readers.insert(reader.to_owned(), snapshot);
            }
        }
    }
    Ok(out)
}
