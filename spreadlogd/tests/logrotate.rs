//! The shipped logrotate configuration (`pkg/logrotate/spreadlogd`), run for real and repeatedly
//! against a running spreadlogd under load, with a plain log file and a VhostDir: every line ends
//! up in exactly one file (live, rotated or compressed), and spreadlogd only ever holds live files
//! open.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The shipped file, pointed at `dir` instead of /var/log/spreadlogd, with its postrotate
/// signalling `pid` (the test's spreadlogd) and its `su` owner the test's user.
fn test_logrotate_conf(dir: &Path, pid: u32) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pkg/logrotate/spreadlogd"),
    )
    .expect("read the shipped logrotate file");
    let (pre, post) = shipped
        .split_once("    postrotate\n")
        .expect("a postrotate");
    let (_, rest) = post.split_once("    endscript\n").expect("an endscript");
    format!("{pre}    postrotate\n        kill -HUP {pid}\n    endscript\n{rest}")
        .replace("/var/log/spreadlogd", &dir.display().to_string())
        .replace("su spreadlogd adm", "su root root")
        .replace(
            "createolddir 0750 spreadlogd adm",
            "createolddir 0750 root root",
        )
}

/// `logrotate -f` with its state in `state`; fails the test if logrotate reports an error.
fn logrotate_now(state: &Path, conf: &Path) {
    let out = Command::new("logrotate")
        .args([std::ffi::OsStr::new("-f"), "-s".as_ref(), state.as_os_str()])
        .arg(conf)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "logrotate failed: {said}");
}

/// Every file below `dir` (rotated ones decompressed), as text.
fn all_lines(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".conf") || name.contains("stderr") || name.starts_with("lr-") {
                continue;
            }
            let text = if name.ends_with(".gz") {
                let o = Command::new("gzip").arg("-dc").arg(&p).output().unwrap();
                String::from_utf8_lossy(&o.stdout).into_owned()
            } else {
                read(&p)
            };
            out.push((p, text));
        }
    }
    out
}

#[test]
fn shipped_logrotate_config_keeps_every_line_exactly_once() {
    if Command::new("logrotate").arg("--version").output().is_err() {
        systest::skip(
            "shipped_logrotate_config_keeps_every_line_exactly_once",
            "logrotate is not installed (apt-get install logrotate)",
        );
        return;
    }
    let (dir, daemon) = dir_with_daemon();
    let d = dir.path();
    let logs = d.join("logs");
    std::fs::create_dir_all(logs.join("vhosts")).unwrap();
    let c = conf(
        d,
        &format!(
            "StateFile = {d}/gaps\nSpread {{ Port = {}\n Log {{ Group = www File = {l}/www.log }}\n \
             Log {{ Group = vh VhostDir = {l}/vhosts }} }}",
            daemon.spread_name(),
            d = d.display(),
            l = logs.display()
        ),
    );
    let logd = Logd::joined(d, &c);
    let lr_conf = d.join("lr-spreadlogd");
    std::fs::write(&lr_conf, test_logrotate_conf(&logs, logd.proc.child.id())).unwrap();

    // Load: numbered lines to the plain file and to three vhosts, while logrotate runs 6 times.
    const N: usize = 6_000;
    let name = daemon.spread_name();
    let load = std::thread::spawn(move || {
        let mut s = sender(&name, "lrot");
        for i in 0..N {
            send(&mut s, "www", 0, format!("www {i}\n").as_bytes());
            let host = ["a.example", "b.example.1", "c.example"][i % 3];
            send(&mut s, "vh", 0, format!("{host} vhost {i}\n").as_bytes());
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(150));
        logrotate_now(&d.join("lr-state"), &lr_conf);
    }
    load.join().unwrap();
    wait_for("every line written", || {
        let n: usize = all_lines(&logs)
            .iter()
            .map(|(_, t)| t.lines().count())
            .sum();
        (n >= 2 * N).then_some(())
    });

    // Exactly once, across live, rotated and compressed files.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, text) in all_lines(&logs) {
        for l in text.lines() {
            *seen.entry(l.to_owned()).or_default() += 1;
        }
    }
    let want = (0..N).flat_map(|i| [format!("www {i}"), format!("vhost {i}")]);
    for w in want {
        assert_eq!(seen.get(&w), Some(&1), "{w:?}");
    }
    assert_eq!(seen.len(), 2 * N, "nothing but the lines sent");
    // Rotated files stayed in old/: never rotated again (no a.example.1.1, no .gz.1).
    let rotated: Vec<String> = std::fs::read_dir(logs.join("old"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!rotated.is_empty(), "logrotate rotated nothing");
    let live = ["www.log", "a.example", "b.example.1", "c.example"];
    for r in &rotated {
        let base = r.strip_suffix(".gz").unwrap_or(r);
        let (name, n) = base.rsplit_once('.').unwrap();
        assert!(
            live.contains(&name) && n.parse::<u32>().is_ok(),
            "not one rotation of a live file: {r}"
        );
    }

    // spreadlogd holds only live files open: nothing in old/, nothing deleted.
    logd.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let fd_dir = format!("/proc/{}/fd", logd.proc.child.id());
    for e in std::fs::read_dir(&fd_dir).unwrap() {
        let Ok(target) = std::fs::read_link(e.unwrap().path()) else {
            continue;
        };
        let t = target.display().to_string();
        if t.starts_with(&logs.display().to_string()) {
            assert!(!t.contains("/old/") && !t.ends_with("(deleted)"), "{t}");
        }
    }
    assert_eq!(logd.term(), 0);
}
