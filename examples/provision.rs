//! The seed's procedure on a sandbox through the library: a project user, its database with
//! hstore (and PostGIS where the sandbox has it), a read-only user and its grant — then the same
//! again, which changes nothing.
//!
//! `cargo run -p rds-pg-examples --example provision [MAJOR]`

use rds_pg_core::sandbox::{Sandbox, SandboxOptions};
use rds_pg_core::{DatabaseSpec, Extension, Provisioner, ReadOnlyGrant, Report, UserSpec};

fn show(what: &str, report: &Report) {
    println!(
        "{what}: {}",
        if report.changed {
            "changed"
        } else {
            "no change"
        }
    );
    for step in &report.steps {
        println!("    [{}] {}", step.database_label(), step.sql);
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
    println!(
        "PostgreSQL {} sandbox, master {:?}",
        sandbox.version(),
        sandbox.master_user()
    );
    let mut extensions = vec![Extension::Hstore];
    if sandbox.has_postgis() {
        extensions.push(Extension::Postgis);
    }
    let user = UserSpec::new("project_user")?;
    let database = DatabaseSpec::new("project_db", "project_user")?.extensions(extensions);
    let readonly = UserSpec::new("project_readonly")?;
    let grant = ReadOnlyGrant::new("project_db", "project_readonly")?;

    let mut provisioner = Provisioner::connect(&sandbox.master_options())?;
    for round in ["first run", "second run"] {
        println!("== {round}");
        let started = std::time::Instant::now();
        let report = provisioner.ensure_user(&user)?;
        if report.generated_password.is_some() {
            println!("(a password was generated for project_user and returned once)");
        }
        show("ensure_user project_user", &report);
        show(
            "ensure_database project_db",
            &provisioner.ensure_database(&database)?,
        );
        show(
            "ensure_user project_readonly",
            &provisioner.ensure_user(&readonly)?,
        );
        show("grant_read_only", &provisioner.grant_read_only(&grant)?);
        println!("({round} took {:.1?})", started.elapsed());
    }
    Ok(())
}
