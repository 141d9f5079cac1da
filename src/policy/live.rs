//! What changes with time and with the world outside the config: schedule windows, a parent's
//! time-limited overrides (`kidsafe grant`, `kidsafe pause`), and which address a device's MAC
//! currently has. [`LiveState`] is computed from them at one instant (a pure function, so tests
//! inject the clock) and swapped into the runtime every second by [`run_ticker`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Policy;
use super::schedule;
use crate::blocklist::{Store, StoreBuilder};

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

/// One time-limited allowance: `kidsafe grant --profile teen --allow youtube.com --for 30m`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    /// The profile.
    pub profile: String,
    /// The name allowed, with its subdomains.
    pub allow: String,
    /// When it ends (RFC 3339).
    pub until: Timestamp,
}

/// One pause: `kidsafe pause --profile child --for 1h` blocks everything not allowed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pause {
    /// The profile.
    pub profile: String,
    /// When it ends (RFC 3339).
    pub until: Timestamp,
}

/// `state_dir/overrides.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Overrides {
    /// Allowances.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Pauses.
    #[serde(default)]
    pub pauses: Vec<Pause>,
}

impl Overrides {
    /// Reads the overrides file; a missing file means none. A damaged file is an error (the
    /// daemon then keeps the overrides it had).
    pub fn read(state_dir: &Path) -> Result<Self, String> {
        let path = state_dir.join(OVERRIDES_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Drops what has expired at `now`.
    pub fn prune(&mut self, now: Timestamp) {
        self.grants.retain(|g| g.until > now);
        self.pauses.retain(|p| p.until > now);
    }

    /// Writes the file atomically (temp file, fsync, rename).
    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::state_file::write_atomic(state_dir, OVERRIDES_FILE, &bytes)
    }
}

/// A MAC address.
pub type Mac = [u8; 6];

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// The `neighbour_tables` entry that means "ask the kernel with `ip neigh show`" (the only way
/// to read IPv6 neighbours without netlink code of our own).
pub const IP_NEIGH: &str = "ip neigh";

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

/// One profile's state at an instant.
#[derive(Debug, Clone, Default)]
pub struct ProfileNow {
    /// A schedule window or a pause blocks everything not allowed.
    pub block_all: bool,
    /// Categories blocked by schedule windows.
    pub extra_mask: u64,
    /// When this may change next (a window boundary or an override's end).
    pub next_change: Option<Timestamp>,
    /// Names granted for now.
    pub grants: Store,
}

/// The state of a profile with nothing in force, for lookups that find no state.
pub static IDLE: std::sync::LazyLock<ProfileNow> = std::sync::LazyLock::new(ProfileNow::default);

/// Everything time-dependent, at one instant.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// When it was computed.
    pub at: Option<Timestamp>,
    /// Per profile, by index.
    pub profiles: Vec<ProfileNow>,
    /// Client addresses matched by MAC: address → (profile, client rule).
    pub by_mac: HashMap<IpAddr, (usize, usize)>,
}

impl LiveState {
    /// Computes the state of `policy` at `now`.
    pub fn compute(
        policy: &Policy,
        overrides: &Overrides,
        neighbours: &HashMap<Mac, Vec<IpAddr>>,
        now: Timestamp,
    ) -> Self {
        let profiles = policy
            .profiles()
            .iter()
            .map(|p| {
                let mut state = ProfileNow::default();
                let sched = schedule::evaluate(&p.schedule, policy.timezone(), now);
                state.block_all = sched.block_all;
                state.extra_mask = sched.extra_mask;
                state.next_change = sched.next_change;
                let mut earliest = |t: Timestamp| {
                    if state.next_change.is_none_or(|n| t < n) {
                        state.next_change = Some(t);
                    }
                };
                let mut grants = StoreBuilder::default();
                for g in overrides
                    .grants
                    .iter()
                    .filter(|g| g.profile == p.name && g.until > now)
                {
                    grants.insert(&g.allow, 0);
                    earliest(g.until);
                }
                for pause in overrides
                    .pauses
                    .iter()
                    .filter(|x| x.profile == p.name && x.until > now)
                {
                    state.block_all = true;
                    earliest(pause.until);
                }
                state.grants = grants.build();
                state
            })
            .collect();
        let mut by_mac = HashMap::new();
        for (mac, (profile, rule)) in policy.mac_rules() {
            for ip in neighbours.get(mac).into_iter().flatten() {
                by_mac.insert(*ip, (*profile, *rule));
            }
        }
        Self {
            at: Some(now),
            profiles,
            by_mac,
        }
    }

    /// Seconds until profile `p`'s state may change, to cap answer TTLs (None: no change due).
    pub fn seconds_left(&self, p: usize) -> Option<u32> {
        let next = self.profiles.get(p)?.next_change?;
        let at = self.at?;
        let secs = next.as_second().saturating_sub(at.as_second()).max(1);
        Some(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

/// How often the ticker re-reads the neighbour tables.
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(10);

/// Recomputes the live state of the current runtime every second (and at once when asked
/// through `wake`), re-reading the overrides file when it changes and the neighbour tables every
/// few seconds. Never on the query path.
pub async fn run_ticker(
    runtime: crate::runtime::SharedRuntime,
    clock: Clock,
    wake: Arc<tokio::sync::Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut overrides_seen: Option<(SystemTime, u64)> = None;
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
            match Overrides::read(&state_dir) {
                Ok(o) => {
                    rt.set_overrides(o);
                    overrides_seen = stamp;
                }
                Err(e) => tracing::warn!("overrides not applied, keeping the previous ones: {e}"),
            }
        }
        if neighbours_read.is_none_or(|t| t.elapsed() >= NEIGHBOUR_REFRESH)
            && rt.policy.has_mac_rules()
        {
            rt.set_neighbours(read_neighbours(&rt.config.server.neighbour_tables));
            neighbours_read = Some(std::time::Instant::now());
        }
        rt.refresh_live(clock.now());
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
            Overrides::read(dir.path()).expect("none"),
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
        o.write(dir.path()).expect("write");
        assert_eq!(Overrides::read(dir.path()).expect("read"), o);
        o.prune(now);
        assert!(o.pauses.is_empty() && o.grants.len() == 1);
        std::fs::write(dir.path().join(OVERRIDES_FILE), "{ not json").expect("write");
        assert!(Overrides::read(dir.path()).is_err());
    }
}
