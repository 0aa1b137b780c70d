//! Code generated from `filters.kmd.json`.

include!(concat!(env!("OUT_DIR"), "/filters.rs"));
