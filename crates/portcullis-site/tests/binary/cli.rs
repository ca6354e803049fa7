//! The command line: `config`, start-up refusals, `--help`, and `sessions purge-expired`.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use crate::support::{SECRET, portcullis};

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    portcullis(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_prints_every_setting_with_its_source_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "PERMANENT_SESSION_LIFETIME=10m\nSESSION_COOKIE_NAME=from_dotenv\n",
    )
    .unwrap();
    let fallback = "a retired key that is also 32 bytes long";
    let output = run(
        dir.path(),
        &["config"],
        &[
            ("SECRET_KEY", SECRET),
            ("SECRET_KEY_FALLBACKS", fallback),
            ("SESSION_COOKIE_NAME", "from_env"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    assert!(out.starts_with("profile: dev"), "{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
            .to_owned()
    };
    assert!(
        line("SECRET_KEY").contains("[redacted]") && line("SECRET_KEY").ends_with("(environment)")
    );
    assert!(
        !out.contains(SECRET) && !out.contains(fallback),
        "secrets leaked:\n{out}"
    );
    assert!(
        line("PERMANENT_SESSION_LIFETIME").contains("10m")
            && line("PERMANENT_SESSION_LIFETIME").ends_with("(.env)")
    );
    assert!(
        line("SESSION_COOKIE_NAME").contains("from_env"),
        "the environment beats .env"
    );
    assert!(
        line("SESSION_COOKIE_SECURE").contains("false")
            && line("SESSION_COOKIE_SECURE").ends_with("(default)")
    );
    assert!(
        line("SESSION_COOKIE_DOMAIN").contains("  (none)  (default)"),
        "an unset value says so: {}",
        line("SESSION_COOKIE_DOMAIN")
    );
    for name in [
        "SESSION_PERMANENT",
        "SESSION_TYPE",
        "SESSION_KEY_PREFIX",
        "SESSION_USE_SIGNER",
        "SESSION_REFRESH_EACH_REQUEST",
        "SESSION_FILE_DIR",
        "SESSION_COOKIE_SAMESITE",
        "SESSION_COOKIE_HTTPONLY",
        "WTF_CSRF_ENABLED",
        "WTF_CSRF_TIME_LIMIT",
        "REDIS_URL",
        "SESSION_ABSOLUTE_LIFETIME",
        "DATABASE_URL",
        "LOGIN_RATE_LIMIT",
        "TRUSTED_PROXIES",
    ] {
        line(name);
    }
}

#[test]
fn config_names_its_profile_in_the_first_log_line_and_keeps_the_key_folder_out_of_git() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["config"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let log = text(&output.stderr);
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.contains("configuration profile dev: PORTCULLIS_PROFILE is not set"),
        "{log}"
    );
    let ignore = std::fs::read_to_string(dir.path().join(".portcullis/.gitignore")).unwrap();
    assert!(ignore.lines().any(|line| line == "*"), "{ignore}");
}

#[test]
fn config_warns_about_production_risks_on_the_redis_profile() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &["--profile", "redis", "config"],
        &[
            ("SECRET_KEY", SECRET),
            ("SESSION_COOKIE_SECURE", "false"),
            ("WTF_CSRF_ENABLED", "false"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    assert!(out.starts_with("profile: redis"), "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    assert!(
        warnings.iter().any(|w| w.contains("SESSION_COOKIE_SECURE")),
        "{out}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("WTF_CSRF_ENABLED")),
        "{out}"
    );
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_setting_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &["config"],
        &[("PERMANENT_SESSION_LIFETIME", "0")],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("PERMANENT_SESSION_LIFETIME"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("\"0\""), "{line}");
    assert!(line.contains("at least 1 second"), "{line}");
}

#[test]
fn the_redis_profile_refuses_to_start_without_a_long_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run(dir.path(), &["--profile", "redis", "config"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("SECRET_KEY"));
    let short = run(
        dir.path(),
        &["--profile", "redis", "config"],
        &[("SECRET_KEY", "too-short-key")],
    );
    assert_eq!(short.status.code(), Some(2));
    let err = text(&short.stderr);
    assert!(
        err.contains("32 bytes") && !err.contains("too-short-key"),
        "{err}"
    );
}

#[test]
fn the_dev_profile_refuses_a_public_address_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["serve", "--bind", "0.0.0.0:0"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(err.contains("PORTCULLIS_ALLOW_DEV_PROFILE"), "{err}");
    assert!(err.contains("dev"), "{err}");
    let by_env = [("PORTCULLIS_BIND", "0.0.0.0:8000")];
    assert_eq!(run(dir.path(), &["config"], &by_env).status.code(), Some(2));
    let allowed = run(
        dir.path(),
        &["config"],
        &[by_env[0], ("PORTCULLIS_ALLOW_DEV_PROFILE", "1")],
    );
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["config", "--help"],
        &["sessions", "--help"],
        &["sessions", "purge-expired", "--help"],
    ] {
        let output = run(dir.path(), args, &[]);
        assert!(output.status.success(), "{args:?}");
        assert!(
            text(&output.stdout).contains("Usage: portcullis"),
            "{args:?}"
        );
    }
}

#[test]
fn the_dev_secret_key_is_generated_once_into_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["config"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(".portcullis/secret-key"),
        "a log line says where"
    );
    let path = dir.path().join(".portcullis/secret-key");
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(key.trim().len() >= 32);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!path.starts_with(dir.path().join(".flask_session")));
    run(dir.path(), &["config"], &[]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        key,
        "kept across restarts"
    );
}

#[test]
fn config_explains_what_the_flask_format_gives_up_and_refuses_it_with_files() {
    let dir = tempfile::tempdir().unwrap();
    let flask = [
        ("SECRET_KEY", "a-flask-app-key"),
        ("SESSION_FORMAT", "flask"),
    ];
    let output = run(dir.path(), &["--profile", "redis", "config"], &flask);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("SESSION_FORMAT") && l.contains("flask")),
        "{out}"
    );
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning:")).collect();
    for words in [
        "SESSION_FORMAT=flask gives up",
        "pickle",
        "SECRET_KEY is 15 bytes",
    ] {
        assert!(warnings.iter().any(|w| w.contains(words)), "{words}: {out}");
    }

    let output = run(dir.path(), &["config"], &flask);
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("SESSION_FORMAT=flask requires SESSION_TYPE=redis"),
        "{err}"
    );
}
