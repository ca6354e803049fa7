//! Times as the pages and the command line write them (`2026-05-01 12:00:00 UTC`, `5 minutes ago`,
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

/// `just now`, `1 minute ago`, `3 minutes ago`, `2 hours ago`, `3 days ago`: the largest
/// whole unit, rounded down.
pub(crate) fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    let (count, unit) = match secs {
        0..60 => return "just now".to_owned(),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural} ago")
}

/// A time as a page shows it: how long ago (`ago`), the exact UTC time (`utc`, for the
/// hover title) and the machine-readable form (`datetime`, RFC 3339), for
/// `<time datetime="{{ t.datetime }}" title="{{ t.utc }}">{{ t.ago }}</time>`.
pub(crate) fn shown_time(now: SystemTime, then: SystemTime) -> minijinja::Value {
    let datetime = spaced_rfc3339(then).replacen(' ', "T", 1);
    minijinja::context! {
        ago => ago(now, then),
        utc => utc(then),
        datetime,
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
    fn a_shown_time_carries_the_exact_utc_time_and_the_machine_form() {
        let shown = shown_time(noon() + Duration::from_secs(180), noon());
        assert_eq!(shown.get_attr("ago").unwrap().to_string(), "3 minutes ago");
        assert_eq!(
            shown.get_attr("utc").unwrap().to_string(),
            "2026-05-01 12:00:00 UTC"
        );
        assert_eq!(
            shown.get_attr("datetime").unwrap().to_string(),
            "2026-05-01T12:00:00Z"
        );
    }

    #[test]
    fn ages_round_down_to_the_largest_unit() {
        let ago_secs = |secs| ago(noon(), noon() - Duration::from_secs(secs));
        assert_eq!(ago_secs(59), "just now");
        assert_eq!(ago_secs(60), "1 minute ago");
        assert_eq!(ago_secs(3 * 60 + 59), "3 minutes ago");
        assert_eq!(ago_secs(3599), "59 minutes ago");
        assert_eq!(ago_secs(3600), "1 hour ago");
        assert_eq!(ago_secs(7200), "2 hours ago");
        assert_eq!(ago_secs(86_400), "1 day ago");
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
