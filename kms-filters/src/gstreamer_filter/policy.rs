//! Which GStreamer elements a client's `command` may create (beyond KMS,
//! which runs any element: `filesink location=/etc/...` writes wherever the
//! server may write).
//!
//! Two rules, both checked on the parsed elements (walking into bins), not
//! on the command string:
//!
//! * the element's factory must match the allowlist
//!   (`GStreamerFilter.allowedElements`, glob patterns; the default is
//!   [`DEFAULT_ALLOWED`]: converters and effects that neither touch files,
//!   sockets nor processes);
//! * no string property naming a path or an address (see [`is_path_property`])
//!   may be set, unless `GStreamerFilter.allowPathProperties` is true: an
//!   allowed `queue2` with `temp-template=/tmp/x` would write there.

use gst::prelude::*;

/// The default allowlist: effects, converters and analysers that only
/// transform the buffers they get.
pub const DEFAULT_ALLOWED: &[&str] = &[
    // generic
    "capsfilter",
    "identity",
    "queue",
    "queue2",
    "valve",
    // video: conversion and geometry
    "videoconvert",
    "videoscale",
    "videorate",
    "videocrop",
    "videobox",
    "videoflip",
    "rotate",
    "deinterlace",
    "aspectratiocrop",
    "alpha",
    "alphacolor",
    // video: effects
    "videobalance",
    "gamma",
    "coloreffects",
    "videomedian",
    "gaussianblur",
    "chromahold",
    "smooth",
    "timeoverlay",
    "clockoverlay",
    "textoverlay",
    "agingtv",
    "dicetv",
    "edgetv",
    "optv",
    "quarktv",
    "radioactv",
    "revtv",
    "rippletv",
    "shagadelictv",
    "streaktv",
    "vertigotv",
    "warptv",
    "bulge",
    "circle",
    "diffuse",
    "fisheye",
    "kaleidoscope",
    "marble",
    "mirror",
    "pinch",
    "sphere",
    "square",
    "stretch",
    "tunnel",
    "twirl",
    "waterripple",
    "perspective",
    "burn",
    "chromium",
    "dilate",
    "dodge",
    "exclusion",
    "solarize",
    // video: analysis
    "zbar",
    "facedetect",
    // audio
    "audioconvert",
    "audioresample",
    "audiorate",
    "volume",
    "level",
    "spectrum",
    "audioamplify",
    "audiodynamic",
    "audiopanorama",
    "audioinvert",
    "audiokaraoke",
    "audioecho",
    "audiochebband",
    "audiocheblimit",
    "audiowsincband",
    "audiowsinclimit",
    "equalizer-3bands",
    "equalizer-10bands",
    "equalizer-nbands",
    "scaletempo",
    "pitch",
];

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "element '{element}' (factory '{factory}') is not allowed in a GStreamerFilter; \
         the server's GStreamerFilter.allowedElements setting lists the allowed factories"
    )]
    Factory { element: String, factory: String },
    #[error(
        "property '{property}' of element '{element}' names a file or address, which a GStreamerFilter \
         may not set (GStreamerFilter.allowPathProperties)"
    )]
    PathProperty { element: String, property: String },
}

/// The allowlist and the path-property rule, from the module config.
#[derive(Debug, Clone)]
pub struct Policy {
    allowed: Vec<String>,
    allow_path_properties: bool,
    allow_chains: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed: DEFAULT_ALLOWED.iter().map(|s| s.to_string()).collect(),
            allow_path_properties: false,
            allow_chains: false,
        }
    }
}

impl Policy {
    /// `allowed`: glob patterns (`*` any run of characters); `["*"]` lets
    /// every factory through, as KMS does.
    pub fn new(allowed: Vec<String>, allow_path_properties: bool) -> Policy {
        Policy { allowed, allow_path_properties, allow_chains: false }
    }

    /// Whether a command may be a chain (`a ! b`) instead of one element
    /// (spec §10.11 refuses chains; `GStreamerFilter.allowChains`).
    pub fn with_chains(mut self, allow: bool) -> Policy {
        self.allow_chains = allow;
        self
    }

    pub fn allows_chains(&self) -> bool {
        self.allow_chains
    }

