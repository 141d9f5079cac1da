//! `kidsafe feed status`: what is installed, how fresh it is, and what the last attempts did,
//! from the files under `state_dir/feed/` (so it works whether or not the daemon runs).

use std::fmt::Write as _;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::run::Attempts;
use super::snapshot::FeedState;
use super::update::clock_plausible;

/// After this long without a confirmed check, the feed is reported stale (FEED.md).
pub const STALE_AFTER: SignedDuration = SignedDuration::from_hours(48);

/// The feed's condition, as FEED.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Checked recently and not expired.
    Fresh,
    /// Not confirmed for more than 48 hours (still enforcing).
    Stale,
    /// Past the manifest's `expires_at` (still enforcing).
    Expired,
    /// The clock looks unset, so expiry cannot be judged.
    ClockUnsynced,
    /// No snapshot installed: the baseline lists are in force.
    Baseline,
}

impl Freshness {
    /// The word shown and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Stale => "stale",
            Self::Expired => "expired",
            Self::ClockUnsynced => "clock-unsynced",
            Self::Baseline => "baseline",
        }
    }
}

/// Judges the feed at `now`.
pub fn freshness(state: Option<&FeedState>, attempts: &Attempts, now: Timestamp) -> Freshness {
    let Some(state) = state.filter(|s| s.active.is_some()) else {
        return Freshness::Baseline;
    };
    if !clock_plausible(now) {
        return Freshness::ClockUnsynced;
    }
    if state.expires_at.is_some_and(|e| e <= now) {
        return Freshness::Expired;
    }
    let confirmed = attempts.last_success_at.or(state.published_at);
    if confirmed.is_none_or(|c| now.duration_since(c) > STALE_AFTER) {
        return Freshness::Stale;
    }
    Freshness::Fresh
}

/// The status report for the feed kept under `root`. `baseline` is the `[feed] baseline`
/// list files (path, canonical category): those of a category the snapshot does not carry
/// stay in force, and the report says so per category.
pub fn render(
    root: &Path,
    url: &str,
    baseline: &[(std::path::PathBuf, String)],
    now: Timestamp,
) -> String {
    let (state, damaged) = match FeedState::read(root) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e)),
    };
    let attempts = Attempts::read(root);
    let mut out = String::new();
    let condition = freshness(state.as_ref(), &attempts, now);
    let _ = writeln!(out, "feed:      {url}");
    let _ = writeln!(out, "state:     {}", condition.as_str());
    if let Some(e) = damaged {
        let _ = writeln!(out, "problem:   {e}");
    }
    if let Some(s) = state.as_ref().filter(|s| s.active.is_some()) {
        let _ = writeln!(out, "feed id:   {}", s.feed_id);
        let _ = writeln!(out, "sequence:  {}", s.sequence);
        if let Some(p) = s.published_at {
            let _ = writeln!(out, "published: {p} ({} ago)", ago(now, p));
        }
        if let Some(e) = s.expires_at {
            let _ = writeln!(out, "expires:   {e}");
        }
        if let Some(active) = &s.active {
            let previous = s
                .previous
                .as_ref()
                .map_or("none".to_string(), |p| p.dir.clone());
            let _ = writeln!(out, "snapshot:  {} (previous: {previous})", active.dir);
            for (category, file) in &active.categories {
                let _ = writeln!(
                    out,
                    "  {category:<16} {:>9} names  version {}  (feed)",
                    file.entries, file.version
                );
            }
            let carried: Vec<String> = active
                .categories
                .keys()
                .map(|id| crate::category::canonical_name(id))
                .collect();
            for (path, category) in baseline.iter().filter(|(_, c)| !carried.contains(c)) {
                let _ = writeln!(
                    out,
                    "  {category:<16} not in the feed: baseline {} in force",
                    path.display()
                );
            }
            if let Some(allow) = &active.allow {
                let _ = writeln!(
                    out,
                    "  {:<16} {:>9} names  version {}",
                    "(allowlist)", allow.entries, allow.version
                );
            }
        }
    } else {
        let _ = writeln!(
            out,
            "snapshot:  none yet; the [feed] baseline lists are in force"
        );
    }
    if let Some(at) = attempts.last_attempt_at {
        let what = attempts.last_outcome.as_deref().unwrap_or("?");
        let _ = writeln!(out, "last try:  {at} ({} ago): {what}", ago(now, at));
    }
    if let Some(at) = attempts.last_success_at {
        let _ = writeln!(out, "last ok:   {at} ({} ago)", ago(now, at));
    }
    if attempts.consecutive_failures > 0 {
        let _ = writeln!(
            out,
            "failures:  {} in a row; last: {} ({})",
            attempts.consecutive_failures,
            attempts.last_error.as_deref().unwrap_or("?"),
            attempts.last_error_kind.as_deref().unwrap_or("?")
        );
    }
    if !attempts.failures.is_empty() {
        let counts: Vec<String> = attempts
            .failures
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(out, "all failures: {}", counts.join(" "));
    }
    if let Some(next) = attempts.next_attempt_at {
        let _ = writeln!(out, "next try:  {next}");
    }
    for alarm in &attempts.alarms {
        let _ = writeln!(out, "ALARM:     {alarm}");
    }
    out
}

/// "3h 5m" style age.
fn ago(now: Timestamp, then: Timestamp) -> String {
    let seconds = now.duration_since(then).as_secs().max(0);
    let d = std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::snapshot::SnapshotInfo;

    fn installed(published: Timestamp, expires: Timestamp) -> FeedState {
        FeedState {
            feed_id: "al.kids".into(),
            sequence: 7,
            published_at: Some(published),
            expires_at: Some(expires),
            active: Some(SnapshotInfo {
                dir: "snap-7".into(),
                sequence: 7,
                categories: Default::default(),
                allow: None,
            }),
            ..FeedState::default()
        }
    }

    #[test]
    fn freshness_follows_the_clock_and_the_last_success() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().expect("time");
        let day = SignedDuration::from_hours(24);
        let state = installed(now - day, now + day * 6);
        let mut attempts = Attempts::default();
        assert_eq!(freshness(None, &attempts, now), Freshness::Baseline);
        assert_eq!(freshness(Some(&state), &attempts, now), Freshness::Fresh);
        assert_eq!(
            freshness(Some(&state), &attempts, now + day * 2),
            Freshness::Stale
        );
        attempts.last_success_at = Some(now + day * 2);
        assert_eq!(
            freshness(Some(&state), &attempts, now + day * 3),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(Some(&state), &attempts, now + day * 7),
            Freshness::Expired
        );
        let epoch = Timestamp::UNIX_EPOCH;
        assert_eq!(
            freshness(Some(&state), &attempts, epoch),
            Freshness::ClockUnsynced
        );
    }
}
