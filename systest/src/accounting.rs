//! CONTRACTS §1/§2 as one check: every line sent is in the central file exactly once, or was lost
//! after hand-over and counted as a gap by spreadlogd; nothing is dropped before hand-over.

use std::collections::BTreeMap;

use crate::tally::Tally;

/// What the senders say about lines they could not hand over directly.
#[derive(Debug, Default, Clone, Copy)]
pub struct SenderBook {
    pub spooled: u64,
    pub replayed: u64,
    /// Lines lost before hand-over (spool full or unwritable).
    pub dropped: u64,
}

impl SenderBook {
    pub fn add(&mut self, o: SenderBook) {
        self.spooled += o.spooled;
        self.replayed += o.replayed;
        self.dropped += o.dropped;
    }
}

/// The outcome of one scenario, printable as its closing counts.
#[derive(Debug)]
pub struct Accounting {
    pub sent: u64,
    pub written_distinct: u64,
    pub written_total: u64,
    pub missing: u64,
    pub duplicates: Vec<String>,
    pub lost_in_gaps: u64,
    pub unknown_gaps: u64,
    pub repeats: u64,
    pub senders: SenderBook,
}

impl Accounting {
    pub fn new(
        tally: &Tally,
        sent: &[(&str, u64)],
        logd: &BTreeMap<String, u64>,
        senders: SenderBook,
    ) -> Accounting {
        let get = |k: &str| logd.get(k).copied().unwrap_or(0);
        let missing = sent
            .iter()
            .map(|(w, n)| tally.missing(w, *n).len() as u64)
            .sum();
        let ids: Vec<&str> = sent.iter().map(|(w, _)| *w).collect();
        let mine = |w: &String| ids.contains(&w.as_str());
        Accounting {
            sent: sent.iter().map(|(_, n)| n).sum(),
            written_distinct: tally.seen.keys().filter(|(w, _)| mine(w)).count() as u64,
            written_total: tally
                .seen
                .iter()
                .filter(|((w, _), _)| mine(w))
                .map(|(_, &v)| u64::from(v))
                .sum(),
            missing,
            duplicates: tally.duplicates(),
            lost_in_gaps: get("lines_lost_in_gaps"),
            unknown_gaps: get("unknown_gaps"),
            repeats: get("repeats"),
            senders,
        }
    }

    /// Every line accounted for: written once, or counted as lost after hand-over.
    pub fn balanced(&self) -> bool {
        self.missing == self.lost_in_gaps + self.senders.dropped
            && self.senders.dropped == 0
            && self.unknown_gaps == 0
            && self.duplicates.len() as u64 <= self.repeats
            && self.senders.spooled == self.senders.replayed
    }

    pub fn assert_balanced(&self, context: &str) {
        assert!(
            self.balanced(),
            "lines not accounted for: {self}\n{context}"
        );
    }
}

impl std::fmt::Display for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} = written {} distinct ({} lines, duplicates {} {:?}, repeats counted {}) + \
             missing {} [lost in gaps {}, unknown gaps {}, dropped before hand-over {}]; \
             spooled {}, replayed {}",
            self.sent,
            self.written_distinct,
            self.written_total,
            self.duplicates.len(),
            &self.duplicates[..self.duplicates.len().min(5)],
            self.repeats,
            self.missing,
            self.lost_in_gaps,
            self.unknown_gaps,
            self.senders.dropped,
            self.senders.spooled,
            self.senders.replayed
        )
    }
}
