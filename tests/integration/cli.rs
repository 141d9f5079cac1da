//! The `kidsafe` binary as a user runs it: `check`, `run`, signals, and the privacy invariant
//! checked on everything the process writes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::*;

/// A `listen` address this machine does not have is caught by `check`, not first by `run`
/// at boot ("Cannot assign requested address"). Nothing is sent: binding fails locally.
#[test]
fn check_fails_for_a_listen_address_that_is_not_on_this_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kidsafe.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\", \"192.0.2.1:53\"]\nstate_dir = \"state\"\n\
         [upstream]\nservers = [\"127.0.0.1\"]\n[defaults]\nprofile = \"x\"\n[profiles.x]\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "error: {}: server.listen: 192.0.2.1:53 is not an address of this machine",
        path.display()
    );
    assert!(stderr.starts_with(&want), "{stderr}");
    assert!(
        !dir.path().join("state").exists(),
        "check created the state directory"
    );
}

#[test]
fn check_names_file_line_column_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kidsafe.toml");
    std::fs::write(
        &path,
        "[server]\nlisen = [\"127.0.0.1:53\"]\n[upstream]\nservers = [\"127.0.0.1\"]\n[defaults]\nprofile = \"x\"\n[profiles.x]\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "bad config exits 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:2:1: server.lisen: unknown field `lisen`",
        path.display()
    );
    assert!(stderr.contains(&want), "{stderr}");

    // `run` refuses to start on it too, with the same message, before binding anything.
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&want));
}

#[test]
fn check_accepts_the_shipped_example_and_reports_lists() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kidsafe.toml");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&example)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(stdout.contains("adult"), "{stdout}");
    assert!(stdout.contains("profile child"), "{stdout}");
}

