use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("agnosticbin", gst::DebugColorFlags::empty(), Some("Kurento agnosticbin"))
});

/// Queue bound per branch: enough to absorb scheduling jitter, small enough
/// that a stuck consumer drops old data instead of growing memory.
const DEFAULT_BRANCH_MAX_TIME: u64 = 2_000_000_000;

pub struct AgnosticBin {
    tee: gst::Element,
    next_pad: std::sync::atomic::AtomicU32,
}

#[glib::object_subclass]
impl ObjectSubclass for AgnosticBin {
    const NAME: &'static str = "KmsAgnosticBin";
    type Type = super::AgnosticBin;
    type ParentType = gst::Bin;

    fn with_class(_klass: &Self::Class) -> Self {
        let tee = gst::ElementFactory::make("tee")
            .property("allow-not-linked", true)
            .build()
            .expect("tee from coreelements is always present");
        AgnosticBin { tee, next_pad: std::sync::atomic::AtomicU32::new(0) }
    }
}

impl ObjectImpl for AgnosticBin {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add(&self.tee).expect("fresh bin");
        let target = self.tee.static_pad("sink").expect("tee sink");
        let templ = obj.pad_template("sink").expect("template");
        let ghost =
            gst::GhostPad::builder_from_template_with_target(&templ, &target).expect("ghost").name("sink").build();
        obj.add_pad(&ghost).expect("unique pad");
    }
}

impl GstObjectImpl for AgnosticBin {}

impl ElementImpl for AgnosticBin {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Agnostic bin",
                "Generic/Bin",
                "Fans one media stream out to any number of consumers",
                "kurento-rs",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                    .expect("template"),
                gst::PadTemplate::new("src_%u", gst::PadDirection::Src, gst::PadPresence::Request, &caps)
                    .expect("template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let obj = self.obj();
        let queue = gst::ElementFactory::make("queue")
            .property("max-size-buffers", 0u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", DEFAULT_BRANCH_MAX_TIME)
            .property_from_str("leaky", "downstream")
            .build()
            .ok()?;
        obj.add(&queue).ok()?;
        let tee_src = self.tee.request_pad_simple("src_%u")?;
        let qsink = queue.static_pad("sink")?;
        if tee_src.link(&qsink).is_err() {
            gst::warning!(CAT, imp = self, "cannot link tee to branch queue");
            self.tee.release_request_pad(&tee_src);
            let _ = obj.remove(&queue);
            return None;
        }
        // Hold data back until the consumer is linked: a buffer pushed into
        // an unlinked branch would be a NOT_LINKED error for the pipeline.
        let hold = tee_src.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| gst::PadProbeReturn::Ok);
        let _ = queue.sync_state_with_parent();
        let qsrc = queue.static_pad("src")?;
        let name = match name {
            Some(n) => n.to_string(),
            None => format!("src_{}", self.next_pad.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        };
        let ghost = gst::GhostPad::builder_from_template_with_target(templ, &qsrc).ok()?.name(name).build();
        let hold = std::sync::Mutex::new(hold);
        let tee_pad = tee_src.clone();
        ghost.connect_linked(move |_, _| {
            if let Some(id) = hold.lock().unwrap().take() {
                tee_pad.remove_probe(id);
            }
        });
        // Remember the branch so release can undo it.
        unsafe {
            ghost.set_data("kms-branch-queue", queue.clone());
            ghost.set_data("kms-branch-tee-pad", tee_src.clone());
        }
        let _ = ghost.set_active(true);
        obj.add_pad(&ghost).ok()?;
        gst::debug!(CAT, imp = self, "new branch {}", ghost.name());
        Some(ghost.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let obj = self.obj();
        let (queue, tee_src) = unsafe {
            (pad.steal_data::<gst::Element>("kms-branch-queue"), pad.steal_data::<gst::Pad>("kms-branch-tee-pad"))
        };
        let _ = pad.set_active(false);
        let _ = obj.remove_pad(pad);
        if let Some(tee_src) = tee_src {
            self.tee.release_request_pad(&tee_src);
        }
        // During bin disposal the children are already gone.
        if let Some(queue) = queue.filter(|q| q.parent().as_ref() == Some(obj.upcast_ref())) {
            let _ = queue.set_state(gst::State::Null);
            let _ = obj.remove(&queue);
        }
        gst::debug!(CAT, imp = self, "branch {} released", pad.name());
    }
}

impl BinImpl for AgnosticBin {}
