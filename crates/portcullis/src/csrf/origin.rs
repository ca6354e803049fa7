//! The full-origin check that follows tower-http's Fetch Metadata gate: an `Origin` must be the
//! site's own origin (scheme, host and port) or a trusted one, and over HTTPS a request with
//! neither `Sec-Fetch-Site` nor `Origin` must carry a same-origin `Referer` (Django's
//! `_origin_verified` and `_check_referer`). The decision is [`verify`], on plain values.

use std::fmt;

use http::HeaderMap;
use http::header::{HOST, ORIGIN, REFERER};

use super::CsrfError;

/// Where browsers reach the site, `scheme://host[:port]`: what an `Origin` header must equal.
///
/// An application that knows it better than the request does (a configured public origin, or a
/// trusted proxy's `X-Forwarded-Proto` and `X-Forwarded-Host`) puts one in the request's
/// extensions, outside [`CsrfLayer`](super::CsrfLayer); the reference site does, from
/// `PUBLIC_ORIGIN` or `TRUSTED_PROXIES`. Without it the origin is the request's own: `https`
/// when the URI says so or the [`Https`](super::Https) marker is there, else `http`, and the
/// `Host` header (else the URI's authority).
///
/// ```
/// use portcullis::csrf::PublicOrigin;
///
/// let origin = PublicOrigin::parse("https://app.example.com:8443").unwrap();
/// assert!(origin.is_https());
/// assert_eq!(origin.to_string(), "https://app.example.com:8443");
/// assert!(PublicOrigin::parse("https://app.example.com/").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicOrigin {
    scheme: String,
    host: String,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

impl PublicOrigin {
    /// Parses an origin as a browser sends it: `http` or `https`, a host in lower case, no
    /// default port, no path, user info or trailing slash.
    ///
    /// # Errors
    /// What is allowed and what is wrong, when `origin` is not such an origin.
    pub fn parse(origin: &str) -> Result<Self, String> {
        super::check_trusted_origin(origin)?;
        Self::lenient(origin).ok_or_else(|| format!("{origin:?} is not an origin"))
    }

    /// `scheme://host` where `host` is a `Host` header value (`name[:port]`), lower-cased and
    /// without the default port; `None` when it is not one.
    #[must_use]
    pub fn from_host(https: bool, host: &str) -> Option<Self> {
        let scheme = if https { "https" } else { "http" };
        if host.contains(['/', '?', '#', '@']) {
            return None;
        }
        Self::lenient(&format!("{scheme}://{host}"))
    }

    /// Whether browsers reach the site over HTTPS.
    #[must_use]
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// The host, lower-cased (an IPv6 address without its brackets).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The origin of any absolute `http(s)` URL, normalised (lower case, default port
    /// dropped), whatever its path.
    fn of_url(url: &str) -> Option<Self> {
        let (scheme, host, port) = url_origin(url)?;
        let default = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        Some(Self {
            scheme,
            host,
            port: port.filter(|&p| p != default),
        })
    }

    /// [`Self::of_url`] for an origin: nothing after the authority.
    fn lenient(origin: &str) -> Option<Self> {
        let (_, rest) = origin.split_once("://")?;
        if rest.contains(['/', '?', '#']) {
            return None;
        }
        Self::of_url(origin)
    }
}

/// `https://host[:port]`, as browsers send it in `Origin`.
impl fmt::Display for PublicOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        match self.port {
            Some(port) => write!(f, "{}://{host}:{port}", self.scheme),
            None => write!(f, "{}://{host}", self.scheme),
        }
    }
}

/// The request's public origin, from the extension an application put in, else from the
/// request itself (see [`PublicOrigin`]).
pub(crate) fn site_origin<B>(request: &http::Request<B>, https: bool) -> Option<PublicOrigin> {
    if let Some(origin) = request.extensions().get::<PublicOrigin>() {
        return Some(origin.clone());
    }
    let host = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(http::uri::Authority::as_str))?;
    PublicOrigin::from_host(https, host)
}

/// What the check needs besides the headers.
pub(crate) struct Rules<'a> {
    /// The site's origin; `None` when the request names no usable host.
    pub(crate) site: Option<&'a PublicOrigin>,
    /// `CSRF_TRUSTED_ORIGINS`, byte for byte as configured.
    pub(crate) trusted: &'a [String],
    /// Whether a request with neither `Sec-Fetch-Site` nor `Origin` needs a same-origin
    /// `Referer`: over HTTPS, when the token check is on.
    pub(crate) referer_rule: bool,
}

/// Django's reasons, for readers who know them.
const NO_REFERER: &str = "Referer checking failed - no Referer.";
const MALFORMED_REFERER: &str = "Referer checking failed - Referer is malformed.";
const INSECURE_REFERER: &str =
    "Referer checking failed - Referer is insecure while host is secure.";

