//! The per-process transport: one Spread connection per configured daemon, opened lazily, shared
//! by the process's threads through a lock taken with a bounded wait; failover, then the spool.
//!
//! Built in each child (`child_init`), never in the parent, so no connection crosses a fork.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use spread_sys::announce::Announcer;
use spread_sys::control::{self, Record};
use spread_sys::seq::{SeqCounter, mess_type_for};
use spread_sys::spool::Origin;
use spread_sys::spread_name::Endpoint;
use spread_sys::stream::{self, StreamId};
use spread_sys::window::{Window, WindowConfig};
use spread_sys::{ConnectOptions, Error as SpreadError, Mailbox, MulticastTemplate};

use crate::config::ModuleConfig;
use crate::counters::{self, Counters};
use crate::private_name::{self, Role};
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
    #[error("acknowledgement window full (SpreadAckWindow): no collector acknowledged recent lines")]
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

/// FNV-1a 64 for the per-group sequence table: group names are short, and SipHash's
/// DoS resistance buys nothing for names the admin configured or the host check produced, while
/// costing hundreds of instructions per line.
#[derive(Default)]
pub struct Fnv64(u64);

impl Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Per (connection, group): the line counter of the connection's stream, the message header
/// for this connection built once (sender, service and group checked and encoded on the first
/// line after a connect), and the group's key in the acknowledgement window.
#[derive(Default)]
struct GroupState {
    counter: SeqCounter,
    template: Option<MulticastTemplate>,
    key: Option<u32>,
}

type SeqTable = HashMap<Box<str>, GroupState, BuildHasherDefault<Fnv64>>;

/// One connection slot's state. Its lines form one stream (CONTRACTS "Streams"): numbered
/// 1, 2, … per group for the life of the process, across reconnects under any private name.
struct Conn {
    mailbox: Option<Mailbox>,
    attempt: u32,
    stream: StreamId,
    seqs: SeqTable,
    retry_at: Option<Instant>,
    /// Lines handed over and not yet acknowledged (`SpreadAcknowledge On`).
    window: Option<Window>,
    /// When to announce the stream's numbers (after a reconnect, while idle).
    announcer: Announcer,
    /// When the "no acknowledgement" warning may be given again.
    next_ack_warning: Option<Instant>,
}

impl Conn {
    fn new(cfg: &ModuleConfig) -> Conn {
        Conn {
            mailbox: None,
            attempt: 0,
            stream: StreamId::random(),
            seqs: SeqTable::default(),
            retry_at: None,
            window: cfg.acknowledge.then(|| {
                Window::new(WindowConfig {
                    bound_bytes: cfg.ack_window as usize,
                    ..WindowConfig::default()
                })
            }),
            announcer: Announcer::new(),
            next_ack_warning: None,
        }
    }

    /// Lines numbered on this connection so far (the announcer's notion of "busy").
    fn numbered_total(&self) -> u64 {
        self.seqs.values().map(|g| g.counter.issued()).sum()
    }

    /// Whether there is anything a broken connection must come back for: lines numbered (to
    /// announce) or held (to resend).
    fn has_state(&self) -> bool {
        self.numbered_total() > 0 || self.window.as_ref().is_some_and(|w| !w.is_empty())
    }
}

/// Announce the numbers of this connection's stream on every group, and of every stream it
/// holds lines of (spooled lines taken back): acknowledging collectors answer with what they
/// have, which also introduces them.
fn announce(mb: &mut Mailbox, service: u32, conn: &Conn) -> Result<(), SpreadError> {
    let own = conn.seqs.iter().filter(|(_, g)| g.counter.issued() > 0).map(|(g, s)| {
        Record::Stream {
            stream: conn.stream,
            group: g.as_bytes(),
            last: s.counter.issued(),
        }
    });
    let held: Vec<(StreamId, &[u8], u64)> = conn
        .window
        .as_ref()
        .map(|w| w.held_keys())
        .unwrap_or_default();
    let others = held
        .into_iter()
        .filter(|(s, _, _)| *s != conn.stream)
        .map(|(stream, group, last)| Record::Stream {
            stream,
            group,
            last,
        });
    if control::send(mb, service, own.chain(others))? > 0 {
        Counters::add(&counters::get().announcements, 1);
    }
    Ok(())
}

/// Read what arrived for this connection (acks) without waiting; acks go to the window.
fn read_acks(mb: &mut Mailbox, window: &mut Option<Window>, now: Instant) -> Result<(), SpreadError> {
    let c = counters::get();
    mb.receive_batch(false, |m| {
        if !m.is_regular() {
            return;
        }
        let Some(records) = control::decode(m.header.mess_type().0, m.body) else {
            return;
        };
        let Some(w) = window.as_mut() else {
            return;
        };
        let from = String::from_utf8_lossy(m.sender());
        for r in records {
            if let Ok(Record::Ack {
                stream,
                group,
                from: first,
                to: last,
            }) = r
            {
                let o = w.on_ack(&from, stream, group, first, last, now);
                Counters::add(&c.acked, o.released as u64);
            }
        }
    })
    .map(|_| ())
}

