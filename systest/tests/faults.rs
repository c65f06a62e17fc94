//! The fault suite on one machine (unix sockets in temp dirs, Apache on 127.0.0.1): daemon
//! SIGKILL/restart and SIGSTOP/SIGCONT under load, spreadlogd SIGHUP rotation every 100 ms under
//! load, a full spool disk, a slow spread-tail beside spreadlogd. Each scenario runs with Apache and
//! the module as the sender; scenarios that need a spool also run with `spread-pipe` as a stand-in.
//! Every one ends with the same account (CONTRACTS §1/§2): lines sent = lines written once
//! (+ spooled-and-replayed) + lines lost after hand-over and counted as gaps.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use systest::accounting::{Accounting, SenderBook};
use systest::apache::{self, Apache};
use systest::http::{self, LoadStats};
use systest::mount::Tmpfs;
use systest::procs::{Daemon, Logd, Pipe, tail, tail_piped};
use systest::tally::{Tally, id};
use systest::{TempDir, free_addr, skip, wait_until};

const GROUP: &str = "www";

/// A 1 KiB query string (`%q` is in the LogFormat).
static BIG_PAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("?{}", "q".repeat(1023)));

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Apache,
    Pipe,
}

enum Sender {
    Apache(Apache),
    Pipe(Pipe),
}

/// Processes first (they drop first), the directory last.
struct Rig {
    sender: Sender,
    logd: Logd,
    daemon: Daemon,
    central: PathBuf,
    t: TempDir,
}

fn unavailable(kind: Kind) -> Option<String> {
    match kind {
        Kind::Apache => apache::unavailable(),
        Kind::Pipe => None,
    }
}

fn apache_body(spread: &str, spool_dir: &Path, extra: &str) -> String {
    format!(
        "SpreadDaemon {spread}\n\
         SpreadSpool {}/spool\n\
         SpreadConnectTimeout 200\n\
         SpreadRetryInterval 200\n\
         {}{extra}\
         CustomLog \"${GROUP}\" \"%U%q %>s\" {}\n",
        spool_dir.display(),
        apache::STATUS,
        apache::NOT_STATUS
    )
}

impl Rig {
    fn new(tag: &str, kind: Kind) -> Rig {
        let t = TempDir::new(tag);
        let daemon = Daemon::local(&t, &[]);
        let central = t.join("www.log");
        let logd = Logd::local(&t, &daemon.spread_name(), &[(GROUP, &central)]);
        let sender = match kind {
            Kind::Apache => Sender::Apache(Apache::start(
                &t.subdir("apache"),
                None,
                free_addr(),
                apache::ONE_CHILD,
                &apache_body(&daemon.spread_name(), &t.subdir("spool"), ""),
            )),
            Kind::Pipe => Sender::Pipe(Pipe::start(
                t.path(),
                None,
                &daemon.spread_name(),
                GROUP,
                "p",
            )),
        };
        Rig {
            sender,
            logd,
            daemon,
            central,
            t,
        }
    }

    /// The run's name (`scenario[kind]`) and rig, or None (said as a skip) where `kind` cannot
    /// run here.
    fn unless_skipped(scenario: &str, tag: &str, kind: Kind) -> Option<(String, Rig)> {
        let name = format!("{scenario}[{kind:?}]");
        match unavailable(kind) {
            Some(why) => {
                skip(&name, &why);
                None
            }
            None => Some((name, Rig::new(tag, kind))),
        }
    }

    /// [`Rig::settle`] on the central file, within 25 s.
    fn settle_central(&self, n: u64) -> Accounting {
        let central = self.central.clone();
        self.settle(&|| vec![central.clone()], n, Duration::from_secs(25))
    }

