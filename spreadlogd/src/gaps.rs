//! Gap detection (CONTRACTS §2): per (sender private group, group) the next expected sequence
//! number; skipped numbers are counted as lost lines, unnumbered messages are never counted. The
//! table is saved at exit and reloaded at start, so a restart reports what it missed.
//!
//! A sequence hand-over (a sender continuing under a new private name, `spread_sys::seq`) is
//! checked against the old name's entry like a numbered message, then that entry is forgotten.
//!
//! File format (text, one entry a line): `sender<TAB>group<TAB>expected<TAB>last_seen_unix`.
//! Names are printable ASCII without spaces (Spread names), so tabs cannot occur in them.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use spread_sys::seq::{self, SeqCheck};

/// Entries not seen for this long are dropped when the table is saved (senders are per process).
pub const FORGET_AFTER_SECS: u64 = 7 * 24 * 3600;

/// What one message meant for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unnumbered,
    InOrder,
    Gap(u32),
    UnknownGap,
    Behind,
}

#[derive(Debug, Default)]
pub struct GapTable {
    /// Key: `sender TAB group` (one allocation per new pair, none per message).
    expected: HashMap<Vec<u8>, (u16, u64)>,
    scratch: Vec<u8>,
    pub lost_lines: u64,
    pub gaps: u64,
    pub unknown_gaps: u64,
    pub behind: u64,
    /// Sequence hand-over messages seen.
    pub handovers: u64,
}

impl GapTable {
    pub fn new() -> GapTable {
        GapTable::default()
    }

    pub fn len(&self) -> usize {
        self.expected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }

    /// Account for one received message; `now` is Unix seconds.
    pub fn observe(&mut self, sender: &[u8], group: &[u8], mess_type: i16, now: u64) -> Verdict {
        let Some(s) = seq::seq_of(mess_type) else {
            return Verdict::Unnumbered;
        };
        self.set_key(sender, group);
        let check = match self.expected.get_mut(self.scratch.as_slice()) {
            Some(e) => {
                let (check, next) = seq::check(Some(e.0), s);
                *e = (next, now);
                check
            }
            None => {
                let (check, next) = seq::check(None, s);
                self.expected.insert(self.scratch.clone(), (next, now));
                check
            }
        };
        self.count(check)
    }

    /// Account for a sequence hand-over received on `group`: `old_sender` continues under another
    /// name and would have numbered its next message to `group` with `next`. Checked like a
    /// numbered message from `old_sender` (a skipped tail is a gap), then the old entry is
    /// forgotten.
    pub fn observe_handover(&mut self, old_sender: &[u8], group: &[u8], next: u16) -> Verdict {
        self.handovers += 1;
        self.set_key(old_sender, group);
        let expected = self.expected.remove(self.scratch.as_slice()).map(|e| e.0);
        // (`next` 0: the old name never numbered anything for this group, nothing to check.)
        self.count(seq::check(expected, next).0)
    }

    fn set_key(&mut self, sender: &[u8], group: &[u8]) {
        self.scratch.clear();
        self.scratch.extend_from_slice(sender);
        self.scratch.push(b'\t');
        self.scratch.extend_from_slice(group);
    }

    fn count(&mut self, check: SeqCheck) -> Verdict {
        match check {
            SeqCheck::InOrder => Verdict::InOrder,
            SeqCheck::Gap { lost } => {
                self.gaps += 1;
                self.lost_lines += u64::from(lost);
                Verdict::Gap(lost)
            }
            SeqCheck::UnknownGap => {
                self.unknown_gaps += 1;
                Verdict::UnknownGap
            }
            SeqCheck::Behind => {
                self.behind += 1;
                Verdict::Behind
            }
        }
    }

    pub fn save(&self, path: &Path, now: u64) -> io::Result<()> {
        let mut text = Vec::new();
        for (key, (next, seen)) in &self.expected {
            if now.saturating_sub(*seen) > FORGET_AFTER_SECS {
                continue;
            }
            text.extend_from_slice(key);
            writeln!(text, "\t{next}\t{seen}")?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Write a new file and rename it over the old one: a crash mid-save keeps the old table.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, path)
    }

