//! Prometheus' own checker (`promtool`, Debian package prometheus; scripts/setup installs it), so
//! metrics pages and alert rules are tested with the tool operators' Prometheus will apply.

use std::io::Write;
use std::process::{Command, Stdio};

fn promtool(args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut p = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("promtool: {e} (Debian package prometheus; scripts/setup installs it)")
        })?;
    let input = p.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        let mut input = input;
        input
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = p.wait_with_output().map_err(|e| e.to_string())?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(said)
    }
}

/// `promtool check metrics`: the page parses and has no lint findings (it exits non-zero on
/// either).
pub fn check_metrics(page: &str) -> Result<(), String> {
    promtool(&["check", "metrics"], Some(page))
}

/// Panic, showing the page, unless `promtool check metrics` accepts `who`'s page.
pub fn assert_clean_metrics(who: &str, page: &str) {
    if let Err(e) = check_metrics(page) {
        panic!("promtool on {who}'s page: {e}\n{page}");
    }
}

/// `promtool check rules FILE`.
pub fn check_rules(file: &std::path::Path) -> Result<(), String> {
    promtool(&["check", "rules", &file.display().to_string()], None)
}

/// `promtool test rules FILE`: the rules' unit tests (series in, expected alerts out).
pub fn test_rules(file: &std::path::Path) -> Result<(), String> {
    promtool(&["test", "rules", &file.display().to_string()], None)
}

/// The metric names a page exposes.
pub fn exposed(page: &str) -> std::collections::BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The names of this project's metrics (`mod_log_spread_…`, `spreadlogd_…`, `spread_daemon_…`)
/// that a dashboard or rules file refers to.
pub fn referenced(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            ["mod_log_spread_", "spreadlogd_", "spread_daemon_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}
