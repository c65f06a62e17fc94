//! The per-message decisions of the collector, without I/O: is a received message a log line to
//! route, or bookkeeping (a control record, the previous release's hand-over)? What does it mean
//! for the gap table? The receive loop (`collector`) feeds every regular message through
//! [`Intake::accept`], logs the [`Note`]s and routes the groups it is handed.
//!
//! Control messages (`spread_sys::control`) are recognised by their `mess_type` wherever they
//! arrive and are never written to a log file. Their records speak of a log group in their text;
//! only groups this collector logs are accounted for.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use spread_sys::control::{self, Record, Skipped};
use spread_sys::seq;
use spread_sys::stream::{self, StreamId};

use crate::delivered::{Delivered, Seen};
use crate::gaps::{GapTable, Verdict};

/// How a gap was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// A numbered line arrived with a number further on than expected.
    Line,
    /// The sender announced its next number on the control channel.
    Announced,
    /// A sender that continues `old`'s sequence under a new name said where `old` stopped
    /// (the `sender` of the note is `old`).
    HandedOver { new: &'a [u8] },
}

/// Something worth telling the operator, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note<'a> {
    Gap {
        sender: &'a [u8],
        group: &'a [u8],
        lost: u64,
        found: Found<'a>,
    },
    UnknownGap {
        sender: &'a [u8],
        group: &'a [u8],
        found: Found<'a>,
    },
    Repeat {
        sender: &'a [u8],
        group: &'a [u8],
    },
    /// A hand-over that lost nothing.
    Continued {
        old: &'a [u8],
        new: &'a [u8],
        group: &'a [u8],
    },
    /// A control record of our version that is not well formed (the rest of its message counts).
    BadControl {
        sender: &'a [u8],
    },
    /// The first repeat of a stream's line on a group (a resend of a line written already):
    /// dropped; said once per stream and group.
    StreamRepeat {
        stream: StreamId,
        group: &'a [u8],
    },
    /// A stream announced more lines than this collector has written: it waits for them to be
    /// resent.
    Resync {
        stream: StreamId,
        group: &'a [u8],
        missing: u64,
    },
}

impl std::fmt::Display for Note<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let how = |found: &Found<'_>| match found {
            Found::Line => String::new(),
            Found::Announced => " (announced by the sender)".to_owned(),
            Found::HandedOver { new } => format!(" (the sender continues as {})", s(new)),
        };
        match self {
            Note::Gap {
                sender,
                group,
                lost,
                found,
            } => write!(
                f,
                "sequence gap: {lost} line(s) from {} to group {} lost{}",
                s(sender),
                s(group),
                how(found)
            ),
            Note::UnknownGap {
                sender,
                group,
                found,
            } => write!(
                f,
                "sequence gap of unknown size: lines from {} to group {} were sent before any \
                 reached this collector{}",
                s(sender),
                s(group),
                how(found)
            ),
            Note::Repeat { sender, group } => write!(
                f,
                "repeated sequence number from {} to group {} (at-least-once replay?)",
                s(sender),
                s(group)
            ),
            Note::Continued { old, new, group } => write!(
                f,
                "{} continues {}'s sequence to group {}",
                s(new),
                s(old),
                s(group)
            ),
            Note::BadControl { sender } => {
                write!(f, "malformed control record from {} ignored", s(sender))
            }
            Note::StreamRepeat { stream, group } => write!(
                f,
                "stream {stream} to group {}: a line written already arrived again (a resend); \
                 dropped, and so are further repeats of this stream",
                s(group)
            ),
            Note::Resync {
                stream,
                group,
                missing,
            } => write!(
                f,
                "stream {stream} to group {}: {missing} line(s) not written here yet; waiting for \
                 the sender to resend them",
                s(group)
            ),
        }
    }
}

/// One received regular message, as the intake needs it.
pub struct Received<'m, G> {
    /// Which Spread connection it came through (acks go back through it).
    pub conn: usize,
    pub sender: &'m [u8],
    pub mess_type: i16,
    pub body: &'m [u8],
    /// The groups it was sent to.
    pub groups: G,
}

