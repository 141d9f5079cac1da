//! `manifest.json`: the signed index of a feed. [`parse_verified`] is the only way in: it checks
//! the signature over the exact bytes before parsing anything, then every field a client relies
//! on, so a [`Manifest`] value is always one an authority signed and that makes sense.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::FeedError;
use super::sign::{PublicKey, verify_with_key};

/// The `format` of this version of the manifest.
pub const FORMAT: &str = "nfeed-manifest/1";

/// The hard cap on any one file of a feed, decoded or on the wire: 128 MiB.
pub const MAX_FILE_SIZE: u64 = 128 << 20;

/// The longest `min_poll_seconds` a manifest may ask for: a day.
pub const MAX_MIN_POLL_SECONDS: u64 = 86_400;

/// The most categories a feed may carry: the category bitset's 64 bits, less room for the
/// built-in vocabulary and local lists beside the feed's.
pub const MAX_CATEGORIES: usize = 32;

/// The signed index of a feed (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`] (`"nfeed-manifest/1"`).
    pub format: String,
    /// The feed's identity, e.g. `xx.gov.parental`; a client only accepts its configured one.
    pub feed_id: String,
    /// Increases with every publication; a client never goes back (rollback protection).
    pub sequence: u64,
    /// When it was published.
    pub published_at: jiff::Timestamp,
    /// After this, a client with a plausible clock refuses it (freeze protection).
    pub expires_at: jiff::Timestamp,
    /// The shortest poll interval the authority wants clients to use, in seconds.
    pub min_poll_seconds: u64,
    /// The id of the key that signs this manifest (16 upper-case hex digits).
    pub key_id: String,
    /// The block categories, each with its full file and deltas.
    pub categories: Vec<CategoryFile>,
    /// The feed's allow list, if it has one (same file format as a category).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<CategoryFile>,
}

/// One list of the feed: a category, or the allow list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryFile {
    /// The canonical category name (`adult`, `gambling`, …), as in the config.
    pub id: String,
    /// A human title; may be empty.
    #[serde(default)]
    pub title: String,
    /// The list's own version, bumped only when its content changes.
    pub version: u64,
    /// The number of names in the list.
    pub entries: u64,
    /// The full canonical file of this version.
    pub full: FileRef,
    /// Deltas from earlier versions to this one (may be empty).
    #[serde(default)]
    pub deltas: Vec<DeltaRef>,
}

/// A full list file in `by-hash/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Relative path: `by-hash/sha256/<sha256>`, plus `.gz` when gzip-encoded.
    pub path: String,
    /// SHA-256 of the decoded (canonical) bytes, lower-case hex.
    pub sha256: String,
    /// Size of the decoded bytes.
    pub size: u64,
    /// How the file at `path` is encoded for transfer.
    pub encoding: Encoding,
    /// Size of the file at `path` when it is compressed (required for gzip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_size: Option<u64>,
}

/// A delta file in `by-hash/`, from `from_version` to its category's `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaRef {
    /// The version this delta applies to.
    pub from_version: u64,
    /// Relative path: `by-hash/sha256/<sha256>`, plus `.gz` when gzip-encoded.
    pub path: String,
    /// SHA-256 of the decoded delta bytes, lower-case hex.
    pub sha256: String,
    /// Size of the decoded delta bytes.
    pub size: u64,
    /// How the file at `path` is encoded for transfer.
    pub encoding: Encoding,
    /// Size of the file at `path` when it is compressed (required for gzip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_size: Option<u64>,
}

/// Transfer encoding of a file in `by-hash/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The file is the canonical bytes.
    Identity,
    /// The file is the canonical bytes, gzip-compressed.
    Gzip,
}

/// The trusted comment a manifest's signature must carry.
pub fn trusted_comment(feed_id: &str, sequence: u64, expires_at: jiff::Timestamp) -> String {
    format!(
        "nfeed feed={feed_id} seq={sequence} expires={}",
        expires_at.as_second()
    )
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The `by-hash` path of a file with this decoded hash and encoding.
pub fn by_hash_path(sha256: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Identity => format!("by-hash/sha256/{sha256}"),
        Encoding::Gzip => format!("by-hash/sha256/{sha256}.gz"),
    }
}

