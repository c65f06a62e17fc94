//! The sender side of acknowledged delivery, shared by the Apache module and `spread-pipe`
//! (CONTRACTS "Acknowledged delivery"): one [`Link`] per connection slot holds the stream, its
//! numbers per group, the acknowledgement window and the announcement schedule, and does the
//! protocol's I/O on a [`Mailbox`] the caller owns (connecting, locking and timeouts stay with
//! the caller, who knows its own rules: a request thread never waits, spread-pipe may).
//!
//! The decisions are pure and tested without sockets: numbering and tags (`crate::stream`), what
//! to hold, release and resend (`crate::window`), when to announce (`crate::announce`). What is
//! here is the glue: a line goes out with its tag and into the window; acks come in and release;
//! resends go to each collector's private group; what is left is spilled with its stream and
//! number.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::announce::Announcer;
use crate::control::{self, Record};
use crate::seq::{SeqCounter, mess_type_for};
use crate::spool::Origin;
use crate::stream::{self, StreamId};
use crate::window::{Window, WindowConfig};
use crate::{ConnectOptions, Error, Mailbox, Message, MulticastTemplate, Result};

/// FNV-1a 64 for the per-group table: group names are short, and SipHash's DoS resistance buys
/// nothing for names the admin configured or the host check produced, while costing hundreds of
/// instructions per line.
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

/// Per group: the stream's line counter, the message header for the current connection (built
/// on its first line), and the group's key in the window.
#[derive(Default)]
struct GroupState {
    counter: SeqCounter,
    template: Option<MulticastTemplate>,
    key: Option<u32>,
    /// The tag group's name field, its stream prefix written once; per line only the number.
    tag: Option<stream::TagBuf>,
    /// The number the tag holds (0: none yet).
    tag_n: u64,
}

/// A window is treated as full this close to its bound, without measuring the line: the
/// longest line fits in what is left, so the request path sums no lengths before sending.
const ROOM_SLACK: usize = stream::MAX_LINE;

/// Why [`Link::send`] did not hand a line over.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("acknowledgement window full: no collector acknowledged recent lines")]
    WindowFull,
    #[error(transparent)]
    Spread(#[from] Error),
}

/// What an I/O step saw, for the caller's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Lines acknowledged (released from the window).
    pub acked: u64,
    /// Line copies resent.
    pub resent: u64,
    /// Announcement messages sent.
    pub announced: u64,
}

/// One connection slot's stream: numbered 1, 2, … per group for the life of the process, across
/// reconnects under any private name (collectors acknowledge to the name a line last came from).
pub struct Link {
    stream: StreamId,
    /// Per group, in the order first used; `index` finds one by name, `last` is the group of
    /// the previous line (usually the next one's too: a compare instead of a hash).
    groups: Vec<(Box<str>, GroupState)>,
    index: HashMap<Box<str>, usize, BuildHasherDefault<Fnv64>>,
    last: usize,
    window: Option<Window>,
    announcer: Announcer,
    /// Lines taken back from the spool (they count as activity for the announcer).
    reheld: u64,
    last_announce: Option<Instant>,
    /// Lines are queued in the mailbox's outgoing buffer, written by the caller's
    /// [`Mailbox::flush`] (several messages per write), instead of one sendmsg each.
    batching: bool,
    /// Batching, consecutive lines of one group also share one message
    /// ([`control::BATCH_MESS_TYPE`]; collectors of this release only).
    batch_messages: bool,
    /// The batched message that the next line of its group may join.
    open: Option<OpenBatch>,
}

/// How one line goes out: its group's place in the link and its number, and the batching
/// state it may join.
struct LineOut<'a> {
    batching: bool,
    batch_messages: bool,
    open: &'a mut Option<OpenBatch>,
    group: usize,
    number: u64,
}

/// A queued batched message still taking lines.
#[derive(Debug, Clone, Copy)]
struct OpenBatch {
    group: usize,
    msg: crate::mailbox::OpenMessage,
    /// The number the next line must have to join it.
    next: u64,
}

