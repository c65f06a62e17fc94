//! The control channel (CONTRACTS "Control channel"): bookkeeping between senders and our
//! collectors travels on one group of its own, [`CONTROL_GROUP`], so that a log group carries log
//! lines only. Any collector that writes every body it receives (the original C spreadlogd,
//! `spuser`, `spread-tail`) never sees a control message, because no log configuration names this
//! group (`crate::names::is_reserved_group`).
//!
//! A control message has `mess_type` [`CONTROL_MESS_TYPE`] and a text body of one or more
//! records, each a line `mls1 <verb> <args…>\n` (`mls1` is the format's version):
//!
//! * `mls1 next <group> <n>` — the sending session has numbered `n` lines to `<group>` since its
//!   sequence started, so the next one will be line `n` (its wire number is [`seq::wire_seq`]).
//!   A collector that expected a smaller number counts the difference as lost: this is how a lost
//!   *tail* (nothing numbered follows it) becomes visible.
//! * `mls1 handover <old private group> <group> <n>` — the sending session continues the sender
//!   `<old private group>` under a new name; the old name had numbered `n` lines to `<group>`. The
//!   collector checks `n` like a `next` of the old name, then forgets the old name.
//!
//! * `mls1 stream <stream> <group> <n>` — the stream `<stream>` (`crate::stream`) has numbered
//!   lines 1..=`n` to `<group>`. Sent by senders on the control channel (after a reconnect, while
//!   idle, at exit, when replaying a spooled stream). Every acknowledging collector answers with
//!   its `ack` records for that stream, so a sender learns which collectors exist and what they
//!   lack — and a collector learns of a tail it missed.
//! * `mls1 ack <stream> <group> <from> <to>` — a collector has written lines `from..=to` of that
//!   stream and group (and recorded it durably). Sent to the sender's private group only. `0 0`
//!   says "none yet". A collector sends one record per range it holds.
//! * `mls1 collector <16 hex>` — first in a collector's ack messages: its stable id, so a
//!   collector that restarted under a new private name is known as the same one.
//!
//! `n` is a decimal count (no sign, no leading zeros, at most 20 digits) that never wraps. A
//! reader skips records of a version or verb it does not know (newer senders may add some), so
//! the format can grow without breaking older collectors.

use crate::names::{check_group, is_private_group};
use crate::stream::StreamId;

/// The group senders multicast control records to and our collectors join.
pub const CONTROL_GROUP: &str = "mls.control";

/// The `mess_type` of a control message (unnumbered: the 0x8000 bit is clear).
pub const CONTROL_MESS_TYPE: i16 = 0x7F01;

/// The `mess_type` of a resent line (see [`encode_resend`]). Only ever sent to one collector's
/// private group, never to a group: no other receiver sees it.
pub const RESEND_MESS_TYPE: i16 = 0x7F02;

/// The `mess_type` of a message holding several lines of one stream and group (opt-in, for
/// collectors of this release only): entries `[u32 little-endian length][bytes]`, the first
/// numbered by the message's tag, the next ones one more each. An entry is a whole log line,
/// newlines inside it included.
pub const BATCH_MESS_TYPE: i16 = 0x7F03;

/// The 4-byte length that starts a batch entry of `len` bytes.
#[inline]
pub fn batch_entry_len(len: usize) -> [u8; 4] {
    (len as u32).to_le_bytes()
}

/// The entries of a batched message's body, in order; None when the body does not split into
/// whole entries.
pub fn batch_entries(body: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let entry = rest.get(4..4 + len)?;
        out.push(entry);
        rest = &rest[4 + len..];
    }
    Some(out)
}

/// Version token that starts every record this code writes.
const VERSION: &[u8] = b"mls1";

/// Longest body a sender puts in one control message; more records go into further messages.
/// Far below Spread's largest message, so a control message is never cut.
pub const MAX_CONTROL_BODY: usize = 16 * 1024;

/// The service a sender's control messages use: the data's own when it keeps per-sender order
/// (FIFO or stronger), else FIFO. A `next` overtaking the lines it counts would report them lost.
pub fn service_for(data_service: u32) -> u32 {
    use crate::wire::constants::{
        AGREED_MESS, CAUSAL_MESS, FIFO_MESS, RELIABLE_MESS, SAFE_MESS, UNRELIABLE_MESS,
    };
    if data_service & (FIFO_MESS | CAUSAL_MESS | AGREED_MESS | SAFE_MESS) != 0 {
        data_service
    } else {
        (data_service & !(UNRELIABLE_MESS | RELIABLE_MESS)) | FIFO_MESS
    }
}

