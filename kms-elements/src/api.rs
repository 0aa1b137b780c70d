//! Code generated from `elements.kmd.json`.

include!(concat!(env!("OUT_DIR"), "/elements.rs"));
