//! The rules for a new password (registration, a change on the Account page, `portcullis users
//! reset-password`), after OWASP ASVS 5.0 (V6.2) and NIST SP 800-63B (5.1.1.2): a length, a
//! blocklist and a context check, and no composition rule ("a digit and a capital") at all.
//! Passwords set before these rules keep working: they are checked at log-in only against
//! their hash.
//!
//! - **Length**: 8 to 128 characters (15 or more recommended, and the pages say so), counted
//!   in Unicode code points of the NFKC form, which is also what is hashed (NIST asks for NFKC
//!   or NFKD before hashing). 128 is well past the 64 that both ask to allow, and bounds the
//!   Argon2 input at 512 bytes.
//! - **Blocklist**: the 20,000 common and breached passwords that Django ships
//!   (`data/common-passwords.txt`, see `data/common-passwords.LICENSE`), compared as Django
//!   does, in lower case (here: case-folded) and trimmed, so `password123`, `12345678` and
//!   `Password123 ` are all refused.
//! - **Trivial**: only white space, one character repeated, or a run such as `abcdefgh` or
//!   `87654321`: NIST's list of what a blocklist holds names "repetitive or sequential
//!   characters". Eight spaces are refused as such, not by a composition rule: spaces inside a
//!   password stay welcome (a passphrase is the best kind), only a password that is nothing
//!   but spaces is one of the few everybody would guess.
//! - **Context**: not the user name, the display name or the site's name, in any case (NIST:
//!   "context-specific words, such as the name of the service, the username").

use std::collections::HashSet;
use std::sync::LazyLock;

use caseless::default_case_fold_str;
use unicode_normalization::UnicodeNormalization;

/// 8 to 128 code points of the NFKC form (NIST SP 800-63B: at least 8, at least 64 allowed).
pub(crate) const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
/// What the pages recommend (ASVS 5.0 V6.2.1 and NIST SP 800-63B-4: 15 for a password that is
/// the only factor).
pub(crate) const RECOMMENDED_CHARS: usize = 15;
/// The site's name, a context-specific word nobody should use as a password here.
const SITE_NAME: &str = "portcullis";

/// Django's list, one lower-case password a line.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// Reads the blocklist now (tens of milliseconds, once per process), so that the first
/// registration does not pay for it on a worker thread that serves other requests.
pub(crate) fn load_blocklist() {
    LazyLock::force(&COMMON);
}

/// The form a password is hashed and counted in: NFKC.
pub(crate) fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// The rule a new `password` breaks, if any, in words for the person who typed it; `names`
/// are the account's user name and display name (the context check).
pub(crate) fn broken_rule(password: &str, names: &[&str]) -> Option<&'static str> {
    let normal = normalize(password);
    let chars: Vec<char> = normal.chars().collect();
    if !PASSWORD_CHARS.contains(&chars.len()) {
        return Some("a password has 8 to 128 characters");
    }
    if chars.iter().all(|c| c.is_whitespace()) {
        return Some("a password may not be only spaces");
    }
    if chars.iter().all(|c| *c == chars[0]) {
        return Some("a password may not be one character repeated");
    }
    if is_run(&chars) {
        return Some("a password may not be a run of characters such as abcdefgh or 87654321");
    }
    let folded = default_case_fold_str(normal.trim());
    if COMMON.contains(folded.as_str()) {
        return Some(
            "this password is on a list of common and breached passwords; please choose another",
        );
    }
    let context = names.iter().copied().chain([SITE_NAME]);
    if context
        .map(|name| default_case_fold_str(&normalize(name.trim())))
        .any(|name| !name.is_empty() && name == folded)
    {
        return Some("a password may not be your user name, your display name or the site's name");
    }
    None
}

/// Whether each character is the one after the previous (`abcd`), or each the one before.
fn is_run(chars: &[char]) -> bool {
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|pair| i64::from(u32::from(pair[1])) - i64::from(u32::from(pair[0])))
        .collect();
    steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocklist_holds_what_it_should() {
        assert!(COMMON.len() > 19_000, "{}", COMMON.len());
        for common in ["password123", "12345678", "qwerty123", "iloveyou"] {
            assert!(COMMON.contains(common), "{common}");
        }
    }

    #[test]
    fn common_trivial_and_context_passwords_are_refused() {
        let rule = |password: &str| broken_rule(password, &["ada", "Ada Lovelace"]);
        for (password, words) in [
            ("password123", "common and breached"),
            ("PassWord123 ", "common and breached"),
            ("12345678", "a run"),
            ("1234567890a", "common and breached"),
            ("        ", "only spaces"),
            (
                "\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}",
                "only spaces",
            ),
            ("zzzzzzzzzzzz", "one character repeated"),
            ("bcdefghij", "a run"),
            ("98765432", "a run"),
            ("ADA LOVELACE", "your user name"),
            ("Portcullis", "your user name"),
            ("short", "8 to 128"),
        ] {
            let broken = rule(password);
            assert!(
                broken.is_some_and(|r| r.contains(words)),
                "{password:?}: {broken:?}"
            );
        }
        for fine in [
            "correct horse battery",
            "jürgen's long passphrase",
            "Tr0ub4dor&3x",
        ] {
            assert_eq!(rule(fine), None, "{fine}");
        }
    }

    #[test]
    fn length_is_counted_in_code_points_after_nfkc() {
        // Eight two-byte letters are eight characters.
        assert_eq!(broken_rule("ÿüöäëïéá", &[]), None);
        assert!(broken_rule("ÿüöäëïé", &[]).is_some(), "seven are too few");
        // A decomposed letter is one character once composed: 7 then, not 8.
        assert!(broken_rule("u\u{308}bcxqzt", &[]).is_some());
        assert_eq!(broken_rule(&"ab".repeat(64), &[]), None, "128 is allowed");
        assert!(broken_rule(&"ab".repeat(64).replacen('a', "ae", 1), &[]).is_some());
        // U+FB01 LATIN SMALL LIGATURE FI is two characters in NFKC.
        assert_eq!(normalize("\u{fb01}"), "fi");
    }
}