/// Lines resent per turn of the lock, so a long resend never keeps request threads waiting.
const RESEND_CHUNK: usize = 64;
/// Warn in the error log when the oldest unacknowledged line is this old.
pub const NO_ACK_WARNING: Duration = Duration::from_secs(60);
/// … at most this often per connection.
const NO_ACK_WARNING_EVERY: Duration = Duration::from_secs(300);

struct Slot {
    id: u32,
    endpoint: Endpoint,
    conn: Mutex<Conn>,
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
        let slots = cfg
            .daemons
            .iter()
            .map(|d| Slot {
                id: d.id,
                endpoint: d.endpoint.clone(),
                conn: Mutex::new(Conn::new(&cfg)),
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
    ) -> Result<(MutexGuard<'a, Conn>, Option<Duration>), SendFailure> {
        let mut spins = 0u32;
        let mut start: Option<Instant> = None;
        loop {
            match slot.conn.try_lock() {
                Ok(guard) => return Ok((guard, start.map(|s| s.elapsed()))),
                // A panic while holding the lock left plain data; the connection may be mid-way,
                // so drop it and carry on.
                Err(TryLockError::Poisoned(p)) => {
                    let mut guard = p.into_inner();
                    guard.mailbox = None;
                    slot.conn.clear_poison();
                    return Ok((guard, start.map(|s| s.elapsed())));
                }
                Err(TryLockError::WouldBlock) => {
                    let began = *start.get_or_insert_with(Instant::now);
                    if began.elapsed() >= self.cfg.send_timeout {
                        Counters::add(&self.counters().lock_timeouts, 1);
                        return Err(SendFailure::LockTimeout);
                    }
                    spins += 1;
                    if spins < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
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
                    // Headers are per connection.
                    for g in conn.seqs.values_mut() {
                        g.template = None;
                    }
                    conn.mailbox = Some(mb);
                    conn.retry_at = None;
                    // Lines in flight on the old session may be lost: say where we stand (the
                    // collectors' answers also start resending at once).
                    conn.announcer.reconnected(now);
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
    pub fn try_send(&self, daemon_id: u32, group: &str, line: &[u8]) -> Result<(), SendFailure> {
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
    ) -> Result<(), SendFailure>
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
            seqs,
            retry_at,
            window,
            stream,
            ..
        } = &mut *conn;
        if let Some(w) = window.as_ref() {
            let len: usize = parts.clone().into_iter().map(<[u8]>::len).sum();
            if !w.has_room(len) {
                Counters::add(&self.counters().window_full, 1);
                return Err(SendFailure::WindowFull);
            }
        }
        // One table lookup per line; a new group allocates its key once.
        let state = match seqs.get_mut(group) {
            Some(c) => c,
            None => seqs.entry(group.into()).or_default(),
        };
        let Some(mb) = mailbox.as_mut() else {
            return Err(SendFailure::Send(SpreadError::NetErrorOnSession));
        };
        let template = match &mut state.template {
            Some(t) => t,
            None => {
                // A group or service the wire cannot carry: refused, the connection stays.
                let t = mb
                    .multicast_template(self.cfg.service_type, group)
                    .map_err(SendFailure::Send)?;
                state.template.insert(t)
            }
        };
        let number = state.counter.issued() + 1;
        let mut tag = stream::TagBuf::default();
        template
            .set_tag(Some(stream::tag(*stream, number, &mut tag)))
            .map_err(SendFailure::Send)?;
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
        let result = mb.multicast_parts(template, mess_type_for(state.counter.peek()), parts.clone());
        match result {
            Ok(_) => {
                if shortened {
                    let _ = mb.set_send_timeout(Some(self.cfg.send_timeout));
                }
                state.counter.advance();
                if let Some(w) = window.as_mut() {
                    let key = match state.key {
                        Some(k) => Some(k),
                        None => w.key(*stream, group.as_bytes()),
                    };
                    state.key = key;
                    // Room was checked above; a key table full of other streams cannot happen
                    // for our own groups before MAX_KEYS of them.
                    if let Some(k) = key
                        && w.push(k, number, parts, Instant::now())
                    {
                        Counters::add(&self.counters().held, 1);
                    }
                }
                Ok(())
            }
            Err(e) if mb.is_usable() => {
                // Refused before anything was written (too long): the connection is fine.
                if shortened {
                    let _ = mb.set_send_timeout(Some(self.cfg.send_timeout));
                }
                // (A line too long for one message is not a send error: the caller cuts it.)
                if !matches!(e, SpreadError::MessageTooLong { .. }) {
                    Counters::add(&self.counters().send_errors, 1);
                }
                Err(SendFailure::Send(e))
            }
            Err(e) => {
                // The stream may hold part of a message: never reuse it.
                *mailbox = None;
                *retry_at = Some(Instant::now() + self.cfg.retry_interval);
                Counters::add(&self.counters().send_errors, 1);
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
        let Ok(mut guard) = slot.conn.try_lock() else {
            return;
        };
        let conn = &mut *guard;
        if conn.mailbox.is_none() && conn.has_state() && self.connect(slot, conn).is_err() {
            return;
        }
        // Taken out while in use (put back below unless it broke): `announce` reads the rest.
        let Some(mut mb) = conn.mailbox.take() else {
            return;
        };
        let mut broken = read_acks(&mut mb, &mut conn.window, now).is_err();
        if !broken && conn.announcer.tick(now, conn.numbered_total()) {
            match announce(&mut mb, self.cfg.service_type, conn) {
                Ok(()) => conn.announcer.announced(now),
                Err(_) => broken = true,
            }
        }
        conn.mailbox = Some(mb);
        if let Some(w) = &conn.window
            && let Some(age) = w.oldest_age(now)
            && age >= NO_ACK_WARNING
            && conn.next_ack_warning.is_none_or(|t| now >= t)
        {
            conn.next_ack_warning = Some(now + NO_ACK_WARNING_EVERY);
            log(&format!(
                "mod_log_spread: no collector has acknowledged lines to daemon {} for {}s                  ({} lines, {} bytes held{}); is spreadlogd running and joined?",
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
        if broken {
            self.broke(conn, now);
            return;
        }
        if !conn.window.as_mut().is_some_and(|w| w.resend_due(now)) {
            return;
        }
        // Resend in chunks, letting request threads in between (a pass left half-way when the
        // lock is busy goes on at the next turn).
        drop(guard);
        loop {
            let Ok(mut guard) = slot.conn.try_lock() else {
                return;
            };
            let conn = &mut *guard;
            if conn.mailbox.is_none() {
                return;
            }
            if self.resend_chunk(conn, now).is_err() {
                self.broke(conn, now);
                return;
            }
            if !conn.window.as_ref().is_some_and(Window::resend_pending) {
                return;
            }
            drop(guard);
            std::thread::yield_now();
        }
    }

    /// Resend up to [`RESEND_CHUNK`] unacknowledged lines, each to every collector known, to its
    /// private group only: no other member of the log group ever sees a line twice.
    fn resend_chunk(&self, conn: &mut Conn, now: Instant) -> Result<(), ()> {
        let (Some(mb), Some(w)) = (conn.mailbox.as_mut(), conn.window.as_mut()) else {
            return Ok(());
        };
        let service = control::service_for(self.cfg.service_type);
        let mut body = Vec::new();
        let c = self.counters();
        w.resend_some(RESEND_CHUNK, now, |to, r| {
            body.clear();
            if !control::encode_resend(r, &mut body) {
                return Ok(());
            }
            mb.multicast(service, &[to], control::RESEND_MESS_TYPE, &body)
                .map(|_| Counters::add(&c.resent, 1))
                .map_err(|_| ())
        })
        .map(|_| ())
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
        let now = Instant::now();
        let Some(w) = conn.window.as_mut() else {
            // Without acknowledgements nobody would resend it: send it as a new line instead.
            drop(conn);
            return self.try_send(daemon_id, group, line).map(|()| true);
        };
        if !w.inject(origin.stream, group.as_bytes(), origin.number, line, now) {
            return Ok(false);
        }
        Counters::add(&self.counters().reheld, 1);
        // Ask the collectors what they have of it: their answers introduce them.
        conn.announcer.reconnected(now);
        Ok(true)
    }

    /// Lines held unacknowledged in this process's windows.
    pub fn unacked(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.conn.try_lock().ok())
            .map(|c| c.window.as_ref().map_or(0, Window::len))
            .sum()
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
    /// (bounded by SpreadConnectTimeout).
    pub fn close_all(&self, linger: Duration) {
        for slot in &self.slots {
            let Ok(mut conn) = slot.conn.try_lock() else {
                continue;
            };
            let conn = &mut *conn;
            if conn.mailbox.is_none() && conn.has_state() {
                conn.retry_at = None;
                let _ = self.connect(slot, conn);
            }
            if let Some(mut mb) = conn.mailbox.take() {
                let deadline = Instant::now() + linger;
                while conn.window.as_ref().is_some_and(|w| !w.is_empty()) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero()
                        || !mb.poll(Some(left)).unwrap_or(false)
                        || read_acks(&mut mb, &mut conn.window, Instant::now()).is_err()
                    {
                        break;
                    }
                }
                let _ = announce(&mut mb, self.cfg.service_type, conn);
                let _ = mb.disconnect();
            }
            if let Some(w) = conn.window.as_mut() {
                self.spool_window(slot.id, w);
            }
        }
    }

    /// Move every unacknowledged line of `w` to the spool, with its stream and number.
    fn spool_window(&self, daemon_id: u32, w: &mut Window) {
        let c = self.counters();
        w.drain(|stream, group, number, line| {
            let group = String::from_utf8_lossy(group);
            match self
                .spool
                .append_any(daemon_id, &group, line, Some(Origin { stream, number }))
            {
                SpoolResult::Written => Counters::add(&c.spooled_unacked, 1),
                SpoolResult::Full => Counters::add(&c.dropped_spool_full, 1),
                SpoolResult::Error(why) => {
                    Counters::add(&c.dropped_spool_error, 1);
                    if let Ok(mut last) = self.last_spool_error.try_lock() {
                        *last = Some(why);
                    }
                }
            }
        });
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
