//! Tests of loading, precedence, validation, the development key, the report and warnings.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::{TempDir, tempdir};

use super::source::Layers;
use super::*;

/// Exactly the minimum length, 32 bytes.
const KEY: &str = "0123456789abcdef0123456789abcdef";
const OLD_KEY: &str = "an-older-key-that-is-long-enough-0001";

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A loader over `pairs` only: no process environment, no `.env`, state in `dir`.
fn loader(dir: &TempDir, pairs: &[(&str, &str)]) -> ConfigLoader {
    ConfigLoader::new()
        .env(vars(pairs))
        .no_dotenv()
        .state_dir(dir.path().join("state"))
}

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempdir().unwrap();
    loader(&dir, pairs).load()
}

/// `pairs` with a valid `SECRET_KEY` in front (later pairs win).
fn keyed<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("SECRET_KEY", KEY)];
    all.extend_from_slice(pairs);
    all
}

fn error(pairs: &[(&str, &str)]) -> ConfigError {
    load(&keyed(pairs)).expect_err("the configuration should be refused")
}

fn dotenv(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join(".env");
    fs::write(&path, text).unwrap();
    path
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn dev_and_redis_profiles_have_their_defaults() {
    // (profile, session_permanent, session_type, session_cookie_secure)
    let cases = [
        ("dev", false, StoreKind::Filesystem, false),
        ("redis", true, StoreKind::Redis, true),
    ];
    for (profile, permanent, store, secure) in cases {
        let c = load(&keyed(&[("PORTCULLIS_PROFILE", profile)])).unwrap();
        assert_eq!(c.profile.to_string(), profile);
        assert_eq!(c.session_permanent, permanent, "{profile}");
        assert_eq!(c.session_type, store, "{profile}");
        assert_eq!(c.session_cookie_secure, secure, "{profile}");
        assert_eq!(c.secret_key.as_bytes(), KEY.as_bytes());
        assert!(c.secret_key_fallbacks.is_empty());
        assert_eq!(c.permanent_session_lifetime, Duration::from_secs(300));
        assert_eq!(c.session_absolute_lifetime, Duration::from_secs(8 * 3600));
        assert!(c.session_refresh_each_request);
        assert_eq!(c.session_key_prefix, "sess:");
        assert!(c.session_use_signer, "the signer is on in every profile");
        assert_eq!(c.session_file_dir, PathBuf::from("./.flask_session"));
        assert_eq!(c.session_cookie_name, "session");
        assert_eq!(c.session_cookie_domain, None);
        assert_eq!(c.session_cookie_path, "/");
        assert!(c.session_cookie_httponly);
        assert_eq!(c.session_cookie_samesite, SameSite::Lax);
        assert_eq!(c.session_max_bytes, 65536);
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.redis_connect_timeout, Duration::from_millis(250));
        assert_eq!(c.redis_response_timeout, Duration::from_millis(250));
        assert!(c.wtf_csrf_enabled);
        assert_eq!(c.wtf_csrf_time_limit, Some(Duration::from_secs(3600)));
        assert!(c.csrf_trusted_origins.is_empty());
        assert_eq!(c.max_content_length, 1_048_576);
    }
}

#[test]
fn environment_beats_dotenv_and_dotenv_beats_default() {
    let dir = tempdir().unwrap();
    let text = "SESSION_COOKIE_NAME=from_dotenv\n\
                PERMANENT_SESSION_LIFETIME=10m\n\
                SECRET_KEY='a-dotenv-key-that-is-long-enough-01'\n";
    let file = dotenv(&dir, text);
    let pairs = keyed(&[("SESSION_COOKIE_NAME", "from_env")]);
    let c = loader(&dir, &pairs).dotenv_file(file).load().unwrap();
    assert_eq!(c.session_cookie_name, "from_env");
    assert_eq!(c.source("SESSION_COOKIE_NAME"), Source::Environment);
    assert_eq!(c.secret_key.as_bytes(), KEY.as_bytes());
    assert_eq!(c.permanent_session_lifetime, Duration::from_secs(600));
    assert_eq!(c.source("PERMANENT_SESSION_LIFETIME"), Source::DotEnv);
    assert_eq!(c.session_cookie_path, "/");
    assert_eq!(c.source("SESSION_COOKIE_PATH"), Source::Default);
}

#[test]
fn dotenv_sets_the_profile_and_its_last_duplicate_wins() {
    let dir = tempdir().unwrap();
    let file = dotenv(&dir, "PORTCULLIS_PROFILE=dev\nPORTCULLIS_PROFILE=redis\n");
    let c = loader(&dir, &keyed(&[])).dotenv_file(file).load().unwrap();
    assert_eq!(c.profile, Profile::Redis);
    assert_eq!(c.source("PORTCULLIS_PROFILE"), Source::DotEnv);
    assert!(
        c.session_cookie_secure,
        "the redis profile's defaults apply"
    );
}

#[test]
fn the_command_line_profile_beats_the_environment() {
    let dir = tempdir().unwrap();
    let pairs = keyed(&[("PORTCULLIS_PROFILE", "dev")]);
    let c = loader(&dir, &pairs).profile(Profile::Redis).load().unwrap();
    assert_eq!(c.profile, Profile::Redis);
    assert_eq!(c.source("PORTCULLIS_PROFILE"), Source::CommandLine);
}

