//! The `kmsagnosticbin` element: pads, probes and the bookkeeping they
//! share. Probes only record what changed (under [`State`]'s short lock)
//! and schedule the reconciler (`graph.rs`), which rewires off the
//! streaming threads. See the module documentation for the threading rule.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::codecs::{self, Bitrate, Codec};
use super::graph::Graph;
use super::plan::{OutputFormat, ValveRule};
use super::{BITRATE_EVENT, Source};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("agnosticbin", gst::DebugColorFlags::empty(), Some("Kurento agnosticbin"))
});

pub(super) type BranchId = u64;

/// One consumer branch as the probes and RPC calls see it.
pub(super) struct BranchRec {
    pub id: BranchId,
    pub ghost: gst::GhostPad,
    /// `true` once released. Held while the ghost is retargeted, so the
    /// reconciler never links a ghost that `release_pad` already emptied
    /// (a deactivated ghost in a tee would fail the whole stream).
    pub link: Arc<Mutex<bool>>,
    /// Its consumer may want something else (RECONFIGURE, forced format).
    pub dirty: bool,
    /// What it is fed from, as last wired.
    pub source: Option<Source>,
    /// What its consumer can take (REMB), bps.
    pub bitrate: Option<u32>,
    /// Largest RTP packet its consumer wants (`kms-mtu`).
    pub mtu: Option<u32>,
}

/// A gate on one of the input tee's pads: open while the input caps keep
/// satisfying its rule. Once closed it stays closed; the reconciler
/// replaces the pad.
pub(super) struct Valve {
    pub open: Arc<AtomicBool>,
    pub rule: ValveRule,
}

/// Bookkeeping shared by probes, RPC calls and the reconciler. Its lock is
/// held only for reads and writes of these fields, never across a
/// GStreamer call that can wait for a streaming thread.
#[derive(Default)]
pub(super) struct State {
    pub caps: Option<gst::Caps>,
    /// Bumped on every input caps change: wiring planned for older caps is
    /// not committed.
    pub epoch: u64,
    pub forced: Option<OutputFormat>,
    pub branches: Vec<BranchRec>,
    pub valves: Vec<Valve>,
    /// Live encoders and payloaders, for bitrate and MTU updates from any
    /// thread.
    pub encoders: BTreeMap<Codec, gst::Element>,
    pub payloaders: BTreeMap<Codec, gst::Element>,
    /// Last aggregated bitrate sent upstream for pass-through branches.
    pub upstream_bitrate: Option<u32>,
    /// Going down: the reconciler builds nothing more.
    pub stopping: bool,
}

type TranscodingCallback = Arc<dyn Fn(bool) + Send + Sync>;

pub(super) struct Settings {
    pub bitrate: Bitrate,
    pub mtu: u32,
    pub on_transcoding: Option<TranscodingCallback>,
}

pub struct AgnosticBin {
    /// `tee_in`: the input as is.
    pub(super) tee: gst::Element,
    pub(super) state: Mutex<State>,
    pub(super) settings: Mutex<Settings>,
    /// The rewire lock: chains and links. Only the reconciler and
    /// `change_state` take it, never a streaming thread.
    pub(super) graph: Mutex<Graph>,
    next_pad: AtomicU32,
    next_branch: AtomicU64,
    pub(super) transcoding: AtomicBool,
    /// A reconcile pass is wanted.
    dirty: AtomicBool,
    /// A reconciler is scheduled or running.
    running: AtomicBool,
}

#[glib::object_subclass]
impl ObjectSubclass for AgnosticBin {
    const NAME: &'static str = "KmsAgnosticBin";
    type Type = super::AgnosticBin;
    type ParentType = gst::Bin;

    fn with_class(_klass: &Self::Class) -> Self {
        let tee = gst::ElementFactory::make("tee")
            .name("tee_in")
            .property("allow-not-linked", true)
            .build()
            .expect("tee from coreelements is always present");
        AgnosticBin {
            tee,
            state: Mutex::new(State::default()),
            settings: Mutex::new(Settings {
                bitrate: Bitrate::default(),
                mtu: codecs::DEFAULT_MTU,
                on_transcoding: None,
            }),
            graph: Mutex::new(Graph::default()),
            next_pad: AtomicU32::new(0),
            next_branch: AtomicU64::new(0),
            transcoding: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            running: AtomicBool::new(false),
        }
    }
}

