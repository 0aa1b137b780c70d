//! The `elements` module's generated code is checked in (`src/auto/`, see
//! `ci/regen.sh`); this only stamps the build time it reports as the
//! module's `generationTime`.
fn main() {
    module_creator::builder::stamp_generation_time();
}
