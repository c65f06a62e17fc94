//! The daemon's sans-IO core: sessions, the handshake, groups and fan-out as a deterministic state
//! machine. The event loop feeds it events (accepted, bytes read, peer closed, time passed, bytes
//! written) and carries out what it asks (write a session's pending output, close a session, log).
//! It never touches a socket, so tests drive thousands of sessions without any.

mod groups;
mod handshake;
mod out_queue;
pub mod throttle;
mod validate;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spread_sys::wire::constants::{
    CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, CAUSED_BY_LEAVE, HEADER_LEN, JOIN_MESS, KILL_MESS,
    LEAVE_MESS, MAX_GROUP_NAME, SELF_DISCARD,
};
use spread_sys::wire::handshake::RejectCode;
use spread_sys::wire::header::Header;
use spread_sys::wire::membership::{GroupId, encode_membership, encode_self_leave, virtual_id};
use spread_sys::wire::message::encode_reject_group_request;
use spread_sys::wire::name::parse_private_group;

use crate::allow_list::IpRule;
use crate::config::{AuthMethod, Config};
pub use groups::Change;
use groups::Groups;
pub use out_queue::OutQueue;
pub use validate::{Violation, field_name, validate};

/// Index of a session in the core's table (the event loop uses it as its token).
pub type SessionId = usize;

/// Where a connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Unix,
    Tcp(SocketAddr),
}

/// What the event loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `last_words` (best effort, e.g. a reject byte), then close the socket. The id may be
    /// reused by the next accept.
    Close { id: SessionId, last_words: Vec<u8> },
    /// A line for the daemon's own log.
    Log(String),
}

/// Settings the core needs (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub daemon_name: Vec<u8>,
    pub max_sessions: usize,
    pub max_session_messages: usize,
    pub auth_methods: Vec<AuthMethod>,
    pub required_auth: Vec<AuthMethod>,
    pub allow: Vec<IpRule>,
    pub allow_any: bool,
    pub handshake_timeout: Duration,
    /// Memory budget for all output queues together: past it, the blocked session with the
    /// longest queue is killed (per-receiver copies must not add up without bound). Group
    /// memberships count against it too (a join past it is rejected).
    pub max_queued_bytes: usize,
    /// Groups one session may be a member of; a join past it gets a reject message.
    pub max_groups_per_session: usize,
    /// Distinct groups the daemon holds; a join creating one more gets a reject message.
    pub max_groups: usize,
    /// After the first bytes of a handshake step arrived, how long to wait for the rest before judging
    /// what is there (Spread judges its first non-blocking read).
    pub handshake_grace: Duration,
}

impl CoreSettings {
    pub fn from_config(c: &Config) -> CoreSettings {
        CoreSettings {
            daemon_name: c.name.as_bytes().to_vec(),
            max_sessions: c.max_sessions,
            max_session_messages: c.max_session_messages,
            auth_methods: c.auth_methods.clone(),
            required_auth: c.required_auth.clone(),
            allow: c.allow.clone(),
            allow_any: c.allow_any,
            handshake_timeout: c.handshake_timeout,
            max_queued_bytes: c.max_queued_bytes,
            max_groups_per_session: c.max_groups_per_session,
            max_groups: c.max_groups,
            handshake_grace: Duration::from_millis(100),
        }
    }
}

/// Counters for SIGUSR1 and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub sessions: usize,
    pub handshaking: usize,
    pub groups: usize,
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub accepted_total: u64,
    pub rejected_connects: u64,
    pub messages_in: u64,
    pub deliveries: u64,
    pub kills_slow: u64,
    pub kills_protocol: u64,
    /// Times input throttling began (filled in by the event loop).
    pub throttles: u64,
    /// Joins answered with a reject message (group caps, memory budget).
    pub rejected_joins: u64,
    /// read(2) calls that returned client bytes (filled in by the event loop): `messages_in`
    /// over this is the messages per read.
    pub reads: u64,
    /// write(2) calls that sent bytes to clients (filled in by the event loop).
    pub writes: u64,
    /// Times the event loop woke with events to handle (filled in by the event loop): on a web
    /// host each is a context switch, which costs more than the work of a batch.
    pub wakeups: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitConnect,
    AwaitAuth,
    Ready,
}

