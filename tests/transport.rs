//! The transport on its own (no Apache), against the real spread-daemon binary: numbering kept
//! across a reconnect under the same private name, a taken name, and the bounded lock wait.

mod common;
use common::*;

use std::path::Path;
use std::time::{Duration, Instant};

use mod_log_spread::config::{self, ModuleConfig};
use mod_log_spread::transport::{SendFailure, Transport};
use spread_sys::private_name::{self, Role};
use spread_sys::{ConnectOptions, Mailbox, seq};

fn cfg(dir: &Path, socket: &Path, send_timeout_ms: u64) -> ModuleConfig {
    let mut c = ModuleConfig {
        spool_path: dir.join("spool"),
        send_timeout: Duration::from_millis(send_timeout_ms),
        retry_interval: Duration::from_millis(100),
        // Each line written at once: these tests watch lines one by one (batching, whose
        // flushes come from the child's background thread, has its own test below).
        flush_interval: Duration::ZERO,
        ..ModuleConfig::default()
    };
    config::add_daemon(
        &mut c.daemons,
        config::parse_daemon(socket.to_str().unwrap(), None).unwrap(),
    )
    .unwrap();
    c
}

#[test]
fn numbering_continues_across_a_reconnect_under_the_same_name() {
    let dir = TempDir::new("t-seq");
    let mut daemon = SpreadDaemon::start(dir.path(), free_port());
    let t = Transport::new(
        cfg(dir.path(), &daemon.socket, 200),
        Role::Sender,
        "web1".into(),
        4242,
    );
    let rx = Receiver::join(&daemon.socket, "rx1", &["g"]);
    for _ in 0..3 {
        t.try_send(0, "g", b"line\n").unwrap();
    }
    let before = rx.collect(3, Duration::from_secs(5));
    let seqs: Vec<u16> = before.iter().map(|m| seq::seq_of(m.2).unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2]);
    let name = before[0].0.clone();

    daemon.stop(libc::SIGTERM);
    daemon.restart();
    let rx = Receiver::join(&daemon.socket, "rx2", &["g"]);
    // The stale connection fails once (the line would go to the spool), then the retry interval
    // passes and the same name reconnects.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.try_send(0, "g", b"again\n").is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = rx.collect(1, Duration::from_secs(5));
    assert_eq!(after[0].0, name, "same private name after a reconnect");
    assert_eq!(
        seq::seq_of(after[0].2),
        Some(3),
        "numbering continues, so losses would show as gaps"
    );
}

#[test]
fn a_name_still_held_by_the_daemon_moves_to_the_next_whose_first_line_is_numbered_0() {
    let dir = TempDir::new("t-name");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let taken = private_name::derive(Role::Sender, "web1", 777, 0);
    let _squatter = Mailbox::connect(
        daemon.socket.to_str().unwrap(),
        &ConnectOptions::named(&taken),
    )
    .unwrap();
    let rx = Receiver::join(&daemon.socket, "rx", &["g"]);
    let t = Transport::new(
        cfg(dir.path(), &daemon.socket, 200),
        Role::Sender,
        "web1".into(),
        777,
    );
    t.try_send(0, "g", b"x\n").unwrap();
    let got = rx.collect(1, Duration::from_secs(5));
    let next = private_name::derive(Role::Sender, "web1", 777, 1);
    assert!(
        got[0].0.starts_with(&format!("#{next}#")),
        "{} should use {next}",
        got[0].0
    );
    assert_eq!(seq::seq_of(got[0].2), Some(0));
}

