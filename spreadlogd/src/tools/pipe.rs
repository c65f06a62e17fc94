//! `spread-pipe [-s NAME] [-S SPOOL] GROUP`: every line read from stdin becomes one message to
//! GROUP (exactly the bytes read, newline included), numbered as CONTRACTS §2 says. A reader thread
//! never stops reading stdin, so the writer (Apache's `ErrorLog "|spread-pipe …"`, or anything) is
//! never blocked; lines that cannot be handed over go to a spool file (CONTRACTS §5) and are replayed,
//! in order, once the daemon is back and the group has a member.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use spread_sys::private_name::{self, Role};
use spread_sys::sender::{Link, SendError, probe_has_member};
use spread_sys::spool::{Appended, FillAlarm, ReplayOutcome, Spool};
use spread_sys::window::WindowConfig;
use spread_sys::wire::constants::AGREED_MESS;
use spread_sys::{ConnectOptions, Mailbox};

use super::Parsed;
use crate::signals::Signals;

pub const USAGE: &str = "usage: spread-pipe [-s SPREAD_NAME] [-S SPOOL_FILE] [-C BYTES] [-W BYTES | -A] [-a] GROUP
  -s, --spread NAME     daemon (4803 = /tmp/4803, 4803@host = TCP, /path = unix socket; default 4803)
  -S, --spool FILE      spool file for lines the daemon could not take
                        (default /var/tmp/spread-pipe.<uid>.<GROUP>.spool)
  -C, --spool-cap BYTES spool size cap (default 268435456); beyond it lines are dropped, counted
                        and reported
  -W, --ack-window BYTES  unacknowledged lines held for resending (default 4194304); beyond it
                        lines go to the spool
  -A, --no-ack          do not hold lines for acknowledgements (only collectors without them,
                        such as the original C spreadlogd, listen)
  -a, --ack-all         release a line only once every collector of GROUP has it (two log hosts
                        that must both end complete)
  -V, --version         print the version and exit
  -h, --help            this help
Each stdin line becomes one message to GROUP, held until a collector acknowledges it (resent if
it lacks it); a line longer than the largest Spread message (143088 bytes beside its stream tag)
is sent in several messages (spreadlogd writes it back whole); the last line always ends with a
newline.";

/// Largest line of one message: beside the log group, the stream tag (CONTRACTS "Names").
pub const MAX_BODY: usize = spread_sys::stream::MAX_LINE;
/// Bytes of input handled per send batch.
const BATCH_BYTES: usize = 4 << 20;
/// How long spread-pipe keeps trying to send spooled lines after the end of its input.
const FINAL_GRACE: Duration = Duration::from_secs(5);
/// Default spool cap (`-C`).
pub const DEFAULT_SPOOL_CAP: u64 = 256 << 20;
/// Default acknowledgement window (`-W`), as the module's `SpreadAckWindow`.
pub const DEFAULT_ACK_WINDOW: u64 = 4 << 20;
/// How long the end of input waits for the last acknowledgements before spooling what is left.
const FINAL_LINGER: Duration = Duration::from_secs(2);

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
    /// Bytes of the acknowledgement window; None with `-A`.
    window: Option<u64>,
    /// `-a`: every collector must acknowledge.
    ack_all: bool,
}

fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed<Options>, String> {
    use lexopt::prelude::*;
    let mut spread = "4803".to_owned();
    let mut spool = None;
    let mut cap = DEFAULT_SPOOL_CAP;
    let mut window = Some(DEFAULT_ACK_WINDOW);
    let mut ack_all = false;
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
            Short('W') | Long("ack-window") => {
                let v = p.value().and_then(|v| v.string()).map_err(e)?;
                window = Some(
                    v.parse()
                        .ok()
                        .filter(|&n: &u64| n >= 64 << 10)
                        .ok_or_else(|| format!("-W {v:?}: not a byte count of at least 65536"))?,
                );
            }
            Short('A') | Long("no-ack") => window = None,
            Short('a') | Long("ack-all") => ack_all = true,
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
        window,
        ack_all,
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
        window,
        ack_all,
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
    let mut s = Sender::new(spread, group, spool_path, cap, window, ack_all);
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
                    // The last line ends with a newline like every other: a message without one
                    // is a piece that continues (spreadlogd waits for the rest).
                    carry.push(b'\n');
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
    /// The stream: numbers, acknowledgement window, announcements (`spread_sys::sender`).
    link: Link,
    host: String,
    next_try: Instant,
    backoff: Duration,
    next_probe: Instant,
    /// Until when the group is known to have a member.
    member_until: Instant,
    name_attempt: u32,
    down_since: Option<Instant>,
    dropped: u64,
    /// How long to keep trying to hand over spooled lines after the end of input.
    grace: Duration,
    /// Warnings before the spool is full.
    fill: FillAlarm,
}

