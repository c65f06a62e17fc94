//! Sequence numbers carried in `mess_type` for gap detection (CONTRACTS §2).
//!
//! A numbered message has `mess_type = 0x8000 | seq` with `seq` in 0..=0x7FFF. `seq` 0 starts a new
//! sequence; after 0x7FFF the counter wraps to 1, never to 0. Messages without the 0x8000 bit are
//! unnumbered and never counted as gaps.

/// The `mess_type` bit that marks a numbered message.
pub const NUMBERED: u16 = 0x8000;
/// Largest sequence number.
pub const MAX_SEQ: u16 = 0x7FFF;

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
}
