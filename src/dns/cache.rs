//! The answer cache: upstream answers kept for their TTL, bounded in entries.
//!
//! Positive answers live for their smallest TTL, negative ones (NXDOMAIN, NODATA) for the SOA's
//! negative TTL (RFC 2308); both are capped by config. Ages are measured on the monotonic clock,
//! so a wall-clock jump never expires or revives the whole cache. The map is sharded
//! (`quick_cache`), so queries on different names do not wait on each other.
//!
//! Serve-stale (RFC 8767): an expired answer stays in the map for `[cache] serve_stale` after
//! its expiry (the map's size bound still evicts it when room is needed), so that when every
//! upstream fails it can be given out with [`STALE_TTL`] instead of SERVFAIL. A fresh lookup
//! never returns it.
//!
//! Prefetch: an answer asked for from the cache at least [`PREFETCH_MIN_HITS`] times, and asked
//! again with less than a tenth of its lifetime left, is due for one background refresh
//! ([`Answer::hit_wants_prefetch`] says so once per answer), so a popular name is renewed
//! before it expires and clients never see it miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};

/// The TTL of every record in a stale answer: RFC 8767 recommends 30 s, so clients come back
/// soon and find the fresh answer once an upstream is reachable again.
pub const STALE_TTL: u32 = 30;

/// Cache hits (the one asking included) an answer needs before it is prefetched.
pub const PREFETCH_MIN_HITS: u32 = 2;
/// An answer is prefetched when less than 1/`PREFETCH_WINDOW` of its lifetime is left.
pub const PREFETCH_WINDOW: u32 = 10;

/// What an answer is cached under. The DO and CD bits change what an upstream returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The lower-cased query name.
    pub name: LowerName,
    /// The query type.
    pub qtype: RecordType,
    /// The client's DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// The client's Checking Disabled bit.
    pub checking_disabled: bool,
}

/// One upstream answer, as relayed.
#[derive(Debug)]
pub struct Answer {
    /// The upstream's response code.
    pub rcode: ResponseCode,
    /// The upstream's AD bit.
    pub authentic_data: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
    /// Additional section, without OPT.
    pub additionals: Vec<Record>,
    stored: Instant,
    lifetime: u32,
    /// Times it was served from the cache.
    hits: AtomicU32,
    /// Whether its refresh was started (one per answer).
    prefetched: AtomicBool,
}

impl Answer {
    /// Takes the sections out of an upstream message, capping every TTL at `max_ttl` and
    /// working out how long the answer may be cached (0: not at all).
    pub fn from_upstream(mut message: Message, max_ttl: u32, max_negative_ttl: u32) -> Self {
        let cap = |records: &mut Vec<Record>| {
            for r in records.iter_mut() {
                r.ttl = r.ttl.min(max_ttl);
            }
        };
        cap(&mut message.answers);
        cap(&mut message.authorities);
        cap(&mut message.additionals);
        let rcode = message.metadata.response_code;
        let lifetime = match rcode {
            ResponseCode::NoError if !message.answers.is_empty() => message
                .answers
                .iter()
                .chain(&message.authorities)
                .map(|r| r.ttl)
                .min()
                .unwrap_or(0),
            ResponseCode::NoError | ResponseCode::NXDomain => {
                negative_ttl(&message.authorities).map_or(0, |ttl| ttl.min(max_negative_ttl))
            }
            // SERVFAIL, REFUSED and the rest are relayed, never kept.
            _ => 0,
        };
        Self {
            rcode,
            authentic_data: message.metadata.authentic_data,
            answers: message.answers,
            authorities: message.authorities,
            additionals: message.additionals,
            stored: Instant::now(),
            lifetime,
            hits: AtomicU32::new(0),
            prefetched: AtomicBool::new(false),
        }
    }

    /// Counts a cache hit at `now`, and says whether this hit should start the answer's one
    /// background refresh: it has been asked for [`PREFETCH_MIN_HITS`] times, and less than
    /// a [`PREFETCH_WINDOW`]th of its lifetime is left. True at most once per answer.
    pub fn hit_wants_prefetch(&self, now: Instant) -> bool {
        let hits = self.hits.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if hits < PREFETCH_MIN_HITS {
            return false;
        }
        let lifetime = Duration::from_secs(u64::from(self.lifetime));
        let left = lifetime.saturating_sub(now.saturating_duration_since(self.stored));
        !left.is_zero()
            && left * PREFETCH_WINDOW < lifetime
            && !self.prefetched.swap(true, Ordering::Relaxed)
    }

