//! `connect`/`disconnect` (spec §10.3): every link of a pipeline lives in
//! one table ([`PipelineShared::links`]) under one lock, which keeps
//! loopback and "a new source replaces the old one" race-free. Nothing here
//! waits for a streaming thread: releasing an agnosticbin branch detaches
//! it at once and leaves the rest to the bin's reconciler.
//!
//! [`PipelineShared::links`]: crate::pipeline_shared::PipelineShared

use gst::prelude::*;

use super::{ElementCore, media_type_name, sanitize};
use crate::api::core::events::{ElementConnected, ElementDisconnected};
use crate::api::core::{ElementConnectionData, MediaType};
use crate::error::{Error, Result};
use crate::pipeline_shared::Link;

pub(super) fn unlink(l: &Link) {
    // The branch first: it stops taking data at once, so nothing is pushed
    // into the deactivated ghost below.
    l.agnostic.release_request_pad(&l.branch_pad);
    // A loopback link has no ghost: `src_ghost` is the branch pad itself.
    if l.src_ghost != l.branch_pad {
        let _ = l.src_ghost.set_active(false);
        let _ = l.source_bin.remove_pad(&l.src_ghost);
    }
}

pub(super) fn raise_disconnected(l: &Link) {
    l.source_base.raise(&ElementDisconnected {
        sink: l.sink.clone(),
        media_type: l.media_type,
        source_media_description: l.source_description.clone(),
        sink_media_description: l.sink_description.clone(),
    });
}

/// Media types a call applies to: all three when none is given (spec §10.3).
fn types(t: Option<MediaType>) -> Vec<MediaType> {
    match t {
        Some(t) => vec![t],
        None => vec![MediaType::Audio, MediaType::Video, MediaType::Data],
    }
}

/// `connect` of spec §10.3, for one source/sink pair.
pub fn connect(
    source: &ElementCore,
    sink: &ElementCore,
    media_type: Option<MediaType>,
    source_desc: &str,
    sink_desc: &str,
) -> Result<()> {
    if source.shared.id != sink.shared.id {
        return Err(Error::Connect("Media elements do not share pipeline".into()));
    }
    for t in types(media_type) {
        let Some(agnostic) = source.ensure_output(t, source_desc)? else {
            return Err(Error::Connect(format!(
                "Element: '{}'does note provide a connection for {} {}",
                source.base.name(),
                t,
                source_desc
            )));
        };
        let Some(sink_pad) = sink.ensure_input(t, sink_desc)? else {
            return Err(Error::Connect(format!("Element: '{}' does not accept {} {}", sink.base.name(), t, sink_desc)));
        };
        let replaced = {
            let mut links = source.shared.links.lock();
            let sink_id = sink.base.id();
            // One source per sink input: the old link goes first.
            let old = links
                .iter()
                .position(|l| &l.sink == sink_id && l.media_type == t && l.sink_description == sink_desc)
                .map(|i| links.remove(i));
            if let Some(o) = &old {
                unlink(o);
            }
            let branch_pad = agnostic
                .request_pad_simple("src_%u")
                .ok_or_else(|| Error::Connect("no pad available on the source's output".into()))?;
            let (in_ghost, in_target) =
                sink.input_target(t, sink_desc).ok_or_else(|| Error::Connect("input vanished".into()))?;
            let ghost: gst::Pad = if source.base.id() == sink_id {
                // Loopback: both ends are children of the same bin, which
                // cannot link to itself; link inside it instead.
                let _ = in_ghost.set_target(None::<&gst::Pad>);
                // Formats are agreed per branch by the agnosticbin (a consumer may
                // accept nothing until it is negotiated): no caps check here.
                // An element whose input *is* its output (PassThrough) fed
                // by itself is a closed loop: its only source is itself, so
                // nothing can ever flow. GStreamer refuses a pad link within
                // one element; the connection exists for the API (events,
                // get*Connections) and the branch stays unlinked.
                let closed_loop =
                    branch_pad.parent_element().is_some() && branch_pad.parent_element() == in_target.parent_element();
                if !closed_loop && let Err(e) = branch_pad.link_full(&in_target, gst::PadLinkCheck::HIERARCHY) {
                    let _ = in_ghost.set_target(Some(&in_target));
                    agnostic.release_request_pad(&branch_pad);
                    return Err(Error::Connect(format!("cannot link: {e:?}")));
                }
                branch_pad.clone()
            } else {
                if in_ghost.target().is_none() {
                    let _ = in_ghost.set_target(Some(&in_target));
                }
                let ghost = gst::GhostPad::builder_with_target(&branch_pad)
                    .map_err(|e| Error::Connect(e.to_string()))?
                    .name(format!("src_{}_{}_{}", media_type_name(t), sanitize(source_desc), branch_pad.name()))
                    .build();
                let _ = ghost.set_active(true);
                source.bin.add_pad(&ghost).map_err(|e| Error::Connect(e.to_string()))?;
                if let Err(e) = ghost.link_full(&sink_pad, gst::PadLinkCheck::HIERARCHY) {
                    let _ = source.bin.remove_pad(&ghost);
                    agnostic.release_request_pad(&branch_pad);
                    return Err(Error::Connect(format!("cannot link: {e:?}")));
                }
                ghost.upcast()
            };
            links.push(Link {
                source: source.base.id().clone(),
                sink: sink_id.clone(),
                media_type: t,
                source_description: source_desc.to_string(),
                sink_description: sink_desc.to_string(),
                source_base: source.base.clone(),
                source_bin: source.bin.clone(),
                agnostic: agnostic.clone(),
                branch_pad,
                src_ghost: ghost,
            });
            old
        };
        if let Some(o) = replaced {
            raise_disconnected(&o);
        }
        source.base.raise(&ElementConnected {
            sink: sink.base.id().clone(),
            media_type: t,
            source_media_description: source_desc.to_string(),
            sink_media_description: sink_desc.to_string(),
        });
    }
    Ok(())
}

/// `disconnect` of spec §10.3: never fails, always raises the event.
pub fn disconnect(
    source: &ElementCore,
    sink: &ElementCore,
    media_type: Option<MediaType>,
    source_desc: &str,
    sink_desc: &str,
) {
    for t in types(media_type) {
        let found = {
            let mut links = source.shared.links.lock();
            let pos = links.iter().position(|l| {
                &l.source == source.base.id()
                    && &l.sink == sink.base.id()
                    && l.media_type == t
                    && l.source_description == source_desc
                    && l.sink_description == sink_desc
            });
            pos.map(|i| links.remove(i))
        };
        if let Some(l) = &found {
            unlink(l);
        }
        source.base.raise(&ElementDisconnected {
            sink: sink.base.id().clone(),
            media_type: t,
            source_media_description: source_desc.to_string(),
            sink_media_description: sink_desc.to_string(),
        });
    }
}

pub(super) fn connection_data(l: &Link) -> ElementConnectionData {
    ElementConnectionData {
        source: l.source.clone(),
        sink: l.sink.clone(),
        r#type: l.media_type,
        source_description: l.source_description.clone(),
        sink_description: l.sink_description.clone(),
    }
}
