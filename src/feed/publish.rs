//! The authority's side: `kidsafe feed keygen` and `kidsafe feed publish`.
//!
//! Publishing turns a directory of lenient lists (`<category>.txt`, plus `allow.txt`) into a
//! feed directory ready to copy to any web server:
//!
//! ```text
//! OUT/manifest.json
//! OUT/manifest.json.minisig
//! OUT/by-hash/sha256/<sha256 of the canonical bytes>[.gz]   full files and deltas
//! ```
//!
//! The previous `OUT/manifest.json` drives the next one: the sequence goes up by one, the
//! feed id stays, a category's version goes up only when its content changed, and a changed
//! category gets one delta, from its previous version (read back from `OUT/by-hash`).
//!
//! Write order: every `by-hash` file first (nothing a manifest names is ever missing), then
//! the signature, then the manifest, each by temp file and rename. A client that reads the new
//! manifest therefore finds the new signature; one that read the old manifest just before and
//! then the new signature gets a pair that fails verification, which it treats like any failed
//! poll (it keeps what it has and tries again later).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::FeedError;
use super::canonical;
use super::manifest::{
    self, CategoryFile, DeltaRef, Encoding, FORMAT, FileRef, Manifest, by_hash_path, sha256_hex,
    trusted_comment,
};
use super::sign::{PublicKey, SecretKey};
use crate::state_file::write_atomic;

/// The secret key file `keygen` writes.
pub const SECRET_KEY_FILE: &str = "feed.key";
/// The public key file `keygen` writes.
pub const PUBLIC_KEY_FILE: &str = "feed.pub";
/// The manifest's file name in a feed directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest signature's file name in a feed directory.
pub const SIGNATURE_FILE: &str = "manifest.json.minisig";
/// The list file that becomes the manifest's `allow`, and its id.
pub const ALLOW_ID: &str = "allow";
/// With automatic encoding, files larger than this are gzip-compressed.
pub const GZIP_ABOVE: usize = 64 * 1024;

/// Creates `dir/feed.key` (unencrypted minisign secret key, mode 0600) and `dir/feed.pub`;
/// `kidsafe feed keygen`: [`keygen`], and what to tell the operator.
pub fn keygen_report(dir: &Path) -> Result<String, FeedError> {
    let public = keygen(dir)?;
    Ok(format!(
        "wrote {} (secret: keep it off the web server) and {}\npublic key {}: {}\nput it in the clients' config: [feed] public_key = \"{}\"\n",
        dir.join(SECRET_KEY_FILE).display(),
        dir.join(PUBLIC_KEY_FILE).display(),
        public.key_id(),
        public.to_base64(),
        public.to_base64()
    ))
}

/// refuses to overwrite either. Returns the public key.
pub fn keygen(dir: &Path) -> Result<PublicKey, FeedError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| FeedError::io(format!("cannot create {}", dir.display()), e))?;
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(FeedError::KeyExists {
                path: path.to_path_buf(),
            });
        }
    }
    let secret = SecretKey::generate()?;
    let public = secret.public_key();
    write_new(&secret_path, secret.to_file_text().as_bytes(), 0o600)?;
    write_new(&public_path, public.to_file_text().as_bytes(), 0o644)?;
    Ok(public)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FeedError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |e| FeedError::io(format!("cannot write {}", path.display()), e);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

/// What `kidsafe feed publish` was asked to do.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The directory of lenient `<category>.txt` lists (and `allow.txt`).
    pub lists_dir: PathBuf,
    /// The feed directory (holds the previous manifest, if any).
    pub out_dir: PathBuf,
    /// The feed id; required on the first publication, then taken from the previous manifest.
    pub feed_id: Option<String>,
    /// How long the manifest stays valid after `now`.
    pub expires_in: std::time::Duration,
    /// The shortest poll interval clients should use.
    pub min_poll: std::time::Duration,
    /// The transfer encoding of every file; `None` gzips those above [`GZIP_ABOVE`].
    pub encoding: Option<Encoding>,
    /// The publication time (the clock, or a fixed time in tests).
    pub now: jiff::Timestamp,
}

