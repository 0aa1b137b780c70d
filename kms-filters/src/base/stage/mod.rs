//! `kmsfilterstage`: the bin a filter puts between its input and its
//! output agnosticbin for the media type it processes (spec §10.4).
//!
//! ```text
//! sink ─ capsfilter(video/x-raw) ─ videoconvert ─ videoscale ─ <processing> ─ videoconvert ─ src
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
        let mut chain = vec![
            gst::ElementFactory::make("capsfilter")
                .name("raw_in")
                .property("caps", gst::Caps::new_empty_simple(raw))
                .build()?,
        ];
        for (i, f) in convert_in.iter().enumerate() {
            chain.push(gst::ElementFactory::make(f).name(format!("convert_in{i}")).build()?);
        }
        chain.push(processing.clone());
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
