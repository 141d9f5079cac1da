//! The systemd notification protocol (`sd_notify(3)`): state lines such as `READY=1`,
//! `STATUS=…`, `WATCHDOG=1` and `STOPPING=1`, each sent as one datagram to the Unix socket
//! named by `$NOTIFY_SOCKET`.
//!
//! The protocol is one `sendto` of newline-separated `KEY=VALUE` lines, so it is written here on
//! `std`'s `UnixDatagram` rather than pulled in as a crate: no `unsafe`, no libsystemd. Paths
//! starting with `/` are filesystem sockets; `@name` is a Linux abstract socket (what systemd
//! uses for some services, and what a test can bind without a directory).
//!
//! Invariants: sending never blocks a worker thread (the socket is non-blocking, and a full
//! queue loses that one message, which systemd tolerates); without `$NOTIFY_SOCKET` (not run by
//! systemd, or `Type=exec`) every call is a no-op. Messages never hold a name or an address of
//! a client, only counts.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The longest watchdog ping interval we honour, whatever `WATCHDOG_USEC` says: a ping is
/// cheap, and a huge value is more likely a typo than a wish.
const MAX_WATCHDOG_PING: Duration = Duration::from_secs(3600);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier systemd asked for through `$NOTIFY_SOCKET`, or `None` when the daemon is
    /// not run under `Type=notify`. An unusable socket is logged once and treated as absent:
    /// DNS service matters more than telling systemd about it.
    pub fn from_env() -> Option<Arc<Self>> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str().unwrap_or_default();
        match Self::connect(path) {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => {
                warn!(socket = %path, "cannot use NOTIFY_SOCKET, systemd will not hear from kidsafe: {e}");
                None
            }
        }
    }

    /// A notifier for the socket at `path` (`/run/…` or `@abstract`).
    pub fn connect(path: &str) -> io::Result<Self> {
        let addr = socket_addr(path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket, addr })
    }

    /// Sends `state` (one or more `KEY=VALUE` lines) as one datagram.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }

    /// Sends `state`, logging (not returning) a failure: callers on the serving path have
    /// nothing better to do with it.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.send(state) {
            warn!("cannot notify systemd: {e}");
        }
    }
}

fn socket_addr(path: &str) -> io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name.as_bytes());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract sockets exist only on Linux",
            ));
        }
    }
    if path.starts_with('/') {
        return SocketAddr::from_pathname(path);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("\"{path}\" is neither an absolute path nor an @abstract name"),
    ))
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as `sd_watchdog_enabled(3)`
/// advises, or `None` when systemd does not watch this process (no `WatchdogSec=`, or
/// `$WATCHDOG_PID` names another process).
pub fn watchdog_interval() -> Option<Duration> {
    let pid = std::env::var("WATCHDOG_PID").ok();
    let usec = std::env::var("WATCHDOG_USEC").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some((Duration::from_micros(usec) / 2).min(MAX_WATCHDOG_PING))
}

/// Sends `WATCHDOG=1` every `interval` until `stop`. It is a task on the DNS runtime on
/// purpose: if the runtime's workers stall (a blocking call on the query path, a deadlock),
/// the pings stop and systemd restarts the daemon, which is the point of the watchdog.
pub async fn run_watchdog(notifier: Arc<Notifier>, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    // After a stall, one ping is enough; a burst would hide how long the stall was.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => notifier.notify("WATCHDOG=1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec_for_this_pid() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(parse_watchdog(Some("30000000"), None, 7), half);
        assert_eq!(parse_watchdog(Some("30000000"), Some("7"), 7), half);
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("soon"), None, 7), None);
        assert_eq!(
            parse_watchdog(Some("99999999999999"), None, 7),
            Some(MAX_WATCHDOG_PING)
        );
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::connect(path.to_str().expect("utf-8")).expect("connect");
        notifier.send("READY=1\nSTATUS=ok").expect("send");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "kidsafe-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind");
        let notifier = Notifier::connect(&format!("@{name}")).expect("connect");
        notifier.send("WATCHDOG=1").expect("send");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn a_relative_path_is_refused_with_a_reason() {
        let err = Notifier::connect("run/notify").expect_err("relative");
        assert!(err.to_string().contains("absolute path"), "{err}");
    }
}
