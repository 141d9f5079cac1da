//! Protection out of the box: the packaged config and the lists the package ships, through the
//! running daemon. Every preset blocks what its README row promises, the helplines answer for
//! every profile (bedtime included), and the corrections keep infrastructure reachable.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::RecordType;

use crate::harness::*;

/// What the fake upstream answers for every forwarded name.
const FORWARDED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

/// One client address per preset, plus a profile in a bedtime window.
const PRESETS: &[(&str, [u8; 4])] = &[
    ("under-9", [127, 0, 0, 31]),
    ("9-12", [127, 0, 0, 32]),
    ("13-15", [127, 0, 0, 33]),
    ("16-17", [127, 0, 0, 34]),
    ("adult", [127, 0, 0, 35]),
];
const BEDTIME: [u8; 4] = [127, 0, 0, 36];
/// A device no `[[clients]]` rule names: the packaged `[defaults] profile`.
const UNKNOWN: [u8; 4] = [127, 0, 0, 1];

const HELPLINES: &[&str] = &["alo116.al.", "isigurt.al.", "www.isigurt.al."];

fn extra() -> String {
    let mut extra = String::from("\n# Added by tests/integration/protection.rs\n");
    for (i, (preset, addr)) in PRESETS.iter().enumerate() {
        let ip = Ipv4Addr::from(*addr);
        extra.push_str(&format!(
            "[profiles.p{i}]\npreset = \"{preset}\"\n\n\
             [[clients]]\nname = \"{preset}\"\nmatch = [\"{ip}\"]\nprofile = \"p{i}\"\n\n"
        ));
    }
    extra.push_str(&format!(
        "[profiles.bedtime]\npreset = \"under-9\"\n\n\
         [[profiles.bedtime.schedule]]\ndays = [\"daily\"]\nfrom = \"21:00\"\nto = \"07:00\"\nblock = \"all\"\n\n\
         [[clients]]\nname = \"bedtime\"\nmatch = [\"{}\"]\nprofile = \"bedtime\"\n",
        Ipv4Addr::from(BEDTIME)
    ));
    extra
}

/// The first name of a shipped list file that no other shipped list holds, itself or by a
/// parent: blocked, it can only be blocked as that file's category. The lists are sorted, so
/// the choice is stable.
fn first_only_in(file: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("blocklists");
    let names = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("shipped list")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let mut others = std::collections::HashSet::new();
    for entry in std::fs::read_dir(&dir).expect("blocklists/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "txt") && !path.ends_with(file) {
            others.extend(names(&path));
        }
    }
    let name = names(&dir.join(file))
        .into_iter()
        .find(|name| {
            let labels: Vec<&str> = name.split('.').collect();
            (0..labels.len() - 1).all(|i| !others.contains(&labels[i..].join(".")))
        })
        .unwrap_or_else(|| panic!("every name of {file} is in another list too"));
    format!("{name}.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packaged_config_and_shipped_lists_protect_every_preset() {
    let upstream = FakeUpstream::start(IpAddr::V4(FORWARDED), 300).await;
    let daemon = Daemon::start_text(packaged_config(upstream.addr, &extra())).await;
    let addr = daemon.addr;
    let ask_from = |from: [u8; 4], qname: String| async move {
        udp_from(
            IpAddr::V4(Ipv4Addr::from(from)),
            addr,
            &query_message(&qname, RecordType::A),
        )
        .await
    };
    let blocked_as = |from: [u8; 4], qname: &str| {
        let qname = qname.to_string();
        async move {
            let reply = ask_from(from, qname.clone()).await;
            assert!(
                is_kidsafe_block(&reply),
                "{qname} from {from:?} is not blocked: {reply:?}"
            );
            blocked_category(&reply).expect("the block names its category")
        }
    };
    let forwarded = |from: [u8; 4], qname: &str| {
        let qname = qname.to_string();
        async move {
            let reply = ask_from(from, qname.clone()).await;
            assert_eq!(
                a_records(&reply),
                vec![FORWARDED],
                "{qname} from {from:?} is not forwarded: {reply:?}"
            );
        }
    };
    let under_9 = PRESETS[0].1;

    // The youngest preset: social networks, chat, games and the ways round the filter.
    for (qname, categories) in [
        ("instagram.com.", &["social"][..]),
        ("www.instagram.com.", &["social"]),
        ("tiktok.com.", &["social"]),
        ("www.tiktok.com.", &["social"]),
        ("snapchat.com.", &["social", "chat"]),
        ("discord.com.", &["social", "chat"]),
        ("roblox.com.", &["games"]),
        ("fortnite.com.", &["games"]),
        ("nordvpn.com.", &["bypass"]),
        ("expressvpn.com.", &["bypass"]),
    ] {
        let category = blocked_as(under_9, qname).await;
        assert!(
            categories.contains(&category.as_str()),
            "{qname} blocked as {category}, expected one of {categories:?}"
        );
    }

    // Malware and phishing from the shipped data: blocked for every preset and for unknown
    // devices, as malware and phishing.
    let malware = first_only_in("malware.txt");
    let phishing = first_only_in("phishing.txt");
    for (_, from) in PRESETS.iter().chain([&("default", UNKNOWN)]) {
        assert_eq!(blocked_as(*from, &malware).await, "malware", "{malware}");
        assert_eq!(blocked_as(*from, &phishing).await, "phishing", "{phishing}");
    }

    // Social networks open up at 13; games at 9.
    blocked_as(PRESETS[1].1, "instagram.com.").await;
    forwarded(PRESETS[1].1, "roblox.com.").await;
    for from in [PRESETS[2].1, PRESETS[3].1, PRESETS[4].1] {
        forwarded(from, "instagram.com.").await;
    }

    // Unknown devices get the packaged default: filtered (adult, bypass), social open.
    assert_eq!(blocked_as(UNKNOWN, "pornhub.com.").await, "adult");
    assert_eq!(blocked_as(UNKNOWN, "nordvpn.com.").await, "bypass");
    forwarded(UNKNOWN, "instagram.com.").await;

    // The corrections keep app stores, Microsoft's CDN and school Teams reachable for the
    // youngest, whose preset blocks games and chat.
    for qname in [
        "apps.apple.com.",
        "play.google.com.",
        "msedge.net.",
        "teams.microsoft.com.",
        "connectivitycheck.gstatic.com.",
    ] {
        forwarded(under_9, qname).await;
    }

    // The helplines answer for every profile ...
    for from in PRESETS.iter().map(|(_, a)| *a).chain([UNKNOWN, BEDTIME]) {
        for qname in HELPLINES {
            forwarded(from, qname).await;
        }
    }
    // ... and during a bedtime window that blocks everything else.
    let tz = jiff::tz::TimeZone::system();
    let night: jiff::civil::DateTime = "2026-12-02T22:00:00".parse().expect("datetime");
    let night = night.to_zoned_datetime(tz).expect("zoned").timestamp();
    kidsafe::live::refresh_live(&daemon.shared.load(), night);
    let blocked = ask_from(BEDTIME, "example.org.".to_string()).await;
    assert!(
        is_kidsafe_block(&blocked),
        "bedtime is in force: {blocked:?}"
    );
    for qname in HELPLINES {
        forwarded(BEDTIME, qname).await;
    }
    daemon.stop().await;
}
