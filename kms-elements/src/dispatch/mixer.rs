//! Mixer: video routed per sink like the Dispatcher, audio mixed per sink
//! from the sources connected to it (spec §10.10, semantics in `mod.rs`).

use std::sync::Arc;

use kms_core::api::core::{HubPort, MediaType};
use kms_core::error::{Error, Result};
use kms_core::hub::{HubCore, HubObject};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;

use super::router::Router;
use super::select::Selection;
use crate::api::elements::{Mixer, MixerConstructor, MixerFactory};

pub struct MixerImpl {
    core: HubCore,
    router: Arc<Router>,
}

impl RemoteObject for MixerImpl {
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

impl HubObject for MixerImpl {
    fn hub_core(&self) -> &HubCore {
        &self.core
    }
}

fn no_data(op: &str) -> Error {
    Error::UnsupportedMediaType(format!("Mixer can only {op} AUDIO and VIDEO, not DATA"))
}

impl Mixer for MixerImpl {
    fn connect(&self, _ctx: &Ctx, media: MediaType, source: Arc<dyn HubPort>, sink: Arc<dyn HubPort>) -> Result<()> {
        if media == MediaType::Data {
            return Err(no_data("connect"));
        }
        let source = super::own_port(&self.core, &source, "source")?;
        let sink = super::own_port(&self.core, &sink, "sink")?;
        self.router.update(self.core.bin(), |sel| {
            if let Selection::Mixer { video, audio } = sel {
                match media {
                    MediaType::Video => {
                        video.insert(sink, source);
                    }
                    _ => {
                        audio.entry(sink).or_default().insert(source);
                    }
                }
            }
        });
        Ok(())
    }

    fn disconnect(&self, _ctx: &Ctx, media: MediaType, source: Arc<dyn HubPort>, sink: Arc<dyn HubPort>) -> Result<()> {
        if media == MediaType::Data {
            return Err(no_data("disconnect"));
        }
        let source = super::own_port(&self.core, &source, "source")?;
        let sink = super::own_port(&self.core, &sink, "sink")?;
        self.router.update(self.core.bin(), |sel| {
            if let Selection::Mixer { video, audio } = sel {
                match media {
                    MediaType::Video => {
                        if video.get(&sink) == Some(&source) {
                            video.remove(&sink);
                        }
                    }
                    _ => {
                        if let Some(set) = audio.get_mut(&sink) {
                            set.remove(&source);
                            if set.is_empty() {
                                audio.remove(&sink);
                            }
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

impl MixerFactory for MixerImpl {
    fn construct(ctx: &Ctx, params: MixerConstructor) -> Result<Arc<Self>> {
        let (core, router) = super::new_hub(ctx, &params.media_pipeline, Selection::mixer())?;
        Ok(Arc::new(MixerImpl { core, router }))
    }
}
