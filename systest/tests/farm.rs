//! The farm in network namespaces: web-server namespaces running Apache with the module, one
//! log-host namespace running `spread-daemon` (TCP) and `spreadlogd`, joined by veth links on
//! private /30s of 10.213.0.0/16 that exist only inside the namespaces.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use systest::apache::{self, Apache};
use systest::c_collector::CStyleCollector;
use systest::http::{self, LoadStats};
use systest::netns::{self, Netns, VethEnd};
use systest::procs::{Daemon, Listen, Logd, logd_conf, tail_to_file};
use systest::tally::Tally;
use systest::{TempDir, skip, sorted_lines, wait_value};

const GROUP: &str = "www";
const SPREAD_PORT: u16 = 4803;

struct Web {
    who: String,
    apache: Apache,
    lh_end: VethEnd,
    web_end: VethEnd,
    ns: Netns,
}

/// Processes first, namespaces after, the directory last: fields drop in this order.
struct Farm {
    logd: Logd,
    daemon: Daemon,
    webs: Vec<Web>,
    central: PathBuf,
    lh: Netns,
    t: TempDir,
}

fn unavailable() -> Option<String> {
    netns::unavailable().or_else(apache::unavailable)
}

/// True (and said as a skip) where the farm cannot run here.
fn skipped(test: &str) -> bool {
    unavailable().map(|why| skip(test, &why)).is_some()
}

impl Farm {
    /// The farm for `test`, or None (said as a skip) where it cannot run here.
    /// (`n` web servers with `tuning`, nothing extra.)
    fn unless_skipped(test: &str, n: usize, tuning: &str) -> Option<Farm> {
        (!skipped(test)).then(|| Farm::new(test, n, tuning, ""))
    }

    fn new(tag: &str, n: usize, tuning: &str, extra: &str) -> Farm {
        let t = TempDir::new(tag);
        let lh = Netns::new("lh");
        let mut links = Vec::new();
        for k in 1..=n {
            let ns = Netns::new("w");
            let (lh_end, web_end) = netns::veth(&lh, &ns, &format!("10.213.{k}"));
            links.push((ns, lh_end, web_end));
        }
        let daemon = Daemon::start(
            &t.subdir("loghost"),
            Some(&lh),
            Listen::Tcp {
                binds: links.iter().map(|(_, e, _)| e.addr.clone()).collect(),
                port: SPREAD_PORT,
                allow: vec!["10.213.0.0/16".into()],
            },
        );
        let central = t.join("loghost/www.log");
        let state = t.join("loghost/gaps");
        let logd = Logd::start(
            &t.join("loghost"),
            Some(&lh),
            &logd_conf(&daemon.spread_name(), &state, &[(GROUP, &central)]),
        );
        let mut webs = Vec::new();
        for (k, (ns, lh_end, web_end)) in links.into_iter().enumerate() {
            let who = format!("w{}", k + 1);
            let dir = t.subdir(&who);
            let spool = t.subdir(&format!("{who}/spool"));
            let body = format!(
                "SpreadDaemon {SPREAD_PORT}@{}\n\
                 SpreadSpool {}/spool\n\
                 SpreadConnectTimeout 200\n\
                 SpreadRetryInterval 200\n\
                 {}\
                 {extra}\
                 CustomLog \"${GROUP}\" \"%U %>s\" {not}\n\
                 CustomLog {}/access.log \"%U %>s\" {not}\n",
                lh_end.addr,
                spool.display(),
                apache::STATUS,
                dir.display(),
                not = apache::NOT_STATUS
            );
            let listen: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
            let apache = Apache::start(&dir, Some(&ns), listen, tuning, &body);
            webs.push(Web {
                who,
                apache,
                lh_end,
                web_end,
                ns,
            });
        }
        Farm {
            logd,
            daemon,
            webs,
            central,
            lh,
            t,
        }
    }

