//! [`ErrorChain`]: an error and its causes on one line, `a: b: c`, for log lines and for the
//! command line's last words.

use std::error::Error;
use std::fmt;

/// Shows an error and its sources joined by `: `. A source whose text is already part of the
/// text before it is left out: the Redis client, for one, wraps an I/O error in an error that
/// repeats its message.
///
/// ```
/// use portcullis::ErrorChain;
///
/// let io = std::io::Error::other("connection refused");
/// assert_eq!(ErrorChain(&io).to_string(), "connection refused");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional cause.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|cause| cause as &(dyn Error + 'static))
        }
    }

    fn chain(messages: &[&'static str]) -> Layer {
        let mut error = None;
        for &message in messages.iter().rev() {
            error = Some(Layer(message, error.map(Box::new)));
        }
        error.unwrap_or(Layer("", None))
    }

    #[test]
    fn causes_follow_the_error_on_one_line() {
        let error = chain(&["cannot list sessions", "the store failed", "timed out"]);
        assert_eq!(
            ErrorChain(&error).to_string(),
            "cannot list sessions: the store failed: timed out"
        );
    }

    #[test]
    fn a_cause_the_text_before_it_already_says_is_shown_once() {
        let repeated = chain(&["io error: refused", "refused", "refused"]);
        assert_eq!(ErrorChain(&repeated).to_string(), "io error: refused");
        let after_a_repeat = chain(&["a: b", "b", "c"]);
        assert_eq!(ErrorChain(&after_a_repeat).to_string(), "a: b: c");
    }
}
