//! Streams and the control channel (docs/contracts.md "Acknowledged delivery", "Control
//! channel"), end to end with real processes:
//!
//! * lines sent while no collector is joined (the daemon drops every one of them), followed by
//!   nothing: with acknowledgements the sender holds them, and a spreadlogd that joins later gets
//!   them resent at once — its file ends equal to the file log. Without acknowledgements
//!   (`SpreadAcknowledge Off`, `spread-pipe -A`) only the stream's announcement can reveal them,
//!   and spreadlogd must report exactly that many lines missing;
//! * no control message and no resent line reaches a log group: a receiver that writes every
//!   body it gets there, as the original C spreadlogd does, ends with exactly the lines of the
//!   plain file log that were sent while it listened, byte for byte.
//!
//! Each runs with Apache and the module as the sender, and with `spread-pipe`.

use std::path::Path;
use std::time::Duration;

use systest::apache::{self, Apache};
use systest::c_collector::CStyleCollector;
use systest::http;
use systest::procs::{Daemon, Logd, Pipe, logd_conf};
use systest::tally::id;
use systest::{TempDir, free_addr, skip, sorted_lines, wait_value};

const GROUP: &str = "www";
/// Lines numbered while nobody listens, then lines sent while both collectors listen.
const EARLY: u64 = 37;
const LATER: u64 = 23;

/// The sender under test: lines go out numbered on GROUP; `expected` is what a file log holds.
enum Sender {
    Apache(Apache),
    Pipe(Pipe),
}

impl Sender {
    fn send(&mut self, range: std::ops::Range<u64>) {
        match self {
            Sender::Apache(a) => {
                let st = a.client(move |addr| http::load(addr, "a", range, Duration::ZERO, ""));
                assert_eq!(st.ok, st.sent, "requests failed: {:?}", st.failed);
            }
            Sender::Pipe(p) => {
                for n in range {
                    p.send(&format!("{} from spread-pipe", id("p", n)));
                }
            }
        }
    }

    /// The plain file log's lines with ids in `range` (Apache: its own file CustomLog beside the
    /// Spread one; spread-pipe: exactly the lines written to it).
    fn file_log(&self, range: std::ops::Range<u64>) -> String {
        match self {
            Sender::Apache(a) => {
                let text = std::fs::read_to_string(a.dir.join("access.log")).expect("file log");
                let keep = |l: &&str| {
                    l.strip_prefix("/i/a/")
                        .and_then(|r| r.split(' ').next()?.parse::<u64>().ok())
                        .is_some_and(|n| range.contains(&n))
                };
                text.lines()
                    .filter(keep)
                    .map(|l| format!("{l}\n"))
                    .collect()
            }
            Sender::Pipe(_) => range
                .map(|n| format!("{} from spread-pipe\n", id("p", n)))
                .collect(),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Sender::Apache(a) => a.error_log_tail(),
            Sender::Pipe(p) => p.proc.log(),
        }
    }

    fn stop(&mut self) {
        match self {
            Sender::Apache(a) => a.stop(),
            Sender::Pipe(p) => assert_eq!(p.finish(), 0, "spread-pipe:\n{}", p.proc.log()),
        }
    }
}

fn start_sender(kind: &str, acks: bool, t: &TempDir, spread: &str) -> Sender {
    match kind {
        "apache" => {
            let fmt = "\"%U%q %>s\"";
            let body = format!(
                "SpreadDaemon {spread}\n\
                 SpreadSpool {}/spool\n\
                 SpreadAcknowledge {}\n\
                 {}\
                 CustomLog \"${GROUP}\" {fmt} {not}\n\
                 CustomLog {}/access.log {fmt} {not}\n",
                t.subdir("spool").display(),
                if acks { "On" } else { "Off" },
                apache::STATUS,
                t.subdir("apache").display(),
                not = apache::NOT_STATUS,
            );
            Sender::Apache(Apache::start(
                &t.subdir("apache"),
                None,
                free_addr(),
                apache::ONE_CHILD,
                &body,
            ))
        }
        _ => Sender::Pipe(Pipe::start_with(
            t.path(),
            None,
            spread,
            GROUP,
            "p",
            if acks { &[] } else { &["-A"] },
        )),
    }
}

/// Poll spreadlogd's counters (each poll is a SIGUSR1 report) until `done`, or time out.
fn counters_when(
    logd: &Logd,
    what: &str,
    timeout: Duration,
    done: impl Fn(&std::collections::BTreeMap<String, u64>) -> bool,
) -> std::collections::BTreeMap<String, u64> {
    wait_value(what, timeout, || {
        let c = logd.counters();
        if done(&c) {
            Ok(c)
        } else {
            std::thread::sleep(Duration::from_millis(300));
            Err(c)
        }
    })
}

