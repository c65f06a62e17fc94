//! Daemon trouble with a real spread-daemon and a real spreadlogd: clean restart (SIGTERM),
//! crash (SIGKILL) with the gap counter, a hung daemon (SIGSTOP), and graceful restarts of
//! Apache under load. Requests must stay fast; every line must arrive exactly once, except lines
//! lost inside a crashed daemon, which spreadlogd must count exactly.

mod common;
use common::*;

use std::collections::HashMap;
use std::time::Duration;

/// Lines are told apart by the `req` query argument; the status page is not logged.
const LOG: &str = "LogFormat \"%h \\\"%r\\\" %>s %{X-Pad}i\" line\n";
const COND: &str = "\"expr=%{REQUEST_URI} !~ m#^/spread-status#\"";

struct Farm {
    dir: TempDir,
    daemon: SpreadDaemon,
    logd: Spreadlogd,
    apache: Apache,
}

fn farm(tag: &str, mpm: Mpm, extra: &str) -> Farm {
    let dir = TempDir::new(tag);
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let logd = Spreadlogd::start(dir.path(), &daemon.socket, &["www"]);
    let body = format!(
        "{LOG}SpreadDaemon {sock}\nSpreadSpool {d}/spool/lines\nSpreadRetryInterval 300\nSpreadSendTimeout 100\n\
         CustomLog {d}/file.log line {COND}\nCustomLog $www line {COND}\n{extra}\n",
        sock = daemon.socket.display(),
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, mpm, &body);
    Farm {
        dir,
        daemon,
        logd,
        apache,
    }
}

fn request(f: &Farm, i: usize) {
    let r = f.apache.get(&format!("/index.html?req={i}"));
    assert_eq!(r.status, 200);
    assert!(
        r.elapsed < Duration::from_secs(3),
        "request {i} took {:?}",
        r.elapsed
    );
}

/// Request number -> how many times its line is in `lines`.
fn request_numbers(lines: &[String]) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for l in lines {
        let i: usize = l
            .split("req=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("odd line {l:?}"));
        *seen.entry(i).or_default() += 1;
    }
    seen
}

/// Wait until the central log holds `n` lines, then check they are exactly the requests
/// `expected` (each once).
fn assert_central(f: &Farm, expected: impl Iterator<Item = usize>, timeout: Duration) {
    let expected: Vec<usize> = expected.collect();
    let n = expected.len();
    let start = std::time::Instant::now();
    while f.logd.lines().len() < n && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500)); // room for duplicates to show up
    let lines = f.logd.lines();
    let seen = request_numbers(&lines);
    let missing: Vec<_> = expected.iter().filter(|i| !seen.contains_key(i)).collect();
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty() && lines.len() == n,
        "central log: {} lines, missing {missing:?}, duplicated {dups:?}\ncounters: {:?}\napache:\n{}\nspreadlogd:\n{}",
        lines.len(),
        f.apache.counters(),
        f.apache.error_log(),
        f.logd.log()
    );
}

/// One request per id in `ids`.
fn requests(f: &Farm, ids: std::ops::Range<usize>) {
    for i in ids {
        request(f, i);
    }
}

