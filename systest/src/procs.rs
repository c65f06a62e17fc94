//! The project's own processes as guarded children: `spread-daemon`, `spreadlogd`, `spread-tail`,
//! `spread-pipe`. Output goes to files in the test's directory, so a failure can show it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::bin;
use crate::netns::Netns;
use crate::wait::{wait_until, wait_value};

/// A child process killed (after SIGCONT, in case it was stopped) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    /// Where its stderr (and for most, stdout) goes.
    pub log_path: PathBuf,
}

impl Proc {
    /// Spawn `cmd` with stderr appended to `log_path` (stdout too unless already redirected).
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path, stdout_too: bool) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        if stdout_too {
            cmd.stdout(log.try_clone().expect("dup log"));
        }
        cmd.stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Signal and wait for the exit (bounded); returns the exit code (-1 for a signal).
    pub fn stop_with(&mut self, sig: i32, timeout: Duration) -> i32 {
        self.signal(sig);
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code().unwrap_or(-1);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {timeout:?} after signal {sig}; its log:\n{}",
                    self.name,
                    tail(&self.log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGSTOP, and wait until the kernel has really stopped it (signals are asynchronous: a
    /// process may finish what it is doing first), so a test knows it reads nothing more.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.pid());
        wait_until(
            &format!("{} stopped", self.name),
            Duration::from_secs(10),
            || {
                // The state follows the command name in parentheses: `pid (comm) T ...`.
                std::fs::read_to_string(&stat)
                    .ok()
                    .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
                    .unwrap_or(false)
            },
        );
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() {
            self.kill();
        }
    }
}

/// The last `n` lines of `text` (failure messages stay readable).
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn command(ns: Option<&Netns>, program: PathBuf) -> Command {
    let mut cmd = match ns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    };
    cmd.stdin(Stdio::null());
    cmd
}

/// How a daemon listens.
#[derive(Clone, Debug)]
pub enum Listen {
    /// Unix socket `<dir>/<port>` only.
    Unix { dir: PathBuf, port: u16 },
    /// TCP on these addresses, peers allowed from `allow` (CIDRs), no unix socket.
    Tcp {
        binds: Vec<String>,
        port: u16,
        allow: Vec<String>,
    },
}

