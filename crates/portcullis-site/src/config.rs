//! [`SiteConfig`]: the site's own settings (where it listens, its accounts database, log-in and
//! registration limits, trusted proxies), declared with the library's `settings!` and read
//! through the same [`ConfigLoader`] layers, and the rule that keeps the `dev` profile on
//! loopback.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use portcullis::config::{
    Config, ConfigError, ConfigLoader, ExtraSettings, Profile, SettingsReader, parse, show,
};
use portcullis::csrf::PublicOrigin;
use portcullis::redact::redact_url_password;

/// Where the site listens by default: this machine only.
const DEFAULT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8000);

/// Failed log-ins per window: Rails 8's authentication generator uses
/// `rate_limit to: 10, within: 3.minutes`.
const DEFAULT_LOGIN_RATE_LIMIT: RateLimit = RateLimit {
    max: 10,
    window: Duration::from_secs(180),
};

/// Registrations per client address (an IPv6 client by its /64) per window: a person makes one
/// account, a family or an office behind one address a few.
const DEFAULT_REGISTER_RATE_LIMIT: RateLimit = RateLimit {
    max: 10,
    window: Duration::from_secs(3600),
};

/// Registrations from all clients together per window: each costs an Argon2id hash (19 MiB,
/// about 20 ms of a core), so this bounds the CPU that strangers can spend (100 a minute is
/// about 2 s of one core a minute) and the accounts a botnet can create.
const DEFAULT_REGISTER_TOTAL_RATE_LIMIT: RateLimit = RateLimit {
    max: 100,
    window: Duration::from_secs(60),
};

/// Password checks that may wait for a hashing thread: at about 20 ms a hash, 32 waiting on
/// 2 cores is a wait of about a third of a second at worst.
const DEFAULT_PASSWORD_HASH_QUEUE: usize = 32;

