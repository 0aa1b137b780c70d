//! Generates the `chroma` module's server code (traits, types, dispatch,
//! module descriptor) from upstream's split descriptors in `kmd/` (fused as
//! upstream's kurento-module-creator does) into `OUT_DIR`; `src/api.rs`
//! includes it.
fn main() {
    if let Err(e) = module_creator::Builder::new().rom("kmd").builtin_deps().generate_rust() {
        // `file: json.path: message`
        panic!("{e}");
    }
}