    /// Whole seconds since the answer was stored, if it is still fresh.
    pub fn age(&self, now: Instant) -> Option<u32> {
        let age = u32::try_from(now.saturating_duration_since(self.stored).as_secs()).ok()?;
        (age < self.lifetime).then_some(age)
    }

    /// How long ago the answer expired (zero while it is fresh).
    pub fn expired_for(&self, now: Instant) -> Duration {
        let expiry = self.stored + Duration::from_secs(u64::from(self.lifetime));
        now.saturating_duration_since(expiry)
    }

    /// The sections with every TTL set to [`STALE_TTL`], for serving the answer stale.
    pub fn stale(&self) -> [Vec<Record>; 3] {
        let restamp = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = STALE_TTL;
                    r
                })
                .collect()
        };
        [
            restamp(&self.answers),
            restamp(&self.authorities),
            restamp(&self.additionals),
        ]
    }

    /// [`Answer::stale`], with TTLs capped at `cap` too.
    pub fn stale_capped(&self, cap: Option<u32>) -> [Vec<Record>; 3] {
        let mut sections = self.stale();
        if let Some(cap) = cap {
            for r in sections.iter_mut().flatten() {
                r.ttl = r.ttl.min(cap);
            }
        }
        sections
    }

    /// The sections with every TTL lowered by `age` seconds and capped at `cap`.
    pub fn aged(&self, age: u32, cap: Option<u32>) -> [Vec<Record>; 3] {
        let cap = cap.unwrap_or(u32::MAX);
        let age_all = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.saturating_sub(age).min(cap);
                    r
                })
                .collect()
        };
        [
            age_all(&self.answers),
            age_all(&self.authorities),
            age_all(&self.additionals),
        ]
    }

    /// The largest TTL in the answer.
    pub fn max_ttl(&self) -> u32 {
        self.answers
            .iter()
            .chain(&self.authorities)
            .chain(&self.additionals)
            .map(|r| r.ttl)
            .max()
            .unwrap_or(0)
    }

    /// Whether the answer may be cached at all.
    pub fn cacheable(&self) -> bool {
        self.lifetime > 0
    }
}

/// RFC 2308: the negative TTL is the smaller of the SOA record's TTL and its MINIMUM field.
fn negative_ttl(authorities: &[Record]) -> Option<u32> {
    authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
        _ => None,
    })
}

/// The bounded, concurrent answer cache.
pub struct AnswerCache {
    inner: Option<quick_cache::sync::Cache<CacheKey, Arc<Answer>>>,
}

impl AnswerCache {
    /// A cache of at most `entries` answers (0: no cache).
    pub fn new(entries: usize) -> Self {
        Self {
            inner: (entries > 0).then(|| quick_cache::sync::Cache::new(entries)),
        }
    }

    /// A fresh answer and its age, or `None`. An expired answer is left in place while it may
    /// still be served stale (for `keep_stale` after expiry), and removed after that.
    pub fn get(
        &self,
        key: &CacheKey,
        now: Instant,
        keep_stale: Duration,
    ) -> Option<(Arc<Answer>, u32)> {
        let cache = self.inner.as_ref()?;
        let answer = cache.get(key)?;
        match answer.age(now) {
            Some(age) => Some((answer, age)),
            None => {
                if answer.expired_for(now) >= keep_stale {
                    cache.remove(key);
                }
                None
            }
        }
    }

    /// An answer that expired less than `max_stale` ago (or is still fresh), to serve when no
    /// upstream answers. `None` when there is none or `max_stale` is zero.
    pub fn get_stale(
        &self,
        key: &CacheKey,
        now: Instant,
        max_stale: Duration,
    ) -> Option<Arc<Answer>> {
        if max_stale.is_zero() {
            return None;
        }
        let answer = self.inner.as_ref()?.get(key)?;
        (answer.expired_for(now) < max_stale).then_some(answer)
    }

    /// Keeps an answer if it may be cached.
    pub fn insert(&self, key: CacheKey, answer: Arc<Answer>) {
        if let Some(cache) = &self.inner
            && answer.cacheable()
        {
            cache.insert(key, answer);
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |c| c.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};
    use std::time::Duration;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn message(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.answers = answers;
        m.authorities = authorities;
        m
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(name("www.example."), ttl, RData::A(A::new(192, 0, 2, 1)))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let rdata = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, minimum);
        Record::from_rdata(name("example."), ttl, RData::SOA(rdata))
    }

