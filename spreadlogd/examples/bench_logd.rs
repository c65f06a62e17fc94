//! Benchmark (not a test): lines/s that spreadlogd writes to one file for 200-byte lines arriving
//! as fast as the daemon delivers them, and spreadlogd's CPU time per line (getrusage of the
//! child). Two senders: 4 threads each doing one `multicast` (one write) per line, like Apache
//! children; and one batching sender (queue + flush, like spread-pipe).
//!
//! ```text
//! cargo build --release -p spreadlogd --bins
//! cargo run --release -p spreadlogd --example bench_logd -- [LINES]
//! ```
//! spreadlogd is taken from `$SPREAD_BIN_DIR` or `target/release`. The daemon runs in-process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spread_sys::seq::{SeqCounter, mess_type_for};
use spread_sys::{ConnectOptions, Mailbox, service};

const LINE: usize = 200;

fn bin() -> PathBuf {
    let dir = std::env::var_os("SPREAD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"));
    let p = dir.join("spreadlogd");
    assert!(
        p.exists(),
        "{} missing: cargo build --release -p spreadlogd --bins",
        p.display()
    );
    p
}

fn child_cpu() -> Duration {
    // SAFETY: getrusage fills a zeroed rusage struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn line(i: u64) -> Vec<u8> {
    let mut l = format!(
        "10.0.0.{} - - [23/Nov/2026:22:00:00 +0000] \"GET /bench/{i:012} HTTP/1.1\" 200 1234 ",
        i % 250
    )
    .into_bytes();
    l.resize(LINE - 1, b'x');
    l.push(b'\n');
    l
}

fn sender(name: &str, spread: &str) -> Mailbox {
    let opts = ConnectOptions {
        private_name: name.into(),
        priority: false,
        group_membership: false,
        connect_timeout: Some(Duration::from_secs(5)),
        send_timeout: None,
    };
    Mailbox::connect(spread, &opts).expect("connect")
}

fn run(label: &str, lines: u64, spread: &str, dir: &Path, senders: u32, batching: bool) {
    let file = dir.join(format!("{label}.log"));
    let conf = dir.join(format!("{label}.conf"));
    std::fs::write(
        &conf,
        format!(
            "BufferSize = 65536\nStateFile = {}/{label}.gaps\nSpread {{ Port = {spread} Log {{ Group = bench File = {} }} }}\n",
            dir.display(),
            file.display()
        ),
    )
    .unwrap();
    let err = dir.join(format!("{label}.stderr"));
    let cpu_before = child_cpu();
    let mut logd = Command::new(bin())
        .args(["-D", "-v", "-c"])
        .arg(&conf)
        .stderr(std::fs::File::create(&err).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while !std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("connected to spread daemon")
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    let per = lines / u64::from(senders);
    let handles: Vec<_> = (0..senders)
        .map(|s| {
            let spread = spread.to_owned();
            let prefix: String = label.chars().take(3).collect();
            std::thread::spawn(move || {
                let mut mb = sender(&format!("{prefix}{s}"), &spread);
                let mut seq = SeqCounter::default();
                for i in 0..per {
                    let l = line(i * u64::from(senders) + u64::from(s));
                    if batching {
                        mb.queue_multicast(
                            service::AGREED_MESS,
                            &["bench"],
                            mess_type_for(seq.peek()),
                            &l,
                        )
                        .unwrap();
                        if i % 1000 == 999 {
                            mb.flush().unwrap();
                        }
                    } else {
                        mb.multicast(
                            service::AGREED_MESS,
                            &["bench"],
                            mess_type_for(seq.peek()),
                            &l,
                        )
                        .unwrap();
                    }
                    seq.advance();
                }
                mb.flush().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let sent = start.elapsed();
    let want = per * u64::from(senders) * LINE as u64;
    // Lines lost to a slow-client kill never arrive: stop once the file has not grown for 3 s.
    let (mut last_len, mut last_change) = (0, Instant::now());
    let mut written = start.elapsed();
    loop {
        let len = std::fs::metadata(&file).map_or(0, |m| m.len());
        if len != last_len {
            (last_len, last_change) = (len, Instant::now());
            written = start.elapsed();
        }
        if len >= want
            || last_change.elapsed() > Duration::from_secs(3)
            || logd.try_wait().unwrap().is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = std::fs::metadata(&file).map_or(0, |m| m.len());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(logd.id() as libc::pid_t, libc::SIGTERM) };
    logd.wait().unwrap();
    let cpu = child_cpu() - cpu_before;
    let log = std::fs::read_to_string(&err).unwrap_or_default();
    let n = got / LINE as u64;
    let killed = log.contains("lost the spread daemon");
    let counters = log
        .lines()
        .rfind(|l| l.contains("counters:"))
        .unwrap_or("")
        .to_owned();
    println!(
        "{label}: {n}/{} lines of {LINE} B in {:.2}s (senders done after {:.2}s): {:.0} lines/s, {:.0} MB/s; \
         spreadlogd CPU {:.2}s = {:.2} us/line; killed as slow client: {}",
        per * u64::from(senders),
        written.as_secs_f64(),
        sent.as_secs_f64(),
        n as f64 / written.as_secs_f64(),
        (got as f64 / written.as_secs_f64()) / 1e6,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        if killed { "YES" } else { "no" }
    );
    let field = |k: &str| {
        counters
            .split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .unwrap_or("?")
            .to_owned()
    };
    println!(
        "    batches={} (avg {:.0} lines/batch), sequence_gaps={}, lines_lost_in_gaps={}",
        field("batches="),
        n as f64 / field("batches=").parse::<f64>().unwrap_or(f64::NAN),
        field("sequence_gaps="),
        field("lines_lost_in_gaps=")
    );
    let _ = std::fs::remove_file(&file);
}

fn main() {
    let lines: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = spread_daemon::Config::for_test(dir.path());
    // MaxSessionMessages of the daemon (default 1000, as Spread's); BENCH_MAX_SESSION_MESSAGES
    // raises it to measure spreadlogd's own rate independently of the daemon's kill policy.
    if let Some(n) = std::env::var("BENCH_MAX_SESSION_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.max_session_messages = n;
    }
    let max = cfg.max_session_messages;
    let daemon = spread_daemon::Daemon::start(cfg).unwrap();
    let spread = daemon.spread_name();
    println!(
        "bench_logd: {lines} lines, daemon in-process at {spread} (MaxSessionMessages {max}), files in {}",
        dir.path().display()
    );
    run("4-senders", lines, &spread, dir.path(), 4, false);
    run("batching-sender", lines, &spread, dir.path(), 1, true);
    run("4-batching-senders", lines, &spread, dir.path(), 4, true);
    daemon.stop().unwrap();
}
