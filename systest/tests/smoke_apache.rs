//! One Apache, one daemon, one spreadlogd on this machine: every request's line arrives once.

use std::time::Duration;

use systest::apache::{self, Apache};
use systest::procs::{Daemon, Logd};
use systest::tally::Tally;
use systest::{TempDir, free_addr, http, skip, wait_value};

#[test]
fn apache_lines_reach_spreadlogd_once() {
    if let Some(why) = apache::unavailable() {
        return skip("apache_lines_reach_spreadlogd_once", &why);
    }
    let t = TempDir::new("smoke");
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let _logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let spool = t.subdir("spool");
    let addr = free_addr();
    let apache = Apache::start(
        &t.subdir("apache"),
        None,
        addr,
        apache::TWO_CHILDREN,
        &format!(
            "SpreadDaemon {}\nSpreadSpool {}/spool\nCustomLog \"$www\" \"%U %>s\"\n",
            daemon.spread_name(),
            spool.display()
        ),
    );
    let n = 200;
    let st = http::load(addr, "s", 0..n, Duration::ZERO, "");
    assert_eq!(st.ok, n, "{st:?}\n{}", apache.error_log_tail());
    let tally = wait_value(
        "all lines in the central file",
        Duration::from_secs(15),
        || {
            let t = Tally::of_file(&central);
            if t.distinct() as u64 == n {
                Ok(t)
            } else {
                Err(t.report(&[("s", n)]))
            }
        },
    );
    assert_eq!(tally.total(), n, "{}", tally.report(&[("s", n)]));
    println!("smoke: sent {n}, written {}, duplicates 0", tally.total());
}

#[test]
fn status_handler_serves_prometheus_metrics_that_match_the_counters() {
    if let Some(why) = apache::unavailable() {
        return skip(
            "status_handler_serves_prometheus_metrics_that_match_the_counters",
            &why,
        );
    }
    let t = TempDir::new("prom");
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let _logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let spool = t.subdir("spool");
    let addr = free_addr();
    let apache = Apache::start(
        &t.subdir("apache"),
        None,
        addr,
        apache::TWO_CHILDREN,
        &format!(
            "SpreadDaemon {}\nSpreadSpool {}/spool\n{}CustomLog \"$www\" \"%U %>s\" {}\n",
            daemon.spread_name(),
            spool.display(),
            apache::STATUS,
            apache::NOT_STATUS
        ),
    );
    let n = 30;
    let st = http::load(addr, "p", 0..n, Duration::ZERO, "");
    assert_eq!(st.ok, n, "{st:?}\n{}", apache.error_log_tail());
    let plain = apache.counters();
    assert_eq!(plain.get("sent"), Some(&n), "{plain:?}");
    let r = apache.client(|a| http::get(a, "/spread-status?format=prometheus"));
    assert_eq!(r.status, 200, "{r:?}");
    // Every counter of the plain page, under its Prometheus name, with the same value.
    for (k, v) in &plain {
        let line = format!("\nmod_log_spread_{k}_total {v}\n");
        assert!(r.body.contains(&line), "{line:?} not in\n{}", r.body);
    }
    assert!(
        r.body
            .contains("# TYPE mod_log_spread_sent_total counter\n"),
        "{}",
        r.body
    );
    if let Err(e) = systest::promtool::check_metrics(&r.body) {
        panic!("promtool: {e}\n{}", r.body);
    }
}
