//! What changes with time and with the world outside the config: schedule windows, a parent's
//! time-limited overrides (`kidsafe grant`, `kidsafe pause`), and which address a device's MAC
//! currently has. [`LiveState`] is computed from them at one instant, a pure function, so tests
//! inject the clock. Reading the overrides file and the neighbour tables, and the ticker that
//! swaps a new state in every second, are the top-level `live` module's.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Policy;
use super::schedule;
use crate::blocklist::{Store, StoreBuilder};
use crate::config::Mac;

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
    /// Drops what has expired at `now`.
    pub fn prune(&mut self, now: Timestamp) {
        self.grants.retain(|g| g.until > now);
        self.pauses.retain(|p| p.until > now);
    }
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