/// One control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// The sender's next line to `group` is line number `next` (0-based count).
    Next { group: &'a [u8], next: u64 },
    /// The sender continues `old`'s sequence: `old` had numbered `next` lines to `group`.
    Handover {
        old: &'a [u8],
        group: &'a [u8],
        next: u64,
    },
    /// A stream has numbered lines 1..=`last` to `group`.
    Stream {
        stream: StreamId,
        group: &'a [u8],
        last: u64,
    },
    /// The collector that sends the records after it (in the same message): a stable id, so a
    /// restarted collector (a new private name) is known as the same one.
    Collector { id: u64 },
    /// A collector holds lines `from..=to` of (`stream`, `group`); `0 0` holds none.
    Ack {
        stream: StreamId,
        group: &'a [u8],
        from: u64,
        to: u64,
    },
}

/// A record that could not be read (reported by the collector; the rest of the message counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Another version or an unknown verb: from a newer sender, ignored by design.
    Unknown,
    /// A record of our version that is not well formed.
    Malformed,
}

fn is_group(name: &[u8]) -> bool {
    check_group(name).is_ok()
}

/// Append one record as a line. Returns false, appending nothing, for names a record cannot
/// carry (a group that is no legal group name, an old sender that is no private group).
#[must_use]
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) -> bool {
    let (verb, old, group, next): (&[u8], Option<&[u8]>, &[u8], u64) = match *record {
        Record::Next { group, next } => (b"next", None, group, next),
        Record::Handover { old, group, next } => (b"handover", Some(old), group, next),
        Record::Stream {
            stream,
            group,
            last,
        } => return encode_stream_record(b"stream", stream, group, &[last], out),
        Record::Ack {
            stream,
            group,
            from,
            to,
        } => {
            if from > to || (from == 0) != (to == 0) {
                return false;
            }
            return encode_stream_record(b"ack", stream, group, &[from, to], out);
        }
        Record::Collector { id } => {
            use std::io::Write;
            let _ = writeln!(out, "mls1 collector {id:016x}");
            return true;
        }
    };
    if !is_group(group) || old.is_some_and(|o| !is_private_group(o)) {
        return false;
    }
    out.extend_from_slice(VERSION);
    out.push(b' ');
    out.extend_from_slice(verb);
    if let Some(old) = old {
        out.push(b' ');
        out.extend_from_slice(old);
    }
    out.push(b' ');
    out.extend_from_slice(group);
    out.push(b' ');
    out.extend_from_slice(next.to_string().as_bytes());
    out.push(b'\n');
    true
}

fn encode_stream_record(
    verb: &[u8],
    stream: StreamId,
    group: &[u8],
    numbers: &[u64],
    out: &mut Vec<u8>,
) -> bool {
    if !is_group(group) {
        return false;
    }
    use std::io::Write;
    let _ = write!(out, "mls1 {} {stream} ", String::from_utf8_lossy(verb));
    out.extend_from_slice(group);
    for n in numbers {
        let _ = write!(out, " {n}");
    }
    out.push(b'\n');
    true
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty()
        || digits.len() > 20
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits[0] == b'0' && digits.len() > 1)
    {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn decode_line(line: &[u8]) -> Result<Record<'_>, Skipped> {
    let mut words = line.split(|&b| b == b' ');
    if words.next() != Some(VERSION) {
        return Err(Skipped::Unknown);
    }
    let verb = words.next().ok_or(Skipped::Malformed)?;
    let args: Vec<&[u8]> = words.collect();
    let record = match (verb, args.as_slice()) {
        (b"next", [group, n]) if is_group(group) => Record::Next {
            group,
            next: number(n).ok_or(Skipped::Malformed)?,
        },
        (b"handover", [old, group, n]) if is_private_group(old) && is_group(group) => {
            Record::Handover {
                old,
                group,
                next: number(n).ok_or(Skipped::Malformed)?,
            }
        }
        (b"stream", [stream, group, n]) if is_group(group) => Record::Stream {
            stream: StreamId::parse(stream).ok_or(Skipped::Malformed)?,
            group,
            last: number(n).ok_or(Skipped::Malformed)?,
        },
        (b"ack", [stream, group, from, to]) if is_group(group) => {
            let (from, to) = (
                number(from).ok_or(Skipped::Malformed)?,
                number(to).ok_or(Skipped::Malformed)?,
            );
            if from > to || (from == 0) != (to == 0) {
                return Err(Skipped::Malformed);
            }
            Record::Ack {
                stream: StreamId::parse(stream).ok_or(Skipped::Malformed)?,
                group,
                from,
                to,
            }
        }
        (b"collector", [id]) if id.len() == 16 => Record::Collector {
            id: std::str::from_utf8(id)
                .ok()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or(Skipped::Malformed)?,
        },
        (b"next" | b"handover" | b"stream" | b"ack" | b"collector", _) => {
            return Err(Skipped::Malformed);
        }
        _ => return Err(Skipped::Unknown),
    };
    Ok(record)
}

