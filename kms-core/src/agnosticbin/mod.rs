//! `kmsagnosticbin`: the output stage of every media element (spec §10.3).
//!
//! One sink pad receives what the element produces; any number of
//! `src_%u` request pads feed consumers. Each branch asks its consumer what
//! it accepts (a caps query on the linked peer, redone on `RECONFIGURE`)
//! and is fed from the cheapest stage that produces it:
//!
//! ```text
//! sink ─ tee_in ─────────────────────────────────────── same format: pass-through
//!          └ jitterbuffer ─ depay ─ tee ─────────────── elementary stream
//!                              ├ pay ─ tee ──────────── same codec, re-packetized
//!                              └ queue ─ dec ─ tee ──── raw (decoded once)
//!                                           └ queue ─ [rate] ─ enc(X) ─ tee ─┬─ X
//!                                                                            └ pay ─ tee ─ X over RTP
//! ```
//!
//! Every stage is shared by all branches that need it and removed when the
//! last one leaves. RTP that gets depayloaded goes through an
//! `rtpjitterbuffer` (reordering, retransmission requests upstream);
//! pass-through branches never do. Video branches start at a keyframe and
//! ask upstream for one when they join. While any encoder exists the bin
//! is *transcoding*. A forced output format (`setVideoFormat`,
//! `setAudioFormat`) restricts what every branch may get ([`plan`]).
//! Consumers' bitrate wishes (REMB, as [`BITRATE_EVENT`]) set the encoders'
//! bitrate or, for pass-through branches, travel upstream as one event with
//! the lowest value; their `kms-mtu` answers ([`MTU_QUERY`]) set the
//! payloaders' MTU.
//!
//! The work is split by job: [`plan`] decides (pure, unit-tested),
//! `graph` builds and removes stages and links, `bitrate` applies
//! consumers' wishes, [`keyframe`] gates new branches, `imp` is the element
//! (pads, probes, bookkeeping).
//!
//! # Threading rule
//!
//! Rewiring never runs on a streaming thread, and no lock a streaming thread
//! may take is ever held while waiting for a streaming thread:
//!
//! * **Probes only record.** The caps probe on the sink stores the new caps
//!   and closes the *valve* of every input-tee pad whose wiring the new caps
//!   invalidate (a pass-through branch whose consumer does not accept them,
//!   a chain built for another format), so no consumer ever gets caps it did
//!   not accept; `RECONFIGURE` and bitrate events mark the branch. All of
//!   this takes only the short *state lock*.
//! * **One reconciler rewires.** It runs on GStreamer's async-call pool
//!   (`gst_element_call_async`), one pass at a time per bin (requests are
//!   coalesced), holding the *rewire lock* and not the state lock: it may
//!   wait for streaming threads (removing elements, releasing tee pads)
//!   because no streaming thread ever takes the rewire lock. New wiring is
//!   committed only if the input did not change since the pass planned it.
//! * **RPC threads never wait for streaming threads here.**
//!   `request_new_pad` records a branch; `release_pad` detaches the branch's
//!   ghost at once (under a per-branch lock that the reconciler also holds
//!   while retargeting it) and leaves the tee pad and converters to the
//!   reconciler. Bitrate and MTU settings are computed under the state lock
//!   and applied after releasing it.
//! * **Going down**, the bin waits for a pass in progress and builds nothing
//!   afterwards.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod bitrate;
pub mod codecs;
mod graph;
mod imp;
pub mod keyframe;
pub mod plan;

pub use bitrate::MTU_QUERY;
pub use codecs::Bitrate;
pub use plan::{OutputFormat, Target};

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

    /// MTU of the payloaders this bin creates, when their consumers do not
    /// answer the [`MTU_QUERY`].
    pub fn set_mtu(&self, mtu: u32) {
        self.imp().set_mtu(mtu);
    }

    /// Forces every output to one format (`None`: whatever each consumer
    /// takes best). Existing branches are re-planned.
    pub fn set_output_format(&self, format: Option<OutputFormat>) {
        self.imp().set_output_format(format);
    }

    /// Whether no rewiring is pending or running (tests, teardown checks).
    pub fn is_settled(&self) -> bool {
        self.imp().is_idle()
    }

    /// Asks the producer feeding this bin for a keyframe.
    pub fn request_keyframe(&self) {
        self.imp().request_keyframe_upstream();
    }
}
