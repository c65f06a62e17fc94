//! The per-process transport: one Spread connection per configured daemon, opened lazily, shared
//! by the process's threads through a lock taken with a bounded wait; failover, then the spool.
//!
//! Built in each child (`child_init`), never in the parent, so no connection crosses a fork.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spread_sys::private_name::{self, Role};
use spread_sys::sender::{Link, SendError};
use spread_sys::spool::Origin;
use spread_sys::spread_name::Endpoint;
use spread_sys::window::WindowConfig;
use spread_sys::{ConnectOptions, Error as SpreadError, Mailbox};

use crate::config::ModuleConfig;
use crate::counters::{self, Counters};
use crate::spooler::{SpoolResult, Spooler};

/// Why one alternative could not take a line.
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    #[error("no SpreadDaemon with id {0}")]
    UnknownDaemon(u32),
    #[error("connection busy for longer than SpreadSendTimeout")]
    LockTimeout,
    #[error("daemon unreachable, next connect attempt in {0:?}")]
    BackingOff(Duration),
    #[error("connect failed: {0}")]
    Connect(SpreadError),
    #[error("send failed: {0}")]
    Send(SpreadError),
    #[error(
        "acknowledgement window full (SpreadAckWindow): no collector acknowledged recent lines"
    )]
    WindowFull,
}

/// What became of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed over by alternative number `0..`.
    Sent(usize),
    Spooled,
    /// Lost (spool full or unwritable); counted and logged.
    Dropped,
}

/// What [`Transport::close_all`] did at a process's exit. A connection whose streams' numbers
/// could not be announced is the one thing worth a warning: the collectors learn of lines lost
/// at its tail only when the parent announces them for it (once it sees the process gone).
#[derive(Debug, Default)]
pub struct ExitReport {
    /// Stream announcements sent.
    pub announcements: u64,
    /// Unacknowledged lines moved to the spool.
    pub spooled: u64,
    /// Unacknowledged lines the spool refused (full or unwritable).
    pub lost: u64,
    /// Per connection that numbered lines and could not announce them: the daemon, and why.
    pub unannounced: Vec<String>,
    /// The connections hold windows (SpreadAcknowledge On): what they could not announce
    /// went to the spool instead, to be resent.
    pub acknowledged: bool,
}

/// How much an [`ExitReport`] message matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitSeverity {
    Info,
    Warning,
    Error,
}

impl ExitReport {
    fn unannounced(&mut self, daemon: &Endpoint, why: &dyn std::fmt::Display) {
        self.unannounced.push(format!("{daemon}: {why}"));
    }

    /// The error-log lines for process `pid`'s exit (`whose` qualifies its lines, "resent "
    /// for the replayer's): a warning per kind of trouble, else one routine line.
    pub fn messages(&self, pid: u32, whose: &str) -> Vec<(ExitSeverity, String)> {
        let mut out = Vec::new();
        if !self.unannounced.is_empty() {
            out.push((
                ExitSeverity::Warning,
                format!(
                    "mod_log_spread: process {pid} exiting could not announce the numbers of its \
                     {whose}lines ({}); {}",
                    self.unannounced.join("; "),
                    if self.acknowledged {
                        "what was not acknowledged is in the spool and is resent from there"
                    } else {
                        "the parent announces them once it sees this process gone"
                    }
                ),
            ));
        }
        if self.lost > 0 {
            out.push((
                ExitSeverity::Error,
                format!(
                    "mod_log_spread: process {pid} exiting lost {} unacknowledged {whose}line(s): \
                     the spool is full or unwritable",
                    self.lost
                ),
            ));
        }
        if out.is_empty() {
            out.push((
                ExitSeverity::Info,
                format!(
                    "mod_log_spread: process {pid} exiting: {} stream announcement(s) of its \
                     {whose}lines, {} unacknowledged line(s) spooled",
                    self.announcements, self.spooled
                ),
            ));
        }
        out
    }
}

