//! What a trusted proxy may tell: the client's address, for rate limits (the socket peer, or,
//! when the peer is a proxy listed in `TRUSTED_PROXIES`, the right-most `X-Forwarded-For` entry
//! that is not a trusted proxy, with or without a port; entries further left are whatever the
//! client chose to send), and whether the client came over HTTPS. The rules, on plain values; the `ClientAddr`
//! extractor (`extract.rs`) and the `mark_https` middleware (`middleware.rs`) apply them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};

/// The client address of a request, given the trusted proxies. Without connection info
/// (a router driven in-process), the unspecified address stands for "unknown".
pub(crate) fn client_addr(parts: &Parts, trusted: &[IpAddr]) -> IpAddr {
    resolve(peer(&parts.extensions), &parts.headers, trusted)
}

/// Whether `peer` is a trusted proxy whose last `X-Forwarded-Proto` value is `https`. Only the
/// last: a proxy appends or sets it, and whatever stands before came from further out.
pub(crate) fn forwarded_https(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> bool {
    // Canonical forms, as `resolve` compares them: on a dual-stack listener an IPv4 proxy
    // connects as `::ffff:a.b.c.d`.
    let peer = peer.to_canonical();
    trusted.iter().any(|proxy| proxy.to_canonical() == peer)
        && headers
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The socket peer; the unspecified address when the router runs without connection info.
pub(crate) fn peer(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        })
}

/// [`client_addr`]'s rule, on plain values.
fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
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
        match forwarded_ip(entry).map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(&ip) => nearest = ip,
            Some(ip) => return ip,
            // The entry a trusted proxy appended is never garbage: this came from the client.
            None => return nearest,
        }
    }
    nearest
}

/// The address of one `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, or with the port some
/// proxies append, `1.2.3.4:5678` and `[2001:db8::1]:443` (also `[2001:db8::1]`, as RFC 7239's
/// `Forwarded` writes it). Anything else is not an address.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .or_else(|| {
            let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
            bracketed.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })
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
    fn forwarded_entries_with_a_port_name_their_client_not_the_proxy() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let cases = [
            ("198.51.100.7:5678", "198.51.100.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::8]", "2001:db8::8"),
            ("6.6.6.6, 198.51.100.9:1, 10.0.0.2:80", "198.51.100.9"),
        ];
        for (forwarded_for, client) in cases {
            let headers = forwarded(&[forwarded_for]);
            assert_eq!(
                resolve(ip("10.0.0.1"), &headers, &trusted),
                ip(client),
                "X-Forwarded-For: {forwarded_for}"
            );
        }
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
        // On a dual-stack listener an IPv4 proxy connects as an IPv4-mapped address.
        assert!(forwarded_https(
            ip("::ffff:10.0.0.1"),
            &proto(&["https"]),
            &trusted
        ));
        assert!(forwarded_https(
            ip("10.0.0.1"),
            &proto(&["https"]),
            &[ip("::ffff:10.0.0.1")]
        ));
    }
}
