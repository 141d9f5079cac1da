//! minisign-compatible keys and signatures, so an authority can sign a feed with kidsafe or with
//! the `minisign` tool and a client verifies either.
//!
//! Formats, exactly as minisign writes them (all integers little-endian, base64 with padding):
//! - public key: `untrusted comment: …` then base64 of `Ed` ‖ keynum (8) ‖ Ed25519 key (32);
//! - signature: `untrusted comment: …`, base64 of `ED` ‖ keynum ‖ signature (64), `trusted
//!   comment: …`, base64 of the global signature (64) = Ed25519 over signature ‖ trusted comment.
//!   `ED` signs BLAKE2b-512 of the data (prehashed, what minisign writes since 0.10); legacy
//!   `Ed` signs the data itself and is still verified;
//! - secret key, unencrypted form only (`minisign -G -W`): `Ed` ‖ kdf `\0\0` ‖ `B2` ‖ salt (32)
//!   ‖ opslimit (8) ‖ memlimit (8) ‖ keynum (8) ‖ seed ‖ public key (64) ‖ checksum (32), the
//!   checksum being BLAKE2b-256 of `Ed` ‖ keynum ‖ seed ‖ public key. minisign 0.11 writes a
//!   zero checksum for unencrypted keys, so a zero checksum is accepted too.
//!
//! Ed25519 comes from `ring` (already used for TLS); BLAKE2b from `blake2b_simd`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SecureRandom as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use super::FeedError;

const SIGALG: [u8; 2] = *b"Ed";
const SIGALG_HASHED: [u8; 2] = *b"ED";
const KDF_SCRYPT: [u8; 2] = *b"Sc";
const KDF_NONE: [u8; 2] = [0, 0];
const CHKALG: [u8; 2] = *b"B2";
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// minisign's limit on a trusted comment (including its NUL).
const TRUSTED_COMMENT_MAX: usize = 8192;

const PUBLIC_KEY_LEN: usize = 2 + 8 + 32;
const SIGNATURE_LEN: usize = 2 + 8 + 64;
const SECRET_KEY_LEN: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;

/// A minisign Ed25519 public key and its key number.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    keynum: [u8; 8],
    key: [u8; 32],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.key_id(), self.to_base64())
    }
}

impl PublicKey {
    /// Reads the one-line base64 form (`RW…`), as `minisign -P` takes it.
    pub fn from_base64(s: &str) -> Result<Self, FeedError> {
        let bytes = B64
            .decode(s.trim())
            .map_err(|e| FeedError::BadKey(format!("public key is not base64: {e}")))?;
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(FeedError::BadKey(format!(
                "public key is {} bytes, a minisign public key is {PUBLIC_KEY_LEN}",
                bytes.len()
            )));
        }
        if bytes[..2] != SIGALG {
            return Err(FeedError::BadKey(
                "public key is not an Ed25519 minisign key".into(),
            ));
        }
        let mut keynum = [0; 8];
        keynum.copy_from_slice(&bytes[2..10]);
        let mut key = [0; 32];
        key.copy_from_slice(&bytes[10..]);
        Ok(Self { keynum, key })
    }

    /// Reads a public key file (`minisign.pub`): an untrusted comment line, then the key. A
    /// file holding only the base64 line is accepted too.
    pub fn from_file_text(text: &str) -> Result<Self, FeedError> {
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let first = lines
            .next()
            .ok_or_else(|| FeedError::BadKey("public key file is empty".into()))?;
        if first.starts_with(UNTRUSTED_PREFIX) {
            let key = lines.next().ok_or_else(|| {
                FeedError::BadKey("public key file has a comment but no key line".into())
            })?;
            Self::from_base64(key)
        } else {
            Self::from_base64(first)
        }
    }

    /// The key id as minisign prints it: the key number as 16 upper-case hex digits.
    pub fn key_id(&self) -> String {
        key_id(&self.keynum)
    }

    /// The one-line base64 form (`RW…`), for `[feed] public_key` and `minisign -P`.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(PUBLIC_KEY_LEN);
        bytes.extend_from_slice(&SIGALG);
        bytes.extend_from_slice(&self.keynum);
        bytes.extend_from_slice(&self.key);
        B64.encode(bytes)
    }

    /// The public key file, as `minisign -G` writes it.
    pub fn to_file_text(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.key_id(),
            self.to_base64()
        )
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

