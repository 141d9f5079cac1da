use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

fn sources(dir: &Path, extra: &str) -> PathBuf {
    write(
        dir,
        "adult.txt",
        "# upstream adult\n0.0.0.0 Porn.Example\nwww.alo116.al\nal\n",
    );
    write(
        dir,
        "malware.txt",
        "roblox.com\napi.roblox.com\nbad.example\n",
    );
    write(dir, "kids.txt", "alo116.al\nkids.example\n");
    let path = dir.join("sources.toml");
    write(
        dir,
        "sources.toml",
        &format!(
            r#"feed_id = "xx.test"
[[list]]
category = "porn"
files = ["adult.txt"]
[[list]]
category = "malware"
files = ["malware.txt"]
[[list]]
category = "child"
files = ["kids.txt"]
{extra}"#
        ),
    );
    path
}

#[test]
fn corrections_remove_a_name_with_those_below_it_and_add_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sources(
        dir.path(),
        r#"[[remove]]
category = "malware"
names = ["Roblox.com"]
reason = "games, not malware"
[[add]]
category = "malware"
names = ["new-bad.example"]
reason = "seen in the wild"
"#,
    );
    let built = build_lists(&path).expect("build");
    assert_eq!(built.lists["malware"], ["bad.example", "new-bad.example"]);
    assert!(
        built.corrections[0].contains("malware: removed roblox.com (2 names)")
            && built.corrections[0].contains("games, not malware"),
        "{:?}",
        built.corrections
    );
    assert_eq!(built.feed_id.as_deref(), Some("xx.test"));
}

#[test]
fn helpline_names_above_and_below_are_dropped_from_block_categories_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sources(
        dir.path(),
        r#"[never_block]
names = ["bad.example"]
reason = "a local helpline"
"#,
    );
    let built = build_lists(&path).expect("build");
    // `al` sits above alo116.al, www.alo116.al below it: both go; the adult name stays.
    assert_eq!(built.lists["adult"], ["porn.example"]);
    assert_eq!(built.lists["malware"], ["api.roblox.com", "roblox.com"]);
    // kids is an allow-type category: a helpline may be in it.
    assert_eq!(built.lists["kids"], ["alo116.al", "kids.example"]);
    let dropped = built.helplines_dropped.join("\n");
    for want in [
        "adult: dropped al (above the helpline alo116.al",
        "adult: dropped www.alo116.al (below the helpline alo116.al",
        "malware: dropped bad.example (a helpline",
    ] {
        assert!(dropped.contains(want), "{want:?} missing from {dropped}");
    }
}

#[test]
fn a_missing_or_empty_source_fails_the_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sources(dir.path(), "");
    std::fs::remove_file(dir.path().join("malware.txt")).expect("rm");
    let err = build_lists(&path).expect_err("missing file");
    assert!(matches!(err, BuildError::Input { .. }), "{err}");
    assert!(err.to_string().contains("nothing was published"), "{err}");
    write(dir.path(), "malware.txt", "# gone upstream\n");
    let err = build_lists(&path).expect_err("empty file");
    assert!(err.to_string().contains("no names"), "{err}");
}

#[test]
fn corrections_need_a_reason_and_a_listed_category() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (extra, want) in [
        (
            "[[remove]]\ncategory = \"malware\"\nnames = [\"x.example\"]\nreason = \" \"\n",
            "without a reason",
        ),
        (
            "[[add]]\ncategory = \"gambling\"\nnames = [\"x.example\"]\nreason = \"r\"\n",
            "which no [[list]] fills",
        ),
        (
            "[[add]]\ncategory = \"malware\"\nnames = [\"not a name\"]\nreason = \"r\"\n",
            "not a domain name",
        ),
    ] {
        let path = sources(dir.path(), extra);
        let err = build_lists(&path).expect_err(want);
        assert!(err.to_string().contains(want), "{want:?}: {err}");
    }
}

#[test]
fn two_builds_of_the_same_inputs_publish_identical_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sources(dir.path(), "");
    let key = SecretKey::generate().expect("key");
    let mut manifests = Vec::new();
    for (out, secs) in [("a", 1_800_000_000), ("b", 1_800_000_100)] {
        let summary = build(
            &key,
            &BuildOptions {
                sources: path.clone(),
                out_dir: dir.path().join(out),
                feed_id: None,
                expires_in: std::time::Duration::from_secs(86_400),
                min_poll: std::time::Duration::from_secs(3_600),
                now: jiff::Timestamp::from_second(secs).expect("time"),
            },
        )
        .expect("build");
        assert_eq!(summary.published.feed_id, "xx.test");
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir.path().join(out).join("by-hash/sha256")).expect("dir") {
            let p = entry.expect("entry").path();
            files.insert(
                p.file_name().expect("name").to_owned(),
                std::fs::read(&p).expect("read"),
            );
        }
        let manifest =
            std::fs::read_to_string(dir.path().join(out).join("manifest.json")).expect("manifest");
        manifests.push((files, manifest));
    }
    assert_eq!(manifests[0].0, manifests[1].0, "list files differ");
    // The manifests differ only in the timestamps.
    let strip = |m: &str| {
        m.lines()
            .filter(|l| !l.contains("published_at") && !l.contains("expires_at"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&manifests[0].1), strip(&manifests[1].1));
}
