//! The writer is installed beside mod_log_config's: file CustomLogs, `BufferedLogs On`, and
//! conditions keep working, and a `$` target never disturbs them.

mod common;
use common::*;
use std::time::Duration;

const FORMAT: &str = "LogFormat \"%h %l %u \\\"%r\\\" %>s %b \\\"%{User-Agent}i\\\"\" fmt\n";

fn run(mpm: Mpm, extra: &str, n: usize) -> (Vec<String>, String) {
    let dir = TempDir::new("chain");
    let body = format!(
        "{FORMAT}SpreadDaemon {d}/no-daemon-here\nSpreadSpool {d}/spool/lines\nSpreadRetryInterval 60000\n{extra}\n\
         CustomLog {d}/file.log fmt\nCustomLog $www fmt\n",
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, mpm, &body);
    for i in 0..n {
        assert_eq!(apache.get(&format!("/index.html?i={i}")).status, 200);
    }
    let errors = apache.stop();
    (read_lines(&dir.join("file.log")), errors)
}

fn assert_no_crash(errors: &str) {
    for bad in [
        "Segmentation fault",
        "exit signal",
        "internal error",
        "panicked",
    ] {
        assert!(!errors.contains(bad), "error log shows {bad:?}:\n{errors}");
    }
}

#[test]
fn file_customlog_beside_a_spread_target_event() {
    let (lines, errors) = run(Mpm::Event, "", 20);
    assert_no_crash(&errors);
    assert_eq!(lines.len(), 20, "{lines:?}");
    for (i, l) in lines.iter().enumerate() {
        assert!(
            l.contains(&format!("GET /index.html?i={i} HTTP/1.1\" 200 6")),
            "{l}"
        );
    }
}

#[test]
fn file_customlog_beside_a_spread_target_prefork() {
    let (lines, errors) = run(Mpm::Prefork, "", 10);
    assert_no_crash(&errors);
    assert_eq!(lines.len(), 10, "{lines:?}");
}

#[test]
fn buffered_logs_on_flushes_file_logs_and_survives_child_exit() {
    // The trap: at child exit mod_log_config reads every handle as its own buffer struct.
    let (lines, errors) = run(Mpm::Event, "BufferedLogs On", 15);
    assert_no_crash(&errors);
    assert_eq!(
        lines.len(),
        15,
        "buffered file log lost lines: {lines:?}\n{errors}"
    );
    let (lines, errors) = run(Mpm::Prefork, "BufferedLogs On", 5);
    assert_no_crash(&errors);
    assert_eq!(lines.len(), 5);
}

#[test]
fn requests_stay_fast_when_no_daemon_exists() {
    let dir = TempDir::new("nodaemon");
    let body = format!(
        "{FORMAT}SpreadDaemon {d}/absent\nSpreadSpool {d}/spool/lines\nCustomLog $www fmt\n",
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, Mpm::Event, &body);
    for _ in 0..20 {
        let r = apache.get("/index.html");
        assert_eq!(r.status, 200);
        assert!(
            r.elapsed < Duration::from_secs(2),
            "request took {:?}",
            r.elapsed
        );
    }
    let errors = apache.stop();
    assert_no_crash(&errors);
}
