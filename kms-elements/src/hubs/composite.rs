//! Composite (spec §10.10): every port's video in a grid on one output
//! that every port receives, and N−1 audio.

use std::sync::Arc;

use kms_core::api::core::MediaPipeline;
use kms_core::config::CoreConfig;
use kms_core::hub::{HubCore, HubObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};

use super::HubError;
use super::mix::{Layout, Mix, VideoSettings};
use crate::api::elements::{Composite, CompositeConstructor, CompositeFactory};

/// The kmd's constructor defaults.
const DEFAULT_WIDTH: i32 = 800;
const DEFAULT_HEIGHT: i32 = 600;
const DEFAULT_FRAMERATE: i32 = 15;

/// The hub's [`Mix`] lives in the core's logic: Composite has no method
/// of its own to reach it from.
pub struct CompositeImpl {
    core: HubCore,
}

/// Output settings: a constructor value other than the kmd default wins;
/// otherwise `Composite.conf.ini`'s `width`/`height`/`framerate` (which
/// upstream reads from the wrong keys and so never applies, spec §11.3);
/// otherwise the kmd default. Sizes are rounded down to even (I420).
fn settings(width: i32, height: i32, framerate: i32, cfg: &CoreConfig) -> std::result::Result<VideoSettings, HubError> {
    let pick = |given: i32, default: i32, key: &str| {
        if given != default {
            return given as i64;
        }
        cfg.module_i64("kurento", "Composite", key).unwrap_or(default as i64)
    };
    let check = |name: &str, v: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(v as i32)
        } else {
            Err(HubError::BadValue(format!("'{name}' must be between {lo} and {hi}, got {v}")))
        }
    };
    Ok(VideoSettings {
        width: check("width", pick(width, DEFAULT_WIDTH, "width"), 16, 7680)? & !1,
        height: check("height", pick(height, DEFAULT_HEIGHT, "height"), 16, 4320)? & !1,
        framerate: check("framerate", pick(framerate, DEFAULT_FRAMERATE, "framerate"), 1, 120)?,
    })
}

/// `Composite.conf.ini` `bitrate`: the encoderBitrate (bps) every port of a
/// Composite starts with; unset = the MediaElement default.
fn port_bitrate(cfg: &CoreConfig) -> Option<i32> {
    cfg.module_i64("kurento", "Composite", "bitrate").filter(|b| *b > 0).map(|b| b.min(i32::MAX as i64) as i32)
}

impl RemoteObject for CompositeImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn hub(&self) -> Option<&HubCore> {
        Some(&self.core)
    }

    fn release(&self) {
        self.core.release();
    }
}

impl HubObject for CompositeImpl {
    fn hub_core(&self) -> &HubCore {
        &self.core
    }
}

impl Composite for CompositeImpl {}

impl CompositeFactory for CompositeImpl {
    fn construct(ctx: &Ctx, params: CompositeConstructor) -> Result<Arc<Self>> {
        let video = settings(params.width, params.height, params.framerate, ctx.config())?;
        let bitrate = port_bitrate(ctx.config());
        let pipeline: &Arc<dyn MediaPipeline> = &params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let core = HubCore::build(base, shared, |bin| Ok(Mix::new(bin, video, Layout::Grid, bitrate)?.logic()))?;
        Ok(Arc::new(CompositeImpl { core }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(cfg: serde_json::Value, (w, h, f): (i32, i32, i32)) -> std::result::Result<VideoSettings, HubError> {
        settings(w, h, f, &CoreConfig { modules: cfg, ..CoreConfig::default() })
    }

    #[test]
    fn config_applies_when_the_client_keeps_the_kmd_default() {
        let cfg =
            json!({"kurento": {"Composite": {"width": "1280", "height": 720, "framerate": "25", "bitrate": "900000"}}});
        let s = run(cfg.clone(), (800, 600, 15)).unwrap();
        assert_eq!(s, VideoSettings { width: 1280, height: 720, framerate: 25 });
        let s = run(cfg.clone(), (640, 481, 10)).unwrap();
        assert_eq!(s, VideoSettings { width: 640, height: 480, framerate: 10 });
        let c = CoreConfig { modules: cfg, ..CoreConfig::default() };
        assert_eq!(port_bitrate(&c), Some(900_000));
        assert_eq!(port_bitrate(&CoreConfig::default()), None);
    }

    #[test]
    fn defaults_and_range_checks() {
        let s = run(json!({}), (800, 600, 15)).unwrap();
        assert_eq!(s, VideoSettings { width: 800, height: 600, framerate: 15 });
        let e = run(json!({}), (0, 600, 15)).unwrap_err();
        assert!(e.to_string().contains("'width'"), "{e}");
        let e = run(json!({}), (800, 600, 1000)).unwrap_err();
        assert!(e.to_string().contains("'framerate'"), "{e}");
    }
}
