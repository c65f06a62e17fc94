//! End to end with a real spread-daemon: N requests in, exactly N messages out, byte-identical
//! to what mod_log_config writes to a file with the same format, numbered per CONTRACTS §2.

mod common;
use common::*;

use std::collections::HashMap;
use std::time::Duration;

use spread_sys::seq;

const FORMAT: &str = "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b \\\"%{Referer}i\\\" \\\"%{User-Agent}i\\\" %{X-Test}i\" fmt\n";

/// The status page's own requests are not logged (and `expr=` conditions get exercised).
const NOT_STATUS: &str = "\"expr=%{REQUEST_URI} !~ m#^/spread-status#\"";

fn delivery(mpm: Mpm, n: usize) {
    let dir = TempDir::new("deliv");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let receiver = Receiver::join(&daemon.socket, "tester", &["www"]);
    let body = format!(
        "{FORMAT}SpreadDaemon {sock}\nSpreadSpool {d}/spool/lines\nCustomLog {d}/file.log fmt {cond}\nCustomLog $www fmt {cond}\n",
        cond = NOT_STATUS,
        sock = daemon.socket.display(),
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, mpm, &body);
    for i in 0..n {
        assert_eq!(
            apache
                .get(&format!("/index.html?req={i}&q=%22quoted%22"))
                .status,
            200
        );
    }
    let got = receiver.collect(n, Duration::from_secs(20));
    let sent = apache.counter("sent");
    let errors = apache.stop();
    let file = std::fs::read(dir.join("file.log")).unwrap();
    let file_lines: Vec<&[u8]> = file.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(file_lines.len(), n, "file log");
    assert_eq!(
        got.len(),
        n,
        "spread messages (sent counter {sent});\n{errors}"
    );
    // Byte-identical: the same multiset of lines (children may interleave differently).
    let mut a: Vec<&[u8]> = got.iter().map(|m| &m.3[..]).collect();
    let mut b = file_lines.clone();
    a.sort();
    b.sort();
    assert!(a == b, "spread lines differ from the file log");
    // Numbered per (sender, group): each sender's numbers are 0, 1, 2, ... in arrival order.
    let mut next: HashMap<&str, u16> = HashMap::new();
    for (sender, group, mess_type, _) in &got {
        assert_eq!(group, "www");
        let s = seq::seq_of(*mess_type).expect("numbered");
        let e = next.entry(sender).or_insert(0);
        assert_eq!(s, *e, "sender {sender}");
        *e = seq::next_seq(s);
    }
    assert!(!errors.contains("internal error"), "{errors}");
}

#[test]
fn n_requests_give_n_identical_lines_event() {
    delivery(Mpm::Event, 200);
}

#[test]
fn n_requests_give_n_identical_lines_prefork() {
    delivery(Mpm::Prefork, 100);
}

#[test]
fn n_requests_give_n_identical_lines_worker() {
    delivery(Mpm::Worker, 100);
}

#[test]
fn transferlog_globallog_and_env_conditions_reach_spread() {
    let dir = TempDir::new("forms");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let receiver = Receiver::join(&daemon.socket, "tester", &["transfer", "global", "kept"]);
    let body = format!(
        "LoadModule setenvif_module {MODULES}/mod_setenvif.so\n\
         SetEnvIf Request_URI \"skip\" nolog\n\
         SpreadDaemon {sock}\nSpreadSpool {d}/spool/lines\nSpreadStatsInterval 1\n\
         LogFormat \"%U%q\"\n\
         TransferLog $transfer\n\
         GlobalLog $global \"%U%q\" {NOT_STATUS}\n\
         CustomLog $kept \"%U%q\" env=!nolog\n",
        sock = daemon.socket.display(),
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, Mpm::Event, &body);
    for path in ["/index.html?a", "/skip/this", "/index.html?b"] {
        apache.get(path);
    }
    let got = receiver.collect(3 + 3 + 2, Duration::from_secs(10));
    // Sorted: requests served by different children travel on different connections, each
    // batched and written on its own schedule, so only each connection keeps its order.
    let in_group = |g: &str| -> Vec<String> {
        let mut v: Vec<String> = got
            .iter()
            .filter(|m| m.1 == g)
            .map(|m| String::from_utf8_lossy(&m.3).into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        in_group("transfer"),
        ["/index.html?a\n", "/index.html?b\n", "/skip/this\n"]
    );
    assert_eq!(
        in_group("global"),
        ["/index.html?a\n", "/index.html?b\n", "/skip/this\n"]
    );
    assert_eq!(
        in_group("kept"),
        ["/index.html?a\n", "/index.html?b\n"],
        "env=!nolog drops the skipped line"
    );
    // SpreadStatsInterval: the parent logs the counters (Apache runs its monitor hook about
    // every 10 s).
    wait_for("a counters notice", Duration::from_secs(25), || {
        apache
            .error_log()
            .contains("mod_log_spread counters: sent=")
    });
    apache.stop();
}

#[test]
fn lines_reach_a_daemon_over_tcp() {
    let dir = TempDir::new("tcp");
    let dport = free_port();
    let daemon = SpreadDaemon::start_tcp(dir.path(), dport);
    let receiver = Receiver::join(&daemon.socket, "tester", &["www"]);
    let body = format!(
        "SpreadDaemon {dport}@127.0.0.1\nSpreadSpool {d}/spool/lines\nCustomLog $www \"%U%q\" {NOT_STATUS}\n",
        d = dir.path().display()
    );
    let apache = Apache::with_body(&dir, Mpm::Event, &body);
    for i in 0..20 {
        apache.get(&format!("/index.html?{i}"));
    }
    let got = receiver.collect(20, Duration::from_secs(10));
    assert_eq!(got.len(), 20);
    assert_eq!(apache.counter("spooled"), 0);
    apache.stop();
}