#[derive(Debug)]
struct Session {
    peer: Peer,
    /// The connection's descriptor number, used in invented names (`r<N>-<fd>`).
    conn_no: u32,
    phase: Phase,
    /// Unparsed input; `in_start` bytes of it are consumed.
    inbuf: Vec<u8>,
    /// When the current handshake step must be complete.
    deadline: Option<Instant>,
    /// Reserved in `names` (from the connect message on).
    private_name: Vec<u8>,
    /// `#name#daemon`, set at accept.
    private_group: Vec<u8>,
    membership: bool,
    accept_patch: bool,
    groups: BTreeSet<Vec<u8>>,
    out: OutQueue,
    dirty: bool,
    /// The last write did not take everything: the kernel buffer is full.
    blocked: bool,
    /// Marked for killing after the current fan-out.
    doomed: bool,
    /// In `pressured` (its queue passed the high-water mark since the event loop last looked).
    pressured: bool,
    /// Clean stop: the peer's input is exhausted.
    input_done: bool,
}

/// Why a session is being removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillReason {
    /// The client disconnected (KILL request, EOF or error): not logged as a kill.
    Departed,
    Protocol(String),
    Slow {
        queued: usize,
    },
    /// All output queues together exceeded the memory budget; this one was the longest.
    Memory {
        queued_bytes: usize,
    },
}

pub struct Core {
    settings: CoreSettings,
    vid: u32,
    ring_time: u32,
    sessions: Vec<Option<Session>>,
    free: Vec<SessionId>,
    names: groups::NameMap<SessionId>,
    groups: Groups,
    actions: VecDeque<Action>,
    dirty: Vec<SessionId>,
    doomed: Vec<(SessionId, KillReason)>,
    /// Sessions whose queue passed the high-water mark: the event loop flushes them right away
    /// (and may throttle input) instead of waiting for the end of its turn.
    pressured: Vec<SessionId>,
    /// Fan-out dedupe: `mark[id] == epoch` means already a receiver of the current message.
    mark: Vec<u64>,
    epoch: u64,
    targets: Vec<SessionId>,
    scratch: Vec<u8>,
    rng: u64,
    invented: VecDeque<Vec<u8>>,
    stopping: bool,
    live: usize,
    handshaking: usize,
    /// Sum of every session's unwritten output.
    queued_bytes: usize,
    /// What the group memberships cost (estimated: [`membership_cost`]), against the same budget.
    membership_bytes: usize,
    stats: Stats,
}

/// The memory one membership takes, estimated: both names (in the group's member map and the
/// session's group set) and the maps' overhead.
fn membership_cost(group: &[u8], private_group: &[u8]) -> usize {
    2 * group.len() + private_group.len() + 128
}

