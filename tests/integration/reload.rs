//! Live reload under load: config and list edits apply within 2 s, invalid edits keep the
//! running rules, and no query is lost or unanswered meanwhile.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use kidsafe::reload::status;

use crate::harness::*;

/// How soon a valid edit must show in answers (the promise to parents).
const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

fn config_with(upstream: std::net::SocketAddr, teen_block: &str, teen_deny: &str) -> String {
    // The load here comes from one address and polls tightly on purpose: not a flood to limit.
    config_text(upstream, "rate_limit = 0", "").replacen(
        "[profiles.teen]\nblock = [\"adult\"]",
        &format!("[profiles.teen]\nblock = [{teen_block}]\ndeny = [{teen_deny}]"),
        1,
    )
}

/// Polls until `qname` is (or is not) blocked by kidsafe, within VISIBLE_WITHIN of `since`.
async fn expect_blocked(
    addr: std::net::SocketAddr,
    qname: &str,
    blocked: bool,
    since: Instant,
    what: &str,
) {
    loop {
        let reply = ask(addr, qname, RecordType::A).await;
        if is_kidsafe_block(&reply) == blocked {
            return;
        }
        assert!(
            since.elapsed() < VISIBLE_WITHIN,
            "{what}: {qname} still {} after {:?}",
            if blocked { "answered" } else { "blocked" },
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until status.json reports a reload finished after `since_generation` or a failure
/// newer than `since_at`, and returns it.
async fn next_status(state: &Path, previous: &status::Status) -> status::Status {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(s) = status::read(state)
            && s.last_reload != previous.last_reload
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no reload recorded in status.json"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Saves like vim with `backupcopy=no`: write a new file, rename it over the old one.
fn save_by_rename(path: &Path, text: &str) {
    let temp = path.with_extension("toml.swp~");
    std::fs::write(&temp, text).expect("write temp");
    std::fs::rename(&temp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rewrites_under_load_lose_no_query() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_watching(config_with(upstream.addr, "\"adult\"", "")).await;
    let addr = daemon.addr;
    let path = daemon.dir.path().join("kidsafe.toml");
    let state = daemon.dir.path().join("state");

    // Clients asking all through the edits: allowed names must resolve, blocked ones must
    // stay blocked, and every query must be answered.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..3 {
        let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (qname, want_block) = if (i + c).is_multiple_of(2) {
                    (WWW, false)
                } else {
                    (BLOCKED, true)
                };
                match try_udp(
                    addr,
                    &query_message(qname, RecordType::A),
                    Duration::from_secs(2),
                )
                .await
                {
                    Some(m)
                        if is_kidsafe_block(&m) == want_block
                            && (want_block
                                || m.metadata.response_code == ResponseCode::NoError) =>
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }

    let mut last_status = status::read(&state).expect("status.json written at start");
    assert_eq!(last_status.generation, 1);
    let mut current_marker: Option<String> = None;
    for edit in 0..20 {
        let marker = format!("edit{edit}.example.test");
        match edit % 4 {
            // Valid edits: a new deny entry, saved in place or by rename.
            0 | 2 => {
                let text = config_with(upstream.addr, "\"adult\"", &format!("\"{marker}\""));
                let written = Instant::now();
                if edit % 4 == 0 {
                    std::fs::write(&path, &text).expect("write in place");
                } else {
                    save_by_rename(&path, &text);
                }
                expect_blocked(
                    addr,
                    &format!("{marker}."),
                    true,
                    written,
                    &format!("edit {edit}"),
                )
                .await;
                if let Some(old) = &current_marker {
                    expect_blocked(
                        addr,
                        &format!("{old}."),
                        false,
                        written,
                        &format!("edit {edit}"),
                    )
                    .await;
                }
                current_marker = Some(marker);
                last_status = next_status(&state, &last_status).await;
                assert!(
                    last_status.last_reload.as_ref().is_some_and(|r| r.ok),
                    "edit {edit}: {last_status:?}"
                );
            }
            // Invalid TOML, saved by rename.
            1 => {
                save_by_rename(&path, "[server\nlisten = oops\n");
                last_status = next_status(&state, &last_status).await;
                let error = last_status
                    .last_reload
                    .as_ref()
                    .and_then(|r| r.error.clone())
                    .unwrap_or_default();
                assert!(error.contains("kidsafe.toml:1:"), "edit {edit}: {error}");
            }
            // Valid TOML naming a category that does not exist, saved in place.
            _ => {
                std::fs::write(
                    &path,
                    config_with(upstream.addr, "\"adult\", \"gamblng\"", ""),
                )
                .expect("write");
                last_status = next_status(&state, &last_status).await;
                let error = last_status
                    .last_reload
                    .as_ref()
                    .and_then(|r| r.error.clone())
                    .unwrap_or_default();
                assert!(
                    error.contains("profiles.teen.block[1]"),
                    "edit {edit}: {error}"
                );
                assert!(
                    error.contains("unknown category \"gamblng\""),
                    "edit {edit}: {error}"
                );
            }
        }
        // Whatever the edit, the last good rules are the ones answering.
        if let Some(marker) = &current_marker {
            assert!(
                is_kidsafe_block(&ask(addr, &format!("{marker}."), RecordType::A).await),
                "edit {edit}"
            );
        }
    }

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let (answered, failed) = (
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed, 0,
        "{failed} queries failed or went unanswered ({answered} answered)"
    );
    assert!(answered > 100, "the clients kept asking: {answered}");
    assert!(
        last_status.generation >= 11,
        "10 valid edits applied: {last_status:?}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_files_added_changed_and_removed_apply_live() {
    let upstream = Upstream::start().await;
    let daemon =
        Daemon::start_watching(config_with(upstream.addr, "\"adult\", \"drugs\"", "")).await;
    let addr = daemon.addr;
    let lists = daemon.dir.path().join("lists");
    let pills = "pills.example.test.";
    let more = "more.example.test.";
    assert!(
        !is_kidsafe_block(&ask(addr, pills, RecordType::A).await),
        "drugs has no list yet"
    );

    let t = Instant::now();
    std::fs::write(lists.join("drogue.txt"), "pills.example.test\n").expect("add");
    expect_blocked(addr, pills, true, t, "list added").await;

    let t = Instant::now();
    std::fs::write(
        lists.join("drogue.txt"),
        "pills.example.test\n0.0.0.0 more.example.test\n",
    )
    .expect("change");
    expect_blocked(addr, more, true, t, "list changed").await;

    let t = Instant::now();
    std::fs::remove_file(lists.join("drogue.txt")).expect("remove");
    expect_blocked(addr, pills, false, t, "list removed").await;
    expect_blocked(addr, more, false, t, "list removed").await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_without_a_list_is_refused_until_its_list_arrives() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_watching(config_with(upstream.addr, "\"adult\"", "")).await;
    let addr = daemon.addr;
    let path = daemon.dir.path().join("kidsafe.toml");
    let state = daemon.dir.path().join("state");
    let before = status::read(&state).expect("status");

    // "homework" is neither in the vocabulary nor a list: a config error, old rules stay.
    std::fs::write(
        &path,
        config_with(upstream.addr, "\"adult\", \"homework\"", ""),
    )
    .expect("write");
    let failed = next_status(&state, &before).await;
    let reload = failed.last_reload.clone().expect("outcome");
    assert!(!reload.ok);
    assert!(
        reload
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("unknown category \"homework\""),
        "{reload:?}"
    );
    assert_eq!(failed.generation, 1);
    assert!(is_kidsafe_block(&ask(addr, BLOCKED, RecordType::A).await));

    // The fix: the list appears, and the same config now loads.
    let t = Instant::now();
    std::fs::write(
        daemon.dir.path().join("lists/homework.txt"),
        "answers.example.test\n",
    )
    .expect("write");
    expect_blocked(
        addr,
        "answers.example.test.",
        true,
        t,
        "custom category list added",
    )
    .await;
    let fixed = next_status(&state, &failed).await;
    assert!(
        fixed.last_reload.as_ref().is_some_and(|r| r.ok),
        "{fixed:?}"
    );
    assert_eq!(fixed.generation, 2);
    assert_eq!(fixed.active.categories.get("homework"), Some(&1));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reload_requests_is_one_reload() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_watching(config_with(upstream.addr, "\"adult\"", "")).await;
    let state = daemon.dir.path().join("state");
    let before = status::read(&state).expect("status");
    let handle = daemon.reload.clone().expect("reloader");
    for _ in 0..100 {
        handle.request("SIGHUP");
    }
    let after = next_status(&state, &before).await;
    assert_eq!(after.generation, 2);
    assert_eq!(
        after.last_reload.as_ref().map(|r| r.trigger.as_str()),
        Some("SIGHUP")
    );
    // Nothing else follows: the burst was coalesced.
    tokio::time::sleep(kidsafe::reload::DEBOUNCE * 4).await;
    assert_eq!(status::read(&state).expect("status").generation, 2);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_list_directories_hold_lists_for_the_watcher() {
    let upstream = Upstream::start().await;
    let daemon = Daemon::start_watching(config_with(upstream.addr, "\"adult\"", "")).await;
    let state = daemon.dir.path().join("state");
    let before = status::read(&state).expect("status");

    // A text file beside the config is not a list: no reload follows.
    std::fs::write(daemon.dir.path().join("notes.txt"), "remember the milk\n").expect("write");
    tokio::time::sleep(kidsafe::reload::DEBOUNCE * 4).await;
    let after_notes = status::read(&state).expect("status");
    assert_eq!(after_notes.generation, 1, "{after_notes:?}");
    assert_eq!(after_notes.last_reload, before.last_reload);

    // A list file in a list directory is, and it applies.
    let t = Instant::now();
    std::fs::write(
        daemon.dir.path().join("lists/adult.txt"),
        "new.example.test\n",
    )
    .expect("write");
    expect_blocked(daemon.addr, "new.example.test.", true, t, "list rewritten").await;
    let reloaded = next_status(&state, &before).await;
    assert_eq!(reloaded.generation, 2);
    daemon.stop().await;
}