/// Counts of control traffic (the gap counts live in [`GapTable`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct ControlCounters {
    /// Control messages received (any group).
    pub messages: u64,
    /// Records skipped as unknown (a newer version or verb) or malformed.
    pub skipped: u64,
}

/// Counts of streamed lines (the written state lives in [`Delivered`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamCounters {
    /// Lines of a stream written already that arrived again (dropped).
    pub repeats: u64,
    /// Lines that arrived resent to this collector (written or repeats).
    pub resent: u64,
    /// Lines refused unwritten while a log file cannot be written (full disk): never
    /// acknowledged, their senders resend them.
    pub held_back: u64,
    /// Lines that came in pieces (spread-pipe cut them) and were written whole.
    pub reassembled: u64,
    /// Messages that carried several lines (`BATCH_MESS_TYPE`).
    pub batched: u64,
}

/// An acknowledgement to send after the next commit: the stream's written ranges on `group`,
/// to `sender` through connection `conn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckDue {
    pub conn: usize,
    pub sender: Box<str>,
    pub stream: StreamId,
    pub group: Box<[u8]>,
}

#[derive(Default)]
pub struct Intake {
    pub gaps: GapTable,
    pub control: ControlCounters,
    pub delivered: Delivered,
    pub streams: StreamCounters,
    /// Acks owed, sent (and cleared) by the receive loop once the batch is committed.
    pub acks: Vec<AckDue>,
    /// Pieces of split lines (a streamed message without a final newline continues in the
    /// stream's next number: spread-pipe cuts lines longer than a message so), per stream and
    /// group, by number, until the line is whole. Neither journaled nor acknowledged meanwhile:
    /// their sender still holds them.
    pieces: Pieces,
    pieces_bytes: usize,
}

/// A line to route: its group, its body (borrowed from the message, or a reassembled line), and
/// whether it is one entry.
pub type Routed<'m> = (&'m [u8], Cow<'m, [u8]>, bool);

/// Pieces held per stream and group, by number.
type Pieces = HashMap<(StreamId, Box<[u8]>), BTreeMap<u64, Vec<u8>>>;

/// Bytes of pieces held at most; past it the oldest split line is written as it stands (cut,
/// not lost).
pub const MAX_PIECES_BYTES: usize = 64 << 20;

/// What the receive loop can do with a streamed line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepting {
    /// Route it.
    Yes,
    /// A log file cannot be written: leave it unacknowledged (the sender resends it).
    HoldBack,
}

impl Intake {
    pub fn new(gaps: GapTable, delivered: Delivered) -> Intake {
        Intake {
            gaps,
            delivered,
            ..Intake::default()
        }
    }

    fn owe_ack(&mut self, conn: usize, sender: &[u8], stream: StreamId, group: &[u8]) {
        let due = AckDue {
            conn,
            sender: String::from_utf8_lossy(sender).into(),
            stream,
            group: group.into(),
        };
        if !self.acks.contains(&due) {
            self.acks.push(due);
        }
    }

    /// A line of a stream: new (route it) or a repeat (ack it again, drop it).
    #[allow(clippy::too_many_arguments)]
    fn streamed<'m>(
        &mut self,
        conn: usize,
        sender: &'m [u8],
        (stream, n): (StreamId, u64),
        group: &'m [u8],
        body: &'m [u8],
        accepting: Accepting,
        now: u64,
        note: &mut impl FnMut(Note<'m>),
        route: &mut impl FnMut(&'m [u8], Cow<'m, [u8]>, bool),
    ) {
        if self
            .delivered
            .get(stream, group)
            .is_some_and(|k| k.written.contains(n))
        {
            // Written and committed: the sender lacks the ack, not the line.
            self.count_repeat(stream, group, note);
            self.owe_ack(conn, sender, stream, group);
            return;
        }
        if accepting == Accepting::HoldBack {
            self.streams.held_back += 1;
            return;
        }
        let key = (stream, Box::<[u8]>::from(group));
        let continues = !body.ends_with(b"\n");
        // While a split line is open (pieces held before `n`), a line with a newline may be its
        // end or a line after it: that is known only once the pieces between are here.
        let after_piece = self
            .pieces
            .get(&key)
            .is_some_and(|p| p.range(..n).next().is_some());
        if continues || after_piece {
            // A piece of a split line, or its end: held until the line is whole.
            let held = self.pieces.entry(key).or_default();
            if let std::collections::btree_map::Entry::Vacant(v) = held.entry(n) {
                self.pieces_bytes += body.len();
                v.insert(body.to_vec());
            }
            self.assemble(conn, sender, stream, group, now, route);
            return;
        }
        match self.delivered.check(stream, group, n, sender, now) {
            Seen::New => route(group, Cow::Borrowed(body), true),
            Seen::Repeat => self.count_repeat(stream, group, note),
        }
        self.owe_ack(conn, sender, stream, group);
    }

