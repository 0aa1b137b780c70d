//! What every `UriEndpoint` (PlayerEndpoint, RecorderEndpoint) shares
//! (spec §10.9), apart from GStreamer:
//!
//! * [`location`]: the `uri` constructor parameter as KMS reads it (`%2F`
//!   replaced, relative paths resolved against `UriEndpoint` `defaultPath`);
//! * [`policy`]: the file access policy (`mediaServer.resources.mediaRoots`,
//!   `allowedHosts`), beyond KMS, which opens whatever path a client names;
//! * [`state`]: the STOP/START/PAUSE state machine behind `getState` and
//!   `UriEndpointStateChanged`.
//!
//! All three are pure and unit-tested; the endpoints do the IO.

pub mod location;
pub mod policy;
pub mod state;

pub use location::{Location, Scheme, default_path};
pub use policy::AccessPolicy;
pub use state::{Transition, UriCommand, UriStateMachine};

/// A `uri` constructor parameter parsed and checked against the policy.
#[derive(Debug, Clone)]
pub struct CheckedUri {
    pub location: Location,
    /// For `file://`: the resolved path inside a root, the one to open.
    pub path: Option<std::path::PathBuf>,
}

impl CheckedUri {
    /// Parses `uri` (relative to `UriEndpoint` `defaultPath`) and applies
    /// the server's access policy.
    pub fn new(config: &kms_core::CoreConfig, uri: &str) -> Result<CheckedUri, UriError> {
        let location = Location::parse(uri, &default_path(config))?;
        let path = AccessPolicy::new(&config.media_access).check(&location)?;
        Ok(CheckedUri { location, path })
    }

    /// What `getUri` answers (spec §10.9: the string as given).
    pub fn given(&self) -> &str {
        &self.location.given
    }

    /// The URI to hand to GStreamer: for files, the resolved path (so a
    /// symlink swapped in after the check cannot lead outside the roots
    /// through a directory on the way).
    pub fn gst_uri(&self) -> String {
        match &self.path {
            Some(p) => file_uri(p),
            None => self.location.resolved.clone(),
        }
    }
}

/// `file://` URI of an absolute path, percent-encoded.
pub fn file_uri(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    format!("file://{}", percent_encoding::percent_encode(path.as_os_str().as_bytes(), SET))
}

/// Why a URI cannot be used. Converted into the JSON-RPC error of `create`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The string is not a URI we can use (bad syntax, empty, no path).
    #[error("Invalid URI '{0}'")]
    Invalid(String),
    /// A scheme no endpoint handles, or one that reaches local resources
    /// other than files (`fd://`, devices, ...).
    #[error("Unsupported URI scheme '{scheme}' in '{uri}'")]
    UnsupportedScheme { scheme: String, uri: String },
    /// The one answer for every file outside the media roots, whether it
    /// exists or not, so clients cannot probe the server's file system.
    #[error(
        "Access denied to '{0}': file URIs must be inside the server's media roots (mediaServer.resources.mediaRoots)"
    )]
    OutsideRoots(String),
    /// A network URI whose host is not in `allowedHosts`.
    #[error("Access denied to '{0}': host not in mediaServer.resources.allowedHosts")]
    HostNotAllowed(String),
}

impl From<UriError> for kms_core::Error {
    fn from(e: UriError) -> Self {
        // 40107 MEDIA_OBJECT_ILLEGAL_PARAM_ERROR: the `uri` parameter is
        // refused at `create`, before anything opens it.
        kms_core::Error::IllegalParam(e.to_string())
    }
}
