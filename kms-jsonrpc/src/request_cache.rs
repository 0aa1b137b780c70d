//! The 20 s duplicate-request cache of spec §3.4.
//!
//! Responses (successes and errors) are kept per `(sessionId, request id)`
//! so that a client retransmitting after a reconnect gets the original
//! answer instead of a second execution. Time is passed in; entries are
//! freed when they expire, and a byte budget bounds the total even under a
//! flood of distinct requests.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::session::SessionId;

/// How long a response is replayable (upstream `REQUEST_TIMEOUT`).
pub const REQUEST_CACHE_TTL: Duration = Duration::from_secs(20);

/// Upper bound on the cached response bytes; the oldest entries go first.
pub const REQUEST_CACHE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Responses are stored in one buffer per this much time: expiring a
/// bucket frees one large allocation, which the allocator hands back to the
/// OS, instead of thousands of small ones that stay as heap fragments
/// (RSS must return to its start once a burst has expired).
const BUCKET_SPAN: Duration = Duration::from_secs(1);

/// After freeing this much, hand free heap pages back to the OS.
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

/// Where one entry lives.
#[derive(Clone, Copy)]
struct Loc {
    bucket: u64,
    offset: usize,
    inserted: Instant,
    cost: usize,
}

/// Entries of one time span, serialized back to back.
struct Bucket {
    seq: u64,
    start: Instant,
    data: Vec<u8>,
    /// (key hash, offset) in insertion order, for eviction.
    keys: Vec<(u64, usize)>,
    /// Entries of `keys` already evicted by the byte budget.
    evicted: usize,
}

pub(crate) struct RequestCache {
    ttl: Duration,
    max_bytes: usize,
    /// Key hash → location. A 64-bit hash collision between two live keys
    /// only means the second response is not cached (lookups verify keys).
    index: HashMap<u64, Loc>,
    buckets: VecDeque<Bucket>,
    next_seq: u64,
    bytes: usize,
}

fn key_hash(session: &str, id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    session.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

fn put(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s);
}

fn take<'a>(buf: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let len = u32::from_le_bytes(buf[*pos..*pos + 4].try_into().expect("4 bytes")) as usize;
    let s = &buf[*pos + 4..*pos + 4 + len];
    *pos += 4 + len;
    s
}

/// Decodes (session, id, text, result session) at `offset`.
fn record(buf: &[u8], offset: usize) -> (&[u8], &[u8], &[u8], &[u8]) {
    let mut pos = offset;
    let s = take(buf, &mut pos);
    let i = take(buf, &mut pos);
    let t = take(buf, &mut pos);
    let r = take(buf, &mut pos);
    (s, i, t, r)
}

