//! However a sender's bytes are cut into reads, the core delivers the same bytes: a cut inside a
//! header, inside the group names, inside a body or exactly between frames must all give what one
//! read of the whole stream gives (a frame waits in the session until its last byte came). A bad
//! header ends the sender at the same frame wherever the cut falls.

mod common;
use common::{core_join, core_multicast, core_session};

use std::time::Instant;

use spread_daemon::Config;
use spread_daemon::core::{Core, CoreSettings, SessionId};
use spread_sys::wire::constants::AGREED_MESS;

/// A core with a sender and a receiver joined to `logs`.
fn setup(now: Instant) -> (Core, SessionId, SessionId) {
    let mut c = Core::new(CoreSettings::from_config(&Config::default()), 1, 1);
    let tx = core_session(&mut c, "tx", false, 3, now);
    let rx = core_session(&mut c, "rx", false, 4, now);
    core_join(&mut c, rx, b"logs", now);
    drain(&mut c, rx);
    (c, tx, rx)
}

/// What the receiver has been sent since the last call.
fn drain(c: &mut Core, rx: SessionId) -> Vec<u8> {
    let mut dirty = Vec::new();
    c.take_dirty(&mut dirty);
    let out = c.pending_output(rx).to_vec();
    c.wrote(rx, out.len(), false);
    out
}

/// The sender's stream: messages of many sizes (an empty body, a few bytes, a header's length,
/// one longer than most reads) to one or two groups.
fn stream(c: &Core, tx: SessionId) -> Vec<u8> {
    let mut s = Vec::new();
    for (i, len) in [0usize, 1, 47, 48, 49, 200, 3000, 5, 900, 64]
        .iter()
        .enumerate()
    {
        let body: Vec<u8> = (0..*len).map(|b| (b + i) as u8).collect();
        let groups: &[&[u8]] = if i % 3 == 0 {
            &[b"logs", b"other"]
        } else {
            &[b"logs"]
        };
        s.extend(core_multicast(c, tx, AGREED_MESS, groups, &body));
    }
    s
}

/// The receiver's bytes when the stream arrives in reads of the given lengths (the last read
/// takes the rest).
fn delivered(cuts: &[usize], bad_tail: bool) -> (Vec<u8>, bool) {
    let now = Instant::now();
    let (mut c, tx, rx) = setup(now);
    let mut s = stream(&c, tx);
    if bad_tail {
        // A header whose body length is negative, then a frame that must never be delivered.
        let mut bad = core_multicast(&c, tx, AGREED_MESS, &[b"logs"], b"never");
        bad[44..48].copy_from_slice(&(-5i32).to_le_bytes());
        s.extend(&bad);
        s.extend(core_multicast(&c, tx, AGREED_MESS, &[b"logs"], b"after"));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    for &n in cuts {
        let end = (pos + n).min(s.len());
        c.received(tx, &s[pos..end], now);
        out.extend(drain(&mut c, rx));
        pos = end;
    }
    c.received(tx, &s[pos..], now);
    out.extend(drain(&mut c, rx));
    (out, c.private_group(tx).is_some())
}

#[test]
fn every_cut_of_the_stream_delivers_the_same_bytes() {
    let (whole, alive) = delivered(&[], false);
    assert!(alive);
    assert!(
        whole.len() > 5000,
        "the stream was delivered: {}",
        whole.len()
    );
    // Reads of one fixed length, from one byte (every header cut everywhere) up.
    for n in [1, 2, 7, 47, 48, 49, 80, 81, 100, 333, 1000, 4096] {
        let cuts = vec![n; 20_000 / n + 1];
        assert_eq!(
            delivered(&cuts, false),
            (whole.clone(), true),
            "reads of {n} bytes"
        );
    }
    // Two reads, cut at every position.
    let len = {
        let now = Instant::now();
        let (c, tx, _) = setup(now);
        stream(&c, tx).len()
    };
    for cut in 0..=len {
        assert_eq!(delivered(&[cut], false).0, whole, "cut at {cut}");
    }
}

#[test]
fn a_bad_header_ends_the_sender_at_the_same_frame_wherever_the_cut_falls() {
    let (whole, alive) = delivered(&[], true);
    assert!(!alive, "the sender of a bad header is gone");
    let (good, _) = delivered(&[], false);
    assert_eq!(whole, good, "nothing from the bad frame on was delivered");
    for n in [1, 3, 48, 49, 100, 777] {
        let cuts = vec![n; 20_000 / n + 1];
        assert_eq!(
            delivered(&cuts, true),
            (whole.clone(), false),
            "reads of {n} bytes"
        );
    }
}
