//! The `spread-daemon` binary: flags, --check, exit codes, TCP port discovery, signals.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use spread_sys::wire::constants::*;
use spread_sys::{ConnectOptions, Mailbox, Message};

/// A daemon process, killed and reaped if a test fails half-way.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn(dir: &TempDir, extra: &[&str]) -> (Proc, u16) {
    let port_file = dir.path().join("tcp-port");
    let _ = std::fs::remove_file(&port_file);
    let child = Proc(
        Command::new(bin_path("spread-daemon"))
            .args([
                "--unix-dir",
                dir.path().to_str().unwrap(),
                "--tcp-port",
                "0",
                "--tcp-port-file",
            ])
            .arg(&port_file)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(&port_file)
            && let Ok(p) = s.trim().parse()
        {
            return (child, p);
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not write its TCP port"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(r, 0);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn opts(name: &str) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        ..ConnectOptions::named(name)
    }
}

#[test]
fn sigterm_stops_cleanly_after_delivering_and_sigusr1_logs_stats() {
    let dir = TempDir::new("bin-term");
    let (mut child, port) = spawn(&dir, &[]);
    let sock = dir.path().join("4803");
    assert!(sock.exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o666
    );
    let mut rx = Mailbox::connect(&format!("{port}@127.0.0.1"), &opts("rx")).unwrap();
    rx.join("g").unwrap();
    rx.receive().unwrap();
    let mut tx = Mailbox::connect(sock.to_str().unwrap(), &opts("tx")).unwrap();
    for i in 0..3000 {
        tx.queue_multicast(AGREED_MESS, &["g"], 0, format!("{i}").as_bytes())
            .unwrap();
    }
    tx.flush().unwrap();
    signal(&child, libc::SIGUSR1);
    signal(&child, libc::SIGTERM);
    let mut n = 0;
    while let Ok(m) = rx.receive() {
        if let Message::Data(dm) = m {
            assert_eq!(dm.body, format!("{n}").as_bytes());
            n += 1;
        }
    }
    assert_eq!(n, 3000, "everything sent before SIGTERM was delivered");
    let st = wait_exit(&mut child, Duration::from_secs(5));
    assert!(st.success(), "{st:?}");
    assert!(!sock.exists(), "socket removed on clean exit");
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("stats: sessions 2"),
        "SIGUSR1 statistics in the log:\n{log}"
    );
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn sigkill_leaves_a_stale_socket_that_the_next_start_replaces() {
    let dir = TempDir::new("bin-kill");
    let (mut child, _) = spawn(&dir, &[]);
    signal(&child, libc::SIGKILL);
    wait_exit(&mut child, Duration::from_secs(5));
    let sock = dir.path().join("4803");
    assert!(sock.exists(), "SIGKILL cannot clean up");
    let (mut child, _) = spawn(&dir, &[]);
    let mb = Mailbox::connect(sock.to_str().unwrap(), &opts("after"));
    assert!(mb.is_ok(), "{:?}", mb.err());
    signal(&child, libc::SIGINT);
    assert!(wait_exit(&mut child, Duration::from_secs(5)).success());
}

#[test]
fn second_daemon_on_a_live_socket_refuses_to_start() {
    let dir = TempDir::new("bin-twice");
    let (mut first, _) = spawn(&dir, &[]);
    let out = Command::new(bin_path("spread-daemon"))
        .args([
            "--unix-dir",
            dir.path().to_str().unwrap(),
            "--tcp-port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another daemon is listening"),
        "{out:?}"
    );
    signal(&first, libc::SIGTERM);
    assert!(wait_exit(&mut first, Duration::from_secs(5)).success());
}

