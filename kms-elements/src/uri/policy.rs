//! The file access policy (beyond KMS): `file://` URIs of players and
//! recorders must resolve inside `mediaServer.resources.mediaRoots`, and
//! network URIs may be limited to `allowedHosts`.
//!
//! A path is resolved the way the kernel will open it: percent-decoded,
//! then walked component by component from `/`, each existing prefix
//! canonicalized (symlinks followed, so `..` after a symlink goes where the
//! kernel goes), the part that does not exist yet (a recording) normalized
//! lexically. Every refusal is the same [`UriError::OutsideRoots`], so the
//! answer says nothing about what exists outside the roots.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use kms_core::config::MediaAccess;

use super::UriError;
use super::location::{Location, Scheme};

/// Network schemes besides http(s) and rtsp that GStreamer may handle.
/// Anything else is refused: GStreamer's other URI handlers reach local
/// resources around the file policy (`fd://` reads the server's open
/// descriptors; `v4l2://`, `dvb://`, gio's `archive://` ...).
const NETWORK_SCHEMES: &[&str] = &["rtmp", "rtmps", "rtmpt", "srt", "udp", "ftp", "sftp"];

/// The configured policy, roots canonicalized once.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    roots: Vec<PathBuf>,
    allowed_hosts: Option<Vec<String>>,
}

impl AccessPolicy {
    /// Roots that do not exist are kept as written (normalized): nothing can
    /// be read there, and a recorder may create them.
    pub fn new(config: &MediaAccess) -> AccessPolicy {
        let roots = config.media_roots.iter().filter(|r| r.is_absolute()).map(|r| resolve(r)).collect();
        let allowed_hosts = config
            .allowed_hosts
            .as_ref()
            .map(|v| v.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect());
        AccessPolicy { roots, allowed_hosts }
    }

    /// The roots as resolved (for logs and docs).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Checks `loc`; for a `file://` URI returns the resolved path the
    /// endpoint must open (not the one given: a symlink swapped in later
    /// cannot redirect it outside the roots).
    pub fn check(&self, loc: &Location) -> Result<Option<PathBuf>, UriError> {
        match &loc.scheme {
            Scheme::File => {
                let raw = loc.file_path().ok_or_else(|| UriError::OutsideRoots(loc.given.clone()))?;
                let path = Path::new(OsStr::from_bytes(&raw));
                if !path.is_absolute() || raw.contains(&0) {
                    return Err(UriError::OutsideRoots(loc.given.clone()));
                }
                let real = resolve(path);
                if self.roots.iter().any(|r| real.starts_with(r) && real != *r) {
                    Ok(Some(real))
                } else {
                    Err(UriError::OutsideRoots(loc.given.clone()))
                }
            }
            Scheme::Other(s) if !NETWORK_SCHEMES.contains(&s.as_str()) => {
                Err(UriError::UnsupportedScheme { scheme: s.clone(), uri: loc.given.clone() })
            }
            _ => {
                let host = loc.host.as_deref().unwrap_or("");
                match &self.allowed_hosts {
                    Some(list) if !list.iter().any(|a| host_matches(a, host)) => {
                        Err(UriError::HostNotAllowed(loc.given.clone()))
                    }
                    _ => Ok(None),
                }
            }
        }
    }
}

/// `example.com` matches itself; `*.example.com` matches its subdomains.
fn host_matches(allowed: &str, host: &str) -> bool {
    match allowed.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1 && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.')
        }
        None => allowed == host,
    }
}