    fn who(&self) -> &'static str {
        match self.sender {
            Sender::Apache(_) => "a",
            Sender::Pipe(_) => "p",
        }
    }

    /// Send ids `range` from a background thread, one every `pause`.
    fn start_load(
        &mut self,
        range: std::ops::Range<u64>,
        pause: Duration,
        suffix: &'static str,
    ) -> JoinHandle<LoadStats> {
        let who = self.who();
        match &mut self.sender {
            Sender::Apache(a) => {
                let addr = a.addr;
                std::thread::spawn(move || http::load(addr, who, range, pause, suffix))
            }
            Sender::Pipe(p) => {
                let mut w = p.take_stdin();
                std::thread::spawn(move || {
                    let mut st = LoadStats::default();
                    for n in range {
                        let t0 = Instant::now();
                        let ok = writeln!(w, "{}{suffix} {GROUP}", id(who, n)).is_ok();
                        st.sent += 1;
                        st.ok += u64::from(ok);
                        st.slowest = st.slowest.max(t0.elapsed());
                        if !pause.is_zero() {
                            std::thread::sleep(pause);
                        }
                    }
                    // Keep stdin open until the scenario ends: EOF would stop a pending replay.
                    std::mem::forget(w);
                    st
                })
            }
        }
    }

    fn book(&self) -> SenderBook {
        match &self.sender {
            Sender::Apache(a) => {
                let c = a.counters();
                let g = |k: &str| c.get(k).copied().unwrap_or(0);
                SenderBook {
                    spooled: g("spooled"),
                    replayed: g("replayed"),
                    dropped: g("dropped_spool_full") + g("dropped_spool_error"),
                }
            }
            Sender::Pipe(p) => {
                let replayed = p.replayed();
                SenderBook {
                    // spread-pipe does not count what it spools; what is left is not replayed.
                    spooled: replayed + u64::from(p.spool_left() > 0),
                    replayed,
                    dropped: p.loss_reports(),
                }
            }
        }
    }

    fn sender_log(&self) -> String {
        match &self.sender {
            Sender::Apache(a) => a.error_log_tail(),
            Sender::Pipe(p) => tail(&p.proc.log(), 20),
        }
    }

    fn diagnostics(&self) -> String {
        format!(
            "spreadlogd:\n{}\nspread-daemon:\n{}\nsender:\n{}",
            tail(&self.logd.proc.log(), 12),
            tail(&self.daemon.proc.log(), 12),
            self.sender_log()
        )
    }

    /// Poll until every line is accounted for or `timeout`; the final account either way.
    fn settle(&self, files: &dyn Fn() -> Vec<PathBuf>, n: u64, timeout: Duration) -> Accounting {
        let sent = [(self.who(), n)];
        let deadline = Instant::now() + timeout;
        loop {
            let paths = files();
            let tally = Tally::of_files(paths.iter().map(PathBuf::as_path));
            let acc = Accounting::new(&tally, &sent, &self.logd.counters(), self.book());
            if acc.balanced() || Instant::now() > deadline {
                return acc;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    }
}

fn assert_load(st: &LoadStats, n: u64, bound: Duration, rig: &Rig) {
    st.assert_served(n, bound, rig.who(), &rig.diagnostics());
}

fn daemon_sigkill_restart_under_load(kind: Kind) {
    let Some((name, mut rig)) =
        Rig::unless_skipped("daemon_sigkill_restart_under_load", "kill", kind)
    else {
        return;
    };
    let n = 600;
    let load = rig.start_load(0..n, Duration::from_millis(4), "");
    let mut kills = 0;
    for at in [Duration::from_millis(700), Duration::from_millis(700)] {
        std::thread::sleep(at);
        rig.daemon.proc.kill();
        kills += 1;
        std::thread::sleep(Duration::from_millis(300));
        rig.daemon.restart(None);
        rig.logd.wait_joined(1 + kills);
    }
    let st = load.join().expect("load");
    assert_load(&st, n, Duration::from_secs(2), &rig);
    let acc = rig.settle_central(n);
    let announced = rig
        .logd
        .proc
        .log()
        .lines()
        .filter(|l| l.contains("sequence gap") && l.contains("announced by the sender"))
        .count();
    println!("{name}: {kills} SIGKILL+restart, {acc}; gaps found by an announcement: {announced}");
    acc.assert_balanced(&rig.diagnostics());
}

fn daemon_sigstop_sigcont_under_load(kind: Kind) {
    let Some((name, mut rig)) =
        Rig::unless_skipped("daemon_sigstop_sigcont_under_load", "stop", kind)
    else {
        return;
    };
    // 1 KiB lines as fast as they come: the stopped daemon's socket buffer fills, so the senders'
    // send timeouts fire (the module then spools what it could not hand over).
    let n = 2000;
    let load = rig.start_load(0..n, Duration::ZERO, &BIG_PAD);
    std::thread::sleep(Duration::from_millis(300));
    rig.daemon.proc.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    rig.daemon.proc.signal(libc::SIGCONT);
    let st = load.join().expect("load");
    assert_load(&st, n, Duration::from_secs(2), &rig);
    let acc = rig.settle_central(n);
    println!(
        "{name}: stopped 1.5 s, 1 KiB lines, slowest {:?}; {acc}",
        st.slowest
    );
    acc.assert_balanced(&rig.diagnostics());
}

fn spreadlogd_sighup_rotation_every_100ms(kind: Kind) {
    let Some((name, mut rig)) =
        Rig::unless_skipped("spreadlogd_sighup_rotation_every_100ms", "hup", kind)
    else {
        return;
    };
    let n = 1500;
    let load = rig.start_load(0..n, Duration::from_millis(1), "");
    let mut rotations = 0u32;
    let started = Instant::now();
    while !load.is_finished() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        rotations += 1;
        let _ = std::fs::rename(&rig.central, rig.t.join(&format!("www.log.{rotations}")));
        rig.logd.proc.signal(libc::SIGHUP);
    }
    let st = load.join().expect("load");
    assert_load(&st, n, Duration::from_secs(2), &rig);
    let dir = rig.t.path().to_owned();
    let segments = move || -> Vec<PathBuf> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|f| f.to_str())
                            .is_some_and(|f| f.starts_with("www.log"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let acc = rig.settle(&segments, n, Duration::from_secs(20));
    let files = segments().len();
    println!("{name}: {rotations} rotations, {files} files, {acc}");
    acc.assert_balanced(&rig.diagnostics());
    assert_eq!(acc.missing, 0, "a rotation lost lines: {acc}");
    assert!(
        acc.duplicates.is_empty(),
        "a rotation duplicated lines: {acc}"
    );
    assert!(
        rotations >= 5,
        "the load ended before rotating: {rotations}"
    );
    assert!(rig.logd.proc.alive(), "spreadlogd died");
}

/// Each scenario runs with Apache and the module as the sender, and with `spread-pipe`:
/// `<scenario>::apache` and `<scenario>::spread_pipe`.
macro_rules! with_each_sender {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn apache() {
                    super::$scenario(super::Kind::Apache);
                }

                #[test]
                fn spread_pipe() {
                    super::$scenario(super::Kind::Pipe);
                }
            }
        )+
    };
}

