//! GStreamerFilter (spec §10.11): one GStreamer element given in gst-launch
//! syntax, fed raw audio or video through the filter base.
//!
//! * `policy`: which factories and properties a client may use (beyond
//!   KMS; the allowlist is configurable).
//! * `property`: `setElementProperty`'s string → GValue conversion.

pub mod policy;
pub mod property;

use std::sync::Arc;

use gst::prelude::*;
use kms_core::api::core::{Filter, FilterType, MediaType};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};

use crate::api::filters::{GStreamerFilter, GStreamerFilterConstructor, GStreamerFilterFactory};
use crate::base::{FilterCore, Processing};
use policy::Policy;

pub struct GStreamerFilterImpl {
    filter: FilterCore,
    command: String,
    policy: Policy,
}

crate::impl_filter_object!(GStreamerFilterImpl, filter);

impl Filter for GStreamerFilterImpl {}

/// spec §10.11 error texts (all 40001).
fn cannot_create(reason: impl std::fmt::Display) -> Error {
    Error::marshall(format!("GStreamer element cannot be created: {reason}"))
}

/// The media type `element` works on, from its pads' caps (the pad
/// templates, narrowed by properties such as capsfilter's `caps`).
fn media_type_of(element: &gst::Element, wanted: FilterType) -> Result<MediaType> {
    let mismatch = || Error::marshall("Given command is not valid, pad templates don't match");
    let (Some(sink), Some(src)) = (element.static_pad("sink"), element.static_pad("src")) else {
        return Err(mismatch());
    };
    let fits = |raw: &str| {
        let raw = gst::Caps::new_empty_simple(raw);
        sink.query_caps(None).can_intersect(&raw) && src.query_caps(None).can_intersect(&raw)
    };
    let (video, audio) = (fits("video/x-raw"), fits("audio/x-raw"));
    match wanted {
        FilterType::Video if video => Ok(MediaType::Video),
        FilterType::Audio if audio => Ok(MediaType::Audio),
        FilterType::Autodetect if video => Ok(MediaType::Video),
        FilterType::Autodetect if audio => Ok(MediaType::Audio),
        _ => Err(mismatch()),
    }
}

/// Parses `command` and applies `policy`; the element is still in NULL and
/// has no parent, so a refused one never opened anything. A chain (`a ! b`)
/// is refused unless the policy allows chains: then it comes back as a bin
/// with ghost `sink` and `src` pads.
pub fn parse_command(command: &str, policy: &Policy) -> Result<gst::Element> {
    let element = gst::parse::launch_full(command, None, gst::ParseFlags::FATAL_ERRORS).map_err(cannot_create)?;
    // Several elements come back wrapped in a pipeline of the parser's: the
    // policy names the offending element before the count is refused.
    if let Some(wrapper) = element.downcast_ref::<gst::Pipeline>() {
        for child in wrapper.children() {
            policy.check(&child).map_err(cannot_create)?;
        }
        if !policy.allows_chains() {
            return Err(Error::marshall("Given command is not valid, only one element can be created"));
        }
        let bin = gst::parse::bin_from_description_full(command, true, None, gst::ParseFlags::FATAL_ERRORS)
            .map_err(cannot_create)?;
        let children = bin.downcast_ref::<gst::Bin>().map(|b| b.children()).unwrap_or_default();
        for child in children {
            policy.check(&child).map_err(cannot_create)?;
        }
        return Ok(bin);
    }
    policy.check(&element).map_err(cannot_create)?;
    Ok(element)
}

/// The element a `setElementProperty` name addresses: `name.property`
/// picks the element called `name` inside a chain (`videoflip name=f !
/// videobalance` → `f.video-direction`); GObject property names have no
/// dots, so a plain name is the wrapped element's own property.
fn property_target<'a>(element: &gst::Element, name: &'a str) -> Result<(gst::Element, &'a str)> {
    match (name.split_once('.'), element.downcast_ref::<gst::Bin>()) {
        (Some((child, property)), Some(bin)) => {
            let target = bin
                .by_name(child)
                .ok_or_else(|| Error::marshall(format!("No element named '{child}' in object '{}'", element.name())))?;
            Ok((target, property))
        }
        _ => Ok((element.clone(), name)),
    }
}

