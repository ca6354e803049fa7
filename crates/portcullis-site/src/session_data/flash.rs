//! One-time messages kept in the session until the next page shows them, stored as Flask does
//! (`_flashes`: a list of `[category, message]`), so a Flask app sharing the session reads them.
//!
//! Both operations are [`Session::update`]s, so concurrent requests lose none: [`push`] appends
//! to whatever list is there when the session is saved, and [`take`] removes exactly the
//! messages it returned, so a message flashed by another request meanwhile waits for the next
//! page instead of vanishing unseen.

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

/// The list as stored.
type Flashes = Vec<(String, String)>;

/// Adds a message for the next page.
pub(crate) async fn push(
    session: &Session,
    category: &str,
    message: &str,
) -> Result<(), SessionError> {
    let flash = (category.to_owned(), message.to_owned());
    let append = move |list: Option<Flashes>| {
        let mut list = list.unwrap_or_default();
        list.push(flash.clone());
        Some(list)
    };
    // A value of another shape (written by something else) counts as empty.
    session.update_lenient(KEY, append).await.map(drop)
}

/// Removes and returns the waiting messages. Nothing is written when there are none.
pub(crate) async fn take(session: &Session) -> Result<Vec<Flash>, SessionError> {
    if !session.keys().await?.iter().any(|k| k == KEY) {
        return Ok(Vec::new());
    }
    // Present (checked above), so `None` is a value of another shape: dropped.
    let Some(shown) = session.get_lenient::<Flashes>(KEY).await? else {
        session.remove::<serde_json::Value>(KEY).await?;
        return Ok(Vec::new());
    };
    let taken = shown.clone();
    session
        .update(KEY, move |list: Option<Flashes>| {
            let mut list = list.unwrap_or_default();
            for flash in &taken {
                if let Some(at) = list.iter().position(|f| f == flash) {
                    list.remove(at);
                }
            }
            // An empty list is no list: the key goes, as Flask's `session.pop`.
            (!list.is_empty()).then_some(list)
        })
        .await?;
    Ok(shown
        .into_iter()
        .map(|(category, message)| Flash { category, message })
        .collect())
}
