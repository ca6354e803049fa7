//! How long a writer waits after a conflict before its next compare-and-set: not at all after
//! the first, then a random time below a window that doubles up to a cap (full jitter).

use std::time::Duration;

use crate::keys::fill_random;

/// The first retry goes at once (two writers, the common case); later ones wait a random time
/// below a window that doubles from this...
const BACKOFF_BASE: Duration = Duration::from_millis(1);
/// ...up to this, so that a pile-up of writers spreads out instead of colliding again.
const BACKOFF_CAP: Duration = Duration::from_millis(64);
/// Doublings of the window past which the shift stops (the cap is reached after 6 anyway); it
/// keeps `1 << n` far from overflowing whatever `MAX_SAVE_ATTEMPTS` becomes.
const MAX_BACKOFF_DOUBLINGS: u32 = 16;

/// Waits before try `attempt + 1`: not at all after the first conflict, then a random time
/// below [`window`].
pub(super) async fn back_off(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let mut random = [0u8; 8];
    fill_random(&mut random);
    let window = u64::try_from(window(attempt).as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let micros = u64::from_le_bytes(random) % window;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

/// The window the wait before try `attempt + 1` (`attempt` ≥ 1) is drawn from.
fn window(attempt: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1 << (attempt - 1).min(MAX_BACKOFF_DOUBLINGS))
        .min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_doubles_from_the_base_up_to_the_cap() {
        let ms = Duration::from_millis;
        let cases = [
            (1, ms(1)),
            (2, ms(2)),
            (3, ms(4)),
            (7, ms(64)),
            (8, BACKOFF_CAP),
            (u32::MAX, BACKOFF_CAP),
        ];
        for (attempt, expected) in cases {
            assert_eq!(window(attempt), expected, "attempt {attempt}");
        }
    }
}