/// Just the format, read leniently so that a newer format is reported as such rather than as
/// an unknown field.
#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

/// Verifies `minisig` over the exact `manifest` bytes with the pinned `keys`, then parses and
/// checks the manifest: format, `feed_id` (when given), `key_id` = the signing key, the trusted
/// comment, category ids, hashes, paths, sizes and dates.
pub fn parse_verified(
    manifest: &[u8],
    minisig: &[u8],
    keys: &[PublicKey],
    feed_id: Option<&str>,
) -> Result<Manifest, FeedError> {
    let (comment, signer) = verify_with_key(keys, manifest, minisig)?;
    let format: FormatOnly =
        serde_json::from_slice(manifest).map_err(|e| FeedError::BadManifestJson(e.to_string()))?;
    if format.format != FORMAT {
        return Err(FeedError::UnknownFormat(format.format));
    }
    let parsed: Manifest =
        serde_json::from_slice(manifest).map_err(|e| FeedError::BadManifestJson(e.to_string()))?;
    if let Some(want) = feed_id
        && parsed.feed_id != want
    {
        return Err(FeedError::WrongFeed {
            want: want.to_string(),
            got: parsed.feed_id,
        });
    }
    let signer_id = signer.key_id();
    if parsed.key_id != signer_id {
        return Err(FeedError::KeyIdMismatch {
            manifest: parsed.key_id,
            signer: signer_id,
        });
    }
    let want = trusted_comment(&parsed.feed_id, parsed.sequence, parsed.expires_at);
    if comment != want {
        return Err(FeedError::TrustedCommentMismatch { want, got: comment });
    }
    parsed.validate()?;
    Ok(parsed)
}

impl Manifest {
    /// Checks everything but the signature (which [`parse_verified`] checks first); the
    /// publisher runs it before signing.
    pub fn validate(&self) -> Result<(), FeedError> {
        let bad = |msg: String| Err(FeedError::BadManifest(msg));
        if self.format != FORMAT {
            return Err(FeedError::UnknownFormat(self.format.clone()));
        }
        if !is_valid_feed_id(&self.feed_id) {
            return bad(format!(
                "feed_id {:?} must be 1-100 bytes of a-z, 0-9, '.', '-', '_'",
                self.feed_id
            ));
        }
        if self.published_at >= self.expires_at {
            return bad(format!(
                "published_at {} is not before expires_at {}",
                self.published_at, self.expires_at
            ));
        }
        if self.key_id.len() != 16
            || !self
                .key_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        {
            return bad(format!(
                "key_id {:?} is not 16 upper-case hex digits",
                self.key_id
            ));
        }
        if self.min_poll_seconds > MAX_MIN_POLL_SECONDS {
            return bad(format!(
                "min_poll_seconds {} is more than a day ({MAX_MIN_POLL_SECONDS}): clients would \
                 stop checking for updates",
                self.min_poll_seconds
            ));
        }
        // One bitset holds every category a runtime knows, the built-in ones included: a
        // manifest that could never be built is refused here, not at every reload after it.
        if self.categories.len() > MAX_CATEGORIES {
            return bad(format!(
                "{} categories, more than the {MAX_CATEGORIES} a feed may carry",
                self.categories.len()
            ));
        }
        let mut seen = HashSet::new();
        for (i, list) in self.categories.iter().enumerate() {
            check_list_ref(list, &format!("categories[{i}]"), &mut seen)?;
        }
        if let Some(allow) = &self.allow {
            check_list_ref(allow, "allow", &mut seen)?;
        }
        Ok(())
    }
}

impl Manifest {
    /// Every list: the categories, then the allow list.
    pub fn lists(&self) -> impl Iterator<Item = &CategoryFile> {
        self.categories.iter().chain(self.allow.as_ref())
    }
}

