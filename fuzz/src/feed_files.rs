//! Target `feed_files`: the input is what a hostile mirror could serve as a category file, a
//! delta, a manifest or its signature. The first byte picks which; the rest is the file.
//!
//! Asserted:
//! - `canonical::check_list` accepts a file only if it is exactly what `write_list` writes for
//!   its own entries (canonical means one spelling), and its count is the entries listed;
//! - `apply_delta` on a fixed, valid version-1 list either refuses the delta or yields a file
//!   `check_list` accepts as version 2;
//! - `manifest::parse_verified` and `sign::verify` refuse anything not signed by the pinned key
//!   (the fuzzer cannot forge Ed25519), without panicking on any bytes;
//! - `PublicKey::from_base64` never panics.

use kidsafe::feed::sign::{self, PublicKey, SecretKey};
use kidsafe::feed::{canonical, manifest};

const BASE: &[u8] = b"#nfeed/1 category=adult version=1 entries=3\na.example\nb.example\nc.example\n#end entries=3\n";

/// A fixed key pair, so signatures in the seeds verify and the fuzzer mutates real ones.
fn pinned() -> PublicKey {
    SecretKey::from_file_text(SEED_KEY)
        .expect("the seed key parses")
        .public_key()
}

/// An unencrypted minisign secret key used only by this target and its seeds.
pub const SEED_KEY: &str = include_str!("feed_files.key");

/// Runs the checks on one input; panics on a violation.
pub fn check(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(entries) = canonical::check_list(body, "adult", 1) {
                let names: Vec<String> =
                    canonical::list_entries(body).map(str::to_string).collect();
                assert_eq!(names.len() as u64, entries, "count and entries disagree");
                let again = canonical::write_list("adult", 1, &names);
                assert_eq!(
                    again, body,
                    "an accepted file is not the canonical spelling"
                );
            }
        }
        1 => {
            if let Ok(next) = canonical::apply_delta(BASE, body, "adult", 1, 2) {
                canonical::check_list(&next, "adult", 2)
                    .expect("a delta's result must be a canonical version-2 file");
            }
        }
        2 => {
            // The manifest is the input; the signature is the input's own last line(s) if it
            // has a NUL separator, else nothing: either way it must not verify unless signed.
            let (manifest_bytes, sig) = match body.iter().position(|&b| b == 0) {
                Some(i) => (&body[..i], &body[i + 1..]),
                None => (body, &b""[..]),
            };
            let keys = [pinned()];
            if let Ok(m) = manifest::parse_verified(manifest_bytes, sig, &keys, None) {
                // Only possible for bytes the seed key signed: the trusted comment must hold.
                let comment = manifest::trusted_comment(&m.feed_id, m.sequence, m.expires_at);
                let verified = sign::verify(&keys, manifest_bytes, sig).expect("verified once");
                assert_eq!(verified, comment);
            }
        }
        _ => {
            let _ = sign::verify(&[pinned()], b"data", body);
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = PublicKey::from_base64(text);
                let _ = PublicKey::from_file_text(text);
                let _ = SecretKey::from_file_text(text);
            }
        }
    }
}