#[test]
fn a_bad_value_is_refused_in_one_line_with_setting_value_and_what_is_allowed() {
    const DURATION: &str = "a duration of at least 1 second, e.g. 300 or 5m";
    const BOOL: &str = "true or false (also 1/0, yes/no, on/off)";
    const PREFIX: &str = "0 to 64 characters from A-Z a-z 0-9 _ : . { } -, not starting with .";
    const NAME: &str = "a non-empty cookie name of letters, digits and !#$%&'*+-.^_`|~";
    const DOMAIN: &str =
        "a domain such as example.com, without whitespace, ';' or ',' (empty for none)";
    const PATH: &str = "a path starting with '/' without ';', whitespace or control characters";
    const SIZE: &str = "a whole number of bytes greater than 0, e.g. 65536";
    const REDIS_SCHEME: &str = "one URL starting with redis://, rediss://, redis+unix:// or \
                                unix://, or several comma-separated redis:// or rediss:// URLs \
                                for a Redis Cluster";
    const TIMEOUT: &str =
        "a duration from 10ms to 60s, e.g. 250ms or 1s (plain numbers are seconds)";
    let long_prefix = "p".repeat(65);
    let cases: &[(&str, &str, &str)] = &[
        ("PORTCULLIS_PROFILE", "prod", "dev or redis"),
        ("PERMANENT_SESSION_LIFETIME", "0", DURATION),
        ("PERMANENT_SESSION_LIFETIME", "abc", DURATION),
        ("PERMANENT_SESSION_LIFETIME", "-5", DURATION),
        ("PERMANENT_SESSION_LIFETIME", "500ms", DURATION),
        (
            "SESSION_ABSOLUTE_LIFETIME",
            "401d",
            "a duration of at most 400 days (the longest cookie lifetime browsers keep)",
        ),
        ("SESSION_PERMANENT", "maybe", BOOL),
        ("SESSION_REFRESH_EACH_REQUEST", "", BOOL),
        ("SESSION_TYPE", "mongodb", "filesystem, redis or memory"),
        ("SESSION_FORMAT", "django", "native or flask"),
        (
            "SESSION_MAX_PER_USER",
            "0",
            "a number of sessions from 1, e.g. 5, or none for no limit",
        ),
        (
            "SESSION_MAX_PER_USER",
            "-1",
            "a number of sessions from 1, e.g. 5, or none for no limit",
        ),
        (
            "SESSION_LIMIT_POLICY",
            "lru",
            "evict-oldest (a log-in ends the oldest session) or refuse",
        ),
        ("SESSION_KEY_PREFIX", "../x", PREFIX),
        ("SESSION_KEY_PREFIX", "a\\b", PREFIX),
        ("SESSION_KEY_PREFIX", "sess id", PREFIX),
        ("SESSION_KEY_PREFIX", &long_prefix, PREFIX),
        ("SESSION_KEY_PREFIX", ".sess:", PREFIX),
        ("SESSION_USE_SIGNER", "signed", BOOL),
        ("SESSION_FILE_DIR", "", "a non-empty directory path"),
        ("SESSION_COOKIE_NAME", "", NAME),
        ("SESSION_COOKIE_NAME", "my session", NAME),
        ("SESSION_COOKIE_NAME", "a;b", NAME),
        ("SESSION_COOKIE_NAME", "id=1", NAME),
        ("SESSION_COOKIE_NAME", "a\nSet-Cookie: x", NAME),
        ("SESSION_COOKIE_DOMAIN", "example.com;evil", DOMAIN),
        ("SESSION_COOKIE_DOMAIN", "a b", DOMAIN),
        ("SESSION_COOKIE_DOMAIN", "a,b", DOMAIN),
        ("SESSION_COOKIE_PATH", "app", PATH),
        ("SESSION_COOKIE_PATH", "/a;b", PATH),
        ("SESSION_COOKIE_SECURE", "2", BOOL),
        ("SESSION_COOKIE_HTTPONLY", "nope", BOOL),
        (
            "SESSION_COOKIE_SAMESITE",
            "strictest",
            "Strict, Lax or None",
        ),
        ("SESSION_MAX_BYTES", "0", SIZE),
        ("MAX_CONTENT_LENGTH", "1MB", SIZE),
        ("REDIS_URL", "http://localhost", REDIS_SCHEME),
        ("REDIS_URL", "redis://a:7000,http://b:7001", REDIS_SCHEME),
        (
            "REDIS_URL",
            "redis://a:7000,,redis://b:7001",
            "one URL, or several separated by single commas, without empty entries",
        ),
        (
            "REDIS_URL",
            "redis://a:7000,",
            "one URL, or several separated by single commas, without empty entries",
        ),
        (
            "REDIS_URL",
            "redis://a:7000,rediss://b:7001",
            "the same scheme, redis:// or rediss://, for every node of a cluster",
        ),
        (
            "REDIS_URL",
            "unix:///run/redis.sock,redis://b:7001",
            "a cluster's nodes as redis:// or rediss:// URLs, not Unix sockets",
        ),
        (
            "REDIS_URL",
            "redis://a:7000/1,redis://b:7001/1",
            "database 0 (or none) for a cluster's nodes: a Redis Cluster has no other",
        ),
        (
            "REDIS_URL",
            "rediss://cache:6380/#insecure",
            "no URL fragment: #insecure would turn off TLS certificate checks, which the store \
             refuses",
        ),
        (
            "REDIS_URL",
            "redis://cache:6379/zero",
            "a URL the Redis client accepts (Invalid database number)",
        ),
        ("REDIS_CONNECT_TIMEOUT", "0", TIMEOUT),
        ("REDIS_CONNECT_TIMEOUT", "5ms", TIMEOUT),
        ("REDIS_CONNECT_TIMEOUT", "61s", TIMEOUT),
        ("REDIS_RESPONSE_TIMEOUT", "fast", TIMEOUT),
        ("REDIS_RESPONSE_TIMEOUT", "-1", TIMEOUT),
        ("WTF_CSRF_ENABLED", "enabled", BOOL),
        (
            "WTF_CSRF_TIME_LIMIT",
            "0",
            "a duration of at least 1 second, e.g. 300 or 5m, or none for no limit",
        ),
        (
            "CSRF_TRUSTED_ORIGINS",
            "https://app.example.com/",
            "origins as browsers send them, comma-separated, e.g. https://app.example.com \
             (invalid origin \"https://app.example.com/\": path, query, and fragment are not \
             allowed)",
        ),
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
fn the_documented_example_message_is_exact() {
    let err = error(&[("PERMANENT_SESSION_LIFETIME", "0")]);
    assert_eq!(
        err.to_string(),
        "invalid PERMANENT_SESSION_LIFETIME=\"0\": a duration of at least 1 second, e.g. 300 or 5m"
    );
}

#[test]
fn a_short_secret_key_is_refused_with_its_length_but_never_its_value() {
    let err = load(&[("SECRET_KEY", "hunter2-is-not-enough")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid SECRET_KEY=[redacted]: at least 32 bytes (got 21); \
         generate one with `openssl rand -base64 48`"
    );
    assert!(!format!("{err:?}").contains("hunter2"));
    // Length is in bytes of UTF-8, not characters: 16 'é' are 32 bytes.
    assert!(load(&[("SECRET_KEY", &"é".repeat(16))]).is_ok());
    assert!(load(&[("SECRET_KEY", &"é".repeat(15))]).is_err());
}

#[test]
fn a_short_fallback_key_is_refused_without_echoing_any_key() {
    let fallbacks = format!("{OLD_KEY},too-short-secret");
    let err = error(&[("SECRET_KEY_FALLBACKS", &fallbacks)]);
    assert_eq!(
        err.to_string(),
        "invalid SECRET_KEY_FALLBACKS=[redacted]: keys of at least 32 bytes each (key 2 has 16)"
    );
    let debug = format!("{err:?}");
    assert!(
        !debug.contains("too-short") && !debug.contains(OLD_KEY),
        "{debug}"
    );
}

#[test]
fn fallback_keys_are_split_on_commas_and_empty_entries_ignored() {
    let other = "another-old-key-long-enough-000002";
    let fallbacks = format!(",{OLD_KEY},, {other} ,");
    let c = load(&keyed(&[("SECRET_KEY_FALLBACKS", &fallbacks)])).unwrap();
    let keys: Vec<&[u8]> = c
        .secret_key_fallbacks
        .iter()
        .map(SecretKey::as_bytes)
        .collect();
    assert_eq!(keys, [OLD_KEY.as_bytes(), other.as_bytes()]);
}

#[test]
fn dev_key_is_generated_once_privately_and_reused() {
    let dir = tempdir().unwrap();
    let state = dir.path().join("state");
    let first = loader(&dir, &[]).load().unwrap();
    assert_eq!(first.source("SECRET_KEY"), Source::Generated);
    assert_eq!(
        first.secret_key.len(),
        43,
        "32 random bytes, base64url without padding"
    );
    let file = state.join("secret-key");
    assert_eq!(fs::read(&file).unwrap(), first.secret_key.as_bytes());
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&state), 0o700);

    let second = loader(&dir, &[]).load().unwrap();
    assert_eq!(second.secret_key.as_bytes(), first.secret_key.as_bytes());
    assert_eq!(second.source("SECRET_KEY"), Source::Generated);

    let elsewhere = load(&[]).unwrap();
    assert_ne!(elsewhere.secret_key.as_bytes(), first.secret_key.as_bytes());
}

#[test]
fn an_empty_secret_key_counts_as_unset() {
    let dir = tempdir().unwrap();
    let c = loader(&dir, &[("SECRET_KEY", "")]).load().unwrap();
    assert_eq!(c.source("SECRET_KEY"), Source::Generated);
    let err = load(&[("SECRET_KEY", ""), ("PORTCULLIS_PROFILE", "redis")]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                setting: "SECRET_KEY",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_truncated_dev_key_file_is_refused_without_echoing_it() {
    let dir = tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::write(state.join("secret-key"), "truncated-key").unwrap();
    let message = loader(&dir, &[]).load().unwrap_err().to_string();
    assert!(message.starts_with("invalid SECRET_KEY=[redacted]: at least 32 bytes (got 13)"));
    assert!(
        message.contains("secret-key (delete it to generate a new one)"),
        "{message}"
    );
    assert!(!message.contains("truncated-key"));
}

#[test]
fn an_explicit_dev_key_writes_no_key_file() {
    let dir = tempdir().unwrap();
    loader(&dir, &keyed(&[])).load().unwrap();
    assert!(!dir.path().join("state").exists());
}

#[test]
fn redis_profile_without_secret_key_is_refused() {
    let dir = tempdir().unwrap();
    let err = loader(&dir, &[("PORTCULLIS_PROFILE", "redis")])
        .load()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                setting: "SECRET_KEY",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "missing SECRET_KEY: the redis profile needs a key of at least 32 bytes, the same on every \
         instance; generate one with `openssl rand -base64 48`"
    );
    assert!(
        !dir.path().join("state").exists(),
        "no key is generated for production"
    );
}

#[test]
fn durations_accept_plain_seconds_and_human_forms() {
    let cases = [
        ("300", 300),
        ("5m", 300),
        ("1h 30m", 5400),
        (" 60 ", 60),
        ("1s", 1),
        ("400d", 400 * 86400),
    ];
    for (raw, seconds) in cases {
        let c = load(&keyed(&[
            ("PERMANENT_SESSION_LIFETIME", raw),
            ("SESSION_ABSOLUTE_LIFETIME", "400d"),
        ]))
        .unwrap();
        assert_eq!(
            c.permanent_session_lifetime,
            Duration::from_secs(seconds),
            "{raw:?}"
        );
    }
}

#[test]
fn redis_timeouts_accept_milliseconds_and_plain_seconds() {
    let cases = [
        ("250ms", Duration::from_millis(250)),
        ("10ms", Duration::from_millis(10)),
        ("1", Duration::from_secs(1)),
        (" 2s ", Duration::from_secs(2)),
        ("60s", Duration::from_secs(60)),
        ("1s 500ms", Duration::from_millis(1500)),
    ];
    for (raw, expected) in cases {
        let c = load(&keyed(&[
            ("REDIS_CONNECT_TIMEOUT", raw),
            ("REDIS_RESPONSE_TIMEOUT", raw),
        ]))
        .unwrap();
        assert_eq!(c.redis_connect_timeout, expected, "{raw:?}");
        assert_eq!(c.redis_response_timeout, expected, "{raw:?}");
    }
    let c = load(&keyed(&[("REDIS_RESPONSE_TIMEOUT", "1500ms")])).unwrap();
    let value = |name: &str| {
        c.report()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
            .value
    };
    assert_eq!(value("REDIS_RESPONSE_TIMEOUT"), "1s 500ms");
    assert_eq!(value("REDIS_CONNECT_TIMEOUT"), "250ms");
}

#[test]
fn redis_url_takes_one_server_or_comma_separated_cluster_nodes() {
    let accepted = [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        (
            "rediss://user:pw@cache.example:6380/2",
            "rediss://user:pw@cache.example:6380/2",
        ),
        (
            "redis+unix:///run/redis.sock?db=1",
            "redis+unix:///run/redis.sock?db=1",
        ),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("redis://[::1]:6379", "redis://[::1]:6379"),
        (
            "redis://10.0.0.1:7000, redis://10.0.0.2:7001 ,redis://10.0.0.3:7002",
            "redis://10.0.0.1:7000,redis://10.0.0.2:7001,redis://10.0.0.3:7002",
        ),
        (
            "rediss://:pw@a.example:7000,rediss://:pw@b.example:7001/0",
            "rediss://:pw@a.example:7000,rediss://:pw@b.example:7001/0",
        ),
    ];
    for (raw, normalised) in accepted {
        let c = load(&keyed(&[("REDIS_URL", raw)])).unwrap();
        assert_eq!(c.redis_url, normalised);
    }
}

#[test]
fn cluster_nodes_with_different_credentials_are_refused_without_echoing_them() {
    let err = error(&[(
        "REDIS_URL",
        "redis://:first-pw@a:7000,redis://:second-pw@b:7001",
    )]);
    let ConfigError::Invalid { value, allowed, .. } = &err else {
        panic!("not Invalid: {err:?}");
    };
    assert_eq!(
        value,
        "redis://:[redacted]@a:7000,redis://:[redacted]@b:7001"
    );
    assert!(
        allowed.starts_with("a URL the Redis client accepts ("),
        "{allowed}"
    );
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("first-pw") && !shown.contains("second-pw"),
        "{shown}"
    );
}

#[test]
fn csrf_time_limit_none_means_no_limit_and_zero_is_refused() {
    for raw in ["none", "None", "NONE"] {
        let c = load(&keyed(&[("WTF_CSRF_TIME_LIMIT", raw)])).unwrap();
        assert_eq!(c.wtf_csrf_time_limit, None, "{raw:?}");
    }
    let c = load(&keyed(&[("WTF_CSRF_TIME_LIMIT", "2h")])).unwrap();
    assert_eq!(c.wtf_csrf_time_limit, Some(Duration::from_secs(7200)));
    assert!(matches!(
        error(&[("WTF_CSRF_TIME_LIMIT", "0")]),
        ConfigError::Invalid {
            setting: "WTF_CSRF_TIME_LIMIT",
            ..
        }
    ));
}

#[test]
fn csrf_trusted_origins_are_a_comma_separated_list_of_exact_origins() {
    let c = load(&keyed(&[(
        "CSRF_TRUSTED_ORIGINS",
        " https://app.example.com, http://localhost:8080,,",
    )]))
    .unwrap();
    assert_eq!(
        c.csrf_trusted_origins,
        ["https://app.example.com", "http://localhost:8080"]
    );
    assert_eq!(c.source("CSRF_TRUSTED_ORIGINS"), Source::Environment);
    let report = c.report();
    let reported = report
        .iter()
        .find(|s| s.name == "CSRF_TRUSTED_ORIGINS")
        .unwrap();
    assert_eq!(
        reported.value,
        "https://app.example.com,http://localhost:8080"
    );
    let empty = load(&keyed(&[("CSRF_TRUSTED_ORIGINS", "")])).unwrap();
    assert!(empty.csrf_trusted_origins.is_empty());
}

#[test]
fn a_trusted_origin_a_browser_never_sends_stops_start_up_naming_it() {
    // (value, what the message says about the bad entry)
    let cases = [
        (
            "https://ok.example.com,app.example.com",
            "scheme must be http or https",
        ),
        ("ftp://files.example.com", "scheme must be http or https"),
        (
            "https://app.example.com/path",
            "path, query, and fragment are not allowed",
        ),
        (
            "https://app.example.com#x",
            "path, query, and fragment are not allowed",
        ),
        ("https://App.example.com", "must be lower case"),
        ("HTTPS://app.example.com", "must be lower case"),
        ("https://user@app.example.com", "must not hold user info"),
        (
            "https://app.example.com:443",
            "must leave out the default port",
        ),
        (
            "http://app.example.com:80",
            "must leave out the default port",
        ),
        ("https://bücher.example", "punycode"),
    ];
    for (value, problem) in cases {
        let err = error(&[("CSRF_TRUSTED_ORIGINS", value)]);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "invalid CSRF_TRUSTED_ORIGINS={value:?}: origins as"
            )),
            "{message}"
        );
        assert!(message.contains(problem), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn booleans_accept_python_and_shell_spellings() {
    let cases = [
        ("True", true),
        ("true", true),
        ("1", true),
        ("YES", true),
        ("on", true),
        ("False", false),
        ("0", false),
        ("no", false),
        ("OFF", false),
    ];
    for (raw, expected) in cases {
        let c = load(&keyed(&[("SESSION_REFRESH_EACH_REQUEST", raw)])).unwrap();
        assert_eq!(c.session_refresh_each_request, expected, "{raw:?}");
    }
}

#[test]
fn keywords_ignore_case_and_empty_domain_means_none() {
    let c = load(&keyed(&[
        ("PORTCULLIS_PROFILE", "REDIS"),
        ("SESSION_TYPE", "Memory"),
        ("SESSION_COOKIE_SAMESITE", "strict"),
        ("SESSION_COOKIE_DOMAIN", ""),
    ]))
    .unwrap();
    assert_eq!(c.profile, Profile::Redis);
    assert_eq!(c.session_type, StoreKind::Memory);
    assert_eq!(c.session_cookie_samesite, SameSite::Strict);
    assert_eq!(c.session_cookie_domain, None);
    let c = load(&keyed(&[("SESSION_COOKIE_DOMAIN", "example.com")])).unwrap();
    assert_eq!(c.session_cookie_domain.as_deref(), Some("example.com"));
}

#[test]
fn conflicting_settings_are_refused_in_one_line_naming_both() {
    let secure = ("SESSION_COOKIE_SECURE", "true");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("SESSION_COOKIE_SAMESITE", "None")],
            "SESSION_COOKIE_SAMESITE=None requires SESSION_COOKIE_SECURE=true: \
             browsers drop SameSite=None cookies that are not Secure",
        ),
        (
            &[("SESSION_COOKIE_NAME", "__Host-id")],
            "SESSION_COOKIE_NAME=\"__Host-id\" requires SESSION_COOKIE_SECURE=true: \
             browsers drop __Host- cookies that are not Secure",
        ),
        (
            &[("SESSION_COOKIE_NAME", "__host-id")],
            "SESSION_COOKIE_NAME=\"__host-id\" requires SESSION_COOKIE_SECURE=true: \
             browsers drop __Host- cookies that are not Secure",
        ),
        (
            &[
                ("SESSION_COOKIE_NAME", "__Host-id"),
                secure,
                ("SESSION_COOKIE_PATH", "/app"),
            ],
            "SESSION_COOKIE_NAME=\"__Host-id\" requires SESSION_COOKIE_PATH=\"/\", not \"/app\": \
             browsers drop __Host- cookies with another path",
        ),
        (
            &[
                ("SESSION_COOKIE_NAME", "__Host-id"),
                secure,
                ("SESSION_COOKIE_DOMAIN", "example.com"),
            ],
            "SESSION_COOKIE_NAME=\"__Host-id\" forbids SESSION_COOKIE_DOMAIN=\"example.com\": \
             __Host- cookies are bound to the exact host",
        ),
        (
            &[("SESSION_COOKIE_NAME", "__Secure-id")],
            "SESSION_COOKIE_NAME=\"__Secure-id\" requires SESSION_COOKIE_SECURE=true: \
             browsers drop __Secure- cookies that are not Secure",
        ),
        (
            &[("SESSION_ABSOLUTE_LIFETIME", "1m")],
            "SESSION_ABSOLUTE_LIFETIME=1m is shorter than PERMANENT_SESSION_LIFETIME=5m: \
             the absolute lifetime must be at least the idle lifetime",
        ),
    ];
    for &(pairs, expected) in cases {
        let err = error(pairs);
        assert!(matches!(err, ConfigError::Conflict { .. }), "{err:?}");
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn consistent_cookie_and_lifetime_settings_are_accepted() {
    let secure = ("SESSION_COOKIE_SECURE", "true");
    let cases: &[&[(&str, &str)]] = &[
        &[("SESSION_COOKIE_SAMESITE", "None"), secure],
        &[("SESSION_COOKIE_NAME", "__Host-id"), secure],
        &[
            ("SESSION_COOKIE_NAME", "__Secure-id"),
            secure,
            ("SESSION_COOKIE_DOMAIN", "example.com"),
        ],
        &[("SESSION_ABSOLUTE_LIFETIME", "5m")],
    ];
    for pairs in cases {
        assert!(load(&keyed(pairs)).is_ok(), "{pairs:?}");
    }
}

#[test]
fn report_lists_every_setting_once_with_secrets_redacted() {
    let fallbacks = format!("{OLD_KEY},{OLD_KEY}2");
    let c = load(&keyed(&[
        ("SECRET_KEY_FALLBACKS", &fallbacks),
        ("REDIS_URL", "redis://app:s3cret-pw@cache:6379/0"),
    ]))
    .unwrap();
    let report = c.report();
    let names: Vec<&str> = report.iter().map(|s| s.name).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "no setting twice");
    let mut recorded: Vec<&str> = c.sources.keys().copied().collect();
    recorded.sort_unstable();
    assert_eq!(
        unique, recorded,
        "every setting read is reported, and nothing else"
    );

    let value = |name: &str| {
        report
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(value("SECRET_KEY"), "[redacted]");
    assert_eq!(value("SECRET_KEY_FALLBACKS"), "[redacted],[redacted]");
    assert_eq!(value("REDIS_URL"), "redis://app:[redacted]@cache:6379/0");
    assert_eq!(value("PERMANENT_SESSION_LIFETIME"), "5m");
    assert_eq!(value("WTF_CSRF_TIME_LIMIT"), "1h");
    assert_eq!(value("SESSION_COOKIE_DOMAIN"), "");
    for text in [format!("{report:?}"), format!("{c:?}")] {
        assert!(
            !text.contains(KEY) && !text.contains(OLD_KEY) && !text.contains("s3cret"),
            "{text}"
        );
    }
}

#[test]
fn report_gives_each_value_its_source() {
    let dir = tempdir().unwrap();
    let file = dotenv(&dir, "SESSION_COOKIE_PATH=/app\n");
    let c = loader(&dir, &[("SESSION_COOKIE_NAME", "sid")])
        .dotenv_file(file)
        .profile(Profile::Dev)
        .load()
        .unwrap();
    let report = c.report();
    let source = |name: &str| report.iter().find(|s| s.name == name).unwrap().source;
    assert_eq!(source("SESSION_COOKIE_NAME"), Source::Environment);
    assert_eq!(source("SESSION_COOKIE_PATH"), Source::DotEnv);
    assert_eq!(source("PORTCULLIS_PROFILE"), Source::CommandLine);
    assert_eq!(source("SECRET_KEY"), Source::Generated);
    assert_eq!(source("REDIS_URL"), Source::Default);
    assert_eq!(c.source("NOT_A_SETTING"), Source::Default);
}

#[test]
fn a_redis_password_is_redacted_in_errors() {
    let err = error(&[("REDIS_URL", "http://:s3cret-pw@cache")]);
    assert!(
        matches!(&err, ConfigError::Invalid { value, .. } if value == "http://:[redacted]@cache")
    );
    assert!(!format!("{err} {err:?}").contains("s3cret"));
}

#[test]
fn every_password_of_a_redis_url_list_is_redacted_in_the_report() {
    let (raw, shown) = (
        "redis://app:pw1@a:7000,redis://app:pw1@b:7001/0",
        "redis://app:[redacted]@a:7000,redis://app:[redacted]@b:7001/0",
    );
    let c = load(&keyed(&[("REDIS_URL", raw)])).unwrap();
    let report = format!("{:?} {c:?}", c.report());
    assert!(report.contains(shown), "{report}");
    assert!(!report.contains("pw1"), "{report}");
}

#[test]
fn warnings_name_each_risky_production_choice() {
    let base = [
        ("PORTCULLIS_PROFILE", "redis"),
        ("SESSION_COOKIE_NAME", "__Host-session"),
    ];
    assert_eq!(
        load(&keyed(&base)).unwrap().warnings(),
        Vec::<String>::new()
    );
    assert_eq!(
        load(&keyed(&[])).unwrap().warnings(),
        Vec::<String>::new(),
        "dev defaults"
    );

    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("SESSION_COOKIE_SECURE", "false"),
                ("SESSION_COOKIE_NAME", "session"),
            ],
            "SESSION_COOKIE_SECURE=false on the redis profile",
        ),
        (&[("WTF_CSRF_ENABLED", "false")], "WTF_CSRF_ENABLED=false"),
        (&[("SESSION_USE_SIGNER", "0")], "SESSION_USE_SIGNER=false"),
        (
            &[("SESSION_PERMANENT", "no")],
            "SESSION_PERMANENT=false on the redis profile",
        ),
        (
            &[("SESSION_TYPE", "memory")],
            "SESSION_TYPE=memory on the redis profile: sessions are lost on restart",
        ),
        (
            &[("SESSION_COOKIE_NAME", "session")],
            "SESSION_COOKIE_NAME=\"session\": consider __Host-session",
        ),
        (
            &[("SESSION_COOKIE_HTTPONLY", "off")],
            "SESSION_COOKIE_HTTPONLY=false",
        ),
    ];
    for &(extra, expected) in cases {
        let mut pairs = keyed(&base);
        pairs.extend_from_slice(extra);
        let warnings = load(&pairs).unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{extra:?}: {warnings:?}");
        assert!(warnings[0].starts_with(expected), "{warnings:?}");
    }
}

