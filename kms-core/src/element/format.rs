//! `setVideoFormat`/`setAudioFormat` arguments (spec §10.3), checked and
//! turned into the output format every agnosticbin of that media type
//! delivers.

use crate::agnosticbin::codecs::Codec;
use crate::agnosticbin::{OutputFormat, Target};
use crate::api::core::{AudioCaps, AudioCodec, Fraction, VideoCaps, VideoCodec};
use crate::error::{Error, Result};

/// `VideoCaps{codec, framerate}`. A framerate of 0/n keeps the input's.
pub fn video(caps: &VideoCaps) -> Result<OutputFormat> {
    let target = match caps.codec {
        VideoCodec::Vp8 => Target::Codec(Codec::Vp8),
        VideoCodec::Vp9 => Target::Codec(Codec::Vp9),
        VideoCodec::H264 => Target::Codec(Codec::H264),
        VideoCodec::Raw => Target::Raw,
        other => return Err(unsupported(other.as_str())),
    };
    check_encoder(target)?;
    let Fraction { numerator, denominator } = caps.framerate;
    if numerator < 0 || denominator <= 0 {
        return Err(Error::IllegalParam(format!(
            "Invalid framerate {numerator}/{denominator}: expected frames/seconds with a positive denominator"
        )));
    }
    Ok(OutputFormat { target, framerate: (numerator > 0).then_some((numerator, denominator)), bitrate: None })
}

/// `AudioCaps{codec, bitrate}`: the bitrate (bps, 0 = encoder default)
/// applies to the encoder of that codec whenever one runs.
pub fn audio(caps: &AudioCaps) -> Result<OutputFormat> {
    let target = match caps.codec {
        AudioCodec::Opus => Target::Codec(Codec::Opus),
        AudioCodec::Pcmu => Target::Codec(Codec::Pcmu),
        AudioCodec::Pcma => Target::Codec(Codec::Pcma),
        AudioCodec::Raw => Target::Raw,
    };
    check_encoder(target)?;
    if caps.bitrate < 0 {
        return Err(Error::IllegalParam(format!("Invalid audio bitrate {}", caps.bitrate)));
    }
    Ok(OutputFormat { target, framerate: None, bitrate: (caps.bitrate > 0).then_some(caps.bitrate as u32) })
}

fn unsupported(codec: &str) -> Error {
    // KMS's wording for codecs it cannot force.
    Error::UnsupportedMediaType(format!("Invalid parameter provided: {codec}"))
}

fn check_encoder(target: Target) -> Result<()> {
    match target {
        Target::Codec(c) if !c.can_encode() => Err(unsupported(c.encoding_name())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(numerator: i32, denominator: i32) -> Fraction {
        Fraction { numerator, denominator }
    }

    #[test]
    fn video_caps_map_onto_output_formats() {
        gst::init().unwrap();
        let f = video(&VideoCaps { codec: VideoCodec::H264, framerate: fr(15, 1) }).unwrap();
        assert_eq!(f.target, Target::Codec(Codec::H264));
        assert_eq!(f.framerate, Some((15, 1)));
        let f = video(&VideoCaps { codec: VideoCodec::Raw, framerate: fr(0, 1) }).unwrap();
        assert_eq!((f.target, f.framerate), (Target::Raw, None));
        assert_eq!(video(&VideoCaps { codec: VideoCodec::H265, framerate: fr(30, 1) }).unwrap_err().code(), 40005);
        assert_eq!(video(&VideoCaps { codec: VideoCodec::Vp8, framerate: fr(30, 0) }).unwrap_err().code(), 40107);
        assert_eq!(video(&VideoCaps { codec: VideoCodec::Vp8, framerate: fr(-1, 1) }).unwrap_err().code(), 40107);
    }

    #[test]
    fn audio_caps_map_onto_output_formats() {
        gst::init().unwrap();
        let f = audio(&AudioCaps { codec: AudioCodec::Opus, bitrate: 24000 }).unwrap();
        assert_eq!((f.target, f.bitrate), (Target::Codec(Codec::Opus), Some(24000)));
        assert_eq!(audio(&AudioCaps { codec: AudioCodec::Pcmu, bitrate: 0 }).unwrap().bitrate, None);
        assert_eq!(audio(&AudioCaps { codec: AudioCodec::Opus, bitrate: -5 }).unwrap_err().code(), 40107);
    }
}
