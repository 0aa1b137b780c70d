use std::sync::LazyLock;
use std::time::Instant;

use parking_lot::Mutex;

use super::seq::SeqTracker;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

pub struct RtpNoJitter {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    pushed: AtomicU64,
    /// Taken per packet by the one streaming thread and by `stats` readers
    /// for a copy; never held across a push.
    seq: Mutex<SeqTracker>,
    /// Lost packets already added to the process-wide `/metrics` counter.
    lost_counted: AtomicU64,
}

/// Arrival times are measured from here (jitter only needs differences).
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl RtpNoJitter {
    /// Sequence accounting of one packet (RTP header: seq at 2, timestamp
    /// at 4).
    fn track(&self, buffer: &gst::BufferRef, now_ns: u64) {
        let mut head = [0u8; 8];
        if buffer.copy_to_slice(0, &mut head).is_err() || head[0] >> 6 != 2 {
            return;
        }
        let seq_no = u16::from_be_bytes([head[2], head[3]]);
        let ts = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let pt = head[1] & 0x7f;
        if self.seq.lock().needs_clock_rate(pt) {
            // As rtpjitterbuffer does: rtpbin answers from the negotiated
            // payload types (caps events here carry no clock rate). Asked
            // without holding the tracker.
            let caps = self.obj().emit_by_name::<Option<gst::Caps>>("request-pt-map", &[&u32::from(pt)]);
            if let Some(rate) = caps.as_ref().and_then(|c| c.structure(0)).and_then(|s| s.get::<i32>("clock-rate").ok())
            {
                self.seq.lock().set_clock_rate(rate.max(0) as u32);
            }
        }
        let lost = {
            let mut seq = self.seq.lock();
            seq.on_packet(seq_no, ts, now_ns);
            seq.stats().lost
        };
        let m = &kms_core::metrics::RTP;
        m.received(buffer.size());
        m.lost_total(&self.lost_counted, lost);
    }
}

fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

