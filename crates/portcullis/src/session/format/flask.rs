//! The Flask format: exactly what Flask-Session 0.8 (Redis backend) and Flask-WTF 1.3 write, so
//! that a Flask app with the same `SECRET_KEY`, Redis and `SESSION_KEY_PREFIX` shares sessions.
//!
//! - **Cookie**: `sid.sig`, as itsdangerous's `Signer(SECRET_KEY, salt="flask-session",
//!   key_derivation="hmac")` makes it: `sig = base64url(HMAC-SHA1(HMAC-SHA1(SECRET_KEY,
//!   "flask-session"), sid))` without padding; the bare sid with `SESSION_USE_SIGNER=false`.
//! - **Store key**: `SESSION_KEY_PREFIX` + sid, not hashed (Flask looks it up by the sid).
//! - **Record**: a plain MessagePack map with string keys, no envelope, no encryption. Maps
//!   written as JSON are read too (Flask-Session falls back to JSON; its pickle fallback is
//!   never followed here). Every value is kept as an [`rmpv::Value`], so keys Portcullis does
//!   not understand (`_flashes`, `_fresh`, `_id`, timestamps as the MessagePack timestamp
//!   extension) are written back unchanged. Three keys have a meaning:
//!   - `_permanent`: the session's permanence, as Flask stores it;
//!   - `_user_id`: Flask-Login's user, which is the envelope's user id (a user id set with
//!     [`Session::set_user_id`](crate::Session::set_user_id) is written there; to log out,
//!     remove the key or clear the session, as Flask-Login does);
//!   - `_portcullis`: `{created_ms, revision, user, deadline_ms, writes}`, what Flask has no
//!     place for: the start of the absolute lifetime, the user it was counted for, the expiry
//!     the last Portcullis write set (a Flask write since may have moved the real one later),
//!     and the ids of the last Portcullis saves (so that a save sent again after a lost reply
//!     is not applied twice). Flask keeps keys it does not know, so it survives Flask's writes. A record without it (written by Flask), or whose
//!     `_user_id` is no longer that user (a log-in on the Flask side, which keeps the data),
//!     starts its absolute lifetime when Portcullis reads it, and is written back once to
//!     record that.
//!
//! A session with no data holds at most `_permanent`, which Flask counts as empty: it is
//! written without `_portcullis`, so that Flask still sees it as empty.

use std::time::SystemTime;

use base64::Engine as _;
use hmac::Mac;
use rmpv::Value;

use super::super::id::Id;
use super::super::record::Envelope;
use super::super::secret::{self, FLASK_WTF_TOKEN_SALT, SessionSecret};
use crate::itsdangerous::{self, B64, hmac_sha1};
use crate::store::StoreKey;

/// The salt Flask-Session gives its cookie signer (`base.py`, `_get_signer`).
const COOKIE_SALT: &[u8] = b"flask-session";

/// Flask's key for `session.permanent`.
const PERMANENT: &str = "_permanent";
/// Flask-Login's key for the logged-in user.
const USER_ID: &str = "_user_id";
/// Portcullis's own key, which Flask ignores and keeps.
const META: &str = "_portcullis";
const META_CREATED: &str = "created_ms";
const META_REVISION: &str = "revision";
const META_USER: &str = "user";
const META_DEADLINE: &str = "deadline_ms";
const META_WRITES: &str = "writes";

/// The keys derived from the Flask app's `SECRET_KEY`: the cookie signer's (itsdangerous
/// `key_derivation="hmac"`) and Flask-WTF's (`"django-concat"`).
pub(crate) struct FlaskKeys {
    cookie: [u8; 20],
    pub(crate) csrf: [u8; 20],
}

impl FlaskKeys {
    pub(crate) fn derive(secret_key: &[u8]) -> Self {
        let mut mac = hmac_sha1(secret_key);
        mac.update(COOKIE_SALT);
        Self {
            cookie: mac.finalize().into_bytes().into(),
            csrf: itsdangerous::derive_key(FLASK_WTF_TOKEN_SALT, secret_key),
        }
    }
}

