//! HttpPostEndpoint (spec §10.9): media files POSTed by HTTP clients enter
//! the pipeline.
//!
//! ```text
//! POST /kurento-http/<token> ─► BodyReader ─► upload thread ─► appsrc ─► decodebin | parsebin
//!                                                   ─► clocksync (per stream) ─► agnosticbin(audio|video)
//! ```
//!
//! The media URL lives on the server's own listener (`kms_jsonrpc::
//! http_routes`); the route is registered at construction and removed when
//! the endpoint is released or dropped. Each upload gets a fresh decoding
//! chain whose streams are paced to the pipeline clock (a file plays at its
//! own speed, as a live source would, and the client's upload is slowed
//! down accordingly by the route's bounded queue).
//!
//! * A complete body: `EndOfStream` is raised when its end left every
//!   stream; the EOS itself is not passed on, so consumers take the next
//!   upload.
//! * A connection lost mid-body: the endpoint waits `disconnectionTimeout`
//!   seconds for the client to POST the rest (appended to the same stream);
//!   then it ends the stream (`EndOfStream`) and raises
//!   `MediaSessionTerminated`.
//! * A body that is not media: an `Error` event (from the bus), HTTP 400.
//! * A new POST after the end of the previous stream starts a new stream.
//!
//! Containers: whatever `decodebin`/`parsebin` demux in push mode: WebM,
//! MKV, fragmented or "faststart" MP4 (moov before mdat). An MP4 with its
//! index at the end cannot be read from a non-seekable upload: qtdemux
//! errors, which is reported as an `Error` event and HTTP 400.

mod mp4;
mod upload;

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use kms_core::agnosticbin::AgnosticBin;
use kms_core::api::core::{Endpoint, MediaType, SessionEndpoint};
use kms_core::element::{ElementCore, ElementObject, MediaIo, media_type_name};
use kms_core::object::{ObjectBase, RemoteObject};
use kms_core::rt::Ctx;
use kms_core::{Error, Result};
use kms_jsonrpc::{BodyReader, HttpRefusal, HttpRoutes, RequestHead, RouteGuard, RouteHandler, codes};

use crate::api::elements::{HttpEndpoint, HttpPostEndpoint, HttpPostEndpointConstructor, HttpPostEndpointFactory};
use upload::Uploads;

/// The outputs: one agnosticbin per media type, created on first use;
/// uploads link their streams to them. DATA exists, as on every KMS element
/// (so `connect` without a media type works), and stays silent: an upload
/// carries no data channel messages.
#[derive(Default)]
pub(crate) struct Outputs {
    bins: Mutex<Vec<(MediaType, AgnosticBin)>>,
}

impl Outputs {
    pub(crate) fn get(&self, bin: &gst::Bin, t: MediaType) -> Option<AgnosticBin> {
        use gst::prelude::*;
        let mut bins = self.bins.lock();
        if let Some((_, a)) = bins.iter().find(|(k, _)| *k == t) {
            return Some(a.clone());
        }
        let a = AgnosticBin::new(&format!("output_{}", media_type_name(t)));
        bin.add(&a).ok()?;
        a.sync_state_with_parent().ok()?;
        bins.push((t, a.clone()));
        Some(a)
    }
}

struct HttpPostIo(Arc<Outputs>);

impl MediaIo for HttpPostIo {
    fn input(&self, _: &gst::Bin, _: MediaType, _: &str) -> Option<gst::Pad> {
        None
    }

    fn output(&self, bin: &gst::Bin, t: MediaType, desc: &str) -> Option<AgnosticBin> {
        if desc != "default" {
            return None;
        }
        self.0.get(bin, t)
    }
}

pub struct HttpPostEndpointImpl {
    core: ElementCore,
    uploads: Arc<Uploads>,
    routes: HttpRoutes,
    /// `HttpEndpoint.announcedAddress` (or `serverAddress`) for the URL.
    announced: Option<String>,
    /// The media URL's registration; `None` once released.
    route: Mutex<Option<RouteGuard>>,
}

impl RemoteObject for HttpPostEndpointImpl {
    fn object(&self) -> &ObjectBase {
        self.core.base()
    }

