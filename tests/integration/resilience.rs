//! The forward path when things go wrong: bursts of the same question, dead upstreams, a
//! flooding client, and upstream answers that point public names into the LAN. Every upstream
//! here is a real UDP socket on loopback ([`FakeUpstream`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_misses_share_one_upstream_query() {
    const CLIENTS: usize = 20;
    let answer = Ipv4Addr::new(192, 0, 2, 31);
    let upstream = FakeUpstream::start(IpAddr::V4(answer), 300).await;
    upstream.set_hold(true);
    let daemon = Daemon::start(upstream.addr).await;
    let addr = daemon.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(async move { ask(addr, "popular.dedup.test.", RecordType::A).await }))
        .collect();
    upstream.wait_queries(1).await;
    // Let the other clients' queries reach the daemon while the first is held upstream. Any
    // that arrive later hit the cache, so the count below holds either way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    upstream.set_hold(false);
    for client in clients {
        let reply = client.await.expect("join");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&reply), vec![answer]);
    }
    assert_eq!(
        upstream.queries(),
        1,
        "{CLIENTS} clients, one upstream query"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_answer_is_served_stale_when_every_upstream_is_dead() {
    let answer = Ipv4Addr::new(192, 0, 2, 32);
    let upstream = FakeUpstream::start(IpAddr::V4(answer), 1).await;
    let daemon = Daemon::start(upstream.addr).await;
    let fresh = ask(daemon.addr, "stale.example.test.", RecordType::A).await;
    assert_eq!(a_records(&fresh), vec![answer]);
    assert_eq!(fresh.answers[0].ttl, 1);
    assert!(
        fresh.edns.as_ref().is_some_and(|e| e
            .option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15))
            .is_none()),
        "no EDE on a fresh answer"
    );

    // The TTL runs out and the upstream dies.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    upstream.set_silent(true);
    let started = Instant::now();
    let stale = ask(daemon.addr, "stale.example.test.", RecordType::A).await;
    println!("serve-stale answer after {:?}", started.elapsed());
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&stale), vec![answer]);
    assert_eq!(stale.answers[0].ttl, 30, "RFC 8767 stale TTL");
    let ede = stale
        .edns
        .as_ref()
        .and_then(|e| e.option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15)));
    assert!(
        matches!(ede, Some(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data)) if data.as_slice() == [0, 3]),
        "EDE 3 \"Stale Answer\": {ede:?}"
    );
    assert_eq!(upstream.queries(), 2, "the upstream was asked first");

    // A name never seen has nothing stale: SERVFAIL.
    let none = ask(daemon.addr, "never.example.test.", RecordType::A).await;
    assert_eq!(none.metadata.response_code, ResponseCode::ServFail);

    // The upstream comes back: fresh answers again.
    upstream.set_silent(false);
    upstream.set_answer(v4(192, 0, 2, 33), 60, Duration::ZERO);
    let back = ask(daemon.addr, "stale.example.test.", RecordType::A).await;
    assert_eq!(a_records(&back), vec![Ipv4Addr::new(192, 0, 2, 33)]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stale_can_be_turned_off() {
    let upstream = FakeUpstream::start(v4(192, 0, 2, 34), 1).await;
    let config = config_text(upstream.addr, "", "[cache]\nserve_stale = \"0s\"\n");
    let daemon = Daemon::start_text(config).await;
    assert_eq!(
        a_records(&ask(daemon.addr, "off.example.test.", RecordType::A).await).len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    upstream.set_silent(true);
    let reply = ask(daemon.addr, "off.example.test.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_skipped_then_probed_again() {
    let dead = FakeUpstream::start(v4(192, 0, 2, 41), 300).await;
    dead.set_silent(true);
    let alive = FakeUpstream::start(v4(192, 0, 2, 42), 300).await;
    let config = config_text(dead.addr, "", "").replacen(
        &format!("servers = [\"{}\"]", dead.addr),
        &format!("servers = [\"{}\", \"{}\"]", dead.addr, alive.addr),
        1,
    );
    let daemon = Daemon::start_text(config).await;
    let addr = daemon.addr;
    let first = |m: &hickory_proto::op::Message| a_records(m).first().copied();

    // The first upstream times out (on its share of the deadline); the second answers.
    let started = Instant::now();
    let q1 = ask(addr, "a.failover.test.", RecordType::A).await;
    let with_dead = started.elapsed();
    assert_eq!(first(&q1), Some(Ipv4Addr::new(192, 0, 2, 42)));
    assert_eq!(dead.queries(), 1);
    // From now on it is skipped: the next queries go straight to the second.
    let started = Instant::now();
    for name in ["b.failover.test.", "c.failover.test."] {
        let q = ask(addr, name, RecordType::A).await;
        assert_eq!(first(&q), Some(Ipv4Addr::new(192, 0, 2, 42)));
    }
    println!(
        "failover: first query {with_dead:?} (dead upstream's share), next two {:?}",
        started.elapsed()
    );
    assert_eq!(
        dead.queries(),
        1,
        "a dead upstream is not asked again at once"
    );

    // It comes back; after the first back-off (1 s) a query probes it and finds it.
    dead.set_silent(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let q = ask(addr, "d.failover.test.", RecordType::A).await;
    assert_eq!(first(&q), Some(Ipv4Addr::new(192, 0, 2, 41)));
    assert_eq!(dead.queries(), 2);
    // And it is first in line again.
    let q = ask(addr, "e.failover.test.", RecordType::A).await;
    assert_eq!(first(&q), Some(Ipv4Addr::new(192, 0, 2, 41)));
    assert_eq!(alive.queries(), 3);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_refused_and_others_are_not() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_with(upstream.addr, "rate_limit = 20\nrate_burst = 20", "").await;
    let flooder = v4(127, 0, 0, 9);
    let started = Instant::now();
    let (mut answered, mut refused) = (0u32, 0u32);
    for _ in 0..60 {
        // A blocked name: answered locally, so only the limiter decides.
        let reply = udp_from(flooder, daemon.addr, &query_message(BLOCKED, RecordType::A)).await;
        match reply.metadata.response_code {
            ResponseCode::NXDomain => answered += 1,
            ResponseCode::Refused => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("rate limit 20/s, burst 20: {answered} answered, {refused} refused in {elapsed:.3}s");
    // The burst, plus what 20/s refilled meanwhile.
    let most = 20 + (20.0 * elapsed).ceil() as u32;
    assert!(answered >= 20, "the burst is served: {answered}");
    assert!(
        answered <= most,
        "{answered} answered in {elapsed:.3}s, at most {most}"
    );
    assert_eq!(answered + refused, 60);
    assert!(refused > 0);

    // Another client is not affected.
    let other = udp_from(
        v4(127, 0, 0, 10),
        daemon.addr,
        &query_message(WWW, RecordType::A),
    )
    .await;
    assert_eq!(a_records(&other), vec![WWW_V4]);

    // The flooder is served again once it slows down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = udp_from(flooder, daemon.addr, &query_message(WWW, RecordType::A)).await;
    assert_eq!(a_records(&again), vec![WWW_V4]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_pointing_public_names_into_the_lan_are_emptied() {
    let upstream = FakeUpstream::start(v4(192, 168, 1, 20), 300).await;
    let daemon = Daemon::start(upstream.addr).await;

    let rebound = ask(daemon.addr, "router.attacker.test.", RecordType::A).await;
    assert_eq!(rebound.metadata.response_code, ResponseCode::NoError);
    assert!(rebound.answers.is_empty(), "{:?}", rebound.answers);

    // The LAN's own names (default rebind_allow: lan, home.arpa) keep their addresses.
    for name in ["nas.home.arpa.", "printer.lan."] {
        let local = ask(daemon.addr, name, RecordType::A).await;
        assert_eq!(a_records(&local), vec![Ipv4Addr::new(192, 168, 1, 20)]);
    }

    // IPv6: unique-local and loopback are inside too; a public address is not.
    upstream.set_answer(
        IpAddr::V6("fd12:3456::1".parse::<Ipv6Addr>().expect("v6")),
        300,
        Duration::ZERO,
    );
    let v6 = ask(daemon.addr, "cam.attacker.test.", RecordType::AAAA).await;
    assert!(v6.answers.is_empty());
    upstream.set_answer(
        IpAddr::V6("2001:db8::7".parse::<Ipv6Addr>().expect("v6")),
        300,
        Duration::ZERO,
    );
    let public = ask(daemon.addr, "public.attacker.test.", RecordType::AAAA).await;
    assert!(matches!(
        public.answers.first().map(|r| &r.data),
        Some(RData::AAAA(_))
    ));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_protection_can_be_turned_off() {
    let upstream = FakeUpstream::start(v4(10, 0, 0, 5), 300).await;
    let config = config_text(upstream.addr, "", "").replacen(
        "timeout = \"1500ms\"",
        "timeout = \"1500ms\"\nrebind_protection = false",
        1,
    );
    let daemon = Daemon::start_text(config).await;
    let reply = ask(daemon.addr, "intranet.example.test.", RecordType::A).await;
    assert_eq!(a_records(&reply), vec![Ipv4Addr::new(10, 0, 0, 5)]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastest_sends_most_queries_to_the_quicker_upstream_and_notices_a_change() {
    use kidsafe::config::UpstreamServer;
    const DELAY: Duration = Duration::from_millis(60);
    let (slow_ip, fast_ip) = (Ipv4Addr::new(192, 0, 2, 51), Ipv4Addr::new(192, 0, 2, 52));
    let slow = FakeUpstream::start(IpAddr::V4(slow_ip), 300).await;
    slow.set_answer(IpAddr::V4(slow_ip), 300, DELAY);
    let fast = FakeUpstream::start(IpAddr::V4(fast_ip), 300).await;
    // The slow one is written first: "failover" would send everything to it.
    let config = config_text(slow.addr, "", "").replacen(
        &format!("servers = [\"{}\"]", slow.addr),
        &format!(
            "servers = [\"{}\", \"{}\"]\nstrategy = \"fastest\"",
            slow.addr, fast.addr
        ),
        1,
    );
    let daemon = Daemon::start_text(config).await;
    let metrics = daemon.forwarder.metrics();
    let (slow_up, fast_up) = (
        UpstreamServer::Udp(slow.addr),
        UpstreamServer::Udp(fast.addr),
    );

    const FIRST: usize = 64;
    for i in 0..FIRST {
        let reply = ask(daemon.addr, &format!("n{i}.fastest.test."), RecordType::A).await;
        assert_eq!(reply.answers.len(), 1);
    }
    let (s, f) = (metrics.of(&slow_up), metrics.of(&fast_up));
    println!(
        "fastest, {FIRST} names: slow (+{DELAY:?}) answered {}, fast answered {}; srtt {:?} / {:?}",
        s.answers,
        f.answers,
        daemon.forwarder.srtt(slow.addr),
        daemon.forwarder.srtt(fast.addr)
    );
    assert_eq!(s.answers + f.answers, FIRST as u64);
    assert_eq!(s.failures + f.failures, 0);
    assert!(
        f.answers >= (FIRST as u64) * 7 / 8,
        "most answers come from the fast upstream: {f:?}"
    );
    assert!(
        s.answers >= 2,
        "the slow one is still looked at now and then: {s:?}"
    );
    assert_eq!(slow.queries() as u64, s.answers);

    // They swap speeds: within a few exploration rounds the other one is preferred.
    slow.set_answer(IpAddr::V4(slow_ip), 300, Duration::ZERO);
    fast.set_answer(IpAddr::V4(fast_ip), 300, DELAY);
    let mut in_a_row = 0;
    let mut asked = 0;
    while in_a_row < 16 {
        assert!(
            asked < 128,
            "the recovered upstream was not preferred again"
        );
        let reply = ask(
            daemon.addr,
            &format!("m{asked}.fastest.test."),
            RecordType::A,
        )
        .await;
        asked += 1;
        if a_records(&reply) == vec![slow_ip] {
            in_a_row += 1;
        } else {
            in_a_row = 0;
        }
    }
    println!(
        "after the swap: preferred again after {} queries; totals slow {:?}, fast {:?}",
        asked - 16,
        metrics.of(&slow_up),
        metrics.of(&fast_up)
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popular_answer_is_refreshed_in_the_background_before_it_expires() {
    const TTL: u32 = 5;
    let (old, new) = (Ipv4Addr::new(192, 0, 2, 61), Ipv4Addr::new(192, 0, 2, 62));
    let upstream = FakeUpstream::start(IpAddr::V4(old), TTL).await;
    let daemon = Daemon::start(upstream.addr).await;
    let (popular, once) = ("popular.prefetch.test.", "once.prefetch.test.");

    let started = Instant::now();
    assert_eq!(
        a_records(&ask(daemon.addr, popular, RecordType::A).await),
        vec![old]
    );
    assert_eq!(
        a_records(&ask(daemon.addr, once, RecordType::A).await),
        vec![old]
    );
    // Popular: asked again from the cache early on.
    assert_eq!(
        a_records(&ask(daemon.addr, popular, RecordType::A).await),
        vec![old]
    );
    assert_eq!(upstream.queries(), 2);

    // The upstream's answer changes. In the last tenth of the TTL (0.5 s of 5 s) both names are
    // asked again: both come from the cache, and only the popular one is refreshed.
    upstream.set_answer(IpAddr::V4(new), 300, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(4600).saturating_sub(started.elapsed())).await;
    assert_eq!(
        a_records(&ask(daemon.addr, popular, RecordType::A).await),
        vec![old]
    );
    assert_eq!(
        a_records(&ask(daemon.addr, once, RecordType::A).await),
        vec![old]
    );
    let asked_late = started.elapsed();
    upstream.wait_queries(3).await;
    // Let the refresh land in the cache, then take the upstream away.
    tokio::time::sleep(Duration::from_millis(100)).await;
    upstream.set_silent(true);
    let before_expiry = upstream.queries();

    // Past the old answer's expiry: the popular name is answered fresh from the cache, with
    // the refreshed record and no upstream query; the other one has expired and needs one.
    tokio::time::sleep(Duration::from_millis(5300).saturating_sub(started.elapsed())).await;
    let refreshed = ask(daemon.addr, popular, RecordType::A).await;
    assert_eq!(a_records(&refreshed), vec![new]);
    assert!(
        refreshed.answers[0].ttl > 250,
        "a fresh TTL: {}",
        refreshed.answers[0].ttl
    );
    assert_eq!(
        upstream.queries(),
        before_expiry,
        "served without asking upstream"
    );
    let expired = ask(daemon.addr, once, RecordType::A).await;
    assert_eq!(
        a_records(&expired),
        vec![old],
        "served stale: upstream silent"
    );
    assert_eq!(expired.answers[0].ttl, 30);
    println!(
        "prefetch: late asks at {asked_late:?}; upstream queries {before_expiry} before expiry \
         (2 misses + 1 prefetch), {} after (1 for the unpopular name)",
        upstream.queries()
    );
    assert_eq!(before_expiry, 3, "one prefetch, for the popular name only");
    assert_eq!(upstream.queries(), 4);
    daemon.stop().await;
}
