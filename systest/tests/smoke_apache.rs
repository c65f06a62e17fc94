//! One Apache, one daemon, one spreadlogd on this machine: every request's line arrives once.

use std::time::Duration;

use systest::apache::{self, Apache};
use systest::procs::{Daemon, Logd, logd_conf};
use systest::tally::Tally;
use systest::{TempDir, free_addr, http, promtool, skip, wait_value};

#[test]
fn apache_lines_reach_spreadlogd_once() {
    if let Some(why) = apache::unavailable() {
        return skip("apache_lines_reach_spreadlogd_once", &why);
    }
    let t = TempDir::new("smoke");
    let daemon = Daemon::local(&t, &[]);
    let central = t.join("www.log");
    let _logd = Logd::local(&t, &daemon.spread_name(), &[("www", &central)]);
    let (apache, addr) =
        Apache::logging_www(&t, &daemon.spread_name(), apache::TWO_CHILDREN, "", "");
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

/// The three metrics endpoints of one running system (module, spread-daemon, spreadlogd) pass
/// promtool, the module's page matches its plain counters, and every metric the shipped Grafana
/// dashboard and alert rules use is one that is served.
#[test]
fn every_part_serves_prometheus_metrics_that_the_dashboard_and_rules_use() {
    if let Some(why) = apache::unavailable() {
        return skip(
            "every_part_serves_prometheus_metrics_that_the_dashboard_and_rules_use",
            &why,
        );
    }
    let t = TempDir::new("prom");
    let daemon_metrics = free_addr();
    let daemon = Daemon::local(&t, &["--metrics-listen", &daemon_metrics.to_string()]);
    let central = t.join("www.log");
    let logd_metrics = free_addr();
    let _logd = Logd::start(
        t.path(),
        None,
        &format!(
            "MetricsListen = {logd_metrics}\n{}",
            logd_conf(&daemon.spread_name(), &t.join("gaps"), &[("www", &central)])
        ),
    );
    let (apache, addr) = Apache::logging_www(
        &t,
        &daemon.spread_name(),
        apache::TWO_CHILDREN,
        apache::STATUS,
        apache::NOT_STATUS,
    );
    let n = 30;
    let st = http::load(addr, "p", 0..n, Duration::ZERO, "");
    assert_eq!(st.ok, n, "{st:?}\n{}", apache.error_log_tail());
    // The two pages are compared at a quiet moment: the children's background threads change
    // some counters by themselves (a timed batch write, an acknowledgement), so both are read
    // between two equal readings of the plain page.
    let (plain, module) = wait_value(
        "a quiet moment to compare the two pages",
        Duration::from_secs(10),
        || {
            let before = apache.counters();
            let module = apache.client(|a| http::get(a, "/spread-status?format=prometheus"));
            let after = apache.counters();
            if before == after {
                Ok((after, module))
            } else {
                Err(format!("{before:?} then {after:?}"))
            }
        },
    );
    assert_eq!(plain.get("sent"), Some(&n), "{plain:?}");
    assert_eq!(module.status, 200, "{module:?}");
    // Every counter of the plain page, under its Prometheus name, with the same value.
    for (k, v) in &plain {
        let line = format!("\nmod_log_spread_{k}_total {v}\n");
        assert!(
            module.body.contains(&line),
            "{line:?} not in\n{}",
            module.body
        );
    }
    wait_value(
        "spreadlogd wrote every line",
        Duration::from_secs(15),
        || {
            let page = http::get(logd_metrics, "/metrics").body;
            if page.contains(&format!("\nspreadlogd_lines_written_total {n}\n")) {
                Ok(())
            } else {
                Err(page)
            }
        },
    );
    // Per group: the lines and bytes handed over to group www are the central file's.
    let written = std::fs::metadata(&central).unwrap().len();
    for line in [
        format!("\nmod_log_spread_group_lines_total{{group=\"www\"}} {n}\n"),
        format!("\nmod_log_spread_group_bytes_total{{group=\"www\"}} {written}\n"),
        "\nmod_log_spread_group_spooled_total{group=\"www\"} 0\n".to_string(),
    ] {
        assert!(
            module.body.contains(&line),
            "{line:?} not in\n{}",
            module.body
        );
    }
    let collector = http::get(logd_metrics, "/metrics");
    let spread = http::get(daemon_metrics, "/metrics");
    let mut served = std::collections::BTreeSet::new();
    for (who, r) in [
        ("module", &module),
        ("spreadlogd", &collector),
        ("spread-daemon", &spread),
    ] {
        assert_eq!(r.status, 200, "{who}: {r:?}");
        promtool::assert_clean_metrics(who, &r.body);
        served.extend(promtool::exposed(&r.body));
    }
    let conf = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conf");
    for file in ["grafana-dashboard.json", "prometheus-alerts.yml"] {
        let text = std::fs::read_to_string(conf.join(file)).unwrap();
        let used = promtool::referenced(&text);
        assert!(!used.is_empty(), "{file} uses no metric of ours");
        let unknown: Vec<_> = used.difference(&served).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics nobody serves: {unknown:?}"
        );
    }
}
