//! The machinery behind each setting's one declaration: the [`settings!`](crate::settings)
//! macro, the [`SettingsReader`] it reads through, and the configuration reference table it
//! documents itself in. The library's declarations are in `settings.rs`; an application
//! declares its own settings with the same macro (the reference site does, in its `config.rs`).

use std::collections::HashMap;
use std::fmt::{self, Display, Write as _};
use std::time::Duration;

use super::parse::Parsed;
use super::source::Layers;
use super::{ConfigError, Source};

/// Declares a configuration struct, one row per setting, and makes from those rows everything
/// else a setting needs, so that adding a setting touches one row: the struct's public field
/// (its doc is the row's doc, plus the environment name and what it accepts), the profile's
/// defaults, the reader, the report (`report()`, what `portcullis config` prints, with
/// `source()`), `Debug` (the report, so secrets stay redacted) and the configuration reference
/// (`reference()`, rendered by [`reference_table`](crate::config::reference_table)).
///
/// Each row reads:
///
/// ```text
/// /// What it is for: one paragraph, the reference table's last column.
/// ///
/// /// More paragraphs go to the field's docs only.
/// "ENV_NAME" => field: Type {
///     default: dev_and_redis_value[, redis: redis_value];
///     parse: parser;                  // fn(&str) -> Result<Type, String>: what is allowed
///     show: printer;                  // FnOnce(&Type) -> String, as `.env` would spell it
///     shown_default: "dev", "redis";  // optional: the table's default cells, when the
///                                     // default is not a value (a generated key)
///     accepts: "what the value may be, in markdown";
/// }
/// ```
///
/// A row without `parse` is read by hand before the others (the library reads the profile,
/// the format and the key so); every other row is read in declaration order, so the first bad
/// value in that order is the one refused. The struct gets `pub(crate)` `defaults(profile)` and
/// `read_declared(&mut reader)`, which an [`ExtraSettings`](crate::config::ExtraSettings)
/// implementation calls.
///
/// ```
/// use portcullis::config::{
///     ConfigLoader, ExtraSettings, Config, ConfigError, Source, SettingsReader,
/// };
/// use portcullis::config::{parse, show};
///
/// portcullis::settings! {
///     /// An application's own settings.
///     pub struct AppSettings {
///         /// greet visitors by name
///         "APP_GREETING" => greeting: bool {
///             default: true;
///             parse: parse::boolean;
///             show: show::display;
///             accepts: "a boolean";
///         }
///     }
/// }
///
/// impl ExtraSettings for AppSettings {
///     fn read(reader: &mut SettingsReader, config: &Config) -> Result<Self, ConfigError> {
///         let mut settings = Self::defaults(config.profile);
///         settings.read_declared(reader)?;
///         Ok(settings)
///     }
/// }
///
/// let state = tempfile::tempdir()?;
/// let (_config, app) = ConfigLoader::new()
///     .env([("APP_GREETING".to_owned(), "off".to_owned())])
///     .no_dotenv()
///     .state_dir(state.path())
///     .load_with::<AppSettings>()?;
/// assert!(!app.greeting);
/// assert_eq!(app.source("APP_GREETING"), Source::Environment);
/// assert_eq!(AppSettings::reference()[0].dev_default, "`true`");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! settings {
    (
        $(#[$struct_attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $env:literal => $field:ident: $ty:ty {
                    default: $dev:expr $(, redis: $redis:expr)?;
                    $(parse: $parse:expr;)?
                    show: $show:expr;
                    $(shown_default: $shown_dev:literal, $shown_redis:literal;)?
                    accepts: $accepts:literal;
                }
            )*
        }
    ) => {
        $(#[$struct_attr])*
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Setting `", $env, "`: ", $accepts, ".")]
                pub $field: $ty,
            )*
            /// Where each setting's value came from, by environment name.
            pub(crate) sources: ::std::collections::HashMap<&'static str, $crate::config::Source>,
        }

        impl $name {
            /// Every setting at `profile`'s default, before any layer is read.
            pub(crate) fn defaults(profile: $crate::config::Profile) -> Self {
                Self {
                    $($field: $crate::__setting_default!(profile, $dev $(, $redis)?),)*
                    sources: ::std::collections::HashMap::new(),
                }
            }

            /// Reads every row that has a parser, in declaration order, and keeps the source
            /// of each setting `reader` has read so far (those read by hand included).
            ///
            /// # Errors
            /// The first value that does not parse, as `ConfigError::Invalid` naming the
            /// setting.
            pub(crate) fn read_declared(
                &mut self,
                reader: &mut $crate::config::SettingsReader,
            ) -> ::std::result::Result<(), $crate::config::ConfigError> {
                $($crate::__setting_read!(reader, self.$field, $env $(, $parse)?);)*
                self.sources.extend(reader.take_sources());
                Ok(())
            }

            /// Every setting, in declaration order, with its value as `.env` would spell it
            /// (secrets redacted) and where it came from.
            #[must_use]
            pub fn report(&self) -> ::std::vec::Vec<$crate::config::Setting> {
                ::std::vec![$(
                    $crate::config::Setting {
                        name: $env,
                        value: $crate::config::show::with(&self.$field, $show),
                        source: self.source($env),
                    },
                )*]
            }

            /// Where the setting named `setting` (its environment name) came from;
            /// `Source::Default` for a name that is not one of these settings.
            #[must_use]
            pub fn source(&self, setting: &str) -> $crate::config::Source {
                self.sources
                    .get(setting)
                    .copied()
                    .unwrap_or($crate::config::Source::Default)
            }

            /// The configuration reference's rows for these settings, in declaration order.
            #[must_use]
            pub fn reference() -> ::std::vec::Vec<$crate::config::SettingDoc> {
                let dev = Self::defaults($crate::config::Profile::Dev);
                let redis = Self::defaults($crate::config::Profile::Redis);
                ::std::vec![$(
                    $crate::config::SettingDoc {
                        name: $env,
                        dev_default: $crate::__setting_shown!(dev.$field, $show $(, $shown_dev)?),
                        redis_default: $crate::__setting_shown!(
                            redis.$field, $show $(, $shown_redis)?
                        ),
                        accepts: $accepts,
                        purpose: $crate::config::show::purpose(concat!($($doc, "\n",)*)),
                    },
                )*]
            }
        }

        /// Prints the report: secrets and passwords are redacted.
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let report = self.report();
                f.debug_map()
                    .entries(report.iter().map(|s| (s.name, &s.value)))
                    .finish()
            }
        }
    };
}