#[test]
fn a_busy_connection_is_given_up_within_the_send_timeout() {
    let dir = TempDir::new("t-lock");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let t: &'static Transport = Box::leak(Box::new(Transport::new(
        cfg(dir.path(), &daemon.socket, 400),
        Role::Sender,
        "web1".into(),
        9,
    )));
    t.try_send(0, "g", b"connect\n").unwrap();
    daemon.pause();
    // Thread A fills the socket and then blocks inside a send, holding the connection's lock.
    let big = vec![b'z'; 100_000];
    let a = std::thread::spawn(move || {
        for _ in 0..50 {
            if t.try_send(0, "g", &big).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    // B waits for the lock at most SpreadSendTimeout; A holds it at most that long too, so B's
    // call returns within the bound (its line refused, to go to the spool) instead of hanging.
    let start = Instant::now();
    let r = t.try_send(0, "g", b"small\n");
    let took = start.elapsed();
    a.join().unwrap();
    daemon.signal(libc::SIGCONT);
    // Generous margin for a loaded machine; an unbounded wait would be seconds.
    assert!(
        took < Duration::from_millis(400 + 600),
        "waited {took:?} for a busy connection"
    );
    // B may also have slipped in between two of A's sends (then its line was simply sent).
    if let Err(e) = &r {
        assert!(
            matches!(
                e,
                SendFailure::LockTimeout | SendFailure::BackingOff(_) | SendFailure::Send(_)
            ),
            "{e:?}"
        );
    }
}

/// Call the replay thread's upkeep (acks, resends, reconnects) until `done`.
fn maintain_until(t: &Transport, what: &str, done: impl Fn() -> bool) {
    wait_for(what, Duration::from_secs(15), || {
        t.maintain(&|_| {});
        done()
    });
}

#[test]
fn lines_lost_under_a_name_the_daemon_still_holds_are_resent_under_the_next_name() {
    let dir = TempDir::new("t-handover");
    let mut daemon = SpreadDaemon::start(dir.path(), free_port());
    let logd = Spreadlogd::start(dir.path(), &daemon.socket, &["g"]);
    let t = Transport::new(
        cfg(dir.path(), &daemon.socket, 200),
        Role::Sender,
        "web1".into(),
        4711,
    );
    for i in 0..3 {
        t.try_send(0, "g", format!("before {i}\n").as_bytes())
            .unwrap();
    }
    maintain_until(&t, "3 lines acknowledged", || {
        logd.lines().len() == 3 && t.holding().unacked == 0
    });
    // A stopped daemon reads nothing: these lines are handed over (in its socket buffer) ...
    daemon.pause();
    for i in 0..5 {
        t.try_send(0, "g", format!("lost {i}\n").as_bytes())
            .unwrap();
    }
    // ... and die with it; they stay in the window.
    daemon.stop(libc::SIGKILL);
    daemon.restart();
    logd.wait_log("reconnected to spread daemon", 1);
    // The restarted daemon still "holds" the old name (as after a TCP session that died while
    // the link was down): someone else has it.
    let old = private_name::derive(Role::Sender, "web1", 4711, 0);
    let _squatter = Mailbox::connect(
        daemon.socket.to_str().unwrap(),
        &ConnectOptions::named(&old),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.try_send(0, "g", b"after 0\n").is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.try_send(0, "g", b"after 1\n").unwrap();
    maintain_until(&t, "every line acknowledged", || {
        logd.lines().len() >= 10 && t.holding().unacked == 0
    });
    let mut lines = logd.lines();
    lines.sort();
    let mut want: Vec<String> = (0..3)
        .map(|i| format!("before {i}"))
        .chain((0..5).map(|i| format!("lost {i}")))
        .chain((0..2).map(|i| format!("after {i}")))
        .collect();
    want.sort();
    assert_eq!(
        lines, want,
        "every line once, the stream going on under the new name"
    );
    let c = logd.counters();
    assert_eq!(c.get("lines_lost_in_gaps"), Some(&0), "{c:?}");
    assert!(c.get("resent_received").is_some_and(|&n| n >= 4), "{c:?}");
}

#[test]
fn maintenance_resends_held_lines_even_when_no_further_line_comes() {
    let dir = TempDir::new("t-maintain");
    let mut daemon = SpreadDaemon::start(dir.path(), free_port());
    let logd = Spreadlogd::start(dir.path(), &daemon.socket, &["g"]);
    let t = Transport::new(
        cfg(dir.path(), &daemon.socket, 200),
        Role::Sender,
        "web1".into(),
        4712,
    );
    t.try_send(0, "g", b"before\n").unwrap();
    maintain_until(&t, "1 line acknowledged", || {
        logd.lines().len() == 1 && t.holding().unacked == 0
    });
    daemon.pause();
    for i in 0..3 {
        t.try_send(0, "g", format!("lost {i}\n").as_bytes())
            .unwrap();
    }
    daemon.stop(libc::SIGKILL);
    daemon.restart();
    logd.wait_log("reconnected to spread daemon", 1);
    let old = private_name::derive(Role::Sender, "web1", 4712, 0);
    let _squatter = Mailbox::connect(
        daemon.socket.to_str().unwrap(),
        &ConnectOptions::named(&old),
    )
    .unwrap();
    // The next line finds the connection broken (it would be spooled); then no line comes.
    assert!(t.try_send(0, "g", b"spooled\n").is_err());
    std::thread::sleep(Duration::from_millis(150));
    // The replay thread's upkeep reconnects, announces the stream, hears what the collector
    // has and resends the rest.
    maintain_until(&t, "the held lines written", || {
        logd.lines().len() == 4 && t.holding().unacked == 0
    });
    let mut lines = logd.lines();
    lines.sort();
    assert_eq!(lines, ["before", "lost 0", "lost 1", "lost 2"]);
    let c = logd.counters();
    assert_eq!(c.get("lines_lost_in_gaps"), Some(&0), "{c:?}");
}

#[test]
fn batched_lines_wait_for_a_flush_and_then_arrive_together_in_order() {
    let dir = TempDir::new("t-batch");
    let daemon = SpreadDaemon::start(dir.path(), free_port());
    let mut c = cfg(dir.path(), &daemon.socket, 200);
    c.flush_interval = Duration::from_millis(10);
    c.batch_bytes = 4096;
    let t = Transport::new(c, Role::Sender, "web1".into(), 4343);
    assert!(t.batching());
    let rx = Receiver::join(&daemon.socket, "rxb", &["g"]);
    for i in 0..5 {
        t.try_send(0, "g", format!("queued {i}\n").as_bytes())
            .unwrap();
    }
    // Queued, not written: nothing arrives until a flush.
    assert!(t.batch_pending());
    assert!(rx.collect(1, Duration::from_millis(300)).is_empty());
    t.flush_batches();
    assert!(!t.batch_pending());
    let got = rx.collect(5, Duration::from_secs(5));
    let bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.3).into_owned())
        .collect();
    assert_eq!(
        bodies,
        (0..5).map(|i| format!("queued {i}\n")).collect::<Vec<_>>()
    );
    // A batch reaching SpreadBatchSize is written by the request that filled it.
    let line = vec![b'x'; 1000];
    for _ in 0..5 {
        t.try_send(0, "g", &line).unwrap();
    }
    let full = rx.collect(4, Duration::from_secs(5));
    assert_eq!(full.len(), 4, "the first four (4 KiB) went without a flush");
}
