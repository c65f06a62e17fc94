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
use spread_sys::spread_name::Endpoint;
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

/// Per (connection, group): the sequence counter, and the message header for this connection
/// built once (sender, service and group checked and encoded on the first line after a connect).
#[derive(Default)]
struct GroupState {
    counter: SeqCounter,
    template: Option<MulticastTemplate>,
}

type SeqTable = HashMap<Box<str>, GroupState, BuildHasherDefault<Fnv64>>;

/// One connection's state; numbering is kept across reconnects under the same private name so a
/// daemon crash shows as a gap at the collector.
struct Conn {
    mailbox: Option<Mailbox>,
    attempt: u32,
    seqs: SeqTable,
    retry_at: Option<Instant>,
    /// The private group (`#name#host`) the last successful connection had: the owner of `seqs`.
    owner: Option<Box<str>>,
    /// Sequences of earlier private names the daemon refused (still held by a dead session),
    /// waiting for their hand-over on the control channel (CONTRACTS "Control channel"), sent
    /// right after the next connect, before any line; dropped once written.
    stale: Vec<(Box<str>, SeqTable)>,
    /// When to announce the next numbers (after a reconnect, while idle).
    announcer: Announcer,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            mailbox: None,
            attempt: 0,
            seqs: SeqTable::default(),
            retry_at: None,
            owner: None,
            stale: Vec::new(),
            announcer: Announcer::new(),
        }
    }

    /// The daemon refused our name: the current sequences belong to the old name from now on.
    fn retire_name(&mut self) {
        let seqs = std::mem::take(&mut self.seqs);
        // Only counters that numbered something have anything to hand over.
        let seqs: SeqTable = seqs
            .into_iter()
            .filter(|(_, g)| g.counter.issued() != 0)
            .collect();
        if let Some(owner) = self.owner.take()
            && !seqs.is_empty()
        {
            self.stale.push((owner, seqs));
        }
    }

    /// Lines numbered on this connection so far (the announcer's notion of "busy").
    fn numbered_total(&self) -> u64 {
        self.seqs.values().map(|g| g.counter.issued()).sum()
    }
}

/// Send every pending hand-over on the control channel; on success nothing is pending any more.
fn hand_over(
    mb: &mut Mailbox,
    service: u32,
    stale: &mut Vec<(Box<str>, SeqTable)>,
) -> Result<(), SpreadError> {
    let records = stale.iter().flat_map(|(owner, seqs)| {
        seqs.iter().map(|(group, g)| Record::Handover {
            old: owner.as_bytes(),
            group: group.as_bytes(),
            next: g.counter.issued(),
        })
    });
    control::send(mb, service, records)?;
    stale.clear();
    Ok(())
}

/// Announce the next number of every group this connection numbered lines for.
fn announce(mb: &mut Mailbox, service: u32, seqs: &SeqTable) -> Result<(), SpreadError> {
    let groups = seqs.iter().map(|(g, s)| (g.as_bytes(), s.counter.issued()));
    if control::send(mb, service, control::next_records(groups))? > 0 {
        Counters::add(&counters::get().announcements, 1);
    }
    Ok(())
}

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
                conn: Mutex::new(Conn::new()),
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
                Ok(mut mb) => {
                    // Before any line under the new name: the old names' sequences, handed over.
                    if !conn.stale.is_empty()
                        && let Err(e) = hand_over(&mut mb, self.cfg.service_type, &mut conn.stale)
                    {
                        Counters::add(&self.counters().send_errors, 1);
                        conn.retry_at = Some(now + self.cfg.retry_interval);
                        return Err(SendFailure::Send(e));
                    }
                    conn.owner = Some(mb.private_group().into());
                    // Headers are per connection.
                    for g in conn.seqs.values_mut() {
                        g.template = None;
                    }
                    conn.mailbox = Some(mb);
                    conn.retry_at = None;
                    // Lines in flight on the old session may be lost: say where we stand.
                    conn.announcer.reconnected(now);
                    return Ok(());
                }
                Err(SpreadError::RejectNotUnique(_)) => {
                    conn.attempt += 1;
                    // A new name starts new sequences (CONTRACTS §2); the old name's are handed
                    // over before the next line to each of their groups.
                    conn.retire_name();
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
    /// (one sendmsg, no copy). A body longer than one message (`line::MAX_BODY`) is refused
    /// with `Send(MessageTooLong)` before anything is written, the connection kept.
    pub fn try_send_parts<'p>(
        &self,
        daemon_id: u32,
        group: &str,
        parts: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<(), SendFailure> {
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
            ..
        } = &mut *conn;
        // One table lookup per line; a new group allocates its key once.
        let state = match seqs.get_mut(group) {
            Some(c) => c,
            None => seqs.entry(group.into()).or_default(),
        };
        let seq = state.counter.peek();
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
        let result = mb.multicast_parts(template, mess_type_for(seq), parts);
        match result {
            Ok(_) => {
                if shortened {
                    let _ = mb.set_send_timeout(Some(self.cfg.send_timeout));
                }
                state.counter.advance();
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

    /// Off the request path (the replay thread, every poll): a connection that broke after
    /// numbering lines is re-opened once its retry interval has passed (handing over old names'
    /// sequences), and the next numbers are announced when the schedule says so
    /// (`spread_sys::announce`). Otherwise, when no further line comes (the load stopped during
    /// an outage), lines lost at a sequence's tail would never be counted. A connection busy on a
    /// request thread is left alone (never waits for the lock).
    pub fn maintain(&self) {
        let now = Instant::now();
        for slot in &self.slots {
            let Ok(mut conn) = slot.conn.try_lock() else {
                continue;
            };
            let total = conn.numbered_total();
            if conn.mailbox.is_none()
                && (total > 0 || !conn.stale.is_empty())
                && self.connect(slot, &mut conn).is_err()
            {
                continue;
            }
            let Conn {
                mailbox,
                seqs,
                retry_at,
                announcer,
                ..
            } = &mut *conn;
            if !announcer.tick(now, total) {
                continue;
            }
            let Some(mb) = mailbox.as_mut() else {
                continue;
            };
            match announce(mb, self.cfg.service_type, seqs) {
                Ok(()) => announcer.announced(now),
                Err(_) => {
                    *mailbox = None;
                    *retry_at = Some(now + self.cfg.retry_interval);
                    Counters::add(&self.counters().send_errors, 1);
                }
            }
        }
    }

    /// The last reason the spool refused a line, if it ever did.
    pub fn last_spool_error(&self) -> Option<String> {
        self.last_spool_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Close every connection (child exit): announce the next numbers (the last lines may have
    /// been lost in flight, and nothing numbered follows them), then a KILL request so the daemon
    /// frees the name at once.
    /// A connection that broke after numbering lines gets one last connect attempt (bounded by
    /// SpreadConnectTimeout): this is the last chance to have that tail counted.
    pub fn close_all(&self) {
        for slot in &self.slots {
            let Ok(mut conn) = slot.conn.try_lock() else {
                continue;
            };
            if conn.mailbox.is_none() && conn.numbered_total() > 0 {
                conn.retry_at = None;
                let _ = self.connect(slot, &mut conn);
            }
            if let Some(mut mb) = conn.mailbox.take() {
                let _ = announce(&mut mb, self.cfg.service_type, &conn.seqs);
                let _ = mb.disconnect();
            }
        }
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
