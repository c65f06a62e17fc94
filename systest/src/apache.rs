//! A sandboxed Debian `apache2` (own ServerRoot, pid file, error log, mutex dir) loading
//! `mod_log_spread.so`, optionally inside a network namespace. Every `/i/...` URL answers 200
//! with a small file, so a request id can travel in `%U`.

use std::net::SocketAddr;
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

/// The whole httpd.conf: `body` carries the test's Spread directives and CustomLog lines.
pub fn config(dir: &Path, listen: SocketAddr, body: &str) -> String {
    let d = dir.display();
    let so = module_so();
    format!(
        "ServerRoot {d}\n\
         LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n\
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
         KeepAlive Off\n\
         StartServers 2\nThreadsPerChild 4\nMinSpareThreads 4\nMaxSpareThreads 8\n\
         MaxRequestWorkers 8\nServerLimit 2\nThreadLimit 4\n\
         AliasMatch ^/i/ {d}/htdocs/index.html\n\
         {body}\n",
        so = so.display()
    )
}

pub struct Apache {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    ns_path: Option<PathBuf>,
}

impl Apache {
    /// Write the config into `dir`, check it, start `apache2 -D FOREGROUND`, wait until it listens.
    pub fn start(dir: &Path, ns: Option<&Netns>, listen: SocketAddr, body: &str) -> Apache {
        std::fs::create_dir_all(dir.join("htdocs")).expect("htdocs");
        std::fs::write(dir.join("htdocs/index.html"), "hello\n").expect("index");
        let conf = dir.join("httpd.conf");
        std::fs::write(&conf, config(dir, listen, body)).expect("write httpd.conf");
        let check = Command::new(APACHE)
            .arg("-f")
            .arg(&conf)
            .arg("-t")
            .output()
            .expect("run apache2 -t");
        assert!(
            check.status.success(),
            "apache2 -t failed:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let mut cmd = match ns {
            Some(ns) => ns.command(APACHE),
            None => Command::new(APACHE),
        };
        cmd.arg("-f")
            .arg(&conf)
            .args(["-D", "FOREGROUND"])
            .stdin(Stdio::null());
        let proc = Proc::spawn("apache2", cmd, &dir.join("apache2.stderr"), true);
        let mut a = Apache {
            proc,
            addr: listen,
            dir: dir.to_owned(),
            ns_path: ns.map(Netns::path),
        };
        let start = Instant::now();
        while !a.listening() {
            assert!(
                a.proc.alive(),
                "apache2 exited at start; error log:\n{}",
                a.error_log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "apache2 does not listen on {listen} after 15 s; error log:\n{}",
                a.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        a
    }

    fn listening(&self) -> bool {
        let addr = self.addr;
        let probe =
            move || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        match &self.ns_path {
            None => probe(),
            Some(p) => {
                let f = std::fs::File::open(p).expect("open netns");
                std::thread::spawn(move || {
                    use std::os::fd::AsRawFd;
                    // SAFETY: joins Apache's namespace on this short-lived thread only.
                    unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                    probe()
                })
                .join()
                .unwrap_or(false)
            }
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Graceful stop (SIGTERM): children finish and exit.
    pub fn stop(&mut self) {
        let code = self.proc.stop_with(libc::SIGTERM, Duration::from_secs(20));
        let _ = code;
    }

    pub fn error_log_tail(&self) -> String {
        tail(&self.error_log(), 30)
    }
}
