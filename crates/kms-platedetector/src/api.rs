//! Code generated from `platedetector.kmd.json` (in `OUT_DIR`, never edited): the
//! `PlateDetectorFilter` trait and its factory trait, the constructor parameters,
//! the events and `module_descriptor`. Generated code expects this module at
//! `crate::api::platedetector`.

include!(concat!(env!("OUT_DIR"), "/platedetector.rs"));
