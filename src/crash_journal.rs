//! Lines a child held when it died (SIGKILL, a segfault) are not lost: each request connection's
//! acknowledgement window keeps its bytes in memory shared with the parent (one slot per child
//! and daemon, created by the parent before it forks). The ring is self-describing
//! (`spread_sys::ring`); the child publishes its front and length after every change and the
//! keys (stream, group) as they appear. The parent looks at the slots when Apache runs its
//! monitor (about every 10 s) and once more when the generation ends (a stop or restart, after
//! the MPM reaped the children it stopped); a slot whose child is gone without releasing it is
//! read and its lines are spooled with their stream and number, so a live child's replayer
//! resends them to the collectors that lack them (collectors drop the copies they already have).
//! Connections without acknowledgements keep no window: their slot holds only the count each
//! group has numbered, which the parent announces for a child that is gone.
//!
//! A child that exits normally spools what its windows hold itself and frees its slots. The
//! spool replayer's connection has a slot too: lines it took back from the spool (sent before,
//! unacknowledged) are in no spool any more until acknowledged, only in its window.
//!
//! A graceful restart does not wait for the old generation's children: they finish their
//! requests while the new generation serves. The module is unloaded and loaded afresh, so its
//! statics forget the old region; the parent therefore keeps a region whose slots are still
//! claimed mapped and lists it in a small table that outlives the module ([`Retired`], kept by
//! Apache's process pool), and goes on looking at it until its last child is gone. A region
//! written by another build (an upgrade between generations) is read only if its layout is the
//! same ([`LAYOUT`]).

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use spread_sys::ring::{self, Storage};
use spread_sys::spool::Origin;
use spread_sys::stream::StreamId;

/// Keys (stream, group) a slot publishes; lines of further keys are not recoverable by the
/// parent. A request connection has one stream and a few groups; a replayer takes back lines
/// of the streams of every child whose window went to the spool (each exit, each restart).
/// Address space only: a key record is written when its key first appears.
pub const MAX_KEYS: usize = 1024;
const GROUP_WORDS: usize = 4; // 32 bytes, the longest group name and its NUL

#[repr(C)]
struct KeyRec {
    stream: AtomicU64,
    group_len: AtomicU32,
    group: [AtomicU64; GROUP_WORDS],
    /// Without a window: the lines this key has numbered (0: not published).
    numbered: AtomicU64,
}

impl KeyRec {
    fn set(&self, stream: StreamId, group: &[u8]) {
        self.stream.store(stream.bits(), Ordering::Relaxed);
        let mut words = [0u64; GROUP_WORDS];
        for (i, b) in group.iter().take(GROUP_WORDS * 8).enumerate() {
            words[i / 8] |= (*b as u64) << ((i % 8) * 8);
        }
        for (slot, w) in self.group.iter().zip(words) {
            slot.store(w, Ordering::Relaxed);
        }
        self.group_len
            .store(group.len().min(GROUP_WORDS * 8) as u32, Ordering::Relaxed);
        self.numbered.store(0, Ordering::Relaxed);
    }

    fn get(&self) -> (StreamId, Vec<u8>) {
        let len = (self.group_len.load(Ordering::Relaxed) as usize).min(GROUP_WORDS * 8);
        let bytes: Vec<u8> = self
            .group
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .take(len)
            .collect();
        (
            StreamId::from_bits(self.stream.load(Ordering::Relaxed)),
            bytes,
        )
    }
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

/// A mapping of slots: where, how many, and each slot's ring size (`base` null: none).
#[repr(C)]
#[derive(Clone, Copy)]
struct Region {
    base: *mut u8,
    slots: usize,
    ring_bytes: usize,
}

/// What a region's bytes mean: a build with another [`SlotHead`], key record or ring record
/// leaves a retired region it cannot read alone. "MLS1" and the sizes.
pub const LAYOUT: u64 = (0x4d4c_5331u64 << 32)
    | ((std::mem::size_of::<SlotHead>() as u64) << 8)
    | spread_sys::ring::RECORD_HEADER as u64;

/// Regions of earlier generations that may still hold lines, at most this many (a restart
/// every few seconds while old children linger for minutes would need more: the oldest is then
/// given up, and said so).
pub const MAX_RETIRED: usize = 8;

/// One retired region, and the layout its slots were written in (an empty entry: no region).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RetiredRegion {
    layout: u64,
    region: Region,
}

