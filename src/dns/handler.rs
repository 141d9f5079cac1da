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
use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::Queries;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::answer;
use super::cache::AnswerCache;
use super::coalesce::Coalescer;
use super::ratelimit::RateLimiter;
use super::reply::*;
use super::resolve::{Resolved, cloaked};
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
    pub(super) runtime: SharedRuntime,
    pub(super) cache: Arc<AnswerCache>,
    pub(super) forwarder: Forwarder,
    pub(super) requests: Semaphore,
    pub(super) in_flight: TaskTracker,
    pub(super) coalescer: Arc<Coalescer>,
    pub(super) limiter: RateLimiter,
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

    /// Whether `server.allow_clients` of the runtime in force admits `ip`.
    pub fn client_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.runtime.load().policy.client_allowed(ip)
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
        let asked = Asked {
            name,
            qtype,
            profile,
            client_rule,
            ttl_cap,
        };
        let decision = runtime
            .policy
            .decide(profile, || name.iter(), &runtime.lists.store, now);
        drop(live);
        let rewrite = match decision {
            Decision::Block(reason) => {
                return self.block(&reply, &mut out, &runtime, &asked, reason).await;
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
            return self.block(&reply, &mut out, &runtime, &asked, reason).await;
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

    /// Answers a blocked name and counts it (by profile and category only: the name and the
    /// address stop here).
    async fn block<R: ResponseHandler>(
        &self,
        reply: &Reply<'_>,
        out: &mut R,
        runtime: &Runtime,
        asked: &Asked<'_>,
        reason: BlockReason,
    ) -> ResponseInfo {
        let Asked {
            name,
            qtype,
            profile,
            client_rule,
            ttl_cap,
        } = *asked;
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

/// One question as the policy saw it: what was asked, by which profile (and client rule),
/// and how long an answer may live before the profile's rules next change.
#[derive(Clone, Copy)]
struct Asked<'a> {
    name: &'a Name,
    qtype: RecordType,
    profile: usize,
    client_rule: Option<usize>,
    ttl_cap: Option<u32>,
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;

    use hickory_proto::op::Message;

    use super::*;
    use crate::config::Config;
    use crate::dns::request::Capture;
    use crate::runtime::share;

    /// A handler with no lists whose upstream refuses at once (nothing listens on port 9).
    fn handler() -> Handler {
        let source =
            "[upstream]\nservers = [\"127.0.0.1:9\"]\n[defaults]\nprofile = \"p\"\n[profiles.p]\n";
        let config = Config::from_source(Path::new("/test/kidsafe.toml"), source).expect("config");
        Handler::new(share(
            crate::reload::build_runtime(config, Instant::now()).expect("runtime"),
        ))
    }

    /// The one answer to `packet` over UDP, which must encode.
    async fn ask(handler: &Handler, packet: &[u8]) -> Message {
        let src: SocketAddr = "127.0.0.1:5300".parse().expect("addr");
        let request = Request::from_bytes(packet.to_vec(), src, Protocol::Udp).expect("parses");
        let out = Capture::default();
        handler.answer(&request, out.clone()).await;
        let sent = out.take_sent();
        let (1, Some(Ok(bytes))) = (sent.count, &sent.last) else {
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
