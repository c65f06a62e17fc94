//! Batching on the request path (`SpreadFlushInterval`, `SpreadBatchSize`, `SpreadBatchMessages`):
//! a child's lines share writes (and, opted in, messages) to the daemon, every line still
//! arrives once, and a lone line is written within the flush interval by the child's background
//! thread (no later request needed).

use std::time::{Duration, Instant};

use systest::apache::{self, Apache};
use systest::procs::{Daemon, Logd};
use systest::tally::Tally;
use systest::{TempDir, free_addr, http, skip, wait_value};

/// A daemon with its metrics page, optionally spreadlogd writing group www, and an Apache (two
/// children) logging `%U %>s` to www with `extra` directives. Processes drop before the dir.
struct Rig {
    apache: Apache,
    addr: std::net::SocketAddr,
    logd: Option<Logd>,
    central: std::path::PathBuf,
    metrics: std::net::SocketAddr,
    _daemon: Daemon,
    _t: TempDir,
}

impl Rig {
    /// None (said as a skip) where Apache cannot run.
    fn start(name: &str, tag: &str, extra: &str, collector: bool) -> Option<Rig> {
        if let Some(why) = apache::unavailable() {
            skip(name, &why);
            return None;
        }
        let t = TempDir::new(tag);
        let metrics = free_addr();
        let daemon = Daemon::local(&t, &["--metrics-listen", &metrics.to_string()]);
        let central = t.join("www.log");
        let logd = collector.then(|| Logd::local(&t, &daemon.spread_name(), &[("www", &central)]));
        let (apache, addr) = Apache::logging_www(
            &t,
            &daemon.spread_name(),
            apache::TWO_CHILDREN,
            &format!("{extra}{}", apache::STATUS),
            apache::NOT_STATUS,
        );
        Some(Rig {
            apache,
            addr,
            logd,
            central,
            metrics,
            _daemon: daemon,
            _t: t,
        })
    }

    /// A daemon counter from its `/metrics` page.
    fn daemon_counter(&self, name: &str) -> u64 {
        let page = http::get(self.metrics, "/metrics").body;
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not on the daemon's page:\n{page}"))
    }

    /// Send requests `0..n` (id prefix `who`); every one must be served.
    fn load(&self, who: &str, n: u64) {
        let st = http::load(self.addr, who, 0..n, Duration::ZERO, "");
        assert_eq!(st.ok, n, "{st:?}\n{}", self.apache.error_log_tail());
    }

    /// Wait until the central file holds each of the `n` lines, then check that none is there
    /// twice.
    fn assert_central_exact(&self, who: &str, n: u64) {
        wait_value(
            "every line in the central file",
            Duration::from_secs(20),
            || {
                let t = Tally::of_file(&self.central);
                if t.distinct() as u64 == n {
                    Ok(())
                } else {
                    Err(t.report(&[(who, n)]))
                }
            },
        );
        std::thread::sleep(Duration::from_millis(300)); // room for duplicates to show up
        let tally = Tally::of_file(&self.central);
        assert_eq!(tally.total(), n, "{}", tally.report(&[(who, n)]));
    }
}

#[test]
fn batched_lines_share_writes_and_each_arrives_once() {
    let name = "batched_lines_share_writes_and_each_arrives_once";
    // The defaults: batching on (SpreadFlushInterval, SpreadBatchSize), acknowledgements on.
    let Some(rig) = Rig::start(name, "batching", "", true) else {
        return;
    };
    let n = 3000;
    let reads0 = rig.daemon_counter("spread_daemon_reads_total");
    let in0 = rig.daemon_counter("spread_daemon_requests_in_total");
    rig.load("b", n);
    rig.assert_central_exact("b", n);
    let c = rig.apache.counters();
    let (sent, writes) = (c["sent"], c["batch_writes"]);
    assert_eq!(sent, n, "{c:?}");
    // Several lines per write: at this rate a 10 ms batch holds many lines; one write per line
    // (batching broken) gives a ratio of 1 and batch_writes == sent.
    assert!(
        writes > 0 && sent >= 3 * writes,
        "lines per write {sent}/{writes}: {c:?}"
    );
    let reads = rig.daemon_counter("spread_daemon_reads_total") - reads0;
    let msgs = rig.daemon_counter("spread_daemon_requests_in_total") - in0;
    assert!(
        msgs >= 2 * reads,
        "the daemon read {msgs} requests in {reads} reads: batches should arrive whole"
    );
    println!(
        "batching: {n} lines, {writes} writes ({:.1} lines per write); daemon {msgs} requests in \
         {reads} reads; central file exact",
        sent as f64 / writes as f64
    );
}

