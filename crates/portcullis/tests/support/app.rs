//! A small app that exercises the session in every way the tests need, and the helpers that
//! send it requests and read its cookies.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::{get, post};
use portcullis::{Session, SessionError};

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
        .route("/count-then-fail", post(count_then_fail))
        .route("/destroy-then-fail", post(destroy_then_fail))
        .route("/ended", get(ended))
        .route("/why", get(why))
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

/// `/count`'s change, then a failure: the change is dropped.
async fn count_then_fail(session: Session) -> Result<(StatusCode, &'static str), SessionError> {
    count(session).await?;
    Ok((StatusCode::INTERNAL_SERVER_ERROR, "failed after counting"))
}

/// A logout followed by a failure in the same handler.
async fn destroy_then_fail(session: Session) -> Result<(StatusCode, &'static str), SessionError> {
    session.destroy().await?;
    Ok((
        StatusCode::INTERNAL_SERVER_ERROR,
        "failed after logging out",
    ))
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

/// Why the cookie's session ended (`Session::ended`), or `none`.
async fn why(session: Session) -> Result<&'static str, SessionError> {
    Ok(session.ended().await?.map_or("none", |e| e.as_str()))
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
