//! The man pages in pkg/man: clean for groff, and in step with the programs: every option a
//! program's `--help` lists is in its page. (spreadlogd's parser checks spreadlogd.conf(5) against
//! its keyword lists in its own unit tests.)

use std::path::PathBuf;
use std::process::Command;

use systest::bins::bin;

fn page(name: &str) -> (PathBuf, String) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pkg/man")
        .join(name);
    let roff = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    // What a reader sees: roff's escaped hyphens are plain ones.
    (p, roff.replace("\\-", "-"))
}

/// The options (`-c`, `--spool-cap`) a `--help` text lists at the start of its lines.
fn options_in_help(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split([' ', ','])
                .take_while(|w| w.is_empty() || w.starts_with('-'))
                .filter(|w| w.starts_with('-'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn groff_finds_nothing_to_warn_about() {
    for name in [
        "spreadlogd.8",
        "spreadlogd.conf.5",
        "spread-daemon.8",
        "spread-tail.1",
        "spread-pipe.1",
    ] {
        let (path, _) = page(name);
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff (Debian package groff-base; scripts/setup installs it)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_option_of_every_program_is_in_its_man_page() {
    for (program, name) in [
        ("spreadlogd", "spreadlogd.8"),
        ("spread-daemon", "spread-daemon.8"),
        ("spread-tail", "spread-tail.1"),
        ("spread-pipe", "spread-pipe.1"),
    ] {
        let out = Command::new(bin(program)).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let options = options_in_help(&help);
        assert!(
            options.len() >= 4,
            "{program}: options found in --help: {options:?}"
        );
        let (_, text) = page(name);
        for o in options {
            assert!(text.contains(&o), "{name} does not describe {o}");
        }
    }
}
