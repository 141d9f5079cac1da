//! The request handler: validate, admit, decide, answer.
//!
//! Order of one query (see docs/architecture.md):
//! 1. strict validation before any policy — opcode QUERY (else NOTIMP), exactly one question
//!    (else FORMERR: a second question would slip past the filter), EDNS version 0 (else
//!    BADVERS), class IN (else REFUSED), no zone transfers;
//! 2. the client must be in `allow_clients` and within its rate limit (else REFUSED);
//! 3. client → profile → [`Decision`]; a block is answered locally, whatever the query type;
//! 4. otherwise cache, then upstream (identical concurrent misses share one upstream query;
//!    answers pointing public names into the LAN are emptied), and when every upstream fails,
//!    an expired answer (serve-stale) before SERVFAIL.
//!
//! The request path never fails: every internal problem maps to SERVFAIL or REFUSED. Its locks
//! are short and sharded or per miss (the runtime is an `ArcSwap` load, the cache and the rate
//! limiter are sharded, the coalescer's map is touched once per cache miss), and it never logs
//! a name or an address.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::Guard;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::answer;
use super::cache::{Answer, AnswerCache, CacheKey};
use super::coalesce::{Coalescer, Role};
use super::ratelimit::RateLimiter;
use super::rebind;
use super::upstream::{Forwarder, Question};
use crate::policy::Decision;
use crate::runtime::{Runtime, SharedRuntime};
use crate::stats::Outcome;

/// The largest UDP answer we send, whatever a client advertises (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// kidsafe's hickory-server request handler.
pub struct Handler {
    runtime: SharedRuntime,
    cache: Arc<AnswerCache>,
    forwarder: Forwarder,
    requests: Semaphore,
    in_flight: TaskTracker,
    coalescer: Coalescer,
    limiter: RateLimiter,
}

impl Handler {
    /// A handler reading the current runtime from `runtime`. Cache size and in-flight caps are
    /// taken from the runtime's config now and kept for the life of the handler.
    pub fn new(runtime: SharedRuntime) -> Self {
        let current = runtime.load();
        let config = &current.config;
        let cache = Arc::new(AnswerCache::new(config.cache.entries));
        let forwarder = Forwarder::new(config.upstream.max_in_flight);
        let requests = Semaphore::new(config.server.max_in_flight);
        drop(current);
        Self {
            runtime,
            cache,
            forwarder,
            requests,
            in_flight: TaskTracker::new(),
            coalescer: Coalescer::default(),
            limiter: RateLimiter::default(),
        }
    }

    /// The requests being answered. Closing it makes the handler drop new requests, and
    /// waiting on it then waits for the ones already admitted: that is how a stop drains.
    pub fn in_flight(&self) -> TaskTracker {
        self.in_flight.clone()
    }

    /// The answer cache (for `/metrics`).
    pub fn cache(&self) -> Arc<AnswerCache> {
        Arc::clone(&self.cache)
    }

    /// The upstream forwarder (for `/metrics`).
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    async fn answer<R: ResponseHandler>(&self, request: &Request, mut out: R) -> ResponseInfo {
        let edns = request.edns.as_ref().map(response_edns);
        let reply = Reply {
            request,
            edns: edns.as_ref(),
        };
        if request.metadata.op_code != OpCode::Query {
            return reply.error(&mut out, ResponseCode::NotImp).await;
        }
        let [query] = request.queries.queries() else {
            return reply.error(&mut out, ResponseCode::FormErr).await;
        };
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return reply.error(&mut out, ResponseCode::BADVERS).await;
        }
        if query.query_class() != DNSClass::IN {
            return reply.error(&mut out, ResponseCode::Refused).await;
        }