/// One list of a publication, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSummary {
    /// The category id (or `allow`).
    pub id: String,
    /// Its version in the new manifest.
    pub version: u64,
    /// Names listed.
    pub entries: u64,
    /// Lines or names of the source list that were skipped.
    pub skipped: usize,
    /// Whether the content changed since the previous manifest (or is new).
    pub changed: bool,
    /// Size of the canonical file.
    pub size: u64,
}

/// What a publication did.
#[derive(Debug, Clone)]
pub struct PublishSummary {
    /// The feed id.
    pub feed_id: String,
    /// The new sequence number.
    pub sequence: u64,
    /// When the manifest expires.
    pub expires_at: jiff::Timestamp,
    /// Every list, categories first then the allow list.
    pub lists: Vec<ListSummary>,
    /// Bytes written to `by-hash` (new files only) plus the manifest and signature.
    pub bytes_written: u64,
    /// Things the authority should know (a changed key, a dropped category, a missing delta).
    pub warnings: Vec<String>,
}

impl PublishSummary {
    /// Human summary, one line per list.
    pub fn render(&self) -> String {
        let mut out = format!(
            "published feed {} sequence {} (expires {}), {} bytes written\n",
            self.feed_id, self.sequence, self.expires_at, self.bytes_written
        );
        for l in &self.lists {
            out.push_str(&format!(
                "  {:<14} v{:<5} {:>9} entries {:>7} skipped {:>11} bytes{}\n",
                l.id,
                l.version,
                l.entries,
                l.skipped,
                l.size,
                if l.changed { "  (changed)" } else { "" }
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> FeedError {
    let context = format!("cannot {what} {}", path.display());
    move |e| FeedError::io(context, e)
}

/// Reads the lists, writes the new files, the signature and the manifest (see the module
/// documentation for the order), and returns what it did.
pub fn publish(key: &SecretKey, opts: &PublishOptions) -> Result<PublishSummary, FeedError> {
    let mut warnings = Vec::new();
    let previous = read_previous(&opts.out_dir)?;
    let public = key.public_key();
    if let Some(prev) = &previous
        && prev.key_id != public.key_id()
    {
        warnings.push(format!(
            "the previous manifest was signed by key {}, this one by {}: clients must pin \
                 the new public key {} before they accept it",
            prev.key_id,
            public.key_id(),
            public.to_base64()
        ));
    }
    let feed_id = match (&opts.feed_id, &previous) {
        (Some(id), Some(prev)) if *id != prev.feed_id => {
            warnings.push(format!(
                "feed id changed from {:?} to {id:?}: clients configured for the old id will \
                 refuse this feed",
                prev.feed_id
            ));
            id.clone()
        }
        (Some(id), _) => id.clone(),
        (None, Some(prev)) => prev.feed_id.clone(),
        (None, None) => {
            return Err(FeedError::BadManifest(format!(
                "no {} in {} yet: give --feed-id for the first publication",
                MANIFEST_FILE,
                opts.out_dir.display()
            )));
        }
    };
    let published_at = jiff::Timestamp::from_second(opts.now.as_second())
        .map_err(|e| FeedError::BadManifest(format!("bad clock: {e}")))?;
    if let Some(prev) = &previous
        && published_at < prev.published_at
    {
        return Err(FeedError::BadManifest(format!(
            "the clock ({published_at}) is before the previous publication ({}); clients \
             would refuse this manifest",
            prev.published_at
        )));
    }
    let expires_at = jiff::SignedDuration::try_from(opts.expires_in)
        .ok()
        .and_then(|d| published_at.checked_add(d).ok())
        .ok_or_else(|| FeedError::BadManifest("expiry out of range".into()))?;
    let sequence = previous.as_ref().map_or(1, |p| p.sequence + 1);

    let sources = read_sources(&opts.lists_dir)?;
    let mut writer = BlobWriter {
        out: &opts.out_dir,
        encoding: opts.encoding,
        bytes_written: 0,
    };
    let mut categories = Vec::new();
    let mut allow = None;
    let mut lists = Vec::new();
    for (id, text) in &sources {
        let prev = previous.as_ref().and_then(|p| {
            if id == ALLOW_ID {
                p.allow.as_ref()
            } else {
                p.categories.iter().find(|c| c.id == *id)
            }
        });
        let (file, summary) = build_list(id, text, prev, &mut writer, &mut warnings)?;
        lists.push(summary);
        if id == ALLOW_ID {
            allow = Some(file);
        } else {
            categories.push(file);
        }
    }
    if let Some(prev) = &previous {
        for c in &prev.categories {
            if !sources.contains_key(&c.id) {
                warnings.push(format!(
                    "category {:?} is no longer published (no {}.txt)",
                    c.id, c.id
                ));
            }
        }
    }

    let manifest = Manifest {
        format: FORMAT.to_string(),
        feed_id,
        sequence,
        published_at,
        expires_at,
        min_poll_seconds: opts.min_poll.as_secs(),
        key_id: public.key_id(),
        categories,
        allow,
    };
    manifest.validate()?;
    let mut json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| FeedError::BadManifestJson(e.to_string()))?;
    json.push(b'\n');
    let signature = key.sign(
        &json,
        &trusted_comment(&manifest.feed_id, sequence, expires_at),
    );
    // Our own output must pass the client's checks.
    manifest::parse_verified(
        &json,
        signature.as_bytes(),
        std::slice::from_ref(&public),
        Some(&manifest.feed_id),
    )?;
    write_atomic(&opts.out_dir, SIGNATURE_FILE, signature.as_bytes())
        .map_err(io_err("write", &opts.out_dir.join(SIGNATURE_FILE)))?;
    write_atomic(&opts.out_dir, MANIFEST_FILE, &json)
        .map_err(io_err("write", &opts.out_dir.join(MANIFEST_FILE)))?;
    Ok(PublishSummary {
        feed_id: manifest.feed_id,
        sequence,
        expires_at,
        lists,
        bytes_written: writer.bytes_written + (json.len() + signature.len()) as u64,
        warnings,
    })
}

/// The previous manifest in `out`, if any. It is our own output, so it is read without its
/// signature (the key may be the one being replaced), but it must still be valid.
fn read_previous(out: &Path) -> Result<Option<Manifest>, FeedError> {
    let path = out.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| FeedError::BadManifestJson(format!("previous {}: {e}", path.display())))?;
    manifest.validate()?;
    Ok(Some(manifest))
}

/// `<category>.txt` files of the lists directory, keyed by canonical category id.
fn read_sources(dir: &Path) -> Result<BTreeMap<String, String>, FeedError> {
    let mut sources = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(io_err("read", dir))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(io_err("read", dir))?.path());
    }
    paths.sort();
    for path in paths {
        if path.extension().and_then(|e| e.to_str()) != Some("txt") || !path.is_file() {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let id = crate::category::canonical_name(stem);
        if !crate::category::is_valid_name(&id) {
            return Err(FeedError::BadManifest(format!(
                "{}: the file name must be a category name (a-z, 0-9, '_', '-')",
                path.display()
            )));
        }
        let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if sources.insert(id.clone(), text).is_some() {
            return Err(FeedError::BadManifest(format!(
                "{}: a second list for category {id:?} (synonyms map to the same category)",
                path.display()
            )));
        }
    }
    if sources.is_empty() {
        return Err(FeedError::BadManifest(format!(
            "no <category>.txt lists in {}",
            dir.display()
        )));
    }
    Ok(sources)
}

/// Writes content-addressed files under `OUT/by-hash/sha256/`.
struct BlobWriter<'a> {
    out: &'a Path,
    encoding: Option<Encoding>,
    bytes_written: u64,
}

impl BlobWriter<'_> {
    /// Writes `bytes` (canonical) and returns where it is: (path, sha256, size, encoding,
    /// transfer_size).
    fn write(&mut self, bytes: &[u8]) -> Result<FileRef, FeedError> {
        let sha256 = sha256_hex(bytes);
        let encoding = self.encoding.unwrap_or(if bytes.len() > GZIP_ABOVE {
            Encoding::Gzip
        } else {
            Encoding::Identity
        });
        let encoded = match encoding {
            Encoding::Identity => None,
            Encoding::Gzip => Some(gzip(bytes)?),
        };
        let on_wire = encoded.as_deref().unwrap_or(bytes);
        let path = by_hash_path(&sha256, encoding);
        let full = self.out.join(&path);
        // Content addressed and immutable: an existing file of the right size is this file.
        let present = std::fs::metadata(&full).is_ok_and(|m| m.len() == on_wire.len() as u64);
        if !present {
            let dir = full.parent().unwrap_or(self.out);
            let name = full
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            write_atomic(dir, name, on_wire).map_err(io_err("write", &full))?;
            self.bytes_written += on_wire.len() as u64;
        }
        Ok(FileRef {
            path,
            sha256,
            size: bytes.len() as u64,
            encoding,
            transfer_size: encoded.as_ref().map(|e| e.len() as u64),
        })
    }

