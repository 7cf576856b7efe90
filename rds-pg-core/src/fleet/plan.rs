//! Planning an instance from its bulk inspection: each user, database and grant the inventory
//! asks for goes through the Provisioner's own pure planners, with the snapshots derived from the
//! bulk one; what depends on a change not made yet (a role to create, a database to create or
//! take over) is pending; what the planners refuse is a finding.

use std::collections::BTreeMap;

use super::{Item, ItemKind, ItemState};
use crate::credentials::{CredentialFormat, CredentialSink};
use crate::error::{Error, Result};
use crate::ident::{DatabaseName, RoleName};
use crate::inspect::{
    DatabaseBulkSnapshot, DatabaseSnapshot, InstanceSnapshot, RoleAccess, RoleState,
    UnclaimedDatabase, UnclaimedRole,
};
use crate::inventory::{Instance, Project};
use crate::plan::{self, Change, Plan};
use crate::secret::{NewPassword, Password};
use crate::spec::{DatabaseSpec, ReadOnlyGrant, UserSpec};

/// Databases the fleet never prunes, whatever the inventory says.
const PROTECTED_DATABASES: [&str; 4] = ["postgres", "template0", "template1", "rdsadmin"];

/// What planning an instance works from.
pub(crate) struct Inputs<'a> {
    pub instance: &'a Instance,
    pub projects: &'a [&'a Project],
    pub take_over: bool,
    pub prune: bool,
    pub snapshot: &'a InstanceSnapshot,
    /// The bulk snapshot of each project database master could look inside.
    pub databases: &'a BTreeMap<String, DatabaseBulkSnapshot>,
    /// `template1`, inspected before 15 (new databases are copied from it).
    pub template1: Option<&'a DatabaseSnapshot>,
}

/// What an operation needs to run an item (kept by the runner next to the items).
#[derive(Clone, Debug)]
pub(crate) enum Operation {
    /// `secure_instance`.
    SecureInstance,
    /// `ensure_user`, or `ensure_user_delivering` when there is a sink (never for a role the
    /// inventory makes an IAM user: it has no password).
    User {
        spec: UserSpec,
        delivery: Option<(CredentialSink, CredentialFormat, DatabaseName)>,
    },
    /// `ensure_database`.
    Database(DatabaseSpec),
    /// `grant_read_only`.
    Grant(ReadOnlyGrant),
    /// `drop_database`.
    DropDatabase(DatabaseName),
    /// `drop_user`.
    DropUser(RoleName),
    /// Nothing runs (a finding about the instance).
    None,
}

/// An item, the operation that brings it in line, and the items it depends on (indices).
pub(crate) struct Planned {
    pub item: Item,
    pub operation: Operation,
    pub depends_on: Vec<usize>,
}

/// The instance's plan: its items, notes, and what `prune` would drop.
pub(crate) struct InstancePlan {
    pub items: Vec<Planned>,
    pub notes: Vec<String>,
}

/// The state of a role master is about to create (`LOGIN`, nothing else; on 16+ master holds
/// ADMIN on the roles it creates).
fn fresh_role(major: u32) -> RoleState {
    RoleState {
        can_login: true,
        connection_limit: -1,
        access: RoleAccess {
            admin: major >= 16,
            ..RoleAccess::default()
        },
        ..RoleState::default()
    }
}

/// Whether a database item's changes make its grants' plans unknowable until they are made.
fn reshapes_database(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| {
        matches!(
            s.change,
            Change::CreateDatabase { .. }
                | Change::AlterDatabaseOwner { .. }
                | Change::CreateExtension { .. }
                | Change::ReownPublicSchema { .. }
        )
    })
}

fn state_of(result: Result<Plan>, item: &mut Item) {
    match result {
        Ok(plan) => {
            item.notes.extend(plan.notes.iter().cloned());
            item.state = if plan.is_empty() {
                ItemState::InSync
            } else {
                ItemState::Planned(plan)
            };
        }
        Err(e) => item.state = ItemState::Blocked(e),
    }
}

fn blocked(item: &Item) -> bool {
    matches!(
        item.state,
        ItemState::Blocked(_) | ItemState::Skipped(_) | ItemState::Failed(_)
    )
}

