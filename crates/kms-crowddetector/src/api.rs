//! Code generated from `crowddetector.kmd.json` (in `OUT_DIR`, never edited): the
//! `CrowddetectorFilter` trait and its factory trait, the constructor parameters,
//! the events and `module_descriptor`. Generated code expects this module at
//! `crate::api::crowddetector`.

include!(concat!(env!("OUT_DIR"), "/crowddetector.rs"));
