//! The forwarding half of the handler: a question answered from the cache, from the
//! upstreams (identical concurrent misses sharing one upstream query), or stale; prefetch of
//! popular answers; CNAME cloaking caught on the way back.

use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, RData, Record};

use super::cache::{Answer, AnswerCache, CacheKey};
use super::coalesce::Role;
use super::handler::Handler;
use super::rebind;
use super::upstream::{Forwarder, Question};
use std::time::Instant;

use crate::policy::live::IDLE;
use crate::policy::{BlockReason, Decision};
use crate::runtime::Runtime;
use crate::stats::Outcome;

impl Handler {
    /// The answer for `question`: from the cache when fresh, else from the upstreams (one
    /// upstream query for every query waiting on the same key), else, when every upstream
    /// failed, an expired answer (serve-stale). `None` when there is nothing to answer with.
    /// Counts the outcome.
    pub(super) async fn resolve(
        &self,
        runtime: &Arc<Runtime>,
        question: Question,
    ) -> Option<Resolved> {
        let key = CacheKey {
            name: LowerName::new(&question.name),
            qtype: question.qtype,
            dnssec_ok: question.dnssec_ok,
            checking_disabled: question.checking_disabled,
        };
        let keep_stale = runtime.config.cache.serve_stale;
        let now = Instant::now();
        if let Some((hit, age)) = self.cache.get(&key, now, keep_stale) {
            runtime.counters.record(Outcome::Cached);
            if runtime.config.cache.prefetch && hit.hit_wants_prefetch(now) {
                self.prefetch(runtime, key, question);
            }
            return Some(Resolved::Answer(hit, age));
        }
        let (fresh, counted_as) = match self.coalescer.join(&key) {
            Role::Leader(leader) => {
                let fresh = fetch(&self.forwarder, &self.cache, runtime, &key, &question).await;
                leader.finish(fresh.clone());
                (fresh, Outcome::Forwarded)
            }
            // Answered without an upstream query of its own: counted like a cache hit.
            Role::Follower(follower) => (follower.outcome().await, Outcome::Cached),
        };
        let failed = fresh
            .as_ref()
            .is_none_or(|a| matches!(a.rcode, ResponseCode::ServFail | ResponseCode::Refused));
        if failed && let Some(stale) = self.cache.get_stale(&key, Instant::now(), keep_stale) {
            runtime.counters.record(Outcome::Cached);
            return Some(Resolved::Stale(stale));
        }
        match fresh {
            Some(fresh) => {
                runtime.counters.record(counted_as);
                Some(Resolved::Answer(fresh, 0))
            }
            None => {
                runtime.counters.record(Outcome::Failed);
                None
            }
        }
    }

    /// Refreshes `key` in the background, unless a query for it is already at the upstreams
    /// (then that one's answer refreshes the cache anyway). Queries that miss meanwhile follow
    /// the prefetch instead of asking again. A failed prefetch leaves the cached answer as it
    /// was, to expire (and be served stale) as usual. Not counted as a query: no client asked.
    pub(super) fn prefetch(&self, runtime: &Arc<Runtime>, key: CacheKey, question: Question) {
        let Role::Leader(leader) = self.coalescer.join(&key) else {
            return;
        };
        let (forwarder, cache) = (self.forwarder.clone(), Arc::clone(&self.cache));
        let runtime = Arc::clone(runtime);
        tokio::spawn(async move {
            let fresh = fetch(&forwarder, &cache, &runtime, &key, &question).await;
            leader.finish(fresh);
        });
    }
}

/// Asks the upstreams, applies rebinding protection, and caches what may be cached.
/// `None` when no upstream answered.
pub(super) async fn fetch(
    forwarder: &Forwarder,
    answers: &AnswerCache,
    runtime: &Runtime,
    key: &CacheKey,
    question: &Question,
) -> Option<Arc<Answer>> {
    let upstream = &runtime.config.upstream;
    let tls = runtime.upstream_tls.as_ref();
    let mut message = forwarder.resolve(upstream, tls, question).await.ok()?;
    if upstream.rebind_protection {
        rebind::strip(&mut message, &question.name, &upstream.rebind_allow);
    }
    let cache = &runtime.config.cache;
    let fresh = Arc::new(Answer::from_upstream(
        message,
        cache.max_ttl,
        cache.max_negative_ttl,
    ));
    answers.insert(key.clone(), Arc::clone(&fresh));
    Some(fresh)
}

/// What [`Handler::resolve`] found.
pub(super) enum Resolved {
    /// A fresh answer and its age in seconds.
    Answer(Arc<Answer>, u32),
    /// An expired answer, served because every upstream failed (RFC 8767).
    Stale(Arc<Answer>),
}

impl Resolved {
    pub(super) fn answer(&self) -> &Answer {
        match self {
            Resolved::Answer(a, _) | Resolved::Stale(a) => a,
        }
    }

    /// The sections with their TTLs as they go to the client, capped at `cap`.
    pub(super) fn sections(&self, cap: Option<u32>) -> [Vec<Record>; 3] {
        match self {
            Resolved::Answer(a, age) => a.aged(*age, cap),
            Resolved::Stale(a) => a.stale_capped(cap),
        }
    }
}

/// The block reason if a CNAME in `answer` points at a name this profile blocks.
pub(super) fn cloaked(runtime: &Runtime, profile: usize, answer: &Answer) -> Option<BlockReason> {
    let live = runtime.live.load();
    let now = live.profiles.get(profile).unwrap_or(&IDLE);
    answer.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(target) => {
            match runtime
                .policy
                .decide(profile, || target.0.iter(), &runtime.lists.store, now)
            {
                Decision::Block(reason @ (BlockReason::Category(_) | BlockReason::Denied)) => {
                    Some(reason)
                }
                _ => None,
            }
        }
        _ => None,
    })
}
