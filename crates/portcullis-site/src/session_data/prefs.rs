//! The view options of one session (`_prefs`): how this browser shows the devices list (its
//! order, and whether times read "3 minutes ago" or as UTC). Per session by nature: a phone and
//! a desktop may want them differently. (The appearance, theme and density, belongs to the
//! account: `accounts/appearance.rs`.) Known keys with a few allowed values each, so the
//! session never holds arbitrary client data through this door.
//!
//! A change names only the options it sets, and is saved as a session update that applies
//! just those: two tabs that change the order and the times at the same moment both keep
//! their change.

use portcullis::{Session, SessionError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The session key.
const KEY: &str = "_prefs";
/// Orders of the devices list: the most recently used first, or the latest log-in first.
pub(crate) const ORDERS: &[&str] = &["last-used", "started"];
/// How the devices list writes times: how long ago (the exact UTC time on hover), or in UTC.
pub(crate) const TIMES: &[&str] = &["relative", "utc"];

/// The keys, as a refusal names them.
const KNOWN: &str = "devices_order, devices_times";

/// The view options; missing keys take their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Prefs {
    pub(crate) devices_order: String,
    pub(crate) devices_times: String,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            devices_order: ORDERS[0].to_owned(),
            devices_times: TIMES[0].to_owned(),
        }
    }
}

impl Prefs {
    /// Applies the changes in `changes` (a JSON object of known keys), or says why not.
    pub(crate) fn apply(&mut self, changes: &Map<String, Value>) -> Result<(), String> {
        if changes.is_empty() {
            return Err(format!("send at least one preference: {KNOWN}"));
        }
        let mut next = self.clone();
        for (key, value) in changes {
            let (field, allowed) = match key.as_str() {
                "devices_order" => (&mut next.devices_order, ORDERS),
                "devices_times" => (&mut next.devices_times, TIMES),
                _ => {
                    let shown: String = key.chars().take(32).collect();
                    return Err(format!("unknown preference {shown:?}; known: {KNOWN}"));
                }
            };
            match value.as_str() {
                Some(v) if allowed.contains(&v) => *field = v.to_owned(),
                _ => {
                    return Err(format!("{key} must be one of: {}", allowed.join(", ")));
                }
            }
        }
        *self = next;
        Ok(())
    }

    /// The session's preferences; defaults when none (or when the stored value is unreadable).
    pub(crate) async fn load(session: &Session) -> Result<Self, SessionError> {
        Ok(session.get_lenient::<Self>(KEY).await?.unwrap_or_default())
    }

    /// Sets the preferences named in `changes` (a JSON object of known keys), and only those;
    /// returns the preferences as this request leaves them, or why the change was refused
    /// (then nothing changes).
    pub(crate) async fn patch(
        session: &Session,
        changes: Map<String, Value>,
    ) -> Result<Result<Self, String>, SessionError> {
        // Checked once up front: whether a change is allowed does not depend on the values it
        // is applied to, so the update below cannot fail when it runs again on newer ones.
        if let Err(reason) = Self::default().apply(&changes) {
            return Ok(Err(reason));
        }
        let patch = move |current: Option<Self>| {
            let mut prefs = current.unwrap_or_default();
            prefs.apply(&changes).ok()?;
            Some(prefs)
        };
        // A stored value of another shape is as good as absent (as in `load`).
        let updated = session.update_lenient(KEY, patch).await?;
        Ok(Ok(updated.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn known_values_apply_and_anything_else_is_refused_whole() {
        let mut prefs = Prefs::default();
        assert!(
            prefs
                .apply(&object(json!({"devices_order": "started"})))
                .is_ok()
        );
        assert_eq!(prefs.devices_order, "started");
        for bad in [
            json!({}),
            json!({"devices_order": "neon"}),
            json!({"devices_order": 1}),
            json!({"theme": "dark"}),
            json!({"devices_times": "utc", "devices_order": "x".repeat(10_000)}),
        ] {
            assert!(prefs.apply(&object(bad.clone())).is_err(), "{bad}");
        }
        assert_eq!(
            prefs,
            Prefs {
                devices_order: "started".into(),
                devices_times: "relative".into()
            }
        );
    }
}
