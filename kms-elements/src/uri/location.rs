//! The `uri` of a UriEndpoint as KMS interprets it (spec §10.9, §11.3).

use super::UriError;

/// `UriEndpoint` `defaultPath` when the module config has none.
pub const DEFAULT_PATH: &str = "file:///var/lib/kurento/";

/// `modules.kurento.UriEndpoint.defaultPath`, or [`DEFAULT_PATH`].
pub fn default_path(config: &kms_core::CoreConfig) -> String {
    config
        .module_str("kurento", "UriEndpoint", "defaultPath")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_string())
}

/// The scheme of a resolved URI, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    File,
    Http,
    Https,
    /// `rtsp`, `rtspu`, `rtspt`, `rtsph`, `rtsps`, ...
    Rtsp,
    /// Any other scheme (GStreamer may or may not have a handler).
    Other(String),
}

impl Scheme {
    fn parse(s: &str) -> Scheme {
        match s {
            "file" => Scheme::File,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            s if s.starts_with("rtsp") => Scheme::Rtsp,
            s => Scheme::Other(s.to_string()),
        }
    }

    /// Whether the URI names a host on the network (the `allowedHosts` check).
    pub fn is_network(&self) -> bool {
        !matches!(self, Scheme::File)
    }
}

/// A parsed `uri` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// As the client gave it, after `%2F` → `/` (what `getUri` returns).
    pub given: String,
    /// Absolute URI handed to GStreamer (relative paths resolved).
    pub resolved: String,
    pub scheme: Scheme,
    /// Host of a network URI (no user info, no port), lower-cased.
    pub host: Option<String>,
}

impl Location {
    /// Parses `uri`; relative paths are prefixed with `default_path` + `/`
    /// as KMS does.
    pub fn parse(uri: &str, default_path: &str) -> Result<Location, UriError> {
        let given = replace_encoded_slash(uri.trim());
        if given.is_empty() {
            return Err(UriError::Invalid(uri.to_string()));
        }
        let resolved = if scheme_of(&given).is_some() {
            given.clone()
        } else {
            format!("{}/{}", default_path.trim_end_matches('/'), given.trim_start_matches('/'))
        };
        let Some(scheme) = scheme_of(&resolved) else {
            return Err(UriError::Invalid(uri.to_string()));
        };
        let scheme = Scheme::parse(&scheme.to_ascii_lowercase());
        let rest = &resolved[resolved.find(':').map(|i| i + 1).unwrap_or(0)..];
        let host = match &scheme {
            Scheme::File => None,
            Scheme::Http | Scheme::Https | Scheme::Rtsp => {
                Some(host_of(rest).ok_or_else(|| UriError::Invalid(uri.to_string()))?)
            }
            Scheme::Other(_) => host_of(rest),
        };
        Ok(Location { given, resolved, scheme, host })
    }

    /// The percent-decoded path of a `file://` URI (`file:///a/b`,
    /// `file://localhost/a/b`); `None` for other schemes or other hosts.
    pub fn file_path(&self) -> Option<Vec<u8>> {
        if self.scheme != Scheme::File {
            return None;
        }
        let rest = &self.resolved[self.resolved.find(':')? + 1..];
        let path = match rest.strip_prefix("//") {
            Some(after) => {
                let slash = after.find('/')?;
                let host = &after[..slash];
                if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                    return None;
                }
                &after[slash..]
            }
            None if rest.starts_with('/') => rest,
            None => return None,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        Some(percent_encoding::percent_decode_str(path).collect())
    }
}

/// Spec §10.9: `%2F` sequences in `uri` become `/`.
fn replace_encoded_slash(s: &str) -> String {
    s.replace("%2F", "/").replace("%2f", "/")
}

/// RFC 3986 scheme followed by `:`, if `s` starts with one. A Windows-like
/// `C:` or a bare word is not taken for a scheme unless followed by `//`
/// or being one letter long (it is a relative path then).
fn scheme_of(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        || scheme.len() < 2
    {
        return None;
    }
    Some(scheme)
}

/// Host of `//[user@]host[:port]/...`, lower-cased, brackets of IPv6
/// literals removed.
fn host_of(rest: &str) -> Option<String> {
    let auth = rest.strip_prefix("//")?;
    let auth = auth.split(['/', '?', '#']).next()?;
    let hostport = auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth);
    let host =
        if let Some(v6) = hostport.strip_prefix('[') { v6.split(']').next()? } else { hostport.split(':').next()? };
    let host = percent_encoding::percent_decode_str(host).decode_utf8().ok()?.to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_default_path() {
        let l = Location::parse("clips/a.webm", "file:///var/lib/kurento/").unwrap();
        assert_eq!(l.resolved, "file:///var/lib/kurento/clips/a.webm");
        assert_eq!(l.given, "clips/a.webm");
        assert_eq!(l.file_path().unwrap(), b"/var/lib/kurento/clips/a.webm");
        let l = Location::parse("/abs.webm", "file:///data").unwrap();
        assert_eq!(l.resolved, "file:///data/abs.webm");
    }

    #[test]
    fn encoded_slashes_are_replaced_before_anything_else() {
        let l = Location::parse("file:%2F%2F%2Ftmp%2Fa.webm", DEFAULT_PATH).unwrap();
        assert_eq!(l.given, "file:///tmp/a.webm");
        assert_eq!(l.file_path().unwrap(), b"/tmp/a.webm");
    }

    #[test]
    fn file_paths_are_percent_decoded() {
        let l = Location::parse("file:///var/lib/kurento/%2e%2e/x%20y", DEFAULT_PATH).unwrap();
        assert_eq!(l.file_path().unwrap(), b"/var/lib/kurento/../x y");
        let l = Location::parse("file://localhost/a", DEFAULT_PATH).unwrap();
        assert_eq!(l.file_path().unwrap(), b"/a");
        let l = Location::parse("file://otherhost/a", DEFAULT_PATH).unwrap();
        assert_eq!(l.file_path(), None);
    }

    #[test]
    fn network_uris_have_a_host() {
        let l = Location::parse("http://user:pw@Example.COM:8080/a.mp4", DEFAULT_PATH).unwrap();
        assert_eq!(l.scheme, Scheme::Http);
        assert_eq!(l.host.as_deref(), Some("example.com"));
        let l = Location::parse("rtsp://[::1]:8554/test", DEFAULT_PATH).unwrap();
        assert_eq!(l.scheme, Scheme::Rtsp);
        assert_eq!(l.host.as_deref(), Some("::1"));
        assert!(Location::parse("http:/nohost", DEFAULT_PATH).is_err());
        assert!(Location::parse("", DEFAULT_PATH).is_err());
    }

    #[test]
    fn other_schemes_are_kept() {
        let l = Location::parse("foo://bar/baz", DEFAULT_PATH).unwrap();
        assert_eq!(l.scheme, Scheme::Other("foo".into()));
    }
}