    /// Load every web server at once: ids `range` each, one request every `pause`.
    fn load(&self, range: std::ops::Range<u64>, pause: Duration) -> Vec<LoadStats> {
        let handles: Vec<_> = self
            .webs
            .iter()
            .map(|w| {
                let who = w.who.clone();
                let range = range.clone();
                let addr = w.apache.addr;
                w.ns.spawn(move || http::load(addr, &who, range, pause, ""))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread"))
            .collect()
    }

    fn sent(&self, n: u64) -> Vec<(&str, u64)> {
        self.webs.iter().map(|w| (w.who.as_str(), n)).collect()
    }

    /// Wait until the central file holds `n` distinct ids per server (or time out with counts).
    fn wait_central(&self, n: u64, timeout: Duration) -> Tally {
        let sent = self.sent(n);
        wait_value("every line in the central file", timeout, || {
            let t = Tally::of_file(&self.central);
            if sent.iter().all(|(w, n)| t.count_of(w) as u64 >= *n) {
                Ok(t)
            } else {
                Err(t.report(&sent))
            }
        })
    }

    /// Beside spreadlogd on the log host, a receiver that writes every body it gets, as the C
    /// spreadlogd does (started inside the log host's namespace, which its thread keeps).
    fn c_style_collector(&self) -> CStyleCollector {
        let (spread, out) = (
            self.daemon.spread_name(),
            self.t.join("loghost/c-style.log"),
        );
        self.lh
            .spawn(move || CStyleCollector::start(&spread, &[GROUP], &out))
            .join()
            .expect("C-style collector")
    }

    /// The ground truth: every web server's plain file log, all lines, sorted.
    fn file_logs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .webs
            .iter()
            .flat_map(|w| {
                std::fs::read_to_string(w.apache.dir.join("access.log"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    }

    /// Wait until the central file, sorted, equals the file logs byte for byte (`n` lines per
    /// server); panics with what differs. Returns spreadlogd's counters.
    fn assert_exact(&self, n: u64, timeout: Duration) -> BTreeMap<String, u64> {
        let sent = self.sent(n);
        let deadline = Instant::now() + timeout;
        loop {
            let want = self.file_logs();
            let mut got: Vec<String> = std::fs::read_to_string(&self.central)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            got.sort();
            let complete = want.len() as u64 == n * self.webs.len() as u64;
            if complete && got == want {
                return self.logd.counters();
            }
            if Instant::now() > deadline {
                panic!(
                    "central file != file logs: file logs {} lines, central {}: {}\ncounters {:?}\n{}",
                    want.len(),
                    got.len(),
                    Tally::of_file(&self.central).report(&sent),
                    self.logd.counters(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn diagnostics(&self) -> String {
        let mut s = format!(
            "spreadlogd:\n{}\nspread-daemon:\n{}\n",
            systest::procs::tail(&self.logd.proc.log(), 15),
            systest::procs::tail(&self.daemon.proc.log(), 15)
        );
        for w in &self.webs {
            s.push_str(&format!(
                "{} error log:\n{}\n",
                w.who,
                w.apache.error_log_tail()
            ));
        }
        s
    }
}

fn assert_served(stats: &[LoadStats], n: u64, bound: Duration, farm: &Farm) {
    for (w, st) in farm.webs.iter().zip(stats) {
        st.assert_served(n, bound, &w.who, &farm.diagnostics());
    }
}

#[test]
fn farm_all_servers_lines_in_one_file_and_a_second_collector_has_the_same() {
    let Some(farm) = Farm::unless_skipped(
        "farm_all_servers_lines_in_one_file",
        3,
        apache::TWO_CHILDREN,
    ) else {
        return;
    };
    let tail_out = farm.t.join("loghost/tail.out");
    let tail = tail_to_file(
        &farm.t.join("loghost"),
        Some(&farm.lh),
        &farm.daemon.spread_name(),
        GROUP,
        &tail_out,
    );
    // spread-tail has joined once a warm-up line reaches it (Spread keeps nothing for late
    // joiners, so keep sending until one does).
    let mut k = 0;
    wait_value(
        "a warm-up line at spread-tail",
        Duration::from_secs(15),
        || {
            let status = farm.webs[0]
                .apache
                .client(move |a| http::get(a, &systest::tally::id("warmup", k)).status);
            assert_eq!(status, 200);
            k += 1;
            let seen = Tally::of_file(&tail_out).count_of("warmup");
            if seen > 0 { Ok(()) } else { Err(k) }
        },
    );
    let n = 300;
    let started = Instant::now();
    let stats = farm.load(0..n, Duration::ZERO);
    let took = started.elapsed();
    assert_served(&stats, n, Duration::from_secs(5), &farm);
    let sent = farm.sent(n);
    let central = farm.wait_central(n, Duration::from_secs(30));
    let central_report = central.report(&sent);
    assert!(central.duplicates().is_empty(), "{central_report}");
    let servers = |t: &Tally| -> Vec<((String, u64), u32)> {
        t.seen
            .iter()
            .filter(|((w, _), _)| w != "warmup")
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(servers(&central).len() as u64, 3 * n, "{central_report}");
    let tally_tail = wait_value("every line at spread-tail", Duration::from_secs(15), || {
        let t = Tally::of_file(&tail_out);
        if servers(&t).len() as u64 >= 3 * n {
            Ok(t)
        } else {
            Err(t.report(&sent))
        }
    });
    assert_eq!(
        servers(&tally_tail),
        servers(&central),
        "spread-tail and spreadlogd differ: tail {} / central {central_report}",
        tally_tail.report(&sent)
    );
    // Total order: both collectors saw the lines in the same order.
    let order = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_owned())
            .filter(|u| !u.starts_with("/i/warmup/"))
            .collect()
    };
    assert!(
        order(&farm.central) == order(&tail_out),
        "spreadlogd and spread-tail saw different orders"
    );
    let c = farm.logd.counters();
    assert_eq!(c.get("lines_lost_in_gaps"), Some(&0), "{c:?}");
    assert_eq!(c.get("unknown_gaps"), Some(&0), "{c:?}");
    drop(tail);
    println!(
        "farm: 3 servers x {n} requests in {took:?}: central {} server lines (0 duplicates), \
         spread-tail {} server lines, identical and in the same order, gaps 0",
        servers(&central).len(),
        servers(&tally_tail).len()
    );
}

#[test]
fn farm_log_host_unreachable_lines_spooled_and_replayed() {
    if skipped("farm_log_host_unreachable") {
        return;
    }
    // Children are recycled every 25 connections, so new children must dial the log host
    // during the outage: their lines cannot be handed over and go to the spool. (Established
    // connections keep accepting writes into the kernel's buffer; TCP delivers them later.)
    let farm = Farm::new(
        "farm-outage",
        2,
        apache::ONE_CHILD,
        "MaxConnectionsPerChild 25\n",
    );
    let n = 900;
    let outage = Duration::from_secs(10);
    let pause = Duration::from_millis(15);
    // Requests flow before, during and after the outage.
    let loader = {
        let webs: Vec<_> = farm
            .webs
            .iter()
            .map(|w| {
                let who = w.who.clone();
                let addr = w.apache.addr;
                w.ns.spawn(move || http::load(addr, &who, 0..n, pause, ""))
            })
            .collect();
        webs
    };
    std::thread::sleep(Duration::from_millis(800));
    for w in &farm.webs {
        w.lh_end.set_up(false);
        w.web_end.set_up(false);
    }
    let down_at = Instant::now();
    std::thread::sleep(outage);
    for w in &farm.webs {
        w.lh_end.set_up(true);
        w.web_end.set_up(true);
    }
    let down_for = down_at.elapsed();
    let stats: Vec<LoadStats> = loader
        .into_iter()
        .map(|h| h.join().expect("load"))
        .collect();
    assert_served(&stats, n, Duration::from_secs(3), &farm);
    let counters = farm.assert_exact(n, Duration::from_secs(60));
    let module: Vec<BTreeMap<String, u64>> =
        farm.webs.iter().map(|w| w.apache.counters()).collect();
    let report = format!(
        "spreadlogd counters {counters:?}\nmodule counters {module:?}\n{}",
        farm.diagnostics()
    );
    for m in &module {
        let dropped = m.get("dropped_spool_full").copied().unwrap_or(0)
            + m.get("dropped_spool_error").copied().unwrap_or(0);
        assert_eq!(dropped, 0, "lines dropped before hand-over: {report}");
        assert_eq!(
            m.get("spooled"),
            m.get("replayed"),
            "spool not fully replayed: {report}"
        );
    }
    let g = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let per = |k: &str| module.iter().map(|m| g(m, k)).collect::<Vec<_>>();
    println!(
        "farm outage: 2 servers x {n} requests, link down {down_for:?}: all served (slowest {:?}); \
         central == file logs ({} lines), 0 lost, 0 duplicates; per server spooled {:?}, \
         spooled unacked {:?}, resent {:?}; spreadlogd resent received {}, repeats dropped {}",
        stats.iter().map(|s| s.slowest).max().unwrap_or_default(),
        n * 2,
        per("spooled"),
        per("spooled_unacked"),
        per("resent"),
        g(&counters, "resent_received"),
        g(&counters, "stream_repeats"),
    );
}

#[test]
fn farm_spreadlogd_restart_loses_nothing_what_it_missed_is_resent() {
    let first = 100;
    let Some(mut farm) = Farm::unless_skipped("farm_restart", 2, apache::ONE_CHILD) else {
        return;
    };
    let stats = farm.load(0..first, Duration::ZERO);
    assert_served(&stats, first, Duration::from_secs(5), &farm);
    farm.wait_central(first, Duration::from_secs(20));
    assert_eq!(farm.logd.term(), 0, "spreadlogd exit status");
    // While no collector is joined Spread drops these after hand-over; the senders hold them.
    let missed = 50;
    let stats = farm.load(first..first + missed, Duration::ZERO);
    assert_served(&stats, missed, Duration::from_secs(5), &farm);
    // Batched lines reach the daemon within SpreadFlushInterval (25 ms by default) of their
    // hand-over; the scenario is about lines at the daemon while no collector is joined, so give
    // the last batches far more than that before the collector comes back (a batch written after
    // its return is simply delivered live, which is right but not what is tested here).
    std::thread::sleep(Duration::from_millis(500));
    let conf = std::fs::read_to_string(farm.logd.conf()).expect("conf");
    farm.logd = Logd::start(&farm.t.join("loghost"), Some(&farm.lh), &conf);
    let after = 50;
    let total = first + missed + after;
    let stats = farm.load(first + missed..total, Duration::ZERO);
    assert_served(&stats, after, Duration::from_secs(5), &farm);
    let sent = farm.sent(total);
    wait_value("every line", Duration::from_secs(30), || {
        let t = Tally::of_file(&farm.central);
        let done = farm.webs.iter().all(|w| t.count_of(&w.who) as u64 >= total);
        if done { Ok(t) } else { Err(t.report(&sent)) }
    });
    std::thread::sleep(Duration::from_millis(500)); // room for duplicates to show up
    let tally = Tally::of_file(&farm.central);
    let c = farm.logd.counters();
    let report = format!(
        "{}\ncounters {c:?}\n{}",
        tally.report(&sent),
        farm.diagnostics()
    );
    assert!(tally.duplicates().is_empty(), "{report}");
    for w in &farm.webs {
        assert!(tally.missing(&w.who, total).is_empty(), "{report}");
    }
    let resent = c.get("resent_received").copied().unwrap_or(0);
    assert!(
        resent >= missed * farm.webs.len() as u64,
        "the lines sent while spreadlogd was down came resent: {report}"
    );
    assert_eq!(
        (
            c.get("lines_lost_in_gaps"),
            c.get("stream_lines_missing"),
            c.get("unknown_gaps")
        ),
        (Some(&0), Some(&0), Some(&0)),
        "{report}"
    );
    println!(
        "farm spreadlogd restart: 2 servers x {total} requests, {missed} per server sent while \
         spreadlogd was down; central {} lines, 0 missing, 0 duplicates, {resent} resent",
        tally.total(),
    );
}

#[test]
fn farm_tcp_reset_during_outage_every_line_written_once() {
    let Some(farm) = Farm::unless_skipped("farm_tcp_reset_during_outage", 1, apache::ONE_CHILD)
    else {
        return;
    };
    let w = &farm.webs[0];
    let n = 300;
    let (who, addr) = (w.who.clone(), w.apache.addr);
    let loader =
        w.ns.spawn(move || http::load(addr, &who, 0..n, Duration::from_millis(10), ""));
    std::thread::sleep(Duration::from_millis(800));
    w.lh_end.set_up(false);
    w.web_end.set_up(false);
    // Lines handed over now sit in the web server's socket buffer; destroying the socket loses
    // them after hand-over (CONTRACTS §1: a TCP reset), which must show as a gap.
    std::thread::sleep(Duration::from_millis(1000));
    let out =
        w.ns.command("ss")
            .args(["-K", "-t", "dst", &w.lh_end.addr])
            .output()
            .expect("run ss -K");
    let killed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    if killed == 0 {
        w.lh_end.set_up(true);
        w.web_end.set_up(true);
        let _ = loader.join();
        return skip(
            "farm_tcp_reset_during_outage",
            "`ss -K` destroyed no socket (kernel without CONFIG_INET_DIAG_DESTROY?)",
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    w.lh_end.set_up(true);
    w.web_end.set_up(true);
    let stats = loader.join().expect("load");
    assert_served(
        std::slice::from_ref(&stats),
        n,
        Duration::from_secs(2),
        &farm,
    );
    let c = farm.assert_exact(n, Duration::from_secs(40));
    let m = w.apache.counters();
    println!(
        "farm TCP reset during outage: {killed} socket(s) destroyed, slowest request {:?}; \
         central == file log ({n} lines); module resent {}, spooled {}; spreadlogd resent \
         received {}, repeats dropped {}",
        stats.slowest, m["resent"], m["spooled"], c["resent_received"], c["stream_repeats"]
    );
    assert!(
        m["resent"] > 0,
        "lines destroyed with the socket must have been resent: {m:?}"
    );
}

#[test]
fn farm_daemon_sigkill_over_tcp_every_line_written_once() {
    let Some(mut farm) = Farm::unless_skipped("farm_daemon_sigkill_over_tcp", 2, apache::ONE_CHILD)
    else {
        return;
    };
    let n = 400;
    let c_style = farm.c_style_collector();
    let loader: Vec<_> = farm
        .webs
        .iter()
        .map(|w| {
            let (who, addr) = (w.who.clone(), w.apache.addr);
            w.ns.spawn(move || http::load(addr, &who, 0..n, Duration::from_millis(5), ""))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    farm.daemon.proc.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(150));
    farm.daemon.proc.kill();
    std::thread::sleep(Duration::from_millis(300));
    farm.daemon.restart(Some(&farm.lh));
    farm.logd.wait_joined(2);
    c_style.wait_joined(2);
    let stats: Vec<LoadStats> = loader
        .into_iter()
        .map(|h| h.join().expect("load"))
        .collect();
    assert_served(&stats, n, Duration::from_secs(3), &farm);
    let c = farm.assert_exact(n, Duration::from_secs(40));
    let resent: u64 = farm
        .webs
        .iter()
        .map(|w| w.apache.counters()["resent"])
        .sum();
    // The C-style collector beside: only log lines, none twice.
    let file_logs = farm.file_logs();
    let mut c_lines: Vec<String> = c_style.text().lines().map(str::to_owned).collect();
    c_lines.sort();
    let strangers: Vec<&String> = c_lines
        .iter()
        .filter(|l| file_logs.binary_search(l).is_err())
        .collect();
    let mut distinct = c_lines.clone();
    distinct.dedup();
    println!(
        "farm daemon SIGKILL over TCP: 2 servers x {n}, slowest request {:?}; central == file \
         logs, module resent {resent}, spreadlogd resent received {}, repeats dropped {}; \
         C-style collector {} lines, {} missed in the crash, 0 twice",
        stats.iter().map(|s| s.slowest).max().unwrap_or_default(),
        c["resent_received"],
        c["stream_repeats"],
        c_lines.len(),
        file_logs.len() - distinct.len()
    );
    assert!(
        resent > 0,
        "lines died with the daemon, yet none was resent"
    );
    assert!(strangers.is_empty(), "not log lines: {strangers:?}");
    assert_eq!(
        distinct.len(),
        c_lines.len(),
        "a line reached the C-style collector twice"
    );
}

/// Scenario 5 with spread-pipe, and a C-style collector beside spreadlogd on the log host: a
/// spread-pipe in a web server's namespace sends over TCP to the log host while the link is down
/// for 10 s. Every line ends in the central file once; the C-style collector holds only log
/// lines, none twice.
#[test]
fn farm_link_down_spread_pipe_every_line_once_c_style_beside_sees_no_repeat() {
    let Some(farm) = Farm::unless_skipped("farm_link_down_spread_pipe", 1, apache::ONE_CHILD)
    else {
        return;
    };
    let c_style = farm.c_style_collector();
    let w = &farm.webs[0];
    let tcp_name = format!("{SPREAD_PORT}@{}", w.lh_end.addr);
    let mut pipe =
        systest::procs::Pipe::start(&farm.t.join(&w.who), Some(&w.ns), &tcp_name, GROUP, "p");
    let n = 1200;
    let lines: Vec<String> = (0..n)
        .map(|i| format!("{} piped across the farm", systest::tally::id("p", i)))
        .collect();
    let load = {
        use std::io::Write;
        let mut stdin = pipe.take_stdin();
        let lines = lines.clone();
        std::thread::spawn(move || {
            for l in lines {
                writeln!(stdin, "{l}").expect("write to spread-pipe");
                std::thread::sleep(Duration::from_millis(10));
            }
            // Dropped: end of input.
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    w.lh_end.set_up(false);
    w.web_end.set_up(false);
    std::thread::sleep(Duration::from_secs(10));
    w.lh_end.set_up(true);
    w.web_end.set_up(true);
    load.join().expect("load");
    let mut want = lines.clone();
    want.sort();
    let sorted =
        |p: &std::path::Path| sorted_lines(&std::fs::read_to_string(p).unwrap_or_default());
    wait_value("every piped line once", Duration::from_secs(60), || {
        let got = sorted(&farm.central);
        if got == want {
            Ok(())
        } else {
            Err(format!("{} of {} lines", got.len(), want.len()))
        }
    });
    let c_lines = sorted(&c_style.out);
    let mut distinct = c_lines.clone();
    distinct.dedup();
    let strangers: Vec<&String> = c_lines
        .iter()
        .filter(|l| want.binary_search(l).is_err())
        .collect();
    let c = farm.logd.counters();
    println!(
        "farm link down 10 s, spread-pipe over TCP: {n} lines once in the central file; \
         spreadlogd resent received {}, repeats {}; C-style collector {} lines, 0 twice",
        c["resent_received"],
        c["stream_repeats"],
        c_lines.len()
    );
    assert!(strangers.is_empty(), "not log lines: {strangers:?}");
    assert_eq!(
        distinct.len(),
        c_lines.len(),
        "a line reached the C-style collector twice"
    );
    assert_eq!(pipe.finish(), 0, "{}", pipe.proc.log());
}
