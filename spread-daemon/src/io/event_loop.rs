//! The event loop: accept, read (large reads), feed the core, carry out its actions, and at the end
//! of every turn write each session's queued output with one write(2) where the kernel allows.
//!
//! Slow readers (PROTOCOL §9): what is read is handed to the core in slices of `FEED_SLICE`; a
//! receiver whose queue passes half of MaxSessionMessages is written to at once, and is only killed
//! if that fresh write attempt leaves it over the limit. If such a receiver has made write
//! progress within the throttle window, reading requests stops (input throttling, pure back-pressure
//! on the senders' sockets) until its queue is below a quarter of the limit; sockets skipped
//! meanwhile stay on the ready list (edge-triggered epoll gives no second notice), and bytes
//! already read but not yet handed over wait in their connection. A receiver over the mark that
//! has made no progress for the window holds nobody back: reading resumes and it is killed once
//! over the limit, as Spread does.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::poller::{
    EventFd, HANGUP, Poller, READABLE, WRITABLE, set_keepalive, set_socket_buffers,
};
use crate::core::throttle::Throttle;
use crate::core::{Action, Core, Peer, SessionId, Stats};

const WAKER: u64 = 0;
const LISTENER_BASE: u64 = 1;
const SESSION_BASE: u64 = 64;
/// One read(2) takes up to this much: ~500 200-byte messages. Bounded so that one turn's fan-out
/// to a receiver stays below MaxSessionMessages (1000) even when its kernel buffer is full; a
/// receiver that keeps up is never killed for one sender's burst.
const READ_CHUNK: usize = 128 * 1024;
/// Reads per session per turn before others get their turn (fairness; level is remembered).
const READS_PER_TURN: usize = 1;
/// What is read is handed to the core in slices of this size (~66 200-byte messages, at most ~200
/// of the smallest multicasts), with pressured receivers flushed and throttling decided in between.
const FEED_SLICE: usize = 16 * 1024;
/// Spread raises socket buffers to 200 KiB.
const SOCKET_BUFFER: libc::c_int = 200 * 1024;

/// Requests from other threads (the handle, signal handling).
pub enum Command {
    Stop,
    LogStats,
    Stats(mpsc::Sender<Stats>),
}

pub struct Control {
    pub commands: Mutex<Vec<Command>>,
    pub waker: EventFd,
}

impl Control {
    pub fn send(&self, c: Command) {
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
        self.waker.wake();
    }
}

pub enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn raw(&self) -> i32 {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn shutdown_read(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Read),
            Stream::Tcp(s) => s.shutdown(Shutdown::Read),
        };
    }
}

struct Conn {
    stream: Stream,
    /// Edge-triggered: readable data may remain (budget ran out).
    in_ready_list: bool,
    eof: bool,
    /// The peer hung up: read until EOF even after a short read (no further edge will come).
    hup: bool,
    /// Bytes read but not yet handed to the core (input throttling began in the middle of a read).
    unfed: Vec<u8>,
    /// The last time a write to this connection took bytes (or it was accepted).
    last_progress: Instant,
    /// Registered for EPOLLOUT: only while the socket refuses bytes ([`Poller::watch_writes`]).
    watching_writes: bool,
}

pub struct EventLoop {
    core: Core,
    poller: Poller,
    control: Arc<Control>,
    listeners: Vec<Listener>,
    conns: Vec<Option<Conn>>,
    ready: Vec<SessionId>,
    dirty: Vec<SessionId>,
    scratch: Vec<u8>,
    /// read(2) and write(2) calls that moved client bytes (for the metrics).
    reads: u64,
    writes: u64,
    /// epoll_wait returns with events (for the metrics).
    wakeups: u64,
    stop_deadline: Duration,
    stopping_until: Option<Instant>,
    /// accept() failed for lack of descriptors: connections wait in the backlog and, edge-triggered,
    /// no new event would announce them; retry on a timer.
    accept_retry: bool,
    log_limit: LogLimit,
    /// Whether to stop reading requests (the decision is the core's `throttle`).
    throttle: Throttle,
    pressured: Vec<SessionId>,
}

/// At most `LOG_BURST` core log lines per second (kills, refusals): a client storm must not turn
/// into a log storm. What is suppressed is counted and reported.
const LOG_BURST: u32 = 50;

