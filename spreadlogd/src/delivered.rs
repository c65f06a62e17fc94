//! Exactly once into the files (CONTRACTS "Acknowledged delivery"): which lines of which stream
//! and group this collector has written, kept durably in a journal beside the `StateFile`, so
//! a line resent after any crash — ours or the sender's — is recognised and written once.
//!
//! # Journal
//! An append-only text file, one record per line, grouped in transactions that end with
//! `mlsd1 commit`. Each flush of the log files is one transaction, written with one write(2)
//! after the log files were written:
//!
//! * `mlsd1 key <stream> <group> <sender> <unix time> <from>-<to>[,<from>-<to>…]` — every number
//!   written so far for (stream, group), and the sender's private group to acknowledge to;
//! * `mlsd1 file <dev> <ino> <size> <path>` — a log file's size once this transaction's lines
//!   were in it (path percent-encoded).
//!
//! A crash between the file write and the journal write leaves lines in a file that the journal
//! does not know. So at start, every log file whose inode is the one journaled and that is longer
//! than its committed size is **cut back** to that size: the lines after it were never
//! acknowledged, their senders still hold them and send them again. A crash before the file write
//! changes nothing. A torn last transaction (no `commit`) counts as not written. The journal is
//! rewritten as one snapshot transaction when it grows past [`COMPACT_AT`].
//!
//! Lines of senders without streams (the original module, `spuser`) in the batch being written
//! at such a crash are cut with the rest (and reported): nobody resends them, but the previous
//! collector did not promise them more.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use spread_sys::stream::StreamId;
use spread_sys::window::Ranges;

/// Rewrite the journal as a snapshot once it is this large.
pub const COMPACT_AT: u64 = 4 << 20;
/// Keys not written to for this long are dropped at compaction (a line resent later than
/// that would be written again).
pub const FORGET_AFTER_SECS: u64 = 30 * 24 * 3600;

const VERSION: &str = "mlsd1";

/// What the collector knows of one (stream, group).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    pub written: Ranges,
    /// Numbers accepted for the flush in progress (routed, not yet in a committed file).
    pending: Ranges,
    /// Repeats seen since start (not saved): the first is reported.
    repeats: u64,
    /// The private group the stream last sent from: where acks go.
    pub sender: String,
    pub last_seen: u64,
    /// Highest number the stream announced or sent: what it has numbered.
    pub announced: u64,
}

impl KeyState {
    /// Lines the stream numbered that are not written here (yet).
    pub fn missing(&self) -> u64 {
        self.announced.saturating_sub(self.written.count())
    }
}

/// A log file's size after a write of this transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

impl Touched {
    /// Describe `file` (at `path`) as it is now.
    pub fn of(path: &Path, file: &File) -> io::Result<Touched> {
        let m = file.metadata()?;
        Ok(Touched {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
        })
    }
}

/// Is a line new here?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Repeat,
}

/// What recovery did at start.
#[derive(Debug, Default)]
pub struct Recovery {
    pub keys: usize,
    /// Files cut back to their committed size: (path, size found, size kept).
    pub cut: Vec<(PathBuf, u64, u64)>,
    /// A last transaction without its commit was ignored.
    pub torn: bool,
}

/// (stream, group): what the journal keeps a state for.
type KeyId = (StreamId, Box<[u8]>);

#[derive(Default)]
pub struct Delivered {
    keys: HashMap<KeyId, KeyState>,
    files: HashMap<(u64, u64), Touched>,
    /// Keys with pending numbers or a changed state, since the last commit.
    dirty: Vec<KeyId>,
    journal: Option<(PathBuf, File, u64)>,
}

impl Delivered {
    /// In memory only (no StateFile): repeats are still recognised while the process runs.
    pub fn in_memory() -> Delivered {
        Delivered::default()
    }