    fn element(&self) -> Option<&ElementCore> {
        Some(&self.core)
    }

    fn release(&self) {
        // Route first: no upload can start on a half-released element.
        drop(self.route.lock().take());
        self.uploads.close();
        self.core.release();
    }
}

impl Drop for HttpPostEndpointImpl {
    fn drop(&mut self) {
        drop(self.route.lock().take());
        self.uploads.close();
    }
}

impl ElementObject for HttpPostEndpointImpl {
    fn core(&self) -> &ElementCore {
        &self.core
    }
}

impl Endpoint for HttpPostEndpointImpl {}
impl SessionEndpoint for HttpPostEndpointImpl {}
impl HttpPostEndpoint for HttpPostEndpointImpl {}

impl HttpEndpoint for HttpPostEndpointImpl {
    fn get_url(&self, _ctx: &Ctx) -> Result<String> {
        let route = self.route.lock();
        let token = route.as_ref().map(|g| g.token().clone()).ok_or_else(|| registration_error("endpoint released"))?;
        self.routes
            .url(&token, self.announced.as_deref())
            .ok_or_else(|| registration_error("the server has no HTTP listener"))
    }
}

fn registration_error(why: &str) -> Error {
    Error::Code { code: codes::HTTP_END_POINT_REGISTRATION_ERROR, message: format!("Cannot get the URL: {why}") }
}

/// The route's handler; holds the uploads weakly so the route never keeps
/// a released endpoint alive.
struct PostRoute(Weak<Uploads>);

impl RouteHandler for PostRoute {
    fn request(&self, _head: &RequestHead, body: BodyReader) -> std::result::Result<(), HttpRefusal> {
        let uploads = self.0.upgrade().ok_or_else(|| HttpRefusal::Unavailable("endpoint released".into()))?;
        uploads.accept(body)
    }
}

/// `HttpEndpoint.conf.ini`: `announcedAddress`, else `serverAddress`.
fn announced_address(ctx: &Ctx) -> Option<String> {
    ["announcedAddress", "serverAddress"].iter().find_map(|k| {
        let v = ctx.config().module_value("kurento", "HttpEndpoint", k)?;
        v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
    })
}

impl HttpPostEndpointFactory for HttpPostEndpointImpl {
    fn construct(ctx: &Ctx, params: HttpPostEndpointConstructor) -> Result<Arc<Self>> {
        let pipeline = params.media_pipeline;
        let shared =
            pipeline.pipeline().cloned().ok_or_else(|| Error::marshall("'mediaPipeline' is not a pipeline"))?;
        let missing: Vec<&str> = ["appsrc", "decodebin", "parsebin", "clocksync"]
            .into_iter()
            .filter(|f| gst::ElementFactory::find(f).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::NotAvailable(format!("GStreamer element cannot be created: {}", missing.join(", "))));
        }
        if params.disconnection_timeout < 0 {
            return Err(Error::IllegalParam("'disconnectionTimeout' must not be negative".into()));
        }
        let parent: &dyn RemoteObject = pipeline.as_ref();
        let base = ctx.new_object_base(Some(parent));
        let outputs = Arc::new(Outputs::default());
        let core = ElementCore::new(ctx, base, shared, Box::new(HttpPostIo(outputs.clone())))?;
        let uploads = Uploads::new(
            core.bin().clone(),
            outputs,
            params.use_encoded_media,
            std::time::Duration::from_secs(params.disconnection_timeout as u64),
        );
        let routes = ctx.config().http_routes.clone();
        let route = routes.register(Arc::new(PostRoute(Arc::downgrade(&uploads))));
        let ep = Arc::new(HttpPostEndpointImpl {
            core,
            uploads,
            routes,
            announced: announced_address(ctx),
            route: Mutex::new(Some(route)),
        });
        ep.uploads.set_events(ep.core.base().clone());
        // Outputs exist from the start so flow events fire before anything
        // is connected, and connections made before the first POST hold.
        for t in [MediaType::Audio, MediaType::Video] {
            let _ = ep.core.output(t, "default");
        }
        tracing::debug!(id = %ep.core.base().id(), "HttpPostEndpoint created");
        Ok(ep)
    }
}
