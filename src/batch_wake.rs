//! How a child's background thread learns that a batch waits to be written, without a syscall
//! per line: the thread sleeps as long as it likes only after declaring itself parked, and a
//! request that starts a batch (the first line queued since the last write) wakes it only if it
//! is parked. Under load the thread never parks (a batch is always pending), so requests never
//! signal; from idle, the first line of a burst costs one wake-up.
//!
//! Both sides use sequentially consistent atomics in opposite orders (the request: mark the
//! batch pending, then look at `parked`; the thread: set `parked`, then look for pending
//! batches), so at least one of them sees the other: a batch is never left unflushed by a
//! thread asleep for long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    stop: bool,
    kicked: bool,
}

/// Why [`Wake::sleep`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// Its time was up.
    Time,
    /// A batch started: it is to be written one flush interval from now, not at once.
    BatchStarted,
    Stop,
}

#[derive(Default)]
pub struct Wake {
    parked: AtomicBool,
    state: Mutex<State>,
    cvar: Condvar,
}

impl Wake {
    /// The thread is about to sleep long: requests starting a batch must wake it.
    pub fn park(&self) {
        self.parked.store(true, Ordering::SeqCst);
    }

    /// The thread will come back soon by itself (a batch is pending): no need to wake it.
    pub fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// A request started a batch: wake the thread if it sleeps long (rare; a lock and a futex
    /// wake then).
    pub fn batch_started(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.kicked = true;
            self.cvar.notify_one();
        }
    }

    /// Sleep `d`, or until woken or stopped.
    pub fn sleep(&self, d: Duration) -> Woke {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut st, _) = self
            .cvar
            .wait_timeout_while(st, d, |s| !s.stop && !s.kicked)
            .unwrap_or_else(|p| p.into_inner());
        if st.stop {
            return Woke::Stop;
        }
        if std::mem::take(&mut st.kicked) {
            Woke::BatchStarted
        } else {
            Woke::Time
        }
    }

    /// Ask the thread to stop (it returns from its sleep at once).
    pub fn stop(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.stop = true;
        self.cvar.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_parked_thread_is_woken_by_a_batch_and_an_unparked_one_is_not_signalled() {
        let w = Arc::new(Wake::default());
        let t = {
            let w = w.clone();
            std::thread::spawn(move || {
                w.park();
                let start = Instant::now();
                let stopping = w.sleep(Duration::from_secs(10));
                (stopping, start.elapsed())
            })
        };
        // Wait until it parked, then start a batch.
        while !w.parked.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        w.batch_started();
        let (woke, slept) = t.join().unwrap();
        assert_eq!(woke, Woke::BatchStarted);
        assert!(slept < Duration::from_secs(5), "{slept:?}");
        // Not parked: a batch start leaves no wake-up behind for the next sleep.
        w.unpark();
        w.batch_started();
        let start = Instant::now();
        assert_eq!(w.sleep(Duration::from_millis(50)), Woke::Time);
        assert!(start.elapsed() >= Duration::from_millis(50));
        w.stop();
        assert_eq!(w.sleep(Duration::from_secs(10)), Woke::Stop);
    }
}
