//! What the site remembers about the device a session was logged in from, so that a person can
//! tell their sessions apart (`/account/sessions`, `portcullis sessions list`): the browser's
//! `User-Agent` (cut short) and the client's address, kept in the session under `_device` at
//! log-in. The session record is sealed, so the store sees neither. [`DeviceRow`] is one
//! session as both of those show it.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use portcullis::session::{DeviceId, DeviceSession};
use serde::{Deserialize, Serialize};

/// The session key.
pub(crate) const KEY: &str = "_device";
/// The most of a `User-Agent` kept: enough to name browser and system, and a bound on what a
/// client can make the session hold.
const MAX_USER_AGENT_CHARS: usize = 256;

/// The device a session was logged in from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Device {
    /// The `User-Agent` header, at most 256 characters; empty when absent.
    pub(crate) user_agent: String,
    /// The client's address (see `client_addr.rs`); `0.0.0.0` when unknown.
    pub(crate) address: String,
}

impl Device {
    /// The device of a request: its `User-Agent` and the client's address.
    pub(crate) fn of(headers: &HeaderMap, address: IpAddr) -> Self {
        let user_agent = headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT_CHARS)
            .collect();
        Self {
            user_agent,
            address: address.to_string(),
        }
    }

    /// "Firefox on Linux", "Chrome on Android", "curl", "Unknown browser": enough to tell
    /// devices apart, from the usual `User-Agent` tokens.
    #[must_use]
    pub(crate) fn browser(&self) -> String {
        let ua = self.user_agent.as_str();
        let browser = if ua.contains("Edg/") {
            "Edge"
        } else if ua.contains("OPR/") {
            "Opera"
        } else if ua.contains("Firefox/") {
            "Firefox"
        } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
            "Chrome"
        } else if ua.contains("Safari/") {
            "Safari"
        } else if ua.starts_with("curl/") {
            return "curl".to_owned();
        } else {
            return "Unknown browser".to_owned();
        };
        let system = if ua.contains("Android") {
            "Android"
        } else if ua.contains("iPhone") || ua.contains("iPad") {
            "iOS"
        } else if ua.contains("Windows") {
            "Windows"
        } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
            "macOS"
        } else if ua.contains("Linux") || ua.contains("X11") {
            "Linux"
        } else {
            return browser.to_owned();
        };
        format!("{browser} on {system}")
    }
}

/// One session of a user, as the sessions page and `portcullis sessions list` show it.
#[derive(Clone, Debug)]
pub(crate) struct DeviceRow {
    /// What the page's End button and `sessions end --except-current` take.
    pub(crate) handle: DeviceId,
    /// When it began (the log-in).
    pub(crate) started: SystemTime,
    /// When it was last used (see [`DeviceSession::last_used`]).
    pub(crate) last_used: SystemTime,
    /// When it ends if unused.
    pub(crate) expires: SystemTime,
    /// The browser, e.g. "Firefox on Linux".
    pub(crate) browser: String,
    /// The whole `User-Agent`, as kept.
    pub(crate) user_agent: String,
    /// The client address it logged in from.
    pub(crate) address: String,
    /// Whether it is the session of the request that lists it (never, from the command line).
    pub(crate) current: bool,
}

impl DeviceRow {
    /// The row of `device`; a `_device` value that is absent or unreadable shows as an unknown
    /// browser at no address.
    pub(crate) fn of(device: &DeviceSession) -> Self {
        let details: Device = device.get(KEY).ok().flatten().unwrap_or_default();
        Self {
            handle: device.device_id().clone(),
            started: device.created_at(),
            last_used: device.last_used(),
            expires: device.expires_at(),
            browser: details.browser(),
            user_agent: details.user_agent,
            address: details.address,
            current: device.is_current(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn device(ua: &str) -> Device {
        Device {
            user_agent: ua.to_owned(),
            address: String::new(),
        }
    }

    #[test]
    fn common_user_agents_are_named() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/126.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            ("curl/8.5.0", "curl"),
            ("", "Unknown browser"),
        ];
        for (ua, name) in cases {
            assert_eq!(device(ua).browser(), name, "{ua}");
        }
    }

    #[test]
    fn a_user_agent_is_cut_short_and_loses_control_characters() {
        let mut headers = HeaderMap::new();
        let long = format!("curl/{}\t", "x".repeat(1000));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_str(&long).unwrap_or_else(|e| panic!("{e}")),
        );
        let device = Device::of(&headers, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(device.user_agent.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(!device.user_agent.contains('\t'));
        assert_eq!(device.address, "192.0.2.1");
    }
}