/// A `spread-daemon` process, restartable with the same listening address.
pub struct Daemon {
    pub proc: Proc,
    pub listen: Listen,
    extra: Vec<String>,
    ns_path: Option<PathBuf>,
    ns_name: Option<String>,
    log_path: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, ns: Option<&Netns>, listen: Listen) -> Daemon {
        Daemon::start_with(dir, ns, listen, &[])
    }

    /// On this machine, on the unix socket `<t>/run/4803` only, with `extra` flags.
    pub fn local(t: &crate::TempDir, extra: &[&str]) -> Daemon {
        let listen = Listen::Unix {
            dir: t.subdir("run"),
            port: 4803,
        };
        Daemon::start_with(t.path(), None, listen, extra)
    }

    /// With extra flags (e.g. `--max-session-messages 100`), kept for restarts.
    pub fn start_with(dir: &Path, ns: Option<&Netns>, listen: Listen, extra: &[&str]) -> Daemon {
        let log_path = dir.join("spread-daemon.log");
        let mut cmd = command(ns, bin("spread-daemon"));
        match &listen {
            Listen::Unix { dir, port } => {
                cmd.args(["--no-tcp", "-p", &port.to_string(), "--unix-dir"])
                    .arg(dir);
            }
            Listen::Tcp { binds, port, allow } => {
                cmd.args(["--no-unix", "-p", &port.to_string()]);
                for b in binds {
                    cmd.args(["--bind", b]);
                }
                for a in allow {
                    cmd.args(["--allow", a]);
                }
            }
        }
        cmd.args(extra);
        let proc = Proc::spawn("spread-daemon", cmd, &log_path, true);
        let mut d = Daemon {
            proc,
            listen,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ns_path: ns.map(Netns::path),
            ns_name: ns.map(|n| n.name.clone()),
            log_path,
        };
        d.wait_listening();
        d
    }

    fn wait_listening(&mut self) {
        let listen = self.listen.clone();
        let start = Instant::now();
        loop {
            assert!(
                self.proc.alive(),
                "spread-daemon exited at start; its log:\n{}",
                tail(&self.proc.log(), 30)
            );
            let up = match &listen {
                Listen::Unix { dir, port } => {
                    std::os::unix::net::UnixStream::connect(dir.join(port.to_string())).is_ok()
                }
                Listen::Tcp { binds, port, .. } => {
                    let addr = format!("{}:{port}", binds[0]);
                    match &self.ns_path {
                        None => std::net::TcpStream::connect(&addr).is_ok(),
                        Some(p) => crate::netns::in_namespace(p, move || {
                            std::net::TcpStream::connect(&addr).is_ok()
                        }),
                    }
                }
            };
            if up {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "spread-daemon does not listen after 10 s; its log:\n{}",
                tail(&self.proc.log(), 30)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Spread name clients use: a socket path or `port@addr`.
    pub fn spread_name(&self) -> String {
        match &self.listen {
            Listen::Unix { dir, port } => dir.join(port.to_string()).display().to_string(),
            Listen::Tcp { binds, port, .. } => format!("{port}@{}", binds[0]),
        }
    }

    /// Start a new daemon with the same listening address (after the old one died).
    pub fn restart(&mut self, ns: Option<&Netns>) {
        assert_eq!(
            ns.map(|n| n.name.clone()),
            self.ns_name,
            "restart in the same namespace"
        );
        if self.proc.alive() {
            self.proc.kill();
        }
        if let Listen::Unix { dir, port } = &self.listen {
            let _ = std::fs::remove_file(dir.join(port.to_string()));
        }
        let dir = self.log_path.parent().expect("log dir").to_owned();
        let extra = std::mem::take(&mut self.extra);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        *self = Daemon::start_with(&dir, ns, self.listen.clone(), &extra);
    }

    /// SIGUSR1, then the statistics line it logs.
    pub fn stats(&self) -> String {
        let before = self.proc.log().matches("kills: slow").count();
        self.proc.signal(libc::SIGUSR1);
        wait_value(
            "spread-daemon's statistics",
            Duration::from_secs(10),
            || {
                let log = self.proc.log();
                if log.matches("kills: slow").count() > before {
                    Ok(log
                        .lines()
                        .rev()
                        .find(|l| l.contains("kills: slow"))
                        .unwrap_or_default()
                        .to_owned())
                } else {
                    Err(tail(&log, 3))
                }
            },
        )
    }
}

/// A `spreadlogd.conf` with one `Spread` block, one `Log` block per (group, file).
pub fn logd_conf(spread_name: &str, state_file: &Path, logs: &[(&str, &Path)]) -> String {
    let mut s = format!(
        "StateFile = {}\nSpread {{\n  Port = {spread_name}\n",
        state_file.display()
    );
    for (group, file) in logs {
        s.push_str(&format!(
            "  Log {{\n    Group = {group}\n    File = {}\n  }}\n",
            file.display()
        ));
    }
    s.push_str("}\n");
    s
}

/// What spreadlogd logs once connected and joined (also after a reconnect).
const JOINED: &str = "connected to spread daemon";

/// A foreground `spreadlogd -D -v`.
pub struct Logd {
    pub proc: Proc,
    conf: PathBuf,
}

impl Logd {
    pub fn start(dir: &Path, ns: Option<&Netns>, conf_text: &str) -> Logd {
        let conf = dir.join("spreadlogd.conf");
        std::fs::write(&conf, conf_text).expect("write spreadlogd.conf");
        let log_path = dir.join("spreadlogd.log");
        // A restarted spreadlogd appends to the same log: count only its own joins.
        let earlier = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches(JOINED)
            .count();
        let mut cmd = command(ns, bin("spreadlogd"));
        cmd.arg("-D").arg("-v").arg("-c").arg(&conf);
        let proc = Proc::spawn("spreadlogd", cmd, &log_path, true);
        let l = Logd { proc, conf };
        l.wait_joined(earlier + 1);
        l
    }

    /// On this machine, with a state file `<t>/gaps` and one Log block per (group, file).
    pub fn local(t: &crate::TempDir, spread_name: &str, logs: &[(&str, &Path)]) -> Logd {
        Logd::start(
            t.path(),
            None,
            &logd_conf(spread_name, &t.join("gaps"), logs),
        )
    }

    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Wait until its log says it (re)connected and joined `n` times in total.
    pub fn wait_joined(&self, n: usize) {
        wait_until(
            &format!("spreadlogd joined ({n} time(s))"),
            Duration::from_secs(15),
            || {
                let log = self.proc.log();
                log.matches(JOINED).count() >= n
            },
        );
    }

    /// SIGUSR1, then the counters it logs (`name=value` pairs of the newest report).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let before = self.proc.log().matches("lines_lost_in_gaps=").count();
        self.proc.signal(libc::SIGUSR1);
        wait_value("spreadlogd's counters", Duration::from_secs(10), || {
            let log = self.proc.log();
            if log.matches("lines_lost_in_gaps=").count() > before {
                let line = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("lines_lost_in_gaps="))
                    .expect("counter line");
                Ok(parse_counters(line))
            } else {
                Err(tail(&log, 5))
            }
        })
    }

    /// SIGTERM and wait (it saves the gap table); returns the exit code.
    pub fn term(&mut self) -> i32 {
        self.proc.stop_with(libc::SIGTERM, Duration::from_secs(15))
    }
}