/// While lines are held, announce at least this often.
pub const HELD_ANNOUNCE: Duration = Duration::from_secs(10);

/// Lines resent per [`Link::resend_some`] call, so a caller can let others use the connection
/// in between.
pub const RESEND_CHUNK: usize = 64;

impl Link {
    /// A fresh stream; with `window` (acknowledgements on) every line is held until acknowledged.
    pub fn new(window: Option<WindowConfig>) -> Link {
        Link {
            stream: StreamId::random(),
            groups: Vec::new(),
            index: HashMap::default(),
            last: 0,
            window: window.map(Window::new),
            announcer: Announcer::new(),
            reheld: 0,
            last_announce: None,
            batching: false,
            batch_messages: false,
            open: None,
        }
    }

    /// Batching, put consecutive lines of a group into one message (see
    /// [`control::BATCH_MESS_TYPE`]); only for collectors of this release.
    pub fn set_batch_messages(&mut self, on: bool) {
        self.batch_messages = on;
    }

    /// [`Link::new`] with a window whose bytes live in `storage` (shared memory a parent reads
    /// if this process dies).
    pub fn with_storage(window: WindowConfig, storage: crate::ring::Storage) -> Link {
        let mut link = Link::new(None);
        link.window = Some(Window::with_storage(window, storage));
        link
    }

    /// Queue lines instead of writing each (see [`Link::send`]); the caller flushes.
    pub fn set_batching(&mut self, on: bool) {
        self.batching = on;
    }

