//! Code generated from `chroma.kmd.json` (in `OUT_DIR`, never edited): the
//! `ChromaFilter` trait and its factory trait, the constructor parameters,
//! the events and `module_descriptor`. Generated code expects this module at
//! `crate::api::chroma`.

include!(concat!(env!("OUT_DIR"), "/chroma.rs"));
