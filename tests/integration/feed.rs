//! The national feed end to end: lists published with `kidsafe feed publish`, served by a real
//! HTTP server on 127.0.0.1, fetched, verified and installed by the client, and served by the
//! daemon. Then one test per row of the feed table in shared/HOSTILE-INPUTS.md, each checking
//! that the last good snapshot is still installed and still blocks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kidsafe::config::Config;
use kidsafe::feed::fetch::{Fetcher, UpstreamSource};
use kidsafe::feed::snapshot::{self, FeedState, Step};
use kidsafe::feed::update::{Outcome, UpdateError, Updater};
use kidsafe::feed::{SecretKey, manifest};

use crate::feed_server::{Fault, FeedServer};

const BIN: &str = env!("CARGO_BIN_EXE_kidsafe");

/// A name only the feed lists (adult), and one only its second version adds (gambling).
const FEED_ADULT: &str = "adult-site.example.test";
const FEED_CASINO: &str = "new-casino.example.test";

/// An authority's workspace (keys, lists, web root) and a client's state directory.
pub struct Feed {
    pub dir: tempfile::TempDir,
    pub server: FeedServer,
    /// `--encoding` for `kidsafe feed publish`.
    pub encoding: &'static str,
}

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().expect("run kidsafe");
    assert!(
        out.status.success(),
        "kidsafe {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Feed {
    /// Keys, version 1 of the lists (adult: FEED_ADULT plus `extra_adult` filler names;
    /// gambling: one name), published and served.
    pub async fn new(extra_adult: usize) -> Self {
        Self::with_encoding(extra_adult, "identity").await
    }

    /// [`Feed::new`], publishing with `--encoding encoding`.
    pub async fn with_encoding(extra_adult: usize, encoding: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["keys", "lists", "www", "state"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        run(&[
            "feed",
            "keygen",
            "--out",
            path_str(&dir.path().join("keys")),
        ]);
        // `xxx`: a single label (the adult TLD), allowed in the signed feed only.
        let mut adult = format!("# adult, version 1\n{FEED_ADULT}\nxxx\n");
        for i in 0..extra_adult {
            adult.push_str(&format!("filler-{i}.adult.example\n"));
        }
        std::fs::write(dir.path().join("lists/adult.txt"), adult).expect("write");
        std::fs::write(
            dir.path().join("lists/gambling.txt"),
            "0.0.0.0 old-casino.example.test\n",
        )
        .expect("write");
        let server = FeedServer::start(dir.path().join("www")).await;
        let feed = Self {
            dir,
            server,
            encoding,
        };
        feed.publish();
        feed
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `kidsafe feed publish` of the current lists into the web root.
    pub fn publish(&self) {
        run(&[
            "feed",
            "publish",
            "--key",
            path_str(&self.path("keys/feed.key")),
            "--lists",
            path_str(&self.path("lists")),
            "--out",
            path_str(&self.path("www")),
            "--feed-id",
            "al.test.kids",
            "--expires",
            "7d",
            "--encoding",
            self.encoding,
        ]);
    }

    /// The public key as `[feed] public_key` takes it.
    pub fn public_key(&self) -> String {
        let text = std::fs::read_to_string(self.path("keys/feed.pub")).expect("feed.pub");
        text.lines().nth(1).expect("key line").trim().to_string()
    }

    pub fn secret_key(&self) -> SecretKey {
        let text = std::fs::read_to_string(self.path("keys/feed.key")).expect("feed.key");
        SecretKey::from_file_text(&text).expect("secret key")
    }

    /// The client's config: the feed on the test server, state in `state/`.
    pub fn config_text(&self, upstream: &str, extra_feed: &str) -> String {
        format!(
            r#"[server]
listen = ["127.0.0.1:0"]
allow_clients = ["127.0.0.0/8"]
state_dir = "state"
threads = 1

[upstream]
servers = ["{upstream}"]
timeout = "1s"

[feed]
url = "{url}"
public_key = "{key}"
timeout = "3s"
{extra_feed}

[defaults]
profile = "kids"

[profiles.kids]
block = ["adult", "gambling"]
"#,
            url = self.server.url(),
            key = self.public_key(),
        )
    }

    pub fn config(&self) -> Config {
        let text = self.config_text("127.0.0.1:9", "");
        let path = self.path("kidsafe.toml");
        std::fs::write(&path, &text).expect("write config");
        Config::from_source(&path, &text).expect("valid config")
    }

    pub fn root(&self) -> PathBuf {
        snapshot::feed_root(&self.path("state"))
    }

    pub fn state(&self) -> Option<FeedState> {
        FeedState::read(&self.root()).expect("readable state")
    }

    pub fn fetcher(&self, config: &Config) -> Fetcher {
        let (upstream, tls) = (config.upstream.clone(), None);
        let source: UpstreamSource = Arc::new(move || (upstream.clone(), tls.clone()));
        kidsafe::feed::run::fetcher_for(config, source).expect("fetcher")
    }

    /// One update at `now`, stopping (panicking) at install step `crash_at` if given.
    pub async fn update_at(
        &self,
        now: Timestamp,
        crash_at: Option<Step>,
    ) -> Result<Outcome, UpdateError> {
        self.update_with(now, crash_at, None).await
    }

    /// One update now, with the labels its progress reports named, in order, each once.
    pub async fn update_reporting(&self) -> (Result<Outcome, UpdateError>, Vec<String>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let record = Arc::clone(&seen);
        let progress: kidsafe::feed::update::Progress = Box::new(move |label, _, _| {
            let mut seen = record.lock().expect("lock");
            if seen.last().map(String::as_str) != Some(label) {
                seen.push(label.to_string());
            }
        });
        let result = self
            .update_with(Timestamp::now(), None, Some(progress))
            .await;
        let seen = seen.lock().expect("lock").clone();
        (result, seen)
    }

    async fn update_with(
        &self,
        now: Timestamp,
        crash_at: Option<Step>,
        progress: Option<kidsafe::feed::update::Progress>,
    ) -> Result<Outcome, UpdateError> {
        let config = self.config();
        let feed = config.feed.clone().expect("[feed]");
        let fetcher = self.fetcher(&config);
        let keys = kidsafe::feed::run::public_keys(&feed).expect("keys");
        let root = self.root();
        let updater = Updater {
            root: &root,
            url: &feed.url,
            keys: &keys,
            feed_id: feed.feed_id.as_deref(),
            fetcher: &fetcher,
            timeout: feed.timeout,
            observer: Arc::new(move |step| {
                if Some(step) == crash_at {
                    panic!("simulated crash at {step:?}");
                }
            }),
            progress,
        };
        updater.run(now).await
    }

    pub async fn update(&self) -> Result<Outcome, UpdateError> {
        self.update_at(Timestamp::now(), None).await
    }

    /// The category the installed (or fallen-back-to) snapshot puts `name` in.
    pub fn blocked(&self, name: &str) -> Option<String> {
        let (selected, _) = snapshot::select(&self.root());
        let selected = selected?;
        let lists = kidsafe::lists::load_dirs(&[selected.dir]).expect("snapshot loads");
        let bits = lists.store.lookup_str(name);
        (0..64u8)
            .find(|b| bits & (1 << b) != 0)
            .map(|b| lists.categories.name(b).to_string())
    }

    /// Rewrites the served manifest with `change` and signs it again with the publisher's key,
    /// as a publisher bug (or a stolen key) would.
    pub fn resign(&self, change: impl FnOnce(&mut serde_json::Value)) {
        let path = self.path("www/manifest.json");
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
        change(&mut value);
        let bytes = serde_json::to_vec_pretty(&value).expect("json");
        let parsed: manifest::Manifest = serde_json::from_slice(&bytes).expect("still a manifest");
        let comment =
            manifest::trusted_comment(&parsed.feed_id, parsed.sequence, parsed.expires_at);
        let signature = self.secret_key().sign(&bytes, &comment);
        std::fs::write(&path, &bytes).expect("write manifest");
        std::fs::write(self.path("www/manifest.json.minisig"), signature).expect("write sig");
    }

    /// The served file of a category: (path in the feed, its bytes decoded).
    pub fn served(&self, category: &str) -> (String, serde_json::Value) {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.path("www/manifest.json")).expect("manifest"),
        )
        .expect("json");
        let c = m["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .find(|c| c["id"] == category)
            .expect("category")
            .clone();
        (c["full"]["path"].as_str().expect("path").to_string(), c)
    }

    /// Installs version 1 and checks it blocks.
    pub async fn install_first(&self) {
        let outcome = self.update().await.expect("first update");
        assert!(
            matches!(outcome, Outcome::Installed { sequence: 1, .. }),
            "{outcome:?}"
        );
        self.assert_still_serving(1);
    }

    /// The snapshot of `sequence` is installed, whole, and blocks the feed's names.
    pub fn assert_still_serving(&self, sequence: u64) {
        let state = self.state().expect("state");
        assert_eq!(state.sequence, sequence);
        let (selected, problems) = snapshot::select(&self.root());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(selected.expect("a snapshot").info.sequence, sequence);
        assert_eq!(self.blocked(FEED_ADULT).as_deref(), Some("adult"));
        assert_eq!(
            self.blocked("www.old-casino.example.test").as_deref(),
            Some("gambling")
        );
    }

    /// Copies manifest.json and its signature from directory `from` to `to`.
    pub fn copy_manifest(&self, from: &str, to: &str) {
        std::fs::create_dir_all(self.path(to)).expect("mkdir");
        for f in ["manifest.json", "manifest.json.minisig"] {
            std::fs::copy(
                self.path(&format!("{from}/{f}")),
                self.path(&format!("{to}/{f}")),
            )
            .expect("copy");
        }
    }

    /// Version 2: gambling gains FEED_CASINO; adult unchanged.
    pub fn publish_second(&self) {
        std::fs::write(
            self.path("lists/gambling.txt"),
            format!("0.0.0.0 old-casino.example.test\n0.0.0.0 {FEED_CASINO}\n"),
        )
        .expect("write");
        self.publish();
    }
}

fn kind(result: &Result<Outcome, UpdateError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

#[tokio::test]
async fn a_published_feed_installs_blocks_and_updates_only_what_changed() {
    let feed = Feed::new(50).await;
    // Progress is reported per category (issue 20: it was the file's hash prefix).
    let (outcome, labels) = feed.update_reporting().await;
    assert!(
        matches!(outcome, Ok(Outcome::Installed { sequence: 1, .. })),
        "{outcome:?}"
    );
    assert_eq!(labels, ["adult", "gambling"]);
    feed.assert_still_serving(1);
    assert!(feed.state().expect("state").previous.is_none());
    // A signed single-label entry blocks its whole TLD (a list of unknown origin could not).
    assert_eq!(feed.blocked("www.anything.xxx").as_deref(), Some("adult"));
    assert_eq!(feed.blocked("xxx.example.test"), None);

    // Nothing new: the conditional GET gets a 304 and nothing else is downloaded.
    feed.server.reset_hits();
    let again = feed.update().await.expect("second update");
    assert_eq!(again, Outcome::NotModified);
    assert_eq!(feed.server.hits("manifest.json"), 1);
    assert_eq!(feed.server.hits_under("by-hash/"), 0);
    assert_eq!(feed.server.hits("manifest.json.minisig"), 0);

    // One category changes: only it is fetched (by delta), the other is kept.
    feed.publish_second();
    feed.server.reset_hits();
    let (outcome, labels) = feed.update_reporting().await;
    assert_eq!(labels, ["gambling (delta)"]);
    let outcome = outcome.expect("update to 2");
    let Outcome::Installed {
        sequence,
        full,
        delta,
        kept,
        ..
    } = outcome
    else {
        panic!("not installed: {outcome:?}");
    };
    assert_eq!(sequence, 2);
    assert_eq!(kept, 1, "adult did not change");
    assert_eq!(delta, vec!["gambling".to_string()], "full: {full:?}");
    assert!(full.is_empty());
    assert_eq!(feed.server.hits_under("by-hash/"), 1);
    feed.assert_still_serving(2);
    assert_eq!(feed.blocked(FEED_CASINO).as_deref(), Some("gambling"));
    let state = feed.state().expect("state");
    assert_eq!(state.previous.expect("previous kept").sequence, 1);
}

/// A row of the table: how to spoil version 2 as served, and the kind of error expected.
struct Row {
    what: &'static str,
    spoil: fn(&Feed),
    expect: &'static [&'static str],
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

fn gambling_file(feed: &Feed) -> PathBuf {
    let (path, _) = feed.served("gambling");
    feed.path(&format!("www/{path}"))
}

/// Makes the served gambling list bypass its delta, so the full file is what is fetched.
fn no_deltas(feed: &Feed) {
    feed.resign(|m| {
        for c in m["categories"].as_array_mut().expect("categories") {
            c["deltas"] = serde_json::json!([]);
        }
    });
}

const ROWS: &[Row] = &[
    Row {
        what: "bad signature",
        spoil: |f| {
            let sig = f.path("www/manifest.json.minisig");
            let text = std::fs::read_to_string(&sig).expect("sig");
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            // The signature line: change one base64 character.
            let line = &mut lines[1];
            let c = if line.ends_with('A') { 'B' } else { 'A' };
            line.pop();
            line.push(c);
            std::fs::write(&sig, lines.join("\n") + "\n").expect("write");
        },
        expect: &["bad_signature"],
    },
    Row {
        what: "manifest changed after signing",
        spoil: |f| flip_byte(&f.path("www/manifest.json"), 40),
        expect: &["bad_signature"],
    },
    Row {
        what: "signed by another key",
        spoil: |f| {
            let other = SecretKey::generate().expect("key");
            let bytes = std::fs::read(f.path("www/manifest.json")).expect("manifest");
            let m: manifest::Manifest = serde_json::from_slice(&bytes).expect("json");
            let comment = manifest::trusted_comment(&m.feed_id, m.sequence, m.expires_at);
            std::fs::write(
                f.path("www/manifest.json.minisig"),
                other.sign(&bytes, &comment),
            )
            .expect("write");
        },
        expect: &["unknown_key"],
    },
    Row {
        what: "trusted comment not matching the fields",
        spoil: |f| {
            let bytes = std::fs::read(f.path("www/manifest.json")).expect("manifest");
            let m: manifest::Manifest = serde_json::from_slice(&bytes).expect("json");
            let comment = manifest::trusted_comment(&m.feed_id, m.sequence + 5, m.expires_at);
            let sig = f.secret_key().sign(&bytes, &comment);
            std::fs::write(f.path("www/manifest.json.minisig"), sig).expect("write");
        },
        expect: &["trusted_comment_mismatch"],
    },
    Row {
        what: "another feed's manifest",
        spoil: |f| f.resign(|m| m["feed_id"] = "xx.other.feed".into()),
        expect: &["wrong_feed"],
    },
    Row {
        what: "captive-portal HTML instead of the manifest",
        spoil: |f| {
            f.server.fault("manifest.json", Fault::CaptivePortal);
            f.server
                .fault("manifest.json.minisig", Fault::CaptivePortal);
        },
        expect: &["bad_signature"],
    },
    Row {
        what: "hash mismatch (a byte changed in a list)",
        spoil: |f| {
            no_deltas(f);
            flip_byte(&gambling_file(f), 30);
        },
        expect: &["hash_mismatch"],
    },
    Row {
        what: "truncated list file",
        spoil: |f| {
            no_deltas(f);
            let path = gambling_file(f);
            let bytes = std::fs::read(&path).expect("read");
            std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        },
        expect: &["hash_mismatch"],
    },
    Row {
        what: "body larger than declared",
        spoil: |f| {
            no_deltas(f);
            let path = gambling_file(f);
            let mut bytes = std::fs::read(&path).expect("read");
            bytes.extend_from_slice(&[b'x'; 4096]);
            std::fs::write(&path, bytes).expect("write");
        },
        expect: &["too_large"],
    },
    Row {
        what: "endless manifest body",
        spoil: |f| f.server.fault("manifest.json", Fault::Endless),
        expect: &["too_large"],
    },
    Row {
        what: "server error 500",
        spoil: |f| f.server.fault("manifest.json", Fault::Status(500, None)),
        expect: &["http_status"],
    },
    Row {
        what: "stalled server",
        spoil: |f| f.server.fault("manifest.json", Fault::Stall),
        expect: &["timeout"],
    },
    Row {
        what: "server stalls in the middle of a list",
        spoil: |f| {
            no_deltas(f);
            let (path, _) = f.served("gambling");
            f.server.fault(&path, Fault::StallMidBody);
        },
        expect: &["timeout"],
    },
    Row {
        what: "list file missing (404)",
        spoil: |f| {
            no_deltas(f);
            std::fs::remove_file(gambling_file(f)).expect("rm");
        },
        expect: &["http_status"],
    },
    Row {
        what: "same sequence, different bytes",
        spoil: |f| {
            // Version 1 again, re-signed with one more byte of whitespace.
            let path = f.path("www/manifest.json");
            std::fs::copy(f.path("v1/manifest.json"), &path).expect("restore v1");
            let mut bytes = std::fs::read(&path).expect("read");
            bytes.push(b'\n');
            let m: manifest::Manifest = serde_json::from_slice(&bytes).expect("json");
            let comment = manifest::trusted_comment(&m.feed_id, m.sequence, m.expires_at);
            std::fs::write(&path, &bytes).expect("write");
            std::fs::write(
                f.path("www/manifest.json.minisig"),
                f.secret_key().sign(&bytes, &comment),
            )
            .expect("write");
        },
        expect: &["same_sequence_different_bytes"],
    },
    Row {
        what: "published far in the future",
        spoil: |f| {
            f.resign(|m| {
                let future = Timestamp::now() + SignedDuration::from_hours(24 * 3);
                m["published_at"] = future.to_string().into();
                m["expires_at"] = (future + SignedDuration::from_hours(24 * 7))
                    .to_string()
                    .into();
            })
        },
        expect: &["from_future"],
    },
    Row {
        what: "a redirect loop is cut",
        spoil: |f| {
            let url = format!("{}manifest.json", f.server.url());
            f.server.fault("manifest.json", Fault::Redirect(url));
        },
        expect: &["transport"],
    },
];

#[tokio::test]
async fn every_hostile_feed_row_is_refused_and_the_last_good_snapshot_keeps_blocking() {
    let mut failures = Vec::new();
    for row in ROWS {
        let feed = Feed::new(20).await;
        feed.install_first().await;
        // Keep version 1's manifest for the replay rows.
        feed.copy_manifest("www", "v1");
        feed.publish_second();
        copy_dir(&feed.path("www"), &feed.path("www-v2"));
        (row.spoil)(&feed);
        let result = feed.update().await;
        if !row.expect.contains(&kind(&result)) {
            failures.push(format!(
                "{}: expected {:?}, got {result:?}",
                row.what, row.expect
            ));
            continue;
        }
        // Nothing was installed; version 1 still blocks; a repaired server then works.
        feed.assert_still_serving(1);
        assert_eq!(feed.blocked(FEED_CASINO), None, "{}", row.what);
        feed.server.heal();
        std::fs::remove_dir_all(feed.path("www")).expect("rm www");
        copy_dir(&feed.path("www-v2"), &feed.path("www"));
        let healed = feed.update().await;
        if !matches!(healed, Ok(Outcome::Installed { sequence: 2, .. })) {
            failures.push(format!("{}: after healing, got {healed:?}", row.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_replayed_older_manifest_is_a_rollback() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    feed.copy_manifest("www", "v1");
    feed.publish_second();
    assert!(matches!(
        feed.update().await,
        Ok(Outcome::Installed { sequence: 2, .. })
    ));
    feed.copy_manifest("v1", "www");
    let result = feed.update().await;
    assert_eq!(kind(&result), "rollback", "{result:?}");
    assert_eq!(feed.state().expect("state").sequence, 2);
    assert_eq!(feed.blocked(FEED_CASINO).as_deref(), Some("gambling"));
}

#[tokio::test]
async fn an_expired_manifest_is_refused_but_the_installed_lists_keep_enforcing() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    feed.publish_second();
    let in_eight_days = Timestamp::now() + SignedDuration::from_hours(24 * 8);
    let result = feed.update_at(in_eight_days, None).await;
    assert_eq!(kind(&result), "expired", "{result:?}");
    feed.assert_still_serving(1);
    let state = feed.state();
    let attempts = kidsafe::feed::run::Attempts::default();
    assert_eq!(
        kidsafe::feed::status::freshness(state.as_ref(), &attempts, in_eight_days),
        kidsafe::feed::status::Freshness::Expired
    );
    // A clock stuck in 1970 cannot judge expiry: the sequence still protects, the update applies.
    let result = feed.update_at(Timestamp::UNIX_EPOCH, None).await;
    assert!(
        matches!(result, Ok(Outcome::Installed { sequence: 2, .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_gzip_bomb_stops_at_the_declared_size() {
    // A gzip list large enough that a bomb fits in its declared transfer size.
    let feed = Feed::with_encoding(3000, "gzip").await;
    feed.install_first().await;
    let (_, adult) = feed.served("adult");
    let transfer = adult["full"]["transfer_size"]
        .as_u64()
        .expect("gzip transfer size");
    let size = adult["full"]["size"].as_u64().expect("size");
    let bomb = {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![b'a'; 1 << 20];
        while (enc.get_ref().len() as u64) < transfer / 2 {
            enc.write_all(&chunk).expect("gzip");
        }
        enc.finish().expect("gzip")
    };
    assert!(
        bomb.len() as u64 <= transfer,
        "bomb {} > {transfer}",
        bomb.len()
    );
    // Served in place of a new adult version whose manifest entry is otherwise honest.
    let bomb_path = format!("by-hash/sha256/{}.gz", "e".repeat(64));
    std::fs::write(feed.path(&format!("www/{bomb_path}")), &bomb).expect("write bomb");
    feed.resign(|m| {
        m["sequence"] = 2.into();
        for c in m["categories"].as_array_mut().expect("categories") {
            if c["id"] == "adult" {
                c["version"] = (c["version"].as_u64().expect("version") + 1).into();
                c["deltas"] = serde_json::json!([]);
                c["full"]["sha256"] = "e".repeat(64).into();
                c["full"]["path"] = bomb_path.clone().into();
            }
        }
    });
    let result = feed.update().await;
    assert_eq!(kind(&result), "size_exceeded", "{result:?}");
    assert!(
        size < 1 << 20,
        "the cap ({size} bytes) is far below the bomb"
    );
    feed.assert_still_serving(1);
}

#[tokio::test]
async fn a_non_canonical_list_is_refused_even_when_signed() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    feed.publish_second();
    // The publisher's bug: an unsorted file, correctly hashed and signed.
    let body = format!(
        "#nfeed/1 category=gambling version=2 entries=2\nold-casino.example.test\n{FEED_CASINO}\n#end entries=2\n"
    );
    let sha = manifest::sha256_hex(body.as_bytes());
    let rel = format!("by-hash/sha256/{sha}");
    std::fs::write(feed.path(&format!("www/{rel}")), &body).expect("write");
    feed.resign(|m| {
        for c in m["categories"].as_array_mut().expect("categories") {
            if c["id"] == "gambling" {
                c["deltas"] = serde_json::json!([]);
                c["version"] = 2.into();
                c["entries"] = 2.into();
                c["full"] = serde_json::json!({
                    "path": rel, "sha256": sha, "size": body.len(), "encoding": "identity"
                });
            }
        }
    });
    let result = feed.update().await;
    assert_eq!(kind(&result), "non_canonical", "{result:?}");
    feed.assert_still_serving(1);
}

#[tokio::test]
async fn a_delta_with_a_wrong_result_is_discarded_for_the_full_file() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    feed.publish_second();
    let (_, gambling) = feed.served("gambling");
    let from = gambling["version"].as_u64().expect("version") - 1;
    let to = from + 1;
    // A well-formed delta, correctly hashed and signed, that adds the wrong name.
    let delta = format!(
        "#nfeed-delta/1 category=gambling from={from} to={to}\n+wrong.example.test\n#end removals=0 additions=1\n"
    );
    let sha = manifest::sha256_hex(delta.as_bytes());
    let rel = format!("by-hash/sha256/{sha}");
    std::fs::write(feed.path(&format!("www/{rel}")), &delta).expect("write");
    feed.resign(|m| {
        for c in m["categories"].as_array_mut().expect("categories") {
            if c["id"] == "gambling" {
                c["deltas"] = serde_json::json!([{
                    "from_version": from, "path": rel, "sha256": sha,
                    "size": delta.len(), "encoding": "identity"
                }]);
            }
        }
    });
    let result = feed.update().await;
    let Ok(Outcome::Installed { full, delta, .. }) = &result else {
        panic!("{result:?}");
    };
    assert_eq!(full, &vec!["gambling".to_string()]);
    assert!(delta.is_empty());
    assert_eq!(feed.blocked(FEED_CASINO).as_deref(), Some("gambling"));
    assert_eq!(feed.blocked("wrong.example.test"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_install_step_leaves_one_whole_snapshot_and_the_next_update_completes() {
    for step in [
        Step::FileWritten,
        Step::FilesSynced,
        Step::Renamed,
        Step::Committed,
    ] {
        let feed = Feed::new(5).await;
        feed.install_first().await;
        feed.publish_second();
        // The install runs on its own thread so the simulated crash (a panic: no cleanup
        // code runs, as with kill -9) can be observed.
        let crashed = {
            let feed = &feed;
            std::thread::scope(|s| {
                s.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let result = rt.block_on(feed.update_at(Timestamp::now(), Some(step)));
                    format!("{result:?}")
                })
                .join()
            })
        };
        assert!(
            crashed.is_err(),
            "{step:?}: the observer should have stopped the install: {crashed:?}"
        );
        // "Restart": what a new process would serve.
        let expected = if step == Step::Committed { 2 } else { 1 };
        feed.assert_still_serving(expected);
        assert_eq!(
            feed.blocked(FEED_CASINO).is_some(),
            expected == 2,
            "{step:?}: a mix of versions"
        );
        let result = feed.update().await;
        if expected == 1 {
            assert!(
                matches!(result, Ok(Outcome::Installed { sequence: 2, .. })),
                "{step:?}: {result:?}"
            );
        } else {
            assert!(
                matches!(result, Ok(Outcome::NotModified | Outcome::Current { .. })),
                "{result:?}"
            );
        }
        feed.assert_still_serving(2);
        let leftovers: Vec<_> = std::fs::read_dir(feed.root().join("snapshots"))
            .expect("snapshots")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
    }
}

#[tokio::test]
async fn a_damaged_active_snapshot_falls_back_to_the_previous_one() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    feed.publish_second();
    assert!(matches!(
        feed.update().await,
        Ok(Outcome::Installed { sequence: 2, .. })
    ));
    // Bit rot in the active snapshot's gambling list.
    let active = feed.root().join("snapshots/snap-2/gambling.txt");
    flip_byte(&active, 20);
    let (selected, problems) = snapshot::select(&feed.root());
    let selected = selected.expect("the previous snapshot");
    assert_eq!(selected.info.sequence, 1);
    assert!(selected.fell_back);
    assert!(
        problems.iter().any(|p| p.contains("snap-2")),
        "{problems:?}"
    );
    assert_eq!(feed.blocked(FEED_ADULT).as_deref(), Some("adult"));
    // Both damaged: no snapshot, so the runtime uses the baseline.
    flip_byte(&feed.root().join("snapshots/snap-1/adult.txt"), 20);
    let (selected, _) = snapshot::select(&feed.root());
    assert!(selected.is_none());
}

#[tokio::test]
async fn a_category_shrinking_by_more_than_half_is_installed_with_an_alarm() {
    let feed = Feed::new(30).await;
    feed.install_first().await;
    std::fs::write(feed.path("lists/adult.txt"), format!("{FEED_ADULT}\n")).expect("write");
    feed.publish();
    let result = feed.update().await;
    let Ok(Outcome::Installed { alarms, .. }) = &result else {
        panic!("{result:?}");
    };
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert!(alarms[0].contains("adult"), "{alarms:?}");
}

#[tokio::test]
async fn the_feed_host_is_resolved_through_the_upstreams_not_the_system() {
    let upstream = crate::harness::Upstream::start().await;
    let feed = Feed::new(5).await;
    // feed.example.test exists only in the in-process upstream's zone.
    let url = format!(
        "http://{}:{}/",
        crate::harness::FEED_HOST.trim_end_matches('.'),
        feed.server.addr.port()
    );
    let text = feed
        .config_text(&upstream.addr.to_string(), "")
        .replace(&feed.server.url(), &url);
    let path = feed.path("kidsafe.toml");
    std::fs::write(&path, &text).expect("write");
    let config = Config::from_source(&path, &text).expect("config");
    let feed_settings = config.feed.clone().expect("[feed]");
    assert_eq!(feed_settings.url, url);
    let fetcher = feed.fetcher(&config);
    let result = kidsafe::feed::run::update_once(&config, &feed_settings, &fetcher, None).await;
    assert!(
        matches!(result, Ok(Outcome::Installed { sequence: 1, .. })),
        "{result:?}"
    );
    assert_eq!(feed.blocked(FEED_ADULT).as_deref(), Some("adult"));
    // update_once records the attempt for `kidsafe feed status`.
    let attempts = kidsafe::feed::run::Attempts::read(&feed.root());
    assert_eq!(attempts.consecutive_failures, 0);
    assert!(attempts.last_success_at.is_some());
}

#[tokio::test]
async fn a_server_asking_to_retry_later_is_honoured_and_the_failure_recorded() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    feed.server
        .fault("manifest.json", Fault::Status(503, Some(1800)));
    let config = feed.config();
    let feed_settings = config.feed.clone().expect("[feed]");
    let fetcher = feed.fetcher(&config);
    let result = kidsafe::feed::run::update_once(&config, &feed_settings, &fetcher, None).await;
    let Err(e) = &result else {
        panic!("{result:?}")
    };
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1800)));
    let wait = kidsafe::feed::run::backoff(1, feed_settings.refresh, e.retry_after());
    assert!(wait >= Duration::from_secs(1800), "{wait:?}");
    let attempts = kidsafe::feed::run::Attempts::read(&feed.root());
    assert_eq!(attempts.consecutive_failures, 1);
    assert_eq!(attempts.failures.get("http_status"), Some(&1));
    feed.assert_still_serving(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_daemon_installs_the_feed_at_start_and_follows_a_one_shot_update_and_sigusr1() {
    let upstream = crate::harness::Upstream::start().await;
    let feed = Feed::new(5).await;
    // The feed's allowlist beats its own categories: www.example.test is listed as adult
    // by mistake and allowed nationally.
    let adult = std::fs::read_to_string(feed.path("lists/adult.txt")).expect("read");
    std::fs::write(
        feed.path("lists/adult.txt"),
        format!("{adult}www.example.test\n"),
    )
    .expect("write");
    std::fs::write(feed.path("lists/allow.txt"), "www.example.test\n").expect("write");
    feed.publish();
    let text = feed.config_text(&upstream.addr.to_string(), "")
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let path = feed.path("kidsafe.toml");
    std::fs::write(&path, &text).expect("write");
    let path_for_thread = path.clone();
    let mut daemon =
        tokio::task::spawn_blocking(move || crate::harness::Spawned::start(&path_for_thread))
            .await
            .expect("spawn");
    let addr = daemon.addr;
    // No snapshot at start: the updater fetches at once, and the reload makes it block.
    wait_blocked(addr, FEED_ADULT).await;
    let www =
        crate::harness::ask(addr, crate::harness::WWW, hickory_proto::rr::RecordType::A).await;
    assert_eq!(
        www.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );

    // An admin publishes version 2 and runs a one-shot update; the daemon follows on its own.
    feed.publish_second();
    let out = kidsafe_async(&["feed", "update", "--config", path_str(&path)]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_blocked(addr, FEED_CASINO).await;

    // Nothing new: exit code 4.
    let again = kidsafe_async(&["feed", "update", "--config", path_str(&path)]).await;
    assert_eq!(again.status.code(), Some(4));

    let status = kidsafe_async(&["feed", "status", "--config", path_str(&path)]).await;
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    for want in [
        "state:     fresh",
        "sequence:  3",
        "gambling",
        "adult",
        "(allowlist)",
        "snap-3",
    ] {
        assert!(status.contains(want), "{want:?} missing from:\n{status}");
    }
    // SIGUSR1 (`systemctl kill -s USR1 kidsafe`) makes the daemon check the feed now.
    std::fs::write(
        feed.path("lists/gambling.txt"),
        format!("old-casino.example.test\n{FEED_CASINO}\nusr1-casino.example.test\n"),
    )
    .expect("write");
    feed.publish();
    daemon.signal("USR1");
    wait_blocked(addr, "usr1-casino.example.test").await;

    let log = tokio::task::spawn_blocking(move || {
        daemon.wait_for("SIGUSR1 received", Duration::from_secs(1));
        daemon.wait_for("feed: installed sequence 4", Duration::from_secs(5));
        // /metrics tells a school's monitoring which snapshot serves and how fresh it is.
        let line = daemon.wait_for("serving Prometheus metrics", Duration::from_secs(5));
        let metrics: std::net::SocketAddr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .expect("metrics address");
        let scrape = crate::harness::http_get(metrics, "/metrics");
        for want in [
            "kidsafe_feed_sequence 4",
            "kidsafe_feed_state{state=\"fresh\"} 1",
            "kidsafe_feed_state{state=\"expired\"} 0",
            "kidsafe_feed_last_success_timestamp_seconds ",
        ] {
            assert!(scrape.contains(want), "{want:?} missing from:\n{scrape}");
        }
        // Issue 20: README's metrics table left the feed's out. Every family served is in it.
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .expect("README");
        for line in scrape.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
            let name = if kind == "counter" && !family.ends_with("_total") {
                format!("{family}_total")
            } else {
                family.to_string()
            };
            assert!(
                readme.contains(&format!("| `{name}` | {kind} |")),
                "README's metrics table lacks {name} ({kind})"
            );
        }
        daemon.stop()
    })
    .await
    .expect("stop");
    // Privacy: the names asked and listed never reach the log.
    for name in [FEED_ADULT, FEED_CASINO, "www.example.test"] {
        assert!(!log.contains(name), "{name} in the log:\n{log}");
    }
    // Issue 20: the updater process's report appeared twice, once without a timestamp. Now
    // every line is the daemon's own, stamped, and each update is reported once.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let stamp = line.split_whitespace().next().unwrap_or_default();
        assert!(
            stamp.parse::<Timestamp>().is_ok(),
            "a line without a timestamp: {line:?} in\n{log}"
        );
    }
    for sequence in [2, 4] {
        let reports: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("installed sequence {sequence}:")))
            .collect();
        assert_eq!(reports.len(), 1, "{log}");
        assert!(
            reports[0].contains(&format!(" INFO feed: installed sequence {sequence}: ")),
            "{log}"
        );
    }
}

/// A feed carrying some categories replaces the baseline's data for those only: a category it
/// does not carry keeps the baseline's file, and `check`, `feed status` and `/metrics` say
/// which is in force for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_replaces_only_the_categories_it_carries_and_the_baseline_keeps_the_rest() {
    let upstream = crate::harness::Upstream::start().await;
    // The feed carries adult and gambling.
    let feed = Feed::new(0).await;
    // The baseline has an adult list of its own, and violence and drugs, which the feed lacks.
    let baseline = feed.path("baseline");
    std::fs::create_dir_all(&baseline).expect("mkdir");
    for (file, name) in [
        ("adult.txt", "baseline-adult.example.test"),
        ("violence.txt", "baseline-gore.example.test"),
        ("drogue.txt", "baseline-drugs.example.test"),
    ] {
        std::fs::write(baseline.join(file), format!("{name}\n")).expect("write");
    }
    let text = feed
        .config_text(&upstream.addr.to_string(), "baseline = [\"baseline\"]")
        .replace(
            "block = [\"adult\", \"gambling\"]",
            "block = [\"adult\", \"gambling\", \"violence\", \"drugs\"]",
        )
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let path = feed.path("kidsafe.toml");
    std::fs::write(&path, &text).expect("write");
    let check = |want: &'static [&'static str]| {
        let path = path.clone();
        async move {
            let out = kidsafe_async(&["check", "--config", path_str(&path)]).await;
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(out.status.code(), Some(0), "{stdout}");
            for line in want {
                assert!(
                    stdout.lines().any(|l| l
                        .trim_start()
                        .starts_with(line.split('|').next().unwrap_or(""))
                        && line.split('|').all(|part| l.contains(part))),
                    "no line with {line:?} in:\n{stdout}"
                );
            }
        }
    };
    // No snapshot yet: the baseline serves every category it has.
    check(&["adult|baseline/adult.txt|[baseline]", "violence|[baseline]"]).await;

    let path_for_thread = path.clone();
    let mut daemon =
        tokio::task::spawn_blocking(move || crate::harness::Spawned::start(&path_for_thread))
            .await
            .expect("spawn");
    let addr = daemon.addr;
    wait_blocked(addr, FEED_ADULT).await;
    let blocked = |name: &'static str| async move {
        crate::harness::is_kidsafe_block(
            &crate::harness::ask(addr, name, hickory_proto::rr::RecordType::A).await,
        )
    };
    // The categories the feed does not carry still block from the baseline ...
    assert!(blocked("baseline-gore.example.test.").await, "violence");
    assert!(blocked("www.baseline-drugs.example.test.").await, "drugs");
    // ... and the ones it carries use the feed's data only.
    assert!(blocked("www.old-casino.example.test.").await, "gambling");
    assert!(
        !blocked("baseline-adult.example.test.").await,
        "the feed's adult list replaces the baseline's"
    );

    check(&[
        "adult|snapshots/|[feed]",
        "violence|baseline/violence.txt|[baseline]",
        "drugs|baseline/drogue.txt|[baseline]",
    ])
    .await;
    let status = kidsafe_async(&["feed", "status", "--config", path_str(&path)]).await;
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    for want in [
        "(feed)",
        "violence         not in the feed: baseline",
        "drugs            not in the feed: baseline",
    ] {
        assert!(status.contains(want), "{want:?} missing from:\n{status}");
    }
    assert!(
        !status.contains("adult            not in the feed"),
        "{status}"
    );

    let scrape = tokio::task::spawn_blocking(move || {
        let line = daemon.wait_for("serving Prometheus metrics", Duration::from_secs(5));
        let metrics: std::net::SocketAddr = line
            .split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .expect("metrics address");
        let scrape = crate::harness::http_get(metrics, "/metrics");
        daemon.stop();
        scrape
    })
    .await
    .expect("scrape");
    for want in [
        "kidsafe_list_source{category=\"adult\",source=\"feed\"} 1",
        "kidsafe_list_source{category=\"gambling\",source=\"feed\"} 1",
        "kidsafe_list_source{category=\"violence\",source=\"baseline\"} 1",
        "kidsafe_list_source{category=\"drugs\",source=\"baseline\"} 1",
    ] {
        assert!(scrape.contains(want), "{want:?} missing from:\n{scrape}");
    }
    assert!(
        !scrape.contains("kidsafe_list_source{category=\"adult\",source=\"baseline\"}"),
        "{scrape}"
    );
}