/// The id in a Flask cookie: `sid.sig` with an authentic signature (compared in constant
/// time), or the bare sid when `use_signer` is off. Flask treats sids as opaque; Portcullis
/// takes only the 43-character base64url ids that Flask-Session 0.6 and later issue, so a
/// cookie of any other shape is "no session", as a forged one is.
pub(super) fn verify_cookie(value: &str, use_signer: bool, keys: &FlaskKeys) -> Option<Id> {
    if !use_signer {
        return Id::decode(value);
    }
    // itsdangerous splits on the last separator.
    let (sid, signature) = value.rsplit_once('.')?;
    let id = Id::decode(sid)?;
    let tag = B64.decode(signature).ok()?;
    let mut mac = hmac_sha1(&keys.cookie);
    mac.update(sid.as_bytes());
    mac.verify_slice(&tag).ok()?;
    Some(id)
}

/// `sid.sig`, or the bare sid with the signer off.
pub(super) fn cookie_value(id: &Id, use_signer: bool, keys: &FlaskKeys) -> String {
    let sid = id.encode();
    if !use_signer {
        return sid;
    }
    let mut mac = hmac_sha1(&keys.cookie);
    mac.update(sid.as_bytes());
    let signature = B64.encode(mac.finalize().into_bytes());
    format!("{sid}.{signature}")
}

/// `prefix` + sid, as Flask-Session keys its records.
pub(super) fn store_key(id: &Id, prefix: &str) -> StoreKey {
    StoreKey::from_string(format!("{prefix}{}", id.encode()))
}

/// The MessagePack map Flask reads: the data, `_permanent` when permanent, `_user_id` for the
/// user, and `_portcullis` unless the session is empty.
pub(super) fn encode_record(envelope: &Envelope) -> Result<Vec<u8>, rmpv::encode::Error> {
    let stored_user = envelope.data.get(USER_ID).and_then(user_text);
    // The envelope's user goes to `_user_id` unless the data already says the same (then the
    // data's value stays as it is, in whatever type Flask wrote it).
    let new_user = envelope
        .user_id
        .as_ref()
        .filter(|user| stored_user.as_ref() != Some(*user));
    let reserved =
        |key: &str| key == PERMANENT || key == META || (key == USER_ID && new_user.is_some());
    let mut map = Vec::with_capacity(envelope.data.len() + 3);
    if envelope.permanent {
        map.push((Value::from(PERMANENT), Value::Boolean(true)));
    }
    map.extend(
        envelope
            .data
            .iter()
            .filter(|(key, _)| !reserved(key))
            .map(|(key, value)| (Value::from(key.as_str()), value.clone())),
    );
    if let Some(user) = new_user {
        map.push((Value::from(USER_ID), Value::from(user.as_str())));
    }
    // `{_permanent}` alone is an empty session to Flask; anything more is not.
    let empty = map.iter().all(|(key, _)| key.as_str() == Some(PERMANENT));
    if !empty {
        // The user the absolute lifetime counts for: whoever `_user_id` names once written.
        let user = new_user.or(stored_user.as_ref());
        let mut meta = vec![
            (Value::from(META_CREATED), Value::from(envelope.created_ms)),
            (Value::from(META_REVISION), Value::from(envelope.revision)),
            (
                Value::from(META_USER),
                user.map_or(Value::Nil, |user| Value::from(user.as_str())),
            ),
            (
                Value::from(META_DEADLINE),
                Value::from(envelope.deadline_ms),
            ),
        ];
        if !envelope.writes.is_empty() {
            let writes = envelope.writes.iter().map(|&w| Value::from(w)).collect();
            meta.push((Value::from(META_WRITES), Value::Array(writes)));
        }
        map.push((Value::from(META), Value::Map(meta)));
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::Map(map))?;
    Ok(out)
}

/// The session in a record, and whether it should be written back to record its created-at (a
/// non-empty record without `_portcullis`, as Flask writes it, or one whose user changed on the
/// Flask side). `None` for bytes that are not a map with string keys, in MessagePack or JSON.
pub(super) fn decode_record(bytes: &[u8], now: SystemTime) -> Option<(Envelope, bool)> {
    let mut envelope = Envelope::new(now, false);
    let mut meta = None;
    for (key, value) in read_map(bytes)? {
        // Flask's session keys are strings; a map with any other key is not a session.
        let Value::String(key) = key else {
            return None;
        };
        let key = key.into_str()?;
        match key.as_str() {
            PERMANENT => envelope.permanent = value == Value::Boolean(true),
            META => meta = read_meta(&value),
            _ => {
                envelope.data.insert(key, value);
            }
        }
    }
    envelope.user_id = envelope.data.get(USER_ID).and_then(user_text);
    let rewrite = match meta {
        Some(meta) => {
            envelope.revision = meta.revision;
            envelope.deadline_ms = meta.deadline_ms;
            envelope.writes = meta.writes;
            // A log-in (or out) on the Flask side since Portcullis last wrote: the absolute
            // lifetime restarts now, as a log-in here restarts it.
            let same_user = meta.user == envelope.user_id;
            if same_user {
                envelope.created_ms = meta.created_ms;
            }
            !same_user
        }
        None => !envelope.data.is_empty(),
    };
    Some((envelope, rewrite))
}