    /// Route every split line of (`stream`, `group`) whose pieces are all here: a run of
    /// numbers that starts a line (line 1, or the line before it is written) and ends with a
    /// newline — or any run once the pieces pass [`MAX_PIECES_BYTES`]. (A sender ends its last
    /// line with a newline: spread-pipe adds one at the end of its input.)
    #[allow(clippy::too_many_arguments)]
    fn assemble<'m>(
        &mut self,
        conn: usize,
        sender: &'m [u8],
        stream: StreamId,
        group: &'m [u8],
        now: u64,
        route: &mut impl FnMut(&'m [u8], Cow<'m, [u8]>, bool),
    ) {
        let key = (stream, Box::<[u8]>::from(group));
        loop {
            let Some(held) = self.pieces.get(&key) else {
                return;
            };
            let over = self.pieces_bytes > MAX_PIECES_BYTES;
            // The runs of consecutive numbers, and the first that is whole.
            let mut found = None;
            let mut run_start = None;
            let mut prev = None;
            for (&k, body) in held {
                if prev != Some(k.wrapping_sub(1)) {
                    run_start = Some(k);
                }
                prev = Some(k);
                let s = run_start.unwrap_or(k);
                let starts_line = s == 1 || self.delivered.has(stream, group, s - 1);
                let ends_line = body.ends_with(b"\n");
                if (starts_line && ends_line) || over {
                    found = Some((s, k));
                    break;
                }
            }
            let Some((s, e)) = found else {
                return;
            };
            let held = self.pieces.get_mut(&key).expect("looked up above");
            let mut line = Vec::new();
            for k in s..=e {
                if let Some(piece) = held.remove(&k) {
                    self.pieces_bytes -= piece.len();
                    line.extend_from_slice(&piece);
                }
            }
            if held.is_empty() {
                self.pieces.remove(&key);
            }
            for k in s..=e {
                self.delivered.check(stream, group, k, sender, now);
            }
            self.streams.reassembled += 1;
            route(group, Cow::Owned(line), true);
            self.owe_ack(conn, sender, stream, group);
        }
    }

    fn count_repeat<'m>(
        &mut self,
        stream: StreamId,
        group: &'m [u8],
        note: &mut impl FnMut(Note<'m>),
    ) {
        self.streams.repeats += 1;
        if self.delivered.note_repeat(stream, group) {
            note(Note::StreamRepeat { stream, group });
        }
    }

    /// Account for one regular message. `logs(group)` says whether this collector writes that
    /// group; `route(group, body, whole)` is called for each such group the message is a log
    /// line for (`whole`: the body is one entry, CONTRACTS §2); `note` hears what the operator
    /// should be told. `now` is Unix seconds. Streamed lines are taken only while `accepting`.
    pub fn accept<'m, G>(
        &mut self,
        m: Received<'m, G>,
        logs: impl Fn(&[u8]) -> bool,
        now: u64,
        accepting: Accepting,
        mut note: impl FnMut(Note<'m>),
        mut route: impl FnMut(&'m [u8], Cow<'m, [u8]>, bool),
    ) where
        G: Iterator<Item = &'m [u8]> + Clone,
    {
        if let Some(records) = control::decode(m.mess_type, m.body) {
            self.control.messages += 1;
            for r in records {
                self.record(m.conn, m.sender, r, &logs, now, &mut note);
            }
            return;
        }
        if let Some(r) = control::decode_resend(m.mess_type, m.body) {
            self.streams.resent += 1;
            if logs(r.group) {
                let id = (r.stream, r.number);
                self.streamed(
                    m.conn, m.sender, id, r.group, r.line, accepting, now, &mut note, &mut route,
                );
            }
            return;
        }
        if m.mess_type == control::RESEND_MESS_TYPE {
            self.control.skipped += 1;
            note(Note::BadControl { sender: m.sender });
            return;
        }
        // A batch of lines (opt-in senders): each entry is a line numbered from the tag's number
        // on, taken exactly as if it had come alone.
        if m.mess_type == control::BATCH_MESS_TYPE {
            let (Some((stream_id, first)), Some(entries)) = (
                m.groups.clone().find_map(stream::parse_tag),
                control::batch_entries(m.body),
            ) else {
                self.control.skipped += 1;
                note(Note::BadControl { sender: m.sender });
                return;
            };
            self.streams.batched += 1;
            for (i, entry) in entries.into_iter().enumerate() {
                let id = (stream_id, first + i as u64);
                for group in m.groups.clone().filter(|g| logs(g)) {
                    self.streamed(
                        m.conn, m.sender, id, group, entry, accepting, now, &mut note, &mut route,
                    );
                }
            }
            return;
        }
        // A streamed line names its stream and number in a tag group beside the log group.
        if let Some(id) = m.groups.clone().find_map(stream::parse_tag) {
            for group in m.groups.filter(|g| logs(g)) {
                self.streamed(
                    m.conn, m.sender, id, group, m.body, accepting, now, &mut note, &mut route,
                );
            }
            return;
        }
        if let Some((old, next)) = seq::decode_handover(m.mess_type, m.body) {
            for group in m.groups.filter(|g| logs(g)) {
                let v = self.gaps.observe_legacy_handover(old, group, next);
                note_verdict(
                    v,
                    old,
                    group,
                    Found::HandedOver { new: m.sender },
                    &mut note,
                );
            }
            return;
        }
        let whole = seq::seq_of(m.mess_type).is_some();
        for group in m.groups.filter(|g| logs(g)) {
            let v = self.gaps.observe(m.sender, group, m.mess_type, now);
            note_verdict(v, m.sender, group, Found::Line, &mut note);
            route(group, Cow::Borrowed(m.body), whole);
        }
    }

    fn record<'m>(
        &mut self,
        conn: usize,
        sender: &'m [u8],
        r: Result<Record<'m>, Skipped>,
        logs: &impl Fn(&[u8]) -> bool,
        now: u64,
        note: &mut impl FnMut(Note<'m>),
    ) {
        match r {
            Ok(Record::Next { group, next }) if logs(group) => {
                let v = self.gaps.observe_next(sender, group, next, now);
                note_verdict(v, sender, group, Found::Announced, note);
            }
            Ok(Record::Handover { old, group, next }) if logs(group) => {
                match self.gaps.observe_handover(old, group, next) {
                    Verdict::InOrder => note(Note::Continued {
                        old,
                        new: sender,
                        group,
                    }),
                    v => note_verdict(v, old, group, Found::HandedOver { new: sender }, note),
                }
            }
            Ok(Record::Stream {
                stream,
                group,
                last,
            }) if logs(group) => {
                // Answer with what is written here (possibly nothing): the sender learns this
                // collector exists and resends what it lacks.
                self.gaps.announcements += 1;
                let missing = self
                    .delivered
                    .announced(stream, group, last, sender, now)
                    .missing();

                if missing > 0 {
                    note(Note::Resync {
                        stream,
                        group,
                        missing,
                    });
                }
                self.owe_ack(conn, sender, stream, group);
            }
            Ok(_) => {}
            Err(Skipped::Unknown) => self.control.skipped += 1,
            Err(Skipped::Malformed) => {
                self.control.skipped += 1;
                note(Note::BadControl { sender });
            }
        }
    }
}

