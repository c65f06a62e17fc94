//! Throughput and latency of the daemon over unix sockets, beside the raw write(2) rate measured in
//! the same run. Run: `cargo run --release -p spread-daemon --example bench_daemon [N]`.
//!
//! * raw: one write(2) per 248-byte message (48-byte header + 200-byte body) into a unix socket, a
//!   thread draining it with large reads: the physical limit of a one-write-per-message sender.
//! * daemon 1->1 / 1->4: a `Mailbox` sender (one write per message, or batching 64 per write) to 1
//!   or 4 `Mailbox` receivers (batch receive); time until every receiver has every message.
//! * latency: 10k msg/s paced sender, 1 receiver, p50/p99 of send->receive.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use spread_daemon::{Config, Daemon, DaemonHandle};
use spread_sys::wire::constants::AGREED_MESS;
use spread_sys::{ConnectOptions, Mailbox};

const BODY: usize = 200;
const WIRE: usize = 48 + 32 + BODY; // header + one group name + body, as the daemon sees it

fn raw_rate(n: usize) -> f64 {
    let (mut w, mut r) = UnixStream::pair().unwrap();
    let total = n * (48 + BODY);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < total {
            got += r.read(&mut buf).unwrap();
        }
    });
    let msg = [7u8; 48 + BODY];
    let t = Instant::now();
    for _ in 0..n {
        w.write_all(&msg).unwrap();
    }
    reader.join().unwrap();
    n as f64 / t.elapsed().as_secs_f64()
}

fn opts(name: &str, membership: bool) -> ConnectOptions {
    ConnectOptions {
        group_membership: membership,
        connect_timeout: Some(Duration::from_secs(5)),
        ..ConnectOptions::named(name)
    }
}

fn start(tag: &str, max_session_messages: usize) -> (std::path::PathBuf, DaemonHandle) {
    let dir = std::env::temp_dir().join(format!("spread-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::for_test(&dir);
    cfg.max_session_messages = max_session_messages;
    let d = Daemon::start(cfg).unwrap();
    (dir, d)
}

/// Messages/s from one sender to `receivers` receivers; `batch` messages per write (1 = one write each).
fn through_daemon(n: usize, receivers: usize, batch: usize) -> (f64, u64) {
    let (dir, d) = start(&format!("r{receivers}b{batch}"), 1 << 20);
    let name = d.unix_path().unwrap().display().to_string();
    let mut rxs = Vec::new();
    for i in 0..receivers {
        let mut rx = Mailbox::connect(&name, &opts(&format!("rx{i}"), false)).unwrap();
        rx.join("bench").unwrap();
        rxs.push(rx);
    }
    // Let the joins land before timing.
    std::thread::sleep(Duration::from_millis(50));
    let handles: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            std::thread::spawn(move || {
                let mut got = 0;
                while got < n {
                    got += rx.receive_batch(true, |_| {}).unwrap();
                }
                Instant::now()
            })
        })
        .collect();
    let mut tx = Mailbox::connect(&name, &opts("tx", false)).unwrap();
    let body = [b'x'; BODY];
    let t = Instant::now();
    if batch <= 1 {
        for _ in 0..n {
            tx.multicast(AGREED_MESS, &["bench"], 0, &body).unwrap();
        }
    } else {
        for i in 0..n {
            tx.queue_multicast(AGREED_MESS, &["bench"], 0, &body)
                .unwrap();
            if (i + 1) % batch == 0 {
                tx.flush().unwrap();
            }
        }
        tx.flush().unwrap();
    }
    let end = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap();
    let rate = n as f64 / (end - t).as_secs_f64();
    let kills = d.stats().kills_slow;
    d.stop().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (rate, kills)
}

