//! The module's descriptors are upstream's split files byte for byte (the
//! copies module-creator's fixtures hold), and the server describes the
//! module with them.

use std::path::Path;

#[test]
fn split_descriptors_are_upstreams() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = here.join("../../module-creator/tests/fixtures/kmd");
    for f in ["platedetector.kmd.json", "platedetector.PlateDetectorFilter.kmd.json"] {
        let ours = std::fs::read(here.join("kmd").join(f)).unwrap();
        let upstream = std::fs::read(fixtures.join(f)).unwrap();
        assert!(ours == upstream, "kmd/{f} differs from upstream's");
    }
}

#[test]
fn descriptor_lists_the_class_and_version() {
    let d = kms_platedetector::descriptor();
    assert_eq!(d.name, "platedetector");
    assert_eq!(d.version, "7.3.1-dev");
    let factories: Vec<_> = d.classes.iter().filter(|c| c.factory.is_some()).map(|c| c.name.to_string()).collect();
    assert_eq!(factories, ["PlateDetectorFilter"]);
}
