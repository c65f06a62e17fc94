//! Sequence numbers carried in `mess_type` for gap detection (CONTRACTS §2).
//!
//! A numbered message has `mess_type = 0x8000 | seq` with `seq` in 0..=0x7FFF. `seq` 0 starts a new
//! sequence; after 0x7FFF the counter wraps to 1, never to 0. Messages without the 0x8000 bit are
//! unnumbered and never counted as gaps.
//!
//! # Sequence hand-over
//!
//! When a sender has to continue under a new private name while it still holds numbered state for
//! its old one (the daemon still held the old name after an abrupt reconnect: REJECT_NOT_UNIQUE),
//! the first message it sends on each such group, before any line, is an unnumbered message with
//! `mess_type` [`HANDOVER_MESS_TYPE`] and the body `mls-seq-handover <old private group> <next seq>\n`
//! ([`encode_handover`]). A receiver ([`decode_handover`]) checks `<next seq>` against what it
//! expected from the old name exactly as for a numbered message (so lines lost at the old
//! sequence's tail show as a gap), then forgets the old name's entry; it never logs the message
//! itself. A body that does not match the format exactly is an ordinary unnumbered message.

/// The `mess_type` bit that marks a numbered message.
pub const NUMBERED: u16 = 0x8000;
/// Largest sequence number.
pub const MAX_SEQ: u16 = 0x7FFF;

/// The reserved `mess_type` of a sequence hand-over message (unnumbered: the 0x8000 bit is clear).
pub const HANDOVER_MESS_TYPE: i16 = 0x7F00;

const HANDOVER_PREFIX: &[u8] = b"mls-seq-handover ";

/// Longest private group name Spread carries (`#name#host`, at most 31 bytes).
const MAX_PRIVATE_GROUP: usize = 31;

/// Can `name` stand as the `<old private group>` of a hand-over: `#…#…`, 3..=31 printable bytes,
/// no space.
fn valid_private_group(name: &[u8]) -> bool {
    (3..=MAX_PRIVATE_GROUP).contains(&name.len())
        && name[0] == b'#'
        && name[1..].contains(&b'#')
        && name.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Append the body of a hand-over message (send it with [`HANDOVER_MESS_TYPE`], to one group):
/// `mls-seq-handover <old_private_group> <next_seq>\n`, `next_seq` being the number the old name
/// would have used next for that group. Returns false and appends nothing if the name cannot be
/// carried (not `#name#host` of at most 31 printable bytes) or `next_seq` > [`MAX_SEQ`]; names a
/// [`crate::Mailbox`] reports as its private group always can.
#[must_use]
pub fn encode_handover(old_private_group: &[u8], next_seq: u16, out: &mut Vec<u8>) -> bool {
    if !valid_private_group(old_private_group) || next_seq > MAX_SEQ {
        return false;
    }
    out.extend_from_slice(HANDOVER_PREFIX);
    out.extend_from_slice(old_private_group);
    out.push(b' ');
    out.extend_from_slice(next_seq.to_string().as_bytes());
    out.push(b'\n');
    true
}

/// If a received message is a hand-over, the old private group and the number it would have used
/// next. Anything else (another `mess_type`, a body not exactly in the format, a number with
/// leading zeros or above [`MAX_SEQ`]) is None: an ordinary message.
pub fn decode_handover(mess_type: i16, body: &[u8]) -> Option<(&[u8], u16)> {
    if mess_type != HANDOVER_MESS_TYPE {
        return None;
    }
    let rest = body.strip_prefix(HANDOVER_PREFIX)?.strip_suffix(b"\n")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let (old, digits) = (&rest[..space], &rest[space + 1..]);
    if !valid_private_group(old)
        || digits.is_empty()
        || digits.len() > 5
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits[0] == b'0' && digits.len() > 1)
    {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    (n <= u32::from(MAX_SEQ)).then_some((old, n as u16))
}

/// The `mess_type` (as the signed 16-bit value the wire and libspread use) for `seq`.
pub fn mess_type_for(seq: u16) -> i16 {
    (NUMBERED | (seq & MAX_SEQ)) as i16
}

/// The sequence number of a received `mess_type`, or None if the message is unnumbered.
pub fn seq_of(mess_type: i16) -> Option<u16> {
    let m = mess_type as u16;
    (m & NUMBERED != 0).then_some(m & MAX_SEQ)
}

/// The number after `seq` (wraps 0x7FFF -> 1).
pub fn next_seq(seq: u16) -> u16 {
    if seq >= MAX_SEQ { 1 } else { seq + 1 }
}

/// A sender's counter for one (connection, group): hands out 0 first, then 1, 2, ...
/// Advance it only for a message that was handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounter {
    next: u16,
}

impl SeqCounter {
    /// The number the next handed-over message carries.
    pub fn peek(&self) -> u16 {
        self.next
    }
    /// Record that the message numbered `peek()` was handed over.
    pub fn advance(&mut self) {
        self.next = next_seq(self.next);
    }
    /// Forget state: the next message starts a new sequence (seq 0).
    pub fn reset(&mut self) {
        self.next = 0;
    }
}

/// What a receiver learns from one numbered message (spreadlogd's gap table, per (sender, group)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// The expected number (or a first message with seq 0, or a restart at 0).
    InOrder,
    /// `lost` numbers were skipped.
    Gap { lost: u32 },
    /// First message seen from this sender and it is not 0: an unknown number of lines was missed.
    UnknownGap,
    /// A number that is behind the expected one (a repeat, e.g. at-least-once spool replay).
    Behind,
}

