//! kms-elements: endpoints and hubs (WebRtcEndpoint, RtpEndpoint,
//! PlayerEndpoint, RecorderEndpoint, HttpPostEndpoint, Composite, ...).
//!
//! The module is registered with the classes implemented so far; the
//! others are absent from its factories (create answers 40108) until their
//! issues land.

extern crate self as kms_elements;

pub mod api;
pub mod http;
pub mod hubs;
pub mod player;
pub mod recorder;
pub mod rtp;
// The routing hubs (Dispatcher, DispatcherOneToMany, Mixer).
pub mod dispatch;
pub mod uri;
pub mod webrtc;

/// Descriptor of the `elements` module with its implemented classes.
pub fn descriptor() -> kms_core::rt::ModuleDescriptor {
    api::elements::module_descriptor(vec![
        api::elements::dispatcher_class::<dispatch::DispatcherImpl>(),
        api::elements::dispatcher_one_to_many_class::<dispatch::DispatcherOneToManyImpl>(),
        api::elements::mixer_class::<dispatch::MixerImpl>(),
        webrtc::class(),
        api::elements::recorder_endpoint_class::<recorder::RecorderEndpointImpl>(),
        api::elements::player_endpoint_class::<player::PlayerEndpointImpl>(),
        api::elements::rtp_endpoint_class::<rtp::RtpEndpointImpl>(),
        api::elements::http_post_endpoint_class::<http::HttpPostEndpointImpl>(),
        api::elements::composite_class::<hubs::CompositeImpl>(),
        api::elements::alpha_blending_class::<hubs::AlphaBlendingImpl>(),
    ])
}
