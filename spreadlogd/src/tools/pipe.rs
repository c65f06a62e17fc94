//! `spread-pipe [-s NAME] [-S SPOOL] GROUP`: every line read from stdin becomes one message to
//! GROUP (exactly the bytes read, newline included), numbered as CONTRACTS §2 says. A reader thread
//! never stops reading stdin, so the writer (Apache's `ErrorLog "|spread-pipe …"`, or anything) is
//! never blocked; lines that cannot be handed over go to a spool file (CONTRACTS §5) and are replayed,
//! in order, once the daemon is back and the group has a member.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use spread_sys::announce::Announcer;
use spread_sys::control::{self, Record};
use spread_sys::seq::{SeqCounter, mess_type_for};
use spread_sys::spool::{Appended, FillAlarm, ReplayOutcome, Spool};
use spread_sys::wire::constants::AGREED_MESS;
use spread_sys::{ConnectOptions, Mailbox, Message};

use super::Parsed;
use crate::signals::Signals;

pub const USAGE: &str = "usage: spread-pipe [-s SPREAD_NAME] [-S SPOOL_FILE] [-C BYTES] GROUP
  -s, --spread NAME     daemon (4803 = /tmp/4803, 4803@host = TCP, /path = unix socket; default 4803)
  -S, --spool FILE      spool file for lines the daemon could not take
                        (default /var/tmp/spread-pipe.<uid>.<GROUP>.spool)
  -C, --spool-cap BYTES spool size cap (default 268435456); beyond it lines are dropped, counted
                        and reported
  -V, --version         print the version and exit
  -h, --help            this help
Each stdin line becomes one message to GROUP; a line longer than the largest Spread message
(143088 bytes beside its stream tag) is sent in several messages.";

/// Largest line of one message: beside the log group, the stream tag (CONTRACTS "Names").
pub const MAX_BODY: usize = spread_sys::stream::MAX_LINE;
/// Bytes of input handled per send batch.
const BATCH_BYTES: usize = 4 << 20;
/// How long spread-pipe keeps trying to send spooled lines after the end of its input.
const FINAL_GRACE: Duration = Duration::from_secs(5);
/// Default spool cap (`-C`).
pub const DEFAULT_SPOOL_CAP: u64 = 256 << 20;

fn default_spool(group: &str) -> PathBuf {
    // SAFETY: getuid cannot fail and has no memory effects.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/var/tmp/spread-pipe.{uid}.{group}.spool"))
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    spread: String,
    spool: Option<PathBuf>,
    cap: u64,
    group: String,
}

fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed<Options>, String> {
    use lexopt::prelude::*;
    let mut spread = "4803".to_owned();
    let mut spool = None;
    let mut cap = DEFAULT_SPOOL_CAP;
    let mut group = None;
    let mut p = lexopt::Parser::from_args(args);
    let e = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('s') | Long("spread") => {
                spread = p.value().and_then(|v| v.string()).map_err(e)?
            }
            Short('S') | Long("spool") => spool = Some(PathBuf::from(p.value().map_err(e)?)),
            Short('C') | Long("spool-cap") => {
                let v = p.value().and_then(|v| v.string()).map_err(e)?;
                cap = v.parse().map_err(|err| format!("-C {v:?}: {err}"))?;
            }
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Value(g) if group.is_none() => group = Some(g.string().map_err(e)?),
            Value(_) => return Err("exactly one GROUP".into()),
            other => return Err(e(other.unexpected())),
        }
    }
    let group = group.ok_or("no group given")?;
    spread_sys::names::check_log_group(group.as_bytes())
        .map_err(|err| format!("illegal group name {group:?}: {err}"))?;
    spread_sys::SpreadName::parse(&spread).map_err(|err| err.to_string())?;
    Ok(Parsed::Run(Options {
        spread,
        spool,
        cap,
        group,
    }))
}

pub fn main<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let o = match super::options_or_exit(parse(args), "spread-pipe", USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let Options {
        spread,
        spool,
        cap,
        group,
    } = o;
    // SIGPIPE ignored (a dead daemon socket gives EPIPE); SIGTERM/SIGINT (Apache stopping its piped
    // loggers) end the input: what was read is still sent or spooled; SIGHUP is ignored.
    let _signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spread-pipe: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let spool_path = spool.unwrap_or_else(|| default_spool(&group));
    let rx = spawn_reader();
    let mut s = Sender::new(spread, group, spool_path, cap);
    s.run(rx)
}

