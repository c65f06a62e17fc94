//! The transport loop: one `Mailbox` per `Spread` block, joined to every group of its Log blocks.
//! Each turn drains what is readable now (`receive_batch`, zero-copy), routes it into pending
//! buffers, writes each target once, and only then waits in poll(2) on the mailboxes and the signal
//! pipe. A lost daemon is reconnected with backoff and every group re-joined.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spread_sys::control::{self, CONTROL_GROUP, Record};
use spread_sys::metrics::{self, Sample};
use spread_sys::spread_name::Endpoint;
use spread_sys::{ConnectOptions, Error as SpreadError, Mailbox, SpreadName};

use crate::config::{Config, SpreadConf};
use crate::delivered::Delivered;
use crate::gaps::GapTable;
use crate::intake::{Accepting, AckDue, Intake, Note, Received};
use crate::logger::Logger;
use crate::routing::Router;
use crate::signals::Signals;

pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// While a daemon stays unreachable, say so this often.
pub const DOWN_REMINDER: Duration = Duration::from_secs(60);
/// The gap table is saved this often while running, and at exit.
pub const STATE_SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// Acknowledgements go out at most this often (each covers everything written until then): one
/// ack per flush would cost the senders a wake-up per line at low rates.
pub const ACK_EVERY: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters reported on SIGUSR1 and at exit.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub messages: u64,
    pub bytes: u64,
    pub oversized: u64,
    pub membership: u64,
    pub disconnects: u64,
    pub reconnects: u64,
    pub batches: u64,
    /// Requests (joins) the daemon rejected.
    pub rejected: u64,
    /// Control messages of acknowledgements sent to senders.
    pub acks_sent: u64,
}

/// Counters of one group, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroupCounters {
    pub messages: u64,
    pub bytes: u64,
    pub gaps: u64,
    pub lost_lines: u64,
    pub unknown_gaps: u64,
    pub repeats: u64,
}

/// Per-group counters, kept only for groups this collector routes (so their number is bounded
/// by the configuration, whatever senders announce). They survive SIGHUP re-reads.
#[derive(Debug, Default)]
pub struct PerGroup(std::collections::BTreeMap<Vec<u8>, GroupCounters>);

impl PerGroup {
    /// The counters of `group`; allocates only the first time a group is seen.
    fn of(&mut self, group: &[u8]) -> &mut GroupCounters {
        if !self.0.contains_key(group) {
            self.0.insert(group.to_vec(), GroupCounters::default());
        }
        self.0.get_mut(group).expect("inserted above")
    }
}

enum State {
    Up(Mailbox),
    Down {
        since: Instant,
        next_try: Instant,
        backoff: Duration,
        reminded: Instant,
        ever_up: bool,
    },
}

struct Conn {
    daemon: String,
    endpoint: Result<Endpoint, String>,
    groups: Vec<String>,
    state: State,
    name_attempt: u32,
}

pub struct CollectorOptions {
    /// Messages longer than this are still written, but counted and reported.
    pub buffer_size: usize,
    /// `-x`: report every Spread error.
    pub spread_errors: bool,
    pub state_file: Option<PathBuf>,
    /// The configuration file, re-read on SIGHUP (None: SIGHUP only reopens the files).
    pub config_file: Option<PathBuf>,
    /// Where its relative paths are taken from: the directory spreadlogd was started in.
    pub config_base: PathBuf,
    /// Lock the log files (`-s` turns it off).
    pub lock: bool,
}

pub struct Collector<'l> {
    conns: Vec<Conn>,
    pub router: Router,
    pub intake: Intake,
    pub counters: Counters,
    pub per_group: PerGroup,
    log: &'l Logger,
    opts: CollectorOptions,
    /// `Config::restart_only` of the configuration we started with.
    started_with: Vec<(&'static str, String)>,
    /// `MetricsListen`: scrapes are answered from this loop (see `spread_sys::metrics`).
    metrics: Option<metrics::Endpoint>,
    /// When acknowledgements last went out (see [`ACK_EVERY`]).
    last_acks: Instant,
    /// This collector's stable id in its acks (`mls1 collector`): the same across restarts, so
    /// senders know a restarted collector as the same one.
    id: u64,
}

