//! The fault suite on one machine (unix sockets or TCP on 127.0.0.1, Apache on 127.0.0.1):
//! spread-daemon SIGKILL/restart (unix and TCP) and SIGSTOP/SIGCONT, spreadlogd SIGKILL and
//! SIGTERM restarts, SIGHUP rotation every 100 ms and a full disk, all under load; a full spool
//! disk; a slow spread-tail beside spreadlogd. Each scenario runs with Apache and the module as the
//! sender, and with `spread-pipe`.
//!
//! Ground truth is a plain file log beside the Spread one (Apache: a file `CustomLog`;
//! spread-pipe: the lines written to it). With acknowledged delivery (CONTRACTS "Acknowledged
//! delivery") every scenario ends with the central file, sorted, byte for byte equal to it: 0
//! lost, 0 duplicates; where the fault loses lines in flight, some must have been resent.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use systest::accounting::SenderBook;
use systest::apache::{self, Apache};
use systest::http::{self, LoadStats};
use systest::mount::Tmpfs;
use systest::procs::{Daemon, Listen, Logd, Pipe, tail, tail_piped};
use systest::tally::{Tally, id};
use systest::{TempDir, free_addr, free_port, skip, wait_until, wait_value};

const GROUP: &str = "www";

/// A 1 KiB query string (`%q` is in the LogFormat).
static BIG_PAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("?{}", "q".repeat(1023)));

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Apache,
    /// Apache with `SpreadBatchMessages On`: runs of lines share one Spread message.
    ApacheBatchedMessages,
    Pipe,
}

impl Kind {
    fn is_apache(self) -> bool {
        matches!(self, Kind::Apache | Kind::ApacheBatchedMessages)
    }
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
    /// spread-pipe's ground truth: every line written to it.
    piped: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    t: TempDir,
}

/// How the sender and the collector reach the daemon.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Unix,
    Tcp,
}

fn unavailable(kind: Kind) -> Option<String> {
    match kind {
        Kind::Apache | Kind::ApacheBatchedMessages => apache::unavailable(),
        Kind::Pipe => None,
    }
}

/// The LogFormat of both logs: the request's unique id is in `%U`.
const FORMAT: &str = "\"%U%q %>s\"";

fn apache_body(spread: &str, spool_dir: &Path, extra: &str) -> String {
    format!(
        "SpreadDaemon {spread}\n\
         SpreadSpool {}/spool\n\
         SpreadConnectTimeout 200\n\
         SpreadRetryInterval 200\n\
         {}{extra}\
         CustomLog \"${GROUP}\" {FORMAT} {}\n",
        spool_dir.display(),
        apache::STATUS,
        apache::NOT_STATUS
    )
}

/// The ground truth beside: a plain file log with the same format and condition.
fn file_log_line(dir: &Path) -> String {
    format!(
        "CustomLog {}/access.log {FORMAT} {}\n",
        dir.display(),
        apache::NOT_STATUS
    )
}

impl Rig {
    fn new(tag: &str, kind: Kind, via: Via) -> Rig {
        Rig::with_directives(tag, kind, via, "")
    }