fn note_verdict<'m>(
    v: Verdict,
    sender: &'m [u8],
    group: &'m [u8],
    found: Found<'m>,
    note: &mut impl FnMut(Note<'m>),
) {
    match v {
        Verdict::Gap(lost) => note(Note::Gap {
            sender,
            group,
            lost,
            found,
        }),
        Verdict::UnknownGap => note(Note::UnknownGap {
            sender,
            group,
            found,
        }),
        // An announcement behind what arrived repeats no line.
        Verdict::Behind if found == Found::Line => note(Note::Repeat { sender, group }),
        Verdict::Behind | Verdict::InOrder | Verdict::Unnumbered => {}
    }
}

#[cfg(test)]
mod tests {
    use spread_sys::control::{CONTROL_GROUP, CONTROL_MESS_TYPE};
    use spread_sys::seq::{HANDOVER_MESS_TYPE, mess_type_for};

    use super::*;

    /// Feed one message; what was routed and what was noted (as text).
    fn feed(
        intake: &mut Intake,
        sender: &str,
        groups: &[&str],
        mess_type: i16,
        body: &[u8],
    ) -> (Vec<String>, Vec<String>) {
        let mut routed = Vec::new();
        let mut notes = Vec::new();
        let m = Received {
            conn: 0,
            sender: sender.as_bytes(),
            mess_type,
            body,
            groups: groups.iter().map(|g| g.as_bytes()),
        };
        intake.accept(
            m,
            |g| g == b"www" || g == b"err",
            1,
            Accepting::Yes,
            |n| notes.push(n.to_string()),
            |g, _, _| routed.push(String::from_utf8_lossy(g).into_owned()),
        );
        (routed, notes)
    }

