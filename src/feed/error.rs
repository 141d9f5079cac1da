//! One error type for everything that can go wrong with a feed: signatures, the manifest, the
//! canonical files, and (for the client) the transfer. [`FeedError::kind`] gives each a short
//! stable tag for counters and `status.json`; the `Display` text is for people.

/// Why a feed (or one file of it) was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A signature, key or signature file that does not verify or does not parse.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The signature names a key that is not among the pinned public keys.
    #[error("signed by unknown key {key_id}; pinned keys: {pinned}")]
    UnknownKey {
        /// The key id in the signature (16 upper-case hex digits).
        key_id: String,
        /// The ids of the pinned keys, comma-separated.
        pinned: String,
    },
    /// A public or secret key that cannot be read.
    #[error("bad key: {0}")]
    BadKey(String),
    /// `kidsafe feed keygen` found a key where it would write one.
    #[error(
        "{} already exists; keygen never replaces a key, because clients accept only the public \
         keys in their config. To replace it on purpose, run `kidsafe feed keygen --out NEW_DIR` \
         and rotate (docs/feed.md, \"Rotating the key\"): add the new feed.pub to the clients' \
         [feed] public_key, wait until they have it, then publish with the new key",
        path.display()
    )]
    KeyExists {
        /// The existing key file.
        path: std::path::PathBuf,
    },
    /// An encrypted minisign secret key: kidsafe does not ask for passwords.
    #[error(
        "the secret key is encrypted with a password, which kidsafe does not support; create an \
         unencrypted key with `kidsafe feed keygen --out DIR` or `minisign -G -W`"
    )]
    EncryptedSecretKey,
    /// The trusted comment does not say what the manifest says.
    #[error("trusted comment {got:?} does not match the manifest, which needs {want:?}")]
    TrustedCommentMismatch {
        /// What the manifest fields require.
        want: String,
        /// What the signature carries.
        got: String,
    },
    /// The manifest's `key_id` is not the key that signed it.
    #[error("manifest key_id {manifest} is not the signing key {signer}")]
    KeyIdMismatch {
        /// The manifest's `key_id` field.
        manifest: String,
        /// The id of the key whose signature verified.
        signer: String,
    },
    /// A validly signed manifest of another feed.
    #[error("manifest is for feed {got:?}, expected {want:?}")]
    WrongFeed {
        /// The configured feed id.
        want: String,
        /// The manifest's feed id.
        got: String,
    },
    /// A `format` (or file header) this version does not know.
    #[error("unknown format {0:?}")]
    UnknownFormat(String),
    /// The manifest is not the JSON we expect.
    #[error("bad manifest JSON: {0}")]
    BadManifestJson(String),
    /// The manifest parsed but a field is invalid.
    #[error("invalid manifest: {0}")]
    BadManifest(String),
    /// A category or delta file breaks the canonical rules.
    #[error("non-canonical {file} at line {line}: {reason}")]
    NonCanonical {
        /// What the file is, e.g. `list "adult"` or `delta "adult" 4→5`.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with that line.
        reason: String,
    },
    /// Header, trailer and manifest disagree on the number of entries.
    #[error("{what}: {expected} entries declared, {actual} found")]
    CountMismatch {
        /// Which count, e.g. `list "adult" manifest`.
        what: String,
        /// The declared count.
        expected: u64,
        /// The count found.
        actual: u64,
    },
    /// A file whose SHA-256 is not the one the manifest declares.
    #[error("{path}: sha256 {actual}, manifest says {expected}")]
    HashMismatch {
        /// The file's path in the feed.
        path: String,
        /// The declared hash.
        expected: String,
        /// The hash of the bytes received.
        actual: String,
    },
    /// A file larger than its declared size (or a decompression past it).
    #[error("{path}: more than the declared {limit} bytes")]
    SizeExceeded {
        /// The file's path in the feed.
        path: String,
        /// The declared size.
        limit: u64,
    },
    /// A delta that does not apply to the version we have.
    #[error("bad delta: {0}")]
    BadDelta(String),
    /// A manifest older than the one already installed.
    #[error("rollback: have sequence {have}, manifest has {got}")]
    Rollback {
        /// The installed sequence.
        have: u64,
        /// The offered sequence.
        got: u64,
    },
    /// The installed sequence number, signed over different bytes: a publisher bug or a
    /// compromised key. Raise an alarm.
    #[error("manifest sequence {sequence} was already installed with different content")]
    SameSequenceDifferentBytes {
        /// The sequence number.
        sequence: u64,
    },
    /// The manifest's `expires_at` has passed (with a plausible clock).
    #[error("manifest expired at {expires_at}")]
    Expired {
        /// When it expired.
        expires_at: jiff::Timestamp,
    },
    /// The manifest claims to be published more than a day in the future.
    #[error("manifest published in the future (is the clock right?)")]
    FromFuture,
    /// An HTTP failure (status, connection, redirect).
    #[error("http: {0}")]
    Http(String),
    /// A download past its hard cap.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// A download past its deadline.
    #[error("timed out")]
    Timeout,
    /// Reading or writing a local file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl FeedError {
    /// A short stable tag for counters and status (`"bad_signature"`, `"rollback"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            FeedError::BadSignature(_) => "bad_signature",
            FeedError::UnknownKey { .. } => "unknown_key",
            FeedError::BadKey(_) => "bad_key",
            FeedError::KeyExists { .. } => "key_exists",
            FeedError::EncryptedSecretKey => "encrypted_secret_key",
            FeedError::TrustedCommentMismatch { .. } => "trusted_comment_mismatch",
            FeedError::KeyIdMismatch { .. } => "key_id_mismatch",
            FeedError::WrongFeed { .. } => "wrong_feed",
            FeedError::UnknownFormat(_) => "unknown_format",
            FeedError::BadManifestJson(_) => "bad_manifest_json",
            FeedError::BadManifest(_) => "bad_manifest",
            FeedError::NonCanonical { .. } => "non_canonical",
            FeedError::CountMismatch { .. } => "count_mismatch",
            FeedError::HashMismatch { .. } => "hash_mismatch",
            FeedError::SizeExceeded { .. } => "size_exceeded",
            FeedError::BadDelta(_) => "bad_delta",
            FeedError::Rollback { .. } => "rollback",
            FeedError::SameSequenceDifferentBytes { .. } => "same_sequence_different_bytes",
            FeedError::Expired { .. } => "expired",
            FeedError::FromFuture => "from_future",
            FeedError::Http(_) => "http",
            FeedError::TooLarge { .. } => "too_large",
            FeedError::Timeout => "timeout",
            FeedError::Io { .. } => "io",
        }
    }

    /// An [`FeedError::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        FeedError::Io {
            context: context.into(),
            source,
        }
    }
}