    /// [`Link::put`], or with batched messages: the line joins the open message of its group
    /// when it is the next number there, else opens a new one.
    fn put_line<'p, P>(
        line: LineOut<'_>,
        mb: &mut Mailbox,
        template: &mut crate::mailbox::MulticastTemplate,
        mess_type: i16,
        parts: P,
    ) -> Result<usize>
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        let LineOut {
            batching,
            batch_messages,
            open,
            group,
            number,
        } = line;
        if !(batching && batch_messages) {
            return Self::put(batching, mb, template, mess_type, parts);
        }
        let len: usize = parts.clone().into_iter().map(<[u8]>::len).sum();
        let head = control::batch_entry_len(len);
        if let Some(o) = open.as_mut()
            && o.group == group
            && o.next == number
            && mb.extend_open(&mut o.msg, &head, parts.clone())
        {
            o.next += 1;
            return Ok(len);
        }
        let msg = mb.queue_open(template, control::BATCH_MESS_TYPE, &head, parts)?;
        *open = Some(OpenBatch {
            group,
            msg,
            next: number + 1,
        });
        Ok(len)
    }

    fn put<'p, P>(
        batching: bool,
        mb: &mut Mailbox,
        template: &mut crate::mailbox::MulticastTemplate,
        mess_type: i16,
        parts: P,
    ) -> Result<usize>
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        if batching {
            mb.queue_parts(template, mess_type, parts)
        } else {
            mb.multicast_parts(template, mess_type, parts)
        }
    }

    pub fn stream(&self) -> StreamId {
        self.stream
    }

    pub fn window(&self) -> Option<&Window> {
        self.window.as_ref()
    }

    /// The group of the last line handed over (its place among this link's groups, which never
    /// changes, and its name) and how many lines that group has numbered: what a crash journal
    /// publishes without a window, so that a dead sender's numbers can still be announced.
    #[inline]
    pub fn last_numbered(&self) -> Option<(usize, &str, u64)> {
        self.groups
            .get(self.last)
            .map(|(name, g)| (self.last, &**name, g.counter.issued()))
    }

    /// Lines numbered so far, all groups.
    pub fn numbered_total(&self) -> u64 {
        self.groups.iter().map(|(_, g)| g.counter.issued()).sum()
    }

    /// Whether a broken connection must come back for this link: lines numbered (to announce)
    /// or held (to resend).
    pub fn has_state(&self) -> bool {
        self.numbered_total() > 0 || self.window.as_ref().is_some_and(|w| !w.is_empty())
    }

    /// A new connection: headers are per connection, and the streams' numbers are announced at
    /// once (lines in flight on the old session may be lost; the collectors' answers start the
    /// resending).
    pub fn connected(&mut self, now: Instant) {
        for (_, g) in &mut self.groups {
            g.template = None;
        }
        self.announcer.reconnected(now);
    }

    /// Hand over one line, `parts` concatenated, to `group` with its tag: one sendmsg straight
    /// from the parts, then (acknowledgements on) a copy into the window. Batching, the message
    /// is queued in the mailbox instead, for the caller's next flush; a line lost with a queue
    /// that could not be written is in the window like any other unacknowledged line. Returns
    /// the line's length. A line that does not
    /// fit the window is refused before anything is sent; so is one too long for a message
    /// (`MessageTooLong`, the connection stays usable). A number is used only by a line that
    /// was handed over.
    pub fn send<'p, P>(
        &mut self,
        mb: &mut Mailbox,
        service: u32,
        group: &str,
        parts: P,
    ) -> std::result::Result<usize, SendError>
    where
        P: IntoIterator<Item = &'p [u8]> + Clone,
    {
        // Room to stage the line: the longest line, or (close to the bound) this one measured.
        let mut headroom = ROOM_SLACK;
        if let Some(w) = &self.window
            && !w.has_room(ROOM_SLACK)
        {
            headroom = parts.clone().into_iter().map(<[u8]>::len).sum();
            if !w.has_room(headroom) {
                return Err(SendError::WindowFull);
            }
        }
        // The group of the previous line again (the usual case) costs a compare; another one
        // a table lookup; a new group allocates its name once.
        if self
            .groups
            .get(self.last)
            .is_none_or(|(name, _)| **name != *group)
        {
            self.last = match self.index.get(group) {
                Some(&i) => i,
                None => {
                    self.groups.push((group.into(), GroupState::default()));
                    self.index.insert(group.into(), self.groups.len() - 1);
                    self.groups.len() - 1
                }
            };
        }
        let state = &mut self.groups[self.last].1;
        let template = match &mut state.template {
            Some(t) => t,
            None => state
                .template
                .insert(mb.multicast_template(service, group)?),
        };
        let number = state.counter.issued() + 1;
        let stream_id = self.stream;
        let tag = state.tag.get_or_insert_with(|| {
            let mut t = stream::TagBuf::default();
            stream::tag_prefix(stream_id, &mut t);
            t
        });
        if state.tag_n + 1 == number && state.tag_n > 0 {
            stream::tag_increment(tag, state.tag_n);
        } else {
            stream::tag_number(tag, number);
        }
        state.tag_n = number;
        template.set_tag_field(tag);
        let mess_type = mess_type_for(state.counter.peek());
        let batching = self.batching;
        let line = LineOut {
            batching,
            batch_messages: self.batch_messages,
            open: &mut self.open,
            group: self.last,
            number,
        };
        let Some(w) = &mut self.window else {
            let len = Self::put_line(line, mb, template, mess_type, parts)?;
            state.counter.advance();
            return Ok(len);
        };
        // With a window the line is copied once, into the window, and sent from there (two
        // slices at most, rather than every piece again); it is held once it was sent.
        let Some(len) = w.stage(parts.clone(), headroom) else {
            let len: usize = parts.clone().into_iter().map(<[u8]>::len).sum();
            if len <= stream::MAX_LINE {
                // Fixed (shared) storage without room for it: like a full window.
                return Err(SendError::WindowFull);
            }
            // Longer than any message: refused as such (nothing sent, the connection kept; the
            // caller cuts it).
            let len = Self::put(batching, mb, template, mess_type, parts)?;
            state.counter.advance();
            return Ok(len);
        };
        Self::put_line(line, mb, template, mess_type, w.staged(len))?;
        state.counter.advance();
        let key = match state.key {
            Some(k) => Some(k),
            None => w.key(self.stream, group.as_bytes()),
        };
        state.key = key;
        // The line is dated at the next upkeep (no clock here).
        if let Some(k) = key {
            w.hold_staged(k, number, len);
        }
        Ok(len)
    }

    /// Read what arrived for this connection (acks) without waiting; first date the lines
    /// pushed since the last upkeep.
    pub fn read_acks(&mut self, mb: &mut Mailbox, now: Instant) -> Result<Progress> {
        let mut p = Progress::default();
        if let Some(w) = &mut self.window {
            w.stamp(now);
        }
        let window = &mut self.window;
        mb.receive_batch(false, |m| {
            if !m.is_regular() {
                return;
            }
            let (Some(records), Some(w)) = (
                control::decode(m.header.mess_type().0, m.body),
                window.as_mut(),
            ) else {
                return;
            };
            let from = String::from_utf8_lossy(m.sender());
            let mut id = None;
            for r in records {
                match r {
                    Ok(Record::Collector { id: i }) => id = Some(i),
                    Ok(Record::Ack {
                        stream,
                        group,
                        from: first,
                        to: last,
                    }) => {
                        let o = w.on_ack(&from, id, stream, group, first, last, now);
                        p.acked += o.released as u64;
                    }
                    _ => {}
                }
            }
        })?;
        Ok(p)
    }

    /// Announce the numbers when the schedule says so (after a reconnect, while idle), and
    /// every [`HELD_ANNOUNCE`] while lines are held: a collector that comes back after the idle
    /// schedule ended (or never knew this stream) answers, and the lines are resent to it.
    pub fn announce_if_due(&mut self, mb: &mut Mailbox, service: u32, now: Instant) -> Result<u64> {
        let activity = self.numbered_total() + self.reheld;
        let scheduled = self.announcer.tick(now, activity);
        let held = self.window.as_ref().is_some_and(|w| !w.is_empty());
        let keepalive = held
            && self
                .last_announce
                .is_none_or(|t| now.duration_since(t) >= HELD_ANNOUNCE);
        if !scheduled && !keepalive {
            return Ok(0);
        }
        let n = self.announce(mb, service)?;
        if scheduled {
            self.announcer.announced(now);
        }
        self.last_announce = Some(now);
        Ok(n)
    }

    /// Announce the numbers of this stream on every group, and of every other stream held (lines
    /// taken back from the spool): acknowledging collectors answer with what they have, which
    /// also introduces them. Returns the messages sent.
    pub fn announce(&self, mb: &mut Mailbox, service: u32) -> Result<u64> {
        let own = self
            .groups
            .iter()
            .filter(|(_, g)| g.counter.issued() > 0)
            .map(|(g, s)| Record::Stream {
                stream: self.stream,
                group: g.as_bytes(),
                last: s.counter.issued(),
            });
        let held = self
            .window
            .as_ref()
            .map(Window::held_keys)
            .unwrap_or_default();
        let others =
            held.into_iter()
                .filter(|(s, _, _)| *s != self.stream)
                .map(|(stream, group, last)| Record::Stream {
                    stream,
                    group,
                    last,
                });
        Ok(control::send(mb, service, own.chain(others))? as u64)
    }

    /// Whether a resend pass is due or under way (`Window::resend_due`).
    pub fn resend_due(&mut self, now: Instant) -> bool {
        self.window.as_mut().is_some_and(|w| w.resend_due(now))
    }

    /// Resend up to [`RESEND_CHUNK`] unacknowledged lines, each to every collector known, to its
    /// private group only: no other member of the log group ever sees a line twice. Returns the
    /// copies sent and whether the pass goes on.
    pub fn resend_some(
        &mut self,
        mb: &mut Mailbox,
        service: u32,
        now: Instant,
    ) -> Result<(u64, bool)> {
        let Some(w) = self.window.as_mut() else {
            return Ok((0, false));
        };
        let service = control::service_for(service);
        let mut body = Vec::new();
        let mut sent = 0;
        w.resend_some(RESEND_CHUNK, now, |to, r| {
            body.clear();
            if !control::encode_resend(r, &mut body) {
                return Ok(());
            }
            mb.multicast(service, &[to], control::RESEND_MESS_TYPE, &body)?;
            sent += 1;
            Ok::<(), Error>(())
        })?;
        Ok((sent, w.resend_pending()))
    }

    /// Take a line sent before (read back from the spool, its stream and number kept) into the
    /// window, to be resent to the collectors that lack it; announced at the next upkeep. False
    /// when the window is full or acknowledgements are off.
    pub fn rehold(&mut self, group: &str, origin: Origin, line: &[u8], now: Instant) -> bool {
        let Some(w) = self.window.as_mut() else {
            return false;
        };
        if !w.inject(origin.stream, group.as_bytes(), origin.number, line, now) {
            return false;
        }
        self.reheld += 1;
        self.announcer.reconnected(now);
        true
    }

    /// Wait up to `linger` for acks while lines are held (a process ending).
    pub fn linger(&mut self, mb: &mut Mailbox, linger: Duration) -> u64 {
        let deadline = Instant::now() + linger;
        let mut acked = 0;
        while self.window.as_ref().is_some_and(|w| !w.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !mb.poll(Some(left)).unwrap_or(false) {
                break;
            }
            match self.read_acks(mb, Instant::now()) {
                Ok(p) => acked += p.acked,
                Err(_) => break,
            }
        }
        acked
    }

    /// Take every unacknowledged line out (the process ends): `each(group, origin, line)`
    /// spools it with its stream and number.
    pub fn spill(&mut self, mut each: impl FnMut(&str, Origin, &[u8])) {
        if let Some(w) = &mut self.window {
            w.drain(|stream, group, number, line| {
                each(
                    &String::from_utf8_lossy(group),
                    Origin { stream, number },
                    line,
                )
            });
        }
    }
}

