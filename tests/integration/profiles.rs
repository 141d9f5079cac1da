//! Age profiles on the wire: safe search, bypass guards, Extended DNS Errors, CNAME cloaking,
//! schedules (with an injected clock), MAC matching.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;

const SAFE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11));
const SAFE_MODERATE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 12));
const OPEN: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 13));

const PROFILES: &str = r#"
[profiles.safe]
block = ["adult"]
safe_search = true
youtube = "strict"

[profiles.safe_moderate]
preset = "13-15"

[profiles.open]

[[clients]]
name = "safe"
match = ["127.0.0.11"]
profile = "safe"

[[clients]]
name = "moderate"
match = ["127.0.0.12"]
profile = "safe_moderate"

[[clients]]
name = "open"
match = ["127.0.0.13"]
profile = "open"
"#;

fn cname_target(m: &hickory_proto::op::Message) -> Option<String> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) => Some(c.0.to_ascii()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_search_answers_with_the_providers_targets() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_with(upstream.addr, "", PROFILES).await;
    let ask_from = |from: IpAddr, qname: &'static str| {
        let addr = daemon.addr;
        async move { udp_from(from, addr, &query_message(qname, RecordType::A)).await }
    };
    for qname in ["www.google.com.", "google.al.", "www.google.co.uk."] {
        let m = ask_from(SAFE, qname).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{qname}");
        assert_eq!(
            cname_target(&m).as_deref(),
            Some("forcesafesearch.google.com."),
            "{qname}"
        );
        assert_eq!(
            a_records(&m),
            vec![Ipv4Addr::new(216, 239, 38, 120)],
            "{qname}: the target's address"
        );
        assert_eq!(
            m.answers[0].name.to_ascii().to_ascii_lowercase(),
            qname.to_ascii_lowercase(),
            "CNAME owner is the name asked"
        );
    }
    let bing = ask_from(SAFE, "www.bing.com.").await;
    assert_eq!(cname_target(&bing).as_deref(), Some("strict.bing.com."));
    let strict = ask_from(SAFE, "www.youtube.com.").await;
    assert_eq!(
        cname_target(&strict).as_deref(),
        Some("restrict.youtube.com.")
    );
    let moderate = ask_from(SAFE_MODERATE, "m.youtube.com.").await;
    assert_eq!(
        cname_target(&moderate).as_deref(),
        Some("restrictmoderate.youtube.com.")
    );
    assert_eq!(a_records(&moderate), vec![Ipv4Addr::new(216, 239, 38, 119)]);
    // Without safe search the name is simply forwarded (the test upstream has no such host).
    let plain = ask_from(OPEN, "www.google.com.").await;
    assert_eq!(cname_target(&plain), None);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_guards_canary_private_relay_ddr_and_doh_resolvers() {
    let upstream = Upstream::start().await;
    // null-ip everywhere else: the guards must still answer NXDOMAIN / NODATA.
    let daemon = Daemon::start_with(upstream.addr, "block_response = \"null-ip\"", PROFILES).await;
    let ask_from = |from: IpAddr, qname: &'static str, qtype: RecordType| {
        let addr = daemon.addr;
        async move { udp_from(from, addr, &query_message(qname, qtype)).await }
    };
    for qname in [
        "use-application-dns.net.",
        "mask.icloud.com.",
        "mask-h2.icloud.com.",
        "mask-canary.icloud.com.",
    ] {
        let m = ask_from(SAFE, qname, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{qname}");
        assert!(m.answers.is_empty(), "{qname}");
    }
    let ddr = ask_from(SAFE, "_dns.resolver.arpa.", RecordType::SVCB).await;
    assert_eq!(ddr.metadata.response_code, ResponseCode::NoError);
    assert!(
        ddr.answers.is_empty(),
        "NODATA keeps devices from upgrading to the upstream's DoH"
    );
    // Public DoH resolvers are in the built-in bypass list.
    let doh = ask_from(SAFE, "dns.google.", RecordType::A).await;
    assert_eq!(
        a_records(&doh),
        vec![Ipv4Addr::UNSPECIFIED],
        "blocked with the configured style"
    );
    // A profile that blocks nothing is not guarded.
    let open = ask_from(OPEN, "use-application-dns.net.", RecordType::A).await;
    assert!(soa_of(&open).is_none_or(|(soa, _)| soa.mname.to_ascii() != "kidsafe.invalid."));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_say_why_in_an_extended_dns_error_and_cloaking_is_caught() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start(upstream.addr).await;
    let blocked = ask(daemon.addr, BLOCKED, RecordType::A).await;
    let edns = blocked.edns.as_ref().expect("OPT in the answer");
    let ede = edns
        .option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15))
        .expect("EDE option");
    let bytes: Vec<u8> = match ede {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data) => data.clone(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(&bytes[..2], &[0, 15], "info code 15: Blocked");
    assert_eq!(
        std::str::from_utf8(&bytes[2..]).expect("utf8"),
        "category=adult"
    );

    // cloak.example.test is a CNAME to a listed name: blocked although it is not listed.
    let cloak = ask(daemon.addr, "cloak.example.test.", RecordType::A).await;
    assert!(is_kidsafe_block(&cloak), "{cloak:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bedtime_crossing_midnight_in_a_dst_zone_with_capped_ttls() {
    let upstream = Upstream::start().await;
    let extra = r#"
[profiles.night]
block = ["adult"]
allow = ["khan.example.test"]

[[profiles.night.schedule]]
days = ["daily"]
from = "21:00"
to = "07:00"
block = "all"

[[clients]]
name = "night"
match = ["127.0.0.21"]
profile = "night"
"#;
    let daemon = Daemon::start_with(upstream.addr, "timezone = \"Europe/Tirane\"", extra).await;
    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 21));
    let tirane = jiff::tz::TimeZone::get("Europe/Tirane").expect("tz");
    let set = |local: &str| {
        let dt: jiff::civil::DateTime = local.parse().expect("datetime");
        let t = dt
            .to_zoned_datetime(tirane.clone())
            .expect("zoned")
            .timestamp();
        kidsafe::live::refresh_live(&daemon.shared.load(), t);
    };
    let ask_at = |qname: &'static str| {
        let addr = daemon.addr;
        async move { udp_from(from, addr, &query_message(qname, RecordType::A)).await }
    };

    // 20:59:30, the evening before the clocks go back (Albania, 2026-10-25 03:00 → 02:00).
    set("2026-10-24T20:59:30");
    let before = ask_at(WWW).await;
    assert_eq!(a_records(&before), vec![WWW_V4]);
    assert!(
        before.answers[0].ttl <= 30,
        "the answer must not outlive 21:00: TTL {}",
        before.answers[0].ttl
    );

    set("2026-10-24T21:00:00");
    let bedtime = ask_at(WWW).await;
    assert!(is_kidsafe_block(&bedtime), "bedtime started on time");
    assert_eq!(
        a_records(&ask_at("khan.example.test.").await),
        vec![std::net::Ipv4Addr::new(192, 0, 2, 88)],
        "allow beats schedules"
    );

    // 06:59:50 local, after the DST change: still night, and the block lasts only 10 s more.
    set("2026-10-25T06:59:50");
    let late = ask_at(WWW).await;
    assert!(is_kidsafe_block(&late));
    let (_, ttl) = soa_of(&late).expect("SOA");
    assert!(ttl <= 10, "block TTL {ttl} outlives 07:00");

    set("2026-10-25T07:00:00");
    assert_eq!(a_records(&ask_at(WWW).await), vec![WWW_V4], "morning");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_matched_by_mac_through_the_neighbour_table() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let arp = dir.path().join("arp");
    std::fs::write(
        &arp,
        "IP address       HW type     Flags       HW address            Mask     Device\n\
         127.0.0.40       0x1         0x2         aa:bb:cc:dd:ee:01     *        lo\n",
    )
    .expect("write");
    let extra =
        "[[clients]]\nname = \"tablet\"\nmatch = [\"AA:BB:CC:DD:EE:01\"]\nprofile = \"child\"\n";
    let server = format!("neighbour_tables = [\"{}\"]", arp.display());
    let daemon = Daemon::start_with(upstream.addr, &server, extra).await;
    let tablet = udp_from(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 40)),
        daemon.addr,
        &query_message(CASINO, RecordType::A),
    )
    .await;
    assert!(
        is_kidsafe_block(&tablet),
        "the tablet gets the child profile by its MAC"
    );
    let other = udp_from(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41)),
        daemon.addr,
        &query_message(CASINO, RecordType::A),
    )
    .await;
    assert_eq!(a_records(&other), vec![Ipv4Addr::new(192, 0, 2, 77)]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_and_exact_and_wildcard_rules_on_the_wire() {
    let upstream = Upstream::start().await;
    let extra = r#"
[profiles.pre]
preset = "16-17"
unblock = ["adult"]
block = ["gambling"]
allow = ["=blocked.example.test"]
deny = ["*.www.example.test"]

[[clients]]
name = "pre"
match = ["127.0.0.31"]
profile = "pre"
"#;
    let daemon = Daemon::start_with(upstream.addr, "", extra).await;
    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 31));
    let ask_from = |qname: &'static str| {
        let addr = daemon.addr;
        async move { udp_from(from, addr, &query_message(qname, RecordType::A)).await }
    };
    // `=name` allows exactly that name; adult is unblocked anyway, gambling added to the preset.
    assert_eq!(
        a_records(&ask_from(BLOCKED).await),
        vec![Ipv4Addr::new(192, 0, 2, 66)]
    );
    assert!(
        is_kidsafe_block(&ask_from(CASINO).await),
        "block = [\"gambling\"] adds to the preset"
    );
    // `*.name` denies below it, not the name itself.
    assert_eq!(a_records(&ask_from(WWW).await), vec![WWW_V4]);
    assert!(is_kidsafe_block(&ask_from("img.www.example.test.").await));
    // The 16-17 preset turns safe search on.
    assert_eq!(
        cname_target(&ask_from("www.google.com.").await).as_deref(),
        Some("forcesafesearch.google.com.")
    );
    daemon.stop().await;
}
