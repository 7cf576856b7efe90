//! The `rds-pg` command. Argument parsing and printing only: every behaviour lives in
//! `rds-pg-core`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Provision PostgreSQL on Amazon RDS with a non-superuser master.
#[derive(Parser)]
#[command(name = "rds-pg", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of rds-pg and exit.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("rds-pg {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