impl Sender {
    fn new(
        spread: String,
        group: String,
        spool_path: PathBuf,
        cap: u64,
        window: Option<u64>,
        ack_all: bool,
    ) -> Sender {
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
            link: Link::new(window.map(|w| WindowConfig {
                bound_bytes: w as usize,
                all_collectors: ack_all,
                ..WindowConfig::default()
            })),
            host: private_name::host_name(),
            next_try: now,
            backoff: Duration::from_millis(100),
            next_probe: now,
            member_until: now,
            name_attempt: 0,
            down_since: None,
            dropped: 0,
            grace: FINAL_GRACE,
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
            // Bounded so a SIGTERM is noticed soon even while stdin is quiet, and acks are
            // read often while lines wait for them.
            let wait = if self.link.window().is_some_and(|w| !w.is_empty()) {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(200)
            };
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
            self.upkeep();
            if self.mb.is_some() && self.spool_pending() {
                self.try_replay(false);
            }
            if batch.is_empty() {
                continue;
            }
            if self.mb.is_some() && !self.spool_pending() {
                self.send(&batch);
            } else {
                // Keep order: while anything is spooled, new lines queue behind it.
                self.spool_messages(batch.iter().flat_map(|b| messages(b)));
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
        // At exit: the last acks, where the stream stands (nothing numbered follows the last
        // lines), and what is still unacknowledged to the spool with its stream and number.
        if self.mb.is_none() && self.link.has_state() {
            self.next_try = Instant::now();
            self.ensure_connected();
        }
        if let Some(mut mb) = self.mb.take() {
            let linger = deadline
                .saturating_duration_since(Instant::now())
                .max(FINAL_LINGER);
            self.link.linger(&mut mb, linger);
            let _ = self.link.announce(&mut mb, AGREED_MESS);
            let _ = mb.disconnect();
        }
        self.spill();
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

    /// Hand over a batch, line by line (each kept in the window until acknowledged); from the
    /// first line the daemon or the window does not take on, the rest goes to the spool.
    fn send(&mut self, batch: &[Vec<u8>]) {
        let Some(mb) = self.mb.as_mut() else {
            return;
        };
        let mut lines = batch.iter().flat_map(|b| messages(b));
        let mut failed = None;
        for m in lines.by_ref() {
            if let Err(e) = self.link.send(mb, AGREED_MESS, &self.group, [m]) {
                failed = Some((m, e));
                break;
            }
        }
        let Some((first, e)) = failed else {
            return;
        };
        match e {
            SendError::WindowFull => eprintln!(
                "spread-pipe: no collector acknowledged the last {} bytes; spooling to {}",
                self.link.window().map_or(0, |w| w.bytes()),
                self.spool_path.display()
            ),
            SendError::Spread(e) => {
                eprintln!(
                    "spread-pipe: lost {}: {e}; spooling to {}",
                    self.spread,
                    self.spool_path.display()
                );
                self.connection_lost();
            }
        }
        self.spool_messages(std::iter::once(first).chain(lines));
    }

    /// Acks, announcements and resends, when connected.
    fn upkeep(&mut self) {
        let Some(mb) = self.mb.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut step = self
            .link
            .read_acks(mb, now)
            .and_then(|_| self.link.announce_if_due(mb, AGREED_MESS, now))
            .map(drop);
        if step.is_ok() && self.link.resend_due(now) {
            step = loop {
                match self.link.resend_some(mb, AGREED_MESS, now) {
                    Ok((_, true)) => {}
                    Ok((_, false)) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
        }
        if let Err(e) = step {
            eprintln!("spread-pipe: lost {}: {e}", self.spread);
            self.connection_lost();
        }
    }

    /// Move what is still unacknowledged to the spool, with its stream and number.
    fn spill(&mut self) {
        let mut spilled = 0u64;
        let (spool, dropped) = (&self.spool, &mut self.dropped);
        self.link.spill(|group, origin, line| {
            match spool
                .as_ref()
                .map(|s| s.append_any(0, group.as_bytes(), line, Some(origin)))
            {
                Some(Ok(Appended::Written)) => spilled += 1,
                _ => *dropped += 1,
            }
        });
        if spilled > 0 {
            eprintln!(
                "spread-pipe: {spilled} unacknowledged line(s) kept in the spool {} for the next run",
                self.spool_path.display()
            );
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
            private_name: private_name::derive(
                Role::Pipe,
                &self.host,
                std::process::id(),
                self.name_attempt,
            ),
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
                // Under any name the stream goes on; lines in flight on the old session may be
                // lost: announce where it stands (collectors answer, resending starts).
                self.link.connected(Instant::now());
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

    fn spool_messages<'m>(&mut self, lines: impl Iterator<Item = &'m [u8]>) {
        let before = self.dropped;
        for m in lines {
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

    /// Does the group have a member (a collector)? (`spread_sys::sender::probe_has_member`.)
    fn group_has_member(&self) -> bool {
        let name = private_name::derive(Role::PipeProbe, &self.host, std::process::id(), 0);
        spread_sys::SpreadName::parse(&self.spread)
            .and_then(|n| n.resolve())
            .and_then(|ep| probe_has_member(&ep, name, &self.group, Duration::from_secs(2)))
            .unwrap_or(false)
    }

    fn try_replay(&mut self, final_attempt: bool) {
        if Instant::now() < self.next_probe && !final_attempt {
            return;
        }
        self.next_probe = Instant::now() + Duration::from_secs(1);
        // A member seen in the last 5 s is still there (a replay that waits for its window
        // goes on every turn without dialling a probe each time).
        if Instant::now() >= self.member_until {
            if !self.group_has_member() {
                return;
            }
            self.member_until = Instant::now() + Duration::from_secs(5);
        }
        let (Some(spool), Some(mb)) = (self.spool.as_ref(), self.mb.as_mut()) else {
            return;
        };
        let link = &mut self.link;
        // One write per replayed line: a record counts as sent only once it was handed over. A
        // line sent before (spooled unacknowledged) goes back into the window, to be resent
        // with its stream and number to the collectors that lack it.
        let outcome = spool.replay(|r| {
            let g = String::from_utf8_lossy(&r.group);
            match r.origin {
                Some(origin) => {
                    if link.rehold(&g, origin, &r.line, Instant::now()) {
                        Ok(())
                    } else {
                        Err(SendError::WindowFull)
                    }
                }
                None => link.send(mb, AGREED_MESS, &g, [&r.line[..]]).map(|_| ()),
            }
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
                if !matches!(error, SendError::WindowFull) {
                    eprintln!(
                        "spread-pipe: replay interrupted after {} line(s): {error}",
                        summary.sent
                    );
                }
                match error {
                    SendError::Spread(_) => self.connection_lost(),
                    // The window waits for acks: go on as soon as they free it.
                    SendError::WindowFull => self.next_probe = Instant::now(),
                }
            }
            Err(e) => eprintln!(
                "spread-pipe: cannot replay spool {}: {e}",
                self.spool_path.display()
            ),
        }
    }
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
                group: "errors".into(),
                window: Some(DEFAULT_ACK_WINDOW),
                ack_all: false,
            }))
        );
        match p(&["-A", "-W", "100000", "g"]) {
            Ok(Parsed::Run(o)) => assert_eq!(o.window, Some(100_000), "the last one counts"),
            other => panic!("{other:?}"),
        }
        match p(&["-W", "100000", "--no-ack", "g"]) {
            Ok(Parsed::Run(o)) => assert_eq!(o.window, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(p(&["-V"]), Ok(Parsed::Version));
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        for (args, why) in [
            (&[][..], "no group"),
            (&["a", "b"][..], "exactly one GROUP"),
            (&["-q", "g"][..], "-q"),
            (&["-C", "lots", "g"][..], "-C \"lots\""),
            (&["-W", "10", "g"][..], "at least 65536"),
            (&["mls.control"][..], "bookkeeping"),
            (&["mls~0123456789ab~1"][..], "bookkeeping"),
            (&["a b"][..], "illegal group name"),
            (&["-s", "99999", "g"][..], "99999"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(why), "{args:?}: {e}");
        }
    }
}