impl GStreamerFilterFactory for GStreamerFilterImpl {
    fn construct(ctx: &Ctx, params: GStreamerFilterConstructor) -> Result<Arc<Self>> {
        let policy = Policy::from_config(ctx.config());
        let element = parse_command(&params.command, &policy)?;
        let processing = match media_type_of(&element, params.filter_type)? {
            MediaType::Audio => Processing::audio(element),
            _ => Processing::video(element),
        };
        // The stage refuses fixed caps it cannot carry (beyond its size
        // bounds): the command's fault, so 40001 as the other command errors.
        let filter = FilterCore::new(ctx, &params.media_pipeline, processing).map_err(|e| match e {
            Error::NotAvailable(m) => Error::marshall(format!("Given command is not valid: {m}")),
            e => e,
        })?;
        Ok(Arc::new(GStreamerFilterImpl { filter, command: params.command, policy }))
    }
}

impl GStreamerFilter for GStreamerFilterImpl {
    fn get_command(&self, _ctx: &Ctx) -> Result<String> {
        Ok(self.command.clone())
    }

    fn set_element_property(&self, _ctx: &Ctx, property_name: String, property_value: String) -> Result<()> {
        let (element, name) = property_target(self.filter.element(), &property_name)?;
        let value = property::convert(&element, name, &property_value)?;
        if value.type_() == String::static_type() && self.policy.refuses_property(name) {
            let refusal = policy::Refusal::PathProperty { element: element.name().to_string(), property: name.into() };
            return Err(Error::marshall(refusal.to_string()));
        }
        element.set_property_from_value(name, &value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(cmd: &str, wanted: FilterType) -> Result<MediaType> {
        gst::init().unwrap();
        media_type_of(&parse_command(cmd, &Policy::default())?, wanted)
    }

    #[test]
    fn the_media_type_comes_from_the_element_pads() {
        assert_eq!(kind("videoflip", FilterType::Autodetect), Ok(MediaType::Video));
        assert_eq!(kind("volume volume=0", FilterType::Autodetect), Ok(MediaType::Audio));
        assert_eq!(kind("capsfilter caps=audio/x-raw", FilterType::Autodetect), Ok(MediaType::Audio));
        assert_eq!(kind("capsfilter caps=video/x-raw,width=320", FilterType::Autodetect), Ok(MediaType::Video));
        assert_eq!(kind("identity", FilterType::Audio), Ok(MediaType::Audio));
        let mismatch = Err(Error::marshall("Given command is not valid, pad templates don't match"));
        assert_eq!(kind("videoflip", FilterType::Audio), mismatch);
        assert_eq!(kind("volume", FilterType::Video), mismatch);
    }

    #[test]
    fn commands_are_one_allowed_element() {
        gst::init().unwrap();
        let p = Policy::default();
        let err = |cmd: &str| parse_command(cmd, &p).unwrap_err().to_string();
        assert_eq!(err("videoflip ! videobalance"), "Given command is not valid, only one element can be created");
        assert!(err("videoflip ! filesink location=/tmp/kms-never").contains("factory 'filesink'"));
        assert!(err("nosuchelement").starts_with("GStreamer element cannot be created: no element"));
        assert!(err("videoflip video-direction=sideways").starts_with("GStreamer element cannot be created"));
        assert!(!std::path::Path::new("/tmp/kms-never").exists());
    }

    #[test]
    fn chains_are_one_bin_when_the_policy_allows_them() {
        gst::init().unwrap();
        let p = Policy::default().with_chains(true);
        let chain = parse_command("videoflip name=f ! videobalance saturation=0.0", &p).unwrap();
        assert_eq!(media_type_of(&chain, FilterType::Autodetect), Ok(MediaType::Video));
        let (target, name) = property_target(&chain, "f.video-direction").unwrap();
        assert_eq!((target.name().as_str(), name), ("f", "video-direction"));
        assert!(property_target(&chain, "g.video-direction").is_err());
        let err = parse_command("videoflip ! filesink location=/tmp/kms-never", &p).unwrap_err().to_string();
        assert!(err.contains("factory 'filesink'"), "{err}");
    }
}
