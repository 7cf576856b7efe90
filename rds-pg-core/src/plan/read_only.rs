//! Planning read-only access: `grant_read_only` (CONNECT, USAGE, SELECT on existing tables and
//! sequences, default privileges for later ones — all granted as the database owner, so
//! PostgreSQL warns about nothing) and `revoke_read_only`, which takes back exactly that.

use super::{
    as_owner_block, refuse_privileged, temporary_membership, with_leftover_cleanup,
    with_membership, Change, Grantee, Need, Plan, RelationKind, Step,
};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName, SchemaName};
use crate::inspect::{
    ClusterSnapshot, DatabaseSnapshot, DatabaseState, Relation, RoleState, ServerFacts,
};
use crate::spec::ReadOnlyGrant;

/// The relations of `kind` among `relations`, in order.
fn of_kind(relations: &[Relation], kind: RelationKind) -> Vec<super::QuotedRelation> {
    relations
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.name.clone())
        .collect()
}

/// The kinds a grant covers: tables, and sequences unless the grant leaves them out.
fn kinds(grant: &ReadOnlyGrant) -> Vec<RelationKind> {
    if grant.sequences {
        vec![RelationKind::Table, RelationKind::Sequence]
    } else {
        vec![RelationKind::Table]
    }
}

fn words(kind: RelationKind) -> (&'static str, &'static str) {
    match kind {
        RelationKind::Table => ("tables and views", "tables"),
        RelationKind::Sequence => ("sequences", "sequences"),
    }
}

/// What both planners share: the database, its owner, the role, and where steps go.
struct ReadOnlyPlan<'a> {
    facts: &'a ServerFacts,
    grant: &'a ReadOnlyGrant,
    owner: RoleName,
    owner_state: &'a RoleState,
    reader: &'a RoleState,
    plan: Plan,
    /// Steps in the maintenance database, run as the owner.
    maintenance: Vec<Step>,
    /// Steps inside the database, run as the owner.
    inside: Vec<Step>,
}

impl<'a> ReadOnlyPlan<'a> {
    fn new(
        facts: &'a ServerFacts,
        cluster: &'a ClusterSnapshot,
        grant: &'a ReadOnlyGrant,
    ) -> Result<(Self, &'a RoleState)> {
        grant.validate()?;
        let (state, owner_state, role) = read_only_subjects(cluster, grant)?;
        Ok((
            ReadOnlyPlan {
                facts,
                grant,
                owner: RoleName::from_catalog(state.owner.as_str()),
                owner_state,
                reader: role,
                plan: Plan::default(),
                maintenance: Vec::new(),
                inside: Vec::new(),
            },
            role,
        ))
    }

    fn inside(&mut self, change: Change, reason: impl Into<String>) {
        let step = Step::new(self.facts, Some(&self.grant.database), change, reason);
        self.inside.push(step);
    }

    fn maintenance(&mut self, change: Change, reason: impl Into<String>) {
        let step = Step::new(self.facts, None, change, reason);
        self.maintenance.push(step);
    }

    /// The plan, the owner blocks in `order` (maintenance first when granting, last when
    /// revoking), wrapped in the temporary membership master needs.
    fn finish(mut self, maintenance_first: bool) -> Result<Plan> {
        let (facts, d) = (self.facts, Some(&self.grant.database));
        let inside = std::mem::take(&mut self.inside);
        let maintenance = std::mem::take(&mut self.maintenance);
        let reason = "grant as the owner";
        if maintenance_first {
            as_owner_block(
                facts,
                None,
                &self.owner,
                reason,
                maintenance,
                &mut self.plan,
            );
            as_owner_block(facts, d, &self.owner, reason, inside, &mut self.plan);
        } else {
            as_owner_block(facts, d, &self.owner, reason, inside, &mut self.plan);
            as_owner_block(
                facts,
                None,
                &self.owner,
                reason,
                maintenance,
                &mut self.plan,
            );
        }
        if self.owner.as_str() != facts.current_user {
            with_membership(
                temporary_membership(facts, self.owner.as_str(), self.owner_state, Need::SetRole)?,
                &mut self.plan,
            );
        }
        with_leftover_cleanup(
            facts,
            [(self.grant.role.as_str(), self.reader)],
            &mut self.plan,
        );
        Ok(self.plan)
    }
}