#[derive(Default)]
struct LogLimit {
    window: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    fn log(&mut self, line: &str) {
        let now = Instant::now();
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1))
        {
            if self.suppressed > 0 {
                log_line(&format!(
                    "({} similar log lines suppressed)",
                    self.suppressed
                ));
            }
            self.window = Some(now);
            self.lines = 0;
            self.suppressed = 0;
        }
        if self.lines < LOG_BURST {
            self.lines += 1;
            log_line(line);
        } else {
            self.suppressed += 1;
        }
    }
}

/// One line of the daemon's own log on stderr, with a UTC timestamp (readable in a terminal;
/// under systemd the journal adds its own).
pub fn log_line(line: &str) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    eprintln!(
        "{} spread-daemon[{}]: {line}",
        utc_timestamp(secs),
        std::process::id()
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, days-from-civil inverse).
fn utc_timestamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl EventLoop {
    pub fn new(
        core: Core,
        listeners: Vec<Listener>,
        control: Arc<Control>,
        stop_deadline: Duration,
    ) -> io::Result<EventLoop> {
        let poller = Poller::new()?;
        poller.add(control.waker.as_raw_fd(), WAKER, false)?;
        for (i, l) in listeners.iter().enumerate() {
            let fd = match l {
                Listener::Unix(l, _) => l.as_raw_fd(),
                Listener::Tcp(l) => l.as_raw_fd(),
            };
            poller.add(fd, LISTENER_BASE + i as u64, false)?;
        }
        Ok(EventLoop {
            core,
            poller,
            control,
            listeners,
            conns: Vec::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            reads: 0,
            writes: 0,
            wakeups: 0,
            stop_deadline,
            stopping_until: None,
            accept_retry: false,
            log_limit: LogLimit::default(),
            throttle: Throttle::new(Duration::from_millis(100)),
            pressured: Vec::new(),
        })
    }

    /// Input throttling window (see the module doc); zero disables throttling.
    pub fn with_throttle_window(mut self, window: Duration) -> EventLoop {
        self.throttle = Throttle::new(window);
        self
    }

    /// Run until a clean stop completes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            let mut timeout = self
                .core
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if let Some(until) = self.stopping_until {
                let left = until
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(50));
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if self.accept_retry {
                let retry = Duration::from_millis(100);
                timeout = Some(timeout.map_or(retry, |t| t.min(retry)));
            }
            if self.throttle.throttled() {
                // Skipped sockets stay on the ready list; come back when a window runs out (or
                // earlier, on EPOLLOUT from the reader that is draining).
                if let Some(w) = self.throttle.wake() {
                    let left = w
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1));
                    timeout = Some(timeout.map_or(left, |t| t.min(left)));
                }
            }
            if !self.ready.is_empty()
                && (!self.throttle.throttled()
                    || self.ready.iter().any(|&id| !self.core.is_ready(id)))
            {
                timeout = Some(Duration::ZERO);
            }
            events.clear();
            events.extend(self.poller.wait(timeout)?.iter().map(|e| (e.u64, e.events)));
            self.wakeups += u64::from(!events.is_empty());
            for &(token, flags) in &events {
                match token {
                    WAKER => self.handle_commands(),
                    t if t < SESSION_BASE => self.accept_all((t - LISTENER_BASE) as usize),
                    t => {
                        let id = (t - SESSION_BASE) as SessionId;
                        if flags & HANGUP != 0
                            && let Some(Some(c)) = self.conns.get_mut(id)
                        {
                            c.hup = true;
                        }
                        if flags & (READABLE | HANGUP) != 0 {
                            self.mark_ready(id);
                        }
                        if flags & WRITABLE != 0 && self.conns.get(id).is_some_and(Option::is_some)
                        {
                            self.dirty.push(id);
                        }
                    }
                }
            }
            if std::mem::take(&mut self.accept_retry) {
                for i in 0..self.listeners.len() {
                    self.accept_all(i);
                }
            }
            self.read_ready();
            self.core.tick(Instant::now());
            self.apply_actions();
            self.flush();
            self.update_throttle(Instant::now());
            if let Some(until) = self.stopping_until
                && (self.core.stop_complete() || Instant::now() >= until)
            {
                if !self.core.stop_complete() {
                    log_line("stop deadline passed with undelivered data; closing anyway");
                }
                self.core.close_all();
                self.apply_actions();
                log_line("stopped");
                return Ok(());
            }
        }
    }

    fn mark_ready(&mut self, id: SessionId) {
        if let Some(Some(c)) = self.conns.get_mut(id)
            && !c.in_ready_list
            && !c.eof
        {
            c.in_ready_list = true;
            self.ready.push(id);
        }
    }

    fn handle_commands(&mut self) {
        self.control.waker.drain();
        let cmds = std::mem::take(
            &mut *self
                .control
                .commands
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for c in cmds {
            match c {
                Command::Stop => self.begin_stop(),
                Command::LogStats => {
                    let s = self.core.stats();
                    let throttles = self.throttle.count();
                    log_line(&format!(
                        "stats: sessions {} (handshaking {}), groups {}, queued messages {}, accepted {}, \
                         rejected {}, requests {}, deliveries {}, kills: slow {} protocol {}, input throttled {throttles} times, \
                         rejected joins {}",
                        s.sessions,
                        s.handshaking,
                        s.groups,
                        s.queued_messages,
                        s.accepted_total,
                        s.rejected_connects,
                        s.messages_in,
                        s.deliveries,
                        s.kills_slow,
                        s.kills_protocol,
                        s.rejected_joins
                    ));
                }
                Command::Stats(tx) => {
                    let mut s = self.core.stats();
                    s.throttles = self.throttle.count();
                    s.reads = self.reads;
                    s.writes = self.writes;
                    s.wakeups = self.wakeups;
                    let _ = tx.send(s);
                }
            }
        }
    }

    fn begin_stop(&mut self) {
        if self.stopping_until.is_some() {
            return;
        }
        log_line("stopping: no new requests, delivering what was sent");
        for l in self.listeners.drain(..) {
            match l {
                Listener::Unix(l, path) => {
                    self.poller.delete(l.as_raw_fd());
                    let _ = std::fs::remove_file(&path);
                }
                Listener::Tcp(l) => self.poller.delete(l.as_raw_fd()),
            }
        }
        self.core.begin_stop();
        self.apply_actions();
        for id in 0..self.conns.len() {
            if let Some(c) = &self.conns[id] {
                c.stream.shutdown_read();
                self.mark_ready(id);
            }
        }
        self.stopping_until = Some(Instant::now() + self.stop_deadline);
    }

    fn accept_all(&mut self, index: usize) {
        loop {
            let accepted = match self.listeners.get(index) {
                Some(Listener::Unix(l, _)) => {
                    l.accept().map(|(s, _)| (Stream::Unix(s), Peer::Unix))
                }
                Some(Listener::Tcp(l)) => l.accept().map(|(s, a)| {
                    let _ = s.set_nodelay(true);
                    set_keepalive(s.as_raw_fd());
                    (Stream::Tcp(s), Peer::Tcp(a))
                }),
                None => return,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted =>
                {
                    continue;
                }
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog and retry shortly.
                    if !self.accept_retry {
                        log_line(&format!("accept failed: {e}; retrying"));
                    }
                    self.accept_retry = true;
                    return;
                }
            };
            let fd = stream.raw();
            let nonblocking = match &stream {
                Stream::Unix(s) => s.set_nonblocking(true),
                Stream::Tcp(s) => s.set_nonblocking(true),
            };
            if let Err(e) = nonblocking {
                log_line(&format!("cannot make a new connection non-blocking: {e}"));
                continue;
            }
            set_socket_buffers(fd, SOCKET_BUFFER);
            let id = self.core.accept(peer, fd as u32, Instant::now());
            if self.conns.len() <= id {
                self.conns.resize_with(id + 1, || None);
            }
            if let Err(e) = self.poller.add(fd, SESSION_BASE + id as u64, false) {
                log_line(&format!("cannot watch a new connection: {e}"));
            }
            self.conns[id] = Some(Conn {
                stream,
                in_ready_list: false,
                eof: false,
                hup: false,
                unfed: Vec::new(),
                last_progress: Instant::now(),
                watching_writes: false,
            });
            self.apply_actions();
            // Data may already be waiting (edge-triggered registration after it arrived).
            self.mark_ready(id);
        }
    }

    fn read_ready(&mut self) {
        self.update_throttle(Instant::now());
        let ready = std::mem::take(&mut self.ready);
        // Skipped because of throttling: first in line next time.
        let mut deferred = Vec::new();
        let mut again = Vec::new();
        for id in ready {
            let Some(Some(c)) = self.conns.get_mut(id) else {
                continue;
            };
            if self.throttle.throttled() && self.core.is_ready(id) {
                deferred.push(id);
                continue;
            }
            if !c.unfed.is_empty() {
                // Left over from a throttled turn: this is the session's read for this turn; its
                // socket may hold more, so it stays on the list.
                let bytes = std::mem::take(&mut c.unfed);
                self.feed(id, &bytes, 0);
                if let Some(Some(c)) = self.conns.get_mut(id) {
                    if c.eof {
                        c.in_ready_list = false;
                    } else {
                        again.push(id);
                    }
                }
                continue;
            }
            // `more`: the last read filled the buffer, so the socket may hold more (edge-triggered).
            let mut more = false;
            for _ in 0..READS_PER_TURN {
                let Some(Some(c)) = self.conns.get_mut(id) else {
                    break;
                };
                match c.stream.read(&mut self.scratch) {
                    Ok(0) => {
                        c.eof = true;
                        more = false;
                        self.core.closed(id);
                    }
                    Ok(n) => {
                        self.reads += 1;
                        // A short read drained the socket, unless the peer also hung up: then the
                        // EOF is still to be read and no new edge will announce it.
                        more = n == self.scratch.len() || c.hup;
                        let scratch = std::mem::take(&mut self.scratch);
                        let fed_all = self.feed(id, &scratch, n);
                        self.scratch = scratch;
                        if !fed_all {
                            more = true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => more = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => more = true,
                    Err(_) => {
                        c.eof = true;
                        more = false;
                        self.core.closed(id);
                    }
                }
                self.apply_actions();
                if !more || self.throttle.throttled() {
                    break;
                }
            }
            match self.conns.get_mut(id) {
                Some(Some(c)) if more && !c.eof => again.push(id),
                Some(Some(c)) => c.in_ready_list = false,
                _ => {}
            }
        }
        // Sessions accepted meanwhile may have been added; keep them.
        deferred.append(&mut again);
        deferred.append(&mut self.ready);
        self.ready = deferred;
    }

    /// Hand `buf[..n]` (or all of `buf` if `n == 0`) to the core slice by slice, relieving pressure
    /// in between. If throttling begins, the rest waits in the connection; returns false then.
    fn feed(&mut self, id: SessionId, buf: &[u8], n: usize) -> bool {
        let bytes = if n == 0 { buf } else { &buf[..n] };
        let mut pos = 0;
        while pos < bytes.len() {
            let end = (pos + FEED_SLICE).min(bytes.len());
            self.core.received(id, &bytes[pos..end], Instant::now());
            pos = end;
            self.apply_actions();
            self.relieve_pressure();
            if self.throttle.throttled() && pos < bytes.len() && self.core.is_ready(id) {
                if let Some(Some(c)) = self.conns.get_mut(id) {
                    c.unfed.extend_from_slice(&bytes[pos..]);
                }
                return false;
            }
        }
        true
    }

    /// Write every receiver whose queue passed the high-water mark now (the core kills one that
    /// is still over MaxSessionMessages after this attempt), then decide about throttling.
    fn relieve_pressure(&mut self) {
        self.core.take_pressured(&mut self.pressured);
        if self.pressured.is_empty() {
            return;
        }
        let list = std::mem::take(&mut self.pressured);
        for &id in &list {
            self.flush_one(id);
            self.apply_actions();
            self.note_heavy(id);
        }
        self.pressured = list;
        self.pressured.clear();
        self.update_throttle(Instant::now());
    }

    fn low_water(&self) -> usize {
        self.core.settings().max_session_messages / 4
    }

    /// Track `id` while its queue is over the low-water mark.
    fn note_heavy(&mut self, id: SessionId) {
        if let Some(Some(c)) = self.conns.get(id) {
            let (queued, low) = (self.core.queued_messages(id), self.low_water());
            self.throttle.note(id, queued, low, c.last_progress);
        }
    }

    /// Decide whether to throttle (the core's `Throttle`), from the tracked sessions' queues.
    fn update_throttle(&mut self, now: Instant) {
        let low = self.low_water();
        let (conns, core) = (&self.conns, &self.core);
        let queued = |id: SessionId| {
            matches!(conns.get(id), Some(Some(_))).then(|| core.queued_messages(id))
        };
        self.throttle.update(now, queued, low);
    }

    fn flush(&mut self) {
        self.core.take_dirty(&mut self.dirty);
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            self.flush_one(id);
            self.apply_actions();
        }
        self.dirty = dirty;
        self.dirty.clear();
        // Queues that passed the high-water mark outside `feed` (membership traffic, handshakes)
        // were just written; only track them.
        self.core.take_pressured(&mut self.pressured);
        let list = std::mem::take(&mut self.pressured);
        for &id in &list {
            self.note_heavy(id);
        }
        self.pressured = list;
        self.pressured.clear();
    }

    /// Write `id`'s pending output until done or the kernel refuses; the core judges the result.
    /// A socket that refused bytes is watched for EPOLLOUT until its queue is written.
    fn flush_one(&mut self, id: SessionId) {
        let mut refused = false;
        while let Some(Some(c)) = self.conns.get_mut(id) {
            let pending = self.core.pending_output(id);
            if pending.is_empty() {
                break;
            }
            match c.stream.write(pending) {
                // A socket that takes nothing is full, whatever it says; wait for EPOLLOUT.
                Ok(0) => {
                    refused = true;
                    self.core.wrote(id, 0, true);
                    break;
                }
                Ok(n) => {
                    self.writes += 1;
                    c.last_progress = Instant::now();
                    self.throttle.progressed(id, c.last_progress);
                    self.core.wrote(id, n, false);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    refused = true;
                    self.core.wrote(id, 0, true);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.core.write_failed(id);
                    break;
                }
            }
        }
        let want = refused && !self.core.pending_output(id).is_empty();
        if let Some(Some(c)) = self.conns.get_mut(id)
            && c.watching_writes != want
        {
            // Adding EPOLLOUT reports a socket that became writable meanwhile at once.
            match self
                .poller
                .watch_writes(c.stream.raw(), SESSION_BASE + id as u64, want)
            {
                Ok(()) => c.watching_writes = want,
                Err(e) => log_line(&format!("cannot watch a connection for writes: {e}")),
            }
        }
    }

    fn apply_actions(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Log(line) => self.log_limit.log(&line),
                Action::Close { id, last_words } => {
                    if let Some(Some(mut c)) = self.conns.get_mut(id).map(Option::take) {
                        if !last_words.is_empty() {
                            let _ = c.stream.write(&last_words);
                        }
                        self.poller.delete(c.stream.raw());
                    }
                }
            }
        }
    }
}

/// Bind the configured listeners.
pub fn bind(
    config: &crate::Config,
) -> io::Result<(Vec<Listener>, Option<PathBuf>, Vec<SocketAddr>)> {
    let mut listeners = Vec::new();
    let mut unix_path = None;
    if let Some(path) = config.unix_path() {
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; not removing it",
                        path.display()
                    ),
                ));
            }
            if UnixStream::connect(&path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another daemon is listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let l = UnixListener::bind(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", path.display()),
            )
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(config.unix_mode))?;
        l.set_nonblocking(true)?;
        listeners.push(Listener::Unix(l, path.clone()));
        unix_path = Some(path);
    }
    let mut tcp = Vec::new();
    for ip in &config.tcp_bind {
        let addr = SocketAddr::new(*ip, config.effective_tcp_port());
        let l = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on TCP {addr}: {e}")))?;
        l.set_nonblocking(true)?;
        tcp.push(l.local_addr()?);
        listeners.push(Listener::Tcp(l));
    }
    Ok((listeners, unix_path, tcp))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_timestamps() {
        assert_eq!(super::utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc_timestamp(1_795_468_241), "2026-11-23T21:10:41Z");
    }
}
