//! The DNS side: the hickory-server request handler, block answers, the answer cache and
//! upstream forwarding.
//!
//! - [`handler`]: validation, access, policy, and the one mapping from any failure to an rcode;
//!   its forwarding half (cache, coalescing, upstreams, prefetch, CNAME cloaking) is in
//!   `resolve`, its reply half (EDE, OPT, header checks, writing answers) in `reply`.
//! - [`answer`]: the block responses kidsafe makes up.
//! - [`cache`]: upstream answers kept for their TTL, and after it for serve-stale.
//! - [`coalesce`]: identical concurrent cache misses share one upstream query.
//! - [`ratelimit`]: a token bucket per client address.
//! - [`rebind`]: upstream answers pointing public names into the LAN are emptied.
//! - [`tcp`]: kidsafe's own TCP loop: a cap on connections, an idle timeout, pipelining.
//! - [`udp`]: kidsafe's own UDP loop.
//! - [`request`]: one raw message in, its encoded answer out (shared by both loops).
//! - [`upstream`]: fresh queries to the configured resolvers (UDP with TCP retry, TCP, TLS,
//!   HTTPS), health, and the order they are asked in.
//!
//! Nothing here logs a queried name or a client address, at any level.

pub mod answer;
pub mod cache;
pub mod coalesce;
pub mod handler;
pub mod ratelimit;
pub mod rebind;
mod reply;
pub mod request;
mod resolve;
pub mod tcp;
pub mod udp;
pub mod upstream;

pub use handler::{Handler, SharedHandler};
