use super::*;

fn opts(lists: &Path, out: &Path, feed_id: Option<&str>, now: &str) -> PublishOptions {
    PublishOptions {
        lists_dir: lists.to_path_buf(),
        out_dir: out.to_path_buf(),
        feed_id: feed_id.map(String::from),
        expires_in: std::time::Duration::from_secs(7 * 86_400),
        min_poll: std::time::Duration::from_secs(3600),
        encoding: None,
        now: now.parse().unwrap(),
    }
}

fn load(out: &Path, key: &SecretKey) -> Manifest {
    let json = std::fs::read(out.join(MANIFEST_FILE)).unwrap();
    let sig = std::fs::read(out.join(SIGNATURE_FILE)).unwrap();
    manifest::parse_verified(&json, &sig, &[key.public_key()], Some("xx.test")).unwrap()
}

fn read_file(out: &Path, file: &FileRef) -> Vec<u8> {
    let raw = std::fs::read(out.join(&file.path)).unwrap();
    let bytes = match file.encoding {
        Encoding::Identity => raw,
        Encoding::Gzip => {
            assert_eq!(Some(raw.len() as u64), file.transfer_size);
            gunzip(&raw, file.size, &file.path).unwrap()
        }
    };
    assert_eq!(sha256_hex(&bytes), file.sha256);
    assert_eq!(bytes.len() as u64, file.size);
    bytes
}

#[test]
fn publish_then_republish_then_change() {
    let dir = tempfile::tempdir().unwrap();
    let (lists, out) = (dir.path().join("lists"), dir.path().join("out"));
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(
        lists.join("porn.txt"),
        "# hosts\r\n0.0.0.0 B.example\r\n0.0.0.0 a.example\r\n127.0.0.1 localhost\r\n",
    )
    .unwrap();
    std::fs::write(lists.join("gambling.txt"), "||bet.example^\n").unwrap();
    std::fs::write(lists.join("allow.txt"), "school.example\n").unwrap();
    std::fs::write(lists.join("README"), "not a list").unwrap();
    let key = SecretKey::generate().unwrap();

    // The first publication needs a feed id.
    let err = publish(&key, &opts(&lists, &out, None, "2026-09-13T04:00:00Z")).unwrap_err();
    assert!(err.to_string().contains("--feed-id"), "{err}");

    let s1 = publish(
        &key,
        &opts(&lists, &out, Some("xx.test"), "2026-09-13T04:00:00.5Z"),
    )
    .unwrap();
    assert_eq!(s1.sequence, 1);
    let m1 = load(&out, &key);
    assert_eq!(m1.sequence, 1);
    assert_eq!(m1.published_at.to_string(), "2026-09-13T04:00:00Z");
    assert_eq!(m1.expires_at.to_string(), "2026-09-20T04:00:00Z");
    assert_eq!(m1.min_poll_seconds, 3600);
    let ids: Vec<&str> = m1.categories.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["adult", "gambling"]); // porn.txt is the adult category
    let adult = &m1.categories[0];
    assert_eq!((adult.version, adult.entries), (1, 2));
    assert_eq!(
        read_file(&out, &adult.full),
        b"#nfeed/1 category=adult version=1 entries=2\na.example\nb.example\n#end entries=2\n"
    );
    let allow = m1.allow.as_ref().unwrap();
    assert_eq!((allow.id.as_str(), allow.entries), ("allow", 1));
    assert_eq!(s1.lists[0].skipped, 1); // localhost

    // Same lists: a new sequence, nothing else changes.
    let s2 = publish(&key, &opts(&lists, &out, None, "2026-09-14T04:00:00Z")).unwrap();
    let m2 = load(&out, &key);
    assert_eq!(m2.sequence, 2);
    assert_eq!(m2.categories, m1.categories);
    assert!(s2.lists.iter().all(|l| !l.changed));

    // adult changes: version 2 with a delta from 1 that rebuilds the full file.
    // (A delta is only published when smaller than the full file: make the list longer.)
    let many: String = (0..50).map(|i| format!("n{i}.example\n")).collect();
    std::fs::write(
        lists.join("porn.txt"),
        format!("{many}a.example\nb.example\n"),
    )
    .unwrap();
    publish(&key, &opts(&lists, &out, None, "2026-09-14T05:00:00Z")).unwrap();
    let m2 = load(&out, &key);
    std::fs::write(
        lists.join("porn.txt"),
        format!("{many}a.example\nc.example\n"),
    )
    .unwrap();
    publish(&key, &opts(&lists, &out, None, "2026-09-15T04:00:00Z")).unwrap();
    let m3 = load(&out, &key);
    let (old, new) = (&m2.categories[0], &m3.categories[0]);
    assert_eq!(new.version, old.version + 1);
    assert_eq!(m3.categories[1], m2.categories[1]); // gambling untouched
    assert_eq!(new.deltas.len(), 1);
    assert_eq!(new.deltas[0].from_version, old.version);
    let delta_ref = &new.deltas[0];
    let delta = read_file(
        &out,
        &FileRef {
            path: delta_ref.path.clone(),
            sha256: delta_ref.sha256.clone(),
            size: delta_ref.size,
            encoding: delta_ref.encoding,
            transfer_size: delta_ref.transfer_size,
        },
    );
    let rebuilt =
        canonical::apply_delta(&read_file(&out, &old.full), &delta, "adult", 2, 3).unwrap();
    assert_eq!(sha256_hex(&rebuilt), new.full.sha256);

    // A clock before the previous publication is refused.
    let err = publish(&key, &opts(&lists, &out, None, "2026-09-01T00:00:00Z")).unwrap_err();
    assert!(err.to_string().contains("before the previous"), "{err}");

    // Another key: published, with a warning.
    let other = SecretKey::generate().unwrap();
    let s4 = publish(&other, &opts(&lists, &out, None, "2026-09-16T04:00:00Z")).unwrap();
    assert!(
        s4.warnings
            .iter()
            .any(|w| w.contains(&key.public_key().key_id())),
        "{:?}",
        s4.warnings
    );
}

