//! Slow readers with the default MaxSessionMessages (1000), over real unix sockets: a reader that
//! drains slower than four full-rate senders but keeps draining is throttled for, never killed
//! (PROTOCOL §9 input throttling); a reader that stops reading is still killed and holds the others
//! back for no longer than the throttle window.

mod common;

use std::time::{Duration, Instant};

use common::*;
use spread_daemon::{Config, DaemonHandle};
use spread_sys::wire::constants::RELIABLE_MESS;
use spread_sys::{ConnectOptions, Mailbox};

const SENDERS: u32 = 4;
const BODY: usize = 200;

fn opts(name: &str) -> ConnectOptions {
    ConnectOptions {
        group_membership: false,
        connect_timeout: Some(Duration::from_secs(5)),
        ..ConnectOptions::named(name)
    }
}

fn spread_name(d: &DaemonHandle) -> String {
    d.unix_path().unwrap().display().to_string()
}

/// `SENDERS` threads, each pushing `per_sender` 200-byte messages to `g` as fast as it can
/// (64 per write); the body starts with (sender, sequence number).
fn start_senders(name: &str, per_sender: u32) -> Vec<std::thread::JoinHandle<()>> {
    (0..SENDERS)
        .map(|s| {
            let name = name.to_owned();
            std::thread::spawn(move || {
                let mut mb = Mailbox::connect(&name, &opts(&format!("send{s}"))).unwrap();
                let mut body = [b'x'; BODY];
                body[..4].copy_from_slice(&s.to_be_bytes());
                for i in 0..per_sender {
                    body[4..8].copy_from_slice(&i.to_be_bytes());
                    mb.queue_multicast(RELIABLE_MESS, &["g"], 0, &body).unwrap();
                    if i % 64 == 63 {
                        mb.flush().unwrap();
                    }
                }
                mb.flush().unwrap();
            })
        })
        .collect()
}

/// Receive `total` messages, checking per-sender order; `pause` is called after every batch.
/// Returns the longest time between two batches.
fn receive_all(mb: &mut Mailbox, total: u64, mut pause: impl FnMut(u64)) -> Duration {
    let mut next = [0u32; SENDERS as usize];
    let mut got = 0u64;
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < total {
        assert!(Instant::now() < deadline, "only {got} of {total} messages");
        assert!(
            mb.poll(Some(Duration::from_secs(5))).unwrap(),
            "stalled at {got}"
        );
        let n = mb
            .receive_batch(false, |m| {
                let s = u32::from_be_bytes(m.body[..4].try_into().unwrap()) as usize;
                let i = u32::from_be_bytes(m.body[4..8].try_into().unwrap());
                assert_eq!(i, next[s], "sender {s}: out of order or lost");
                next[s] += 1;
            })
            .expect("the reader is not killed");
        got += n as u64;
        let now = Instant::now();
        longest = longest.max(now - last);
        last = now;
        pause(got);
    }
    longest
}

#[test]
fn draining_reader_behind_four_full_rate_senders_is_never_killed() {
    let (_dir, d) = daemon("slow-drain", |_| {});
    assert_eq!(Config::for_test(_dir.path()).max_session_messages, 1000);
    let name = spread_name(&d);
    let mut reader = Mailbox::connect(&name, &opts("reader")).unwrap();
    reader.join("g").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let per_sender = 50_000;
    let senders = start_senders(&name, per_sender);
    // Drains slower than the senders push: a 1 ms nap after every ~300 messages (plus the work
    // of checking each one), so the daemon's queue for it keeps hitting the high-water mark.
    let mut napped = 0;
    let t = Instant::now();
    receive_all(&mut reader, u64::from(SENDERS * per_sender), |got| {
        if got / 300 > napped {
            napped = got / 300;
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    eprintln!("all received in {:?}", t.elapsed());
    for s in senders {
        s.join().unwrap();
    }
    let st = d.stats();
    assert_eq!(st.kills_slow, 0, "nobody killed as a slow consumer");
    assert!(
        st.throttles > 0,
        "the reader was behind: input was throttled"
    );
    assert!(reader.is_usable());
}

#[test]
fn stuck_reader_is_killed_and_stalls_the_others_at_most_about_the_window() {
    let window = Duration::from_millis(200);
    let (_dir, d) = daemon("slow-stuck", |c| c.throttle_window = window);
    let name = spread_name(&d);
    let mut reader = Mailbox::connect(&name, &opts("reader")).unwrap();
    reader.join("g").unwrap();
    // Joins and never reads again.
    let mut stuck = RawClient::unix(&d, "stuck");
    stuck.join("g");
    std::thread::sleep(Duration::from_millis(50));
    let per_sender = 25_000;
    let senders = start_senders(&name, per_sender);
    let t = Instant::now();
    let longest = receive_all(&mut reader, u64::from(SENDERS * per_sender), |_| {});
    eprintln!("longest gap {longest:?}, all received in {:?}", t.elapsed());
    for s in senders {
        s.join().unwrap();
    }
    assert!(
        stuck.closed_within(Duration::from_secs(5)),
        "stuck reader's stream ends"
    );
    let st = d.stats();
    assert_eq!(st.kills_slow, 1, "only the stuck reader is killed");
    assert!(reader.is_usable());
    // The stuck reader was making progress (its socket filling up) when its queue passed the mark,
    // so it may throttle everyone for one window; never for longer. Generous slack for a shared
    // machine, far below "forever".
    assert!(
        longest < window + Duration::from_millis(800),
        "the draining reader waited {longest:?} between batches (window {window:?})"
    );
}
