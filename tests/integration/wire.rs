//! The malformed-query table of HOSTILE-INPUTS.md, sent as raw bytes to the running daemon.

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;

const QUIET: Duration = Duration::from_millis(400);

/// Header: id, flags, QD, AN, NS, AR.
fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = vec![0xbe, 0xef];
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

/// RD set, opcode QUERY.
const RD: u16 = 0x0100;

fn labels(name: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name {
        out.push(u8::try_from(l.len()).expect("short label"));
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

fn question(name: &[&[u8]], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut q = labels(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

const WWW_L: &[&[u8]] = &[b"www", b"example", b"test"];
const BLOCKED_L: &[&[u8]] = &[b"blocked", b"example", b"test"];

/// An OPT record: payload size, version, options (code, data).
fn opt(payload: u16, version: u8, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for (code, data) in options {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&u16::try_from(data.len()).expect("short").to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let mut r = vec![0u8]; // root owner
    r.extend_from_slice(&41u16.to_be_bytes());
    r.extend_from_slice(&payload.to_be_bytes());
    r.extend_from_slice(&[0, version, 0, 0]);
    r.extend_from_slice(&u16::try_from(rdata.len()).expect("short").to_be_bytes());
    r.extend_from_slice(&rdata);
    r
}

fn packet(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn simple(name: &[&[u8]], qtype: u16) -> Vec<u8> {
    packet(&[header(RD, [1, 0, 0, 0]), question(name, qtype, 1)])
}

/// What must happen to one input.
enum Expect {
    /// No reply at all.
    Silence,
    /// This response code.
    Rcode(ResponseCode),
    /// An answer with this rcode that also passes a check.
    Check(ResponseCode, fn(&[u8], &Message)),
}

fn no_kidsafe_soa(_: &[u8], m: &Message) {
    if let Some((soa, _)) = soa_of(m) {
        assert_ne!(
            soa.mname.to_ascii(),
            "kidsafe.invalid.",
            "must not be a kidsafe block"
        );
    }
}

fn www_answered(_: &[u8], m: &Message) {
    assert_eq!(a_records(m), vec![WWW_V4]);
}

fn opt_version_zero_no_options(_: &[u8], m: &Message) {
    let edns = m.edns.as_ref().expect("OPT in the answer");
    assert_eq!(edns.version(), 0);
    assert!(
        edns.options().as_ref().is_empty(),
        "unknown options are not echoed"
    );
}

fn no_question_repeated(raw: &[u8], m: &Message) {
    assert_eq!(&raw[4..6], &[0, 0], "QDCOUNT of the answer");
    assert!(m.queries.is_empty());
}

fn case_echoed(raw: &[u8], _: &Message) {
    assert_eq!(
        &raw[12..12 + 18],
        b"\x03WwW\x07ExAmPlE\x04TeSt\x00",
        "question bytes echoed exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_malformed_query_table() {
    use Expect::*;
    use ResponseCode::*;
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;

    let long_name: Vec<&[u8]> = vec![&[b'a'; 63][..]; 5];
    let mut label64 = vec![64u8];
    label64.extend_from_slice(&[b'a'; 64]);
    label64.extend_from_slice(&[0, 0, 1, 0, 1]);

    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty datagram", vec![], Silence),
        ("11 bytes", vec![0; 11], Silence),
        (
            "label length 64",
            packet(&[header(RD, [1, 0, 0, 0]), label64]),
            Rcode(FormErr),
        ),
        (
            "name over 255 octets",
            packet(&[header(RD, [1, 0, 0, 0]), question(&long_name, 1, 1)]),
            Rcode(FormErr),
        ),
        (
            "pointer to itself",
            packet(&[header(RD, [1, 0, 0, 0]), vec![0xc0, 0x0c, 0, 1, 0, 1]]),
            Rcode(FormErr),
        ),
        (
            "forward pointer",
            packet(&[
                header(RD, [1, 0, 0, 0]),
                vec![0xc0, 0x20, 0, 1, 0, 1],
                vec![0; 20],
            ]),
            Rcode(FormErr),
        ),
        (
            "reserved label type",
            packet(&[header(RD, [1, 0, 0, 0]), vec![0x80, 0, 0, 1, 0, 1]]),
            Rcode(FormErr),
        ),
        (
            // Found by fuzzing: the name is read from the header (here the root, from the
            // QDCOUNT's high byte), which differs in the answer, so it cannot be repeated.
            "question name pointing into the header",
            packet(&[header(RD, [1, 0, 0, 0]), vec![0xc0, 0x04, 0, 1, 0, 1]]),
            Check(FormErr, no_question_repeated),
        ),
        ("QDCOUNT 0", header(RD, [0, 0, 0, 0]), Rcode(FormErr)),
        (
            "QDCOUNT 2 (a blocked name behind an allowed one)",
            packet(&[
                header(RD, [2, 0, 0, 0]),
                question(WWW_L, 1, 1),
                question(BLOCKED_L, 1, 1),
            ]),
            Check(FormErr, no_question_repeated),
        ),
        (
            // Found by fuzzing: repeated, these questions no longer fit in 512 bytes, and
            // hickory would send a bare SERVFAIL header instead of the FORMERR.
            "6 questions in 501 bytes, no EDNS",
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/fuzz-regressions/handler/several-questions-over-512-bytes.bin"
            ))
            .expect("regression input"),
            Check(FormErr, no_question_repeated),
        ),
        (
            "trailing garbage",
            packet(&[simple(WWW_L, 1), vec![0xde, 0xad, 0xbe, 0xef]]),
            Check(NoError, www_answered),
        ),
        (
            "ANCOUNT 65535 without data",
            packet(&[header(RD, [1, 65535, 0, 0]), question(WWW_L, 1, 1)]),
            Rcode(FormErr),
        ),
        (
            // Header-only checks (HOSTILE-INPUTS: a query carries no answer or authority
            // records and at most one additional, the OPT): refused before any parse, so a
            // client cannot make the server hold records it never needed.
            "a well-formed A record in the answer section",
            packet(&[
                header(RD, [1, 1, 0, 0]),
                question(WWW_L, 1, 1),
                vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1],
            ]),
            Check(FormErr, no_question_repeated),
        ),
        (
            "a well-formed record in the authority section",
            packet(&[
                header(RD, [1, 0, 1, 0]),
                question(WWW_L, 1, 1),
                vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1],
            ]),
            Check(FormErr, no_question_repeated),
        ),
        (
            "an A record beside the OPT in the additional section",
            packet(&[
                header(RD, [1, 0, 0, 2]),
                question(WWW_L, 1, 1),
                opt(1232, 0, &[]),
                vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1],
            ]),
            Check(FormErr, no_question_repeated),
        ),
        (
            "QDCOUNT 5 with one question",
            packet(&[header(RD, [5, 0, 0, 0]), question(WWW_L, 1, 1)]),
            Rcode(FormErr),
        ),
        (
            "EDNS version 1",
            packet(&[
                header(RD, [1, 0, 0, 1]),
                question(WWW_L, 1, 1),
                opt(1232, 1, &[]),
            ]),
            Check(BADVERS, opt_version_zero_no_options),
        ),
        (
            "EDNS payload 0",
            packet(&[
                header(RD, [1, 0, 0, 1]),
                question(WWW_L, 1, 1),
                opt(0, 0, &[]),
            ]),
            Check(NoError, www_answered),
        ),
        (
            "two OPT records",
            packet(&[
                header(RD, [1, 0, 0, 2]),
                question(WWW_L, 1, 1),
                opt(1232, 0, &[]),
                opt(1232, 0, &[]),
            ]),
            Rcode(FormErr),
        ),
        (
            "unknown EDNS option 100",
            packet(&[
                header(RD, [1, 0, 0, 1]),
                question(WWW_L, 1, 1),
                opt(1232, 0, &[(100, b"hello")]),
            ]),
            Check(NoError, opt_version_zero_no_options),
        ),
        (
            "OPT rdlen past the end",
            packet(&[
                header(RD, [1, 0, 0, 1]),
                question(WWW_L, 1, 1),
                vec![0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 50, 0, 100],
            ]),
            Rcode(FormErr),
        ),
        (
            "QTYPE 666, allowed name",
            simple(WWW_L, 666),
            Check(NoError, no_kidsafe_soa),
        ),
        (
            "QTYPE 666, blocked name",
            simple(BLOCKED_L, 666),
            Rcode(NXDomain),
        ),
        (
            "CHAOS TXT version.bind",
            packet(&[
                header(RD, [1, 0, 0, 0]),
                question(&[b"version", b"bind"], 16, 3),
            ]),
            Rcode(Refused),
        ),
        (
            "QTYPE ANY, allowed name",
            simple(WWW_L, 255),
            Rcode(Refused),
        ),
        (
            "QTYPE ANY, blocked name",
            simple(BLOCKED_L, 255),
            Rcode(NXDomain),
        ),
        (
            "0x20 mixed case, allowed",
            simple(&[b"WwW", b"ExAmPlE", b"TeSt"], 1),
            Check(NoError, case_echoed),
        ),
        (
            "0x20 mixed case, blocked",
            simple(&[b"BlOcKeD", b"eXaMpLe", b"TEST"], 1),
            Rcode(NXDomain),
        ),
        (
            "a dot inside a label",
            simple(&[b"blocked.example", b"test"], 1),
            Check(Refused, no_kidsafe_soa),
        ),
        (
            "NUL inside a label",
            simple(&[b"bl\0cked", b"example", b"test"], 1),
            Check(NXDomain, no_kidsafe_soa),
        ),
        (
            "raw UTF-8 label",
            simple(&["bücher".as_bytes(), b"example", b"test"], 1),
            Check(NXDomain, no_kidsafe_soa),
        ),
        (
            "root NS",
            packet(&[header(RD, [1, 0, 0, 0]), vec![0, 0, 2, 0, 1]]),
            Check(Refused, no_kidsafe_soa),
        ),
        (
            "QR=1 (a response sent as a query)",
            packet(&[header(0x8000 | RD, [1, 0, 0, 0]), question(WWW_L, 1, 1)]),
            Silence,
        ),
        (
            "opcode IQUERY",
            packet(&[header(RD | (1 << 11), [1, 0, 0, 0]), question(WWW_L, 1, 1)]),
            Rcode(NotImp),
        ),
        (
            "opcode STATUS",
            packet(&[header(RD | (2 << 11), [1, 0, 0, 0]), question(WWW_L, 1, 1)]),
            Rcode(NotImp),
        ),
        (
            "opcode NOTIFY",
            packet(&[header(RD | (4 << 11), [1, 0, 0, 0]), question(WWW_L, 6, 1)]),
            Rcode(NotImp),
        ),
        (
            "opcode UPDATE",
            packet(&[
                header(RD | (5 << 11), [1, 0, 0, 0]),
                question(&[b"example", b"test"], 6, 1),
            ]),
            Rcode(NotImp),
        ),
        (
            "QCLASS ANY",
            packet(&[header(RD, [1, 0, 0, 0]), question(WWW_L, 1, 255)]),
            Rcode(Refused),
        ),
        (
            "QCLASS NONE",
            packet(&[header(RD, [1, 0, 0, 0]), question(WWW_L, 1, 254)]),
            Rcode(Refused),
        ),
        (
            "AXFR over UDP",
            simple(&[b"example", b"test"], 252),
            Rcode(FormErr),
        ),
        (
            "IXFR over UDP",
            simple(&[b"example", b"test"], 251),
            Rcode(FormErr),
        ),
        (
            "RD=0, allowed name (no cache snooping)",
            packet(&[header(0, [1, 0, 0, 0]), question(WWW_L, 1, 1)]),
            Rcode(Refused),
        ),
        (
            "RD=0, blocked name",
            packet(&[header(0, [1, 0, 0, 0]), question(BLOCKED_L, 1, 1)]),
            Rcode(NXDomain),
        ),
    ];

    for (what, bytes, expect) in cases {
        let wait = if matches!(expect, Silence) {
            QUIET
        } else {
            CLIENT_WAIT
        };
        let reply = exchange_raw(daemon.addr, &bytes, wait).await;
        match (expect, reply) {
            (Silence, None) => {}
            (Silence, Some(r)) => panic!("{what}: expected no reply, got {} bytes", r.len()),
            (_, None) => panic!("{what}: no reply"),
            (Rcode(rcode), Some(raw)) => {
                let m = Message::from_vec(&raw)
                    .unwrap_or_else(|e| panic!("{what}: unparsable reply: {e}"));
                assert_eq!(m.metadata.response_code, rcode, "{what}");
                assert_eq!(m.metadata.id, 0xbeef, "{what}: ID echoed");
            }
            (Check(rcode, check), Some(raw)) => {
                let m = Message::from_vec(&raw)
                    .unwrap_or_else(|e| panic!("{what}: unparsable reply: {e}"));
                // Compare codes, not names: BADVERS and BADSIG share 16.
                assert_eq!(
                    u16::from(m.metadata.response_code),
                    u16::from(rcode),
                    "{what}"
                );
                check(&raw, &m);
            }
        }
    }

    // Zone transfers over TCP are refused, never forwarded.
    let axfr = tcp_raw(daemon.addr, &simple(&[b"example", b"test"], 252))
        .await
        .expect("TCP reply");
    let axfr = Message::from_vec(&axfr).expect("parse");
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);

    // Still healthy afterwards.
    assert_eq!(
        a_records(&ask(daemon.addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_malformed_packets_neither_crashes_nor_stalls() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // Deterministic junk: every length from 0 to 600, bytes from a xorshift stream, plus
    // well-formed headers followed by junk so the parser goes deep.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..3000usize {
        let len = i % 600;
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && p.len() >= 12 {
            p[2] = 0x01; // RD, opcode QUERY, QR=0
            p[3] = 0x00;
            p[4] = 0;
            p[5] = 1;
        }
        socket.send_to(&p, daemon.addr).await.expect("send");
    }
    // Valid queries still get answers, blocked and forwarded.
    assert_eq!(
        ask(daemon.addr, BLOCKED, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        a_records(&ask(daemon.addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );
    let txt = ask(daemon.addr, WWW, RecordType::TXT).await;
    assert!(matches!(&txt.answers[0].data, RData::TXT(_)));
    daemon.stop().await;
}