/// Plans `grant_read_only`: CONNECT, USAGE, SELECT on existing tables and sequences, and default
/// privileges, all granted as the database owner.
///
/// # Errors
/// [`Error::NotFound`] for a missing database, role or schema; [`Error::PolicyViolation`] for a
/// privileged role; [`Error::PermissionDenied`] when master cannot act as the owner.
pub fn plan_grant_read_only(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    grant: &ReadOnlyGrant,
) -> Result<Plan> {
    let (mut p, role) = ReadOnlyPlan::new(facts, cluster, grant)?;
    refuse_privileged(grant.role.as_str(), role, "read-only user")?;
    check_schemas(db, &grant.schemas, &grant.database)?;
    let reader = &grant.role;
    if !cluster.role_can_connect {
        p.maintenance(
            Change::GrantConnect {
                database: grant.database.clone(),
                to: reader.clone(),
            },
            "the role may not connect",
        );
    }
    for schema in &db.schemas {
        if schema.role_has_usage {
            continue;
        }
        if schema.owner == p.owner.as_str() || schema.owner == "pg_database_owner" {
            p.inside(
                Change::GrantSchemaUsage {
                    schema: SchemaName::from_catalog(&schema.name),
                    to: reader.clone(),
                },
                "the role cannot use the schema",
            );
        } else {
            p.plan.notes.push(format!(
                "schema {:?} is owned by {:?}, not the database owner; USAGE not granted",
                schema.name, schema.owner
            ));
        }
    }
    for kind in kinds(grant) {
        let relations = of_kind(&db.unreadable, kind);
        if !relations.is_empty() {
            p.inside(
                Change::GrantSelect {
                    kind,
                    relations,
                    to: reader.clone(),
                },
                format!("existing {} the role cannot read", words(kind).0),
            );
        }
    }
    for foreign in &db.foreign_unreadable {
        p.plan.notes.push(format!(
            "{} is not owned by the database owner; SELECT not granted",
            foreign.as_str()
        ));
    }
    if grant.future {
        for schema in &db.schemas {
            for kind in kinds(grant) {
                let covered = db
                    .default_selects
                    .iter()
                    .any(|s| s.schema == schema.name && s.kind == kind);
                if !covered {
                    p.inside(
                        Change::DefaultSelect {
                            owner: p.owner.clone(),
                            schema: SchemaName::from_catalog(&schema.name),
                            kind,
                            grantee: reader.clone(),
                            grant: true,
                        },
                        format!(
                            "{} the owner creates later must be readable too",
                            words(kind).1
                        ),
                    );
                }
            }
        }
    }
    p.finish(true)
}

/// Plans `revoke_read_only`: removes what [`plan_grant_read_only`] grants.
///
/// # Errors
/// As [`plan_grant_read_only`].
pub fn plan_revoke_read_only(
    facts: &ServerFacts,
    cluster: &ClusterSnapshot,
    db: &DatabaseSnapshot,
    grant: &ReadOnlyGrant,
) -> Result<Plan> {
    let (mut p, _role) = ReadOnlyPlan::new(facts, cluster, grant)?;
    let reader = &grant.role;
    for kind in [RelationKind::Table, RelationKind::Sequence] {
        let relations = of_kind(&db.explicitly_readable, kind);
        if !relations.is_empty() {
            p.inside(
                Change::RevokeSelect {
                    kind,
                    relations,
                    from: reader.clone(),
                },
                format!("read access to {}", words(kind).1),
            );
        }
    }
    for default in &db.default_selects {
        p.inside(
            Change::DefaultSelect {
                owner: p.owner.clone(),
                schema: SchemaName::from_catalog(&default.schema),
                kind: default.kind,
                grantee: reader.clone(),
                grant: false,
            },
            "read access to future objects",
        );
    }
    for schema in &db.schemas {
        if schema.role_has_explicit_usage {
            p.inside(
                Change::RevokeSchemaUsage {
                    schema: SchemaName::from_catalog(&schema.name),
                    from: reader.clone(),
                },
                "schema access",
            );
        }
    }
    if cluster.role_has_database_grant {
        p.maintenance(
            Change::RevokeAllOnDatabase {
                database: grant.database.clone(),
                from: Grantee::Role(reader.clone()),
            },
            "the role may connect",
        );
    }
    p.finish(false)
}