#[test]
fn host_prefix_advice_only_when_the_cookie_could_take_it() {
    let advises = |pairs: &[(&str, &str)]| {
        let warnings = load(&keyed(pairs)).unwrap().warnings();
        warnings.iter().any(|w| w.contains("consider __Host-"))
    };
    assert!(advises(&[("SESSION_COOKIE_SECURE", "true")]));
    assert!(!advises(&[]), "not Secure on dev");
    let secure = ("SESSION_COOKIE_SECURE", "true");
    assert!(!advises(&[
        secure,
        ("SESSION_COOKIE_DOMAIN", "example.com")
    ]));
    assert!(!advises(&[secure, ("SESSION_COOKIE_PATH", "/app")]));
}

#[test]
fn a_missing_dotenv_file_is_fine() {
    let dir = tempdir().unwrap();
    let c = loader(&dir, &keyed(&[]))
        .dotenv_file(dir.path().join("absent.env"))
        .load();
    assert!(c.is_ok());
}

#[test]
fn a_malformed_dotenv_file_is_refused_without_echoing_values() {
    let dir = tempdir().unwrap();
    let file = dotenv(
        &dir,
        "SESSION_TYPE=redis\nSECRET_KEY=\"unterminated-secret-value\n",
    );
    let err = loader(&dir, &[]).dotenv_file(&file).load().unwrap_err();
    assert!(
        matches!(&err, ConfigError::DotEnv { path, .. } if *path == file),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains("unterminated-secret"), "{text}");
    assert!(!text.contains('\n'));
}