portcullis::settings! {
    /// The site's own settings; the library's are in [`Config`]. Load both with [`load`].
    #[derive(Clone)]
    pub struct SiteConfig {
        /// where the site listens (`--bind`)
        "PORTCULLIS_BIND" => bind: SocketAddr {
            default: DEFAULT_BIND;
            parse: socket_addr;
            show: show::display;
            accepts: "an IP address and port";
        }
        /// where `GET /metrics` answers in the Prometheus text format, on a listener of its
        /// own (never the site's port); unset: no metrics are recorded. See `docs/METRICS.md`
        "METRICS_BIND" => metrics_bind: Option<SocketAddr> {
            default: None;
            parse: optional_socket_addr;
            show: |addr| addr.map(|a| a.to_string()).unwrap_or_default();
            accepts: "an IP address and port, e.g. `127.0.0.1:9464`";
        }
        /// let `dev` listen beyond loopback
        "PORTCULLIS_ALLOW_DEV_PROFILE" => allow_dev_profile: bool {
            default: false;
            parse: parse::boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// the site's accounts, migrated at start-up: a SQLite file (created if missing; a
        /// path relative to the working directory), or PostgreSQL, shared by many processes
        "DATABASE_URL" => database_url: String {
            default: "sqlite://portcullis.db".to_owned();
            parse: database_url;
            show: |url| redact_url_password(url);
            accepts: "a `sqlite:` URL, or a `postgres://` (`postgresql://`) one";
        }
        /// failed log-ins allowed per user name and per client address in a sliding window
        /// (Rails 8's default); beyond, 429 with `Retry-After`. Slows password guessing
        "LOGIN_RATE_LIMIT" => login_rate_limit: RateLimit {
            default: DEFAULT_LOGIN_RATE_LIMIT;
            parse: rate_limit;
            show: show::display;
            accepts: "a count and a window, e.g. `10/3m`";
        }
        /// registration attempts allowed per client address (an IPv6 client by its /64) in a
        /// sliding window; beyond, 429 with `Retry-After`. Slows account farming and
        /// user-name probing
        "REGISTER_RATE_LIMIT" => register_rate_limit: RateLimit {
            default: DEFAULT_REGISTER_RATE_LIMIT;
            parse: rate_limit;
            show: show::display;
            accepts: "a count and a window, e.g. `10/1h`";
        }
        /// registrations allowed from all clients together in a sliding window; beyond, 503 with
        /// `Retry-After`. Bounds the password-hashing CPU strangers can spend
        "REGISTER_TOTAL_RATE_LIMIT" => register_total_rate_limit: RateLimit {
            default: DEFAULT_REGISTER_TOTAL_RATE_LIMIT;
            parse: rate_limit;
            show: show::display;
            accepts: "a count and a window, e.g. `100/1m`";
        }
        /// password checks (log-in, registration, password change) that may wait for a
        /// hashing thread (one per core) when all are busy; beyond, 503 with `Retry-After` at
        /// once. Bounds how long a flood can make a log-in wait
        "PASSWORD_HASH_QUEUE" => password_hash_queue: usize {
            default: DEFAULT_PASSWORD_HASH_QUEUE;
            parse: count;
            show: show::display;
            accepts: "a number from 0";
        }
        /// reverse proxies (IP addresses, comma-separated) whose `X-Forwarded-For` is believed:
        /// the client is the right-most entry that is not one of them. Without it the socket
        /// peer is the client, so clients cannot pick their own address
        "TRUSTED_PROXIES" => trusted_proxies: Vec<IpAddr> {
            default: Vec::new();
            parse: ip_list;
            show: |proxies| show::list(proxies);
            accepts: "proxy IP addresses, comma-separated";
        }
        /// longest a client may take over a request's headers, counted from the connection's
        /// opening or the end of its previous request (so an idle keep-alive connection is
        /// closed too); beyond, the connection is closed. Against slow-header (Slowloris)
        /// clients holding connections
        "HEADER_READ_TIMEOUT" => header_read_timeout: Duration {
            default: DEFAULT_HEADER_READ_TIMEOUT;
            parse: parse::duration;
            show: show::duration;
            accepts: "seconds or `10s`, `1m`";
        }
        /// longest a client may take over a whole request body, however it trickles in;
        /// beyond, 408 and the connection is closed
        "REQUEST_BODY_TIMEOUT" => request_body_timeout: Duration {
            default: DEFAULT_REQUEST_BODY_TIMEOUT;
            parse: parse::duration;
            show: show::duration;
            accepts: "seconds or `30s`, `1m`";
        }
        /// longest the site works on one request, its body included; beyond, the site's 503
        /// page with `Retry-After`
        "REQUEST_TIMEOUT" => request_timeout: Duration {
            default: DEFAULT_REQUEST_TIMEOUT;
            parse: parse::duration;
            show: show::duration;
            accepts: "seconds or `60s`, `2m`";
        }
        /// requests handled at once; beyond, new ones get 503 with `Retry-After` at once
        /// (load shedding) instead of queueing
        "MAX_REQUESTS_IN_FLIGHT" => max_requests_in_flight: usize {
            default: DEFAULT_MAX_REQUESTS_IN_FLIGHT;
            parse: positive_count;
            show: show::display;
            accepts: "a whole number of at least 1";
        }
        /// where browsers reach the site; the CSRF check holds `Origin` and `Referer` to it
        /// (scheme, host and port). Unset: a trusted proxy's `X-Forwarded-Proto` and
        /// `X-Forwarded-Host`, else the connection and `Host`
        "PUBLIC_ORIGIN" => public_origin: Option<PublicOrigin> {
            default: None;
            parse: public_origin;
            show: |origin| origin.as_ref().map(ToString::to_string).unwrap_or_default();
            accepts: "`scheme://host[:port]` as browsers send it, e.g. `https://app.example.com`";
        }
        /// host names the site answers to (any port), as Django's and Rails': `.example.com`
        /// also covers its subdomains, `*` any host; other `Host` headers get 400, against DNS
        /// rebinding. `PUBLIC_ORIGIN`'s host is always allowed; empty and no `PUBLIC_ORIGIN`:
        /// any host
        "ALLOWED_HOSTS" => allowed_hosts: Vec<String> {
            default: dev_hosts(), redis: Vec::new();
            parse: host_list;
            show: |hosts| show::list(hosts);
            accepts: "host names, comma-separated";
        }
        /// add `includeSubDomains` to `Strict-Transport-Security` (sent on HTTPS answers when
        /// cookies are `Secure`): only when every subdomain serves HTTPS
        "HSTS_INCLUDE_SUBDOMAINS" => hsts_include_subdomains: bool {
            default: false;
            parse: parse::boolean;
            show: show::display;
            accepts: "a boolean";
        }
        /// the log's form on standard error: `text` for people, `json` for a log pipeline (one
        /// JSON object per line, security events included: docs/EVENTS.md)
        "LOG_FORMAT" => log_format: LogFormat {
            default: LogFormat::Text;
            parse: log_format;
            show: show::display;
            accepts: "`text` or `json`";
        }
        /// after SIGTERM, how long the site still accepts requests while `/readyz` answers
        /// 503, so that a load balancer (Kubernetes) stops sending before the listener closes;
        /// then requests in flight finish
        "SHUTDOWN_DRAIN_TIME" => shutdown_drain_time: Duration {
            default: Duration::ZERO;
            parse: parse::duration;
            show: show::duration;
            accepts: "seconds or `5s`, `1m`";
        }
    }
}

/// Go's and nginx's usual advice for the header phase is seconds, not minutes.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A form or JSON body of the site is at most `MAX_CONTENT_LENGTH`: 30 s is dial-up speed.
const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Longer than the body's deadline, so a slow body is answered 408 rather than 503.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Each request may buffer a form of up to `MAX_CONTENT_LENGTH` (1 MiB): 256 bound that memory.
const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// The form of the log (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing-subscriber's text lines, for people.
    Text,
    /// tracing-subscriber's JSON, one object per line, for log pipelines.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

impl LogFormat {
    /// `LOG_FORMAT` as the process environment holds it, read before the rest of the
    /// configuration so that the lines logged while it loads (the profile chosen) are in that
    /// form too; `text` when unset or not understood. A `LOG_FORMAT` of `.env` takes effect
    /// once the configuration is read, which also refuses a bad value.
    pub fn from_environment() -> Self {
        std::env::var("LOG_FORMAT")
            .ok()
            .and_then(|raw| log_format(&raw).ok())
            .unwrap_or(Self::Text)
    }
}

/// `text` or `json`, in any case.
fn log_format(raw: &str) -> parse::Parsed<LogFormat> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("text or json".to_owned()),
    }
}

