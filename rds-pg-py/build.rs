//! Makes `cargo test` link against the interpreter in use rather than any libpython it finds.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