    /// Lines 0..count from `sender` to www.
    fn numbered(intake: &mut Intake, sender: &str, count: u16) {
        for s in 0..count {
            feed(intake, sender, &["www"], mess_type_for(s), b"l\n");
        }
    }

    /// A control message from `sender` on the control channel.
    fn control(intake: &mut Intake, sender: &str, body: &[u8]) -> (Vec<String>, Vec<String>) {
        feed(intake, sender, &[CONTROL_GROUP], CONTROL_MESS_TYPE, body)
    }

    fn with_history() -> Intake {
        let mut gaps = GapTable::new();
        gaps.knows_history = true;
        Intake::new(gaps, Delivered::in_memory())
    }

    /// Line `n` of stream `s` to www, live (with its tag group) or resent.
    fn streamed(
        i: &mut Intake,
        s: StreamId,
        n: u64,
        resent: bool,
        accepting: Accepting,
    ) -> (Vec<String>, Vec<String>) {
        let line = format!("line {n}\n");
        let (mut routed, mut notes) = (Vec::new(), Vec::new());
        let mut tag = stream::TagBuf::default();
        let tag = stream::tag(s, n, &mut tag).to_owned();
        let mut body = Vec::new();
        let groups: Vec<&[u8]> = if resent {
            let r = control::Resent {
                stream: s,
                group: b"www",
                number: n,
                line: line.as_bytes(),
            };
            assert!(control::encode_resend(&r, &mut body));
            vec![b"#sld-1#h"]
        } else {
            body.extend_from_slice(line.as_bytes());
            vec![b"www", tag.as_bytes()]
        };
        let m = Received {
            conn: 0,
            sender: b"#web1#h",
            mess_type: if resent {
                control::RESEND_MESS_TYPE
            } else {
                mess_type_for(spread_sys::seq::wire_seq(n - 1))
            },
            body: &body,
            groups: groups.iter().copied(),
        };
        i.accept(
            m,
            |g| g == b"www",
            1,
            accepting,
            |n| notes.push(n.to_string()),
            |g, b, whole| {
                assert!(whole);
                routed.push(format!(
                    "{} {}",
                    String::from_utf8_lossy(g),
                    String::from_utf8_lossy(&b)
                ))
            },
        );
        (routed, notes)
    }

