//! Registration, in-process: it logs in as a log-in does; user names of any script, compared
//! case-insensitively after NFKC, look-alikes and mixed scripts refused; new passwords checked
//! against the blocklist and the trivial and context rules, old ones still logging in.
#![allow(clippy::unwrap_used)]

use crate::harness::{PASSWORD, TestApp};
use axum::http::{Method, StatusCode};

/// Posts the registration form from a new browser; answers the page.
async fn register(app: &TestApp, name: &str, password: &str) -> crate::harness::Page {
    app.browser()
        .post_form(
            "/register",
            &[
                ("name", name),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await
}

#[tokio::test]
async fn registering_regenerates_the_session_id_and_rotates_the_csrf_secret() {
    let app = TestApp::new().await;
    let mut browser = app.browser();
    // An anonymous session stored by `PATCH /api/prefs`: the id a fixation would plant.
    let page = browser
        .send_json(
            Method::PATCH,
            "/api/prefs",
            r#"{"devices_order":"started"}"#,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let before = browser.cookie.clone().unwrap();
    let old_token = browser.csrf_token().await;
    let fields = [
        ("name", "grete"),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ];
    let page = browser.post_form("/register", &fields).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/"));
    assert_ne!(browser.cookie.as_deref(), Some(before.as_str()));
    assert!(
        browser.device_cookie.is_some(),
        "a device cookie, as at log-in"
    );
    assert_eq!(browser.get("/account").await.status, StatusCode::OK);

    let mut attacker = app.browser();
    attacker.cookie = Some(before);
    let page = attacker.get("/account").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the pre-registration id is dead"
    );

    let page = browser
        .post_form_raw("/logout", &[("csrf_token", &old_token)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("The CSRF tokens do not match."),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn user_names_of_any_script_register_and_log_in_in_any_case_and_form() {
    let app = TestApp::new().await;
    let page = register(&app, "jürgen", PASSWORD).await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/"),
        "{}",
        page.body
    );
    // Upper case, a decomposed ü, and fullwidth letters: all the same name.
    for typed in ["JÜRGEN", "ju\u{308}rgen", "ｊüｒｇｅｎ"] {
        let mut browser = app.browser();
        let page = browser.log_in(typed, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{typed}: {}", page.body);
        let dashboard = browser.get("/").await;
        assert!(
            dashboard
                .body
                .contains("<strong id=\"user-name\">jürgen</strong>"),
            "{typed}: {}",
            dashboard.body
        );
        assert!(dashboard.body.contains("Welcome back, jürgen!"));
    }
    let page = register(&app, "JU\u{308}RGEN", PASSWORD).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(
        page.body.contains("This user name is taken"),
        "{}",
        page.body
    );
    let page = register(&app, "Мария", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[tokio::test]
async fn a_mixed_script_name_is_refused_with_a_clear_message() {
    let app = TestApp::new().await;
    app.register("alice").await;
    // U+0430 CYRILLIC SMALL LETTER A, then Latin letters.
    let page = register(&app, "\u{430}lice", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("A user name may not mix alphabets (such as a Cyrillic"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_look_alike_of_a_taken_name_is_refused() {
    let app = TestApp::new().await;
    app.register("scope").await;
    app.register("bob1").await;
    // All Cyrillic (one script), and a Latin l for a 1.
    for look_alike in ["\u{455}\u{441}\u{43e}\u{440}\u{435}", "bobl"] {
        let page = register(&app, look_alike, PASSWORD).await;
        assert_eq!(
            page.status,
            StatusCode::CONFLICT,
            "{look_alike}: {}",
            page.body
        );
        assert!(
            page.body
                .contains("This user name looks too much like one that is taken"),
            "{}",
            page.body
        );
    }
}

#[tokio::test]
async fn two_look_alikes_registered_at_once_make_one_account() {
    let app = TestApp::new().await;
    let (latin, cyrillic) = tokio::join!(
        register(&app, "scope", PASSWORD),
        register(&app, "\u{455}\u{441}\u{43e}\u{440}\u{435}", PASSWORD),
    );
    let mut statuses = [latin.status, cyrillic.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::SEE_OTHER, StatusCode::CONFLICT],
        "{} / {}",
        latin.body,
        cyrillic.body
    );
}

#[tokio::test]
async fn common_trivial_and_context_passwords_are_refused_at_registration() {
    let app = TestApp::new().await;
    for (password, rule) in [
        ("password123", "on a list of common and breached passwords"),
        ("12345678", "a run of characters"),
        ("iloveyou2", "on a list of common and breached passwords"),
        ("        ", "may not be only spaces"),
        ("dorothea", "may not be your user name"),
        ("DOROTHEA", "may not be your user name"),
    ] {
        let page = register(&app, "dorothea", password).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password:?}: {}",
            page.body
        );
        assert!(page.body.contains(rule), "{password:?}: {}", page.body);
    }
    // No composition rule: a long lower-case passphrase with spaces is fine.
    let page = register(&app, "dorothea", "the kettle sings at dusk").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[tokio::test]
async fn the_registration_page_states_the_rules_tied_to_their_fields() {
    let app = TestApp::new().await;
    let page = app.browser().get("/register").await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        "aria-describedby=\"name-hint\"",
        "<small id=\"name-hint\">3 to 32 letters of any alphabet",
        "aria-describedby=\"password-hint\"",
        "<small id=\"password-hint\">8 to 128 characters; 15 or more recommended",
        "minlength=\"8\"",
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    let page = register(&app, "x", PASSWORD).await;
    assert!(
        page.body.contains("aria-describedby=\"name-hint error\""),
        "the error is tied to the fields too: {}",
        page.body
    );
}

#[tokio::test]
async fn a_weak_password_set_before_the_rules_still_logs_in() {
    let app = TestApp::new().await;
    // As an account of before: a password the rules now refuse, hashed as typed.
    let hash = portcullis_site::accounts::password::hash("12345678".to_owned())
        .await
        .unwrap();
    app.state
        .users()
        .create("oldtimer", "Old Timer", &hash)
        .await
        .unwrap();
    let mut browser = app.browser();
    let page = browser.log_in("oldtimer", "12345678").await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/"),
        "{}",
        page.body
    );
    // Changing it follows the new rules.
    let page = browser
        .post_form(
            "/account/password",
            &[
                ("current", "12345678"),
                ("new_password", "password123"),
                ("confirm", "password123"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "Password not changed: this password is on a list of common and breached passwords"
        ),
        "{}",
        page.body
    );
    let page = browser
        .post_form(
            "/account/password",
            &[
                ("current", "12345678"),
                ("new_password", "Old Timer"),
                ("confirm", "Old Timer"),
            ],
        )
        .await;
    assert!(
        page.body
            .contains("may not be your user name, your display name"),
        "{}",
        page.body
    );
}