/// The table of retired regions. It lives in memory that outlives the module (the caller's:
/// Apache's process pool), so plain data only, valid when all zero. Its format is versioned by
/// the key the caller keeps it under (change that key when this or [`RetiredRegion`] changes).
#[repr(C)]
pub struct Retired {
    regions: [RetiredRegion; MAX_RETIRED],
}

/// The table this process uses (the parent's; set by [`adopt_retired`]).
static RETIRED: AtomicPtr<Retired> = AtomicPtr::new(std::ptr::null_mut());

fn retired_table() -> Option<&'static mut Retired> {
    let p = RETIRED.load(Ordering::Acquire);
    // SAFETY: set by `adopt_retired` from memory that outlives the module; only the parent's
    // main thread uses it (post_config, the monitor, the configuration pool's cleanup), one call
    // at a time, so no other reference to it is alive.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

/// Use `table` (zero-filled at first, then as earlier generations of this process left it) for
/// the retired regions. Entries written by another layout are unmapped: nobody can read them.
/// Returns how many regions of earlier generations are still looked at.
///
/// # Safety
/// `table` must point to a `Retired` that stays valid and unaliased for the rest of the
/// process (or until the next call), and every non-empty entry must describe a mapping of this
/// process made by `install` (of this or an earlier generation).
pub unsafe fn adopt_retired(table: *mut Retired) -> usize {
    RETIRED.store(table, Ordering::Release);
    let Some(t) = retired_table() else {
        return 0;
    };
    let mut kept = 0;
    for e in t.regions.iter_mut().filter(|e| e.in_use()) {
        if e.layout == LAYOUT {
            kept += 1;
        } else {
            // Per the contract, a mapping of this process of exactly this size.
            e.region.unmap();
            *e = RetiredRegion::EMPTY;
        }
    }
    kept
}

impl RetiredRegion {
    const EMPTY: RetiredRegion = RetiredRegion {
        layout: 0,
        region: Region {
            base: std::ptr::null_mut(),
            slots: 0,
            ring_bytes: 0,
        },
    };

    fn in_use(&self) -> bool {
        !self.region.base.is_null()
    }
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
    /// Slots claimed by a process (alive, or dead and not yet looked at).
    fn claimed(&self) -> usize {
        (0..self.slots)
            .filter(|&i| self.head(i).pid.load(Ordering::Acquire) != 0)
            .count()
    }

    fn unmap(self) {
        // SAFETY: `base` and the size are exactly a mapping `map_region` made in this process
        // (the current region, unpublished by the caller, or a retired one, removed from the
        // table by the caller), so nothing of this process reaches it any more.
        unsafe { libc::munmap(self.base.cast(), self.slots * stride(self.ring_bytes)) };
    }

