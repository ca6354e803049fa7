//! The pages' templates (minijinja, Jinja2's syntax), embedded in the binary, with HTML
//! auto-escaping on (every template name ends in `.html`), and the stylesheet.
//!
//! Every page extends `base.html`, which expects `user` (or none), `flashes`, `csrf_input`
//! (a safe string: the hidden CSRF field), `theme`, `density` (the viewer's appearance) and `idle_time` (the idle lifetime, `5 minutes`).

use minijinja::Environment;

/// The stylesheet served at `/static/style.css`.
pub(crate) const STYLESHEET: &str = include_str!("style.css");

/// One embedded template.
struct Embedded {
    name: &'static str,
    source: &'static str,
    /// Whether the page has forms of its own, so it needs the CSRF field even for a visitor.
    has_forms: bool,
}

/// Every template: the one list, kept in step with this folder.
const TEMPLATES: &[Embedded] = &[
    Embedded {
        name: "base.html",
        source: include_str!("base.html"),
        has_forms: false,
    },
    Embedded {
        name: "landing.html",
        source: include_str!("landing.html"),
        has_forms: false,
    },
    Embedded {
        name: "dashboard.html",
        source: include_str!("dashboard.html"),
        has_forms: false,
    },
    Embedded {
        name: "login.html",
        source: include_str!("login.html"),
        has_forms: true,
    },
    Embedded {
        name: "register.html",
        source: include_str!("register.html"),
        has_forms: true,
    },
    Embedded {
        name: "account.html",
        source: include_str!("account.html"),
        has_forms: true,
    },
    Embedded {
        name: "sessions.html",
        source: include_str!("sessions.html"),
        has_forms: true,
    },
    Embedded {
        name: "error.html",
        source: include_str!("error.html"),
        has_forms: false,
    },
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
        for Embedded { name, source, .. } in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("embedded template {name} compiles: {e}"));
        }
        Self { env }
    }

    /// Whether the template `name` has forms of its own (see [`Embedded::has_forms`]).
    pub(crate) fn has_forms(name: &str) -> bool {
        TEMPLATES.iter().any(|t| t.name == name && t.has_forms)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_every_template_of_the_folder_once() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/templates");
        let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".html"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = TEMPLATES.iter().map(|t| t.name.to_owned()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn only_the_pages_with_forms_say_so() {
        assert!(Templates::has_forms("login.html"));
        assert!(Templates::has_forms("sessions.html"));
        assert!(!Templates::has_forms("landing.html"));
        assert!(!Templates::has_forms("no-such.html"));
    }
}