/// What `_portcullis` holds.
struct Meta {
    created_ms: u64,
    revision: u64,
    user: Option<String>,
    deadline_ms: u64,
    writes: Vec<u64>,
}

/// The entries of a MessagePack map that is the whole of `bytes`, else of a JSON object.
fn read_map(bytes: &[u8]) -> Option<Vec<(Value, Value)>> {
    let mut rest = bytes;
    if let Ok(Value::Map(map)) = rmpv::decode::read_value(&mut rest)
        && rest.is_empty()
    {
        return Some(map);
    }
    match serde_json::from_slice(bytes).ok()? {
        serde_json::Value::Object(object) => Some(
            object
                .into_iter()
                .map(|(key, value)| (Value::from(key), from_json(value)))
                .collect(),
        ),
        _ => None,
    }
}

/// A JSON value as msgspec's JSON decoder gives it to Flask, in MessagePack terms.
fn from_json(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(object) => Value::Map(
            object
                .into_iter()
                .map(|(key, value)| (Value::from(key), from_json(value)))
                .collect(),
        ),
    }
}

/// What `_portcullis` says; `None` when it is not what Portcullis wrote.
fn read_meta(value: &Value) -> Option<Meta> {
    let Value::Map(entries) = value else {
        return None;
    };
    let field = |name: &str| {
        entries
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .map(|(_, value)| value)
    };
    Some(Meta {
        created_ms: field(META_CREATED)?.as_u64()?,
        revision: field(META_REVISION).and_then(Value::as_u64).unwrap_or(0),
        user: field(META_USER).and_then(user_text),
        deadline_ms: field(META_DEADLINE).and_then(Value::as_u64).unwrap_or(0),
        writes: match field(META_WRITES) {
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(Value::as_u64)
                .take(crate::session::record::WRITES_KEPT)
                .collect(),
            _ => Vec::new(),
        },
    })
}

/// A `_user_id` as text: Flask-Login writes a string; an integer is read as its digits.
fn user_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => text.as_str().map(str::to_owned),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn new_csrf_secret(keys: &FlaskKeys) -> SessionSecret {
    SessionSecret::Flask {
        raw: secret::new_flask_raw(),
        key: keys.csrf,
    }
}

