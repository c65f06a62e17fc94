//! Rotation, daemon loss, dying piped programs and gap accounting, with real processes.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use spread_sys::seq::mess_type_for;

fn simple_conf(d: &std::path::Path, spread: &str, file: &str) -> std::path::PathBuf {
    conf(
        d,
        &format!(
            "StateFile = {d}/state/gaps\nSpread {{ Port = {spread} Log {{ Group = g File = {file} }} }}",
            d = d.display()
        ),
    )
}

#[test]
fn sighup_rotation_while_lines_flow_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let daemon = daemon(&d);
    let log = d.join("a.log");
    let c = simple_conf(&d, &daemon.spread_name(), &log.display().to_string());
    let logd = Logd::start(&d, &c, &[]);
    logd.wait_joined(1);
    const N: usize = 30_000;
    let name = daemon.spread_name();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent_by_thread = sent.clone();
    let sending = std::thread::spawn(move || {
        let mut s = sender(&name, "rot");
        for i in 0..N {
            send(
                &mut s,
                "g",
                mess_type_for(i as u16),
                format!("line-{i:06}\n").as_bytes(),
            );
            sent_by_thread.store(i + 1, std::sync::atomic::Ordering::SeqCst);
            // At least 0.3 s of sending in all, so the HUP lands in the middle of the flow.
            if i % 500 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    wait_for("first lines", || {
        (read(&log).lines().count() > 2000).then_some(())
    });
    let rotated = d.join("a.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    logd.signal(libc::SIGHUP);
    let sent_at_hup = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent_at_hup < N, "the HUP came after the last line was sent");
    sending.join().unwrap();
    wait_for("all lines in old + new", || {
        (read(&rotated).lines().count() + read(&log).lines().count() == N).then_some(())
    });
    let old = read(&rotated);
    let new = read(&log);
    assert!(!new.is_empty(), "lines after the HUP go to the new file");
    let mut seen = HashSet::new();
    for l in old.lines().chain(new.lines()) {
        assert!(seen.insert(l.to_owned()), "duplicate {l}");
    }
    assert_eq!(seen.len(), N);
    // Order is kept across the rotation: the old file ends before the new one starts.
    let last_old = old.lines().last().unwrap().to_owned();
    let first_new = new.lines().next().unwrap().to_owned();
    assert!(last_old < first_new, "{last_old} then {first_new}");
    assert!(!logd.log().contains("sequence gap"), "{}", logd.log());
    assert_eq!(logd.term(), 0);
}

#[test]
fn sighup_reopens_immediately_without_any_traffic() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let log = d.join("a.log");
    let c = simple_conf(d, &daemon.spread_name(), &log.display().to_string());
    let logd = Logd::joined(d, &c);
    std::fs::rename(&log, d.join("a.log.1")).unwrap();
    logd.signal(libc::SIGHUP);
    // No message is sent: the original reopened only after the next one arrived.
    wait_for("a.log recreated by the HUP alone", || {
        log.exists().then_some(())
    });
    assert_eq!(logd.term(), 0);
}

#[test]
fn sigterm_exits_at_once_and_keeps_everything_received() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let log = d.join("a.log");
    let c = simple_conf(d, &daemon.spread_name(), &log.display().to_string());
    let logd = Logd::joined(d, &c);
    let mut s = sender(&daemon.spread_name(), "term");
    for i in 0..1000 {
        send(&mut s, "g", 0, format!("{i}\n").as_bytes());
    }
    wait_for("lines", || {
        (read(&log).lines().count() == 1000).then_some(())
    });
    let t = std::time::Instant::now();
    assert_eq!(logd.term(), 0);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "SIGTERM took {:?}",
        t.elapsed()
    );
    assert_eq!(read(&log).lines().count(), 1000);
}

