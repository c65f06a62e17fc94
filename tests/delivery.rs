//! End to end with a real spread-daemon: N requests in, exactly N messages out, byte-identical
//! to what mod_log_config writes to a file with the same format, numbered per CONTRACTS §2.

mod common;
use common::*;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use spread_sys::{ConnectOptions, Mailbox, Message, seq};

/// A test-side member of `groups` collecting data messages on a thread.
pub struct Receiver {
    pub rx: mpsc::Receiver<(String, String, i16, Vec<u8>)>,
}

impl Receiver {
    pub fn join(socket: &std::path::Path, name: &str, groups: &[&str]) -> Receiver {
        let mut mb = Mailbox::connect(socket.to_str().unwrap(), &ConnectOptions::named(name))
            .expect("test receiver connects");
        for g in groups {
            mb.join(g).unwrap();
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(m) = mb.receive() {
                if let Message::Data(d) = m
                    && tx
                        .send((d.sender, d.groups[0].clone(), d.mess_type, d.body))
                        .is_err()
                {
                    break;
                }
            }
        });
        Receiver { rx }
    }

    pub fn collect(&self, n: usize, timeout: Duration) -> Vec<(String, String, i16, Vec<u8>)> {
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => out.push(m),
                Err(_) => break,
            }
        }
        // Anything extra would be a duplicate: give it a moment to show up.
        while let Ok(m) = self.rx.recv_timeout(Duration::from_millis(300)) {
            out.push(m);
        }
        out
    }
}

const FORMAT: &str = "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b \\\"%{Referer}i\\\" \\\"%{User-Agent}i\\\" %{X-Test}i\" fmt\n";

/// The status page's own requests are not logged (and `expr=` conditions get exercised).
const NOT_STATUS: &str = "\"expr=%{REQUEST_URI} !~ m#^/spread-status#\"";

fn delivery(mpm: Mpm, n: usize) {
    let dir = TempDir::new("deliv");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let receiver = Receiver::join(&daemon.socket, "tester", &["www"]);
    let port = free_port();
    let body = format!(
        "{FORMAT}SpreadDaemon {sock}\nSpreadSpool {d}/spool/lines\nCustomLog {d}/file.log fmt {cond}\nCustomLog $www fmt {cond}\n",
        cond = NOT_STATUS,
        sock = daemon.socket.display(),
        d = dir.path().display()
    );
    let conf = write_config(&dir, &config(dir.path(), port, mpm, &body));
    let apache = Apache::start(&dir, port, &conf);
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
