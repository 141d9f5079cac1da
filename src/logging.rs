//! Logging setup: human-readable on a terminal, plain lines for journald under systemd.
//!
//! Privacy is enforced here as well as at each call site: hickory's own targets log client
//! addresses and query names at INFO and DEBUG, and the file watcher (notify) logs every event
//! in the watched directories with its file name at TRACE, so they are capped at ERROR
//! whatever the config or `RUST_LOG` asks for.

use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Targets that may never log below ERROR, because their lines carry names, addresses or the
/// names of files beside the config.
const CAPPED_TARGETS: &[&str] = &["hickory_server", "hickory_proto", "hickory_net", "notify"];

/// Installs the global subscriber. `level` comes from `[log] level`; `RUST_LOG`, when set,
/// overrides it (but never lifts the cap on hickory's targets).
pub fn init(level: &str) {
    let wanted = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let cap = CAPPED_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::ERROR),
    );
    // systemd sets JOURNAL_STREAM for services; the journal stamps time itself.
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!under_systemd && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let layer = if under_systemd {
        layer.without_time().with_filter(wanted.and(cap)).boxed()
    } else {
        layer.with_filter(wanted.and(cap)).boxed()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
