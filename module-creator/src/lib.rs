//! kurento-module-creator: Kurento Module Descriptors (`.kmd.json`, spec
//! §12) into Rust server code, Rust and JavaScript client bindings, and new
//! module scaffolds.
//!
//! Third-party module crates call [`Builder`] from their `build.rs`; the
//! built-in modules' code is checked in ([`checked_in`]); the
//! `kurento-module-creator` binary wraps the same library.

pub mod builder;
pub mod checked_in;
pub mod cli;
pub mod emit_kmd;
pub mod error;
pub mod js_client;
pub mod model;
pub mod names;
pub mod resolve;
pub mod rust_client;
pub mod rust_server;
pub mod scaffold;

pub use builder::Builder;
pub use error::KmdError;
pub use model::{Module, load_module, load_modules};
pub use resolve::ModuleSet;