/// A whole number of at least 1.
fn positive_count(raw: &str) -> parse::Parsed<usize> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| "a whole number of at least 1, e.g. 256".to_owned())
}

/// The `dev` profile answers only to loopback names (Rails' development default), so a page
/// elsewhere cannot rebind its own name to 127.0.0.1 and drive the dev server.
fn dev_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "[::1]"]
        .map(str::to_owned)
        .to_vec()
}

/// `PUBLIC_ORIGIN`: one origin, exactly as a browser sends it.
fn public_origin(raw: &str) -> parse::Parsed<Option<PublicOrigin>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    PublicOrigin::parse(raw).map(Some).map_err(|_| {
        "an origin as browsers send it: http or https, a lower-case host, a port only if not \
         the default, no path, e.g. https://app.example.com"
            .to_owned()
    })
}

/// Whether `name` is a host name as `Host` carries it without its port: letters, digits, dots
/// and hyphens (DNS names, IPv4 addresses), or an IPv6 address in brackets.
pub(crate) fn is_host_name(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|v6| v6.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
    }
}

/// `ALLOWED_HOSTS`: comma-separated host names (`*`, `.suffix`, a name, an IPv4 address or a
/// bracketed IPv6 one), without port; lower-cased.
fn host_list(raw: &str) -> parse::Parsed<Vec<String>> {
    let entries = raw.split(',').map(str::trim).filter(|e| !e.is_empty());
    entries
        .map(|entry| {
            let entry = entry.to_ascii_lowercase();
            let name = entry.strip_prefix('.').unwrap_or(&entry);
            let ok = entry == "*" || is_host_name(name);
            if ok {
                Ok(entry)
            } else {
                Err(format!(
                    "host names separated by commas, e.g. app.example.com,.example.org,[::1] \
                     (no scheme or port; {entry:?} is not one)"
                ))
            }
        })
        .collect()
}

