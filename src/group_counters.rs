//! Counters per configured group: lines and bytes handed over, lines spooled. One slot per
//! label, where a label is what the configuration names: a fixed group (`www`), or `#vhost` /
//! `#hostname` for the alternatives whose group is chosen per request (their hosts are many and
//! unbounded, so they are counted together under the magic name).
//!
//! Slots are given out while the configuration is read (in the parent, before any fork), so the
//! request path only adds to an atomic at an index it already holds. The labels live in ordinary
//! process memory that children inherit; the figures live in a shared mapping like
//! [`crate::counters`], and like them start from 0 with each Apache generation (the module is
//! loaded afresh).

use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Labels that can be counted apart; later ones share the last slot, labelled [`OTHER`].
pub const SLOTS: usize = 256;
/// The label of the shared overflow slot.
pub const OTHER: &str = "_other_";

#[derive(Default)]
#[repr(C)]
struct Slot {
    lines: AtomicU64,
    bytes: AtomicU64,
    spooled: AtomicU64,
}

#[repr(C)]
struct Table {
    slots: [Slot; SLOTS],
}

static SHARED: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
static LABELS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Create the shared table (in the parent, before fork). False if the kernel refused: nothing is
/// counted per group then (the totals in [`crate::counters`] still are).
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

/// The slot of `label`, given out on first sight (configuration time only: takes a lock).
pub fn slot_for(label: &str) -> u16 {
    let mut labels = LABELS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = labels.iter().position(|l| l == label) {
        return i as u16;
    }
    if labels.len() < SLOTS - 1 {
        labels.push(label.to_owned());
        return (labels.len() - 1) as u16;
    }
    (SLOTS - 1) as u16
}

/// A line of `bytes` handed over to a daemon for the label in `slot`.
pub fn sent(slot: u16, bytes: usize) {
    if let Some(s) = table().and_then(|t| t.slots.get(slot as usize)) {
        s.lines.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A line for the label in `slot` written to the spool instead.
pub fn spooled(slot: u16) {
    if let Some(s) = table().and_then(|t| t.slots.get(slot as usize)) {
        s.spooled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every label's figures, as Prometheus samples labelled `group`.
pub fn samples() -> Vec<spread_sys::metrics::Sample> {
    use spread_sys::metrics::Sample;
    let Some(t) = table() else {
        return Vec::new();
    };
    let labels = LABELS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = Vec::new();
    let named = labels.iter().map(String::as_str).chain(
        // The overflow slot only once something landed in it.
        (t.slots[SLOTS - 1].lines.load(Ordering::Relaxed) > 0
            || t.slots[SLOTS - 1].spooled.load(Ordering::Relaxed) > 0)
            .then_some(OTHER),
    );
    for (i, label) in named.enumerate() {
        let s = if label == OTHER {
            &t.slots[SLOTS - 1]
        } else {
            &t.slots[i]
        };
        let families: [(&'static str, &'static str, &AtomicU64); 3] = [
            (
                "mod_log_spread_group_lines_total",
                "Lines handed over to a daemon at once, per configured group (#vhost and \
                 #hostname: all their hosts together; spooled lines replayed later are in \
                 mod_log_spread_replayed_total).",
                &s.lines,
            ),
            (
                "mod_log_spread_group_bytes_total",
                "Bytes of the lines handed over, per configured group.",
                &s.bytes,
            ),
            (
                "mod_log_spread_group_spooled_total",
                "Lines written to the spool because no daemon took them, per configured group.",
                &s.spooled,
            ),
        ];
        for (name, help, value) in families {
            out.push(
                Sample::counter(name, help, value.load(Ordering::Relaxed))
                    .with_label("group", label),
            );
        }
    }
    out
}

/// Every label's figures for the plain status page: `group label: lines=… bytes=… spooled=…`.
pub fn lines() -> Vec<String> {
    let Some(t) = table() else {
        return Vec::new();
    };
    let labels = LABELS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let s = &t.slots[i];
            format!(
                "group {l}: lines={} bytes={} spooled={}",
                s.lines.load(Ordering::Relaxed),
                s.bytes.load(Ordering::Relaxed),
                s.spooled.load(Ordering::Relaxed)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_keeps_its_slot_and_counts_across_fork() {
        assert!(install_shared());
        let a = slot_for("test-www");
        assert_eq!(slot_for("test-www"), a);
        let b = slot_for("#vhost");
        assert_ne!(a, b);
        // SAFETY: the child only touches atomics and calls _exit; no locks are taken after fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            sent(a, 10);
            spooled(a);
            // SAFETY: _exit is async-signal-safe and ends the forked child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        sent(a, 5);
        let page = spread_sys::metrics::render(&samples());
        assert!(
            page.contains("mod_log_spread_group_lines_total{group=\"test-www\"} 2"),
            "{page}"
        );
        assert!(
            page.contains("mod_log_spread_group_bytes_total{group=\"test-www\"} 15"),
            "{page}"
        );
        assert!(
            page.contains("mod_log_spread_group_spooled_total{group=\"test-www\"} 1"),
            "{page}"
        );
        assert!(
            lines()
                .iter()
                .any(|l| l == "group test-www: lines=2 bytes=15 spooled=1")
        );
    }
}