    /// With `directives` added to Apache's module configuration.
    fn with_directives(tag: &str, kind: Kind, via: Via, directives: &str) -> Rig {
        let t = TempDir::new(tag);
        let daemon = match via {
            Via::Unix => Daemon::local(&t, &[]),
            Via::Tcp => Daemon::start(
                t.path(),
                None,
                Listen::Tcp {
                    binds: vec!["127.0.0.1".into()],
                    port: free_port(),
                    allow: vec!["127.0.0.1/32".into()],
                },
            ),
        };
        let central = t.join("www.log");
        let logd = Logd::local(&t, &daemon.spread_name(), &[(GROUP, &central)]);
        let sender = match kind {
            Kind::Apache | Kind::ApacheBatchedMessages => Sender::Apache(Apache::start(
                &t.subdir("apache"),
                None,
                free_addr(),
                apache::ONE_CHILD,
                &apache_body(
                    &daemon.spread_name(),
                    &t.subdir("spool"),
                    &format!(
                        "{}{directives}{}",
                        if kind == Kind::ApacheBatchedMessages {
                            "SpreadBatchMessages On\n"
                        } else {
                            ""
                        },
                        file_log_line(&t.subdir("apache"))
                    ),
                ),
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
            piped: Default::default(),
            t,
        }
    }

    /// The ground truth, sorted: the plain file log (Apache) or the lines written (spread-pipe).
    fn file_log(&self) -> Vec<String> {
        let mut v = match &self.sender {
            Sender::Apache(a) => std::fs::read_to_string(a.dir.join("access.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
            Sender::Pipe(_) => self.piped.lock().expect("piped").clone(),
        };
        v.sort();
        v
    }

    /// Wait (up to `timeout`) until the central files, sorted, equal the file log byte for
    /// byte; then the scenario's figures. Panics with what differs.
    fn assert_exact(
        &self,
        name: &str,
        files: &dyn Fn() -> Vec<PathBuf>,
        n: u64,
        timeout: Duration,
    ) -> Exact {
        let deadline = Instant::now() + timeout;
        let (want, got) = loop {
            let want = self.file_log();
            let mut got: Vec<String> = files()
                .iter()
                .flat_map(|p| {
                    std::fs::read_to_string(p)
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            got.sort();
            if (want.len() as u64 == n && got == want) || Instant::now() > deadline {
                break (want, got);
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        let c = self.logd.counters();
        let g = |k: &str| c.get(k).copied().unwrap_or(0);
        let book = self.book();
        let exact = Exact {
            sent: n,
            written: got.len() as u64,
            resent: g("resent_received"),
            repeats: g("stream_repeats"),
            spooled: book.spooled,
        };
        if got != want || want.len() as u64 != n {
            let missing: Vec<&String> = want
                .iter()
                .filter(|l| got.binary_search(l).is_err())
                .collect();
            let mut dup = got.clone();
            dup.dedup();
            panic!(
                "{name}: central file != file log: file log {} lines (sent {n}), central {} \
                 ({} duplicates), missing {} {:?}\ncounters {c:?}\n{}",
                want.len(),
                got.len(),
                got.len() - dup.len(),
                missing.len(),
                &missing[..missing.len().min(5)],
                self.diagnostics()
            );
        }
        exact
    }

    /// The run's name (`scenario[kind]`) and rig, or None (said as a skip) where `kind` cannot
    /// run here.
    fn unless_skipped(scenario: &str, tag: &str, kind: Kind) -> Option<(String, Rig)> {
        Rig::unless_skipped_via(scenario, tag, kind, Via::Unix)
    }

    fn unless_skipped_via(
        scenario: &str,
        tag: &str,
        kind: Kind,
        via: Via,
    ) -> Option<(String, Rig)> {
        let name = format!("{scenario}[{kind:?}, {via:?}]");
        match unavailable(kind) {
            Some(why) => {
                skip(&name, &why);
                None
            }
            None => Some((name, Rig::new(tag, kind, via))),
        }
    }

    /// [`Rig::assert_exact`] on the central file, within 40 s (a resend pass after a long
    /// outage may wait for its back-off).
    fn exact_central(&self, name: &str, n: u64) -> Exact {
        let central = self.central.clone();
        self.assert_exact(name, &|| vec![central.clone()], n, Duration::from_secs(40))
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
                let piped = self.piped.clone();
                std::thread::spawn(move || {
                    let mut st = LoadStats::default();
                    for n in range {
                        let t0 = Instant::now();
                        let line = format!("{}{suffix} {GROUP}", id(who, n));
                        piped.lock().expect("piped").push(line.clone());
                        let ok = writeln!(w, "{line}").is_ok();
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

    /// Load `0..n` (a request every 2 ms), SIGKILL Apache's one child after `after`, and wait
    /// for the load to end (the parent starts a new child that serves the rest).
    fn kill_the_child_mid_load(&mut self, n: u64, after: Duration) -> LoadStats {
        let load = self.start_load(0..n, Duration::from_millis(2), "");
        std::thread::sleep(after);
        let Sender::Apache(apache) = &self.sender else {
            unreachable!("an Apache rig")
        };
        let children = apache.children();
        assert_eq!(children.len(), 1, "one child serves: {children:?}");
        // SAFETY: kill(2) on a child of the Apache this test started.
        unsafe { libc::kill(children[0], libc::SIGKILL) };
        let st = load.join().expect("load");
        assert!(st.ok > 0, "{st:?}");
        st
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
}

fn assert_load(st: &LoadStats, n: u64, bound: Duration, rig: &Rig) {
    st.assert_served(n, bound, rig.who(), &rig.diagnostics());
}

/// A scenario's figures once the central file equals the file log.
struct Exact {
    sent: u64,
    written: u64,
    /// Lines that reached spreadlogd resent (written, or dropped as repeats).
    resent: u64,
    /// Resent lines spreadlogd had written already (dropped).
    repeats: u64,
    /// Lines the sender spooled (no daemon took them, or its window was full).
    spooled: u64,
}

impl std::fmt::Display for Exact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} = written {} (0 lost, 0 duplicates); resent {}, repeats dropped {}, spooled {}",
            self.sent, self.written, self.resent, self.repeats, self.spooled
        )
    }
}

fn daemon_sigkill_restart_under_load(kind: Kind) {
    daemon_sigkill_restart(kind, Via::Unix);
}

fn daemon_sigkill_restart_under_load_tcp(kind: Kind) {
    daemon_sigkill_restart(kind, Via::Tcp);
}

fn daemon_sigkill_restart(kind: Kind, via: Via) {
    let Some((name, mut rig)) =
        Rig::unless_skipped_via("daemon_sigkill_restart_under_load", "kill", kind, via)
    else {
        return;
    };
    let n = 600;
    let load = rig.start_load(0..n, Duration::from_millis(4), "");
    let mut kills = 0;
    for at in [Duration::from_millis(700), Duration::from_millis(700)] {
        std::thread::sleep(at);
        // Stopped first, so lines are surely in flight (read by no one) when it dies.
        rig.daemon.proc.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(150));
        rig.daemon.proc.kill();
        kills += 1;
        std::thread::sleep(Duration::from_millis(300));
        rig.daemon.restart(None);
        rig.logd.wait_joined(1 + kills);
    }
    let st = load.join().expect("load");
    assert_load(&st, n, Duration::from_secs(2), &rig);
    let exact = rig.exact_central(&name, n);
    println!("{name}: {kills} SIGKILL+restart: {exact}");
    // The module hands lines to the stopped daemon at once, so some surely die with it.
    // spread-pipe may be spooling at that moment (it queues behind its spool until the
    // collector is back), with nothing in flight: its count is reported, not required.
    if kind.is_apache() {
        assert!(
            exact.resent > 0,
            "{name}: lines died with the daemon, yet none was resent: {exact}"
        );
    }
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
    std::thread::sleep(Duration::from_secs(5));
    rig.daemon.proc.signal(libc::SIGCONT);
    let st = load.join().expect("load");
    assert_load(&st, n, Duration::from_secs(2), &rig);
    let exact = rig.exact_central(&name, n);
    println!(
        "{name}: stopped 5 s, 1 KiB lines, slowest request {:?}: {exact}",
        st.slowest
    );
}

/// spreadlogd killed (`kill -9`) under load and started again 3 s later: what it missed, and
/// what it wrote without journaling it, is resent and written once.
fn spreadlogd_sigkill_restart_after_3s_under_load(kind: Kind) {
    spreadlogd_restart(
        kind,
        libc::SIGKILL,
        "spreadlogd_sigkill_restart_after_3s_under_load",
    );
}

/// spreadlogd stopped cleanly (SIGTERM) under load and started again 3 s later.
fn spreadlogd_sigterm_restart_under_load(kind: Kind) {
    spreadlogd_restart(kind, libc::SIGTERM, "spreadlogd_sigterm_restart_under_load");
}

fn spreadlogd_restart(kind: Kind, sig: i32, scenario: &str) {
    let Some((name, mut rig)) = Rig::unless_skipped(scenario, "logd", kind) else {
        return;
    };
    let n = 1500;
    let load = rig.start_load(0..n, Duration::from_millis(2), "");
    std::thread::sleep(Duration::from_millis(800));
    if sig == libc::SIGKILL {
        rig.logd.proc.kill();
    } else {
        assert_eq!(rig.logd.term(), 0, "spreadlogd exit status");
    }
    std::thread::sleep(Duration::from_secs(3));
    let conf = std::fs::read_to_string(rig.logd.conf()).expect("conf");
    rig.logd = Logd::start(rig.t.path(), None, &conf);
    let st = load.join().expect("load");
    assert_load(&st, n, Duration::from_secs(2), &rig);
    let exact = rig.exact_central(&name, n);
    println!("{name}: down 3 s: {exact}");
    assert!(
        exact.resent > 0,
        "{name}: lines sent while spreadlogd was down were not resent: {exact}"
    );
}

/// A child of Apache killed with SIGKILL while it holds every line it logged unacknowledged (the
/// collector is down): the parent finds them in the child's window in shared memory and spools
/// them, a live child resends them once the collector is back, and the central file ends equal
/// to the file log, each line of the killed child included.
#[test]
fn child_sigkill_mid_load_each_of_its_lines_reaches_the_central_file() {
    let name = "child_sigkill_mid_load";
    let Some((name, mut rig)) = Rig::unless_skipped(name, "childkill", Kind::Apache) else {
        return;
    };
    // No acknowledgement comes while the collector is down: the child holds all it logged.
    rig.logd.proc.kill();
    let st = rig.kill_the_child_mid_load(600, Duration::from_millis(700));
    let conf = std::fs::read_to_string(rig.logd.conf()).expect("conf");
    rig.logd = Logd::start(rig.t.path(), None, &conf);
    // Lines logged by the killed child are in the file log; requests it was serving when it died
    // were not logged by either log.
    let logged = rig.file_log().len() as u64;
    let exact = rig.exact_central(&name, logged);
    let Sender::Apache(apache) = &rig.sender else {
        unreachable!("an Apache rig")
    };
    let c = apache.counters();
    let orphans = c.get("orphans_spooled").copied().unwrap_or(0);
    println!(
        "{name}: {} requests served of 600, {logged} logged; the killed child held {orphans} \
         line(s), spooled by the parent and resent: {exact}",
        st.ok
    );
    assert!(
        orphans > 0,
        "{name}: the parent spooled nothing of the killed child: {c:?}\n{}",
        rig.diagnostics()
    );
}

/// As above, but Apache is stopped right after the kill, before the parent's monitor (every ten
/// seconds) has looked: the parent spools the dead child's window on its way out, and the next
/// Apache on the same spool resends those lines once the collector is back.
#[test]
fn child_sigkill_then_apache_stopped_its_lines_reach_the_central_file_after_a_restart() {
    let name = "child_sigkill_then_apache_stopped";
    let Some((name, mut rig)) = Rig::unless_skipped(name, "childstop", Kind::Apache) else {
        return;
    };
    rig.logd.proc.kill();
    let st = rig.kill_the_child_mid_load(300, Duration::from_millis(400));
    let Sender::Apache(apache) = &mut rig.sender else {
        unreachable!("an Apache rig")
    };
    apache.stop();
    let said = apache.error_log();
    assert!(
        said.contains("a child died holding"),
        "{name}: the parent did not spool the killed child's lines:\n{said}"
    );
    let logged = rig.file_log().len() as u64;
    // The same spool and file log, and the collector back: the new child resends.
    let body = apache_body(
        &rig.daemon.spread_name(),
        &rig.t.subdir("spool"),
        &file_log_line(&rig.t.subdir("apache")),
    );
    rig.sender = Sender::Apache(Apache::start(
        &rig.t.subdir("apache"),
        None,
        free_addr(),
        apache::ONE_CHILD,
        &body,
    ));
    let conf = std::fs::read_to_string(rig.logd.conf()).expect("conf");
    rig.logd = Logd::start(rig.t.path(), None, &conf);
    let exact = rig.exact_central(&name, logged);
    println!(
        "{name}: {} requests served of 300, {logged} logged, all in the central file after the \
         restart: {exact}",
        st.ok
    );
}

/// Without acknowledgements a child killed with SIGKILL loses what it had not yet written (its
/// batch: here up to a second of lines), and it never announces its numbers itself. The parent
/// announces them for it (from the child's slot in shared memory), so the collector counts each
/// lost line as missing: the central file holds only lines of the file log, once each, and
/// written + missing == logged.
#[test]
fn child_sigkill_without_acks_its_unwritten_lines_are_counted_missing() {
    let name = "child_sigkill_without_acks";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let mut rig = Rig::with_directives(
        "childnoack",
        Kind::Apache,
        Via::Unix,
        "SpreadAcknowledge Off\nSpreadFlushInterval 1000\n",
    );
    let st = rig.kill_the_child_mid_load(300, Duration::from_millis(400));
    let Sender::Apache(apache) = &mut rig.sender else {
        unreachable!("an Apache rig")
    };
    // The parent announces at its next monitor (up to 10 s) or, as here, when it stops.
    apache.stop();
    let said = apache.error_log();
    let logged = rig.file_log().len() as u64;
    let c = wait_value(
        "written + missing = logged",
        Duration::from_secs(20),
        || {
            let c = rig.logd.counters();
            let g = |k: &str| c.get(k).copied().unwrap_or(0);
            if g("lines_written") + g("stream_lines_missing") >= logged {
                Ok(c)
            } else {
                std::thread::sleep(Duration::from_millis(300));
                Err(format!("{c:?}\n{said}"))
            }
        },
    );
    let central: Vec<String> = std::fs::read_to_string(&rig.central)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut sorted = central.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), central.len(), "{name}: a line written twice");
    let file_log = rig.file_log();
    let foreign: Vec<&String> = sorted
        .iter()
        .filter(|l| file_log.binary_search(l).is_err())
        .collect();
    assert!(
        foreign.is_empty(),
        "{name}: not in the file log: {foreign:?}"
    );
    let missing = c["stream_lines_missing"];
    println!(
        "{name}: {} requests served of 300, {logged} logged: {} written, {missing} counted \
         missing",
        st.ok, c["lines_written"]
    );
    assert_eq!(
        (c["lines_written"] + missing, c["lines_lost_in_gaps"]),
        (logged, 0),
        "{name}: written + missing != logged: {c:?}\n{said}"
    );
    assert!(
        missing > 0 && said.contains("its numbers on 1 group(s) were announced"),
        "{name}: the killed child's batch was not lost, or not announced: {c:?}\n{said}"
    );
}

/// Without acknowledgements, the daemon killed and Apache stopped while it is down: the child
/// cannot announce its numbers at exit, so its slot stays claimed and the parent tries for it;
/// with the daemon still down it says in the error log that lines in flight are lost uncounted,
/// instead of saying nothing. The child says first why it could not announce (its daemon).
#[test]
fn daemon_down_at_stop_without_acks_the_parent_says_what_is_lost_uncounted() {
    let name = "daemon_down_at_stop_without_acks";
    if let Some(why) = apache::unavailable() {
        return skip(name, &why);
    }
    let mut rig = Rig::with_directives(
        "stopnoack",
        Kind::Apache,
        Via::Unix,
        "SpreadAcknowledge Off\n",
    );
    let st = rig
        .start_load(0..50, Duration::ZERO, "")
        .join()
        .expect("load");
    assert_eq!(st.ok, 50, "{st:?}");
    rig.daemon.proc.kill();
    let Sender::Apache(apache) = &mut rig.sender else {
        unreachable!("an Apache rig")
    };
    apache.stop();
    let said = apache.error_log();
    assert!(
        said.contains("ended without announcing how many lines it had numbered")
            && said.contains("could not be announced")
            && said.contains("lost without being counted"),
        "{name}: the parent said nothing of the unannounced numbers:\n{said}"
    );
    let child = said
        .lines()
        .find(|l| l.contains("exiting could not announce the numbers of its lines"))
        .unwrap_or_else(|| {
            panic!("{name}: the child did not say why it could not announce:\n{said}")
        });
    assert!(
        child.contains(&rig.daemon.spread_name()) && child.contains(" failed: "),
        "{name}: the child's warning names neither the daemon nor why: {child}"
    );
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
    let exact = rig.assert_exact(&name, &segments, n, Duration::from_secs(30));
    let files = segments().len();
    println!("{name}: {rotations} rotations, {files} files: {exact}");
    assert!(
        rotations >= 5,
        "the load ended before rotating: {rotations}"
    );
    assert!(rig.logd.proc.alive(), "spreadlogd died");
}

/// Each scenario runs with Apache and the module as the sender (one message per line, and
/// batched messages), and with `spread-pipe`: `<scenario>::apache`,
/// `<scenario>::apache_batched_messages` and `<scenario>::spread_pipe`.
macro_rules! with_each_sender {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn apache() {
                    super::$scenario(super::Kind::Apache);
                }

                #[test]
                fn apache_batched_messages() {
                    super::$scenario(super::Kind::ApacheBatchedMessages);
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
    daemon_sigkill_restart_under_load_tcp,
    daemon_sigstop_sigcont_under_load,
    spreadlogd_sigkill_restart_after_3s_under_load,
    spreadlogd_sigterm_restart_under_load,
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
    // Far more than the kernel holds for the tail (its pipe, and the socket buffers, which hold
    // more when batches are large: 1,500 lines at SpreadFlushInterval 25 once left only 28
    // messages queued in the daemon, under its limit of 100).
    let n = 5000;
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
