//! Randomized robustness: clients feed arbitrary and mutated byte streams (before and after the
//! handshake, split at random, cut off at random) while an honest pair keeps talking. The daemon
//! must stay up and the honest receiver must get every honest message, in order.
//!
//! Time budget: `SPREAD_FUZZ_SECS` (default 30); seed: `SPREAD_FUZZ_SEED` (default: time, printed).

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use spread_sys::wire::constants::*;
use spread_sys::{ConnectOptions, Mailbox, Message};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One abusive connection.
fn abuse(rng: &mut Rng, d: &spread_daemon::DaemonHandle, n: u64) {
    let stream = if rng.below(4) == 0 {
        let s = std::net::TcpStream::connect(d.tcp_addr().unwrap()).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // Run the same code path for both transports through the raw client when handshaking.
        Sock::Tcp(s)
    } else {
        let s = UnixStream::connect(d.unix_path().unwrap()).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Sock::Unix(s)
    };
    let mut payload = Vec::new();
    let mut client = None;
    let mut raw_sock = None;
    if rng.below(3) > 0 {
        // Honest handshake, then abuse framed traffic.
        let Ok(c) = RawClient::handshake(stream, &format!("z{n}"), rng.below(2) == 0) else {
            return;
        };
        for _ in 0..rng.below(6) + 1 {
            let groups = ["f1", "f2", "f3", "#ztarget#localhost", "#nobody#localhost"];
            let g = groups[rng.below(groups.len() as u64) as usize];
            let mut frame = match rng.below(4) {
                0 => {
                    let mut b = Vec::new();
                    spread_sys::wire::message::encode_join(&c.private_group, g.as_bytes(), &mut b);
                    b
                }
                1 => {
                    let mut b = Vec::new();
                    spread_sys::wire::message::encode_leave(&c.private_group, g.as_bytes(), &mut b);
                    b
                }
                _ => {
                    let len = rng.below(3000) as usize;
                    let body = rng.bytes(len);
                    let service = 1 << rng.below(6);
                    c.multicast_bytes(service, &[g, "f1"], rng.next() as i16, &body)
                }
            };
            // Mutate: flip bytes, rewrite length fields, truncate.
            match rng.below(5) {
                0 => {
                    for _ in 0..rng.below(4) + 1 {
                        let i = rng.below(frame.len() as u64) as usize;
                        frame[i] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let at = [36usize, 44][rng.below(2) as usize];
                    frame[at..at + 4].copy_from_slice(&(rng.next() as i32 % 200_000).to_le_bytes());
                }
                2 => frame.truncate(rng.below(frame.len() as u64) as usize),
                _ => {}
            }
            payload.extend_from_slice(&frame);
        }
        if rng.below(3) == 0 {
            let n = rng.below(500) as usize;
            payload.extend(rng.bytes(n));
        }
        client = Some(c);
    } else {
        // Garbage from the first byte on.
        let n = rng.below(400) as usize;
        payload = rng.bytes(n);
        raw_sock = Some(stream);
    }
    // Send in random pieces; the daemon may close on us at any point.
    let mut at = 0;
    while at < payload.len() {
        let n = (rng.below(700) as usize + 1).min(payload.len() - at);
        let r = match (&mut client, &mut raw_sock) {
            (Some(c), _) => c.send_raw(&payload[at..at + n]),
            (None, Some(Sock::Unix(s))) => s.write_all(&payload[at..at + n]),
            (None, Some(Sock::Tcp(s))) => s.write_all(&payload[at..at + n]),
            _ => unreachable!(),
        };
        if r.is_err() {
            break;
        }
        at += n;
    }
    if rng.below(4) == 0 {
        std::thread::sleep(Duration::from_millis(rng.below(20)));
    }
    // Dropped here: abrupt close (sometimes mid-frame).
}

#[test]
fn arbitrary_streams_never_hurt_the_daemon_or_honest_sessions() {
    let secs: u64 = std::env::var("SPREAD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("SPREAD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("fuzz: {secs} s, SPREAD_FUZZ_SEED={seed}");
    let (_dir, d) = daemon("fuzz", |_| {});
    let d = Arc::new(d);
    let name = d.unix_path().unwrap().display().to_string();
    let o = |n: &str| ConnectOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        ..ConnectOptions::named(n)
    };
    // The honest pair uses a group the fuzzers do not flood: under a flood a receiver that falls
    // behind is killed as a slow consumer, by design (tests/sockets.rs covers that).
    let mut rx = Mailbox::connect(
        &name,
        &ConnectOptions {
            group_membership: false,
            ..o("hrx")
        },
    )
    .unwrap();
    rx.join("honest").unwrap();
    // A fuzz target that does read, for private-group traffic.
    let mut target = Mailbox::connect(&name, &o("ztarget")).unwrap();
    target.join("f1").unwrap();
    let mut tx = Mailbox::connect(&name, &o("htx")).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let abused = Arc::new(AtomicU64::new(0));
    let fuzzers: Vec<_> = (0..2u64)
        .map(|t| {
            let (d, stop, abused) = (d.clone(), stop.clone(), abused.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_add(t.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
                let mut n = t * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    abuse(&mut rng, &d, n);
                    n += 1;
                    abused.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let end = Instant::now() + Duration::from_secs(secs);
    let mut seq: u32 = 0;
    while Instant::now() < end {
        tx.multicast(AGREED_MESS, &["honest"], 0, &seq.to_le_bytes())
            .unwrap();
        while target.poll(None).unwrap_or(false) {
            if target.receive().is_err() {
                break;
            }
        }
        let wait_until = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(
                Instant::now() < wait_until,
                "honest message {seq} not delivered within 5 s (seed {seed})"
            );
            if !rx.poll(Some(Duration::from_millis(100))).unwrap() {
                continue;
            }
            match rx.receive().expect("honest receiver stays connected") {
                Message::Data(dm) if dm.sender == "#htx#localhost" => {
                    assert_eq!(
                        dm.body,
                        seq.to_le_bytes(),
                        "honest messages in order (seed {seed})"
                    );
                    break;
                }
                _ => {} // fuzzers' traffic and membership changes
            }
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    for f in fuzzers {
        f.join().unwrap();
    }
    let st = d.stats();
    eprintln!(
        "fuzz: {} abusive connections, {seq} honest messages, stats {st:?}",
        abused.load(Ordering::Relaxed)
    );
    assert!(abused.load(Ordering::Relaxed) > 100, "the fuzzers ran");
    assert!(seq > 100);
    // Still accepting new sessions, and nothing leaked: only the honest pair remains.
    let probe = Mailbox::connect(&name, &o("probe"));
    assert!(probe.is_ok(), "{:?}", probe.err());
    drop(probe);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut st = d.stats();
    while st.sessions > 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        st = d.stats();
    }
    assert!(
        st.sessions == 2 || st.sessions == 3,
        "only the honest pair and the target remain: {st:?}"
    );
}
