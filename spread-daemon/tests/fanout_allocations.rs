//! The fan-out path allocates nothing per message once warm: a counting global allocator watches
//! the core deliver 10 000 messages to 4 receivers (request framing, routing, output queues,
//! write accounting).

mod common;
use common::{core_join, core_multicast, core_session};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use spread_daemon::Config;
use spread_daemon::core::{Core, CoreSettings, SessionId};
use spread_sys::wire::constants::AGREED_MESS;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn connect(c: &mut Core, name: &str, now: Instant) -> SessionId {
    core_session(c, name, false, 3, now)
}

fn drain(c: &mut Core, dirty: &mut Vec<SessionId>) -> usize {
    c.take_dirty(dirty);
    let mut bytes = 0;
    for &id in dirty.iter() {
        let n = c.pending_output(id).len();
        bytes += n;
        c.wrote(id, n, false);
    }
    dirty.clear();
    while c.poll_action().is_some() {}
    bytes
}

#[test]
fn steady_state_fan_out_allocates_nothing_per_message() {
    let now = Instant::now();
    let mut c = Core::new(CoreSettings::from_config(&Config::default()), 1, 1);
    let tx = connect(&mut c, "tx", now);
    let rxs: Vec<SessionId> = (0..4)
        .map(|i| connect(&mut c, &format!("rx{i}"), now))
        .collect();
    for &rx in &rxs {
        core_join(&mut c, rx, b"logs", now);
    }
    let msg = core_multicast(&c, tx, AGREED_MESS, &[b"logs"], &[b'x'; 200]);
    // A sender's read: 16 messages per chunk, the last one split across chunks.
    let chunk: Vec<u8> = msg
        .iter()
        .copied()
        .cycle()
        .take(msg.len() * 16 + 100)
        .collect();
    let mut dirty = Vec::with_capacity(16);
    let mut feed = |c: &mut Core, rounds: usize| {
        let mut out = 0;
        for r in 0..rounds {
            if r % 2 == 0 {
                c.received(tx, &chunk, now);
            } else {
                // The rest of the split message, then 15 more.
                c.received(tx, &msg[100..], now);
                c.received(tx, &chunk[..msg.len() * 15], now);
            }
            out += drain(c, &mut dirty);
        }
        out
    };
    feed(&mut c, 50); // warm-up: buffers reach their working size
    let before = ALLOCS.load(Ordering::Relaxed);
    let bytes = feed(&mut c, 600);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let delivered = c.stats().deliveries;
    assert!(bytes > 4 * 9000 * 248, "fan-out happened: {bytes} bytes");
    assert!(delivered > 36_000);
    assert_eq!(
        allocs, 0,
        "allocations on the warm fan-out path for ~9 000 messages x 4 receivers"
    );
}
