//! The crate's one error type.

use std::fmt;

/// A descriptor problem, located by file and JSON path (spec §12.2:
/// validation errors must point at the offending item).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct KmdError {
    pub file: String,
    /// JSON path such as `remoteClasses[2].methods[0].params[1].type`; empty
    /// for whole-file problems.
    pub path: String,
    pub message: String,
}

impl KmdError {
    pub fn new(file: &str, path: &str, message: impl Into<String>) -> Self {
        KmdError { file: file.to_string(), path: path.to_string(), message: message.into() }
    }
}

impl fmt::Display for KmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}
