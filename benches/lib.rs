//! Benchmarks of rds-pg (`make bench`); each writes its figures to `docs/BENCHMARKS.md`.