    /// Open the journal at `path` (created if missing), recover, and cut log files back to their
    /// committed sizes.
    pub fn open(path: &Path) -> io::Result<(Delivered, Recovery)> {
        let mut d = Delivered::default();
        let mut rec = Recovery::default();
        match fs::read(path) {
            Ok(bytes) => rec.torn = d.replay(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for t in d.files.values() {
            let Ok(m) = fs::symlink_metadata(&t.path) else {
                continue;
            };
            if (m.dev(), m.ino()) != (t.dev, t.ino) || m.len() <= t.size {
                continue;
            }
            let f = OpenOptions::new().write(true).open(&t.path)?;
            f.set_len(t.size)?;
            rec.cut.push((t.path.clone(), m.len(), t.size));
        }
        rec.keys = d.keys.len();
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        d.journal = Some((path.to_owned(), file, len));
        if rec.torn || len >= COMPACT_AT {
            d.compact(now_unix())?;
        }
        Ok((d, rec))
    }

    /// Apply the committed transactions of a journal; true when a torn tail was ignored.
    fn replay(&mut self, bytes: &[u8]) -> bool {
        let mut keys = Vec::new();
        let mut files = Vec::new();
        for line in bytes.split(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(line);
            let mut w = text.split(' ');
            if w.next() != Some(VERSION) {
                continue;
            }
            match w.next() {
                Some("key") => {
                    if let Some(k) = parse_key(w) {
                        keys.push(k);
                    }
                }
                Some("file") => {
                    if let Some(f) = parse_file(w) {
                        files.push(f);
                    }
                }
                Some("commit") => {
                    for (k, s) in keys.drain(..) {
                        self.keys.insert(k, s);
                    }
                    for f in files.drain(..) {
                        self.files.insert((f.dev, f.ino), f);
                    }
                }
                _ => {}
            }
        }
        !keys.is_empty() || !files.is_empty()
    }

    /// A line `n` of (`stream`, `group`) arrived from `sender`: is it new? A new line counts as
    /// pending (so a second copy in the same batch is a repeat) until [`Delivered::commit`].
    pub fn check(
        &mut self,
        stream: StreamId,
        group: &[u8],
        n: u64,
        sender: &[u8],
        now: u64,
    ) -> Seen {
        let k = self.key_mut(stream, group, sender, now);
        k.announced = k.announced.max(n);
        if k.written.contains(n) || k.pending.contains(n) {
            return Seen::Repeat;
        }
        k.pending.insert(n, n);
        Seen::New
    }

    /// A stream says it numbered lines 1..=`last` to `group`.
    pub fn announced(
        &mut self,
        stream: StreamId,
        group: &[u8],
        last: u64,
        sender: &[u8],
        now: u64,
    ) -> &KeyState {
        let k = self.key_mut(stream, group, sender, now);
        k.announced = k.announced.max(last);
        k
    }

    fn key_mut(
        &mut self,
        stream: StreamId,
        group: &[u8],
        sender: &[u8],
        now: u64,
    ) -> &mut KeyState {
        let id = (stream, Box::<[u8]>::from(group));
        if !self.dirty.contains(&id) {
            self.dirty.push(id.clone());
        }
        let k = self.keys.entry(id).or_default();
        if k.sender.as_bytes() != sender {
            k.sender = String::from_utf8_lossy(sender).into_owned();
        }
        k.last_seen = now;
        k
    }

    /// Whether line `n` of (`stream`, `group`) is written or about to be (this batch).
    pub fn has(&self, stream: StreamId, group: &[u8], n: u64) -> bool {
        self.keys
            .get(&(stream, group.into()))
            .is_some_and(|k| k.written.contains(n) || k.pending.contains(n))
    }

    /// Count a repeat of (`stream`, `group`); true for the first one (to be reported).
    pub fn note_repeat(&mut self, stream: StreamId, group: &[u8]) -> bool {
        match self.keys.get_mut(&(stream, group.into())) {
            Some(k) => {
                k.repeats += 1;
                k.repeats == 1
            }
            None => false,
        }
    }

    pub fn get(&self, stream: StreamId, group: &[u8]) -> Option<&KeyState> {
        self.keys.get(&(stream, group.into()))
    }

    /// Lines numbered by the streams known here and not written (yet).
    pub fn missing(&self) -> u64 {
        self.keys.values().map(KeyState::missing).sum()
    }

    /// Every key, for acks after a restart and for metrics.
    pub fn keys(&self) -> impl Iterator<Item = (StreamId, &[u8], &KeyState)> {
        self.keys.iter().map(|((s, g), k)| (*s, &g[..], k))
    }

    /// The batch is in the files (`touched` lists their sizes now): record it, then the pending
    /// numbers count as written. Returns the keys whose state changed (to acknowledge).
    pub fn commit(&mut self, touched: &[Touched], now: u64) -> io::Result<Vec<KeyId>> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::new();
        for t in touched {
            write_file(&mut out, t);
            self.files.insert((t.dev, t.ino), t.clone());
        }
        for id in &dirty {
            if let Some(k) = self.keys.get_mut(id) {
                for &(a, b) in k.pending.ranges() {
                    k.written.insert(a, b);
                }
                k.pending = Ranges::default();
                write_key(&mut out, id, k);
            }
        }
        if out.is_empty() {
            return Ok(dirty);
        }
        out.extend_from_slice(b"mlsd1 commit\n");
        if let Some((_, file, len)) = &mut self.journal {
            file.write_all(&out)?;
            *len += out.len() as u64;
            if *len >= COMPACT_AT {
                self.compact(now)?;
            }
        }
        Ok(dirty)
    }

    /// The batch could not be written: its numbers are not written (they stay unacknowledged,
    /// and their senders send them again).
    pub fn abort(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(k) = self.keys.get_mut(&id) {
                k.pending = Ranges::default();
            }
        }
    }

