//! Lines a child held when it died (SIGKILL, a segfault) are not lost: each request connection's
//! acknowledgement window keeps its bytes in memory shared with the parent (one slot per child
//! and daemon, created by the parent before it forks). The ring is self-describing
//! (`spread_sys::ring`); the child publishes its front and length after every change and the
//! keys (stream, group) as they appear. The parent's monitor looks at the slots about once a
//! second; a slot whose child is gone without releasing it is read and its lines are spooled with
//! their stream and number, so a live child's replayer resends them to the collectors that lack
//! them (collectors drop the copies they already have).
//!
//! A child that exits normally spools what its windows hold itself and frees its slots. Lines
//! held by the spool replayer's own connection, and lines of a child of an earlier generation
//! (the module is loaded afresh at a restart), are outside this net.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use spread_sys::ring::{self, Storage};
use spread_sys::spool::Origin;
use spread_sys::stream::StreamId;

/// Keys (stream, group) a slot publishes; lines of further keys are not recoverable by the
/// parent (a child has one stream per daemon and a few groups).
pub const MAX_KEYS: usize = 64;
const GROUP_WORDS: usize = 4; // 32 bytes, the longest group name and its NUL

#[repr(C)]
struct KeyRec {
    stream: AtomicU64,
    group_len: AtomicU32,
    group: [AtomicU64; GROUP_WORDS],
}

/// A slot's published state (the ring's bytes follow it in the mapping).
#[repr(C)]
struct SlotHead {
    /// The owning child's pid (0: free).
    pid: AtomicU32,
    daemon_id: AtomicU32,
    /// The owner's start time (clock ticks since boot, /proc), against pid reuse.
    start: AtomicU64,
    /// Ring front << 32 | bytes held, stored at once.
    span: AtomicU64,
    cap: AtomicU64,
    keys: AtomicU32,
    key: [KeyRec; MAX_KEYS],
}

struct Region {
    base: *mut u8,
    slots: usize,
    ring_bytes: usize,
}

static BASE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static SLOTS: AtomicUsize = AtomicUsize::new(0);
static RING_BYTES: AtomicUsize = AtomicUsize::new(0);

fn stride(ring_bytes: usize) -> usize {
    (std::mem::size_of::<SlotHead>() + ring_bytes).next_multiple_of(4096)
}

fn region() -> Option<Region> {
    let base = BASE.load(Ordering::Acquire);
    (!base.is_null()).then(|| Region {
        base,
        slots: SLOTS.load(Ordering::Acquire),
        ring_bytes: RING_BYTES.load(Ordering::Acquire),
    })
}

impl Region {
    fn head(&self, i: usize) -> &'static SlotHead {
        // SAFETY: `i` < `slots`; each slot starts at a page-aligned offset inside the mapping,
        // which stays mapped for the life of the process; `SlotHead` is only atomics (valid when
        // zeroed, shareable between processes).
        unsafe { &*(self.base.add(i * stride(self.ring_bytes)) as *const SlotHead) }
    }

    fn ring_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: inside slot `i`'s stride, right after its head.
        unsafe {
            self.base
                .add(i * stride(self.ring_bytes) + std::mem::size_of::<SlotHead>())
        }
    }
}

/// Create the shared slots (in the parent, before fork): `slots` of them, each with a ring of
/// `ring_bytes`. Pages are reserved, not committed: a slot costs memory only as its window
/// fills. False if the kernel refused (children then keep their windows to themselves).
pub fn install(slots: usize, ring_bytes: usize) -> bool {
    if !BASE.load(Ordering::Acquire).is_null() {
        return true;
    }
    let size = slots * stride(ring_bytes);
    // SAFETY: an anonymous shared mapping with no address hint has no preconditions; the result
    // is checked against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    SLOTS.store(slots, Ordering::Release);
    RING_BYTES.store(ring_bytes, Ordering::Release);
    BASE.store(p.cast(), Ordering::Release);
    true
}

