//! The acknowledgement window's bytes: one ring of records, oldest first, each a 16-byte header
//! (line length, key, number; little-endian) and the line. The headers make the ring readable
//! on its own: when it lives in memory shared with a parent process ([`Storage::Shared`]), the
//! parent of a sender that died (SIGKILL, a crash) reads the lines it still held, with their key
//! and number, from the published front and length ([`records`]) and keeps them for resending.
//!
//! A line is copied in once, part after part (at most two runs when it wraps), and freed from the
//! front. Owned storage grows by doubling; shared storage has a fixed size and grows only its
//! used part (so an idle window touches few pages of its reservation).

/// Bytes of a record's header: length u32, key u32, number u64.
pub const RECORD_HEADER: usize = 16;

/// Where the ring's bytes are.
#[derive(Debug)]
pub enum Storage {
    Owned(Vec<u8>),
    /// A fixed region (shared memory set up by the caller); the ring uses a growing prefix.
    Shared(&'static mut [u8]),
}

impl Default for Storage {
    fn default() -> Storage {
        Storage::Owned(Vec::new())
    }
}

#[derive(Debug, Default)]
pub struct Ring {
    storage: Storage,
    /// The part of the storage in use (the ring wraps here).
    cap: usize,
    head: usize,
    len: usize,
}

impl Ring {
    pub fn new(storage: Storage) -> Ring {
        Ring {
            storage,
            cap: 0,
            head: 0,
            len: 0,
        }
    }

    /// Bytes held, headers included.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// (front offset, bytes held, wrap size): what a reader of shared storage needs.
    #[inline]
    pub fn span(&self) -> (usize, usize, usize) {
        (self.head, self.len, self.cap)
    }

    fn full(&self) -> &[u8] {
        match &self.storage {
            Storage::Owned(v) => v,
            Storage::Shared(s) => s,
        }
    }

