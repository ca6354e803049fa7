//! Times as the pages and the command line write them (`2026-05-01 12:00:00 UTC`, `5 min ago`,
//! `4 min 59 s`), and the seconds a session has left, which the dashboard and `/api/me` show.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use portcullis::Session;

use crate::web::error::AppError;
use crate::web::state::AppState;

/// Whole seconds until the session expires if nothing else happens.
pub(crate) async fn seconds_left(state: &AppState, session: &Session) -> Result<u64, AppError> {
    let expires = session.expires_at().await?;
    Ok(expires
        .duration_since(state.clock().now())
        .map_or(0, |d| d.as_secs()))
}

/// `2026-05-01 12:00:00Z`: RFC 3339 to the second, with a space for the `T` (the command line's
/// columns).
/// humantime prints years up to 9999 only (and fails, rather than panics, past it); a time
/// that far out comes only from a hostile stored value, and is printed as a bound.
pub(crate) fn spaced_rfc3339(time: SystemTime) -> String {
    let mut text = String::new();
    if write!(text, "{}", humantime::format_rfc3339_seconds(time)).is_err() {
        return "after 9999-12-31 23:59:59Z".to_owned();
    }
    text.replace('T', " ")
}

/// `2026-05-01 12:00:00 UTC`.
pub(crate) fn utc(time: SystemTime) -> String {
    format!("{} UTC", spaced_rfc3339(time).trim_end_matches('Z'))
}

/// `4 min 59 s`.
pub(crate) fn minutes_seconds(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// `just now`, `5 min ago`, `2 h ago`, `3 days ago`.
pub(crate) fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-05-01 12:00:00 UTC.
    fn noon() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_636_800)
    }

    #[test]
    fn instants_are_written_to_the_second_in_utc() {
        assert_eq!(spaced_rfc3339(noon()), "2026-05-01 12:00:00Z");
        assert_eq!(utc(noon()), "2026-05-01 12:00:00 UTC");
    }

    #[test]
    fn durations_drop_the_parts_that_are_zero() {
        assert_eq!(minutes_seconds(Duration::from_secs(59)), "59 s");
        assert_eq!(minutes_seconds(Duration::from_secs(300)), "5 min");
        assert_eq!(minutes_seconds(Duration::from_secs(299)), "4 min 59 s");
    }

    #[test]
    fn ages_round_down_to_the_largest_unit() {
        let ago_secs = |secs| ago(noon(), noon() - Duration::from_secs(secs));
        assert_eq!(ago_secs(59), "just now");
        assert_eq!(ago_secs(60), "1 min ago");
        assert_eq!(ago_secs(3599), "59 min ago");
        assert_eq!(ago_secs(7200), "2 h ago");
        assert_eq!(ago_secs(3 * 86_400 + 5), "3 days ago");
        assert_eq!(ago(noon(), noon() + Duration::from_secs(5)), "just now");
    }
}

#[cfg(test)]
mod hostile_dates {
    use super::*;

    /// humantime cannot print years past 9999: a hostile stored date must not panic a page.
    #[test]
    fn a_date_past_the_year_9999_prints_without_panicking() {
        let year_10000 = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(utc(year_10000).contains("9999"), "{}", utc(year_10000));
        assert_eq!(
            utc(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            "2027-01-15 08:00:00 UTC"
        );
    }
}
