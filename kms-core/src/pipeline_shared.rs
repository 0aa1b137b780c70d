//! What every element of one pipeline shares: the GStreamer pipeline and the
//! connection table (spec §10.3). Keeping all links of a pipeline in one
//! table under one lock makes loopback (`connect(self)`) and "a new source
//! replaces the old one" race-free.

use std::collections::HashMap;

use gst::prelude::*;
use parking_lot::Mutex;
use std::sync::Arc;

use crate::agnosticbin::AgnosticBin;
use crate::api::core::MediaType;
use crate::element::LatencySwitch;
use crate::object::{ObjectBase, ObjectId};

/// One logical connection of one media type.
pub struct Link {
    pub source: ObjectId,
    pub sink: ObjectId,
    pub media_type: MediaType,
    pub source_description: String,
    pub sink_description: String,
    /// Raises `ElementDisconnected` on the source when the link goes away.
    pub source_base: ObjectBase,
    pub(crate) source_bin: gst::Bin,
    pub(crate) agnostic: AgnosticBin,
    /// The agnosticbin request pad of this link.
    pub(crate) branch_pad: gst::Pad,
    /// Ghost of `branch_pad` on the source element's bin.
    pub(crate) src_ghost: gst::Pad,
}

pub struct PipelineShared {
    pub id: ObjectId,
    pub pipeline: gst::Pipeline,
    pub links: Mutex<Vec<Link>>,
    /// `MediaPipeline.latencyStats`: read by every element's latency probes.
    pub latency: Arc<LatencySwitch>,
    /// The object owning each top-level bin of the pipeline (elements and
    /// hubs), by bin name: bus messages are reported on the object whose
    /// bin contains the GStreamer element that posted them. Taken briefly
    /// on streaming threads; never held while calling out.
    members: Mutex<HashMap<String, ObjectBase>>,
}

impl PipelineShared {
    pub fn new(id: ObjectId, pipeline: gst::Pipeline) -> Self {
        PipelineShared {
            id,
            pipeline,
            links: Mutex::new(vec![]),
            members: Mutex::new(HashMap::new()),
            latency: Arc::default(),
        }
    }

    /// `bin` (a direct child of the pipeline) belongs to the object `base`.
    pub fn add_member(&self, bin: &gst::Bin, base: ObjectBase) {
        self.members.lock().insert(bin.name().to_string(), base);
    }

    pub fn remove_member(&self, bin: &gst::Bin) {
        self.members.lock().remove(bin.name().as_str());
    }

    /// The object whose bin contains `obj` (walking up the parent chain to
    /// the pipeline's direct child), if any.
    pub fn owner_of(&self, obj: &gst::Object) -> Option<ObjectBase> {
        let pipeline: &gst::Object = self.pipeline.upcast_ref();
        let mut cur = obj.clone();
        loop {
            let parent = cur.parent()?;
            if &parent == pipeline {
                return self.members.lock().get(cur.name().as_str()).cloned();
            }
            cur = parent;
        }
    }
}
