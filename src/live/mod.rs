//! The I/O behind live state: the overrides file (`kidsafe grant`, `kidsafe pause`), the
//! neighbour tables that map a device's MAC to its addresses, and the ticker that recomputes
//! the runtime's [`LiveState`] every second from them and the [`Clock`]. What the state *is*
//! and how it is computed is `crate::policy::live`'s (pure); this module only reads, writes and
//! swaps, never on the query path.

mod command;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

pub use command::{OverrideError, add_override};

use crate::config::{IP_NEIGH, Mac, parse_mac};
use crate::policy::live::{LiveState, Overrides};
use crate::runtime::{Runtime, SharedRuntime};

/// The overrides file inside the state directory.
pub const OVERRIDES_FILE: &str = "overrides.json";

/// Where "now" comes from: the system clock, or a fixed instant tests move by hand.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that only moves when told to.
    Fixed(Arc<Mutex<Timestamp>>),
}

impl Clock {
    /// A fixed clock at `t`.
    pub fn fixed(t: Timestamp) -> Self {
        Clock::Fixed(Arc::new(Mutex::new(t)))
    }

    /// The current instant.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => t.lock().map_or(Timestamp::UNIX_EPOCH, |t| *t),
        }
    }

    /// Moves a fixed clock (no effect on the system clock).
    pub fn set(&self, t: Timestamp) {
        if let Clock::Fixed(cell) = self
            && let Ok(mut now) = cell.lock()
        {
            *now = t;
        }
    }
}

/// Reads the overrides file; a missing file means none. A damaged file is an error (the
/// daemon then keeps the overrides it had).
pub fn read_overrides(state_dir: &Path) -> Result<Overrides, String> {
    let path = state_dir.join(OVERRIDES_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Overrides::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the overrides file atomically (temp file, fsync, rename).
pub fn write_overrides(overrides: &Overrides, state_dir: &Path) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(overrides).map_err(std::io::Error::other)?;
    crate::state_file::write_atomic(state_dir, OVERRIDES_FILE, &bytes)
}

/// Reads neighbour tables: `/proc/net/arp` lines (`IP HW-type Flags MAC Mask Device`) and
/// `ip neigh` lines (`IP dev DEV lladdr MAC STATE`), from files or, for the entry
/// [`IP_NEIGH`], from the `ip` command. Unreadable tables and unparsable lines are skipped.
pub fn read_neighbours(paths: &[PathBuf]) -> HashMap<Mac, Vec<IpAddr>> {
    let mut out: HashMap<Mac, Vec<IpAddr>> = HashMap::new();
    for path in paths {
        let text = if path.as_os_str() == IP_NEIGH {
            match std::process::Command::new("ip")
                .args(["neigh", "show"])
                .output()
            {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                _ => continue,
            }
        } else {
            match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(_) => continue,
            }
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(ip) = words.first().and_then(|w| w.parse::<IpAddr>().ok()) else {
                continue;
            };
            let mac = match words.iter().position(|w| *w == "lladdr") {
                Some(i) => words.get(i + 1).and_then(|m| parse_mac(m)),
                None => words.get(3).and_then(|m| parse_mac(m)),
            };
            if let Some(mac) = mac.filter(|m| *m != [0; 6]) {
                out.entry(mac).or_default().push(ip);
            }
        }
    }
    out
}

/// Replaces the runtime's overrides (the next [`refresh_live`] applies them).
pub fn set_overrides(runtime: &Runtime, overrides: Overrides) {
    if let Ok(mut o) = runtime.overrides.lock() {
        *o = overrides;
    }
}

/// Replaces the runtime's neighbour table (the next [`refresh_live`] applies it).
pub fn set_neighbours(runtime: &Runtime, neighbours: HashMap<Mac, Vec<IpAddr>>) {
    if let Ok(mut n) = runtime.neighbours.lock() {
        *n = neighbours;
    }
}

/// Recomputes the runtime's live state at `now` and swaps it in.
pub fn refresh_live(runtime: &Runtime, now: Timestamp) {
    let (Ok(overrides), Ok(neighbours)) = (runtime.overrides.lock(), runtime.neighbours.lock())
    else {
        return;
    };
    let state = LiveState::compute(&runtime.policy, &overrides, &neighbours, now);
    runtime.live.store(Arc::new(state));
}

