//! Session identity (spec §3).
//!
//! A session is an ownership scope for media objects and subscriptions that
//! outlives WebSocket connections; this crate tracks which connection it is
//! bound to and when it expires, the backend owns what it contains.

use std::fmt;

pub use crate::session_hub::Notifier;

/// A Kurento `sessionId`: whatever string the client sent, or a lowercase
/// hyphenated UUID v4 when the server issues one (§3.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh id as the server issues it (§3).
    pub fn new_random() -> Self {
        SessionId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for SessionId {
    fn from(s: String) -> Self {
        SessionId(s)
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        SessionId(s.to_owned())
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_lowercase_hyphenated_uuids() {
        let id = SessionId::new_random();
        let s = id.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(s.matches('-').count(), 4);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(uuid::Uuid::parse_str(s).unwrap().get_version_num(), 4);
        assert_ne!(id, SessionId::new_random());
        assert_eq!(SessionId::from(s.to_owned()).to_string(), s);
    }
}