    /// Reads back a file this feed published, decoded and checked against its hash.
    fn read(&self, file: &FileRef) -> Result<Vec<u8>, FeedError> {
        let full = self.out.join(&file.path);
        let raw = std::fs::read(&full).map_err(io_err("read", &full))?;
        let bytes = match file.encoding {
            Encoding::Identity => raw,
            Encoding::Gzip => gunzip(&raw, file.size, &file.path)?,
        };
        let actual = sha256_hex(&bytes);
        if actual != file.sha256 {
            return Err(FeedError::HashMismatch {
                path: file.path.clone(),
                expected: file.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// gzip with a zero mtime, so the same content always compresses to the same bytes.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, FeedError> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::best(),
    );
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| FeedError::io("gzip", e))
}

/// Decompresses at most `limit` bytes; more is [`FeedError::SizeExceeded`] (a gzip bomb, or a
/// file that is not the one declared).
pub fn gunzip(raw: &[u8], limit: u64, path: &str) -> Result<Vec<u8>, FeedError> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| FeedError::io(format!("gunzip {path}"), e))?;
    if out.len() as u64 > limit {
        return Err(FeedError::SizeExceeded {
            path: path.to_string(),
            limit,
        });
    }
    Ok(out)
}

/// Canonicalises one source list and writes what changed.
fn build_list(
    id: &str,
    text: &str,
    prev: Option<&CategoryFile>,
    writer: &mut BlobWriter<'_>,
    warnings: &mut Vec<String>,
) -> Result<(CategoryFile, ListSummary), FeedError> {
    let (names, skipped) = canonical::canonicalise(text);
    let title = prev
        .map(|p| p.title.clone())
        .filter(|t| !t.is_empty())
        .or_else(|| crate::category::known(id).map(|k| k.description.to_string()))
        .unwrap_or_default();
    if let Some(prev) = prev {
        let same = canonical::write_list(id, prev.version, &names);
        if sha256_hex(&same) == prev.full.sha256 {
            let summary = ListSummary {
                id: id.to_string(),
                version: prev.version,
                entries: prev.entries,
                skipped,
                changed: false,
                size: prev.full.size,
            };
            return Ok((prev.clone(), summary));
        }
    }
    let version = prev.map_or(1, |p| p.version + 1);
    let bytes = canonical::write_list(id, version, &names);
    let entries = canonical::check_list(&bytes, id, version)?;
    let full = writer.write(&bytes)?;
    let mut deltas = Vec::new();
    if let Some(prev) = prev {
        match writer.read(&prev.full) {
            Ok(old) => {
                let delta = canonical::make_delta(id, prev.version, version, &old, &bytes);
                // Only worth serving if it is smaller than the file it replaces.
                if delta.len() < bytes.len() {
                    let applied = canonical::apply_delta(&old, &delta, id, prev.version, version)?;
                    if applied != bytes {
                        return Err(FeedError::BadDelta(format!(
                            "{id}: the delta from version {} does not rebuild version {version}",
                            prev.version
                        )));
                    }
                    let file = writer.write(&delta)?;
                    deltas.push(DeltaRef {
                        from_version: prev.version,
                        path: file.path,
                        sha256: file.sha256,
                        size: file.size,
                        encoding: file.encoding,
                        transfer_size: file.transfer_size,
                    });
                }
            }
            Err(e) => warnings.push(format!(
                "{id}: no delta from version {} (previous file unreadable: {e})",
                prev.version
            )),
        }
    }
    let summary = ListSummary {
        id: id.to_string(),
        version,
        entries,
        skipped,
        changed: true,
        size: full.size,
    };
    let file = CategoryFile {
        id: id.to_string(),
        title,
        version,
        entries,
        full,
        deltas,
    };
    Ok((file, summary))
}

#[cfg(test)]
mod tests;