/// Plans one instance.
pub(crate) fn plan_instance(inputs: &Inputs<'_>) -> InstancePlan {
    let Inputs {
        instance,
        projects,
        take_over,
        prune,
        snapshot,
        databases,
        template1,
    } = *inputs;
    let facts = &snapshot.facts;
    let mut out = InstancePlan {
        items: Vec::new(),
        notes: Vec::new(),
    };

    // ---------------------------------------------------------------- the instance
    if facts.major != instance.postgres_major {
        let mut item = Item::new(ItemKind::Instance, "postgres_major", None);
        item.state = ItemState::Blocked(Error::Refused {
            message: format!(
                "the inventory says instance {:?} runs PostgreSQL {}; the server runs {}",
                instance.name, instance.postgres_major, facts.version
            ),
            fix: format!(
                "set postgres_major = {} for instance {:?} in {}",
                facts.major,
                instance.name,
                instance.locations.of("postgres_major")
            ),
        });
        out.items.push(Planned {
            item,
            operation: Operation::None,
            depends_on: Vec::new(),
        });
    }
    let template1_name = DatabaseName::from_catalog("template1");
    let mut secure_inputs = vec![(None, snapshot.maintenance.clone())];
    if let Some(t) = template1 {
        secure_inputs.push((Some(template1_name.clone()), t.clone()));
    }
    let secure = plan::plan_secure_instance(facts, &secure_inputs);
    let template1_secured = secure
        .steps
        .iter()
        .any(|s| s.database.as_ref() == Some(&template1_name));
    let mut item = Item::new(ItemKind::Instance, "public schemas", None);
    state_of(Ok(secure), &mut item);
    out.items.push(Planned {
        item,
        operation: Operation::SecureInstance,
        depends_on: Vec::new(),
    });

    // ---------------------------------------------------------------- users
    // The index of each role's item, and the state the role has (or will have once created).
    let mut user_items: BTreeMap<String, usize> = BTreeMap::new();
    let mut role_states: BTreeMap<String, Option<RoleState>> = BTreeMap::new();
    for project in projects {
        for role in project.roles() {
            if user_items.contains_key(role.as_str()) {
                continue;
            }
            let mut item = Item::new(ItemKind::User, role.as_str(), Some(&project.name));
            let existing = snapshot
                .users
                .get(role.as_str())
                .and_then(|u| u.role.clone());
            let entry = project.credentials_entry(role);
            let database = project
                .databases
                .iter()
                .find(|d| &d.owner == role)
                .or_else(|| project.databases.iter().find(|d| d.readers.contains(role)))
                .map(|d| d.name.clone())
                .unwrap_or_else(|| DatabaseName::from_catalog(role.as_str()));
            let iam = project.settings_for(role).and_then(|s| s.iam);
            let existing_iam = existing.as_ref().is_some_and(|r| r.iam);
            // The run sets a password: a new password user's, or an IAM user's switched back.
            let sets_password = match &existing {
                None => iam != Some(true),
                Some(_) => existing_iam && iam == Some(false),
            };
            // An IAM user has no password: nothing is ever delivered for it.
            let delivery = entry
                .filter(|_| iam != Some(true))
                .map(|e| (e.sink.clone(), e.format, database));
            let mut operation = Operation::None;
            match UserSpec::new(role.as_str()).map(|s| match iam {
                Some(v) => s.iam(v),
                None => s,
            }) {
                Err(e) => item.state = ItemState::Blocked(e),
                Ok(spec) => {
                    // A password the run sets is generated; otherwise the role keeps its own (or
                    // has none), so a verifier (computed on first use) is never computed.
                    let password = if sets_password {
                        NewPassword::generate()
                    } else {
                        Ok(NewPassword::given(Password::new("unused")))
                    };
                    let user = snapshot
                        .users
                        .get(role.as_str())
                        .cloned()
                        .unwrap_or_default();
                    state_of(
                        password
                            .and_then(|pw| plan::plan_user(facts, &user, &spec, &pw))
                            .map(|p| with_leftovers(facts, &user.leftover_memberships, p)),
                        &mut item,
                    );
                    if sets_password && !blocked(&item) {
                        match &delivery {
                            None => {
                                let what = if existing.is_none() {
                                    "does not exist"
                                } else {
                                    "is an IAM user that the inventory switches back to a \
                                     password (iam = false)"
                                };
                                item.state = ItemState::Blocked(Error::Refused {
                                    message: format!(
                                        "role {:?} of project {:?} {what}, and the inventory \
                                         names nowhere to deliver the password rds-pg would \
                                         generate for it",
                                        role.as_str(),
                                        project.name
                                    ),
                                    fix: format!(
                                        "add {} = {{ env_file = \"…\" }} (or pgpass, or command) \
                                         to [project.credentials] of project {:?} in {}",
                                        role.as_str(),
                                        project.name,
                                        project.locations.entry
                                    ),
                                })
                            }
                            Some((sink, format, db)) => item.notes.push(format!(
                                "its credentials (for database {:?}) go to the {sink}{}",
                                db.as_str(),
                                if *format == CredentialFormat::RdsPg {
                                    String::new()
                                } else {
                                    format!(", as {format}")
                                }
                            )),
                        }
                    } else if iam == Some(true) && !existing_iam && !blocked(&item) {
                        item.notes.push(if entry.is_some() {
                            "an IAM user: it logs in with IAM authentication tokens; there is no \
                             password, so nothing is delivered to its [project.credentials] entry"
                                .to_owned()
                        } else {
                            "an IAM user: it logs in with IAM authentication tokens; there is no \
                             password to deliver"
                                .to_owned()
                        });
                    }
                    operation = Operation::User { spec, delivery };
                }
            }
            // The state the role has once its item ran (the databases and grants are planned
            // against it: an IAM owner's rds_iam is suspended around master's membership).
            let state = if blocked(&item) {
                None
            } else {
                let mut state = existing.unwrap_or_else(|| fresh_role(facts.major));
                state.iam = iam.unwrap_or(state.iam);
                Some(state)
            };
            role_states.insert(role.as_str().to_owned(), state);
            user_items.insert(role.as_str().to_owned(), out.items.len());
            out.items.push(Planned {
                item,
                operation,
                depends_on: Vec::new(),
            });
        }
    }

    // ---------------------------------------------------------------- databases
    // Whether each database's grants can be planned now (Ok) or wait for a change (Err).
    let mut database_items: BTreeMap<String, (usize, std::result::Result<(), String>)> =
        BTreeMap::new();
    for project in projects {
        for db in &project.databases {
            let name = db.name.as_str().to_owned();
            if database_items.contains_key(&name) {
                continue;
            }
            let mut item = Item::new(ItemKind::Database, &name, Some(&project.name));
            let owner_item = user_items.get(db.owner.as_str()).copied();
            let depends_on: Vec<usize> = owner_item.into_iter().collect();
            let mut operation = Operation::None;
            let mut ready: std::result::Result<(), String> = Ok(());
            let extensions = crate::provision::extensions_with_requirements(&db.extensions);
            let mut cluster = snapshot.database_cluster(&name, &extensions);
            match (
                role_states.get(db.owner.as_str()).cloned().flatten(),
                db.spec(),
            ) {
                (_, Err(e)) => item.state = ItemState::Blocked(e),
                (None, _) => {
                    item.state =
                        ItemState::Skipped(format!("its owner {:?} is blocked", db.owner.as_str()));
                    ready = Err("its owner is blocked".into());
                }
                (Some(owner_state), Ok(spec)) => {
                    cluster.role = Some(owner_state);
                    let moving = cluster
                        .database
                        .as_ref()
                        .is_some_and(|d| d.owner != db.owner.as_str());
                    let spec = spec.take_over(take_over && moving);
                    if moving && !take_over {
                        let current = cluster
                            .database
                            .as_ref()
                            .map(|d| d.owner.clone())
                            .unwrap_or_default();
                        item.state = ItemState::Blocked(Error::Refused {
                            message: format!(
                                "database {name:?} exists and belongs to {current:?}, but project \
                                 {:?} names {:?} as its owner: rds-pg does not move a database \
                                 from one owner to another unless asked",
                                project.name,
                                db.owner.as_str()
                            ),
                            fix: format!(
                                "if {:?} is to have it, run fleet apply --take-over; otherwise \
                                 name {current:?} as its owner (or another database) in {}",
                                db.owner.as_str(),
                                db.locations.of("owner")
                            ),
                        });
                    } else {
                        let facts_major = facts.major;
                        let db_snapshot = match &cluster.database {
                            Some(d) if d.master_can_connect || facts.is_superuser => databases
                                .get(&name)
                                .map(|b| b.database.clone())
                                .unwrap_or_default(),
                            Some(_) => DatabaseSnapshot {
                                uninspected: true,
                                ..DatabaseSnapshot::default()
                            },
                            None => {
                                let template = plan::resolve_template(facts, &spec);
                                match (template.as_str(), template1) {
                                    ("template1", Some(t)) => {
                                        let mut t = t.clone();
                                        if template1_secured {
                                            // secure_instance runs first: the template is
                                            // closed by then.
                                            t.public_create_for_public = false;
                                            if let Some(h) = t.template_hazards.as_mut() {
                                                h.schema_create_grants.retain(|g| {
                                                    !(g.schema == "public" && g.grantee == "PUBLIC")
                                                });
                                            }
                                        }
                                        if spec.extensions.is_empty() {
                                            t.shadowing.clear();
                                        }
                                        t
                                    }
                                    _ => DatabaseSnapshot::fresh_from_template0(facts_major),
                                }
                            }
                        };
                        let uninspected = db_snapshot.uninspected;
                        state_of(
                            plan::plan_database(facts, &cluster, &db_snapshot, &spec)
                                .map(|p| with_leftovers(facts, &cluster.leftover_memberships, p)),
                            &mut item,
                        );
                        if let ItemState::Planned(p) = &item.state {
                            if reshapes_database(p) {
                                ready = Err(format!(
                                    "its steps are decided once database {name:?} is converged"
                                ));
                            }
                        }
                        if uninspected {
                            ready = Err(format!(
                                "its steps are decided once master may connect to database \
                                 {name:?}"
                            ));
                        }
                        if moving {
                            item.notes.push(format!(
                                "taken over from {:?}, as --take-over asks",
                                cluster
                                    .database
                                    .as_ref()
                                    .map(|d| d.owner.as_str())
                                    .unwrap_or_default()
                            ));
                        }
                        operation = Operation::Database(spec);
                    }
                }
            }
            if blocked(&item) {
                ready = Err(format!("database {name:?} is not converged"));
            }
            database_items.insert(name.clone(), (out.items.len(), ready));
            out.items.push(Planned {
                item,
                operation,
                depends_on,
            });
        }
    }

    // ---------------------------------------------------------------- read-only grants
    for project in projects {
        for db in &project.databases {
            let grants = match db.read_only_grants() {
                Ok(g) => g,
                Err(e) => {
                    let mut item = Item::new(ItemKind::ReadOnlyGrant, "", Some(&project.name));
                    item.database = Some(db.name.as_str().to_owned());
                    item.state = ItemState::Blocked(e);
                    out.items.push(Planned {
                        item,
                        operation: Operation::None,
                        depends_on: Vec::new(),
                    });
                    continue;
                }
            };
            for grant in grants {
                let reader = grant.role.as_str().to_owned();
                let mut item = Item::new(ItemKind::ReadOnlyGrant, &reader, Some(&project.name));
                item.database = Some(db.name.as_str().to_owned());
                let (db_index, ready) = database_items
                    .get(db.name.as_str())
                    .cloned()
                    .unwrap_or((usize::MAX, Err("no database item".into())));
                let reader_index = user_items.get(&reader).copied();
                let depends_on: Vec<usize> = [Some(db_index), reader_index]
                    .into_iter()
                    .flatten()
                    .filter(|i| *i != usize::MAX)
                    .collect();
                let reader_state = role_states.get(&reader).cloned().flatten();
                let reader_exists = snapshot
                    .users
                    .get(&reader)
                    .is_some_and(|u| u.role.is_some());
                let db_blocked = db_index == usize::MAX || blocked(&out.items[db_index].item);
                if db_blocked || reader_state.is_none() {
                    item.state = ItemState::Skipped(if db_blocked {
                        format!("database {:?} is not converged", db.name.as_str())
                    } else {
                        format!("role {reader:?} is blocked")
                    });
                } else if let Err(reason) = &ready {
                    item.state = ItemState::Pending(reason.clone());
                } else if !reader_exists {
                    item.state = ItemState::Pending(format!(
                        "its steps are decided once role {reader:?} is created"
                    ));
                } else {
                    let key = (db.name.as_str().to_owned(), reader.clone());
                    let cluster = snapshot.grants.get(&key).cloned().unwrap_or_default();
                    let db_snapshot = databases
                        .get(db.name.as_str())
                        .and_then(|b| b.readers.get(&reader))
                        .cloned()
                        .unwrap_or_default();
                    state_of(
                        plan::ensure_master_can_connect(facts, &cluster, &grant.database)
                            .and_then(|()| {
                                plan::plan_grant_read_only(facts, &cluster, &db_snapshot, &grant)
                            })
                            .map(|p| with_leftovers(facts, &cluster.leftover_memberships, p)),
                        &mut item,
                    );
                }
                out.items.push(Planned {
                    item,
                    operation: Operation::Grant(grant),
                    depends_on,
                });
            }
        }
    }

    // ---------------------------------------------------------------- what nobody claims
    let databases_to_drop: Vec<&UnclaimedDatabase> = snapshot
        .unclaimed_databases
        .iter()
        .filter(|d| prunable_database(facts.current_database.as_str(), d))
        .collect();
    let roles_to_drop: Vec<(&UnclaimedRole, Option<String>)> = snapshot
        .unclaimed_roles
        .iter()
        .filter(|r| !instance_role(r))
        .map(|r| (r, protected_role(r)))
        .collect();
    let empty_instance = projects.is_empty() && !databases_to_drop.is_empty();
    if prune && empty_instance {
        // Most likely a mistake (a project moved to another instance name, a trimmed file):
        // pruning would empty the instance.
        let mut item = Item::new(ItemKind::Instance, "prune", None);
        item.state = ItemState::Blocked(Error::Refused {
            message: format!(
                "no project of the inventory is on instance {:?}: --prune would drop every \
                 database and login role on it",
                instance.name
            ),
            fix: format!(
                "add the instance's projects to the inventory, or drop what you mean to drop one \
                 at a time (rds-pg db drop, rds-pg user drop); {} lists the instance",
                instance.locations.entry
            ),
        });
        out.items.push(Planned {
            item,
            operation: Operation::None,
            depends_on: Vec::new(),
        });
    }
    if !prune || empty_instance {
        for d in &databases_to_drop {
            out.notes.push(format!(
                "database {:?} (owner {:?}): no project on this instance claims it (--prune drops \
                 it)",
                d.name, d.owner
            ));
        }
        for (r, why) in &roles_to_drop {
            if why.is_none() {
                out.notes.push(format!(
                    "login role {:?}: no project on this instance claims it (--prune drops it)",
                    r.name
                ));
            }
        }
        return out;
    }
    let mut drop_database_items = Vec::new();
    for d in &databases_to_drop {
        let mut item = Item::new(ItemKind::DropDatabase, &d.name, None);
        item.state = ItemState::Pending("no project on this instance claims it".into());
        drop_database_items.push(out.items.len());
        out.items.push(Planned {
            item,
            operation: Operation::DropDatabase(DatabaseName::from_catalog(&d.name)),
            depends_on: Vec::new(),
        });
    }
    for (r, why) in roles_to_drop {
        if let Some(why) = why {
            out.notes.push(format!(
                "login role {:?}: no project claims it, but it is left alone: {why}",
                r.name
            ));
            continue;
        }
        let mut item = Item::new(ItemKind::DropUser, &r.name, None);
        item.state = ItemState::Pending("no project on this instance claims it".into());
        // Its databases go first.
        let depends_on: Vec<usize> = drop_database_items
            .iter()
            .copied()
            .filter(|i| {
                databases_to_drop
                    .iter()
                    .any(|d| d.name == out.items[*i].item.name && d.owner == r.name)
            })
            .collect();
        out.items.push(Planned {
            item,
            operation: Operation::DropUser(RoleName::from_catalog(&r.name)),
            depends_on,
        });
    }
    out
}

