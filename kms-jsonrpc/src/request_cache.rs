//! The 20 s duplicate-request cache of spec §3.4.
//!
//! Responses (successes and errors) are kept per `(sessionId, request id)`
//! so that a client retransmitting after a reconnect gets the original
//! answer instead of a second execution. Time is passed in; entries are
//! freed when they expire, and a byte budget bounds the total even under a
//! flood of distinct requests.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::session::SessionId;

/// How long a response is replayable (upstream `REQUEST_TIMEOUT`).
pub const REQUEST_CACHE_TTL: Duration = Duration::from_secs(20);

/// Upper bound on the cached response bytes; the oldest entries go first.
pub const REQUEST_CACHE_MAX_BYTES: usize = 64 * 1024 * 1024;

type Key = (SessionId, String);

/// After freeing this much, hand free heap pages back to the OS: a burst of
/// requests otherwise leaves RSS at its peak forever (glibc keeps freed
/// memory in its arenas).
const TRIM_AFTER_FREED_BYTES: usize = 1024 * 1024;

fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A cached response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedResponse {
    /// The encoded response, replayed byte for byte.
    pub text: String,
    /// `result.sessionId` of the response, to re-apply association (§3.1).
    pub result_session: Option<SessionId>,
}

struct Entry {
    response: CachedResponse,
    inserted: Instant,
}

pub(crate) struct RequestCache {
    ttl: Duration,
    max_bytes: usize,
    entries: HashMap<Key, Entry>,
    /// Insertion order; stale items (replaced entries) are skipped on purge.
    order: VecDeque<(Instant, Key)>,
    bytes: usize,
}

impl RequestCache {
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        RequestCache { ttl, max_bytes, entries: HashMap::new(), order: VecDeque::new(), bytes: 0 }
    }

    fn cost(key: &Key, resp: &CachedResponse) -> usize {
        key.0.as_str().len()
            + key.1.len()
            + resp.text.len()
            + resp.result_session.as_ref().map_or(0, |s| s.as_str().len())
            + 64
    }

    /// The live response for `(session, id)`, if any.
    pub fn get(&mut self, session: &SessionId, id: &str, now: Instant) -> Option<&CachedResponse> {
        self.purge(now);
        self.entries.get(&(session.clone(), id.to_owned())).map(|e| &e.response)
    }

    /// Stores a response; an existing live entry for the key is kept, as
    /// upstream only adds responses it does not have yet.
    pub fn insert(&mut self, session: SessionId, id: String, response: CachedResponse, now: Instant) {
        self.purge(now);
        let key = (session, id);
        if self.entries.contains_key(&key) {
            return;
        }
        let cost = Self::cost(&key, &response);
        if cost > self.max_bytes {
            return;
        }
        while self.bytes + cost > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
        }
        self.bytes += cost;
        self.order.push_back((now, key.clone()));
        self.entries.insert(key, Entry { response, inserted: now });
    }

    /// Frees every entry older than the TTL.
    pub fn purge(&mut self, now: Instant) {
        let before = self.bytes;
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            self.pop_oldest();
        }
        // Give memory back after a burst.
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
            self.order.shrink_to(self.order.len() * 2);
        }
        if before.saturating_sub(self.bytes) >= TRIM_AFTER_FREED_BYTES {
            release_free_memory();
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((t, key)) = self.order.pop_front() else {
            return false;
        };
        if let Some(e) = self.entries.get(&key)
            && e.inserted == t
        {
            let e = self.entries.remove(&key).expect("present");
            self.bytes -= Self::cost(&key, &e.response);
        }
        true
    }

    /// When the oldest entry expires (for the transport's timer).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t + self.ttl)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(text: &str) -> CachedResponse {
        CachedResponse { text: text.to_owned(), result_session: None }
    }

    #[test]
    fn replays_until_ttl_then_frees() {
        let t0 = Instant::now();
        let mut c = RequestCache::new(REQUEST_CACHE_TTL, REQUEST_CACHE_MAX_BYTES);
        let s = SessionId::from("s");
        c.insert(s.clone(), "1".into(), resp("r1"), t0);
        assert_eq!(c.get(&s, "1", t0 + Duration::from_secs(19)).unwrap().text, "r1");
        assert!(c.get(&s, "2", t0).is_none());
        assert!(c.get(&SessionId::from("t"), "1", t0).is_none());
        assert!(c.get(&s, "1", t0 + Duration::from_secs(20)).is_none());
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn purge_frees_many_entries_and_shrinks() {
        let t0 = Instant::now();
        let mut c = RequestCache::new(REQUEST_CACHE_TTL, REQUEST_CACHE_MAX_BYTES);
        let s = SessionId::from("s");
        for i in 0..10_000 {
            c.insert(s.clone(), i.to_string(), resp(&"x".repeat(100)), t0);
        }
        assert_eq!(c.len(), 10_000);
        assert_eq!(c.next_expiry(), Some(t0 + REQUEST_CACHE_TTL));
        c.purge(t0 + Duration::from_secs(21));
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(c.entries.capacity() < 1000);
        assert_eq!(c.next_expiry(), None);
    }

    #[test]
    fn first_response_wins_for_a_key() {
        let t0 = Instant::now();
        let mut c = RequestCache::new(REQUEST_CACHE_TTL, REQUEST_CACHE_MAX_BYTES);
        let s = SessionId::from("s");
        c.insert(s.clone(), "1".into(), resp("a"), t0);
        c.insert(s.clone(), "1".into(), resp("b"), t0 + Duration::from_secs(1));
        assert_eq!(c.get(&s, "1", t0).unwrap().text, "a");
    }

    #[test]
    fn byte_budget_evicts_oldest() {
        let t0 = Instant::now();
        let mut c = RequestCache::new(REQUEST_CACHE_TTL, 1000);
        let s = SessionId::from("s");
        for i in 0..10 {
            c.insert(s.clone(), i.to_string(), resp(&"x".repeat(200)), t0);
        }
        assert!(c.bytes() <= 1000);
        assert!(c.get(&s, "0", t0).is_none());
        assert!(c.get(&s, "9", t0).is_some());
        // Larger than the whole budget: not cached at all.
        c.insert(s.clone(), "big".into(), resp(&"x".repeat(2000)), t0);
        assert!(c.get(&s, "big", t0).is_none());
    }
}