/// Compare a received `seq` with the expected next number (`None` = sender never seen).
/// Returns the verdict and the new expected number.
pub fn check(expected: Option<u16>, seq: u16) -> (SeqCheck, u16) {
    let next = next_seq(seq);
    match expected {
        _ if seq == 0 => (SeqCheck::InOrder, next),
        None => (SeqCheck::UnknownGap, next),
        Some(e) if e == seq => (SeqCheck::InOrder, next),
        Some(e) => {
            // Distance forward on the 1..=0x7FFF ring (0 only ever starts a sequence).
            let e = if e == 0 { 1 } else { e };
            let fwd = (seq as u32 + MAX_SEQ as u32 - e as u32) % MAX_SEQ as u32;
            if fwd < (MAX_SEQ as u32) / 2 {
                (SeqCheck::Gap { lost: fwd }, next)
            } else {
                (SeqCheck::Behind, expected.unwrap_or(next))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mess_type_round_trip() {
        for s in [0u16, 1, 2, 0x1234, MAX_SEQ] {
            assert_eq!(seq_of(mess_type_for(s)), Some(s));
        }
        assert_eq!(seq_of(5), None);
        assert_eq!(seq_of(-1), Some(MAX_SEQ));
        assert_eq!(mess_type_for(0) as u16, 0x8000);
    }

    #[test]
    fn counter_wraps_to_one() {
        let mut c = SeqCounter::default();
        assert_eq!(c.peek(), 0);
        c.advance();
        assert_eq!(c.peek(), 1);
        let mut c = SeqCounter { next: MAX_SEQ };
        c.advance();
        assert_eq!(c.peek(), 1);
    }

    #[test]
    fn gaps() {
        assert_eq!(check(None, 0), (SeqCheck::InOrder, 1));
        assert_eq!(check(None, 7), (SeqCheck::UnknownGap, 8));
        assert_eq!(check(Some(8), 8), (SeqCheck::InOrder, 9));
        assert_eq!(check(Some(8), 11), (SeqCheck::Gap { lost: 3 }, 12));
        assert_eq!(check(Some(MAX_SEQ), 2), (SeqCheck::Gap { lost: 2 }, 3));
        assert_eq!(check(Some(1), 2), (SeqCheck::Gap { lost: 1 }, 3));
        assert_eq!(check(Some(50), 0), (SeqCheck::InOrder, 1));
        assert_eq!(check(Some(50), 40), (SeqCheck::Behind, 50));
    }

    #[test]
    fn handover_format() {
        let mut b = Vec::new();
        assert!(encode_handover(b"#m1234#localhost", 42, &mut b));
        assert_eq!(b, b"mls-seq-handover #m1234#localhost 42\n");
        assert_eq!(
            decode_handover(HANDOVER_MESS_TYPE, &b),
            Some((&b"#m1234#localhost"[..], 42))
        );
        assert_eq!(
            seq_of(HANDOVER_MESS_TYPE),
            None,
            "a hand-over is unnumbered"
        );
        // Appends to what is there.
        let mut b = b"x".to_vec();
        assert!(encode_handover(b"#a#h", MAX_SEQ, &mut b));
        assert_eq!(b, b"xmls-seq-handover #a#h 32767\n");
        // What cannot be carried is refused, nothing appended.
        let mut b = Vec::new();
        for bad in [
            &b""[..],
            b"#",
            b"##",
            b"m1234#h",
            b"#m1234",
            b"#a b#h",
            b"#a\n#h",
        ] {
            assert!(!encode_handover(bad, 1, &mut b), "{bad:?}");
        }
        assert!(!encode_handover(&[b'#'; 32], 1, &mut b));
        assert!(!encode_handover(b"#a#h", MAX_SEQ + 1, &mut b));
        assert!(b.is_empty());
    }

    #[test]
    fn handover_decode_is_exact() {
        let t = HANDOVER_MESS_TYPE;
        let ok: &[u8] = b"mls-seq-handover #a#h 7\n";
        assert_eq!(decode_handover(t, ok), Some((&b"#a#h"[..], 7)));
        assert_eq!(
            decode_handover(t, b"mls-seq-handover #a#h 0\n"),
            Some((&b"#a#h"[..], 0))
        );
        assert_eq!(decode_handover(0, ok), None);
        assert_eq!(decode_handover(mess_type_for(7), ok), None);
        for bad in [
            &b"mls-seq-handover #a#h 7"[..],
            b"mls-seq-handover #a#h 7\n\n",
            b"mls-seq-handover #a#h 07\n",
            b"mls-seq-handover #a#h 32768\n",
            b"mls-seq-handover #a#h 99999999999\n",
            b"mls-seq-handover #a#h -1\n",
            b"mls-seq-handover #a#h +1\n",
            b"mls-seq-handover #a#h  7\n",
            b"mls-seq-handover  #a#h 7\n",
            b"mls-seq-handover #a#h 7 \n",
            b"mls-seq-handover #a#h\n",
            b"mls-seq-handover a#h 7\n",
            b"mls-seq-handover #ah 7\n",
            b"mls-seq-handover #a#h 7\r\n",
            b"MLS-SEQ-HANDOVER #a#h 7\n",
            b" mls-seq-handover #a#h 7\n",
            b"mls-seq-handover #a#h 1 2\n",
            b"",
        ] {
            assert_eq!(
                decode_handover(t, bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