/// Whether an unclaimed database may be pruned: never `postgres`, the templates, `rdsadmin`, the
/// maintenance database, a template, one owned by a superuser, or a reserved name.
fn prunable_database(maintenance: &str, d: &UnclaimedDatabase) -> bool {
    !PROTECTED_DATABASES.contains(&d.name.as_str())
        && d.name != maintenance
        && !d.is_template
        && !d.owner_is_superuser
        && DatabaseName::creatable(d.name.as_str()).is_ok()
}

/// Whether an unclaimed login role belongs to the instance itself (a reserved name such as
/// `rdsadmin`, a superuser, master): never pruned, and not worth a note.
fn instance_role(r: &UnclaimedRole) -> bool {
    RoleName::creatable(r.name.as_str()).is_err() || r.state.superuser || r.state.is_current_user
}

/// Why an unclaimed login role is never pruned, if it is: it holds more than a project role
/// may (another administrator).
fn protected_role(r: &UnclaimedRole) -> Option<String> {
    let beyond = r.state.privileges_beyond_a_project_role();
    (!beyond.is_empty()).then(|| format!("it holds {}", beyond.join(", ")))
}

/// `plan` with the revokes of master's leftover memberships of roles it does not touch, as the
/// operation's own plan has them (each operation removes them when no other run holds the
/// role's lock, so the first one that runs does; the others then find none).
fn with_leftovers(facts: &crate::ServerFacts, leftovers: &[String], mut plan: Plan) -> Plan {
    plan::with_untouched_leftovers(facts, leftovers, &[], &mut plan);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{ClusterSnapshot, DatabaseState, UserSnapshot};
    use crate::inventory::Inventory;
    use crate::plan::tests::facts;

    const INVENTORY: &str = r#"
[[client]]
name = "acme"
account_id = "111122223333"

[[instance]]
name = "db1"
client = "acme"
environment = "production"
region = "eu-west-1"
postgres_major = 16
endpoint = "db1.example.com"
master_user = "master"

[[project]]
name = "shop"
client = "acme"
environment = "production"
region = "eu-west-1"
instance = "db1"

[[project.database]]
name = "shop"
owner = "shop"
extensions = ["hstore"]
readers = ["shop_ro"]

[project.credentials]
shop = { env_file = "/tmp/shop.env" }
shop_ro = { command = ["vault", "kv", "put", "x", "-"], format = "secretsmanager" }
"#;

    fn plan_on(snapshot: &InstanceSnapshot, take_over: bool, prune: bool) -> InstancePlan {
        let inventory = Inventory::from_str(INVENTORY, "t.toml").unwrap();
        let projects: Vec<&Project> = inventory.projects.iter().collect();
        plan_instance(&Inputs {
            instance: &inventory.instances[0],
            projects: &projects,
            take_over,
            prune,
            snapshot,
            databases: &BTreeMap::new(),
            template1: None,
        })
    }

    fn empty_instance(major: u32) -> InstanceSnapshot {
        InstanceSnapshot {
            facts: facts(major),
            users: BTreeMap::new(),
            databases: BTreeMap::new(),
            grants: BTreeMap::new(),
            available: vec![crate::inspect::AvailableExtension {
                name: "hstore".into(),
                trusted: true,
            }],
            maintenance: DatabaseSnapshot::default(),
            unclaimed_databases: Vec::new(),
            unclaimed_roles: Vec::new(),
        }
    }

    fn states(plan: &InstancePlan) -> Vec<(String, &'static str)> {
        plan.items
            .iter()
            .map(|p| (p.item.to_string(), p.item.state.as_str()))
            .collect()
    }

    #[test]
    fn an_empty_instance_plans_users_then_the_database_and_waits_for_the_grant() {
        let plan = plan_on(&empty_instance(16), false, false);
        assert_eq!(
            states(&plan),
            [
                ("instance: public schemas".to_owned(), "in_sync"),
                ("user \"shop\"".to_owned(), "planned"),
                ("user \"shop_ro\"".to_owned(), "planned"),
                ("database \"shop\"".to_owned(), "planned"),
                (
                    "read-only grant of \"shop_ro\" on \"shop\"".to_owned(),
                    "pending"
                ),
            ]
        );
        let ItemState::Planned(db) = &plan.items[3].item.state else {
            panic!()
        };
        assert!(db.sql()[0].contains("GRANT \"shop\" TO \"master\""), "{db}");
        assert!(db
            .sql()
            .iter()
            .any(|s| s.starts_with("CREATE DATABASE \"shop\" OWNER \"shop\"")));
        assert_eq!(plan.items[3].depends_on, [1]);
        assert_eq!(plan.items[4].depends_on, [3, 2]);
        assert!(plan.items[2].item.notes[0].contains("as secretsmanager"));
    }

    #[test]
    fn another_owner_is_a_finding_unless_taken_over() {
        let mut s = empty_instance(16);
        let project_role =
            crate::plan::tests::project_role(crate::plan::tests::CREATED_BY_MASTER_16);
        for r in ["shop", "shop_ro", "blog"] {
            s.users.insert(
                r.into(),
                UserSnapshot {
                    role: Some(project_role.clone()),
                    leftover_memberships: vec![],
                },
            );
        }
        s.databases.insert(
            "shop".into(),
            ClusterSnapshot {
                database: Some(DatabaseState {
                    owner: "blog".into(),
                    encoding: "UTF8".into(),
                    connection_limit: -1,
                    public_has_privileges: false,
                    master_has_owner_privileges: false,
                    master_can_connect: true,
                    master_has_connect_grant: true,
                }),
                role: Some(project_role.clone()),
                owner: Some(project_role.clone()),
                ..ClusterSnapshot::default()
            },
        );
        let plan = plan_on(&s, false, false);
        let db = &plan.items[3].item;
        let ItemState::Blocked(e) = &db.state else {
            panic!("{:?}", db.state)
        };
        assert!(e.to_string().contains("belongs to \"blog\""), "{e}");
        assert!(e.hint().unwrap().contains("--take-over"), "{e}");
        assert_eq!(plan.items[4].item.state.as_str(), "skipped");
        let plan = plan_on(&s, true, false);
        let ItemState::Planned(p) = &plan.items[3].item.state else {
            panic!("{:?}", plan.items[3].item.state)
        };
        assert!(
            p.sql()
                .iter()
                .any(|s| s == "ALTER DATABASE \"shop\" OWNER TO \"shop\""),
            "{p}"
        );
        assert_eq!(plan.items[4].item.state.as_str(), "pending");
    }

    #[test]
    fn a_new_role_without_a_sink_is_a_finding() {
        let text = INVENTORY.replace("shop = { env_file = \"/tmp/shop.env\" }\n", "");
        let inventory = Inventory::from_str(&text, "t.toml").unwrap();
        let projects: Vec<&Project> = inventory.projects.iter().collect();
        let s = empty_instance(15);
        let plan = plan_instance(&Inputs {
            instance: &inventory.instances[0],
            projects: &projects,
            take_over: false,
            prune: false,
            snapshot: &s,
            databases: &BTreeMap::new(),
            template1: None,
        });
        let names = states(&plan);
        assert_eq!(names[0], ("instance: postgres_major".to_owned(), "blocked"));
        assert_eq!(names[2], ("user \"shop\"".to_owned(), "blocked"));
        assert_eq!(names[4].1, "skipped", "{names:?}");
        assert_eq!(names[5].1, "skipped", "{names:?}");
        let e = plan.items[2].item.state.error().unwrap();
        assert!(e.hint().unwrap().contains("[project.credentials]"), "{e}");
    }

    fn plan_text(text: &str, snapshot: &InstanceSnapshot) -> InstancePlan {
        let inventory = Inventory::from_str(text, "t.toml").unwrap();
        let projects: Vec<&Project> = inventory.projects.iter().collect();
        plan_instance(&Inputs {
            instance: &inventory.instances[0],
            projects: &projects,
            take_over: false,
            prune: false,
            snapshot,
            databases: &BTreeMap::new(),
            template1: None,
        })
    }

    fn user_item<'p>(plan: &'p InstancePlan, name: &str) -> &'p Planned {
        plan.items
            .iter()
            .find(|p| p.item.kind == ItemKind::User && p.item.name == name)
            .unwrap()
    }

    #[test]
    fn a_new_iam_role_needs_no_sink_and_gets_no_password() {
        let text = INVENTORY.replace("shop = { env_file = \"/tmp/shop.env\" }\n", "")
            + "\n[project.roles]\nshop = { iam = true }\nshop_ro = { iam = true }\n";
        let plan = plan_text(&text, &empty_instance(16));
        let names = states(&plan);
        assert_eq!(
            names[1],
            ("user \"shop\"".to_owned(), "planned"),
            "{names:?}"
        );
        assert_eq!(
            names[3],
            ("database \"shop\"".to_owned(), "planned"),
            "{names:?}"
        );
        for role in ["shop", "shop_ro"] {
            let shop = user_item(&plan, role);
            let ItemState::Planned(p) = &shop.item.state else {
                panic!("{:?}", shop.item.state)
            };
            assert!(
                matches!(
                    p.changes()[..],
                    [
                        Change::CreateRole { password: None, .. },
                        Change::GrantIam { .. }
                    ]
                ),
                "{p}"
            );
            // shop_ro's sink is never written: the operation gets none.
            assert!(
                matches!(&shop.operation, Operation::User { spec, delivery: None } if spec.iam == Some(true)),
                "{:?}",
                shop.operation
            );
            assert!(
                shop.item.notes.iter().any(|n| n.contains("an IAM user")),
                "{:?}",
                shop.item.notes
            );
        }
        let ro_notes = &user_item(&plan, "shop_ro").item.notes;
        assert!(
            ro_notes.iter().any(|n| n.contains("nothing is delivered")),
            "{ro_notes:?}"
        );
        // The database is planned against an IAM owner: its rds_iam is suspended around
        // master's membership.
        let ItemState::Planned(db) = &plan.items[3].item.state else {
            panic!()
        };
        assert_eq!(db.sql()[0], "REVOKE rds_iam FROM \"shop\"", "{db}");
    }

    #[test]
    fn switching_an_existing_role_back_to_a_password_needs_a_sink() {
        let mut s = empty_instance(16);
        let mut iam_role =
            crate::plan::tests::project_role(crate::plan::tests::CREATED_BY_MASTER_16);
        iam_role.iam = true;
        for r in ["shop", "shop_ro"] {
            s.users.insert(
                r.into(),
                UserSnapshot {
                    role: Some(iam_role.clone()),
                    leftover_memberships: vec![],
                },
            );
        }
        let back = "\n[project.roles]\nshop = { iam = false }\nshop_ro = { iam = false }\n";
        let text = INVENTORY.replace("shop = { env_file = \"/tmp/shop.env\" }\n", "") + back;
        let plan = plan_text(&text, &s);
        let shop = user_item(&plan, "shop");
        let e = shop
            .item
            .state
            .error()
            .unwrap_or_else(|| panic!("{:?}", shop.item.state));
        assert!(e.to_string().contains("switches back to a password"), "{e}");
        assert!(e.hint().unwrap().contains("[project.credentials]"), "{e}");
        let shop_ro = user_item(&plan, "shop_ro");
        let ItemState::Planned(p) = &shop_ro.item.state else {
            panic!("{:?}", shop_ro.item.state)
        };
        assert_eq!(
            p.sql(),
            [
                "REVOKE rds_iam FROM \"shop_ro\"",
                "ALTER ROLE \"shop_ro\" PASSWORD '[redacted]'"
            ],
            "{p}"
        );
        assert!(matches!(
            &shop_ro.operation,
            Operation::User {
                delivery: Some(_),
                ..
            }
        ));
        assert!(shop_ro
            .item
            .notes
            .iter()
            .any(|n| n.contains("go to the command")));

        // Without the choice, or with iam = true, an IAM user stays one: nothing to do.
        for roles in ["", "\n[project.roles]\nshop = { iam = true }\n"] {
            let plan = plan_text(&(INVENTORY.to_owned() + roles), &s);
            assert_eq!(
                user_item(&plan, "shop").item.state.as_str(),
                "in_sync",
                "{roles}"
            );
        }
    }

    #[test]
    fn prune_never_lists_what_belongs_to_the_instance_or_holds_privileges() {
        let mut s = empty_instance(16);
        let unclaimed =
            |name: &str, owner: &str, superuser: bool, template: bool| UnclaimedDatabase {
                name: name.into(),
                owner: owner.into(),
                owner_is_superuser: superuser,
                is_template: template,
                allows_connections: true,
            };
        s.unclaimed_databases = vec![
            unclaimed("postgres", "master", false, false),
            unclaimed("rdsadmin", "rdsadmin", true, false),
            unclaimed("template1", "master", false, true),
            unclaimed("mytemplate", "master", false, true),
            unclaimed("old_shop", "old", false, false),
        ];
        let plain = RoleState {
            can_login: true,
            ..RoleState::default()
        };
        s.unclaimed_roles = vec![
            UnclaimedRole {
                name: "old".into(),
                state: plain.clone(),
            },
            UnclaimedRole {
                name: "admin2".into(),
                state: RoleState {
                    create_role: true,
                    ..plain.clone()
                },
            },
            UnclaimedRole {
                name: "ops".into(),
                state: RoleState {
                    privileged_memberships: vec!["rds_superuser".into()],
                    ..plain.clone()
                },
            },
            UnclaimedRole {
                name: "rds_custom".into(),
                state: plain.clone(),
            },
        ];
        let plan = plan_on(&s, false, true);
        let drops: Vec<String> = plan
            .items
            .iter()
            .filter(|p| matches!(p.item.kind, ItemKind::DropDatabase | ItemKind::DropUser))
            .map(|p| p.item.to_string())
            .collect();
        assert_eq!(drops, ["drop database \"old_shop\"", "drop user \"old\""]);
        let old = plan
            .items
            .iter()
            .position(|p| p.item.name == "old")
            .unwrap();
        let old_shop = plan
            .items
            .iter()
            .position(|p| p.item.name == "old_shop")
            .unwrap();
        assert_eq!(
            plan.items[old].depends_on,
            [old_shop],
            "its database goes first"
        );
        assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
        assert!(plan.notes.iter().any(|n| n.contains("CREATEROLE")));
        assert!(
            !plan.notes.iter().any(|n| n.contains("rds_custom")),
            "a reserved name belongs to the instance: not even noted"
        );
        let plan = plan_on(&s, false, false);
        assert!(!plan
            .items
            .iter()
            .any(|p| matches!(p.item.kind, ItemKind::DropDatabase | ItemKind::DropUser)));
        assert_eq!(
            plan.notes.len(),
            2,
            "without --prune: noted only: {:?}",
            plan.notes
        );

        // An instance without projects is not emptied.
        let inventory = Inventory::from_str(INVENTORY, "t.toml").unwrap();
        let plan = plan_instance(&Inputs {
            instance: &inventory.instances[0],
            projects: &[],
            take_over: false,
            prune: true,
            snapshot: &s,
            databases: &BTreeMap::new(),
            template1: None,
        });
        assert!(!plan
            .items
            .iter()
            .any(|p| matches!(p.item.kind, ItemKind::DropDatabase | ItemKind::DropUser)));
        let refusal = plan.items.iter().find(|p| p.item.name == "prune").unwrap();
        assert!(matches!(refusal.item.state, ItemState::Blocked(_)));
    }
}