fn read_only_subjects<'a>(
    cluster: &'a ClusterSnapshot,
    grant: &ReadOnlyGrant,
) -> Result<(&'a DatabaseState, &'a RoleState, &'a RoleState)> {
    let state = cluster.database.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("database {:?} does not exist", grant.database.as_str()),
        source: None,
    })?;
    let owner = cluster.owner.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("the owner of {:?} is not visible", grant.database.as_str()),
        source: None,
    })?;
    let role = cluster.role.as_ref().ok_or_else(|| Error::NotFound {
        message: format!("role {:?} does not exist", grant.role.as_str()),
        source: None,
    })?;
    Ok((state, owner, role))
}

fn check_schemas(
    db: &DatabaseSnapshot,
    schemas: &[SchemaName],
    database: &DatabaseName,
) -> Result<()> {
    for s in schemas {
        if !db.schemas.iter().any(|x| x.name == s.as_str()) {
            return Err(Error::NotFound {
                message: format!(
                    "schema {:?} does not exist in database {:?}",
                    s.as_str(),
                    database.as_str()
                ),
                source: None,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{DatabaseState, RoleAccess, SchemaState};
    use crate::plan::database::tests::cluster;
    use crate::plan::tests::{facts, project_role, sql, CREATED_BY_MASTER_16};
    use crate::plan::QuotedRelation;

    #[test]
    fn read_only_grant_is_made_as_the_owner_per_relation() {
        let f = facts(16);
        let mut c = cluster(
            RoleAccess::default(),
            Some(DatabaseState {
                owner: "app".into(),
                encoding: "UTF8".into(),
                connection_limit: -1,
                public_has_privileges: false,
                master_has_owner_privileges: false,
                master_can_connect: true,
                master_has_connect_grant: true,
            }),
        );
        c.owner = Some(project_role(CREATED_BY_MASTER_16));
        let db = DatabaseSnapshot {
            schemas: vec![SchemaState {
                name: "public".into(),
                owner: "pg_database_owner".into(),
                role_has_usage: false,
                role_has_explicit_usage: false,
            }],
            unreadable: vec![
                Relation {
                    name: QuotedRelation("public.t".into()),
                    kind: RelationKind::Table,
                },
                Relation {
                    name: QuotedRelation("public.t_id_seq".into()),
                    kind: RelationKind::Sequence,
                },
            ],
            foreign_unreadable: vec![QuotedRelation("public.other".into())],
            ..DatabaseSnapshot::default()
        };
        let grant = ReadOnlyGrant::new("appdb", "ro").unwrap();
        let plan = plan_grant_read_only(&f, &c, &db, &grant).unwrap();
        assert_eq!(
            sql(&plan),
            [
                "GRANT \"app\" TO \"master\" WITH INHERIT FALSE, SET TRUE",
                "SET ROLE \"app\"",
                "GRANT CONNECT ON DATABASE \"appdb\" TO \"ro\"",
                "RESET ROLE",
                "SET ROLE \"app\"",
                "GRANT USAGE ON SCHEMA \"public\" TO \"ro\"",
                "GRANT SELECT ON TABLE public.t TO \"ro\"",
                "GRANT SELECT ON SEQUENCE public.t_id_seq TO \"ro\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"public\" GRANT SELECT ON TABLES TO \"ro\"",
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" IN SCHEMA \"public\" GRANT SELECT ON SEQUENCES TO \"ro\"",
                "RESET ROLE",
                "REVOKE \"app\" FROM \"master\"",
            ]
        );
        assert_eq!(
            plan.notes.len(),
            1,
            "public.other is not the owner's: noted, not granted"
        );
    }
}
