//! The sender's acknowledgement window, pure (no I/O, no clock of its own): every line a sender
//! hands over stays here, with its stream and number, until a collector acknowledges it
//! (CONTRACTS "Acknowledged delivery"). The I/O shell (the module's transport, spread-pipe)
//! appends after each successful send, feeds it the `ack` records it reads from its mailbox,
//! asks it when and what to resend, and spools what is left when the process ends.
//!
//! Memory is one byte queue and one entry queue, both bounded by [`WindowConfig::bound_bytes`]:
//! after warm-up a line costs a copy, never an allocation. Acks may come in any order and as
//! ranges; a line is released once it reaches the front and is acknowledged, so memory is freed
//! in order and a line acknowledged early just waits for the ones before it.

use std::collections::{HashMap, VecDeque};

use std::time::{Duration, Instant};

use crate::control::Resent;
use crate::ring::{RECORD_HEADER, Ring, Storage};
use crate::sender::Fnv64;

type Fnv = std::hash::BuildHasherDefault<Fnv64>;
use crate::stream::StreamId;

/// Sizes and times of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Bytes of lines held at most (the lines' own bytes; per-line bookkeeping adds ~40 bytes).
    pub bound_bytes: usize,
    /// A line unacknowledged this long is resent (then after 2, 4, … up to `max_resend`).
    pub first_resend: Duration,
    pub max_resend: Duration,
    /// A collector not heard from for this long is no longer resent to.
    pub collector_ttl: Duration,
    /// Release a line only once **every** collector that acknowledges its stream and group has
    /// it (two log hosts that must both end complete), rather than once any one has.
    pub all_collectors: bool,
}

impl Default for WindowConfig {
    fn default() -> WindowConfig {
        WindowConfig {
            bound_bytes: 8 << 20,
            first_resend: Duration::from_secs(1),
            max_resend: Duration::from_secs(16),
            collector_ttl: Duration::from_secs(120),
            all_collectors: false,
        }
    }
}

/// Ranges of numbers a collector holds (sorted, disjoint, merged); usually one range.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// At most this many ranges are kept (the lowest go first): a forgotten range only means
    /// that its lines may be resent once more, which collectors drop as repeats.
    const MAX: usize = 64;

    pub fn insert(&mut self, from: u64, to: u64) {
        if from == 0 || from > to {
            return;
        }
        let v = &mut self.0;
        let i = v.partition_point(|&(_, b)| b.saturating_add(1) < from);
        let mut j = i;
        let (mut lo, mut hi) = (from, to);
        while j < v.len() && v[j].0 <= hi.saturating_add(1) {
            lo = lo.min(v[j].0);
            hi = hi.max(v[j].1);
            j += 1;
        }
        v.splice(i..j, [(lo, hi)]);
        if v.len() > Self::MAX {
            v.remove(0);
        }
    }

    pub fn contains(&self, n: u64) -> bool {
        self.range_of(n).is_some()
    }

    /// The range that holds `n`, if any.
    pub fn range_of(&self, n: u64) -> Option<(u64, u64)> {
        let i = self.0.partition_point(|&(_, b)| b < n);
        self.0.get(i).copied().filter(|&(a, _)| a <= n)
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// How many numbers the ranges hold.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| b - a + 1).sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u32,
    n: u64,
    len: u32,
    /// When it was handed over, stamped by [`Window::stamp`] off the request path (so pushing
    /// reads no clock); None until then.
    at: Option<Instant>,
}

#[derive(Debug)]
struct Key {
    stream: StreamId,
    group: Box<[u8]>,
    acked: Ranges,
}

#[derive(Debug)]
struct Collector {
    /// Its stable id (`mls1 collector`), when it says one.
    id: Option<u64>,
    /// Its private group now: where resends go.
    name: Box<str>,
    heard: Instant,
    /// What it holds, per key it acknowledged at all (an empty entry: it logs that group and
    /// holds nothing yet).
    acked: HashMap<u32, Ranges, Fnv>,
}

impl Collector {
    /// It logs `key`'s group and does not hold line `n`.
    fn lacks(&self, key: u32, n: u64) -> bool {
        self.acked.get(&key).is_some_and(|r| !r.contains(n))
    }
}

/// Counts for the status page and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    /// Lines resent (one per line and collector).
    pub resent: u64,
    /// Lines acknowledged and released.
    pub released: u64,
    /// Resend passes started.
    pub resend_passes: u64,
}

/// What [`Window::on_ack`] learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOutcome {
    /// The ack came from a collector not known before: resend to it at once.
    pub new_collector: bool,
    /// Lines released by this ack.
    pub released: usize,
}