/// Loads the library's configuration and the site's through `loader`.
///
/// # Errors
/// As [`ConfigLoader::load`], for every setting of both, and the `dev` profile's refusal to
/// listen beyond loopback unless `PORTCULLIS_ALLOW_DEV_PROFILE=true`.
pub fn load(loader: ConfigLoader) -> Result<(Config, SiteConfig), ConfigError> {
    loader.load_with::<SiteConfig>()
}

/// `loader` with `--bind` given: it wins over `PORTCULLIS_BIND`.
pub fn with_bind(loader: ConfigLoader, bind: SocketAddr) -> ConfigLoader {
    loader.command_line("PORTCULLIS_BIND", bind.to_string())
}

impl ExtraSettings for SiteConfig {
    fn read(reader: &mut SettingsReader, config: &Config) -> Result<Self, ConfigError> {
        let mut site = Self::defaults(config.profile);
        site.read_declared(reader)?;
        Ok(site)
    }

    /// The `dev` profile keeps sessions in local files: it listens on loopback only, unless
    /// allowed.
    fn check(&self, config: &Config) -> Result<(), ConfigError> {
        check_metrics_bind(self.metrics_bind, self.bind)?;
        if config.profile == Profile::Dev && !is_loopback(self.bind) && !self.allow_dev_profile {
            return Err(ConfigError::Conflict {
                message: format!(
                    "PORTCULLIS_BIND={} is not a loopback address and the dev profile keeps \
                     sessions in local files, not for production: use the redis profile, bind \
                     to 127.0.0.1, or set PORTCULLIS_ALLOW_DEV_PROFILE=true",
                    self.bind
                ),
            });
        }
        Ok(())
    }

    /// The `dev` profile listening beyond loopback, when allowed.
    fn warnings(&self, config: &Config) -> Vec<String> {
        let mut warnings = Vec::new();
        if config.profile == Profile::Dev && !is_loopback(self.bind) {
            warnings.push(format!(
                "PORTCULLIS_ALLOW_DEV_PROFILE=true lets the dev profile listen on {}: it keeps \
                 sessions in local files and is not for production",
                self.bind
            ));
        }
        warnings
    }
}

/// `METRICS_BIND` is a listener of its own: never the site's port (so metrics cannot end up on
/// the public port by a typo), and refused by a build without the `metrics` feature rather
/// than silently ignored.
fn check_metrics_bind(metrics: Option<SocketAddr>, site: SocketAddr) -> Result<(), ConfigError> {
    let Some(metrics) = metrics else {
        return Ok(());
    };
    if !crate::metrics::BUILT_IN {
        return Err(ConfigError::Conflict {
            message: format!(
                "METRICS_BIND={metrics} is set but this build has no metrics (the `metrics` \
                 feature of portcullis-site): unset it or build with the feature"
            ),
        });
    }
    let same_ip =
        metrics.ip() == site.ip() || metrics.ip().is_unspecified() || site.ip().is_unspecified();
    if metrics.port() != 0 && metrics.port() == site.port() && same_ip {
        return Err(ConfigError::Conflict {
            message: format!(
                "METRICS_BIND={metrics} is the site's own address (PORTCULLIS_BIND={site}): \
                 metrics go on a listener of their own, e.g. 127.0.0.1:9464"
            ),
        });
    }
    Ok(())
}

/// Whether `addr` is reachable only from this machine (`::ffff:127.0.0.1` included).
fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// At most `max` events per `window` (`LOGIN_RATE_LIMIT`, written `10/3m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// How many events the window allows.
    pub max: u32,
    /// How long an event counts.
    pub window: Duration,
}

/// Prints `10/3m`, as the setting accepts it back.
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.max,
            humantime::format_duration(self.window)
        )
    }
}

