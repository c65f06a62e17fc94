//! Acknowledged delivery seen from outside (docs/contracts.md "Acknowledged delivery"), with a
//! plain file log beside as ground truth:
//!
//! * lines nobody acknowledges are visible on the status page and warned about, then resent
//!   once a collector comes;
//! * a full disk on the collector holds lines back unacknowledged, and they are written once
//!   when it has room again;
//! * a receiver that behaves like the C spreadlogd stands beside our collector through a daemon
//!   crash: it holds only log lines, none twice, while our central file equals the file log;
//! * error-log lines (`SpreadErrorLog`) come through a collector `kill -9` exactly once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use systest::apache::{self, Apache};
use systest::c_collector::CStyleCollector;
use systest::http;
use systest::mount::Tmpfs;
use systest::procs::{Daemon, Logd, logd_conf};
use systest::{TempDir, free_addr, skip, sorted_lines, wait_value};

const FORMAT: &str = "\"%U%q %>s\"";

/// Apache logging to `$www` and to a plain file beside (`<dir>/apache/access.log`).
fn apache(t: &TempDir, spread: &str, extra: &str) -> Apache {
    let body = format!(
        "SpreadDaemon {spread}\n\
         SpreadSpool {}/spool\n\
         SpreadConnectTimeout 200\n\
         SpreadRetryInterval 200\n\
         {extra}{}\
         CustomLog \"$www\" {FORMAT} {not}\n\
         CustomLog {}/access.log {FORMAT} {not}\n",
        t.subdir("spool").display(),
        apache::STATUS,
        t.subdir("apache").display(),
        not = apache::NOT_STATUS,
    );
    Apache::start(
        &t.subdir("apache"),
        None,
        free_addr(),
        apache::ONE_CHILD,
        &body,
    )
}

/// Apache (one child) that served `prefix` 0..60 with no collector yet: its child holds the 60
/// lines unacknowledged.
fn apache_holding_60(t: &TempDir, daemon: &Daemon, prefix: &'static str) -> Apache {
    let a = apache(t, &daemon.spread_name(), "");
    let st = a.client(move |addr| http::load(addr, prefix, 0..60, Duration::ZERO, ""));
    assert_eq!(st.ok, 60, "{st:?}");
    wait_value("60 lines held", Duration::from_secs(5), || {
        let g = a.gauges();
        if g.get("unacked_lines") == Some(&60.0) {
            Ok(())
        } else {
            Err(g)
        }
    });
    a
}

/// After [`apache_holding_60`] and a fault: `prefix` 60..90 more, then a collector comes, and
/// the central file ends equal to the file log, each of the 90 lines once. The module's
/// counters.
fn thirty_more_then_a_collector(
    name: &str,
    t: &TempDir,
    daemon: &Daemon,
    a: &Apache,
    prefix: &'static str,
) -> std::collections::BTreeMap<String, u64> {
    let st = a.client(move |addr| http::load(addr, prefix, 60..90, Duration::ZERO, ""));
    assert_eq!(st.ok, 30, "{st:?}");
    let central = t.join("www.log");
    let logd = Logd::local(t, &daemon.spread_name(), &[("www", &central)]);
    assert_central_is_file_log(a, &central, 90, "every line once");
    let c = a.counters();
    let lc = logd.counters();
    println!("{name}: module {c:?}\nspreadlogd {lc:?}");
    assert_eq!(lc["stream_repeats"], 0, "{lc:?}");
    c
}