/// How often the ticker re-reads the neighbour tables.
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(10);

/// Recomputes the live state of the current runtime every second (and at once when asked
/// through `wake`), re-reading the overrides file when it changes and the neighbour tables every
/// few seconds. Never on the query path.
pub async fn run_ticker(
    runtime: SharedRuntime,
    clock: Clock,
    wake: Arc<tokio::sync::Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut overrides_seen: Option<(SystemTime, u64)> = None;
    // The version of a damaged overrides file already warned about: warned once, and again
    // only when it changes (not every second, nor after every reload).
    let mut overrides_warned: Option<Option<(SystemTime, u64)>> = None;
    let mut neighbours_read: Option<std::time::Instant> = None;
    let mut last_runtime = std::sync::Weak::new();
    loop {
        let rt = runtime.load_full();
        if !std::sync::Weak::ptr_eq(&last_runtime, &Arc::downgrade(&rt)) {
            // A reload: the new runtime read overrides and neighbours when it was built; make
            // sure the next file change is noticed against it.
            last_runtime = Arc::downgrade(&rt);
            overrides_seen = None;
            neighbours_read = None;
        }
        let state_dir = rt.config.server.state_dir.clone();
        let stamp = std::fs::metadata(state_dir.join(OVERRIDES_FILE))
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != overrides_seen {
            match read_overrides(&state_dir) {
                Ok(o) => {
                    set_overrides(&rt, o);
                    overrides_seen = stamp;
                    overrides_warned = None;
                }
                Err(e) if overrides_warned != Some(stamp) => {
                    tracing::warn!("overrides not applied, keeping the previous ones: {e}");
                    overrides_warned = Some(stamp);
                }
                Err(_) => {}
            }
        }
        if neighbours_read.is_none_or(|t| t.elapsed() >= NEIGHBOUR_REFRESH)
            && rt.policy.has_mac_rules()
        {
            set_neighbours(&rt, read_neighbours(&rt.config.server.neighbour_tables));
            neighbours_read = Some(std::time::Instant::now());
        }
        refresh_live(&rt, clock.now());
        drop(rt);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_mac;
    use crate::policy::live::{Grant, Pause};

    #[test]
    fn macs_and_neighbour_tables() {
        assert_eq!(
            parse_mac("aa:bb:cc:dd:ee:0f"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f])
        );
        assert_eq!(
            parse_mac("AA-BB-CC-DD-EE-FF"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(parse_mac("aa:bb:cc"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let arp = dir.path().join("arp");
        std::fs::write(
            &arp,
            "IP address       HW type     Flags       HW address            Mask     Device\n\
             192.168.1.40     0x1         0x2         aa:bb:cc:dd:ee:01     *        br-lan\n\
             192.168.1.41     0x1         0x0         00:00:00:00:00:00     *        br-lan\n",
        )
        .expect("write");
        let neigh = dir.path().join("neigh");
        std::fs::write(
            &neigh,
            "fd00::40 dev br-lan lladdr aa:bb:cc:dd:ee:01 REACHABLE\nfe80::9 dev br-lan FAILED\n",
        )
        .expect("write");
        let table = read_neighbours(&[arp, neigh, dir.path().join("missing")]);
        let ips = table
            .get(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01])
            .expect("found");
        assert_eq!(ips.len(), 2);
        assert_eq!(table.len(), 1, "incomplete entries are skipped");
    }

    #[test]
    fn overrides_round_trip_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            read_overrides(dir.path()).expect("none"),
            Overrides::default()
        );
        let now = Timestamp::now();
        let mut o = Overrides {
            grants: vec![Grant {
                profile: "teen".into(),
                allow: "youtube.com".into(),
                until: now + jiff::SignedDuration::from_mins(30),
            }],
            pauses: vec![Pause {
                profile: "child".into(),
                until: now - jiff::SignedDuration::from_mins(1),
            }],
        };
        write_overrides(&o, dir.path()).expect("write");
        assert_eq!(read_overrides(dir.path()).expect("read"), o);
        o.prune(now);
        assert!(o.pauses.is_empty() && o.grants.len() == 1);
        std::fs::write(dir.path().join(OVERRIDES_FILE), "{ not json").expect("write");
        assert!(read_overrides(dir.path()).is_err());
    }
}