    fn full_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Owned(v) => v,
            Storage::Shared(s) => s,
        }
    }

    /// Make the ring at least `want` bytes (doubling, at least 4 KiB), keeping its contents in
    /// order from offset 0. False when fixed storage is too small.
    fn grow(&mut self, want: usize) -> bool {
        let new_cap = want.max(self.cap * 2).max(4096);
        let mut held = Vec::with_capacity(self.len);
        self.read(0, self.len, &mut held);
        match &mut self.storage {
            Storage::Owned(v) => {
                let mut buf = vec![0u8; new_cap];
                buf[..held.len()].copy_from_slice(&held);
                *v = buf;
            }
            Storage::Shared(s) => {
                if want > s.len() {
                    return false;
                }
                let new_cap = new_cap.min(s.len());
                s[..held.len()].copy_from_slice(&held);
                self.cap = new_cap;
                self.head = 0;
                return true;
            }
        }
        self.cap = new_cap;
        self.head = 0;
        true
    }

    /// Offset `at` of the ring (from the front) as an index into the storage.
    #[inline]
    fn index(&self, offset: usize) -> usize {
        let i = self.head + offset;
        if i >= self.cap { i - self.cap } else { i }
    }

    /// Write `bytes` at ring offset `offset` (wrapping).
    fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        let at = self.index(offset);
        let cap = self.cap;
        let first = bytes.len().min(cap - at);
        let buf = self.full_mut();
        buf[at..at + first].copy_from_slice(&bytes[..first]);
        buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
    }

    fn header(len: usize, key: u32, n: u64) -> [u8; RECORD_HEADER] {
        let mut h = [0u8; RECORD_HEADER];
        h[..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4..8].copy_from_slice(&key.to_le_bytes());
        h[8..].copy_from_slice(&n.to_le_bytes());
        h
    }

    /// Append a held record: line `n` of `key`, `parts` of `len` bytes in all. False when fixed
    /// storage cannot take it.
    pub fn push<'p>(
        &mut self,
        parts: impl IntoIterator<Item = &'p [u8]>,
        len: usize,
        key: u32,
        n: u64,
    ) -> bool {
        let Some(staged) = self.stage(parts, len) else {
            return false;
        };
        self.hold(staged, key, n);
        true
    }

    /// Copy `parts` after the held records, behind room for their header, without holding them
    /// yet (see [`Ring::hold`]); room for a `headroom`-byte line is made first. Returns the
    /// line's length, or None (nothing usable staged) for a line longer than the free space,
    /// which never overwrites held bytes.
    pub fn stage<'p>(
        &mut self,
        parts: impl IntoIterator<Item = &'p [u8]>,
        headroom: usize,
    ) -> Option<usize> {
        if self.len + RECORD_HEADER + headroom > self.cap
            && !self.grow(self.len + RECORD_HEADER + headroom)
        {
            return None;
        }
        if self.len == 0 {
            // Nothing held: start over at the beginning, where all of the space is one run.
            self.head = 0;
        }
        let cap = self.cap;
        // The line goes after the held bytes and its header's place (which `hold` fills); the
        // free space from there is at most two runs: up to the end of the storage, then from
        // its start.
        let o = self.len + RECORD_HEADER;
        let at = self.index(o);
        let free = cap - o;
        let run1 = free.min(cap - at);
        let run2 = free - run1;
        let buf = self.full_mut();
        let (start, end) = buf[..cap].split_at_mut(at);
        let mut dst = &mut end[..run1];
        let mut spare = &mut start[..run2];
        let mut n = 0;
        for p in parts {
            n += p.len();
            if p.len() <= dst.len() {
                let (head, rest) = std::mem::take(&mut dst).split_at_mut(p.len());
                copy_small(head, p);
                dst = rest;
                continue;
            }
            // This piece wraps: the end of the first run, then the second run.
            let k = dst.len();
            if p.len() - k > spare.len() {
                return None;
            }
            dst.copy_from_slice(&p[..k]);
            let (head, rest) = std::mem::take(&mut spare).split_at_mut(p.len() - k);
            head.copy_from_slice(&p[k..]);
            dst = rest;
        }
        Some(n)
    }

    /// The staged line's `n` bytes.
    #[inline]
    pub fn staged(&self, n: usize) -> (&[u8], &[u8]) {
        self.slices(self.len + RECORD_HEADER, n)
    }

    /// Hold the staged line (`n` bytes) as line `num` of `key`: its header is written now.
    #[inline]
    pub fn hold(&mut self, n: usize, key: u32, num: u64) {
        let h = Self::header(n, key, num);
        let at = self.index(self.len);
        let fits = at + RECORD_HEADER <= self.cap;
        let dst = self
            .full_mut()
            .get_mut(at..at + RECORD_HEADER)
            .and_then(|d| <&mut [u8; RECORD_HEADER]>::try_from(d).ok());
        match dst {
            // The usual case: one fixed-size move, no call.
            Some(dst) if fits => *dst = h,
            _ => self.write_at(self.len, &h),
        }
        self.len += RECORD_HEADER + n;
    }

    /// The bytes `offset..offset + n` from the front, as at most two slices.
    #[inline]
    pub fn slices(&self, offset: usize, n: usize) -> (&[u8], &[u8]) {
        if n == 0 {
            return (&[], &[]);
        }
        let start = self.index(offset);
        let first = n.min(self.cap - start);
        let buf = &self.full()[..self.cap];
        (&buf[start..start + first], &buf[..n - first])
    }

    /// The line of the record at `offset` (its length from the header).
    pub fn read_line(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        self.read(offset + RECORD_HEADER, len, out);
    }

    pub fn read(&self, offset: usize, n: usize, out: &mut Vec<u8>) {
        let (a, b) = self.slices(offset, n);
        out.extend_from_slice(a);
        out.extend_from_slice(b);
    }

    /// Free `n` bytes (whole records) from the front.
    pub fn pop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if n > 0 {
            self.head = self.index(n);
            self.len -= n;
        }
    }
}

