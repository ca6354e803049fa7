//! One-time messages kept in the session until the next page shows them, stored as Flask does
//! (`_flashes`: a list of `[category, message]`), so a Flask app sharing the session reads them.

use portcullis::{Session, SessionError};
use serde::Serialize;

/// Flask's session key for flashed messages.
pub(crate) const KEY: &str = "_flashes";

/// A flashed message.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Flask's category: `message` (the default), `info`, `error`, ...
    pub(crate) category: String,
    pub(crate) message: String,
}

/// Adds a message for the next page.
pub(crate) async fn push(
    session: &Session,
    category: &str,
    message: &str,
) -> Result<(), SessionError> {
    let mut flashes = read(session).await?;
    flashes.push((category.to_owned(), message.to_owned()));
    session.insert(KEY, flashes).await
}

/// Removes and returns the waiting messages. Nothing is written when there are none.
pub(crate) async fn take(session: &Session) -> Result<Vec<Flash>, SessionError> {
    if !session.keys().await?.iter().any(|k| k == KEY) {
        return Ok(Vec::new());
    }
    let flashes = read(session).await?;
    session.remove::<serde_json::Value>(KEY).await?;
    Ok(flashes
        .into_iter()
        .map(|(category, message)| Flash { category, message })
        .collect())
}

/// The list as stored; a value of another shape (written by something else) counts as empty.
async fn read(session: &Session) -> Result<Vec<(String, String)>, SessionError> {
    match session.get::<Vec<(String, String)>>(KEY).await {
        Ok(list) => Ok(list.unwrap_or_default()),
        Err(SessionError::Decode(_)) => Ok(Vec::new()),
        Err(other) => Err(other),
    }
}