impl ObjectImpl for AgnosticBin {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add(&self.tee).expect("fresh bin");
        let target = self.tee.static_pad("sink").expect("tee sink");
        let templ = obj.pad_template("sink").expect("template");
        let ghost = gst::GhostPad::builder_from_template_with_target(&templ, &target)
            .expect("ghost")
            .name("sink")
            // Anything is accepted: conversions happen per branch.
            .query_function(|pad, parent, query| match query.view_mut() {
                gst::QueryViewMut::Caps(q) => {
                    let caps = q.filter().map(|f| f.to_owned()).unwrap_or_else(gst::Caps::new_any);
                    q.set_result(&caps);
                    true
                }
                gst::QueryViewMut::AcceptCaps(q) => {
                    q.set_result(true);
                    true
                }
                // Our own consumer queries (`kms-mtu`, `kms-bitrate`) are
                // answered by consumers, not forwarded through every branch
                // (connection cycles would recurse forever).
                gst::QueryViewMut::Custom(q) if q.structure().is_some_and(|s| s.name().starts_with("kms-")) => false,
                _ => gst::Pad::query_default(pad, parent, query),
            })
            .build();
        let weak = obj.downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data
                && let gst::EventView::Caps(c) = ev.view()
                && let Some(obj) = weak.upgrade()
            {
                obj.imp().input_caps(c.caps_owned());
            }
            gst::PadProbeReturn::Ok
        });
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
                "Fans one media stream out to any number of consumers, converting per consumer",
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
        let name = match name {
            Some(n) => n.to_string(),
            None => format!("src_{}", self.next_pad.fetch_add(1, Ordering::Relaxed)),
        };
        // No target until the consumer says what it accepts: nothing flows
        // into an unlinked or not-yet-negotiated consumer.
        let ghost = gst::GhostPad::builder_from_template(templ).name(name).build();
        let id = self.next_branch.fetch_add(1, Ordering::Relaxed);
        let weak = obj.downgrade();
        ghost.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            let Some(gst::PadProbeData::Event(ev)) = &info.data else { return gst::PadProbeReturn::Ok };
            let Some(obj) = weak.upgrade() else { return gst::PadProbeReturn::Ok };
            match ev.view() {
                gst::EventView::Reconfigure(_) => {
                    // The consumer may accept something else now: recorded
                    // here, replanned by the reconciler.
                    obj.imp().mark_dirty(Some(id));
                    gst::PadProbeReturn::Ok
                }
                gst::EventView::CustomUpstream(c) if c.structure().is_some_and(|s| s.name() == BITRATE_EVENT) => {
                    let bitrate = c.structure().and_then(|s| s.get::<u32>("bitrate").ok());
                    obj.imp().branch_bitrate(id, bitrate);
                    // Consumed here (aggregated); `Drop` on an event sent to
                    // this pad trips a NULL unref in GStreamer 1.22.
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        });
        let _ = ghost.set_active(true);
        obj.add_pad(&ghost).ok()?;
        self.state.lock().branches.push(BranchRec {
            id,
            ghost: ghost.clone(),
            link: Arc::new(Mutex::new(false)),
            dirty: true,
            source: None,
            bitrate: None,
            mtu: None,
        });
        gst::debug!(CAT, imp = self, "new branch {}", ghost.name());
        self.schedule();
        Some(ghost.upcast())
    }

    /// Called from RPC threads. Detaches the ghost at once (no data reaches
    /// the pad after this returns) and leaves the tee pad and converters to
    /// the reconciler: nothing here waits for a streaming thread.
    fn release_pad(&self, pad: &gst::Pad) {
        let obj = self.obj();
        let rec = {
            let mut st = self.state.lock();
            let pos = st.branches.iter().position(|b| b.ghost.upcast_ref::<gst::Pad>() == pad);
            pos.map(|i| st.branches.remove(i))
        };
        if let Some(rec) = &rec {
            let mut released = rec.link.lock();
            *released = true;
            let _ = rec.ghost.set_target(None::<&gst::Pad>);
        }
        let _ = pad.set_active(false);
        let _ = obj.remove_pad(pad);
        if rec.is_some() {
            self.schedule();
        }
        gst::debug!(CAT, imp = self, "branch {} released", pad.name());
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::PausedToReady => {
                self.state.lock().stopping = true;
                // Waits for a pass in progress: no element is added or
                // synced to PLAYING after the bin started going down.
                drop(self.graph.lock());
            }
            gst::StateChange::NullToReady => self.state.lock().stopping = false,
            _ => {}
        }
        self.parent_change_state(transition)
    }
}