pub struct Window {
    cfg: WindowConfig,
    entries: VecDeque<Entry>,
    data: Ring,
    keys: Vec<Key>,
    /// stream -> group -> key (nested, so a lookup by `&[u8]` allocates nothing; FNV, since
    /// the keys are few and not chosen by an attacker).
    index: HashMap<StreamId, HashMap<Box<[u8]>, u32, Fnv>, Fnv>,
    collectors: Vec<Collector>,
    /// Logical position of `entries[0]` (positions never repeat, so a resend cursor survives
    /// releases at the front).
    front_pos: u64,
    /// The resend pass in progress: the position it continues at.
    cursor: Option<u64>,
    next_resend: Option<Instant>,
    /// When the last resend pass started.
    last_pass: Option<Instant>,
    /// The next pass resends every unacknowledged line (a new collector, a hole shown by an
    /// ack, lines taken back from the spool); otherwise at most [`PROBE_PASS`].
    full_pass: bool,
    /// Lines the pass in progress may still resend (None: all).
    pass_left: Option<usize>,
    backoff: Duration,
    stats: WindowStats,
}

/// Shortest pause between resend passes started because a collector's ack shows it lacks a line.
pub const GAP_RESEND: Duration = Duration::from_millis(250);
/// Lines a resend pass on the timer alone resends (the oldest).
pub const PROBE_PASS: usize = 256;

/// Most keys (stream, group) a window tracks: spooled lines of many dead streams wait in the
/// spool rather than grow the table without bound.
pub const MAX_KEYS: usize = 4096;

impl Window {
    pub fn new(cfg: WindowConfig) -> Window {
        Window::with_storage(cfg, Storage::default())
    }

    /// A window whose bytes are in `storage` (shared memory a parent reads if this process
    /// dies: [`crate::ring::records`]). Fixed storage should hold `bound_bytes` and a header per
    /// line on top; a line that does not fit is refused like one over the bound.
    pub fn with_storage(cfg: WindowConfig, storage: Storage) -> Window {
        Window {
            cfg,
            entries: VecDeque::new(),
            data: Ring::new(storage),
            keys: Vec::new(),
            index: HashMap::default(),
            collectors: Vec::new(),
            front_pos: 0,
            cursor: None,
            next_resend: None,
            last_pass: None,
            full_pass: false,
            pass_left: None,
            backoff: cfg.first_resend,
            stats: WindowStats::default(),
        }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Whether a line of `len` bytes fits now (else the caller spools it, unnumbered).
    #[inline]
    pub fn has_room(&self, len: usize) -> bool {
        self.bytes() + len <= self.cfg.bound_bytes
    }

    /// The key of (`stream`, `group`); allocates the first time only. None when the table is
    /// full ([`MAX_KEYS`]).
    pub fn key(&mut self, stream: StreamId, group: &[u8]) -> Option<u32> {
        if let Some(k) = self.find(stream, group) {
            return Some(k);
        }
        if self.keys.len() >= MAX_KEYS {
            return None;
        }
        let k = self.keys.len() as u32;
        self.keys.push(Key {
            stream,
            group: group.into(),
            acked: Ranges::default(),
        });
        self.index
            .entry(stream)
            .or_default()
            .insert(group.into(), k);
        Some(k)
    }

    fn find(&self, stream: StreamId, group: &[u8]) -> Option<u32> {
        self.index.get(&stream)?.get(group).copied()
    }

    /// Hold line `n` of `key`, given as parts of `len` bytes in all (sent live just now). The
    /// caller checked [`Window::has_room`]; a line that does not fit is refused (false). Reads
    /// no clock: [`Window::stamp`] dates it later.
    pub fn push<'p>(
        &mut self,
        key: u32,
        n: u64,
        parts: impl IntoIterator<Item = &'p [u8]>,
        len: usize,
    ) -> bool {
        if !self.has_room(len) || (key as usize) >= self.keys.len() {
            return false;
        }
        if !self.data.push(parts, len, key, n) {
            return false;
        }
        self.hold_entry(key, n, len);
        true
    }

    /// Book line `n` of `key`, whose `len` bytes were just added to the ring.
    #[inline]
    fn hold_entry(&mut self, key: u32, n: u64, len: usize) {
        if self.entries.is_empty() {
            // A quiet window starts its resend clock with its first line.
            self.backoff = self.cfg.first_resend;
            self.next_resend = None;
        }
        self.entries.push_back(Entry {
            key,
            n,
            len: len as u32,
            at: None,
        });
    }