with_each_sender!(
    daemon_sigkill_restart_under_load,
    daemon_sigstop_sigcont_under_load,
    spreadlogd_sighup_rotation_every_100ms
);

/// Send `n` padded requests: every one is served, none slower than 2 s.
fn load_served(a: &Apache, n: u64) -> LoadStats {
    let st = http::load(a.addr, "a", 0..n, Duration::ZERO, &pad());
    st.assert_served(n, Duration::from_secs(2), "Apache", &a.error_log_tail());
    st
}

/// 200 bytes of query string: lines fill a small disk fast (`%q` is in the LogFormat).
fn pad() -> String {
    format!("?{}", "p".repeat(200))
}

#[test]
fn spool_disk_full_apache_keeps_serving_and_says_so() {
    spool_disk_full(true, false);
}

#[test]
fn spool_disk_full_error_log_names_the_cause() {
    spool_disk_full(true, true);
}

#[test]
fn spool_replays_while_its_disk_is_still_full() {
    spool_disk_full(false, false);
}

/// A 64k tmpfs spool, half taken by other data; no daemon, so every line goes to the spool until
/// the disk is full. Then (optionally) the other data is deleted, the daemon and a collector come,
/// and the spool must drain.
fn spool_disk_full(free_space_before_replay: bool, require_cause: bool) {
    let name = format!("spool_disk_full[free space before replay: {free_space_before_replay}]");
    if let Some(why) = apache::unavailable() {
        return skip(&name, &why);
    }
    let t = TempDir::new("diskfull");
    let spool_dir = t.join("spool");
    let _tmpfs = match Tmpfs::mount(&spool_dir, "64k") {
        Ok(m) => m,
        Err(e) => return skip(&name, &format!("cannot mount a tmpfs: {e}")),
    };
    let ballast = spool_dir.join("other-data");
    std::fs::write(&ballast, vec![0u8; 32 * 1024]).expect("write ballast");
    // No daemon yet: every line must go to the spool, which fills up.
    let run = t.subdir("run");
    let spread = run.join("4803").display().to_string();
    let a = Apache::start(
        &t.subdir("apache"),
        None,
        free_addr(),
        apache::ONE_CHILD,
        &apache_body(&spread, &spool_dir, "SpreadRetryInterval 50\n"),
    );
    let n = 300;
    let st = load_served(&a, n);
    let c = a.counters();
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    let (spooled, full, errors) = (
        g("spooled"),
        g("dropped_spool_full"),
        g("dropped_spool_error"),
    );
    assert_eq!(
        spooled + full + errors,
        n,
        "every line is spooled or counted as dropped: {c:?}"
    );
    assert!(
        spooled > 0 && full + errors > 0,
        "the spool neither took lines nor filled: {c:?}"
    );
    let log = a.error_log();
    let said = log
        .lines()
        .find(|l| l.contains("LOST log lines") && l.contains(&spool_dir.display().to_string()))
        .unwrap_or_else(|| {
            panic!(
                "no clear error naming the spool in the error log:\n{}",
                a.error_log_tail()
            )
        })
        .to_owned();
    if require_cause {
        assert!(
            log.contains("No space left on device"),
            "the error log does not say the spool's disk is full:\n{}",
            a.error_log_tail()
        );
    }
    // Still serving once the disk is full.
    let after = http::get(a.addr, &format!("{}{}", id("a", n), pad()));
    assert_eq!(after.status, 200);
    // That request's line went to the spool or was dropped too: count again.
    let spooled = a.counters().get("spooled").copied().unwrap_or(0);
    if free_space_before_replay {
        std::fs::remove_file(&ballast).expect("delete ballast");
    }
    // The daemon and a collector come: what the spool held is replayed, once.
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let logd = Logd::local(&t, &daemon.spread_name(), &[(GROUP, &central)]);
    let mut replayed = 0;
    wait_until("the spool replayed", Duration::from_secs(30), || {
        replayed = a.counters().get("replayed").copied().unwrap_or(0);
        replayed >= spooled
    });
    let tally = systest::wait_value(
        "the replayed lines in the central file",
        Duration::from_secs(15),
        || {
            let t = Tally::of_file(&central);
            if t.count_of("a") as u64 >= spooled {
                Ok(t)
            } else {
                Err(t.report(&[("a", n + 1)]))
            }
        },
    );
    assert!(
        tally.duplicates().is_empty(),
        "{}",
        tally.report(&[("a", n + 1)])
    );
    assert_eq!(
        (replayed, tally.count_of("a") as u64),
        (spooled, spooled),
        "replayed and written must equal what was spooled: {}",
        tally.report(&[("a", n + 1)])
    );
    let lc = logd.counters();
    println!(
        "{name}: sent {n} with 32k free for the spool and no daemon: spooled {spooled}, dropped (full {full}, \
         errors {errors}), every request served (slowest {:?}); error log: {said:?}; after the daemon came: \
         replayed {replayed}, central {} distinct ({} lines), gaps {:?}",
        st.slowest,
        tally.count_of("a"),
        tally.total(),
        lc.get("lines_lost_in_gaps")
    );
}

