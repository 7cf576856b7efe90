//! Planning `ensure_database` and `ensure_extensions`: the database owned by its project user,
//! PUBLIC's access revoked, extensions (untrusted ones as master, trusted ones as the owner),
//! their fix-ups, and schema `public` in the owner's hands — refusing templates and extension
//! scripts that would run or copy what another role planted.

use super::{
    as_owner_block, q, refuse_privileged, temporary_membership, with_membership, Change,
    ExtensionSchema, Grantee, Need, Plan, Step, TopologyTable,
};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inspect::{
    ClusterSnapshot, DatabaseObject, DatabaseSnapshot, ServerFacts, TemplateHazards,
};
use crate::spec::{DatabaseSpec, Extension};

/// Whether an extension may be created by master here, checked before any SQL.
fn check_extension_allowed(
    facts: &ServerFacts,
    snapshot: &ClusterSnapshot,
    ext: &Extension,
) -> Result<bool> {
    let name = ext.name();
    let Some(available) = snapshot.available.iter().find(|a| a.name == name) else {
        return Err(Error::NotFound {
            message: format!("extension {name:?} is not available on this server"),
            source: None,
        });
    };
    if !available.trusted && !facts.is_superuser {
        let listed = facts
            .extension_whitelist
            .as_ref()
            .map(|w| w.iter().any(|e| e == name));
        if listed != Some(true) {
            return Err(Error::PermissionDenied {
                message: format!(
                    "extension {name:?} is not trusted and not in this server's extension whitelist \
                     (rds.extensions), so {:?} cannot create it",
                    facts.current_user
                ),
                hint: Some("choose an extension RDS supports for this engine version".into()),
                source: None,
            });
        }
    }
    Ok(available.trusted)
}

