//! What the site keeps in the session, one file per key: flashed messages (`_flashes`),
//! per-session view options (`_prefs`) and the device a session logged in from (`_device`).

pub(crate) mod device;
pub(crate) mod flash;
pub(crate) mod prefs;
