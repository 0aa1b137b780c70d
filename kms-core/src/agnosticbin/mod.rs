//! `kmsagnosticbin`: the output stage of every media element (spec §10.3).
//!
//! One sink pad receives what the element produces; any number of
//! `src_%u` request pads feed consumers. Each branch has its own queue, so a
//! slow consumer never stalls the others. This round implements pass-through
//! fan-out of real buffers; per-branch decode/encode when a consumer needs a
//! different format hooks in at branch creation (the WebRTC issue).

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct AgnosticBin(ObjectSubclass<imp::AgnosticBin>) @extends gst::Bin, gst::Element, gst::Object;
}

/// Registers the element in-process (no plugin `.so` to install).
pub fn register() -> Result<(), glib::BoolError> {
    gst::Element::register(None, "kmsagnosticbin", gst::Rank::NONE, AgnosticBin::static_type())
}

impl AgnosticBin {
    pub fn new(name: &str) -> AgnosticBin {
        glib::Object::builder().property("name", name).build()
    }

    /// Number of consumer branches currently attached.
    pub fn branch_count(&self) -> usize {
        self.src_pads().len()
    }
}