fn key_id(keynum: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*keynum))
}

fn blake2b(len: usize, parts: &[&[u8]]) -> blake2b_simd::Hash {
    let mut state = blake2b_simd::Params::new().hash_length(len).to_state();
    for part in parts {
        state.update(part);
    }
    state.finalize()
}

/// A parsed `.minisig` file.
struct SignatureFile {
    hashed: bool,
    keynum: [u8; 8],
    signature: [u8; 64],
    trusted_comment: String,
    global_signature: [u8; 64],
}

fn bad_sig(reason: impl Into<String>) -> FeedError {
    FeedError::BadSignature(reason.into())
}

impl SignatureFile {
    fn parse(minisig: &[u8]) -> Result<Self, FeedError> {
        let text = std::str::from_utf8(minisig)
            .map_err(|_| bad_sig("signature file is not UTF-8 text"))?;
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let mut next = |what: &str| {
            lines
                .next()
                .ok_or_else(|| bad_sig(format!("signature file ends before its {what}")))
        };
        if !next("untrusted comment")?.starts_with(UNTRUSTED_PREFIX) {
            return Err(bad_sig(format!(
                "signature file does not start with {UNTRUSTED_PREFIX:?}"
            )));
        }
        let sig = B64
            .decode(next("signature line")?.trim())
            .map_err(|e| bad_sig(format!("signature line is not base64: {e}")))?;
        if sig.len() != SIGNATURE_LEN {
            return Err(bad_sig(format!(
                "signature is {} bytes, a minisign signature is {SIGNATURE_LEN}",
                sig.len()
            )));
        }
        let hashed = match [sig[0], sig[1]] {
            SIGALG_HASHED => true,
            SIGALG => false,
            _ => return Err(bad_sig("unsupported signature algorithm")),
        };
        let trusted_comment = next("trusted comment")?
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or_else(|| bad_sig(format!("third line does not start with {TRUSTED_PREFIX:?}")))?
            .to_string();
        if trusted_comment.len() >= TRUSTED_COMMENT_MAX {
            return Err(bad_sig("trusted comment is too long"));
        }
        let global = B64
            .decode(next("global signature")?.trim())
            .map_err(|e| bad_sig(format!("global signature is not base64: {e}")))?;
        let global_signature: [u8; 64] = global
            .as_slice()
            .try_into()
            .map_err(|_| bad_sig("global signature is not 64 bytes"))?;
        let mut keynum = [0; 8];
        keynum.copy_from_slice(&sig[2..10]);
        let mut signature = [0; 64];
        signature.copy_from_slice(&sig[10..]);
        Ok(Self {
            hashed,
            keynum,
            signature,
            trusted_comment,
            global_signature,
        })
    }
}

/// Verifies a minisign signature of `data` with whichever of `keys` has the signature's key
/// number, then the global signature over the trusted comment. Returns the trusted comment
/// (without its `trusted comment: ` prefix), which is only meaningful after both checks.
pub fn verify(keys: &[PublicKey], data: &[u8], minisig: &[u8]) -> Result<String, FeedError> {
    verify_with_key(keys, data, minisig).map(|(comment, _)| comment)
}

