//! `state_dir/stats.db`: hourly counters in SQLite, for `kidsafe stats` and for admins with
//! `sqlite3`.
//!
//! Schema (documented in README; `hour` is the Unix time of the start of the UTC hour):
//!
//! ```sql
//! CREATE TABLE blocked (hour INTEGER NOT NULL, profile TEXT NOT NULL, category TEXT NOT NULL,
//!                       client TEXT NOT NULL DEFAULT '', count INTEGER NOT NULL,
//!                       PRIMARY KEY (hour, profile, category, client)) WITHOUT ROWID;
//! CREATE TABLE totals  (hour INTEGER PRIMARY KEY, blocked INTEGER NOT NULL, forwarded INTEGER NOT NULL,
//!                       cached INTEGER NOT NULL, failed INTEGER NOT NULL, refused INTEGER NOT NULL);
//! ```
//!
//! A database that is damaged (SQLite says corrupt or not a database, or `quick_check` fails,
//! at open or at the hourly check) is moved aside as `stats.db.broken-<unix time>`, with its
//! `-wal` and `-shm`, and recreated: statistics are worth keeping, but never at the price of
//! DNS service or of losing the next hour's counts. Any other failure to open (no file
//! descriptors left, permissions, a read-only disk) is not damage: the history stays where
//! it is, the counts wait in memory, and the next flush tries again.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use super::{Drained, TOTALS};

/// The database file name inside the state directory.
pub const DB_FILE: &str = "stats.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocked (
    hour INTEGER NOT NULL,
    profile TEXT NOT NULL,
    category TEXT NOT NULL,
    client TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, profile, category, client)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    hour INTEGER PRIMARY KEY,
    blocked INTEGER NOT NULL,
    forwarded INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    refused INTEGER NOT NULL
);
";

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// SQLite said no.
    #[error("statistics database {path}: {source}")]
    Sql {
        /// The database.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The state directory is not usable.
    #[error("statistics directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The hourly `quick_check` failed on the open database.
    #[error("{path}: the database is damaged (quick_check failed); it will be set aside")]
    Damaged {
        /// The database file.
        path: PathBuf,
    },
}

impl StatsError {
    /// Whether the error says the database file itself is damaged (as opposed to a failure
    /// to reach it: file descriptors, permissions, a read-only disk, a busy lock).
    pub fn is_damage(&self) -> bool {
        match self {
            StatsError::Sql {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ),
            _ => false,
        }
    }
}

/// The open statistics database.
pub struct StatsDb {
    path: PathBuf,
    conn: Connection,
}

/// The start of the UTC hour holding `t`, in Unix seconds.
pub fn hour_of(t: SystemTime) -> i64 {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs - secs % 3600).unwrap_or(0)
}

impl StatsDb {
    /// Opens (or creates) `dir/stats.db`. A broken file is moved aside and a new one created;
    /// the returned note says so, for the log.
    pub fn open(dir: &Path) -> Result<(Self, Option<String>), StatsError> {
        std::fs::create_dir_all(dir).map_err(|source| StatsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        match Self::open_at(&path) {
            Ok(db) => Ok((db, None)),
            Err(first) if first.is_damage() => {
                let aside = Self::move_aside(&path)?;
                let db = Self::open_at(&path)?;
                Ok((
                    db,
                    Some(format!(
                        "{first}; moved it to {} and started a new one",
                        aside.display()
                    )),
                ))
            }
            Err(other) => Err(other),
        }
    }

    /// SQLite's `quick_check`: false when the file is damaged (run hourly by the flusher, so
    /// damage is found while running, not only at the next start).
    pub fn quick_check(&self) -> Result<bool, StatsError> {
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|source| StatsError::Sql {
                path: self.path.clone(),
                source,
            })?;
        Ok(check == "ok")
    }

