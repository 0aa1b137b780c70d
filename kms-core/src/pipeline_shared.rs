//! What every element of one pipeline shares: the GStreamer pipeline and the
//! connection table (spec §10.3). Keeping all links of a pipeline in one
//! table under one lock makes loopback (`connect(self)`) and "a new source
//! replaces the old one" race-free.

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
}

impl PipelineShared {
    pub fn new(id: ObjectId, pipeline: gst::Pipeline) -> Self {
        PipelineShared { id, pipeline, links: Mutex::new(vec![]), latency: Arc::default() }
    }
}
