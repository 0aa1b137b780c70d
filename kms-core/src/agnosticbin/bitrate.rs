//! Consumers' wishes applied to the running stages: encoder bitrates
//! (REMB, within the element's `[minEncoderBitrate, maxEncoderBitrate]`),
//! the bitrate asked of the producer for pass-through branches, and the
//! payloaders' MTU. Callable from any thread: the decision is computed
//! under the state lock ([`super::plan`]'s pure rules), the properties are
//! set after it is released.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::codecs;
use super::imp::AgnosticBin;
use super::plan::{self, BranchWish};

/// The custom query a consumer answers with the largest RTP packet
/// (header included, field `mtu`: u32) it wants from upstream.
pub const MTU_QUERY: &str = "kms-mtu";

/// What the consumer linked to `ghost` answers to the `kms-mtu` query.
pub(super) fn query_mtu(ghost: &gst::GhostPad) -> Option<u32> {
    query_u32(ghost, MTU_QUERY, "mtu")
}

/// The consumer's standing bitrate wish (`kms-bitrate` query).
pub(super) fn query_bitrate(ghost: &gst::GhostPad) -> Option<u32> {
    query_u32(ghost, super::BITRATE_EVENT, "bitrate")
}

fn query_u32(ghost: &gst::GhostPad, name: &str, field: &str) -> Option<u32> {
    ghost.peer()?;
    let mut q = gst::query::Custom::new(gst::Structure::new_empty(name));
    if !ghost.peer_query(&mut q) {
        return None;
    }
    q.structure().and_then(|s| s.get::<u32>(field).ok()).filter(|v| *v > 0)
}

impl AgnosticBin {
    /// Re-applies bitrates and MTUs after any wish, setting or stage changed.
    pub(super) fn refresh_rates(&self) {
        let (bitrate, default_mtu) = {
            let s = self.settings.lock();
            (s.bitrate, s.mtu)
        };
        let (encoders, payloaders, upstream) = {
            let mut st = self.state.lock();
            let wishes: Vec<BranchWish> =
                st.branches.iter().map(|b| BranchWish { source: b.source, bitrate: b.bitrate, mtu: b.mtu }).collect();
            let caps = st.caps.as_deref();
            let forced = st.forced;
            let encoders: Vec<(gst::Element, u32)> = st
                .encoders
                .iter()
                .map(|(c, e)| (e.clone(), bitrate.effective(plan::encoder_wish(caps, &wishes, *c, forced.as_ref()))))
                .collect();
            let payloaders: Vec<(gst::Element, u32)> =
                st.payloaders.iter().map(|(c, p)| (p.clone(), plan::payloader_mtu(&wishes, *c, default_mtu))).collect();
            let up = plan::upstream_wish(caps, &wishes, forced.as_ref());
            let upstream = if up.is_some() && up != st.upstream_bitrate {
                st.upstream_bitrate = up;
                up
            } else {
                None
            };
            (encoders, payloaders, upstream)
        };
        for (enc, b) in encoders {
            codecs::set_encoder_bitrate(&enc, b);
        }
        for (pay, mtu) in payloaders {
            if pay.property::<u32>("mtu") != mtu {
                gst::debug!(super::imp::CAT, imp = self, "{}: mtu {mtu}", pay.name());
                pay.set_property("mtu", mtu);
            }
        }
        if let Some(b) = upstream
            && let Some(sink) = self.obj().static_pad("sink").filter(|p| p.is_linked())
        {
            let _ = sink.push_event(super::bitrate_event(b));
        }
    }
}
