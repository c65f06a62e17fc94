//! Send-path benchmark (not a test): messages/s over a unix socket to a reader thread that drains.
//!
//! (a) raw write(2) of a prebuilt frame, (b) `Mailbox::multicast` (one write per message),
//! (c) `Mailbox::queue_multicast` + `flush` every 64 messages. 200-byte bodies to one group:
//! frame = 48 (header) + 32 (group) + 200 = 280 bytes.
//!
//! Run: `cargo run -p spread-sys --release --example bench_send [messages]`

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

use spread_sys::spread_name::Endpoint;
use spread_sys::wire::constants::AGREED_MESS;
use spread_sys::wire::message::encode_multicast;
use spread_sys::{ConnectOptions, Mailbox};

const BODY: usize = 200;

/// A fake daemon: optional handshake, then read and discard until EOF. Returns bytes drained.
fn spawn_reader(listener: UnixListener, handshake: bool) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        if handshake {
            spread_sys::testing::serve_handshake(&mut s).unwrap();
        }
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n as u64,
            }
        }
    })
}

fn listener() -> (tempfile::TempDir, std::path::PathBuf, UnixListener) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("4803");
    let l = UnixListener::bind(&path).unwrap();
    (dir, path, l)
}

fn raw_write(n: usize, frame: &[u8]) -> Duration {
    let (_d, path, l) = listener();
    let reader = spawn_reader(l, false);
    let mut s = UnixStream::connect(&path).unwrap();
    let t0 = Instant::now();
    for _ in 0..n {
        s.write_all(frame).unwrap();
    }
    let took = t0.elapsed();
    drop(s);
    assert_eq!(reader.join().unwrap(), (n * frame.len()) as u64);
    took
}

fn mailbox(n: usize, batch: Option<usize>, body: &[u8]) -> Duration {
    let (_d, path, l) = listener();
    let reader = spawn_reader(l, true);
    let mut mb =
        Mailbox::connect_endpoint(&Endpoint::Unix(path), &ConnectOptions::named("bench")).unwrap();
    let t0 = Instant::now();
    match batch {
        None => {
            for i in 0..n {
                mb.multicast(AGREED_MESS, &["logs"], i as i16, body)
                    .unwrap();
            }
        }
        Some(every) => {
            for i in 0..n {
                mb.queue_multicast(AGREED_MESS, &["logs"], i as i16, body)
                    .unwrap();
                if i % every == every - 1 {
                    mb.flush().unwrap();
                }
            }
            mb.flush().unwrap();
        }
    }
    let took = t0.elapsed();
    drop(mb);
    assert_eq!(reader.join().unwrap(), (n * (48 + 32 + BODY)) as u64);
    took
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(300_000, |s| s.parse().expect("message count"));
    let body = vec![b'x'; BODY];
    let mut frame = Vec::new();
    encode_multicast(
        b"#bench#localhost",
        AGREED_MESS,
        &[b"logs"],
        0,
        &body,
        &mut frame,
    )
    .unwrap();
    const ROUNDS: usize = 5;
    println!(
        "{n} messages, {BODY}-byte bodies, {}-byte frames, best of {ROUNDS} interleaved rounds",
        frame.len()
    );
    // Interleave the methods so a change in machine load hits all of them alike.
    let (mut a, mut b, mut c) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        a = a.min(raw_write(n, &frame));
        b = b.min(mailbox(n, None, &body));
        c = c.min(mailbox(n, Some(64), &body));
    }
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let (ra, rb, rc) = (rate(a), rate(b), rate(c));
    println!("{:<42} {:>12} {:>8}", "method", "messages/s", "vs (a)");
    println!(
        "{:<42} {:>12.0} {:>7.0}%",
        "(a) raw write(2) of a prebuilt frame", ra, 100.0
    );
    println!(
        "{:<42} {:>12.0} {:>7.0}%",
        "(b) Mailbox::multicast (1 write/message)",
        rb,
        100.0 * rb / ra
    );
    println!(
        "{:<42} {:>12.0} {:>7.0}%",
        "(c) queue_multicast + flush every 64",
        rc,
        100.0 * rc / ra
    );
    println!(
        "goal (b) >= 80% of (a): {}",
        if rb >= 0.8 * ra { "met" } else { "NOT met" }
    );
}