/// The parent says it found the 60 lines of a child that died, and spooled them.
fn wait_parent_spooled_60(a: &Apache, what: &str) {
    wait_value(what, Duration::from_secs(40), || {
        if a.error_log()
            .contains("a child died holding 60 unacknowledged line(s); 60 spooled")
        {
            Ok(())
        } else {
            Err(a.error_log_tail())
        }
    });
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Wait until `central`, sorted, equals Apache's file log; panics with both sizes otherwise.
fn assert_central_is_file_log(a: &Apache, central: &Path, n: usize, what: &str) {
    let file_log = a.dir.join("access.log");
    wait_value(what, Duration::from_secs(40), || {
        let (want, got) = (sorted_lines(&read(&file_log)), sorted_lines(&read(central)));
        if want.len() == n && got == want {
            Ok(())
        } else {
            Err(format!(
                "file log {} lines, central {} lines\n{}",
                want.len(),
                got.len(),
                a.error_log_tail()
            ))
        }
    });
}

#[test]
fn unacknowledged_lines_are_shown_and_warned_then_resent() {
    let name = "unacknowledged_lines_are_shown_and_warned_then_resent";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("unacked");
    let daemon = Daemon::local(&t, &[]);
    let a = apache(&t, &daemon.spread_name(), "SpreadAckWarning 1\n");
    let n = 20;
    let st = a.client(move |addr| http::load(addr, "u", 0..n, Duration::ZERO, ""));
    assert_eq!(st.ok, n, "{st:?}");
    // No collector: the lines are held, their age shows, and the error log says why.
    let g = wait_value("the lines held and aging", Duration::from_secs(10), || {
        let g = a.gauges();
        let old = g.get("oldest_unacked_seconds").copied().unwrap_or(0.0);
        if g.get("unacked_lines") == Some(&(n as f64)) && old >= 1.5 {
            Ok(g)
        } else {
            Err(g)
        }
    });
    assert_eq!(g.get("connections_up"), Some(&1.0), "{g:?}");
    wait_value("the warning", Duration::from_secs(10), || {
        let log = a.error_log();
        if log.contains("no collector has acknowledged lines") {
            Ok(())
        } else {
            Err(a.error_log_tail())
        }
    });
    // A collector comes: it announces itself by answering, the lines are resent, released.
    let central = t.join("www.log");
    let _logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    assert_central_is_file_log(&a, &central, n as usize, "the held lines written");
    let g = wait_value("the window empty", Duration::from_secs(10), || {
        let g = a.gauges();
        if g.get("unacked_lines") == Some(&0.0) {
            Ok(g)
        } else {
            Err(g)
        }
    });
    let c = a.counters();
    println!("{name}: {c:?} {g:?}");
    assert_eq!((c["held"], c["acked"]), (n, n), "{c:?}");
    assert!(c["resent"] >= n, "{c:?}");
}

/// Scenario 9's setting: the central file on a 64 KiB tmpfs mostly taken by other data (so it
/// fills quickly), a daemon and a collector. Dropped in field order: processes, then the mount,
/// then the directory.
struct FullDisk {
    logd: Logd,
    daemon: Daemon,
    central: PathBuf,
    ballast: PathBuf,
    _tmpfs: Tmpfs,
    t: TempDir,
}

impl FullDisk {
    fn new(name: &str, tag: &str) -> Option<FullDisk> {
        let t = TempDir::new(tag);
        let logs = t.join("logs");
        let tmpfs = match Tmpfs::mount(&logs, "64k") {
            Ok(m) => m,
            Err(e) => {
                skip(name, &format!("cannot mount a tmpfs: {e}"));
                return None;
            }
        };
        let ballast = logs.join("other-data");
        std::fs::write(&ballast, vec![0u8; 40 * 1024]).expect("ballast");
        let daemon = Daemon::local(&t, &[]);
        let central = logs.join("www.log");
        let logd = Logd::start(
            t.path(),
            None,
            &logd_conf(&daemon.spread_name(), &t.join("gaps"), &[("www", &central)]),
        );
        Some(FullDisk {
            logd,
            daemon,
            central,
            ballast,
            _tmpfs: tmpfs,
            t,
        })
    }

    /// Wait until spreadlogd failed to write (the disk is full), then free the disk.
    fn fill_then_free(&self, held: impl Fn() -> bool) -> std::collections::BTreeMap<String, u64> {
        let c = wait_value("write errors", Duration::from_secs(20), || {
            let c = self.logd.counters();
            if c.get("write_errors").copied().unwrap_or(0) > 0 {
                Ok(c)
            } else {
                Err(c)
            }
        });
        // Lines not written must stay unacknowledged. The module's gauges are a snapshot its
        // background thread refreshes every 200-500 ms (docs/module.md), so the load may end
        // before they first show the held lines: wait that long, not more.
        wait_value(
            "lines not written to stay unacknowledged",
            Duration::from_secs(3),
            || {
                if held() {
                    Ok(())
                } else {
                    Err(format!("{c:?}"))
                }
            },
        );
        std::fs::remove_file(&self.ballast).expect("free the disk");
        c
    }

    fn assert_nothing_lost(&self, name: &str) {
        let c = self.logd.counters();
        println!("{name}: {c:?}");
        assert_eq!(c.get("lines_lost_on_write"), Some(&0), "{c:?}");
    }
}

/// Scenario 9 with spread-pipe: the same full disk, the same outcome.
#[test]
fn collector_disk_full_then_freed_every_line_written_once_spread_pipe() {
    let name = "collector_disk_full_then_freed_every_line_written_once_spread_pipe";
    let Some(d) = FullDisk::new(name, "logdfull-pipe") else {
        return;
    };
    let mut pipe =
        systest::procs::Pipe::start(d.t.path(), None, &d.daemon.spread_name(), "www", "p");
    let n = 200;
    let mut want = Vec::new();
    for i in 0..n {
        let line = format!("{} {}", systest::tally::id("p", i), "f".repeat(200));
        pipe.send(&line);
        want.push(line);
        std::thread::sleep(Duration::from_millis(2));
    }
    want.sort();
    d.fill_then_free(|| d.logd.counters().get("held_back").copied().unwrap_or(0) > 0);
    wait_value(
        "every line once the disk has room",
        Duration::from_secs(40),
        || {
            let got = sorted_lines(&read(&d.central));
            if got == want {
                Ok(())
            } else {
                Err(format!("{} of {} lines", got.len(), want.len()))
            }
        },
    );
    d.assert_nothing_lost(name);
    assert_eq!(pipe.finish(), 0, "{}", pipe.proc.log());
}

#[test]
fn collector_disk_full_then_freed_every_line_written_once() {
    let name = "collector_disk_full_then_freed_every_line_written_once";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let Some(d) = FullDisk::new(name, "logdfull") else {
        return;
    };
    let a = apache(&d.t, &d.daemon.spread_name(), "");
    let pad = format!("?{}", "f".repeat(200));
    let n = 200;
    let st = a.client(move |addr| http::load(addr, "f", 0..n, Duration::from_millis(2), &pad));
    assert_eq!(st.ok, n, "{st:?}");
    d.fill_then_free(|| a.gauges().get("unacked_lines").copied().unwrap_or(0.0) > 0.0);
    assert_central_is_file_log(
        &a,
        &d.central,
        n as usize,
        "every line once the disk has room",
    );
    d.assert_nothing_lost(name);
}

#[test]
fn a_c_style_collector_beside_sees_each_line_once_through_a_daemon_crash() {
    let name = "a_c_style_collector_beside_sees_each_line_once_through_a_daemon_crash";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("cbeside");
    let mut daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let c_file = t.join("c-style.log");
    let c_style = CStyleCollector::start(&daemon.spread_name(), &["www"], &c_file);
    let a = apache(&t, &daemon.spread_name(), "");
    let n = 400;
    let load = {
        let addr = a.addr;
        std::thread::spawn(move || http::load(addr, "c", 0..n, Duration::from_millis(5), ""))
    };
    std::thread::sleep(Duration::from_millis(700));
    daemon.proc.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(150));
    daemon.proc.kill();
    std::thread::sleep(Duration::from_millis(300));
    daemon.restart(None);
    logd.wait_joined(2);
    c_style.wait_joined(2);
    let st = load.join().expect("load");
    assert_eq!(st.ok, n, "{st:?}");
    assert_central_is_file_log(&a, &central, n as usize, "central == file log");
    std::thread::sleep(Duration::from_millis(500));
    let file_log = sorted_lines(&read(&a.dir.join("access.log")));
    let c_lines = sorted_lines(&c_style.text());
    let mut distinct = c_lines.clone();
    distinct.dedup();
    let strangers: Vec<&String> = c_lines
        .iter()
        .filter(|l| file_log.binary_search(l).is_err())
        .collect();
    let c = a.counters();
    println!(
        "{name}: file log {}, C-style collector {} lines ({} missed in the crash), module resent {}",
        file_log.len(),
        c_lines.len(),
        file_log.len() - distinct.len(),
        c["resent"]
    );
    assert!(strangers.is_empty(), "not log lines: {strangers:?}");
    assert_eq!(distinct.len(), c_lines.len(), "a line reached it twice");
    assert!(c["resent"] > 0, "{c:?}");
}

