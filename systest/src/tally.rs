//! Counting request ids (`/i/<sender>/<n>`) in collected files: exact counts, duplicates, misses.

use std::collections::BTreeMap;
use std::path::Path;

/// The id of line `n` of sender `who`, as it appears in a URL and so in the log line.
pub fn id(who: &str, n: u64) -> String {
    format!("/i/{who}/{n}")
}

/// How often every `(sender, n)` id occurs in some text.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    pub seen: BTreeMap<(String, u64), u32>,
    /// Lines without an id.
    pub other: usize,
}

impl Tally {
    pub fn of_text(text: &str) -> Tally {
        let mut t = Tally::default();
        for line in text.lines() {
            match parse_id(line) {
                Some(k) => *t.seen.entry(k).or_default() += 1,
                None => t.other += 1,
            }
        }
        t
    }

    pub fn of_file(path: &Path) -> Tally {
        Tally::of_text(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// Merge several files (e.g. rotated segments).
    pub fn of_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Tally {
        let mut t = Tally::default();
        for p in paths {
            let u = Tally::of_file(p);
            t.other += u.other;
            for (k, v) in u.seen {
                *t.seen.entry(k).or_default() += v;
            }
        }
        t
    }

    /// Total lines with ids (duplicates included).
    pub fn total(&self) -> u64 {
        self.seen.values().map(|&v| u64::from(v)).sum()
    }

    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    pub fn duplicates(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|&(_, &v)| v > 1)
            .map(|((w, n), v)| format!("{} x{v}", id(w, *n)))
            .collect()
    }

    /// Ids of `who` in `0..sent` never seen.
    pub fn missing(&self, who: &str, sent: u64) -> Vec<u64> {
        (0..sent)
            .filter(|&n| !self.seen.contains_key(&(who.to_owned(), n)))
            .collect()
    }

    /// Seen ids of `who`.
    pub fn count_of(&self, who: &str) -> usize {
        self.seen.keys().filter(|(w, _)| w == who).count()
    }

    /// "who: seen/sent" for a failure message, with the first few missing ids.
    pub fn report(&self, sent: &[(&str, u64)]) -> String {
        let mut s = format!(
            "total {} lines, {} distinct, {} without id, duplicates {:?}",
            self.total(),
            self.distinct(),
            self.other,
            first(&self.duplicates(), 10)
        );
        for (who, n) in sent {
            let miss = self.missing(who, *n);
            s.push_str(&format!(
                "; {who}: {}/{n} seen, missing {} (first {:?})",
                self.count_of(who),
                miss.len(),
                first(&miss, 10)
            ));
        }
        s
    }
}

fn first<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    v.iter().take(n).cloned().collect()
}

fn parse_id(line: &str) -> Option<(String, u64)> {
    let at = line.find("/i/")?;
    let rest = &line[at + 3..];
    let (who, tail) = rest.split_once('/')?;
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    Some((who.to_owned(), digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ids_duplicates_and_misses() {
        let t = Tally::of_text("GET /i/a/0 200\n/i/a/2\n/i/a/2\nnoise\n/i/b/0\n");
        assert_eq!(t.total(), 4);
        assert_eq!(t.distinct(), 3);
        assert_eq!(t.other, 1);
        assert_eq!(t.duplicates(), vec!["/i/a/2 x2".to_owned()]);
        assert_eq!(t.missing("a", 3), vec![1]);
        assert_eq!(t.missing("b", 1), Vec::<u64>::new());
    }
}