#[test]
fn gzip_encoding_is_decoded_hash_plus_transfer_size() {
    let dir = tempfile::tempdir().unwrap();
    let (lists, out) = (dir.path().join("lists"), dir.path().join("out"));
    std::fs::create_dir_all(&lists).unwrap();
    let names: String = (0..5000).map(|i| format!("host{i}.example\n")).collect();
    std::fs::write(lists.join("adult.txt"), &names).unwrap();
    let key = SecretKey::generate().unwrap();
    let mut o = opts(&lists, &out, Some("xx.test"), "2026-09-13T04:00:00Z");
    o.encoding = Some(Encoding::Gzip);
    publish(&key, &o).unwrap();
    let m = load(&out, &key);
    let full = &m.categories[0].full;
    assert_eq!(full.encoding, Encoding::Gzip);
    assert!(full.path.ends_with(".gz"));
    assert!(full.transfer_size.unwrap() < full.size / 2);
    let bytes = read_file(&out, full);
    assert_eq!(canonical::check_list(&bytes, "adult", 1).unwrap(), 5000);
    // Decompression stops at the declared size.
    let raw = std::fs::read(out.join(&full.path)).unwrap();
    let err = gunzip(&raw, full.size - 1, &full.path).unwrap_err();
    assert_eq!(err.kind(), "size_exceeded");
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let public = keygen(dir.path()).unwrap();
    let secret_path = dir.path().join(SECRET_KEY_FILE);
    let mode = std::fs::metadata(&secret_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret =
        SecretKey::from_file_text(&std::fs::read_to_string(&secret_path).unwrap()).unwrap();
    assert_eq!(secret.public_key(), public);
    let read_pub = std::fs::read_to_string(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
    assert_eq!(PublicKey::from_file_text(&read_pub).unwrap(), public);
    let err = keygen(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} already exists; keygen never replaces a key, because clients accept only the \
             public keys in their config. To replace it on purpose, run `kidsafe feed keygen \
             --out NEW_DIR` and rotate (docs/feed.md, \"Rotating the key\"): add the new \
             feed.pub to the clients' [feed] public_key, wait until they have it, then publish \
             with the new key",
            secret_path.display()
        )
    );
    assert_eq!(err.kind(), "key_exists");
    assert_eq!(
        std::fs::read_to_string(&secret_path).unwrap(),
        secret.to_file_text()
    );
}