/// One connection slot: its connection (if any), its retry state, and its stream
/// (`spread_sys::sender::Link`: numbers, acknowledgement window, announcements).
struct Conn {
    mailbox: Option<Mailbox>,
    /// The shared-memory slot of a request or replayer connection (`crash_journal`): with acks its window
    /// lives there, for the parent to recover the lines if this child dies; without, its
    /// groups' numbers, for the parent to announce them (what the child had not yet written
    /// is then counted missing by the collectors, not lost silently).
    claim: Option<crate::crash_journal::Claim>,
    attempt: u32,
    retry_at: Option<Instant>,
    link: Link,
    /// When the "no acknowledgement" warning may be given again.
    next_ack_warning: Option<Instant>,
}

impl Conn {
    fn new(cfg: &ModuleConfig, batching: bool, journal: Option<(u32, u32)>) -> Conn {
        let window = cfg.acknowledge.then(|| WindowConfig {
            bound_bytes: cfg.ack_window as usize,
            all_collectors: cfg.ack_all,
            ..WindowConfig::default()
        });
        // (pid, daemon id): a request or replayer connection keeps its window, or without acks
        // its numbers, in a crash-journal slot.
        let claimed = journal.and_then(|(pid, id)| crate::crash_journal::claim(pid, id));
        let (mut link, claim) = match (window, claimed) {
            (Some(w), Some((claim, storage))) => (Link::with_storage(w, storage), Some(claim)),
            (None, Some((claim, _))) => (Link::new(None), Some(claim)),
            (window, None) => (Link::new(window), None),
        };
        link.set_batching(batching);
        link.set_batch_messages(batching && cfg.batch_messages);
        Conn {
            claim,
            mailbox: None,
            attempt: 0,
            retry_at: None,
            link,
            next_ack_warning: None,
        }
    }

    /// Tell the crash journal where the link stands (after every change to it).
    #[inline]
    fn publish(&mut self) {
        if let Some(claim) = &mut self.claim {
            claim.publish(&self.link);
        }
    }
}

/// The "no acknowledgement" warning (after `SpreadAckWarning`) comes at most this often per
/// connection.
const NO_ACK_WARNING_EVERY: Duration = Duration::from_secs(300);

struct Slot {
    id: u32,
    endpoint: Endpoint,
    /// parking_lot's lock, for `try_lock_for`: a request thread that finds the connection busy
    /// (the background thread writing a batch, another thread's line) spins briefly and then
    /// sleeps on a futex until the lock is free or SpreadSendTimeout passed; no yield loop.
    conn: parking_lot::Mutex<Conn>,
    /// Lines are queued in the connection's mailbox, waiting for a flush (batching).
    queued: AtomicBool,
}

impl Slot {
    fn lock(&self) -> ConnGuard<'_> {
        ConnGuard(self.conn.lock())
    }

    fn try_lock(&self) -> Option<ConnGuard<'_>> {
        self.conn.try_lock().map(ConnGuard)
    }

    fn try_lock_for(&self, bound: Duration) -> Option<ConnGuard<'_>> {
        self.conn.try_lock_for(bound).map(ConnGuard)
    }
}

/// A held connection. A panic while holding it (it unwinds through here) may have left the
/// mailbox mid-way through a message: the connection is dropped then, and the next user opens
/// a fresh one (parking_lot's lock does not poison, so this guard does what poisoning did).
struct ConnGuard<'a>(parking_lot::MutexGuard<'a, Conn>);

impl std::ops::Deref for ConnGuard<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl std::ops::DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.mailbox = None;
        }
    }
}

/// Everything one process needs to send lines.
pub struct Transport {
    cfg: ModuleConfig,
    slots: Vec<Slot>,
    host: String,
    pid: u32,
    pub spool: Spooler,
    role: Role,
    /// Why the spool last refused a line (for the error log: "No space left on device", ...).
    last_spool_error: Mutex<Option<String>>,
    /// Request lines are batched (`SpreadFlushInterval` > 0, request path only): several
    /// messages per write, flushed by size here and by time by the background thread.
    batching: bool,
    /// Wakes the background thread when a batch starts while it sleeps long.
    pub wake: crate::batch_wake::Wake,
}

