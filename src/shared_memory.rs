//! Anonymous shared mappings that the parent creates before it forks, so that every child of a
//! generation reads and writes the same memory: the counters and the children's gauges.

use std::sync::atomic::{AtomicPtr, Ordering};

/// Map `size_of::<T>()` zero-filled bytes shared with future children and publish them in
/// `slot` (once; later calls keep the first mapping). False if the kernel refused.
///
/// `T` must be valid when all zero and safe to share between processes: only atomics (the
/// counters and the gauge table are).
pub fn install<T>(slot: &AtomicPtr<T>) -> bool {
    if !slot.load(Ordering::Acquire).is_null() {
        return true;
    }
    // SAFETY: an anonymous shared mapping with no address hint has no preconditions; the result
    // is checked against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<T>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    slot.store(p.cast(), Ordering::Release);
    true
}