/// `COUNT/DURATION`: a count of at least 1, and a duration as the other settings take it.
fn rate_limit(raw: &str) -> parse::Parsed<RateLimit> {
    let allowed = || "a count and a duration, e.g. 10/3m (10 per 3 minutes) or 5/60".to_owned();
    let (max, window) = raw.split_once('/').ok_or_else(allowed)?;
    let max = max.trim().parse::<u32>().ok().filter(|&n| n > 0);
    let window = parse::duration(window).ok();
    match (max, window) {
        (Some(max), Some(window)) => Ok(RateLimit { max, window }),
        _ => Err(allowed()),
    }
}

/// A whole number from 0.
fn count(raw: &str) -> parse::Parsed<usize> {
    raw.trim()
        .parse()
        .map_err(|_| "a whole number from 0, e.g. 32".to_owned())
}

/// The accounts database: a `sqlite:` URL (`sqlite://portcullis.db`, `sqlite::memory:`) or a
/// PostgreSQL one (`postgres://user:password@host/db`, libpq's form, `?sslmode=` included).
fn database_url(raw: &str) -> parse::Parsed<String> {
    let raw = raw.trim();
    let sqlite = raw.starts_with("sqlite:") && raw.len() > "sqlite:".len();
    let postgres = ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| raw.starts_with(scheme) && raw.len() > scheme.len());
    if sqlite || postgres {
        Ok(raw.to_owned())
    } else {
        Err(
            "a sqlite: URL, e.g. sqlite://portcullis.db, or a PostgreSQL one, e.g. \
             postgres://portcullis@db.internal/portcullis"
                .into(),
        )
    }
}

/// Comma-separated IP addresses; whitespace and empty entries are ignored, so an empty value
/// means none.
fn ip_list(raw: &str) -> parse::Parsed<Vec<IpAddr>> {
    let entries = raw.split(',').map(str::trim).filter(|e| !e.is_empty());
    entries
        .map(|entry| {
            entry.parse().map_err(|_| {
                format!(
                    "IP addresses separated by commas, e.g. 10.0.0.1,::1 ({entry:?} is not one)"
                )
            })
        })
        .collect()
}

/// An IP address and port.
fn socket_addr(raw: &str) -> parse::Parsed<SocketAddr> {
    raw.trim()
        .parse()
        .map_err(|_| "an IP address and port, e.g. 127.0.0.1:8000 or [::1]:8000".to_owned())
}

/// `METRICS_BIND`: empty is unset.
fn optional_socket_addr(raw: &str) -> parse::Parsed<Option<SocketAddr>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.trim()
        .parse()
        .map(Some)
        .map_err(|_| "an IP address and port, e.g. 127.0.0.1:9464".to_owned())
}

#[cfg(test)]
mod tests {
    use portcullis::config::{Source, reference_table};

    use super::*;

    /// Exactly the minimum length, 32 bytes.
    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn loader(dir: &tempfile::TempDir, pairs: &[(&str, &str)]) -> ConfigLoader {
        let mut vars = vec![("SECRET_KEY".to_owned(), KEY.to_owned())];
        vars.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        ConfigLoader::new()
            .env(vars)
            .no_dotenv()
            .state_dir(dir.path().join("state"))
    }