fn start_daemon_binary(d: &std::path::Path) -> Child {
    let sock = d.join("4803");
    let _ = std::fs::remove_file(&sock);
    let child = Command::new(bin("spread-daemon"))
        .args(["--no-tcp", "--unix-dir"])
        .arg(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn spread-daemon");
    wait_for("daemon socket", || sock.exists().then_some(()));
    child
}

#[test]
fn daemon_restart_reconnects_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut dproc = start_daemon_binary(d);
    let name = d.join("4803").display().to_string();
    let log = d.join("a.log");
    let c = simple_conf(d, &name, &log.display().to_string());
    let logd = Logd::joined(d, &c);
    send(&mut sender(&name, "s1"), "g", 0, b"before\n");
    wait_for("before", || read(&log).contains("before\n").then_some(()));

    dproc.kill().unwrap();
    dproc.wait().unwrap();
    logd.wait_log("lost the spread daemon", 1);
    std::thread::sleep(Duration::from_millis(700));
    let mut dproc = start_daemon_binary(d);
    logd.wait_log("reconnected to spread daemon", 1);
    assert!(
        logd.log().contains(" after "),
        "says how long it was disconnected: {}",
        logd.log()
    );
    send(&mut sender(&name, "s2"), "g", 0, b"after\n");
    wait_for("after", || read(&log).contains("after\n").then_some(()));
    assert_eq!(read(&log), "before\nafter\n");

    // A clean daemon stop as well.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(dproc.id() as libc::pid_t, libc::SIGTERM) };
    dproc.wait().unwrap();
    logd.wait_log("lost the spread daemon", 2);
    let mut dproc = start_daemon_binary(d);
    logd.wait_log("reconnected to spread daemon", 2);
    send(&mut sender(&name, "s3"), "g", 0, b"again\n");
    wait_for("again", || read(&log).contains("again\n").then_some(()));
    assert_eq!(logd.term(), 0);
    dproc.kill().unwrap();
    let _ = dproc.wait();
}

#[test]
fn starts_before_the_daemon_and_connects_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = d.join("4803").display().to_string();
    let log = d.join("a.log");
    let c = simple_conf(d, &name, &log.display().to_string());
    let logd = Logd::start(d, &c, &[]);
    logd.wait_log("cannot connect to spread daemon", 1);
    let mut dproc = start_daemon_binary(d);
    logd.wait_joined(1);
    send(&mut sender(&name, "late"), "g", 0, b"hello\n");
    wait_for("hello", || read(&log).contains("hello\n").then_some(()));
    assert_eq!(logd.term(), 0);
    dproc.kill().unwrap();
    let _ = dproc.wait();
}

#[test]
fn piped_target_that_dies_is_restarted_and_never_kills_spreadlogd() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let out = d.join("out");
    // Each instance takes one line and exits: every later line meets a dead program first.
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = \"|head -n 1 >> {}\" }} }}",
            daemon.spread_name(),
            out.display(),
            d = d.display()
        ),
    );
    let mut logd = Logd::start(d, &c, &[]);
    logd.wait_joined(1);
    let mut s = sender(&daemon.spread_name(), "pp");
    for i in 1..=3 {
        send(&mut s, "g", 0, format!("line {i}\n").as_bytes());
        wait_for("line in out", || {
            (read(&out).lines().count() == i).then_some(())
        });
        std::thread::sleep(Duration::from_millis(1200));
    }
    assert_eq!(read(&out), "line 1\nline 2\nline 3\n");
    assert!(logd.alive(), "spreadlogd survived SIGPIPE");
    assert!(
        logd.log().contains("exited") || logd.log().contains("died"),
        "{}",
        logd.log()
    );
    // Dead children are reaped: no zombies among spreadlogd's children.
    let pid = logd.proc.child.id();
    let zombies = Command::new("ps")
        .args(["-o", "stat=", "--ppid", &pid.to_string()])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&zombies.stdout).contains('Z'),
        "zombie children"
    );
    assert_eq!(logd.term(), 0);
}