/// A throttle for error-log messages from the request path: at most one per interval per kind.
pub struct Throttle {
    next: Mutex<Option<Instant>>,
    every: Duration,
}

impl Throttle {
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            next: Mutex::new(None),
            every,
        }
    }
    pub fn allow(&self) -> bool {
        let Ok(mut next) = self.next.try_lock() else {
            return false;
        };
        let now = Instant::now();
        match *next {
            Some(t) if now < t => false,
            _ => {
                *next = Some(now + self.every);
                true
            }
        }
    }
}

impl Transport {
    pub fn new(cfg: ModuleConfig, role: Role, host: String, pid: u32) -> Transport {
        let batching = role == Role::Sender && !cfg.flush_interval.is_zero();
        let slots = cfg
            .daemons
            .iter()
            .map(|d| Slot {
                id: d.id,
                endpoint: d.endpoint.clone(),
                conn: parking_lot::Mutex::new(Conn::new(
                    &cfg,
                    batching,
                    // Request and replayer connections (not probes): both hold lines.
                    matches!(role, Role::Sender | Role::Replayer).then_some((pid, d.id)),
                )),
                queued: AtomicBool::new(false),
            })
            .collect();
        let spool = Spooler::new(cfg.spool_path.clone(), cfg.spool_cap);
        Transport {
            cfg,
            slots,
            host,
            pid,
            spool,
            role,
            last_spool_error: Mutex::new(None),
            batching,
            wake: Default::default(),
        }
    }

    pub fn batching(&self) -> bool {
        self.batching
    }

    /// Whether some connection has lines queued for a flush.
    pub fn batch_pending(&self) -> bool {
        self.slots.iter().any(|s| s.queued.load(Ordering::SeqCst))
    }

    /// Off the request path (the background thread, every `SpreadFlushInterval` while a batch
    /// waits): write every connection's queued lines. It blocks on a connection's lock rather
    /// than spinning: a request holds it only for a copy, or for its own flush.
    pub fn flush_batches(&self) {
        for slot in &self.slots {
            if !slot.queued.load(Ordering::SeqCst) {
                continue;
            }
            let mut guard = slot.lock();
            let conn = &mut *guard;
            slot.queued.store(false, Ordering::SeqCst);
            if let Some(mb) = conn.mailbox.as_mut()
                && mb.queued_bytes() > 0
            {
                if mb.flush().is_ok() {
                    Counters::add(&self.counters().batch_writes, 1);
                } else {
                    // The queued lines are in the window (acks on) and are resent once the
                    // connection is back; without acks they are lost like lines in flight.
                    self.broke(conn, Instant::now());
                }
            }
        }
    }

    pub fn config(&self) -> &ModuleConfig {
        &self.cfg
    }