impl RequestCache {
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        RequestCache { ttl, max_bytes, index: HashMap::new(), buckets: VecDeque::new(), next_seq: 0, bytes: 0 }
    }

    fn cost(session: &SessionId, id: &str, resp: &CachedResponse) -> usize {
        session.as_str().len()
            + id.len()
            + resp.text.len()
            + resp.result_session.as_ref().map_or(0, |s| s.as_str().len())
            + 64
    }

    fn bucket(&self, seq: u64) -> Option<&Bucket> {
        let first = self.buckets.front()?.seq;
        self.buckets.get(seq.checked_sub(first)? as usize)
    }

    /// The live response for `(session, id)`, if any.
    pub fn get(&mut self, session: &SessionId, id: &str, now: Instant) -> Option<CachedResponse> {
        self.purge(now);
        let loc = *self.index.get(&key_hash(session.as_str(), id))?;
        if now.saturating_duration_since(loc.inserted) >= self.ttl {
            return None;
        }
        let b = self.bucket(loc.bucket)?;
        let (s, i, t, r) = record(&b.data, loc.offset);
        if s != session.as_str().as_bytes() || i != id.as_bytes() {
            return None;
        }
        Some(CachedResponse {
            text: String::from_utf8_lossy(t).into_owned(),
            result_session: (!r.is_empty()).then(|| SessionId::from(String::from_utf8_lossy(r).into_owned())),
        })
    }

    /// Stores a response; an existing live entry for the key is kept, as
    /// upstream only adds responses it does not have yet.
    pub fn insert(&mut self, session: SessionId, id: String, response: CachedResponse, now: Instant) {
        self.purge(now);
        let h = key_hash(session.as_str(), &id);
        if self.index.contains_key(&h) {
            return;
        }
        let cost = Self::cost(&session, &id, &response);
        if cost > self.max_bytes {
            return;
        }
        while self.bytes + cost > self.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
        let need_new = self.buckets.back().is_none_or(|b| now.saturating_duration_since(b.start) >= BUCKET_SPAN);
        if need_new {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.buckets.push_back(Bucket { seq, start: now, data: Vec::new(), keys: Vec::new(), evicted: 0 });
        }
        let b = self.buckets.back_mut().expect("just ensured");
        let offset = b.data.len();
        put(&mut b.data, session.as_str().as_bytes());
        put(&mut b.data, id.as_bytes());
        put(&mut b.data, response.text.as_bytes());
        put(&mut b.data, response.result_session.as_ref().map_or(&b""[..], |s| s.as_str().as_bytes()));
        b.keys.push((h, offset));
        self.index.insert(h, Loc { bucket: b.seq, offset, inserted: now, cost });
        self.bytes += cost;
    }

    /// Removes the index entry of `(hash, offset)` in bucket `seq`.
    fn unindex(&mut self, seq: u64, h: u64, offset: usize) {
        if let Some(loc) = self.index.get(&h)
            && loc.bucket == seq
            && loc.offset == offset
        {
            self.bytes -= loc.cost;
            self.index.remove(&h);
        }
    }

    /// Evicts the oldest live entry (byte budget).
    fn evict_oldest(&mut self) -> bool {
        loop {
            let Some(b) = self.buckets.front_mut() else { return false };
            if b.evicted == b.keys.len() {
                self.buckets.pop_front();
                continue;
            }
            let (seq, (h, off)) = (b.seq, b.keys[b.evicted]);
            b.evicted += 1;
            self.unindex(seq, h, off);
            return true;
        }
    }

    /// Frees every bucket whose entries are all older than the TTL.
    pub fn purge(&mut self, now: Instant) {
        let before = self.bytes;
        while let Some(b) = self.buckets.front() {
            // The newest entry of a bucket is at most BUCKET_SPAN younger
            // than its start.
            if now.saturating_duration_since(b.start) < self.ttl + BUCKET_SPAN {
                break;
            }
            let b = self.buckets.pop_front().expect("front exists");
            for &(h, off) in &b.keys[b.evicted..] {
                self.unindex(b.seq, h, off);
            }
        }
        // Give the index table back after a burst.
        if self.index.capacity() > 64 && self.index.len() < self.index.capacity() / 4 {
            self.index.shrink_to(self.index.len() * 2);
            self.buckets.shrink_to(self.buckets.len() * 2);
        }
        if before.saturating_sub(self.bytes) >= TRIM_AFTER_FREED_BYTES {
            release_free_memory();
        }
    }

    /// When the oldest bucket can be freed (for the transport's timer).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.buckets.front().map(|b| b.start + self.ttl + BUCKET_SPAN)
    }

    pub fn len(&self) -> usize {
        self.index.len()
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
        assert!(c.get(&s, "1", t0 + Duration::from_secs(20)).is_none(), "not replayed after 20 s");
        c.purge(t0 + Duration::from_secs(21));
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
        assert_eq!(c.next_expiry(), Some(t0 + REQUEST_CACHE_TTL + BUCKET_SPAN));
        c.purge(t0 + Duration::from_secs(21));
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(c.index.capacity() < 1000);
        assert!(c.buckets.is_empty(), "bucket buffers freed");
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