/// A row's default: one value for both profiles, or the `dev` value and the `redis` one.
#[doc(hidden)]
#[macro_export]
macro_rules! __setting_default {
    ($profile:ident, $both:expr) => {
        $both
    };
    ($profile:ident, $dev:expr, $redis:expr) => {
        match $profile {
            $crate::config::Profile::Dev => $dev,
            $crate::config::Profile::Redis => $redis,
        }
    };
}

/// A row's read: through its parser, or nothing for a row read by hand.
#[doc(hidden)]
#[macro_export]
macro_rules! __setting_read {
    ($reader:ident, $value:expr, $env:literal) => {};
    ($reader:ident, $value:expr, $env:literal, $parse:expr) => {
        $reader.read($env, &mut $value, $parse)?
    };
}

/// A row's default as the reference table shows it: the given text, or the printed value.
#[doc(hidden)]
#[macro_export]
macro_rules! __setting_shown {
    ($value:expr, $show:expr) => {
        $crate::config::show::default_cell(&$crate::config::show::with(&$value, $show))
    };
    ($value:expr, $show:expr, $shown:literal) => {
        ::std::string::String::from($shown)
    };
}

/// Reads settings from the layers (command line, environment, `.env`), remembering where each
/// value came from. [`ConfigLoader::load_with`](crate::config::ConfigLoader::load_with) hands
/// one to an application's [`ExtraSettings`](crate::config::ExtraSettings).
pub struct SettingsReader {
    layers: Layers,
    sources: HashMap<&'static str, Source>,
}

