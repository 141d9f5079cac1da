//! Target `handler`: the input is one DNS message as a client sends it. It goes through
//! `Request::from_bytes` (what hickory-server does before calling a handler) and then to
//! kidsafe's `Handler` twice: over UDP from 127.0.0.1 (profile `child`, NXDOMAIN blocks) and
//! over TCP from 127.0.0.2 (profile `teen`, null-IP blocks). A `ResponseHandler` captures the
//! encoded answer exactly as hickory-server's own `ResponseHandle` encodes it.
//!
//! The upstream is 127.0.0.1:9 where nothing listens: a forwarded query fails at once with
//! "connection refused" (ICMP port unreachable on loopback), so it is answered SERVFAIL and the
//! target keeps its speed (fuzz/README.md has the measurement).
//!
//! Asserted, for every message hickory-server would hand to the handler:
//! - exactly one answer, which encodes, parses back, keeps the request's ID and opcode and is
//!   a response;
//! - over UDP it is at most 1232 bytes, and at most 512 when the query had no EDNS;
//! - its response code is the one the request path documents (NOTIMP, FORMERR, BADVERS,
//!   REFUSED, the block answer, or SERVFAIL for a forward to the dead upstream), worked out
//!   here from the request independently of the handler;
//! - a complete (not truncated) answer repeats a single question exactly, case included, and
//!   no question otherwise (several may not fit in 512 bytes), nor one whose name reads header
//!   bytes through a compression pointer, which is FORMERR (the header differs in the answer,
//!   so the repeated bytes would read as another name); it carries an OPT record of version 0
//!   with a payload of at most 1232 when the query had one;
//! - only a null-IP block answers with a record, and then one record for the asked name.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler};
use kidsafe::dns::Handler;
use kidsafe::dns::request::Capture;
use kidsafe::runtime::{Runtime, share};

/// The largest UDP answer kidsafe may send (DNS Flag Day 2020).
const MAX_UDP: usize = 1232;

/// What kidsafe serves while fuzzed. `STYLE` is replaced per handler.
const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
allow_clients = ["127.0.0.0/8"]
block_response = "STYLE"
state_dir = "state"

[upstream]
# Nothing listens on the discard port: a forward fails at once with "connection refused".
servers = ["127.0.0.1:9"]
timeout = "1s"

[cache]
entries = 1000

[stats]
enabled = false

[lists]
dirs = ["lists"]

[defaults]
profile = "teen"

[profiles.child]
block = ["adult", "gambling"]
allow = ["ok.blocked.example"]
deny = ["denied.example"]

[profiles.teen]
block = ["adult"]
deny = ["denied.example"]

[[clients]]
name = "fuzz"
match = ["127.0.0.1"]
profile = "child"
"#;

/// The lists, and the oracle's copy of them: (category file, names).
const LISTS: &[(&str, &[&str])] = &[
    ("adult", &["blocked.example", "adult.test"]),
    ("gambling", &["casino.test"]),
];

/// One way of running a request: its transport, its source (hence its profile) and a
/// handler built with one block style.
struct Lane {
    protocol: Protocol,
    src: SocketAddr,
    handler: Handler,
    null_ip: bool,
    child: bool,
}

struct Harness {
    tokio: tokio::runtime::Runtime,
    lanes: [Lane; 2],
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        // Handler::new and the runtime's counters want to be inside a runtime.
        let _entered = tokio.enter();
        let lane = |protocol, last_octet, style: &str, child| Lane {
            protocol,
            src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)), 40_000),
            handler: Handler::new(share(build_runtime(style))),
            null_ip: style == "null-ip",
            child,
        };
        let lanes = [
            lane(Protocol::Udp, 1, "nxdomain", true),
            lane(Protocol::Tcp, 2, "null-ip", false),
        ];
        Harness { tokio, lanes }
    })
}