#[test]
fn a_non_utf8_environment_value_is_refused() {
    let environment = HashMap::from([(
        "SESSION_COOKIE_NAME".to_owned(),
        OsString::from_vec(vec![0xff]),
    )]);
    let layers = Layers {
        command_line: HashMap::new(),
        environment,
        dotenv: HashMap::new(),
    };
    let err = layers.lookup("SESSION_COOKIE_NAME").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid SESSION_COOKIE_NAME=\"\u{fffd}\": valid UTF-8 text"
    );
}

#[test]
fn names_display_as_written_in_settings() {
    assert_eq!(
        [Profile::Dev, Profile::Redis].map(|p| p.to_string()),
        ["dev", "redis"]
    );
    assert_eq!(
        [StoreKind::Filesystem, StoreKind::Redis, StoreKind::Memory].map(|k| k.to_string()),
        ["filesystem", "redis", "memory"]
    );
    assert_eq!(
        [SameSite::Strict, SameSite::Lax, SameSite::None].map(|s| s.to_string()),
        ["Strict", "Lax", "None"]
    );
    let sources = [
        Source::Default,
        Source::DotEnv,
        Source::Environment,
        Source::CommandLine,
        Source::Generated,
    ];
    assert_eq!(
        sources.map(|s| s.to_string()),
        [
            "default",
            ".env",
            "environment",
            "command line",
            "generated"
        ]
    );
    assert_eq!("Redis".parse::<Profile>().unwrap(), Profile::Redis);
    assert_eq!(
        "prod".parse::<Profile>().unwrap_err().to_string(),
        "invalid PORTCULLIS_PROFILE=\"prod\": dev or redis"
    );
}