/// The records of a ring whose storage is `buf`, front `head`, `len` bytes held, wrapping at
/// `cap` (as published by [`Ring::span`]): each line with its key and number, oldest first.
/// Stops at the first record that does not fit (a torn publication).
pub fn records(
    buf: &[u8],
    head: usize,
    len: usize,
    cap: usize,
    mut each: impl FnMut(u32, u64, &[u8]),
) {
    if cap == 0 || cap > buf.len() || head >= cap.max(1) || len > cap {
        return;
    }
    let read = |offset: usize, n: usize, out: &mut Vec<u8>| {
        let start = (head + offset) % cap;
        let first = n.min(cap - start);
        out.extend_from_slice(&buf[start..start + first]);
        out.extend_from_slice(&buf[..n - first]);
    };
    let mut offset = 0;
    let mut h = Vec::with_capacity(RECORD_HEADER);
    let mut line = Vec::new();
    while offset + RECORD_HEADER <= len {
        h.clear();
        read(offset, RECORD_HEADER, &mut h);
        let n = u32::from_le_bytes(h[..4].try_into().unwrap_or_default()) as usize;
        let key = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default());
        let num = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        if offset + RECORD_HEADER + n > len {
            return;
        }
        line.clear();
        read(offset + RECORD_HEADER, n, &mut line);
        each(key, num, &line);
        offset += RECORD_HEADER + n;
    }
}

/// Copy a piece of a log line: most are a few bytes (a separator, a status, a dash), for which
/// a call to `memcpy` costs more than the copy (a line has a dozen pieces or more). Up to 32
/// bytes the piece is copied with fixed-size moves of its first and last bytes, which overlap
/// when it is shorter than both (what `memcpy` does inside, without the call); the shortest
/// pieces come first and need no jump table.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    // `dst` is exactly as long as `src` (the caller split it so).
    let n = src.len();
    if n < 4 {
        // Separators, dashes, a status: byte by byte, the one-byte ones first.
        if n > 0 {
            dst[0] = src[0];
            if n > 1 {
                dst[1] = src[1];
                if n > 2 {
                    dst[2] = src[2];
                }
            }
        }
    } else if n < 8 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n <= 16 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n <= 32 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(storage: Storage) {
        let mut r = Ring::new(storage);
        let mut model: std::collections::VecDeque<(u32, u64, Vec<u8>)> = Default::default();
        let mut x = 7u32;
        for round in 0..2000u64 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            if !x.is_multiple_of(3) || model.is_empty() {
                let a: Vec<u8> = (0..(x % 300) as u8).map(|i| i ^ round as u8).collect();
                let b: Vec<u8> = (0..(x % 50) as u8).collect();
                let key = x % 7;
                if round % 2 == 0 {
                    assert!(r.push([&a[..], &b[..]], a.len() + b.len(), key, round));
                } else {
                    let n = r.stage([&a[..], &b[..]], 400).expect("room was made");
                    assert_eq!(n, a.len() + b.len());
                    let (s1, s2) = r.staged(n);
                    assert_eq!([s1, s2].concat(), [&a[..], &b[..]].concat());
                    r.hold(n, key, round);
                }
                model.push_back((key, round, [a, b].concat()));
            } else {
                for _ in 0..(x as usize % 4).min(model.len()) {
                    let (_, _, line) = model.pop_front().unwrap();
                    r.pop_front(RECORD_HEADER + line.len());
                }
            }
            // What a parent reading the storage would find.
            let (head, len, cap) = r.span();
            let mut got = Vec::new();
            records(&r.full()[..cap], head, len, cap, |k, n, l| {
                got.push((k, n, l.to_vec()))
            });
            assert!(got.iter().eq(model.iter()), "round {round}");
        }
    }

    #[test]
    fn pieces_of_every_short_length_are_copied_exactly() {
        let src: Vec<u8> = (1..=80u8).collect();
        for n in 0..=80 {
            let mut dst = vec![0u8; n];
            copy_small(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }

    #[test]
    fn records_stay_in_order_and_readable_across_wraps_and_growth() {
        check(Storage::default());
        let shared: &'static mut [u8] = Box::leak(vec![0u8; 1 << 20].into_boxed_slice());
        check(Storage::Shared(shared));
    }

    #[test]
    fn fixed_storage_refuses_what_does_not_fit_and_keeps_what_it_holds() {
        let shared: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
        let mut r = Ring::new(Storage::Shared(shared));
        assert!(r.push([&b"first line\n"[..]], 11, 1, 1));
        assert!(r.stage([&[b'x'; 5000][..]], 5000).is_none());
        let (head, len, cap) = r.span();
        let mut got = Vec::new();
        records(&r.full()[..cap], head, len, cap, |k, n, l| {
            got.push((k, n, l.to_vec()))
        });
        assert_eq!(got, vec![(1, 1, b"first line\n".to_vec())]);
    }
}