/// Read stdin forever in big reads; hand over blocks of whole lines (a final line without newline
/// and over-long partial lines are handed over as they are).
fn spawn_reader() -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut carry: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("spread-pipe: reading stdin: {e}");
                    0
                }
            };
            if n == 0 {
                if !carry.is_empty() {
                    let _ = tx.send(carry);
                }
                return;
            }
            let data = &buf[..n];
            match data.iter().rposition(|&b| b == b'\n') {
                Some(p) => {
                    let mut block = std::mem::take(&mut carry);
                    block.extend_from_slice(&data[..=p]);
                    carry.extend_from_slice(&data[p + 1..]);
                    if tx.send(block).is_err() {
                        return;
                    }
                }
                None => carry.extend_from_slice(data),
            }
            while carry.len() > MAX_BODY {
                let rest = carry.split_off(MAX_BODY);
                if tx.send(std::mem::replace(&mut carry, rest)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The messages of a block: each line (newline included), long lines cut at MAX_BODY.
fn messages(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    block
        .split_inclusive(|&b| b == b'\n')
        .flat_map(|l| l.chunks(MAX_BODY))
}

struct Sender {
    spread: String,
    group: String,
    spool: Option<Spool>,
    spool_path: PathBuf,
    mb: Option<Mailbox>,
    /// Per group: the private group whose sequence this is, and its counter. A group is absent
    /// until its first numbered message (which then carries 0). Kept across reconnects: a
    /// session under the same private name continues the sequence; under another name the
    /// sequence is handed over first (CONTRACTS §2, `spread_sys::seq`).
    seqs: HashMap<String, (String, SeqCounter)>,
    next_try: Instant,
    backoff: Duration,
    next_probe: Instant,
    name_attempt: u32,
    down_since: Option<Instant>,
    dropped: u64,
    /// How long to keep trying to hand over spooled lines after the end of input.
    grace: Duration,
    /// When to announce the next numbers on the control channel (after a reconnect, while idle).
    announcer: Announcer,
    /// Warnings before the spool is full.
    fill: FillAlarm,
}

impl Sender {
    fn new(spread: String, group: String, spool_path: PathBuf, cap: u64) -> Sender {
        let spool = match Spool::open(&spool_path, cap) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "spread-pipe: cannot open spool {}: {e}; lines the daemon cannot take will be lost (and counted)",
                    spool_path.display()
                );
                None
            }
        };
        let now = Instant::now();
        Sender {
            spread,
            group,
            spool,
            spool_path,
            mb: None,
            seqs: HashMap::new(),
            next_try: now,
            backoff: Duration::from_millis(100),
            next_probe: now,
            name_attempt: 0,
            down_since: None,
            dropped: 0,
            grace: FINAL_GRACE,
            announcer: Announcer::new(),
            fill: FillAlarm::default(),
        }
    }

    /// Is anything left from earlier runs or failures?
    fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| s.pending_bytes() > 0)
    }

    fn run(&mut self, rx: Receiver<Vec<u8>>) -> i32 {
        let mut eof = false;
        while !eof {
            // Bounded so a SIGTERM is noticed soon even while stdin is quiet.
            let wait = Duration::from_millis(200);
            let mut batch: Vec<Vec<u8>> = Vec::new();
            match rx.recv_timeout(wait) {
                Ok(b) => batch.push(b),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => eof = true,
            }
            let mut bytes: usize = batch.iter().map(Vec::len).sum();
            let stopping = Signals::any_pending() && Signals::take_term();
            if stopping {
                eprintln!("spread-pipe: SIGTERM: sending or spooling what was read, then exiting");
                eof = true;
                self.grace = Duration::from_secs(1);
            }
            while bytes < BATCH_BYTES || stopping {
                match rx.try_recv() {
                    Ok(b) => {
                        bytes += b.len();
                        batch.push(b);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        eof = true;
                        break;
                    }
                }
            }
            self.ensure_connected();
            if self.mb.is_some() && self.spool_pending() {
                self.try_replay(false);
            }
            self.announce_if_due();
            if batch.is_empty() {
                continue;
            }
            if self.mb.is_some() && !self.spool_pending() {
                if let Err(e) = self.send(&batch) {
                    eprintln!(
                        "spread-pipe: lost {}: {e}; spooling to {}",
                        self.spread,
                        self.spool_path.display()
                    );
                    self.connection_lost();
                    self.spool_blocks(&batch);
                }
            } else {
                // Keep order: while anything is spooled, new lines queue behind it.
                self.spool_blocks(&batch);
            }
        }
        // End of input: give the daemon (and a collector) a bounded chance to take what is spooled,
        // ignoring the reconnect backoff.
        let deadline = Instant::now() + self.grace;
        while self.spool_pending() && Instant::now() < deadline {
            if self.mb.is_none() {
                self.next_try = Instant::now();
                self.ensure_connected();
            }
            if self.mb.is_some() {
                self.try_replay(true);
            }
            if self.spool_pending() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // At exit: where our sequences stand, since nothing numbered follows the last lines.
        if self.mb.is_none() && self.numbered_total() > 0 {
            self.next_try = Instant::now();
            self.ensure_connected();
        }
        if let Some(mut mb) = self.mb.take() {
            let _ = announce(&mut mb, &self.seqs);
            let _ = mb.disconnect();
        }
        if self.spool_pending() {
            eprintln!(
                "spread-pipe: lines left in the spool {}: the next spread-pipe using it sends them",
                self.spool_path.display()
            );
        }
        if self.dropped > 0 {
            eprintln!(
                "spread-pipe: {} line(s) could not be sent nor spooled and were dropped",
                self.dropped
            );
            return 1;
        }
        0
    }

    fn send(&mut self, batch: &[Vec<u8>]) -> spread_sys::Result<()> {
        let mb = self.mb.as_mut().expect("connected");
        let groups = [self.group.as_str()];
        let counter = counter_for(&mut self.seqs, mb, &self.group);
        let start = *counter;
        let result = (|| {
            for block in batch {
                for m in messages(block) {
                    mb.queue_multicast(AGREED_MESS, &groups, mess_type_for(counter.peek()), m)?;
                    counter.advance();
                }
            }
            mb.flush()
        })();
        if result.is_err() {
            // The whole batch goes to the spool and gets these numbers again when it is replayed:
            // a number is used only by a message that was handed over.
            *counter = start;
            if start.issued() == 0 {
                self.seqs.remove(&self.group);
            }
        }
        result
    }

    /// After connecting: every sequence that belongs to another private name (the daemon refused
    /// the old one) is handed over on the control channel before any line, then starts afresh.
    fn hand_over(&mut self) -> spread_sys::Result<()> {
        let Some(mb) = self.mb.as_mut() else {
            return Ok(());
        };
        let me = mb.private_group().to_owned();
        // (Nothing numbered yet under the old name: nothing to hand over.)
        let stale = self
            .seqs
            .iter()
            .filter(|(_, (owner, counter))| *owner != me && counter.issued() != 0)
            .map(|(g, (owner, counter))| Record::Handover {
                old: owner.as_bytes(),
                group: g.as_bytes(),
                next: counter.issued(),
            });
        let stale: Vec<Record<'_>> = stale.collect();
        if !stale.is_empty() {
            control::send(mb, AGREED_MESS, stale.iter().copied())?;
            for r in &stale {
                if let Record::Handover { old, group, next } = r {
                    eprintln!(
                        "spread-pipe: now {me}: handed over {}'s sequence to group {} (next {next})",
                        String::from_utf8_lossy(old),
                        String::from_utf8_lossy(group)
                    );
                }
            }
        }
        self.seqs.retain(|_, (owner, _)| *owner == me);
        Ok(())
    }

    fn numbered_total(&self) -> u64 {
        self.seqs.values().map(|(_, c)| c.issued()).sum()
    }

    /// Announce the next numbers when the schedule says so (`spread_sys::announce`).
    fn announce_if_due(&mut self) {
        let now = Instant::now();
        let total = self.numbered_total();
        if !self.announcer.tick(now, total) {
            return;
        }
        let Some(mb) = self.mb.as_mut() else {
            return;
        };
        match announce(mb, &self.seqs) {
            Ok(()) => self.announcer.announced(now),
            Err(e) => {
                eprintln!("spread-pipe: lost {}: {e}", self.spread);
                self.connection_lost();
            }
        }
    }

    fn connection_lost(&mut self) {
        self.mb = None;
        self.down_since = Some(Instant::now());
        self.next_try = Instant::now() + self.backoff;
    }

    fn ensure_connected(&mut self) {
        if self.mb.is_some() || Instant::now() < self.next_try {
            return;
        }
        let opts = ConnectOptions {
            private_name: name(self.name_attempt),
            priority: false,
            group_membership: false,
            connect_timeout: Some(Duration::from_secs(2)),
            send_timeout: Some(Duration::from_secs(5)),
        };
        match Mailbox::connect(&self.spread, &opts) {
            Ok(mb) => {
                if let Some(t) = self.down_since.take() {
                    eprintln!(
                        "spread-pipe: reconnected to {} after {:.1}s",
                        self.spread,
                        t.elapsed().as_secs_f64()
                    );
                }
                self.mb = Some(mb);
                self.backoff = Duration::from_millis(100);
                // Lines in flight on the old session may be lost: say where we stand.
                self.announcer.reconnected(Instant::now());
                // Same private name: the sequence simply continues. Another name: hand it over.
                if let Err(e) = self.hand_over() {
                    eprintln!("spread-pipe: lost {} again: {e}", self.spread);
                    self.connection_lost();
                }
            }
            Err(e) => {
                if matches!(e, spread_sys::Error::RejectNotUnique(_)) {
                    self.name_attempt += 1;
                }
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    eprintln!(
                        "spread-pipe: cannot connect to {}: {e}; spooling",
                        self.spread
                    );
                }
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    fn spool_blocks(&mut self, batch: &[Vec<u8>]) {
        let before = self.dropped;
        for block in batch {
            for m in messages(block) {
                match self
                    .spool
                    .as_ref()
                    .map(|s| s.append(0, self.group.as_bytes(), m))
                {
                    Some(Ok(Appended::Written)) => {}
                    Some(Ok(Appended::Full)) | None => self.dropped += 1,
                    Some(Err(e)) => {
                        self.dropped += 1;
                        eprintln!(
                            "spread-pipe: cannot write spool {}: {e}",
                            self.spool_path.display()
                        );
                    }
                }
            }
        }
        if let Some(spool) = &self.spool
            && let Some(level) = self.fill.check(spool.pending_bytes(), spool.cap())
        {
            eprintln!(
                "spread-pipe: spool {} is {level}% full ({} of {} bytes): lines are dropped (and \
                 counted) once it is full",
                self.spool_path.display(),
                spool.pending_bytes(),
                spool.cap()
            );
        }
        if self.dropped > before {
            eprintln!(
                "spread-pipe: spool {} full or unusable: {} line(s) dropped so far",
                self.spool_path.display(),
                self.dropped
            );
        }
    }

    /// Does the group have a member (a collector)? A short-lived second session with membership
    /// messages joins, reads the member list and disconnects (CONTRACTS §1).
    fn group_has_member(&self) -> bool {
        let opts = ConnectOptions {
            private_name: format!("pr{}", std::process::id() % 10_000_000),
            priority: false,
            group_membership: true,
            connect_timeout: Some(Duration::from_secs(2)),
            send_timeout: Some(Duration::from_secs(2)),
        };
        let Ok(mut probe) = Mailbox::connect(&self.spread, &opts) else {
            return false;
        };
        let mut found = false;
        if probe.join(&self.group).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match probe.poll(Some(deadline.saturating_duration_since(Instant::now()))) {
                    Ok(true) => {}
                    _ => break,
                }
                match probe.receive() {
                    Ok(Message::Membership(m)) if m.group == self.group => {
                        found = m.members.len() > 1;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        let _ = probe.disconnect();
        found
    }

    fn try_replay(&mut self, final_attempt: bool) {
        if Instant::now() < self.next_probe && !final_attempt {
            return;
        }
        self.next_probe = Instant::now() + Duration::from_secs(1);
        if !self.group_has_member() {
            return;
        }
        let (Some(spool), Some(mb)) = (self.spool.as_ref(), self.mb.as_mut()) else {
            return;
        };
        let seqs = &mut self.seqs;
        // One write per replayed line: a record counts as sent only once it was handed over.
        let outcome = spool.replay(|r| {
            let g = String::from_utf8_lossy(&r.group);
            let counter = counter_for(seqs, mb, &g);
            mb.multicast(
                AGREED_MESS,
                &[g.as_ref()],
                mess_type_for(counter.peek()),
                &r.line,
            )?;
            counter.advance();
            Ok::<(), spread_sys::Error>(())
        });
        match outcome {
            Ok(ReplayOutcome::Done(s)) => {
                if let Some(cut) = &s.cut {
                    eprintln!("spread-pipe: {cut}");
                }
                eprintln!("spread-pipe: replayed {} spooled line(s)", s.sent);
            }
            Ok(ReplayOutcome::Busy) => {}
            Ok(ReplayOutcome::Stopped { summary, error }) => {
                eprintln!(
                    "spread-pipe: replay interrupted after {} line(s): {error}",
                    summary.sent
                );
                self.connection_lost();
            }
            Err(e) => eprintln!(
                "spread-pipe: cannot replay spool {}: {e}",
                self.spool_path.display()
            ),
        }
    }
}

/// Announce the next number of every group numbered on this connection.
fn announce(
    mb: &mut Mailbox,
    seqs: &HashMap<String, (String, SeqCounter)>,
) -> spread_sys::Result<()> {
    let groups = seqs.iter().map(|(g, (_, c))| (g.as_bytes(), c.issued()));
    control::send(mb, AGREED_MESS, control::next_records(groups)).map(drop)
}

/// The counter numbering the next message to `group` on `mb` (hand-overs are done on connect, so
/// an existing entry belongs to `mb`'s private name).
fn counter_for<'a>(
    seqs: &'a mut HashMap<String, (String, SeqCounter)>,
    mb: &Mailbox,
    group: &str,
) -> &'a mut SeqCounter {
    let entry = seqs
        .entry(group.to_owned())
        .or_insert_with(|| (mb.private_group().to_owned(), SeqCounter::default()));
    debug_assert_eq!(entry.0, mb.private_group());
    &mut entry.1
}

fn name(attempt: u32) -> String {
    let mut n = format!(
        "pipe{}{}",
        if attempt > 0 {
            attempt.to_string()
        } else {
            String::new()
        },
        std::process::id()
    );
    n.truncate(10);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lines_with_newline_and_long_lines_are_cut() {
        let m: Vec<&[u8]> = messages(b"a\nbb\n\nc").collect();
        assert_eq!(m, vec![&b"a\n"[..], b"bb\n", b"\n", b"c"]);
        let long = vec![b'x'; MAX_BODY * 2 + 5];
        let m: Vec<usize> = messages(&long).map(<[u8]>::len).collect();
        assert_eq!(m, vec![MAX_BODY, MAX_BODY, 5]);
    }

    #[test]
    fn command_line() {
        let p = |a: &[&str]| parse(a.iter().map(|s| s.to_string()));
        assert_eq!(
            p(&[
                "-s/run/spread/4803",
                "-S",
                "/tmp/x.spool",
                "--spool-cap=100",
                "errors"
            ]),
            Ok(Parsed::Run(Options {
                spread: "/run/spread/4803".into(),
                spool: Some("/tmp/x.spool".into()),
                cap: 100,
                group: "errors".into()
            }))
        );
        assert_eq!(p(&["-V"]), Ok(Parsed::Version));
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        for (args, why) in [
            (&[][..], "no group"),
            (&["a", "b"][..], "exactly one GROUP"),
            (&["-q", "g"][..], "-q"),
            (&["-C", "lots", "g"][..], "-C \"lots\""),
            (&["mls.control"][..], "bookkeeping"),
            (&["mls~0123456789ab~1"][..], "bookkeeping"),
            (&["a b"][..], "illegal group name"),
            (&["-s", "99999", "g"][..], "99999"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(why), "{args:?}: {e}");
        }
    }

    #[test]
    fn names_fit_spread() {
        assert!(name(0).len() <= 10 && name(3).len() <= 10);
        assert!(name(0).bytes().all(|b| (0x24..=0x7e).contains(&b)));
    }
}
