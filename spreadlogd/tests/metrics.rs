//! `MetricsListen`: the Prometheus endpoint of a running spreadlogd, checked with promtool.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::*;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn get(addr: &str, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}

/// `promtool check metrics` on `page`: its lint findings, or a panic if promtool is missing.
fn promtool_check_metrics(page: &str) -> std::process::Output {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup installs it)");
    p.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    p.wait_with_output().unwrap()
}

#[test]
fn metrics_endpoint_counts_what_was_written_and_passes_promtool() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", free_port());
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nMetricsListen = {addr}\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let mut s = sender(&daemon.spread_name(), "met");
    for i in 0..3 {
        send(&mut s, "g", 0, format!("line {i}\n").as_bytes());
    }
    wait_for("3 lines", || {
        (read(&d.join("a.log")).lines().count() == 3).then_some(())
    });
    let reply = get(&addr, "/metrics");
    let (head, page) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        page.contains("\nspreadlogd_lines_written_total 3\n"),
        "{page}"
    );
    assert!(page.contains("\nspreadlogd_messages_total 3\n"), "{page}");
    assert!(
        page.contains("# TYPE spreadlogd_lines_lost_in_gaps_total counter\n"),
        "{page}"
    );
    let connected = format!(
        "spreadlogd_daemon_connected{{daemon=\"{}\"}} 1\n",
        daemon.spread_name()
    );
    assert!(page.contains(&connected), "{page}");
    let lint = promtool_check_metrics(page);
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool: {}{}\n{page}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    // The SIGUSR1 report says the same numbers (one list of counters behind both).
    logd.signal(libc::SIGUSR1);
    logd.wait_log("counters:", 1);
    assert!(logd.log().contains(" lines_written=3 "), "{}", logd.log());
    assert!(get(&addr, "/").starts_with("HTTP/1.1 404"));
    assert_eq!(logd.term(), 0);
}

#[test]
fn a_bad_or_busy_metrics_address_is_a_clear_error() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let c = conf(
        d,
        &format!(
            "MetricsListen = localhost\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let out = Command::new(bin("spreadlogd"))
        .args(["-t", "-c"])
        .arg(&c)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(":1:") && err.contains("not an ADDRESS:PORT"),
        "{err}"
    );
    // An address already in use: the start fails, saying which.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nMetricsListen = {addr}\nSpread {{ Port = {} Log {{ Group = g File = {d}/a.log }} }}",
            daemon.spread_name(),
            d = d.display()
        ),
    );
    let out = Command::new(bin("spreadlogd"))
        .args(["-D", "-c"])
        .arg(&c)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("MetricsListen {addr}")), "{err}");
}
