//! Typed async client for Kurento Media Server (spec: the Kurento Protocol,
//! JSON-RPC over WebSocket).
//!
//! The proxies, complex types and events are generated from the same module
//! descriptors the server is generated from (`core`, `elements`, `filters`)
//! and checked in under `src/auto/`; a test fails when they are stale, so
//! client and server cannot drift apart. The transport is hand-written.
//!
//! ```no_run
//! use kurento_client::{Client, MediaPipeline, MediaPipelineParams, MediaType, PassThrough, PassThroughParams};
//! use kurento_client::events::ElementConnected;
//!
//! # async fn demo() -> kurento_client::Result<()> {
//! let client = Client::connect("ws://127.0.0.1:8888/kurento").await?;
//! let pipeline = client.create::<MediaPipeline>(MediaPipelineParams::new()).await?;
//! let source = pipeline.create::<PassThrough>(PassThroughParams::new()).await?;
//! let sink = pipeline.create::<PassThrough>(PassThroughParams::new()).await?;
//!
//! let mut connected = source.on::<ElementConnected>().await?;
//! // `connect` is MediaElement's, reached through Deref; optional
//! // parameters are set on the call before awaiting it.
//! source.connect(&sink).media_type(MediaType::Video).await?;
//! let event = connected.next().await.expect("stream open");
//! assert_eq!(event.sink, *sink.id());
//!
//! pipeline.release().await?;
//! # Ok(()) }
//! ```
//!
//! * Every remote class is a proxy struct that derefs to its parent's, down
//!   to [`RemoteObject`] (`id()`, `release()`, raw `invoke`).
//! * Methods with optional parameters return a builder that runs when
//!   awaited; the server picks the overload from which optional parameters
//!   are present (spec §6).
//! * `on::<E>()` only compiles for events the class declares; the stream
//!   ends when the object is released or the session is lost, and
//!   unsubscribes when dropped.
//! * Dropping a proxy never releases anything (objects are shared by
//!   sessions, spec §4.3): call `release()`, or wrap with
//!   [`RemoteClass::release_on_drop`].
//! * The client reconnects and resumes its session by itself (spec §3.3);
//!   watch [`Client::connection_events`] for a restarted server.
//!
//! Events are checked against the class at compile time. A WebRtcEndpoint
//! raises `IceCandidateFound`:
//!
//! ```no_run
//! # async fn f(pipeline: kurento_client::MediaPipeline) -> kurento_client::Result<()> {
//! use kurento_client::{WebRtcEndpoint, WebRtcEndpointParams, events::IceCandidateFound};
//! let webrtc = pipeline.create::<WebRtcEndpoint>(WebRtcEndpointParams::new().recvonly(true)).await?;
//! let mut candidates = webrtc.on::<IceCandidateFound>().await?;
//! webrtc.gather_candidates().await?;
//! while let Some(c) = candidates.next().await {
//!     println!("{}", c.candidate.candidate);
//! }
//! # Ok(()) }
//! ```
//!
//! a PassThrough does not, so this does not compile:
//!
//! ```compile_fail
//! # async fn f(pass: kurento_client::PassThrough) -> kurento_client::Result<()> {
//! let _ = pass.on::<kurento_client::events::IceCandidateFound>().await?;
//! # Ok(()) }
//! ```

// Generated code names the runtime as `::kurento_client::rt`, the path
// third-party module crates use; this makes it resolve here too.
extern crate self as kurento_client;

mod client;
mod connection;
mod error;
mod object;
#[cfg(test)]
mod plugin_fixture;
mod protocol;
pub mod rt;
mod subscription;
mod types;

// Generated from the built-in descriptors and checked in (`ci/regen.sh`).
mod auto;

pub use auto::{core, elements, filters};

pub use core::*;
pub use elements::*;
pub use filters::*;

/// Every event of the built-in modules.
pub mod events {
    pub use crate::core::events::*;
    pub use crate::elements::events::*;
    pub use crate::filters::events::*;
}

pub use client::{Client, ClientBuilder, ConnectionEvent, Operation};
pub use error::{Error, Result, ServerError};
pub use object::{
    ConstructorParams, Creatable, Description, NoParent, ObjectId, ReleaseOnDrop, RemoteClass, RemoteObject,
};
pub use subscription::{Emits, Event, EventStream};
pub use types::{ComplexType, Polymorphic};

/// Traits whose methods applications call (`release_on_drop`).
pub mod prelude {
    pub use crate::{Creatable, RemoteClass};
}
