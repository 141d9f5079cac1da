//! The reply half of the handler: Extended DNS Errors, the response's OPT record, the header
//! checks done on raw bytes, and [`Reply`], which writes every kind of answer.

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use super::cache::Answer;
use super::handler::MAX_UDP_PAYLOAD;

/// How long a safe-search CNAME may be cached.
pub(super) const REWRITE_TTL: u32 = 300;
/// EDNS option code of Extended DNS Errors (RFC 8914).
pub(super) const EDE_OPTION: u16 = 15;
/// Extended DNS Error info code "Blocked".
pub(super) const EDE_BLOCKED: u16 = 15;
/// Extended DNS Error info code "Stale Answer".
pub(super) const EDE_STALE: u16 = 3;

/// `edns` with an Extended DNS Error (RFC 8914): `code` and its extra text.
pub(super) fn with_ede(edns: &Edns, code: u16, text: &str) -> Edns {
    let mut e = edns.clone();
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(text.as_bytes());
    e.options_mut()
        .insert(EdnsOption::Unknown(EDE_OPTION, payload));
    e
}

/// The OPT record we answer with: version 0, our payload limit (never more than the client's),
/// the client's DO bit, no options echoed.
pub(super) fn response_edns(request: &Edns) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(request.max_payload().clamp(512, MAX_UDP_PAYLOAD));
    edns.set_dnssec_ok(request.flags().dnssec_ok);
    edns
}

/// Length of the DNS header, which every message starts with.
pub(super) const HEADER_LEN: usize = 12;

/// Whether a name in the question section (`section`, the bytes of `count` questions as the
/// client sent them, which start right after the header) reads any byte from the header
/// through a compression pointer, directly or through a chain of pointers. hickory accepts
/// such names (pointers need only point backwards), but they are never legitimate: a query's
/// first name has nothing before it to point at except the header.
pub(super) fn question_points_into_header(section: &[u8], count: usize) -> bool {
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

pub(super) fn info_for(request: &Metadata, rcode: ResponseCode) -> ResponseInfo {
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
pub(super) struct Reply<'a> {
    pub(super) request: &'a Request,
    /// The question section to repeat: the request's, or none.
    pub(super) queries: &'a Queries,
    pub(super) edns: Option<&'a Edns>,
}

impl Reply<'_> {
    pub(super) async fn error<R: ResponseHandler>(
        &self,
        out: &mut R,
        rcode: ResponseCode,
    ) -> ResponseInfo {
        self.records(out, rcode, false, &[], &[], &[]).await
    }

    pub(super) async fn cached<R: ResponseHandler>(
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

    pub(super) async fn records<R: ResponseHandler>(
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
