//! A sandboxed Debian `apache2` (own ServerRoot, pid file, error log, mutex dir) loading
//! `mod_log_spread.so`, optionally inside a network namespace. Every `/i/...` URL answers 200
//! with a small file, so a request id can travel in `%U`.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::module_so;
use crate::netns::Netns;
use crate::procs::{Proc, tail};

pub const APACHE: &str = "/usr/sbin/apache2";
pub const MODULES: &str = "/usr/lib/apache2/modules";

/// Why Apache cannot run here, or `None`.
pub fn unavailable() -> Option<String> {
    if !Path::new(APACHE).exists() {
        return Some(format!(
            "{APACHE} is not installed (apt-get install apache2)"
        ));
    }
    if !crate::is_root() {
        return Some("the sandboxed Apache runs its children as www-data: needs root".into());
    }
    None
}

/// Two children of four threads: requests spread over two Spread connections.
pub const TWO_CHILDREN: &str = "StartServers 2\nServerLimit 2\nThreadLimit 4\nThreadsPerChild 4\n\
    MinSpareThreads 4\nMaxSpareThreads 8\nMaxRequestWorkers 8\n";

/// One active child (MaxRequestWorkers = ThreadsPerChild): one Spread connection and one sequence
/// per server, so gap counts are exact. ServerLimit 2 leaves a slot for a replacement child while
/// a recycled one drains.
pub const ONE_CHILD: &str = "StartServers 1\nServerLimit 2\nThreadLimit 4\nThreadsPerChild 4\n\
    MinSpareThreads 1\nMaxSpareThreads 4\nMaxRequestWorkers 4\n";

/// The status handler of the module, for its counters.
pub const STATUS: &str = "<Location /spread-status>\n  SetHandler log-spread-status\n</Location>\n";

/// A CustomLog condition keeping the status handler's own requests out of the counted lines.
pub const NOT_STATUS: &str = "\"expr=%{REQUEST_URI} !~ m#^/spread-status#\"";

/// The MPMs Debian ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Prefork,
    Worker,
}

impl Mpm {
    fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Prefork => "prefork",
            Mpm::Worker => "worker",
        }
    }
}

/// How long a graceful stop waits for requests in progress before Apache ends them.
pub const GRACEFUL_STOP_SECS: u64 = 5;

/// The head every test's httpd.conf shares (its own ServerRoot, pid file, error log, mutex dir,
/// the module under test), then `tuning` and `body`.
pub fn config_with(dir: &Path, listen: SocketAddr, mpm: Mpm, tuning: &str, body: &str) -> String {
    let d = dir.display();
    let so = module_so();
    format!(
        "ServerRoot {d}\n\
         LoadModule mpm_{mpm}_module {MODULES}/mod_mpm_{mpm}.so\n\
         LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
         LoadModule alias_module {MODULES}/mod_alias.so\n\
         LoadModule log_spread_module {so}\n\
         Listen {listen}\n\
         ServerName localhost\n\
         PidFile {d}/httpd.pid\n\
         ErrorLog {d}/error.log\n\
         LogLevel info\n\
         DocumentRoot {d}/htdocs\n\
         Mutex file:{d}\n\
         User www-data\n\
         Group www-data\n\
         GracefulShutdownTimeout {GRACEFUL_STOP_SECS}\n\
         {tuning}\
         {body}\n",
        mpm = mpm.name(),
        so = so.display()
    )
}

/// The whole httpd.conf of the system tests (event MPM, no keep-alive, every `/i/...` URL
/// answered): `body` carries the test's Spread directives and CustomLog lines.
pub fn config(dir: &Path, listen: SocketAddr, tuning: &str, body: &str) -> String {
    config_with(
        dir,
        listen,
        Mpm::Event,
        &format!("KeepAlive Off\n{tuning}"),
        &format!(
            "AliasMatch ^/i/ {}/htdocs/index.html\n{body}",
            dir.display()
        ),
    )
}

