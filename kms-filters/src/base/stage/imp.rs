use gst::glib;
use gst::subclass::prelude::*;
use parking_lot::Mutex;

use super::MessageHook;

#[derive(Default)]
pub struct FilterStage {
    pub(super) hook: Mutex<Option<MessageHook>>,
}

#[glib::object_subclass]
impl ObjectSubclass for FilterStage {
    const NAME: &'static str = "KmsFilterStage";
    type Type = super::FilterStage;
    type ParentType = gst::Bin;
}

impl ObjectImpl for FilterStage {}
impl GstObjectImpl for FilterStage {}
impl ElementImpl for FilterStage {}

impl BinImpl for FilterStage {
    fn handle_message(&self, message: gst::Message) {
        if let gst::MessageView::Element(_) = message.view()
            && let Some(hook) = self.hook.lock().as_ref()
        {
            hook(&message);
        }
        self.parent_handle_message(message)
    }
}
