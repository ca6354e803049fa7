//! Which host and origin a request was sent to, decided once at the front door: the
//! `ALLOWED_HOSTS` check (400 and the site's page for any other `Host`, against DNS rebinding),
//! the public origin and the HTTPS marker the CSRF layer reads (`PUBLIC_ORIGIN`, or a trusted
//! proxy's `X-Forwarded-Proto` and `X-Forwarded-Host`), and `Strict-Transport-Security`.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use portcullis::csrf::{Https, PublicOrigin};

use crate::config::{SiteConfig, is_host_name};
use crate::events;
use crate::web::client_addr::{forwarded_https, peer};
use crate::web::page;
use crate::web::state::AppState;

/// HSTS `max-age`: one year, what OWASP's HTTP Strict Transport Security cheat sheet
/// recommends and the least that hstspreload.org accepts.
pub(crate) const HSTS_MAX_AGE_SECS: u64 = 365 * 24 * 60 * 60;

/// Middleware, outside the session and CSRF layers: refuses a host outside `ALLOWED_HOSTS`
/// before any session exists, tells the CSRF layer the request's public origin and whether it
/// came over HTTPS, and marks HTTPS answers with HSTS when cookies are `Secure`.
pub(crate) async fn front_door(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let site = state.site_config();
    let trusted = site
        .trusted_proxies
        .iter()
        .any(|proxy| proxy.to_canonical() == peer(request.extensions()).to_canonical());
    let forwarded_host = trusted.then(|| last_value(request.headers(), "x-forwarded-host"));
    let host = forwarded_host.flatten().or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .map(str::to_owned)
    });
    if let Err(reason) = check_host(host.as_deref(), site) {
        events::host_refused(host.as_deref());
        return page::plain_error(&state, StatusCode::BAD_REQUEST, &reason);
    }
    let https = match &site.public_origin {
        Some(origin) => origin.is_https(),
        None => {
            request.uri().scheme_str() == Some("https")
                || forwarded_https(
                    peer(request.extensions()),
                    request.headers(),
                    &site.trusted_proxies,
                )
        }
    };
    let origin = site.public_origin.clone().or_else(|| {
        host.as_deref()
            .and_then(|h| PublicOrigin::from_host(https, h))
    });
    if let Some(origin) = origin {
        request.extensions_mut().insert(origin);
    }
    if https {
        request.extensions_mut().insert(Https);
    }
    let mut response = next.run(request).await;
    // RFC 6797 section 7.2: never over plain HTTP, where an attacker could forge it anyway.
    if https && state.config().session_cookie_secure {
        response
            .headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts(site));
    }
    response
}

/// The `Strict-Transport-Security` value.
fn hsts(site: &SiteConfig) -> HeaderValue {
    let value = if site.hsts_include_subdomains {
        format!("max-age={HSTS_MAX_AGE_SECS}; includeSubDomains")
    } else {
        format!("max-age={HSTS_MAX_AGE_SECS}")
    };
    // Invariant: digits and ASCII words only.
    HeaderValue::from_str(&value).expect("an HSTS value is ASCII")
}

/// The last comma-separated entry of the last `name` header: what the nearest proxy set.
fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether `host` (a `Host` value, `name[:port]`) may be answered; `Err` is the page's reason.
fn check_host(host: Option<&str>, site: &SiteConfig) -> Result<(), String> {
    let public = site.public_origin.as_ref().map(PublicOrigin::to_string);
    let public_host = site.public_origin.as_ref().map(|o| {
        let host = o.host();
        if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        }
    });
    if site.allowed_hosts.is_empty() && public.is_none() {
        return Ok(());
    }
    let refused = |what: String| {
        Err(format!(
            "This site does not answer to {what}. Use its own address, or add the name to \
             ALLOWED_HOSTS."
        ))
    };
    let Some(name) = host.and_then(host_name) else {
        return refused("a request without a valid host name".to_owned());
    };
    let allowed = site
        .allowed_hosts
        .iter()
        .chain(public_host.iter())
        .any(|pattern| matches(pattern, &name));
    if allowed {
        Ok(())
    } else {
        refused(format!("the host name {name}"))
    }
}

/// The host name of a `Host` value, lower-cased, without port or trailing dot; `None` when it
/// is not a host name.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        (rest.is_empty() || is_port(rest)).then_some(name.to_owned())?
    } else {
        match host.split_once(':') {
            Some((name, port)) if is_port(&format!(":{port}")) => name.to_owned(),
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.strip_suffix('.').map_or(name.clone(), str::to_owned);
    is_host_name(&name).then_some(name)
}

/// `:` and digits.
fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Django's `validate_host` rule: `*` is any host, `.example.com` the name and its
/// subdomains, anything else exactly itself.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('.') {
        _ if pattern == "*" => true,
        Some(suffix) => {
            name == suffix
                || name
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.'))
        }
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_are_reduced_to_their_name() {
        let cases = [
            ("localhost:8000", Some("localhost")),
            ("LOCALHOST.", Some("localhost")),
            ("[::1]:8000", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("127.0.0.1", Some("127.0.0.1")),
            ("a b", None),
            ("a:b", None),
            ("[::1", None),
            ("user@host", None),
            ("", None),
        ];
        for (host, name) in cases {
            assert_eq!(host_name(host).as_deref(), name, "{host}");
        }
    }

    #[test]
    fn patterns_match_as_djangos_do() {
        assert!(matches("*", "anything"));
        assert!(matches(".example.com", "example.com"));
        assert!(matches(".example.com", "a.b.example.com"));
        assert!(!matches(".example.com", "badexample.com"));
        assert!(!matches("example.com", "www.example.com"));
    }
}