#[test]
fn gaps_are_counted_and_the_table_survives_a_restart() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let log = d.join("a.log");
    let c = simple_conf(d, &daemon.spread_name(), &log.display().to_string());
    let logd = Logd::joined(d, &c);
    let mut s = sender(&daemon.spread_name(), "gapper");
    for (seq, body) in [(0u16, "a"), (1, "b"), (2, "c"), (5, "f")] {
        send(
            &mut s,
            "g",
            mess_type_for(seq),
            format!("{body}\n").as_bytes(),
        );
    }
    // Unnumbered senders (the original module, spuser) are never counted.
    let mut plain = sender(&daemon.spread_name(), "plain");
    send(&mut plain, "g", 0, b"p1\n");
    send(&mut plain, "g", 77, b"p2\n");
    wait_for("lines", || (read(&log).lines().count() == 6).then_some(()));
    logd.wait_log("sequence gap: 2 line(s) from #gapper#", 1);
    logd.signal(libc::SIGUSR1);
    logd.wait_log("lines_lost_in_gaps=2", 1);
    assert!(logd.log().contains("sequence_gaps=1 "), "{}", logd.log());
    assert_eq!(logd.term(), 0);
    let table = read(&d.join("state/gaps"));
    assert!(
        table.contains("#gapper#") && table.contains("\tg\t6\t"),
        "{table}"
    );

    // While spreadlogd is down, 6..=8 are sent and missed; after the restart 9 shows a gap of 3.
    for seq in 6..=8 {
        send(&mut s, "g", mess_type_for(seq), b"missed\n");
    }
    let logd = Logd::joined(d, &c);
    send(&mut s, "g", mess_type_for(9), b"j\n");
    let mut fresh = sender(&daemon.spread_name(), "fresh");
    send(&mut fresh, "g", mess_type_for(4), b"k\n");
    logd.wait_log("sequence gap: 3 line(s) from #gapper#", 1);
    logd.wait_log("gap of unknown size", 1);
    assert_eq!(logd.term(), 0);
}

#[test]
fn daemonised_with_pidfile_relative_paths_survive_chdir_and_hup() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    // Relative File and ErrorLog: resolved from the start directory, so they still work after the
    // daemon's chdir to / and after a SIGHUP reopen (the original wrote to / after the first HUP).
    let c = conf(
        d,
        &format!(
            "StateFile = state/gaps\nErrorLog = own.log\nSpread {{ Port = {} Log {{ Group = g File = rel.log }} }}",
            daemon.spread_name()
        ),
    );
    let pidfile = d.join("spreadlogd.pid");
    let status = Command::new(bin("spreadlogd"))
        .current_dir(d)
        .arg("-v")
        .arg("-c")
        .arg(&c)
        .arg("-p")
        .arg(&pidfile)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the foreground parent exits 0 once the daemon is forked"
    );
    let pid: libc::pid_t = wait_for("pidfile", || read(&pidfile).trim().parse().ok());
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "daemon running");
    wait_for("joined", || {
        read(&d.join("own.log"))
            .contains("connected to spread daemon")
            .then_some(())
    });
    let mut s = sender(&daemon.spread_name(), "dm");
    send(&mut s, "g", 0, b"one\n");
    wait_for("one", || {
        (read(&d.join("rel.log")) == "one\n").then_some(())
    });
    std::fs::rename(d.join("rel.log"), d.join("rel.log.1")).unwrap();
    // SAFETY: kill(2) on the daemon we started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for("reopened", || d.join("rel.log").exists().then_some(()));
    send(&mut s, "g", 0, b"two\n");
    wait_for("two", || {
        (read(&d.join("rel.log")) == "two\n").then_some(())
    });
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for("pidfile removed at exit", || {
        (!pidfile.exists()).then_some(())
    });
    wait_for("state saved", || {
        d.join("state/gaps").exists().then_some(())
    });
    assert_eq!(read(&d.join("rel.log.1")), "one\n");
}

#[test]
fn sighup_restarts_piped_programs_and_reopens_vhost_files() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let out = d.join("out");
    std::fs::create_dir(d.join("vh")).unwrap();
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = g File = \"|cat >> {}\" }} Log {{ Group = v VhostDir = {d}/vh }} }}",
            daemon.spread_name(),
            out.display(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let mut s = sender(&daemon.spread_name(), "hp");
    send(&mut s, "g", 0, b"a\n");
    send(&mut s, "v", 0, b"h.example one\n");
    wait_for("a", || (read(&out) == "a\n").then_some(()));
    wait_for("one", || {
        (read(&d.join("vh/h.example")) == "one\n").then_some(())
    });
    std::fs::rename(d.join("vh/h.example"), d.join("vh-old")).unwrap();
    logd.signal(libc::SIGHUP);
    logd.wait_log("SIGHUP: configuration re-read", 1);
    send(&mut s, "g", 0, b"b\n");
    send(&mut s, "v", 0, b"h.example two\n");
    wait_for("b", || (read(&out) == "a\nb\n").then_some(()));
    wait_for("two", || {
        (read(&d.join("vh/h.example")) == "two\n").then_some(())
    });
    assert_eq!(read(&d.join("vh-old")), "one\n");
    assert_eq!(logd.term(), 0);
}