impl Core {
    /// `ring_time` = group_id.id[1] (seconds when "the ring formed", i.e. daemon start);
    /// `seed` feeds the invented-name generator.
    pub fn new(settings: CoreSettings, ring_time: u32, seed: u64) -> Core {
        Core {
            vid: virtual_id(&settings.daemon_name),
            settings,
            ring_time,
            sessions: Vec::new(),
            free: Vec::new(),
            names: Default::default(),
            groups: Groups::default(),
            actions: VecDeque::new(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            pressured: Vec::new(),
            mark: Vec::new(),
            epoch: 0,
            targets: Vec::new(),
            scratch: Vec::new(),
            rng: seed | 1,
            invented: VecDeque::new(),
            stopping: false,
            live: 0,
            handshaking: 0,
            queued_bytes: 0,
            membership_bytes: 0,
            stats: Stats::default(),
        }
    }

    /// Tests: the names to hand out for empty private names, before random ones.
    pub fn set_invented_names(&mut self, names: impl IntoIterator<Item = Vec<u8>>) {
        self.invented = names.into_iter().collect();
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(id).and_then(Option::as_ref)
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(id).and_then(Option::as_mut)
    }

    fn log(&mut self, line: String) {
        self.actions.push_back(Action::Log(line));
    }

    /// Next thing for the event loop to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Sessions with output queued since the last call (appended to `out`).
    pub fn take_dirty(&mut self, out: &mut Vec<SessionId>) {
        for &id in &self.dirty {
            if let Some(s) = self.sessions.get_mut(id).and_then(Option::as_mut) {
                s.dirty = false;
            }
        }
        out.append(&mut self.dirty);
    }

    /// Sessions whose queue passed the high-water mark since the last call (appended to `out`).
    /// The event loop should try to write them at once: a session over MaxSessionMessages is only
    /// killed by the `wrote(.., blocked = true)` that follows.
    pub fn take_pressured(&mut self, out: &mut Vec<SessionId>) {
        for &id in &self.pressured {
            if let Some(s) = self.sessions.get_mut(id).and_then(Option::as_mut) {
                s.pressured = false;
            }
        }
        out.append(&mut self.pressured);
    }

    /// Messages queued for `id` and not completely written (0 for a gone session).
    pub fn queued_messages(&self, id: SessionId) -> usize {
        self.session(id).map_or(0, |s| s.out.messages())
    }

    /// The queue length past which a session is reported by `take_pressured`: half of
    /// MaxSessionMessages (at least 1).
    pub fn high_water(&self) -> usize {
        (self.settings.max_session_messages / 2).max(1)
    }

    /// Bytes waiting to be written to `id`.
    pub fn pending_output(&self, id: SessionId) -> &[u8] {
        self.session(id).map(|s| s.out.pending()).unwrap_or(&[])
    }

    /// The event loop wrote `n` bytes of `pending_output(id)`; `blocked` = the kernel took less than
    /// offered. A session left with more than MaxSessionMessages unwritten messages is killed: this
    /// is the only place the limit is enforced (apart from the hard backstop in `enqueue`), so the
    /// verdict always follows a fresh write attempt, never a stale one.
    pub fn wrote(&mut self, id: SessionId, n: usize, blocked: bool) {
        let max = self.settings.max_session_messages;
        let Some(s) = self.sessions.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        s.out.consume(n);
        self.queued_bytes -= n;
        s.blocked = blocked && !s.out.is_empty();
        let queued = s.out.messages();
        if s.blocked && queued > max {
            self.kill(id, KillReason::Slow { queued });
        }
    }

    /// A new connection. Quota and the TCP allow-list are checked here, before reading anything.
    pub fn accept(&mut self, peer: Peer, conn_no: u32, now: Instant) -> SessionId {
        self.stats.accepted_total += 1;
        let id = self.free.pop().unwrap_or_else(|| {
            self.sessions.push(None);
            self.mark.push(0);
            self.sessions.len() - 1
        });
        self.sessions[id] = Some(Session {
            peer,
            conn_no,
            phase: Phase::AwaitConnect,
            inbuf: Vec::new(),
            deadline: Some(now + self.settings.handshake_timeout),
            private_name: Vec::new(),
            private_group: Vec::new(),
            membership: false,
            accept_patch: true,
            groups: BTreeSet::new(),
            out: OutQueue::default(),
            dirty: false,
            blocked: false,
            doomed: false,
            pressured: false,
            input_done: false,
        });
        self.live += 1;
        self.handshaking += 1;
        if self.stopping {
            self.reject(id, None);
        } else if self.live > self.settings.max_sessions {
            self.log(format!(
                "session limit {} reached: refusing a connection (REJECT_QUOTA)",
                self.settings.max_sessions
            ));
            self.reject(id, Some(RejectCode::Quota.byte()));
        } else if let Peer::Tcp(addr) = peer
            && !self.peer_allowed(addr)
        {
            self.log(format!("refusing TCP peer {addr}: not in the allow-list"));
            self.reject(id, Some(RejectCode::Auth.byte()));
        }
        id
    }

    fn peer_allowed(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.settings.allow_any
            || ip.is_loopback()
            || crate::allow_list::allowed(&self.settings.allow, ip)
    }

    /// Bytes read from `id`.
    pub fn received(&mut self, id: SessionId, bytes: &[u8], now: Instant) {
        let Some(s) = self.session_mut(id) else {
            return;
        };
        if s.doomed {
            return;
        }
        s.inbuf.extend_from_slice(bytes);
        if s.phase != Phase::Ready {
            self.advance_handshake(id, now, false);
        }
        if self.session(id).is_some_and(|s| s.phase == Phase::Ready) {
            self.process_frames(id);
        }
        self.process_doomed();
    }

    /// The peer closed (EOF) or the socket failed.
    pub fn closed(&mut self, id: SessionId) {
        let stopping = self.stopping;
        let Some(s) = self.session_mut(id) else {
            return;
        };
        if stopping && s.phase == Phase::Ready {
            // Clean stop: the session stays a member so that what others already sent still
            // reaches it; it is closed once everything is delivered.
            s.input_done = true;
            return;
        }
        self.kill(id, KillReason::Departed);
        self.process_doomed();
    }

    /// Writing to `id` failed (EPIPE, reset): the session is gone, even during a clean stop.
    pub fn write_failed(&mut self, id: SessionId) {
        self.kill(id, KillReason::Departed);
        self.process_doomed();
    }

    /// Time passed: handshakes past their deadline are judged on what arrived.
    pub fn tick(&mut self, now: Instant) {
        if self.handshaking == 0 {
            return;
        }
        let due: Vec<SessionId> = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(id, s)| {
                s.as_ref()
                    .filter(|s| s.deadline.is_some_and(|d| d <= now))
                    .map(|_| id)
            })
            .collect();
        for id in due {
            self.advance_handshake(id, now, true);
        }
        self.process_doomed();
    }

