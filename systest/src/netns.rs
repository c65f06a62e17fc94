//! Network namespaces and veth links, created by the test and removed on drop.
//!
//! Addresses come from 10.213.0.0/16 and exist only inside the namespaces, so nothing leaves them.
//! Processes are started inside a namespace with `setns(2)` in the forked child; the test's own
//! client sockets are opened from a thread that has joined the namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why namespaces cannot be used here, or `None` when they can.
/// Run `f` on a short-lived thread inside the network namespace at `path` (only that thread
/// joins it), and return its result.
pub fn in_namespace<T: Send + 'static>(
    path: &std::path::Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let fd = std::fs::File::open(path).expect("open netns");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this new thread only, with a namespace descriptor we hold open.
        let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

pub fn unavailable() -> Option<String> {
    // Probed once per test process: the tests of one binary run on parallel threads, and
    // concurrent probes under one name raced each other ("File exists") into a false skip.
    static VERDICT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    VERDICT.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    if !crate::is_root() {
        return Some("network namespaces need root (CI runs as root)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("`ip` (iproute2) is not installed".into()),
    }
    let probe = format!("systest-probe-{}", std::process::id());
    let ok = ip(&["netns", "add", &probe]).is_ok();
    let _ = ip(&["netns", "del", &probe]);
    if ok {
        None
    } else {
        Some("`ip netns add` fails here (no CAP_SYS_ADMIN / sysfs?)".into())
    }
}

/// Run `ip ARGS`, returning stderr on failure.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// A short name unique to this process and call (interface names are at most 15 bytes).
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("st{}{tag}{n}", std::process::id() % 100_000)
}

/// A named network namespace with `lo` up; deleted (with any process left in it) on drop.
pub struct Netns {
    pub name: String,
}

/// Namespace names carry the creating test process's pid, so leftovers of a run that was killed
/// (no Drop ran) can be told from namespaces of a run still going.
const NS_PREFIX: &str = "systest-";

/// Delete namespaces left by test processes that no longer exist (once per process).
fn sweep_stale() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for name in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
        {
            let Some(pid) = name
                .strip_prefix(NS_PREFIX)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill(2) with signal 0 only checks whether the pid exists.
            let gone = unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if gone {
                let stale = Netns {
                    name: name.to_owned(),
                };
                eprintln!("systest: removing namespace {name} left by a dead test run");
                drop(stale);
            }
        }
    });
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        sweep_stale();
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{NS_PREFIX}{}-{tag}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ip_ok(&["netns", "add", &name]);
        let ns = Netns { name };
        ip_ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    fn open(&self) -> File {
        File::open(self.path()).unwrap_or_else(|e| panic!("open {}: {e}", self.path().display()))
    }

    /// `program` started inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let fd = self.open();
        let mut cmd = Command::new(program);
        // SAFETY: the closure runs in the forked child before exec and only calls setns(2), a plain
        // system call that is async-signal-safe; `fd` stays open in the parent's closure until
        // the Command is dropped, so the descriptor is valid in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Run `f` on a thread that joined this namespace (its sockets live there).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let fd = self.open();
        std::thread::spawn(move || {
            enter(&fd);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Spawn a thread inside this namespace (for load generators running beside the test).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let fd = self.open();
        std::thread::spawn(move || {
            enter(&fd);
            f()
        })
    }

    /// Kill whatever still runs in the namespace (only processes this test started live there).
    fn kill_all(&self) {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        else {
            return;
        };
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a pid listed as living in a namespace this test created.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn enter(fd: &File) {
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread's network
    // namespace (CLONE_NEWNET is allowed for a thread of a multi-threaded process).
    let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// One end of a veth pair.
pub struct VethEnd {
    pub ns: String,
    pub dev: String,
    pub addr: String,
}

impl VethEnd {
    pub fn set_up(&self, up: bool) {
        ip_ok(&[
            "-n",
            &self.ns,
            "link",
            "set",
            "dev",
            &self.dev,
            if up { "up" } else { "down" },
        ]);
    }
}

/// A veth pair between two namespaces on a /30: `a` gets `<prefix>.1`, `b` gets `<prefix>.2`.
/// Removed with the namespaces.
pub fn veth(a: &Netns, b: &Netns, prefix: &str) -> (VethEnd, VethEnd) {
    let da = unique("a");
    let db = unique("b");
    ip_ok(&["link", "add", &da, "type", "veth", "peer", "name", &db]);
    let ends = [
        (a, &da, format!("{prefix}.1")),
        (b, &db, format!("{prefix}.2")),
    ];
    for (ns, dev, _) in &ends {
        if let Err(e) = ip(&["link", "set", dev, "netns", &ns.name]) {
            let _ = ip(&["link", "del", &da]);
            panic!("{e}");
        }
    }
    for (ns, dev, addr) in &ends {
        ip_ok(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            dev,
        ]);
        ip_ok(&["-n", &ns.name, "link", "set", "dev", dev, "up"]);
    }
    let [(a, da, aa), (b, db, ba)] = ends;
    (
        VethEnd {
            ns: a.name.clone(),
            dev: da.clone(),
            addr: aa,
        },
        VethEnd {
            ns: b.name.clone(),
            dev: db.clone(),
            addr: ba,
        },
    )
}
