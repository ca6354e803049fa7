//! User names in any script, with Unicode's own rules for identifiers (UTS #39): what a name
//! may hold, the form it is kept in, the key that makes names unique regardless of case, and the
//! skeleton that makes them unique regardless of look-alike letters.
//!
//! - **Form kept**: NFKC of the name as typed, trimmed. NFKC rather than NFC because the
//!   compatibility forms (fullwidth `ａｌｉｃｅ`, ligatures such as `ﬁ`, superscripts) are
//!   another way to type the same name, never a different one; UTS #39's identifier profile
//!   refuses them too (`Not_NFKC`).
//! - **Characters**: `_`, `.`, `-`, and what UTS #39's General Security Profile recommends for
//!   identifiers (letters, marks and digits of scripts in current use: `jürgen`, `たなか`,
//!   `Мария`), so no invisible joiners, symbols or obsolete scripts; all of one script (UTS #39's
//!   single-script test, under which Japanese may mix Han and kana), so `аlice` with a Cyrillic
//!   `а` is refused whatever else exists.
//! - **Key** (unique, what log-in looks up): full Unicode case folding of the NFKC form, then
//!   NFKC again (Unicode's compatibility caseless match): `Jürgen`, `JÜRGEN` and `jürgen` are one
//!   name; for the ASCII names of before, this is the lower case they were stored under.
//! - **Skeleton** (unique): UTS #39's confusable skeleton of the key, so two names that look
//!   alike (`ѕсоре` in Cyrillic and `scope` in Latin, `bob1` and `bobl`) cannot both exist.

use caseless::default_case_fold_str;
use unicode_normalization::UnicodeNormalization;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, MixedScript, skeleton};

/// 3 to 32 code points, counted in the form kept (OWASP's authentication cheat sheet asks for a
/// clear, bounded rule).
pub(crate) const NAME_CHARS: std::ops::RangeInclusive<usize> = 3..=32;

/// The form a typed name is kept in: trimmed, NFKC.
pub(crate) fn normalize(typed: &str) -> String {
    typed.trim().nfkc().collect()
}

/// The case-insensitive key of a name (typed or kept): names with the same key are one name.
pub(crate) fn key(name: &str) -> String {
    default_case_fold_str(&normalize(name)).nfkc().collect()
}

/// The confusable skeleton of a name (typed or kept): names with the same skeleton look alike.
pub(crate) fn look_alike_key(name: &str) -> String {
    skeleton(&key(name)).collect()
}

/// The rule a kept name (see [`normalize`]) breaks, if any, in words for the person who typed
/// it.
pub(crate) fn broken_rule(name: &str) -> Option<&'static str> {
    if !NAME_CHARS.contains(&name.chars().count()) {
        return Some("a user name has 3 to 32 characters");
    }
    if !name.chars().all(allowed) {
        return Some(
            "a user name may hold only letters (of any alphabet), digits, '_', '.' and '-'",
        );
    }
    if !name.is_single_script() {
        return Some(
            "a user name may not mix alphabets (such as a Cyrillic 'а' among Latin letters): \
             such names are made to look like another",
        );
    }
    None
}

/// `_`, `.`, `-`, or a character UTS #39 recommends for identifiers.
fn allowed(c: char) -> bool {
    matches!(c, '_' | '.' | '-')
        || (c.identifier_allowed() && c.identifier_type() == Some(IdentifierType::Recommended))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_of_any_script_are_user_names() {
        for good in [
            "ada",
            "Ada.Lovelace-1",
            "a_b",
            "jürgen",
            "Мария",
            "たなか太郎",
            "हिन्दी",
            "ελένη",
        ] {
            assert_eq!(broken_rule(&normalize(good)), None, "{good}");
        }
        for bad in ["ab", "ada lovelace", "ada/..", "<b>", "bob\u{200d}", "a☃b"] {
            assert!(broken_rule(&normalize(bad)).is_some(), "{bad}");
        }
        assert_eq!(broken_rule(&"ü".repeat(32)), None, "code points, not bytes");
        assert!(broken_rule(&"ü".repeat(33)).is_some());
    }

    #[test]
    fn a_name_mixing_scripts_is_refused_with_a_clear_rule() {
        // U+0430 CYRILLIC SMALL LETTER A among Latin letters.
        let rule = broken_rule(&normalize("\u{430}lice"));
        assert!(
            rule.is_some_and(|r| r.contains("may not mix alphabets")),
            "{rule:?}"
        );
    }

    #[test]
    fn names_are_kept_in_nfkc_and_keyed_by_case_folding() {
        // Fullwidth letters and a decomposed ü are the same name as the plain, composed one.
        assert_eq!(normalize(" ａｌｉｃｅ "), "alice");
        assert_eq!(normalize("ju\u{308}rgen"), "jürgen");
        assert_eq!(key("JÜRGEN"), key("jürgen"));
        assert_eq!(key("Straße"), key("STRASSE"), "full folding: ß is ss");
        assert_eq!(key("Ada"), "ada", "ASCII keys are the lower case of before");
    }

    #[test]
    fn look_alike_names_share_a_skeleton() {
        assert_eq!(look_alike_key("scope"), look_alike_key("ѕсоре"));
        assert_eq!(look_alike_key("bob1"), look_alike_key("bobl"));
        assert_eq!(look_alike_key("Alice"), look_alike_key("alice"));
        assert_ne!(look_alike_key("alice"), look_alike_key("alina"));
        assert_ne!(look_alike_key("jürgen"), look_alike_key("jurgen"));
    }
}