#[test]
fn secret_key_never_prints_itself() {
    let key = SecretKey::new(KEY).unwrap();
    assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
    assert_eq!(key.len(), 32);
    assert!(!key.is_empty());
    assert!(matches!(
        SecretKey::new("short"),
        Err(ConfigError::Invalid {
            setting: "SECRET_KEY",
            ..
        })
    ));
}

/// The settings of a Portcullis that shares sessions with a Flask app.
const FLASK: [(&str, &str); 3] = [
    ("PORTCULLIS_PROFILE", "redis"),
    ("SESSION_FORMAT", "flask"),
    ("SESSION_COOKIE_NAME", "__Host-session"),
];

#[test]
fn the_session_format_is_native_by_default_and_flask_on_request() {
    let c = load(&keyed(&[])).unwrap();
    assert_eq!(c.session_format, SessionFormat::Native);
    assert_eq!(c.source("SESSION_FORMAT"), Source::Default);
    let c = load(&keyed(&[
        ("SESSION_FORMAT", " Flask"),
        ("SESSION_TYPE", "redis"),
    ]))
    .unwrap();
    assert_eq!(c.session_format, SessionFormat::Flask);
    assert_eq!(c.source("SESSION_FORMAT"), Source::Environment);
    let report = c.report();
    let shown = report.iter().find(|s| s.name == "SESSION_FORMAT").unwrap();
    assert_eq!(shown.value, "flask");
}