#[test]
fn slow_spread_tail_beside_spreadlogd_only_the_tail_is_cut_off() {
    let name = "slow_spread_tail_beside_spreadlogd_only_the_tail_is_cut_off";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("slowtail");
    let daemon = Daemon::local(&t, &["--max-session-messages", "100"]);
    let central = t.join("www.log");
    let logd = Logd::local(&t, &daemon.spread_name(), &[(GROUP, &central)]);
    let a = Apache::start(
        &t.subdir("apache"),
        None,
        free_addr(),
        apache::TWO_CHILDREN,
        &apache_body(&daemon.spread_name(), &t.subdir("spool"), ""),
    );
    // Its stdout is a pipe nobody reads once it is known to receive: when the pipe is full it
    // stops reading the daemon.
    let mut tail_proc = tail_piped(t.path(), &daemon.spread_name(), GROUP);
    let out = tail_proc.child.stdout.take().expect("tail stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(out);
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) > 0 {
            if line.contains("/i/warm/") {
                let _ = tx.send(r);
                return;
            }
            line.clear();
        }
    });
    let started = Instant::now();
    let _unread_stdout = loop {
        let k = started.elapsed().as_millis() as u64;
        assert_eq!(http::get(a.addr, &id("warm", k)).status, 200);
        if let Ok(r) = rx.recv_timeout(Duration::from_millis(200)) {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "spread-tail receives nothing: {}",
            tail_proc.log()
        );
    };
    let n = 1500;
    let st = http::load(a.addr, "a", 0..n, Duration::ZERO, &pad());
    assert_eq!(st.ok, n, "{st:?}");
    let tally = systest::wait_value("every line at spreadlogd", Duration::from_secs(20), || {
        let t = Tally::of_file(&central);
        if t.count_of("a") as u64 >= n {
            Ok(t)
        } else {
            Err(t.report(&[("a", n)]))
        }
    });
    let lc = logd.counters();
    let stats = daemon.stats();
    let report = format!(
        "{}\nspreadlogd {lc:?}\ndaemon: {stats}",
        tally.report(&[("a", n)])
    );
    assert_eq!(tally.count_of("a") as u64, n, "{report}");
    assert!(tally.duplicates().is_empty(), "{report}");
    assert_eq!(
        lc.get("disconnects"),
        Some(&0),
        "spreadlogd was cut off: {report}"
    );
    assert_eq!(lc.get("lines_lost_in_gaps"), Some(&0), "{report}");
    let slow_kills: u64 = stats
        .split("kills: slow ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let tail_lost = tail_proc.log().matches("lost").count();
    println!(
        "{name}: {n} lines of ~220 bytes; spreadlogd wrote {} (0 duplicates, 0 disconnects, 0 gaps); \
         the daemon cut off {slow_kills} slow session(s), spread-tail reported {tail_lost} loss(es) of its daemon",
        tally.count_of("a")
    );
    assert!(
        slow_kills >= 1,
        "the never-reading spread-tail was not cut off (MaxSessionMessages 100): {report}"
    );
}

