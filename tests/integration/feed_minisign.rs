//! Interop with the real `minisign` tool (Debian's package): keys and signatures it makes
//! verify in kidsafe, and kidsafe's verify with `minisign -V`. Without the tool the tests fail
//! on purpose (CI installs it in .ci/run): interop is a requirement, not a nicety.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kidsafe::feed::manifest::{self, Manifest};
use kidsafe::feed::{PublicKey, SecretKey, sign};

const BIN: &str = env!("CARGO_BIN_EXE_kidsafe");

/// Runs `minisign` with `args` in `dir`, no stdin (so it can never wait for a password).
fn minisign(dir: &Path, args: &[&str]) -> Output {
    match Command::new("minisign")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run minisign ({e}): install it (`apt-get install -y minisign`); \
             .ci/run installs it for CI"
        ),
    }
}

fn ok(out: Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

fn kidsafe(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kidsafe");
    ok(out, &format!("kidsafe {args:?}"))
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).expect(name)
}

fn write_lists(dir: &Path) {
    std::fs::create_dir_all(dir.join("lists")).expect("mkdir lists");
    std::fs::write(
        dir.join("lists/adult.txt"),
        "0.0.0.0 ads.example\nsub.example.net\n",
    )
    .expect("write adult.txt");
}

/// minisign's keys and signatures, checked by kidsafe.
#[test]
fn minisign_keys_and_signatures_verify_in_kidsafe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        minisign(d, &["-G", "-W", "-p", "ms.pub", "-s", "ms.key"]),
        "minisign -G -W",
    );
    let public = PublicKey::from_file_text(&read(d, "ms.pub")).unwrap();
    // The id minisign prints is ours (minisign prints it without leading zeros).
    assert!(
        read(d, "ms.pub").contains(public.key_id().trim_start_matches('0')),
        "{}",
        read(d, "ms.pub")
    );
    let secret = SecretKey::from_file_text(&read(d, "ms.key")).unwrap();
    assert_eq!(secret.public_key(), public);

    // A signature minisign makes over arbitrary bytes.
    std::fs::write(d.join("data"), b"any bytes\x00\xff").unwrap();
    ok(
        minisign(
            d,
            &[
                "-S",
                "-s",
                "ms.key",
                "-m",
                "data",
                "-t",
                "a trusted comment",
            ],
        ),
        "minisign -S",
    );
    let comment = sign::verify(
        std::slice::from_ref(&public),
        b"any bytes\x00\xff",
        read(d, "data.minisig").as_bytes(),
    )
    .unwrap();
    assert_eq!(comment, "a trusted comment");
    let err = sign::verify(
        std::slice::from_ref(&public),
        b"any bytes\x00\xfe",
        read(d, "data.minisig").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "bad_signature");

    // minisign's legacy (non-prehashed `Ed`) format verifies too.
    ok(
        minisign(
            d,
            &[
                "-S",
                "-l",
                "-s",
                "ms.key",
                "-m",
                "data",
                "-x",
                "legacy.minisig",
                "-t",
                "legacy",
            ],
        ),
        "minisign -S -l",
    );
    // base64 of "Ed" starts "RW"; of "ED" (prehashed), "RU".
    let legacy = read(d, "legacy.minisig");
    assert!(legacy.lines().nth(1).unwrap().starts_with("RW"), "{legacy}");
    let comment = sign::verify(
        std::slice::from_ref(&public),
        b"any bytes\x00\xff",
        read(d, "legacy.minisig").as_bytes(),
    )
    .unwrap();
    assert_eq!(comment, "legacy");

    // A feed published with minisign's key, then re-signed by minisign itself with the
    // trusted comment the docs tell an authority to use.
    write_lists(d);
    kidsafe(
        d,
        &[
            "feed",
            "publish",
            "--key",
            "ms.key",
            "--lists",
            "lists",
            "--out",
            "web",
            "--feed-id",
            "xx.test",
        ],
    );
    let json = std::fs::read(d.join("web/manifest.json")).unwrap();
    let fields: Manifest = serde_json::from_slice(&json).unwrap();
    let comment = manifest::trusted_comment(&fields.feed_id, fields.sequence, fields.expires_at);
    std::fs::remove_file(d.join("web/manifest.json.minisig")).unwrap();
    ok(
        minisign(
            d,
            &[
                "-S",
                "-s",
                "ms.key",
                "-m",
                "web/manifest.json",
                "-t",
                &comment,
            ],
        ),
        "minisign -S manifest",
    );
    let sig = std::fs::read(d.join("web/manifest.json.minisig")).unwrap();
    let parsed =
        manifest::parse_verified(&json, &sig, std::slice::from_ref(&public), Some("xx.test"))
            .unwrap();
    assert_eq!(parsed.categories[0].entries, 2);
}