/// A collector's id: a hash of the host name and its state file (or, without one, its
/// configuration file): two collectors on one host write different files.
fn collector_id(opts: &CollectorOptions) -> u64 {
    let host = spread_sys::private_name::host_name();
    let which = opts
        .state_file
        .as_ref()
        .or(opts.config_file.as_ref())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    // FNV-1a 64 (the senders' hasher): stable across runs and builds, as std's is not.
    use std::hash::Hasher;
    let mut h = spread_sys::sender::Fnv64::default();
    h.write(format!("{host}\0{which}").as_bytes());
    h.finish()
}

/// The delivery journal (`delivered`) beside the gap table's `StateFile`.
pub fn delivered_path(state_file: &std::path::Path) -> PathBuf {
    let mut p = state_file.as_os_str().to_owned();
    p.push(".delivered");
    PathBuf::from(p)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<'l> Collector<'l> {
    pub fn new(
        cfg: &Config,
        router: Router,
        log: &'l Logger,
        opts: CollectorOptions,
    ) -> Collector<'l> {
        let conns = cfg.spreads.iter().map(|s: &SpreadConf| {
            let daemon = s.daemon_name();
            let endpoint = SpreadName::parse(&daemon)
                .and_then(|n| n.resolve())
                .map_err(|e| e.to_string());
            let now = Instant::now();
            Conn {
                daemon,
                endpoint,
                groups: Config::groups_of(s),
                state: State::Down {
                    since: now,
                    next_try: now,
                    backoff: FIRST_BACKOFF,
                    reminded: now,
                    ever_up: false,
                },
                name_attempt: 0,
            }
        });
        let gaps = match &opts.state_file {
            Some(p) => match GapTable::load(p) {
                Ok(t) => {
                    log.info(&format!(
                        "gap table: {} senders loaded from {}",
                        t.len(),
                        p.display()
                    ));
                    t
                }
                Err(e) => {
                    log.warn(&format!(
                        "cannot load the gap table ({e}); starting with an empty one"
                    ));
                    GapTable::new()
                }
            },
            None => GapTable::new(),
        };
        let delivered = match &opts.state_file {
            Some(p) => {
                let journal = delivered_path(p);
                match Delivered::open(&journal) {
                    Ok((d, rec)) => {
                        log.info(&format!(
                            "delivery journal {}: {} streams known",
                            journal.display(),
                            rec.keys
                        ));
                        if rec.torn {
                            log.warn("delivery journal: the last transaction was torn (a crash); ignored");
                        }
                        for (path, found, kept) in &rec.cut {
                            log.warn(&format!(
                                "{}: cut from {found} to {kept} bytes: lines written after the last \
                                 journal entry (a crash) were never acknowledged; streamed ones are resent",
                                path.display()
                            ));
                        }
                        d
                    }
                    Err(e) => {
                        log.error(&format!(
                            "cannot use the delivery journal {} ({e}): lines resent after a restart \
                             may be written twice",
                            journal.display()
                        ));
                        Delivered::in_memory()
                    }
                }
            }
            None => Delivered::in_memory(),
        };
        let id = collector_id(&opts);
        Collector {
            conns: conns.collect(),
            router,
            intake: Intake::new(gaps, delivered),
            counters: Counters::default(),
            per_group: PerGroup::default(),
            log,
            opts,
            started_with: cfg.restart_only(),
            metrics: None,
            last_acks: Instant::now(),
            id,
        }
    }

    /// Serve `/metrics` through `endpoint` from now on.
    pub fn serve_metrics(&mut self, endpoint: metrics::Endpoint) {
        self.metrics = Some(endpoint);
    }

    /// Try every connection that is due now (called at start and from the loop).
    pub fn connect_due(&mut self) {
        let now = Instant::now();
        let mut greet = Vec::new();
        for (ci, c) in self.conns.iter_mut().enumerate() {
            let State::Down {
                since,
                next_try,
                backoff,
                reminded,
                ever_up,
            } = &mut c.state
            else {
                continue;
            };
            if *next_try > now {
                continue;
            }
            match connect_and_join(
                &c.daemon,
                &c.endpoint,
                &c.groups,
                &mut c.name_attempt,
                self.log,
            ) {
                Ok(mb) => {
                    if *ever_up {
                        self.counters.reconnects += 1;
                        self.log.notice(&format!(
                            "reconnected to spread daemon {} after {:.1}s; joined {}",
                            c.daemon,
                            since.elapsed().as_secs_f64(),
                            c.groups.join(", ")
                        ));
                    } else {
                        self.log.info(&format!(
                            "connected to spread daemon {}; joined {}",
                            c.daemon,
                            c.groups.join(", ")
                        ));
                    }
                    c.state = State::Up(mb);
                    greet.push(ci);
                }
                Err(e) => {
                    if !*ever_up && *backoff == FIRST_BACKOFF || self.opts.spread_errors {
                        self.log.error(&format!(
                            "cannot connect to spread daemon {}: {e}; retrying",
                            c.daemon
                        ));
                    }
                    if reminded.elapsed() >= DOWN_REMINDER {
                        *reminded = Instant::now();
                        self.log.warn(&format!(
                            "still disconnected from spread daemon {} for {:.0}s: {e}",
                            c.daemon,
                            since.elapsed().as_secs_f64()
                        ));
                    }
                    *next_try = Instant::now() + *backoff;
                    *backoff = (*backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        for ci in greet {
            self.greet_streams(ci);
        }
    }

    pub fn connected(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| matches!(c.state, State::Up(_)))
            .count()
    }

    /// Drain every mailbox once; returns how many messages were handled.
    fn drain(&mut self) -> usize {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let unow = now as u64;
        let mut total = 0;
        for (i, c) in self.conns.iter_mut().enumerate() {
            let State::Up(mb) = &mut c.state else {
                continue;
            };
            let router = &mut self.router;
            let intake = &mut self.intake;
            let counters = &mut self.counters;
            let per_group = &mut self.per_group;
            let log = self.log;
            let limit = self.opts.buffer_size;
            let result = mb.receive_batch(false, |m| {
                if !m.is_regular() {
                    // The daemon refused a join (its group caps or memory budget): that group's
                    // lines will not reach us, which the operator must hear.
                    if m.header.service_type & spread_sys::service::REJECT_MESS != 0 {
                        counters.rejected += 1;
                        log.error(&format!(
                            "spread daemon {} rejected our join of group {}: its lines do not reach \
                             this collector (see the daemon's group limits)",
                            c.daemon,
                            String::from_utf8_lossy(m.group(0).unwrap_or_default())
                        ));
                        return;
                    }
                    counters.membership += 1;
                    return;
                }
                counters.messages += 1;
                counters.bytes += m.body.len() as u64;
                if m.body.len() > limit {
                    counters.oversized += 1;
                    if counters.oversized.is_power_of_two() {
                        log.warn(&format!(
                            "{} message(s) longer than BufferSize ({limit} bytes) received so far, latest {} bytes; \
                             written in full",
                            counters.oversized,
                            m.body.len()
                        ));
                    }
                }
                let mess_type = m.header.mess_type().0;
                let received = Received {
                    conn: i,
                    sender: m.sender(),
                    mess_type,
                    body: m.body,
                    groups: (0..m.group_count()).filter_map(|gi| m.group(gi)),
                };
                let mut routed: Vec<crate::intake::Routed> = Vec::new();
                let knows = |g: &[u8]| router.knows(i, g);
                let accepting = if router.is_stuck() {
                    Accepting::HoldBack
                } else {
                    Accepting::Yes
                };
                intake.accept(
                    received,
                    knows,
                    unow,
                    accepting,
                    |note| {
                        match note {
                            Note::Gap { group, lost, .. } if knows(group) => {
                                let c = per_group.of(group);
                                c.gaps += 1;
                                c.lost_lines += lost;
                            }
                            Note::UnknownGap { group, .. } if knows(group) => {
                                per_group.of(group).unknown_gaps += 1;
                            }
                            Note::Repeat { group, .. } | Note::StreamRepeat { group, .. }
                                if knows(group) =>
                            {
                                per_group.of(group).repeats += 1;
                            }
                            _ => {}
                        }
                        match note {
                            Note::Gap { .. } | Note::UnknownGap { .. } | Note::BadControl { .. } => {
                                log.warn(&note.to_string())
                            }
                            Note::Repeat { .. }
                            | Note::Continued { .. }
                            | Note::StreamRepeat { .. }
                            | Note::Resync { .. } => log.info(&note.to_string()),
                        }
                    },
                    |g, body, whole| routed.push((g, body, whole)),
                );
                for (g, body, whole) in routed {
                    let c = per_group.of(g);
                    c.messages += 1;
                    c.bytes += body.len() as u64;
                    router.route_body(i, g, &body, whole, now, log);
                }
            });
            match result {
                Ok(n) => {
                    total += n;
                    if n > 0 {
                        self.counters.batches += 1;
                    }
                }
                Err(e) => {
                    self.counters.disconnects += 1;
                    self.log.error(&format!(
                        "lost the spread daemon {}: {e}; reconnecting",
                        c.daemon
                    ));
                    let now = Instant::now();
                    c.state = State::Down {
                        since: now,
                        next_try: now,
                        backoff: FIRST_BACKOFF,
                        reminded: now,
                        ever_up: true,
                    };
                }
            }
        }
        total
    }

    fn poll_timeout(&self) -> libc::c_int {
        let now = Instant::now();
        let mut t = STATE_SAVE_INTERVAL;
        for c in &self.conns {
            if let State::Down { next_try, .. } = c.state {
                t = t.min(next_try.saturating_duration_since(now));
            }
        }
        if self.router.has_pending() {
            t = t.min(Duration::from_secs(1));
        }
        if !self.intake.acks.is_empty() {
            t = t.min(ACK_EVERY.saturating_sub(self.last_acks.elapsed()));
        }
        t.as_millis().min(60_000) as libc::c_int + 1
    }

    fn wait(&mut self, signals: &Signals) {
        let mut fds = vec![libc::pollfd {
            fd: signals.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(ep) = &self.metrics {
            fds.push(libc::pollfd {
                fd: ep.wake_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &self.conns {
            if let State::Up(mb) = &c.state {
                use std::os::fd::AsRawFd;
                fds.push(libc::pollfd {
                    fd: mb.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if Signals::any_pending() {
            return;
        }
        // SAFETY: fds is a valid array of pollfd for its length during the call.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                self.poll_timeout(),
            )
        };
    }

    /// Every counter, once: its key in the SIGUSR1 report and its Prometheus sample.
    fn counters(&self) -> Vec<(&'static str, Sample)> {
        let (written, lost, write_errors, pipe_restarts) = self.router.totals();
        let c = &self.counters;
        let r = &self.router.stats;
        let g = &self.intake.gaps;
        let k = |key, name, help, v| (key, Sample::counter(name, help, v));
        vec![
            k(
                "messages",
                "spreadlogd_messages_total",
                "Log messages received from the Spread daemons.",
                c.messages,
            ),
            k(
                "bytes",
                "spreadlogd_received_bytes_total",
                "Bytes of log messages received.",
                c.bytes,
            ),
            k(
                "lines_written",
                "spreadlogd_lines_written_total",
                "Lines written to files and piped programs.",
                written,
            ),
            k(
                "lines_lost_on_write",
                "spreadlogd_lines_lost_on_write_total",
                "Lines given up after write errors.",
                lost,
            ),
            k(
                "write_errors",
                "spreadlogd_write_errors_total",
                "Failed writes (retried before lines are given up).",
                write_errors,
            ),
            k(
                "sequence_gaps",
                "spreadlogd_sequence_gaps_total",
                "Gaps found in senders' line numbers.",
                g.gaps,
            ),
            k(
                "lines_lost_in_gaps",
                "spreadlogd_lines_lost_in_gaps_total",
                "Lines known lost between sender and spreadlogd.",
                g.lost_lines,
            ),
            k(
                "unknown_gaps",
                "spreadlogd_unknown_gaps_total",
                "Gaps of unknown size (a sender first seen mid-sequence).",
                g.unknown_gaps,
            ),
            k(
                "repeats",
                "spreadlogd_repeated_lines_total",
                "Lines received again (at-least-once replay).",
                g.behind,
            ),
            k(
                "stream_repeats",
                "spreadlogd_stream_repeats_total",
                "Lines of a stream that arrived again after being written (resends): dropped.",
                self.intake.streams.repeats,
            ),
            k(
                "resent_received",
                "spreadlogd_resent_lines_received_total",
                "Lines resent to this collector by their senders (written or dropped as repeats).",
                self.intake.streams.resent,
            ),
            k(
                "batched_messages",
                "spreadlogd_batched_messages_total",
                "Messages that carried several lines of one stream (senders with batched messages).",
                self.intake.streams.batched,
            ),
            k(
                "held_back",
                "spreadlogd_held_back_lines_total",
                "Lines left unacknowledged because a log file could not be written (resent later).",
                self.intake.streams.held_back,
            ),
            (
                "stream_lines_missing",
                Sample::gauge(
                    "spreadlogd_stream_lines_missing",
                    "Lines senders numbered (sent or announced) that are not written here: waiting \
                     to be resent, or lost if their sender does not hold them (SpreadAcknowledge Off).",
                    self.intake.delivered.missing() as f64,
                ),
            ),
            k(
                "reassembled",
                "spreadlogd_reassembled_lines_total",
                "Lines that came in pieces (cut by spread-pipe) and were written whole.",
                self.intake.streams.reassembled,
            ),
            k(
                "acks_sent",
                "spreadlogd_ack_messages_total",
                "Acknowledgement messages sent to senders.",
                c.acks_sent,
            ),
            k(
                "announcements",
                "spreadlogd_announcements_total",
                "Announcements of senders' numbers received (streams, and the previous release's next numbers).",
                g.announcements,
            ),
            k(
                "handovers",
                "spreadlogd_handovers_total",
                "Sequence hand-overs received.",
                g.handovers,
            ),
            k(
                "control_messages",
                "spreadlogd_control_messages_total",
                "Messages received on the control group.",
                self.intake.control.messages,
            ),
            k(
                "control_skipped",
                "spreadlogd_control_skipped_total",
                "Control records not understood and skipped.",
                self.intake.control.skipped,
            ),
            k(
                "oversized",
                "spreadlogd_oversized_messages_total",
                "Messages longer than BufferSize (written in full).",
                c.oversized,
            ),
            k(
                "filtered",
                "spreadlogd_filtered_lines_total",
                "Lines not written because no Match matched.",
                r.filtered,
            ),
            k(
                "bad_hosts",
                "spreadlogd_bad_host_lines_total",
                "Vhost lines diverted to _invalid_host_.",
                r.bad_hosts,
            ),
            k(
                "pipe_restarts",
                "spreadlogd_pipe_restarts_total",
                "Restarts of piped programs.",
                pipe_restarts,
            ),
            k(
                "disconnects",
                "spreadlogd_disconnects_total",
                "Connections to a Spread daemon lost.",
                c.disconnects,
            ),
            k(
                "reconnects",
                "spreadlogd_reconnects_total",
                "Connections to a Spread daemon made again.",
                c.reconnects,
            ),
            k(
                "batches",
                "spreadlogd_batches_total",
                "Reads that drained at least one message.",
                c.batches,
            ),
            k(
                "rejected_joins",
                "spreadlogd_rejected_joins_total",
                "Group joins the daemon refused.",
                c.rejected,
            ),
        ]
    }

    /// The SIGUSR1 report: every counter as `key=value`, then `connected=UP/ALL`.
    pub fn report(&self) -> String {
        let mut out = String::from("counters:");
        for (key, s) in self.counters() {
            out.push_str(&format!(" {key}={}", s.value));
        }
        out.push_str(&format!(
            " connected={}/{}",
            self.connected(),
            self.conns.len()
        ));
        out
    }

    /// The `/metrics` page (Prometheus text format).
    pub fn metrics_page(&self) -> String {
        let mut samples: Vec<Sample> = self.counters().into_iter().map(|(_, s)| s).collect();
        type Field = fn(&GroupCounters) -> u64;
        let per_group: [(&'static str, &'static str, Field); 6] = [
            (
                "spreadlogd_group_messages_total",
                "Log messages received, by group.",
                |c| c.messages,
            ),
            (
                "spreadlogd_group_received_bytes_total",
                "Bytes of log messages received, by group.",
                |c| c.bytes,
            ),
            (
                "spreadlogd_group_sequence_gaps_total",
                "Gaps found in senders' line numbers, by group.",
                |c| c.gaps,
            ),
            (
                "spreadlogd_group_lines_lost_in_gaps_total",
                "Lines known lost between sender and spreadlogd, by group.",
                |c| c.lost_lines,
            ),
            (
                "spreadlogd_group_unknown_gaps_total",
                "Gaps of unknown size, by group.",
                |c| c.unknown_gaps,
            ),
            (
                "spreadlogd_group_repeated_lines_total",
                "Lines received again, by group.",
                |c| c.repeats,
            ),
        ];
        for (name, help, field) in per_group {
            for (g, c) in &self.per_group.0 {
                samples.push(
                    Sample::counter(name, help, field(c))
                        .with_label("group", &String::from_utf8_lossy(g)),
                );
            }
        }
        for c in &self.conns {
            let up = if matches!(c.state, State::Up(_)) {
                1.0
            } else {
                0.0
            };
            samples.push(
                Sample::gauge(
                    "spreadlogd_daemon_connected",
                    "1 while connected to this Spread daemon and joined.",
                    up,
                )
                .with_label("daemon", &c.daemon),
            );
        }
        metrics::render(&samples)
    }

    /// Run until SIGTERM/SIGINT. Returns the exit status.
    pub fn run(&mut self, signals: &Signals) -> i32 {
        self.connect_due();
        let mut last_save = Instant::now();
        loop {
            // Also save the gap table now and then, so a crash (not only a clean exit) keeps it.
            if last_save.elapsed() >= STATE_SAVE_INTERVAL {
                last_save = Instant::now();
                self.save_state();
            }
            let handled = self.drain();
            if handled > 0 {
                self.flush_and_ack();
            }
            if Signals::any_pending() {
                let p = signals.take();
                if p.chld {
                    self.router.reap(self.log);
                }
                if p.hup {
                    // Everything received so far is already in the old files (flushed above).
                    match self.reload() {
                        Ok(file) => self.log.notice(&format!(
                            "SIGHUP: configuration re-read from {file}; log files reopened"
                        )),
                        Err(e) => {
                            self.log.error(&format!(
                                "SIGHUP: {e}; keeping the running configuration, reopening its log files"
                            ));
                            self.router.reopen_all(self.log);
                        }
                    }
                }
                if p.usr1 {
                    self.log.notice(&self.report());
                }
                if p.term {
                    self.log.notice("SIGTERM: flushing and exiting");
                    self.shutdown();
                    return 0;
                }
            }
            if let Some(mut ep) = self.metrics.take() {
                // Rendered after the flush above, so a scrape sees every line handled so far.
                ep.answer(|| self.metrics_page());
                self.metrics = Some(ep);
            }
            self.connect_due();
            if handled == 0 {
                if self.router.has_pending() || self.router.is_stuck() {
                    self.flush_and_ack();
                }
                if !self.intake.acks.is_empty() && self.last_acks.elapsed() >= ACK_EVERY {
                    self.send_acks();
                }
                self.wait(signals);
            }
        }
    }

    /// SIGHUP: re-read the configuration file and, if it holds, route by it from now on: its
    /// files opened (the running ones flushed and closed), its groups joined and the dropped ones
    /// left. Other daemons take a restart and are refused, as is anything that does not parse or
    /// open: the running configuration then stays. Other settings applied once at start (User,
    /// StateFile, ErrorLog, BufferSize, MetricsListen) are warned about and keep their running values.
    fn reload(&mut self) -> Result<String, String> {
        let path = self
            .opts
            .config_file
            .clone()
            .ok_or("no configuration file")?;
        let file = path.display().to_string();
        let cfg = Config::load_from(&path, &self.opts.config_base).map_err(|e| e.to_string())?;
        let daemons: Vec<String> = cfg.spreads.iter().map(SpreadConf::daemon_name).collect();
        let running: Vec<&str> = self.conns.iter().map(|c| c.daemon.as_str()).collect();
        if daemons != running {
            return Err(format!(
                "{file} names other Spread daemons ({}) than the running ones ({}): that takes a restart",
                daemons.join(", "),
                running.join(", ")
            ));
        }
        for w in &cfg.warnings {
            self.log.warn(w);
        }
        let changed: Vec<&str> = (cfg.restart_only().iter())
            .zip(&self.started_with)
            .filter(|(new, old)| new != old)
            .map(|(new, _)| new.0)
            .collect();
        if !changed.is_empty() {
            self.log.warn(&format!(
                "{file}: {} changed: applied at the next restart, the running values stay",
                changed.join(", ")
            ));
        }
        let mut router = Router::new(&cfg, self.opts.lock).map_err(|e| e.to_string())?;
        // The running files are closed first: their locks would refuse the new router the same
        // files. If the new ones cannot be opened, the running configuration comes back.
        self.flush_and_ack();
        self.router.close_all(self.log);
        self.commit_closed();
        if let Err(e) = router.open_all() {
            router.close_all(self.log);
            return Err(format!("{file}: {e}"));
        }
        router.carry_from(&self.router);
        self.router = router;
        for (c, s) in self.conns.iter_mut().zip(&cfg.spreads) {
            let groups = Config::groups_of(s);
            if let State::Up(mb) = &mut c.state {
                // A failed join or leave breaks the session; the reconnect joins the new list.
                for g in groups.iter().filter(|g| !c.groups.contains(g)) {
                    let _ = mb.join(g);
                }
                for g in c.groups.iter().filter(|g| !groups.contains(g)) {
                    let _ = mb.leave(g);
                }
            }
            c.groups = groups;
        }
        Ok(file)
    }

    /// Write what is pending; once everything is in the files, journal it and acknowledge it
    /// (never before: an ack releases the sender's copy). While a file cannot be written nothing
    /// is committed, so nothing of that batch is acknowledged.
    fn flush_and_ack(&mut self) {
        if !self.router.flush(self.log) {
            return;
        }
        let touched = self.router.take_touched();
        match self.intake.delivered.commit(&touched, unix_now()) {
            Ok(_) => {}
            Err(e) => {
                // Not journaled: a restart cuts these lines off again, so they must not be
                // acknowledged (their senders keep them).
                self.intake.acks.clear();
                self.log.error(&format!(
                    "cannot write the delivery journal: {e}; lines stay unacknowledged"
                ));
                return;
            }
        }
        if self.last_acks.elapsed() >= ACK_EVERY {
            self.send_acks();
        }
    }

    /// Journal what closing the files wrote (their last pending lines).
    fn commit_closed(&mut self) {
        let touched = self.router.take_touched();
        if let Err(e) = self.intake.delivered.commit(&touched, unix_now()) {
            self.log
                .error(&format!("cannot write the delivery journal: {e}"));
        }
    }

    /// Send the acks owed: each stream's written ranges on a group, to the sender's private
    /// group, one control message per sender where they fit.
    fn send_acks(&mut self) {
        self.last_acks = Instant::now();
        let mut due = std::mem::take(&mut self.intake.acks);
        due.sort_by(|a, b| (a.conn, &a.sender).cmp(&(b.conn, &b.sender)));
        for chunk in due.chunk_by(|a, b| a.conn == b.conn && a.sender == b.sender) {
            let (conn, sender) = (chunk[0].conn, &chunk[0].sender);
            let Some(State::Up(mb)) = self.conns.get_mut(conn).map(|c| &mut c.state) else {
                continue;
            };
            let delivered = &self.intake.delivered;
            let me = Record::Collector { id: self.id };
            let records = std::iter::once(me).chain(chunk.iter().flat_map(|a| {
                let ranges = delivered
                    .get(a.stream, &a.group)
                    .map(|k| k.written.ranges().to_vec())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| vec![(0, 0)]);
                ranges.into_iter().map(move |(from, to)| Record::Ack {
                    stream: a.stream,
                    group: &a.group,
                    from,
                    to,
                })
            }));
            match control::send_to(mb, spread_sys::service::FIFO_MESS, sender, records) {
                Ok(n) => self.counters.acks_sent += n as u64,
                // A broken session shows at the next receive, which reconnects.
                Err(e) => self.log.warn(&format!("cannot send acks to {sender}: {e}")),
            }
        }
    }

    /// After a (re)connect: tell every stream heard from in the last hour what is written here,
    /// so a sender that holds lines resends them at once instead of at its next timeout.
    fn greet_streams(&mut self, conn: usize) {
        let now = unix_now();
        for (stream, group, k) in self.intake.delivered.keys() {
            if k.sender.is_empty() || now.saturating_sub(k.last_seen) > 3600 {
                continue;
            }
            self.intake.acks.push(AckDue {
                conn,
                sender: k.sender.as_str().into(),
                stream,
                group: group.into(),
            });
        }
        self.send_acks();
    }

    /// Write everything, close files, save the gap table, leave the daemons.
    pub fn shutdown(&mut self) {
        self.flush_and_ack();
        self.send_acks();
        self.router.close_all(self.log);
        self.commit_closed();
        for c in &mut self.conns {
            if let State::Up(mb) = std::mem::replace(
                &mut c.state,
                State::Down {
                    since: Instant::now(),
                    next_try: Instant::now(),
                    backoff: FIRST_BACKOFF,
                    reminded: Instant::now(),
                    ever_up: true,
                },
            ) {
                let _ = mb.disconnect();
            }
        }
        self.save_state();
        self.log.notice(&self.report());
    }

    fn save_state(&self) {
        if let Some(p) = &self.opts.state_file
            && let Err(e) = self.intake.gaps.save(p, unix_now())
        {
            self.log.error(&format!(
                "cannot save the gap table to {}: {e}",
                p.display()
            ));
        }
    }
}

fn connect_and_join(
    daemon: &str,
    endpoint: &Result<Endpoint, String>,
    groups: &[String],
    name_attempt: &mut u32,
    log: &Logger,
) -> Result<Mailbox, String> {
    let ep = endpoint
        .as_ref()
        .map_err(|e| format!("bad daemon name {daemon:?}: {e}"))?;
    for _ in 0..4 {
        let opts = ConnectOptions {
            private_name: spread_sys::private_name::collector(std::process::id(), *name_attempt),
            priority: true,
            group_membership: false,
            connect_timeout: Some(CONNECT_TIMEOUT),
            send_timeout: Some(CONNECT_TIMEOUT),
        };
        match Mailbox::connect_endpoint(ep, &opts) {
            Ok(mut mb) => {
                grow_receive_buffer(&mb);
                // The log groups, and the control channel where senders account for their lines.
                for g in groups.iter().map(String::as_str).chain([CONTROL_GROUP]) {
                    mb.join(g).map_err(|e| format!("join {g}: {e}"))?;
                }
                return Ok(mb);
            }
            Err(SpreadError::RejectNotUnique(n)) => {
                log.info(&format!(
                    "private name {n} still held by the daemon; trying another"
                ));
                *name_attempt += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no unique private name accepted".into())
}

/// Over TCP the receive buffer adds to the slack the daemon allows a reader before it kills it as a
/// slow client (MaxSessionMessages counts only what does not fit in the socket buffers). Ask for
/// 8 MiB: SO_RCVBUFFORCE works as root (we connect before dropping privileges), SO_RCVBUF is capped
/// by net.core.rmem_max. Unix sockets ignore it (the sender's buffer counts there).
fn grow_receive_buffer(mb: &Mailbox) {
    use std::os::fd::AsRawFd;
    let bytes: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt reads a live c_int of the size given, on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                mb.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}
