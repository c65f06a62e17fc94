//! Batching on the request path (`SpreadFlushInterval`, `SpreadBatchSize`): a child's lines share
//! writes to the daemon, every line still arrives once, and a lone line is written within the
//! flush interval by the child's background thread (no later request needed).

use std::time::{Duration, Instant};

use systest::apache::{self, Apache};
use systest::procs::{Daemon, Logd};
use systest::tally::Tally;
use systest::{TempDir, free_addr, http, skip, wait_value};

/// A daemon counter from its `/metrics` page.
fn daemon_counter(metrics: std::net::SocketAddr, name: &str) -> u64 {
    let page = http::get(metrics, "/metrics").body;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not on the daemon's page:\n{page}"))
}

fn apache_with(t: &TempDir, spread: &str, extra: &str) -> (Apache, std::net::SocketAddr) {
    let spool = t.subdir("spool");
    let addr = free_addr();
    let apache = Apache::start(
        &t.subdir("apache"),
        None,
        addr,
        apache::TWO_CHILDREN,
        &format!(
            "SpreadDaemon {spread}\nSpreadSpool {}/spool\n{extra}{}CustomLog \"$www\" \"%U %>s\" {}\n",
            spool.display(),
            apache::STATUS,
            apache::NOT_STATUS
        ),
    );
    (apache, addr)
}

#[test]
fn batched_lines_share_writes_and_each_arrives_once() {
    if let Some(why) = apache::unavailable() {
        return skip("batched_lines_share_writes_and_each_arrives_once", &why);
    }
    let t = TempDir::new("batching");
    let metrics = free_addr();
    let daemon = Daemon::local(&t, &["--metrics-listen", &metrics.to_string()]);
    let central = t.join("www.log");
    let _logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    // The defaults: batching on (10 ms, 32K), acknowledgements on.
    let (apache, addr) = apache_with(&t, &daemon.spread_name(), "");
    let n = 3000;
    let (reads0, in0) = (
        daemon_counter(metrics, "spread_daemon_reads_total"),
        daemon_counter(metrics, "spread_daemon_requests_in_total"),
    );
    let st = http::load(addr, "b", 0..n, Duration::ZERO, "");
    assert_eq!(st.ok, n, "{st:?}\n{}", apache.error_log_tail());
    let tally = wait_value(
        "every line in the central file",
        Duration::from_secs(20),
        || {
            let t = Tally::of_file(&central);
            if t.distinct() as u64 == n {
                Ok(t)
            } else {
                Err(t.report(&[("b", n)]))
            }
        },
    );
    std::thread::sleep(Duration::from_millis(300)); // room for duplicates to show up
    let tally2 = Tally::of_file(&central);
    assert_eq!(tally2.total(), n, "{}", tally.report(&[("b", n)]));
    let c = apache.counters();
    let (sent, writes) = (c["sent"], c["batch_writes"]);
    assert_eq!(sent, n, "{c:?}");
    // Several lines per write: at this rate a 10 ms batch holds many lines; one write per line
    // (batching broken) gives a ratio of 1 and batch_writes == sent.
    assert!(
        writes > 0 && sent >= 3 * writes,
        "lines per write {sent}/{writes}: {c:?}"
    );
    let reads = daemon_counter(metrics, "spread_daemon_reads_total") - reads0;
    let msgs = daemon_counter(metrics, "spread_daemon_requests_in_total") - in0;
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
    if let Some(why) = apache::unavailable() {
        return skip("a_lone_line_is_written_within_the_flush_interval", &why);
    }
    let t = TempDir::new("batching-bound");
    let metrics = free_addr();
    let daemon = Daemon::local(&t, &["--metrics-listen", &metrics.to_string()]);
    // Acknowledgements off: the background thread's upkeep then runs only every 500 ms, so a
    // line that arrives within 300 ms was written by the flush timer (20 ms here), not by the
    // upkeep or by a later request.
    let (apache, addr) = apache_with(
        &t,
        &daemon.spread_name(),
        "SpreadAcknowledge Off\nSpreadFlushInterval 20\n",
    );
    // Connections are opened lazily: a first line makes them.
    let st = http::load(addr, "w", 0..1, Duration::ZERO, "");
    assert_eq!(st.ok, 1, "{st:?}");
    std::thread::sleep(Duration::from_millis(700));
    let mut delays = Vec::new();
    for i in 1..6 {
        let before = daemon_counter(metrics, "spread_daemon_requests_in_total");
        let st = http::load(addr, "w", i..i + 1, Duration::ZERO, "");
        assert_eq!(st.ok, 1, "{st:?}");
        let sent = Instant::now();
        let arrived = wait_value("the line at the daemon", Duration::from_secs(5), || {
            if daemon_counter(metrics, "spread_daemon_requests_in_total") > before {
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
        apache.error_log_tail()
    );
    println!("batching bound: lone lines at the daemon after {delays:?} (SpreadFlushInterval 20)");
}

#[test]
fn batched_messages_carry_many_lines_and_spreadlogd_writes_each_once() {
    if let Some(why) = apache::unavailable() {
        return skip(
            "batched_messages_carry_many_lines_and_spreadlogd_writes_each_once",
            &why,
        );
    }
    let t = TempDir::new("batch-messages");
    let metrics = free_addr();
    let daemon = Daemon::local(&t, &["--metrics-listen", &metrics.to_string()]);
    let central = t.join("www.log");
    let logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let (apache, addr) = apache_with(&t, &daemon.spread_name(), "SpreadBatchMessages On\n");
    let n = 3000;
    let in0 = daemon_counter(metrics, "spread_daemon_requests_in_total");
    let st = http::load(addr, "m", 0..n, Duration::ZERO, "");
    assert_eq!(st.ok, n, "{st:?}\n{}", apache.error_log_tail());
    wait_value(
        "every line in the central file",
        Duration::from_secs(20),
        || {
            let t = Tally::of_file(&central);
            if t.distinct() as u64 == n {
                Ok(())
            } else {
                Err(t.report(&[("m", n)]))
            }
        },
    );
    std::thread::sleep(Duration::from_millis(300)); // room for duplicates to show up
    let tally = Tally::of_file(&central);
    assert_eq!(tally.total(), n, "{}", tally.report(&[("m", n)]));
    let c = logd.counters();
    let batched = c.get("batched_messages").copied().unwrap_or(0);
    let messages = daemon_counter(metrics, "spread_daemon_requests_in_total") - in0;
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
