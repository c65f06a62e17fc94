//! `MetricsListen`: the Prometheus endpoint of a running spreadlogd, checked with promtool.

mod common;

use std::process::Command;

use common::*;
use spread_sys::seq::mess_type_for;
use systest::http::get;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
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
    // Numbered lines 0, 1 and 3: line 2 is counted lost, for group g.
    let mut numbered = sender(&daemon.spread_name(), "met2");
    for seq in [0, 1, 3] {
        let line = format!("numbered {seq}\n");
        send(&mut numbered, "g", mess_type_for(seq), line.as_bytes());
    }
    wait_for("6 lines", || {
        (read(&d.join("a.log")).lines().count() == 6).then_some(())
    });
    let reply = get(addr.parse().unwrap(), "/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    let page = &reply.body;
    for want in [
        "\nspreadlogd_lines_written_total 6\n",
        "\nspreadlogd_messages_total 6\n",
        "\nspreadlogd_lines_lost_in_gaps_total 1\n",
        "\nspreadlogd_group_messages_total{group=\"g\"} 6\n",
        "\nspreadlogd_group_sequence_gaps_total{group=\"g\"} 1\n",
        "\nspreadlogd_group_lines_lost_in_gaps_total{group=\"g\"} 1\n",
        "\nspreadlogd_group_unknown_gaps_total{group=\"g\"} 0\n",
    ] {
        assert!(page.contains(want), "{want:?} not in\n{page}");
    }
    assert!(
        page.contains("# TYPE spreadlogd_lines_lost_in_gaps_total counter\n"),
        "{page}"
    );
    let connected = format!(
        "spreadlogd_daemon_connected{{daemon=\"{}\"}} 1\n",
        daemon.spread_name()
    );
    assert!(page.contains(&connected), "{page}");
    systest::promtool::assert_clean_metrics("spreadlogd", page);
    // The SIGUSR1 report says the same numbers (one list of counters behind both).
    logd.signal(libc::SIGUSR1);
    logd.wait_log("counters:", 1);
    assert!(logd.log().contains(" lines_written=6 "), "{}", logd.log());
    assert_eq!(get(addr.parse().unwrap(), "/").status, 404);
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