/// Writes the config and lists to a temporary directory, builds the runtime, removes them:
/// the runtime holds everything it needs in memory.
fn build_runtime(style: &str) -> Runtime {
    let dir = tempfile::tempdir().expect("tempdir");
    let lists = dir.path().join("lists");
    std::fs::create_dir(&lists).expect("lists dir");
    for (category, names) in LISTS {
        let text: String = names.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(lists.join(format!("{category}.txt")), text).expect("list file");
    }
    let config = dir.path().join("kidsafe.toml");
    std::fs::write(&config, CONFIG.replace("STYLE", style)).expect("config");
    kidsafe::reload::load(Path::new(&config)).expect("the fuzz config builds")
}

/// Runs the checks on one input; panics on a violation.
pub fn check(data: &[u8]) {
    let harness = harness();
    for lane in &harness.lanes {
        let Ok(request) = Request::from_bytes(data.to_vec(), lane.src, lane.protocol) else {
            continue; // hickory-server drops it (< 12 bytes) or answers FORMERR itself
        };
        if request.metadata.message_type == MessageType::Response {
            continue; // hickory-server drops responses before any handler sees them
        }
        let capture = match lane.protocol {
            Protocol::Udp => Capture::default(),
            _ => Capture::for_stream(),
        };
        harness.tokio.block_on(
            lane.handler
                .handle_request::<_, TokioTime>(&request, capture.clone()),
        );
        let sent = capture.take_sent();
        let (1, Some(answer)) = (sent.count, &sent.last) else {
            panic!(
                "{} answers over {:?}, one expected",
                sent.count, lane.protocol
            );
        };
        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(error) => panic!(
                "the answer over {:?} did not encode: {error}",
                lane.protocol
            ),
        };
        check_answer(lane, &request, bytes);
    }
}

fn check_answer(lane: &Lane, request: &Request, bytes: &[u8]) {
    let udp = lane.protocol == Protocol::Udp;
    let response = Message::from_vec(bytes).unwrap_or_else(|e| {
        panic!(
            "the answer does not parse ({e}): {:?}",
            bytes.escape_ascii().to_string()
        )
    });
    let meta = &response.metadata;
    assert_eq!(meta.id, request.metadata.id, "answer ID");
    assert_eq!(meta.message_type, MessageType::Response, "QR bit");
    assert_eq!(meta.op_code, request.metadata.op_code, "opcode");
    if udp {
        let limit = if request.edns.is_some() { MAX_UDP } else { 512 };
        assert!(
            bytes.len() <= limit,
            "{}-byte UDP answer, limit {limit}",
            bytes.len()
        );
    }

    let want = expected_rcode(lane, request);
    // Compared as numbers: 16 parses back as BADSIG, which shares its code with BADVERS.
    assert_eq!(
        u16::from(meta.response_code),
        u16::from(want),
        "response code over {:?}: {} expected, got {}",
        lane.protocol,
        want,
        meta.response_code
    );

    if meta.truncation {
        return; // sections may be cut short; the header checks above still hold
    }
    if request.queries.len() == 1 && !reads_header(request.as_slice(), 1) {
        let asked = request.queries.queries()[0].original();
        let [echoed] = response.queries.as_slice() else {
            panic!(
                "{} questions repeated, one expected",
                response.queries.len()
            );
        };
        assert_eq!(
            exact(echoed.name(), echoed.query_type(), echoed.query_class()),
            exact(asked.name(), asked.query_type(), asked.query_class()),
            "the question is not repeated exactly"
        );
    } else {
        assert!(
            response.queries.is_empty(),
            "{} questions repeated, none expected",
            response.queries.len()
        );
    }
    if request.edns.is_some() {
        let edns = response
            .edns
            .as_ref()
            .expect("an OPT record for an EDNS query");
        assert_eq!(edns.version(), 0, "OPT version");
        assert!(
            usize::from(edns.max_payload()) <= MAX_UDP,
            "OPT payload {}",
            edns.max_payload()
        );
    }
    let record_answer = lane.null_ip
        && want == ResponseCode::NoError
        && matches!(
            request.queries.queries().first().map(|q| q.query_type()),
            Some(RecordType::A | RecordType::AAAA)
        );
    if record_answer {
        let [record] = response.answers.as_slice() else {
            panic!(
                "a null-IP block answers with one record, got {}",
                response.answers.len()
            );
        };
        let asked = request.queries.queries()[0].original().name();
        assert!(record.name.eq_ignore_root(asked), "answer for another name");
    } else {
        assert!(
            response.answers.is_empty(),
            "unexpected answers: {:?}",
            response.answers
        );
    }
}

