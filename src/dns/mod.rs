//! The DNS side: the hickory-server request handler, block answers, the answer cache and
//! upstream forwarding.
//!
//! - [`handler`]: validation, access, policy, and the one mapping from any failure to an rcode.
//! - [`answer`]: the block responses kidsafe makes up.
//! - [`cache`]: upstream answers kept for their TTL.
//! - [`udp`]: kidsafe's own UDP loop (TCP is served by hickory-server).
//! - [`upstream`]: fresh queries to the configured resolvers, UDP with TCP retry.
//!
//! Nothing here logs a queried name or a client address, at any level.

pub mod answer;
pub mod cache;
pub mod handler;
pub mod udp;
pub mod upstream;

pub use handler::{Handler, SharedHandler};