/// Write `text` as `dir/httpd.conf`, with the document it serves; the config's path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("htdocs")).expect("htdocs");
    std::fs::write(dir.join("htdocs/index.html"), "hello\n").expect("index");
    let conf = dir.join("httpd.conf");
    std::fs::write(&conf, text).expect("write httpd.conf");
    conf
}

/// `apache2 -t`: (success, stdout and stderr).
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

/// Wait (15 s at most) until `listening()`, failing at once if `proc` exits; `error_log()` says
/// why in the failure message.
pub fn wait_listening(
    proc: &mut Proc,
    listening: impl Fn() -> bool,
    error_log: impl Fn() -> String,
) {
    let start = Instant::now();
    while !listening() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!(
                "apache2 exited at start ({status}); error log:\n{}",
                error_log()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "apache2 does not listen after 15 s; error log:\n{}",
            error_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_error_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

/// Does `addr` accept a connection (in the namespace at `ns_path`, if any)?
fn a_listening(ns_path: &Option<PathBuf>, addr: SocketAddr) -> bool {
    let connect =
        move || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
    match ns_path {
        None => connect(),
        Some(p) => crate::netns::in_namespace(p, connect),
    }
}

pub struct Apache {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    ns_path: Option<PathBuf>,
}

impl Apache {
    /// An Apache (MPM `tuning`) in `t` logging `%U %>s` to group `www` through the daemon
    /// `spread`, spooling under `t`; `extra` goes before the CustomLog, `condition` after it.
    pub fn logging_www(
        t: &crate::TempDir,
        spread: &str,
        tuning: &str,
        extra: &str,
        condition: &str,
    ) -> (Apache, SocketAddr) {
        let spool = t.subdir("spool");
        let addr = crate::free_addr();
        let apache = Apache::start(
            &t.subdir("apache"),
            None,
            addr,
            tuning,
            &format!(
                "SpreadDaemon {spread}\nSpreadSpool {}/spool\n{extra}CustomLog \"$www\" \"%U %>s\" {condition}\n",
                spool.display()
            ),
        );
        (apache, addr)
    }

    /// Write the config into `dir`, check it, start `apache2 -D FOREGROUND`, wait until it listens.
    pub fn start(
        dir: &Path,
        ns: Option<&Netns>,
        listen: SocketAddr,
        tuning: &str,
        body: &str,
    ) -> Apache {
        let conf = write_config(dir, &config(dir, listen, tuning, body));
        let (ok, text) = configtest(&conf);
        assert!(ok, "apache2 -t failed:\n{text}");
        let mut cmd = match ns {
            Some(ns) => ns.command(APACHE),
            None => Command::new(APACHE),
        };
        // Its own process group: Apache signals its group when stopping, and the children can be
        // killed together if the parent does not stop them.
        cmd.arg("-f")
            .arg(&conf)
            .args(["-D", "FOREGROUND"])
            .stdin(Stdio::null())
            .process_group(0);
        let proc = Proc::spawn("apache2", cmd, &dir.join("apache2.stderr"), true);
        let mut a = Apache {
            proc,
            addr: listen,
            dir: dir.to_owned(),
            ns_path: ns.map(Netns::path),
        };
        wait_listening(
            &mut a.proc,
            || a_listening(&a.ns_path, listen),
            || read_error_log(dir),
        );
        a
    }

    /// Run `f` where Apache's sockets are (its namespace, or here).
    pub fn client<T: Send + 'static>(&self, f: impl FnOnce(SocketAddr) -> T + Send + 'static) -> T {
        let addr = self.addr;
        match &self.ns_path {
            None => f(addr),
            Some(p) => crate::netns::in_namespace(p, move || f(addr)),
        }
    }

    /// The module's counters from its status handler (needs [`STATUS`] in the config).
    /// The status page's counters (its first section).
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        let (counters, _) = self.status_page();
        counters
    }

    /// The status page's figures of now (its second section: unacked lines, spool bytes, …).
    pub fn gauges(&self) -> std::collections::BTreeMap<String, f64> {
        let (_, gauges) = self.status_page();
        gauges
    }

    fn status_page(
        &self,
    ) -> (
        std::collections::BTreeMap<String, u64>,
        std::collections::BTreeMap<String, f64>,
    ) {
        let r = self.client(|addr| crate::http::get(addr, "/spread-status"));
        assert_eq!(r.status, 200, "status handler: {r:?}");
        let (counters, gauges) = r.body.split_once("\nnow ").unwrap_or((&r.body, ""));
        let pairs = |text: &str| -> Vec<(String, String)> {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect()
        };
        (
            pairs(counters)
                .into_iter()
                .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
                .collect(),
            pairs(gauges)
                .into_iter()
                .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
                .collect(),
        )
    }

    pub fn error_log(&self) -> String {
        read_error_log(&self.dir)
    }

    /// Stop as Debian's apache2.service does (`apachectl graceful-stop`: SIGWINCH, children
    /// finish their requests and exit), then SIGTERM if it is still running, then SIGKILL
    /// whatever is left of its process group, so no child outlives the test.
    ///
    /// Not SIGTERM first: the event MPM's ungraceful stop closes the sockets of requests in
    /// progress from the child's main thread while their worker may be releasing them
    /// (`close_worker_sockets`), and about 1 stop in 100 here crashed the child (SIGSEGV in
    /// `apr_os_sock_get`, seen in cores) before its exit could flush and announce. A test of
    /// what a crashed child loses says so and kills it itself.
    pub fn stop(&mut self) {
        let pgid = self.proc.pid();
        for (signal, wait) in [
            (libc::SIGWINCH, Duration::from_secs(GRACEFUL_STOP_SECS + 5)),
            (libc::SIGTERM, Duration::from_secs(10)),
        ] {
            if !self.proc.alive() {
                break;
            }
            self.proc.signal(signal);
            let start = Instant::now();
            while self.proc.alive() && start.elapsed() < wait {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // A child still running once the parent is gone is killed now, mid-way through whatever
        // it was doing (its exit announcement, say): say so, for the test that then misses it.
        let left = Self::group_members(pgid);
        if !left.is_empty() {
            eprintln!("apache stop: processes {left:?} outlived their parent {pgid}; killing them");
        }
        // SAFETY: kill(2) on the process group this Apache was started in (its own, pgid = the
        // parent's pid); only its parent and children are in it.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }

    /// The live processes of process group `pgid` (a zombie is done, only unreaped).
    fn group_members(pgid: i32) -> Vec<i32> {
        processes_where(|state, _, pgrp| state != "Z" && pgrp == pgid)
    }

    pub fn error_log_tail(&self) -> String {
        tail(&self.error_log(), 30)
    }

    /// The pids of the parent's children now (from /proc).
    pub fn children(&self) -> Vec<i32> {
        let parent = self.proc.pid();
        processes_where(|_, ppid, _| ppid == parent)
    }
}

/// The pids in /proc whose state, parent and process group (`/proc/<pid>/stat`) pass `keep`.
fn processes_where(keep: impl Fn(&str, i32, i32) -> bool) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                // After the command (which may hold spaces and parentheses): state, ppid, pgrp.
                let Some((_, rest)) = st.rsplit_once(')') else {
                    return false;
                };
                let f: Vec<&str> = rest.split_whitespace().take(3).collect();
                match (
                    f.first(),
                    f.get(1).and_then(|p| p.parse().ok()),
                    f.get(2).and_then(|p| p.parse().ok()),
                ) {
                    (Some(state), Some(ppid), Some(pgrp)) => keep(state, ppid, pgrp),
                    _ => false,
                }
            })
        })
        .collect()
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
    }
}