/// Runs the binary off the async runtime (the test's HTTP server must keep answering).
async fn kidsafe_async(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().expect("run"))
        .await
        .expect("join")
}

async fn wait_blocked(addr: std::net::SocketAddr, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let answer = crate::harness::ask(addr, name, hickory_proto::rr::RecordType::A).await;
        if crate::harness::is_kidsafe_block(&answer) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} not blocked within 15 s: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_list_source_is_fetched_leniently_and_a_bad_download_keeps_the_last_good_copy() {
    let feed = Feed::new(1).await;
    std::fs::write(
        feed.path("www/hosts"),
        "# a public hosts list\r\n127.0.0.1 localhost\r\n0.0.0.0 source-casino.example.test\r\n||bet.example.test^\r\n",
    )
    .expect("write");
    let text = format!(
        "{}\n[[lists.sources]]\ncategory = \"gambling\"\nurl = \"{}hosts\"\n",
        feed.config_text("127.0.0.1:9", ""),
        feed.server.url()
    );
    let path = feed.path("kidsafe.toml");
    std::fs::write(&path, &text).expect("write");
    let config = Config::from_source(&path, &text).expect("config");
    let source = config.sources[0].clone();
    let fetcher = feed.fetcher(&config);
    let state = config.server.state_dir.clone();
    let sources = kidsafe::feed::sources::update_source;
    assert!(sources(&state, &source, &fetcher).await.expect("fetched"));
    let blocks = |name: &str| {
        let runtime = kidsafe::reload::load(&path).expect("runtime");
        let bits = runtime.lists.store.lookup_str(name);
        bits != 0
    };
    assert!(blocks("source-casino.example.test"));
    assert!(blocks("www.bet.example.test"));
    // Unchanged: a 304, nothing rewritten.
    assert!(!sources(&state, &source, &fetcher).await.expect("checked"));
    // A captive portal's page is refused whole; the last good copy keeps blocking.
    feed.server.fault("hosts", Fault::CaptivePortal);
    let refused = sources(&state, &source, &fetcher).await;
    assert!(
        matches!(
            refused,
            Err(kidsafe::feed::sources::SourceError::NotAList { .. })
        ),
        "{refused:?}"
    );
    feed.server.fault("hosts", Fault::Status(500, None));
    assert!(sources(&state, &source, &fetcher).await.is_err());
    assert!(blocks("source-casino.example.test"));
}

