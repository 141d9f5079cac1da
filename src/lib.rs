//! kidsafe: a parental-control DNS filter for home routers and school networks.
//!
//! LAN clients use kidsafe as their resolver. Each client gets an age profile; each profile
//! blocks categories of names (adult, gambling, …) plus its own allow and deny lists; everything
//! else is forwarded to upstream resolvers and cached.
//!
//! # Layout
//! From the bottom up (each module imports only those above it in this list; the test in
//! `tests/architecture.rs` keeps it so, and docs/architecture.md draws it):
//! - [`state_file`], [`sdnotify`], [`logging`], [`signal`]: plumbing that knows no rule —
//!   atomic state files, the systemd protocol, tracing that never lets a name through, the
//!   handle that asks for a reload.
//! - [`category`]: the built-in category vocabulary and synonyms; bit assignment.
//! - [`blocklist`]: list formats, name normalisation, the compact suffix-matching store (pure).
//! - [`lists`]: list directories on disk and the compiled-store cache.
//! - [`config`]: the TOML schema, validation, and errors with file:line:column and key.
//! - [`policy`]: compiled profiles, client → profile matching, [`policy::Policy::decide`] (pure).
//! - [`stats`]: counts by profile, category and client name; SQLite; reports.
//! - [`runtime`]: the immutable compiled state the query path reads, swapped whole on reload.
//! - [`live`]: overrides, neighbour tables and the ticker that keeps the live state current.
//! - [`dns`]: the request handler, block answers, cache, upstream forwarding, the UDP and TCP
//!   loops.
//! - [`feed`]: the national feed (format, publishing, the client) and list sources.
//! - [`reload`]: building a new runtime off the query path and swapping it in.
//! - [`http`]: the Prometheus endpoint.
//! - [`server`]: binding sockets and serving.
//! - [`daemon`]: the process: start, signals, stop.
//! - [`setup`]: `kidsafe setup`, from a fresh install to a filtering LAN.
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

pub mod blocklist;
pub mod category;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod feed;
pub mod http;
pub mod lists;
pub mod live;
pub mod logging;
pub mod policy;
pub mod reload;
pub mod runtime;
pub mod sdnotify;
pub mod server;
pub mod setup;
pub mod signal;
pub mod state_file;
pub mod stats;