    #[test]
    fn streamed_lines_are_written_once_and_acknowledged() {
        let s = StreamId::from_bits(0xabc);
        let mut i = with_history();
        assert_eq!(
            streamed(&mut i, s, 1, false, Accepting::Yes).0,
            ["www line 1\n"]
        );
        assert_eq!(
            streamed(&mut i, s, 3, false, Accepting::Yes).0,
            ["www line 3\n"]
        );
        // Not committed yet: a resend in the same batch is still a repeat.
        let (r, n) = streamed(&mut i, s, 1, true, Accepting::Yes);
        assert!(r.is_empty());
        assert_eq!(n.len(), 1, "said once: {n:?}");
        i.delivered.commit(&[], 1).unwrap();
        assert_eq!(i.acks.len(), 1);
        assert_eq!(&*i.acks[0].sender, "#web1#h");
        // The missing line comes resent; later repeats are dropped without a word.
        assert_eq!(
            streamed(&mut i, s, 2, true, Accepting::Yes).0,
            ["www line 2\n"]
        );
        let (r, n) = streamed(&mut i, s, 3, true, Accepting::Yes);
        assert!(r.is_empty() && n.is_empty());
        assert_eq!((i.streams.repeats, i.streams.resent), (2, 3));
        // Neither the legacy gap table nor its notes hear of streamed lines.
        assert_eq!(i.gaps.lost_lines, 0);
        // While a file cannot be written, new lines are held back (unacknowledged)...
        let (r, _) = streamed(&mut i, s, 4, false, Accepting::HoldBack);
        assert!(r.is_empty());
        assert_eq!(i.streams.held_back, 1);
        // ...and come again later.
        assert_eq!(
            streamed(&mut i, s, 4, true, Accepting::Yes).0,
            ["www line 4\n"]
        );
    }

    /// A line with a given body as line `n` of stream `s`, live or resent; what was routed.
    fn piece(i: &mut Intake, s: StreamId, n: u64, body: &[u8], resent: bool) -> Vec<String> {
        let mut routed = Vec::new();
        let mut tag = stream::TagBuf::default();
        let tag = stream::tag(s, n, &mut tag).to_owned();
        let mut msg = Vec::new();
        let groups: Vec<&[u8]> = if resent {
            let r = control::Resent {
                stream: s,
                group: b"www",
                number: n,
                line: body,
            };
            assert!(control::encode_resend(&r, &mut msg));
            vec![b"#sld-1#h"]
        } else {
            msg.extend_from_slice(body);
            vec![b"www", tag.as_bytes()]
        };
        let m = Received {
            conn: 0,
            sender: b"#pipe#h",
            mess_type: if resent {
                control::RESEND_MESS_TYPE
            } else {
                mess_type_for(0)
            },
            body: &msg,
            groups: groups.iter().copied(),
        };
        i.accept(
            m,
            |g| g == b"www",
            1,
            Accepting::Yes,
            |_| {},
            |_, b, _| routed.push(String::from_utf8_lossy(&b).into_owned()),
        );
        routed
    }

    /// A batched message of `entries` from line `first` of stream `s` to www; what was routed
    /// and the notes.
    fn batch(i: &mut Intake, s: StreamId, first: u64, body: &[u8]) -> (Vec<String>, usize) {
        let mut routed = Vec::new();
        let mut notes = 0;
        let mut tag = stream::TagBuf::default();
        let tag = stream::tag(s, first, &mut tag).to_owned();
        let groups: Vec<&[u8]> = vec![b"www", tag.as_bytes()];
        let m = Received {
            conn: 0,
            sender: b"#web#h",
            mess_type: control::BATCH_MESS_TYPE,
            body,
            groups: groups.iter().copied(),
        };
        i.accept(
            m,
            |g| g == b"www",
            1,
            Accepting::Yes,
            |_| notes += 1,
            |_, b, _| routed.push(String::from_utf8_lossy(&b).into_owned()),
        );
        (routed, notes)
    }

