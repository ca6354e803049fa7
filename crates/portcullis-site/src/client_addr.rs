//! The client's address, for rate limits: the socket peer, or, when the peer is a proxy listed
//! in `TRUSTED_PROXIES`, the right-most `X-Forwarded-For` entry that is not a trusted proxy
//! (entries further left are whatever the client chose to send). And whether the client came
//! over HTTPS ([`mark_https`]), which only a trusted proxy can say.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use portcullis::csrf::Https;

use crate::state::AppState;

/// The client's address, as an extractor (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self(client_addr(
            parts,
            &state.site_config().trusted_proxies,
        )))
    }
}

/// The client address of a request, given the trusted proxies. Without connection info
/// (a router driven in-process), the unspecified address stands for "unknown".
pub(crate) fn client_addr(parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    resolve(peer(&parts.extensions), &parts.headers, trusted)
}

/// Middleware: marks a request that a trusted proxy says came over HTTPS with
/// [`portcullis::csrf::Https`], so that the Flask format's CSRF check asks for a matching
/// `Referer` as Flask-WTF does behind Werkzeug's `ProxyFix`.
pub(crate) async fn mark_https(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = peer(request.extensions());
    if forwarded_https(
        peer,
        request.headers(),
        &state.site_config().trusted_proxies,
    ) {
        request.extensions_mut().insert(Https);
    }
    next.run(request).await
}

/// Whether `peer` is a trusted proxy whose last `X-Forwarded-Proto` value is `https`. Only the
/// last: a proxy appends or sets it, and whatever stands before came from further out.
pub(crate) fn forwarded_https(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> bool {
    trusted.contains(&peer)
        && headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The socket peer; the unspecified address when the router runs without connection info.
fn peer(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        })
}

/// [`client_addr`]'s rule, on plain values.
pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    // On a dual-stack socket an IPv4 proxy connects as `::ffff:a.b.c.d`: compare canonical forms.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !is_trusted(&peer) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one comma-separated list.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if is_trusted(&ip) => nearest = ip,
            Ok(ip) => return ip,
            // The entry a trusted proxy appended is never garbage: this came from the client.
            Err(_) => return nearest,
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let headers = forwarded(&["1.2.3.4"]);
        assert_eq!(
            resolve(ip("9.9.9.9"), &headers, &[ip("10.0.0.1")]),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn an_ipv4_proxy_on_a_dual_stack_socket_is_still_trusted() {
        let headers = forwarded(&["5.5.5.5"]);
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(resolve(mapped, &headers, &[ip("10.0.0.1")]), ip("5.5.5.5"));
        assert_eq!(resolve(ip("::ffff:9.9.9.9"), &headers, &[]), ip("9.9.9.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let headers = forwarded(&["6.6.6.6, 5.5.5.5", "10.0.0.2"]);
        assert_eq!(resolve(ip("10.0.0.1"), &headers, &trusted), ip("5.5.5.5"));
        let spoofed = forwarded(&["not-an-ip, 10.0.0.2"]);
        assert_eq!(resolve(ip("10.0.0.1"), &spoofed, &trusted), ip("10.0.0.2"));
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn only_a_trusted_proxy_says_the_client_came_over_https() {
        let trusted = [ip("10.0.0.1")];
        let proto = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("x-forwarded-proto", HeaderValue::from_str(value).unwrap());
            }
            headers
        };
        assert!(forwarded_https(
            ip("10.0.0.1"),
            &proto(&["https"]),
            &trusted
        ));
        assert!(forwarded_https(
            ip("10.0.0.1"),
            &proto(&["http, HTTPS"]),
            &trusted
        ));
        assert!(!forwarded_https(
            ip("10.0.0.1"),
            &proto(&["https, http"]),
            &trusted
        ));
        assert!(!forwarded_https(
            ip("10.0.0.1"),
            &proto(&["https", "http"]),
            &trusted
        ));
        assert!(!forwarded_https(
            ip("10.0.0.1"),
            &HeaderMap::new(),
            &trusted
        ));
        assert!(!forwarded_https(
            ip("9.9.9.9"),
            &proto(&["https"]),
            &trusted
        ));
    }
}