pub(super) fn csrf_secret(text: &str, keys: &FlaskKeys) -> Option<SessionSecret> {
    secret::is_flask_raw(text).then(|| SessionSecret::Flask {
        raw: text.to_owned(),
        key: keys.csrf,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::itsdangerous::lower_hex;

    /// The reference's vector (section 1.3), checked against Flask-Session 0.8.0.
    const SECRET: &[u8] = b"test-secret-key";
    const SID: &str = "g4K9cfGqIV3O8sKaagGYlWBa_48KpnDaAC1wx2xMdeg";
    const SIGNED: &str = "g4K9cfGqIV3O8sKaagGYlWBa_48KpnDaAC1wx2xMdeg.xiVSzVQNIPxEJ9neDmzc0Ho-Pq0";

    #[test]
    fn the_cookie_signature_matches_flask_sessions_test_vector() {
        let keys = FlaskKeys::derive(SECRET);
        assert_eq!(
            lower_hex(&keys.cookie),
            "87b6279211ad0fc7c977a161a186cf17f58df4ea"
        );
        let id = Id::decode(SID).unwrap();
        assert_eq!(cookie_value(&id, true, &keys), SIGNED);
        assert_eq!(verify_cookie(SIGNED, true, &keys), Some(id.clone()));
        assert_eq!(cookie_value(&id, false, &keys), SID);
        assert_eq!(verify_cookie(SID, false, &keys), Some(id));
    }

    #[test]
    fn a_forged_or_malformed_flask_cookie_is_no_session() {
        let keys = FlaskKeys::derive(SECRET);
        let other = FlaskKeys::derive(b"another-secret-key");
        assert_eq!(verify_cookie(SIGNED, true, &other), None, "another key");
        assert_eq!(verify_cookie(SID, true, &keys), None, "unsigned");
        assert_eq!(verify_cookie(&format!("{SID}."), true, &keys), None);
        let tampered = SIGNED.replacen('g', "h", 1);
        assert_eq!(verify_cookie(&tampered, true, &keys), None);
        let cut = &SIGNED[..SIGNED.len() - 1];
        assert_eq!(verify_cookie(cut, true, &keys), None);
        assert_eq!(
            verify_cookie(SIGNED, false, &keys),
            None,
            "signed, signer off"
        );
        assert_eq!(
            verify_cookie("not-a-sid.xiVSzVQNIPxEJ9neDmzc0Ho-Pq0", true, &keys),
            None
        );
        // itsdangerous pads before decoding, so a padded signature is the same signature.
        let padded = format!("{SIGNED}=");
        assert!(verify_cookie(&padded, true, &keys).is_some());
    }

    #[test]
    fn the_store_key_is_the_prefix_and_the_raw_sid() {
        let id = Id::decode(SID).unwrap();
        assert_eq!(store_key(&id, "sess:").as_str(), format!("sess:{SID}"));
    }

    /// The record the reference shows Flask writing (section 1.5), with a timestamp extension
    /// and flashes added: Flask's own bytes.
    fn flask_record() -> Vec<u8> {
        let map = Value::Map(vec![
            (Value::from("_permanent"), Value::Boolean(true)),
            (Value::from("user_id"), Value::from(42)),
            (Value::from("name"), Value::from("alice")),
            (
                Value::from("roles"),
                Value::Array(vec![Value::from("a"), Value::from("b")]),
            ),
            (
                Value::from("nested"),
                Value::Map(vec![
                    (Value::from("x"), Value::F64(1.5)),
                    (Value::from("y"), Value::Nil),
                    (Value::from("z"), Value::Boolean(true)),
                ]),
            ),
            (
                Value::from("_flashes"),
                Value::Array(vec![Value::Array(vec![
                    Value::from("message"),
                    Value::from("hello"),
                ])]),
            ),
            (Value::from("_user_id"), Value::from("7")),
            (
                Value::from("seen"),
                Value::Ext(-1, vec![0x6a, 0x1b, 0x2c, 0x3d]),
            ),
            (Value::from("big"), Value::from(1u64 << 40)),
            (Value::from("neg"), Value::from(-5)),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &map).unwrap();
        bytes
    }

    fn entries(bytes: &[u8]) -> Vec<(Value, Value)> {
        let Value::Map(mut map) = rmpv::decode::read_value(&mut &bytes[..]).unwrap() else {
            panic!("not a map");
        };
        map.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
        map
    }

    #[test]
    fn a_flask_record_round_trips_with_every_key_and_type_kept() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (envelope, rewrite) = decode_record(&flask_record(), now).unwrap();
        assert!(envelope.permanent);
        assert_eq!(envelope.user_id.as_deref(), Some("7"));
        assert_eq!(envelope.created_at(), now, "Flask records start now");
        assert!(rewrite, "written back once to record the created-at");
        assert!(!envelope.data.contains_key("_permanent"));
        assert_eq!(
            envelope.data["seen"],
            Value::Ext(-1, vec![0x6a, 0x1b, 0x2c, 0x3d])
        );

        let written = encode_record(&envelope).unwrap();
        let mut expected = entries(&flask_record());
        let meta = Value::Map(vec![
            (Value::from("created_ms"), Value::from(1_800_000_000_000u64)),
            (Value::from("revision"), Value::from(0)),
            (Value::from("user"), Value::from("7")),
            (Value::from("deadline_ms"), Value::from(0)),
        ]);
        expected.push((Value::from("_portcullis"), meta));
        expected.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
        assert_eq!(entries(&written), expected);
        // The float stays a float64 (0xcb), as msgspec writes it.
        assert!(
            written
                .windows(9)
                .any(|w| w == [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
        );

        let later = now + Duration::from_secs(60);
        let mut envelope = envelope;
        envelope.deadline_ms = 1_800_000_300_000;
        let written = encode_record(&envelope).unwrap();
        let (again, rewrite) = decode_record(&written, later).unwrap();
        assert!(!rewrite);
        assert_eq!(again.created_at(), now, "the created-at survives");
        assert_eq!(again, envelope);
    }

    #[test]
    fn only_permanent_is_an_empty_session_and_stays_empty_for_flask() {
        let now = SystemTime::now();
        let mut only = Vec::new();
        let map = Value::Map(vec![(Value::from("_permanent"), Value::Boolean(true))]);
        rmpv::encode::write_value(&mut only, &map).unwrap();
        let (envelope, rewrite) = decode_record(&only, now).unwrap();
        assert!(envelope.data.is_empty() && envelope.permanent && !rewrite);
        assert_eq!(encode_record(&envelope).unwrap(), only);
        let not_permanent = Envelope::new(now, false);
        assert_eq!(
            encode_record(&not_permanent).unwrap(),
            [0x80],
            "an empty map"
        );
    }

    #[test]
    fn a_log_in_on_the_flask_side_restarts_the_absolute_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut anonymous = Envelope::new(start, false);
        anonymous.data.insert("csrf_token".into(), Value::from("x"));
        let stamped = encode_record(&anonymous).unwrap();
        let later = start + Duration::from_secs(7 * 3600);
        let (read, rewrite) = decode_record(&stamped, later).unwrap();
        assert!(!rewrite);
        assert_eq!(read.created_at(), start);

        // Flask's log-in adds `_user_id` and keeps the rest, `_portcullis` included.
        let Value::Map(mut map) = rmpv::decode::read_value(&mut &stamped[..]).unwrap() else {
            panic!("a map");
        };
        map.push((Value::from(USER_ID), Value::from("7")));
        let mut logged_in = Vec::new();
        rmpv::encode::write_value(&mut logged_in, &Value::Map(map)).unwrap();
        let (read, rewrite) = decode_record(&logged_in, later).unwrap();
        assert!(rewrite, "written back with the new start");
        assert_eq!(read.created_at(), later, "the absolute lifetime restarts");
        let (again, rewrite) = decode_record(&encode_record(&read).unwrap(), later).unwrap();
        assert!(!rewrite);
        assert_eq!(again.created_at(), later);
    }

    #[test]
    fn the_user_id_is_flask_logins_key() {
        let now = SystemTime::now();
        let mut envelope = Envelope::new(now, false);
        envelope.user_id = Some("12".into());
        let (read, _) = decode_record(&encode_record(&envelope).unwrap(), now).unwrap();
        assert_eq!(read.data[USER_ID], Value::from("12"));
        assert_eq!(read.user_id.as_deref(), Some("12"));
        // An integer `_user_id` is the same user, and keeps its type.
        let mut int_user = Envelope::new(now, false);
        int_user.data.insert(USER_ID.into(), Value::from(12));
        int_user.user_id = Some("12".into());
        let (read, _) = decode_record(&encode_record(&int_user).unwrap(), now).unwrap();
        assert_eq!(read.data[USER_ID], Value::from(12));
    }

    #[test]
    fn json_records_are_read_and_other_bytes_are_not_sessions() {
        let now = SystemTime::now();
        let json = br#"{"_permanent": false, "n": 1, "f": 0.5, "l": [null, "x"], "m": {"k": -2}}"#;
        let (envelope, _) = decode_record(json, now).unwrap();
        assert!(!envelope.permanent);
        assert_eq!(envelope.data["n"], Value::from(1));
        assert_eq!(envelope.data["f"], Value::F64(0.5));
        assert_eq!(
            envelope.data["l"],
            Value::Array(vec![Value::Nil, Value::from("x")])
        );
        // A pickle (Flask-Session's last resort), a list, a truncated map, an integer key.
        let int_key = {
            let mut bytes = Vec::new();
            let map = Value::Map(vec![(Value::from(1), Value::from(2))]);
            rmpv::encode::write_value(&mut bytes, &map).unwrap();
            bytes
        };
        let truncated = &flask_record()[..20];
        for bad in [
            &b"\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94."[..],
            b"[1, 2]",
            truncated,
            &int_key,
            b"",
        ] {
            assert!(decode_record(bad, now).is_none(), "{bad:?}");
        }
    }
}
