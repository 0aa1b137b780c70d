//! `kmsrtpnojitter`: what webrtcbin's rtpbin gets instead of an
//! `rtpjitterbuffer` (through rtpbin's `request-jitterbuffer` signal) when
//! the endpoint forwards RTP as it arrives.
//!
//! An SFU forwarding packets gains nothing from reordering delay, and each
//! `rtpjitterbuffer` costs two threads and a thread hop per packet. This
//! element passes packets through in the receiving thread. It implements
//! the properties and signals rtpbin and webrtcbin use on a jitterbuffer so
//! they keep working (`stats`, `request-pt-map`, `set-active`, ...); RTCP
//! handed to it is dropped. Its `stats` (lost, late, duplicates, jitter)
//! come from sequence-number accounting of what passes ([`seq`]); webrtcbin
//! reports `num-lost` as the inbound stream's `packets-lost`. Without it NACKs are not generated on receive
//! (config `WebRtcEndpoint.jitterBuffer=1` brings `rtpjitterbuffer` back).

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod seq;

glib::wrapper! {
    pub struct RtpNoJitter(ObjectSubclass<imp::RtpNoJitter>) @extends gst::Element, gst::Object;
}

impl RtpNoJitter {
    pub fn new() -> RtpNoJitter {
        glib::Object::new()
    }
}

impl Default for RtpNoJitter {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes `webrtcbin` use [`RtpNoJitter`] for every received stream.
pub fn install(webrtcbin: &gst::Element) {
    let Some(rtpbin) = webrtcbin.downcast_ref::<gst::Bin>().and_then(|b| b.by_name("rtpbin")) else { return };
    if gst::glib::subclass::SignalId::lookup("request-jitterbuffer", rtpbin.type_()).is_none() {
        return;
    }
    rtpbin.connect("request-jitterbuffer", false, |_| Some(RtpNoJitter::new().upcast::<gst::Element>().to_value()));
}
