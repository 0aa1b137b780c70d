//! Generates the `core` module's types, traits and dispatch from our own
//! descriptor (module-creator); nothing generated is checked in.
fn main() {
    module_creator::Builder::new()
        .rom("core.kmd.json")
        .generate_rust()
        .unwrap_or_else(|e| panic!("core.kmd.json: {e}"));
}
