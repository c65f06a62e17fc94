//! What each child holds right now (unacknowledged lines, the oldest one's age, connections up),
//! for the status page: one slot per child in a shared mapping the parent creates before it
//! forks, written by the child's background thread, read by whichever child serves the page.
//! A slot not refreshed for [`STALE`] (a child that died) is ignored.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Children that can report at once (more are summed into no slot: their figures are missed).
pub const SLOTS: usize = 1024;
/// A slot older than this belongs to a child that is gone.
pub const STALE: Duration = Duration::from_secs(10);

#[derive(Default)]
#[repr(C)]
struct Slot {
    pid: AtomicU32,
    /// Unix milliseconds of the last update.
    updated_ms: AtomicU64,
    unacked: AtomicU64,
    unacked_bytes: AtomicU64,
    oldest_ms: AtomicU64,
    connected: AtomicU64,
}

#[repr(C)]
struct Table {
    slots: [Slot; SLOTS],
}

static SHARED: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());

/// Create the shared table (in the parent, before fork). False if the kernel refused: the page
/// then shows only what the serving child itself holds.
pub fn install_shared() -> bool {
    // Zero-filled memory is a valid `Table` (only atomics, all at 0).
    crate::shared_memory::install(&SHARED)
}

fn table() -> Option<&'static Table> {
    let p = SHARED.load(Ordering::Acquire);
    // SAFETY: `p` comes from `install_shared`, a mapping of `size_of::<Table>()` bytes that stays
    // mapped for the life of the process, holding only atomics (valid when zeroed, shareable
    // between processes).
    (!p.is_null()).then(|| unsafe { &*p })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What one child holds now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub unacked: u64,
    pub unacked_bytes: u64,
    /// Age of the oldest unacknowledged line, in milliseconds (0: none).
    pub oldest_ms: u64,
    /// Connections to daemons that are up.
    pub connected: u64,
}

/// The slot this process claimed (its index + 1; 0: none yet), so a report is no search.
static MINE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// This child's figures (claims a slot the first time; a full table drops them).
pub fn report(pid: u32, h: Holding) {
    let Some(t) = table() else {
        return;
    };
    let now = now_ms();
    let stale = STALE.as_millis() as u64;
    let index = MINE
        .load(Ordering::Relaxed)
        .checked_sub(1)
        .filter(|&i| {
            t.slots
                .get(i)
                .is_some_and(|s| s.pid.load(Ordering::Relaxed) == pid)
        })
        .or_else(|| {
            t.slots
                .iter()
                .position(|s| s.pid.load(Ordering::Relaxed) == pid)
        })
        .or_else(|| {
            t.slots.iter().position(|s| {
                let old = s.pid.load(Ordering::Relaxed);
                let fresh = now.saturating_sub(s.updated_ms.load(Ordering::Relaxed)) < stale;
                (old == 0 || !fresh)
                    && s.pid
                        .compare_exchange(old, pid, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            })
        });
    if let Some(i) = index {
        MINE.store(i + 1, Ordering::Relaxed);
        let s = &t.slots[i];
        s.unacked.store(h.unacked, Ordering::Relaxed);
        s.unacked_bytes.store(h.unacked_bytes, Ordering::Relaxed);
        s.oldest_ms.store(h.oldest_ms, Ordering::Relaxed);
        s.connected.store(h.connected, Ordering::Relaxed);
        s.updated_ms.store(now, Ordering::Release);
    }
}

/// This child ends: its slot is free again.
pub fn release(pid: u32) {
    if let Some(t) = table()
        && let Some(s) = t
            .slots
            .iter()
            .find(|s| s.pid.load(Ordering::Relaxed) == pid)
    {
        s.updated_ms.store(0, Ordering::Relaxed);
        s.pid.store(0, Ordering::Release);
    }
}

/// The sum over live children (`oldest_ms`: the oldest of all), and how many reported.
pub fn total() -> (Holding, u64) {
    let Some(t) = table() else {
        return (Holding::default(), 0);
    };
    let now = now_ms();
    let stale = STALE.as_millis() as u64;
    let mut sum = Holding::default();
    let mut children = 0;
    for s in &t.slots {
        if s.pid.load(Ordering::Acquire) == 0
            || now.saturating_sub(s.updated_ms.load(Ordering::Acquire)) >= stale
        {
            continue;
        }
        children += 1;
        sum.unacked += s.unacked.load(Ordering::Relaxed);
        sum.unacked_bytes += s.unacked_bytes.load(Ordering::Relaxed);
        sum.oldest_ms = sum.oldest_ms.max(s.oldest_ms.load(Ordering::Relaxed));
        sum.connected += s.connected.load(Ordering::Relaxed);
    }
    (sum, children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_report_and_the_page_sums_them() {
        assert!(install_shared());
        let h = |n| Holding {
            unacked: n,
            unacked_bytes: n * 100,
            oldest_ms: n * 1000,
            connected: 1,
        };
        report(900_001, h(3));
        report(900_002, h(5));
        report(900_001, h(4));
        let (sum, children) = total();
        assert!(children >= 2);
        assert!(sum.unacked >= 9 && sum.oldest_ms >= 5000, "{sum:?}");
        release(900_002);
        release(900_001);
        let (after, _) = total();
        assert_eq!(after.unacked, sum.unacked - 9);
    }
}
