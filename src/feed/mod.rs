//! The national feed (`nfeed/1`, docs/feed.md) and the other list sources: what an authority
//! publishes, what a client accepts, and how it gets and installs it.
//!
//! The format half owns the bytes: minisign-compatible keys and signatures ([`sign`]), the
//! signed manifest ([`manifest`]), the strict canonical list and delta files ([`canonical`]),
//! and the publisher behind `kidsafe feed keygen` / `kidsafe feed publish` ([`publish`]).
//! The client half fetches over HTTP(S) with caps and deadlines ([`fetch`]), runs one update
//! ([`update`]), installs snapshots atomically and picks the one to serve ([`snapshot`]),
//! keeps the feed and `[[lists.sources]]` ([`sources`]) current from the daemon ([`run`]), and
//! backs `kidsafe feed update` / `kidsafe feed status` ([`oneshot`], [`status`]). The runtime
//! only asks [`snapshot::select`] which directory to load.
//!
//! Invariants: nothing in a manifest is read before its signature verifies
//! ([`manifest::parse_verified`]); a list file is accepted whole or not at all
//! ([`canonical::check_list`]); every hash names the decoded, canonical bytes.

pub mod build;
pub mod canonical;
mod error;
pub mod fetch;
pub mod manifest;
pub mod oneshot;
pub mod publish;
pub mod run;
pub mod sign;
pub mod snapshot;
pub mod sources;
pub mod status;
pub mod update;

pub use error::FeedError;
pub use manifest::Manifest;
pub use sign::{PublicKey, SecretKey};
