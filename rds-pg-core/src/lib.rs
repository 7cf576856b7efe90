//! rds-pg provisions PostgreSQL on Amazon RDS the way a careful hosting team does by hand, with
//! every workaround RDS's non-superuser master account needs on PostgreSQL 13 to 18.
//!
//! ```no_run
//! use rds_pg_core::{connect, ConnectOptions};
//!
//! # fn main() -> rds_pg_core::Result<()> {
//! // PGHOST, PGUSER, … and ~/.pgpass, as psql reads them.
//! let options = ConnectOptions::from_env()?.dbname("postgres");
//! let mut client = connect(&options)?;
//! let row = client.query_one("SELECT current_user", &[])?;
//! println!("connected as {}", row.get::<_, String>(0));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod connect;
mod conninfo;
pub mod error;
pub mod ident;
pub mod inspect;
pub mod pgpass;
pub mod plan;
pub mod provision;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod secret;
pub mod spec;
pub mod tls;

pub use config::{ConnectOptions, SslMode};
pub use connect::{connect, ServerVersion};
pub use error::{Error, ErrorKind, NameKind, Result, SqlState};
pub use ident::{DatabaseName, RoleName, SchemaName};
pub use inspect::ServerFacts;
pub use plan::{Plan, Report, Step, StepKind};
pub use provision::Provisioner;
pub use secret::{Password, ScramVerifier};
pub use spec::{DatabaseSpec, Extension, ReadOnlyGrant, UserSpec};
