//! `kidsafe stats`: what kind of content was blocked, per profile, per category and per day,
//! with small bar charts a parent can read at a glance. Days are UTC days.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::store::{StatsDb, StatsError, hour_of};

/// The longest bar, in characters.
const BAR_WIDTH: u64 = 30;

/// The report for the statistics database in `state_dir` (see [`render`]); says so when the
/// daemon has not written one yet.
pub fn for_state_dir(
    state_dir: &std::path::Path,
    now: SystemTime,
    days: u32,
    profile: Option<&str>,
) -> Result<String, String> {
    if !state_dir.join(super::store::DB_FILE).exists() {
        return Err(format!(
            "no statistics yet in {} (the daemon writes them every [stats] flush interval)",
            state_dir.display()
        ));
    }
    StatsDb::open(state_dir)
        .and_then(|(db, _)| render(&db, now, days, profile))
        .map_err(|e| e.to_string())
}

/// Renders the report for the last `days` days (today included), optionally one profile.
pub fn render(
    db: &StatsDb,
    now: SystemTime,
    days: u32,
    profile: Option<&str>,
) -> Result<String, StatsError> {
    let today = hour_of(now) - hour_of(now).rem_euclid(86_400);
    let since = today - i64::from(days.saturating_sub(1)) * 86_400;
    let blocked = db.blocked_by_day(since, profile)?;
    let totals = db.totals_by_day(since)?;

    let mut out = String::new();
    let scope = profile.map_or(String::new(), |p| format!(", profile {p}"));
    let _ = writeln!(
        out,
        "Blocked in the last {days} days{scope} ({} to {}, UTC)",
        day(since),
        day(today)
    );
    if blocked.is_empty() {
        let _ = writeln!(out, "\n  nothing was blocked");
    }

    // Per profile, per category, over the whole period.
    let mut by_category: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for (_, p, c, n) in &blocked {
        *by_category.entry((p.as_str(), c.as_str())).or_insert(0) += n;
    }
    let widest = by_category.values().copied().max().unwrap_or(0);
    let mut current = "";
    for ((p, c), n) in &by_category {
        if *p != current {
            let total: u64 = by_category
                .iter()
                .filter(|((q, _), _)| q == p)
                .map(|(_, v)| v)
                .sum();
            let _ = writeln!(out, "\n  profile {p}: {} blocked", thousands(total));
            current = p;
        }
        let _ = writeln!(out, "    {c:<14} {:>9}  {}", thousands(*n), bar(*n, widest));
    }

    // Per day, all profiles (or the one asked for).
    if !blocked.is_empty() {
        let _ = writeln!(out, "\n  per day");
        let mut per_day: std::collections::BTreeMap<i64, u64> = Default::default();
        for (d, _, _, n) in &blocked {
            *per_day.entry(*d).or_insert(0) += n;
        }
        let widest = per_day.values().copied().max().unwrap_or(0);
        for (d, n) in per_day {
            let _ = writeln!(
                out,
                "    {}     {:>9}  {}",
                day(d),
                thousands(n),
                bar(n, widest)
            );
        }
    }

    if profile.is_none() && !totals.is_empty() {
        let _ = writeln!(out, "\nAll queries per day");
        let _ = writeln!(
            out,
            "    {:<10} {:>10} {:>10} {:>10} {:>8}",
            "day", "blocked", "forwarded", "cached", "failed"
        );
        for (d, t) in totals {
            let _ = writeln!(
                out,
                "    {:<10} {:>10} {:>10} {:>10} {:>8}",
                day(d),
                thousands(t[0]),
                thousands(t[1]),
                thousands(t[2]),
                thousands(t[3])
            );
        }
    }
    Ok(out)
}

fn bar(n: u64, widest: u64) -> String {
    if widest == 0 || n == 0 {
        return String::new();
    }
    let len = (n * BAR_WIDTH).div_ceil(widest).max(1);
    "█".repeat(usize::try_from(len).unwrap_or(1))
}

fn day(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Drained;

    #[test]
    fn a_known_dataset_renders_as_expected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut db, _) = StatsDb::open(dir.path()).expect("open");
        // 2026-11-28 10:00 UTC and 2026-11-29 09:00 UTC.
        let day1 = 1_795_860_000;
        let day2 = 1_795_942_800;
        let mut a = Drained::default();
        a.blocked
            .insert(("child".into(), "gambling".into(), String::new()), 1200);
        a.blocked
            .insert(("child".into(), "adult".into(), String::new()), 300);
        a.totals = [1500, 9000, 4000, 2, 0];
        db.add(day1, &a).expect("add");
        let mut b = Drained::default();
        b.blocked
            .insert(("teen".into(), "adult".into(), String::new()), 12);
        b.totals = [12, 100, 50, 0, 0];
        db.add(day2, &b).expect("add");

        let now = UNIX_EPOCH + Duration::from_secs(1_795_950_000);
        let text = render(&db, now, 7, None).expect("render");
        let expected = "\
Blocked in the last 7 days (2026-11-23 to 2026-11-29, UTC)

  profile child: 1,500 blocked
    adult                300  ████████
    gambling           1,200  ██████████████████████████████

  profile teen: 12 blocked
    adult                 12  █

  per day
    2026-11-28         1,500  ██████████████████████████████
    2026-11-29            12  █

All queries per day
    day           blocked  forwarded     cached   failed
    2026-11-28      1,500      9,000      4,000        2
    2026-11-29         12        100         50        0
";
        assert_eq!(text, expected);

        let teen = render(&db, now, 1, Some("teen")).expect("render");
        assert!(
            teen.starts_with(
                "Blocked in the last 1 days, profile teen (2026-11-29 to 2026-11-29, UTC)"
            ),
            "{teen}"
        );
        assert!(teen.contains("adult                 12"), "{teen}");
        assert!(!teen.contains("child"), "{teen}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