    fn head(&self, i: usize) -> &'static SlotHead {
        // SAFETY: `i` < `slots`; each slot starts at a page-aligned offset inside the mapping,
        // which stays mapped while the region is published or listed as retired (it is unmapped
        // only after being taken out, and no head outlives the call that took it, except a
        // child's claim on the current region, which the child keeps mapped until it exits);
        // `SlotHead` is only atomics (valid when zeroed, shareable between processes).
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

/// A zero-filled shared mapping of `size` bytes, reserved rather than committed: pages cost
/// memory only once written.
fn map_region(size: usize) -> Option<*mut u8> {
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
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// Create the shared slots (in the parent, before fork): `slots` of them, each with a ring of
/// `ring_bytes`. Pages are reserved, not committed: a slot costs memory only as its window
/// fills. False if the kernel refused (children then keep their windows to themselves).
pub fn install(slots: usize, ring_bytes: usize) -> bool {
    if !BASE.load(Ordering::Acquire).is_null() {
        return true;
    }
    let Some(p) = map_region(slots * stride(ring_bytes)) else {
        return false;
    };
    SLOTS.store(slots, Ordering::Release);
    RING_BYTES.store(ring_bytes, Ordering::Release);
    BASE.store(p, Ordering::Release);
    true
}

/// Let the slots go (the configuration pool's cleanup, before the module is unloaded at a
/// restart or stop). In the parent (`keep_claimed`), a region some of whose slots are still
/// claimed (children of this generation that a graceful restart left running) is kept mapped
/// and listed as retired, so that the next generation goes on looking at it; otherwise it is
/// unmapped. Returns false when such a region had to be given up (no table, or the table full:
/// its oldest entry is given up for it).
pub fn uninstall(keep_claimed: bool) -> bool {
    let Some(r) = region() else {
        return true;
    };
    BASE.store(std::ptr::null_mut(), Ordering::Release);
    if keep_claimed && r.claimed() > 0 {
        let Some(t) = retired_table() else {
            r.unmap();
            return false;
        };
        let entry = RetiredRegion {
            layout: LAYOUT,
            region: r,
        };
        if let Some(free) = t.regions.iter_mut().find(|e| !e.in_use()) {
            *free = entry;
            return true;
        }
        // Full: the oldest goes (its children have lingered through MAX_RETIRED restarts).
        t.regions[0].region.unmap();
        t.regions.rotate_left(1);
        t.regions[MAX_RETIRED - 1] = entry;
        return false;
    }
    r.unmap();
    true
}

/// In a child: unmap the retired regions it inherited (only the parent reads them).
pub fn forget_retired() {
    let Some(t) = retired_table() else {
        return;
    };
    for e in t.regions.iter_mut().filter(|e| e.in_use()) {
        e.region.unmap();
        *e = RetiredRegion::EMPTY;
    }
    RETIRED.store(std::ptr::null_mut(), Ordering::Release);
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
    /// Publish where `link` stands (after every line it handed over): with a window, the
    /// window's ring span and new keys; without, the count of its last line's group.
    #[inline]
    pub fn publish(&mut self, link: &spread_sys::sender::Link) {
        match link.window() {
            Some(w) => self.publish_window(w),
            None => self.publish_numbered(link),
        }
    }

    /// The window's state: its ring span, and keys added since the last time.
    #[inline]
    fn publish_window(&mut self, w: &spread_sys::window::Window) {
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
        for k in self.published_keys..keys {
            if let Some((stream, group)) = w.key_of(k as u32) {
                self.head.key[k].set(stream, group);
            }
        }
        self.head.keys.store(keys as u32, Ordering::Release);
        self.published_keys = keys;
    }

    /// Without a window: how many lines the group of `link`'s last line has numbered (one
    /// store per line; a group's first line also writes its key). The parent announces these
    /// numbers for a child that died, so the collectors count what it had not written.
    #[inline]
    fn publish_numbered(&mut self, link: &spread_sys::sender::Link) {
        if let Some((k, group, n)) = link.last_numbered() {
            self.publish_number(k, link.stream(), group.as_bytes(), n);
        }
    }

    /// Group `k` of `stream` (named `group`) has numbered `n` lines.
    #[inline]
    fn publish_number(&mut self, k: usize, stream: StreamId, group: &[u8], n: u64) {
        if k >= MAX_KEYS {
            return;
        }
        if k >= self.published_keys {
            self.publish_group(k, stream, group);
        }
        self.head.key[k].numbered.store(n, Ordering::Release);
    }

    #[cold]
    fn publish_group(&mut self, k: usize, stream: StreamId, group: &[u8]) {
        // Keys between the last published and this one (groups whose first line was refused)
        // stay unnumbered: the parent skips them.
        for rec in &self.head.key[self.published_keys..k] {
            rec.numbered.store(0, Ordering::Relaxed);
        }
        self.head.key[k].set(stream, group);
        self.head.keys.store(k as u32 + 1, Ordering::Release);
        self.published_keys = k + 1;
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

/// A dead child's stream on one group, without a window: how many lines it had numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub daemon_id: u32,
    pub stream: StreamId,
    pub group: Vec<u8>,
    pub numbered: u64,
}

/// What the parent found in the slots of children that are gone.
#[derive(Debug, Default)]
pub struct Collected {
    /// Lines handed to `keep` (windows).
    pub lines: u64,
    /// Numbers to announce (connections without a window).
    pub tails: Vec<Tail>,
}

/// In the parent: hand every line held by a child that is gone to `keep` (the spool), gather
/// the numbers its connections without a window published, then free its slot.
pub fn collect_orphans(mut keep: impl FnMut(Orphan<'_>)) -> Collected {
    let mut found = Collected::default();
    if let Some(r) = region() {
        r.collect(&mut found, &mut keep);
    }
    // Earlier generations' regions: once the last of their children is gone, let them go.
    if let Some(t) = retired_table() {
        for e in t.regions.iter_mut().filter(|e| e.in_use()) {
            e.region.collect(&mut found, &mut keep);
            if e.region.claimed() == 0 {
                e.region.unmap();
                *e = RetiredRegion::EMPTY;
            }
        }
    }
    found
}

impl Region {
    /// [`collect_orphans`] for this region.
    fn collect(&self, found: &mut Collected, keep: &mut impl FnMut(Orphan<'_>)) {
        for i in 0..self.slots {
            let head = self.head(i);
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
            let table: Vec<(StreamId, Vec<u8>)> =
                head.key[..keys].iter().map(KeyRec::get).collect();
            let daemon_id = head.daemon_id.load(Ordering::Relaxed);
            for (rec, (stream, group)) in head.key[..keys].iter().zip(&table) {
                let numbered = rec.numbered.load(Ordering::Acquire);
                if numbered > 0 {
                    found.tails.push(Tail {
                        daemon_id,
                        stream: *stream,
                        group: group.clone(),
                        numbered,
                    });
                }
            }
            let span = head.span.load(Ordering::Acquire);
            let cap = (head.cap.load(Ordering::Acquire) as usize).min(self.ring_bytes);
            let (front, len) = ((span >> 32) as usize, (span & 0xffff_ffff) as usize);
            // SAFETY: the slot's owner is gone: nobody writes these bytes any more; the mapping
            // lives as long as this process.
            let buf: &[u8] =
                unsafe { std::slice::from_raw_parts(self.ring_ptr(i), self.ring_bytes) };
            ring::records(buf, front, len, cap, |key, n, line| {
                if let Some((stream, group)) = table.get(key as usize) {
                    found.lines += 1;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spread_sys::window::{Window, WindowConfig};

    /// The region is one per process and the parent's look frees every dead child's slot: the
    /// tests take turns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Install the region, run `child` in a forked child that then dies by SIGKILL (a crash),
    /// and wait for it.
    fn in_a_killed_child(child: impl FnOnce()) {
        assert!(install(4, 1 << 20));
        // SAFETY: the child only writes its claimed slot and then dies by SIGKILL.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            child();
            // SAFETY: ends this forked child at once, like a crash.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }

    /// In a (forked) child: claim a slot for daemon `daemon_id` and hold `count` lines
    /// ("line 1\n", …) of `stream` on group www in its window, published.
    fn hold_lines(daemon_id: u32, stream: u64, count: u64) {
        let (mut claim, storage) = claim(std::process::id(), daemon_id).expect("a free slot");
        let mut w = Window::with_storage(WindowConfig::default(), storage);
        let k = w.key(StreamId::from_bits(stream), b"www").unwrap();
        for n in 1..=count {
            let line = format!("line {n}\n");
            w.push(k, n, [line.as_bytes()], line.len());
        }
        claim.publish_window(&w);
    }

    #[test]
    fn the_parent_finds_what_a_killed_child_held() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        in_a_killed_child(|| {
            hold_lines(3, 0xabc, 5);
        });
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
        assert_eq!((n.lines, n.tails.len()), (5, 0));
        assert_eq!(got[0], (3, b"www".to_vec(), 0xabc, 1, b"line 1\n".to_vec()));
        assert_eq!(got[4].4, b"line 5\n".to_vec());
        // Freed: nothing the second time.
        assert_eq!(collect_orphans(|_| {}).lines, 0);
    }

    /// A graceful restart leaves a child of the old generation running: its region is retired,
    /// not unmapped, looked at by the next generation's parent, and let go once the child is.
    #[test]
    fn a_region_left_by_a_restart_is_looked_at_until_its_last_child_is_gone() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let table = Box::into_raw(Box::new(Retired {
            regions: [RetiredRegion::EMPTY; MAX_RETIRED],
        }));
        let in_use = move || {
            // SAFETY: the leaked table; no reference to it is held across calls.
            unsafe { (*table).regions.iter().filter(|e| e.in_use()).count() }
        };
        // SAFETY: a table that lives for the rest of the test process, all entries empty.
        assert_eq!(unsafe { adopt_retired(table) }, 0);
        assert!(install(4, 1 << 20));
        let mut fds = [0; 2];
        // SAFETY: a pipe into a valid two-int array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only writes its claimed slot and the pipe, then waits to be killed.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            hold_lines(1, 0x01d, 3);
            // SAFETY: writes one byte from a valid buffer, then sleeps until killed.
            unsafe {
                libc::write(fds[1], b"r".as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut ready = [0u8; 1];
        // SAFETY: reads one byte into a valid buffer: the child has published its window.
        assert_eq!(
            unsafe { libc::read(fds[0], ready.as_mut_ptr().cast(), 1) },
            1
        );
        // The restart: the generation's region goes, but the running child keeps it mapped.
        assert!(uninstall(true));
        assert!(region().is_none());
        assert_eq!(in_use(), 1);
        assert_eq!(collect_orphans(|_| panic!("its child is alive")).lines, 0);
        assert_eq!(in_use(), 1, "kept while its child runs");
        // SAFETY: kill(2) and waitpid on our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        let mut got = Vec::new();
        let found = collect_orphans(|o| got.push((o.daemon_id, o.origin.number, o.line.to_vec())));
        assert_eq!(found.lines, 3);
        assert_eq!(got[2], (1, 3, b"line 3\n".to_vec()));
        assert_eq!(in_use(), 0, "let go with its last child");
        // A region of another layout (another build of the module) is let go at once.
        let p = map_region(4 * stride(1 << 20)).expect("a mapping");
        // SAFETY: the leaked table; the entry describes the mapping just made.
        unsafe {
            (*table).regions[0] = RetiredRegion {
                layout: LAYOUT ^ 1,
                region: Region {
                    base: p,
                    slots: 4,
                    ring_bytes: 1 << 20,
                },
            };
            assert_eq!(adopt_retired(table), 0);
        }
        assert_eq!(in_use(), 0);
        forget_retired();
        // SAFETY: closing the pipe's two descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    /// Restarts while the old children all linger: MAX_RETIRED regions are kept, and the next
    /// one costs the oldest its place (`uninstall` says so, for the error log).
    #[test]
    fn more_generations_than_the_table_holds_give_up_the_oldest() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let table = Box::into_raw(Box::new(Retired {
            regions: [RetiredRegion::EMPTY; MAX_RETIRED],
        }));
        // SAFETY: a table that lives for the rest of the test process, all entries empty.
        assert_eq!(unsafe { adopt_retired(table) }, 0);
        let mut bases = Vec::new();
        for generation in 0..=MAX_RETIRED {
            assert!(install(2, 4096));
            bases.push(region().expect("installed").base);
            // A live process (this one) holds a slot, as a lingering child would.
            let _held = claim(std::process::id(), 1).expect("a free slot");
            assert_eq!(
                uninstall(true),
                generation < MAX_RETIRED,
                "generation {generation}"
            );
        }
        // SAFETY: the leaked table; no reference to it is held across calls.
        let kept: Vec<*mut u8> =
            unsafe { (*table).regions.iter().map(|e| e.region.base) }.collect();
        assert_eq!(kept, bases[1..], "the oldest given up, the rest in order");
        // Its holder alive, nothing is collected and nothing let go.
        assert_eq!(collect_orphans(|_| panic!("alive")).lines, 0);
        forget_retired();
    }

    #[test]
    fn the_parent_finds_the_numbers_of_a_killed_child_without_a_window() {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        in_a_killed_child(|| {
            let (mut claim, _) = claim(std::process::id(), 2).expect("a free slot");
            let s = StreamId::from_bits(0xdef);
            for n in 1..=7u64 {
                claim.publish_number(0, s, b"www", n);
            }
            // Group 1's first line was refused: group 2 comes next.
            claim.publish_number(2, s, b"err", 3);
        });
        let found = collect_orphans(|_| panic!("no window, no lines"));
        let tail = |group: &[u8], numbered| Tail {
            daemon_id: 2,
            stream: StreamId::from_bits(0xdef),
            group: group.to_vec(),
            numbered,
        };
        assert_eq!(found.tails, vec![tail(b"www", 7), tail(b"err", 3)]);
        assert!(collect_orphans(|_| {}).tails.is_empty());
    }
}
