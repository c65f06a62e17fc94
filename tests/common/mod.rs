//! Test harness: a real Debian apache2 in a fresh temp dir on a free 127.0.0.1 port, real
//! spread-daemon and spreadlogd processes, and a tiny raw-socket HTTP client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const APACHE: &str = "/usr/sbin/apache2";
pub const MODULES: &str = "/usr/lib/apache2/modules";

/// A fresh directory, world-writable so Apache's `User` (www-data) can write spools there.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let p = base.join(format!("mls-{tag}-{}-{i}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
                return TempDir(p);
            }
        }
        panic!("cannot create a temp dir under {}", base.display());
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_debug() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("debug"),
        None => workspace_root().join("target/debug"),
    }
}

/// The module under test. `cargo test` rebuilds the cdylib in `deps/` but only `cargo build`
/// refreshes the copy in `target/debug/`, so the newer of the two is used.
pub fn module_so() -> PathBuf {
    if let Some(so) = std::env::var_os("MOD_LOG_SPREAD_SO") {
        return PathBuf::from(so);
    }
    let candidates = [
        target_debug().join("deps/libmod_log_spread.so"),
        target_debug().join("libmod_log_spread.so"),
    ];
    candidates
        .iter()
        .filter_map(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, p.clone()))
        })
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run `cargo build -p mod_log_spread` first",
                candidates[1].display()
            )
        })
}

/// A binary of another workspace package (`SPREAD_BIN_DIR` or target/debug).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("SPREAD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(target_debug);
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (or set SPREAD_BIN_DIR)",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Prefork,
    Worker,
}

/// The head of a config: modules, port, dirs, user. `body` is appended.
pub fn config(dir: &Path, port: u16, mpm: Mpm, body: &str) -> String {
    let mpm_name = match mpm {
        Mpm::Event => "event",
        Mpm::Prefork => "prefork",
        Mpm::Worker => "worker",
    };
    let d = dir.display();
    let so = module_so();
    let tuning = match mpm {
        Mpm::Prefork => {
            "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 8\n"
        }
        _ => {
            "StartServers 2\nThreadsPerChild 4\nMinSpareThreads 4\nMaxSpareThreads 8\nMaxRequestWorkers 8\nServerLimit 2\nThreadLimit 4\n"
        }
    };
    format!(
        "ServerRoot {d}\n\
         LoadModule mpm_{mpm_name}_module {MODULES}/mod_mpm_{mpm_name}.so\n\
         LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
         LoadModule log_spread_module {so}\n\
         Listen 127.0.0.1:{port}\n\
         ServerName localhost\n\
         PidFile {d}/httpd.pid\n\
         ErrorLog {d}/error.log\n\
         LogLevel info\n\
         DocumentRoot {d}/htdocs\n\
         Mutex file:{d}\n\
         User www-data\n\
         Group www-data\n\
         KeepAlive On\n\
         GracefulShutdownTimeout 5\n\
         {tuning}\
         <Location /spread-status>\n  SetHandler log-spread-status\n</Location>\n\
         {body}\n",
        so = so.display()
    )
}

pub fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("htdocs")).unwrap();
    std::fs::write(dir.join("htdocs/index.html"), "hello\n").unwrap();
    let path = dir.join("httpd.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// `apache2 -t`: (success, stdout+stderr).
pub fn configtest(conf: &Path) -> (bool, String) {
    let out = Command::new(APACHE)
        .arg("-f")
        .arg(conf)
        .arg("-t")
        .output()
        .expect("run apache2 -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running Apache (parent in the foreground, children forked).
pub struct Apache {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub conf: PathBuf,
}

impl Apache {
    pub fn start(dir: &TempDir, port: u16, conf: &Path) -> Apache {
        let (ok, text) = configtest(conf);
        assert!(ok, "configtest failed:\n{text}");
        let child = Command::new(APACHE)
            .arg("-f")
            .arg(conf)
            .args(["-D", "FOREGROUND"])
            // Apache's parent signals its whole process group on shutdown (prefork): keep the
            // test runner out of it.
            .process_group(0)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start apache2");
        let mut a = Apache {
            child,
            port,
            dir: dir.path().to_owned(),
            conf: conf.to_owned(),
        };
        let start = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = a.child.try_wait() {
                panic!(
                    "apache2 exited with {status}; error log:\n{}",
                    a.error_log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "apache2 did not listen; error log:\n{}",
                a.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        a
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
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
            if let Ok(Some(_)) = self.child.try_wait() {
                let log = self.error_log();
                for bad in ["exit signal", "Segmentation fault", "panicked at"] {
                    assert!(!log.contains(bad), "apache error log shows {bad:?}:\n{log}");
                }
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Response {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// One GET on a fresh connection with a raw Host header value (bytes as given).
pub fn http_get_raw(port: u16, path: &str, host: &[u8]) -> Response {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to apache");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: ").into_bytes();
    req.extend_from_slice(host);
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Response {
        status,
        body,
        elapsed: start.elapsed(),
    }
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
    pub child: Child,
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("spread-daemon.log"))
            .unwrap();
        let child = Command::new(bin("spread-daemon"))
            .args(["-p", &port.to_string()])
            .args(extra)
            .arg("--unix-dir")
            .process_group(0)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start spread-daemon");
        let socket = dir.join(port.to_string());
        let d = SpreadDaemon {
            child,
            socket: socket.clone(),
            dir: dir.to_owned(),
            port,
        };
        wait_for("the spread-daemon socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        d
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn stop(&mut self, sig: i32) {
        self.signal(sig);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        *self = SpreadDaemon::start(&self.dir.clone(), self.port);
    }
}

impl Drop for SpreadDaemon {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    pub child: Child,
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
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .unwrap();
        let child = Command::new(bin("spreadlogd"))
            .args(["-D", "-v", "-c"])
            .arg(&conf_path)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start spreadlogd");
        let s = Spreadlogd {
            child,
            stderr,
            central: dir.join(format!("central-{}.log", groups[0])),
        };
        s.wait_log("connected to spread daemon", 1);
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, count: usize) {
        wait_for(
            &format!("{count} x {needle:?} in spreadlogd's log"),
            Duration::from_secs(30),
            || self.log().matches(needle).count() >= count,
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// The counters line spreadlogd logs on SIGUSR1, as key -> value.
    pub fn counters(&self) -> std::collections::HashMap<String, u64> {
        let before = self.log().matches("counters:").count();
        self.signal(libc::SIGUSR1);
        wait_for("spreadlogd's counters", Duration::from_secs(10), || {
            self.log().matches("counters:").count() > before
        });
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("counters:"))
            .unwrap()
            .to_owned();
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_owned(), v)))
            .collect()
    }

    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.central)
    }
}

impl Drop for Spreadlogd {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
