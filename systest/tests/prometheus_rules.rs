//! The shipped alert rules (conf/prometheus-alerts.yml) load in Prometheus and fire as their unit
//! tests (conf/prometheus-alerts.test.yml) say, checked with promtool.

use std::path::PathBuf;

fn conf(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conf")
        .join(file)
}

#[test]
fn shipped_alert_rules_are_valid_and_their_unit_tests_pass() {
    if let Err(e) = systest::promtool::check_rules(&conf("prometheus-alerts.yml")) {
        panic!("promtool check rules: {e}");
    }
    if let Err(e) = systest::promtool::test_rules(&conf("prometheus-alerts.test.yml")) {
        panic!("promtool test rules: {e}");
    }
}
