//! Gap detection (CONTRACTS §2): per (sender private group, group) the next expected sequence
//! number; skipped numbers are counted as lost lines, unnumbered messages are never counted. The
//! table is saved at exit and reloaded at start, so a restart reports what it missed.
//!
//! A sender's announcement of its next number (`spread_sys::control`, on the control channel) is
//! checked like a numbered message, so lines lost at the tail of a sequence are counted too. A
//! sequence hand-over (a sender continuing under a new private name) is checked against the old
//! name's entry the same way, then that entry is forgotten. Announced numbers are wide (they never
//! wrap): for a sender never seen, the count is exact when the table holds the collector's whole
//! history (it has a state file), and of unknown size otherwise.
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
    Gap(u64),
    UnknownGap,
    Behind,
}

/// One (sender, group): the index of the line expected next, counted from the start of the
/// sender's sequence. `exact` is false while the table only knows it modulo the wire's 15 bits
/// (a sender first seen in mid-sequence, or a table saved by the previous release); a sender's
/// announcement makes it exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    next: u64,
    exact: bool,
    seen: u64,
}

impl Entry {
    fn wire(&self) -> u16 {
        seq::wire_seq(self.next)
    }
}

#[derive(Debug, Default)]
pub struct GapTable {
    /// Key: `sender TAB group` (one allocation per new pair, none per message).
    expected: HashMap<Vec<u8>, Entry>,
    scratch: Vec<u8>,
    pub lost_lines: u64,
    pub gaps: u64,
    pub unknown_gaps: u64,
    pub behind: u64,
    /// Sequence hand-overs seen.
    pub handovers: u64,
    /// Next-number announcements seen (for groups this collector logs).
    pub announcements: u64,
    /// True when every sender this collector ever saw is in the table (it is saved and reloaded
    /// through a state file): a sender never seen then really sent nothing that arrived.
    pub knows_history: bool,
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
        let (check, entry) = match self.expected.get(self.scratch.as_slice()) {
            // Seq 0 (re)starts a sequence.
            _ if s == 0 => (
                SeqCheck::InOrder,
                Entry {
                    next: 1,
                    exact: true,
                    seen: now,
                },
            ),
            None => (
                SeqCheck::UnknownGap,
                Entry {
                    next: u64::from(s) + 1,
                    exact: false,
                    seen: now,
                },
            ),
            Some(e) => {
                let (check, _) = seq::check(Some(e.wire()), s);
                let next = match check {
                    SeqCheck::Gap { lost } => e.next + u64::from(lost) + 1,
                    SeqCheck::Behind => e.next,
                    SeqCheck::InOrder | SeqCheck::UnknownGap => e.next + 1,
                };
                (
                    check,
                    Entry {
                        next,
                        seen: now,
                        ..*e
                    },
                )
            }
        };
        self.put(entry);
        self.count(check)
    }

    /// Account for `sender`'s announcement that it numbered `next` lines to `group` so far
    /// (wide, never wrapping). Lines the table still expected are lost; an announcement behind
    /// what arrived changes nothing (and is no repeated line).
    pub fn observe_next(&mut self, sender: &[u8], group: &[u8], next: u64, now: u64) -> Verdict {
        self.announcements += 1;
        self.set_key(sender, group);
        let entry = self.expected.get(self.scratch.as_slice()).copied();
        let verdict = self.check_wide(entry, next);
        if next > 0 && verdict != Verdict::Behind {
            self.put(Entry {
                next,
                exact: true,
                seen: now,
            });
        }
        verdict
    }

    /// Account for a sequence hand-over: `old_sender` continues under another name, and had
    /// numbered `next` lines to `group`. Checked like an announcement of `old_sender` (a
    /// skipped tail is a gap), then the old entry is forgotten.
    pub fn observe_handover(&mut self, old_sender: &[u8], group: &[u8], next: u64) -> Verdict {
        self.handovers += 1;
        self.set_key(old_sender, group);
        let entry = self.expected.remove(self.scratch.as_slice());
        self.check_wide(entry, next)
    }

    /// The previous release's hand-over (`spread_sys::seq::decode_handover`): a 15-bit `next`,
    /// sent on the log group itself.
    pub fn observe_legacy_handover(
        &mut self,
        old_sender: &[u8],
        group: &[u8],
        next: u16,
    ) -> Verdict {
        self.handovers += 1;
        self.set_key(old_sender, group);
        let expected = self
            .expected
            .remove(self.scratch.as_slice())
            .map(|e| e.wire());
        // (`next` 0: the old name never numbered anything for this group, nothing to check.)
        self.count(seq::check(expected, next).0)
    }

    /// A wide count against what the table expects. Behind is not counted as a repeat: an
    /// announcement repeats no line.
    fn check_wide(&mut self, entry: Option<Entry>, next: u64) -> Verdict {
        if next == 0 {
            return Verdict::InOrder;
        }
        match entry {
            // Every line 0..next was lost: none ever arrived here.
            None if self.knows_history => self.count_lost(next),
            None => self.count(SeqCheck::UnknownGap),
            Some(e) if e.exact => match next.cmp(&e.next) {
                std::cmp::Ordering::Greater => self.count_lost(next - e.next),
                std::cmp::Ordering::Equal => Verdict::InOrder,
                std::cmp::Ordering::Less => Verdict::Behind,
            },
            // Known only modulo the wire's ring: compare there.
            Some(e) => match seq::check(Some(e.wire()), seq::wire_seq(next)).0 {
                SeqCheck::Behind => Verdict::Behind,
                other => self.count(other),
            },
        }
    }

    fn set_key(&mut self, sender: &[u8], group: &[u8]) {
        self.scratch.clear();
        self.scratch.extend_from_slice(sender);
        self.scratch.push(b'\t');
        self.scratch.extend_from_slice(group);
    }

    /// Store `entry` under the current key (allocating the key only for a new pair).
    fn put(&mut self, entry: Entry) {
        match self.expected.get_mut(self.scratch.as_slice()) {
            Some(e) => *e = entry,
            None => {
                self.expected.insert(self.scratch.clone(), entry);
            }
        }
    }

    fn count_lost(&mut self, lost: u64) -> Verdict {
        self.gaps += 1;
        self.lost_lines += lost;
        Verdict::Gap(lost)
    }

    fn count(&mut self, check: SeqCheck) -> Verdict {
        match check {
            SeqCheck::InOrder => Verdict::InOrder,
            SeqCheck::Gap { lost } => self.count_lost(u64::from(lost)),
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
        for (key, e) in &self.expected {
            if now.saturating_sub(e.seen) > FORGET_AFTER_SECS {
                continue;
            }
            text.extend_from_slice(key);
            writeln!(text, "\t{}\t{}\t{}", e.next, e.seen, u8::from(e.exact))?;
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
            // A first start: this collector's history is empty, and complete.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut t = GapTable::new();
                t.knows_history = true;
                return Ok(t);
            }
            Err(e) => return Err(e),
        };
        let mut t = GapTable::new();
        t.knows_history = true;
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
            let (next, seen) = (
                f.get(2).and_then(|b| parse(b)),
                f.get(3).and_then(|b| parse(b)),
            );
            let entry = match (f.as_slice(), next, seen) {
                // The previous release's line: the 15-bit number expected next.
                ([_, _, _, _], Some(next), Some(seen)) if next <= u64::from(seq::MAX_SEQ) => {
                    Some(Entry {
                        next,
                        exact: false,
                        seen,
                    })
                }
                ([_, _, _, _, b"0" | b"1"], Some(next), Some(seen)) => Some(Entry {
                    next,
                    exact: f[4] == b"1",
                    seen,
                }),
                _ => None,
            };
            match entry {
                Some(entry) => {
                    let mut key = f[0].to_vec();
                    key.push(b'\t');
                    key.extend_from_slice(f[1]);
                    t.expected.insert(key, entry);
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

    /// `sender` numbered lines 0..count to `group`, and every one arrived.
    fn seen(t: &mut GapTable, sender: &[u8], group: &[u8], count: u16) {
        for s in 0..count {
            t.observe(sender, group, seq::mess_type_for(s), 1);
        }
    }

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
    fn legacy_handover_checks_the_old_sequence_then_forgets_it() {
        let mut t = GapTable::new();
        let m = seq::mess_type_for;
        seen(&mut t, b"#old#h", b"g", 5);
        seen(&mut t, b"#old#h", b"g2", 5);
        // Lines 5..8 were handed over on the old name but never arrived.
        assert_eq!(
            t.observe_legacy_handover(b"#old#h", b"g", 8),
            Verdict::Gap(3)
        );
        assert_eq!((t.gaps, t.lost_lines, t.handovers), (1, 3, 1));
        // Nothing lost on g2; the entries are gone either way.
        assert_eq!(
            t.observe_legacy_handover(b"#old#h", b"g2", 5),
            Verdict::InOrder
        );
        assert!(t.is_empty());
        // The new name starts at 0.
        assert_eq!(t.observe(b"#new#h", b"g", m(0), 1), Verdict::InOrder);
        // A hand-over from a name never seen on that group: lines went missing, how many is unknown.
        assert_eq!(
            t.observe_legacy_handover(b"#other#h", b"g", 4),
            Verdict::UnknownGap
        );
        assert_eq!(
            t.observe_legacy_handover(b"#other#h", b"g", 0),
            Verdict::InOrder
        );
        // A hand-over behind what was seen (a repeat) is no gap.
        seen(&mut t, b"#x#h", b"g", 5);
        assert_eq!(t.observe_legacy_handover(b"#x#h", b"g", 3), Verdict::Behind);
        assert_eq!(
            (t.gaps, t.lost_lines, t.unknown_gaps, t.behind),
            (1, 3, 1, 1)
        );
        assert_eq!(t.len(), 1, "only #new#h is left");
    }

    #[test]
    fn announcements_count_a_lost_tail() {
        let mut t = GapTable::new();
        let m = seq::mess_type_for;
        seen(&mut t, b"#a#h", b"g", 5);
        // Lines 5..9 were sent, none arrived, and nothing numbered followed.
        assert_eq!(t.observe_next(b"#a#h", b"g", 9, 2), Verdict::Gap(4));
        // Repeated announcements of the same number change nothing.
        assert_eq!(t.observe_next(b"#a#h", b"g", 9, 3), Verdict::InOrder);
        // The next line continues where the announcement said.
        assert_eq!(t.observe(b"#a#h", b"g", m(9), 4), Verdict::InOrder);
        // An announcement behind what arrived is no repeat and moves nothing back.
        assert_eq!(t.observe_next(b"#a#h", b"g", 3, 5), Verdict::Behind);
        assert_eq!(t.observe(b"#a#h", b"g", m(10), 6), Verdict::InOrder);
        assert_eq!(
            (t.gaps, t.lost_lines, t.behind, t.announcements),
            (1, 4, 0, 3)
        );
        // Nothing numbered: nothing to check.
        assert_eq!(t.observe_next(b"#z#h", b"g", 0, 7), Verdict::InOrder);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn announced_numbers_never_wrap() {
        let mut t = GapTable::new();
        let m = seq::mess_type_for;
        t.observe(b"#a#h", b"g", m(0), 1);
        // 32767 lines later the wire number is back at 1, where it was; the count says how far.
        let next = u64::from(seq::MAX_SEQ) + 1;
        assert_eq!(seq::wire_seq(next), seq::wire_seq(1));
        assert_eq!(
            t.observe_next(b"#a#h", b"g", next, 2),
            Verdict::Gap(next - 1)
        );
        assert_eq!(
            t.observe(b"#a#h", b"g", m(seq::wire_seq(next)), 3),
            Verdict::InOrder
        );
        // Lines keep the count exact across wraps: 100,000 in order, then an announcement.
        for i in next + 1..next + 100_000 {
            assert_eq!(
                t.observe(b"#a#h", b"g", m(seq::wire_seq(i)), 4),
                Verdict::InOrder
            );
        }
        assert_eq!(
            t.observe_next(b"#a#h", b"g", next + 100_000, 5),
            Verdict::InOrder
        );
        assert_eq!(
            t.observe_next(b"#a#h", b"g", next + 100_000 + 40_000, 6),
            Verdict::Gap(40_000)
        );
    }

    #[test]
    fn a_sender_never_seen_is_exact_only_with_the_whole_history() {
        let dir = tempfile::tempdir().unwrap();
        // First start with a state file: the history is known (and empty).
        let mut t = GapTable::load(&dir.path().join("gaps")).unwrap();
        assert!(t.knows_history);
        assert_eq!(
            t.observe_next(b"#a#h", b"g", 70_000, 1),
            Verdict::Gap(70_000)
        );
        assert_eq!(
            t.observe(b"#a#h", b"g", seq::mess_type_for(seq::wire_seq(70_000)), 2),
            Verdict::InOrder
        );
        assert_eq!((t.gaps, t.lost_lines, t.unknown_gaps), (1, 70_000, 0));
        // Without one, earlier lines may have been written by an earlier run: size unknown.
        let mut t = GapTable::new();
        assert_eq!(t.observe_next(b"#a#h", b"g", 5, 1), Verdict::UnknownGap);
        assert_eq!(
            t.observe(b"#a#h", b"g", seq::mess_type_for(5), 2),
            Verdict::InOrder
        );
        assert_eq!((t.gaps, t.lost_lines, t.unknown_gaps), (0, 0, 1));
    }

    #[test]
    fn handover_checks_the_old_sequence_then_forgets_it() {
        let mut t = GapTable::load(&tempfile::tempdir().unwrap().path().join("x")).unwrap();
        seen(&mut t, b"#old#h", b"g", 5);
        assert_eq!(t.observe_handover(b"#old#h", b"g", 8), Verdict::Gap(3));
        assert!(t.is_empty());
        // A hand-over of a name never seen: all its lines were lost (the history is known).
        assert_eq!(t.observe_handover(b"#other#h", b"g", 4), Verdict::Gap(4));
        assert_eq!(t.observe_handover(b"#x#h", b"g", 0), Verdict::InOrder);
        assert_eq!((t.gaps, t.lost_lines, t.handovers), (2, 7, 3));
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
        t.observe_next(b"#b#h", b"g", 70_000, 100);
        t.save(&p, 100).unwrap();
        let mut t2 = GapTable::load(&p).unwrap();
        assert_eq!(t2.len(), 2);
        assert_eq!(t2.observe(b"#a#h", b"g", m(15), 200), Verdict::Gap(5));
        // Wide numbers survive the save.
        assert_eq!(
            t2.observe_next(b"#b#h", b"g", 70_010, 200),
            Verdict::Gap(10)
        );
        // The previous release's file (four fields, 15-bit numbers) still loads.
        std::fs::write(&p, "#c#h\tg\t7\t100\n").unwrap();
        let mut t3 = GapTable::load(&p).unwrap();
        assert_eq!(t3.observe(b"#c#h", b"g", m(9), 200), Verdict::Gap(2));
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