impl CategoryFile {
    /// Checks the decoded bytes of this list's full file: not over its size, its SHA-256 (so a
    /// truncated file is a hash mismatch), the canonical rules
    /// with this id and version, and the entry count against header, trailer and manifest.
    /// Returns the number of entries.
    pub fn check_full(&self, bytes: &[u8]) -> Result<u64, FeedError> {
        if bytes.len() as u64 > self.full.size {
            return Err(FeedError::SizeExceeded {
                path: self.full.path.clone(),
                limit: self.full.size,
            });
        }
        let actual = sha256_hex(bytes);
        if actual != self.full.sha256 {
            return Err(FeedError::HashMismatch {
                path: self.full.path.clone(),
                expected: self.full.sha256.clone(),
                actual,
            });
        }
        let entries = super::canonical::check_list(bytes, &self.id, self.version)?;
        if entries != self.entries {
            return Err(FeedError::CountMismatch {
                what: format!("list {:?} manifest", self.id),
                expected: self.entries,
                actual: entries,
            });
        }
        Ok(entries)
    }
}

fn is_valid_feed_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

fn check_list_ref<'a>(
    list: &'a CategoryFile,
    at: &str,
    seen: &mut HashSet<&'a str>,
) -> Result<(), FeedError> {
    let bad = |msg: String| Err(FeedError::BadManifest(msg));
    if !crate::category::is_valid_name(&list.id)
        || crate::category::canonical_name(&list.id) != list.id
    {
        return bad(format!(
            "{at}.id {:?} is not a canonical category name (a-z, 0-9, '_', '-', no synonyms)",
            list.id
        ));
    }
    if !seen.insert(&list.id) {
        return bad(format!("{at}.id {:?} appears twice", list.id));
    }
    check_file(
        &format!("{at}.full"),
        &list.full.path,
        &list.full.sha256,
        list.full.size,
        list.full.encoding,
        list.full.transfer_size,
    )?;
    let mut froms = HashSet::new();
    for (j, delta) in list.deltas.iter().enumerate() {
        let at = format!("{at}.deltas[{j}]");
        if delta.from_version >= list.version {
            return bad(format!(
                "{at}.from_version {} is not below version {}",
                delta.from_version, list.version
            ));
        }
        if !froms.insert(delta.from_version) {
            return bad(format!(
                "{at}.from_version {} appears twice",
                delta.from_version
            ));
        }
        check_file(
            &at,
            &delta.path,
            &delta.sha256,
            delta.size,
            delta.encoding,
            delta.transfer_size,
        )?;
    }
    Ok(())
}

