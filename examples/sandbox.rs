//! Starts an RDS-like sandbox, shows how to connect to it as the master user, and stops it.
//!
//! `cargo run -p rds-pg-examples --example sandbox [MAJOR]` (default: 15 with PostGIS when
//! installed, else the newest version installed).

use rds_pg_core::sandbox::{Sandbox, SandboxOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = SandboxOptions::new();
    if let Some(major) = std::env::args().nth(1) {
        options = options.version(major.parse()?);
    }
    let sandbox = Sandbox::start(options)?;
    println!(
        "Started an RDS-like PostgreSQL {} sandbox in {:.1?} ({})",
        sandbox.version(),
        sandbox.startup_time(),
        sandbox.dir().display()
    );
    let master = sandbox.master_options();
    println!("Connect as the master user (not a superuser, as on RDS):");
    println!(
        "  export PGHOST={} PGPORT={} PGUSER={} PGDATABASE=postgres",
        master.get_host(),
        master.get_port(),
        sandbox.master_user()
    );
    match sandbox.ca_cert_path() {
        Some(ca) => println!(
            "  export PGSSLMODE=verify-full PGSSLROOTCERT={}",
            ca.display()
        ),
        None => println!("  export PGSSLMODE=disable"),
    }
    println!("  (the master password is generated per sandbox and kept in memory only)");

    let mut client = sandbox.connect_master()?;
    let row = client.query_one(
        "SELECT current_user::text, rolsuper, rolcreatedb, rolcreaterole,
                coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)
           FROM pg_roles WHERE rolname = current_user",
        &[],
    )?;
    let (user, is_super, createdb, createrole, tls): (String, bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    println!("Logged in as {user}: superuser={is_super} createdb={createdb} createrole={createrole} tls={tls}");
    match client.batch_execute("CREATE ROLE demo_super SUPERUSER") {
        Ok(()) => println!("unexpected: master created a superuser"),
        Err(e) => println!(
            "As on RDS, master cannot create a superuser: {}",
            rds_pg_core::Error::from(e)
        ),
    }
    let whitelist = sandbox.whitelisted_extensions();
    if whitelist.is_empty() {
        println!(
            "No extension whitelist for this version: trusted extensions only (hstore, citext, …)"
        );
    } else {
        println!(
            "Untrusted extensions master may create: {}",
            whitelist.join(", ")
        );
    }
    drop(client);
    sandbox.stop()?;
    println!("Sandbox stopped and removed.");
    Ok(())
}