/// Shows where the settings read so far came from, never a value.
impl fmt::Debug for SettingsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettingsReader")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl SettingsReader {
    pub(super) fn new(layers: Layers) -> Self {
        Self {
            layers,
            sources: HashMap::new(),
        }
    }

    /// Stores the parsed value of `setting` in `value` if a layer sets it, otherwise leaves the
    /// default there; either way records where the value came from.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `setting`, its value and what `parse` allows; also when
    /// the environment holds a value that is not UTF-8.
    pub fn read<T>(
        &mut self,
        setting: &'static str,
        value: &mut T,
        parse: impl FnOnce(&str) -> Parsed<T>,
    ) -> Result<(), ConfigError> {
        let Some((raw, source)) = self.layers.lookup(setting)? else {
            self.sources.insert(setting, Source::Default);
            return Ok(());
        };
        *value = parse(&raw).map_err(|allowed| ConfigError::invalid(setting, &raw, allowed))?;
        self.sources.insert(setting, source);
        Ok(())
    }

    /// The raw value of `setting` and its source, for a setting read by hand.
    pub(super) fn lookup(
        &self,
        setting: &'static str,
    ) -> Result<Option<(String, Source)>, ConfigError> {
        self.layers.lookup(setting)
    }

    /// Records where a setting read by hand came from.
    pub(super) fn record(&mut self, setting: &'static str, source: Source) {
        self.sources.insert(setting, source);
    }

    /// The sources recorded since the last call, for the struct that holds the values.
    #[doc(hidden)]
    pub fn take_sources(&mut self) -> HashMap<&'static str, Source> {
        std::mem::take(&mut self.sources)
    }
}

/// One row of the configuration reference, made by a declared struct's `reference()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingDoc {
    /// The environment name, e.g. `SESSION_COOKIE_NAME`.
    pub name: &'static str,
    /// The `dev` profile's default, as markdown: a value in backticks, or `none`.
    pub dev_default: String,
    /// The `redis` profile's default, as markdown.
    pub redis_default: String,
    /// What the value may be, as markdown.
    pub accepts: &'static str,
    /// What the setting is for: the first paragraph of its declaration's doc.
    pub purpose: String,
}

/// The configuration reference as a markdown table, one line per row: the README's
/// "Configuration reference" is exactly this table over the library's and the site's rows.
#[must_use]
pub fn reference_table(rows: &[SettingDoc]) -> String {
    let mut table = String::from(
        "| setting | `dev` default | `redis` default | accepts | what it is for |\n\
         |---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            table,
            "| `{}` | {} | {} | {} | {} |",
            row.name, row.dev_default, row.redis_default, row.accepts, row.purpose
        );
    }
    table
}

/// Printers for the `show` of a declaration: a value as `.env` would spell it. Public so that an
/// application's declarations print as the library's do.
pub mod show {
    use super::{Display, Duration};

    /// A value through its `Display`.
    pub fn display<T: Display>(value: &T) -> String {
        value.to_string()
    }

    /// A duration as the settings accept it back, e.g. `5m` or `1h 30m`.
    #[must_use]
    pub fn duration(value: &Duration) -> String {
        humantime::format_duration(*value).to_string()
    }

    /// A list as `.env` would spell it: comma-separated.
    pub fn list<T: Display>(items: &[T]) -> String {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `value` printed by `show`; the macro's way to call a printer with the value's type known
    /// first, so that a closure printer needs no type annotation.
    #[doc(hidden)]
    pub fn with<T>(value: &T, show: impl FnOnce(&T) -> String) -> String {
        show(value)
    }

    /// A default as a reference table cell: the value in backticks, or `none` when empty.
    #[doc(hidden)]
    #[must_use]
    pub fn default_cell(shown: &str) -> String {
        if shown.is_empty() {
            "none".to_owned()
        } else {
            format!("`{shown}`")
        }
    }

    /// The first paragraph of a declaration's doc (its lines joined by `\n`), on one line.
    #[doc(hidden)]
    #[must_use]
    pub fn purpose(doc: &str) -> String {
        doc.lines()
            .map(str::trim)
            .take_while(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::show::{default_cell, purpose};

    #[test]
    fn the_purpose_is_the_first_paragraph_on_one_line() {
        assert_eq!(
            purpose(" the idle lifetime:\n a session unused\n\n More for the field.\n"),
            "the idle lifetime: a session unused"
        );
        assert_eq!(purpose(""), "");
    }

    #[test]
    fn an_empty_default_reads_none_and_a_value_is_code() {
        assert_eq!(default_cell(""), "none");
        assert_eq!(default_cell("sess:"), "`sess:`");
    }
}