    /// Reads `modules.kurento.GStreamerFilter.{allowedElements,
    /// allowPathProperties}`: the list is a JSON array or a comma/space
    /// separated string (INI files).
    pub fn from_config(cfg: &kms_core::CoreConfig) -> Policy {
        let allowed = match cfg.module_value("kurento", "GStreamerFilter", "allowedElements") {
            Some(serde_json::Value::Array(a)) => {
                Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
            }
            Some(serde_json::Value::String(s)) => Some(
                s.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            _ => None,
        };
        let path = cfg.module_bool("kurento", "GStreamerFilter", "allowPathProperties").unwrap_or(false);
        let chains = cfg.module_bool("kurento", "GStreamerFilter", "allowChains").unwrap_or(false);
        match allowed {
            Some(a) => Policy::new(a, path),
            None => Policy { allow_path_properties: path, ..Policy::default() },
        }
        .with_chains(chains)
    }

    pub fn allows_factory(&self, factory: &str) -> bool {
        self.allowed.iter().any(|p| glob(p, factory))
    }

    /// Whether setting `property` (a string property) is refused.
    pub fn refuses_property(&self, property: &str) -> bool {
        !self.allow_path_properties && is_path_property(property)
    }

    /// Checks `element` and, for bins, everything inside it.
    pub fn check(&self, element: &gst::Element) -> Result<(), Refusal> {
        let factory = element.factory().map(|f| f.name().to_string()).unwrap_or_default();
        if !self.allows_factory(&factory) {
            return Err(Refusal::Factory { element: element.name().to_string(), factory });
        }
        for pspec in element.list_properties() {
            if pspec.value_type() != String::static_type()
                || !pspec.flags().contains(gst::glib::ParamFlags::READABLE)
                || !self.refuses_property(pspec.name())
            {
                continue;
            }
            let value = element.property_value(pspec.name());
            let set = value.get::<Option<String>>().ok().flatten();
            let default = pspec.default_value().get::<Option<String>>().ok().flatten();
            if set.is_some() && set != default {
                return Err(Refusal::PathProperty {
                    element: element.name().to_string(),
                    property: pspec.name().to_string(),
                });
            }
        }
        if let Some(bin) = element.downcast_ref::<gst::Bin>() {
            for child in bin.children() {
                self.check(&child)?;
            }
        }
        Ok(())
    }
}

/// String properties that name something outside the buffers: files,
/// directories, URIs, devices, hosts. (`queue2 temp-template`, `filesink
/// location`, `x264enc stats-file`, `facedetect profile`, ...)
pub fn is_path_property(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "location",
        "file",
        "filename",
        "path",
        "dir",
        "directory",
        "folder",
        "template",
        "uri",
        "url",
        "device",
        "socket",
        "host",
        "profile",
    ];
    name.to_ascii_lowercase().split(['-', '_']).any(|w| WORDS.contains(&w))
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_literals_and_stars() {
        assert!(glob("videoflip", "videoflip"));
        assert!(!glob("videoflip", "videoflipx"));
        assert!(glob("*", "filesink"));
        assert!(glob("video*", "videobalance"));
        assert!(!glob("video*", "audioconvert"));
        assert!(glob("*tv", "edgetv"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxcyyb"));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn path_like_properties_are_recognised() {
        for p in ["location", "temp-template", "temp-location", "stats-file", "multipass-cache-file", "uri", "device"] {
            assert!(is_path_property(p), "{p}");
        }
        for p in ["method", "video-direction", "volume", "text", "caps", "saturation"] {
            assert!(!is_path_property(p), "{p}");
        }
    }

    fn parse(cmd: &str) -> gst::Element {
        gst::init().unwrap();
        gst::parse::launch(cmd).unwrap()
    }

    #[test]
    fn default_policy_refuses_file_and_network_elements_by_factory() {
        let p = Policy::default();
        for (cmd, factory) in [
            ("filesink location=/tmp/kms-policy-x", "filesink"),
            ("filesrc location=/etc/passwd", "filesrc"),
            ("multifilesink", "multifilesink"),
            ("udpsink host=1.2.3.4", "udpsink"),
            ("tcpclientsrc", "tcpclientsrc"),
            ("appsink", "appsink"),
        ] {
            let e = parse(cmd);
            assert!(matches!(p.check(&e), Err(Refusal::Factory { factory: f, .. }) if f == factory), "{cmd}");
        }
        assert!(!std::path::Path::new("/tmp/kms-policy-x").exists());
    }

    #[test]
    fn default_policy_refuses_an_allowed_element_with_a_path_property_set() {
        let p = Policy::default();
        let e = parse("queue2 temp-template=/tmp/kms-policy-y-XXXXXX");
        assert_eq!(
            p.check(&e),
            Err(Refusal::PathProperty { element: e.name().to_string(), property: "temp-template".into() })
        );
        assert!(p.check(&parse("queue2 max-size-buffers=10")).is_ok());
        assert!(p.check(&parse("videoflip video-direction=horiz")).is_ok());
        assert!(Policy::new(vec!["queue2".into()], true).check(&e).is_ok());
    }

    #[test]
    fn bins_are_checked_inside() {
        let p = Policy::new(vec!["bin".into(), "videoflip".into()], false);
        let ok = parse("bin. ( videoflip )");
        assert!(p.check(&ok).is_ok(), "{:?}", p.check(&ok));
        let bad = parse("bin. ( videoflip ! fakesink )");
        assert!(matches!(p.check(&bad), Err(Refusal::Factory { factory, .. }) if factory == "fakesink"));
    }

    #[test]
    fn config_replaces_the_allowlist_and_may_allow_path_properties() {
        let cfg = |v: serde_json::Value| kms_core::CoreConfig {
            modules: serde_json::json!({"kurento": {"GStreamerFilter": v}}),
            ..Default::default()
        };
        // INI: one comma/space separated string.
        let p = Policy::from_config(&cfg(serde_json::json!({"allowedElements": "videoflip, *tv"})));
        assert!(p.allows_factory("videoflip") && p.allows_factory("edgetv") && !p.allows_factory("volume"));
        assert!(p.refuses_property("location"));
        // JSON: an array; "*" is KMS's behaviour.
        let p = Policy::from_config(&cfg(
            serde_json::json!({"allowedElements": ["*"], "allowPathProperties": "true", "allowChains": true}),
        ));
        assert!(p.allows_factory("filesink") && !p.refuses_property("location") && p.allows_chains());
        // Unset: the default list.
        let p = Policy::from_config(&kms_core::CoreConfig::default());
        assert!(p.allows_factory("volume") && !p.allows_factory("filesink") && !p.allows_chains());
    }
}
