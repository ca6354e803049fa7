//! Times as the pages and the command line write them (`2026-05-01 12:00:00 UTC`, `5 minutes ago`,
//! `4 minutes 59 seconds`), and the seconds a session has left, which the dashboard and `/api/me` show.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use portcullis::Session;
use portcullis::session::Ending;

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

/// `10 seconds`, `1 minute`, `5 minutes`, `1 minute 30 seconds`, `2 hours`, `1 hour 5 minutes`:
/// a lifetime as a sentence says it, singular for one, the parts that are zero left out (and
/// seconds only under an hour).
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let (hours, minutes, seconds) = (s / 3600, s % 3600 / 60, s % 60);
    let parts: Vec<String> = if hours > 0 {
        [(hours, "hour"), (minutes, "minute")]
            .into_iter()
            .filter(|&(n, _)| n > 0)
            .map(|(n, one)| unit(n, one))
            .collect()
    } else if minutes > 0 {
        [(minutes, "minute"), (seconds, "second")]
            .into_iter()
            .filter(|&(n, _)| n > 0)
            .map(|(n, one)| unit(n, one))
            .collect()
    } else {
        vec![unit(seconds, "second")]
    };
    parts.join(" ")
}

/// What a person is told when the session their browser presented is over, by its
/// [`Ending`]: which of the endings happened, and the way on.
pub(crate) fn ending_message(ending: Ending, idle: Duration, absolute: Duration) -> String {
    match ending {
        Ending::Absolute => format!(
            "Your session reached its time limit of {} and has ended. Please log in again.",
            duration(absolute)
        ),
        Ending::EndedElsewhere => {
            "Your session was ended from another device. Please log in again.".to_owned()
        }
        Ending::PasswordChange => "Your session was ended because your password was changed. \
                                   Please log in with the new password."
            .to_owned(),
        Ending::Administrator => {
            "Your session was ended by an administrator. Please log in again.".to_owned()
        }
        Ending::LoggedOut => "You have been logged out.".to_owned(),
        // `Ending` may grow: anything else reads as the plain expiry.
        _ => format!(
            "Your session has expired. Please log in again. Sessions end after {} without \
             activity.",
            duration(idle)
        ),
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
    fn lifetimes_read_as_sentences_at_every_size() {
        let cases = [
            (1, "1 second"),
            (10, "10 seconds"),
            (60, "1 minute"),
            (90, "1 minute 30 seconds"),
            (300, "5 minutes"),
            (3600, "1 hour"),
            (3900, "1 hour 5 minutes"),
            (86_400, "24 hours"),
        ];
        for (secs, text) in cases {
            assert_eq!(duration(Duration::from_secs(secs)), text);
        }
    }

    #[test]
    fn each_ending_says_what_happened() {
        let (idle, absolute) = (Duration::from_secs(10), Duration::from_secs(3600));
        let said = |e| ending_message(e, idle, absolute);
        assert!(said(Ending::Idle).contains("after 10 seconds without activity"));
        assert!(said(Ending::Absolute).contains("time limit of 1 hour"));
        assert!(said(Ending::EndedElsewhere).contains("ended from another device"));
        assert!(said(Ending::PasswordChange).contains("password was changed"));
        assert!(said(Ending::Administrator).contains("by an administrator"));
        assert_eq!(said(Ending::LoggedOut), "You have been logged out.");
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