#[glib::object_subclass]
impl ObjectSubclass for RtpNoJitter {
    const NAME: &'static str = "KmsRtpNoJitter";
    type Type = super::RtpNoJitter;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").expect("template"))
            .chain_function(|_, parent, buffer| {
                RtpNoJitter::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |s| {
                        s.pushed.fetch_add(1, Ordering::Relaxed);
                        s.track(&buffer, now_ns());
                        s.srcpad.push(buffer)
                    },
                )
            })
            .chain_list_function(|_, parent, list| {
                RtpNoJitter::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |s| {
                        s.pushed.fetch_add(list.len() as u64, Ordering::Relaxed);
                        let now = now_ns();
                        list.iter().for_each(|b| s.track(b, now));
                        s.srcpad.push_list(list)
                    },
                )
            })
            .event_function(|pad, parent, event| {
                if let gst::EventView::Caps(c) = event.view()
                    && let Some(rate) = c.caps().structure(0).and_then(|st| st.get::<i32>("clock-rate").ok())
                    && let Some(el) = parent.and_then(|p| p.downcast_ref::<super::RtpNoJitter>())
                {
                    el.imp().seq.lock().set_clock_rate(rate.max(0) as u32);
                }
                gst::Pad::event_default(pad, parent, event)
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").expect("template"))
            .event_function(|pad, parent, event| {
                // Renegotiation stops here (as at a jitterbuffer): upstream
                // of it webrtcbin's receive path has nothing to renegotiate,
                // and a dropped event there trips GStreamer 1.22.
                if event.type_() == gst::EventType::Reconfigure {
                    return true;
                }
                gst::Pad::event_default(pad, parent, event)
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        RtpNoJitter {
            sinkpad,
            srcpad,
            pushed: AtomicU64::new(0),
            seq: Mutex::new(SeqTracker::default()),
            lost_counted: AtomicU64::new(0),
        }
    }
}

/// Settable jitterbuffer properties rtpbin and webrtcbin write; stored
/// nowhere (they configure buffering this element does not do).
const IGNORED_BOOL: &[&str] = &[
    "drop-on-latency",
    "do-lost",
    "do-retransmission",
    "rfc7273-sync",
    "post-drop-messages",
    "add-reference-timestamp-meta",
];
const IGNORED_UINT: &[&str] =
    &["latency", "max-dropout-time", "max-misorder-time", "sync-interval", "faststart-min-packets"];
const IGNORED_INT: &[&str] = &[
    "mode",
    "max-rtcp-rtp-time-diff",
    "rtx-delay",
    "rtx-min-delay",
    "rtx-delay-reorder",
    "rtx-retry-timeout",
    "rtx-min-retry-timeout",
    "rtx-retry-period",
    "rtx-max-retries",
    "rtx-deadline",
    "rtx-stats-timeout",
];

impl ObjectImpl for RtpNoJitter {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut v: Vec<glib::ParamSpec> = vec![];
            for n in IGNORED_BOOL {
                v.push(glib::ParamSpecBoolean::builder(n).build());
            }
            for n in IGNORED_UINT {
                v.push(glib::ParamSpecUInt::builder(n).build());
            }
            for n in IGNORED_INT {
                v.push(glib::ParamSpecInt::builder(n).minimum(i32::MIN).maximum(i32::MAX).build());
            }
            v.push(glib::ParamSpecUInt64::builder("max-ts-offset-adjustment").build());
            v.push(glib::ParamSpecInt64::builder("ts-offset").build());
            v.push(glib::ParamSpecBoolean::builder("rtx-next-seqnum").build());
            v.push(glib::ParamSpecInt::builder("percent").minimum(0).maximum(100).read_only().build());
            v.push(glib::ParamSpecBoxed::builder::<gst::Structure>("stats").read_only().build());
            v
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, _value: &glib::Value, _pspec: &glib::ParamSpec) {}

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => {
                let seq = self.seq.lock().stats();
                gst::Structure::builder("application/x-rtp-jitterbuffer-stats")
                    .field("num-pushed", self.pushed.load(Ordering::Relaxed))
                    .field("num-lost", seq.lost)
                    .field("num-late", seq.late)
                    .field("num-duplicates", seq.duplicates)
                    .field("avg-jitter", seq.jitter_ns)
                    .field("rtx-count", 0u64)
                    .field("rtx-success-count", 0u64)
                    .field("rtx-per-packet", 0f64)
                    .field("rtx-rtt", 0u64)
                    .build()
                    .to_value()
            }
            // Buffering level: a pass-through never buffers, so it is never
            // below the 100 % rtpjitterbuffer reports when not buffering.
            "percent" => 100i32.to_value(),
            _ => pspec.default_value().clone(),
        }
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                glib::subclass::Signal::builder("request-pt-map")
                    .param_types([u32::static_type()])
                    .return_type::<gst::Caps>()
                    .build(),
                glib::subclass::Signal::builder("handle-sync").param_types([gst::Structure::static_type()]).build(),
                glib::subclass::Signal::builder("on-npt-stop").build(),
                glib::subclass::Signal::builder("clear-pt-map").action().class_handler(|_| None).build(),
                glib::subclass::Signal::builder("set-active")
                    .param_types([bool::static_type(), u64::static_type()])
                    .return_type::<u64>()
                    .action()
                    .class_handler(|_| Some(0u64.to_value()))
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("unique");
        obj.add_pad(&self.srcpad).expect("unique");
    }
}

impl GstObjectImpl for RtpNoJitter {}

impl ElementImpl for RtpNoJitter {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP pass-through jitterbuffer",
                "Filter/Network/RTP",
                "Forwards RTP as it arrives, in the receiving thread",
                "kurento-rs",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let rtp = gst::Caps::builder("application/x-rtp").build();
            let rtcp = gst::Caps::builder("application/x-rtcp").build();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &rtp).expect("t"),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &rtp).expect("t"),
                gst::PadTemplate::new("sink_rtcp", gst::PadDirection::Sink, gst::PadPresence::Request, &rtcp)
                    .expect("t"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        _name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        // RTCP (sender reports) only matters for buffering and lip-sync.
        let pad = gst::Pad::builder_from_template(templ)
            .name("sink_rtcp")
            .chain_function(|_, _, _| Ok(gst::FlowSuccess::Ok))
            .event_function(|_, _, _| true)
            .build();
        pad.set_active(true).ok()?;
        self.obj().add_pad(&pad).ok()?;
        Some(pad)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let _ = pad.set_active(false);
        let _ = self.obj().remove_pad(pad);
    }
}
