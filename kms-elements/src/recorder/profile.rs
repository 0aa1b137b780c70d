//! `MediaProfileSpecType` → what to build (spec §10.9), as plain data: the
//! container, per media type the caps the recorder asks its source's
//! agnosticbin for, and the elements between that input and the muxer.
//! Pure; `session.rs` turns a [`Plan`] into GStreamer elements.
//!
//! The codecs are those of spec §10.9 (KMS's): WEBM VP8/Opus, MKV, MP4 and
//! FLV H.264/AAC. Each track asks for exactly its codec, so the source's
//! agnosticbin passes a matching stream through (VP8 RTP is only
//! depayloaded for WEBM, H.264 only for MP4) and re-encodes anything else.
//! agnosticbin has no AAC or JPEG encoder: those tracks ask for raw media
//! (the source decodes) and the recorder encodes.

use crate::api::elements::MediaProfileSpecType;

/// The file or stream layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    WebM,
    Matroska,
    Mp4,
    Flv,
    /// JPEG images one after another, no container (KMS: `jifmux`).
    Jpeg,
}

/// Audio or video track of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    Audio,
    Video,
}

/// One track: what the recorder accepts and how it reaches the muxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub kind: TrackKind,
    /// Caps the recorder's input answers to the source's caps query (what
    /// agnosticbin must deliver), in `gst::Caps` string form.
    pub accept: &'static str,
    /// Element factories between the input and the muxer, in order. The
    /// first available of each `&[..]` group is used.
    pub chain: Vec<&'static [&'static str]>,
    /// Codec name as `ffprobe` reports it (docs and tests).
    pub codec: &'static str,
}

/// Where the bytes go, which decides how the muxer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A seekable local file: the muxer may go back to write indexes and
    /// the duration when the recording ends.
    File,
    /// A stream (HTTP upload, other sink URIs): written strictly forward.
    Stream,
}

/// Muxer settings for a destination (see `docs/architecture.md`,
/// "RecorderEndpoint" for why these layouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Muxer {
    pub factory: &'static str,
    /// `(property, value)` pairs, set with `set_property_from_str`.
    pub properties: Vec<(&'static str, String)>,
    /// Request pad template per track kind (`None`: the always pad `sink`).
    pub audio_pad: Option<&'static str>,
    pub video_pad: Option<&'static str>,
}

/// Matroska clusters (and MP4 fragments) are closed at least this often,
/// so a crash loses at most about this much media.
pub const FRAGMENT_MS: u64 = 1000;

/// Everything a profile decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub profile: MediaProfileSpecType,
    pub container: Container,
    pub tracks: Vec<Track>,
    /// `Content-Type` of an HTTP upload.
    pub mime: &'static str,
}

/// Why a profile cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// KMS answers this when its `kmsrecorder` split-recorder plugin is
    /// absent, which it is in every KMS 7 package; we have none either.
    #[error("Kurento Split Recorder not supported")]
    SplitRecorderUnsupported,
}

impl From<ProfileError> for kms_core::Error {
    fn from(e: ProfileError) -> Self {
        // spec §8: KSR unsupported → 40107.
        kms_core::Error::IllegalParam(e.to_string())
    }
}

const AAC_ENCODERS: &[&str] = &["fdkaacenc", "avenc_aac", "voaacenc"];

fn vp8() -> Track {
    Track { kind: TrackKind::Video, accept: "video/x-vp8", chain: vec![], codec: "vp8" }
}

fn opus() -> Track {
    // opusparse: WebRTC's depayloaded Opus caps lack the `rate` the
    // Matroska muxers require.
    Track { kind: TrackKind::Audio, accept: "audio/x-opus", chain: vec![&["opusparse"]], codec: "opus" }
}

fn h264() -> Track {
    // h264parse turns the byte stream into the avc form the muxers store.
    Track { kind: TrackKind::Video, accept: "video/x-h264", chain: vec![&["h264parse"]], codec: "h264" }
}

fn aac() -> Track {
    Track {
        kind: TrackKind::Audio,
        accept: "audio/x-raw",
        chain: vec![&["audioconvert"], &["audioresample"], AAC_ENCODERS, &["aacparse"]],
        codec: "aac",
    }
}