#[test]
fn the_flask_format_is_refused_with_the_file_store_in_one_line() {
    let err = error(&[("SESSION_FORMAT", "flask")]);
    assert_eq!(
        err.to_string(),
        "SESSION_FORMAT=flask requires SESSION_TYPE=redis (or memory, in tests), not filesystem: \
         the Flask app shares sessions through Redis, and Portcullis's session files are not \
         Flask-Session's"
    );
    assert!(
        load(&keyed(&[
            ("SESSION_FORMAT", "flask"),
            ("SESSION_TYPE", "memory")
        ]))
        .is_ok()
    );
}

#[test]
fn the_session_limit_is_none_by_default_and_needs_the_native_format() {
    let c = load(&keyed(&[])).unwrap();
    assert_eq!(c.session_max_per_user, None);
    assert_eq!(
        c.session_limit_policy,
        crate::store::LimitPolicy::EvictOldest
    );
    let c = load(&keyed(&[
        ("SESSION_MAX_PER_USER", " 5"),
        ("SESSION_LIMIT_POLICY", "Refuse"),
    ]))
    .unwrap();
    assert_eq!(
        c.session_max_per_user.map(std::num::NonZeroUsize::get),
        Some(5)
    );
    assert_eq!(c.session_limit_policy, crate::store::LimitPolicy::Refuse);
    let report = c.report();
    let shown = |name: &str| {
        report
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(shown("SESSION_MAX_PER_USER"), "5");
    assert_eq!(shown("SESSION_LIMIT_POLICY"), "refuse");
    assert_eq!(
        load(&keyed(&[("SESSION_MAX_PER_USER", "NONE")]))
            .unwrap()
            .session_max_per_user,
        None
    );
    let mut pairs = FLASK.to_vec();
    pairs.push(("SECRET_KEY", "a Flask app's key"));
    pairs.push(("SESSION_MAX_PER_USER", "3"));
    let err = load(&pairs).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SESSION_MAX_PER_USER=3 requires SESSION_FORMAT=native"),
        "{err}"
    );
}

