//! Acknowledged delivery through a real Spread daemon (docs/contracts.md "Acknowledged
//! delivery": it must work through a real ring too). Runs only when `REAL_SPREAD` names a Spread
//! 4/5 daemon binary built elsewhere (the project ships none and builds none); otherwise each
//! test says it is skipped. Scenarios, each with Apache and with spread-pipe, against a plain
//! file log beside: spreadlogd `kill -9` restarted 3 s later, and the daemon `kill -9` and
//! restarted, both under load. The central file must equal the file log, sorted, byte for byte.
//!
//! They are `#[ignore]`d (CI has no such daemon and must not build one); run them with
//! `REAL_SPREAD=/path/to/spread cargo test -p systest --test real_spread -- --ignored`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use systest::apache::{self, Apache};
use systest::http;
use systest::procs::{Logd, Pipe, Proc};
use systest::tally::id;
use systest::{TempDir, free_addr, free_port, skip, sorted_lines, wait_value};

/// A real Spread daemon on 127.0.0.1 (its unix socket is `/tmp/<port>`).
struct RealSpread {
    bin: PathBuf,
    conf: PathBuf,
    dir: PathBuf,
    port: u16,
    proc: Proc,
}

/// One real daemon at a time: it also takes the UDP ports after its own, which another test's
/// free port could be.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl RealSpread {
    fn start(bin: &Path, dir: &Path) -> RealSpread {
        let port = free_port();
        let conf = dir.join("spread.conf");
        std::fs::write(
            &conf,
            format!(
                "Spread_Segment 127.0.0.255:{port} {{\n    localhost 127.0.0.1\n}}\n\
                 RuntimeDir = {}\nDaemonUser = root\nDaemonGroup = root\n",
                dir.display()
            ),
        )
        .expect("spread.conf");
        let proc = Self::spawn(bin, &conf, dir);
        let s = RealSpread {
            bin: bin.to_owned(),
            conf,
            dir: dir.to_owned(),
            port,
            proc,
        };
        s.wait_listening();
        s
    }

    fn spawn(bin: &Path, conf: &Path, dir: &Path) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(["-n", "localhost", "-c"]).arg(conf);
        Proc::spawn("spread", cmd, &dir.join("spread.log"), true)
    }

    fn wait_listening(&self) {
        let sock = format!("/tmp/{}", self.port);
        wait_value("the real spread listening", Duration::from_secs(15), || {
            match std::os::unix::net::UnixStream::connect(&sock) {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        });
    }

    fn name(&self) -> String {
        format!("/tmp/{}", self.port)
    }

    fn kill_and_restart(&mut self) {
        self.proc.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(150));
        self.proc.kill();
        let _ = std::fs::remove_file(format!("/tmp/{}", self.port));
        std::thread::sleep(Duration::from_millis(300));
        self.proc = Self::spawn(&self.bin, &self.conf, &self.dir);
        self.wait_listening();
    }
}

impl Drop for RealSpread {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_file(format!("/tmp/{}", self.port));
    }
}

