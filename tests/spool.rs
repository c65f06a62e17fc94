//! The spool's edges: its directory is created for Apache's `User`, a full spool is counted and
//! said in the error log (never a silent loss), and replay waits for a collector.

mod common;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const COND: &str = "\"expr=%{REQUEST_URI} !~ m#^/spread-status#\"";

fn start(dir: &TempDir, socket: &str, extra: &str) -> Apache {
    let port = free_port();
    let body = format!(
        "LogFormat \"%r\" line\nSpreadDaemon {socket}\nSpreadRetryInterval 60000\n{extra}\nCustomLog $www line {COND}\n"
    );
    let conf = write_config(dir, &config(dir.path(), port, Mpm::Event, &body));
    Apache::start(dir, port, &conf)
}

/// Apache whose daemon does not exist, spooling to `<dir>/spool/lines` with `extra` settings.
fn without_daemon(dir: &TempDir, extra: &str) -> Apache {
    let d = dir.path().display();
    start(
        dir,
        &format!("{d}/absent"),
        &format!("SpreadSpool {d}/spool/lines\n{extra}"),
    )
}

/// [`without_daemon`] with a 4 KiB spool (and room for long request lines).
fn small_spool(tag: &str) -> (TempDir, Apache) {
    let dir = TempDir::new(tag);
    let apache = without_daemon(&dir, "SpreadSpoolSize 4K\nLimitRequestLine 8190");
    (dir, apache)
}

/// `n` requests with 1.5 KB of query string each.
fn long_requests(apache: &Apache, n: usize) {
    let long = "x".repeat(1500);
    for i in 0..n {
        apache.get(&format!("/index.html?{i}&{long}"));
    }
}

/// The first error-log line holding `needle`, once there is one.
fn error_line(apache: &Apache, needle: &str) -> String {
    wait_for(needle, Duration::from_secs(10), || {
        apache.error_log().contains(needle)
    });
    let log = apache.error_log();
    log.lines().find(|l| l.contains(needle)).unwrap().to_owned()
}

#[test]
fn spool_directory_is_created_for_the_apache_user() {
    let dir = TempDir::new("spooldir");
    let spool_dir = dir.join("deep/spool/dir");
    // Relative to ServerRoot (the temp dir), like Apache's own file names.
    let apache = start(
        &dir,
        &format!("{}/absent", dir.path().display()),
        "SpreadSpool deep/spool/dir/lines",
    );
    for i in 0..5 {
        apache.get(&format!("/index.html?{i}"));
    }
    wait_for("5 spooled lines", Duration::from_secs(10), || {
        apache.counter("spooled") == 5
    });
    let meta = std::fs::metadata(&spool_dir).unwrap();
    let www = nix_user_id("www-data");
    assert_eq!(meta.uid(), www, "spool dir owned by Apache's User");
    assert_eq!(meta.mode() & 0o777, 0o750);
    assert!(std::fs::metadata(spool_dir.join("lines")).unwrap().len() > 0);
    apache.stop();
}

#[test]
fn a_full_spool_counts_and_reports_dropped_lines() {
    let (_dir, apache) = small_spool("spoolfull");
    long_requests(&apache, 10);
    wait_for("10 lines accounted for", Duration::from_secs(10), || {
        apache.counter("spooled") + apache.counter("dropped_spool_full") == 10
    });
    let spooled = apache.counter("spooled");
    let dropped = apache.counter("dropped_spool_full");
    assert!(
        spooled >= 1 && dropped >= 1,
        "spooled {spooled}, dropped {dropped}"
    );
    let errors = apache.stop();
    assert!(errors.contains("LOST log lines for $www"), "{errors}");
}

#[test]
fn replay_waits_for_a_member_then_delivers_everything_once() {
    let dir = TempDir::new("replaywait");
    let dport = free_port();
    let socket = dir.join(&dport.to_string());
    let apache = start(
        &dir,
        &socket.display().to_string(),
        &format!("SpreadSpool {}/spool/lines", dir.path().display()),
    );
    // No daemon yet: every line is spooled.
    for i in 0..8 {
        apache.get(&format!("/index.html?{i}"));
    }
    wait_for("8 spooled", Duration::from_secs(10), || {
        apache.counter("spooled") == 8
    });
    // A daemon, but nobody in the group: Spread would drop the lines, so replay must wait.
    let daemon = SpreadDaemon::start(dir.path(), dport);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        apache.counter("replayed"),
        0,
        "replayed into an empty group"
    );
    // A collector joins: everything arrives, once.
    let receiver = Receiver::join(&daemon.socket, "collector", &["www"]);
    let got = receiver.collect(8, Duration::from_secs(15));
    let mut lines: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.3).into_owned())
        .collect();
    lines.sort();
    let mut expected: Vec<String> = (0..8)
        .map(|i| format!("GET /index.html?{i} HTTP/1.1\n"))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
    assert_eq!(apache.counter("replayed"), 8);
    apache.stop();
}

fn nix_user_id(name: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .expect("www-data exists")
}

#[test]
fn replay_says_the_daemon_is_down_rather_than_that_nobody_listens() {
    let dir = TempDir::new("spooldown");
    let apache = without_daemon(&dir, "");
    apache.get("/index.html?1");
    let line = error_line(&apache, "spool replay paused");
    assert!(line.contains("cannot be reached"), "{line}");
    assert!(!line.contains("no member"), "{line}");
    apache.stop();
}

#[test]
fn a_filling_spool_is_announced_before_it_is_full() {
    let (_dir, apache) = small_spool("spoolfill");
    // Two lines of ~1.5 KB: about 75% of 4 KiB, nothing dropped yet.
    long_requests(&apache, 2);
    let line = error_line(&apache, "% full (");
    assert!(line.contains("is 50% full"), "{line}");
    assert_eq!(apache.counter("dropped_spool_full"), 0);
    apache.stop();
}
