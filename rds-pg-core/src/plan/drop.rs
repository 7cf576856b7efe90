//! Planning teardown: `drop_database` (master gains the owner's privileges for the drop) and
//! `drop_user` (`REASSIGN OWNED`/`DROP OWNED` in every database where the role owns objects or
//! holds privileges, as the role and as every role that granted it something, then `DROP ROLE`).
//! A plain `DROP ROLE`, and dropping a database after re-owning it to master, both fail on RDS
//! because master is not a superuser.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    q, refuse_administrator, temporary_membership, temporary_membership_ending, Change, Need, Plan,
    Step,
};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inspect::{
    DependentDatabase, DropDatabaseSnapshot, DropUserDatabase, DropUserSnapshot, RoleState,
    ServerFacts, Session,
};
use crate::spec::{DropDatabaseOptions, DropUserOptions};

/// Databases rds-pg never drops, whatever the caller asks.
const PROTECTED_DATABASES: [&str; 4] = ["postgres", "template0", "template1", "rdsadmin"];

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
        temporary_membership(facts, owner, owner_state, Need::Privileges)?
    };
    if let Some(m) = &membership {
        plan.steps.extend(m.start());
    }
    let reason = if options.force && !snapshot.sessions.is_empty() {
        format!(
            "requested; terminates {} session(s): {}",
            snapshot.sessions.len(),
            list(&snapshot.sessions)
        )
    } else {
        "requested".to_owned()
    };
    plan.steps.push(Step::new(
        facts,
        None,
        Change::DropDatabase {
            database: name.clone(),
            force: options.force,
        },
        reason,
    ));
    if let Some(m) = membership {
        plan.steps.extend(m.end());
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

fn counts(items: &BTreeMap<String, i64>) -> String {
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
    refuse_administrator(name.as_str(), role, "role to drop")?;
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
    let mut needed: Vec<(String, RoleState)> = vec![(name.as_str().to_owned(), role.clone())];
    if let (Some(target), Some(state)) = (&options.reassign_to, &cluster.reassign_to) {
        needed.push((target.as_str().to_owned(), state.clone()));
    }
    let mut superuser_grants: Vec<String> = Vec::new();
    for grant in &cluster.database_grants {
        if let Some(state) = cluster.grantor_access.get(&grant.grantor) {
            if state.superuser {
                superuser_grants.push(format!(
                    "database {} (by {})",
                    grant.database, grant.grantor
                ));
            } else if grant.grantor != facts.current_user {
                needed.push((grant.grantor.clone(), state.clone()));
            }
        }
    }
    for (db, snapshot) in per_database {
        for grantor in &snapshot.grantors {
            if grantor.superuser {
                superuser_grants.push(format!("objects in {db} (by {})", grantor.name));
            } else {
                let state = RoleState {
                    access: grantor.access.clone(),
                    ..RoleState::default()
                };
                needed.push((grantor.name.clone(), state));
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
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut grants = Vec::new();
    let mut revokes = Vec::new();
    for (who, state) in needed {
        if who == facts.current_user || !seen.insert(who.clone()) {
            continue;
        }
        // The role's own membership goes away with DROP ROLE.
        let own = who == name.as_str();
        if let Some(m) = temporary_membership_ending(facts, &who, &state, Need::Privileges, own)? {
            grants.extend(m.start());
            revokes.extend(m.end());
        }
    }
    plan.steps.extend(grants);

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
                facts,
                database,
                Change::ReassignOwned {
                    role: name.clone(),
                    to: target.clone(),
                },
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
            facts,
            database,
            Change::DropOwned { role: name.clone() },
            what.join("; "),
        ));
        steps
    };
    for d in &cluster.databases {
        if d.name == facts.current_database {
            continue;
        }
        let database = DatabaseName::from_catalog(&d.name);
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
        facts,
        None,
        Change::DropRole { role: name.clone() },
        reason,
    ));
    for grant in &cluster.database_grants {
        plan.notes.push(format!(
            "revokes {:?}'s privileges on database {} (granted by {})",
            name.as_str(),
            grant.database,
            grant.grantor
        ));
    }
    plan.steps.extend(revokes);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{Grantor, RoleAccess};
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
            leftover_memberships: vec![],
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
        assert!(
            plan.steps[1].standalone(),
            "DROP DATABASE is sent on its own"
        );
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
                owned: [("relations".to_owned(), 3)].into(),
                privileges: [("schemas".to_owned(), 1)].into(),
                grantors: vec![Grantor {
                    name: "host".into(),
                    access: admin_only(),
                    superuser: false,
                }],
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
            plan.steps[5].only_on_failure(),
            "app's membership goes with DROP ROLE"
        );
        assert!(!plan.steps[6].only_on_failure());
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
                grantors: vec![Grantor {
                    name: "rdsadmin".into(),
                    access: RoleAccess::default(),
                    superuser: true,
                }],
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
}