/// The requested extensions with their prerequisites first, each once.
fn with_requirements(extensions: &[Extension]) -> Vec<Extension> {
    let mut out: Vec<Extension> = Vec::new();
    for e in extensions {
        for r in e.requires() {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

/// `description (owner)` of each object, comma-separated.
fn describe_objects(objects: &[DatabaseObject]) -> String {
    objects
        .iter()
        .map(|o| format!("{} (owner {:?})", o.description, o.owner))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal of an extension whose script would run where the owner planted names that shadow
/// pg_catalog's: an untrusted extension's script runs as master (through RDS's whitelist, as the
/// superuser), so any of them it called would run the planter's code with those rights.
fn shadowing_refusal(
    database: &DatabaseName,
    owner: &RoleName,
    ext: &Extension,
    trusted: bool,
    shadowing: &[DatabaseObject],
) -> Error {
    let drops: Vec<String> = shadowing
        .iter()
        .map(|o| {
            o.drop_sql
                .clone()
                .unwrap_or_else(|| format!("-- remove {}", o.description))
        })
        .collect();
    Error::Refused {
        message: format!(
            "{} extension {ext} would run its script in {:?} with {} on its search_path: any of \
             them it called would run as {}. The owner {:?} removes them (the fix's SQL) or \
             moves them to another schema",
            if trusted { "trusted" } else { "untrusted" },
            database.as_str(),
            describe_objects(shadowing),
            if trusted {
                "the bootstrap superuser"
            } else {
                "master or the superuser"
            },
            owner.as_str()
        ),
        fix: drops.join(";\n"),
    }
}

/// The refusal of a template that holds what would be copied into a new database.
fn template_refusal(
    facts: &ServerFacts,
    template: &DatabaseName,
    database: &DatabaseName,
    hazards: &TemplateHazards,
) -> Error {
    let mut problems = Vec::new();
    let mut fix = Vec::new();
    if !hazards.foreign_objects.is_empty() {
        problems.push(format!(
            "it holds {} object(s) of roles other than {:?}: {}",
            hazards.foreign_objects.len(),
            facts.current_user,
            describe_objects(&hazards.foreign_objects)
        ));
        let mut owners: Vec<&str> = Vec::new();
        for o in &hazards.foreign_objects {
            match (&o.drop_sql, o.schema_owned_by_master || o.schema.is_none()) {
                (Some(sql), true) => fix.push(sql.clone()),
                _ => {
                    if !owners.contains(&o.owner.as_str()) {
                        owners.push(&o.owner);
                    }
                }
            }
        }
        for owner in owners {
            fix.push(format!(
                "-- as {owner:?} (or a role with its privileges): DROP OWNED BY {} in {:?} \
                 (what remains of it there)",
                q(owner),
                template.as_str()
            ));
        }
    }
    for grant in &hazards.schema_create_grants {
        problems.push(format!(
            "{} may create objects in schema {:?}",
            grant.grantee, grant.schema
        ));
        fix.push(format!(
            "REVOKE CREATE ON SCHEMA {} FROM {}",
            q(&grant.schema),
            grantee_sql(&grant.grantee)
        ));
    }
    for grantee in &hazards.database_create_grants {
        problems.push(format!("{grantee} may create schemas in it"));
        fix.push(format!(
            "REVOKE CREATE ON DATABASE {} FROM {}",
            template.quoted(),
            grantee_sql(grantee)
        ));
    }
    Error::Refused {
        message: format!(
            "template {:?} is not safe to copy into new database {:?}: {}. Everything in a \
             template is copied into the databases created from it, owners and privileges \
             included. Connected to {:?} as {:?}, the fix's SQL cleans it (`rds-pg instance \
             secure` revokes PUBLIC's CREATE on schema public in postgres and template1)",
            template.as_str(),
            database.as_str(),
            problems.join("; "),
            template.as_str(),
            facts.current_user,
        ),
        fix: fix.join(";\n"),
    }
}

fn grantee_sql(grantee: &str) -> String {
    if grantee == "PUBLIC" {
        "PUBLIC".to_owned()
    } else {
        q(grantee)
    }
}

/// The template a new database is created from: the spec's, else `template0` on 15+ and
/// `template1` before 15 (see [`DatabaseSpec::template`]).
pub fn resolve_template(facts: &ServerFacts, spec: &DatabaseSpec) -> DatabaseName {
    spec.template.clone().unwrap_or_else(|| {
        DatabaseName::from_catalog(if facts.major >= 15 {
            "template0"
        } else {
            "template1"
        })
    })
}

/// The statements that hand an extension's objects to the database owner after creation, given
/// the schema the extension lives in. Run as master (RDS lets `rds_superuser` members re-own
/// them).
fn fixups(ext: &Extension, schema: &str, owner: &RoleName) -> Vec<Change> {
    match ext {
        Extension::Postgis => vec![Change::ReownSpatialRefSys {
            schema: schema.to_owned(),
            owner: owner.clone(),
        }],
        Extension::PostgisTopology => vec![
            Change::ReownTopologySchema {
                owner: owner.clone(),
            },
            Change::ReownTopologyTable {
                table: TopologyTable::Topology,
                owner: owner.clone(),
            },
            Change::ReownTopologyTable {
                table: TopologyTable::Layer,
                owner: owner.clone(),
            },
        ],
        _ => Vec::new(),
    }
}

/// What the in-database part of `ensure_database`/`ensure_extensions` works on.
struct InDatabase<'a> {
    facts: &'a ServerFacts,
    cluster: &'a ClusterSnapshot,
    db: &'a DatabaseSnapshot,
    database: &'a DatabaseName,
    owner: &'a RoleName,
    strict: bool,
    allow_shadowing: bool,
}

/// Plans the in-database part of `ensure_database`/`ensure_extensions`: extensions, fix-ups and
/// the public schema's owner. Returns whether master itself creates an (untrusted) extension,
/// which needs the owner's privileges on the database, not only SET ROLE.
fn plan_in_database(
    at: &InDatabase<'_>,
    extensions: &[Extension],
    plan: &mut Plan,
) -> Result<bool> {
    let InDatabase {
        facts,
        cluster,
        db,
        database,
        owner,
        strict,
        allow_shadowing,
    } = *at;
    let d = Some(database);
    let mut as_owner = Vec::new();
    let mut shadow_noted = false;
    let mut master_creates = false;
    for ext in with_requirements(extensions) {
        let trusted = check_extension_allowed(facts, cluster, &ext)?;
        let installed = db.extensions.iter().find(|e| e.name == ext.name());
        if installed.is_none() && db.uninspected && !trusted {
            return Err(Error::Refused {
                message: format!(
                    "master cannot look inside database {:?} yet (no CONNECT), so it cannot check \
                     what the owner planted where untrusted extension {ext} would run its script",
                    database.as_str()
                ),
                fix: format!(
                    "converge the database without extensions first (it grants master CONNECT), \
                     then add {ext}"
                ),
            });
        }
        if installed.is_none() && !db.shadowing.is_empty() {
            if (!trusted || strict) && !allow_shadowing {
                return Err(shadowing_refusal(
                    database,
                    owner,
                    &ext,
                    trusted,
                    &db.shadowing,
                ));
            }
            if !shadow_noted {
                shadow_noted = true;
                plan.notes.push(format!(
                    "{} in {:?} share a name with pg_catalog ones and belong to no extension: {}",
                    describe_objects(&db.shadowing),
                    database.as_str(),
                    if allow_shadowing {
                        "extensions are created anyway, as allowed"
                    } else {
                        "trusted extensions are still created (as the owner, who could create \
                         them too); untrusted ones would be refused"
                    }
                ));
            }
        }
        let schema = match installed {
            Some(e) => e.schema.clone(),
            None => {
                let change = Change::CreateExtension {
                    extension: ext.clone(),
                    schema: if ext == Extension::PostgisTopology {
                        ExtensionSchema::ControlFile
                    } else {
                        ExtensionSchema::Public
                    },
                };
                if trusted {
                    as_owner.push(Step::new(
                        facts,
                        d,
                        change,
                        format!("trusted extension {ext}: created as the owner, who then owns it"),
                    ));
                } else {
                    master_creates = true;
                    plan.steps.push(Step::new(
                        facts,
                        d,
                        change,
                        format!("untrusted extension {ext}: only master may create it"),
                    ));
                }
                "public".to_owned()
            }
        };
        let owned_by_owner = |qualified: &str| {
            db.relation_owners.get(qualified).map(String::as_str) == Some(owner.as_str())
        };
        let needs_fixup = match &ext {
            Extension::Postgis => !owned_by_owner(&format!("{schema}.spatial_ref_sys")),
            Extension::PostgisTopology => {
                db.topology_owner.as_deref() != Some(owner.as_str())
                    || !owned_by_owner("topology.topology")
                    || !owned_by_owner("topology.layer")
            }
            _ => false,
        };
        if needs_fixup {
            for change in fixups(&ext, &schema, owner) {
                plan.steps.push(Step::new(
                    facts,
                    d,
                    change,
                    format!("the owner must own {ext}'s tables to use them fully"),
                ));
            }
        }
    }
    // Schema public: the owner's (directly or as pg_database_owner), and, as on 15+, nobody
    // else may create in it.
    let owner_controls_public = match db.public_owner.as_deref() {
        None => false,
        Some("pg_database_owner") => true,
        Some(o) if o == owner.as_str() => true,
        Some(o) => {
            let master_owns = o == facts.current_user
                || facts.memberships.iter().any(|m| m.role == o && m.inherit);
            if master_owns || facts.is_superuser {
                plan.steps.push(Step::new(
                    facts,
                    d,
                    Change::ReownPublicSchema {
                        owner: owner.clone(),
                    },
                    format!("schema public is owned by {o:?}, not pg_database_owner"),
                ));
                true
            } else {
                plan.notes.push(format!(
                    "schema public in {:?} is owned by {o:?}, which master cannot act for; left as is \
                     (PUBLIC keeps CREATE on it: create the database from template1 instead)",
                    database.as_str()
                ));
                false
            }
        }
    };
    if owner_controls_public && db.public_create_for_public {
        as_owner.push(Step::new(
            facts,
            d,
            Change::RevokeCreateOnPublicSchema,
            "only the owner may create objects in schema public (the 15+ default)",
        ));
    }
    as_owner_block(facts, d, owner, "act as the owner", as_owner, plan);
    Ok(master_creates)
}

/// Plans `ensure_database`. `db` is the inspected database, or the template's snapshot when it
/// does not exist yet ([`DatabaseSnapshot::fresh_from_template0`] for `template0`).
///
/// # Errors
/// [`Error::NotFound`] for a missing owner or an unavailable extension,
/// [`Error::PolicyViolation`] for a privileged owner, an encoding mismatch, an unsafe template or
/// an extension script next to names the owner planted, [`Error::PermissionDenied`] (with the
/// fix) when master cannot gain the owner's membership.
pub fn plan_database(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    spec: &DatabaseSpec,
) -> Result<Plan> {
    spec.validate()?;
    let owner = cluster.role.as_ref().ok_or_else(|| Error::NotFound {
        message: format!(
            "owner role {:?} does not exist (ensure_user first)",
            spec.owner.as_str()
        ),
        source: None,
    })?;
    refuse_privileged(spec.owner.as_str(), owner, "database owner")?;
    let mut plan = Plan::default();
    let step = |change: Change, reason: &str| Step::new(facts, None, change, reason);
    // Database-level statements run as the owner (a SET ROLE block): the database's ACL is the
    // owner's to change, and on 16+ master only may SET ROLE to the owner.
    let mut as_owner = Vec::new();
    let mut need = Need::SetRole;
    let mut previous_owner = None;
    match &cluster.database {
        None => {
            let template = resolve_template(facts, spec);
            if let Some(hazards) = db.template_hazards.as_ref().filter(|h| !h.is_empty()) {
                return Err(template_refusal(facts, &template, &spec.name, hazards));
            }
            plan.steps.push(step(
                Change::CreateDatabase {
                    database: spec.name.clone(),
                    owner: spec.owner.clone(),
                    template,
                    encoding: spec.encoding.clone(),
                    locale: spec.locale.clone(),
                    lc_collate: spec.lc_collate.clone(),
                    lc_ctype: spec.lc_ctype.clone(),
                    connection_limit: spec.connection_limit,
                },
                "the database does not exist",
            ));
            as_owner.push(step(
                Change::RevokeAllOnDatabase {
                    database: spec.name.clone(),
                    from: Grantee::Public,
                },
                "only the project's roles may connect",
            ));
            as_owner.push(master_connect_step(facts, &spec.name));
        }
        Some(state) => {
            if !same_encoding(&state.encoding, &spec.encoding) {
                return Err(Error::PolicyViolation(format!(
                    "database {:?} exists with encoding {}, not {}; rds-pg does not recreate databases",
                    spec.name.as_str(),
                    state.encoding,
                    spec.encoding
                )));
            }
            if state.owner != spec.owner.as_str() {
                if !spec.take_over {
                    return Err(Error::Refused {
                        message: format!(
                            "database {:?} exists and belongs to {:?}, not {:?}: rds-pg does not \
                             move a database from one project to another unless asked to take it \
                             over",
                            spec.name.as_str(),
                            state.owner,
                            spec.owner.as_str()
                        ),
                        fix: format!(
                            "pick another database name, or take it over explicitly (DatabaseSpec::take_over, \
                             `rds-pg db create {} --owner {} --take-over`)",
                            spec.name.as_str(),
                            spec.owner.as_str()
                        ),
                    });
                }
                if !state.master_has_owner_privileges && !facts.is_superuser {
                    // ALTER DATABASE … OWNER needs the current owner's privileges: master gains
                    // them for the operation, as it does the new owner's, when the current owner
                    // is a project role (never a role that holds more).
                    let denied = || Error::PermissionDenied {
                        message: format!(
                            "database {:?} is owned by {:?}, whose privileges master does not have",
                            spec.name.as_str(),
                            state.owner
                        ),
                        hint: Some(format!(
                            "GRANT {} TO {}",
                            q(&state.owner),
                            q(&facts.current_user)
                        )),
                        source: None,
                    };
                    let current = cluster.owner.as_ref().ok_or_else(denied)?;
                    if current.superuser
                        || current.is_current_user
                        || !current.privileges_beyond_a_project_role().is_empty()
                    {
                        return Err(denied());
                    }
                    previous_owner =
                        temporary_membership(facts, &state.owner, current, Need::Privileges)?;
                }
                plan.notes.push(format!(
                    "objects inside database {:?} keep their owners: {:?} keeps what it created \
                     there (REASSIGN OWNED BY {} TO {}, in the database, moves them)",
                    spec.name.as_str(),
                    state.owner,
                    q(&state.owner),
                    spec.owner.quoted()
                ));
                plan.steps.push(step(
                    Change::AlterDatabaseOwner {
                        database: spec.name.clone(),
                        owner: spec.owner.clone(),
                    },
                    &format!("owned by {:?}; taken over as asked", state.owner),
                ));
                need = Need::Privileges;
            }
            if let Some(limit) = spec
                .connection_limit
                .filter(|l| *l != state.connection_limit)
            {
                as_owner.push(step(
                    Change::AlterDatabaseConnectionLimit {
                        database: spec.name.clone(),
                        limit,
                    },
                    "the connection limit differs",
                ));
            }
            if state.public_has_privileges {
                as_owner.push(step(
                    Change::RevokeAllOnDatabase {
                        database: spec.name.clone(),
                        from: Grantee::Public,
                    },
                    "PUBLIC may connect to it",
                ));
            }
            // Master's own CONNECT, whether or not PUBLIC's is revoked now: a database created
            // by hand, or by a run killed after CREATE DATABASE, lets master in through PUBLIC
            // only until the revoke above.
            if !state.master_has_connect_grant && !facts.is_superuser {
                as_owner.push(master_connect_step(facts, &spec.name));
            }
        }
    }
    as_owner_block(
        facts,
        None,
        &spec.owner,
        "act as the owner",
        as_owner,
        &mut plan,
    );
    let at = InDatabase {
        facts,
        cluster,
        db,
        database: &spec.name,
        owner: &spec.owner,
        strict: spec.strict,
        allow_shadowing: spec.allow_shadowing,
    };
    if plan_in_database(&at, &spec.extensions, &mut plan)? {
        need = Need::Privileges;
    }
    with_membership(
        temporary_membership(facts, spec.owner.as_str(), owner, need)?,
        &mut plan,
    );
    // Outermost: the owner a taken-over database had.
    with_membership(previous_owner, &mut plan);
    Ok(plan)
}

/// `GRANT CONNECT … TO master`, so later runs can inspect the database once PUBLIC lost CONNECT
/// (a by-hand setup grants master all privileges on the database for the same reason).
fn master_connect_step(facts: &ServerFacts, database: &DatabaseName) -> Step {
    Step::new(
        facts,
        None,
        Change::GrantConnect {
            database: database.clone(),
            to: RoleName::from_catalog(&facts.current_user),
        },
        "master must be able to connect to inspect and maintain it",
    )
}

/// Refuses to plan inside a database master cannot connect to.
pub(crate) fn ensure_master_can_connect(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    database: &DatabaseName,
) -> Result<()> {
    match &cluster.database {
        Some(d) if !d.master_can_connect && !facts.is_superuser => Err(Error::PermissionDenied {
            message: format!("{:?} has no CONNECT privilege on database {:?}", facts.current_user, database.as_str()),
            hint: Some(format!(
                "run ensure_database for {:?} once (it grants master CONNECT), or as its owner: GRANT CONNECT ON DATABASE {} TO {}",
                database.as_str(),
                database.quoted(),
                q(&facts.current_user)
            )),
            source: None,
        }),
        _ => Ok(()),
    }
}

/// Encoding names as PostgreSQL compares them: case, `-` and `_` do not matter (`utf-8` = `UTF8`).
fn same_encoding(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_uppercase()
    };
    norm(a) == norm(b)
}

/// Plans `ensure_extensions` for an existing database (owner from the cluster snapshot).
///
/// # Errors
/// As [`plan_database`].
pub fn plan_extensions(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    database: &DatabaseName,
    extensions: &[Extension],
) -> Result<Plan> {
    let state = cluster.database.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("database {:?} does not exist", database.as_str()),
        source: None,
    })?;
    let owner_state = cluster.owner.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("the owner of {:?} is not visible", database.as_str()),
        source: None,
    })?;
    let owner = RoleName::from_catalog(state.owner.as_str());
    let mut plan = Plan::default();
    let at = InDatabase {
        facts,
        cluster,
        db,
        database,
        owner: &owner,
        strict: false,
        allow_shadowing: false,
    };
    let need = if plan_in_database(&at, extensions, &mut plan)? {
        Need::Privileges
    } else {
        Need::SetRole
    };
    if owner.as_str() != facts.current_user {
        with_membership(
            temporary_membership(facts, owner.as_str(), owner_state, need)?,
            &mut plan,
        );
    }
    Ok(plan)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::inspect::{
        AvailableExtension, DatabaseState, InstalledExtension, RoleAccess, RoleState,
    };
    use crate::plan::tests::{facts, project_role, sql, CREATED_BY_MASTER_16};

    pub(crate) fn cluster(access: RoleAccess, database: Option<DatabaseState>) -> ClusterSnapshot {
        ClusterSnapshot {
            database,
            role: Some(project_role(access)),
            owner: None,
            available: vec![
                AvailableExtension {
                    name: "hstore".into(),
                    trusted: true,
                },
                AvailableExtension {
                    name: "postgis".into(),
                    trusted: false,
                },
                AvailableExtension {
                    name: "pg_stat_statements".into(),
                    trusted: false,
                },
            ],
            role_can_connect: false,
            role_has_database_grant: false,
            leftover_memberships: vec![],
        }
    }

    fn db_spec() -> DatabaseSpec {
        DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::Hstore)
            .extension(Extension::Postgis)
    }

    #[test]
    fn a_database_of_another_owner_moves_only_when_taken_over() {
        let f = facts(16);
        let mut c = cluster(
            CREATED_BY_MASTER_16,
            Some(DatabaseState {
                owner: "old".into(),
                encoding: "UTF8".into(),
                connection_limit: -1,
                public_has_privileges: false,
                master_has_owner_privileges: false,
                master_can_connect: true,
                master_has_connect_grant: true,
            }),
        );
        c.owner = Some(project_role(CREATED_BY_MASTER_16));
        let spec = DatabaseSpec::new("appdb", "app").unwrap();
        let db = DatabaseSnapshot::fresh_from_template0(16);
        let e = plan_database(&f, &c, &db, &spec).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PolicyViolation);
        assert!(e.to_string().contains("belongs to \"old\""), "{e}");
        let plan = plan_database(&f, &c, &db, &spec.clone().take_over(true)).unwrap();
        assert_eq!(
            sql(&plan),
            [
                "GRANT \"old\" TO \"master\" WITH INHERIT TRUE, SET TRUE",
                "GRANT \"app\" TO \"master\" WITH INHERIT TRUE, SET TRUE",
                "ALTER DATABASE \"appdb\" OWNER TO \"app\"",
                "REVOKE \"app\" FROM \"master\"",
                "REVOKE \"old\" FROM \"master\"",
            ],
            "master gains the old owner's privileges for the move, and gives them up"
        );
        assert!(plan.notes.iter().any(|n| n.contains("keep their owners")));
        // An owner that holds more than a project role is not joined, even for a take-over.
        c.owner = Some(RoleState {
            create_db: true,
            ..project_role(CREATED_BY_MASTER_16)
        });
        let e = plan_database(&f, &c, &db, &spec.take_over(true)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied);
        assert_eq!(e.hint(), Some("GRANT \"old\" TO \"master\""));
    }

    #[test]
    fn new_database_on_13_to_15_uses_a_plain_temporary_grant() {
        for major in [13, 14, 15] {
            let f = facts(major);
            // Before 15 the default template is template1, whose public schema master owns.
            let snapshot = if major < 15 {
                DatabaseSnapshot {
                    public_owner: Some("master".into()),
                    public_create_for_public: true,
                    ..DatabaseSnapshot::default()
                }
            } else {
                DatabaseSnapshot::fresh_from_template0(f.major)
            };
            let plan = plan_database(
                &f,
                &cluster(RoleAccess::default(), None),
                &snapshot,
                &db_spec(),
            )
            .unwrap();
            let sql = sql(&plan);
            assert_eq!(sql.first().unwrap(), "GRANT \"app\" TO \"master\"");
            assert_eq!(sql.last().unwrap(), "REVOKE \"app\" FROM \"master\"");
            assert!(plan.steps[1].standalone(), "CREATE DATABASE goes alone");
            let template = if major < 15 { "template1" } else { "template0" };
            assert_eq!(sql[1], format!("CREATE DATABASE \"appdb\" OWNER \"app\" TEMPLATE \"{template}\" ENCODING 'UTF8'"));
            assert_eq!(
                sql[2..6],
                [
                    "SET ROLE \"app\"",
                    "REVOKE ALL ON DATABASE \"appdb\" FROM PUBLIC",
                    "GRANT CONNECT ON DATABASE \"appdb\" TO \"master\"",
                    "RESET ROLE"
                ],
                "the database's ACL is changed as its owner"
            );
            // PostGIS as master, then its table to the owner; hstore as the owner. The whole
            // plan, typed, in order.
            let app = RoleName::new("app").unwrap();
            let master = RoleName::new("master").unwrap();
            let appdb = DatabaseName::new("appdb").unwrap();
            let mut expected = vec![
                Change::GrantTemporaryMembership {
                    role: app.clone(),
                    member: master.clone(),
                    inherit: true,
                },
                Change::CreateDatabase {
                    database: appdb.clone(),
                    owner: app.clone(),
                    template: DatabaseName::new(template).unwrap(),
                    encoding: "UTF8".into(),
                    locale: None,
                    lc_collate: None,
                    lc_ctype: None,
                    connection_limit: None,
                },
                Change::SetRole { role: app.clone() },
                Change::RevokeAllOnDatabase {
                    database: appdb.clone(),
                    from: Grantee::Public,
                },
                Change::GrantConnect {
                    database: appdb.clone(),
                    to: master.clone(),
                },
                Change::ResetRole,
                Change::CreateExtension {
                    extension: Extension::Postgis,
                    schema: ExtensionSchema::Public,
                },
                Change::ReownSpatialRefSys {
                    schema: "public".into(),
                    owner: app.clone(),
                },
            ];
            if major < 15 {
                expected.push(Change::ReownPublicSchema { owner: app.clone() });
            }
            expected.push(Change::SetRole { role: app.clone() });
            expected.push(Change::CreateExtension {
                extension: Extension::Hstore,
                schema: ExtensionSchema::Public,
            });
            if major < 15 {
                expected.push(Change::RevokeCreateOnPublicSchema);
            }
            expected.push(Change::ResetRole);
            expected.push(Change::RevokeTemporaryMembership {
                role: app.clone(),
                member: master.clone(),
                only_on_failure: false,
                leftover: false,
                if_unlocked: false,
            });
            assert_eq!(plan.changes(), expected.iter().collect::<Vec<_>>());
            let set = sql.iter().rposition(|s| s == "SET ROLE \"app\"").unwrap();
            assert_eq!(
                sql[set + 1],
                "CREATE EXTENSION IF NOT EXISTS \"hstore\" SCHEMA public"
            );
            assert_eq!(plan.temporary_grants().len(), 1);
            assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        }
    }

    #[test]
    fn template0_before_15_cannot_be_secured_and_says_so() {
        let f = facts(14);
        let spec = db_spec().template("template0").unwrap();
        let plan = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &spec,
        )
        .unwrap();
        assert_eq!(plan.notes.len(), 1);
        assert!(plan.notes[0].contains("template1"), "{:?}", plan.notes);
        assert!(!plan
            .changes()
            .contains(&&Change::RevokeCreateOnPublicSchema));
    }

    #[test]
    fn new_database_on_16_needs_admin_and_grants_inherit_and_set() {
        let f = facts(16);
        let plan = plan_database(
            &f,
            &cluster(CREATED_BY_MASTER_16, None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &db_spec(),
        )
        .unwrap();
        // PostGIS is created by master, who needs the owner's privileges on the database.
        assert_eq!(
            sql(&plan)[0],
            "GRANT \"app\" TO \"master\" WITH INHERIT TRUE, SET TRUE"
        );
        // Without an untrusted extension, SET ROLE is all master needs: it never inherits.
        let hstore_only = DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::Hstore);
        let plan = plan_database(
            &f,
            &cluster(CREATED_BY_MASTER_16, None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &hstore_only,
        )
        .unwrap();
        assert_eq!(
            sql(&plan)[0],
            "GRANT \"app\" TO \"master\" WITH INHERIT FALSE, SET TRUE"
        );

        let err = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &db_spec(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
        assert!(err.hint().unwrap().contains("WITH ADMIN OPTION"), "{err}");
    }

    #[test]
    fn a_leftover_membership_is_used_for_the_work_and_removed_at_the_end() {
        let f = facts(16);
        let leftover = RoleState {
            leftover_membership: true,
            ..project_role(RoleAccess {
                usage: false,
                set: true,
                admin: true,
            })
        };
        let mut c = cluster(RoleAccess::default(), None);
        c.role = Some(leftover);
        let spec = DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::Hstore);
        let plan = plan_database(
            &f,
            &c,
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &spec,
        )
        .unwrap();
        let sql = sql(&plan);
        assert!(
            sql[0].starts_with("CREATE DATABASE"),
            "no new grant: {sql:?}"
        );
        assert_eq!(sql.last().unwrap(), "REVOKE \"app\" FROM \"master\"");
        assert!(plan.steps.last().unwrap().removes_leftover());
    }

    #[test]
    fn an_existing_membership_means_no_temporary_grant() {
        let f = facts(17);
        let access = RoleAccess {
            usage: true,
            set: true,
            admin: true,
        };
        let plan = plan_database(
            &f,
            &cluster(access, None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &db_spec(),
        )
        .unwrap();
        assert!(plan
            .steps
            .iter()
            .all(|s| s.kind() != crate::plan::StepKind::TemporaryGrant));
        assert!(plan
            .steps
            .iter()
            .all(|s| s.kind() != crate::plan::StepKind::TemporaryRevoke));
    }

    #[test]
    fn public_schema_not_owned_by_pg_database_owner_is_handed_over_when_master_can() {
        let f = facts(14);
        let state = DatabaseState {
            owner: "app".into(),
            encoding: "UTF8".into(),
            connection_limit: -1,
            public_has_privileges: false,
            master_has_owner_privileges: true,
            master_can_connect: true,
            master_has_connect_grant: true,
        };
        let mut db = DatabaseSnapshot {
            public_owner: Some("master".into()),
            ..DatabaseSnapshot::default()
        };
        let spec = DatabaseSpec::new("appdb", "app").unwrap();
        let access = RoleAccess {
            usage: true,
            set: true,
            admin: false,
        };
        let plan = plan_database(
            &f,
            &cluster(access.clone(), Some(state.clone())),
            &db,
            &spec,
        )
        .unwrap();
        assert_eq!(sql(&plan), ["ALTER SCHEMA public OWNER TO \"app\""]);
        // Owned by pg_database_owner (15+) or by the owner already: nothing to do.
        for owner in ["pg_database_owner", "app"] {
            db.public_owner = Some(owner.into());
            assert!(plan_database(
                &f,
                &cluster(access.clone(), Some(state.clone())),
                &db,
                &spec
            )
            .unwrap()
            .is_empty());
        }
    }

    #[test]
    fn a_database_without_master_s_own_connect_gets_it_whatever_public_holds() {
        // Created by hand (`CREATE DATABASE d OWNER o`: the default ACL), or by a run killed
        // after CREATE DATABASE: PUBLIC may connect, master only through PUBLIC.
        let f = facts(16);
        let db = DatabaseSnapshot {
            public_owner: Some("pg_database_owner".into()),
            ..DatabaseSnapshot::default()
        };
        let spec = DatabaseSpec::new("appdb", "app").unwrap();
        let access = CREATED_BY_MASTER_16;
        let state = |public: bool, grant: bool| DatabaseState {
            owner: "app".into(),
            encoding: "UTF8".into(),
            connection_limit: -1,
            public_has_privileges: public,
            master_has_owner_privileges: false,
            master_can_connect: public || grant,
            master_has_connect_grant: grant,
        };
        let plan_for = |public: bool, grant: bool| {
            plan_database(
                &f,
                &cluster(access.clone(), Some(state(public, grant))),
                &db,
                &spec,
            )
            .unwrap()
        };
        let by_hand = plan_for(true, false);
        assert_eq!(
            sql(&by_hand),
            [
                "GRANT \"app\" TO \"master\" WITH INHERIT FALSE, SET TRUE",
                "SET ROLE \"app\"",
                "REVOKE ALL ON DATABASE \"appdb\" FROM PUBLIC",
                "GRANT CONNECT ON DATABASE \"appdb\" TO \"master\"",
                "RESET ROLE",
                "REVOKE \"app\" FROM \"master\""
            ]
        );
        // PUBLIC already revoked, master's grant missing (revoked by hand): only the grant.
        let revoked = plan_for(false, false);
        assert!(
            sql(&revoked).contains(&"GRANT CONNECT ON DATABASE \"appdb\" TO \"master\"".to_owned())
        );
        assert!(!sql(&revoked).iter().any(|s| s.contains("FROM PUBLIC")));
        // Master holds its own CONNECT: PUBLIC's is revoked, master's is not granted again.
        let only_public = plan_for(true, true);
        assert!(!sql(&only_public)
            .iter()
            .any(|s| s.starts_with("GRANT CONNECT")));
        assert!(sql(&only_public).iter().any(|s| s.contains("FROM PUBLIC")));
        assert!(plan_for(false, true).is_empty());
    }

    #[test]
    fn provisioned_database_needs_nothing() {
        let f = facts(15);
        let state = DatabaseState {
            owner: "app".into(),
            encoding: "UTF8".into(),
            connection_limit: -1,
            public_has_privileges: false,
            master_has_owner_privileges: false,
            master_can_connect: true,
            master_has_connect_grant: true,
        };
        let db = DatabaseSnapshot {
            public_owner: Some("pg_database_owner".into()),
            extensions: vec![
                InstalledExtension {
                    name: "hstore".into(),
                    schema: "public".into(),
                },
                InstalledExtension {
                    name: "postgis".into(),
                    schema: "public".into(),
                },
            ],
            relation_owners: [("public.spatial_ref_sys".to_owned(), "app".to_owned())].into(),
            ..DatabaseSnapshot::default()
        };
        let plan = plan_database(
            &f,
            &cluster(RoleAccess::default(), Some(state)),
            &db,
            &db_spec(),
        )
        .unwrap();
        assert!(plan.is_empty(), "{plan}");
    }

    #[test]
    fn unavailable_or_unlisted_extensions_fail_before_any_sql() {
        let f = facts(15);
        let spec = DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::Other("nope".into()));
        let err = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &spec,
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        let spec = DatabaseSpec::new("appdb", "app")
            .unwrap()
            .extension(Extension::PgStatStatements);
        let err = plan_database(
            &f,
            &cluster(RoleAccess::default(), None),
            &DatabaseSnapshot::fresh_from_template0(f.major),
            &spec,
        )
        .unwrap_err();
        assert_eq!(
            err.kind(),
            crate::ErrorKind::PermissionDenied,
            "untrusted and not whitelisted"
        );
    }
}