/// The real daemon to run: asked for with `--ignored`, so its absence is an error, not a pass.
fn real_spread(name: &str) -> Option<PathBuf> {
    match std::env::var_os("REAL_SPREAD") {
        Some(p) => Some(PathBuf::from(p)),
        None => panic!(
            "{name}: set REAL_SPREAD to the path of a Spread 4/5 daemon built outside the project"
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    CollectorKill,
    DaemonKill,
}

fn run(kind: &str, fault: Fault) {
    let name = format!("real_spread[{kind}, {fault:?}]");
    let Some(bin) = real_spread(&name) else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let apache_kind = kind.starts_with("apache");
    if apache_kind && let Some(why) = apache::unavailable() {
        return skip(&name, &why);
    }
    let t = TempDir::new("realspread");
    let mut spread = RealSpread::start(&bin, &t.subdir("spread"));
    let central = t.join("www.log");
    let mut logd = Logd::local(&t, &spread.name(), &[("www", &central)]);
    let n: u64 = 3000;
    let mut piped = Vec::new();
    let (load, apache, mut pipe): (_, _, Option<Pipe>) = if apache_kind {
        let fmt = "\"%U %>s\"";
        // Packed: runs of lines share one message of our own type (0x7F03), which a real
        // daemon must pass on unchanged like any other message.
        let packed = if kind == "apache-packed" {
            "SpreadBatchMessages On\n"
        } else {
            ""
        };
        let body = format!(
            "SpreadDaemon {}\nSpreadSpool {}/spool\nSpreadConnectTimeout 200\n\
             SpreadRetryInterval 200\n{packed}{}\
             CustomLog \"$www\" {fmt} {not}\nCustomLog {}/access.log {fmt} {not}\n",
            spread.name(),
            t.subdir("spool").display(),
            apache::STATUS,
            t.subdir("apache").display(),
            not = apache::NOT_STATUS
        );
        let a = Apache::start(
            &t.subdir("apache"),
            None,
            free_addr(),
            apache::ONE_CHILD,
            &body,
        );
        let addr = a.addr;
        let load = std::thread::spawn(move || {
            let st = http::load(addr, "r", 0..n, Duration::from_millis(2), "");
            assert_eq!(st.ok, n, "{st:?}");
        });
        (load, Some(a), None)
    } else {
        let mut p = Pipe::start(t.path(), None, &spread.name(), "www", "p");
        let mut w = p.take_stdin();
        for i in 0..n {
            piped.push(format!("{} through real spread", id("p", i)));
        }
        let lines = piped.clone();
        let load = std::thread::spawn(move || {
            for l in lines {
                writeln!(w, "{l}").expect("write to spread-pipe");
                std::thread::sleep(Duration::from_millis(2));
            }
            std::mem::forget(w);
        });
        (load, None, Some(p))
    };
    // The fault strikes once the collector has written some (a real daemon takes a moment to
    // form its membership after it starts).
    wait_value("the first lines written", Duration::from_secs(30), || {
        let n = std::fs::read_to_string(&central)
            .unwrap_or_default()
            .lines()
            .count();
        if n >= 200 { Ok(()) } else { Err(n) }
    });
    let began = Instant::now();
    match fault {
        Fault::CollectorKill => {
            logd.proc.kill();
            std::thread::sleep(Duration::from_secs(3));
            let conf = std::fs::read_to_string(logd.conf()).expect("conf");
            logd = Logd::start(t.path(), None, &conf);
        }
        Fault::DaemonKill => {
            spread.kill_and_restart();
            logd.wait_joined(2);
        }
    }
    load.join().expect("load");
    let want = match &apache {
        Some(a) => {
            sorted_lines(&std::fs::read_to_string(a.dir.join("access.log")).unwrap_or_default())
        }
        None => {
            let mut v = piped.clone();
            v.sort();
            v
        }
    };
    assert_eq!(want.len() as u64, n);
    wait_value("central == file log", Duration::from_secs(60), || {
        let got = sorted_lines(&std::fs::read_to_string(&central).unwrap_or_default());
        if got == want {
            Ok(())
        } else {
            Err(format!("{} of {} lines", got.len(), want.len()))
        }
    });
    let c = logd.counters();
    if kind == "apache-packed" {
        // The lines did travel packed (the directive is not silently ignored on the way).
        assert!(
            c["batched_messages"] > 0,
            "{name}: no packed message: {c:?}"
        );
    }
    let resent = apache.as_ref().map(|a| a.counters()["resent"]);
    println!(
        "{name}: sent {n} = written {n} (0 lost, 0 duplicates) {:?} after the fault; module \
         resent {resent:?}; spreadlogd resent received {}, repeats dropped {}",
        began.elapsed(),
        c["resent_received"],
        c["stream_repeats"]
    );
    drop(pipe.take());
}

#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_collector_kill_apache() {
    run("apache", Fault::CollectorKill);
}

#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_collector_kill_spread_pipe() {
    run("spread-pipe", Fault::CollectorKill);
}

#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_daemon_kill_apache() {
    run("apache", Fault::DaemonKill);
}

#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_collector_kill_apache_packed() {
    run("apache-packed", Fault::CollectorKill);
}

#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_daemon_kill_apache_packed() {
    run("apache-packed", Fault::DaemonKill);
}

#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_daemon_kill_spread_pipe() {
    run("spread-pipe", Fault::DaemonKill);
}

/// Acknowledgements come back through the real daemon: with nothing failing, every line is
/// released (the window empties) and nothing is resent.
#[test]
#[ignore = "needs REAL_SPREAD, a Spread daemon built outside the project"]
fn real_spread_acks_release_the_window() {
    let name = "real_spread_acks_release_the_window";
    let Some(bin) = real_spread(name) else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("realacks");
    let spread = RealSpread::start(&bin, &t.subdir("spread"));
    let central = t.join("www.log");
    let logd = Logd::local(&t, &spread.name(), &[("www", &central)]);
    let (a, _) = Apache::logging_www(
        &t,
        &spread.name(),
        apache::ONE_CHILD,
        apache::STATUS,
        apache::NOT_STATUS,
    );
    let st = a.client(|addr| http::load(addr, "k", 0..200, Duration::ZERO, ""));
    assert_eq!(st.ok, 200, "{st:?}");
    let c = wait_value("every line acknowledged", Duration::from_secs(20), || {
        let c = a.counters();
        if c["acked"] == 200 { Ok(c) } else { Err(c) }
    });
    let lc = logd.counters();
    println!("{name}: module {c:?}; spreadlogd {lc:?}");
    assert_eq!(c["resent"], 0, "{c:?}");
    assert_eq!(lc["lines_written"], 200, "{lc:?}");
}
