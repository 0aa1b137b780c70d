//! Generates the `elements` module's code from our own descriptor.
fn main() {
    module_creator::Builder::new()
        .rom("elements.kmd.json")
        .builtin_deps()
        .generate_rust()
        .unwrap_or_else(|e| panic!("elements.kmd.json: {e}"));
}