    /// Rewrite the journal as one snapshot (write a temporary file, rename it over).
    fn compact(&mut self, now: u64) -> io::Result<()> {
        let Some((path, _, _)) = &self.journal else {
            return Ok(());
        };
        let path = path.clone();
        self.keys
            .retain(|_, k| now.saturating_sub(k.last_seen) < FORGET_AFTER_SECS);
        let mut out = Vec::new();
        for t in self.files.values() {
            write_file(&mut out, t);
        }
        for (id, k) in &self.keys {
            write_key(&mut out, id, k);
        }
        out.extend_from_slice(b"mlsd1 commit\n");
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        self.journal = Some((path, file, out.len() as u64));
        Ok(())
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn write_key(out: &mut Vec<u8>, id: &KeyId, k: &KeyState) {
    if k.written.ranges().is_empty() {
        return;
    }
    let ranges: Vec<String> = k
        .written
        .ranges()
        .iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect();
    let sender = if k.sender.is_empty() { "-" } else { &k.sender };
    let _ = writeln!(
        out,
        "{VERSION} key {} {} {sender} {} {}",
        id.0,
        String::from_utf8_lossy(&id.1),
        k.last_seen,
        ranges.join(",")
    );
}

fn write_file(out: &mut Vec<u8>, t: &Touched) {
    let mut path = String::new();
    for &b in t.path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02x}"));
        }
    }
    let _ = writeln!(out, "{VERSION} file {} {} {} {path}", t.dev, t.ino, t.size);
}

fn parse_key<'a>(mut w: impl Iterator<Item = &'a str>) -> Option<(KeyId, KeyState)> {
    let stream = StreamId::parse(w.next()?.as_bytes())?;
    let group: Box<[u8]> = w.next()?.as_bytes().into();
    let sender = w.next()?;
    let last_seen = w.next()?.parse().ok()?;
    let mut written = Ranges::default();
    for r in w.next()?.split(',') {
        let (a, b) = r.split_once('-')?;
        written.insert(a.parse().ok()?, b.parse().ok()?);
    }
    if w.next().is_some() {
        return None;
    }
    let announced = written.ranges().last().map_or(0, |r| r.1);
    let state = KeyState {
        written,
        pending: Ranges::default(),
        repeats: 0,
        sender: if sender == "-" {
            String::new()
        } else {
            sender.into()
        },
        last_seen,
        announced,
    };
    Some(((stream, group), state))
}

