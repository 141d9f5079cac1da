//! Filtering and forwarding end to end: blocks, profiles, access, relay, TCP, truncation,
//! upstream failure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;

const KID: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_names_and_subdomains_get_the_block_answer_for_every_type() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;
    for qname in [
        BLOCKED,
        "sub.blocked.example.test.",
        "a.b.c.blocked.example.test.",
    ] {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::HTTPS,
            RecordType::TXT,
            RecordType::Unknown(666),
        ] {
            let reply = ask(daemon.addr, qname, qtype).await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NXDomain,
                "{qname} {qtype}"
            );
            assert!(
                reply.answers.is_empty(),
                "{qname} {qtype}: no upstream answer leaks"
            );
            let (soa, ttl) = soa_of(&reply).expect("synthetic SOA");
            assert_eq!(
                (ttl, soa.minimum),
                (60, 60),
                "clients cache a block only briefly"
            );
            assert!(reply.metadata.recursion_available);
        }
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_ip_and_custom_address_styles() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_with(
        upstream.addr,
        "block_response = \"null-ip\"\nblock_ttl = \"30s\"",
        "",
    )
    .await;
    let a = ask(daemon.addr, BLOCKED, RecordType::A).await;
    assert_eq!(a_records(&a), vec![Ipv4Addr::UNSPECIFIED]);
    assert_eq!(a.answers[0].ttl, 30);
    let aaaa = ask(daemon.addr, BLOCKED, RecordType::AAAA).await;
    assert_eq!(aaaa.answers.len(), 1);
    assert!(matches!(&aaaa.answers[0].data, RData::AAAA(v6) if v6.0 == Ipv6Addr::UNSPECIFIED));
    let https = ask(daemon.addr, BLOCKED, RecordType::HTTPS).await;
    assert_eq!(https.metadata.response_code, ResponseCode::NoError);
    assert!(
        https.answers.is_empty() && soa_of(&https).is_some(),
        "NODATA with SOA"
    );
    daemon.stop().await;

    let daemon = Daemon::start_with(upstream.addr, "block_response = \"192.0.2.250\"", "").await;
    let a = ask(daemon.addr, "x.blocked.example.test.", RecordType::A).await;
    assert_eq!(a_records(&a), vec![Ipv4Addr::new(192, 0, 2, 250)]);
    daemon.stop().await;

    let daemon = Daemon::start_with(upstream.addr, "block_response = \"refused\"", "").await;
    let r = ask(daemon.addr, BLOCKED, RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_names_get_the_upstream_answer_unchanged() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;

    let a = ask(daemon.addr, WWW, RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&a), vec![WWW_V4]);
    assert_eq!(a.answers[0].ttl, 300, "upstream TTL relayed");
    let aaaa = ask(daemon.addr, WWW, RecordType::AAAA).await;
    assert_eq!(aaaa.answers.len(), 1);
    let txt = ask(daemon.addr, WWW, RecordType::TXT).await;
    assert!(
        matches!(&txt.answers[0].data, RData::TXT(t) if t.to_string().contains("hello from upstream"))
    );

    // Missing names: NXDOMAIN with the upstream's own SOA; NODATA likewise.
    let missing = ask(daemon.addr, "missing.example.test.", RecordType::A).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    let (soa, _) = soa_of(&missing).expect("upstream SOA relayed");
    assert_eq!(soa.serial, 7);
    assert_eq!(soa.mname.to_ascii(), "ns.example.test.");
    let nodata = ask(daemon.addr, WWW, RecordType::MX).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty() && soa_of(&nodata).is_some());

    // Second time from the cache: same answer, TTL not above the first.
    let again = ask(daemon.addr, WWW, RecordType::A).await;
    assert_eq!(a_records(&again), vec![WWW_V4]);
    assert!(again.answers[0].ttl <= 300);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_its_profile() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;
    let ask_from = |from: IpAddr, qname: &'static str| {
        let addr = daemon.addr;
        async move { udp_from(from, addr, &query_message(qname, RecordType::A)).await }
    };
    // The default profile (teen) blocks adult only.
    assert_eq!(
        a_records(&ask_from(IpAddr::V4(Ipv4Addr::LOCALHOST), CASINO).await),
        vec![Ipv4Addr::new(192, 0, 2, 77)]
    );
    // The child profile blocks gambling too, denies www, allows khan.
    assert_eq!(
        ask_from(KID, CASINO).await.metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask_from(KID, WWW).await.metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        a_records(&ask_from(KID, "khan.example.test.").await),
        vec![Ipv4Addr::new(192, 0, 2, 88)]
    );
    assert_eq!(
        a_records(&ask_from(IpAddr::V4(Ipv4Addr::LOCALHOST), WWW).await),
        vec![WWW_V4]
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_beats_deny_and_categories() {
    let upstream = Upstream::start().await;
    let extra = "[profiles.strict]\nblock = [\"adult\"]\nallow = [\"sub.blocked.example.test\"]\ndeny = [\"blocked.example.test\"]\n\
                 [[clients]]\nname = \"strict\"\nmatch = [\"127.0.0.6\"]\nprofile = \"strict\"\n";
    let daemon = Daemon::start_with(upstream.addr, "", extra).await;
    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));
    let allowed = udp_from(
        from,
        daemon.addr,
        &query_message("sub.blocked.example.test.", RecordType::A),
    )
    .await;
    assert_eq!(a_records(&allowed), vec![Ipv4Addr::new(192, 0, 2, 67)]);
    let denied = udp_from(from, daemon.addr, &query_message(BLOCKED, RecordType::A)).await;
    assert_eq!(denied.metadata.response_code, ResponseCode::NXDomain);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_allow_clients_are_refused() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_with(upstream.addr, "", "").await;
    // Narrow the access list by reloading a config that allows one other address only.
    let path = daemon.dir.path().join("kidsafe.toml");
    let text = std::fs::read_to_string(&path).expect("read").replace(
        "allow_clients = [\"127.0.0.0/8\"]",
        "allow_clients = [\"127.0.0.9/32\"]",
    );
    std::fs::write(&path, text).expect("write");
    kidsafe::reload::reload(&daemon.shared, &path)
        .await
        .expect("reload");

    for qname in [WWW, BLOCKED] {
        let refused = ask(daemon.addr, qname, RecordType::A).await;
        assert_eq!(
            refused.metadata.response_code,
            ResponseCode::Refused,
            "{qname}"
        );
        assert!(refused.answers.is_empty());
    }
    let from9 = udp_from(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
        daemon.addr,
        &query_message(WWW, RecordType::A),
    )
    .await;
    assert_eq!(a_records(&from9), vec![WWW_V4]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_works_for_blocked_and_allowed_names() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;
    let blocked = tcp(daemon.addr, &query_message(BLOCKED, RecordType::A)).await;
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    let allowed = tcp(daemon.addr, &query_message(WWW, RecordType::A)).await;
    assert_eq!(a_records(&allowed), vec![WWW_V4]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upstream_answer_is_fetched_over_tcp() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;
    // Over TCP the client gets every record: kidsafe got them from the upstream over TCP,
    // because the upstream's UDP answer to our 1232-byte EDNS query was truncated.
    let full = tcp(daemon.addr, &query_message(BIG, RecordType::TXT)).await;
    assert_eq!(full.metadata.response_code, ResponseCode::NoError);
    assert!(!full.metadata.truncation);
    assert_eq!(full.answers.len(), BIG_RECORDS);
    // Over UDP the client asked for 4096 bytes but gets at most 1232: TC set, so it retries on TCP.
    let mut big_udp = query_message(BIG, RecordType::TXT);
    if let Some(edns) = big_udp.edns.as_mut() {
        edns.set_max_payload(4096);
    }
    let bytes = big_udp.to_vec().expect("encode");
    let raw = exchange_raw(daemon.addr, &bytes, CLIENT_WAIT)
        .await
        .expect("answer");
    assert!(raw.len() <= 1232, "UDP answer of {} bytes", raw.len());
    let truncated = hickory_proto::op::Message::from_vec(&raw).expect("parse");
    assert!(
        truncated.metadata.truncation,
        "TC set when the answer does not fit"
    );
    assert!(truncated.answers.len() < BIG_RECORDS);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_gives_servfail_within_the_timeout() {
    // A real socket that reads nothing and answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dead: SocketAddr = silent.local_addr().expect("addr");
    let daemon = Daemon::start(dead).await;
    let started = Instant::now();
    let reply = ask(daemon.addr, WWW, RecordType::A).await;
    let waited = started.elapsed();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    // The upstream timeout is 1.5 s; the bound is loose because CI machines are shared.
    assert!(
        waited >= Duration::from_millis(1400),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(4500),
        "answered late: {waited:?}"
    );
    // Blocked names never need the upstream.
    let blocked = ask(daemon.addr, BLOCKED, RecordType::A).await;
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    daemon.stop().await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_upstream_answers_when_the_first_is_dead() {
    let upstream = Upstream::start().await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dead = silent.local_addr().expect("addr");
    let daemon = Daemon::start(dead).await;
    let path = daemon.dir.path().join("kidsafe.toml");
    let text = std::fs::read_to_string(&path).expect("read").replace(
        &format!("servers = [\"{dead}\"]"),
        &format!("servers = [\"{dead}\", \"{}\"]", upstream.addr),
    );
    std::fs::write(&path, text).expect("write");
    kidsafe::reload::reload(&daemon.shared, &path)
        .await
        .expect("reload");
    let reply = ask(daemon.addr, WWW, RecordType::A).await;
    assert_eq!(a_records(&reply), vec![WWW_V4]);
    daemon.stop().await;
}