/// Unmap the slots (the configuration pool's cleanup in the parent, before the module is
/// unloaded at a restart; children keep their own mapping until they exit).
pub fn uninstall() {
    let base = BASE.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if base.is_null() {
        return;
    }
    let size = SLOTS.load(Ordering::Acquire) * stride(RING_BYTES.load(Ordering::Acquire));
    // SAFETY: `base` and `size` are exactly the mapping `install` made; it was unpublished
    // above, so nothing of this process reaches it any more.
    unsafe { libc::munmap(base.cast(), size) };
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name's closing parenthesis (which may hold spaces).
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// A child's claim on one slot: its window's storage and where it publishes.
pub struct Claim {
    head: &'static SlotHead,
    published_keys: usize,
    published_cap: usize,
}

/// Claim a free slot for this child's connection to `daemon_id` and hand out its ring storage.
pub fn claim(pid: u32, daemon_id: u32) -> Option<(Claim, Storage)> {
    let r = region()?;
    let start = start_time(pid).unwrap_or(0);
    for i in 0..r.slots {
        let head = r.head(i);
        if head
            .pid
            .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        head.daemon_id.store(daemon_id, Ordering::Relaxed);
        head.start.store(start, Ordering::Relaxed);
        head.span.store(0, Ordering::Relaxed);
        head.cap.store(0, Ordering::Relaxed);
        head.keys.store(0, Ordering::Release);
        // SAFETY: this process won slot `i` (the CAS above): until it frees the slot, no other
        // live process writes these bytes, and the parent reads them only once this process is
        // gone. The mapping lives as long as the process.
        let buf: &'static mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(r.ring_ptr(i), r.ring_bytes) };
        return Some((
            Claim {
                head,
                published_keys: 0,
                published_cap: 0,
            },
            Storage::Shared(buf),
        ));
    }
    None
}

impl Claim {
    /// Publish the window's state: its ring span, and keys added since the last time.
    #[inline]
    pub fn publish(&mut self, w: &spread_sys::window::Window) {
        let keys = w.key_count();
        if keys > self.published_keys && self.published_keys < MAX_KEYS {
            self.publish_keys(w, keys.min(MAX_KEYS));
        }
        let (front, len, cap) = w.ring_span();
        if cap != self.published_cap {
            self.head.cap.store(cap as u64, Ordering::Release);
            self.published_cap = cap;
        }
        self.head
            .span
            .store(((front as u64) << 32) | len as u64, Ordering::Release);
    }

    #[cold]
    fn publish_keys(&mut self, w: &spread_sys::window::Window, keys: usize) {
        {
            for k in self.published_keys..keys {
                if let Some((stream, group)) = w.key_of(k as u32) {
                    let rec = &self.head.key[k];
                    rec.stream.store(stream.bits(), Ordering::Relaxed);
                    let mut words = [0u64; GROUP_WORDS];
                    for (i, b) in group.iter().take(GROUP_WORDS * 8).enumerate() {
                        words[i / 8] |= (*b as u64) << ((i % 8) * 8);
                    }
                    for (slot, w) in rec.group.iter().zip(words) {
                        slot.store(w, Ordering::Relaxed);
                    }
                    rec.group_len
                        .store(group.len().min(GROUP_WORDS * 8) as u32, Ordering::Relaxed);
                }
            }
            self.head.keys.store(keys as u32, Ordering::Release);
            self.published_keys = keys;
        }
    }

    /// The child spooled what its window held (a normal exit): nothing is left for the parent.
    pub fn release(self) {
        self.head.span.store(0, Ordering::Release);
        self.head.pid.store(0, Ordering::Release);
    }
}

/// One line found in a dead child's slot.
pub struct Orphan<'a> {
    pub daemon_id: u32,
    pub group: &'a [u8],
    pub origin: Origin,
    pub line: &'a [u8],
}

/// In the parent: hand every line held by a child that is gone to `keep` (the spool), then free
/// its slot. Returns how many lines were found.
pub fn collect_orphans(mut keep: impl FnMut(Orphan<'_>)) -> u64 {
    let Some(r) = region() else {
        return 0;
    };
    let mut found = 0;
    for i in 0..r.slots {
        let head = r.head(i);
        let pid = head.pid.load(Ordering::Acquire);
        if pid == 0 {
            continue;
        }
        let start = head.start.load(Ordering::Relaxed);
        let alive = start_time(pid).is_some_and(|s| start == 0 || s == start);
        if alive {
            continue;
        }
        let keys = (head.keys.load(Ordering::Acquire) as usize).min(MAX_KEYS);
        let table: Vec<(StreamId, Vec<u8>)> = head.key[..keys]
            .iter()
            .map(|k| {
                let len = (k.group_len.load(Ordering::Relaxed) as usize).min(GROUP_WORDS * 8);
                let bytes: Vec<u8> = k
                    .group
                    .iter()
                    .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
                    .take(len)
                    .collect();
                (StreamId::from_bits(k.stream.load(Ordering::Relaxed)), bytes)
            })
            .collect();
        let span = head.span.load(Ordering::Acquire);
        let cap = (head.cap.load(Ordering::Acquire) as usize).min(r.ring_bytes);
        let (front, len) = ((span >> 32) as usize, (span & 0xffff_ffff) as usize);
        // SAFETY: the slot's owner is gone: nobody writes these bytes any more; the mapping
        // lives as long as this process.
        let buf: &[u8] = unsafe { std::slice::from_raw_parts(r.ring_ptr(i), r.ring_bytes) };
        let daemon_id = head.daemon_id.load(Ordering::Relaxed);
        ring::records(buf, front, len, cap, |key, n, line| {
            if let Some((stream, group)) = table.get(key as usize) {
                found += 1;
                keep(Orphan {
                    daemon_id,
                    group,
                    origin: Origin {
                        stream: *stream,
                        number: n,
                    },
                    line,
                });
            }
        });
        head.span.store(0, Ordering::Release);
        head.pid.store(0, Ordering::Release);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use spread_sys::window::{Window, WindowConfig};

    #[test]
    fn the_parent_finds_what_a_killed_child_held() {
        assert!(install(4, 1 << 20));
        // SAFETY: the child only writes its claimed slot and then dies by SIGKILL.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let me = std::process::id();
            let (mut claim, storage) = claim(me, 3).expect("a free slot");
            let mut w = Window::with_storage(WindowConfig::default(), storage);
            let k = w.key(StreamId::from_bits(0xabc), b"www").unwrap();
            for n in 1..=5u64 {
                let line = format!("line {n}\n");
                w.push(k, n, [line.as_bytes()], line.len());
            }
            claim.publish(&w);
            // SAFETY: ends this forked child at once, like a crash.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut got = Vec::new();
        let n = collect_orphans(|o| {
            got.push((
                o.daemon_id,
                o.group.to_vec(),
                o.origin.stream.bits(),
                o.origin.number,
                o.line.to_vec(),
            ))
        });
        assert_eq!(n, 5);
        assert_eq!(got[0], (3, b"www".to_vec(), 0xabc, 1, b"line 1\n".to_vec()));
        assert_eq!(got[4].4, b"line 5\n".to_vec());
        // Freed: nothing the second time.
        assert_eq!(collect_orphans(|_| {}), 0);
    }
}
