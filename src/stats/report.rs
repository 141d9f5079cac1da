//! `kidsafe stats`: what kind of content was blocked, per profile, per category and per day,
//! with small bar charts a parent can read at a glance. Days are UTC days.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::store::{StatsDb, StatsError, hour_of};

/// The longest bar, in characters.
const BAR_WIDTH: u64 = 30;

/// What the report needs from the daemon's config.
#[derive(Debug, Clone)]
pub struct ReportConfig<'a> {
    /// `[server] state_dir`, which holds `stats.db`.
    pub state_dir: &'a std::path::Path,
    /// The configured profiles' names.
    pub profiles: Vec<&'a str>,
    /// `[stats] enabled`.
    pub enabled: bool,
    /// `[stats] flush`: how soon after start the first numbers are written.
    pub flush: Duration,
}

/// Why there is no report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    /// `--profile` names no profile of the config or the statistics (exit code 2).
    UnknownProfile(String),
    /// The database could not be read (exit code 1).
    Failed(String),
}

/// The report for the statistics database in `config.state_dir` (see [`render`]); says
/// so, and when the first numbers will appear, when the daemon has not written one yet.
pub fn for_state_dir(
    config: &ReportConfig<'_>,
    now: SystemTime,
    days: u32,
    profile: Option<&str>,
) -> Result<String, ReportError> {
    let path = config.state_dir.join(super::store::DB_FILE);
    // Unreadable is not "none yet": an admin without the rights must be told, not reassured.
    let exists = path.try_exists().map_err(|e| {
        ReportError::Failed(format!(
            "cannot read {} ({e}); the statistics belong to the daemon's user: try `sudo kidsafe stats`",
            path.display()
        ))
    })?;
    let db = if exists {
        Some(
            StatsDb::open(config.state_dir)
                .map(|(db, _)| db)
                .map_err(|e| ReportError::Failed(e.to_string()))?,
        )
    } else {
        None
    };
    if let Some(wanted) = profile {
        // A profile removed from the config still has its history.
        let mut known: Vec<String> = config.profiles.iter().map(|p| p.to_string()).collect();
        if let Some(db) = &db {
            known.extend(
                db.profiles()
                    .map_err(|e| ReportError::Failed(e.to_string()))?,
            );
        }
        known.sort();
        known.dedup();
        if !known.iter().any(|k| k == wanted) {
            let close = crate::config::suggest::closest(wanted, known.iter().map(String::as_str))
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            return Err(ReportError::UnknownProfile(format!(
                "no profile \"{wanted}\"{close}; the profiles are {}",
                known.join(", ")
            )));
        }
    }
    let Some(db) = db else {
        return Ok(if config.enabled {
            format!(
                "No statistics yet: the daemon writes its first numbers to {} within {} of starting ([stats] flush).\n",
                path.display(),
                humantime::format_duration(config.flush)
            )
        } else {
            "No statistics: they are off in the config ([stats] enabled = false).\n".to_string()
        });
    };
    render(&db, now, days, profile).map_err(|e| ReportError::Failed(e.to_string()))
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
    let period = if days == 1 {
        "day".to_string()
    } else {
        format!("{days} days")
    };
    let _ = writeln!(
        out,
        "Blocked in the last {period}{scope} ({} to {}, UTC)",
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
                "Blocked in the last day, profile teen (2026-11-29 to 2026-11-29, UTC)"
            ),
            "{teen}"
        );
        assert!(teen.contains("adult                 12"), "{teen}");
        assert!(!teen.contains("child"), "{teen}");
    }

    /// A state directory the caller cannot read is said as such, never "no statistics yet"
    /// (as a non-root admin was told about the daemon's 0700 directory). Root reads anything,
    /// so the test uses a path that cannot be looked into: a file where the directory is.
    #[test]
    fn an_unreadable_state_directory_is_not_reported_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("state");
        std::fs::write(&not_a_dir, "a file").expect("write");
        let config = ReportConfig {
            state_dir: &not_a_dir,
            profiles: vec!["teen"],
            enabled: true,
            flush: Duration::from_secs(60),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_795_950_000);
        match for_state_dir(&config, now, 7, None) {
            Err(ReportError::Failed(m)) => assert!(m.contains("cannot read"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    /// Issue 20: the first minute said "error: no statistics yet" (exit 1), and an unknown
    /// `--profile` said "nothing was blocked".
    #[test]
    fn no_database_yet_and_unknown_profiles_are_said_plainly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ReportConfig {
            state_dir: dir.path(),
            profiles: vec!["child", "teen"],
            enabled: true,
            flush: Duration::from_secs(60),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_795_950_000);
        assert_eq!(
            for_state_dir(&config, now, 7, None),
            Ok(format!(
                "No statistics yet: the daemon writes its first numbers to {} within 1m of starting ([stats] flush).\n",
                dir.path().join("stats.db").display()
            ))
        );
        config.enabled = false;
        assert_eq!(
            for_state_dir(&config, now, 7, None),
            Ok("No statistics: they are off in the config ([stats] enabled = false).\n".into())
        );
        assert_eq!(
            for_state_dir(&config, now, 7, Some("teeen")),
            Err(ReportError::UnknownProfile(
                "no profile \"teeen\" (did you mean \"teen\"?); the profiles are child, teen"
                    .into()
            ))
        );

        // A profile no longer in the config keeps its history.
        let (mut db, _) = StatsDb::open(dir.path()).expect("open");
        let mut a = Drained::default();
        a.blocked
            .insert(("exam".into(), "games".into(), String::new()), 3);
        db.add(1_795_942_800, &a).expect("add");
        let text = for_state_dir(&config, now, 1, Some("exam")).expect("report");
        assert!(text.contains("profile exam: 3 blocked"), "{text}");
        assert_eq!(
            for_state_dir(&config, now, 1, Some("nosuch")),
            Err(ReportError::UnknownProfile(
                "no profile \"nosuch\"; the profiles are child, exam, teen".into()
            ))
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
