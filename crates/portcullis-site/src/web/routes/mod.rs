//! The route handlers, one file per area of the site, and [`table`]: every route of the site,
//! declared once as data (`table.rs`), from which `app()` mounts the router and the README's
//! route table is rendered.

pub(crate) mod account;
pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod health;
pub(crate) mod home;
pub(crate) mod login;
pub(crate) mod register;
pub(crate) mod sessions;
mod table;

pub(crate) use table::{Route, markdown};

/// The site's routes, in the README's order.
pub(crate) fn table() -> Vec<Route> {
    vec![
        Route::new(
            "/",
            "the landing page, or the dashboard when logged in (user, session start, seconds left)",
        )
        .get(home::home),
        Route::new(
            "/register",
            "create an account and log in to it: user name 3–32 letters of any one alphabet, \
             digits, `_ . -` (unique in any case and against look-alikes), password 8–128 \
             characters (15 or more recommended), not a common or breached one",
        )
        .get(register::form)
        .post(register::submit),
        Route::new(
            "/login",
            "log in; `?next=` takes a local path only (no open redirect)",
        )
        .get(login::form)
        .post(login::submit),
        Route::new(
            "/logout",
            "end the session (POST only, CSRF-protected); sends `Clear-Site-Data: \"cache\"` and keeps the device cookie",
        )
        .post(login::logout),
        Route::new(
            "/account",
            "change the display name, the appearance, the password (asks for the current one)",
        )
        .get(account::page),
        Route::new(
            "/account/display-name",
            "the account page's display-name form",
        )
        .post(account::display_name),
        Route::new("/account/password", "the account page's password form").post(account::password),
        Route::new("/account/preferences", "the account page's appearance form")
            .post(account::preferences),
        Route::new(
            "/account/sessions",
            "every device you are logged in on: browser, address, when it started, when it was \
             last used, \"this device\" marked",
        )
        .get(sessions::page),
        Route::new(
            "/account/sessions/view",
            "the page's \"Show\" form: this session's order of the list and how its times read \
             (the view options of `/api/prefs`)",
        )
        .post(sessions::view),
        Route::new(
            "/account/sessions/end",
            "ends one of them now (`session=<id>` from the list, CSRF-protected); a malformed id \
             is a 422 with the reason, another user's ends nothing",
        )
        .post(sessions::end),
        Route::new(
            "/account/sessions/end-others",
            "\"log out all other devices\": ends every session of yours but this one",
        )
        .post(sessions::end_others),
        Route::new(
            "/api/me",
            "`{\"user\", \"display_name\", \"seconds_left\"}`, or 401 `{\"error\": ...}`",
        )
        .get(api::me),
        Route::new(
            "/api/prefs",
            "this session's view options (the appearance is the account's, on `/account`): \
             `devices_order` (`last-used`, `started`) and `devices_times` (`relative`, `utc`) of \
             the devices list; `PATCH` (with the `X-CSRFToken` header) sets only the keys it \
             names, e.g. `{\"devices_order\": \"started\"}`, so two tabs changing different \
             options at once both keep theirs; known keys and values only, 4xx with a reason \
             otherwise (`PUT` does the same, for older scripts)",
        )
        .get(api::prefs)
        .patch(api::patch_prefs)
        .put(api::patch_prefs)
        .body_limit(api::MAX_PREFS_BODY),
        Route::new(
            "/api/csrf-token",
            "`{\"csrf_token\": ...}` for the `X-CSRFToken` header",
        )
        .get(api::csrf_token),
        Route::new(
            "/healthz",
            "200 when the session store and the database answer, 503 otherwise",
        )
        .get(health::healthz),
        Route::new(
            "/livez",
            "200 while the process answers (Kubernetes' liveness probe); no session, any host, \
             never shed",
        )
        .get(health::livez)
        .probe(),
        Route::new(
            "/readyz",
            "200 when the session store and the database answer, 503 otherwise and from the \
             start of a graceful shutdown (Kubernetes' readiness probe); no session, any host, \
             never shed",
        )
        .get(health::readyz)
        .probe(),
        Route::new(
            "/static/style.css",
            "the stylesheet, embedded in the binary (the one response caches may keep, for an \
             hour)",
        )
        .get(assets::stylesheet),
    ]
}
