//! Test support: a store wrapper that counts operations and injects faults around a real store,
//! and a small app that exercises the session.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::{get, post};
use portcullis::store::{
    CasOutcome, CasToken, SaveOutcome, SessionStore, StoreError, StoreKey, UserIndex, WriteOutcome,
};
use portcullis::{Session, SessionError};

/// Counts every call and can be switched to fail, around any real store.
#[derive(Debug, Clone)]
pub struct Probe<S> {
    pub inner: S,
    pub stats: Arc<Stats>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub loads: AtomicUsize,
    pub creates: AtomicUsize,
    pub updates: AtomicUsize,
    pub deletes: AtomicUsize,
    pub failing: AtomicBool,
    pub written: Mutex<Vec<(StoreKey, Vec<u8>)>>,
    /// Every call in order: `create`, `load`, `save`, `delete`, `delete_if`.
    pub calls: Mutex<Vec<&'static str>>,
}

impl Stats {
    pub fn writes(&self) -> usize {
        self.creates.load(Ordering::SeqCst) + self.updates.load(Ordering::SeqCst)
    }
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
    pub fn total(&self) -> usize {
        self.writes() + self.loads() + self.deletes.load(Ordering::SeqCst)
    }
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

impl<S> Probe<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            stats: Arc::default(),
        }
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.stats.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(
                "injected fault",
                "connection refused",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Probe<S> {
    async fn create(
        &self,
        key: &StoreKey,
        record: &[u8],
        at: SystemTime,
    ) -> Result<WriteOutcome, StoreError> {
        self.stats.creates.fetch_add(1, Ordering::SeqCst);
        self.stats.calls.lock().unwrap().push("create");
        self.check()?;
        self.stats
            .written
            .lock()
            .unwrap()
            .push((key.clone(), record.to_vec()));
        self.inner.create(key, record, at).await
    }
    async fn load(
        &self,
        key: &StoreKey,
        slide: Option<SystemTime>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.stats.loads.fetch_add(1, Ordering::SeqCst);
        self.stats.calls.lock().unwrap().push("load");
        self.check()?;
        self.inner.load(key, slide).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        expected: &CasToken,
        record: &[u8],
        at: SystemTime,
    ) -> Result<SaveOutcome, StoreError> {
        self.stats.updates.fetch_add(1, Ordering::SeqCst);
        self.stats.calls.lock().unwrap().push("save");
        self.check()?;
        self.stats
            .written
            .lock()
            .unwrap()
            .push((key.clone(), record.to_vec()));
        self.inner.save(key, expected, record, at).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.stats.deletes.fetch_add(1, Ordering::SeqCst);
        self.stats.calls.lock().unwrap().push("delete");
        self.check()?;
        self.inner.delete(key).await
    }
    async fn delete_if(
        &self,
        key: &StoreKey,
        expected: &CasToken,
    ) -> Result<CasOutcome, StoreError> {
        self.stats.deletes.fetch_add(1, Ordering::SeqCst);
        self.stats.calls.lock().unwrap().push("delete_if");
        self.check()?;
        self.inner.delete_if(key, expected).await
    }
    /// The index is not probed: these tests count the session operations.
    fn user_index(&self) -> Option<&dyn UserIndex> {
        self.inner.user_index()
    }
}

/// Routes that use the session in every way the tests need.
pub fn routes() -> Router {
    Router::new()
        .route("/untouched", get(|| async { "no session here" }))
        .route("/count", get(count))
        .route("/read", get(read))
        .route("/set", post(set))
        .route("/regenerate", post(regenerate))
        .route("/destroy", post(destroy))
        .route("/big", post(big))
        .route("/fail", post(fail))
        .route("/ended", get(ended))
        .route("/expires", get(expires))
}

async fn count(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(visits.to_string())
}

async fn read(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0);
    Ok(visits.to_string())
}

async fn set(session: Session, body: String) -> Result<&'static str, SessionError> {
    session.insert("value", body).await?;
    Ok("set")
}

async fn regenerate(session: Session) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    Ok("regenerated")
}

async fn destroy(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok("destroyed")
}

async fn big(session: Session) -> Result<&'static str, SessionError> {
    session.insert("big", "x".repeat(100_000)).await?;
    Ok("stored")
}

async fn fail(session: Session) -> Result<(StatusCode, &'static str), SessionError> {
    session.insert("half-done", true).await?;
    Ok((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
}

async fn expires(session: Session) -> Result<String, SessionError> {
    let at = session.expires_at().await?;
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string())
}

async fn ended(session: Session) -> Result<String, SessionError> {
    Ok(session.previous_session_ended().await?.to_string())
}

/// Sends one request and returns the response with its body as text.
pub async fn send(app: &Router, request: Request<Body>) -> (Response<()>, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub fn get_with(path: &str, cookie: Option<&str>) -> Request<Body> {
    with_cookie(Request::get(path), cookie)
        .body(Body::empty())
        .unwrap()
}

pub fn post_with(path: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    with_cookie(Request::post(path), cookie)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn with_cookie(
    builder: axum::http::request::Builder,
    cookie: Option<&str>,
) -> axum::http::request::Builder {
    match cookie {
        Some(c) => builder.header("cookie", c),
        None => builder,
    }
}

/// The `name=value` pair of the first `Set-Cookie`, if any.
pub fn set_cookie(response: &Response<()>) -> Option<String> {
    response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
}

pub fn cookie_pair(response: &Response<()>) -> String {
    let header = set_cookie(response).expect("a Set-Cookie header");
    header.split(';').next().unwrap().to_owned()
}
