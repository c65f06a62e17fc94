//! Property test on the sans-IO core: whatever bytes (in whatever pieces) a session sends, before or
//! after its handshake, the core neither panics nor disturbs an honest pair, and its bookkeeping
//! stays consistent (closed sessions leave their groups, names become free again).

mod common;
use common::{core_join, core_session};

use std::time::Instant;

use proptest::prelude::*;
use spread_daemon::Config;
use spread_daemon::core::{Action, Core, CoreSettings, Peer, SessionId};
use spread_sys::wire::constants::*;
use spread_sys::wire::message::{encode_join, encode_multicast};

fn connect(c: &mut Core, name: &str, now: Instant) -> SessionId {
    core_session(c, name, true, 3, now)
}

fn flush(c: &mut Core) -> Vec<Action> {
    let mut dirty = Vec::new();
    c.take_dirty(&mut dirty);
    for id in dirty {
        let n = c.pending_output(id).len();
        c.wrote(id, n, false);
    }
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// A valid request of `sender`, to be mutated.
fn request(kind: u8, sender: &[u8], body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    match kind % 3 {
        0 => encode_join(sender, b"g", &mut b),
        1 => encode_multicast(
            sender,
            AGREED_MESS,
            &[b"g", b"#rx#localhost"],
            5,
            body,
            &mut b,
        )
        .unwrap(),
        _ => encode_multicast(
            sender,
            SAFE_MESS | SELF_DISCARD,
            &[b"other"],
            -1,
            body,
            &mut b,
        )
        .unwrap(),
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_hurts_others(
        handshake in any::<bool>(),
        prefix in proptest::collection::vec(any::<u8>(), 0..64),
        kinds in proptest::collection::vec(any::<u8>(), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        cuts in proptest::collection::vec(1usize..200, 0..8),
        close in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut c = Core::new(CoreSettings::from_config(&Config::default()), 1, 9);
        let rx = connect(&mut c, "rx", now);
        core_join(&mut c, rx, b"g", now);
        let tx = connect(&mut c, "tx", now);
        flush(&mut c);

        // The abuser: raw bytes, or a handshake then mutated requests.
        let mut stream = prefix.clone();
        let ab = if handshake {
            let id = connect(&mut c, "ab", now);
            let pg = c.private_group(id).map(<[u8]>::to_vec).unwrap_or_default();
            for k in &kinds {
                stream.extend(request(*k, &pg, &body));
            }
            id
        } else {
            c.accept(Peer::Unix, 4, now)
        };
        for (at, bits) in &flips {
            if !stream.is_empty() {
                let i = *at as usize % stream.len();
                stream[i] ^= bits;
            }
        }
        let mut rest = &stream[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = if cuts.is_empty() { rest.len() } else { *cut.next().unwrap() }.min(rest.len());
            c.received(ab, &rest[..n], now);
            rest = &rest[n..];
        }
        if close {
            c.closed(ab);
        }
        c.tick(now + std::time::Duration::from_secs(2));
        flush(&mut c);

        // The honest pair is untouched and still talks.
        prop_assert!(c.is_ready(rx) && c.is_ready(tx));
        let mut m = Vec::new();
        encode_multicast(c.private_group(tx).unwrap(), AGREED_MESS, &[b"g"], 1, b"honest", &mut m).unwrap();
        c.received(tx, &m, now);
        let out = c.pending_output(rx).to_vec();
        prop_assert!(out.len() >= m.len() && out.ends_with(b"honest"), "honest message delivered last");
        flush(&mut c);
        // Bookkeeping: a closed abuser left every group and its name is free.
        if close || !c.is_ready(ab) || c.private_group(ab) != Some(&b"#ab#localhost"[..]) {
            prop_assert!(c.group_members(b"g").iter().all(|n| n != b"#ab#localhost"));
            let again = connect(&mut c, "ab", now);
            prop_assert!(c.is_ready(again), "name reusable");
            flush(&mut c);
        }
        let st = c.stats();
        prop_assert!(st.sessions >= 2 && st.queued_messages == 0);
    }
}
