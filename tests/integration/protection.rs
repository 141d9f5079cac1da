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

    // 16-17 and adult do not block `bypass` (README's preset table): VPN providers resolve,
    // while the bypass guards still stop the public DoH resolvers and Firefox's canary.
    for from in [PRESETS[3].1, PRESETS[4].1] {
        forwarded(from, "nordvpn.com.").await;
        forwarded(from, "expressvpn.com.").await;
        assert_eq!(blocked_as(from, "dns.google.").await, "bypass");
        assert_eq!(blocked_as(from, "use-application-dns.net.").await, "bypass");
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

/// Runs the binary with `args` and `--config config`: (exit code, stdout and stderr).
fn kidsafe(args: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run kidsafe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The built-in helplines and one from `[lists] helplines` answer where nothing else does: a
/// `kidsafe pause`, a bedtime window that blocks everything, a walled garden, and with the
/// helpline listed in a category the profile blocks. The test config has no `[lists] allow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helplines_answer_during_a_pause_a_block_all_window_and_a_walled_garden() {
    let upstream = FakeUpstream::start(IpAddr::V4(FORWARDED), 300).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        upstream.addr,
        "",
        "[profiles.garden]\nmode = \"allowlist\"\n\n\
         [profiles.night]\nblock = [\"adult\"]\n\
         [[profiles.night.schedule]]\ndays = [\"daily\"]\nfrom = \"00:00\"\nto = \"24:00\"\nblock = \"all\"\n\n\
         [[clients]]\nname = \"garden\"\nmatch = [\"127.0.0.7\"]\nprofile = \"garden\"\n\n\
         [[clients]]\nname = \"night\"\nmatch = [\"127.0.0.8\"]\nprofile = \"night\"\n",
    );
    // A local helpline, and both kinds listed as adult, which every test profile blocks.
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen(
        "dirs = [\"lists\"]",
        "dirs = [\"lists\"]\nhelplines = [\"help.example.test\"]",
        1,
    );
    std::fs::write(&config, text).expect("write config");
    let adult = dir.path().join("lists/adult.txt");
    let mut listed = std::fs::read_to_string(&adult).expect("adult list");
    listed.push_str("alo116.al\nhelp.example.test\n");
    std::fs::write(&adult, listed).expect("write list");

    let daemon = Spawned::start(&config);
    let addr = daemon.addr;
    let child = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
    let garden = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
    let night = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 8));
    let ask_from = |from: IpAddr, qname: &str| {
        let message = query_message(qname, RecordType::A);
        async move { udp_from(from, addr, &message).await }
    };
    let helplines = [
        "alo116.al.",
        "www.alo116.al.",
        "isigurt.al.",
        "chat.isigurt.al.",
        "help.example.test.",
    ];
    let all_answer = |from: IpAddr, when: &'static str| async move {
        for qname in helplines {
            let reply = ask_from(from, qname).await;
            assert_eq!(
                a_records(&reply),
                vec![FORWARDED],
                "{qname} from {from} {when}: {reply:?}"
            );
        }
    };

    // Walled garden and an all-day block-all window: everything else is blocked.
    for from in [garden, night] {
        assert!(is_kidsafe_block(&ask_from(from, "example.org.").await));
        all_answer(from, "(walled garden or block-all window)").await;
    }
    // Listed as adult for a profile that blocks adult.
    all_answer(child, "(listed as adult)").await;

    // A pause through the CLI, as a parent would.
    let (code, text) = kidsafe(&["pause", "--profile", "child", "--for", "1h"], &config);
    assert_eq!(code, Some(0), "{text}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !is_kidsafe_block(&ask_from(child, "example.org.").await) {
        assert!(std::time::Instant::now() < deadline, "pause not applied");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    all_answer(child, "(paused)").await;

    // `explain` says why.
    let (code, text) = kidsafe(
        &["explain", "chat.isigurt.al", "--client", "127.0.0.8"],
        &config,
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("policy   helpline"), "{text}");
    assert!(text.contains("answer   forwarded"), "{text}");
    daemon.stop();
}