/// The privacy invariant: at the most verbose level the config and RUST_LOG allow, nothing the
/// daemon writes holds a queried name or a client address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_queried_name_or_client_address_is_ever_logged() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[stats]\nby_client = true\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let config = write_config(dir.path(), upstream.addr, "", extra);
    let mut daemon = Spawned::start(&config);
    let addr = daemon.addr;
    let metrics_line = daemon.wait_for("serving Prometheus metrics", Duration::from_secs(10));
    let metrics_addr: SocketAddr = metrics_line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {metrics_line:?}"));

    let sources = [Ipv4Addr::new(127, 0, 0, 23), Ipv4Addr::new(127, 0, 0, 5)];
    let seed = std::process::id();
    let mut names = Vec::new();
    for i in 0..40u32 {
        let label = format!("q{seed:x}z{i}privacy");
        let (qname, want) = match i % 4 {
            0 => (
                format!("{label}.blocked.example.test."),
                ResponseCode::NXDomain,
            ),
            1 => (format!("{label}.example.test."), ResponseCode::NXDomain),
            2 => (
                format!("{label}.casino.example.test."),
                ResponseCode::NXDomain,
            ),
            _ => (format!("{label}.unreachable-zone."), ResponseCode::Refused),
        };
        let from = IpAddr::V4(sources[(i / 4 % 2) as usize]);
        let reply = udp_from(from, addr, &query_message(&qname, RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, want, "{qname} from {from}");
        names.push(label);
    }
    // /metrics counts by profile and category, exactly, and names nothing.
    let scrape = http_get(metrics_addr, "/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200 OK"), "{scrape}");
    let body = scrape
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| {
        parsed
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value(
            "kidsafe_blocked_total",
            &[("profile", "teen"), ("category", "adult")]
        ),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        value(
            "kidsafe_blocked_total",
            &[("profile", "child"), ("category", "adult")]
        ),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        value(
            "kidsafe_blocked_total",
            &[("profile", "child"), ("category", "gambling")]
        ),
        Some(5.0),
        "{body}"
    );
    assert_eq!(
        value("kidsafe_queries_total", &[("result", "blocked")]),
        Some(15.0),
        "{body}"
    );
    assert_eq!(
        value("kidsafe_list_entries", &[("category", "adult")]),
        Some(1.0),
        "{body}"
    );
    assert_eq!(value("kidsafe_reload_generation", &[]), Some(1.0), "{body}");
    assert!(
        body.contains("kidsafe_upstream_latency_seconds_bucket"),
        "{body}"
    );
    // Per upstream, labelled with its configured address (never a client's): the 25 forwarded
    // names (10 unlisted, 10 outside the authority's zone, and the 5 casino names the teen
    // profile does not block) were each answered once.
    let upstream_label = format!("udp://{}", upstream.addr);
    assert_eq!(
        value(
            "kidsafe_upstream_answers_total",
            &[("upstream", &upstream_label)]
        ),
        Some(25.0),
        "{body}"
    );
    assert_eq!(
        value(
            "kidsafe_upstream_failures_total",
            &[("upstream", &upstream_label)]
        ),
        Some(0.0),
        "{body}"
    );
    assert!(http_get(metrics_addr, "/other").starts_with("HTTP/1.1 404"));

    // A reload and a failed reload log too; they must not leak either.
    daemon.signal("HUP");
    daemon.wait_for("reloaded config and lists", Duration::from_secs(10));
    let log = daemon.stop();

    // SIGTERM flushed the counts (the flush interval is a minute, so this was the only flush):
    // per profile, category and configured client name, exactly.
    let db =
        rusqlite::Connection::open(dir.path().join("state/stats.db")).expect("stats.db written");
    let mut rows: Vec<(String, String, String, i64)> = db
        .prepare("SELECT profile, category, client, SUM(count) FROM blocked GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        .expect("query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    let want = |p: &str, c: &str, k: &str, n: i64| (p.to_string(), c.to_string(), k.to_string(), n);
    assert_eq!(
        rows,
        vec![
            want("child", "adult", "kid", 5),
            want("child", "gambling", "kid", 5),
            want("teen", "adult", "", 5)
        ]
    );
    for text in [&body, &log] {
        for src in sources {
            assert!(!text.contains(&src.to_string()));
        }
    }

    assert!(
        log.contains("kidsafe is answering"),
        "logging was on: {log}"
    );
    for label in &names {
        assert!(
            !log.contains(label.as_str()),
            "queried name {label} logged:\n{log}"
        );
    }
    for src in sources {
        assert!(
            !log.contains(&src.to_string()),
            "client address {src} logged:\n{log}"
        );
    }
    // Nothing else the daemon wrote holds them either.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for label in &names {
            assert!(
                !text.contains(label.as_str()),
                "{label} found in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_edit_and_keeps_serving_through_an_invalid_one() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let mut daemon = Spawned::start(&config);
    let addr = daemon.addr;
    assert_eq!(
        ask(addr, CASINO, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NoError
    );

    // Valid edit: teens lose gambling too.
    let text = std::fs::read_to_string(&config).expect("read");
    let edited = text.replacen(
        "[profiles.teen]\nblock = [\"adult\"]",
        "[profiles.teen]\nblock = [\"adult\", \"gambling\"]",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&config, &edited).expect("write");
    daemon.signal("HUP");
    daemon.wait_for("reloaded config and lists", Duration::from_secs(10));
    assert_eq!(
        ask(addr, CASINO, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );

    // Invalid edit: a typo. The daemon says where, and keeps the last good rules.
    std::fs::write(
        &config,
        edited.replacen(
            "block = [\"adult\", \"gambling\"]",
            "block = [\"adult\", \"gamblng\"]",
            1,
        ),
    )
    .expect("write");
    daemon.signal("HUP");
    let line = daemon.wait_for("reload failed", Duration::from_secs(10));
    assert!(line.contains("profiles.teen.block[1]"), "{line}");
    assert!(
        line.contains("did you mean \\\"gambling\\\"")
            || line.contains("did you mean \"gambling\""),
        "{line}"
    );
    assert!(line.contains("kidsafe.toml:"), "{line}");
    assert_eq!(
        ask(addr, CASINO, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        a_records(&ask(addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );
    daemon.stop();
}

/// `kidsafe reload --pid`, the unit's ExecReload=: a valid config makes the daemon reload (it
/// receives SIGHUP, without a `kill` binary); an invalid one is reported with its location,
/// exit code 2, and the daemon is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_command_signals_the_daemon_only_for_a_valid_config() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let mut daemon = Spawned::start(&config);
    let pid = daemon.child.id().to_string();

    let (ok, out) = run(&["reload", "--pid", &pid], &config);
    assert!(ok, "{out}");
    daemon.wait_for("SIGHUP received: reloading", Duration::from_secs(10));
    daemon.wait_for("reloaded config and lists", Duration::from_secs(10));

    let text = std::fs::read_to_string(&config).expect("read");
    let broken = text.replacen("block = [\"adult\"]", "block = [\"adlt\"]", 1);
    assert_ne!(broken, text);
    std::fs::write(&config, broken).expect("write");
    let out = Command::new(BIN)
        .args(["reload", "--pid", &pid, "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kidsafe.toml:"), "{stderr}");
    assert!(stderr.contains("did you mean \"adult\""), "{stderr}");
    // The file watch notices the edit and refuses it; no second SIGHUP ever arrives.
    daemon.wait_for("reload failed", Duration::from_secs(10));
    let log = daemon.stop();
    assert_eq!(log.matches("SIGHUP received").count(), 1, "{log}");
}

/// A config given by a relative path is watched too (notify reports absolute paths), and an
/// edit saved by rename applies without a signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_config_path_is_watched() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let mut daemon = Spawned::start_in(dir.path(), Path::new("kidsafe.toml"));
    let addr = daemon.addr;
    assert_eq!(
        ask(addr, CASINO, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NoError
    );

    let text = std::fs::read_to_string(&config).expect("read");
    let edited = text.replacen(
        "[profiles.teen]\nblock = [\"adult\"]",
        "[profiles.teen]\nblock = [\"adult\", \"gambling\"]",
        1,
    );
    let temp = dir.path().join(".kidsafe.toml.new");
    std::fs::write(&temp, edited).expect("write");
    std::fs::rename(&temp, &config).expect("rename");
    // `kidsafe status` reads the state the daemon wrote. Poll it until the reload shows, within
    // a bound, instead of relying on the order of the log and the status file.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(["status", "--config", "kidsafe.toml"])
            .output()
            .expect("status");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.contains("generation  2") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "`kidsafe status` shows no generation 2 after 10 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("last reload ok"), "{text}");
    // The daemon logs the reload only after status.json is written.
    daemon.wait_for("reloaded config and lists", Duration::from_secs(10));
    assert_eq!(
        ask(addr, CASINO, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    daemon.stop();
}

fn run(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_the_decision_chain_for_each_path() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        upstream.addr,
        "timezone = \"Europe/Tirane\"",
        "[profiles.night]\nblock = [\"adult\"]\nsafe_search = true\n\
         [[profiles.night.schedule]]\ndays = [\"weekdays\"]\nfrom = \"21:00\"\nto = \"07:00\"\nblock = \"all\"\n\
         [[clients]]\nname = \"bedroom\"\nmatch = [\"127.0.9.0/24\"]\nprofile = \"night\"\n",
    );
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "explain",
                "www.blocked.example.test",
                "--client",
                "127.0.0.1",
            ],
            &[
                "defaults.profile teen",
                "blocked.example.test is listed in adult",
                "category adult: blocked by the profile",
                "answer   blocked (adult): NxDomain, TTL 60 s",
            ],
        ),
        (
            &["explain", "khan.example.test", "--client", "127.0.0.5"],
            &[
                "rule \"kid\" (longest matching prefix) -> profile child",
                "allowed by profile child's allow list",
                "forwarded",
            ],
        ),
        (
            &["explain", "www.example.test", "--client", "127.0.0.5"],
            &["denied by profile child's deny list", "blocked (denylist)"],
        ),
        (
            &[
                "explain",
                "news.example.test",
                "--client",
                "127.0.9.7",
                "--at",
                "2026-12-01T21:30",
            ],
            &[
                "profile night",
                "schedule a block-all window or a pause is in force",
                "2026-12-02 07:00 CET",
                "blocked (schedule)",
            ],
        ),
        (
            &[
                "explain",
                "www.google.al",
                "--client",
                "127.0.9.7",
                "--at",
                "2026-12-01T12:00",
            ],
            &[
                "safe search: CNAME to forcesafesearch.google.com.",
                "answer   CNAME forcesafesearch.google.com.",
            ],
        ),
        (
            &[
                "explain",
                "use-application-dns.net",
                "--client",
                "127.0.0.1",
            ],
            &["bypass guard", "NXDOMAIN"],
        ),
        (
            &["explain", "www.example.test", "--client", "203.0.113.9"],
            &["not in server.allow_clients: REFUSED"],
        ),
    ];
    for (args, wants) in cases {
        let (ok, text) = run(args, &config);
        assert!(ok, "{args:?}: {text}");
        for want in *wants {
            assert!(text.contains(want), "{args:?}: missing {want:?} in\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_pause_apply_to_the_running_daemon_and_expire() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let daemon = Spawned::start(&config);
    let addr = daemon.addr;
    assert!(is_kidsafe_block(&ask(addr, BLOCKED, RecordType::A).await));

    let (ok, text) = run(
        &[
            "grant",
            "--profile",
            "teen",
            "--allow",
            "blocked.example.test",
            "--for",
            "30m",
        ],
        &config,
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("blocked.example.test is allowed for profile teen until"),
        "{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_kidsafe_block(&ask(addr, BLOCKED, RecordType::A).await) {
        assert!(Instant::now() < deadline, "grant not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (ok, text) = run(&["pause", "--profile", "teen", "--for", "1h"], &config);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_kidsafe_block(&ask(addr, WWW, RecordType::A).await) {
        assert!(Instant::now() < deadline, "pause not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // During a pause, granted and allowed names still resolve.
    assert_eq!(
        ask(addr, BLOCKED, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NoError
    );

    // Overrides expire by themselves: rewrite the file with an end in the past.
    let path = dir.path().join("state/overrides.json");
    let text = std::fs::read_to_string(&path).expect("overrides written under state_dir");
    let past = "2000-01-01T00:00:00Z";
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    for list in ["grants", "pauses"] {
        for item in json[list].as_array_mut().expect("array") {
            item["until"] = serde_json::Value::String(past.into());
        }
    }
    std::fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_kidsafe_block(&ask(addr, BLOCKED, RecordType::A).await) {
        assert!(Instant::now() < deadline, "expired grant still applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        a_records(&ask(addr, WWW, RecordType::A).await),
        vec![WWW_V4]
    );

    let (ok, text) = run(
        &[
            "grant",
            "--profile",
            "nobody",
            "--allow",
            "x.example",
            "--for",
            "30m",
        ],
        &config,
    );
    assert!(!ok && text.contains("no profile \"nobody\""), "{text}");
    daemon.stop();
}

/// `kidsafe setup --yes` takes the packaged config to a filtering LAN set-up: listen, the
/// parents' devices on the open profile, unknown devices on a filtered one; comments are kept,
/// the result passes `check`, a second run replaces its own rule, and a wrong profile name
/// changes nothing.
#[test]
fn setup_writes_a_checked_config_and_keeps_its_comments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let template = dir.path().join("example.toml");
    std::fs::write(&template, packaged_config(upstream, "")).expect("write");
    let config = dir.path().join("etc/kidsafe.toml");
    let setup = |extra: &[&str]| {
        Command::new(BIN)
            .args(["setup", "--yes", "--config"])
            .arg(&config)
            .arg("--template")
            .arg(&template)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .expect("run")
    };
    let out = setup(&[
        "--parents",
        "aa:bb:cc:dd:ee:01,192.168.1.2",
        "--unknown-profile",
        "child",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("parents' devices aa:bb:cc:dd:ee:01, 192.168.1.2 -> profile open"),
        "{stdout}"
    );
    assert!(stdout.contains("Next steps"), "{stdout}");
    let written = std::fs::read_to_string(&config).expect("written");
    assert!(written.contains("# The profile for devices that no [[clients]] rule matches."));
    assert!(written.contains("listen = [\"127.0.0.1:0\"]"), "{written}");
    assert!(written.contains("profile = \"child\"\n"), "{written}");
    let (ok, report) = run(&["check"], &config);
    assert!(ok, "{report}");

    let out = setup(&[
        "--parents",
        "aa:bb:cc:dd:ee:02",
        "--unknown-profile",
        "teen",
    ]);
    assert!(out.status.success());
    let again = std::fs::read_to_string(&config).expect("written");
    assert_eq!(
        again.matches("name = \"parents' devices\"").count(),
        1,
        "{again}"
    );
    assert!(again.contains("match = [\"aa:bb:cc:dd:ee:02\"]"), "{again}");

    let out = setup(&["--unknown-profile", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "--unknown-profile \"nosuch\": no such profile; the config has child, open, teen"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&config).expect("kept"), again);
}

/// At trace level the file watcher's own library would log every event in the config's
/// directory with its file name (a parent's notes, a child's name in a file name): its target
/// is capped like hickory's, and kidsafe's own lines name no such file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_events_beside_the_config_are_not_logged_at_trace() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let mut daemon = Spawned::start(&config);
    let token = "zq7-private-file-name";
    let file = dir.path().join(format!("{token}.txt"));
    std::fs::write(&file, "notes\n").expect("write");
    std::fs::write(&file, "more notes\n").expect("write");
    std::fs::remove_file(&file).expect("remove");
    // An edit of the config itself, so the watch is proven to be running.
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text + "\n").expect("write");
    daemon.wait_for("reloaded config and lists", Duration::from_secs(10));
    let log = daemon.stop();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "ran at a verbose level"
    );
    assert!(!log.contains(token), "{log}");
}

/// Issue 20: before the daemon's first flush `kidsafe stats` said "error: no statistics yet"
/// (exit 1), and `--profile nosuch` said "nothing was blocked".
#[test]
fn stats_before_the_first_flush_and_for_an_unknown_profile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "127.0.0.1:53".parse().expect("addr"), "", "");
    let stats = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("stats")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let db = dir.path().join("state").join("stats.db");
    assert_eq!(
        stats(&[]),
        (
            Some(0),
            format!(
                "No statistics yet: the daemon writes its first numbers to {} within 1m of starting ([stats] flush).\n",
                db.display()
            ),
            String::new()
        )
    );
    assert_eq!(
        stats(&["--profile", "nosuch"]),
        (
            Some(2),
            String::new(),
            "error: no profile \"nosuch\"; the profiles are child, teen\n".to_string()
        )
    );
}

/// Issue 20: a damaged overrides.json was warned about every second, for as long as it stayed
/// damaged. Now once, and again only when the file changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_overrides_file_is_warned_about_once_per_version() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), upstream.addr, "", "");
    let mut daemon = Spawned::start(&config);
    let path = dir.path().join("state/overrides.json");
    std::fs::write(&path, "{ not json").expect("write");
    daemon.wait_for("overrides not applied", Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    std::fs::write(&path, "{ still not json }").expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = daemon.stop();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("overrides not applied"))
        .collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(
        warnings[0].ends_with(&format!(
            "WARN overrides not applied, keeping the previous ones: {}: key must be a string at line 1 column 3",
            path.display()
        )),
        "{}",
        warnings[0]
    );
}

/// Issue 20: where the configured resolvers are unreachable, every forwarded name was SERVFAIL
/// with nothing to say why. `kidsafe check --probe` asks each upstream once and says which
/// answer; exit code 1 when none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probe_says_which_upstreams_answer() {
    let answering = FakeUpstream::start(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 60).await;
    let silent = FakeUpstream::start(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 60).await;
    silent.set_silent(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), answering.addr, "", "");
    let rewrite = |servers: &str| {
        let text = config_text(answering.addr, "", "")
            .replace(&format!("servers = [\"{}\"]", answering.addr), servers)
            .replace("timeout = \"1500ms\"", "timeout = \"500ms\"");
        std::fs::write(&config, text).expect("write");
    };
    let probe = |config: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(BIN)
                .args(["check", "--probe", "--config"])
                .arg(&config)
                .output()
                .expect("run");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
        .await
        .expect("join")
    };
    // The milliseconds vary; everything else is exact.
    let section = |stdout: &str| {
        let at = stdout.find("\nupstreams (").expect("probe section");
        stdout[at + 1..]
            .lines()
            .map(|l| match l.split_once("answers (") {
                Some((head, _)) => format!("{head}answers (N ms)"),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    rewrite(&format!(
        "servers = [\"{}\", \"{}\"]",
        answering.addr, silent.addr
    ));
    let (code, stdout, stderr) = probe(config.clone()).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        section(&stdout),
        format!(
            "upstreams (one question each, \". NS\", within 500ms):\n  udp://{}  answers (N ms)\n  udp://{}  no answer: no upstream answered in time\n1 of 2 upstreams answer",
            answering.addr, silent.addr
        )
    );
    assert_eq!(answering.queries(), 1);
    assert_eq!(silent.queries(), 1);

    rewrite(&format!("servers = [\"{}\"]", silent.addr));
    let (code, stdout, stderr) = probe(config.clone()).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.ends_with("no answer: no upstream answered in time\n0 of 1 upstreams answer\n"),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        "error: no upstream answers from this machine, so every name kidsafe forwards would get SERVFAIL: check the network, or choose other [upstream] servers\n"
    );
}

/// Issue 20: `kidsafe categories` was promised (category.rs) but missing. It prints the
/// vocabulary alone, and with --config the names the config's lists load per category.
#[test]
fn categories_lists_the_vocabulary_and_what_a_config_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "127.0.0.1:53".parse().expect("addr"), "", "");
    std::fs::write(
        dir.path().join("lists/local.txt"),
        "a.example.test\nb.example.test\n",
    )
    .expect("write");
    let bare = Command::new(BIN).arg("categories").output().expect("run");
    assert_eq!(bare.status.code(), Some(0));
    let bare = String::from_utf8_lossy(&bare.stdout).to_string();
    assert!(
        bare.contains("\nadult      block  pornography and sexually explicit material\n           also named: porn, pornography, sex, mixed_adult\n           blocked by presets: under-9, 9-12, 13-15, 16-17\n\n"),
        "{bare}"
    );
    let (ok, text) = run(&["categories"], &config);
    assert!(ok, "{text}");
    for want in [
        "blocked by presets: under-9, 9-12, 13-15, 16-17\n           loaded: 1 name\n\ndating",
        "also named: arjel\n           blocked by presets: under-9, 9-12, 13-15, 16-17\n           loaded: 1 name\n",
        "\nCustom categories (list files with other names):\nlocal      loaded: 2 names\n",
    ] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
}