#[test]
fn sighup_rereads_the_config_moving_a_group_and_joining_a_new_one() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let spread = daemon.spread_name();
    let conf_text = |body: &str| {
        format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {spread} {} }}",
            body.replace("$D", &d.display().to_string()),
            d = d.display()
        )
    };
    let c = conf(d, &conf_text("Log { Group = g File = $D/a.log }"));
    let logd = Logd::joined(d, &c);
    let mut s = sender(&spread, "rr");
    send(&mut s, "g", 0, b"before\n");
    wait_for("before", || {
        (read(&d.join("a.log")) == "before\n").then_some(())
    });

    // g moves to b.log and h is new.
    conf(
        d,
        &conf_text("Log { Group = g File = $D/b.log } Log { Group = h File = $D/h.log }"),
    );
    logd.signal(libc::SIGHUP);
    logd.wait_log("SIGHUP: configuration re-read", 1);
    send(&mut s, "g", 0, b"after\n");
    send(&mut s, "h", 0, b"new group\n");
    wait_for("after in b.log", || {
        (read(&d.join("b.log")) == "after\n").then_some(())
    });
    wait_for("h joined and written", || {
        (read(&d.join("h.log")) == "new group\n").then_some(())
    });
    assert_eq!(
        read(&d.join("a.log")),
        "before\n",
        "the old file is left as it was"
    );

    // A config that does not parse is refused: the running one stays, its files reopened.
    std::fs::write(&c, "Spread { Port = ").unwrap();
    std::fs::rename(d.join("b.log"), d.join("b.log.1")).unwrap();
    logd.signal(libc::SIGHUP);
    logd.wait_log("keeping the running configuration", 1);
    send(&mut s, "g", 0, b"still\n");
    wait_for("still routed by the running config", || {
        (read(&d.join("b.log")) == "still\n").then_some(())
    });
    // Another daemon takes a restart: refused the same way.
    conf(
        d,
        &format!(
            "Spread {{ Port = 4999 Log {{ Group = g File = {}/c.log }} }}",
            d.display()
        ),
    );
    logd.signal(libc::SIGHUP);
    logd.wait_log("keeping the running configuration", 2);
    assert!(logd.log().contains("takes a restart"), "{}", logd.log());
    send(&mut s, "h", 0, b"h still\n");
    wait_for("h still joined", || {
        (read(&d.join("h.log")) == "new group\nh still\n").then_some(())
    });
    assert!(!d.join("c.log").exists());

    // Dropping h leaves the group: its lines are no longer received at all. A changed StateFile
    // is applied only at restart, and the log says so.
    conf(
        d,
        &conf_text("Log { Group = g File = $D/b.log }").replace("/gaps", "/gaps2"),
    );
    logd.signal(libc::SIGHUP);
    logd.wait_log("SIGHUP: configuration re-read", 2);
    assert!(
        logd.log()
            .contains("StateFile changed: applied at the next restart"),
        "{}",
        logd.log()
    );
    send(&mut s, "h", 0, b"not ours\n");
    send(&mut s, "g", 0, b"last\n");
    wait_for("last", || {
        (read(&d.join("b.log")) == "still\nlast\n").then_some(())
    });
    assert_eq!(read(&d.join("h.log")), "new group\nh still\n");
    // The counters carry over the re-reads, and h's last line was never received (h was left,
    // not received and dropped).
    logd.signal(libc::SIGUSR1);
    logd.wait_log("counters:", 1);
    let log = logd.log();
    assert!(
        log.contains(" messages=6 ") && log.contains(" lines_written=6 "),
        "{log}"
    );
    assert_eq!(logd.term(), 0);
}