/// `a=1 b=2 …` pairs out of one log line.
pub fn parse_counters(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter_map(|(k, v)| {
            v.trim_end_matches([',', ';'])
                .parse()
                .ok()
                .map(|v| (k.to_owned(), v))
        })
        .collect()
}

/// `spread-tail GROUP`, stdout to a file or to a pipe the test reads itself.
pub fn tail_to_file(dir: &Path, ns: Option<&Netns>, spread: &str, group: &str, out: &Path) -> Proc {
    let mut cmd = command(ns, bin("spread-tail"));
    cmd.args(["-s", spread, group]);
    cmd.stdout(std::fs::File::create(out).expect("create tail output"));
    Proc::spawn("spread-tail", cmd, &dir.join("spread-tail.log"), false)
}

/// `spread-tail GROUP` with stdout a pipe (for a slow reader).
pub fn tail_piped(dir: &Path, spread: &str, group: &str) -> Proc {
    let mut cmd = command(None, bin("spread-tail"));
    cmd.args(["-s", spread, group]).stdout(Stdio::piped());
    Proc::spawn("spread-tail", cmd, &dir.join("spread-tail.log"), false)
}

/// `spread-pipe -S spool GROUP`, lines written by the test.
pub struct Pipe {
    pub proc: Proc,
    stdin: Option<ChildStdin>,
    pub spool: PathBuf,
}

impl Pipe {
    pub fn start(dir: &Path, ns: Option<&Netns>, spread: &str, group: &str, tag: &str) -> Pipe {
        Pipe::start_with(dir, ns, spread, group, tag, &[])
    }

    /// [`Pipe::start`] with more options (`-A`: no acknowledgements).
    pub fn start_with(
        dir: &Path,
        ns: Option<&Netns>,
        spread: &str,
        group: &str,
        tag: &str,
        extra: &[&str],
    ) -> Pipe {
        let spool = dir.join(format!("{tag}.spool"));
        let mut cmd = command(ns, bin("spread-pipe"));
        cmd.args(["-s", spread, "-S"])
            .arg(&spool)
            .args(extra)
            .arg(group);
        cmd.stdin(Stdio::piped());
        let mut proc = Proc::spawn(
            "spread-pipe",
            cmd,
            &dir.join(format!("spread-pipe-{tag}.log")),
            true,
        );
        let stdin = proc.child.stdin.take();
        Pipe { proc, stdin, spool }
    }

    pub fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(line.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .unwrap_or_else(|e| panic!("write to spread-pipe: {e}\n{}", self.proc.log()));
    }

    /// Take the stdin writer (for a load thread); `finish` still closes whatever is left.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin still here")
    }

    /// Lines it reports as replayed from its spool.
    pub fn replayed(&self) -> u64 {
        self.proc
            .log()
            .lines()
            .filter_map(|l| l.strip_prefix("spread-pipe: replayed "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Reports of lines it lost before hand-over (spool unwritable).
    pub fn loss_reports(&self) -> u64 {
        self.proc
            .log()
            .lines()
            .filter(|l| l.contains("lines lost") || l.contains("line(s) lost"))
            .count() as u64
    }

    /// Bytes still waiting in its spool files.
    pub fn spool_left(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut replay = self.spool.clone().into_os_string();
        replay.push(".replay");
        len(&self.spool) + len(Path::new(&replay))
    }

    /// Close stdin and wait for the exit.
    pub fn finish(&mut self) -> i32 {
        self.stdin = None;
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.proc.child.try_wait() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "spread-pipe did not exit at EOF; log:\n{}",
                tail(&self.proc.log(), 20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