/// kidsafe's keys and signatures, checked by minisign.
#[test]
fn kidsafe_keys_and_signatures_verify_in_minisign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keygen = kidsafe(d, &["feed", "keygen", "--out", "keys"]);
    let public = PublicKey::from_file_text(&read(d, "keys/feed.pub")).unwrap();
    assert!(keygen.contains(&public.to_base64()), "{keygen}");
    assert!(keygen.contains("[feed] public_key"), "{keygen}");
    // Issue 20: a second keygen said "error: bad key: keys/feed.key already exists".
    let again = Command::new(BIN)
        .current_dir(d)
        .args(["feed", "keygen", "--out", "keys"])
        .output()
        .expect("run kidsafe");
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "error: keys/feed.key already exists; keygen never replaces a key, because clients \
         accept only the public keys in their config. To replace it on purpose, run `kidsafe \
         feed keygen --out NEW_DIR` and rotate (docs/feed.md, \"Rotating the key\"): add the \
         new feed.pub to the clients' [feed] public_key, wait until they have it, then publish \
         with the new key\n"
    );
    assert_eq!(
        PublicKey::from_file_text(&read(d, "keys/feed.pub")).unwrap(),
        public
    );

    write_lists(d);
    kidsafe(
        d,
        &[
            "feed",
            "publish",
            "--key",
            "keys/feed.key",
            "--lists",
            "lists",
            "--out",
            "web",
            "--feed-id",
            "xx.test",
        ],
    );
    // With the public key file and with the one-line key.
    let out = ok(
        minisign(d, &["-V", "-p", "keys/feed.pub", "-m", "web/manifest.json"]),
        "minisign -V -p",
    );
    assert!(
        out.contains("Trusted comment: nfeed feed=xx.test seq=1 expires="),
        "{out}"
    );
    ok(
        minisign(
            d,
            &["-V", "-P", &public.to_base64(), "-m", "web/manifest.json"],
        ),
        "minisign -V -P",
    );
    // Ours are prehashed (`ED`): minisign's -H demands exactly that.
    ok(
        minisign(
            d,
            &["-V", "-H", "-p", "keys/feed.pub", "-m", "web/manifest.json"],
        ),
        "minisign -V -H",
    );
    // A tampered manifest fails in minisign too.
    let mut json = std::fs::read(d.join("web/manifest.json")).unwrap();
    json.push(b' ');
    std::fs::write(d.join("web/manifest.json"), &json).unwrap();
    let out = minisign(d, &["-V", "-p", "keys/feed.pub", "-m", "web/manifest.json"]);
    assert!(
        !out.status.success(),
        "minisign accepted a tampered manifest"
    );

    // minisign signs with kidsafe's secret key file (which carries a real checksum).
    std::fs::write(d.join("data"), b"bytes").unwrap();
    ok(
        minisign(
            d,
            &[
                "-S",
                "-s",
                "keys/feed.key",
                "-m",
                "data",
                "-t",
                "from minisign",
            ],
        ),
        "minisign -S with kidsafe's key",
    );
    let comment = sign::verify(&[public], b"bytes", read(d, "data.minisig").as_bytes()).unwrap();
    assert_eq!(comment, "from minisign");
}
