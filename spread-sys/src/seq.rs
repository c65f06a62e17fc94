//! Sequence numbers carried in `mess_type` for gap detection (CONTRACTS §2).
//!
//! A numbered message has `mess_type = 0x8000 | seq` with `seq` in 0..=0x7FFF. `seq` 0 starts a new
//! sequence; after 0x7FFF the counter wraps to 1, never to 0. Messages without the 0x8000 bit are
//! unnumbered and never counted as gaps.
//!
//! A sender counts the lines it numbered on each group with a wide, never-wrapping count
//! ([`SeqCounter::issued`]); the wire carries only its 15-bit image ([`wire_seq`]). The count is
//! what the sender announces on the control channel (`crate::control`), so a receiver can tell
//! exactly how many lines it missed even at the tail of a sequence.
//!
//! # The previous release's hand-over
//!
//! Senders before the control channel sent a sequence hand-over to the log group itself, as an
//! unnumbered message with `mess_type` [`HANDOVER_MESS_TYPE`] and the body
//! `mls-seq-handover <old private group> <next seq>\n`. Collectors still recognise it
//! ([`decode_handover`]) so that such a message is accounted for and never written to a log file;
//! nothing sends it any more.

use crate::names::is_private_group;

/// The `mess_type` bit that marks a numbered message.
pub const NUMBERED: u16 = 0x8000;
/// Largest sequence number.
pub const MAX_SEQ: u16 = 0x7FFF;

/// The reserved `mess_type` of a sequence hand-over message (unnumbered: the 0x8000 bit is clear).
pub const HANDOVER_MESS_TYPE: i16 = 0x7F00;

const HANDOVER_PREFIX: &[u8] = b"mls-seq-handover ";

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
    if !is_private_group(old)
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

/// The wire number of line `index` of a sequence (0-based): 0 for the first line, then 1, 2, ...
/// 0x7FFF, 1, 2, ... (0 only ever starts a sequence).
pub fn wire_seq(index: u64) -> u16 {
    if index == 0 {
        0
    } else {
        ((index - 1) % u64::from(MAX_SEQ) + 1) as u16
    }
}

/// A sender's counter for one (connection, group): hands out 0 first, then 1, 2, ...
/// Advance it only for a message that was handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounter {
    issued: u64,
}

impl SeqCounter {
    /// The wire number the next handed-over message carries.
    pub fn peek(&self) -> u16 {
        wire_seq(self.issued)
    }
    /// How many lines this sequence numbered so far (never wraps): the `next` a sender announces.
    pub fn issued(&self) -> u64 {
        self.issued
    }
    /// Record that the message numbered `peek()` was handed over.
    pub fn advance(&mut self) {
        self.issued += 1;
    }
    /// Forget state: the next message starts a new sequence (seq 0).
    pub fn reset(&mut self) {
        self.issued = 0;
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
        let mut c = SeqCounter {
            issued: u64::from(MAX_SEQ),
        };
        assert_eq!(c.peek(), MAX_SEQ);
        c.advance();
        assert_eq!(c.peek(), 1);
        assert_eq!(c.issued(), u64::from(MAX_SEQ) + 1);
    }

    #[test]
    fn wire_seq_follows_the_counter() {
        let mut c = SeqCounter::default();
        let mut expected = None;
        for i in 0..70_000u64 {
            assert_eq!(wire_seq(i), c.peek());
            let (verdict, next) = check(expected, c.peek());
            assert_eq!(verdict, SeqCheck::InOrder, "line {i}");
            expected = Some(next);
            c.advance();
        }
        assert_eq!(wire_seq(u64::MAX), ((u64::MAX - 1) % 0x7FFF + 1) as u16);
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
    fn legacy_handover_is_unnumbered() {
        assert_eq!(seq_of(HANDOVER_MESS_TYPE), None);
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