    fn counters(&self) -> &'static Counters {
        counters::get()
    }

    /// Take the connection's lock within SpreadSendTimeout. Returns the guard and, when the lock
    /// was contended, how long the wait took (the uncontended path reads no clock).
    fn lock_bounded<'a>(
        &self,
        slot: &'a Slot,
    ) -> Result<(ConnGuard<'a>, Option<Duration>), SendFailure> {
        if let Some(guard) = slot.try_lock() {
            return Ok((guard, None));
        }
        let start = Instant::now();
        match slot.try_lock_for(self.cfg.send_timeout) {
            Some(guard) => Ok((guard, Some(start.elapsed()))),
            None => {
                Counters::add(&self.counters().lock_timeouts, 1);
                Err(SendFailure::LockTimeout)
            }
        }
    }

    fn connect(&self, slot: &Slot, conn: &mut Conn) -> Result<(), SendFailure> {
        let now = Instant::now();
        if let Some(at) = conn.retry_at
            && now < at
        {
            return Err(SendFailure::BackingOff(at - now));
        }
        // One retry with a fresh name if the daemon still holds ours (abrupt reconnect).
        for _ in 0..2 {
            let opts = ConnectOptions {
                private_name: private_name::derive(self.role, &self.host, self.pid, conn.attempt),
                priority: false,
                group_membership: false,
                connect_timeout: Some(self.cfg.connect_timeout),
                send_timeout: Some(self.cfg.send_timeout),
            };
            match Mailbox::connect_endpoint(&slot.endpoint, &opts) {
                Ok(mb) => {
                    conn.mailbox = Some(mb);
                    conn.retry_at = None;
                    conn.link.connected(now);
                    return Ok(());
                }
                Err(SpreadError::RejectNotUnique(_)) => {
                    // The stream goes on under another name (collectors acknowledge to whichever
                    // name a line last came from).
                    conn.attempt += 1;
                }
                Err(e) => {
                    Counters::add(&self.counters().connect_errors, 1);
                    conn.retry_at = Some(now + self.cfg.retry_interval);
                    return Err(SendFailure::Connect(e));
                }
            }
        }
        Counters::add(&self.counters().connect_errors, 1);
        conn.retry_at = Some(now + self.cfg.retry_interval);
        Err(SendFailure::Connect(SpreadError::RejectNotUnique(
            "all attempts".into(),
        )))
    }

    /// Try to hand `line` over to `group` on daemon `daemon_id`, within SpreadSendTimeout
    /// (plus SpreadConnectTimeout when a connection has to be opened).
    pub fn try_send(&self, daemon_id: u32, group: &str, line: &[u8]) -> Result<usize, SendFailure> {
        self.try_send_parts(daemon_id, group, [line])
    }

    /// [`Transport::try_send`] of the line `parts` concatenated, written straight from the parts
    /// (one sendmsg, no copy) to the group and the stream's tag. A body longer than one message
    /// (`line::MAX_BODY`) is refused with `Send(MessageTooLong)` before anything is written, the
    /// connection kept. With acknowledgements the line is then copied into the window (no
    /// allocation once it has grown); a line that does not fit there is refused (`WindowFull`).
    pub fn try_send_parts<'p, P>(
        &self,
        daemon_id: u32,
        group: &str,
        parts: P,
    ) -> Result<usize, SendFailure>
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        let slot = self
            .slots
            .iter()
            .find(|s| s.id == daemon_id)
            .ok_or(SendFailure::UnknownDaemon(daemon_id))?;
        let (mut conn, waited) = self.lock_bounded(slot)?;
        if conn.mailbox.is_none() {
            self.connect(slot, &mut conn)?;
        }
        let Conn {
            mailbox,
            retry_at,
            link,
            claim,
            ..
        } = &mut *conn;
        let Some(mb) = mailbox.as_mut() else {
            return Err(SendFailure::Send(SpreadError::NetErrorOnSession));
        };
        // The send bound includes the wait for the lock: shorten the socket timeout only when
        // the wait was noticeable (a setsockopt per line would cost more than the wait).
        let waited = waited.unwrap_or(Duration::ZERO);
        let shortened = waited > Duration::from_millis(1);
        if shortened {
            let left = self
                .cfg
                .send_timeout
                .saturating_sub(waited)
                .max(Duration::from_millis(1));
            let _ = mb.set_send_timeout(Some(left));
        }
        let held = link.window().is_some();
        let was_queued = mb.queued_bytes() > 0;
        let mut result = link.send(mb, self.cfg.service_type, group, parts);
        let len = *result.as_ref().unwrap_or(&0);
        if let (Some(claim), Ok(_)) = (claim, &result) {
            claim.publish(link);
        }
        if self.batching && result.is_ok() {
            if mb.queued_bytes() >= self.cfg.batch_bytes {
                // Full: this request writes the batch (bounded by SpreadSendTimeout like an
                // unbatched line); the time-bound flush is the background thread's.
                slot.queued.store(false, Ordering::SeqCst);
                let flushed = mb.flush();
                if flushed.is_ok() {
                    Counters::add(&self.counters().batch_writes, 1);
                }
                if let Err(e) = flushed {
                    if held {
                        // This line and the batch are in the window: resent once the
                        // connection is back. The line counts as handed over.
                        *mailbox = None;
                        *retry_at = Some(Instant::now() + self.cfg.retry_interval);
                        Counters::add(&self.counters().send_errors, 1);
                        Counters::add(&self.counters().held, 1);
                        return Ok(len);
                    }
                    // Without a window the line goes to the failover or the spool; the rest
                    // of the batch is lost like lines in flight.
                    result = Err(SendError::Spread(e));
                }
            } else if !was_queued {
                slot.queued.store(true, Ordering::SeqCst);
                self.wake.batch_started();
            }
        }
        if shortened && mb.is_usable() {
            let _ = mb.set_send_timeout(Some(self.cfg.send_timeout));
        }
        let c = self.counters();
        match result {
            Ok(n) => {
                if held {
                    Counters::add(&c.held, 1);
                }
                Ok(n)
            }
            Err(SendError::WindowFull) => {
                Counters::add(&c.window_full, 1);
                Err(SendFailure::WindowFull)
            }
            // Refused before anything was written (too long, a group or service the wire cannot
            // carry): the connection is fine. A line too long for one message is not a send
            // error: the caller cuts it.
            Err(SendError::Spread(e)) if mb.is_usable() => {
                if !matches!(e, SpreadError::MessageTooLong { .. }) {
                    Counters::add(&c.send_errors, 1);
                }
                Err(SendFailure::Send(e))
            }
            Err(SendError::Spread(e)) => {
                // The stream may hold part of a message: never reuse it.
                *mailbox = None;
                *retry_at = Some(Instant::now() + self.cfg.retry_interval);
                Counters::add(&c.send_errors, 1);
                Err(SendFailure::Send(e))
            }
        }
    }

    /// Off the request path (the replay thread, every poll): read the collectors' acks, resend
    /// what they lack, re-open a connection that broke while it had lines numbered or held, and
    /// announce the streams' numbers when the schedule says so (`spread_sys::announce`).
    /// Otherwise, when no further line comes (the load stopped during an outage), lines lost at
    /// a stream's tail would never be resent or counted. A connection busy on a request thread
    /// is left alone (never waits for its lock). `log` hears warnings (no acknowledgement).
    pub fn maintain(&self, log: &dyn Fn(&str)) {
        for slot in &self.slots {
            self.maintain_slot(slot, log);
        }
    }

    fn maintain_slot(&self, slot: &Slot, log: &dyn Fn(&str)) {
        let now = Instant::now();
        let c = self.counters();
        let Some(mut guard) = slot.try_lock() else {
            return;
        };
        let conn = &mut *guard;
        if conn.mailbox.is_none() && conn.link.has_state() && self.connect(slot, conn).is_err() {
            return;
        }
        let Some(mb) = conn.mailbox.as_mut() else {
            return;
        };
        let step = conn.link.read_acks(mb, now).and_then(|p| {
            Counters::add(&c.acked, p.acked);
            conn.link.announce_if_due(mb, self.cfg.service_type, now)
        });
        conn.publish();
        match step {
            Ok(n) => Counters::add(&c.announcements, n),
            Err(_) => return self.broke(conn, now),
        }
        if let Some(w) = conn.link.window()
            && let Some(age) = w.oldest_age(now)
            && age >= self.cfg.ack_warning
            && conn.next_ack_warning.is_none_or(|t| now >= t)
        {
            conn.next_ack_warning = Some(now + NO_ACK_WARNING_EVERY);
            log(&format!(
                "mod_log_spread: no collector has acknowledged lines to daemon {} for {}s \
                 ({} lines, {} bytes held{}); is spreadlogd running and joined?",
                slot.endpoint,
                age.as_secs(),
                w.len(),
                w.bytes(),
                if w.collectors() == 0 {
                    ", no acknowledging collector heard from"
                } else {
                    ""
                }
            ));
        }
        if !conn.link.resend_due(now) {
            return;
        }
        // Resend in chunks, letting request threads in between (a pass left half-way when the
        // lock is busy goes on at the next turn).
        drop(guard);
        loop {
            let Some(mut guard) = slot.try_lock() else {
                return;
            };
            let conn = &mut *guard;
            let Some(mb) = conn.mailbox.as_mut() else {
                return;
            };
            match conn.link.resend_some(mb, self.cfg.service_type, now) {
                Ok((sent, more)) => {
                    Counters::add(&c.resent, sent);
                    if !more {
                        return;
                    }
                }
                Err(_) => return self.broke(conn, now),
            }
            drop(guard);
            std::thread::yield_now();
        }
    }

    /// The connection broke: drop it and dial again after the retry interval.
    fn broke(&self, conn: &mut Conn, now: Instant) {
        conn.mailbox = None;
        conn.retry_at = Some(now + self.cfg.retry_interval);
        Counters::add(&self.counters().send_errors, 1);
    }

    /// Take a spooled line that was sent before (its stream and number kept) back into the
    /// window of daemon `daemon_id`'s connection, to be resent to the collectors that lack it.
    /// `Ok(false)` when the window is full (the line stays in the spool).
    pub fn rehold(
        &self,
        daemon_id: u32,
        group: &str,
        origin: Origin,
        line: &[u8],
    ) -> Result<bool, SendFailure> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.id == daemon_id)
            .ok_or(SendFailure::UnknownDaemon(daemon_id))?;
        let (mut conn, _) = self.lock_bounded(slot)?;
        if conn.mailbox.is_none() {
            self.connect(slot, &mut conn)?;
        }
        if conn.link.window().is_none() {
            // Without acknowledgements nobody would resend it: send it as a new line instead.
            drop(conn);
            return self.try_send(daemon_id, group, line).map(|_| true);
        }
        if !conn.link.rehold(group, origin, line, Instant::now()) {
            return Ok(false);
        }
        // Out of the spool and into this window: the parent must see it if this child dies.
        conn.publish();
        Counters::add(&self.counters().reheld, 1);
        Ok(true)
    }

    /// What this process's connections hold now (for the status page). Connections busy on a
    /// request thread are skipped (never waits for a lock).
    pub fn holding(&self) -> crate::gauges::Holding {
        let now = Instant::now();
        let mut h = crate::gauges::Holding::default();
        for conn in self.slots.iter().filter_map(Slot::try_lock) {
            h.connected += u64::from(conn.mailbox.is_some());
            if let Some(w) = conn.link.window() {
                h.unacked += w.len() as u64;
                h.unacked_bytes += w.bytes() as u64;
                let age = w.oldest_age(now).map_or(0, |a| a.as_millis() as u64);
                h.oldest_ms = h.oldest_ms.max(age);
            }
        }
        h
    }

    /// The last reason the spool refused a line, if it ever did.
    pub fn last_spool_error(&self) -> Option<String> {
        self.last_spool_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Close every connection (child exit): read the last acks (waiting up to `linger` for
    /// them), announce the streams' numbers (the last lines may have been lost in flight, and
    /// nothing numbered follows them), move what is still unacknowledged to the spool with its
    /// stream and number, then a KILL request so the daemon frees the name at once. A
    /// connection that broke with lines numbered or held gets one last connect attempt
    /// (bounded by SpreadConnectTimeout). Returns what it did, for the error log.
    pub fn close_all(&self, linger: Duration) -> ExitReport {
        let c = self.counters();
        let mut report = ExitReport {
            acknowledged: self.cfg.acknowledge,
            ..ExitReport::default()
        };
        for slot in &self.slots {
            // Wait for the lock as a request would (a thread still finishing its last line
            // holds it for a copy): skipping the slot would lose its exit announcement, its
            // queued batch and the spooling of its window.
            let Ok((mut conn, _)) = self.lock_bounded(slot) else {
                report.unannounced(&slot.endpoint, &SendFailure::LockTimeout);
                continue;
            };
            let conn = &mut *conn;
            let mut failure = None;
            if conn.mailbox.is_none() && conn.link.has_state() {
                conn.retry_at = None;
                failure = self.connect(slot, conn).err();
            }
            slot.queued.store(false, Ordering::SeqCst);
            if let Some(mb) = conn.mailbox.as_mut()
                && mb.queued_bytes() > 0
            {
                match mb.flush() {
                    Ok(()) => Counters::add(&c.batch_writes, 1),
                    Err(e) => {
                        failure = Some(SendFailure::Send(e));
                        conn.mailbox = None;
                    }
                }
            }
            let mut announced = conn.link.numbered_total() == 0;
            if let Some(mut mb) = conn.mailbox.take() {
                Counters::add(&c.acked, conn.link.linger(&mut mb, linger));
                match conn.link.announce(&mut mb, self.cfg.service_type) {
                    Ok(n) => {
                        Counters::add(&c.announcements, n);
                        report.announcements += n;
                        announced = true;
                    }
                    Err(e) => failure = Some(SendFailure::Send(e)),
                }
                let _ = mb.disconnect();
            }
            if !announced {
                match failure {
                    Some(why) => report.unannounced(&slot.endpoint, &why),
                    None => report.unannounced(&slot.endpoint, &"no connection"),
                }
            }
            let claim = conn.claim.take();
            conn.link.spill(|group, origin, line| {
                match self.spool.append_any(slot.id, group, line, Some(origin)) {
                    SpoolResult::Written => {
                        Counters::add(&c.spooled_unacked, 1);
                        report.spooled += 1;
                    }
                    SpoolResult::Full => {
                        Counters::add(&c.dropped_spool_full, 1);
                        report.lost += 1;
                    }
                    SpoolResult::Error(why) => {
                        Counters::add(&c.dropped_spool_error, 1);
                        report.lost += 1;
                        if let Ok(mut last) = self.last_spool_error.try_lock() {
                            *last = Some(why);
                        }
                    }
                }
            });
            // What the window held is in the spool now: nothing left for the parent. Without a
            // window, a slot whose numbers could not be announced (the daemon gone, the socket
            // broken) stays claimed: the parent announces them once this process is gone.
            if let Some(claim) = claim
                && (announced || conn.link.window().is_some())
            {
                claim.release();
            }
        }
        report
    }

    /// Spool a line that no alternative took, counting the outcome.
    pub fn spool_line(&self, daemon_id: u32, group: &str, line: &[u8]) -> Delivery {
        let c = self.counters();
        match self.spool.append(daemon_id, group, line) {
            SpoolResult::Written => {
                Counters::add(&c.spooled, 1);
                Delivery::Spooled
            }
            SpoolResult::Full => {
                Counters::add(&c.dropped_spool_full, 1);
                Delivery::Dropped
            }
            SpoolResult::Error(why) => {
                Counters::add(&c.dropped_spool_error, 1);
                if let Ok(mut last) = self.last_spool_error.try_lock() {
                    *last = Some(why);
                }
                Delivery::Dropped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_report_warns_only_about_trouble_and_says_where_unannounced_lines_went() {
        let clean = ExitReport {
            announcements: 2,
            spooled: 3,
            ..ExitReport::default()
        };
        let m = clean.messages(7, "");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, ExitSeverity::Info);
        assert!(
            m[0].1
                .contains("process 7 exiting: 2 stream announcement(s) of its lines, 3 ")
        );

        let daemon = Endpoint::Unix("/run/spread/4803".into());
        let mut troubled = ExitReport {
            lost: 4,
            ..ExitReport::default()
        };
        troubled.unannounced(&daemon, &SendFailure::LockTimeout);
        let m = troubled.messages(7, "resent ");
        let kinds: Vec<ExitSeverity> = m.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [ExitSeverity::Warning, ExitSeverity::Error]);
        assert!(m[0].1.contains("numbers of its resent lines"), "{}", m[0].1);
        assert!(m[0].1.contains(&daemon.to_string()), "{}", m[0].1);
        assert!(m[0].1.contains("the parent announces them"), "{}", m[0].1);
        assert!(
            m[1].1.contains("lost 4 unacknowledged resent line(s)"),
            "{}",
            m[1].1
        );

        troubled.acknowledged = true;
        let m = troubled.messages(7, "");
        assert!(m[0].1.contains("in the spool and is resent"), "{}", m[0].1);
    }
}