/// 4 batching senders (64 per write) -> 1 receiver with the default MaxSessionMessages (1000):
/// the case a log collector behind several busy web servers sees. Returns (messages/s received,
/// messages received, slow kills); a killed receiver stops the count.
fn four_to_one_default_limit(n: usize) -> (f64, usize, u64) {
    let (dir, d) = start("s4r1", 1000);
    let name = d.unix_path().unwrap().display().to_string();
    let mut rx = Mailbox::connect(&name, &opts("rx", false)).unwrap();
    rx.join("bench").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let per = n / 4;
    let t = Instant::now();
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let name = name.clone();
            std::thread::spawn(move || {
                let mut tx = Mailbox::connect(&name, &opts(&format!("tx{s}"), false)).unwrap();
                tx.set_send_timeout(Some(Duration::from_secs(5))).unwrap();
                let body = [b'x'; BODY];
                for i in 0..per {
                    tx.queue_multicast(AGREED_MESS, &["bench"], 0, &body)
                        .unwrap();
                    if (i + 1) % 64 == 0 && tx.flush().is_err() {
                        return;
                    }
                }
                let _ = tx.flush();
            })
        })
        .collect();
    let mut got = 0;
    while got < per * 4 {
        match rx.receive_batch(true, |_| {}) {
            Ok(k) => got += k,
            Err(_) => break,
        }
    }
    let rate = got as f64 / t.elapsed().as_secs_f64();
    for s in senders {
        let _ = s.join();
    }
    let kills = d.stats().kills_slow;
    d.stop().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    (rate, got, kills)
}

fn latency(rate: u64, secs: u64) -> (Duration, Duration, usize, u64) {
    let (dir, d) = start("lat", 1000);
    let name = d.unix_path().unwrap().display().to_string();
    let mut rx = Mailbox::connect(&name, &opts("rx", false)).unwrap();
    rx.join("lat").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let base = Instant::now();
    let n = (rate * secs) as usize;
    let h = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(n);
        while lat.len() < n {
            rx.receive_batch(true, |m| {
                let sent = u64::from_le_bytes(m.body[..8].try_into().unwrap());
                lat.push(base.elapsed().as_nanos() as u64 - sent);
            })
            .unwrap();
        }
        lat
    });
    let mut tx = Mailbox::connect(&name, &opts("tx", false)).unwrap();
    let mut body = [0u8; BODY];
    let period = Duration::from_nanos(1_000_000_000 / rate);
    for i in 0..n {
        let due = period * i as u32;
        loop {
            let now = base.elapsed();
            if now >= due {
                break;
            }
            if due - now > Duration::from_micros(200) {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
        body[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        tx.multicast(AGREED_MESS, &["lat"], 0, &body).unwrap();
    }
    let mut lat = h.join().unwrap();
    lat.sort_unstable();
    let kills = d.stats().kills_slow;
    d.stop().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let p =
        |q: f64| Duration::from_nanos(lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)]);
    (p(0.50), p(0.99), lat.len(), kills)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "spread-daemon benchmark: {BODY}-byte bodies ({WIRE} bytes on the wire per message with one group), unix sockets, {n} messages per run"
    );
    let raw = raw_rate(n);
    println!("{:<52} {:>12} {:>10}", "case", "msg/s", "vs raw");
    println!(
        "{:<52} {:>12.0} {:>10}",
        "raw write(2) per 248-byte message, draining reader", raw, "1.00"
    );
    for (label, receivers, batch) in [
        ("daemon 1 -> 1, one write per message", 1, 1),
        ("daemon 1 -> 1, batching sender (64 per write)", 1, 64),
        ("daemon 1 -> 4, one write per message", 4, 1),
        ("daemon 1 -> 4, batching sender (64 per write)", 4, 64),
    ] {
        let count = if receivers > 1 { n / 2 } else { n };
        let (rate, kills) = through_daemon(count, receivers, batch);
        println!(
            "{:<52} {:>12.0} {:>10.2}{}",
            label,
            rate,
            rate / raw,
            if kills > 0 {
                format!("  ({kills} slow kills!)")
            } else {
                String::new()
            }
        );
    }
    let (rate, got, kills) = four_to_one_default_limit(n);
    println!(
        "{:<52} {:>12.0} {:>10.2}  (received {got} of {n}, slow kills {kills})",
        "daemon 4 -> 1, batching senders, MaxSessionMessages 1000",
        rate,
        rate / raw
    );
    let (p50, p99, samples, kills) = latency(10_000, 3);
    println!(
        "latency at 10k msg/s, 1 -> 1 ({samples} samples, MaxSessionMessages 1000, kills {kills}): p50 {:?}, p99 {:?}",
        p50, p99
    );
}