#[test]
fn spool_size_cap_reached_apache_keeps_serving_and_counts_the_drops() {
    let name = "spool_size_cap_reached_apache_keeps_serving_and_counts_the_drops";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let t = TempDir::new("spoolcap");
    let run = t.subdir("run");
    let spread = run.join("4803").display().to_string();
    let a = Apache::start(
        &t.subdir("apache"),
        None,
        free_addr(),
        apache::ONE_CHILD,
        &apache_body(&spread, &t.subdir("spool"), "SpreadSpoolSize 16K\n"),
    );
    let n = 200;
    let st = load_served(&a, n);
    let c = a.counters();
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    let (spooled, full) = (g("spooled"), g("dropped_spool_full"));
    assert_eq!(
        spooled + full,
        n,
        "every line spooled or counted as dropped: {c:?}"
    );
    assert!(
        spooled > 0 && full > 0,
        "a 16K cap with ~48K of lines: {c:?}"
    );
    let spool_bytes = std::fs::metadata(t.join("spool/spool"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        spool_bytes <= 16 * 1024,
        "the spool grew past its cap: {spool_bytes} bytes"
    );
    let said = a
        .error_log()
        .lines()
        .find(|l| l.contains("LOST log lines") && l.contains("spool full"))
        .unwrap_or_else(|| panic!("no error about the full spool:\n{}", a.error_log_tail()))
        .to_owned();
    println!(
        "{name}: {n} lines of ~220 bytes, no daemon, SpreadSpoolSize 16K: spooled {spooled} \
         ({spool_bytes} bytes), dropped as full {full}, every request served (slowest {:?}); \
         error log: {said:?}",
        st.slowest
    );
}
