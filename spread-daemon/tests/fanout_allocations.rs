//! The fan-out path allocates nothing per message once warm: a counting global allocator watches
//! the core deliver 10 000 messages to 4 receivers (request framing, routing, output queues,
//! write accounting).

mod common;
use common::{core_join, core_multicast, core_session};

use std::time::Instant;

use spread_daemon::Config;
use spread_daemon::core::{Core, CoreSettings, SessionId};
use spread_sys::testing::{CountingAlloc, allocations_in};
use spread_sys::wire::constants::AGREED_MESS;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

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
    // The counter itself works: one deliberate allocation is seen.
    let (v, n) = allocations_in(|| Vec::<u8>::with_capacity(64));
    assert_eq!(
        (n, v.capacity() >= 64),
        (1, true),
        "the allocation counter counts"
    );
    // Only this thread's allocations count: the test harness's own threads are not the path's.
    let (bytes, allocs) = allocations_in(|| feed(&mut c, 600));
    let delivered = c.stats().deliveries;
    assert!(bytes > 4 * 9000 * 248, "fan-out happened: {bytes} bytes");
    assert!(delivered > 36_000);
    assert_eq!(
        allocs, 0,
        "allocations on the warm fan-out path for ~9 000 messages x 4 receivers"
    );
}
