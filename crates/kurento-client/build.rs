//! Generates the client proxies of the built-in modules (core, elements,
//! filters) from the same descriptors the server is generated from, so the
//! client cannot drift from the server; nothing generated is checked in.
//!
//! Also generates `tests/fixtures/clientdemo.kmd.json` the way a
//! third-party module crate would (default paths, `::kurento_client::…`);
//! only the crate's unit tests include it.
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let core = root.join("kms-core/core.kmd.json");
    let elements = root.join("kms-elements/elements.kmd.json");
    let filters = root.join("kms-filters/filters.kmd.json");
    module_creator::rust_client::ClientBuilder::new()
        .rom(&core)
        .rom(&elements)
        .rom(&filters)
        .generate()
        .unwrap_or_else(|e| panic!("generating the Rust client: {e}"));
    module_creator::rust_client::ClientBuilder::new()
        .rom("tests/fixtures/clientdemo.kmd.json")
        .dep(&core)
        .dep(&elements)
        .dep(&filters)
        .generate()
        .unwrap_or_else(|e| panic!("generating the plugin fixture client: {e}"));
}