    /// Load a saved table. A missing file is an empty table; malformed lines are reported as an
    /// error naming the line.
    pub fn load(path: &Path) -> io::Result<GapTable> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(GapTable::new()),
            Err(e) => return Err(e),
        };
        let mut t = GapTable::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
            let parse = |b: &[u8]| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            };
            match (
                f.as_slice(),
                f.get(2).and_then(|b| parse(b)),
                f.get(3).and_then(|b| parse(b)),
            ) {
                ([sender, group, _, _], Some(next), Some(seen))
                    if next <= u64::from(seq::MAX_SEQ) =>
                {
                    let mut key = sender.to_vec();
                    key.push(b'\t');
                    key.extend_from_slice(group);
                    t.expected.insert(key, (next as u16, seen));
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}:{}: malformed gap table line", path.display(), i + 1),
                    ));
                }
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_and_ignores_unnumbered() {
        let mut t = GapTable::new();
        let m = seq::mess_type_for;
        assert_eq!(t.observe(b"#a#h", b"g", 0, 1), Verdict::Unnumbered);
        assert_eq!(t.observe(b"#a#h", b"g", m(0), 1), Verdict::InOrder);
        assert_eq!(t.observe(b"#a#h", b"g", m(1), 1), Verdict::InOrder);
        assert_eq!(t.observe(b"#a#h", b"g", m(5), 1), Verdict::Gap(3));
        assert_eq!(t.observe(b"#a#h", b"other", m(5), 1), Verdict::UnknownGap);
        assert_eq!(t.observe(b"#b#h", b"g", m(0), 1), Verdict::InOrder);
        assert_eq!(t.observe(b"#a#h", b"g", m(3), 1), Verdict::Behind);
        assert_eq!(t.observe(b"#a#h", b"g", m(0), 1), Verdict::InOrder);
        assert_eq!(
            (t.lost_lines, t.gaps, t.unknown_gaps, t.behind),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn handover_checks_the_old_sequence_then_forgets_it() {
        let mut t = GapTable::new();
        let m = seq::mess_type_for;
        for s in 0..5 {
            t.observe(b"#old#h", b"g", m(s), 1);
            t.observe(b"#old#h", b"g2", m(s), 1);
        }
        // Lines 5..8 were handed over on the old name but never arrived.
        assert_eq!(t.observe_handover(b"#old#h", b"g", 8), Verdict::Gap(3));
        assert_eq!((t.gaps, t.lost_lines, t.handovers), (1, 3, 1));
        // Nothing lost on g2; the entries are gone either way.
        assert_eq!(t.observe_handover(b"#old#h", b"g2", 5), Verdict::InOrder);
        assert!(t.is_empty());
        // The new name starts at 0.
        assert_eq!(t.observe(b"#new#h", b"g", m(0), 1), Verdict::InOrder);
        // A hand-over from a name never seen on that group: lines went missing, how many is unknown.
        assert_eq!(
            t.observe_handover(b"#other#h", b"g", 4),
            Verdict::UnknownGap
        );
        assert_eq!(t.observe_handover(b"#other#h", b"g", 0), Verdict::InOrder);
        // A hand-over behind what was seen (a repeat) is no gap.
        for s in 0..5 {
            t.observe(b"#x#h", b"g", m(s), 1);
        }
        assert_eq!(t.observe_handover(b"#x#h", b"g", 3), Verdict::Behind);
        assert_eq!(
            (t.gaps, t.lost_lines, t.unknown_gaps, t.behind),
            (1, 3, 1, 1)
        );
        assert_eq!(t.len(), 1, "only #new#h is left");
    }

    #[test]
    fn saved_table_reports_what_a_restart_missed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/gaps");
        let mut t = GapTable::new();
        let m = seq::mess_type_for;
        for s in 0..10 {
            t.observe(b"#a#h", b"g", m(s), 100);
        }
        t.save(&p, 100).unwrap();
        let mut t2 = GapTable::load(&p).unwrap();
        assert_eq!(t2.len(), 1);
        assert_eq!(t2.observe(b"#a#h", b"g", m(15), 200), Verdict::Gap(5));
        assert!(
            GapTable::load(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
        std::fs::write(&p, "x\ty\n").unwrap();
        let e = GapTable::load(&p).unwrap_err().to_string();
        assert!(e.contains(":1: malformed"), "{e}");
    }

    #[test]
    fn old_entries_are_forgotten_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gaps");
        let mut t = GapTable::new();
        t.observe(b"#old#h", b"g", seq::mess_type_for(0), 0);
        t.observe(
            b"#new#h",
            b"g",
            seq::mess_type_for(0),
            FORGET_AFTER_SECS + 10,
        );
        t.save(&p, FORGET_AFTER_SECS + 10).unwrap();
        assert_eq!(GapTable::load(&p).unwrap().len(), 1);
    }
}
