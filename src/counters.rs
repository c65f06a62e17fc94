//! Counters summed across all children of one Apache generation: one anonymous shared mapping
//! created by the parent before it forks, holding plain atomics (no lock, no syscall to count).

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Declares every counter once: the shared struct, its per-process fallback, and the named
/// snapshot the status page and notices print, and its Prometheus samples.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Every counter the admin can read (status handler, periodic notices).
        #[derive(Default)]
        #[repr(C)]
        pub struct Counters {
            $($(#[doc = $doc])+ pub $name: AtomicU64,)+
        }

        impl Counters {
            /// How many counters there are.
            pub const COUNT: usize = [$(stringify!($name)),+].len();

            /// Every counter by name, in declaration order.
            pub fn snapshot(&self) -> [(&'static str, u64); Self::COUNT] {
                [$((stringify!($name), Counters::value(&self.$name))),+]
            }

            /// Every counter as a Prometheus sample (`mod_log_spread_<name>_total`, its doc as
            /// the help text), in declaration order.
            pub fn samples(&self) -> Vec<spread_sys::metrics::Sample> {
                vec![$(spread_sys::metrics::Sample::counter(
                    concat!("mod_log_spread_", stringify!($name), "_total"),
                    concat!($($doc),+).trim(),
                    Counters::value(&self.$name),
                )),+]
            }
        }

        /// Used until (or if never) the shared mapping exists: counts for this process only.
        static LOCAL: Counters = Counters {
            $($name: AtomicU64::new(0),)+
        };
    };
}

counters! {
    /// Lines handed over to a daemon (first choice or failover).
    sent,
    /// Of `sent`, lines handed over by a failover alternative.
    failed_over,
    /// Lines written to the spool because no alternative could take them.
    spooled,
    /// Spooled lines handed over later by a replayer.
    replayed,
    /// Lines cut to the size limit (with the marker).
    truncated,
    /// Lines lost because the spool was full (also said in the error log).
    dropped_spool_full,
    /// Lines lost because the spool could not be written at all (also said in the error log).
    dropped_spool_error,
    /// Failed connects (each starts a retry back-off).
    connect_errors,
    /// Failed sends on an open connection.
    send_errors,
    /// Sends given up because the connection's lock was not free within SpreadSendTimeout.
    lock_timeouts,
    /// Error-log lines shipped.
    error_lines,
    /// Control messages announcing the streams' numbers (after a reconnect, while idle, at exit).
    announcements,
    /// Lines held in an acknowledgement window after their hand-over.
    held,
    /// Held lines a collector acknowledged (released from the window).
    acked,
    /// Copies of unacknowledged lines resent to a collector that lacks them.
    resent,
    /// Unacknowledged lines moved from a window to the spool (a child exiting), kept with their
    /// stream and number.
    spooled_unacked,
    /// Spooled unacknowledged lines taken back into a window by a replayer, to be resent.
    reheld,
    /// Lines that found their window full and went to the spool instead.
    window_full,
    /// Unacknowledged lines the parent found in the window of a child that died (SIGKILL, a
    /// crash) and spooled, to be resent by a live child.
    orphans_spooled,
    /// Writes that carried a batch of queued lines to a daemon (`SpreadFlushInterval`; `sent`
    /// over this is the lines per write).
    batch_writes,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn value(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

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
    // Zero-filled memory is a valid `Counters` (only atomics, all at 0).
    crate::shared_memory::install(&SHARED)
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
