//! `kmsframeprocessor`: an in-place video filter that hands each frame to
//! a [`FrameProcessor`](super::FrameProcessor).

mod imp;

use gst::glib;
use gst::subclass::prelude::*;

use super::{EventSink, FrameProcessor};

glib::wrapper! {
    pub struct FrameProcessorElement(ObjectSubclass<imp::FrameProcessorElement>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

impl FrameProcessorElement {
    /// The element around `processor`; its events are dropped until
    /// [`FrameProcessorElement::set_events`].
    pub fn new(processor: Box<dyn FrameProcessor>) -> FrameProcessorElement {
        let e: FrameProcessorElement = glib::Object::new();
        *e.imp().processor.lock() = Some(processor);
        e
    }

    pub fn set_events(&self, events: EventSink) {
        *self.imp().events.lock() = events;
    }
}