    fn open_at(path: &Path) -> Result<Self, StatsError> {
        let sql = |source| StatsError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(sql)?;
        // WAL keeps readers (kidsafe stats) from blocking the flush; `quick_check` catches a
        // damaged file at open rather than at the first write.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql)?;
        if check != "ok" {
            return Err(sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("integrity check failed: {check}")),
            )));
        }
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn,
        })
    }

    fn move_aside(path: &Path) -> Result<PathBuf, StatsError> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = path.with_file_name(format!("{DB_FILE}.broken-{stamp}"));
        let io = |source| StatsError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::rename(path, &aside).map_err(io)?;
        // The write-ahead log belongs to the damaged file: it goes with it, never onto the
        // new database.
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&side, &to).map_err(io)?;
            }
        }
        Ok(aside)
    }

    /// Adds drained counts to the rows of `hour`, in one transaction.
    pub fn add(&mut self, hour: i64, drained: &Drained) -> Result<(), StatsError> {
        if drained.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let sql = |source| StatsError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut blocked = tx
                .prepare_cached(
                    "INSERT INTO blocked (hour, profile, category, client, count) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (hour, profile, category, client) DO UPDATE SET count = count + excluded.count",
                )
                .map_err(sql)?;
            for ((profile, category, client), count) in &drained.blocked {
                let count = i64::try_from(*count).unwrap_or(i64::MAX);
                blocked
                    .execute(params![hour, profile, category, client, count])
                    .map_err(sql)?;
            }
            let t: Vec<i64> = drained
                .totals
                .iter()
                .map(|v| i64::try_from(*v).unwrap_or(i64::MAX))
                .collect();
            let columns = TOTALS.join(", ");
            let updates: Vec<String> = TOTALS
                .iter()
                .map(|c| format!("{c} = {c} + excluded.{c}"))
                .collect();
            tx.execute(
                &format!(
                    "INSERT INTO totals (hour, {columns}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (hour) DO UPDATE SET {}",
                    updates.join(", ")
                ),
                params![hour, t[0], t[1], t[2], t[3], t[4]],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Deletes rows older than `days` before `now`. Returns how many rows went.
    pub fn prune(&self, now: SystemTime, days: u32) -> Result<usize, StatsError> {
        let cutoff = hour_of(now) - i64::from(days) * 86_400;
        let sql = |source| StatsError::Sql {
            path: self.path.clone(),
            source,
        };
        let a = self
            .conn
            .execute("DELETE FROM blocked WHERE hour < ?1", [cutoff])
            .map_err(sql)?;
        let b = self
            .conn
            .execute("DELETE FROM totals WHERE hour < ?1", [cutoff])
            .map_err(sql)?;
        Ok(a + b)
    }

    /// Blocked counts per (day start, profile, category) since `since`, optionally for one profile.
    pub fn blocked_by_day(
        &self,
        since: i64,
        profile: Option<&str>,
    ) -> Result<Vec<(i64, String, String, u64)>, StatsError> {
        let sql = |source| StatsError::Sql {
            path: self.path.clone(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT hour - hour % 86400 AS day, profile, category, SUM(count) FROM blocked
                 WHERE hour >= ?1 AND (?2 IS NULL OR profile = ?2)
                 GROUP BY day, profile, category ORDER BY day, profile, category",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![since, profile], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                ))
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// Every profile that has blocked counts, by name.
    pub fn profiles(&self) -> Result<Vec<String>, StatsError> {
        let sql = |source| StatsError::Sql {
            path: self.path.clone(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT profile FROM blocked ORDER BY profile")
            .map_err(sql)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// Totals per day since `since`: (day start, [blocked, forwarded, cached, failed, refused]).
    pub fn totals_by_day(&self, since: i64) -> Result<Vec<(i64, [u64; 5])>, StatsError> {
        let sql = |source| StatsError::Sql {
            path: self.path.clone(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT hour - hour % 86400 AS day, SUM(blocked), SUM(forwarded), SUM(cached), SUM(failed), SUM(refused)
                 FROM totals WHERE hour >= ?1 GROUP BY day ORDER BY day",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([since], |r| {
                let mut t = [0u64; 5];
                for (i, slot) in t.iter_mut().enumerate() {
                    *slot = u64::try_from(r.get::<_, i64>(i + 1)?).unwrap_or(0);
                }
                Ok((r.get(0)?, t))
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn drained(profile: &str, category: &str, n: u64) -> Drained {
        let mut d = Drained::default();
        d.blocked
            .insert((profile.into(), category.into(), String::new()), n);
        d.totals = [n, 10, 5, 1, 0];
        d
    }

    #[test]
    fn flushes_add_up_within_an_hour() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut db, note) = StatsDb::open(dir.path()).expect("open");
        assert!(note.is_none());
        let hour = hour_of(SystemTime::now());
        db.add(hour, &drained("child", "gambling", 3)).expect("add");
        db.add(hour, &drained("child", "gambling", 4)).expect("add");
        let rows = db.blocked_by_day(hour - 86_400, None).expect("query");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].1.as_str(), rows[0].2.as_str(), rows[0].3),
            ("child", "gambling", 7)
        );
        let totals = db.totals_by_day(0).expect("totals");
        assert_eq!(totals[0].1, [7, 20, 10, 2, 0]);
    }

    #[test]
    fn rows_past_retention_are_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut db, _) = StatsDb::open(dir.path()).expect("open");
        let now = SystemTime::now();
        let old = now - Duration::from_secs(91 * 86_400);
        db.add(hour_of(old), &drained("teen", "adult", 1))
            .expect("old");
        db.add(hour_of(now), &drained("teen", "adult", 2))
            .expect("new");
        assert_eq!(
            db.prune(now, 90).expect("prune"),
            2,
            "one blocked row and one totals row"
        );
        let rows = db.blocked_by_day(0, None).expect("query");
        assert_eq!(rows.iter().map(|r| r.3).sum::<u64>(), 2);
    }

    #[test]
    fn a_corrupt_database_is_moved_aside_and_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(DB_FILE),
            b"this is not an SQLite database, just junk bytes ".repeat(100),
        )
        .expect("write");
        let (mut db, note) = StatsDb::open(dir.path()).expect("recovers");
        let note = note.expect("says what it did");
        assert!(note.contains("moved it to"), "{note}");
        db.add(hour_of(SystemTime::now()), &drained("child", "adult", 1))
            .expect("usable");
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("stats.db.broken-")
            })
            .collect();
        assert_eq!(kept.len(), 1, "the broken file is kept for inspection");
    }

    #[test]
    fn a_database_that_cannot_be_reached_is_not_moved_aside() {
        // As with no file descriptors left or a read-only disk: not damage, so the history
        // stays. Here a directory stands where the file should be.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(DB_FILE)).expect("mkdir");
        std::fs::write(dir.path().join(DB_FILE).join("history"), "keep").expect("write");
        let err = StatsDb::open(dir.path()).err().expect("cannot open");
        assert!(!err.is_damage(), "{err}");
        assert!(dir.path().join(DB_FILE).join("history").exists());
        let moved = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("broken"));
        assert!(!moved, "nothing is moved aside");
    }

    #[test]
    fn the_write_ahead_log_goes_aside_with_a_damaged_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DB_FILE);
        std::fs::write(&path, b"junk").expect("write");
        std::fs::write(dir.path().join("stats.db-wal"), b"its log").expect("write");
        std::fs::write(dir.path().join("stats.db-shm"), b"its index").expect("write");
        let aside = StatsDb::move_aside(&path).expect("moved");
        for suffix in ["", "-wal", "-shm"] {
            assert!(
                !dir.path().join(format!("stats.db{suffix}")).exists(),
                "{suffix}"
            );
            let moved = PathBuf::from(format!("{}{suffix}", aside.display()));
            assert!(moved.exists(), "{}", moved.display());
        }
    }
}