    /// Copy a line (`parts`) into the window without holding it yet, to be sent from there
    /// ([`Window::staged`]) and then held ([`Window::hold_staged`]) or forgotten (the next
    /// stage overwrites it). `headroom` is room to make first: the longest the line can be.
    /// The caller checked [`Window::has_room`] for it.
    pub fn stage<'p>(
        &mut self,
        parts: impl IntoIterator<Item = &'p [u8]>,
        headroom: usize,
    ) -> Option<usize> {
        self.data.stage(parts, headroom)
    }

    /// The staged line's bytes (`len` of them), as at most two slices.
    #[inline]
    pub fn staged(&self, len: usize) -> [&[u8]; 2] {
        let (a, b) = self.data.staged(len);
        [a, b]
    }

    /// Hold the staged line as line `n` of `key` (it was sent).
    #[inline]
    pub fn hold_staged(&mut self, key: u32, n: u64, len: usize) {
        if (key as usize) >= self.keys.len() {
            return;
        }
        self.data.hold(len, key, n);
        self.hold_entry(key, n, len);
    }

    /// Date the lines pushed since the last call as of `now` (called on every upkeep, so a
    /// line's age is late by at most one upkeep period).
    pub fn stamp(&mut self, now: Instant) {
        for e in self.entries.iter_mut().rev() {
            if e.at.is_some() {
                break;
            }
            e.at = Some(now);
        }
    }

    /// Hold a line that was never resent by this process (read back from the spool): it is
    /// resent to the known collectors at the next pass, which starts at once. False when full.
    pub fn inject(
        &mut self,
        stream: StreamId,
        group: &[u8],
        n: u64,
        line: &[u8],
        now: Instant,
    ) -> bool {
        if !self.has_room(line.len()) {
            return false;
        }
        let Some(key) = self.key(stream, group) else {
            return false;
        };
        if self.keys[key as usize].acked.contains(n) {
            return true;
        }
        let pushed = self.push(key, n, [line], line.len());
        self.stamp(now);
        if pushed {
            self.next_resend = Some(now);
            self.full_pass = true;
        }
        pushed
    }

    /// A collector (`from`, its private group) acknowledged lines `first..=last` of
    /// (`stream`, `group`); `0 0` holds none but still introduces the collector.
    #[allow(clippy::too_many_arguments)]
    pub fn on_ack(
        &mut self,
        from: &str,
        id: Option<u64>,
        stream: StreamId,
        group: &[u8],
        first: u64,
        last: u64,
        now: Instant,
    ) -> AckOutcome {
        let (c, new_collector) = self.heard(from, id, now);
        if let Some(k) = self.find(stream, group) {
            self.keys[k as usize].acked.insert(first, last);
            self.collectors[c]
                .acked
                .entry(k)
                .or_default()
                .insert(first, last);
        }
        let released = self.release();
        if released > 0 {
            self.backoff = self.cfg.first_resend;
            self.next_resend = None;
        }
        if new_collector && !self.entries.is_empty() {
            self.next_resend = Some(now);
            self.full_pass = true;
        }
        // The collector holds lines past the oldest one we hold of that key: it lacks that one
        // (lost in a dead daemon, say), so resend soon rather than at the back-off's pace; at
        // most every GAP_RESEND, since every ack of the collector says so again.
        if let Some(front) = self.entries.front()
            && self.find(stream, group) == Some(front.key)
            && front.n < last
            && self.cursor.is_none()
        {
            let soonest = self.last_pass.map_or(now, |t| t + GAP_RESEND).max(now);
            if self.next_resend.is_none_or(|at| at > soonest) {
                self.next_resend = Some(soonest);
            }
            self.full_pass = true;
        }
        AckOutcome {
            new_collector,
            released,
        }
    }

    /// Note that collector `from` (its id, if it said one) was heard: its index, and whether it
    /// is new to us — never heard, or back under another name (restarted: it may lack what was
    /// sent meanwhile).
    fn heard(&mut self, from: &str, id: Option<u64>, now: Instant) -> (usize, bool) {
        let known = self.collectors.iter().position(|c| match (id, c.id) {
            (Some(a), Some(b)) => a == b,
            _ => &*c.name == from,
        });
        match known {
            Some(i) => {
                let c = &mut self.collectors[i];
                c.heard = now;
                let renamed = &*c.name != from;
                if renamed {
                    c.name = from.into();
                }
                (i, renamed)
            }
            None => {
                self.collectors.push(Collector {
                    id,
                    name: from.into(),
                    heard: now,
                    acked: HashMap::default(),
                });
                (self.collectors.len() - 1, true)
            }
        }
    }

    /// Free the acknowledged lines at the front. The range that covers one line usually covers
    /// the next ones too: it is looked up again only when a line falls outside it.
    fn release(&mut self) -> usize {
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut covering: Option<(u32, u64, u64)> = None;
        for e in &self.entries {
            if self.cfg.all_collectors {
                if !self.held_by_all(e.key, e.n) {
                    break;
                }
                n += 1;
                bytes += RECORD_HEADER + e.len as usize;
                continue;
            }
            let inside = covering.is_some_and(|(k, a, b)| k == e.key && a <= e.n && e.n <= b);
            if !inside {
                match self.keys[e.key as usize].acked.range_of(e.n) {
                    Some((a, b)) => covering = Some((e.key, a, b)),
                    None => break,
                }
            }
            n += 1;
            bytes += RECORD_HEADER + e.len as usize;
        }
        if n > 0 {
            self.entries.drain(..n);
            self.data.pop_front(bytes);
            self.front_pos += n as u64;
            self.stats.released += n as u64;
        }
        n
    }

    /// Every collector that logs `key`'s group holds line `n` (and there is one).
    fn held_by_all(&self, key: u32, n: u64) -> bool {
        let mut any = false;
        for c in &self.collectors {
            if let Some(r) = c.acked.get(&key) {
                if !r.contains(n) {
                    return false;
                }
                any = true;
            }
        }
        any
    }

    /// Start a resend pass if one is due: lines wait unacknowledged for longer than the current
    /// back-off (or a new collector appeared), and a collector is known to resend to. Also
    /// forgets collectors not heard from for [`WindowConfig::collector_ttl`].
    pub fn resend_due(&mut self, now: Instant) -> bool {
        let ttl = self.cfg.collector_ttl;
        let before = self.collectors.len();
        self.collectors
            .retain(|c| now.duration_since(c.heard) < ttl);
        if self.cfg.all_collectors && self.collectors.len() < before {
            // A collector gone for good no longer holds lines back.
            self.release();
        }
        if self.cursor.is_some() {
            return true;
        }
        let Some(oldest) = self.entries.front() else {
            return false;
        };
        if self.collectors.is_empty() {
            return false;
        }
        let due = match self.next_resend {
            Some(at) => now >= at,
            None => oldest
                .at
                .is_some_and(|at| now.duration_since(at) >= self.backoff),
        };
        if due {
            self.cursor = Some(self.front_pos);
            self.last_pass = Some(now);
            // A pass on the timer alone probes with the oldest lines: a live collector that
            // lacks them acknowledges them, and its acks show any further hole (a full pass
            // follows); a dead one (its name not yet forgotten) costs little.
            self.pass_left = (!std::mem::take(&mut self.full_pass)).then_some(PROBE_PASS);
            self.stats.resend_passes += 1;
        }
        due
    }

    /// Up to `max` unacknowledged lines of the pass in progress, each handed to `send` once per
    /// known collector (private group, line). Stops at the first failed send (the pass continues
    /// there next time). Returns true when the pass is complete; the next one then waits twice
    /// as long (up to `max_resend`), until an ack releases lines again.
    pub fn resend_some<E>(
        &mut self,
        max: usize,
        now: Instant,
        mut send: impl FnMut(&str, &Resent<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        let Some(mut pos) = self.cursor else {
            return Ok(true);
        };
        pos = pos.max(self.front_pos);
        let mut offset: usize = self
            .entries
            .iter()
            .take((pos - self.front_pos) as usize)
            .map(|e| RECORD_HEADER + e.len as usize)
            .sum();
        let mut line = Vec::new();
        let mut done = 0;
        while let Some(e) = self.entries.get((pos - self.front_pos) as usize).copied() {
            if done >= max {
                self.cursor = Some(pos);
                return Ok(false);
            }
            if self.pass_left == Some(0) {
                break;
            }
            let key = &self.keys[e.key as usize];
            // Who lacks it: with all collectors required, each that logs the group and does not
            // hold it; otherwise, unless one holds it already, each that logs the group (or, if
            // none said so yet, every collector known).
            let wanted = if self.cfg.all_collectors {
                self.collectors.iter().any(|c| c.lacks(e.key, e.n))
            } else {
                !key.acked.contains(e.n)
            };
            if wanted {
                if let Some(left) = &mut self.pass_left {
                    *left -= 1;
                }
                line.clear();
                self.data.read_line(offset, e.len as usize, &mut line);
                let r = Resent {
                    stream: key.stream,
                    group: &key.group,
                    number: e.n,
                    line: &line,
                };
                let anyone_logs = self.collectors.iter().any(|c| c.acked.contains_key(&e.key));
                for c in &self.collectors {
                    let to = if anyone_logs {
                        c.lacks(e.key, e.n)
                    } else {
                        true
                    };
                    if !to {
                        continue;
                    }
                    if let Err(err) = send(&c.name, &r) {
                        self.cursor = Some(pos);
                        return Err(err);
                    }
                    self.stats.resent += 1;
                }
                done += 1;
            }
            offset += RECORD_HEADER + e.len as usize;
            pos += 1;
        }
        self.cursor = None;
        self.next_resend = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.max_resend);
        Ok(true)
    }

    /// A resend pass is under way (more of it to send).
    pub fn resend_pending(&self) -> bool {
        self.cursor.is_some()
    }

    /// Take every line still held, oldest first (a process ending: the caller spools them with
    /// their stream and number).
    pub fn drain(&mut self, mut each: impl FnMut(StreamId, &[u8], u64, &[u8])) {
        let mut line = Vec::new();
        while let Some(e) = self.entries.pop_front() {
            line.clear();
            self.data.read_line(0, e.len as usize, &mut line);
            self.data.pop_front(RECORD_HEADER + e.len as usize);
            let key = &self.keys[e.key as usize];
            if !key.acked.contains(e.n) {
                each(key.stream, &key.group, e.n, &line);
            }
            self.front_pos += 1;
        }
        self.cursor = None;
    }

    /// The (stream, group, last number) of every key this window holds lines of, for `stream`
    /// records: collectors answer them with acks.
    pub fn held_keys(&self) -> Vec<(StreamId, &[u8], u64)> {
        let mut last: HashMap<u32, u64> = HashMap::new();
        for e in &self.entries {
            let l = last.entry(e.key).or_default();
            *l = (*l).max(e.n);
        }
        let mut v: Vec<_> = last
            .into_iter()
            .map(|(k, n)| {
                let key = &self.keys[k as usize];
                (key.stream, &key.group[..], n)
            })
            .collect();
        v.sort();
        v
    }

    /// Lines held (unacknowledged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of lines held.
    pub fn bytes(&self) -> usize {
        self.data.len() - RECORD_HEADER * self.entries.len()
    }

    /// The ring's (front offset, bytes held, wrap size), for a reader of shared storage.
    pub fn ring_span(&self) -> (usize, usize, usize) {
        self.data.span()
    }

    /// How many keys there are, and key `k`'s stream and group (to publish them beside shared
    /// storage).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn key_of(&self, k: u32) -> Option<(StreamId, &[u8])> {
        self.keys
            .get(k as usize)
            .map(|key| (key.stream, &key.group[..]))
    }

    /// Age of the oldest line held.
    pub fn oldest_age(&self, now: Instant) -> Option<Duration> {
        self.entries
            .front()
            .map(|e| e.at.map_or(Duration::ZERO, |at| now.duration_since(at)))
    }

    /// Collectors heard from (within the ttl, as of the last [`Window::resend_due`]).
    pub fn collectors(&self) -> usize {
        self.collectors.len()
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bound: usize) -> WindowConfig {
        WindowConfig {
            bound_bytes: bound,
            ..WindowConfig::default()
        }
    }

    const S: StreamId = StreamId::from_bits(0x51);

    /// Send `count` lines "line <n>\n" of group `g` numbered from `first`.
    fn send(w: &mut Window, g: &[u8], first: u64, count: u64, now: Instant) {
        let k = w.key(S, g).unwrap();
        for n in first..first + count {
            let text = format!("line {n}\n");
            assert!(w.push(k, n, [text.as_bytes()], text.len()));
        }
        w.stamp(now);
    }

    /// Run a whole resend pass; (collector, group, number, line) per resent line.
    fn pass(w: &mut Window, now: Instant) -> Vec<(String, String, u64, String)> {
        let mut out = Vec::new();
        while !w
            .resend_some(3, now, |c, r| {
                out.push((
                    c.to_owned(),
                    String::from_utf8_lossy(r.group).into_owned(),
                    r.number,
                    String::from_utf8_lossy(r.line).into_owned(),
                ));
                Ok::<(), ()>(())
            })
            .unwrap()
        {}
        out
    }

    #[test]
    fn a_staged_line_is_held_or_forgotten() {
        let mut w = Window::new(cfg(1 << 20));
        let k = w.key(S, b"www").unwrap();
        let n = w.stage([&b"GET "[..], b"/ 200\n"], 100).unwrap();
        assert_eq!(n, 10);
        assert_eq!(w.staged(n).concat(), b"GET / 200\n");
        assert!(w.is_empty(), "staged is not held");
        // Not sent: the next stage takes its place.
        let n = w.stage([&b"second\n"[..]], 100).unwrap();
        w.hold_staged(k, 1, n);
        // A line longer than the free space stages nothing and overwrites nothing.
        let big = vec![b'x'; 10 << 20];
        assert_eq!(w.stage([&big[..]], 100), None);
        assert_eq!((w.len(), w.bytes()), (1, 7));
        let mut out = Vec::new();
        w.drain(|_, _, num, line| out.push((num, line.to_vec())));
        assert_eq!(out, vec![(1, b"second\n".to_vec())]);
    }

    #[test]
    fn ranges_merge_and_answer_membership() {
        let mut r = Ranges::default();
        r.insert(5, 9);
        r.insert(1, 2);
        r.insert(3, 4);
        assert_eq!(r.ranges(), &[(1, 9)]);
        r.insert(20, 20);
        r.insert(11, 12);
        assert_eq!(r.ranges(), &[(1, 9), (11, 12), (20, 20)]);
        r.insert(10, 19);
        assert_eq!(r.ranges(), &[(1, 20)]);
        r.insert(0, 0);
        assert_eq!(r.count(), 20);
        assert!(r.contains(1) && r.contains(20) && !r.contains(21) && !r.contains(0));
        for i in 0..100 {
            r.insert(100 + 3 * i, 100 + 3 * i);
        }
        assert_eq!(r.ranges().len(), Ranges::MAX);
    }

    #[test]
    fn acks_release_in_order_and_free_the_memory() {
        let t = Instant::now();
        let mut w = Window::new(cfg(1 << 20));
        send(&mut w, b"www", 1, 10, t);
        assert_eq!((w.len(), w.bytes()), (10, 7 * 9 + 8));
        // Lines 4..=10 acked first: nothing leaves before 1..=3 do.
        let o = w.on_ack("#sld-1#h", None, S, b"www", 4, 10, t);
        assert_eq!(
            o,
            AckOutcome {
                new_collector: true,
                released: 0
            }
        );
        let o = w.on_ack("#sld-1#h", None, S, b"www", 1, 3, t);
        assert_eq!(
            o,
            AckOutcome {
                new_collector: false,
                released: 10
            }
        );
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
        // Acks of another group or stream release nothing.
        send(&mut w, b"www", 11, 1, t);
        w.on_ack("#sld-1#h", None, S, b"err", 1, 100, t);
        w.on_ack("#sld-1#h", None, StreamId::from_bits(9), b"www", 1, 100, t);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn the_bound_is_bytes_of_lines() {
        let mut w = Window::new(cfg(20));
        let k = w.key(S, b"g").unwrap();
        assert!(w.has_room(20) && !w.has_room(21));
        assert!(w.push(k, 1, [&b"0123456789"[..]], 10));
        assert!(w.push(k, 2, [&b"01234"[..], b"56789"], 10));
        assert!(!w.has_room(1));
        assert!(
            !w.push(k, 3, [&b"x"[..]], 1),
            "a line over the bound is refused"
        );
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn unacked_lines_are_resent_to_known_collectors_with_backoff() {
        let t = Instant::now();
        let mut w = Window::new(cfg(1 << 20));
        send(&mut w, b"www", 1, 5, t);
        // No collector known: nothing to resend to, however long it waits.
        assert!(!w.resend_due(t + Duration::from_secs(30)));
        // A collector acknowledges 1..=2 and 4: it is new, so the rest is resent at once.
        let t1 = t + Duration::from_millis(10);
        w.on_ack("#sld-1#h", None, S, b"www", 1, 2, t1);
        w.on_ack("#sld-1#h", None, S, b"www", 4, 4, t1);
        assert!(w.resend_due(t1));
        let got = pass(&mut w, t1);
        let numbers: Vec<u64> = got.iter().map(|g| g.2).collect();
        assert_eq!(numbers, [3, 5]);
        assert_eq!(
            got[0],
            ("#sld-1#h".into(), "www".into(), 3, "line 3\n".into())
        );
        // Then 1 s, 2 s, 4 s … between passes while nothing is acknowledged.
        assert!(!w.resend_due(t1 + Duration::from_millis(900)));
        assert!(w.resend_due(t1 + Duration::from_millis(1000)));
        let t2 = t1 + Duration::from_millis(1000);
        assert_eq!(pass(&mut w, t2).len(), 2);
        assert!(!w.resend_due(t2 + Duration::from_millis(1900)));
        assert!(w.resend_due(t2 + Duration::from_millis(2000)));
        assert_eq!(w.stats().resent, 4);
        // A second collector: each line goes to both.
        let t3 = t2 + Duration::from_secs(3);
        w.on_ack("#sld-2#h", None, S, b"www", 0, 0, t3);
        assert!(w.resend_due(t3));
        let got = pass(&mut w, t3);
        assert_eq!(got.len(), 4);
        // Collectors silent beyond their ttl are forgotten: nothing left to resend to.
        assert!(!w.resend_due(t3 + Duration::from_secs(600)));
    }

    #[test]
    fn an_ack_past_a_held_line_resends_it_soon() {
        let t = Instant::now();
        let mut w = Window::new(cfg(1 << 20));
        send(&mut w, b"www", 1, 5, t);
        w.on_ack("#c#h", None, S, b"www", 1, 1, t);
        assert!(w.resend_due(t), "a new collector");
        pass(&mut w, t);
        // The known collector acks 3..=5: line 2 is missing there. Not before GAP_RESEND after
        // the last pass, then at once (not after the 1 s back-off).
        let t1 = t + Duration::from_millis(100);
        w.on_ack("#c#h", None, S, b"www", 3, 5, t1);
        assert!(!w.resend_due(t1));
        assert!(w.resend_due(t + GAP_RESEND));
        assert_eq!(pass(&mut w, t + GAP_RESEND).len(), 1);
    }

    #[test]
    fn a_pass_on_the_timer_probes_with_the_oldest_lines_only() {
        let t = Instant::now();
        let mut w = Window::new(cfg(1 << 20));
        send(&mut w, b"www", 1, 1000, t);
        w.on_ack("#c#h", None, S, b"www", 0, 0, t);
        assert!(w.resend_due(t));
        assert_eq!(pass(&mut w, t).len(), 1000, "a new collector: everything");
        // Silence (the collector died, say): the next passes resend the oldest lines only.
        let t1 = t + Duration::from_secs(1);
        assert!(w.resend_due(t1));
        let got = pass(&mut w, t1);
        assert_eq!(got.len(), PROBE_PASS);
        assert_eq!((got[0].2, got[PROBE_PASS - 1].2), (1, PROBE_PASS as u64));
        // The collector answers the probe: it has them now, and its ack shows it lacks the
        // rest: a full pass follows.
        let t2 = t1 + Duration::from_millis(300);
        w.on_ack("#c#h", None, S, b"www", 1, 10, t2);
        w.on_ack("#c#h", None, S, b"www", 20, 20, t2);
        assert!(w.resend_due(t2));
        assert_eq!(pass(&mut w, t2).len(), 1000 - 11);
    }

    #[test]
    fn with_all_collectors_required_a_line_waits_for_each_and_goes_to_who_lacks_it() {
        let t = Instant::now();
        let mut w = Window::new(WindowConfig {
            all_collectors: true,
            ..cfg(1 << 20)
        });
        send(&mut w, b"www", 1, 4, t);
        // Two log hosts on www (both known before the lines are acknowledged: they answered
        // the stream's announcement), one collector of another group.
        w.on_ack("#b#h", None, S, b"www", 0, 0, t);
        w.on_ack("#a#h", None, S, b"www", 1, 4, t);
        w.on_ack("#b#h", None, S, b"www", 1, 2, t);
        w.on_ack("#e#h", None, S, b"errors", 1, 9, t);
        assert_eq!(w.len(), 2, "3 and 4 wait for b");
        assert!(w.resend_due(t));
        let got = pass(&mut w, t);
        assert_eq!(
            got.iter().map(|g| (g.0.as_str(), g.2)).collect::<Vec<_>>(),
            [("#b#h", 3), ("#b#h", 4)],
            "only to who lacks it"
        );
        w.on_ack("#b#h", None, S, b"www", 3, 4, t);
        assert!(w.is_empty());
        // b dies (its name is heard no more): after the ttl it holds nothing back.
        send(&mut w, b"www", 5, 1, t);
        let later = t + Duration::from_secs(100);
        w.on_ack("#a#h", None, S, b"www", 1, 5, later);
        assert_eq!(w.len(), 1, "b is still within its ttl");
        w.on_ack("#a#h", None, S, b"www", 1, 5, t + Duration::from_secs(130));
        assert!(w.resend_due(t + Duration::from_secs(130)) || w.is_empty());
        assert!(w.is_empty(), "b forgotten after 120 s");
    }

    #[test]
    fn a_collector_back_under_a_new_name_is_the_same_one_and_gets_what_it_lacks() {
        let t = Instant::now();
        let mut w = Window::new(WindowConfig {
            all_collectors: true,
            ..cfg(1 << 20)
        });
        send(&mut w, b"www", 1, 3, t);
        w.on_ack("#a#h", Some(1), S, b"www", 0, 0, t);
        w.on_ack("#sld-10#h", Some(2), S, b"www", 0, 0, t);
        w.on_ack("#a#h", Some(1), S, b"www", 1, 3, t);
        w.on_ack("#sld-10#h", Some(2), S, b"www", 1, 1, t);
        assert_eq!(w.len(), 2);
        // Collector 2 restarts (kill -9): a new private name, the same id. Not a third
        // collector holding lines back: the same one, resent to at once under its new name.
        let t1 = t + Duration::from_millis(10);
        let o = w.on_ack("#sld-11#h", Some(2), S, b"www", 1, 1, t1);
        assert!(o.new_collector);
        assert_eq!(w.collectors(), 2);
        assert!(w.resend_due(t1));
        let got = pass(&mut w, t1);
        assert_eq!(
            got.iter().map(|g| (g.0.as_str(), g.2)).collect::<Vec<_>>(),
            [("#sld-11#h", 2), ("#sld-11#h", 3)]
        );
        w.on_ack("#sld-11#h", Some(2), S, b"www", 1, 3, t1);
        assert!(w.is_empty());
    }

    #[test]
    fn a_pass_survives_releases_and_failed_sends() {
        let t = Instant::now();
        let mut w = Window::new(cfg(1 << 20));
        send(&mut w, b"www", 1, 10, t);
        w.on_ack("#c#h", None, S, b"www", 0, 0, t);
        assert!(w.resend_due(t));
        let mut sent = Vec::new();
        assert!(
            !w.resend_some(4, t, |_, r| {
                sent.push(r.number);
                Ok::<(), ()>(())
            })
            .unwrap()
        );
        // Lines 1..=6 acknowledged while the pass is half-way: it goes on at 7.
        w.on_ack("#c#h", None, S, b"www", 1, 6, t);
        let mut fail_once = true;
        let r = w.resend_some(10, t, |_, r| {
            if fail_once {
                fail_once = false;
                return Err(r.number);
            }
            sent.push(r.number);
            Ok(())
        });
        assert_eq!(r, Err(7));
        assert!(
            w.resend_some(10, t, |_, r| {
                sent.push(r.number);
                Ok::<(), ()>(())
            })
            .unwrap()
        );
        assert_eq!(sent, [1, 2, 3, 4, 7, 8, 9, 10]);
    }

    #[test]
    fn drained_and_injected_lines_keep_stream_and_number() {
        let t = Instant::now();
        let mut w = Window::new(cfg(1 << 20));
        send(&mut w, b"www", 1, 3, t);
        send(&mut w, b"err", 1, 1, t);
        w.on_ack("#c#h", None, S, b"www", 2, 2, t);
        assert_eq!(
            w.held_keys(),
            vec![(S, &b"err"[..], 1), (S, &b"www"[..], 3)]
        );
        let mut out = Vec::new();
        w.drain(|s, g, n, l| out.push((s, g.to_vec(), n, l.to_vec())));
        assert_eq!(
            out,
            vec![
                (S, b"www".to_vec(), 1, b"line 1\n".to_vec()),
                (S, b"www".to_vec(), 3, b"line 3\n".to_vec()),
                (S, b"err".to_vec(), 1, b"line 1\n".to_vec()),
            ]
        );
        assert!(w.is_empty() && w.bytes() == 0);
        // Another process reads them back: resent (privately) at the next pass, at once.
        let mut v = Window::new(cfg(1 << 20));
        v.on_ack("#c#h", None, S, b"www", 0, 0, t);
        for (s, g, n, l) in &out {
            assert!(v.inject(*s, g, *n, l, t));
        }
        assert!(v.resend_due(t));
        let got = pass(&mut v, t);
        assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), [1, 3, 1]);
        v.on_ack("#c#h", None, S, b"www", 1, 3, t);
        v.on_ack("#c#h", None, S, b"err", 1, 1, t);
        assert!(v.is_empty());
    }
}
