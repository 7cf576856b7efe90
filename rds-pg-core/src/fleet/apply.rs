//! Running a fleet: instances on worker threads (at most `jobs` at once), each with its own
//! [`Provisioner`]: connect and inspect in bulk, plan, and, for `apply`, run the operations of
//! what differs in order, each under its own locks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::plan::{self as fleet_plan, Inputs, InstancePlan, Operation, Planned};
use super::{FleetOptions, FleetReport, InstanceReport, ItemState, Mode, Progress};
use crate::error::{Error, Result};
use crate::ident::DatabaseName;
use crate::inspect::{
    self, DatabaseBulkSnapshot, DatabaseRequest, DatabaseSnapshot, InstanceRequest,
    InstanceSnapshot, SnapshotScope,
};
use crate::inventory::{Instance, Inventory, Project, Severity};
use crate::provision::{CredentialDelivery, Provisioner};
use crate::spec::{DropDatabaseOptions, DropUserOptions};

/// Runs `mode` over the instances `options` selects.
pub(super) fn run(
    inventory: &Inventory,
    options: &FleetOptions,
    mode: Mode,
) -> Result<FleetReport> {
    let mut selected: Vec<&Instance> = Vec::new();
    for name in &options.instances {
        match inventory.instance(name) {
            Some(i) if !selected.iter().any(|s| s.name == i.name) => selected.push(i),
            Some(_) => {}
            None => {
                let known: Vec<&str> = inventory
                    .instances
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect();
                return Err(Error::InvalidInput(format!(
                    "inventory {} has no instance {name:?} (it has: {})",
                    inventory.source,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
    }
    if options.instances.is_empty() {
        selected = inventory.instances.iter().collect();
    }
    // Inventory order, whatever order the names were given in.
    selected.sort_by_key(|i| {
        inventory
            .instances
            .iter()
            .position(|x| x.name == i.name)
            .unwrap_or(usize::MAX)
    });
    let results: Mutex<Vec<Option<InstanceReport>>> =
        Mutex::new((0..selected.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = options.jobs.max(1).min(selected.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(instance) = selected.get(i) else {
                    break;
                };
                let report = run_instance(inventory, instance, options, mode);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            });
        }
    });
    let instances = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Ok(FleetReport {
        mode,
        source: inventory.source.clone(),
        instances,
    })
}

/// Processes one instance; whatever goes wrong ends in its report.
fn run_instance(
    inventory: &Inventory,
    instance: &Instance,
    options: &FleetOptions,
    mode: Mode,
) -> InstanceReport {
    let started = Instant::now();
    options.report(Progress::Started {
        instance: instance.name.clone(),
    });
    let mut report = InstanceReport {
        name: instance.name.clone(),
        client: instance.client.clone(),
        environment: instance.environment,
        endpoint: format!("{}:{}", instance.endpoint, instance.port),
        server_version: None,
        items: Vec::new(),
        notes: Vec::new(),
        error: None,
        inspection_queries: 0,
        elapsed: Default::default(),
    };
    if let Err(e) = converge(inventory, instance, options, mode, &mut report) {
        report.error = Some(e);
    }
    report.elapsed = started.elapsed();
    options.report(Progress::Finished {
        instance: instance.name.clone(),
        summary: report.summary(mode),
        ok: !report.has_errors() && (mode == Mode::Apply || report.findings() == 0),
    });
    report
}

/// What the bulk inspection is asked about, from the projects on the instance.
fn request(projects: &[&Project]) -> InstanceRequest {
    let mut r = InstanceRequest::default();
    for project in projects {
        for role in project.roles() {
            if !r.roles.iter().any(|x| x == role.as_str()) {
                r.roles.push(role.as_str().to_owned());
            }
        }
        for db in &project.databases {
            r.databases
                .push((db.name.as_str().to_owned(), db.owner.as_str().to_owned()));
            for reader in &db.readers {
                r.grants
                    .push((db.name.as_str().to_owned(), reader.as_str().to_owned()));
            }
            r.extensions
                .extend(crate::provision::extensions_with_requirements(
                    &db.extensions,
                ));
        }
    }
    r.extensions.sort();
    r.extensions.dedup();
    r
}

fn converge(
    inventory: &Inventory,
    instance: &Instance,
    options: &FleetOptions,
    mode: Mode,
    report: &mut InstanceReport,
) -> Result<()> {
    // The placement policies first: an instance that breaks one is not touched.
    let findings = crate::inventory::check_instance(inventory, instance);
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {} (fix: {})", f.rule, f.message, f.fix))
        .collect();
    for warning in findings.iter().filter(|f| f.severity == Severity::Warning) {
        report
            .notes
            .push(format!("{}: {}", warning.rule, warning.message));
    }
    if !errors.is_empty() {
        return Err(Error::PolicyViolation(format!(
            "the inventory breaks the hosting policies for this instance, so rds-pg does not \
             touch it (rds-pg fleet check lists them): {}",
            errors.join("; ")
        )));
    }
    let projects: Vec<&Project> = inventory.projects_on(&instance.name).collect();
    let request = request(&projects);
    // The forward (with `via`) lives until every connection of this instance is closed: it
    // is declared before the provisioner, so it is dropped after it.
    let (connect, _tunnel) = instance.through_via(instance.connect_options()?)?;
    let (mut p, snapshot) = Provisioner::connect_inspecting(&connect, |client| {
        let s = inspect::instance_snapshot(client, instance.postgres_major, &request)?;
        Ok((s.facts.clone(), s))
    })?;
    report.inspection_queries += 1;
    // One connection per database of the instance for the whole apply (this provisioner ends
    // with it): the inspection opens them, the operations reuse them.
    p.keep_connections(projects.iter().map(|p| p.databases.len()).sum::<usize>() + 1);
    report.server_version = Some(snapshot.facts.version);
    p.remember_available(&snapshot.available);
    let (databases, template1) = inspect_databases(&mut p, &projects, &snapshot, report)?;
    let planned = fleet_plan::plan_instance(&Inputs {
        instance,
        projects: &projects,
        take_over: options.take_over,
        prune: options.prune,
        snapshot: &snapshot,
        databases: &databases,
        template1: template1.as_ref(),
    });
    let InstancePlan { mut items, notes } = planned;
    report.notes.extend(notes);
    if options.prune {
        plan_prune(&mut p, &projects, &mut items);
    }
    let changes = items.iter().filter(|i| i.item.state.changes()).count();
    options.report(Progress::Planned {
        instance: instance.name.clone(),
        changes,
    });
    if mode == Mode::Apply && changes > 0 {
        apply_items(&mut p, instance, options, &mut items);
    }
    report.items = items.into_iter().map(|p| p.item).collect();
    Ok(())
}

/// Inspects each project database master can look inside (one query each, covering its owner
/// and all its readers) and, before 15, `template1`.
fn inspect_databases(
    p: &mut Provisioner,
    projects: &[&Project],
    snapshot: &InstanceSnapshot,
    report: &mut InstanceReport,
) -> Result<(
    BTreeMap<String, DatabaseBulkSnapshot>,
    Option<DatabaseSnapshot>,
)> {
    let facts = snapshot.facts.clone();
    let mut out = BTreeMap::new();
    for project in projects {
        for db in &project.databases {
            let name = db.name.as_str();
            let Some(state) = snapshot
                .databases
                .get(name)
                .and_then(|c| c.database.as_ref())
            else {
                continue;
            };
            if !(state.master_can_connect || facts.is_superuser) || out.contains_key(name) {
                continue;
            }
            // Every grant of the inventory covers the same schemas (ReadOnlyGrant's default).
            let grants = db.read_only_grants()?;
            let schemas: Vec<String> = grants
                .first()
                .map(|g| g.schemas.iter().map(|s| s.as_str().to_owned()).collect())
                .unwrap_or_else(|| vec!["public".to_owned()]);
            let request = DatabaseRequest {
                owner: db.owner.as_str().to_owned(),
                shadowing: !db.extensions.is_empty(),
                current_owner: state.owner.clone(),
                readers: db.readers.iter().map(|r| r.as_str().to_owned()).collect(),
                schemas,
            };
            let bulk = p.inspecting(Some(&db.name), |c, _| {
                inspect::database_bulk_snapshot(c, &request)
            })?;
            report.inspection_queries += 1;
            out.insert(name.to_owned(), bulk);
        }
    }
    let template1 = if facts.major < 15 {
        let name = DatabaseName::from_catalog("template1");
        let scope = SnapshotScope {
            shadowing: true,
            template: true,
        };
        let snapshot = p.inspecting(Some(&name), |c, _| {
            inspect::database_snapshot(c, "", None, &[], scope)
        });
        // CREATE DATABASE refuses a template that has sessions: do not keep this one open.
        p.disconnect(&name);
        report.inspection_queries += 1;
        Some(snapshot?)
    } else {
        None
    };
    Ok((out, template1))
}

/// Replaces the prune items' pending state by their real plans (`plan_drop_*` inspects the
/// databases involved), refusing a role that owns objects in a database a project claims:
/// `DROP OWNED` would take them with it.
fn plan_prune(p: &mut Provisioner, projects: &[&Project], items: &mut [Planned]) {
    let claimed: Vec<&str> = projects
        .iter()
        .flat_map(|pr| pr.databases.iter().map(|d| d.name.as_str()))
        .collect();
    for planned in items.iter_mut() {
        let result = match &planned.operation {
            Operation::DropDatabase(name) => {
                p.plan_drop_database(name, &DropDatabaseOptions::new())
            }
            Operation::DropUser(name) if planned.depends_on.is_empty() => {
                owned_in_claimed(p, name.as_str(), &claimed)
                    .and_then(|()| p.plan_drop_user(name, &DropUserOptions::new()))
            }
            Operation::DropUser(name) => {
                // It owns a database that is dropped first: its plan is known after that.
                match owned_in_claimed(p, name.as_str(), &claimed) {
                    Ok(()) => {
                        planned.item.state =
                            ItemState::Pending("dropped once its databases are".into());
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
            _ => continue,
        };
        match result {
            Ok(plan) if plan.is_empty() => planned.item.state = ItemState::InSync,
            Ok(plan) => {
                planned.item.notes.extend(plan.notes.iter().cloned());
                planned.item.state = ItemState::Planned(plan);
            }
            Err(e) => planned.item.state = ItemState::Blocked(e),
        }
    }
}

/// Refuses to prune `role` when it owns objects in a database a project claims.
fn owned_in_claimed(p: &mut Provisioner, role: &str, claimed: &[&str]) -> Result<()> {
    let cluster = p.inspecting(None, |c, major| {
        inspect::drop_user_snapshot(c, major, role, None)
    })?;
    for d in &cluster.databases {
        if !claimed.contains(&d.name.as_str()) || !d.master_can_connect || !d.allows_connections {
            continue;
        }
        let database = DatabaseName::from_catalog(&d.name);
        let snapshot = p.inspecting(Some(&database), |c, major| {
            inspect::drop_user_database(c, major, role)
        })?;
        if !snapshot.owned.is_empty() {
            let owned: Vec<String> = snapshot
                .owned
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            return Err(Error::Refused {
                message: format!(
                    "login role {role:?} is claimed by no project, but it owns objects in \
                     database {:?}, which a project claims ({}): dropping it would drop them",
                    d.name,
                    owned.join(", ")
                ),
                fix: format!(
                    "give them to the database's owner first: rds-pg user drop {role} \
                     --reassign-to {} (or add the role to the inventory)",
                    d.owner
                ),
            });
        }
    }
    Ok(())
}

/// Runs the operation of every item that differs, in order; an item whose dependency did not
/// converge is skipped.
fn apply_items(
    p: &mut Provisioner,
    instance: &Instance,
    options: &FleetOptions,
    items: &mut [Planned],
) {
    let total = items.iter().filter(|i| i.item.state.changes()).count();
    let mut done = 0;
    for i in 0..items.len() {
        if !items[i].item.state.changes() {
            continue;
        }
        if let Some(d) = items[i]
            .depends_on
            .iter()
            .copied()
            .find(|d| !converged(&items[*d].item.state))
        {
            let reason = format!("{} did not converge", items[d].item);
            items[i].item.state = ItemState::Skipped(reason);
            continue;
        }
        options.report(Progress::Applying {
            instance: instance.name.clone(),
            item: items[i].item.to_string(),
            done,
            total,
        });
        done += 1;
        let result = match &items[i].operation {
            Operation::SecureInstance => p.secure_instance(),
            Operation::User { spec, delivery } => match delivery {
                Some((sink, format, database)) => p.ensure_user_delivering(
                    spec,
                    &CredentialDelivery::new(sink.clone())
                        .database(database.clone())
                        .format(*format),
                ),
                None => p.ensure_user(spec),
            },
            Operation::Database(spec) => p.ensure_database(spec),
            Operation::Grant(grant) => p.grant_read_only(grant),
            Operation::DropDatabase(name) => p.drop_database(name, &DropDatabaseOptions::new()),
            Operation::DropUser(name) => p.drop_user(name, &DropUserOptions::new()),
            Operation::None => continue,
        };
        let item = &mut items[i].item;
        match result {
            Ok(mut r) => {
                // The operation planned again: its notes replace the plan's of the same kind.
                for note in r.notes.drain(..) {
                    if !item.notes.contains(&note) {
                        item.notes.push(note);
                    }
                }
                // A generated password went to the sink; it is not kept in the report.
                r.generated_password = None;
                r.new_password = None;
                item.state = ItemState::Applied(r);
            }
            Err(e) => item.state = ItemState::Failed(e),
        }
    }
}

fn converged(state: &ItemState) -> bool {
    matches!(state, ItemState::InSync | ItemState::Applied(_))
}
