//! Test harness of the module's end-to-end tests: a real Debian apache2 in a fresh temp dir on a
//! free 127.0.0.1 port (any MPM), real spread-daemon and spreadlogd processes. Built on the
//! workspace's one test harness, `systest`; what is here is only what these tests add to it.
#![allow(dead_code, unused_imports)]

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use systest::TempDir;
pub use systest::apache::{APACHE, MODULES, Mpm, configtest};
pub use systest::bins::bin;
pub use systest::free_port;
pub use systest::http::Response;
pub use systest::procs::Proc;
pub use systest::wait_until as wait_for;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The whole config: the shared head, the MPM's tuning, the status handler, then `body`.
pub fn config(dir: &Path, port: u16, mpm: Mpm, body: &str) -> String {
    let tuning = match mpm {
        Mpm::Prefork => {
            "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 8\n"
        }
        _ => {
            "StartServers 2\nThreadsPerChild 4\nMinSpareThreads 4\nMaxSpareThreads 8\nMaxRequestWorkers 8\nServerLimit 2\nThreadLimit 4\n"
        }
    };
    systest::apache::config_with(
        dir,
        local(port),
        mpm,
        &format!("KeepAlive On\nGracefulShutdownTimeout 5\n{tuning}"),
        &format!("{}{body}", systest::apache::STATUS),
    )
}

pub fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    systest::apache::write_config(dir.path(), text)
}

/// A running Apache (parent in the foreground, children forked).
pub struct Apache {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
    pub conf: PathBuf,
}

impl Apache {
    pub fn start(dir: &TempDir, port: u16, conf: &Path) -> Apache {
        let (ok, text) = configtest(conf);
        assert!(ok, "configtest failed:\n{text}");
        let mut cmd = Command::new(APACHE);
        cmd.arg("-f")
            .arg(conf)
            .args(["-D", "FOREGROUND"])
            // Apache's parent signals its whole process group on shutdown (prefork): keep the
            // test runner out of it.
            .process_group(0)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null());
        let proc = Proc::spawn("apache2", cmd, &dir.join("apache2.stderr"), true);
        let mut a = Apache {
            proc,
            port,
            dir: dir.path().to_owned(),
            conf: conf.to_owned(),
        };
        let log = a.dir.join("error.log");
        systest::apache::wait_listening(
            &mut a.proc,
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        a
    }

    /// Configure (the shared head, `mpm`, then `body`) and start on a free port.
    pub fn with_body(dir: &TempDir, mpm: Mpm, body: &str) -> Apache {
        let port = free_port();
        let conf = write_config(dir, &config(dir.path(), port, mpm, body));
        Apache::start(dir, port, &conf)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        self.proc.signal(sig);
    }

    pub fn graceful(&self) {
        self.signal(libc::SIGUSR1);
    }

    /// Graceful stop (SIGWINCH) and wait; children flush and exit. Fails on any crashed child
    /// or escaped panic in the error log. Not SIGTERM: Debian's 2.4.71 event MPM itself
    /// segfaults in about 1 of 40 SIGTERM stops (reproduced without this module loaded).
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGWINCH);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.proc.child.try_wait() {
                let log = self.error_log();
                for bad in ["exit signal", "Segmentation fault", "panicked at"] {
                    assert!(!log.contains(bad), "apache error log shows {bad:?}:\n{log}");
                }
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.proc.kill();
        panic!("apache2 did not stop within 15 s");
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.port, path, "localhost")
    }

    pub fn counters(&self) -> Vec<(String, u64)> {
        let r = self.get("/spread-status");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.to_owned(), v)))
            .collect()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }
}

impl Drop for Apache {
    /// A clean stop if it still runs, then whatever is left of its process group is killed, so
    /// no child outlives the test.
    fn drop(&mut self) {
        if self.proc.alive() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.proc.stop_with(libc::SIGTERM, Duration::from_secs(10))
            }));
        }
        // SAFETY: kill(2) on the process group this Apache was started in (its own).
        unsafe { libc::kill(-self.proc.pid(), libc::SIGKILL) };
    }
}

/// One GET on a fresh connection with a raw Host header value (bytes as given).
pub fn http_get_raw(port: u16, path: &str, host: &[u8]) -> Response {
    systest::http::get_raw(local(port), path, host)
}

pub fn http_get(port: u16, path: &str, host: &str) -> Response {
    http_get_raw(port, path, host.as_bytes())
}

pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A spread-daemon on a unix socket in `dir` (no TCP). The socket path is `<dir>/<port>`.
pub struct SpreadDaemon {
    pub proc: Proc,
    pub socket: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl SpreadDaemon {
    pub fn start(dir: &Path, port: u16) -> SpreadDaemon {
        SpreadDaemon::start_with(dir, port, &["--no-tcp"])
    }

    /// Unix socket and TCP on 127.0.0.1:`port`.
    pub fn start_tcp(dir: &Path, port: u16) -> SpreadDaemon {
        let d = SpreadDaemon::start_with(dir, port, &[]);
        wait_for(
            "the spread-daemon TCP port",
            Duration::from_secs(10),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        d
    }

    fn start_with(dir: &Path, port: u16, extra: &[&str]) -> SpreadDaemon {
        let mut cmd = Command::new(bin("spread-daemon"));
        cmd.args(["-p", &port.to_string()])
            .args(extra)
            .arg("--unix-dir")
            .arg(dir)
            .process_group(0)
            .stdin(Stdio::null());
        let proc = Proc::spawn("spread-daemon", cmd, &dir.join("spread-daemon.log"), true);
        let socket = dir.join(port.to_string());
        wait_for("the spread-daemon socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        SpreadDaemon {
            proc,
            socket,
            dir: dir.to_owned(),
            port,
        }
    }

    pub fn signal(&self, sig: i32) {
        self.proc.signal(sig);
    }

    pub fn stop(&mut self, sig: i32) {
        self.proc.stop_with(sig, Duration::from_secs(10));
    }

    /// SIGSTOP, returning once the daemon is really stopped.
    pub fn pause(&self) {
        self.proc.pause();
    }

    pub fn restart(&mut self) {
        *self = SpreadDaemon::start(&self.dir.clone(), self.port);
    }
}

/// A test-side member of `groups` collecting data messages on a thread.
pub struct Receiver {
    pub rx: std::sync::mpsc::Receiver<(String, String, i16, Vec<u8>)>,
}

impl Receiver {
    pub fn join(socket: &std::path::Path, name: &str, groups: &[&str]) -> Receiver {
        let mut mb = spread_sys::Mailbox::connect(
            socket.to_str().unwrap(),
            &spread_sys::ConnectOptions::named(name),
        )
        .expect("test receiver connects");
        for g in groups {
            mb.join(g).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(m) = mb.receive() {
                if let spread_sys::Message::Data(d) = m
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

/// A real spreadlogd writing group `www` to `central.log` in `dir` (foreground, stderr to a file).
pub struct Spreadlogd {
    pub proc: Proc,
    pub stderr: PathBuf,
    pub central: PathBuf,
}

impl Spreadlogd {
    pub fn start(dir: &Path, socket: &Path, groups: &[&str]) -> Spreadlogd {
        let mut conf = format!(
            "StateFile = {d}/gaptable\nBufferSize = 200000\nSpread {{\n  Port = {s}\n",
            d = dir.display(),
            s = socket.display()
        );
        for g in groups {
            conf.push_str(&format!(
                "  Log {{\n    Group = {g}\n    File = {d}/central-{g}.log\n  }}\n",
                d = dir.display()
            ));
        }
        conf.push_str("}\n");
        let conf_path = dir.join("spreadlogd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let stderr = dir.join("spreadlogd.stderr");
        let mut cmd = Command::new(bin("spreadlogd"));
        cmd.args(["-D", "-v", "-c"])
            .arg(&conf_path)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let s = Spreadlogd {
            proc: Proc::spawn("spreadlogd", cmd, &stderr, false),
            stderr,
            central: dir.join(format!("central-{}.log", groups[0])),
        };
        s.wait_log("connected to spread daemon", 1);
        s
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn wait_log(&self, needle: &str, count: usize) {
        wait_for(
            &format!("{count} x {needle:?} in spreadlogd's log"),
            Duration::from_secs(30),
            || self.log().matches(needle).count() >= count,
        );
    }

    pub fn signal(&self, sig: i32) {
        self.proc.signal(sig);
    }

    /// The counters line spreadlogd logs on SIGUSR1, as key -> value.
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        let before = self.log().matches("counters:").count();
        self.signal(libc::SIGUSR1);
        wait_for("spreadlogd's counters", Duration::from_secs(10), || {
            self.log().matches("counters:").count() > before
        });
        let log = self.log();
        systest::procs::parse_counters(log.lines().rev().find(|l| l.contains("counters:")).unwrap())
    }

    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.central)
    }
}