#[test]
fn check_help_and_bad_config_exit_codes() {
    let run = |args: &[&str]| {
        Command::new(bin_path("spread-daemon"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--check", "--name", "web1", "--port", "4900"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-session-messages"));
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("spread-daemon "));
    // spread_sys::cli: 2 for a wrong command line, 1 for a configuration that does not hold.
    for (args, needle, code) in [
        (&["--bind", "0.0.0.0", "--check"][..], "allow-list", 1),
        (
            &["--name", "much-too-long-daemon-name", "--check"][..],
            "daemon name",
            1,
        ),
        (&["--bogus"][..], "unknown option", 2),
        (&["--port"][..], "--port", 2),
        (&["--port", "http"][..], "--port", 2),
        (
            &["-c", "/nonexistent.conf", "--check"][..],
            "cannot read config file",
            1,
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one-line reason: {err}");
    }
    let dir = TempDir::new("bin-conf");
    let conf = dir.path().join("spread.conf");
    std::fs::write(
        &conf,
        "Spread_Segment 10.0.0.255:4803 {\n a 10.0.0.1\n b 10.0.0.2\n}\n",
    )
    .unwrap();
    let out = run(&["-c", conf.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("real Spread ring"));
}

#[test]
fn log_names_the_slow_consumer() {
    let dir = TempDir::new("bin-slow");
    let (mut child, _) = spawn(&dir, &["--max-session-messages", "10"]);
    let sock = dir.path().join("4803");
    let mut sleeper = Mailbox::connect(sock.to_str().unwrap(), &opts("sleeper")).unwrap();
    sleeper.join("g").unwrap();
    let mut tx = Mailbox::connect(sock.to_str().unwrap(), &opts("tx")).unwrap();
    let body = vec![0u8; 20_000];
    for _ in 0..100 {
        tx.multicast(RELIABLE_MESS, &["g"], 0, &body).unwrap();
    }
    signal(&child, libc::SIGTERM);
    wait_exit(&mut child, Duration::from_secs(5));
    let stderr = child.stderr.take().unwrap();
    let log: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        log.iter()
            .any(|l| l.contains("#sleeper#localhost") && l.contains("slow consumer")),
        "{log:?}"
    );
}

#[test]
fn readiness_and_stopping_are_notified_to_systemd() {
    let dir = TempDir::new("bin-notify");
    let socket = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = Command::new(bin_path("spread-daemon"))
        .args(["--no-tcp", "-p", "4803", "--unix-dir"])
        .arg(dir.path())
        .env("NOTIFY_SOCKET", &socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY");
    assert_eq!(&buf[..n], b"READY=1\n");
    assert!(
        std::os::unix::net::UnixStream::connect(dir.path().join("4803")).is_ok(),
        "listening before READY"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).expect("STOPPING");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn metrics_endpoint_serves_the_counters_and_passes_promtool() {
    let dir = TempDir::new("bin-metrics");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let (_child, port) = spawn(&dir, &["--metrics-listen", &addr.to_string()]);
    let mut rx = Mailbox::connect(&format!("{port}@127.0.0.1"), &opts("rx")).unwrap();
    rx.join("g").unwrap();
    rx.receive().unwrap();
    let sock = dir.path().join("4803");
    let mut tx = Mailbox::connect(sock.to_str().unwrap(), &opts("tx")).unwrap();
    for i in 0..5 {
        tx.multicast(AGREED_MESS, &["g"], 0, format!("{i}").as_bytes())
            .unwrap();
    }
    for _ in 0..5 {
        rx.receive().unwrap();
    }
    let reply = systest::http::get(addr, "/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    let page = &reply.body;
    for want in [
        "\nspread_daemon_sessions 2\n",
        "\nspread_daemon_groups 1\n",
        // One join and five multicasts.
        "\nspread_daemon_requests_in_total 6\n",
        "\nspread_daemon_deliveries_total 5\n",
        "# TYPE spread_daemon_slow_client_kills_total counter\n",
    ] {
        assert!(page.contains(want), "{want:?} not in\n{page}");
    }
    systest::promtool::assert_clean_metrics("spread-daemon", page);
    assert_eq!(systest::http::get(addr, "/other").status, 404);
}
