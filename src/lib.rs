//! kidsafe: a parental-control DNS filter for home routers and school networks.
//!
//! LAN clients use kidsafe as their resolver. Each client gets an age profile; each profile
//! blocks categories of names (adult, gambling, …) plus its own allow and deny lists; everything
//! else is forwarded to upstream resolvers and cached.
//!
//! # Layout
//! - [`config`]: the TOML schema, validation, and errors with file:line:column and key.
//! - [`category`]: the built-in category vocabulary and synonyms; bit assignment.
//! - [`blocklist`]: list formats, name normalisation, the compact suffix-matching store.
//! - [`policy`]: compiled profiles, client → profile matching, [`policy::Policy::decide`].
//! - [`runtime`]: the immutable compiled state the query path reads, swapped whole on reload.
//! - [`dns`]: the hickory-server handler, block answers, cache, upstream forwarding.
//! - [`feed`]: the national feed format: minisign signatures, the manifest, canonical lists
//!   and deltas, publishing.
//! - [`server`]: binding sockets and serving.
//! - [`reload`]: building a new runtime off the query path and swapping it in.
//! - [`daemon`]: the process: start, signals, stop.
//! - [`sdnotify`]: telling systemd we are ready, alive, reloading or stopping.
//! - [`state_file`]: atomic writes of the files under `state_dir`.
//! - [`logging`]: tracing setup that never lets a queried name or client address through.

#![forbid(unsafe_code)]

pub mod blocklist;
pub mod category;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod feed;
pub mod logging;
pub mod policy;
pub mod reload;
pub mod runtime;
pub mod sdnotify;
pub mod server;
pub mod state_file;
pub mod stats;