#[test]
fn the_flask_format_takes_a_short_secret_key_with_a_warning() {
    let short = [("SECRET_KEY", "dev-key-of-a-flask-app")];
    let native = load(&[short[0], ("PORTCULLIS_PROFILE", "redis")]).unwrap_err();
    assert!(
        native.to_string().contains("at least 32 bytes (got 22)"),
        "{native}"
    );

    let mut pairs = FLASK.to_vec();
    pairs.extend_from_slice(&short);
    let c = load(&pairs).unwrap();
    assert_eq!(c.secret_key.as_bytes(), b"dev-key-of-a-flask-app");
    let warnings = c.warnings();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "SECRET_KEY is 22 bytes, under the 32 the native format requires: accepted because \
             SESSION_FORMAT=flask takes the Flask app's key"
        )),
        "{warnings:?}"
    );
    for text in [format!("{c:?}"), warnings.join("\n")] {
        assert!(!text.contains("dev-key-of-a-flask-app"), "{text}");
    }
    // Still required on the redis profile, and still never empty.
    let mut unset = FLASK.to_vec();
    unset.push(("SECRET_KEY", ""));
    assert!(matches!(load(&unset), Err(ConfigError::Missing { .. })));
}

#[test]
fn flask_warnings_say_what_the_format_gives_up_and_what_redis_needs() {
    let warnings = load(&keyed(&FLASK)).unwrap().warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    for words in [
        "SESSION_FORMAT=flask gives up",
        "plain MessagePack",
        "HMAC-SHA1",
        "no key rotation",
        "BREACH",
        "the last writer wins",
    ] {
        assert!(warnings[0].contains(words), "{words}: {}", warnings[0]);
    }
    assert!(
        warnings[1].starts_with(
            "SESSION_FORMAT=flask: Flask-Session falls back to pickle for a record it cannot \
             decode, so anyone who can write to Redis can run code in the Flask app: Redis needs \
             a password or TLS, and REDIS_URL has neither"
        ),
        "{}",
        warnings[1]
    );
    for url in ["redis://:pw@cache:6379", "rediss://cache:6380"] {
        let mut pairs = keyed(&FLASK);
        pairs.push(("REDIS_URL", url));
        let warnings = load(&pairs).unwrap().warnings();
        assert!(
            warnings[1].ends_with("Redis needs a password or TLS"),
            "{url}: {warnings:?}"
        );
    }
    let mut pairs = keyed(&FLASK);
    pairs.push(("SECRET_KEY_FALLBACKS", OLD_KEY));
    let warnings = load(&pairs).unwrap().warnings();
    assert_eq!(
        warnings.last().map(String::as_str),
        Some(
            "SECRET_KEY_FALLBACKS is ignored with SESSION_FORMAT=flask: Flask-Session and \
             Flask-WTF sign with SECRET_KEY only"
        )
    );
}

#[test]
fn the_reference_lists_every_reported_setting_in_order() {
    let c = load(&keyed(&[])).unwrap();
    let reported: Vec<&str> = c.report().iter().map(|s| s.name).collect();
    let documented: Vec<&str> = Config::reference().iter().map(|r| r.name).collect();
    assert_eq!(documented, reported);
}

#[test]
fn the_reference_shows_the_defaults_a_fresh_load_reports() {
    for profile in ["dev", "redis"] {
        let c = load(&keyed(&[("PORTCULLIS_PROFILE", profile)])).unwrap();
        for (row, setting) in Config::reference().iter().zip(c.report()) {
            if setting.name == "SECRET_KEY" {
                continue;
            }
            let cell = match profile {
                "dev" => &row.dev_default,
                _ => &row.redis_default,
            };
            let expected = if setting.value.is_empty() {
                "none".to_owned()
            } else {
                format!("`{}`", setting.value)
            };
            assert_eq!(*cell, expected, "{profile} {}", setting.name);
        }
    }
    let key = &Config::reference()[1];
    assert_eq!(key.name, "SECRET_KEY");
    assert_eq!(key.redis_default, "**required**");
}
