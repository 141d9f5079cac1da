//! Per-client rate limiting: a token bucket per client address (`[server] rate_limit` tokens a
//! second, `rate_burst` at most). A client past its limit gets REFUSED until it slows down;
//! other clients are not affected.
//!
//! Invariants: memory is bounded: at most [`MAX_CLIENTS`] buckets, in shards so that clients
//! rarely wait on each other's lock. When a shard is full, buckets that have refilled (a full
//! bucket is the same as no bucket) are dropped first, then the longest idle one. Addresses
//! live only in this map, in memory: they are never logged or written anywhere. Time is the
//! monotonic clock, so a wall-clock jump changes nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Most client buckets kept (about 64 bytes each: 4 MiB at most).
pub const MAX_CLIENTS: usize = 65_536;
const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refilled(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

/// The per-client buckets; shared by all queries, across reloads (the rate and burst are read
/// from the current config on every check, so a reload changes them at once).
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
    per_shard: usize,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_CLIENTS)
    }
}

impl RateLimiter {
    /// A limiter keeping at most about `clients` buckets.
    pub fn with_capacity(clients: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: clients.div_ceil(SHARDS).max(1),
        }
    }

    /// Takes one token for `client` at `now`; false when its bucket is empty. `rate` 0 means
    /// no limit.
    pub fn allow(&self, client: IpAddr, now: Instant, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let (rate, burst) = (f64::from(rate), f64::from(burst.max(1)));
        let Some(shard) = self.shards.get(shard_of(client)) else {
            return true;
        };
        let mut buckets = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(&client) {
            let tokens = bucket.refilled(now, rate, burst);
            bucket.last = now;
            if tokens >= 1.0 {
                bucket.tokens = tokens - 1.0;
                return true;
            }
            bucket.tokens = tokens;
            return false;
        }
        if buckets.len() >= self.per_shard {
            make_room(&mut buckets, self.per_shard, now, rate, burst);
        }
        buckets.insert(
            client,
            Bucket {
                tokens: burst - 1.0,
                last: now,
            },
        );
        true
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops refilled buckets; if that frees nothing, the longest idle one (an active flooder
/// keeps its bucket busy, so it is never the one dropped).
fn make_room(
    buckets: &mut HashMap<IpAddr, Bucket>,
    limit: usize,
    now: Instant,
    rate: f64,
    burst: f64,
) {
    buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
    if buckets.len() < limit {
        return;
    }
    if let Some(oldest) = buckets
        .iter()
        .min_by_key(|(_, b)| b.last)
        .map(|(ip, _)| *ip)
    {
        buckets.remove(&oldest);
    }
}

fn shard_of(client: IpAddr) -> usize {
    // The low bits of the address vary most between clients on one LAN.
    let low = match client {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u32) ^ ((bits >> 64) as u32)
        }
    };
    (low as usize) % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, last))
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        let allowed = (0..30).filter(|_| limiter.allow(ip(1), t0, 10, 20)).count();
        assert_eq!(allowed, 20, "the burst");
        // Half a second later: 5 more tokens at 10/s.
        let t1 = t0 + Duration::from_millis(500);
        let allowed = (0..30).filter(|_| limiter.allow(ip(1), t1, 10, 20)).count();
        assert_eq!(allowed, 5);
        // Another client is untouched.
        assert!(limiter.allow(ip(2), t1, 10, 20));
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3600);
        let allowed = (0..30).filter(|_| limiter.allow(ip(1), t2, 10, 20)).count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.allow(ip(1), now, 0, 1)));
        assert!(limiter.is_empty(), "nothing is tracked when off");
    }

    #[test]
    fn the_map_stays_bounded_and_newcomers_do_not_reset_a_flooder() {
        let limiter = RateLimiter::with_capacity(SHARDS * 4);
        let t0 = Instant::now();
        let mut flooder_allowed = 0;
        // 5,000 one-off clients arrive over 5 s while one client floods at 1 query a ms.
        for i in 0..5_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            let newcomer = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limiter.allow(newcomer, now, 1, 5), "a new client is served");
            flooder_allowed += usize::from(limiter.allow(ip(0), now, 1, 5));
        }
        assert!(limiter.len() <= SHARDS * 4, "{} buckets", limiter.len());
        // The burst of 5 plus 1 a second for 5 s: eviction never handed it a fresh bucket.
        assert!(flooder_allowed <= 10, "{flooder_allowed}");
    }
}