/// [`verify`], also returning the key that verified.
pub fn verify_with_key<'k>(
    keys: &'k [PublicKey],
    data: &[u8],
    minisig: &[u8],
) -> Result<(String, &'k PublicKey), FeedError> {
    let sig = SignatureFile::parse(minisig)?;
    let key = keys
        .iter()
        .find(|k| k.keynum == sig.keynum)
        .ok_or_else(|| FeedError::UnknownKey {
            key_id: key_id(&sig.keynum),
            pinned: keys
                .iter()
                .map(PublicKey::key_id)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let ok = if sig.hashed {
        key.verifies(blake2b(64, &[data]).as_bytes(), &sig.signature)
    } else {
        key.verifies(data, &sig.signature)
    };
    if !ok {
        return Err(bad_sig(format!(
            "signature by key {} does not match the data",
            key.key_id()
        )));
    }
    let mut signed_comment = Vec::with_capacity(64 + sig.trusted_comment.len());
    signed_comment.extend_from_slice(&sig.signature);
    signed_comment.extend_from_slice(sig.trusted_comment.as_bytes());
    if !key.verifies(&signed_comment, &sig.global_signature) {
        return Err(bad_sig("the trusted comment's signature does not verify"));
    }
    Ok((sig.trusted_comment, key))
}

/// An Ed25519 secret key in minisign's unencrypted form.
pub struct SecretKey {
    keynum: [u8; 8],
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", key_id(&self.keynum))
    }
}

impl SecretKey {
    /// A new random key pair (the system's CSPRNG, through `ring`).
    pub fn generate() -> Result<Self, FeedError> {
        let rng = ring::rand::SystemRandom::new();
        let mut keynum = [0; 8];
        let mut seed = [0; 32];
        rng.fill(&mut keynum)
            .and_then(|()| rng.fill(&mut seed))
            .map_err(|_| FeedError::BadKey("the system random generator failed".into()))?;
        Self::from_parts(keynum, seed)
    }

    fn from_parts(keynum: [u8; 8], seed: [u8; 32]) -> Result<Self, FeedError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| FeedError::BadKey("invalid Ed25519 seed".into()))?;
        Ok(Self { keynum, seed, pair })
    }

    /// Reads a secret key file as `minisign -G -W` or [`SecretKey::to_file_text`] write it.
    /// An encrypted key is refused with [`FeedError::EncryptedSecretKey`].
    pub fn from_file_text(text: &str) -> Result<Self, FeedError> {
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let first = lines
            .next()
            .ok_or_else(|| FeedError::BadKey("secret key file is empty".into()))?;
        let line = if first.starts_with(UNTRUSTED_PREFIX) {
            lines.next().ok_or_else(|| {
                FeedError::BadKey("secret key file has a comment but no key line".into())
            })?
        } else {
            first
        };
        let bytes = B64
            .decode(line.trim())
            .map_err(|e| FeedError::BadKey(format!("secret key is not base64: {e}")))?;
        if bytes.len() != SECRET_KEY_LEN {
            return Err(FeedError::BadKey(format!(
                "secret key is {} bytes, a minisign secret key is {SECRET_KEY_LEN}",
                bytes.len()
            )));
        }
        if bytes[0..2] != SIGALG {
            return Err(FeedError::BadKey(
                "secret key is not an Ed25519 minisign key".into(),
            ));
        }
        match [bytes[2], bytes[3]] {
            KDF_NONE => {}
            KDF_SCRYPT => return Err(FeedError::EncryptedSecretKey),
            _ => {
                return Err(FeedError::BadKey(
                    "secret key uses an unknown key derivation".into(),
                ));
            }
        }
        if bytes[4..6] != CHKALG {
            return Err(FeedError::BadKey(
                "secret key uses an unknown checksum".into(),
            ));
        }
        // sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) opslimit(8) memlimit(8) = 54
        let mut keynum = [0; 8];
        keynum.copy_from_slice(&bytes[54..62]);
        let mut seed = [0; 32];
        seed.copy_from_slice(&bytes[62..94]);
        let stored_public = &bytes[94..126];
        let checksum = &bytes[126..158];
        let want = blake2b(32, &[&SIGALG, &keynum, &bytes[62..126]]);
        if checksum != want.as_bytes() && checksum.iter().any(|&b| b != 0) {
            return Err(FeedError::BadKey(
                "secret key checksum does not match (corrupt file?)".into(),
            ));
        }
        let key = Self::from_parts(keynum, seed)?;
        if key.pair.public_key().as_ref() != stored_public {
            return Err(FeedError::BadKey(
                "secret key's public half does not match its seed (corrupt file?)".into(),
            ));
        }
        Ok(key)
    }

    /// The secret key file, unencrypted, with a valid checksum (minisign reads it).
    pub fn to_file_text(&self) -> String {
        let public = self.pair.public_key().as_ref();
        let mut bytes = Vec::with_capacity(SECRET_KEY_LEN);
        bytes.extend_from_slice(&SIGALG);
        bytes.extend_from_slice(&KDF_NONE);
        bytes.extend_from_slice(&CHKALG);
        bytes.extend_from_slice(&[0; 32 + 8 + 8]);
        bytes.extend_from_slice(&self.keynum);
        bytes.extend_from_slice(&self.seed);
        bytes.extend_from_slice(public);
        let checksum = blake2b(32, &[&SIGALG, &self.keynum, &self.seed, public]);
        bytes.extend_from_slice(checksum.as_bytes());
        format!(
            "{UNTRUSTED_PREFIX}minisign unencrypted secret key {}\n{}\n",
            key_id(&self.keynum),
            B64.encode(bytes)
        )
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let mut key = [0; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey {
            keynum: self.keynum,
            key,
        }
    }

    /// Signs `data` (prehashed, `ED`) and returns the `.minisig` text. A line break in
    /// `trusted_comment` would end the line early, so CR and LF in it become spaces (and the
    /// signed comment is the one with spaces).
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> String {
        let comment = trusted_comment.replace(['\r', '\n'], " ");
        let signature = self.pair.sign(blake2b(64, &[data]).as_bytes());
        let mut sig_line = Vec::with_capacity(SIGNATURE_LEN);
        sig_line.extend_from_slice(&SIGALG_HASHED);
        sig_line.extend_from_slice(&self.keynum);
        sig_line.extend_from_slice(signature.as_ref());
        let mut signed_comment = signature.as_ref().to_vec();
        signed_comment.extend_from_slice(comment.as_bytes());
        let global = self.pair.sign(&signed_comment);
        format!(
            "{UNTRUSTED_PREFIX}signature from kidsafe secret key {}\n{}\n{TRUSTED_PREFIX}{comment}\n{}\n",
            key_id(&self.keynum),
            B64.encode(sig_line),
            B64.encode(global.as_ref())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by minisign 0.11: `minisign -G -W`, then `echo hello > f` and
    // `minisign -S -s k.key -m f -t 'nfeed feed=x seq=1 expires=2'`.
    const MINISIGN_PUB: &str = "untrusted comment: minisign public key D254753AACD72B4A\n\
        RWRKK9esOnVU0rtXDWM6Rh1aKWybDDFR5+Qo6ofdSh1CUI5EW8ETUYfK\n";
    const MINISIGN_KEY: &str = "untrusted comment: minisign encrypted secret key\n\
        RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAASivXrDp1VNKt8lT+a3iIMQlRJa/tWcI6WklTcvns0eitlOULj62MA7tXDWM6Rh1aKWybDDFR5+Qo6ofdSh1CUI5EW8ETUYfKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    const MINISIGN_SIG: &str = "untrusted comment: signature from minisign secret key\n\
        RURKK9esOnVU0gxxZDjuyuFHoYxjEVauLybZcQWSMVhnI64RwHNmT9pnqma7Ovgs1cji5NJFhIR3/b3QMNeXtxsluHH6nv+zJQg=\n\
        trusted comment: nfeed feed=x seq=1 expires=2\n\
        3UY9Kl4a16TjJ1rz+FJA74vbVEq9khxUxajyO7It9LWVXN5ycoKNy78U6u4kVESnXOsosfGLS3MqlxhrqycdBw==\n";

    #[test]
    fn verifies_a_signature_made_by_minisign() {
        let key = PublicKey::from_file_text(MINISIGN_PUB).unwrap();
        assert_eq!(key.key_id(), "D254753AACD72B4A");
        let comment = verify(&[key], b"hello\n", MINISIGN_SIG.as_bytes()).unwrap();
        assert_eq!(comment, "nfeed feed=x seq=1 expires=2");
    }

    #[test]
    fn reads_a_minisign_unencrypted_secret_key_with_its_zero_checksum() {
        let secret = SecretKey::from_file_text(MINISIGN_KEY).unwrap();
        let public = PublicKey::from_file_text(MINISIGN_PUB).unwrap();
        assert_eq!(secret.public_key(), public);
        // Ed25519 is deterministic: the same key signs the same bytes the same way.
        let ours = secret.sign(b"hello\n", "nfeed feed=x seq=1 expires=2");
        let sig_line = |t: &str| t.lines().nth(1).map(str::to_string);
        assert_eq!(sig_line(&ours), sig_line(MINISIGN_SIG));
        // And our file form (with a real checksum) reads back.
        let again = SecretKey::from_file_text(&secret.to_file_text()).unwrap();
        assert_eq!(again.public_key(), public);
    }

    #[test]
    fn sign_then_verify_round_trip_and_tampering() {
        let secret = SecretKey::generate().unwrap();
        let public = secret.public_key();
        assert_eq!(PublicKey::from_base64(&public.to_base64()).unwrap(), public);
        assert_eq!(
            PublicKey::from_file_text(&public.to_file_text()).unwrap(),
            public
        );
        let sig = secret.sign(b"data", "nfeed feed=a seq=1 expires=9");
        assert_eq!(
            verify(std::slice::from_ref(&public), b"data", sig.as_bytes()).unwrap(),
            "nfeed feed=a seq=1 expires=9"
        );
        let err = verify(std::slice::from_ref(&public), b"datA", sig.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), "bad_signature", "{err}");
        let forged = sig.replace("seq=1", "seq=2");
        let err = verify(std::slice::from_ref(&public), b"data", forged.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("trusted comment"), "{err}");
        let other = SecretKey::generate().unwrap().public_key();
        let err = verify(&[other], b"data", sig.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), "unknown_key", "{err}");
        assert!(err.to_string().contains(&public.key_id()), "{err}");
    }

    #[test]
    fn rejects_garbage_signature_files() {
        let public = SecretKey::generate().unwrap().public_key();
        for bad in [
            &b""[..],
            b"<html>captive portal</html>",
            b"untrusted comment: x\nnot base64!\n",
            b"untrusted comment: x\nRWQ=\ntrusted comment: \nAA==\n",
            b"\xff\xfe",
        ] {
            let err = verify(std::slice::from_ref(&public), b"data", bad).unwrap_err();
            assert_eq!(err.kind(), "bad_signature", "{bad:?}: {err}");
        }
    }

    #[test]
    fn encrypted_secret_key_is_refused_with_advice() {
        // An encrypted key: same layout with kdf "Sc".
        let mut bytes = B64.decode(MINISIGN_KEY.lines().nth(1).unwrap()).unwrap();
        bytes[2..4].copy_from_slice(b"Sc");
        let text = format!("untrusted comment: x\n{}\n", B64.encode(&bytes));
        let err = SecretKey::from_file_text(&text).unwrap_err();
        assert_eq!(err.kind(), "encrypted_secret_key");
        assert!(err.to_string().contains("kidsafe feed keygen"), "{err}");
        assert!(err.to_string().contains("minisign -G -W"), "{err}");
    }

    #[test]
    fn corrupt_secret_key_checksum_is_refused() {
        let secret = SecretKey::generate().unwrap();
        let text = secret.to_file_text();
        let mut bytes = B64.decode(text.lines().nth(1).unwrap()).unwrap();
        bytes[130] ^= 1;
        let text = format!("untrusted comment: x\n{}\n", B64.encode(&bytes));
        let err = SecretKey::from_file_text(&text).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
