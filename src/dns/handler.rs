//! The request handler: validate, admit, decide, answer.
//!
//! Order of one query (see docs/architecture.md):
//! 1. strict validation before any policy — a question that can be repeated as it was sent
//!    (else FORMERR), opcode QUERY (else NOTIMP), exactly one question
//!    (else FORMERR: a second question would slip past the filter), EDNS version 0 (else
//!    BADVERS), class IN (else REFUSED), no zone transfers;
//! 2. the client must be in `allow_clients` and within its rate limit (else REFUSED);
//! 3. client → profile → [`Decision`]; a block is answered locally, whatever the query type;
//! 4. otherwise cache, then upstream (identical concurrent misses share one upstream query;
//!    answers pointing public names into the LAN are emptied), and when every upstream fails,
//!    an expired answer (serve-stale) before SERVFAIL. A popular cached answer asked for in the
//!    last tenth of its lifetime is refreshed in the background (prefetch), as one more
//!    leader of the same coalescer, so it never expires while clients keep asking.
//!
//! The request path never fails: every internal problem maps to SERVFAIL or REFUSED. Its locks
//! are short and sharded or per miss (the runtime is an `ArcSwap` load, the cache and the rate
//! limiter are sharded, the coalescer's map is touched once per cache miss), and it never logs
//! a name or an address.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::Guard;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::answer;
use super::cache::{Answer, AnswerCache, CacheKey};
use super::coalesce::{Coalescer, Role};
use super::ratelimit::RateLimiter;
use super::rebind;
use super::upstream::{Forwarder, Question};
use crate::config::BlockResponse;
use crate::policy::live::IDLE;
use crate::policy::special::GuardAnswer;
use crate::policy::{BlockReason, Decision};
use crate::runtime::Runtime;
use crate::runtime::SharedRuntime;
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
    coalescer: Arc<Coalescer>,
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
            coalescer: Arc::default(),
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

    /// `server.tcp_connections` and `server.tcp_idle_timeout` of the runtime in force.
    pub fn tcp_limits(&self) -> (usize, std::time::Duration) {
        let server = &self.runtime.load().config.server;
        (server.tcp_connections, server.tcp_idle_timeout)
    }

    async fn answer<R: ResponseHandler>(&self, request: &Request, mut out: R) -> ResponseInfo {
        let edns = request.edns.as_ref().map(response_edns);
        // Answers repeat the question bytes as sent, behind a different header: a name that
        // reads from the header would come back as another name, or as garbage.
        let malformed =
            question_points_into_header(request.queries.as_bytes(), request.queries.len());
        // Only a single question is repeated. Several can take more room than a UDP answer
        // without EDNS has (512 bytes), and hickory would then send a bare SERVFAIL instead.
        let none;
        let queries = if request.queries.len() == 1 && !malformed {
            &request.queries
        } else {
            let Ok(empty) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return info_for(&request.metadata, ResponseCode::FormErr); // reads nothing
            };
            none = empty;
            &none
        };
        let reply = Reply {
            request,
            queries,
            edns: edns.as_ref(),
        };
        if malformed {
            return reply.error(&mut out, ResponseCode::FormErr).await;
        }
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
        let live = runtime.live.load();
        let (profile, client_rule) = match live.by_mac.get(&src) {
            Some((p, r)) => (*p, Some(*r)),
            None => runtime.policy.classify(src),
        };
        let now = live.profiles.get(profile).unwrap_or(&IDLE);
        // Answers must not outlive the policy that produced them: a bedtime starts on time
        // even for clients that cache.
        let ttl_cap = live.seconds_left(profile);
        let decision = runtime
            .policy
            .decide(profile, || name.iter(), &runtime.lists.store, now);
        drop(live);
        let rewrite = match decision {
            Decision::Block(reason) => {
                return self
                    .block(
                        &reply,
                        &mut out,
                        &runtime,
                        (profile, client_rule),
                        reason,
                        name,
                        qtype,
                        ttl_cap,
                    )
                    .await;
            }
            Decision::Rewrite(r) => Some(r),
            Decision::Forward | Decision::Allowed => None,
        };

        // RFC 8482 lets a resolver decline ANY; RD=0 would let one client probe what others
        // visited through the cache.
        if qtype == RecordType::ANY || !request.metadata.recursion_desired {
            runtime.counters.record(Outcome::Refused);
            return reply.error(&mut out, ResponseCode::Refused).await;
        }

        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let wants_ad = dnssec_ok || request.metadata.authentic_data;
        let question = Question {
            name: match rewrite {
                Some(r) => Name::from_ascii(r.target()).unwrap_or_else(|_| name.clone()),
                None => name.clone(),
            },
            qtype,
            dnssec_ok,
            checking_disabled: request.metadata.checking_disabled,
        };
        // Keep this runtime's upstreams for the whole exchange, even if a reload lands meanwhile.
        let runtime = Guard::into_inner(runtime);
        let Some(resolved) = self.resolve(&runtime, question).await else {
            return reply.error(&mut out, ResponseCode::ServFail).await;
        };
        let answer = resolved.answer();

        if let Some(r) = rewrite {
            // The safe-search target's records, behind a CNAME from the name asked.
            let ttl = ttl_cap.map_or(REWRITE_TTL, |c| c.min(REWRITE_TTL));
            let target = Name::from_ascii(r.target()).unwrap_or_else(|_| name.clone());
            let mut answers = vec![Record::from_rdata(
                name.clone(),
                ttl,
                RData::CNAME(CNAME(target)),
            )];
            let [more, authorities, additionals] = resolved.sections(ttl_cap);
            answers.extend(more);
            let ad = wants_ad && answer.authentic_data;
            let stale_edns = matches!(resolved, Resolved::Stale(_))
                .then(|| reply.edns.map(|e| with_ede(e, EDE_STALE, "")))
                .flatten();
            let reply = Reply {
                edns: stale_edns.as_ref().or(reply.edns),
                ..reply
            };
            return reply
                .records(
                    &mut out,
                    answer.rcode,
                    ad,
                    &answers,
                    &authorities,
                    &additionals,
                )
                .await;
        }

        if decision == Decision::Forward
            && let Some(reason) = cloaked(&runtime, profile, answer)
        {
            // CNAME cloaking: an allowed name that aliases a blocked one is blocked too.
            return self
                .block(
                    &reply,
                    &mut out,
                    &runtime,
                    (profile, client_rule),
                    reason,
                    name,
                    qtype,
                    ttl_cap,
                )
                .await;
        }
        match resolved {
            Resolved::Answer(answer, age) => {
                reply
                    .cached(&mut out, &answer, age, wants_ad, ttl_cap)
                    .await
            }
            Resolved::Stale(stale) => {
                let [answers, authorities, additionals] = stale.stale_capped(ttl_cap);
                let ad = wants_ad && stale.authentic_data;
                // RFC 8914 code 3: the client (or its admin) can tell the upstreams are down.
                let edns = reply.edns.map(|e| with_ede(e, EDE_STALE, ""));
                let reply = Reply {
                    edns: edns.as_ref().or(reply.edns),
                    ..reply
                };
                reply
                    .records(
                        &mut out,
                        stale.rcode,
                        ad,
                        &answers,
                        &authorities,
                        &additionals,
                    )
                    .await
            }
        }
    }

    /// The answer for `question`: from the cache when fresh, else from the upstreams (one
    /// upstream query for every query waiting on the same key), else, when every upstream
    /// failed, an expired answer (serve-stale). `None` when there is nothing to answer with.
    /// Counts the outcome.
    async fn resolve(&self, runtime: &Arc<Runtime>, question: Question) -> Option<Resolved> {
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
    fn prefetch(&self, runtime: &Arc<Runtime>, key: CacheKey, question: Question) {
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

    /// Answers a blocked name and counts it (by profile and category only: the name and the
    /// address stop here).
    #[allow(clippy::too_many_arguments)]
    async fn block<R: ResponseHandler>(
        &self,
        reply: &Reply<'_>,
        out: &mut R,
        runtime: &Runtime,
        (profile, client_rule): (usize, Option<usize>),
        reason: BlockReason,
        name: &Name,
        qtype: RecordType,
        ttl_cap: Option<u32>,
    ) -> ResponseInfo {
        runtime
            .counters
            .record_blocked(profile, reason, client_rule);
        let server = &runtime.config.server;
        let style = match reason {
            BlockReason::Guard(GuardAnswer::NxDomain) => BlockResponse::NxDomain,
            BlockReason::Guard(GuardAnswer::NoData) => BlockResponse::NoData,
            _ => server.block_response,
        };
        let ttl = ttl_cap.map_or(server.block_ttl, |c| c.min(server.block_ttl));
        let made = answer::block(style, ttl, name, qtype);
        // RFC 8914: say why (the category), never what matched.
        let edns = reply.edns.map(|e| {
            let category = reason.category(&runtime.lists.categories);
            with_ede(e, EDE_BLOCKED, &format!("category={category}"))
        });
        let with_ede = Reply {
            request: reply.request,
            queries: reply.queries,
            edns: edns.as_ref(),
        };
        with_ede
            .records(
                out,
                made.rcode,
                false,
                &made.answers,
                &made.authorities,
                &[],
            )
            .await
    }
}

/// Asks the upstreams, applies rebinding protection, and caches what may be cached.
/// `None` when no upstream answered.
async fn fetch(
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
enum Resolved {
    /// A fresh answer and its age in seconds.
    Answer(Arc<Answer>, u32),
    /// An expired answer, served because every upstream failed (RFC 8767).
    Stale(Arc<Answer>),
}

impl Resolved {
    fn answer(&self) -> &Answer {
        match self {
            Resolved::Answer(a, _) | Resolved::Stale(a) => a,
        }
    }

    /// The sections with their TTLs as they go to the client, capped at `cap`.
    fn sections(&self, cap: Option<u32>) -> [Vec<Record>; 3] {
        match self {
            Resolved::Answer(a, age) => a.aged(*age, cap),
            Resolved::Stale(a) => a.stale_capped(cap),
        }
    }
}

/// How long a safe-search CNAME may be cached.
const REWRITE_TTL: u32 = 300;
/// EDNS option code of Extended DNS Errors (RFC 8914).
const EDE_OPTION: u16 = 15;
/// Extended DNS Error info code "Blocked".
const EDE_BLOCKED: u16 = 15;
/// Extended DNS Error info code "Stale Answer".
const EDE_STALE: u16 = 3;

/// `edns` with an Extended DNS Error (RFC 8914): `code` and its extra text.
fn with_ede(edns: &Edns, code: u16, text: &str) -> Edns {
    let mut e = edns.clone();
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(text.as_bytes());
    e.options_mut()
        .insert(EdnsOption::Unknown(EDE_OPTION, payload));
    e
}

/// The block reason if a CNAME in `answer` points at a name this profile blocks.
fn cloaked(runtime: &Runtime, profile: usize, answer: &Answer) -> Option<BlockReason> {
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

impl Handler {
    /// Answers `request` through `out`, unless too many requests are in flight: past the cap a
    /// request is dropped unanswered, because answering a flood costs as much as serving it and
    /// the client will retry.
    pub async fn admit_and_answer<R: ResponseHandler>(
        &self,
        request: &Request,
        out: R,
    ) -> ResponseInfo {
        // While stopping, new requests are dropped too, so the client's retry goes to its
        // other resolver instead of a closing socket.
        if self.in_flight.is_closed() {
            return info_for(&request.metadata, ResponseCode::ServFail);
        }
        let Ok(_permit) = self.requests.try_acquire() else {
            return info_for(&request.metadata, ResponseCode::ServFail);
        };
        self.in_flight.track_future(self.answer(request, out)).await
    }
}

/// The handler as a hickory-server [`RequestHandler`] behind an `Arc` (the fuzz targets and
/// anything else that drives hickory-server with it).
#[derive(Clone)]
pub struct SharedHandler(pub Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for SharedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.0.admit_and_answer(request, response_handle).await
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.admit_and_answer(request, response_handle).await
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

/// Length of the DNS header, which every message starts with.
const HEADER_LEN: usize = 12;

/// Whether a name in the question section (`section`, the bytes of `count` questions as the
/// client sent them, which start right after the header) reads any byte from the header
/// through a compression pointer, directly or through a chain of pointers. hickory accepts
/// such names (pointers need only point backwards), but they are never legitimate: a query's
/// first name has nothing before it to point at except the header.
fn question_points_into_header(section: &[u8], count: usize) -> bool {
    let mut next = 0; // where the next question starts
    for _ in 0..count {
        let mut at = next;
        let mut end = None; // where this name ends in place, after its first pointer
        let mut hops = 0;
        loop {
            // hickory has parsed this section already, so running off its end cannot happen;
            // if it did, the question could not be repeated either.
            let Some(&len) = section.get(at) else {
                return true;
            };
            if len == 0 {
                at += 1;
                break;
            }
            if len & 0xC0 == 0xC0 {
                let Some(&low) = section.get(at + 1) else {
                    return true;
                };
                end.get_or_insert(at + 2);
                let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                hops += 1;
                if target < HEADER_LEN || hops > section.len() {
                    return true;
                }
                at = target - HEADER_LEN;
                continue;
            }
            at += 1 + usize::from(len);
        }
        next = end.unwrap_or(at) + 4; // QTYPE and QCLASS
    }
    false
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
/// Answers to anything but one well-formed question repeat no question at all.
struct Reply<'a> {
    request: &'a Request,
    /// The question section to repeat: the request's, or none.
    queries: &'a Queries,
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
        ttl_cap: Option<u32>,
    ) -> ResponseInfo {
        let ad = wants_ad && answer.authentic_data;
        if age == 0 && ttl_cap.is_none_or(|cap| answer.max_ttl() <= cap) {
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
        let [answers, authorities, additionals] = answer.aged(age, ttl_cap);
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
        let mut builder = MessageResponseBuilder::new(self.queries, None);
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Mutex;

    use hickory_proto::op::Message;
    use hickory_proto::serialize::binary::BinEncoder;
    use hickory_server::net::NetError;
    use hickory_server::zone_handler::MessageResponse;

    use super::*;
    use crate::config::Config;
    use crate::runtime::{Runtime, share};

    /// A handler with no lists whose upstream refuses at once (nothing listens on port 9).
    fn handler() -> Handler {
        let source =
            "[upstream]\nservers = [\"127.0.0.1:9\"]\n[defaults]\nprofile = \"p\"\n[profiles.p]\n";
        let config = Config::from_source(Path::new("/test/kidsafe.toml"), source).expect("config");
        Handler::new(share(
            Runtime::build(config, Instant::now()).expect("runtime"),
        ))
    }

    /// Encodes answers as hickory-server does over UDP: at most the OPT payload size, 512
    /// bytes without EDNS. There an answer that does not fit becomes a bare SERVFAIL header.
    #[derive(Clone, Default)]
    struct Udp(Arc<Mutex<Vec<Encoded>>>);

    /// An answer's bytes, or why it could not be encoded.
    type Encoded = Result<Vec<u8>, String>;

    #[async_trait::async_trait]
    impl ResponseHandler for Udp {
        async fn send_response<'a>(
            &mut self,
            response: MessageResponse<
                '_,
                'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
            >,
        ) -> Result<ResponseInfo, NetError> {
            let mut bytes = Vec::new();
            let mut encoder = BinEncoder::new(&mut bytes);
            encoder.set_max_size(response.edns().map_or(512, |e| e.max_payload()));
            let result = response.destructive_emit(&mut encoder);
            let mut sent = self.0.lock().expect("lock");
            match result {
                Ok(info) => {
                    sent.push(Ok(bytes));
                    Ok(info)
                }
                Err(e) => {
                    sent.push(Err(e.to_string()));
                    Err(NetError::from(e.to_string()))
                }
            }
        }
    }

    /// The one answer to `packet` over UDP, which must encode.
    async fn ask(handler: &Handler, packet: &[u8]) -> Message {
        let src: SocketAddr = "127.0.0.1:5300".parse().expect("addr");
        let request = Request::from_bytes(packet.to_vec(), src, Protocol::Udp).expect("parses");
        let out = Udp::default();
        handler.answer(&request, out.clone()).await;
        let sent = out.0.lock().expect("lock");
        let [Ok(bytes)] = sent.as_slice() else {
            panic!("one encoded answer expected, got {sent:?}");
        };
        Message::from_vec(bytes).expect("the answer parses")
    }

    const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fuzz-regressions");

    #[tokio::test]
    async fn malformed_questions_get_formerr_without_a_question() {
        let handler = handler();
        for (file, qdcount) in [
            // 6 questions in 501 bytes, no EDNS: repeated, they did not fit in 512 bytes.
            ("several-questions-over-512-bytes.bin", 6),
            // 6 questions, a name among them read from the header.
            ("question-points-into-header.bin", 6),
        ] {
            let packet = std::fs::read(format!("{REGRESSIONS}/handler/{file}")).expect(file);
            assert_eq!(packet[4..6], [0, qdcount], "{file}");
            let answer = ask(&handler, &packet).await;
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::FormErr,
                "{file}"
            );
            assert!(answer.queries.is_empty(), "{file}: a question was repeated");
        }

        // One question, read from the header: the root, from QDCOUNT's high byte.
        let header = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00";
        let answer = ask(
            &handler,
            &[&header[..], b"\xc0\x04\x00\x01\x00\x01"].concat(),
        )
        .await;
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        assert!(answer.queries.is_empty());

        // Another opcode with two questions: NOTIMP, questions not repeated either.
        let update = b"\x12\x34\x28\x00\x00\x02\x00\x00\x00\x00\x00\x00";
        let question = b"\x07example\x00\x00\x06\x00\x01";
        let answer = ask(&handler, &[&update[..], question, question].concat()).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NotImp);
        assert!(answer.queries.is_empty());

        // One well-formed question is repeated exactly, case included.
        let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03WwW\x00\x00\x01\x00\x03";
        let answer = ask(&handler, query).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::Refused); // class CH
        assert_eq!(answer.queries.len(), 1);
        assert_eq!(answer.queries[0].name().to_ascii(), "WwW.");
    }

    /// `www.example.` A IN, with no pointer.
    const PLAIN: &[u8] = b"\x03www\x07example\x00\x00\x01\x00\x01";

    #[test]
    fn names_reading_from_the_header_are_found() {
        assert!(!question_points_into_header(PLAIN, 1));
        assert!(!question_points_into_header(&[0, 0, 1, 0, 1], 1)); // the root
        // What the fuzzer found (tests/data/fuzz-regressions/handler/): a name that is only a
        // pointer to offset 0, so the ID and flags are read as labels.
        assert!(question_points_into_header(b"\xc0\x00\x00\x01\x00\x01", 1));
        assert!(question_points_into_header(
            b"\x01a\xc0\x0b\x00\x01\x00\x01",
            1
        ));

        // A second question pointing into the first is repeated faithfully: the section
        // sits at the same offset in the answer. `example` starts at offset 12 + 4.
        let mut two = PLAIN.to_vec();
        two.extend_from_slice(b"\x03ftp\xc0\x10\x00\x01\x00\x01");
        assert!(!question_points_into_header(&two, 2));

        // A chain: the first question's label holds bytes that read as a pointer to offset 5;
        // the second question points at them (offset 12 + 1).
        let chain = b"\x02\xc0\x05\x00\x00\x01\x00\x01\xc0\x0d\x00\x01\x00\x01";
        assert!(!question_points_into_header(&chain[..8], 1));
        assert!(question_points_into_header(chain, 2));
    }
}
