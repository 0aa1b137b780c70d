//! Generates the `platedetector` module's server code (traits, types, dispatch,
//! module descriptor) from upstream's split descriptors in `kmd/` (fused, spec
//! §12.2) into `OUT_DIR`, against the built-in core/elements/filters
//! descriptors; `src/api.rs` includes it.
fn main() {
    println!("cargo:rerun-if-changed=kmd");
    if let Err(e) = module_creator::Builder::new().rom("kmd").builtin_deps().generate_rust() {
        // `file: json.path: message`
        panic!("{e}");
    }
}
