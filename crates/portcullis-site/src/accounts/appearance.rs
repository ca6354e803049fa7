//! [`Appearance`]: the theme and density a user chose on the Account page, kept on the account
//! (the `users` table's `theme` and `density` columns), so every device shows the same and a
//! log-out or an expiry loses nothing. Known values only; a visitor sees the defaults.

/// Allowed themes; `system` follows the device's light or dark setting.
pub(crate) const THEMES: &[&str] = &["system", "light", "dark"];
/// Allowed densities.
pub(crate) const DENSITIES: &[&str] = &["comfortable", "compact"];

/// A user's appearance; always one of the allowed values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appearance {
    theme: &'static str,
    density: &'static str,
}

impl Default for Appearance {
    fn default() -> Self {
        Self {
            theme: THEMES[0],
            density: DENSITIES[0],
        }
    }
}

impl Appearance {
    /// The appearance of `theme` and `density`, or why not (for the person who chose them).
    ///
    /// # Errors
    /// The rule broken, when either is not an allowed value.
    pub fn parse(theme: &str, density: &str) -> Result<Self, String> {
        Ok(Self {
            theme: allowed("theme", THEMES, theme)?,
            density: allowed("density", DENSITIES, density)?,
        })
    }

    /// As stored, leniently: a value the site no longer knows (a row edited by hand, a value
    /// retired) shows as its default rather than failing the page.
    pub(crate) fn stored(theme: &str, density: &str) -> Self {
        let default = Self::default();
        Self {
            theme: allowed("theme", THEMES, theme).unwrap_or(default.theme),
            density: allowed("density", DENSITIES, density).unwrap_or(default.density),
        }
    }

    /// The theme: `system`, `light` or `dark`.
    pub fn theme(&self) -> &'static str {
        self.theme
    }

    /// The density: `comfortable` or `compact`.
    pub fn density(&self) -> &'static str {
        self.density
    }
}

/// `value` as the allowed `&'static str` it equals, or the rule for `what`.
fn allowed(what: &str, values: &[&'static str], value: &str) -> Result<&'static str, String> {
    values
        .iter()
        .copied()
        .find(|v| *v == value)
        .ok_or_else(|| format!("{what} must be one of: {}", values.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_parse_and_anything_else_is_refused_with_the_rule() {
        let dark = Appearance::parse("dark", "compact").unwrap();
        assert_eq!((dark.theme(), dark.density()), ("dark", "compact"));
        let neon = Appearance::parse("neon", "compact").unwrap_err();
        assert_eq!(neon, "theme must be one of: system, light, dark");
        assert!(Appearance::parse("dark", &"x".repeat(10_000)).is_err());
    }

    #[test]
    fn an_unknown_stored_value_shows_as_its_default() {
        let stored = Appearance::stored("neon", "compact");
        assert_eq!((stored.theme(), stored.density()), ("system", "compact"));
    }
}