fn parse_file<'a>(mut w: impl Iterator<Item = &'a str>) -> Option<Touched> {
    let dev = w.next()?.parse().ok()?;
    let ino = w.next()?.parse().ok()?;
    let size = w.next()?.parse().ok()?;
    let enc = w.next()?.as_bytes();
    let mut path = Vec::new();
    let mut i = 0;
    while i < enc.len() {
        if enc[i] == b'%' {
            let hex = std::str::from_utf8(enc.get(i + 1..i + 3)?).ok()?;
            path.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            path.push(enc[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    Some(Touched {
        path: PathBuf::from(std::ffi::OsString::from_vec(path)),
        dev,
        ino,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: StreamId = StreamId::from_bits(0x5eed);

    /// Append `lines` to the log file the way a flush does, and describe it.
    fn write_lines(path: &Path, lines: &[&str]) -> Touched {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for l in lines {
            f.write_all(l.as_bytes()).unwrap();
        }
        Touched::of(path, &f).unwrap()
    }

    /// A sender resends `n..=m`: the lines the collector takes (writes) this time.
    fn deliver(
        d: &mut Delivered,
        path: &Path,
        range: std::ops::RangeInclusive<u64>,
    ) -> Vec<String> {
        let new: Vec<String> = range
            .filter(|&n| d.check(S, b"www", n, b"#web1#h", now_unix()) == Seen::New)
            .map(|n| format!("line {n}\n"))
            .collect();
        let refs: Vec<&str> = new.iter().map(String::as_str).collect();
        let t = write_lines(path, &refs);
        d.commit(&[t], now_unix()).unwrap();
        new
    }

    #[test]
    fn repeats_are_recognised_within_a_batch_and_after_commit() {
        let mut d = Delivered::in_memory();
        assert_eq!(d.check(S, b"www", 1, b"#a#h", 1), Seen::New);
        assert_eq!(d.check(S, b"www", 1, b"#a#h", 1), Seen::Repeat);
        assert_eq!(d.check(S, b"err", 1, b"#a#h", 1), Seen::New, "per group");
        d.commit(&[], 1).unwrap();
        assert_eq!(d.check(S, b"www", 1, b"#a#h", 1), Seen::Repeat);
        assert_eq!(d.check(S, b"www", 2, b"#a#h", 1), Seen::New);
        d.abort();
        assert_eq!(
            d.check(S, b"www", 2, b"#a#h", 1),
            Seen::New,
            "an aborted batch is not written"
        );
        assert_eq!(d.get(S, b"www").unwrap().missing(), 1);
    }

    /// The crash this module exists for: lines in the file, the journal not yet written.
    /// Restarting cuts them off; the sender's resend writes them once. Lines committed before
    /// stay, and their resend is a repeat.
    #[test]
    fn a_crash_between_file_write_and_journal_neither_loses_nor_doubles() {
        let dir = tempfile::tempdir().unwrap();
        let (log, journal) = (
            dir.path().join("www.log"),
            dir.path().join("state.delivered"),
        );
        let (mut d, rec) = Delivered::open(&journal).unwrap();
        assert_eq!((rec.keys, rec.cut.len(), rec.torn), (0, 0, false));
        assert_eq!(deliver(&mut d, &log, 1..=3).len(), 3);
        // The next batch reaches the file, then the process dies (no commit).
        for n in 4..=5 {
            assert_eq!(d.check(S, b"www", n, b"#web1#h", now_unix()), Seen::New);
        }
        write_lines(&log, &["line 4\n", "line 5\n"]);
        drop(d);
        let (mut d, rec) = Delivered::open(&journal).unwrap();
        assert_eq!(rec.keys, 1);
        assert_eq!(rec.cut.len(), 1, "{rec:?}");
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "line 1\nline 2\nline 3\n"
        );
        assert_eq!(
            d.get(S, b"www").unwrap().sender,
            "#web1#h",
            "acks can go out at once"
        );
        // The sender resends everything it holds unacknowledged: 1..=5.
        assert_eq!(deliver(&mut d, &log, 1..=5), ["line 4\n", "line 5\n"]);
        let want: String = (1..=5).map(|n| format!("line {n}\n")).collect();
        assert_eq!(fs::read_to_string(&log).unwrap(), want);
        // A crash right after the commit changes nothing.
        drop(d);
        let (mut d, rec) = Delivered::open(&journal).unwrap();
        assert!(rec.cut.is_empty());
        assert!(deliver(&mut d, &log, 1..=5).is_empty());
        assert_eq!(fs::read_to_string(&log).unwrap(), want);
    }

    #[test]
    fn a_torn_journal_tail_and_a_rotated_file_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (log, journal) = (
            dir.path().join("www.log"),
            dir.path().join("state.delivered"),
        );
        let (mut d, _) = Delivered::open(&journal).unwrap();
        deliver(&mut d, &log, 1..=2);
        drop(d);
        // A torn transaction: ignored.
        let mut j = OpenOptions::new().append(true).open(&journal).unwrap();
        j.write_all(b"mlsd1 key 000000005eed www #web1#h 1 1-9\nmlsd1 fi")
            .unwrap();
        // The file was rotated and a new one started: not ours to cut.
        fs::rename(&log, dir.path().join("www.log.1")).unwrap();
        write_lines(&log, &["x\n"; 10]);
        let (d, rec) = Delivered::open(&journal).unwrap();
        assert!(rec.torn && rec.cut.is_empty());
        assert_eq!(d.get(S, b"www").unwrap().written.ranges(), &[(1, 2)]);
        assert_eq!(fs::read(&log).unwrap().len(), 20);
    }

    #[test]
    fn compaction_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (log, journal) = (dir.path().join("a b%.log"), dir.path().join("j"));
        let (mut d, _) = Delivered::open(&journal).unwrap();
        deliver(&mut d, &log, 1..=4);
        d.compact(now_unix()).unwrap();
        drop(d);
        let text = fs::read_to_string(&journal).unwrap();
        assert_eq!(text.matches("commit").count(), 1, "{text}");
        write_lines(&log, &["torn\n"]);
        let (d, rec) = Delivered::open(&journal).unwrap();
        assert_eq!(rec.cut.len(), 1, "the encoded path was found again");
        assert_eq!(d.get(S, b"www").unwrap().written.ranges(), &[(1, 4)]);
    }
}
