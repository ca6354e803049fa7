//! `portcullis config`: one line per setting (its value and where it came from), then the
//! warnings for production risks.

use std::fmt::Write as _;

use portcullis::config::Config;

use crate::config::SiteConfig;

/// What an unset value reads as.
const UNSET: &str = "(none)";

/// The text of `portcullis config`.
pub(super) fn describe(config: &Config, site_config: &SiteConfig) -> String {
    let mut settings = config.report();
    settings.extend(site_config.report());
    let width = settings.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = format!("profile: {}\n\n", config.profile);
    for setting in settings {
        // An unset value reads as such, not as a blank that looks like a missing column.
        let value = if setting.value.trim().is_empty() {
            UNSET
        } else {
            setting.value.as_str()
        };
        let _ = writeln!(
            out,
            "{:width$}  {value}  ({})",
            setting.name, setting.source
        );
    }
    let warnings = config.warnings_with(site_config);
    if !warnings.is_empty() {
        out.push('\n');
        for warning in warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
    }
    out
}