/// The records of a received message, or None when it is no control message (another
/// `mess_type`). Each line is one record or one [`Skipped`]; a final line without its newline
/// is malformed.
pub fn decode(
    mess_type: i16,
    body: &[u8],
) -> Option<impl Iterator<Item = Result<Record<'_>, Skipped>>> {
    (mess_type == CONTROL_MESS_TYPE).then(|| {
        body.split_inclusive(|&b| b == b'\n')
            .map(|line| match line.strip_suffix(b"\n") {
                Some(line) => decode_line(line),
                None => Err(Skipped::Malformed),
            })
    })
}

/// Send `records` on the control channel through `mb`, in as few messages as fit, with the
/// service [`service_for`] the sender's data service. Returns how many messages were sent.
pub fn send<'r>(
    mb: &mut crate::Mailbox,
    data_service: u32,
    records: impl IntoIterator<Item = Record<'r>>,
) -> crate::Result<usize> {
    let bodies = bodies(records);
    for body in &bodies {
        mb.multicast(
            service_for(data_service),
            &[CONTROL_GROUP],
            CONTROL_MESS_TYPE,
            body,
        )?;
    }
    Ok(bodies.len())
}

/// The `next` records of `groups` ((group, lines numbered so far)), groups that numbered nothing
/// left out.
/// Send `records` to one session's private group `to` (acks to a sender), as few messages as
/// fit. Returns how many messages were sent.
pub fn send_to<'r>(
    mb: &mut crate::Mailbox,
    data_service: u32,
    to: &str,
    records: impl IntoIterator<Item = Record<'r>>,
) -> crate::Result<usize> {
    let bodies = bodies(records);
    for body in &bodies {
        mb.multicast(service_for(data_service), &[to], CONTROL_MESS_TYPE, body)?;
    }
    Ok(bodies.len())
}

/// A line resent to one collector: what the tag group said on the live path (stream, group,
/// number) in a first text line, then the line's bytes unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resent<'a> {
    pub stream: StreamId,
    pub group: &'a [u8],
    pub number: u64,
    pub line: &'a [u8],
}

/// Encode a resent line's body: `mls1 resend <stream> <group> <n>\n` then the line. False (and
/// nothing written) for a group the wire cannot carry or number 0.
#[must_use]
pub fn encode_resend(r: &Resent<'_>, out: &mut Vec<u8>) -> bool {
    if r.number == 0 || !encode_stream_record(b"resend", r.stream, r.group, &[r.number], out) {
        return false;
    }
    out.extend_from_slice(r.line);
    true
}

/// Decode a resent line; None unless `mess_type` is [`RESEND_MESS_TYPE`] and the header is
/// well formed.
pub fn decode_resend(mess_type: i16, body: &[u8]) -> Option<Resent<'_>> {
    if mess_type != RESEND_MESS_TYPE {
        return None;
    }
    let nl = body.iter().position(|&b| b == b'\n')?;
    let (head, line) = (&body[..nl], &body[nl + 1..]);
    let mut words = head.split(|&b| b == b' ');
    let (Some(VERSION), Some(b"resend"), Some(stream), Some(group), Some(n), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return None;
    };
    let number = number(n).filter(|&n| n > 0)?;
    is_group(group).then_some(Resent {
        stream: StreamId::parse(stream)?,
        group,
        number,
        line,
    })
}

