//! Helpers for spreadlogd's integration tests: an in-process spread-daemon per test, spreadlogd and
//! the tools as real child processes, and senders speaking through spread-sys.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spread_daemon::{Config as DaemonConfig, Daemon, DaemonHandle};
use spread_sys::{ConnectOptions, Mailbox, service};

pub const WAIT: Duration = Duration::from_secs(15);

/// A binary of this workspace: `$SPREAD_BIN_DIR/<name>` or `<workspace>/target/debug/<name>`.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("SPREAD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (or set SPREAD_BIN_DIR)",
        p.display()
    );
    p
}

pub fn daemon(dir: &Path) -> DaemonHandle {
    Daemon::start(DaemonConfig::for_test(dir)).expect("start in-process spread-daemon")
}

/// Poll `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A running spreadlogd (`-D -v`), stderr captured in a file.
pub struct Logd {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Logd {
    pub fn start(dir: &Path, conf: &Path, extra: &[&str]) -> Logd {
        Logd::start_env(dir, conf, extra, &[])
    }

    pub fn start_env(dir: &Path, conf: &Path, extra: &[&str], env: &[(&str, &str)]) -> Logd {
        let stderr = dir.join(format!(
            "spreadlogd.{}.stderr",
            std::process::id() ^ rand_suffix()
        ));
        let err = std::fs::File::create(&stderr).unwrap();
        let mut cmd = Command::new(bin("spreadlogd"));
        cmd.arg("-D")
            .arg("-v")
            .arg("-c")
            .arg(conf)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn spreadlogd");
        Logd { child, stderr }
    }

    pub fn log(&self) -> String {
        read(&self.stderr)
    }

    /// Wait until its log contains `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) {
        wait_for(&format!("{count} x {needle:?} in spreadlogd's log"), || {
            (self.log().matches(needle).count() >= count).then_some(())
        });
    }

    /// Wait until every Spread block is connected and joined.
    pub fn wait_joined(&self, blocks: usize) {
        self.wait_log("connected to spread daemon", blocks);
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn term(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "spreadlogd did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Logd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed) << 20
}

/// A sending session (no membership messages, so it never fills its own queue).
pub fn sender(spread_name: &str, name: &str) -> Mailbox {
    let opts = ConnectOptions {
        private_name: name.into(),
        priority: false,
        group_membership: false,
        connect_timeout: Some(Duration::from_secs(5)),
        send_timeout: Some(Duration::from_secs(5)),
    };
    Mailbox::connect(spread_name, &opts).expect("connect sender")
}

pub fn send(mb: &mut Mailbox, group: &str, mess_type: i16, body: &[u8]) {
    mb.multicast(service::AGREED_MESS, &[group], mess_type, body)
        .expect("multicast");
}

/// Write a config file into `dir`.
pub fn conf(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("spreadlogd.conf");
    std::fs::write(&p, text).unwrap();
    p
}