#[tokio::test]
async fn https_feeds_are_verified_with_the_configured_roots_and_never_downgraded() {
    let feed = Feed::new(5).await;
    let (tls, ca_pem) = crate::encrypted::test_server_tls(b"http/1.1");
    let https = FeedServer::start_tls(feed.path("www"), tls).await;
    std::fs::write(feed.path("ca.pem"), ca_pem).expect("write ca");
    let with_roots = |url: &str, ca: bool| {
        let text = feed
            .config_text("127.0.0.1:9", "")
            .replace(&feed.server.url(), url)
            .replace(
                "timeout = \"1s\"",
                if ca {
                    "timeout = \"1s\"\ntls_ca_file = \"ca.pem\""
                } else {
                    "timeout = \"1s\""
                },
            );
        let path = feed.path("kidsafe.toml");
        std::fs::write(&path, &text).expect("write");
        Config::from_source(&path, &text).expect("config")
    };
    let feed_ref = &feed;
    let update = move |config: Config| async move {
        let settings = config.feed.clone().expect("[feed]");
        let fetcher = feed_ref.fetcher(&config);
        kidsafe::feed::run::update_once(&config, &settings, &fetcher, None).await
    };

    // A certificate from a CA the client was not told about: refused.
    let untrusted = update(with_roots(&https.url(), false)).await;
    assert_eq!(kind(&untrusted), "transport", "{untrusted:?}");
    assert!(feed.state().is_none());

    // With the school's CA in tls_ca_file: installed over HTTPS.
    let installed = update(with_roots(&https.url(), true)).await;
    assert!(
        matches!(installed, Ok(Outcome::Installed { sequence: 1, .. })),
        "{installed:?}"
    );
    assert_eq!(feed.blocked(FEED_ADULT).as_deref(), Some("adult"));

    // A redirect from https:// to http:// is refused, even though the content is signed.
    feed.publish_second();
    https.fault(
        "manifest.json",
        Fault::Redirect(format!("{}manifest.json", feed.server.url())),
    );
    let downgraded = update(with_roots(&https.url(), true)).await;
    assert_eq!(kind(&downgraded), "transport", "{downgraded:?}");
    assert!(
        downgraded
            .as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("https")),
        "{downgraded:?}"
    );
    assert_eq!(
        feed.server.hits("manifest.json"),
        0,
        "the http URL was never asked"
    );
    feed.assert_still_serving(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_update_refuses_a_state_dir_the_daemon_user_owns() {
    let feed = Feed::new(1).await;
    let config = feed.config();
    std::fs::create_dir_all(&config.server.state_dir).expect("mkdir");
    // systemd's DynamicUser owns the state directory; an admin runs the one-shot as root.
    if std::os::unix::fs::chown(&config.server.state_dir, Some(65534), Some(65534)).is_err() {
        eprintln!("not root: cannot give the state directory away; the refusal is not exercised");
        return;
    }
    let path = feed.path("kidsafe.toml");
    let out = kidsafe_async(&["feed", "update", "--config", path_str(&path)]).await;
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("systemctl kill -s USR1 kidsafe"), "{said}");
    assert_eq!(feed.server.hits("manifest.json"), 0, "nothing was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_while_staging_keeps_the_active_snapshot_and_leaves_no_staging_behind() {
    let feed = Feed::new(5).await;
    feed.install_first().await;
    // Version 2 rewrites adult as a 20 KB file.
    let mut adult = format!("{FEED_ADULT}\n");
    for i in 0..800 {
        adult.push_str(&format!("grown-{i}.adult.example\n"));
    }
    std::fs::write(feed.path("lists/adult.txt"), adult).expect("write");
    feed.publish();
    let config = feed.path("kidsafe.toml");
    let _ = feed.config(); // writes it
    // The one-shot update with a 4 KiB file-size limit: its writes fail as on a full disk
    // (EFBIG instead of ENOSPC; SIGXFSZ is ignored, so write() returns the error).
    let script = format!(
        "trap '' XFSZ; ulimit -f 4; exec {BIN} feed update --config {}",
        path_str(&config)
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash")
    })
    .await
    .expect("join");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot write adult.txt"), "{said}");
    feed.assert_still_serving(1);
    let staging: Vec<_> = std::fs::read_dir(feed.root().join("snapshots"))
        .expect("snapshots")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != "snap-1")
        .collect();
    assert!(staging.is_empty(), "left behind: {staging:?}");
    let attempts = kidsafe::feed::run::Attempts::read(&feed.root());
    assert_eq!(attempts.failures.get("io"), Some(&1), "{attempts:?}");
    // With room again, the same update installs.
    let result = feed.update().await;
    assert!(
        matches!(result, Ok(Outcome::Installed { sequence: 2, .. })),
        "{result:?}"
    );
    assert_eq!(
        feed.blocked("grown-799.adult.example").as_deref(),
        Some("adult")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sources_update_by_command_and_in_the_running_daemon() {
    let upstream = crate::harness::Upstream::start().await;
    let feed = Feed::new(1).await;
    std::fs::write(
        feed.path("www/hosts"),
        "# public list\n0.0.0.0 first-source.example.test\n",
    )
    .expect("write");
    let text = format!(
        "{}\n[[lists.sources]]\ncategory = \"gambling\"\nurl = \"{}hosts\"\n",
        feed.config_text(&upstream.addr.to_string(), ""),
        feed.server.url()
    );
    let path = feed.path("kidsafe.toml");
    std::fs::write(&path, &text).expect("write");
    let args = ["sources", "update", "--config", path_str(&path)];
    assert_eq!(
        kidsafe_async(&args).await.status.code(),
        Some(0),
        "a new copy"
    );
    assert_eq!(
        kidsafe_async(&args).await.status.code(),
        Some(4),
        "not modified"
    );
    feed.server.fault("hosts", Fault::CaptivePortal);
    let refused = kidsafe_async(&args).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a usable list"),
        "{refused:?}"
    );
    feed.server.heal();

    // The daemon fetches its sources at start (in a child process) and reloads.
    std::fs::write(
        feed.path("www/hosts"),
        "0.0.0.0 first-source.example.test\n0.0.0.0 daemon-source.example.test\n",
    )
    .expect("write");
    let path_for_thread = path.clone();
    let daemon =
        tokio::task::spawn_blocking(move || crate::harness::Spawned::start(&path_for_thread))
            .await
            .expect("spawn");
    wait_blocked(daemon.addr, "first-source.example.test").await;
    wait_blocked(daemon.addr, "daemon-source.example.test").await;

    // Issue 20: a copy installed by hand applies at once; it waited for SIGUSR1.
    std::fs::write(
        feed.path("www/hosts"),
        "0.0.0.0 first-source.example.test\n0.0.0.0 by-hand-source.example.test\n",
    )
    .expect("write");
    assert_eq!(kidsafe_async(&args).await.status.code(), Some(0));
    wait_blocked(daemon.addr, "by-hand-source.example.test").await;
    // And a source added by a config edit is fetched at once; it waited for the updater's next
    // wake-up, up to 5 minutes.
    std::fs::write(
        feed.path("www/more-hosts"),
        "0.0.0.0 live-edit-source.example.test\n",
    )
    .expect("write");
    std::fs::write(
        &path,
        format!(
            "{text}\n[[lists.sources]]\ncategory = \"adult\"\nurl = \"{}more-hosts\"\n",
            feed.server.url()
        ),
    )
    .expect("write");
    wait_blocked(daemon.addr, "live-edit-source.example.test").await;
    let log = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .expect("stop");
    assert!(
        !log.contains("source.example.test"),
        "a name in the log:\n{log}"
    );
}

