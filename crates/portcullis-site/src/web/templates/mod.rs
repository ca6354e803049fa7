//! The pages' templates (minijinja, Jinja2's syntax), embedded in the binary, with HTML
//! auto-escaping on (every template name ends in `.html`), and the stylesheet.
//!
//! Every page extends `base.html`, which expects `user` (or none), `flashes`, `csrf_input`
//! (a safe string: the hidden CSRF field), `theme`, `density` and `idle_minutes`.

use minijinja::Environment;

/// The stylesheet served at `/static/style.css`.
pub(crate) const STYLESHEET: &str = include_str!("style.css");

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("base.html")),
    ("landing.html", include_str!("landing.html")),
    ("dashboard.html", include_str!("dashboard.html")),
    ("login.html", include_str!("login.html")),
    ("register.html", include_str!("register.html")),
    ("account.html", include_str!("account.html")),
    ("sessions.html", include_str!("sessions.html")),
    ("error.html", include_str!("error.html")),
];

/// The compiled templates.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles every template.
    ///
    /// # Panics
    /// If a template does not compile: they are part of the binary, so that is a build bug
    /// (and the tests render each one).
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        // Undefined variables are errors, not empty strings: a typo fails the tests.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("embedded template {name} compiles: {e}"));
        }
        Self { env }
    }

    /// Renders `name` with `context`.
    pub(crate) fn render(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}