/// Decides an unsafe request that tower-http's gate let through (its `Sec-Fetch-Site` is
/// absent, `same-origin` or `none`, or its `Origin` is trusted).
///
/// - An `Origin` passes when it is trusted or equals the site's origin in scheme, host and port.
///   `Origin: null` passes only beside `Sec-Fetch-Site` (browsers send `null` from pages whose
///   `Referrer-Policy` is `no-referrer`; the Fetch Metadata header already vouched for it).
/// - With neither header, under the `Referer` rule, the `Referer` must be an `https` URL on the
///   site's origin or a trusted one.
///
/// # Errors
/// [`CsrfError::OriginMismatch`] or [`CsrfError::Referer`], with Django's reason.
pub(crate) fn verify(headers: &HeaderMap, rules: &Rules<'_>) -> Result<(), CsrfError> {
    let header = |name| {
        headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .filter(|value| !value.is_empty())
    };
    let fetch_site = header(http::HeaderName::from_static("sec-fetch-site"));
    let is_ours = |origin: Option<PublicOrigin>| origin.is_some() && origin.as_ref() == rules.site;
    let trusted = |origin: &str| rules.trusted.iter().any(|t| t == origin);
    if let Some(origin) = header(ORIGIN) {
        if trusted(&origin) || (origin == "null" && fetch_site.is_some()) {
            return Ok(());
        }
        if is_ours(PublicOrigin::lenient(&origin)) {
            return Ok(());
        }
        return Err(CsrfError::OriginMismatch { origin });
    }
    if fetch_site.is_some() || !rules.referer_rule {
        return Ok(());
    }
    let Some(referer) = header(REFERER) else {
        return Err(CsrfError::Referer(NO_REFERER.to_owned()));
    };
    let Some(theirs) = PublicOrigin::of_url(&referer) else {
        return Err(CsrfError::Referer(MALFORMED_REFERER.to_owned()));
    };
    if !theirs.is_https() {
        return Err(CsrfError::Referer(INSECURE_REFERER.to_owned()));
    }
    if trusted(&theirs.to_string()) || is_ours(Some(theirs)) {
        return Ok(());
    }
    Err(CsrfError::Referer(format!(
        "Referer checking failed - {referer} does not match any trusted origins."
    )))
}

/// `(scheme, hostname, port)` of an absolute URL, lower-cased as `urlparse` gives them; `None`
/// for a URL that has none, or whose port `urlparse` would refuse.
pub(crate) fn url_origin(url: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = url.split_once(':')?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let rest = rest.strip_prefix("//").filter(|_| scheme_ok)?;
    let netloc = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostinfo = netloc.rsplit_once('@').map_or(netloc, |(_, host)| host);
    let (hostname, port) = match hostinfo.strip_prefix('[') {
        Some(bracketed) => {
            let (hostname, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            (hostname, after.split_once(':').map_or("", |(_, port)| port))
        }
        None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
    };
    if hostname.is_empty() {
        return None;
    }
    let port = if port.is_empty() {
        None
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        Some(port.parse::<u16>().ok()?)
    } else {
        return None;
    };
    Some((
        scheme.to_ascii_lowercase(),
        hostname.to_ascii_lowercase(),
        port,
    ))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn an_origin_must_match_in_scheme_host_and_port() {
        let site = PublicOrigin::parse("https://example.com").unwrap();
        let rules = Rules {
            site: Some(&site),
            trusted: &["https://trusted.example".to_owned()],
            referer_rule: true,
        };
        let cases = [
            ("https://example.com", true),
            ("https://EXAMPLE.com", true),
            ("https://example.com:443", true),
            ("https://trusted.example", true),
            ("http://example.com", false),
            ("https://example.com:8443", false),
            ("https://example.com.attacker.example", false),
            ("https://site.attacker.example", false),
            ("https://attacker.example", false),
            ("https://example.com/path", false),
            ("null", false),
            ("garbage", false),
        ];
        for (origin, passes) in cases {
            let result = verify(&headers(&[("origin", origin)]), &rules);
            assert_eq!(result.is_ok(), passes, "{origin}: {result:?}");
        }
        let null_beside_fetch_site =
            headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert!(verify(&null_beside_fetch_site, &rules).is_ok());
    }

    #[test]
    fn public_origins_are_parsed_exactly() {
        for good in [
            "https://a.example",
            "http://localhost:8000",
            "http://[::1]:8000",
        ] {
            assert_eq!(PublicOrigin::parse(good).unwrap().to_string(), good);
        }
        for bad in [
            "https://a.example/",
            "a.example",
            "https://A.example",
            "https://a.example:443",
            "ftp://a.example",
        ] {
            assert!(PublicOrigin::parse(bad).is_err(), "{bad}");
        }
        let host = PublicOrigin::from_host(true, "Example.com:443").unwrap();
        assert_eq!(host.to_string(), "https://example.com");
        assert!(PublicOrigin::from_host(false, "a@b").is_none());
    }
}
