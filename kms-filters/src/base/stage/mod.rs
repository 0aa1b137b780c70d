//! `kmsfilterstage`: the bin a filter puts between its input and its
//! output agnosticbin for the media type it processes (spec §10.4).
//!
//! ```text
//! sink ─ capsfilter(video/x-raw) ─ videoconvert ─ videoscale ─ bounds ─ <processing> ─ bounds ─ videoconvert ─ src
//! sink ─ capsfilter(audio/x-raw) ─ audioconvert ─ audioresample ─ <processing>
//!                                ─ audioconvert ─ audioresample ─ src
//! ```
//!
//! The capsfilter is what makes the upstream agnosticbin decode for us: it
//! plans each consumer's branch from the consumer's caps query (spec
//! §10.3), and raw caps mean "decode once, hand out raw". The converters
//! let the processing element pick the raw format it wants (a frame
//! processor asking for BGRA gets BGRA) and hand the output agnosticbin
//! whatever it produces. `videoscale` on the way in lets a processing
//! element ask for another size (`capsfilter caps=video/x-raw,width=320`);
//! nothing scales back on the way out, so the new size is the output's.
//! The `bounds` capsfilters keep what a client's command may negotiate
//! within [`MAX_WIDTH`]×[`MAX_HEIGHT`] (audio: [`MAX_RATE`],
//! [`MAX_CHANNELS`]).
//!
//! The bin intercepts `ELEMENT` messages its children post (zbar's
//! `barcode`, facedetect's `facedetect`) and hands them to a callback
//! before they go on to the pipeline's bus: a filter turns them into
//! Kurento events without a bus watch of its own.

mod imp;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

/// Which raw media a stage carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    Audio,
    Video,
}

/// Called with every `ELEMENT` message a child of the stage posts, on the
/// posting (usually streaming) thread: keep it short, never block.
pub type MessageHook = Box<dyn Fn(&gst::Message) + Send + Sync + 'static>;

/// Largest picture a filter may ask for or produce (8K UHD): a client's
/// `capsfilter caps=video/x-raw,width=100000,...` or `videobox
/// left=-100000` fails negotiation instead of allocating gigabytes.
pub const MAX_WIDTH: i32 = 7680;
pub const MAX_HEIGHT: i32 = 4320;
/// Audio bounds, for the same reason.
pub const MAX_RATE: i32 = 192_000;
pub const MAX_CHANNELS: i32 = 8;

/// Raw caps within the bounds, on both sides of the processing element.
fn bounds(kind: StageKind) -> gst::Caps {
    match kind {
        StageKind::Video => gst::Caps::builder("video/x-raw")
            .field("width", gst::IntRange::new(1, MAX_WIDTH))
            .field("height", gst::IntRange::new(1, MAX_HEIGHT))
            .build(),
        StageKind::Audio => gst::Caps::builder("audio/x-raw")
            .field("rate", gst::IntRange::new(1, MAX_RATE))
            .field("channels", gst::IntRange::new(1, MAX_CHANNELS))
            .build(),
    }
}

glib::wrapper! {
    pub struct FilterStage(ObjectSubclass<imp::FilterStage>) @extends gst::Bin, gst::Element, gst::Object;
}

impl FilterStage {
    /// Builds the stage around `processing` (an element or a bin with one
    /// `sink` and one `src` pad, still without a parent).
    pub fn new(kind: StageKind, processing: &gst::Element) -> Result<FilterStage, glib::BoolError> {
        let stage: FilterStage = glib::Object::new();
        let (raw, convert_in, convert_out): (&str, &[&str], &[&str]) = match kind {
            StageKind::Video => ("video/x-raw", &["videoconvert", "videoscale"], &["videoconvert"]),
            StageKind::Audio => ("audio/x-raw", &["audioconvert", "audioresample"], &["audioconvert", "audioresample"]),
        };
        let capsfilter = |name: &str, caps: gst::Caps| {
            gst::ElementFactory::make("capsfilter").name(name).property("caps", caps).build()
        };
        let mut chain = vec![capsfilter("raw_in", gst::Caps::new_empty_simple(raw))?];
        for (i, f) in convert_in.iter().enumerate() {
            chain.push(gst::ElementFactory::make(f).name(format!("convert_in{i}")).build()?);
        }
        chain.push(capsfilter("bounds_in", bounds(kind))?);
        chain.push(processing.clone());
        chain.push(capsfilter("bounds_out", bounds(kind))?);
        for (i, f) in convert_out.iter().enumerate() {
            chain.push(gst::ElementFactory::make(f).name(format!("convert_out{i}")).build()?);
        }
        stage.add_many(&chain)?;
        gst::Element::link_many(&chain)?;
        let sink = chain[0].static_pad("sink").ok_or_else(|| glib::bool_error!("capsfilter without sink pad"))?;
        let src =
            chain[chain.len() - 1].static_pad("src").ok_or_else(|| glib::bool_error!("converter without src pad"))?;
        stage.add_pad(&gst::GhostPad::builder_with_target(&sink)?.name("sink").build())?;
        stage.add_pad(&gst::GhostPad::builder_with_target(&src)?.name("src").build())?;
        Ok(stage)
    }

    /// Sets the callback for `ELEMENT` messages of the stage's children
    /// (replacing any earlier one).
    pub fn set_message_hook(&self, hook: MessageHook) {
        *self.imp().hook.lock() = Some(hook);
    }
}