/// The reference feed: `kidsafe feed build` of blocklists/feed-sources.toml (what the package
/// ships) with a fresh key, served on loopback, installed by the running daemon, which then
/// blocks a name of every block category the feed carries while the helplines resolve.
#[tokio::test]
async fn the_reference_feed_builds_from_the_shipped_lists_installs_and_blocks_every_category() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = repo.join("blocklists/feed-sources.toml");
    // feed-sources.toml names every shipped list file under its category (SOURCES.toml).
    let shipped: toml::Table = std::fs::read_to_string(repo.join("blocklists/SOURCES.toml"))
        .expect("SOURCES.toml")
        .parse()
        .expect("toml");
    let reference: toml::Table = std::fs::read_to_string(&sources)
        .expect("feed-sources.toml")
        .parse()
        .expect("toml");
    let pairs = |table: &toml::Table, files: &str| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = table["list"]
            .as_array()
            .expect("[[list]]")
            .iter()
            .flat_map(|l| {
                let category = l["category"].as_str().expect("category").to_string();
                let names: Vec<String> = match &l[files] {
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|f| f.as_str().expect("file").to_string())
                        .collect(),
                    v => vec![v.as_str().expect("file").to_string()],
                };
                names.into_iter().map(move |f| (category.clone(), f))
            })
            .collect();
        out.sort();
        out
    };
    let shipped_lists = pairs(&shipped, "file");
    assert_eq!(pairs(&reference, "files"), shipped_lists);
    let block: Vec<(String, String)> = shipped["list"]
        .as_array()
        .expect("[[list]]")
        .iter()
        .filter(|l| l["kind"].as_str() == Some("block"))
        .map(|l| {
            let category = l["category"].as_str().expect("category").to_string();
            let file = l["file"].as_str().expect("file");
            let text =
                std::fs::read_to_string(repo.join("blocklists").join(file)).expect("list file");
            let name = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#') && l.contains('.'))
                .expect("a name")
                .to_string();
            (category, name)
        })
        .collect();
    assert!(block.len() >= 14, "{block:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let (keys, www) = (dir.path().join("keys"), dir.path().join("www"));
    std::fs::create_dir_all(&www).expect("mkdir");
    kidsafe_async(&["feed", "keygen", "--out", path_str(&keys)]).await;
    let build = |out: PathBuf| {
        let (sources, keys) = (sources.clone(), keys.clone());
        async move {
            let built = kidsafe_async(&[
                "feed",
                "build",
                "--sources",
                path_str(&sources),
                "--key",
                path_str(&keys.join("feed.key")),
                "--out",
                path_str(&out),
            ])
            .await;
            let stdout = String::from_utf8_lossy(&built.stdout).to_string();
            assert!(
                built.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&built.stderr)
            );
            stdout
        }
    };
    let stdout = build(www.clone()).await;
    assert!(
        stdout.contains("published feed al.kidsafe.reference sequence 1"),
        "{stdout}"
    );
    for (category, _) in &block {
        assert!(
            stdout.contains(&format!("  {category} ")),
            "{category}: {stdout}"
        );
    }
    // Reproducible: a second build of the same inputs publishes the same list files.
    let again = dir.path().join("again");
    build(again.clone()).await;
    let files = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(root.join("by-hash/sha256"))
            .expect("by-hash")
            .map(|e| {
                let p = e.expect("entry").path();
                (
                    p.file_name().expect("name").to_string_lossy().to_string(),
                    std::fs::read(&p).expect("read"),
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(files(&www), files(&again), "two builds differ");

    let server = FeedServer::start(www).await;
    let upstream = crate::harness::Upstream::start().await;
    let key = std::fs::read_to_string(keys.join("feed.pub")).expect("feed.pub");
    let categories: Vec<String> = block.iter().map(|(c, _)| format!("{c:?}")).collect();
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
allow_clients = ["127.0.0.0/8"]
state_dir = "{state}"
threads = 1

[upstream]
servers = ["{upstream}"]
timeout = "1s"

[feed]
url = "{url}"
public_key = "{key}"
timeout = "10s"

[defaults]
profile = "kids"

[profiles.kids]
block = [{categories}]
"#,
        state = path_str(&dir.path().join("state")),
        upstream = upstream.addr,
        url = server.url(),
        key = key.lines().nth(1).expect("key line").trim(),
        categories = categories.join(", "),
    );
    let path = dir.path().join("kidsafe.toml");
    std::fs::write(&path, config).expect("write");
    let daemon = tokio::task::spawn_blocking(move || crate::harness::Spawned::start(&path))
        .await
        .expect("spawn");
    let addr = daemon.addr;
    wait_blocked(addr, &block[0].1).await;
    for (category, name) in &block {
        let answer = crate::harness::ask(addr, name, hickory_proto::rr::RecordType::A).await;
        assert!(
            crate::harness::is_kidsafe_block(&answer),
            "{category}: {name} not blocked: {answer:?}"
        );
    }
    // The helplines are forwarded: the test upstream serves only example.test, so it answers
    // them as it answers any other forwarded name outside its zone (REFUSED), not a block.
    let outside = crate::harness::ask(addr, "unlisted.al.", hickory_proto::rr::RecordType::A)
        .await
        .metadata
        .response_code;
    for helpline in ["alo116.al.", "www.isigurt.al."] {
        let answer = crate::harness::ask(addr, helpline, hickory_proto::rr::RecordType::A).await;
        assert!(
            !crate::harness::is_kidsafe_block(&answer) && answer.metadata.response_code == outside,
            "{helpline}: {answer:?}"
        );
    }
    tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .expect("stop");
}