    /// The earliest handshake deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.handshaking == 0 {
            return None;
        }
        self.sessions
            .iter()
            .filter_map(|s| s.as_ref().and_then(|s| s.deadline))
            .min()
    }

    /// Clean stop (CONTRACTS §1): refuse new sessions, drop unfinished handshakes; established
    /// sessions keep receiving until the event loop has drained every input.
    pub fn begin_stop(&mut self) {
        self.stopping = true;
        let handshaking: Vec<SessionId> = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.as_ref().filter(|s| s.phase != Phase::Ready).map(|_| id))
            .collect();
        for id in handshaking {
            self.kill(id, KillReason::Departed);
        }
    }

    /// Clean stop: every input was drained and every output written.
    pub fn stop_complete(&self) -> bool {
        self.sessions
            .iter()
            .flatten()
            .all(|s| s.input_done && s.out.is_empty())
    }

    /// Clean stop finished (or its deadline passed): close everybody without membership traffic.
    pub fn close_all(&mut self) {
        for id in 0..self.sessions.len() {
            if let Some(mut s) = self.sessions[id].take() {
                self.queued_bytes -= s.out.pending_len();
                let last_words = s.out.take_pending();
                self.actions.push_back(Action::Close { id, last_words });
            }
        }
        self.live = 0;
        self.handshaking = 0;
    }

    /// Whether `id` is an established session.
    pub fn is_ready(&self, id: SessionId) -> bool {
        self.session(id).is_some_and(|s| s.phase == Phase::Ready)
    }

    /// `#name#daemon` of an established session.
    pub fn private_group(&self, id: SessionId) -> Option<&[u8]> {
        self.session(id)
            .filter(|s| s.phase == Phase::Ready)
            .map(|s| s.private_group.as_slice())
    }

    pub fn stats(&self) -> Stats {
        let mut st = self.stats.clone();
        st.sessions = self.live;
        st.handshaking = self.handshaking;
        st.groups = self.groups.len();
        st.queued_bytes = self.queued_bytes;
        st.queued_messages = self
            .sessions
            .iter()
            .flatten()
            .map(|s| s.out.messages())
            .sum();
        st
    }

    /// Members of `group` (sorted private group names), for tests and diagnostics.
    pub fn group_members(&self, group: &[u8]) -> Vec<Vec<u8>> {
        self.groups
            .get(group)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    // ---- internals ----

    fn mark_dirty(&mut self, id: SessionId) {
        if let Some(s) = self.sessions[id].as_mut()
            && !s.dirty
        {
            s.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Close a session still in the handshake, after `reject` (if any) and anything queued.
    fn reject(&mut self, id: SessionId, reject: Option<u8>) {
        let Some(mut s) = self.sessions[id].take() else {
            return;
        };
        self.free.push(id);
        self.live -= 1;
        if s.phase != Phase::Ready {
            self.handshaking -= 1;
        }
        if !s.private_name.is_empty() {
            self.names.remove(&s.private_name);
        }
        self.queued_bytes -= s.out.pending_len();
        let mut last_words = s.out.take_pending();
        if let Some(b) = reject {
            self.stats.rejected_connects += 1;
            last_words.push(b);
        }
        self.actions.push_back(Action::Close { id, last_words });
    }

    /// Remove a session: leave its groups (notifying the others), free its name, close its socket.
    fn kill(&mut self, id: SessionId, reason: KillReason) {
        let Some(s) = self.session(id) else { return };
        if s.phase != Phase::Ready {
            self.reject(id, None);
            return;
        }
        let who = String::from_utf8_lossy(&s.private_group).into_owned();
        let peer = s.peer;
        match &reason {
            KillReason::Departed => {}
            KillReason::Protocol(why) => {
                self.stats.kills_protocol += 1;
                self.log(format!(
                    "killed session {who} ({peer:?}): protocol violation: {why}"
                ));
            }
            KillReason::Memory { queued_bytes } => {
                self.stats.kills_slow += 1;
                self.log(format!(
                    "killed session {who} ({peer:?}): slow consumer, {queued_bytes} bytes queued while all queues \
                     together exceeded the {}-byte budget",
                    self.settings.max_queued_bytes
                ));
            }
            KillReason::Slow { queued } => {
                self.stats.kills_slow += 1;
                self.log(format!(
                    "killed session {who} ({peer:?}): slow consumer, {queued} messages queued (MaxSessionMessages {})",
                    self.settings.max_session_messages
                ));
            }
        }
        let mut s = self.sessions[id].take().expect("checked above");
        self.free.push(id);
        self.live -= 1;
        self.names.remove(&s.private_name);
        self.queued_bytes -= s.out.pending_len();
        s.out.clear();
        self.actions.push_back(Action::Close {
            id,
            last_words: Vec::new(),
        });
        // Disconnect notifications, group by group in name order (§7.5).
        for group in std::mem::take(&mut s.groups) {
            self.membership_bytes -= membership_cost(&group, &s.private_group);
            if self.groups.leave(&group, &s.private_group) == Change::Changed {
                self.send_membership(&group, CAUSED_BY_DISCONNECT, &s.private_group);
            }
        }
    }

    fn process_doomed(&mut self) {
        while !self.doomed.is_empty() {
            let batch = std::mem::take(&mut self.doomed);
            for (id, reason) in batch {
                self.kill(id, reason);
            }
        }
    }

    /// Queue one message for `id` (skipped if it is being killed). A queue past the high-water
    /// mark is reported through `take_pressured` so that the event loop writes it at once; the
    /// MaxSessionMessages verdict is left to the `wrote` after that write attempt (a "blocked" flag
    /// from an earlier attempt says nothing about a reader that has emptied its socket since).
    /// Backstop for a core driven without prompt flushes: a blocked session past twice the limit
    /// (at least limit + 1024) is killed here, so memory stays bounded whatever the caller does.
    fn enqueue(&mut self, id: SessionId, parts: &[&[u8]]) {
        let max = self.settings.max_session_messages;
        let high = self.high_water();
        let Some(s) = self.sessions[id].as_mut() else {
            return;
        };
        if s.doomed {
            return;
        }
        s.out.push_message(parts);
        self.queued_bytes += parts.iter().map(|p| p.len()).sum::<usize>();
        let queued = s.out.messages();
        if queued > high && !s.pressured {
            s.pressured = true;
            self.pressured.push(id);
        }
        if s.blocked && queued > max.saturating_mul(2).max(max.saturating_add(1024)) {
            s.doomed = true;
            self.doomed.push((id, KillReason::Slow { queued }));
        }
        self.mark_dirty(id);
        if self.queued_bytes > self.settings.max_queued_bytes {
            self.shed_memory();
        }
    }

    /// Over the memory budget: doom the blocked session with the longest queue (those that keep
    /// up drain at the end of this turn anyway).
    fn shed_memory(&mut self) {
        let victim = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(id, s)| {
                s.as_ref()
                    .filter(|s| s.blocked && !s.doomed)
                    .map(|s| (s.out.pending_len(), id))
            })
            .max();
        if let Some((queued_bytes, id)) = victim {
            let s = self.sessions[id].as_mut().expect("found above");
            s.doomed = true;
            self.doomed.push((id, KillReason::Memory { queued_bytes }));
        }
    }

    /// REG_MEMB with `cause` about `group` (which still has members) to its membership sessions.
    fn send_membership(&mut self, group: &[u8], cause: u32, changed: &[u8]) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let gid = GroupId([self.vid, self.ring_time, g.counter]);
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        encode_membership(cause, group, &g.member_names(), gid, changed, &mut buf);
        let receivers: Vec<SessionId> = g.members.values().copied().collect();
        for id in receivers {
            if self.sessions[id].as_ref().is_some_and(|s| s.membership) {
                self.enqueue(id, &[&buf]);
            }
        }
        self.scratch = buf;
    }

    /// Frame and handle every whole request buffered for `id`.
    fn process_frames(&mut self, id: SessionId) {
        let Some(s) = self.sessions[id].as_mut() else {
            return;
        };
        let mut inbuf = std::mem::take(&mut s.inbuf);
        let mut pos = 0;
        let mut alive = true;
        while inbuf.len() - pos >= HEADER_LEN {
            let hbytes: &[u8; HEADER_LEN] =
                inbuf[pos..pos + HEADER_LEN].try_into().expect("48 bytes");
            let header = Header::decode(hbytes);
            let private_group = &self.sessions[id].as_ref().expect("alive").private_group;
            // Judged on the header alone, as Spread does: a bad header never waits for its body.
            if let Err(v) = validate(&header, private_group) {
                self.kill(id, KillReason::Protocol(v.to_string()));
                alive = false;
                break;
            }
            let total = HEADER_LEN + 32 * header.num_groups as usize + header.data_len as usize;
            if inbuf.len() - pos < total {
                break;
            }
            self.stats.messages_in += 1;
            let rest = &inbuf[pos + HEADER_LEN..pos + total];
            pos += total;
            if !self.handle_request(id, &header, rest) {
                alive = false;
                break;
            }
        }
        if alive && let Some(s) = self.sessions[id].as_mut() {
            inbuf.drain(..pos);
            s.inbuf = inbuf;
        }
    }

    /// One validated request. Returns false if the session is gone.
    fn handle_request(&mut self, id: SessionId, header: &Header, rest: &[u8]) -> bool {
        let t = header.service_type;
        // A name field without NUL counts as its first 31 bytes (the longest name that fits a field
        // with its NUL), so a group is called the same in requests and in membership messages.
        let first_name = if header.num_groups > 0 {
            field_name(&rest[..MAX_GROUP_NAME - 1])
        } else {
            &[][..]
        };
        if t & KILL_MESS != 0 {
            self.kill(id, KillReason::Departed);
            return false;
        }
        if t & JOIN_MESS != 0 {
            if header.num_groups > 0 {
                self.join(id, first_name, header);
            }
        } else if t & LEAVE_MESS != 0 {
            if header.num_groups > 0 {
                self.leave(id, first_name);
            }
        } else {
            self.deliver(id, header, rest);
        }
        self.process_doomed();
        self.sessions[id].is_some()
    }

    fn join(&mut self, id: SessionId, group: &[u8], request: &Header) {
        let s = self.sessions[id].as_ref().expect("alive");
        let pg = s.private_group.clone();
        if !s.groups.contains(group)
            && let Some(why) = self.join_refusal(s.groups.len(), group, &pg)
        {
            // Bounded memory without killing the session: Spread's answer to a join it cannot
            // take is a reject message (PROTOCOL §6.5).
            self.stats.rejected_joins += 1;
            self.log(format!(
                "join of group {:?} by {} rejected: {why}",
                String::from_utf8_lossy(group),
                String::from_utf8_lossy(&pg)
            ));
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            encode_reject_group_request(request.service_type, &pg, group, request.hint, &mut buf);
            self.enqueue(id, &[&buf]);
            self.scratch = buf;
            return;
        }
        let s = self.sessions[id].as_mut().expect("alive");
        if self.groups.join(group, &pg, id) == Change::Changed {
            s.groups.insert(group.to_vec());
            self.membership_bytes += membership_cost(group, &pg);
            self.send_membership(group, CAUSED_BY_JOIN, &pg);
        }
    }

    /// Why a session holding `held` groups may not join `group`, if it may not.
    fn join_refusal(&self, held: usize, group: &[u8], pg: &[u8]) -> Option<String> {
        let st = &self.settings;
        if held >= st.max_groups_per_session {
            return Some(format!("{held} groups per session at most"));
        }
        if self.groups.get(group).is_none() && self.groups.len() >= st.max_groups {
            return Some(format!("{} groups in the daemon at most", st.max_groups));
        }
        let cost = membership_cost(group, pg);
        if self.queued_bytes + self.membership_bytes + cost > st.max_queued_bytes {
            return Some(format!(
                "memory budget of {} bytes (--max-queued-mb) reached",
                st.max_queued_bytes
            ));
        }
        None
    }

    fn leave(&mut self, id: SessionId, group: &[u8]) {
        let s = self.sessions[id].as_mut().expect("alive");
        if !s.groups.remove(group) {
            return;
        }
        let pg = s.private_group.clone();
        self.membership_bytes -= membership_cost(group, &pg);
        if s.membership {
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            encode_self_leave(group, &mut buf);
            self.enqueue(id, &[&buf]);
            self.scratch = buf;
        }
        if self.groups.leave(group, &pg) == Change::Changed {
            self.send_membership(group, CAUSED_BY_LEAVE, &pg);
        }
    }

    /// A data message: one copy to every session named directly or through a group (§8).
    fn deliver(&mut self, sender: SessionId, header: &Header, rest: &[u8]) {
        let mut out_header = *header;
        out_header.foreign_endian = false;
        out_header.name.0[MAX_GROUP_NAME - 1] = 0;
        let mut hbytes = [0u8; HEADER_LEN];
        out_header.encode(&mut hbytes);

        self.epoch += 1;
        let epoch = self.epoch;
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        if header.service_type & SELF_DISCARD != 0 {
            self.mark[sender] = epoch;
        }
        for i in 0..header.num_groups as usize {
            let name = field_name(&rest[i * MAX_GROUP_NAME..(i + 1) * MAX_GROUP_NAME - 1]);
            if name.first() == Some(&b'#') {
                if let Some((private, daemon)) = parse_private_group(name)
                    && daemon == self.settings.daemon_name.as_slice()
                    && let Some(&target) = self.names.get(private)
                    && self.sessions[target]
                        .as_ref()
                        .is_some_and(|s| s.phase == Phase::Ready)
                    && self.mark[target] != epoch
                {
                    self.mark[target] = epoch;
                    targets.push(target);
                }
            } else if let Some(g) = self.groups.get(name) {
                for &target in g.members.values() {
                    if self.mark[target] != epoch {
                        self.mark[target] = epoch;
                        targets.push(target);
                    }
                }
            }
        }
        self.stats.deliveries += targets.len() as u64;
        for &target in &targets {
            self.enqueue(target, &[&hbytes, rest]);
        }
        self.targets = targets;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: invented names only need to differ, not to be unpredictable.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
