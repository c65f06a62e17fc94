//! spread-tail and spread-pipe as real processes against a real daemon.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use common::*;

/// `spread-pipe -s spread [extra] -S spool errors`, stdin and stderr piped.
fn spread_pipe(spread: &str, spool: &std::path::Path, extra: &[&str]) -> std::process::Child {
    Command::new(bin("spread-pipe"))
        .args(["-s", spread])
        .args(extra)
        .arg("-S")
        .arg(spool)
        .arg("errors")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn spread_tail_prints_every_line_of_its_groups() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let out = d.join("tail.out");
    let mut tail = Command::new(bin("spread-tail"))
        .args(["-s", &daemon.spread_name(), "-g", "a", "b"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has joined: a membership-watching session sees it arrive in both groups.
    let mut watch = spread_sys::Mailbox::connect(
        &daemon.spread_name(),
        &spread_sys::ConnectOptions::named("watch"),
    )
    .unwrap();
    watch.join("b").unwrap();
    wait_for("spread-tail joined b", || match watch.receive().unwrap() {
        spread_sys::Message::Membership(m) if m.members.len() == 2 => Some(()),
        _ => None,
    });
    let mut s = sender(&daemon.spread_name(), "tsend");
    send(&mut s, "a", 0, b"one\n");
    // The previous release's sequence hand-over (sent to the log group) is bookkeeping: never
    // printed.
    send(
        &mut s,
        "a",
        spread_sys::seq::HANDOVER_MESS_TYPE,
        b"mls-seq-handover #old#h 3\n",
    );
    send(&mut s, "b", 0, b"two\n");
    send(&mut s, "c", 0, b"not joined\n");
    wait_for("tail output", || {
        (read(&out).lines().count() == 2).then_some(())
    });
    assert_eq!(read(&out), "a one\nb two\n");
    tail.kill().unwrap();
    let _ = tail.wait();
}

#[test]
fn spread_pipe_sends_numbered_lines_that_spreadlogd_writes_without_gaps() {
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let log = d.join("a.log");
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {} Log {{ Group = errors File = {} }} }}",
            daemon.spread_name(),
            log.display(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let mut pipe = spread_pipe(&daemon.spread_name(), &d.join("spool"), &[]);
    let mut stdin = pipe.stdin.take().unwrap();
    let mut expected = String::new();
    for i in 0..5000 {
        let l = format!("[error] line {i} with = and [brackets]\n");
        expected.push_str(&l);
        stdin.write_all(l.as_bytes()).unwrap();
    }
    stdin.write_all(b"last line without newline").unwrap();
    // spreadlogd ends every line with a newline (CONTRACTS "Sequence numbers").
    expected.push_str("last line without newline\n");
    drop(stdin);
    assert!(pipe.wait().unwrap().success());
    wait_for("all lines", || (read(&log) == expected).then_some(()));
    logd.signal(libc::SIGUSR1);
    logd.wait_log("counters:", 1);
    let l = logd.log();
    assert!(
        l.contains("sequence_gaps=0 ") && l.contains("unknown_gaps=0 "),
        "numbered from 0 without gaps: {l}"
    );
    assert_eq!(logd.term(), 0);
}

#[test]
fn spread_pipe_spools_while_the_daemon_is_away_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = d.join("4803").display().to_string();
    let log = d.join("a.log");
    let spool = d.join("spool");
    // No daemon yet: spread-pipe must keep reading stdin and spool.
    let mut pipe = spread_pipe(&name, &spool, &[]);
    let mut stdin = pipe.stdin.take().unwrap();
    for i in 0..100 {
        stdin.write_all(format!("early {i}\n").as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    wait_for("spooled", || {
        (std::fs::metadata(&spool).map_or(0, |m| m.len()) > 0).then_some(())
    });
    let daemon = spread_daemon::Daemon::start(spread_daemon::Config::for_test(d)).unwrap();
    assert_eq!(daemon.spread_name(), name);
    std::thread::sleep(Duration::from_millis(500));
    // The group has no member yet: nothing may be replayed into the void.
    for i in 0..10 {
        stdin.write_all(format!("middle {i}\n").as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {name} Log {{ Group = errors File = {} }} }}",
            log.display(),
            d = d.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    wait_for("replayed", || {
        (read(&log).lines().count() == 110).then_some(())
    });
    for i in 0..10 {
        stdin.write_all(format!("late {i}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    assert!(pipe.wait().unwrap().success());
    let mut err = String::new();
    pipe.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    wait_for("late lines", || {
        (read(&log).lines().count() == 120).then_some(())
    });
    let got: Vec<String> = read(&log).lines().map(str::to_owned).collect();
    let want: Vec<String> = (0..100)
        .map(|i| format!("early {i}"))
        .chain((0..10).map(|i| format!("middle {i}")))
        .chain((0..10).map(|i| format!("late {i}")))
        .collect();
    assert_eq!(got, want, "spread-pipe said: {err}");
    assert!(err.contains("replayed"), "{err}");
    assert_eq!(logd.term(), 0);
}

#[test]
fn spread_pipe_never_blocks_its_writer_while_the_daemon_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut pipe = spread_pipe(&d.join("4803").display().to_string(), &d.join("spool"), &[]);
    let mut stdin = pipe.stdin.take().unwrap();
    let line = format!("{}\n", "e".repeat(199));
    let t = std::time::Instant::now();
    for _ in 0..100_000 {
        stdin.write_all(line.as_bytes()).unwrap();
    }
    drop(stdin);
    // The writer got rid of 20 MB without waiting for the spool (the reader thread keeps reading).
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "writing 20 MB took {:?}",
        t.elapsed()
    );
    let status = pipe.wait().unwrap();
    assert!(status.success());
    let records = spread_sys::spool::read_and_repair(&d.join("spool"))
        .unwrap()
        .records;
    assert_eq!(records.len(), 100_000);
    assert!(
        records
            .iter()
            .all(|r| r.line == line.as_bytes() && r.group == b"errors")
    );
}

/// The fixture of the daemon-restart tests: a restartable `spread-daemon` process on a unix
/// socket, spreadlogd writing group `errors` to `a.log`, and spread-pipe (with a spool) feeding
/// that group from our writes. `want` is every line written, in order.
struct PipeRig {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    name: String,
    log: PathBuf,
    logd: Option<Logd>,
    daemon: Child,
    pipe: Child,
    stdin: Option<ChildStdin>,
    want: Vec<String>,
}

impl PipeRig {
    fn start(pipe_stderr: Stdio) -> PipeRig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let daemon = Self::spawn_daemon(&d);
        let name = d.join("4803").display().to_string();
        let log = d.join("a.log");
        let c = conf(
            &d,
            &format!(
                "StateFile = {d}/gaps\nSpread {{ Port = {name} Log {{ Group = errors File = {} }} }}",
                log.display(),
                d = d.display()
            ),
        );
        let logd = Logd::start(&d, &c, &[]);
        logd.wait_joined(1);
        let mut pipe = Command::new(bin("spread-pipe"))
            .args(["-s", &name, "-S"])
            .arg(d.join("spool"))
            .arg("errors")
            .stdin(Stdio::piped())
            .stderr(pipe_stderr)
            .spawn()
            .unwrap();
        let stdin = pipe.stdin.take();
        PipeRig {
            _dir: dir,
            dir: d,
            name,
            log,
            logd: Some(logd),
            daemon,
            pipe,
            stdin,
            want: Vec::new(),
        }
    }

    fn spawn_daemon(d: &Path) -> Child {
        let _ = std::fs::remove_file(d.join("4803"));
        let c = Command::new(bin("spread-daemon"))
            .args(["--no-tcp", "--unix-dir"])
            .arg(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("daemon socket", || d.join("4803").exists().then_some(()));
        c
    }

    fn logd(&self) -> &Logd {
        self.logd.as_ref().unwrap()
    }

    fn write(&mut self, line: String) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        self.want.push(line);
    }

    /// A clean stop (the daemon shuts its sockets for reading); waits until spreadlogd noticed
    /// for the `n`-th time.
    fn stop_daemon(&mut self, n: usize) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.daemon.id() as libc::pid_t, libc::SIGTERM) };
        self.daemon.wait().unwrap();
        self.logd().wait_log("lost the spread daemon", n);
    }

    fn start_daemon(&mut self, n: usize) {
        self.daemon = Self::spawn_daemon(&self.dir);
        self.logd().wait_log("reconnected to spread daemon", n);
    }

    fn wait_lines(&self, what: &str, n: usize) {
        wait_for(what, || {
            (read(&self.log).lines().count() >= n).then_some(())
        });
    }

    fn lines(&self) -> Vec<String> {
        read(&self.log).lines().map(str::to_owned).collect()
    }

    /// Close spread-pipe's input and wait for it: its exit status and what it said on stderr.
    fn close_pipe(&mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.pipe.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.pipe.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        (status, err)
    }

    /// spreadlogd's exit code after SIGTERM.
    fn term_logd(&mut self) -> i32 {
        self.logd.take().unwrap().term()
    }
}

