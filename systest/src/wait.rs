//! Bounded waits whose failure message says what was awaited and what was last seen.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Poll `probe` every 20 ms until it yields `Some`; panic after `timeout` with the last state.
pub fn wait_value<T, S: Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(state) => {
                if start.elapsed() > timeout {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {state:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `ok` until true; panic after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    wait_value(what, timeout, || if ok() { Ok(()) } else { Err("not yet") })
}