/// Where `path` (absolute) leads: symlinks of the existing prefix followed,
/// the rest normalized lexically.
fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let mut exists = true;
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                out.push(n);
                if exists {
                    match std::fs::canonicalize(&out) {
                        Ok(real) => out = real,
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(roots: &[&Path], hosts: Option<&[&str]>) -> AccessPolicy {
        AccessPolicy::new(&MediaAccess {
            media_roots: roots.iter().map(|p| p.to_path_buf()).collect(),
            allowed_hosts: hosts.map(|h| h.iter().map(|s| s.to_string()).collect()),
        })
    }

    fn check(p: &AccessPolicy, uri: &str) -> Result<Option<PathBuf>, UriError> {
        p.check(&Location::parse(uri, "file:///nonexistent-default/")?)
    }

    fn temp_root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kms-uri-policy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("root/sub")).unwrap();
        std::fs::write(d.join("root/sub/in.webm"), b"x").unwrap();
        std::fs::write(d.join("secret"), b"x").unwrap();
        d
    }

    #[test]
    fn files_inside_a_root_are_allowed_and_resolved() {
        let d = temp_root("inside");
        let p = policy(&[&d.join("root")], None);
        let uri = format!("file://{}/root/sub/in.webm", d.display());
        assert_eq!(check(&p, &uri).unwrap(), Some(std::fs::canonicalize(d.join("root/sub/in.webm")).unwrap()));
        // Not existing yet (a recording) is fine too.
        let uri = format!("file://{}/root/new/rec.webm", d.display());
        assert!(check(&p, &uri).is_ok());
    }

    #[test]
    fn escapes_get_one_answer_whether_the_file_exists_or_not() {
        let d = temp_root("escape");
        let root = d.join("root");
        std::os::unix::fs::symlink(d.join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(&d, root.join("dirlink")).unwrap();
        let p = policy(&[&root], None);
        let r = root.display();
        for uri in [
            "file:///etc/passwd".to_string(),
            "file:///etc/does-not-exist".to_string(),
            format!("file://{r}/../secret"),
            format!("file://{r}/../no-such-file"),
            format!("file://{r}/%2e%2e/secret"),
            format!("file://{r}/%2E%2E/no-such-file"),
            format!("file://{r}/sub/../../secret"),
            format!("file://{r}/link"),
            format!("file://{r}/dirlink/secret"),
            format!("file://{r}/dirlink/no-such-file"),
            format!("file://{r}/sub/x/../../../secret"),
            format!("file://{r}"),
            "file://otherhost/etc/passwd".to_string(),
        ] {
            let e = check(&p, &uri).unwrap_err();
            assert_eq!(e, UriError::OutsideRoots(uri.clone()), "{uri}");
        }
        // A relative path climbing out of defaultPath is refused the same way.
        let e = p.check(&Location::parse("../../etc/passwd", &format!("file://{r}/")).unwrap()).unwrap_err();
        assert!(matches!(e, UriError::OutsideRoots(_)));
    }

    #[test]
    fn a_symlink_inside_pointing_inside_is_fine() {
        let d = temp_root("symin");
        let root = d.join("root");
        std::os::unix::fs::symlink(root.join("sub/in.webm"), root.join("alias.webm")).unwrap();
        let p = policy(&[&root], None);
        assert!(check(&p, &format!("file://{}/alias.webm", root.display())).is_ok());
    }

    #[test]
    fn default_root_is_the_kurento_data_directory() {
        let p = AccessPolicy::new(&MediaAccess::default());
        assert!(check(&p, "file:///var/lib/kurento/a.webm").is_ok());
        assert!(check(&p, "file:///etc/shadow").is_err());
        assert!(check(&p, "file:///var/lib/kurento2/a.webm").is_err());
    }

    #[test]
    fn hosts_are_checked_only_when_a_list_is_configured() {
        let p = policy(&[], None);
        assert!(check(&p, "http://anything.example/a.mp4").is_ok());
        let p = policy(&[], Some(&["127.0.0.1", "*.example.com"]));
        assert!(check(&p, "http://127.0.0.1:8080/a.mp4").is_ok());
        assert!(check(&p, "rtsp://cam.example.com/live").is_ok());
        assert!(check(&p, "https://example.com.evil.net/a").is_err());
        assert!(check(&p, "https://evilexample.com/a").is_err());
        assert!(matches!(check(&p, "http://10.0.0.1/a"), Err(UriError::HostNotAllowed(_))));
    }

    #[test]
    fn checked_uris_hand_the_resolved_path_to_gstreamer() {
        let d = temp_root("gsturi");
        let root = d.join("root");
        std::os::unix::fs::symlink(root.join("sub"), root.join("a b")).unwrap();
        let mut config = kms_core::CoreConfig::default();
        config.media_access.media_roots = vec![root.clone()];
        let given = format!("file://{}/a%20b/in.webm", root.display());
        let c = crate::uri::CheckedUri::new(&config, &given).unwrap();
        assert_eq!(c.given(), given);
        let real = std::fs::canonicalize(root.join("sub/in.webm")).unwrap();
        assert_eq!(c.gst_uri(), crate::uri::file_uri(&real));
        assert!(crate::uri::file_uri(Path::new("/x y/%.webm")).ends_with("/x%20y/%25.webm"));
    }

    #[test]
    fn local_resource_schemes_are_refused() {
        let p = policy(&[], None);
        assert!(matches!(check(&p, "fd://0"), Err(UriError::UnsupportedScheme { .. })));
        assert!(matches!(check(&p, "v4l2:///dev/video0"), Err(UriError::UnsupportedScheme { .. })));
        assert!(matches!(check(&p, "foo://host/x"), Err(UriError::UnsupportedScheme { .. })));
        assert!(check(&p, "rtmp://host/live").is_ok());
    }
}
