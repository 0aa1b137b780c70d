//! Which source each hub port's output should carry, per media type: the
//! pure part of the Dispatcher, DispatcherOneToMany and Mixer (spec §10.10),
//! apart from the GStreamer wiring in `router`.

use std::collections::{BTreeSet, HashMap};

use kms_core::api::core::MediaType;
use kms_core::object::ObjectId;

/// What one port output of one media type should receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Nothing,
    /// One source's stream as it is (switched at the encoded level).
    One(ObjectId),
    /// The mix of these sources (decoded, mixed, re-encoded by the port's
    /// output agnosticbin).
    Mix(BTreeSet<ObjectId>),
}

/// The routing a hub was told to do.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Dispatcher: sink port → source port, every media type.
    Routes(HashMap<ObjectId, ObjectId>),
    /// DispatcherOneToMany: the source, sent to every other port.
    Broadcast(Option<ObjectId>),
    /// Mixer: video routed like the Dispatcher, audio mixed per sink.
    Mixer { video: HashMap<ObjectId, ObjectId>, audio: HashMap<ObjectId, BTreeSet<ObjectId>> },
}

impl Selection {
    pub fn routes() -> Selection {
        Selection::Routes(HashMap::new())
    }

    pub fn broadcast() -> Selection {
        Selection::Broadcast(None)
    }

    pub fn mixer() -> Selection {
        Selection::Mixer { video: HashMap::new(), audio: HashMap::new() }
    }

    /// What `sink`'s output of type `t` should carry.
    pub fn want(&self, sink: &ObjectId, t: MediaType) -> Want {
        match self {
            Selection::Routes(m) => m.get(sink).map_or(Want::Nothing, |s| Want::One(s.clone())),
            Selection::Broadcast(Some(src)) if src != sink => Want::One(src.clone()),
            Selection::Broadcast(_) => Want::Nothing,
            Selection::Mixer { video, audio } => match t {
                MediaType::Video => video.get(sink).map_or(Want::Nothing, |s| Want::One(s.clone())),
                MediaType::Audio => match audio.get(sink) {
                    Some(set) if !set.is_empty() => Want::Mix(set.clone()),
                    _ => Want::Nothing,
                },
                MediaType::Data => Want::Nothing,
            },
        }
    }

    /// A port went away: nothing comes from it or goes to it any more.
    pub fn forget(&mut self, port: &ObjectId) {
        match self {
            Selection::Routes(m) => m.retain(|k, v| k != port && v != port),
            Selection::Broadcast(src) => {
                if src.as_ref() == Some(port) {
                    *src = None;
                }
            }
            Selection::Mixer { video, audio } => {
                video.retain(|k, v| k != port && v != port);
                audio.remove(port);
                for set in audio.values_mut() {
                    set.remove(port);
                }
                audio.retain(|_, set| !set.is_empty());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ObjectId {
        ObjectId::from(s)
    }

    #[test]
    fn dispatcher_routes_every_type_and_reconnecting_replaces_the_source() {
        let mut s = Selection::routes();
        if let Selection::Routes(m) = &mut s {
            m.insert(id("b"), id("a"));
            m.insert(id("c"), id("a"));
        }
        assert_eq!(s.want(&id("b"), MediaType::Video), Want::One(id("a")));
        assert_eq!(s.want(&id("c"), MediaType::Audio), Want::One(id("a")));
        assert_eq!(s.want(&id("a"), MediaType::Video), Want::Nothing);
        if let Selection::Routes(m) = &mut s {
            m.insert(id("b"), id("c"));
        }
        assert_eq!(s.want(&id("b"), MediaType::Video), Want::One(id("c")));
        s.forget(&id("c"));
        assert_eq!(s.want(&id("b"), MediaType::Video), Want::Nothing);
        assert_eq!(s.want(&id("c"), MediaType::Video), Want::Nothing);
    }

    #[test]
    fn one_to_many_sends_the_source_to_every_other_port() {
        let mut s = Selection::Broadcast(Some(id("a")));
        assert_eq!(s.want(&id("b"), MediaType::Video), Want::One(id("a")));
        assert_eq!(s.want(&id("a"), MediaType::Video), Want::Nothing);
        s.forget(&id("b"));
        assert_eq!(s.want(&id("c"), MediaType::Audio), Want::One(id("a")));
        s.forget(&id("a"));
        assert_eq!(s.want(&id("c"), MediaType::Audio), Want::Nothing);
    }

    #[test]
    fn mixer_mixes_audio_and_routes_video_per_sink() {
        let mut s = Selection::mixer();
        if let Selection::Mixer { video, audio } = &mut s {
            video.insert(id("c"), id("a"));
            audio.entry(id("c")).or_default().extend([id("a"), id("b")]);
        }
        assert_eq!(s.want(&id("c"), MediaType::Video), Want::One(id("a")));
        assert_eq!(s.want(&id("c"), MediaType::Audio), Want::Mix([id("a"), id("b")].into()));
        assert_eq!(s.want(&id("c"), MediaType::Data), Want::Nothing);
        s.forget(&id("a"));
        assert_eq!(s.want(&id("c"), MediaType::Video), Want::Nothing);
        assert_eq!(s.want(&id("c"), MediaType::Audio), Want::Mix([id("b")].into()));
        s.forget(&id("b"));
        assert_eq!(s.want(&id("c"), MediaType::Audio), Want::Nothing);
    }
}