impl BinImpl for AgnosticBin {}

impl AgnosticBin {
    /// Input caps changed (caps probe, streaming thread): closes the valves
    /// of wirings the new caps invalidate and schedules the reconciler.
    fn input_caps(&self, caps: gst::Caps) {
        {
            let mut st = self.state.lock();
            if st.caps.as_ref() == Some(&caps) {
                return;
            }
            st.epoch += 1;
            for v in &st.valves {
                if !v.rule.holds(&caps) {
                    v.open.store(false, Ordering::Release);
                }
            }
            gst::debug!(CAT, imp = self, "input caps {caps}");
            st.caps = Some(caps);
        }
        self.schedule();
    }

    /// Asks for a reconcile pass, marking one branch (or all) for replanning.
    pub(super) fn mark_dirty(&self, branch: Option<BranchId>) {
        {
            let mut st = self.state.lock();
            for b in st.branches.iter_mut().filter(|b| branch.is_none_or(|id| id == b.id)) {
                b.dirty = true;
            }
        }
        self.schedule();
    }

    /// Runs the reconciler on GStreamer's async-call pool, never on the
    /// caller's thread; requests while one is scheduled or running are
    /// coalesced into its next pass.
    pub(super) fn schedule(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        if !self.running.swap(true, Ordering::SeqCst) {
            self.obj().call_async(|obj| obj.imp().run_reconciler());
        }
    }

    fn run_reconciler(&self) {
        loop {
            {
                let mut g = self.graph.lock();
                while self.dirty.swap(false, Ordering::SeqCst) {
                    self.reconcile(&mut g);
                }
            }
            self.running.store(false, Ordering::SeqCst);
            // A request that came after the last pass but saw `running`.
            if !self.dirty.load(Ordering::SeqCst) || self.running.swap(true, Ordering::SeqCst) {
                break;
            }
        }
    }

    /// Whether no reconcile pass is pending or running.
    pub(super) fn is_idle(&self) -> bool {
        !self.running.load(Ordering::SeqCst) && !self.dirty.load(Ordering::SeqCst)
    }

    pub(super) fn set_bitrate(&self, bitrate: Bitrate) {
        self.settings.lock().bitrate = bitrate;
        self.refresh_rates();
    }

    pub(super) fn set_mtu(&self, mtu: u32) {
        self.settings.lock().mtu = mtu;
        self.refresh_rates();
    }

    pub(super) fn set_output_format(&self, format: Option<OutputFormat>) {
        {
            let mut st = self.state.lock();
            if st.forced == format {
                return;
            }
            st.forced = format;
        }
        self.mark_dirty(None);
    }

    pub(super) fn set_transcoding_callback(&self, cb: TranscodingCallback) {
        self.settings.lock().on_transcoding = Some(cb);
    }

    pub(super) fn is_transcoding(&self) -> bool {
        self.transcoding.load(Ordering::Acquire)
    }

    pub(super) fn branch_sources(&self) -> Vec<Option<Source>> {
        self.state.lock().branches.iter().map(|b| b.source).collect()
    }

    /// Asks whoever feeds this bin for a keyframe.
    pub(super) fn request_keyframe_upstream(&self) {
        if let Some(sink) = self.obj().static_pad("sink").filter(|p| p.is_linked()) {
            let _ = sink.push_event(codecs::force_key_unit_event());
        }
    }

    /// A consumer's REMB wish (streaming thread).
    fn branch_bitrate(&self, id: BranchId, bitrate: Option<u32>) {
        {
            let mut st = self.state.lock();
            let Some(b) = st.branches.iter_mut().find(|b| b.id == id) else { return };
            b.bitrate = bitrate;
        }
        self.refresh_rates();
    }

    /// Fires the transcoding callback if the state flipped.
    pub(super) fn set_transcoding(&self, transcoding: bool) {
        if self.transcoding.swap(transcoding, Ordering::AcqRel) != transcoding {
            gst::info!(CAT, imp = self, "transcoding: {transcoding}");
            let cb = self.settings.lock().on_transcoding.clone();
            if let Some(cb) = cb {
                cb(transcoding);
            }
        }
    }
}