#[test]
fn error_log_lines_through_a_collector_kill_arrive_once() {
    let name = "error_log_lines_through_a_collector_kill_arrive_once";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("errlog");
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let errors = t.join("errors.log");
    let mut logd = Logd::local(
        &t,
        &daemon.spread_name(),
        &[("www", &central), ("errors", &errors)],
    );
    // Each request for a missing file writes one AH00128 line at info level.
    let a = apache(
        &t,
        &daemon.spread_name(),
        "LogLevel info\nSpreadErrorLog $errors info\n",
    );
    let n = 300;
    let load = {
        let addr = a.addr;
        std::thread::spawn(move || {
            let mut st = http::LoadStats::default();
            for i in 0..n {
                let r = http::get(addr, &format!("/missing/e{i:05}"));
                st.sent += 1;
                st.ok += u64::from(r.status == 404);
                std::thread::sleep(Duration::from_millis(3));
            }
            st
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    logd.proc.kill();
    std::thread::sleep(Duration::from_secs(3));
    let conf = read(logd.conf());
    logd = Logd::start(t.path(), None, &conf);
    let st = load.join().expect("load");
    assert_eq!(st.ok, n, "{st:?}");
    // Ground truth: the ids in Apache's own error log; the central file must hold each once.
    let ids = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.contains("AH00128"))
            .filter_map(|l| {
                let i = l.find("/missing/e")?;
                Some(l[i..i + 15].to_owned())
            })
            .collect();
        v.sort();
        v
    };
    let want = ids(&a.error_log());
    assert_eq!(want.len() as u64, n, "{}", a.error_log_tail());
    wait_value("every error line once", Duration::from_secs(40), || {
        let got = ids(&read(&errors));
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{} of {} ({} lines)",
                got.len(),
                want.len(),
                read(&errors).lines().count()
            ))
        }
    });
    let c = logd.counters();
    println!("{name}: {n} error lines through a kill -9 of spreadlogd: {c:?}");
    assert!(c["resent_received"] > 0, "{c:?}");
}