impl Drop for PipeRig {
    fn drop(&mut self) {
        let _ = self.pipe.kill();
        let _ = self.pipe.wait();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn spread_pipe_and_spreadlogd_ride_through_a_daemon_restart() {
    let mut rig = PipeRig::start(Stdio::null());
    for i in 0..50 {
        rig.write(format!("before {i}"));
    }
    rig.wait_lines("before lines", 50);
    rig.stop_daemon(1);
    for i in 0..50 {
        rig.write(format!("during {i}"));
        std::thread::sleep(Duration::from_millis(5));
    }
    rig.start_daemon(1);
    for i in 0..50 {
        rig.write(format!("after {i}"));
    }
    let (status, _) = rig.close_pipe();
    assert!(status.success());
    rig.wait_lines("every line", 150);
    assert_eq!(
        rig.lines(),
        rig.want,
        "every line exactly once and in order"
    );
    assert_eq!(rig.term_logd(), 0);
}

#[test]
fn spread_pipe_exits_cleanly_on_sigterm_with_its_input_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut pipe = spread_pipe(&d.join("4803").display().to_string(), &d.join("spool"), &[]);
    let mut stdin = pipe.stdin.take().unwrap();
    for i in 0..1000 {
        stdin.write_all(format!("l{i}\n").as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    wait_for("spooled", || {
        (spread_sys::spool::read_and_repair(&d.join("spool")).map_or(0, |c| c.records.len())
            == 1000)
            .then_some(())
    });
    // SIGHUP is ignored (Apache may signal its piped loggers); SIGTERM ends it cleanly.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pipe.id() as libc::pid_t, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: as above.
    unsafe { libc::kill(pipe.id() as libc::pid_t, libc::SIGTERM) };
    let t = std::time::Instant::now();
    let status = wait_for("exit", || pipe.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    drop(stdin);
    let mut err = String::new();
    pipe.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("SIGTERM"), "{err}");
}

/// The name spread-pipe uses first (`pipe` and its pid, cut to 10 bytes).
fn pipe_name(pid: u32) -> String {
    use spread_sys::private_name::{Role, derive, host_name};
    derive(Role::Pipe, &host_name(), pid, 0)
}

#[test]
fn spread_pipe_continues_its_stream_across_a_daemon_restart_and_under_a_new_name() {
    let mut rig = PipeRig::start(Stdio::piped());
    let restart = |rig: &mut PipeRig, n: usize| {
        // Let the acknowledgements of the lines written so far reach spread-pipe first (spreadlogd
        // acknowledges within 50 ms of writing): an ack lost with the daemon makes spread-pipe
        // resend that line, a repeat that is correct but not what this test is about (a stream
        // restarted at 1 would show as repeats, which is).
        std::thread::sleep(Duration::from_millis(500));
        rig.stop_daemon(n);
        rig.start_daemon(n);
    };
    for i in 0..20 {
        rig.write(format!("first {i}"));
    }
    rig.wait_lines("first lines", 20);
    // 1. Same name after the restart: the sequence continues (a restart at 0 would hide a loss).
    restart(&mut rig, 1);
    for i in 0..20 {
        rig.write(format!("second {i}"));
        std::thread::sleep(Duration::from_millis(5));
    }
    rig.wait_lines("second lines", 40);
    // 2. The daemon still holds spread-pipe's name (REJECT_NOT_UNIQUE): it takes another one,
    //    and its stream goes on there.
    restart(&mut rig, 2);
    let _squatter = sender(&rig.name, &pipe_name(rig.pipe.id()));
    for i in 0..20 {
        rig.write(format!("third {i}"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, err) = rig.close_pipe();
    assert!(status.success(), "{err}");
    rig.wait_lines("every line", 60);
    assert_eq!(
        rig.lines(),
        rig.want,
        "every line exactly once and in order"
    );
    rig.logd().signal(libc::SIGUSR1);
    rig.logd().wait_log("counters:", 1);
    let l = rig.logd().log();
    assert!(
        l.contains("sequence_gaps=0 ")
            && l.contains("unknown_gaps=0 ")
            && l.contains("stream_repeats=0 "),
        "{l}\n{err}"
    );
    assert_eq!(rig.term_logd(), 0);
}

#[test]
fn spread_pipe_warns_as_its_spool_fills() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No daemon: every line goes to a 10 000-byte spool; records of ~500 bytes fill it past 95%
    // (20 of them), the rest is dropped.
    let mut pipe = spread_pipe(
        &d.join("4803").display().to_string(),
        &d.join("spool"),
        &["-C", "10000"],
    );
    let mut stdin = pipe.stdin.take().unwrap();
    for i in 0..25 {
        writeln!(stdin, "{i:02} {}", "w".repeat(470)).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let out = pipe.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    for level in ["is 50% full", "is 80% full", "is 95% full"] {
        assert_eq!(err.matches(level).count(), 1, "{level:?} once in: {err}");
    }
    assert!(err.contains("dropped"), "{err}");
    assert_eq!(out.status.code(), Some(1), "lines were dropped: {err}");
}
