//! When a sender announces its next numbers on the control channel (`crate::control`): the
//! schedule only, as a pure state machine driven by the caller's clock, so the module and
//! `spread-pipe` follow one rule and a test can drive it without sockets or sleeps.
//!
//! A line lost at the tail of a sequence is invisible to gap detection: no later number shows
//! the jump. So a sender that has numbered lines announces how many:
//!
//! * right after a (re)connect — the lines in flight on the old session may be lost;
//! * while it is idle, repeatedly with doubling pauses ([`FIRST_QUIET`], then 2×, 4×, …, at
//!   most [`REPEATS`] times), because the first announcement may go out while no collector is
//!   joined yet (a collector restarting beside a restarted daemon);
//! * at exit ([`Announcer`] does not decide that; the sender announces before disconnecting).
//!
//! Busy senders announce nothing: each line carries its number. The caller never has to read a
//! clock per line: it reports how many lines it has numbered in total when it ticks, and a
//! change of that total is what "busy" means.

use std::time::{Duration, Instant};

/// The first announcement of a quiet period comes after this much quiet.
pub const FIRST_QUIET: Duration = Duration::from_millis(500);
/// Announcements of one quiet period (0.5 s, 1.5 s, 3.5 s, … ≈ 64 s after the last line).
pub const REPEATS: u32 = 7;

/// The announcement schedule of one sender session.
#[derive(Debug, Clone, Default)]
pub struct Announcer {
    /// The caller's total of numbered lines at the last tick.
    seen: u64,
    /// When the next announcement is due; None: nothing to announce.
    due: Option<Instant>,
    /// Announcements made in this quiet period.
    made: u32,
}

impl Announcer {
    pub fn new() -> Announcer {
        Announcer::default()
    }

    /// A new session took over numbered sequences: announce at the next tick.
    pub fn reconnected(&mut self, now: Instant) {
        self.due = Some(now);
        self.made = 0;
    }

    /// Called now and then (every few hundred ms) with the total of lines numbered on this
    /// session so far. True when an announcement is due; then send it and call [`Self::announced`].
    pub fn tick(&mut self, now: Instant, numbered_total: u64) -> bool {
        if numbered_total != self.seen {
            self.seen = numbered_total;
            // Busy: the quiet period starts again. An announcement already due stays due (a
            // reconnect's must go out even under load).
            self.made = 0;
            if self.due.is_none_or(|d| d > now) {
                self.due = Some(now + FIRST_QUIET);
            }
        }
        numbered_total > 0 && self.due.is_some_and(|d| now >= d)
    }

    /// The announcement was sent at `now`: schedule the next one of this quiet period, if any.
    pub fn announced(&mut self, now: Instant) {
        self.made += 1;
        self.due = (self.made < REPEATS).then(|| now + FIRST_QUIET * (1 << self.made));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tick every 100 ms for `secs`, the total of numbered lines given per tick; the times (ms
    /// from start) at which an announcement went out.
    fn run(
        a: &mut Announcer,
        t0: Instant,
        from_ms: u64,
        to_ms: u64,
        total: impl Fn(u64) -> u64,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        for ms in (from_ms..to_ms).step_by(100) {
            let now = t0 + Duration::from_millis(ms);
            if a.tick(now, total(ms)) {
                a.announced(now);
                out.push(ms);
            }
        }
        out
    }

    #[test]
    fn nothing_numbered_nothing_announced() {
        let mut a = Announcer::new();
        let t0 = Instant::now();
        a.reconnected(t0);
        assert!(run(&mut a, t0, 0, 100_000, |_| 0).is_empty());
    }

    #[test]
    fn quiet_sender_repeats_with_doubling_pauses_then_stops() {
        let mut a = Announcer::new();
        let t0 = Instant::now();
        // Busy for 2 s (a line per tick), then quiet.
        let got = run(&mut a, t0, 0, 200_000, |ms| (ms / 100).min(20));
        assert_eq!(
            got,
            vec![2_500, 3_500, 5_500, 9_500, 17_500, 33_500, 65_500]
        );
        assert_eq!(got.len() as u32, REPEATS);
    }

    #[test]
    fn busy_sender_announces_only_after_a_reconnect() {
        let mut a = Announcer::new();
        let t0 = Instant::now();
        assert!(run(&mut a, t0, 0, 5_000, |ms| ms / 100 + 1).is_empty());
        a.reconnected(t0 + Duration::from_millis(5_000));
        let got = run(&mut a, t0, 5_000, 10_000, |ms| ms / 100 + 1);
        assert_eq!(
            got,
            vec![5_000],
            "once at the reconnect, then lines carry the numbers"
        );
    }

    #[test]
    fn a_new_line_starts_a_new_quiet_period() {
        let mut a = Announcer::new();
        let t0 = Instant::now();
        let got = run(&mut a, t0, 0, 20_000, |ms| if ms < 10_000 { 1 } else { 2 });
        assert_eq!(
            got,
            vec![500, 1_500, 3_500, 7_500, 10_500, 11_500, 13_500, 17_500]
        );
    }
}
