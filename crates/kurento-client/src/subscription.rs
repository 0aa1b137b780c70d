//! Typed event subscriptions: the local registry that fans `onEvent`
//! notifications out to streams, and the stream handed to the application.
//!
//! The server keeps one delivery channel per (session, object, event type)
//! however many times it is subscribed (spec §5.6), so one notification
//! must reach every local stream of that pair. Each stream still owns its
//! own server subscription id, so dropping one stream leaves the others
//! delivering (mediasoup style: dropping the handle unsubscribes).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::object::ObjectId;

/// An event type declared in a module descriptor (`events::ElementConnected`).
pub trait Event: DeserializeOwned + Send + 'static {
    /// The wire name (`value.type` of `onEvent`, `type` of `subscribe`).
    const NAME: &'static str;
}

/// Marker: a class (or one of its ancestors) declares event `E`, so
/// `on::<E>()` compiles only for events the server will accept (spec §5.6
/// rejects others with 40106).
pub trait Emits<E: Event> {}

type Key = (String, String);

/// Local subscribers per (object id, event type).
#[derive(Default)]
pub(crate) struct Subscriptions {
    next: u64,
    by_key: HashMap<Key, Vec<(u64, mpsc::UnboundedSender<Value>)>>,
}

impl Subscriptions {
    pub(crate) fn add(&mut self, object: &str, event_type: &str) -> (u64, mpsc::UnboundedReceiver<Value>) {
        self.next += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.by_key.entry((object.to_string(), event_type.to_string())).or_default().push((self.next, tx));
        (self.next, rx)
    }

    pub(crate) fn remove(&mut self, object: &str, event_type: &str, local: u64) {
        let key = (object.to_string(), event_type.to_string());
        if let Some(v) = self.by_key.get_mut(&key) {
            v.retain(|(id, _)| *id != local);
            if v.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Delivers `data` to every stream of (object, type); returns how many
    /// got it. Streams that were dropped are forgotten here.
    pub(crate) fn dispatch(&mut self, object: &str, event_type: &str, data: &Value) -> usize {
        let key = (object.to_string(), event_type.to_string());
        let Some(v) = self.by_key.get_mut(&key) else { return 0 };
        v.retain(|(_, tx)| tx.send(data.clone()).is_ok());
        let n = v.len();
        if n == 0 {
            self.by_key.remove(&key);
        }
        n
    }

    /// Ends the streams of a released object and of its children, whose
    /// ids start with the parent's (spec §4.1).
    pub(crate) fn remove_object_tree(&mut self, id: &str) {
        let child_prefix = format!("{id}/");
        self.by_key.retain(|(object, _), _| object != id && !object.starts_with(&child_prefix));
    }

    /// Ends every stream (the session they belonged to is gone).
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }
}

/// A stream of typed events from one object. Yields `None` once the object
/// is released through this client, or the session is lost (spec §3.3).
/// Dropping it unsubscribes (without waiting for the answer).
///
/// Use [`EventStream::next`] directly or any `futures::StreamExt` adaptor.
/// Events are buffered until read.
pub struct EventStream<E> {
    rx: mpsc::UnboundedReceiver<Value>,
    client: Client,
    object: ObjectId,
    event_type: String,
    local: u64,
    subscription: String,
    _event: PhantomData<fn() -> E>,
}

impl<E> EventStream<E> {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Value>,
        client: Client,
        object: ObjectId,
        event_type: String,
        local: u64,
        subscription: String,
    ) -> Self {
        EventStream { rx, client, object, event_type, local, subscription, _event: PhantomData }
    }

    /// The server's subscription id (`subscribe` result, spec §5.6).
    pub fn subscription_id(&self) -> &str {
        &self.subscription
    }

    /// The object this stream listens to.
    pub fn object_id(&self) -> &ObjectId {
        &self.object
    }
}

impl<E: DeserializeOwned> EventStream<E> {
    /// The next event; `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<E> {
        loop {
            let data = self.rx.recv().await?;
            if let Some(e) = self.decode(data) {
                return Some(e);
            }
        }
    }

    /// An event whose `data` does not match the descriptor is logged and
    /// skipped rather than ending the stream: one odd payload should not
    /// cost the application every later event.
    fn decode(&self, data: Value) -> Option<E> {
        match serde_json::from_value::<E>(data) {
            Ok(e) => Some(e),
            Err(err) => {
                tracing::warn!(object = %self.object, event = %self.event_type, %err, "undecodable event skipped");
                None
            }
        }
    }
}

impl<E: DeserializeOwned> Stream for EventStream<E> {
    type Item = E;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<E>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(data)) => {
                    if let Some(e) = self.decode(data) {
                        return Poll::Ready(Some(e));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<E> Drop for EventStream<E> {
    fn drop(&mut self) {
        self.client.subscriptions().remove(self.object.as_str(), &self.event_type, self.local);
        let mut params = Map::new();
        params.insert("object".into(), Value::String(self.object.to_string()));
        params.insert("subscription".into(), Value::String(self.subscription.clone()));
        self.client.send_detached("unsubscribe", params);
    }
}

impl<E> std::fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("object", &self.object)
            .field("event", &self.event_type)
            .field("subscription", &self.subscription)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_notification_reaches_every_stream_of_the_pair() {
        let mut s = Subscriptions::default();
        let (_, mut a) = s.add("P/E", "ElementConnected");
        let (_, mut b) = s.add("P/E", "ElementConnected");
        let (_, mut other) = s.add("P/E", "MediaFlowInStateChanged");
        assert_eq!(s.dispatch("P/E", "ElementConnected", &json!({"x": 1})), 2);
        assert_eq!(a.try_recv().unwrap(), json!({"x": 1}));
        assert_eq!(b.try_recv().unwrap(), json!({"x": 1}));
        assert!(other.try_recv().is_err());
    }

    #[test]
    fn dropped_streams_are_forgotten_on_dispatch() {
        let mut s = Subscriptions::default();
        let (_, a) = s.add("O", "T");
        drop(a);
        assert_eq!(s.dispatch("O", "T", &json!(null)), 0);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn removing_one_keeps_the_others() {
        let mut s = Subscriptions::default();
        let (ida, _a) = s.add("O", "T");
        let (_, mut b) = s.add("O", "T");
        s.remove("O", "T", ida);
        assert_eq!(s.dispatch("O", "T", &json!(2)), 1);
        assert_eq!(b.try_recv().unwrap(), json!(2));
    }

    #[test]
    fn releasing_a_pipeline_ends_its_children_streams_only() {
        let mut s = Subscriptions::default();
        let (_, mut pipe) = s.add("P_kurento.MediaPipeline", "Error");
        let (_, mut child) = s.add("P_kurento.MediaPipeline/E_kurento.PassThrough", "ElementConnected");
        let (_, mut other) = s.add("P2_kurento.MediaPipeline", "Error");
        s.remove_object_tree("P_kurento.MediaPipeline");
        assert!(matches!(pipe.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert!(matches!(child.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert!(matches!(other.try_recv(), Err(mpsc::error::TryRecvError::Empty)));
    }
}
