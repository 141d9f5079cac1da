//! Schedules at an instant: which windows (`crate::config::schedule`) are in force, in the
//! configured time zone, daylight-saving time included, and when that changes next.
//! Evaluation is a pure function of the instant, so tests inject the clock.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

pub use crate::config::schedule::{DateRange, Effect, Window, parse_days, parse_time};

/// The schedule's effect at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// Some window blocks everything.
    pub block_all: bool,
    /// Category bits blocked by windows.
    pub extra_mask: u64,
    /// The next instant at which the effect may change (a window starts or ends).
    pub next_change: Option<Timestamp>,
}

/// Evaluates `windows` at `now` in `tz`.
pub fn evaluate(windows: &[Window], tz: &TimeZone, now: Timestamp) -> Now {
    let mut out = Now::default();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let mut day = today.yesterday().unwrap_or(today);
    // Yesterday (a window may still run past midnight) through a week ahead.
    for _ in 0..9 {
        for w in windows {
            let Some((start, end)) = instance(w, day, tz) else {
                continue;
            };
            if start <= now && now < end {
                match w.effect {
                    Effect::BlockAll => out.block_all = true,
                    Effect::Categories(mask) => out.extra_mask |= mask,
                }
            }
            for boundary in [start, end] {
                if boundary > now && out.next_change.is_none_or(|n| boundary < n) {
                    out.next_change = Some(boundary);
                }
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    out
}

/// The window starting on `day`, if it does: its start and end instants.
fn instance(w: &Window, day: Date, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    let weekday: Weekday = day.weekday();
    let index = usize::try_from(weekday.to_monday_zero_offset()).ok()?;
    if !w.days[index] || w.except.iter().any(|r| r.contains(day)) {
        return None;
    }
    if !w.only.is_empty() && !w.only.iter().any(|r| r.contains(day)) {
        return None;
    }
    // Times that do not exist (a DST gap) move forward, repeated ones take the first:
    // jiff's "compatible" disambiguation, the same as most calendars.
    let start = day
        .at(w.from.0, w.from.1, 0, 0)
        .to_zoned_datetime(tz.clone())
        .ok()?
        .timestamp();
    let crosses = w.to <= w.from;
    let (end_day, (h, m)) = match (w.to, crosses) {
        ((24, _), _) => (day.tomorrow().ok()?, (0, 0)),
        (to, true) => (day.tomorrow().ok()?, to),
        (to, false) => (day, to),
    };
    let end = end_day
        .at(h, m, 0, 0)
        .to_zoned_datetime(tz.clone())
        .ok()?
        .timestamp();
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tirane() -> TimeZone {
        TimeZone::get("Europe/Tirane").expect("tz database bundled")
    }

    fn at(local: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = local.parse().expect("datetime");
        dt.to_zoned_datetime(tirane()).expect("zoned").timestamp()
    }

    fn bedtime() -> Window {
        Window {
            days: parse_days(&["weekdays"]).expect("days"),
            from: (21, 0),
            to: (7, 0),
            effect: Effect::BlockAll,
            except: vec![],
            only: vec![],
        }
    }

    #[test]
    fn a_window_crossing_midnight() {
        let w = [bedtime()];
        // 2026-12-01 is a Tuesday.
        assert!(!evaluate(&w, &tirane(), at("2026-12-01T20:59")).block_all);
        assert!(evaluate(&w, &tirane(), at("2026-12-01T21:00")).block_all);
        assert!(
            evaluate(&w, &tirane(), at("2026-12-02T06:59")).block_all,
            "past midnight"
        );
        assert!(!evaluate(&w, &tirane(), at("2026-12-02T07:00")).block_all);
        // Friday's window runs into Saturday; Saturday's does not start.
        assert!(evaluate(&w, &tirane(), at("2026-12-05T03:00")).block_all);
        assert!(!evaluate(&w, &tirane(), at("2026-12-05T22:00")).block_all);
        let now = evaluate(&w, &tirane(), at("2026-12-01T20:00"));
        assert_eq!(now.next_change, Some(at("2026-12-01T21:00")));
        let inside = evaluate(&w, &tirane(), at("2026-12-01T23:00"));
        assert_eq!(inside.next_change, Some(at("2026-12-02T07:00")));
    }

    #[test]
    fn daylight_saving_changes_are_local_time() {
        // Albania leaves summer time on 2026-10-25 (Sunday) at 03:00 → 02:00.
        let w = [Window {
            days: parse_days(&["daily"]).expect("days"),
            ..bedtime()
        }];
        let evening = evaluate(&w, &tirane(), at("2026-10-24T20:00"));
        let end = evaluate(&w, &tirane(), at("2026-10-24T22:00"))
            .next_change
            .expect("ends");
        let start = evening.next_change.expect("starts");
        // 21:00 → 07:00 over the change is 11 hours of real time, not 10.
        assert_eq!(end.duration_since(start).as_secs(), 11 * 3600);
        assert!(evaluate(&w, &tirane(), at("2026-10-25T06:30")).block_all);
        assert!(!evaluate(&w, &tirane(), at("2026-10-25T07:00")).block_all);
        // Into summer time (2027-03-28, 02:00 → 03:00): 10 hours become 9.
        let s = evaluate(&w, &tirane(), at("2027-03-27T20:00"))
            .next_change
            .expect("start");
        let e = evaluate(&w, &tirane(), at("2027-03-27T22:00"))
            .next_change
            .expect("end");
        assert_eq!(e.duration_since(s).as_secs(), 9 * 3600);
    }

    #[test]
    fn holidays_and_term_time() {
        let mut w = bedtime();
        w.except = vec![
            DateRange::parse("2026-12-24").expect("d"),
            DateRange::parse("2027-02-15..2027-02-22").expect("r"),
        ];
        let w = [w];
        // Thursday 2026-12-24 is a holiday: no bedtime that night.
        assert!(!evaluate(&w, &tirane(), at("2026-12-24T22:00")).block_all);
        assert!(evaluate(&w, &tirane(), at("2026-12-23T22:00")).block_all);
        assert!(!evaluate(&w, &tirane(), at("2027-02-17T22:00")).block_all);

        let homework = [Window {
            days: parse_days(&["mon", "wed"]).expect("days"),
            from: (15, 0),
            to: (18, 0),
            effect: Effect::Categories(0b110),
            except: vec![],
            only: vec![DateRange::parse("2026-09-14..2026-12-18").expect("term")],
        }];
        let in_term = evaluate(&homework, &tirane(), at("2026-12-02T16:00"));
        assert_eq!((in_term.block_all, in_term.extra_mask), (false, 0b110));
        assert_eq!(
            evaluate(&homework, &tirane(), at("2026-12-23T16:00")).extra_mask,
            0,
            "holidays"
        );
        assert_eq!(
            evaluate(&homework, &tirane(), at("2026-12-03T16:00")).extra_mask,
            0,
            "thursday"
        );
    }

    #[test]
    fn parsing_errors_say_what_to_write() {
        assert!(parse_days(&["funday"]).unwrap_err().contains("weekdays"));
        assert!(parse_time("25:00", true).is_err());
        assert_eq!(parse_time("24:00", true), Ok((24, 0)));
        assert!(parse_time("24:00", false).is_err());
        assert!(parse_time("7pm", false).unwrap_err().contains("21:00"));
        assert!(
            DateRange::parse("2027-02-22..2027-02-15")
                .unwrap_err()
                .contains("ends before")
        );
    }
}