        let runtime = self.runtime.load();
        let src = request.src().ip();
        if !runtime.policy.client_allowed(src) {
            runtime.counters.record(Outcome::Refused);
            return reply.error(&mut out, ResponseCode::Refused).await;
        }
        let server = &runtime.config.server;
        if !self
            .limiter
            .allow(src, Instant::now(), server.rate_limit, server.rate_burst)
        {
            runtime.counters.record(Outcome::Refused);
            return reply.error(&mut out, ResponseCode::Refused).await;
        }
        let qtype = query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Never forward transfers; over UDP they are malformed to begin with.
            let rcode = match request.protocol() {
                Protocol::Udp => ResponseCode::FormErr,
                _ => ResponseCode::Refused,
            };
            return reply.error(&mut out, rcode).await;
        }

        let name: &Name = query.name();
        let (profile, client_rule) = runtime.policy.classify(src);
        if let Decision::Block(reason) =
            runtime
                .policy
                .decide(profile, || name.iter(), &runtime.lists.store)
        {
            // Counted by profile and category only: the name and the address stop here.
            runtime
                .counters
                .record_blocked(profile, reason, client_rule);
            let server = &runtime.config.server;
            let made = answer::block(server.block_response, server.block_ttl, name, qtype);
            drop(runtime);
            return reply
                .records(
                    &mut out,
                    made.rcode,
                    false,
                    &made.answers,
                    &made.authorities,
                    &[],
                )
                .await;
        }

        // RFC 8482 lets a resolver decline ANY; RD=0 would let one client probe what others
        // visited through the cache.
        if qtype == RecordType::ANY || !request.metadata.recursion_desired {
            runtime.counters.record(Outcome::Refused);
            return reply.error(&mut out, ResponseCode::Refused).await;
        }

        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let wants_ad = dnssec_ok || request.metadata.authentic_data;
        let key = CacheKey {
            name: query.name().clone(),
            qtype,
            dnssec_ok,
            checking_disabled: request.metadata.checking_disabled,
        };
        let keep_stale = runtime.config.cache.serve_stale;
        if let Some((cached, age)) = self.cache.get(&key, Instant::now(), keep_stale) {
            runtime.counters.record(Outcome::Cached);
            drop(runtime);
            return reply.cached(&mut out, &cached, age, wants_ad).await;
        }

        // Keep this runtime's upstreams for the whole exchange, even if a reload lands meanwhile.
        let runtime = Guard::into_inner(runtime);
        let (fresh, counted_as) = match self.coalescer.join(&key) {
            Role::Leader(leader) => {
                let fresh = self.resolve(&runtime, &key).await;
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
            let [answers, authorities, additionals] = stale.stale();
            let ad = wants_ad && stale.authentic_data;
            return reply
                .records(
                    &mut out,
                    stale.rcode,
                    ad,
                    &answers,
                    &authorities,
                    &additionals,
                )
                .await;
        }
        match fresh {
            Some(fresh) => {
                runtime.counters.record(counted_as);
                reply.cached(&mut out, &fresh, 0, wants_ad).await
            }
            None => {
                runtime.counters.record(Outcome::Failed);
                reply.error(&mut out, ResponseCode::ServFail).await
            }
        }
    }

    /// Asks the upstreams (once for every query waiting on `key`), applies rebinding
    /// protection, and caches what may be cached. `None` when no upstream answered.
    async fn resolve(&self, runtime: &Runtime, key: &CacheKey) -> Option<Arc<Answer>> {
        let question = Question {
            name: Name::from(&key.name),
            qtype: key.qtype,
            dnssec_ok: key.dnssec_ok,
            checking_disabled: key.checking_disabled,
        };
        let upstream = &runtime.config.upstream;
        let tls = runtime.upstream_tls.as_ref();
        let mut message = self
            .forwarder
            .resolve(upstream, tls, &question)
            .await
            .ok()?;
        if upstream.rebind_protection {
            rebind::strip(&mut message, &question.name, &upstream.rebind_allow);
        }
        let cache = &runtime.config.cache;
        let fresh = Arc::new(Answer::from_upstream(
            message,
            cache.max_ttl,
            cache.max_negative_ttl,
        ));
        self.cache.insert(key.clone(), Arc::clone(&fresh));
        Some(fresh)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        // Past the cap a request is dropped unanswered: answering a flood costs as much as
        // serving it, and the client will retry. While stopping, new requests are dropped too,
        // so the client's retry goes to its other resolver instead of a closing socket.
        if self.in_flight.is_closed() {
            return info_for(&request.metadata, ResponseCode::ServFail);
        }
        let Ok(_permit) = self.requests.try_acquire() else {
            return info_for(&request.metadata, ResponseCode::ServFail);
        };
        self.in_flight
            .track_future(self.answer(request, response_handle))
            .await
    }
}

/// The OPT record we answer with: version 0, our payload limit (never more than the client's),
/// the client's DO bit, no options echoed.
fn response_edns(request: &Edns) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(request.max_payload().clamp(512, MAX_UDP_PAYLOAD));
    edns.set_dnssec_ok(request.flags().dnssec_ok);
    edns
}

fn info_for(request: &Metadata, rcode: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = rcode;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

/// Writes responses to one request. hickory-server echoes the question bytes exactly as the
/// client sent them (0x20 case included) and truncates to the OPT payload size, setting TC.
struct Reply<'a> {
    request: &'a Request,
    edns: Option<&'a Edns>,
}

impl Reply<'_> {
    async fn error<R: ResponseHandler>(&self, out: &mut R, rcode: ResponseCode) -> ResponseInfo {
        self.records(out, rcode, false, &[], &[], &[]).await
    }

    async fn cached<R: ResponseHandler>(
        &self,
        out: &mut R,
        answer: &Answer,
        age: u32,
        wants_ad: bool,
    ) -> ResponseInfo {
        let ad = wants_ad && answer.authentic_data;
        if age == 0 {
            return self
                .records(
                    out,
                    answer.rcode,
                    ad,
                    &answer.answers,
                    &answer.authorities,
                    &answer.additionals,
                )
                .await;
        }
        let [answers, authorities, additionals] = answer.aged(age);
        self.records(out, answer.rcode, ad, &answers, &authorities, &additionals)
            .await
    }

    async fn records<R: ResponseHandler>(
        &self,
        out: &mut R,
        rcode: ResponseCode,
        authentic_data: bool,
        answers: &[Record],
        authorities: &[Record],
        additionals: &[Record],
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&self.request.metadata);
        metadata.recursion_available = true;
        metadata.authentic_data = authentic_data;
        metadata.response_code = rcode;
        let mut builder = MessageResponseBuilder::new(&self.request.queries, None);
        if let Some(edns) = self.edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            answers.iter(),
            authorities.iter(),
            std::iter::empty(),
            additionals.iter(),
        );
        match out.send_response(response).await {
            Ok(info) => info,
            Err(_) => info_for(&self.request.metadata, ResponseCode::ServFail),
        }
    }
}