#[test]
fn a_lone_line_is_written_within_the_flush_interval() {
    let name = "a_lone_line_is_written_within_the_flush_interval";
    // Acknowledgements off: the background thread's upkeep then runs only every 500 ms, so a
    // line that arrives within 300 ms was written by the flush timer (20 ms here), not by the
    // upkeep or by a later request.
    let extra = "SpreadAcknowledge Off\nSpreadFlushInterval 20\n";
    let Some(rig) = Rig::start(name, "batching-bound", extra, false) else {
        return;
    };
    // Connections are opened lazily: a first line makes them.
    rig.load("w", 1);
    std::thread::sleep(Duration::from_millis(700));
    let mut delays = Vec::new();
    for i in 1..6 {
        let before = rig.daemon_counter("spread_daemon_requests_in_total");
        let st = http::load(rig.addr, "w", i..i + 1, Duration::ZERO, "");
        assert_eq!(st.ok, 1, "{st:?}");
        let sent = Instant::now();
        let arrived = wait_value("the line at the daemon", Duration::from_secs(5), || {
            if rig.daemon_counter("spread_daemon_requests_in_total") > before {
                Ok(sent.elapsed())
            } else {
                Err("not yet")
            }
        });
        delays.push(arrived);
        std::thread::sleep(Duration::from_millis(700));
    }
    let worst = delays.iter().max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_millis(300),
        "lone lines reached the daemon after {delays:?} (SpreadFlushInterval 20)\n{}",
        rig.apache.error_log_tail()
    );
    println!("batching bound: lone lines at the daemon after {delays:?} (SpreadFlushInterval 20)");
}

/// Wake-ups of the children's background threads (`spread-replay`) so far: their voluntary
/// context switches, each a return from a sleep.
fn replay_thread_wakeups(children: &[i32]) -> u64 {
    let mut n = 0;
    for pid in children {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let dir = task.path();
            let named = std::fs::read_to_string(dir.join("comm"))
                .is_ok_and(|c| c.trim() == "spread-replay");
            if !named {
                continue;
            }
            let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
            n += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    n
}

#[test]
fn the_background_thread_sleeps_between_bursts() {
    let name = "the_background_thread_sleeps_between_bursts";
    // Defaults (25 ms flush interval), acknowledgements on. After a burst a child's thread
    // wakes for the last flush, a round or two more, then only for its upkeep (acks every
    // 200 ms while lines wait, else every 500 ms): at most 15 times in 3 s per child. Threads
    // that kept polling every flush interval for 2.5 s after the last batch woke 194 times in
    // such 3 s (two children), each a context switch on the web host for nothing.
    let Some(rig) = Rig::start(name, "batching-quiet", "", true) else {
        return;
    };
    let children = rig.apache.children();
    assert_eq!(children.len(), 2, "{children:?}");
    rig.load("b", 400);
    let before = replay_thread_wakeups(&children);
    std::thread::sleep(Duration::from_secs(3));
    let woke = replay_thread_wakeups(&children) - before;
    assert!(
        woke <= 40,
        "the children's background threads woke {woke} times in 3 s of quiet"
    );
    println!("background threads: {woke} wake-ups in 3 s of quiet after a burst (two children)");
    rig.assert_central_exact("b", 400);
}

#[test]
fn batched_messages_carry_many_lines_and_spreadlogd_writes_each_once() {
    let name = "batched_messages_carry_many_lines_and_spreadlogd_writes_each_once";
    let Some(rig) = Rig::start(name, "batch-messages", "SpreadBatchMessages On\n", true) else {
        return;
    };
    let n = 3000;
    let in0 = rig.daemon_counter("spread_daemon_requests_in_total");
    rig.load("m", n);
    rig.assert_central_exact("m", n);
    let c = rig.logd.as_ref().expect("a collector").counters();
    let batched = c.get("batched_messages").copied().unwrap_or(0);
    let messages = rig.daemon_counter("spread_daemon_requests_in_total") - in0;
    assert!(batched > 0, "no batched message reached spreadlogd: {c:?}");
    // Many lines per message: one message per line (batched messages off or broken) would give
    // at least n requests at the daemon.
    assert!(
        messages * 3 <= n,
        "{messages} messages reached the daemon for {n} lines: {c:?}"
    );
    println!(
        "batched messages: {n} lines in {messages} messages at the daemon ({batched} batched at \
         spreadlogd); central file exact"
    );
}