/// A short-lived connection named `name`, connect and sends bounded by `timeout`.
fn connect_briefly(
    endpoint: &crate::spread_name::Endpoint,
    name: String,
    group_membership: bool,
    timeout: Duration,
) -> Result<Mailbox> {
    let opts = ConnectOptions {
        private_name: name,
        priority: false,
        group_membership,
        connect_timeout: Some(timeout),
        send_timeout: Some(timeout),
    };
    Mailbox::connect_endpoint(endpoint, &opts)
}

/// Announce the numbers of streams whose sender is gone (a child that died, announced by its
/// parent): a short-lived connection named `name` sends the records and leaves. Collectors
/// count what they lack of those numbers as missing. Returns the messages sent.
pub fn announce_for(
    endpoint: &crate::spread_name::Endpoint,
    name: String,
    service: u32,
    streams: &[(StreamId, &[u8], u64)],
    timeout: Duration,
) -> Result<usize> {
    let mut mb = connect_briefly(endpoint, name, false, timeout)?;
    let records = streams.iter().map(|&(stream, group, last)| Record::Stream {
        stream,
        group,
        last,
    });
    let sent = control::send(&mut mb, service, records)?;
    mb.disconnect()?;
    Ok(sent)
}

/// Does `group` have a member other than the asker? A short-lived connection named `name`
/// with membership messages joins, reads the member list (waiting up to 2 s) and leaves. Used
/// before replaying unnumbered spooled lines: Spread drops what reaches a group with no member.
pub fn probe_has_member(
    endpoint: &crate::spread_name::Endpoint,
    name: String,
    group: &str,
    timeout: Duration,
) -> Result<bool> {
    let mut mb = connect_briefly(endpoint, name, true, timeout)?;
    let me = mb.private_group().to_owned();
    mb.join(group)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut answer = false;
    while Instant::now() < deadline {
        if !mb.poll(Some(deadline.saturating_duration_since(Instant::now())))? {
            break;
        }
        if let Message::Membership(m) = mb.receive()?
            && m.group == group
        {
            answer = m.members.iter().any(|member| *member != me);
            break;
        }
    }
    let _ = mb.leave(group);
    let _ = mb.disconnect();
    Ok(answer)
}
