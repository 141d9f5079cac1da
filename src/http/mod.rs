//! The HTTP surface: today `GET /metrics` ([`metrics`]). It sits above the query path, the
//! statistics, the feed and the reloader, and only reads them: counters, the cache's size, the
//! feed's state files, the reload outcome. Nothing here can see a queried name.

pub mod metrics;
