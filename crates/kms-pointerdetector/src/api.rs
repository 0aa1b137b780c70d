//! Code generated from `pointerdetector.kmd.json` (in `OUT_DIR`, never edited): the
//! `PointerDetectorFilter` trait and its factory trait, the constructor parameters,
//! the events and `module_descriptor`. Generated code expects this module at
//! `crate::api::pointerdetector`.

include!(concat!(env!("OUT_DIR"), "/pointerdetector.rs"));
