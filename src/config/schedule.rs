//! Schedule windows as a config holds them: time windows in which a profile blocks everything
//! (bedtime) or more categories (homework), and the parsing of their days, times and dates.
//!
//! A window starts on the listed weekdays at `from` and ends at `to`, on the next day when `to`
//! is not after `from` (21:00 → 07:00 crosses midnight). `except` dates skip the windows that
//! start on them (holidays); `only` date ranges, when given, limit the windows to those dates
//! (term time). The policy's `schedule` module evaluates them at an instant.

use jiff::civil::Date;

/// What an active window does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Only allowed names resolve.
    BlockAll,
    /// These category bits are blocked too.
    Categories(u64),
}

/// An inclusive range of dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// First day.
    pub first: Date,
    /// Last day.
    pub last: Date,
}

impl DateRange {
    /// Parses `"2026-12-24"` or `"2027-02-15..2027-02-22"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let date = |s: &str| {
            s.trim()
                .parse::<Date>()
                .map_err(|_| format!("\"{s}\" is not a date; write e.g. \"2026-12-24\""))
        };
        let range = match text.split_once("..") {
            Some((a, b)) => Self {
                first: date(a)?,
                last: date(b)?,
            },
            None => {
                let d = date(text)?;
                Self { first: d, last: d }
            }
        };
        if range.last < range.first {
            return Err(format!("\"{text}\" ends before it starts"));
        }
        Ok(range)
    }

    /// Whether `d` is in the range.
    pub fn contains(&self, d: Date) -> bool {
        self.first <= d && d <= self.last
    }
}

/// One window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Weekdays on which the window starts (Monday = 0).
    pub days: [bool; 7],
    /// Start, local (hour, minute).
    pub from: (i8, i8),
    /// End, local (hour, minute); 24:00 means midnight at the end of the day.
    pub to: (i8, i8),
    /// What it does.
    pub effect: Effect,
    /// Start dates to skip.
    pub except: Vec<DateRange>,
    /// When not empty, only windows starting within these ranges count.
    pub only: Vec<DateRange>,
}

/// Parses `"mon"`, …, `"sun"`, `"weekdays"`, `"weekend"`, `"daily"` into day flags.
pub fn parse_days(names: &[&str]) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for name in names {
        match name.to_ascii_lowercase().as_str() {
            "mon" | "monday" => days[0] = true,
            "tue" | "tuesday" => days[1] = true,
            "wed" | "wednesday" => days[2] = true,
            "thu" | "thursday" => days[3] = true,
            "fri" | "friday" => days[4] = true,
            "sat" | "saturday" => days[5] = true,
            "sun" | "sunday" => days[6] = true,
            "weekdays" => days[..5].fill(true),
            "weekend" | "weekends" => days[5..].fill(true),
            "daily" | "every day" => days.fill(true),
            other => {
                return Err(format!(
                    "\"{other}\" is not a day; use mon, tue, wed, thu, fri, sat, sun, weekdays, weekend or daily"
                ));
            }
        }
    }
    Ok(days)
}

/// Parses `"21:00"` (and `"24:00"` when `allow_24` is set).
pub fn parse_time(text: &str, allow_24: bool) -> Result<(i8, i8), String> {
    let bad = || format!("\"{text}\" is not a time; write e.g. \"21:00\" or \"07:30\"");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    let ok = (0..24).contains(&h) && (0..60).contains(&m) || (allow_24 && h == 24 && m == 0);
    if ok { Ok((h, m)) } else { Err(bad()) }
}