/// A question as written, byte for byte (hickory's `Name` equality ignores case).
fn exact(
    name: &Name,
    qtype: RecordType,
    qclass: DNSClass,
) -> (Vec<Vec<u8>>, bool, RecordType, DNSClass) {
    (
        name.iter().map(<[u8]>::to_vec).collect(),
        name.is_fqdn(),
        qtype,
        qclass,
    )
}

/// The response code the documented request path gives, worked out from the request alone.
fn expected_rcode(lane: &Lane, request: &Request) -> ResponseCode {
    if reads_header(request.as_slice(), request.queries.len()) {
        return ResponseCode::FormErr;
    }
    if request.metadata.op_code != OpCode::Query {
        return ResponseCode::NotImp;
    }
    let [query] = request.queries.queries() else {
        return ResponseCode::FormErr;
    };
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return ResponseCode::BADVERS;
    }
    if query.query_class() != DNSClass::IN {
        return ResponseCode::Refused;
    }
    let qtype = query.query_type();
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return if lane.protocol == Protocol::Udp {
            ResponseCode::FormErr
        } else {
            ResponseCode::Refused
        };
    }
    if blocked(lane.child, query.original().name()) {
        return if lane.null_ip {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        };
    }
    if qtype == RecordType::ANY || !request.metadata.recursion_desired {
        return ResponseCode::Refused;
    }
    ResponseCode::ServFail // forwarded to the dead upstream
}

/// Whether reading the first `count` question names of `message` (the whole request) reads a
/// byte of the 12-byte header, following compression pointers. Written from RFC 1035 here,
/// on absolute offsets, rather than shared with the handler.
fn reads_header(message: &[u8], count: usize) -> bool {
    let mut pos = 12;
    for _ in 0..count {
        let mut cursor = pos;
        let mut resume = None;
        loop {
            if cursor < 12 {
                return true;
            }
            let Some(&byte) = message.get(cursor) else {
                return true;
            };
            match byte >> 6 {
                0 if byte == 0 => {
                    pos = resume.unwrap_or(cursor + 1) + 4;
                    break;
                }
                0 => cursor += 1 + usize::from(byte),
                3 => {
                    let Some(&low) = message.get(cursor + 1) else {
                        return true;
                    };
                    resume.get_or_insert(cursor + 2);
                    let target = usize::from(byte & 0x3F) << 8 | usize::from(low);
                    assert!(
                        target < cursor,
                        "hickory accepted a pointer that is not backwards"
                    );
                    cursor = target;
                }
                _ => panic!("hickory accepted a reserved label type"),
            }
        }
    }
    false
}

/// The policy for the fuzz config, label-wise and case-insensitive: allow beats deny beats the
/// categories.
fn blocked(child: bool, name: &Name) -> bool {
    let labels: Vec<Vec<u8>> = name.iter().map(|l| l.to_ascii_lowercase()).collect();
    let under = |listed: &str| {
        let listed: Vec<&[u8]> = listed.split('.').map(str::as_bytes).collect();
        labels.len() >= listed.len()
            && labels[labels.len() - listed.len()..]
                .iter()
                .zip(&listed)
                .all(|(a, b)| a.as_slice() == *b)
    };
    if child && under("ok.blocked.example") {
        return false;
    }
    if under("denied.example") {
        return true;
    }
    LISTS
        .iter()
        .filter(|(category, _)| child || *category == "adult")
        .flat_map(|(_, names)| names.iter())
        .any(|listed| under(listed))
}
