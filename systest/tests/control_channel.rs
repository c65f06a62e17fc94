//! The control channel (docs/contracts.md "Control channel"), end to end with real processes:
//!
//! * a lost tail is counted exactly: lines numbered while no collector is joined (the daemon
//!   drops them) are followed by nothing numbered, so only the sender's next-number
//!   announcement can reveal them. A spreadlogd that joins afterwards must report exactly that
//!   many lost lines, and no gap of unknown size;
//! * no control message reaches a log file: a receiver that writes every body it gets on the log
//!   group, as the original C spreadlogd does, ends with exactly the lines of the plain file log
//!   that were sent while it listened, byte for byte — and so does spreadlogd's central file.
//!
//! Each runs with Apache and the module as the sender, and with `spread-pipe`.

use std::path::Path;
use std::time::Duration;

use systest::apache::{self, Apache};
use systest::c_collector::CStyleCollector;
use systest::http;
use systest::procs::{Daemon, Logd, Pipe, logd_conf};
use systest::tally::id;
use systest::{TempDir, free_addr, skip, wait_value};

const GROUP: &str = "www";
/// Lines numbered while nobody listens, then lines sent while both collectors listen.
const LOST: u64 = 37;
const LATER: u64 = 23;

/// The lines of a file, sorted (the comparison the fault suite uses: central == file log).
fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

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

    fn stop(&mut self) {
        match self {
            Sender::Apache(a) => a.stop(),
            Sender::Pipe(p) => assert_eq!(p.finish(), 0, "spread-pipe:\n{}", p.proc.log()),
        }
    }
}

fn start_sender(kind: &str, t: &TempDir, spread: &str) -> Sender {
    match kind {
        "apache" => {
            let fmt = "\"%U%q %>s\"";
            let body = format!(
                "SpreadDaemon {spread}\n\
                 SpreadSpool {}/spool\n\
                 {}\
                 CustomLog \"${GROUP}\" {fmt} {not}\n\
                 CustomLog {}/access.log {fmt} {not}\n",
                t.subdir("spool").display(),
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
        _ => Sender::Pipe(Pipe::start(t.path(), None, spread, GROUP, "p")),
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

fn lost_tail_counted_exactly(kind: &str) {
    let name = format!("lost_tail_counted_exactly[{kind}]");
    if kind == "apache"
        && let Some(why) = apache::unavailable()
    {
        return skip(&name, &why);
    }
    let t = TempDir::new("tail");
    let daemon = Daemon::local(&t, &[]);
    let spread = daemon.spread_name();
    let mut sender = start_sender(kind, &t, &spread);

    // Numbered and handed over while nobody is joined: the daemon drops every one of them, and
    // nothing numbered follows while the sender is idle.
    sender.send(0..LOST);
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
    let c = counters_when(
        &logd,
        "the idle sender's announcement",
        Duration::from_secs(30),
        |c| c.get("announcements").copied().unwrap_or(0) > 0,
    );
    assert_eq!(
        (
            c["lines_lost_in_gaps"],
            c["sequence_gaps"],
            c["unknown_gaps"]
        ),
        (LOST, 1, 0),
        "the lost tail, counted exactly once: {c:?}\nspreadlogd:\n{}",
        logd.proc.log()
    );

    // Lines sent while both listen arrive, then the sender exits (announcing once more).
    sender.send(LOST..LOST + LATER);
    let expected = sender.file_log(LOST..LOST + LATER);
    assert_eq!(
        expected.lines().count() as u64,
        LATER,
        "the file log has them"
    );
    sender.stop();
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_value(
        "the later lines in the central file",
        Duration::from_secs(20),
        || {
            let n = lines(&central).lines().count() as u64;
            if n >= LATER { Ok(()) } else { Err(n) }
        },
    );
    let c = counters_when(
        &logd,
        "the exit announcement",
        Duration::from_secs(20),
        |c| c["announcements"] >= 2,
    );
    println!("{name}: lost {LOST} counted {c:?}");
    assert_eq!(
        sorted_lines(&lines(&central)),
        sorted_lines(&expected),
        "central file == file log"
    );
    assert_eq!(
        sorted_lines(&c_style.text()),
        sorted_lines(&expected),
        "the C-style collector's file == file log: no control message reached the log group"
    );
    assert_eq!(
        (
            c["lines_lost_in_gaps"],
            c["unknown_gaps"],
            c["repeats"],
            c["control_skipped"]
        ),
        (LOST, 0, 0, 0),
        "{c:?}"
    );
}

#[test]
fn lost_tail_counted_exactly_apache() {
    lost_tail_counted_exactly("apache");
}

#[test]
fn lost_tail_counted_exactly_spread_pipe() {
    lost_tail_counted_exactly("spread-pipe");
}