    #[test]
    fn a_popular_answer_near_expiry_is_prefetched_once() {
        let answer = Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(100)], vec![]),
            86_400,
            3600,
        );
        let t0 = answer.stored;
        // Asked once, late: not popular enough.
        assert!(!answer.hit_wants_prefetch(t0 + Duration::from_secs(95)));
        // Asked again with more than a tenth left: not yet.
        assert!(!answer.hit_wants_prefetch(t0 + Duration::from_secs(89)));
        // Popular and with 9 s of 100 left: once, and only once.
        assert!(answer.hit_wants_prefetch(t0 + Duration::from_secs(91)));
        assert!(!answer.hit_wants_prefetch(t0 + Duration::from_secs(92)));
        // Expired: never (that is a miss, not a prefetch).
        let other = Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(100)], vec![]),
            86_400,
            3600,
        );
        assert!(!other.hit_wants_prefetch(other.stored));
        assert!(!other.hit_wants_prefetch(other.stored + Duration::from_secs(100)));
    }

    #[test]
    fn lifetimes_follow_ttls_and_caps() {
        let pos = Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(300), a(60)], vec![]),
            86_400,
            3600,
        );
        assert_eq!(pos.lifetime, 60);
        let capped = Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(1 << 31)], vec![]),
            86_400,
            3600,
        );
        assert_eq!((capped.lifetime, capped.answers[0].ttl), (86_400, 86_400));
        let nx = Answer::from_upstream(
            message(ResponseCode::NXDomain, vec![], vec![soa(900, 300)]),
            86_400,
            3600,
        );
        assert_eq!(nx.lifetime, 300);
        let nx_capped = Answer::from_upstream(
            message(ResponseCode::NXDomain, vec![], vec![soa(900, 300)]),
            86_400,
            60,
        );
        assert_eq!(nx_capped.lifetime, 60);
        let no_soa = Answer::from_upstream(
            message(ResponseCode::NXDomain, vec![], vec![]),
            86_400,
            3600,
        );
        assert!(!no_soa.cacheable());
        let servfail = Answer::from_upstream(
            message(ResponseCode::ServFail, vec![], vec![]),
            86_400,
            3600,
        );
        assert!(!servfail.cacheable());
        let zero = Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(0)], vec![]),
            86_400,
            3600,
        );
        assert!(!zero.cacheable());
    }

    #[test]
    fn entries_expire_and_age_their_ttls() {
        let cache = AnswerCache::new(10);
        let key = CacheKey {
            name: LowerName::from(name("www.example.")),
            qtype: RecordType::A,
            dnssec_ok: false,
            checking_disabled: false,
        };
        let answer = Arc::new(Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(60)], vec![]),
            86_400,
            3600,
        ));
        let stored = answer.stored;
        cache.insert(key.clone(), answer);
        let (hit, age) = cache
            .get(&key, stored + Duration::from_secs(10), Duration::ZERO)
            .expect("fresh");
        assert_eq!(age, 10);
        assert_eq!(hit.aged(age, None)[0][0].ttl, 50);
        assert_eq!(hit.aged(age, Some(7))[0][0].ttl, 7);
        let at = |secs| stored + Duration::from_secs(secs);
        assert!(cache.get(&key, at(60), Duration::ZERO).is_none());
        assert!(cache.is_empty(), "an expired entry is removed");
    }

    #[test]
    fn expired_entries_are_kept_for_serve_stale_then_dropped() {
        let cache = AnswerCache::new(10);
        let key = CacheKey {
            name: LowerName::from(name("www.example.")),
            qtype: RecordType::A,
            dnssec_ok: false,
            checking_disabled: false,
        };
        let answer = Arc::new(Answer::from_upstream(
            message(ResponseCode::NoError, vec![a(60)], vec![]),
            86_400,
            3600,
        ));
        let at = |secs| answer.stored + Duration::from_secs(secs);
        let day = Duration::from_secs(86_400);
        cache.insert(key.clone(), Arc::clone(&answer));
        // Expired: not fresh, but kept and servable stale, with the RFC 8767 TTL.
        assert!(cache.get(&key, at(61), day).is_none());
        let stale = cache.get_stale(&key, at(61), day).expect("stale");
        assert_eq!(stale.stale()[0][0].ttl, STALE_TTL);
        assert!(
            cache.get_stale(&key, at(61), Duration::ZERO).is_none(),
            "off"
        );
        // A day after expiry it is neither served nor kept.
        assert!(cache.get_stale(&key, at(60 + 86_400), day).is_none());
        assert!(cache.get(&key, at(60 + 86_400), day).is_none());
        assert!(cache.is_empty());
    }
}
