//! rds-pg provisions PostgreSQL on Amazon RDS the way a careful hosting team does by hand, with
//! every workaround RDS's non-superuser master account needs on PostgreSQL 13 to 18.
//!
//! ```no_run
//! use rds_pg_core::{ConnectOptions, DatabaseSpec, Extension, Provisioner, ReadOnlyGrant, UserSpec};
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! // Master's credentials from PGHOST/PGUSER/… and ~/.pgpass, as psql reads them.
//! let mut rds = Provisioner::connect(&ConnectOptions::from_env()?)?;
//! let user = rds.ensure_user(&UserSpec::new("shop")?)?; // password generated, returned once
//! let db = DatabaseSpec::new("shop", "shop")?.extensions([Extension::Postgis, Extension::Hstore]);
//! println!("{}", rds.plan_ensure_database(&db)?); // dry run: the SQL it would run
//! rds.ensure_database(&db)?; // owned by shop, PUBLIC revoked
//! rds.ensure_user(&UserSpec::new("shop_ro")?)?;
//! rds.grant_read_only(&ReadOnlyGrant::new("shop", "shop_ro")?)?; // future tables included
//! let _password = user.generated_password; // hand it to your vault
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod audit;
pub mod backup;
mod builder;
pub mod config;
pub mod connect;
mod conninfo;
pub mod credentials;
pub mod dump;
pub mod error;
pub mod fleet;
pub mod ident;
pub mod inspect;
pub mod inventory;
mod password_command;
pub mod pgpass;
pub mod plan;
mod private_file;
pub mod provision;
mod rule;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod secret;
pub mod spec;
pub mod tls;
pub mod tunnel;

pub use audit::{AuditOptions, AuditReport};
pub use config::{ConnectOptions, SslMode};
pub use connect::{connect, ServerVersion};
pub use credentials::{CredentialFormat, CredentialSink, Credentials};
pub use dump::{
    dump, restore, restore_with, verify_backup, DumpFormat, DumpOptions, DumpReport,
    RestoreOptions, RestoreReport, VerifyOptions, VerifyReport,
};
pub use error::{Error, ErrorKind, NameKind, Result, SqlState};
pub use ident::{DatabaseName, RoleName, SchemaName};
pub use inspect::ServerFacts;
pub use inventory::{Inventory, InventoryError};
pub use plan::{Change, Plan, Report, Step, StepKind};
pub use provision::{CredentialDelivery, Provisioner};
pub use secret::{NewPassword, Password, ScramVerifier};
pub use spec::{
    DatabaseSpec, DropDatabaseOptions, DropUserOptions, Extension, ReadOnlyGrant, UserSpec,
};

/// The README's Rust examples, compiled by `cargo test --doc` so they stay true to the code.
#[cfg(all(doctest, feature = "sandbox"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
