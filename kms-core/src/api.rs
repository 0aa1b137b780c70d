//! Code generated from `core.kmd.json`: complex types, events, one trait per
//! remote class, dispatchers and class descriptors.

include!(concat!(env!("OUT_DIR"), "/core.rs"));