pub fn next_records<'g>(
    groups: impl IntoIterator<Item = (&'g [u8], u64)>,
) -> impl Iterator<Item = Record<'g>> {
    groups
        .into_iter()
        .filter(|&(_, next)| next > 0)
        .map(|(group, next)| Record::Next { group, next })
}

/// Pack records into as few bodies as fit [`MAX_CONTROL_BODY`]; records that cannot be encoded
/// are left out.
fn bodies<'r>(records: impl IntoIterator<Item = Record<'r>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut line = Vec::new();
    for r in records {
        line.clear();
        if !encode(&r, &mut line) {
            continue;
        }
        match out.last_mut() {
            Some(b) if b.len() + line.len() <= MAX_CONTROL_BODY => b.extend_from_slice(&line),
            _ => out.push(line.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq;

    fn all(body: &[u8]) -> Vec<Result<Record<'_>, Skipped>> {
        decode(CONTROL_MESS_TYPE, body).expect("control").collect()
    }

    #[test]
    fn records_round_trip() {
        let mut b = Vec::new();
        assert!(encode(
            &Record::Next {
                group: b"www",
                next: 42
            },
            &mut b
        ));
        assert!(encode(
            &Record::Handover {
                old: b"#a1b2c#web1",
                group: b"www",
                next: u64::MAX
            },
            &mut b
        ));
        assert_eq!(
            b,
            b"mls1 next www 42\nmls1 handover #a1b2c#web1 www 18446744073709551615\n"
        );
        assert_eq!(
            all(&b),
            vec![
                Ok(Record::Next {
                    group: b"www",
                    next: 42
                }),
                Ok(Record::Handover {
                    old: b"#a1b2c#web1",
                    group: b"www",
                    next: u64::MAX
                })
            ]
        );
        assert!(decode(0, &b).is_none(), "only its mess_type is control");
        assert!(decode(seq::mess_type_for(3), &b).is_none());
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let mut b = Vec::new();
        for group in [&b""[..], b"a b", b"#priv", &[b'g'; 32]] {
            assert!(
                !encode(&Record::Next { group, next: 1 }, &mut b),
                "{group:?}"
            );
        }
        for old in [&b"plain"[..], b"#", b"#a b#h", &[b'#'; 33]] {
            let r = Record::Handover {
                old,
                group: b"g",
                next: 1,
            };
            assert!(!encode(&r, &mut b), "{old:?}");
        }
        assert!(b.is_empty());
    }

    #[test]
    fn unknown_is_skipped_malformed_is_reported() {
        let body = b"mls2 next www 5\nmls1 frobnicate x\nmls1 next www 07\nmls1 next www\n\
                     mls1 next www 5 6\nmls1 next www -1\nmls1 next www 99999999999999999999999\n\
                     mls1 handover nothash www 3\nmls1 next www 9\nmls1 next www 10";
        let got = all(body);
        assert_eq!(
            got,
            vec![
                Err(Skipped::Unknown),
                Err(Skipped::Unknown),
                Err(Skipped::Malformed),
                Err(Skipped::Malformed),
                Err(Skipped::Malformed),
                Err(Skipped::Malformed),
                Err(Skipped::Malformed),
                Err(Skipped::Malformed),
                Ok(Record::Next {
                    group: b"www",
                    next: 9
                }),
                Err(Skipped::Malformed),
            ]
        );
    }

    fn bodies_of_next<'g>(groups: impl IntoIterator<Item = (&'g [u8], u64)>) -> Vec<Vec<u8>> {
        bodies(next_records(groups))
    }

    #[test]
    fn next_records_skip_idle_groups_and_split_large_sets() {
        assert!(bodies_of_next([(&b"a"[..], 0)]).is_empty());
        let b = bodies_of_next([(&b"a"[..], 3), (b"b", 0), (b"c", 1)]);
        assert_eq!(b, vec![b"mls1 next a 3\nmls1 next c 1\n".to_vec()]);
        let names: Vec<String> = (0..2000).map(|i| format!("group-{i:05}")).collect();
        let b = bodies_of_next(names.iter().map(|n| (n.as_bytes(), 1u64 << 40)));
        assert!(b.len() > 1);
        assert!(b.iter().all(|x| x.len() <= MAX_CONTROL_BODY));
        let n: usize = b.iter().map(|x| all(x).len()).sum();
        assert_eq!(n, 2000);
    }

    #[test]
    fn stream_and_ack_records_round_trip() {
        let stream = StreamId::from_bits(0xabc);
        let recs = [
            Record::Stream {
                stream,
                group: b"www",
                last: 70000,
            },
            Record::Ack {
                stream,
                group: b"www",
                from: 1,
                to: 69999,
            },
            Record::Ack {
                stream,
                group: b"www",
                from: 0,
                to: 0,
            },
        ];
        let mut b = Vec::new();
        for r in &recs {
            assert!(encode(r, &mut b));
        }
        assert_eq!(
            b,
            b"mls1 stream 000000000abc www 70000\nmls1 ack 000000000abc www 1 69999\n\
              mls1 ack 000000000abc www 0 0\n"
        );
        assert_eq!(all(&b), recs.map(Ok).to_vec());
        for bad in [
            Record::Ack {
                stream,
                group: b"www",
                from: 5,
                to: 4,
            },
            Record::Ack {
                stream,
                group: b"www",
                from: 0,
                to: 4,
            },
        ] {
            assert!(!encode(&bad, &mut Vec::new()));
        }
        let mut c = Vec::new();
        assert!(encode(&Record::Collector { id: 0xfeed_beef }, &mut c));
        assert_eq!(c, b"mls1 collector 00000000feedbeef\n");
        assert_eq!(all(&c), vec![Ok(Record::Collector { id: 0xfeed_beef })]);
        let body =
            b"mls1 ack 000000000abc www 5 4\nmls1 ack zz www 1 2\nmls1 stream 000000000abc www\n";
        assert!(all(body).iter().all(|r| *r == Err(Skipped::Malformed)));
    }

    #[test]
    fn resent_lines_keep_their_bytes() {
        let r = Resent {
            stream: StreamId::from_bits(7),
            group: b"www",
            number: 12,
            line: b"GET / 200\nwith a newline inside\n",
        };
        let mut b = Vec::new();
        assert!(encode_resend(&r, &mut b));
        assert!(b.starts_with(b"mls1 resend 000000000007 www 12\nGET /"));
        assert_eq!(decode_resend(RESEND_MESS_TYPE, &b), Some(r));
        let mut body = Vec::new();
        for e in [&b"one\n"[..], b"two\nlines\n", b""] {
            body.extend_from_slice(&batch_entry_len(e.len()));
            body.extend_from_slice(e);
        }
        assert_eq!(
            batch_entries(&body),
            Some(vec![&b"one\n"[..], b"two\nlines\n", b""])
        );
        assert_eq!(batch_entries(&body[..body.len() - 3]), None);
        assert_eq!(decode_resend(CONTROL_MESS_TYPE, &b), None);
        assert_eq!(
            decode_resend(RESEND_MESS_TYPE, b"mls1 resend 000000000007 www 0\nx"),
            None
        );
        assert_eq!(
            decode_resend(RESEND_MESS_TYPE, b"mls1 resend 000000000007 www 1"),
            None
        );
        assert!(control_is_never_a_resend());
    }

    fn control_is_never_a_resend() -> bool {
        decode(RESEND_MESS_TYPE, b"mls1 next www 1\n").is_none()
    }

    #[test]
    fn control_keeps_per_sender_order() {
        use crate::wire::constants::*;
        assert_eq!(service_for(AGREED_MESS), AGREED_MESS);
        assert_eq!(
            service_for(SAFE_MESS | SELF_DISCARD),
            SAFE_MESS | SELF_DISCARD
        );
        assert_eq!(service_for(RELIABLE_MESS), FIFO_MESS);
        assert_eq!(
            service_for(UNRELIABLE_MESS | SELF_DISCARD),
            FIFO_MESS | SELF_DISCARD
        );
    }

    #[test]
    fn the_control_group_is_a_legal_reserved_group() {
        assert!(is_group(CONTROL_GROUP.as_bytes()));
        assert!(crate::names::is_reserved_group(b"mls.control"));
        assert!(!crate::names::is_reserved_group(b"www"));
        assert_eq!(seq::seq_of(CONTROL_MESS_TYPE), None);
    }
}