/// `kidsafe check` refuses a deny entry that covers a helpline, built in or local, naming the
/// file, line, column and key; and a single-label helpline.
#[test]
fn check_refuses_deny_entries_over_helplines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "127.0.0.1:53".parse().expect("addr"),
        "",
        "[profiles.strict]\ndeny = [\"ok.example.test\", \"al\"]\n\
         [profiles.narrow]\ndeny = [\"www.isigurt.al\", \"=help.example.test\"]\n",
    );
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen(
        "dirs = [\"lists\"]",
        "dirs = [\"lists\"]\nhelplines = [\"help.example.test\", \"org\"]",
        1,
    );
    std::fs::write(&config, &text).expect("write config");
    let (code, out) = kidsafe(&["check"], &config);
    assert_eq!(code, Some(2), "{out}");
    let path = config.display();
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .expect("line")
    };
    for want in [
        format!(
            "{path}:{}:28: profiles.strict.deny[1]: covers the helpline \"alo116.al\" (built into kidsafe)",
            line_of("\"al\"]")
        ),
        format!(
            "{path}:{}:9: profiles.narrow.deny[0]: covers the helpline \"isigurt.al\"",
            line_of("www.isigurt.al")
        ),
        "profiles.narrow.deny[1]: covers the helpline \"help.example.test\" (in [lists] helplines)"
            .to_string(),
        format!(
            "{path}:{}:35: lists.helplines[1]: a single label",
            line_of("helplines =")
        ),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("deny[0]: covers the helpline \"ok"), "{out}");
}

/// The packaged config passes `check --strict` with the lists the package ships, and the
/// report says where each category's names come from and what each profile does.
#[test]
fn the_packaged_config_passes_check_strict_with_the_shipped_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("kidsafe.toml");
    std::fs::write(
        &config,
        packaged_config("127.0.0.1:53".parse().expect("addr"), ""),
    )
    .expect("write config");
    let (code, out) = kidsafe(&["check", "--strict"], &config);
    assert_eq!(code, Some(0), "{out}");
    let blocklists = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("blocklists");
    for want in [
        "coverage (category, names listed, where they come from):".to_string(),
        format!(
            "{} (UT1 blacklists: blacklists/social_networks/domains (CC-BY-SA-4.0); Sinfonietta/hostfiles: social-hosts (MIT))",
            blocklists.join("social.txt").display()
        ),
        "(built into kidsafe)".to_string(),
        "profile teen\n  blocks      adult, dating, gambling, violence, weapons, drugs, hate, malware, phishing, bypass\n".to_string(),
        "  safe search on, YouTube moderate, bypass guards on\n  clients     every device no rule matches (defaults.profile)".to_string(),
        "schedule    mon,tue,wed,thu,sun 21:00-07:00 blocks everything but allowed names and helplines".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("warning:"), "{out}");
}

/// A category a profile blocks (or a schedule window adds) that no list names: `check` warns,
/// `check --strict` fails, and the daemon logs it in one line per load, not one per category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_blocked_categories_fail_check_strict_and_are_logged_once_per_load() {
    let upstream = FakeUpstream::start(IpAddr::V4(FORWARDED), 300).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        upstream.addr,
        "",
        "[profiles.homework]\nblock = [\"chat\"]\nyoutube = \"strict\"\n\
         [[profiles.homework.schedule]]\ndays = [\"weekdays\"]\nfrom = \"15:00\"\nto = \"18:00\"\nblock = [\"games\"]\n\
         [profiles.garden]\nmode = \"allowlist\"\n\
         [[clients]]\nname = \"study\"\nmatch = [\"127.0.0.64/26\", \"aa:bb:cc:dd:ee:01\"]\nprofile = \"homework\"\n",
    );
    let (code, out) = kidsafe(&["check"], &config);
    assert_eq!(code, Some(0), "{out}");
    for want in [
        "warning: category \"chat\" is blocked by a profile but no list gives it a name yet",
        "warning: category \"games\"",
        "  chat                 0  no list",
        "  adult                1  ",
        "profile homework\n  blocks      chat\n",
        "schedule    mon,tue,wed,thu,fri 15:00-18:00 blocks games",
        "safe search off, YouTube strict, bypass guards on",
        "clients     \"study\": 127.0.0.64/26, aa:bb:cc:dd:ee:01",
        "clients     \"kid\": 127.0.0.5\n",
        "profile garden\n  walled garden: allows only kids, education and its allow list",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let (code, out) = kidsafe(&["check", "--strict"], &config);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "--strict: these categories are blocked by a profile but listed nowhere: chat, games"
        ),
        "{out}"
    );

    let mut daemon = Spawned::start(&config);
    daemon.wait_for(
        "no list gives them a name",
        std::time::Duration::from_secs(10),
    );
    daemon.signal("HUP");
    daemon.wait_for(
        "reloaded config and lists",
        std::time::Duration::from_secs(20),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = daemon.stop();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no list gives them a name"))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "one line at start, one at the reload:\n{log}"
    );
    for line in lines {
        assert!(line.contains("categories=chat, games"), "{line}");
    }
}
