//! Streams: which sender incarnation numbered a line, and which line it was, carried where every
//! Spread receiver that does not look for it ignores it (CONTRACTS "Streams").
//!
//! A data message goes to two groups: the log group first, then a **tag** group named
//! `mls~<stream>~<n>` that nobody joins. Spread delivers it to the log group's members only; the
//! original C spreadlogd receives room for one group (with `DROP_RECV` the rest of the group list
//! is dropped, the body kept), so it sees the log group and the unchanged line; our collector
//! reads the stream and the line's number from the second group. Numbers are 48 bits wide
//! (2.8 × 10¹⁴ lines per stream and group): they never wrap.

use std::fmt;

/// The tag group's prefix. No log group may start with it (`names::is_reserved_group`).
pub const TAG_PREFIX: &str = "mls~";
/// Largest line number a tag carries.
pub const MAX_NUMBER: u64 = (1 << 48) - 1;
/// The longest line a streamed message carries: the largest message less the log group's and
/// the tag's 32 bytes each (CONTRACTS "Names").
pub const MAX_LINE: usize = crate::wire::message::OneGroupHeader::MAX_TAGGED_BODY;

/// Stream ids are 48 bits, written as 12 hex digits.
const ID_MASK: u64 = (1 << 48) - 1;

/// One sender incarnation (a module child's connection slot, a spread-pipe run). Random, so a
/// restarted process never continues a dead one's numbers by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u64);

impl StreamId {
    /// A stream id from its 48 bits (higher bits are dropped).
    pub const fn from_bits(bits: u64) -> StreamId {
        StreamId(bits & ID_MASK)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    /// A fresh id: 48 bits of the kernel's randomness (read once per stream, off any hot path); if that is unavailable, a hash of the
    /// clock, the pid and a per-process counter (unique enough on one host).
    pub fn random() -> StreamId {
        use std::io::Read;
        let mut b = [0u8; 8];
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b[..6]))
            .is_ok()
        {
            return StreamId::from_bits(u64::from_le_bytes(b));
        }
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        StreamId::from_bits(h.finish())
    }

    /// Parse the 12 hex digits of [`fmt::Display`].
    pub fn parse(hex: &[u8]) -> Option<StreamId> {
        (hex.len() == 12).then_some(())?;
        parse_hex(hex).map(StreamId)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

fn parse_hex(hex: &[u8]) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    hex.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16)?;
        (b.is_ascii_digit() || b.is_ascii_lowercase()).then_some(n << 4 | u64::from(d))
    })
}

/// Buffer for one tag group name (at most 29 bytes).
pub type TagBuf = [u8; 32];

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The tag group of line `n` of `stream`: `mls~<12 hex>~<hex n>`. Allocates nothing.
pub fn tag(stream: StreamId, n: u64, buf: &mut TagBuf) -> &str {
    *buf = TagBuf::default();
    tag_prefix(stream, buf);
    let len = tag_number(buf, n);
    // Only ASCII was written.
    std::str::from_utf8(&buf[..len]).unwrap_or(TAG_PREFIX)
}

/// Write `mls~<12 hex>~` at the start of a zeroed `buf`: the part of the tag that never
/// changes for a stream (written once per group, not per line).
pub fn tag_prefix(stream: StreamId, buf: &mut TagBuf) {
    buf[..4].copy_from_slice(TAG_PREFIX.as_bytes());
    for i in 0..12 {
        buf[4 + i] = HEX[((stream.0 >> (44 - 4 * i)) & 0xf) as usize];
    }
    buf[16] = b'~';
}

/// Write line number `n` after the prefix; returns the tag's length. The bytes after it stay
/// zero as long as numbers only grow (a group name field is NUL-padded).
pub fn tag_number(buf: &mut TagBuf, n: u64) -> usize {
    let n = n.min(MAX_NUMBER);
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        buf[17 + i] = HEX[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
    }
    17 + digits
}

/// The stream and number a tag group carries; None for any other group name.
pub fn parse_tag(group: &[u8]) -> Option<(StreamId, u64)> {
    let rest = group.strip_prefix(TAG_PREFIX.as_bytes())?;
    let (id, n) = (rest.get(..12)?, rest.get(12..)?);
    let n = n.strip_prefix(b"~")?;
    if n.len() > 12 || (n.len() > 1 && n[0] == b'0') {
        return None;
    }
    Some((StreamId::parse(id)?, parse_hex(n)?))
}

/// Turn the tag of line `n` in `buf` into the tag of line `n + 1` by counting up its hex digits
/// in place (a few instructions per line instead of formatting the number). Returns the tag's
/// length.
#[inline]
pub fn tag_increment(buf: &mut TagBuf, n: u64) -> usize {
    let end = buf[17..]
        .iter()
        .position(|&b| b == 0)
        .map_or(buf.len(), |p| 17 + p);
    let mut i = end;
    while i > 17 {
        i -= 1;
        match buf[i] {
            b'f' => buf[i] = b'0',
            b'9' => {
                buf[i] = b'a';
                return end;
            }
            d => {
                buf[i] = d + 1;
                return end;
            }
        }
    }
    // All digits were f: one digit more.
    tag_number(buf, n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_fit_a_group_name() {
        let s = StreamId::from_bits(0x0123_4567_89ab_cdef);
        let mut buf = TagBuf::default();
        assert_eq!(tag(s, 1, &mut buf), "mls~456789abcdef~1");
        for n in [0, 1, 15, 16, 255, 32767, 32768, 1 << 40, MAX_NUMBER] {
            let t = tag(s, n, &mut buf).to_owned();
            assert!(t.len() <= 31, "{t}");
            assert!(crate::names::check_group(t.as_bytes()).is_ok(), "{t}");
            assert!(!crate::names::is_private_group(t.as_bytes()));
            assert_eq!(parse_tag(t.as_bytes()), Some((s, n)), "{t}");
        }
    }

    #[test]
    fn counting_up_in_place_gives_the_next_tag() {
        let s = StreamId::from_bits(0xfeed);
        let mut buf = TagBuf::default();
        tag_prefix(s, &mut buf);
        tag_number(&mut buf, 1);
        for n in 1..70_000u64 {
            let len = tag_increment(&mut buf, n);
            let mut want = TagBuf::default();
            let t = tag(s, n + 1, &mut want).to_owned();
            assert_eq!(&buf[..len], t.as_bytes());
            assert_eq!(buf, want, "the rest stays NUL");
        }
    }

    #[test]
    fn other_names_are_no_tags() {
        for g in [
            &b"www"[..],
            b"mls~",
            b"mls~456789abcdef",
            b"mls~456789abcdef~",
            b"mls~456789ABCDEF~1",
            b"mls~456789abcdef~01",
            b"mls~456789abcdef~x",
            b"mls~456789abcdef~1000000000000",
            b"mls~456789abcde~1",
        ] {
            assert_eq!(parse_tag(g), None, "{}", String::from_utf8_lossy(g));
        }
    }

    #[test]
    fn random_ids_differ_and_print_as_12_hex_digits() {
        let (a, b) = (StreamId::random(), StreamId::random());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 12);
        assert_eq!(StreamId::parse(text.as_bytes()), Some(a));
    }
}
