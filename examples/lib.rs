//! Runnable examples of rds-pg; see `cargo run -p rds-pg-examples --example NAME`.
