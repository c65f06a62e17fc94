//! Counters summed across all children of one Apache generation: one anonymous shared mapping
//! created by the parent before it forks, holding plain atomics (no lock, no syscall to count).

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Every counter the admin can read (status handler, periodic notices).
#[derive(Default)]
#[repr(C)]
pub struct Counters {
    /// Lines handed over to a daemon (first choice or failover).
    pub sent: AtomicU64,
    /// Of `sent`, lines handed over by a failover alternative.
    pub failed_over: AtomicU64,
    /// Lines written to the spool because no alternative could take them.
    pub spooled: AtomicU64,
    /// Spooled lines handed over later by a replayer.
    pub replayed: AtomicU64,
    /// Lines cut to the size limit (with the marker).
    pub truncated: AtomicU64,
    /// Lines lost because the spool was full (also said in the error log).
    pub dropped_spool_full: AtomicU64,
    /// Lines lost because the spool could not be written at all (also said in the error log).
    pub dropped_spool_error: AtomicU64,
    /// Failed connects (each starts a retry back-off).
    pub connect_errors: AtomicU64,
    /// Failed sends on an open connection.
    pub send_errors: AtomicU64,
    /// Sends given up because the connection's lock was not free within SpreadSendTimeout.
    pub lock_timeouts: AtomicU64,
    /// Error-log lines shipped.
    pub error_lines: AtomicU64,
    /// Control messages announcing the next numbers (after a reconnect, while idle, at exit).
    pub announcements: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn value(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> [(&'static str, u64); 12] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("sent", g(&self.sent)),
            ("failed_over", g(&self.failed_over)),
            ("spooled", g(&self.spooled)),
            ("replayed", g(&self.replayed)),
            ("truncated", g(&self.truncated)),
            ("dropped_spool_full", g(&self.dropped_spool_full)),
            ("dropped_spool_error", g(&self.dropped_spool_error)),
            ("connect_errors", g(&self.connect_errors)),
            ("send_errors", g(&self.send_errors)),
            ("lock_timeouts", g(&self.lock_timeouts)),
            ("error_lines", g(&self.error_lines)),
            ("announcements", g(&self.announcements)),
        ]
    }
}

/// Used until (or if never) the shared mapping exists: counts for this process only.
static LOCAL: Counters = Counters {
    sent: AtomicU64::new(0),
    failed_over: AtomicU64::new(0),
    spooled: AtomicU64::new(0),
    replayed: AtomicU64::new(0),
    truncated: AtomicU64::new(0),
    dropped_spool_full: AtomicU64::new(0),
    dropped_spool_error: AtomicU64::new(0),
    connect_errors: AtomicU64::new(0),
    send_errors: AtomicU64::new(0),
    lock_timeouts: AtomicU64::new(0),
    error_lines: AtomicU64::new(0),
    announcements: AtomicU64::new(0),
};

static SHARED: AtomicPtr<Counters> = AtomicPtr::new(std::ptr::null_mut());

/// The counters of this generation.
pub fn get() -> &'static Counters {
    let p = SHARED.load(Ordering::Acquire);
    if p.is_null() {
        &LOCAL
    } else {
        // SAFETY: `p` comes from `install_shared`, a mapping of `size_of::<Counters>()` bytes that
        // stays mapped for the life of the process (never unmapped while published), and
        // `Counters` is only atomics, valid when zeroed and safe to share between processes.
        unsafe { &*p }
    }
}

/// Create the shared mapping (in the parent, before fork) and publish it. Returns false if the
/// kernel refused (counters then stay per process).
pub fn install_shared() -> bool {
    if !SHARED.load(Ordering::Acquire).is_null() {
        return true;
    }
    // SAFETY: an anonymous shared mapping with no address hint has no preconditions; the result
    // is checked against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Counters>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    // Zero-filled anonymous memory is a valid `Counters` (all atomics at 0).
    SHARED.store(p.cast(), Ordering::Release);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_counters_are_summed_across_fork() {
        assert!(install_shared());
        let before = get().sent.load(Ordering::Relaxed);
        // SAFETY: the child only touches atomics and calls _exit; no locks are taken after fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            Counters::add(&get().sent, 5);
            // SAFETY: _exit is async-signal-safe and ends the forked child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        Counters::add(&get().sent, 1);
        assert_eq!(get().sent.load(Ordering::Relaxed), before + 6);
    }
}
