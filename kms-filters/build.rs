//! Generates the `filters` module's code from our own descriptor.
fn main() {
    module_creator::Builder::new()
        .rom("filters.kmd.json")
        .builtin_deps()
        .generate_rust()
        .unwrap_or_else(|e| panic!("filters.kmd.json: {e}"));
}