    fn load_pairs(pairs: &[(&str, &str)]) -> Result<(Config, SiteConfig), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        load(loader(&dir, pairs))
    }

    fn error(pairs: &[(&str, &str)]) -> ConfigError {
        load_pairs(pairs).expect_err("the configuration should be refused")
    }

    #[test]
    fn dev_and_redis_profiles_have_the_site_defaults() {
        for profile in ["dev", "redis"] {
            let (_, site) = load_pairs(&[("PORTCULLIS_PROFILE", profile)]).unwrap();
            assert_eq!(site.bind, "127.0.0.1:8000".parse::<SocketAddr>().unwrap());
            assert!(!site.allow_dev_profile, "{profile}");
        }
    }

    #[test]
    fn command_line_profile_and_bind_beat_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let pairs = [
            ("PORTCULLIS_PROFILE", "dev"),
            ("PORTCULLIS_BIND", "127.0.0.1:1"),
        ];
        let bind: SocketAddr = "[::1]:9000".parse().unwrap();
        let (c, site) = load(with_bind(
            loader(&dir, &pairs).profile(Profile::Redis),
            bind,
        ))
        .unwrap();
        assert_eq!(c.profile, Profile::Redis);
        assert_eq!(c.source("PORTCULLIS_PROFILE"), Source::CommandLine);
        assert_eq!(site.bind, bind);
        assert_eq!(site.source("PORTCULLIS_BIND"), Source::CommandLine);
    }

    #[test]
    fn a_bad_value_is_refused_in_one_line_with_setting_value_and_what_is_allowed() {
        const BOOL: &str = "true or false (also 1/0, yes/no, on/off)";
        let cases: &[(&str, &str, &str)] = &[
            (
                "PORTCULLIS_BIND",
                "localhost:8000",
                "an IP address and port, e.g. 127.0.0.1:8000 or [::1]:8000",
            ),
            ("PORTCULLIS_ALLOW_DEV_PROFILE", "sure", BOOL),
        ];
        for &(setting, value, allowed) in cases {
            let err = error(&[(setting, value)]);
            let message = err.to_string();
            assert_eq!(message, format!("invalid {setting}={value:?}: {allowed}"));
            assert!(!message.contains('\n'), "one line: {message}");
            let ConfigError::Invalid {
                setting: s,
                value: v,
                ..
            } = &err
            else {
                panic!("not Invalid: {err:?}");
            };
            assert_eq!((*s, v.as_str()), (setting, value));
        }
    }

    #[test]
    fn report_gives_the_bind_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let bind: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let (_, site) = load(with_bind(loader(&dir, &[]), bind)).unwrap();
        let report = site.report();
        let source = |name: &str| report.iter().find(|s| s.name == name).unwrap().source;
        assert_eq!(source("PORTCULLIS_BIND"), Source::CommandLine);
        assert_eq!(source("DATABASE_URL"), Source::Default);
        assert_eq!(site.source("NOT_A_SETTING"), Source::Default);
    }

    #[test]
    fn report_lists_every_site_setting_once() {
        let (_, site) = load_pairs(&[]).unwrap();
        let mut names: Vec<&str> = site.report().iter().map(|s| s.name).collect();
        names.sort_unstable();
        let mut recorded: Vec<&str> = site.sources.keys().copied().collect();
        recorded.sort_unstable();
        assert_eq!(
            names, recorded,
            "every setting read is reported, and nothing else"
        );
    }

    #[test]
    fn the_dev_profile_beyond_loopback_is_refused_in_one_line_naming_both() {
        let err = error(&[("PORTCULLIS_BIND", "0.0.0.0:8000")]);
        assert!(matches!(err, ConfigError::Conflict { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "PORTCULLIS_BIND=0.0.0.0:8000 is not a loopback address and the dev profile keeps \
             sessions in local files, not for production: use the redis profile, bind to \
             127.0.0.1, or set PORTCULLIS_ALLOW_DEV_PROFILE=true"
        );
        let cases: &[&[(&str, &str)]] = &[
            &[("PORTCULLIS_BIND", "[::1]:8000")],
            &[
                ("PORTCULLIS_BIND", "0.0.0.0:8000"),
                ("PORTCULLIS_ALLOW_DEV_PROFILE", "true"),
            ],
            &[
                ("PORTCULLIS_BIND", "0.0.0.0:8000"),
                ("PORTCULLIS_PROFILE", "redis"),
            ],
        ];
        for pairs in cases {
            assert!(load_pairs(pairs).is_ok(), "{pairs:?}");
        }
    }

    #[test]
    fn dev_profile_beyond_loopback_is_warned_about_when_allowed() {
        let pairs = [
            ("PORTCULLIS_BIND", "0.0.0.0:8000"),
            ("PORTCULLIS_ALLOW_DEV_PROFILE", "yes"),
        ];
        let (config, site) = load_pairs(&pairs).unwrap();
        assert_eq!(
            config.warnings_with(&site),
            [
                "PORTCULLIS_ALLOW_DEV_PROFILE=true lets the dev profile listen on 0.0.0.0:8000: it \
              keeps sessions in local files and is not for production"
            ]
        );
    }

    #[test]
    fn site_settings_have_defaults_and_parse_their_forms() {
        let (_, site) = load_pairs(&[]).unwrap();
        assert_eq!(site.database_url, "sqlite://portcullis.db");
        assert_eq!(
            site.login_rate_limit,
            RateLimit {
                max: 10,
                window: Duration::from_secs(180)
            }
        );
        assert!(site.trusted_proxies.is_empty());
        let report = site.report();
        let value = |name: &str| {
            report
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("LOGIN_RATE_LIMIT"), "10/3m");
        assert_eq!(value("TRUSTED_PROXIES"), "");
        assert_eq!(value("LOG_FORMAT"), "text");
        assert_eq!(site.shutdown_drain_time, Duration::ZERO);

        let (_, site) = load_pairs(&[
            ("DATABASE_URL", "sqlite:///var/lib/app/users.db"),
            ("LOGIN_RATE_LIMIT", "5/60"),
            ("TRUSTED_PROXIES", " 10.0.0.1, ::1 ,"),
        ])
        .unwrap();
        assert_eq!(site.database_url, "sqlite:///var/lib/app/users.db");
        assert_eq!(site.login_rate_limit.max, 5);
        assert_eq!(site.login_rate_limit.window, Duration::from_secs(60));
        assert_eq!(site.trusted_proxies.len(), 2);
        assert_eq!(
            site.report()
                .iter()
                .find(|s| s.name == "TRUSTED_PROXIES")
                .unwrap()
                .value,
            "10.0.0.1,::1"
        );
    }

    #[test]
    fn a_postgres_database_url_is_accepted_and_shown_without_its_password() {
        for url in [
            "postgres://app:hunter2@db.internal:5432/portcullis",
            "postgresql://app:hunter2@db.internal/portcullis?sslmode=require",
        ] {
            let (_, site) = load_pairs(&[("DATABASE_URL", url)]).unwrap();
            assert_eq!(site.database_url, url);
            let shown = site
                .report()
                .into_iter()
                .find(|s| s.name == "DATABASE_URL")
                .unwrap()
                .value;
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("app:"), "{shown}");
        }
    }

    #[test]
    fn bad_site_settings_are_refused_naming_the_setting() {
        for (name, value) in [
            ("DATABASE_URL", "mysql://db/users"),
            ("DATABASE_URL", "sqlite:"),
            ("DATABASE_URL", "postgres://"),
            ("DATABASE_URL", "pg://db/users"),
            ("LOGIN_RATE_LIMIT", "10"),
            ("LOGIN_RATE_LIMIT", "0/3m"),
            ("LOGIN_RATE_LIMIT", "10/0"),
            ("LOGIN_RATE_LIMIT", "ten/3m"),
            ("TRUSTED_PROXIES", "10.0.0.1,proxy.local"),
            ("PUBLIC_ORIGIN", "https://app.example.com/"),
            ("PUBLIC_ORIGIN", "app.example.com"),
            ("PUBLIC_ORIGIN", "https://app.example.com:443"),
            ("ALLOWED_HOSTS", "localhost:8000"),
            ("ALLOWED_HOSTS", "https://app.example.com"),
            ("ALLOWED_HOSTS", "a b"),
            ("LOG_FORMAT", "xml"),
            ("SHUTDOWN_DRAIN_TIME", "soon"),
        ] {
            let text = error(&[(name, value)]).to_string();
            assert!(text.contains(name), "{name}={value}: {text}");
        }
    }

    /// The README's configuration table, from its header line to the last row.
    fn readme_table(readme: &str) -> String {
        readme
            .lines()
            .skip_while(|line| !line.starts_with("| setting |"))
            .take_while(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn the_readme_configuration_table_is_the_generated_one() {
        let readme = include_str!("../../../README.md");
        let mut rows = Config::reference();
        rows.extend(SiteConfig::reference());
        let generated = reference_table(&rows);
        assert_eq!(
            readme_table(readme),
            generated,
            "the README's configuration table must be exactly this:\n{generated}"
        );
    }
}
