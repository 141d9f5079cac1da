//! The national feed's format (`nfeed/1`, docs/feed.md): what an authority publishes and what
//! a client accepts, without any networking.
//!
//! This module owns the bytes: minisign-compatible keys and signatures ([`sign`]), the signed
//! manifest ([`manifest`]), the strict canonical list and delta files ([`canonical`]), and the
//! publisher behind `kidsafe feed keygen` / `kidsafe feed publish` ([`publish`]). Fetching,
//! installing snapshots and swapping them into the daemon live elsewhere and only call in here.
//!
//! Invariants: nothing in a manifest is read before its signature verifies
//! ([`manifest::parse_verified`]); a list file is accepted whole or not at all
//! ([`canonical::check_list`]); every hash names the decoded, canonical bytes.

pub mod canonical;
mod error;
pub mod manifest;
pub mod publish;
pub mod sign;

pub use error::FeedError;
pub use manifest::Manifest;
pub use sign::{PublicKey, SecretKey};
