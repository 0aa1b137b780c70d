//! A connection's outbound queue, bounded in bytes.
//!
//! Responses and events ([`crate::Notifier`], called from GStreamer
//! streaming threads) are queued here and written by the connection's writer
//! task. A peer that stops reading would otherwise let the queue, and the
//! server's memory, grow without end. Past `max_bytes` the outbox overflows
//! once: every later push is dropped and the connection is told to close
//! with 1008 (its session survives for reconnection, spec §3.2).
//!
//! `push` never blocks and never allocates beyond the message itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{mpsc, watch};

/// Bookkeeping cost of one queued message on top of its text (channel
/// node, `String` header), so that floods of tiny events count too.
const PER_MESSAGE_OVERHEAD: usize = 64;

/// What a connection's writer task sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outbound {
    Text(String),
    /// Close frame, then stop writing.
    Close(u16, &'static str),
}

/// Result of [`Outbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// This push overflowed the outbox (reported once per connection).
    Overflowed,
    /// Dropped: the outbox overflowed earlier or the writer is gone.
    Dropped,
}

struct Shared {
    queued: AtomicUsize,
    overflowed: AtomicBool,
    max_bytes: usize,
    overflow_tx: watch::Sender<bool>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    shared: Arc<Shared>,
}

/// The writer's side: messages to write, and the byte count to give back.
pub(crate) struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Outbound>,
    shared: Arc<Shared>,
}

/// Resolves when the outbox overflowed.
#[derive(Clone)]
pub(crate) struct OverflowSignal(watch::Receiver<bool>);

impl OverflowSignal {
    pub async fn overflowed(&mut self) {
        // The sender lives as long as the outbox; if it is gone, never fire.
        if self.0.wait_for(|o| *o).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

pub(crate) fn outbox(max_bytes: usize) -> (Outbox, OutboxReceiver, OverflowSignal) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (overflow_tx, overflow_rx) = watch::channel(false);
    let shared =
        Arc::new(Shared { queued: AtomicUsize::new(0), overflowed: AtomicBool::new(false), max_bytes, overflow_tx });
    (Outbox { tx, shared: shared.clone() }, OutboxReceiver { rx, shared }, OverflowSignal(overflow_rx))
}

impl Outbound {
    /// What the message counts against the byte limit.
    pub fn cost(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len() + PER_MESSAGE_OVERHEAD,
            Outbound::Close(..) => PER_MESSAGE_OVERHEAD,
        }
    }
}

impl Outbox {
    /// Queues a message. A message arriving at an empty queue is always
    /// accepted (its size is bounded by what produced it), so one large
    /// response never disconnects a reader that keeps up.
    pub fn push(&self, msg: Outbound) -> Pushed {
        let s = &self.shared;
        if s.overflowed.load(Ordering::Acquire) {
            return Pushed::Dropped;
        }
        let c = msg.cost();
        let before = s.queued.fetch_add(c, Ordering::AcqRel);
        if before > 0 && before + c > s.max_bytes {
            s.queued.fetch_sub(c, Ordering::AcqRel);
            if s.overflowed.swap(true, Ordering::AcqRel) {
                return Pushed::Dropped;
            }
            s.overflow_tx.send_replace(true);
            return Pushed::Overflowed;
        }
        match self.tx.send(msg) {
            Ok(()) => Pushed::Queued,
            Err(_) => {
                s.queued.fetch_sub(c, Ordering::AcqRel);
                Pushed::Dropped
            }
        }
    }

    /// Queues the close frame; not subject to the byte limit.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Outbound::Close(code, reason));
    }

    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

impl OutboxReceiver {
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.rx.recv().await
    }

    /// A message of this [`Outbound::cost`] was written: it no longer
    /// counts.
    pub fn written(&self, cost: usize) {
        self.shared.queued.fetch_sub(cost, Ordering::AcqRel);
    }

    /// Frees everything still queued (after an overflow).
    pub fn discard(&mut self) {
        self.rx.close();
        while let Ok(m) = self.rx.try_recv() {
            self.written(m.cost());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Outbound {
        Outbound::Text("x".repeat(n))
    }

    #[tokio::test]
    async fn overflows_once_past_the_byte_limit_and_frees_on_write() {
        let (o, mut r, mut sig) = outbox(1000);
        // Larger than the limit, but the queue is empty: accepted.
        assert_eq!(o.push(text(5000)), Pushed::Queued);
        let m = r.recv().await.unwrap();
        r.written(m.cost());
        assert_eq!(o.queued_bytes(), 0);
        for _ in 0..3 {
            assert_eq!(o.push(text(200)), Pushed::Queued);
        }
        assert_eq!(o.queued_bytes(), 3 * (200 + PER_MESSAGE_OVERHEAD));
        assert_eq!(o.push(text(200)), Pushed::Overflowed);
        assert_eq!(o.push(text(1)), Pushed::Dropped, "reported once, then dropped");
        tokio::time::timeout(std::time::Duration::from_secs(1), sig.overflowed()).await.unwrap();
        r.discard();
        assert_eq!(o.queued_bytes(), 0, "queue freed");
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_never_overflows() {
        let (o, mut r, _sig) = outbox(1000);
        for _ in 0..10_000 {
            assert_eq!(o.push(text(500)), Pushed::Queued);
            let m = r.recv().await.unwrap();
            r.written(m.cost());
        }
    }
}
