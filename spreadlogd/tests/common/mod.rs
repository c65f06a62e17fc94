//! Helpers for spreadlogd's integration tests: an in-process spread-daemon per test, spreadlogd and
//! the tools as real child processes, and senders speaking through spread-sys.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use spread_daemon::{Config as DaemonConfig, Daemon, DaemonHandle};
use spread_sys::{ConnectOptions, Mailbox, service};
pub use systest::bins::bin;
use systest::procs::Proc;

pub const WAIT: Duration = Duration::from_secs(15);

/// A fresh temp dir with an in-process daemon in it.
pub fn dir_with_daemon() -> (tempfile::TempDir, DaemonHandle) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon(dir.path());
    (dir, daemon)
}

pub fn daemon(dir: &Path) -> DaemonHandle {
    Daemon::start(DaemonConfig::for_test(dir)).expect("start in-process spread-daemon")
}

/// Poll `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    systest::wait_value(what, WAIT, || f().ok_or("not yet"))
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A running spreadlogd (`-D -v`), stderr captured in a file; killed if a test fails half-way.
pub struct Logd {
    pub proc: Proc,
    pub stderr: PathBuf,
}

impl Logd {
    pub fn start(dir: &Path, conf: &Path, extra: &[&str]) -> Logd {
        Logd::start_env(dir, conf, extra, &[])
    }

    /// Start on `conf` and wait until its one Spread block is connected and joined.
    pub fn joined(dir: &Path, conf: &Path) -> Logd {
        let logd = Logd::start(dir, conf, &[]);
        logd.wait_joined(1);
        logd
    }

    pub fn start_env(dir: &Path, conf: &Path, extra: &[&str], env: &[(&str, &str)]) -> Logd {
        let stderr = dir.join(format!(
            "spreadlogd.{}.stderr",
            std::process::id() ^ rand_suffix()
        ));
        let mut cmd = Command::new(bin("spreadlogd"));
        cmd.arg("-D")
            .arg("-v")
            .arg("-c")
            .arg(conf)
            .args(extra)
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Logd {
            proc: Proc::spawn("spreadlogd", cmd, &stderr, false),
            stderr,
        }
    }

    pub fn log(&self) -> String {
        self.proc.log()
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
        self.proc.signal(sig);
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn term(mut self) -> i32 {
        self.proc.stop_with(libc::SIGTERM, WAIT)
    }

    pub fn alive(&mut self) -> bool {
        self.proc.alive()
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