/// Scenario 7 of the acknowledged-delivery issue: the collector is down until more than 100,000
/// lines wait (held in the window, then spooled), then comes back: every line once.
#[test]
fn collector_down_past_100000_lines_then_back_apache() {
    let name = "collector_down_past_100000_lines_then_back_apache";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("longdown");
    let daemon = Daemon::local(&t, &[]);
    // The same unique id in both logs (mod_unique_id), whatever the load tool sends.
    let fmt = "\"%{UNIQUE_ID}e %U %>s\"";
    let body = format!(
        "LoadModule unique_id_module /usr/lib/apache2/modules/mod_unique_id.so\n\
         SpreadDaemon {}\n\
         SpreadSpool {}/spool\n\
         {}\
         CustomLog \"$www\" {fmt} {not}\n\
         CustomLog {}/access.log {fmt} {not}\n",
        daemon.spread_name(),
        t.subdir("spool").display(),
        apache::STATUS,
        t.subdir("apache").display(),
        not = apache::NOT_STATUS,
    );
    let a = Apache::start(
        &t.subdir("apache"),
        None,
        free_addr(),
        apache::ONE_CHILD,
        &body,
    );
    let n: u64 = 110_000;
    let url = format!("http://{}/index.html", a.addr);
    let out = std::process::Command::new("ab")
        .args(["-q", "-k", "-c", "4", "-n", &n.to_string(), &url])
        .output()
        .expect("run ab (apache2-utils)");
    assert!(
        out.status.success(),
        "ab: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = a.counters();
    let waiting = c["held"] + c["spooled"];
    assert!(
        waiting >= 100_000 && c["sent"] + c["spooled"] == n,
        "more than 100,000 lines held or spooled: {c:?}"
    );
    let central = t.join("www.log");
    let started = std::time::Instant::now();
    let logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    assert_central_is_file_log(
        &a,
        &central,
        n as usize,
        "every line once the collector is back",
    );
    let took = started.elapsed();
    let c = a.counters();
    let lc = logd.counters();
    println!(
        "{name}: {n} lines with no collector: held {}, spooled {} (window full {}); collector back: \
         all written in {took:?}; resent {}, replayed {}, spreadlogd resent received {}, repeats \
         dropped {}",
        c["held"],
        c["spooled"],
        c["window_full"],
        c["resent"],
        c["replayed"],
        lc["resent_received"],
        lc["stream_repeats"]
    );
}

#[test]
fn collector_down_past_100000_lines_then_back_spread_pipe() {
    let name = "collector_down_past_100000_lines_then_back_spread_pipe";
    let t = TempDir::new("longdown-pipe");
    let daemon = Daemon::local(&t, &[]);
    let mut pipe = systest::procs::Pipe::start(t.path(), None, &daemon.spread_name(), "www", "p");
    let n = 120_000;
    let mut lines = String::new();
    for i in 0..n {
        lines.push_str(&format!(
            "{} waited for the collector\n",
            systest::tally::id("p", i)
        ));
    }
    {
        use std::io::Write;
        let mut w = pipe.take_stdin();
        w.write_all(lines.as_bytes()).expect("write to spread-pipe");
        std::mem::forget(w);
    }
    std::thread::sleep(Duration::from_secs(2));
    let central = t.join("www.log");
    let started = std::time::Instant::now();
    let logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let want = sorted_lines(&lines);
    wait_value("every line once", Duration::from_secs(90), || {
        let got = sorted_lines(&read(&central));
        if got == want {
            Ok(())
        } else {
            Err(format!("{} of {} lines", got.len(), want.len()))
        }
    });
    let lc = logd.counters();
    println!(
        "{name}: {n} lines with no collector; collector back: all written in {:?}; spreadlogd \
         resent received {}, repeats dropped {}",
        started.elapsed(),
        lc["resent_received"],
        lc["stream_repeats"]
    );
    assert!(lc["resent_received"] > 0, "{lc:?}");
}

/// spread-pipe ends while its lines wait for acknowledgements: they go to its spool with their
/// stream and number, and the next spread-pipe on that spool resends them, once.
#[test]
fn spread_pipe_ends_unacknowledged_the_next_run_resends_its_lines() {
    let t = TempDir::new("pipe-end");
    let daemon = Daemon::local(&t, &[]);
    let mut first = systest::procs::Pipe::start(t.path(), None, &daemon.spread_name(), "www", "p");
    for i in 0..50 {
        first.send(&format!("{} first run", systest::tally::id("p", i)));
    }
    // No collector: nothing is acknowledged; at the end they are spooled, numbered.
    assert_eq!(first.finish(), 0, "{}", first.proc.log());
    let log = first.proc.log();
    assert!(
        log.contains("unacknowledged line(s) kept in the spool"),
        "{log}"
    );
    let central = t.join("www.log");
    let logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let mut second = systest::procs::Pipe::start(t.path(), None, &daemon.spread_name(), "www", "p");
    for i in 50..60 {
        second.send(&format!("{} second run", systest::tally::id("p", i)));
    }
    let want: Vec<String> = {
        let mut v: Vec<String> = (0..50)
            .map(|i| format!("{} first run", systest::tally::id("p", i)))
            .chain((50..60).map(|i| format!("{} second run", systest::tally::id("p", i))))
            .collect();
        v.sort();
        v
    };
    wait_value("both runs' lines once", Duration::from_secs(30), || {
        let got = sorted_lines(&read(&central));
        if got == want { Ok(()) } else { Err(got.len()) }
    });
    assert_eq!(second.finish(), 0, "{}", second.proc.log());
    let lc = logd.counters();
    assert!(lc["resent_received"] >= 50, "{lc:?}");
}

/// A graceful restart while nothing is acknowledged (no collector): each exiting child moves its
/// unacknowledged lines to the spool with their stream and number; the new children's replayer
/// takes them back and resends them once a collector comes — each once.
#[test]
fn graceful_restart_with_lines_unacknowledged_spools_and_resends_them() {
    let name = "graceful_restart_with_lines_unacknowledged_spools_and_resends_them";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("graceful");
    let daemon = Daemon::local(&t, &[]);
    let a = apache_holding_60(&t, &daemon, "g");
    // Graceful restart: the old children finish and exit (their windows to the spool).
    a.proc.signal(libc::SIGUSR1);
    let spool = t.join("spool/spool");
    wait_value("the windows spooled", Duration::from_secs(20), || {
        let n = std::fs::metadata(&spool).map_or(0, |m| m.len());
        if n > 0 { Ok(()) } else { Err(n) }
    });
    let c = thirty_more_then_a_collector(name, &t, &daemon, &a, "g");
    assert!(c["reheld"] >= 60, "the spooled window taken back: {c:?}");
}

/// Lines a replayer took back from the spool into its window (sent before, unacknowledged: no
/// collector) are held by that child alone: the child is killed with SIGKILL, and the parent
/// finds them in the replayer's slot of shared memory, spools them again, and the next child
/// resends them once a collector comes: the central file ends equal to the file log.
#[test]
fn child_killed_while_its_replayer_holds_spooled_lines_loses_nothing() {
    let name = "child_killed_while_its_replayer_holds_spooled_lines_loses_nothing";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("replaykill");
    let daemon = Daemon::local(&t, &[]);
    let a = apache_holding_60(&t, &daemon, "k");
    // The child's graceful exit moves its window to the spool; the new child's replayer takes
    // the lines back into its own window.
    a.proc.signal(libc::SIGUSR1);
    wait_value(
        "the spooled lines taken back",
        Duration::from_secs(20),
        || {
            let c = a.counters();
            if c.get("reheld") == Some(&60) {
                Ok(())
            } else {
                Err(c)
            }
        },
    );
    let children = a.children();
    assert_eq!(
        children.len(),
        1,
        "{name}: one child holds them: {children:?}"
    );
    // SAFETY: kill(2) on this Apache's only child.
    unsafe { libc::kill(children[0], libc::SIGKILL) };
    wait_parent_spooled_60(&a, "the parent spooling the replayer's lines");
    let c = thirty_more_then_a_collector(name, &t, &daemon, &a, "k");
    assert_eq!(c["orphans_spooled"], 60, "{c:?}");
}

/// A child of the previous generation, still serving a request after a graceful restart, is
/// killed with SIGKILL while it holds every line it logged unacknowledged (no collector yet).
/// The restart unloaded and reloaded the module, yet the parent still finds those lines in the
/// old generation's shared memory, spools them, and the new child resends them once a collector
/// comes: the central file ends equal to the file log, each line once.
#[test]
fn old_generation_child_killed_after_a_graceful_restart_loses_nothing() {
    let name = "old_generation_child_killed_after_a_graceful_restart_loses_nothing";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("oldgen");
    let daemon = Daemon::local(&t, &[]);
    let a = apache_holding_60(&t, &daemon, "o");
    let old = a.children();
    assert_eq!(
        old.len(),
        1,
        "{name}: one child before the restart: {old:?}"
    );
    // A request that never ends keeps the old child's worker reading (Timeout, 60 s), so the
    // child outlives the restart.
    let mut slow = std::net::TcpStream::connect(a.addr).expect("connect");
    std::io::Write::write_all(&mut slow, b"GET /i/slow HTTP/1.1\r\nHost: localhost\r\n")
        .expect("a partial request");
    std::thread::sleep(Duration::from_millis(300));
    a.proc.signal(libc::SIGUSR1);
    wait_value(
        "the new generation's child beside the old one",
        Duration::from_secs(20),
        || {
            let now = a.children();
            if now.contains(&old[0]) && now.iter().any(|p| !old.contains(p)) {
                Ok(())
            } else {
                Err(now)
            }
        },
    );
    // SAFETY: kill(2) on the old generation's child, found among this Apache's children above.
    unsafe { libc::kill(old[0], libc::SIGKILL) };
    wait_parent_spooled_60(&a, "the parent spooling the old child's lines");
    let c = thirty_more_then_a_collector(name, &t, &daemon, &a, "o");
    assert_eq!(c["orphans_spooled"], 60, "{c:?}");
    drop(slow);
}

/// Scenario 8: two collectors on one group (two log hosts) with `SpreadAckAll On` /
/// `spread-pipe -a`; one is killed (`kill -9`) under load and restarted 3 s later: both files
/// end equal to the file log.
fn two_collectors_both_complete(kind: &str) {
    let name = format!("two_collectors_both_complete[{kind}]");
    if kind == "apache"
        && let Some(why) = apache::unavailable()
    {
        return skip(&name, &why);
    }
    let t = TempDir::new("twologd");
    let daemon = Daemon::local(&t, &[]);
    let (a_dir, b_dir) = (t.subdir("a"), t.subdir("b"));
    let (a_file, b_file) = (a_dir.join("www.log"), b_dir.join("www.log"));
    let a_conf = logd_conf(
        &daemon.spread_name(),
        &a_dir.join("gaps"),
        &[("www", &a_file)],
    );
    let b_conf = logd_conf(
        &daemon.spread_name(),
        &b_dir.join("gaps"),
        &[("www", &b_file)],
    );
    let logd_a = Logd::start(&a_dir, None, &a_conf);
    let mut logd_b = Logd::start(&b_dir, None, &b_conf);
    let n: u64 = 1500;
    let mut piped = Vec::new();
    let (apache, mut pipe) = if kind == "apache" {
        (
            Some(apache(&t, &daemon.spread_name(), "SpreadAckAll On\n")),
            None,
        )
    } else {
        (
            None,
            Some(systest::procs::Pipe::start_with(
                t.path(),
                None,
                &daemon.spread_name(),
                "www",
                "p",
                &["-a"],
            )),
        )
    };
    let load = match (&apache, &mut pipe) {
        (Some(a), _) => {
            let addr = a.addr;
            std::thread::spawn(move || {
                let st = http::load(addr, "t", 0..n, Duration::from_millis(2), "");
                assert_eq!(st.ok, n, "{st:?}");
            })
        }
        (None, Some(p)) => {
            use std::io::Write;
            let mut w = p.take_stdin();
            piped = (0..n)
                .map(|i| format!("{} to both log hosts", systest::tally::id("p", i)))
                .collect();
            let lines = piped.clone();
            std::thread::spawn(move || {
                for l in lines {
                    writeln!(w, "{l}").expect("write to spread-pipe");
                    std::thread::sleep(Duration::from_millis(2));
                }
                std::mem::forget(w);
            })
        }
        _ => unreachable!(),
    };
    std::thread::sleep(Duration::from_millis(800));
    logd_b.proc.kill();
    std::thread::sleep(Duration::from_secs(3));
    logd_b = Logd::start(&b_dir, None, &b_conf);
    load.join().expect("load");
    let want = match &apache {
        Some(a) => sorted_lines(&read(&a.dir.join("access.log"))),
        None => {
            let mut v = piped.clone();
            v.sort();
            v
        }
    };
    assert_eq!(want.len() as u64, n);
    for (who, file) in [("a", &a_file), ("b", &b_file)] {
        wait_value(
            &format!("collector {who}'s file == file log"),
            Duration::from_secs(60),
            || {
                let got = sorted_lines(&read(file));
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{} of {} lines", got.len(), want.len()))
                }
            },
        );
    }
    let (ca, cb) = (logd_a.counters(), logd_b.counters());
    println!(
        "{name}: {n} lines, collector b killed for 3 s: both files == file log; b (restarted) \
         resent received {}, repeats {}; a resent received {}, repeats {}",
        cb["resent_received"], cb["stream_repeats"], ca["resent_received"], ca["stream_repeats"]
    );
    assert!(cb["resent_received"] > 0, "{cb:?}");
    drop(pipe.take());
}

