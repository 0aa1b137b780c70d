//! `kmsagnosticbin`: the output stage of every media element (spec §10.3).
//!
//! One sink pad receives what the element produces; any number of
//! `src_%u` request pads feed consumers. Each branch asks its consumer what
//! it accepts (a caps query on the linked peer, redone on `RECONFIGURE`)
//! and is fed from the cheapest stage that produces it:
//!
//! ```text
//! sink ─ tee_in ─────────────────────────────── same format: pass-through
//!          └ depay ─ tee ─────────────────────── elementary stream
//!                     ├ pay ─ tee ────────────── same codec, re-packetized
//!                     └ queue ─ dec ─ tee ────── raw (decoded once)
//!                                      └ queue ─ enc(X) ─ tee ─┬─ X
//!                                                              └ pay ─ tee ─ X over RTP
//! ```
//!
//! Every stage is shared by all branches that need it and removed when the
//! last one leaves. Video branches start at a keyframe and ask upstream for
//! one when they join. While any encoder exists the bin is *transcoding*.
//! Consumers' bitrate wishes (REMB, as [`BITRATE_EVENT`]) set the encoders'
//! bitrate or, for pass-through branches, travel upstream as one event with
//! the lowest value.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

pub mod codecs;
mod imp;
pub mod keyframe;

pub use codecs::Bitrate;

/// Name of the custom upstream event a consumer sends to say which bitrate
/// (bps, field `bitrate`: u32) it can take.
pub const BITRATE_EVENT: &str = "kms-bitrate";

pub fn bitrate_event(bitrate: u32) -> gst::Event {
    gst::event::CustomUpstream::new(gst::Structure::builder(BITRATE_EVENT).field("bitrate", bitrate).build())
}

/// Where a branch takes its data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The input as is.
    In,
    /// The input depayloaded.
    Es,
    /// The input decoded.
    Raw,
    /// Re-encoded into a codec.
    Enc(codecs::Codec),
    /// A codec packetized into RTP (re-encoded unless it is the input's).
    Pay(codecs::Codec),
}

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

    /// Where each branch is fed from (`None`: waiting for its consumer).
    pub fn branch_sources(&self) -> Vec<Option<Source>> {
        self.imp().branch_sources()
    }

    /// Whether any branch is fed by a re-encoder.
    pub fn is_transcoding(&self) -> bool {
        self.imp().is_transcoding()
    }

    /// Called with the new state whenever transcoding starts or stops.
    pub fn connect_transcoding(&self, f: impl Fn(bool) + Send + Sync + 'static) {
        self.imp().set_transcoding_callback(std::sync::Arc::new(f));
    }

    /// Encoder bitrate settings (spec §10.3).
    pub fn set_bitrate(&self, bitrate: Bitrate) {
        self.imp().set_bitrate(bitrate);
    }

    /// MTU of the payloaders this bin creates.
    pub fn set_mtu(&self, mtu: u32) {
        self.imp().set_mtu(mtu);
    }

    /// Asks the producer feeding this bin for a keyframe.
    pub fn request_keyframe(&self) {
        self.imp().request_keyframe_upstream();
    }
}