fn check_file(
    at: &str,
    path: &str,
    sha256: &str,
    size: u64,
    encoding: Encoding,
    transfer_size: Option<u64>,
) -> Result<(), FeedError> {
    let bad = |msg: String| Err(FeedError::BadManifest(msg));
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return bad(format!(
            "{at}.sha256 {sha256:?} is not 64 lower-case hex digits"
        ));
    }
    // Content addressed: the path is derived from the hash, so it can hold no `..`, no
    // absolute path, no scheme or host, and a mirror cannot swap two files.
    let want = by_hash_path(sha256, encoding);
    if path != want {
        return bad(format!("{at}.path {path:?} should be {want:?}"));
    }
    if size > MAX_FILE_SIZE {
        return bad(format!(
            "{at}.size {size} is over the {MAX_FILE_SIZE}-byte cap"
        ));
    }
    match (encoding, transfer_size) {
        (Encoding::Gzip, None) => bad(format!("{at}: gzip needs a transfer_size")),
        (Encoding::Gzip, Some(t)) if t > MAX_FILE_SIZE => bad(format!(
            "{at}.transfer_size {t} is over the {MAX_FILE_SIZE}-byte cap"
        )),
        (Encoding::Identity, Some(t)) if t != size => bad(format!(
            "{at}.transfer_size {t} differs from size {size} without compression"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::sign::SecretKey;

    fn file(content: &[u8]) -> FileRef {
        let sha256 = sha256_hex(content);
        FileRef {
            path: by_hash_path(&sha256, Encoding::Identity),
            sha256,
            size: content.len() as u64,
            encoding: Encoding::Identity,
            transfer_size: None,
        }
    }

    fn sample(key: &PublicKey) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            feed_id: "xx.gov.parental".into(),
            sequence: 7,
            published_at: "2026-09-13T04:00:00Z".parse().unwrap(),
            expires_at: "2026-09-20T04:00:00Z".parse().unwrap(),
            min_poll_seconds: 3600,
            key_id: key.key_id(),
            categories: vec![CategoryFile {
                id: "adult".into(),
                title: "Adult content".into(),
                version: 3,
                entries: 1,
                full: file(b"x"),
                deltas: vec![DeltaRef {
                    from_version: 2,
                    path: by_hash_path(&sha256_hex(b"d"), Encoding::Identity),
                    sha256: sha256_hex(b"d"),
                    size: 1,
                    encoding: Encoding::Identity,
                    transfer_size: None,
                }],
            }],
            allow: None,
        }
    }

    fn signed(secret: &SecretKey, m: &Manifest) -> (Vec<u8>, String) {
        let json = serde_json::to_vec_pretty(m).unwrap();
        let sig = secret.sign(
            &json,
            &trusted_comment(&m.feed_id, m.sequence, m.expires_at),
        );
        (json, sig)
    }

    #[test]
    fn sha256_hex_is_lowercase_and_right() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn trusted_comment_uses_unix_seconds() {
        let at: jiff::Timestamp = "2026-09-20T04:00:00Z".parse().unwrap();
        assert_eq!(
            trusted_comment("xx.gov.parental", 1042, at),
            format!(
                "nfeed feed=xx.gov.parental seq=1042 expires={}",
                at.as_second()
            )
        );
    }

    #[test]
    fn a_signed_manifest_round_trips() {
        let secret = SecretKey::generate().unwrap();
        let m = sample(&secret.public_key());
        let (json, sig) = signed(&secret, &m);
        let keys = [secret.public_key()];
        let got = parse_verified(&json, sig.as_bytes(), &keys, Some("xx.gov.parental")).unwrap();
        assert_eq!(got, m);
        assert!(
            String::from_utf8(json)
                .unwrap()
                .contains("\"encoding\": \"identity\"")
        );
    }

    #[test]
    fn every_check_has_its_error() {
        let secret = SecretKey::generate().unwrap();
        let public = secret.public_key();
        let keys = [public.clone()];
        let ok = sample(&public);
        let case = |edit: &dyn Fn(&mut Manifest), want: &str| {
            let mut m = ok.clone();
            edit(&mut m);
            let (json, sig) = signed(&secret, &m);
            let err =
                parse_verified(&json, sig.as_bytes(), &keys, Some("xx.gov.parental")).unwrap_err();
            assert_eq!(err.kind(), want, "{err}");
            err.to_string()
        };
        case(&|m| m.feed_id = "yy.gov.parental".into(), "wrong_feed");
        case(&|m| m.format = "nfeed-manifest/2".into(), "unknown_format");
        case(&|m| m.key_id = "0000000000000000".into(), "key_id_mismatch");
        case(&|m| m.expires_at = m.published_at, "bad_manifest");
        case(&|m| m.categories[0].id = "Adult".into(), "bad_manifest");
        case(&|m| m.categories[0].id = "porn".into(), "bad_manifest"); // a synonym
        case(
            &|m| {
                let dup = m.categories[0].clone();
                m.categories.push(dup);
            },
            "bad_manifest",
        );
        case(
            &|m| m.categories[0].full.sha256 = m.categories[0].full.sha256.to_uppercase(),
            "bad_manifest",
        );
        let msg = case(
            &|m| m.categories[0].full.path = "../../etc/passwd".into(),
            "bad_manifest",
        );
        assert!(msg.contains("categories[0].full.path"), "{msg}");
        case(
            &|m| {
                m.categories[0].full.path =
                    format!("https://evil.example/{}", m.categories[0].full.path)
            },
            "bad_manifest",
        );
        case(
            &|m| {
                m.categories[0].full.encoding = Encoding::Gzip;
                m.categories[0].full.path.push_str(".gz");
            },
            "bad_manifest",
        );
        case(
            &|m| m.categories[0].deltas[0].from_version = 3,
            "bad_manifest",
        );
        case(
            &|m| m.categories[0].full.size = MAX_FILE_SIZE + 1,
            "bad_manifest",
        );
        // A huge poll interval used to overflow the updater's arithmetic and kill its thread.
        let msg = case(&|m| m.min_poll_seconds = u64::MAX, "bad_manifest");
        assert!(msg.contains("more than a day"), "{msg}");
        let msg = case(
            &|m| {
                let one = m.categories[0].clone();
                m.categories = (0..=MAX_CATEGORIES)
                    .map(|i| CategoryFile {
                        id: format!("c{i}"),
                        ..one.clone()
                    })
                    .collect();
            },
            "bad_manifest",
        );
        assert!(msg.contains("categories, more than"), "{msg}");
    }

    #[test]
    fn signature_is_checked_before_anything_is_parsed() {
        let secret = SecretKey::generate().unwrap();
        let keys = [secret.public_key()];
        let sig = secret.sign(b"{not json", "nfeed feed=a seq=1 expires=2");
        // A valid signature over garbage: JSON error, with serde's message.
        let err = parse_verified(b"{not json", sig.as_bytes(), &keys, None).unwrap_err();
        assert_eq!(err.kind(), "bad_manifest_json", "{err}");
        // Garbage with someone else's signature: signature error, never a JSON one.
        let err = parse_verified(b"{not json!", sig.as_bytes(), &keys, None).unwrap_err();
        assert_eq!(err.kind(), "bad_signature", "{err}");
        // A captive portal page instead of the signature.
        let m = sample(&keys[0]);
        let (json, _) = signed(&secret, &m);
        let err = parse_verified(&json, b"<html>login</html>", &keys, None).unwrap_err();
        assert_eq!(err.kind(), "bad_signature", "{err}");
    }

    #[test]
    fn trusted_comment_must_match_the_fields() {
        let secret = SecretKey::generate().unwrap();
        let keys = [secret.public_key()];
        let m = sample(&keys[0]);
        let json = serde_json::to_vec(&m).unwrap();
        let sig = secret.sign(
            &json,
            &trusted_comment(&m.feed_id, m.sequence + 1, m.expires_at),
        );
        let err = parse_verified(&json, sig.as_bytes(), &keys, None).unwrap_err();
        assert_eq!(err.kind(), "trusted_comment_mismatch", "{err}");
    }

    #[test]
    fn check_full_compares_the_file_with_the_manifest() {
        let names = vec!["a.example".to_string(), "b.example".to_string()];
        let bytes = crate::feed::canonical::write_list("adult", 3, &names);
        let mut list = CategoryFile {
            id: "adult".into(),
            title: String::new(),
            version: 3,
            entries: 2,
            full: file(&bytes),
            deltas: Vec::new(),
        };
        assert_eq!(list.check_full(&bytes).unwrap(), 2);
        // Truncated, longer, flipped.
        let err = list.check_full(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(err.kind(), "hash_mismatch", "{err}");
        let longer = [&bytes[..], b"x\n"].concat();
        assert_eq!(
            list.check_full(&longer).unwrap_err().kind(),
            "size_exceeded"
        );
        let mut flipped = bytes.clone();
        flipped[50] ^= 1;
        assert_eq!(
            list.check_full(&flipped).unwrap_err().kind(),
            "hash_mismatch"
        );
        // The manifest's count disagrees with header and trailer.
        list.entries = 3;
        let err = list.check_full(&bytes).unwrap_err();
        assert_eq!(err.kind(), "count_mismatch", "{err}");
        assert!(err.to_string().contains("manifest"), "{err}");
        // The manifest's version is not the file's.
        list.entries = 2;
        list.version = 4;
        assert_eq!(list.check_full(&bytes).unwrap_err().kind(), "non_canonical");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let secret = SecretKey::generate().unwrap();
        let keys = [secret.public_key()];
        let m = sample(&keys[0]);
        let mut value = serde_json::to_value(&m).unwrap();
        value["shrink_ok"] = serde_json::Value::Bool(true);
        let json = serde_json::to_vec(&value).unwrap();
        let sig = secret.sign(
            &json,
            &trusted_comment(&m.feed_id, m.sequence, m.expires_at),
        );
        let err = parse_verified(&json, sig.as_bytes(), &keys, None).unwrap_err();
        assert_eq!(err.kind(), "bad_manifest_json", "{err}");
        assert!(err.to_string().contains("shrink_ok"), "{err}");
    }
}