fn lines_before_any_collector(kind: &str, acks: bool) {
    let name = format!("lines_before_any_collector[{kind}, acks {acks}]");
    if kind == "apache"
        && let Some(why) = apache::unavailable()
    {
        return skip(&name, &why);
    }
    let t = TempDir::new("tail");
    let daemon = Daemon::local(&t, &[]);
    let spread = daemon.spread_name();
    let mut sender = start_sender(kind, acks, &t, &spread);

    // Numbered and handed over while nobody is joined: the daemon drops every one of them, and
    // nothing numbered follows while the sender is idle.
    sender.send(0..EARLY);
    std::thread::sleep(Duration::from_millis(300));

    // A new collector (its state file is new: its history is complete and empty), and beside it
    // a receiver that writes every body it gets, as the C spreadlogd does.
    let central = t.join("www.log");
    let logd = Logd::start(
        t.path(),
        None,
        &logd_conf(&spread, &t.join("state/gaps"), &[(GROUP, &central)]),
    );
    let c_style = CStyleCollector::start(&spread, &[GROUP], &t.join("c-style.log"));
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let c = if acks {
        // The sender's announcement introduces the collector, which answers "nothing here":
        // the held lines are resent to it at once.
        counters_when(
            &logd,
            "the held lines resent",
            Duration::from_secs(30),
            |c| c.get("lines_written").copied().unwrap_or(0) >= EARLY,
        )
    } else {
        counters_when(
            &logd,
            "the idle sender's announcement",
            Duration::from_secs(30),
            |c| c.get("stream_lines_missing").copied().unwrap_or(0) > 0,
        )
    };
    let (written, missing) = if acks { (EARLY, 0) } else { (0, EARLY) };
    assert_eq!(
        (
            c["lines_written"],
            c["stream_lines_missing"],
            c["lines_lost_in_gaps"],
            c["unknown_gaps"]
        ),
        (written, missing, 0, 0),
        "{c:?}\nspreadlogd:\n{}",
        logd.proc.log()
    );
    if acks {
        assert!(c["resent_received"] >= EARLY, "{c:?}");
    }

    // Lines sent while both listen arrive, then the sender exits (announcing once more).
    sender.send(EARLY..EARLY + LATER);
    let live = sender.file_log(EARLY..EARLY + LATER);
    assert_eq!(live.lines().count() as u64, LATER, "the file log has them");
    let expected = if acks {
        sender.file_log(0..EARLY + LATER)
    } else {
        live.clone()
    };
    sender.stop();
    let want = expected.lines().count() as u64;
    wait_value(
        "the lines in the central file",
        Duration::from_secs(20),
        || {
            let n = lines(&central).lines().count() as u64;
            if n >= want { Ok(()) } else { Err(n) }
        },
    );
    let c = wait_value("the exit announcement", Duration::from_secs(20), || {
        let c = logd.counters();
        if c["announcements"] >= 2 {
            Ok(c)
        } else {
            // Say why when it never comes: the sender's own account of its exit.
            Err(format!("{c:?}\nsender:\n{}", sender.log_tail()))
        }
    });
    println!("{name}: {c:?}");
    assert_eq!(
        sorted_lines(&lines(&central)),
        sorted_lines(&expected),
        "central file == file log"
    );
    assert_eq!(
        sorted_lines(&c_style.text()),
        sorted_lines(&live),
        "the C-style collector's file == the lines sent while it listened: no control message \
         and no resent line reached the log group"
    );
    assert_eq!(
        (
            c["stream_lines_missing"],
            c["lines_lost_in_gaps"],
            c["unknown_gaps"],
            c["control_skipped"]
        ),
        (missing, 0, 0, 0),
        "{c:?}"
    );
}

#[test]
fn lines_before_any_collector_are_resent_apache() {
    lines_before_any_collector("apache", true);
}

#[test]
fn lines_before_any_collector_are_resent_spread_pipe() {
    lines_before_any_collector("spread-pipe", true);
}

#[test]
fn lines_before_any_collector_are_counted_without_acks_apache() {
    lines_before_any_collector("apache", false);
}

#[test]
fn lines_before_any_collector_are_counted_without_acks_spread_pipe() {
    lines_before_any_collector("spread-pipe", false);
}
