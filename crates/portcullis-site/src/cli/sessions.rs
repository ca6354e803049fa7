//! `portcullis sessions list|end|purge-expired`: what an administrator does to a user's
//! sessions. Listing extends no session's lifetime; ending is immediate (the record and its
//! index entry are deleted, so that device's next request is anonymous).

use std::error::Error;
use std::fmt::Write as _;

use portcullis::config::{Config, StoreKind};
use portcullis::session::{DeviceId, Ending};

use super::{AdminError, EndArgs, user};
use crate::events;
use crate::session_data::device::DeviceRow;
use crate::stores::Stores;
use crate::web::AppState;
use crate::web::text::spaced_rfc3339;

/// `portcullis sessions purge-expired`.
pub(super) async fn purge_expired(config: &Config) -> Result<(), Box<dyn Error>> {
    // Redis and memory records expire by themselves: for them there is nothing to open.
    let removed = match config.session_type {
        StoreKind::Filesystem => Stores::open(config).await?.purge_expired().await?,
        StoreKind::Memory | StoreKind::Redis => 0,
    };
    println!("removed {removed} expired session(s)");
    Ok(())
}

/// `portcullis sessions list --user NAME`.
pub(super) async fn list(state: &AppState, name: &str) -> Result<(), Box<dyn Error>> {
    let rows = rows(state, name).await?;
    print!("{}", describe(name, &rows));
    Ok(())
}

/// `portcullis sessions end --user NAME (--all | --except-current ID)`.
pub(super) async fn end(state: &AppState, args: &EndArgs) -> Result<(), Box<dyn Error>> {
    let Some(user) = args.user.as_deref() else {
        return end_everyone(state).await;
    };
    let keep = if args.all {
        None
    } else {
        args.except_current.as_deref()
    };
    let ended = end_all(state, user, keep).await?;
    println!("ended {ended} session(s) of {user}");
    Ok(())
}

/// `portcullis sessions end --everyone`: every session that started before now is logged out
/// on its next request, in every store, including a serving process's memory store.
///
/// An epoch in the accounts database, which the site compares with each logged-in session's
/// start, rather than a scan of the store: it is one row whatever the number of sessions, it
/// never walks a shared Redis (a `SCAN` of millions of keys, on every cluster node), and it
/// takes effect at once. The records left behind are dead (no request is served from them)
/// and expire within one idle lifetime; anonymous sessions, which hold no log-in, are left.
async fn end_everyone(state: &AppState) -> Result<(), Box<dyn Error>> {
    let now = std::time::SystemTime::now();
    state
        .users()
        .end_sessions_before(now)
        .await
        .map_err(AdminError::from)?;
    events::everyone_logged_out();
    println!("ended every session started before {}", spaced_rfc3339(now));
    Ok(())
}

/// The live sessions of the user named `name`, oldest first.
async fn rows(state: &AppState, name: &str) -> Result<Vec<DeviceRow>, AdminError> {
    let user = user(state, name).await?;
    let devices = state.user_sessions().list(&user.id.to_string()).await?;
    Ok(devices.iter().map(DeviceRow::of).collect())
}

/// Ends every session of the user named `name`, but the one whose handle is `keep` when
/// given; returns how many ended.
async fn end_all(state: &AppState, name: &str, keep: Option<&str>) -> Result<usize, AdminError> {
    let keep = keep
        .map(|text| DeviceId::parse(text).ok_or_else(|| AdminError::BadHandle(text.into())))
        .transpose()?;
    let user = user(state, name).await?;
    let ended = state
        .user_sessions()
        .end_all_because(&user.id.to_string(), keep.as_ref(), Ending::Administrator)
        .await?;
    // The session layer logged `session_expired` (revoked) for them.
    Ok(ended)
}

/// The text of `portcullis sessions list`: one line per session, under a header.
fn describe(name: &str, rows: &[DeviceRow]) -> String {
    if rows.is_empty() {
        return format!("{name} has no live session\n");
    }
    let mut out = format!(
        "{:43}  {:20}  {:20}  {:20}  {:24}  ADDRESS\n",
        "ID", "STARTED", "LAST USED", "EXPIRES", "BROWSER"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:43}  {:20}  {:20}  {:20}  {:24}  {}",
            row.handle.as_str(),
            spaced_rfc3339(row.started),
            spaced_rfc3339(row.last_used),
            spaced_rfc3339(row.expires),
            row.browser,
            row.address
        );
    }
    out
}