fn jpeg() -> Track {
    Track {
        kind: TrackKind::Video,
        accept: "video/x-raw",
        chain: vec![&["videoconvert"], &["jpegenc"]],
        codec: "mjpeg",
    }
}

impl Plan {
    pub fn new(profile: MediaProfileSpecType) -> Result<Plan, ProfileError> {
        use MediaProfileSpecType as P;
        let (container, tracks) = match profile {
            P::Webm => (Container::WebM, vec![opus(), vp8()]),
            P::WebmAudioOnly => (Container::WebM, vec![opus()]),
            P::WebmVideoOnly => (Container::WebM, vec![vp8()]),
            P::Mkv => (Container::Matroska, vec![aac(), h264()]),
            P::MkvAudioOnly => (Container::Matroska, vec![aac()]),
            P::MkvVideoOnly => (Container::Matroska, vec![h264()]),
            P::Mp4 => (Container::Mp4, vec![aac(), h264()]),
            P::Mp4AudioOnly => (Container::Mp4, vec![aac()]),
            P::Mp4VideoOnly => (Container::Mp4, vec![h264()]),
            P::Flv => (Container::Flv, vec![aac(), h264()]),
            P::JpegVideoOnly => (Container::Jpeg, vec![jpeg()]),
            P::KurentoSplitRecorder => return Err(ProfileError::SplitRecorderUnsupported),
        };
        let video = tracks.iter().any(|t| t.kind == TrackKind::Video);
        let mime = match container {
            Container::WebM if video => "video/webm",
            Container::WebM => "audio/webm",
            Container::Matroska if video => "video/x-matroska",
            Container::Matroska => "audio/x-matroska",
            Container::Mp4 if video => "video/mp4",
            Container::Mp4 => "audio/mp4",
            Container::Flv => "video/x-flv",
            Container::Jpeg => "image/jpeg",
        };
        Ok(Plan { profile, container, tracks, mime })
    }