#[test]
fn clean_daemon_restart_loses_nothing() {
    let mut f = farm("sigterm", Mpm::Event, "");
    requests(&f, 0..30);
    assert_central(&f, 0..30, Duration::from_secs(10));
    f.daemon.stop(libc::SIGTERM);
    requests(&f, 30..60);
    f.daemon.restart();
    // Spread drops what reaches a group with no member: wait for the collector to rejoin
    // (lines handed over before that would be lost and counted as gaps, by design).
    f.logd.wait_log("reconnected to spread daemon", 1);
    for i in 60..90 {
        request(&f, i);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_central(&f, 0..90, Duration::from_secs(30));
    let c = f.logd.counters();
    assert_eq!(c.get("lines_lost_in_gaps"), Some(&0), "{c:?}");
    let spooled = f.apache.counter("spooled");
    // The lines of the outage were kept by the module: spooled when a write failed at once, or
    // (batched: queued before the failing write) held in the window and resent.
    assert!(
        spooled + f.apache.counter("resent") > 0,
        "lines sent while the daemon was away were neither spooled nor resent"
    );
    assert_eq!(f.apache.counter("replayed"), spooled);
    assert_eq!(f.apache.counter("sent") + spooled, 90);
}

#[test]
fn crashed_daemon_loses_nothing_the_lines_in_it_are_resent() {
    // One child, so one sender whose stream shows the loss and its repair.
    let mut f = farm(
        "sigkill",
        Mpm::Event,
        "StartServers 1\nServerLimit 1\nMaxRequestWorkers 4\nMinSpareThreads 1\nMaxSpareThreads 4",
    );
    requests(&f, 0..20);
    assert_central(&f, 0..20, Duration::from_secs(10));
    // Stopped, the daemon reads nothing: these lines are handed over (in its socket buffer) ...
    f.daemon.pause();
    requests(&f, 20..35);
    // mod_log_config writes a line after the response went out: make sure all 15 were handed
    // over before the crash.
    wait_for("35 lines handed over", Duration::from_secs(10), || {
        f.apache.counter("sent") == 35
    });
    // ... and die with it. They stay in the child's acknowledgement window.
    f.daemon.stop(libc::SIGKILL);
    f.daemon.restart();
    f.logd.wait_log("reconnected to spread daemon", 1);
    for i in 35..70 {
        request(&f, i);
        std::thread::sleep(Duration::from_millis(30));
    }
    // Every line arrives exactly once: 20..35 resent to the collector that lacks them.
    assert_central(&f, 0..70, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500)); // room for duplicates to show up
    let seen = request_numbers(&f.logd.lines());
    assert!(seen.values().all(|&n| n == 1), "duplicates: {seen:?}");
    assert!(
        f.apache.counter("resent") > 0,
        "the lines in the dead daemon must have been resent"
    );
    let c = f.logd.counters();
    assert!(c.get("resent_received").is_some_and(|&n| n > 0), "{c:?}");
    assert_eq!(c.get("lines_lost_in_gaps"), Some(&0), "{c:?}");
}

#[test]
fn hung_daemon_does_not_hang_requests_and_lines_are_spooled() {
    let f = farm("sigstop", Mpm::Event, "LimitRequestFieldSize 65536");
    let pad = "p".repeat(30_000);
    requests(&f, 0..5);
    assert_central(&f, 0..5, Duration::from_secs(10));
    f.daemon.pause();
    // Big lines fill the daemon's socket buffer quickly; then sends time out and spool.
    let n = 40;
    let mut slowest = Duration::ZERO;
    for i in 5..5 + n {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", f.apache.port)).unwrap();
        use std::io::{Read, Write};
        let t = std::time::Instant::now();
        write!(s, "GET /index.html?req={i} HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n").unwrap();
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).unwrap();
        slowest = slowest.max(t.elapsed());
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "request {i} took {:?} with a hung daemon",
            t.elapsed()
        );
    }
    assert!(
        f.apache.counter("spooled") > 0,
        "counters {:?}",
        f.apache.counters()
    );
    f.daemon.signal(libc::SIGCONT);
    for i in 5 + n..10 + n {
        request(&f, i);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_central(&f, 0..10 + n, Duration::from_secs(30));
    eprintln!("slowest request with a hung daemon: {slowest:?}");
}

#[test]
fn graceful_restarts_under_load_lose_nothing() {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let f = farm(
            if mpm == Mpm::Event {
                "graceful-ev"
            } else {
                "graceful-pf"
            },
            mpm,
            "",
        );
        let port = f.apache.port;
        let load = std::thread::spawn(move || {
            for i in 0..300 {
                let r = http_get(port, &format!("/index.html?req={i}"), "localhost");
                assert_eq!(r.status, 200, "request {i}");
            }
        });
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(150));
            f.apache.graceful();
        }
        load.join().unwrap();
        assert_central(&f, 0..300, Duration::from_secs(30));
        let file = read_lines(&f.dir.join("file.log"));
        assert_eq!(file.len(), 300, "file log beside");
        let errors = f.apache.error_log();
        assert!(
            !errors.contains("internal error") && !errors.contains("Segmentation"),
            "{errors}"
        );
    }
}