    fn entries(lines: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(&control::batch_entry_len(l.len()));
            body.extend_from_slice(l);
        }
        body
    }

    #[test]
    fn a_batched_message_is_taken_line_by_line_with_consecutive_numbers() {
        let s = StreamId::from_bits(0x5);
        let mut i = with_history();
        let body = entries(&[b"one\n", b"two\nwith a newline inside\n", b"three\n"]);
        let (r, notes) = batch(&mut i, s, 7, &body);
        assert_eq!(r, ["one\n", "two\nwith a newline inside\n", "three\n"]);
        assert_eq!(notes, 0);
        assert!(i.delivered.has(s, b"www", 7) && i.delivered.has(s, b"www", 9));
        assert!(!i.delivered.has(s, b"www", 10));
        assert_eq!(i.streams.batched, 1);
        // The same lines again (a resend of the batch's numbers): repeats, not written twice.
        let (r, _) = batch(&mut i, s, 9, &entries(&[b"three\n", b"four\n"]));
        assert_eq!(r, ["four\n"]);
        assert_eq!(i.streams.repeats, 1);
        // A body that does not split into whole entries is said, and nothing of it written.
        let mut bad = entries(&[b"five\n"]);
        bad.truncate(bad.len() - 2);
        let (r, notes) = batch(&mut i, s, 11, &bad);
        assert!(r.is_empty());
        assert_eq!(notes, 1);
    }

    #[test]
    fn a_line_cut_in_pieces_is_written_whole_once_every_piece_is_here() {
        let s = StreamId::from_bits(0x9);
        let mut i = with_history();
        assert_eq!(piece(&mut i, s, 1, b"whole\n", false), ["whole\n"]);
        // Line 2..=4 in three pieces; the middle one lost in flight, resent later.
        assert!(piece(&mut i, s, 2, b"aaa", false).is_empty());
        assert!(
            piece(&mut i, s, 4, b"ccc\n", false).is_empty(),
            "waits for piece 3"
        );
        assert!(
            !i.delivered.has(s, b"www", 2) && !i.delivered.has(s, b"www", 4),
            "held pieces are neither written nor pending (so never acknowledged)"
        );
        assert_eq!(piece(&mut i, s, 3, b"bbb", true), ["aaabbbccc\n"]);
        assert_eq!(i.streams.reassembled, 1);
        // Written once: a resent piece afterwards is a repeat.
        i.delivered.commit(&[], 1).unwrap();
        assert!(piece(&mut i, s, 3, b"bbb", true).is_empty());
        assert_eq!(piece(&mut i, s, 5, b"after\n", false), ["after\n"]);
        // An idle stream's announcement does not end a line that is still coming.
        assert!(piece(&mut i, s, 6, b"still coming", false).is_empty());
        let body = format!("mls1 stream {s} www 6\n");
        let m = Received {
            conn: 0,
            sender: &b"#pipe#h"[..],
            mess_type: CONTROL_MESS_TYPE,
            body: body.as_bytes(),
            groups: [CONTROL_GROUP.as_bytes()].into_iter(),
        };
        i.accept(
            m,
            |g| g == b"www",
            1,
            Accepting::Yes,
            |_| {},
            |_, _, _| panic!("nothing to route"),
        );
        assert_eq!(
            piece(&mut i, s, 7, b" now\n", false),
            ["still coming now\n"]
        );
    }

    #[test]
    fn a_stream_announcement_is_answered_with_what_is_written() {
        let s = StreamId::from_bits(0xdef);
        let mut i = with_history();
        streamed(&mut i, s, 1, false, Accepting::Yes);
        i.delivered.commit(&[], 1).unwrap();
        i.acks.clear();
        let body = format!("mls1 stream {s} www 5\nmls1 stream {s} nobody 5\n");
        let (r, n) = control(&mut i, "#web1#h", body.as_bytes());
        assert!(r.is_empty());
        assert_eq!(
            n,
            [format!(
                "stream {s} to group www: 4 line(s) not written here yet; waiting for the sender to resend them"
            )]
        );
        assert_eq!(i.acks.len(), 1, "only for groups logged here");
    }

    #[test]
    fn log_lines_are_routed_to_the_groups_this_collector_logs() {
        let mut i = with_history();
        let (r, n) = feed(&mut i, "#a#h", &["www", "other"], mess_type_for(0), b"l\n");
        assert_eq!((r, n), (vec!["www".to_owned()], vec![]));
        let (r, n) = feed(&mut i, "#a#h", &["www"], 0, b"unnumbered\n");
        assert_eq!((r, n), (vec!["www".to_owned()], vec![]));
        let (r, n) = feed(&mut i, "#a#h", &["www"], mess_type_for(3), b"l\n");
        assert_eq!(r, vec!["www".to_owned()]);
        assert_eq!(
            n,
            vec!["sequence gap: 2 line(s) from #a#h to group www lost"]
        );
        let (_, n) = feed(&mut i, "#a#h", &["www"], mess_type_for(1), b"l\n");
        assert_eq!(
            n,
            vec!["repeated sequence number from #a#h to group www (at-least-once replay?)"]
        );
    }

    #[test]
    fn control_messages_are_never_routed_and_count_a_lost_tail() {
        let mut i = with_history();
        numbered(&mut i, "#a#h", 3);
        let body = b"mls1 next www 7\nmls1 next nobody 4\n";
        let (r, n) = control(&mut i, "#a#h", body);
        assert!(r.is_empty());
        assert_eq!(
            n,
            vec!["sequence gap: 4 line(s) from #a#h to group www lost (announced by the sender)"]
        );
        // Wherever it arrives (a confused sender's log group), control is never a log line.
        let (r, _) = feed(&mut i, "#a#h", &["www"], CONTROL_MESS_TYPE, body);
        assert!(r.is_empty());
        assert_eq!((i.gaps.lost_lines, i.gaps.announcements), (4, 2));
        // A sender never seen, with the whole history known: exactly its lines were lost.
        let (_, n) = control(&mut i, "#b#h", b"mls1 next err 5\n");
        assert_eq!(
            n,
            vec!["sequence gap: 5 line(s) from #b#h to group err lost (announced by the sender)"]
        );
        assert_eq!(i.control.messages, 3);
    }

    #[test]
    fn handovers_account_for_the_old_name() {
        let mut i = with_history();
        numbered(&mut i, "#old#h", 4);
        let (r, n) = control(&mut i, "#new#h", b"mls1 handover #old#h www 6\n");
        assert!(r.is_empty());
        assert_eq!(
            n,
            vec![
                "sequence gap: 2 line(s) from #old#h to group www lost (the sender continues as #new#h)"
            ]
        );
        numbered(&mut i, "#o2#h", 2);
        let (_, n) = control(&mut i, "#n2#h", b"mls1 handover #o2#h www 2\n");
        assert_eq!(n, vec!["#n2#h continues #o2#h's sequence to group www"]);
        assert_eq!(i.gaps.handovers, 2);
    }

    #[test]
    fn the_previous_releases_handover_is_accounted_and_never_written() {
        let mut i = with_history();
        numbered(&mut i, "#old#h", 4);
        let (r, n) = feed(
            &mut i,
            "#new#h",
            &["www"],
            HANDOVER_MESS_TYPE,
            b"mls-seq-handover #old#h 5\n",
        );
        assert!(r.is_empty());
        assert_eq!(
            n,
            vec![
                "sequence gap: 1 line(s) from #old#h to group www lost (the sender continues as #new#h)"
            ]
        );
    }

    #[test]
    fn unknown_records_are_skipped_malformed_ones_said() {
        let mut i = with_history();
        let (r, n) = control(
            &mut i,
            "#a#h",
            b"mls2 whatever\nmls1 next www x\nmls1 next www 1\n",
        );
        assert!(r.is_empty());
        assert_eq!(
            n,
            vec![
                "malformed control record from #a#h ignored".to_owned(),
                "sequence gap: 1 line(s) from #a#h to group www lost (announced by the sender)"
                    .to_owned()
            ]
        );
        assert_eq!(i.control.skipped, 2);
    }

    #[test]
    fn other_traffic_on_the_control_group_is_ignored() {
        let mut i = with_history();
        let (r, n) = feed(&mut i, "#a#h", &[CONTROL_GROUP], 0, b"hello\n");
        assert!(r.is_empty() && n.is_empty());
    }
}
