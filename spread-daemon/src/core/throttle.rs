//! Input throttling, decided without I/O (PROTOCOL §9's WATER_MARK, keyed on receivers' queues):
//! a receiver whose queue passed the high-water mark is *heavy* until it is back under the low one
//! (a quarter of MaxSessionMessages). While a heavy receiver has made write progress within the
//! window, the event loop stops reading requests, which pushes back on the senders' sockets. A
//! heavy receiver that made no progress for the window holds nobody back: reading resumes, and
//! the core kills it once it is over the limit, as Spread does.
//!
//! The event loop reports queues and write progress; this decides whether to throttle and when to
//! look again.

use std::time::{Duration, Instant};

use super::SessionId;

#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    /// Heavy receivers and when each last made write progress.
    heavy: Vec<(SessionId, Instant)>,
    throttled: bool,
    wake: Option<Instant>,
    /// Times throttling began.
    count: u64,
}

impl Throttle {
    /// `window` zero: never throttle.
    pub fn new(window: Duration) -> Throttle {
        Throttle {
            window,
            heavy: Vec::new(),
            throttled: false,
            wake: None,
            count: 0,
        }
    }

    /// Only handshakes may be read while this is true.
    pub fn throttled(&self) -> bool {
        self.throttled
    }

    /// When the earliest heavy receiver's window runs out (decide again then).
    pub fn wake(&self) -> Option<Instant> {
        self.wake
    }

    /// How many times throttling began.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `id` has `queued` messages after a write attempt: track it if that is over `low`.
    /// `progress` is when it last made write progress.
    pub fn note(&mut self, id: SessionId, queued: usize, low: usize, progress: Instant) {
        if self.window.is_zero() || queued <= low {
            return;
        }
        match self.heavy.iter_mut().find(|(h, _)| *h == id) {
            Some(h) => h.1 = progress,
            None => self.heavy.push((id, progress)),
        }
    }

    /// `id` wrote something at `now`.
    pub fn progressed(&mut self, id: SessionId, now: Instant) {
        if let Some(h) = self.heavy.iter_mut().find(|(h, _)| *h == id) {
            h.1 = now;
        }
    }

    /// Decide at `now`, given each tracked session's queue (`None`: the session is gone) and the
    /// low-water mark.
    pub fn update(
        &mut self,
        now: Instant,
        queued: impl Fn(SessionId) -> Option<usize>,
        low: usize,
    ) {
        let window = self.window;
        let mut wake: Option<Instant> = None;
        self.heavy.retain(|&(id, progress)| {
            if queued(id).is_none_or(|q| q <= low) {
                return false;
            }
            let until = progress + window;
            if until > now {
                wake = Some(wake.map_or(until, |w| w.min(until)));
            }
            true
        });
        if wake.is_some() && !self.throttled {
            self.count += 1;
        }
        self.throttled = wake.is_some();
        self.wake = wake;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: usize = 250;

    /// A throttle with a 100 ms window where receiver `id` became heavy (`queued` messages) at
    /// 0 ms, and a clock in milliseconds from then.
    fn heavy(id: SessionId, queued: usize) -> (Throttle, impl Fn(u64) -> Instant) {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_millis(100));
        t.note(id, queued, LOW, t0);
        (t, move |n| t0 + Duration::from_millis(n))
    }

    #[test]
    fn a_heavy_receiver_that_progresses_throttles_until_it_drains() {
        let (mut t, ms) = heavy(7, 600);
        t.update(ms(10), |_| Some(600), LOW);
        assert!(t.throttled());
        assert_eq!(t.wake(), Some(ms(100)));
        assert_eq!(t.count(), 1);
        // It keeps writing: still throttled past the first window.
        t.progressed(7, ms(90));
        t.update(ms(150), |_| Some(400), LOW);
        assert!(t.throttled());
        assert_eq!(t.wake(), Some(ms(190)));
        // Back under the low-water mark: reading resumes, it is no longer tracked.
        t.update(ms(160), |_| Some(LOW), LOW);
        assert!(!t.throttled());
        assert_eq!(t.wake(), None);
        t.update(ms(170), |_| Some(600), LOW);
        assert!(!t.throttled(), "forgotten once drained");
        assert_eq!(t.count(), 1);
    }

    #[test]
    fn a_stuck_receiver_holds_nobody_back_beyond_its_window() {
        let (mut t, ms) = heavy(3, 900);
        t.update(ms(50), |_| Some(900), LOW);
        assert!(t.throttled());
        t.update(ms(100), |_| Some(900), LOW);
        assert!(!t.throttled(), "no progress for the whole window");
        // A session that went away is dropped.
        t.note(4, 900, LOW, ms(100));
        t.update(ms(110), |id| (id != 4).then_some(900), LOW);
        assert!(!t.throttled());
    }

    #[test]
    fn light_receivers_and_a_zero_window_never_throttle() {
        let now = Instant::now();
        let mut t = Throttle::new(Duration::from_millis(100));
        t.note(1, LOW, LOW, now);
        t.update(now, |_| Some(LOW), LOW);
        assert!(!t.throttled());
        let mut t = Throttle::new(Duration::ZERO);
        t.note(1, 10_000, LOW, now);
        t.update(now, |_| Some(10_000), LOW);
        assert!(!t.throttled());
    }
}
