//! How big `stats.db` gets for a school: 90 days of hourly counters for `profiles` profiles,
//! `categories` categories blocked each hour and `clients` named client groups.
//!
//!     cargo run --release --example stats_size -- 4 12 20

use std::time::{Duration, SystemTime};

use kidsafe::stats::Drained;
use kidsafe::stats::store::{StatsDb, hour_of};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (profiles, categories, clients) = (arg(1, 4), arg(2, 12), arg(3, 20));
    let dir = tempfile::tempdir()?;
    let (mut db, _) = StatsDb::open(dir.path())?;
    let now = SystemTime::now();
    for h in 0..(90 * 24) {
        let mut d = Drained::default();
        for p in 0..profiles {
            for c in 0..categories {
                for k in 0..clients.max(1) {
                    let client = if clients == 0 {
                        String::new()
                    } else {
                        format!("group-{k}")
                    };
                    d.blocked.insert(
                        (format!("profile-{p}"), format!("category-{c}"), client),
                        17,
                    );
                }
            }
        }
        d.totals = [1000, 50_000, 30_000, 5, 0];
        db.add(hour_of(now - Duration::from_secs(h * 3600)), &d)?;
    }
    drop(db);
    let size: u64 = std::fs::read_dir(dir.path())?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let rows = 90 * 24 * profiles * categories * clients.max(1);
    println!(
        "{profiles} profiles x {categories} categories x {} client groups, 90 days hourly: {rows} rows, {:.1} MiB on disk",
        clients.max(1),
        size as f64 / 1048576.0
    );
    Ok(())
}
