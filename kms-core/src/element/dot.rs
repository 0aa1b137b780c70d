//! GStreamer graph dumps of elements, hubs and pipelines (spec §10.2).

use gst::prelude::*;

use crate::api::core::GstreamerDotDetails;
use crate::object::ObjectId;

pub fn dot_details(d: Option<GstreamerDotDetails>) -> gst::DebugGraphDetails {
    use gst::DebugGraphDetails as D;
    match d.unwrap_or(GstreamerDotDetails::ShowVerbose) {
        GstreamerDotDetails::ShowMediaType => D::MEDIA_TYPE,
        GstreamerDotDetails::ShowCapsDetails => D::CAPS_DETAILS,
        GstreamerDotDetails::ShowNonDefaultParams => D::NON_DEFAULT_PARAMS,
        GstreamerDotDetails::ShowStates => D::STATES,
        GstreamerDotDetails::ShowFullParams => D::FULL_PARAMS,
        GstreamerDotDetails::ShowAll => D::ALL,
        GstreamerDotDetails::ShowVerbose => D::VERBOSE,
    }
}

/// Writes a DOT graph into `$GST_DEBUG_DUMP_DOT_DIR` (spec §10.2).
pub fn dump_dot(bin: &gst::Bin, id: &ObjectId, details: Option<GstreamerDotDetails>) {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let name = format!("{ts}-{}", id.as_str().replace(['/', '.'], "_"));
    bin.debug_to_dot_file(dot_details(details), name);
}