    /// The track of a kind, if the profile records it.
    pub fn track(&self, kind: TrackKind) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == kind)
    }

    /// The muxer for a destination; `None` for JPEG (no container).
    pub fn muxer(&self, dest: Destination) -> Option<Muxer> {
        let ms = FRAGMENT_MS;
        let ns = ms * 1_000_000;
        let file = dest == Destination::File;
        let matroska = |factory| Muxer {
            factory,
            properties: vec![
                // Written as it comes, one cluster at least every FRAGMENT_MS:
                // a killed server leaves a file that plays up to its last
                // cluster. On a file, EOS adds the cues and the duration.
                ("streamable", (!file).to_string()),
                ("max-cluster-duration", ns.to_string()),
            ],
            audio_pad: Some("audio_%u"),
            video_pad: Some("video_%u"),
        };
        Some(match self.container {
            Container::WebM => matroska("webmmux"),
            Container::Matroska => matroska("matroskamux"),
            Container::Mp4 => Muxer {
                factory: "mp4mux",
                properties: if file {
                    // A moov, then a moof+mdat per FRAGMENT_MS (each track's
                    // samples of a fragment contiguous, one trun per track);
                    // at EOS the duration goes into the moov's mehd and a
                    // random-access index (mfra) is appended. Not
                    // `first-moov-then-finalise`: its interleaved fragments
                    // sometimes get a trun that relies on defaults it never
                    // writes (qtmux 1.22), which players refuse after a crash.
                    vec![("fragment-duration", ms.to_string())]
                } else {
                    vec![("fragment-duration", ms.to_string()), ("streamable", "true".to_string())]
                },
                audio_pad: Some("audio_%u"),
                video_pad: Some("video_%u"),
            },
            Container::Flv => Muxer {
                factory: "flvmux",
                // FLV is a sequence of tags (crash-safe by itself); on a file
                // EOS rewrites the header's duration and file size.
                properties: vec![("streamable", (!file).to_string())],
                audio_pad: Some("audio"),
                video_pad: Some("video"),
            },
            Container::Jpeg => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaProfileSpecType as P;

    fn codecs(p: MediaProfileSpecType) -> Vec<(TrackKind, &'static str)> {
        Plan::new(p).unwrap().tracks.iter().map(|t| (t.kind, t.codec)).collect()
    }

    #[test]
    fn every_profile_has_the_codecs_of_spec_10_9() {
        use TrackKind::*;
        assert_eq!(codecs(P::Webm), [(Audio, "opus"), (Video, "vp8")]);
        assert_eq!(codecs(P::WebmAudioOnly), [(Audio, "opus")]);
        assert_eq!(codecs(P::WebmVideoOnly), [(Video, "vp8")]);
        for p in [P::Mkv, P::Mp4, P::Flv] {
            assert_eq!(codecs(p), [(Audio, "aac"), (Video, "h264")], "{p:?}");
        }
        for p in [P::MkvAudioOnly, P::Mp4AudioOnly] {
            assert_eq!(codecs(p), [(Audio, "aac")], "{p:?}");
        }
        for p in [P::MkvVideoOnly, P::Mp4VideoOnly] {
            assert_eq!(codecs(p), [(Video, "h264")], "{p:?}");
        }
        assert_eq!(codecs(P::JpegVideoOnly), [(Video, "mjpeg")]);
    }

    #[test]
    fn split_recorder_is_refused_as_kms_does() {
        assert_eq!(Plan::new(P::KurentoSplitRecorder), Err(ProfileError::SplitRecorderUnsupported));
        let e: kms_core::Error = ProfileError::SplitRecorderUnsupported.into();
        assert!(matches!(e, kms_core::Error::IllegalParam(_)));
    }

    #[test]
    fn tracks_ask_for_their_codec_so_matching_input_is_not_reencoded() {
        // VP8 and Opus are asked for as elementary streams: the source's
        // agnosticbin only depayloads WebRTC's VP8/Opus for WEBM.
        let webm = Plan::new(P::Webm).unwrap();
        assert_eq!(webm.track(TrackKind::Video).unwrap().accept, "video/x-vp8");
        assert!(webm.track(TrackKind::Video).unwrap().chain.is_empty());
        assert_eq!(webm.track(TrackKind::Audio).unwrap().accept, "audio/x-opus");
        let mp4 = Plan::new(P::Mp4).unwrap();
        assert_eq!(mp4.track(TrackKind::Video).unwrap().accept, "video/x-h264");
        // No AAC encoder in agnosticbin: raw audio, encoded here.
        assert_eq!(mp4.track(TrackKind::Audio).unwrap().accept, "audio/x-raw");
        assert!(mp4.track(TrackKind::Audio).unwrap().chain.contains(&AAC_ENCODERS));
    }

    #[test]
    fn only_the_profile_media_types_are_tracks() {
        let p = Plan::new(P::WebmVideoOnly).unwrap();
        assert!(p.track(TrackKind::Audio).is_none());
        let p = Plan::new(P::Mp4AudioOnly).unwrap();
        assert!(p.track(TrackKind::Video).is_none());
        assert_eq!(p.mime, "audio/mp4");
    }

    #[test]
    fn files_are_written_crash_safe_and_finalized_streams_forward_only() {
        let prop = |m: &Muxer, k: &str| m.properties.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let webm = Plan::new(P::Webm).unwrap();
        let f = webm.muxer(Destination::File).unwrap();
        assert_eq!(f.factory, "webmmux");
        assert_eq!(prop(&f, "streamable").as_deref(), Some("false"));
        assert_eq!(prop(&f, "max-cluster-duration").as_deref(), Some("1000000000"));
        let s = webm.muxer(Destination::Stream).unwrap();
        assert_eq!(prop(&s, "streamable").as_deref(), Some("true"));

        let mp4 = Plan::new(P::Mp4).unwrap();
        let f = mp4.muxer(Destination::File).unwrap();
        assert_eq!(prop(&f, "fragment-mode"), None, "DASH-style fragments");
        assert_eq!(prop(&f, "fragment-duration").as_deref(), Some("1000"));
        assert_eq!(prop(&f, "streamable"), None, "seekable: duration and index at EOS");
        let s = mp4.muxer(Destination::Stream).unwrap();
        assert_eq!(prop(&s, "streamable").as_deref(), Some("true"));
        assert_eq!(prop(&s, "fragment-duration").as_deref(), Some("1000"));

        assert_eq!(Plan::new(P::Mkv).unwrap().muxer(Destination::File).unwrap().factory, "matroskamux");
        assert_eq!(Plan::new(P::Flv).unwrap().muxer(Destination::File).unwrap().audio_pad, Some("audio"));
        assert!(Plan::new(P::JpegVideoOnly).unwrap().muxer(Destination::File).is_none());
    }
}