#[test]
fn two_collectors_with_ack_all_both_complete_apache() {
    two_collectors_both_complete("apache");
}

#[test]
fn two_collectors_with_ack_all_both_complete_spread_pipe() {
    two_collectors_both_complete("spread-pipe");
}

/// A line longer than any Spread message: spread-pipe sends it in pieces, spreadlogd writes it
/// whole, once, with no other sender's line inside it — while another spread-pipe sends short
/// lines to the same group all the time.
#[test]
fn a_line_longer_than_a_message_is_written_whole() {
    let t = TempDir::new("longline");
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let mut short = systest::procs::Pipe::start(t.path(), None, &daemon.spread_name(), "www", "s");
    let mut long = systest::procs::Pipe::start(t.path(), None, &daemon.spread_name(), "www", "l");
    let mut want = Vec::new();
    let noise = {
        use std::io::Write;
        let mut w = short.take_stdin();
        let lines: Vec<String> = (0..400)
            .map(|i| format!("{} short", systest::tally::id("s", i)))
            .collect();
        want.extend(lines.iter().cloned());
        std::thread::spawn(move || {
            for l in lines {
                writeln!(w, "{l}").expect("write");
                std::thread::sleep(Duration::from_millis(1));
            }
            // Dropped here: end of its input.
        })
    };
    // 420 KB: three pieces and a bit.
    let big: String = (0..42_000).map(|i| format!("{:09}|", i)).collect();
    for (i, body) in [&big[..], "after the long one"].iter().enumerate() {
        let line = format!("{} {body}", systest::tally::id("l", i as u64));
        long.send(&line);
        want.push(line);
    }
    noise.join().expect("noise");
    want.sort();
    wait_value("every line whole, once", Duration::from_secs(30), || {
        let got = sorted_lines(&read(&central));
        if got == want {
            Ok(())
        } else {
            Err(format!("{} of {} lines", got.len(), want.len()))
        }
    });
    let c = logd.counters();
    assert!(c["reassembled"] >= 1, "{c:?}");
    assert_eq!(long.finish(), 0, "{}", long.proc.log());
    assert_eq!(short.finish(), 0, "{}", short.proc.log());
}
