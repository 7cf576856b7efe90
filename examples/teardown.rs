//! The seed's "Drop database" and "Drop user" through the library, on a sandbox with a
//! provisioned project: each step's dry run (what a full teardown runs in each database) and the
//! step itself, then all of it again (no change).
//!
//! `cargo run -p rds-pg-examples --example teardown [MAJOR]`

use rds_pg_core::sandbox::{Sandbox, SandboxOptions};
use rds_pg_core::{
    DatabaseName, DatabaseSpec, DropDatabaseOptions, DropUserOptions, Extension, Provisioner,
    ReadOnlyGrant, Report, RoleName, UserSpec,
};

fn show(what: &str, report: &Report) {
    let state = if report.changed {
        "changed"
    } else {
        "no change"
    };
    println!("{what}: {state}");
    for step in &report.steps {
        println!("    [{}] {}", step.database_label(), step.sql());
    }
    for note in &report.notes {
        println!("    note: {note}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = SandboxOptions::new();
    if let Some(major) = std::env::args().nth(1) {
        options = options.version(major.parse()?);
    }
    let sandbox = Sandbox::start(options)?;
    println!("PostgreSQL {} sandbox", sandbox.version());
    let mut rds = Provisioner::connect(&sandbox.master_options())?;
    // Once per instance: before 15, RDS lets every login role create in template1 and postgres.
    rds.secure_instance()?;
    let mut extensions = vec![Extension::Hstore];
    if sandbox.has_postgis() {
        extensions.push(Extension::Postgis);
    }
    rds.ensure_user(&UserSpec::new("project_user")?)?;
    rds.ensure_database(&DatabaseSpec::new("project_db", "project_user")?.extensions(extensions))?;
    rds.ensure_user(&UserSpec::new("project_readonly")?)?;
    rds.grant_read_only(&ReadOnlyGrant::new("project_db", "project_readonly")?)?;

    let db = DatabaseName::new("project_db")?;
    let users = [
        RoleName::new("project_readonly")?,
        RoleName::new("project_user")?,
    ];
    // Each step's dry run, then the step (the users' plans depend on the database being gone).
    println!("== plan: drop_database project_db");
    print!(
        "{}",
        rds.plan_drop_database(&db, &DropDatabaseOptions::new())?
    );
    show(
        "drop_database project_db",
        &rds.drop_database(&db, &DropDatabaseOptions::new())?,
    );
    for user in &users {
        println!("== plan: drop_user {user}");
        print!("{}", rds.plan_drop_user(user, &DropUserOptions::new())?);
        show(
            &format!("drop_user {user}"),
            &rds.drop_user(user, &DropUserOptions::new())?,
        );
    }
    println!("== again");
    show(
        "drop_database project_db",
        &rds.drop_database(&db, &DropDatabaseOptions::new())?,
    );
    for user in &users {
        show(
            &format!("drop_user {user}"),
            &rds.drop_user(user, &DropUserOptions::new())?,
        );
    }
    Ok(())
}
